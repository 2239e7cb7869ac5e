"""provider.json: SimpleLLMFunc's shape, plus optional fields and ``${ENV_VAR}`` references."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from llmplug._limits._keys import APIKeyPool
from llmplug._vocab._errors import ConfigError

from ._convert import convert
from ._group_config import GROUPS, Models, load_groups

if TYPE_CHECKING:
    from ._interface import LLMInterface

__all__ = ["load_data", "load_file"]

IfaceT = TypeVar("IfaceT", bound="LLMInterface")

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Entry(msgspec.Struct, forbid_unknown_fields=True):
    model_name: str
    api_keys: list[str]
    base_url: str
    max_retries: int = 5
    retry_delay: float = 1.0
    rate_limit_capacity: float = 10
    rate_limit_refill_rate: float = 1.0
    context_window: int = 200_000
    api_params: dict[str, Any] = msgspec.field(default_factory=dict)
    wire: str | None = None
    key_strategy: str | dict[str, Any] = "round_robin"
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    tokens_per_minute: int | None = None
    pricing: dict[str, float] | None = None
    rate_limit_backend: dict[str, Any] | None = None
    cache: dict[str, Any] | bool | None = None


def load_file(
    cls: type[IfaceT], path: str | os.PathLike[str], options: Mapping[str, Any]
) -> Models[IfaceT]:
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise _file_error(
            f"{source}: cannot read the provider file: {exc.strerror or exc}", exc
        ) from None
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc}") from None
    return load_data(cls, data, source, options)


_FILE_ERRORS: dict[type[OSError], type[ConfigError]] = {}


def _file_error(message: str, exc: OSError) -> ConfigError:
    """A ConfigError that is also the OSError the read failed with (FileNotFoundError,
    PermissionError, ...): code written for SimpleLLMFunc catches those."""
    kind = type(exc)
    cls = _FILE_ERRORS.get(kind)
    if cls is None:
        cls = _FILE_ERRORS[kind] = type(kind.__name__, (ConfigError, kind), {})
    err = cls(message)
    err.errno, err.strerror, err.filename = exc.errno, exc.strerror, exc.filename  # type: ignore[attr-defined]
    return err


def load_data(
    cls: type[IfaceT], data: Any, source: str, options: Mapping[str, Any]
) -> Models[IfaceT]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be an object of providers")
    clash = sorted(set(options) & set(_Entry.__struct_fields__))
    if clash:
        raise ConfigError(f"{source}: {clash} are provider.json fields: set them in the file")
    pools: dict[tuple[str, tuple[str, ...], bytes], APIKeyPool] = {}
    out: Models[IfaceT] = Models()
    for provider, entries in data.items():
        if provider == GROUPS:
            continue  # built below, on the interfaces of every provider
        if not isinstance(entries, list):
            raise ConfigError(f"{source}: provider {provider!r}: must be a list of model entries")
        models: dict[str, IfaceT] = {}
        for i, raw_entry in enumerate(entries):
            where = f"{source}: provider {provider!r}, model entry {i}"
            if isinstance(raw_entry, Mapping) and isinstance(raw_entry.get("model_name"), str):
                where += f" ({raw_entry['model_name']})"
            entry = convert(_expand(raw_entry, where, ""), _Entry, where)
            if entry.model_name in models:
                raise ConfigError(
                    f"{where}: field 'model_name': {entry.model_name!r} appears twice"
                )
            # Models of one provider that use the same keys share one pool, so the keys' load
            # and health are counted across those models, as the provider counts them.
            pool_id = (
                provider,
                tuple(entry.api_keys),
                msgspec.json.encode(entry.key_strategy, order="sorted"),
            )
            try:
                pool = pools.get(pool_id) or APIKeyPool(
                    entry.api_keys, provider, strategy=entry.key_strategy
                )
                pools[pool_id] = pool
                models[entry.model_name] = cls(
                    api_key_pool=pool,
                    model_name=entry.model_name,
                    base_url=entry.base_url,
                    max_retries=entry.max_retries,
                    retry_delay=entry.retry_delay,
                    rate_limit_capacity=entry.rate_limit_capacity,
                    rate_limit_refill_rate=entry.rate_limit_refill_rate,
                    context_window=entry.context_window,
                    wire=entry.wire,
                    api_params=entry.api_params,
                    headers=entry.headers,
                    tokens_per_minute=entry.tokens_per_minute,
                    pricing=entry.pricing,
                    rate_limit_backend=entry.rate_limit_backend,
                    cache=entry.cache,
                    **options,
                )
            except ConfigError as exc:
                field = exc.field
                said = f"field {field!r}: {exc.message}" if field else _with_field(exc.message)
                raise ConfigError(f"{where}: {said}", field=field) from None
        out[provider] = models
    if GROUPS in data:
        out.groups = load_groups(out, data[GROUPS], source, options)
    return out


def _with_field(message: str) -> str:
    """Name the field an interface's own check complained about ("max_retries must ...")."""
    m = re.match(r"APIKeyPool (?:'[^']*'|\"[^\"]*\"):? |([a-z_]+) must", message)
    if m and m.group(1):
        return f"field {m.group(1)!r}: {message}"
    if m:
        return f"field 'api_keys': {message[m.end() :]}"
    return message


def _expand(value: Any, where: str, path: str) -> Any:
    if isinstance(value, str):
        if "${" not in value:
            return value

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            got = os.environ.get(name)
            if got is None:
                raise ConfigError(
                    f"{where}: field {path or '?'!r}: environment variable ${{{name}}} is not set"
                )
            return got

        return _ENV.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: _expand(v, where, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, where, f"{path}[{i}]") for i, v in enumerate(value)]
    return value

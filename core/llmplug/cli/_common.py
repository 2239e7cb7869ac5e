"""What every subcommand shares: exit codes, one-line errors, loading the model it names."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import msgspec

from llmplug._vocab._errors import ConfigError
from llmplug._vocab._redact import redact_urls

if TYPE_CHECKING:
    import argparse

    from llmplug._interfaces._group import ModelGroup
    from llmplug._interfaces._group_config import Models
    from llmplug._interfaces._interface import LLMInterface

__all__ = [
    "EXIT_CALL",
    "EXIT_CONFIG",
    "EXIT_FAILED_LINES",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CLIError",
    "add_config_argument",
    "load_models",
    "pick_model",
    "typed_value",
]

# The documented exit codes (README, "The llmplug command").
EXIT_OK = 0
EXIT_FAILED_LINES = 1  # batch: the run ended, and some requests ended as error lines
EXIT_USAGE = 2  # bad arguments or an unreadable input file (argparse uses 2 as well)
EXIT_CONFIG = 3  # provider.json missing or bad, unknown model, a needed plugin not installed
EXIT_CALL = 4  # chat/models: the call to the provider failed
EXIT_INTERRUPTED = 130  # Ctrl-C


class CLIError(Exception):
    """An error the command reports as one line and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def fail(message: str, code: int) -> NoReturn:
    raise CLIError(message, code)


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        default=os.environ.get("LLMPLUG_CONFIG", "provider.json"),
        help="provider.json (default: $LLMPLUG_CONFIG, else ./provider.json)",
    )


def load_models(path: str, redis: str | None = None) -> Models[LLMInterface]:
    """The models of ``path``; with ``redis``, each model without a ``rate_limit_backend`` of its
    own shares its budget and key health through that Redis (llmplug-redis)."""
    from llmplug._interfaces._interface import OpenAICompatible

    if not os.path.exists(path):
        fail(f"{path}: no such provider file (give one with -c)", EXIT_CONFIG)
    try:
        if redis is None:
            return OpenAICompatible.load_from_json_file(path)  # type: ignore[return-value]
        with open(path, "rb") as f:
            data = msgspec.json.decode(f.read())
        for entries in data.values() if isinstance(data, dict) else ():
            for entry in entries if isinstance(entries, list) else ():
                if isinstance(entry, dict):
                    entry.setdefault("rate_limit_backend", {"kind": "redis", "url": redis})
        return OpenAICompatible.load_from_dict(data, source=path)  # type: ignore[return-value]
    except msgspec.DecodeError as exc:
        fail(f"{path}: not valid JSON: {exc}", EXIT_CONFIG)
    except ConfigError as exc:
        fail(exc.message, EXIT_CONFIG)


def pick_model(models: Models[LLMInterface], name: str, path: str) -> LLMInterface | ModelGroup:
    """``provider/model`` (the model's own name may hold slashes), a model name that only
    one provider has, or the name of a group of the file's ``"groups"``."""
    provider, _, model = name.partition("/")
    if model and provider in models and model in models[provider]:
        return models[provider][model]
    found: list[LLMInterface | ModelGroup] = [m[name] for m in models.values() if name in m]
    if name in models.groups:
        found.append(models.groups[name])
    if len(found) == 1:
        return found[0]
    known = (
        ", ".join([*(f"{p}/{m}" for p, ms in models.items() for m in ms), *models.groups]) or "none"
    )
    if len(found) > 1:
        fail(f"model {name!r} is offered by several providers: say provider/model ({known})", 3)
    fail(f"{path}: no model {name!r} (known: {known})", EXIT_CONFIG)


def typed_value(text: str) -> Any:
    """``--param k=v``: JSON when it parses (numbers, booleans, null, lists, objects), else the
    text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            fail(f"--param wants key=value, got {item!r}", EXIT_USAGE)
        params[key] = typed_value(value)
    return params


def err(message: str) -> None:
    # Every error the command prints passes here: a URL in it (a provider.json base_url, a
    # --redis URL, one in a plugin's exception) loses its secrets.
    print(f"llmplug: error: {redact_urls(message)}", file=sys.stderr, flush=True)

"""provider.json's ``"groups"``: model groups built on the file's own interfaces.

    "groups": {"fast-llama": {"members": ["together/llama-3", "groq/llama-3"],
                              "strategy": "least_loaded", "fallbacks": ["openrouter/llama-3"],
                              "context_window_fallbacks": ["openai/gpt-4.1"]}}

A member is ``provider/model`` of the same file; a fallback is that or another group's name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from llmplug._vocab._errors import ConfigError

from ._convert import convert

if TYPE_CHECKING:
    from ._group import ModelGroup
    from ._interface import LLMInterface

__all__ = ["GROUPS", "Models", "load_groups"]

#: The top-level key of provider.json that holds groups rather than a provider.
GROUPS = "groups"

IfaceT = TypeVar("IfaceT", bound="LLMInterface")


class Models(dict[str, dict[str, IfaceT]], Generic[IfaceT]):
    """What loading a provider.json returns: ``{provider: {model: interface}}`` as before,
    plus ``groups``, the file's model groups by name (empty without a ``"groups"`` key)."""

    groups: dict[str, ModelGroup]

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.groups = {}


class _Group(msgspec.Struct, forbid_unknown_fields=True):
    members: list[str]
    strategy: str = "weighted"
    weights: list[float] | None = None
    fallbacks: list[str] = msgspec.field(default_factory=list)
    context_window_fallbacks: list[str] = msgspec.field(default_factory=list)
    failure_threshold: int = 3
    cooldown: float = 30.0
    member_wait_timeout: float = 60.0
    cache: dict[str, Any] | bool | None = None


def load_groups(
    models: Models[IfaceT], raw: Any, source: str, options: Mapping[str, Any]
) -> dict[str, ModelGroup]:
    from ._group import ModelGroup

    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{source}: field 'groups': must be an object of groups by name", field="groups"
        )
    specs = {name: convert(spec, _Group, f"{source}: group {name!r}") for name, spec in raw.items()}
    built: dict[str, ModelGroup] = {}
    making: list[str] = []

    def interface(ref: str, where: str, field: str) -> LLMInterface:
        provider, _, model = ref.partition("/")
        if model and model in models.get(provider, {}):
            return models[provider][model]
        known = ", ".join(f"{p}/{m}" for p, ms in models.items() for m in ms) or "none"
        raise ConfigError(
            f"{where}: field {field!r}: no model {ref!r} in this file (known: {known})",
            field=field,
        )

    def group(name: str, at: str, field: str | None) -> ModelGroup:
        """The group ``name``, named as a fallback ``at`` (the group naming it) in ``field``."""
        if name in built:
            return built[name]
        if name in making:
            cycle = " -> ".join([*making[making.index(name) :], name])
            raise ConfigError(
                f"{at}: field {field!r}: groups fall back on each other in a cycle: {cycle}",
                field=field,
            )
        making.append(name)
        spec, where = specs[name], f"{source}: group {name!r}"
        members = [interface(ref, where, f"members[{i}]") for i, ref in enumerate(spec.members)]
        chains = []
        for chain_field in ("fallbacks", "context_window_fallbacks"):
            chain: list[Any] = []
            for i, ref in enumerate(getattr(spec, chain_field)):
                at = f"{chain_field}[{i}]"
                chain.append(
                    group(ref, where, at)
                    if ref in specs and "/" not in ref
                    else interface(ref, where, at)
                )
            chains.append(chain)
        try:
            made = ModelGroup(
                members,
                name=name,
                strategy=spec.strategy,
                weights=spec.weights,
                fallbacks=chains[0],
                context_window_fallbacks=chains[1],
                failure_threshold=spec.failure_threshold,
                cooldown=spec.cooldown,
                member_wait_timeout=spec.member_wait_timeout,
                cache=spec.cache,
                registry=options.get("registry"),
            )
        except ConfigError as exc:
            at = f"{where}: field {exc.field!r}" if exc.field else where
            message = exc.message.removeprefix(f"group {name!r}: ")  # the file's where says it
            raise ConfigError(f"{at}: {message}", field=exc.field) from None
        making.pop()
        built[name] = made
        return made

    for name in specs:
        group(name, f"{source}: group {name!r}", None)
    return built

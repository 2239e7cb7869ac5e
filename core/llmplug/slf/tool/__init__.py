"""SimpleLLMFunc's ``SimpleLLMFunc.tool``: ``@tool``, and ``Tool`` to subclass."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from llmplug._decorators._tool import PromptInjectionBuilder, ToolFunction
from llmplug.slf._decorators import tool

__all__ = ["Tool", "tool"]


class Tool:
    """SimpleLLMFunc's tool class: subclass it with an ``async def run(self, ...)`` (or pass
    ``func``). In a toolkit it is the same as ``@tool`` on ``run``: its parameters, typed,
    are what the model fills."""

    def __init__(
        self,
        name: str,
        description: str,
        func: Callable[..., Awaitable[Any]] | None = None,
        best_practices: Sequence[str] | None = None,
        prompt_injection_builder: PromptInjectionBuilder | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.func = func
        self.best_practices = list(best_practices or ())
        self.prompt_injection_builder = prompt_injection_builder

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        if self.func is None:
            raise NotImplementedError(f"tool {self.name!r}: subclass Tool with a run method")
        return await self.func(*args, **kwargs)

    def as_tool_function(self) -> ToolFunction[..., Any]:
        """The llmplug tool this one is, as a toolkit takes it."""
        fn = self.func if self.func is not None and type(self).run is Tool.run else self.run
        made: ToolFunction[..., Any] = ToolFunction(
            fn, self.name, self.description, self.best_practices, self.prompt_injection_builder
        )
        made.simplellmfunc_injection = True
        return made

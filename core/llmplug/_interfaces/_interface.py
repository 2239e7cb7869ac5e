"""The interfaces users hold: ``OpenAICompatible`` and the machinery every wire format shares."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from llmplug._engine._pipeline import Pipeline
from llmplug._engine._policy import RetryPolicy
from llmplug._engine._registry import Registry, default_registry
from llmplug._engine._wrap import CallWrapper, check_cache_options, wrapper_of
from llmplug._limits._bucket import TokenBucket
from llmplug._limits._keys import APIKeyPool
from llmplug._vocab._call import Call
from llmplug._vocab._errors import ConfigError
from llmplug._vocab._inputs import MessagesInput, ToolsInput, as_messages, as_tools
from llmplug._vocab._pricing import Pricing, as_pricing
from llmplug._vocab._redact import redact_url
from llmplug._vocab._types import Completion, Message, StreamEvent
from llmplug._vocab._usage import UsageTracker

if TYPE_CHECKING:
    from ._group_config import Models

__all__ = [
    "DEFAULT_CONTEXT_WINDOW",
    "LLMInterface",
    "LLM_Interface",
    "OpenAICompatible",
    "OpenAIResponsesCompatible",
]

DEFAULT_CONTEXT_WINDOW = 200_000
"""The context window assumed when none is given (SimpleLLMFunc's placeholder too)."""


class LLMInterface:
    """One model at one provider: keys, rate limit, retries, and a wire format plugin.

    Subclasses only pick the default wire format; everything else is shared."""

    default_wire: ClassVar[str] = "openai-chat"

    def __init__(
        self,
        api_key_pool: APIKeyPool,
        model_name: str,
        base_url: str,
        max_retries: int = 5,
        retry_delay: float = 1.0,
        rate_limit_capacity: float = 10,
        rate_limit_refill_rate: float = 1.0,
        context_window: int | None = DEFAULT_CONTEXT_WINDOW,
        *,
        wire: str | None = None,
        api_params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: Any = None,
        timeout: Any = None,
        total_timeout: float | None = 1800.0,
        tokens_per_minute: int | None = None,
        key_wait_timeout: float = 60.0,
        limiter: object | None = None,
        registry: Registry | None = None,
        pricing: Pricing | Mapping[str, float] | None = None,
        rate_limit_backend: Mapping[str, Any] | None = None,
        cache: Mapping[str, Any] | bool | None = None,
    ) -> None:
        if not isinstance(api_key_pool, APIKeyPool):
            raise ConfigError(
                f"api_key_pool must be an APIKeyPool, got {type(api_key_pool).__name__}"
            )
        if not isinstance(model_name, str) or not model_name:
            raise ConfigError("model_name must be a non-empty string")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must be an http(s) URL, got {base_url!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if not isinstance(retry_delay, (int, float)) or retry_delay < 0:
            raise ConfigError(f"retry_delay must be >= 0, got {retry_delay!r}")
        if context_window is None:
            context_window = DEFAULT_CONTEXT_WINDOW
        if (
            isinstance(context_window, bool)
            or not isinstance(context_window, int)
            or context_window <= 0
        ):
            raise ConfigError(f"context_window must be a positive int, got {context_window!r}")
        self.key_pool = api_key_pool
        self.model_name = model_name
        # A query in the base_url (?api-version= for Azure, ?key= for Google-style APIs) goes
        # on every request's URL, after the wire's path: wires are handed the base_url
        # without it (Call.base_url), and the pipeline puts it back (Pipeline.url_query).
        path, _, self._url_query = base_url.partition("?")
        self._call_base_url = path.rstrip("/")
        self.base_url = self._call_base_url + ("?" + self._url_query if self._url_query else "")
        self.max_retries = max_retries
        self.retry_delay = float(retry_delay)
        self.context_window = context_window
        self.wire = wire or self.default_wire
        self.api_params: dict[str, Any] = dict(api_params or {})
        self.headers: dict[str, str] = dict(headers or {})
        self.rate_limiter: object = (
            limiter
            if limiter is not None
            else TokenBucket(rate_limit_capacity, rate_limit_refill_rate)
        )
        if tokens_per_minute is not None and (
            isinstance(tokens_per_minute, bool)
            or not isinstance(tokens_per_minute, int)
            or tokens_per_minute <= 0
        ):
            raise ConfigError(
                f"tokens_per_minute must be a positive int, got {tokens_per_minute!r}"
            )
        if total_timeout is not None and not total_timeout > 0:
            raise ConfigError(f"total_timeout must be > 0 or None, got {total_timeout!r}")
        #: The tokens-per-minute budget (None: not limited).
        self.token_limiter: Any = (
            TokenBucket(tokens_per_minute, tokens_per_minute / 60.0) if tokens_per_minute else None
        )
        if rate_limit_backend is not None:
            if limiter is not None:
                raise ConfigError("limiter and rate_limit_backend name two limiters: give one")
            from llmplug._limits._backend import build_backend

            backend = build_backend(
                rate_limit_backend,
                pool=api_key_pool,
                model=model_name,
                capacity=rate_limit_capacity,
                refill_rate=rate_limit_refill_rate,
                tokens_per_minute=tokens_per_minute,
            )
            if backend is not None:
                self.rate_limiter = backend.limiter
                self.token_limiter = backend.token_limiter
        self.total_timeout = total_timeout
        #: Prices per million tokens: each Completion's ``cost`` and ``usage.cost`` (None: none).
        self.pricing: Pricing | None = as_pricing(pricing)
        self._registry = registry
        # Imported with the first interface, not with llmplug: it brings asyncio (see
        # tests/core/test_import.py).
        from llmplug._engine._transport import Transport

        self._transport = Transport(http_client, timeout)
        self._timeout = timeout
        self._key_wait_timeout = key_wait_timeout
        self._pipeline: Pipeline | None = None
        #: Token usage of this interface: ``usage.last`` and running totals.
        self.usage = UsageTracker()
        # Set when the provider rejected json_schema structured output (see llm_function).
        self.json_schema_unsupported = False
        self._check_plugins()
        #: What wraps every call (the ``cache`` plugin's response cache), or None.
        self.call_wrapper: CallWrapper | None = wrapper_of(
            self._registry or default_registry(), "cache", cache, self
        )

    def _check_plugins(self) -> None:
        """A wire or key strategy no plugin provides fails here, not at the first call; asked in
        the pipeline's order (select_key, then build_request)."""
        registry = self._registry or default_registry()
        probe = Call(
            provider=self.provider_id,
            model=self.model_name,
            wire=self.wire,
            base_url=self._call_base_url,
            messages=[Message(role="user", content="")],
            headers=self.headers,
        )
        pool = self.key_pool
        strategy = pool.strategy
        registry.check_key_strategy(pool)
        if not registry.has_key_strategy(
            {"name": strategy, **pool.strategy_settings}, probe, keys=len(pool)
        ):
            raise ConfigError(
                f"key_strategy must be one a plugin provides: no plugin provides the key "
                f"strategy {strategy!r} (`llmplug plugins` lists the installed plugins)"
            )
        if not registry.has_wire(self.wire, probe):
            raise ConfigError(
                f"wire must be one a plugin provides: no plugin provides the wire format "
                f"{self.wire!r} (`llmplug plugins` lists the installed plugins)"
            )

    @property
    def provider_id(self) -> str:
        return self.key_pool.provider_id

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider_id={self.provider_id!r}, "
            f"model_name={self.model_name!r}, "
            f"base_url={redact_url(self.base_url)!r}, wire={self.wire!r}, "
            f"keys={len(self.key_pool)})"
        )

    @property
    def registry(self) -> Registry:
        """The plugins this interface's calls use."""
        return self.pipeline.registry

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            self._pipeline = Pipeline(
                registry=self._registry or default_registry(),
                pool=self.key_pool,
                limiter=self.rate_limiter,
                token_limiter=self.token_limiter,
                transport=self._transport,
                provider=self.provider_id,
                model=self.model_name,
                policy=RetryPolicy(
                    self.key_pool, self.max_retries, self.retry_delay, self._key_wait_timeout
                ),
                usage=self.usage,
                timeout=self._timeout,
                total_timeout=self.total_timeout,
                pricing=self.pricing,
                url_query=self._url_query,
            )
        return self._pipeline

    # -- calls ---------------------------------------------------------------------------------

    def _call(
        self, messages: MessagesInput, tools: ToolsInput, params: dict[str, Any], stream: bool
    ) -> Call:
        # SimpleLLMFunc's chat(stream=False) and chat_stream(stream=True) say what the method
        # does anyway; only a contradiction is an error.
        if bool(params.pop("stream", stream)) is not stream:
            raise ConfigError("chat() never streams and chat_stream() always does: drop 'stream'")
        merged = {**self.api_params, **params} if self.api_params else params
        # Popped after merging: wherever they come from (a call keyword, a decorator's, _llm_params,
        # api_params as SimpleLLMFunc handed them to the openai SDK), they are never sent.
        max_retries = merged.pop("max_retries", None)
        timeout = merged.pop("timeout", None)
        total_timeout = merged.pop("total_timeout", None)
        session_id = merged.pop("session_id", None)
        trace_id = merged.pop("trace_id", None)
        cache = merged.pop("cache", None)
        cache_ttl = merged.pop("cache_ttl", None)
        check_cache_options(cache, cache_ttl)
        if max_retries is not None and (
            isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0
        ):
            raise ConfigError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if total_timeout is not None and not total_timeout > 0:
            raise ConfigError(f"total_timeout must be > 0 or None, got {total_timeout!r}")
        if session_id is not None and not isinstance(session_id, str):
            raise ConfigError(f"session_id must be a str, got {type(session_id).__name__}")
        return Call(
            provider=self.provider_id,
            model=self.model_name,
            wire=self.wire,
            base_url=self._call_base_url,
            messages=as_messages(messages),
            tools=as_tools(tools),
            params=merged,
            stream=stream,
            headers=self.headers,
            timeout=timeout,
            total_timeout=total_timeout,
            max_retries=max_retries,
            session_id=session_id,
            trace_id=None if trace_id is None else str(trace_id),
            cache=cache,
            cache_ttl=cache_ttl,
        )

    async def chat(
        self, messages: MessagesInput, tools: ToolsInput = None, **params: Any
    ) -> Completion:
        """Send one request (retrying what is worth retrying) and return the whole answer.

        ``messages`` are OpenAI-style dicts, :class:`Message` objects or one user string;
        ``params`` (temperature, max_tokens, ...) go into the request body as they are, over
        the interface's ``api_params``, except the client options ``max_retries``,
        ``timeout``, ``total_timeout``, ``session_id``, ``trace_id``, ``cache`` and
        ``cache_ttl``, which are honoured and never sent."""
        call = self._call(messages, tools, params, False)
        if self.call_wrapper is not None:
            return await self.call_wrapper.complete(call, self.pipeline.complete)
        return await self.pipeline.complete(call)

    def chat_stream(
        self, messages: MessagesInput, tools: ToolsInput = None, **params: Any
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream the answer: text, reasoning and tool-call deltas, then one :class:`Done`
        carrying the whole :class:`Completion`. Nothing is retried once an event was yielded."""
        call = self._call(messages, tools, params, True)
        if self.call_wrapper is not None:
            return self.call_wrapper.stream(call, self.pipeline.stream)
        return self.pipeline.stream(call)

    # -- rate limit (SimpleLLMFunc's names) ----------------------------------------------------

    def get_rate_limit_status(self) -> dict[str, Any]:
        """``{"available", "capacity", "refill_rate", "waiting"}`` of the request limiter, and
        under ``"tokens_per_minute"`` the same for the token budget when there is one."""
        status = getattr(self.rate_limiter, "status", None)
        out = dict(status()) if callable(status) else {}
        if self.token_limiter is not None:
            out["tokens_per_minute"] = self.token_limiter.status()
        return out

    def reset_rate_limit(self) -> None:
        """Refill the limiters to capacity."""
        for limiter in (self.rate_limiter, self.token_limiter):
            reset = getattr(limiter, "reset", None)
            if callable(reset):
                reset()

    # -- lifecycle -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the HTTP client this interface made (never one you passed in)."""
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- configuration files -------------------------------------------------------------------

    @classmethod
    def load_from_json_file(cls, json_path: str | os.PathLike[str], **options: Any) -> Models[Self]:
        """Load a SimpleLLMFunc-style ``provider.json``: ``{provider: {model: interface}}``,
        with the file's model groups (its ``"groups"`` key) in the result's ``groups``.

        ``options`` (``registry``, ``http_client``, ``timeout``, ...) go to every interface."""
        from ._config import load_file

        return load_file(cls, json_path, options)

    @classmethod
    def load_from_dict(
        cls, data: Mapping[str, Any], *, source: str = "<dict>", **options: Any
    ) -> Models[Self]:
        """Like :meth:`load_from_json_file`, from already parsed data."""
        from ._config import load_data

        return load_data(cls, data, source, options)


LLM_Interface = LLMInterface
"""SimpleLLMFunc's name for the interfaces' base class."""


class OpenAICompatible(LLMInterface):
    """Any server that speaks the OpenAI Chat Completions API
    (``POST {base_url}/chat/completions``)."""

    default_wire = "openai-chat"


class OpenAIResponsesCompatible(LLMInterface):
    """Any server that speaks the OpenAI Responses API (``POST {base_url}/responses``).

    The same calls, messages, tools and events as :class:`OpenAICompatible`: system messages
    become ``instructions``, ``reasoning_effort`` becomes ``reasoning.effort``, ``max_tokens``
    becomes ``max_output_tokens``."""

    default_wire = "openai-responses"

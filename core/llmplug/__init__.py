"""llmplug: one small, fast, correct interface to every LLM provider, open to plugins."""

from ._bucket import TokenBucket
from ._call import Call, HTTPRequest
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    InternalServerError,
    LLMError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseError,
    StreamError,
    UnprocessableEntityError,
)
from ._hookspecs import hookimpl
from ._interface import LLMInterface, OpenAICompatible, OpenAIResponsesCompatible
from ._keys import APIKeyPool, KeyLease, fingerprint
from ._parser import StreamParser
from ._registry import (
    PluginInfo,
    PluginLoadWarning,
    Registry,
    default_registry,
    set_default_registry,
)
from ._sse import SSEDecoder, SSEEvent
from ._types import (
    Completion,
    ContentPart,
    Done,
    FunctionCall,
    ImagePart,
    ImageURL,
    Message,
    MessageToolCall,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIKeyPool",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "Call",
    "Completion",
    "ConfigError",
    "ContentPart",
    "Done",
    "FunctionCall",
    "HTTPRequest",
    "ImagePart",
    "ImageURL",
    "InternalServerError",
    "KeyLease",
    "LLMError",
    "LLMInterface",
    "Message",
    "MessageToolCall",
    "NotFoundError",
    "OpenAICompatible",
    "OpenAIResponsesCompatible",
    "PermissionDeniedError",
    "PluginInfo",
    "PluginLoadWarning",
    "RateLimitError",
    "ReasoningDelta",
    "Registry",
    "ResponseError",
    "SSEDecoder",
    "SSEEvent",
    "StreamError",
    "StreamEvent",
    "StreamParser",
    "TextDelta",
    "TextPart",
    "TokenBucket",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "UnprocessableEntityError",
    "Usage",
    "__version__",
    "default_registry",
    "fingerprint",
    "hookimpl",
    "set_default_registry",
]

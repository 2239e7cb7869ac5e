"""llmplug: one small, fast, correct interface to every LLM provider, open to plugins."""

from ._decorators._chat import async_llm_chat, llm_chat
from ._decorators._chat_agent import ChatAgent, HistoryList
from ._decorators._compact import Compaction
from ._decorators._events import (
    AssistantReply,
    ChatDone,
    ChatEvent,
    CompactionEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from ._decorators._function import OutputValidationError, async_llm_function, llm_function
from ._decorators._multimodal import (
    ImgPath,
    ImgUrl,
    MultimodalContent,
    MultimodalList,
    Text,
    UserChatMessage,
)
from ._decorators._tool import ToolFunction, ToolResult, tool
from ._decorators._turns import ToolLoopError
from ._engine._hookspecs import hookimpl
from ._engine._observe import AttemptInfo, CallInfo, RunInfo, ToolInfo
from ._engine._probe import ProbedRequest
from ._engine._registry import (
    PluginInfo,
    PluginLoadWarning,
    Registry,
    default_plugins,
    default_registry,
    set_default_registry,
)
from ._engine._wrap import CallWrapper
from ._interfaces._group import GroupCall, Member, ModelGroup, NoMemberAvailableError
from ._interfaces._group_config import Models
from ._interfaces._interface import (
    DEFAULT_CONTEXT_WINDOW,
    LLM_Interface,
    LLMInterface,
    OpenAICompatible,
    OpenAIResponsesCompatible,
)
from ._limits._bucket import TokenBucket
from ._limits._keys import APIKeyPool, KeyHealth, KeyLease, SharedKeyState, fingerprint
from ._vocab._call import Call, HTTPRequest
from ._vocab._classify import ERROR_KINDS, ErrorInfo, ErrorKind
from ._vocab._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    InternalServerError,
    LLMError,
    NoKeyAvailableError,
    NotFoundError,
    PermissionDeniedError,
    PluginError,
    RateLimitError,
    ResponseError,
    StreamError,
    UnprocessableEntityError,
)
from ._vocab._pricing import Pricing
from ._vocab._ratelimits import RateLimits
from ._vocab._redact import redact_url, redact_urls
from ._vocab._types import (
    Completion,
    ContentPart,
    Done,
    FunctionCall,
    ImagePart,
    ImageURL,
    Message,
    MessageToolCall,
    ProviderData,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._vocab._usage import UsageTracker
from ._wire._ndjson import NDJSONDecoder
from ._wire._parser import Framing, StreamParser
from ._wire._sse import SSEDecoder, SSEEvent

__version__ = "0.1.0"
"""The installed llmplug's version."""

__all__ = [
    "DEFAULT_CONTEXT_WINDOW",
    "ERROR_KINDS",
    "APIConnectionError",
    "APIKeyPool",
    "APIStatusError",
    "APITimeoutError",
    "AssistantReply",
    "AttemptInfo",
    "AuthenticationError",
    "BadRequestError",
    "Call",
    "CallInfo",
    "CallWrapper",
    "ChatAgent",
    "ChatDone",
    "ChatEvent",
    "Compaction",
    "CompactionEvent",
    "Completion",
    "ConfigError",
    "ContentPart",
    "Done",
    "ErrorInfo",
    "ErrorKind",
    "Framing",
    "FunctionCall",
    "GroupCall",
    "HTTPRequest",
    "HistoryList",
    "ImagePart",
    "ImageURL",
    "ImgPath",
    "ImgUrl",
    "InternalServerError",
    "KeyHealth",
    "KeyLease",
    "LLMError",
    "LLMInterface",
    "LLM_Interface",
    "Member",
    "Message",
    "MessageToolCall",
    "ModelGroup",
    "Models",
    "MultimodalContent",
    "MultimodalList",
    "NDJSONDecoder",
    "NoKeyAvailableError",
    "NoMemberAvailableError",
    "NotFoundError",
    "OpenAICompatible",
    "OpenAIResponsesCompatible",
    "OutputValidationError",
    "PermissionDeniedError",
    "PluginError",
    "PluginInfo",
    "PluginLoadWarning",
    "Pricing",
    "ProbedRequest",
    "ProviderData",
    "RateLimitError",
    "RateLimits",
    "ReasoningDelta",
    "Registry",
    "ResponseError",
    "RunInfo",
    "SSEDecoder",
    "SSEEvent",
    "SharedKeyState",
    "StreamError",
    "StreamEvent",
    "StreamParser",
    "Text",
    "TextDelta",
    "TextPart",
    "TokenBucket",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallEvent",
    "ToolFunction",
    "ToolInfo",
    "ToolLoopError",
    "ToolResult",
    "ToolResultEvent",
    "UnprocessableEntityError",
    "Usage",
    "UsageTracker",
    "UserChatMessage",
    "__version__",
    "async_llm_chat",
    "async_llm_function",
    "default_plugins",
    "default_registry",
    "fingerprint",
    "hookimpl",
    "llm_chat",
    "llm_function",
    "redact_url",
    "redact_urls",
    "set_default_registry",
    "tool",
]

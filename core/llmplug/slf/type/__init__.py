"""SimpleLLMFunc's ``SimpleLLMFunc.type``: llmplug's multimodal and history types."""

from llmplug import (
    HistoryList,
    ImgPath,
    ImgUrl,
    MultimodalContent,
    MultimodalList,
    Text,
    UserChatMessage,
)

__all__ = [
    "HistoryList",
    "ImgPath",
    "ImgUrl",
    "MultimodalContent",
    "MultimodalList",
    "Text",
    "UserChatMessage",
]

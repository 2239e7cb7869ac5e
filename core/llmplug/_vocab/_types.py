"""Neutral types: what a call is made of and what comes back, whatever the wire format.

Messages keep the OpenAI Chat shape because that is what users already hold in their histories;
wire plugins translate from it. Results are flat and small.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "Completion",
    "ContentPart",
    "Done",
    "FunctionCall",
    "ImagePart",
    "ImageURL",
    "Message",
    "MessageToolCall",
    "ProviderData",
    "ReasoningDelta",
    "StreamEvent",
    "TextDelta",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "events_of",
]


class TextPart(msgspec.Struct, tag="text", tag_field="type", frozen=True, omit_defaults=True):
    """A piece of text inside a message's content. ``cache_control`` (Anthropic's prompt-cache
    marker, which OpenRouter and LiteLLM also take on Chat) is kept and sent when given."""

    text: str
    cache_control: dict[str, Any] | None = None


class ImageURL(msgspec.Struct, omit_defaults=True, frozen=True):
    """Where an image is: an https URL or a ``data:`` URL."""

    url: str
    detail: str | None = None


class ImagePart(msgspec.Struct, tag="image_url", tag_field="type", frozen=True, omit_defaults=True):
    """An image inside a user message's content (``cache_control`` as on :class:`TextPart`)."""

    image_url: ImageURL
    cache_control: dict[str, Any] | None = None


ContentPart = TextPart | ImagePart
"""A part of a message's content: text or an image."""


class FunctionCall(msgspec.Struct, frozen=True):
    """The function half of an assistant message's tool call; ``arguments`` is a JSON string."""

    name: str
    arguments: str


ProviderData = dict[str, Any]
"""Provider data: opaque values a wire keeps with a message or a tool call and reads back when
the conversation goes on (Gemini's ``thoughtSignature``, Anthropic's signed thinking blocks,
the Responses API's ``encrypted_content``), by wire name: ``{"gemini": {...}}``. Each wire
reads its own entry only, so a history can go to another wire (another member of a group),
which leaves it out of its requests. JSON values only: it is saved with a history."""


class MessageToolCall(msgspec.Struct, frozen=True, omit_defaults=True):
    """A tool call as it sits in an assistant message of a history. ``provider_data`` is what
    its wire keeps with it (see :data:`ProviderData`), left out of the JSON when None."""

    id: str
    function: FunctionCall
    # A factory, not a plain default: omit_defaults leaves out plain defaults, and the Chat
    # wire (and a saved history) must always say "type": "function".
    type: Literal["function"] = msgspec.field(default_factory=lambda: "function")
    provider_data: ProviderData | None = None


class Message(msgspec.Struct, omit_defaults=True, frozen=True):
    """One chat message, in the OpenAI Chat Completions shape (roles system, developer, user,
    assistant, tool)."""

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None
    #: A prompt-cache marker for the whole message (Anthropic's ``{"type": "ephemeral"}``):
    #: wires that know it send it, the Chat wire sends it as it is (OpenRouter, LiteLLM).
    cache_control: dict[str, Any] | None = None
    #: An assistant message's provider data (see :data:`ProviderData`), from
    #: :meth:`Completion.to_message`.
    provider_data: ProviderData | None = None

    @property
    def text(self) -> str:
        """The message's text parts joined, whatever the content's form."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


class Tool(msgspec.Struct, omit_defaults=True, frozen=True):
    """A function the model may call; ``parameters`` is a JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool | None = None


class ToolCall(msgspec.Struct, frozen=True, omit_defaults=True):
    """A tool call the model made; ``arguments`` is the JSON text exactly as the model wrote it.
    ``provider_data`` is what its wire keeps with it (see :data:`ProviderData`)."""

    id: str
    name: str
    arguments: str
    provider_data: ProviderData | None = None

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON (``{}`` for an empty string)."""
        return msgspec.json.decode(self.arguments) if self.arguments.strip() else {}


class Usage(msgspec.Struct, frozen=True):
    """Token counts of one response; cached and reasoning tokens are parts of input and output."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        """Field by field: the usage of several calls together."""
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )


class Completion(msgspec.Struct, frozen=True):
    """The whole answer of one call.

    ``cost`` is what the call cost when the interface has a ``pricing`` and the server sent
    usage, else None; ``request_id`` is the server's ``x-request-id`` header, when it sent one;
    ``response_id`` is the id the reply's body gives the response (``chatcmpl-...``,
    ``resp_...``, ``msg_...``), streamed or not. ``cached`` is True for an answer a response
    cache gave (no request was made): ``usage`` is the stored one, ``cost`` is 0 and
    ``saved_cost`` what the answer cost when it was paid for (None when unpriced).
    ``provider_data`` is what the wire keeps with the assistant turn (see
    :data:`ProviderData`); :meth:`to_message` carries it, and each tool call's own, into the
    history."""

    text: str = ""
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    reasoning: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    refusal: str | None = None
    model: str | None = None
    raw: Any = None
    cost: float | None = None
    request_id: str | None = None
    response_id: str | None = None
    provider_data: ProviderData | None = None
    cached: bool = False
    saved_cost: float | None = None

    def to_message(self) -> Message:
        """The assistant message to append to a history so the conversation can go on."""
        calls = [
            MessageToolCall(
                id=c.id,
                function=FunctionCall(name=c.name, arguments=c.arguments),
                provider_data=c.provider_data,
            )
            for c in self.tool_calls
        ]
        return Message(
            role="assistant",
            content=self.text or None,
            tool_calls=calls or None,
            provider_data=self.provider_data,
        )


class TextDelta(msgspec.Struct, tag="text", frozen=True):
    """A piece of the reply's text, as it streams."""

    text: str


class ReasoningDelta(msgspec.Struct, tag="reasoning", frozen=True):
    """A piece of the model's reasoning text (or reasoning summary), as it streams."""

    text: str


class ToolCallDelta(msgspec.Struct, tag="tool_call", frozen=True):
    """A fragment of a tool call, joined by ``index``: ``id`` and ``name`` come with the first
    fragment of an index that has them (usually its first; a server may send argument pieces
    before them), and the ``arguments`` pieces join to the call's arguments in ``Done``."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Done(msgspec.Struct, tag="done", frozen=True):
    """The last event of every stream, carrying the whole answer."""

    completion: Completion


StreamEvent = TextDelta | ReasoningDelta | ToolCallDelta | Done
"""What ``chat_stream()`` yields: text, reasoning and tool-call fragments as they arrive, and last
one ``Done`` with the whole ``Completion``."""


def events_of(c: Completion) -> list[StreamEvent]:
    """The events that stream a whole answer at once (as a server that answered a stream with
    one body): its reasoning, its text, each tool call whole, then ``Done(c)``."""
    events: list[StreamEvent] = []
    if c.reasoning:
        events.append(ReasoningDelta(c.reasoning))
    if c.text:
        events.append(TextDelta(c.text))
    for i, tc in enumerate(c.tool_calls):
        events.append(ToolCallDelta(index=i, id=tc.id, name=tc.name, arguments=tc.arguments))
    events.append(Done(c))
    return events

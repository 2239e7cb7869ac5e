"""Mapping the neutral call (OpenAI Chat-shaped messages) onto an Anthropic Messages request."""

from __future__ import annotations

from typing import Any

import msgspec

from llmplug import Call, HTTPRequest, ImagePart, Message, TextPart, Tool
from llmplug.wire import provider_data_of

#: The wire's name, which keys its provider data.
WIRE = "anthropic-messages"

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "THINKING_BUDGETS",
    "answer_tool_name",
    "build_messages_request",
]

ANTHROPIC_VERSION = "2023-06-01"
#: The API requires max_tokens; this is sent when the call gives none.
DEFAULT_MAX_TOKENS = 4096
#: reasoning_effort -> thinking.budget_tokens (1024 is the API's minimum; LiteLLM's mapping).
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}

_MAX_TOKENS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# Chat-only knobs with no Anthropic meaning, dropped rather than rejected by the server.
_DROPPED = ("stream_options", "parallel_tool_calls", "reasoning_effort", "response_format")
_CHOICES = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}
_decode = msgspec.json.decode
_encode = msgspec.json.Encoder().encode


def _image(p: ImagePart) -> dict[str, Any]:
    url = p.image_url.url
    source: dict[str, Any]
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        media_type = head[5:].split(";", 1)[0] or "image/png"
        source = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {"type": "url", "url": url}
    return {"type": "image", "source": source}


def _block(p: TextPart | ImagePart) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "text", "text": p.text} if isinstance(p, TextPart) else _image(p)
    if p.cache_control is not None:
        out["cache_control"] = p.cache_control
    return out


def _blocks(m: Message) -> list[dict[str, Any]]:
    """The message's content as blocks, with the message's own cache_control on the last one
    (where Anthropic puts a cache breakpoint)."""
    blocks: list[dict[str, Any]]
    if m.content is None or m.content == "":
        blocks = []
    elif isinstance(m.content, str):
        blocks = [{"type": "text", "text": m.content}]
    else:
        blocks = [_block(p) for p in m.content if not (isinstance(p, TextPart) and not p.text)]
    if m.cache_control is not None and blocks:
        blocks[-1] = {**blocks[-1], "cache_control": m.cache_control}
    return blocks


def _input(arguments: str) -> Any:
    # tool_use.input must be an object; a history holding broken arguments still goes out.
    try:
        value = _decode(arguments) if arguments.strip() else {}
    except (msgspec.DecodeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _system(messages: list[Message]) -> str | list[dict[str, Any]] | None:
    system = [m for m in messages if m.role in ("system", "developer")]
    if not system:
        return None
    cached = any(
        m.cache_control is not None
        or (isinstance(m.content, list) and any(p.cache_control is not None for p in m.content))
        for m in system
    )
    if not cached:
        return "\n\n".join(m.text for m in system)
    return [b for m in system for b in _blocks(m) if b["type"] == "text"]


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        # Tool results and the user text after them form one user turn; consecutive messages
        # of one role are one turn to Anthropic anyway, sent merged so no proxy has to.
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for m in messages:
        role = m.role
        if role in ("system", "developer"):
            continue
        if role == "tool":
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id or ""}
            if isinstance(m.content, list) and any(isinstance(p, ImagePart) for p in m.content):
                result["content"] = _blocks(m)
            else:
                result["content"] = m.text
                if m.cache_control is not None:
                    result["cache_control"] = m.cache_control
            add("user", [result])
        elif role == "assistant":
            # Signed thinking first, as the API gave it: it continues the turn's tool use.
            blocks = [*_kept_thinking(m), *_blocks(m)]
            for tc in m.tool_calls or ():
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": tc.id,
                        "name": tc.function.name,
                        "input": _input(tc.function.arguments),
                    }
                )
            if blocks:  # an empty assistant turn is refused by the API
                add("assistant", blocks)
        else:
            add("user", _blocks(m) or [{"type": "text", "text": ""}])
    for turn in out:
        content = turn["content"]
        if len(content) == 1 and content[0].keys() == {"type", "text"}:
            turn["content"] = content[0]["text"]  # the plain form, as most clients send it
    return out


def _tool(t: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": t.name, "input_schema": t.parameters}
    if t.description:
        out["description"] = t.description
    return out


def answer_tool_name(call: Call) -> str | None:
    """The forced tool that carries typed output, when the call asks for a json_schema
    ``response_format`` (Anthropic has none); the parser turns its input into the text."""
    fmt = call.params.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        return None
    name = spec.get("name")
    return name if isinstance(name, str) and name else "result"


def _kept_thinking(m: Message) -> list[dict[str, Any]]:
    """The thinking blocks this wire kept with an assistant message (its provider data)."""
    kept = provider_data_of(m, WIRE)
    blocks = kept.get("thinking") if isinstance(kept, dict) else None
    return [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else []


def _in_tool_loop(messages: list[Message]) -> bool:
    """Whether the call continues a tool use whose signed thinking the history lacks."""
    for m in reversed(messages):
        if m.role != "tool":
            return m.role == "assistant" and bool(m.tool_calls) and not _kept_thinking(m)
    return False


def _thinking(params: dict[str, Any], messages: list[Message]) -> dict[str, Any] | None:
    thinking = params.get("thinking")
    if thinking is None:
        effort = params.get("reasoning_effort")
        budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
        if budget is None:
            return None
        thinking = {"type": "enabled", "budget_tokens": budget}
    if _in_tool_loop(messages) and not isinstance(params.get("thinking"), dict):
        # The API wants the signed thinking block back before a tool_use it continues; a
        # history without it (from another wire, or written by hand) goes without thinking.
        return None
    return thinking if isinstance(thinking, dict) else None


def _params(body: dict[str, Any], call: Call) -> None:
    params = call.params
    for k, v in params.items():
        if v is None or k in _DROPPED or k == "thinking":
            continue
        if k in _MAX_TOKENS:
            body["max_tokens"] = v
        elif k == "stop":
            body["stop_sequences"] = [v] if isinstance(v, str) else v
        elif k == "tool_choice":
            body["tool_choice"] = _tool_choice(v)
        elif k == "user":
            body.setdefault("metadata", {})["user_id"] = v
        elif k == "metadata" and isinstance(v, dict):
            body["metadata"] = {**v, **body.get("metadata", {})}
        else:
            body[k] = v
    body.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    thinking = _thinking(params, call.messages)
    if thinking is not None:
        body["thinking"] = thinking
        budget = thinking.get("budget_tokens")
        most = body["max_tokens"]
        if isinstance(budget, int) and isinstance(most, int) and most <= budget:
            body["max_tokens"] = most + budget  # max_tokens counts the thinking too
    _answer_tool(body, call, thinking is not None)
    if params.get("parallel_tool_calls") is False and "tool_choice" in body:
        body["tool_choice"] = {**body["tool_choice"], "disable_parallel_tool_use": True}
    elif params.get("parallel_tool_calls") is False and "tools" in body:
        body["tool_choice"] = {"type": "auto", "disable_parallel_tool_use": True}


def _tool_choice(v: Any) -> Any:
    if isinstance(v, str):
        return _CHOICES.get(v, {"type": v})
    if isinstance(v, dict) and v.get("type") == "function":
        fn = v.get("function")
        name = fn.get("name") if isinstance(fn, dict) else v.get("name")
        return {"type": "tool", "name": name}
    return v


def _answer_tool(body: dict[str, Any], call: Call, thinking: bool) -> None:
    name = answer_tool_name(call)
    if name is None:
        return
    spec = call.params["response_format"]["json_schema"]
    tools = body.setdefault("tools", [])
    if any(t.get("name") == name for t in tools):
        return  # a tool of the user's has that name: theirs wins, typed output is asked in text
    others = bool(tools)
    tools.append(
        {
            "name": name,
            "description": spec.get("description")
            or "Give your final answer: call this tool with the answer as its input.",
            "input_schema": spec["schema"],
        }
    )
    if "tool_choice" in body:
        return
    if thinking:
        body["tool_choice"] = {"type": "auto"}  # thinking allows no forced tool
    else:
        body["tool_choice"] = {"type": "any"} if others else {"type": "tool", "name": name}


def build_messages_request(call: Call, key: str) -> HTTPRequest:
    body: dict[str, Any] = {"model": call.model}
    system = _system(call.messages)
    if system is not None:
        body["system"] = system
    body["messages"] = _messages(call.messages)
    if call.tools:
        body["tools"] = [_tool(t) for t in call.tools]
    if call.stream:
        body["stream"] = True
    _params(body, call)
    headers = {
        "x-api-key": key,
        "anthropic-version": ANTHROPIC_VERSION,
        "content-type": "application/json",
        "accept": "text/event-stream" if call.stream else "application/json",
    }
    # The interface's configured headers are applied over these by the core (a user can pin
    # another anthropic-version or add anthropic-beta).
    return HTTPRequest(url=call.base_url + "/messages", headers=headers, content=_encode(body))

"""Mapping the neutral call (OpenAI Chat-shaped messages) onto a Responses API request."""

from __future__ import annotations

from typing import Any

from llmplug import Call, HTTPRequest, ImagePart, Message, TextPart, Tool
from llmplug.wire import provider_data_of

__all__ = ["build_responses_request"]


# Chat-style names with a different home on the Responses API. Anything not listed here
# passes through as it is: the server's error then names what it does not know.
_MAX_TOKENS = ("max_tokens", "max_completion_tokens")


def _part(p: TextPart | ImagePart, role: str) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"type": "output_text" if role == "assistant" else "input_text", "text": p.text}
    out: dict[str, Any] = {"type": "input_image", "image_url": p.image_url.url}
    if p.image_url.detail is not None:
        out["detail"] = p.image_url.detail
    return out


def _input(messages: list[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    for m in messages:
        role = m.role
        if role in ("system", "developer"):
            instructions.append(m.text)
        elif role == "tool":
            # A tool's images go in the output itself: a list of input_text/input_image.
            output: Any = (
                [_part(p, role) for p in m.content]
                if isinstance(m.content, list) and any(isinstance(p, ImagePart) for p in m.content)
                else m.text
            )
            items.append(
                {"type": "function_call_output", "call_id": m.tool_call_id or "", "output": output}
            )
        elif role == "assistant":
            # The turn's reasoning goes back before its output, as the API gave it.
            kept = provider_data_of(m, "openai-responses")
            if isinstance(kept, dict) and isinstance(kept.get("reasoning"), list):
                items.extend(r for r in kept["reasoning"] if isinstance(r, dict))
            if m.content:
                parts = (
                    [{"type": "output_text", "text": m.content}]
                    if isinstance(m.content, str)
                    else [_part(p, role) for p in m.content]
                )
                items.append({"type": "message", "role": "assistant", "content": parts})
            for tc in m.tool_calls or ():
                items.append(
                    {
                        "type": "function_call",
                        "call_id": tc.id,
                        "name": tc.function.name,
                        "arguments": tc.function.arguments,
                    }
                )
        else:
            content: Any = (
                m.content
                if isinstance(m.content, str) or m.content is None
                else [_part(p, role) for p in m.content]
            )
            items.append({"role": role, "content": content if content is not None else ""})
    return ("\n\n".join(instructions) if instructions else None), items


def _tool(t: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "function", "name": t.name, "parameters": t.parameters}
    if t.description:
        out["description"] = t.description
    if t.strict is not None:
        out["strict"] = t.strict
    return out


def _params(body: dict[str, Any], params: dict[str, Any]) -> None:
    reasoning: dict[str, Any] = {}
    for k, v in params.items():
        if v is None:
            continue
        if k == "reasoning_effort":
            reasoning["effort"] = v
        elif k == "reasoning_summary":
            reasoning["summary"] = v
        elif k == "reasoning" and isinstance(v, dict):
            reasoning = {**v, **reasoning}
        elif k in _MAX_TOKENS:
            body["max_output_tokens"] = v
        elif k == "tool_choice" and isinstance(v, dict) and isinstance(v.get("function"), dict):
            body["tool_choice"] = {"type": "function", "name": v["function"].get("name")}
        elif k == "response_format" and isinstance(v, dict):
            body.setdefault("text", {})["format"] = _text_format(v)
        elif k == "text" and isinstance(v, dict):
            body["text"] = {**v, **body.get("text", {})}
        else:
            body[k] = v
    if reasoning:
        body["reasoning"] = reasoning


def _text_format(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        # Chat nests the schema under json_schema; Responses has it flat.
        return {"type": "json_schema", **fmt["json_schema"]}
    return fmt


def build_responses_request(call: Call, key: str) -> HTTPRequest:
    instructions, items = _input(call.messages)
    body: dict[str, Any] = {"model": call.model, "input": items}
    if instructions is not None:
        body["instructions"] = instructions
    if call.tools:
        body["tools"] = [_tool(t) for t in call.tools]
    if call.stream:
        body["stream"] = True
    _params(body, call.params)
    return HTTPRequest.post_json(call.base_url + "/responses", body, call, key)

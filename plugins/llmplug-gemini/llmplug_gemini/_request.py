"""Building a Gemini ``generateContent`` request from the neutral call (OpenAI Chat-shaped
messages, Chat parameter names)."""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import quote

import msgspec

from llmplug import Call, ConfigError, HTTPRequest, ImagePart, Message, TextPart, Tool
from llmplug.wire import provider_data_of

__all__ = ["SYNTHETIC", "THINKING_BUDGETS", "WIRE", "build_gemini_request", "model_path"]

#: The wire's name, which also keys its provider data.
WIRE = "gemini"

#: ``reasoning_effort`` as ``thinkingConfig.thinkingBudget`` (tokens; "none": thinking off
#: where the model allows it).
THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}

_encode = msgspec.json.Encoder().encode

# Chat names and their generationConfig homes.
_GENERATION = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "n": "candidateCount",
    "max_tokens": "maxOutputTokens",
    "max_completion_tokens": "maxOutputTokens",
    "max_output_tokens": "maxOutputTokens",
}
# Chat-only knobs with no Gemini meaning, dropped rather than sent into a body that refuses
# unknown fields.
_DROPPED = ("stream_options", "parallel_tool_calls", "gemini_key_in", "reasoning_summary")
_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def model_path(model: str) -> str:
    """``models/{model}`` (a model given as ``models/...`` or ``tunedModels/...`` is kept)."""
    if model.startswith(("models/", "tunedModels/")):
        return quote(model, safe="/-._")
    return "models/" + quote(model, safe="-._")


def _image(p: ImagePart) -> dict[str, Any]:
    url = p.image_url.url
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        mime = head[5:].split(";", 1)[0] or "image/png"
        return {"inlineData": {"mimeType": mime, "data": data}}
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _parts(m: Message) -> list[dict[str, Any]]:
    if m.content is None or m.content == "":
        return []
    if isinstance(m.content, str):
        return [{"text": m.content}]
    return [
        {"text": p.text} if isinstance(p, TextPart) else _image(p)
        for p in m.content
        if not (isinstance(p, TextPart) and not p.text)
    ]


def _args(arguments: str) -> Any:
    # functionCall.args must be an object; a history holding broken arguments still goes out.
    try:
        value = msgspec.json.decode(arguments) if arguments.strip() else {}
    except msgspec.DecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


#: The id prefix of a function call whose server gave it none (Gemini's often have none):
#: made up for the neutral history, never sent back.
SYNTHETIC = "gemini-call-"


def _model_turn(m: Message) -> list[dict[str, Any]]:
    parts = _parts(m)
    kept = provider_data_of(m, WIRE)
    signature = kept.get("thoughtSignature") if isinstance(kept, dict) else None
    if isinstance(signature, str) and parts:
        parts[-1]["thoughtSignature"] = signature  # where Gemini put it: the turn's last part
    for tc in m.tool_calls or ():
        call: dict[str, Any] = {"name": tc.function.name, "args": _args(tc.function.arguments)}
        if not tc.id.startswith(SYNTHETIC):
            call["id"] = tc.id
        part: dict[str, Any] = {"functionCall": call}
        own = provider_data_of(tc, WIRE)
        sig = own.get("thoughtSignature") if isinstance(own, dict) else None
        if isinstance(sig, str):
            part["thoughtSignature"] = sig  # Gemini refuses the next turn without it
        parts.append(part)
    return parts


def _response(m: Message, names: dict[str, str]) -> list[dict[str, Any]]:
    call_id = m.tool_call_id or ""
    out: dict[str, Any] = {
        "name": m.name or names.get(call_id, "tool"),
        "response": {"result": m.text},
    }
    if call_id and not call_id.startswith(SYNTHETIC):
        out["id"] = call_id
    parts: list[dict[str, Any]] = [{"functionResponse": out}]
    if isinstance(m.content, list):  # a tool's images follow its response in the same turn
        parts += [_image(p) for p in m.content if isinstance(p, ImagePart)]
    return parts


def _contents(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        # Consecutive messages of one role are one turn: a turn's function responses go
        # together, as Gemini wants them.
        if not parts:
            return
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": role, "parts": parts})

    for m in messages:
        if m.role in ("system", "developer"):
            continue
        if m.role == "assistant":
            names.update((c.id, c.function.name) for c in m.tool_calls or ())
            add("model", _model_turn(m))
        elif m.role == "tool":
            add("user", _response(m, names))
        else:
            add("user", _parts(m) or [{"text": ""}])
    return out


def _system(messages: list[Message]) -> dict[str, Any] | None:
    texts = [m.text for m in messages if m.role in ("system", "developer") and m.text]
    return {"parts": [{"text": "\n\n".join(texts)}]} if texts else None


def _tool(t: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": t.name, "parametersJsonSchema": t.parameters}
    if t.description:
        out["description"] = t.description
    return out


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if isinstance(choice, str):
        mode = _MODES.get(choice)
        if mode is None:
            raise ConfigError(f"tool_choice {choice!r} has no Gemini form", field="tool_choice")
        return {"functionCallingConfig": {"mode": mode}}
    if isinstance(choice, dict):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
        if isinstance(name, str):
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise ConfigError(f"tool_choice {choice!r} has no Gemini form", field="tool_choice")


def _schema_output(fmt: Any, config: dict[str, Any]) -> None:
    if not isinstance(fmt, dict):
        return
    if fmt.get("type") == "json_object":
        config["responseMimeType"] = "application/json"
    elif fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        config["responseMimeType"] = "application/json"
        if isinstance(schema, dict):
            config["responseJsonSchema"] = schema


def _thinking(effort: Any, config: dict[str, Any]) -> None:
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise ConfigError(
            f"reasoning_effort must be one of {', '.join(THINKING_BUDGETS)}, got {effort!r}",
            field="reasoning_effort",
        )
    # Thought summaries come back as reasoning; a budget of 0 turns thinking off.
    config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": budget > 0}


def _body(call: Call) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": _contents(call.messages)}
    system = _system(call.messages)
    if system is not None:
        body["systemInstruction"] = system
    if call.tools:
        body["tools"] = [{"functionDeclarations": [_tool(t) for t in call.tools]}]
    config: dict[str, Any] = {}
    for k, v in call.params.items():
        if v is None or k in _DROPPED:
            continue
        if k in _GENERATION:
            config[_GENERATION[k]] = v
        elif k == "stop":
            config["stopSequences"] = [v] if isinstance(v, str) else v
        elif k == "response_format":
            _schema_output(v, config)
        elif k == "reasoning_effort":
            _thinking(v, config)
        elif k == "tool_choice":
            tc = _tool_config(v)
            if tc is not None:
                body["toolConfig"] = tc
        elif k == "generationConfig" and isinstance(v, dict):
            config.update(v)  # Gemini's own settings, as they are
        else:
            body[k] = v  # Gemini's own fields (safetySettings, cachedContent...), as they are
    if config:
        body["generationConfig"] = config
    return body


def build_gemini_request(call: Call, key: str) -> HTTPRequest:
    """``POST {base_url}/models/{model}:generateContent`` (or ``:streamGenerateContent
    ?alt=sse``), the key in ``x-goog-api-key`` (or, with ``gemini_key_in="query"``, as
    ``?key=``)."""
    action = "streamGenerateContent?alt=sse" if call.stream else "generateContent"
    url = f"{call.base_url}/{model_path(call.model)}:{action}"
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if call.stream else "application/json",
    }
    if call.params.get("gemini_key_in") == "query":
        url += ("&" if "?" in url else "?") + "key=" + quote(key, safe="")
    else:
        headers["x-goog-api-key"] = key
    return HTTPRequest(url=url, headers=headers, content=_encode(_body(call)))

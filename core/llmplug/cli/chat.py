"""``llmplug chat``: a streamed reply; an interactive multi-turn chat on a terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

import msgspec

from llmplug.cli._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_config_argument,
    fail,
    load_models,
    parse_params,
    pick_model,
)

if TYPE_CHECKING:
    from llmplug._interfaces._group import ModelGroup
    from llmplug._interfaces._interface import LLMInterface
    from llmplug._vocab._types import Completion

__all__ = ["add_parser", "run"]

_DIM, _RESET = "\x1b[2m", "\x1b[0m"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "chat",
        help="stream a reply; with no prompt on a terminal, an interactive chat",
        description="Stream the model's reply to PROMPT. With no PROMPT, read stdin when it "
        "is piped, else start an interactive chat (history kept; Ctrl-D or /exit ends it).",
    )
    add_config_argument(p)
    p.add_argument("-m", "--model", required=True, help="provider/model from provider.json")
    p.add_argument("prompt", nargs="?", help="the message (with piped stdin: put before it)")
    p.add_argument("-s", "--system", help="the system prompt")
    p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="a request parameter; V is JSON when it parses (0.2, true, [1]), else text",
    )
    p.add_argument(
        "--json", action="store_true", help="print the whole Completion as JSON (no stream)"
    )


class _Printer:
    """Reply text on stdout; reasoning (dimmed) and tool calls beside it on a terminal, on
    stderr otherwise, so a piped stdout holds the answer only."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.side = sys.stdout if self.tty else sys.stderr
        self.side_tty = self.side.isatty()
        self.in_reasoning = False

    def reasoning(self, text: str) -> None:
        if not self.in_reasoning:
            self.in_reasoning = True
            if self.side_tty:
                self.side.write(_DIM)
        self.side.write(text)
        self.side.flush()

    def _end_reasoning(self) -> None:
        if self.in_reasoning:
            self.in_reasoning = False
            self.side.write((_RESET if self.side_tty else "") + "\n")
            self.side.flush()

    def text(self, text: str) -> None:
        self._end_reasoning()
        sys.stdout.write(text)
        sys.stdout.flush()

    def done(self, c: Completion) -> None:
        self._end_reasoning()
        for call in c.tool_calls:
            line = f"[tool call {call.name}({call.arguments}) id={call.id}]"
            if self.side_tty:
                line = _DIM + line + _RESET
            if c.text and self.side is sys.stdout:
                line = "\n" + line
            print(line, file=self.side, flush=True)
        if c.text:
            sys.stdout.write("\n")
            sys.stdout.flush()


async def _stream(
    llm: LLMInterface | ModelGroup, messages: list[Any], params: dict[str, Any]
) -> Completion:
    from llmplug._vocab._types import Done, ReasoningDelta, TextDelta

    out = _Printer()
    async for event in llm.chat_stream(messages, **params):
        if isinstance(event, TextDelta):
            out.text(event.text)
        elif isinstance(event, ReasoningDelta):
            out.reasoning(event.text)
        elif isinstance(event, Done):
            out.done(event.completion)
            return event.completion
    raise AssertionError("a stream ends with Done")  # pragma: no cover


def _as_json(c: Completion) -> bytes:
    data = msgspec.to_builtins(c)
    if isinstance(c.raw, bytes | bytearray):
        try:
            data["raw"] = msgspec.json.decode(c.raw)
        except msgspec.DecodeError:
            data["raw"] = bytes(c.raw).decode("utf-8", "replace")
    return msgspec.json.format(msgspec.json.encode(data), indent=2)


async def _once(
    llm: LLMInterface | ModelGroup, messages: list[Any], params: dict[str, Any], js: bool
) -> int:
    try:
        if js:
            c = await llm.chat(messages, **params)
            sys.stdout.buffer.write(_as_json(c) + b"\n")
            sys.stdout.flush()
        else:
            await _stream(llm, messages, params)
    finally:
        await llm.aclose()
    return EXIT_OK


def _interactive(llm: LLMInterface | ModelGroup, history: list[Any], params: dict[str, Any]) -> int:
    """Turns until Ctrl-D or /exit. The prompt is read on the main thread, outside the loop,
    so Ctrl-C there ends the chat at once; Ctrl-C during a reply cancels only that reply."""
    import contextlib

    from llmplug._vocab._errors import LLMError

    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - line editing and history for input()

    print(f"chat with {llm.provider_id}/{llm.model_name} (Ctrl-D or /exit to end)", flush=True)
    with asyncio.Runner() as runner:
        try:
            while True:
                try:
                    line = input("> ")
                except EOFError:
                    print()
                    return EXIT_OK
                if line.strip() in ("/exit", "/quit"):
                    return EXIT_OK
                if not line.strip():
                    continue
                history.append({"role": "user", "content": line})
                try:
                    reply = runner.run(_stream(llm, history, params))
                except KeyboardInterrupt:
                    history.pop()  # a cut reply is not kept: that message was not answered
                    print("\n[interrupted]", file=sys.stderr, flush=True)
                    continue
                except LLMError as exc:  # the chat goes on; that message is not kept either
                    history.pop()
                    print(f"\nerror: {exc}", file=sys.stderr, flush=True)
                    continue
                history.append(msgspec.structs.asdict(reply.to_message()))
        finally:
            runner.run(llm.aclose())


def run(args: argparse.Namespace) -> int:
    params = parse_params(args.param)
    llm = pick_model(load_models(args.config), args.model, args.config)
    messages: list[Any] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    prompt = args.prompt
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        prompt = f"{prompt}\n\n{piped}" if prompt and piped.strip() else prompt or piped
    if prompt is not None:
        if not prompt.strip():
            fail("the prompt is empty", EXIT_USAGE)
        messages.append({"role": "user", "content": prompt})
        return asyncio.run(_once(llm, messages, params, args.json))
    if args.json:
        fail("--json needs a prompt (an argument or piped stdin)", EXIT_USAGE)
    try:
        return _interactive(llm, messages, params)
    except KeyboardInterrupt:  # at the prompt
        print(file=sys.stderr)
        return EXIT_INTERRUPTED

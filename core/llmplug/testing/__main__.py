"""``python -m llmplug.testing``: serve the test server until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading

from ._replies import Reply
from ._server import LLMTestServer


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve, print the base_url on one line, stop cleanly on a signal."""
    parser = argparse.ArgumentParser(
        prog="python -m llmplug.testing",
        description="An OpenAI-compatible test server (Chat Completions and Responses).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--text", help="answer every request with this text (default: echo)")
    parser.add_argument("--words", type=int, help="answer with this many words (for benchmarks)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before headers")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between events")
    args = parser.parse_args(argv)

    # Nobody can read the recorded requests of a separate process: only count them, so that a
    # long benchmark does not grow memory.
    server = LLMTestServer(args.host, args.port, record=False)
    if args.text is not None or args.words is not None or args.delay or args.chunk_delay:
        text = args.text
        if text is None:
            text = " ".join(f"word{i}" for i in range(args.words)) if args.words else "ok"
        server.default = Reply(text=text, delay=args.delay, chunk_delay=args.chunk_delay)

    signals = {signal.SIGINT, signal.SIGTERM}
    if hasattr(signal, "pthread_sigmask"):
        # Blocked before the server thread starts (threads inherit the mask), then collected with
        # sigwait: no handler runs at an arbitrary point and no polling loop is needed.
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        server.start()
        print(server.base_url, flush=True)
        try:
            signal.sigwait(signals)
        finally:
            server.stop()
        return 0
    stop = threading.Event()
    for sig in signals:
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(server.base_url, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``llmplug chat``: a streamed reply; an interactive multi-turn chat on a terminal."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    return 0

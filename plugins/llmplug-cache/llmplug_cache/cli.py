"""``llmplug cache stats|clear``: what a cache holds, and clearing it.

llmplug cache stats [--path FILE | --redis URL [--prefix P]]
llmplug cache clear [--older-than 7d] [--path FILE | --redis URL [--prefix P]]"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from typing import Any

from ._settings import DEFAULT_PATH, Settings

__all__ = ["add_parser", "parse_duration", "run"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``12h``, ``7d``, ``2w`` in seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if m is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 30m, 12h, 7d)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = sub.add_parser("cache", help="the response cache: its entries, size and hit rate")
    actions = parser.add_subparsers(dest="cache_command", required=True)
    stats = actions.add_parser("stats", help="entries, size, hits, misses, hit rate, money saved")
    clear = actions.add_parser("clear", help="delete cached answers (all, or the older ones)")
    clear.add_argument(
        "--older-than",
        type=parse_duration,
        metavar="AGE",
        help="only answers stored longer ago than AGE (90s, 30m, 12h, 7d)",
    )
    for p in (stats, clear):
        where = p.add_mutually_exclusive_group()
        where.add_argument("--path", help=f"the SQLite file (default {DEFAULT_PATH})")
        where.add_argument("--redis", metavar="URL", help="a Redis cache instead")
        p.add_argument("--prefix", default="llmplug:cache:", help="the Redis keys' prefix")
    return parser


def run(args: argparse.Namespace) -> int:
    from llmplug import ConfigError

    if args.redis:
        settings = Settings(kind="redis", url=args.redis, prefix=args.prefix)
    else:
        settings = Settings(path=args.path or DEFAULT_PATH)
    if settings.kind == "sqlite" and not os.path.exists(settings.where):
        print(f"no cache at {settings.where}")
        return 0
    try:
        if args.cache_command == "stats":
            show(settings, _stats(settings))
            return 0
        n = _clear(settings, args.older_than)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"cache at {settings.where}: {type(exc).__name__}: {exc}") from None
    print(f"cleared {n:,} answers from {settings.where}")
    return 0


def _stats(settings: Settings) -> dict[str, Any]:
    if settings.kind == "sqlite":
        from ._sqlite import SQLiteStore

        return dict(SQLiteStore(settings.path, settings.max_bytes).stats())
    return asyncio.run(_redis(settings, "stats"))


def _clear(settings: Settings, older_than: float | None) -> int:
    if settings.kind == "sqlite":
        from ._sqlite import SQLiteStore

        return SQLiteStore(settings.path, settings.max_bytes).clear(older_than)
    if older_than is not None:
        from llmplug import ConfigError

        raise ConfigError("--older-than: Redis expires answers by their ttl; clear them all")
    return asyncio.run(_redis(settings, "clear"))  # type: ignore[no-any-return]


async def _redis(settings: Settings, what: str) -> Any:
    from ._redis import RedisStore

    store = RedisStore(settings.url or "", settings.prefix, settings.timeout, settings.where)
    try:
        return await getattr(store, what)()
    finally:
        await store.aclose()


def show(settings: Settings, stats: dict[str, Any]) -> None:
    rate = stats.get("hit_rate")
    rows = [
        ("cache", settings.where),
        ("entries", f"{stats['entries']:,}"),
        ("size", _size(stats["bytes"])),
    ]
    if "file_bytes" in stats:
        rows.append(("  on disk", _size(stats["file_bytes"])))
    rows += [
        ("hits", f"{stats['hits']:,}"),
        ("misses", f"{stats['misses']:,}"),
        ("hit rate", "-" if rate is None else f"{rate:.1%}"),
        ("saved", f"{stats['saved']:.6f}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}", file=sys.stdout)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"

"""The ``llmplug`` command: ``llmplug plugins`` lists what is installed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._registry import DISABLE_ENV, Registry

__all__ = ["main"]


def _plugins(registry: Registry) -> int:
    rows = [("plugin", "distribution", "version", "hooks")]
    for p in registry.plugins():
        rows.append((p.name, p.distribution or "-", p.version or "-", ", ".join(p.hooks)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[3])
    for name, error in registry.failed:
        print(f"skipped {name}: {error}", file=sys.stderr)
    if registry.disabled - registry.disabled_unknown:
        print("disabled: " + ", ".join(sorted(registry.disabled - registry.disabled_unknown)))
    if registry.disabled_unknown:
        unknown = ", ".join(sorted(registry.disabled_unknown))
        print(f"{DISABLE_ENV} names no installed plugin: {unknown}", file=sys.stderr)
    return 1 if registry.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmplug", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("plugins", help="list installed plugins, their distributions and hooks")
    args = parser.parse_args(argv)
    if args.command == "plugins":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # failures are listed below the table instead
            return _plugins(Registry())
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    raise SystemExit(main())

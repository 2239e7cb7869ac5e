"""The ``llmplug`` command: ``batch``, ``chat``, ``models`` and ``plugins``.

Each subcommand lives in ``llmplug.cli`` and is imported only when it runs. Every failure is one
line on stderr and a documented exit code (``llmplug.cli._common``), never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llmplug._engine._registry import DISABLE_ENV, Registry

__all__ = ["main"]


def _served(serves: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in serves.items()) or "-"


def _plugins(registry: Registry, as_json: bool = False) -> int:
    plugins = registry.plugins()
    if as_json:
        import json

        for p in plugins:
            line = {
                "plugin": p.name,
                "distribution": p.distribution,
                "version": p.version,
                "hooks": list(p.hooks),
                "serves": {k: list(v) for k, v in p.serves.items()},
            }
            print(json.dumps(line))
    else:
        rows = [("plugin", "distribution", "version", "serves", "hooks")]
        for p in plugins:
            rows.append(
                (
                    p.name,
                    p.distribution or "-",
                    p.version or "-",
                    _served(p.serves),
                    ", ".join(p.hooks),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[4])
    for name, error in registry.failed:
        print(f"skipped {name}: {error}", file=sys.stderr)
    if registry.disabled - registry.disabled_unknown:
        print("disabled: " + ", ".join(sorted(registry.disabled - registry.disabled_unknown)))
    if registry.disabled_unknown:
        unknown = ", ".join(sorted(registry.disabled_unknown))
        print(f"{DISABLE_ENV} names no installed plugin: {unknown}", file=sys.stderr)
    return 1 if registry.failed else 0


def _parser() -> argparse.ArgumentParser:
    from llmplug import __version__

    from . import batch, chat, models

    parser = argparse.ArgumentParser(
        prog="llmplug",
        description="One interface to every LLM provider: bulk runs, chat, models, plugins.",
        epilog="exit codes: 0 ok, 1 a batch ended with failed requests (or a plugin failed to "
        "load), 2 bad arguments or input, 3 bad config or unknown model, 4 the call failed, "
        "130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"llmplug {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    batch.add_parser(sub)
    chat.add_parser(sub)
    models.add_parser(sub)
    plugins = sub.add_parser(
        "plugins", help="list installed plugins: distributions, the names they serve, hooks"
    )
    plugins.add_argument(
        "--json", action="store_true", help="one JSON object per plugin, one per line"
    )
    _plugin_commands(sub)
    return parser


#: Subcommands plugins add (``llmplug cache`` of llmplug-cache): an entry point in this group
#: names a module with ``add_parser(sub)`` (returning its parser) and ``run(args) -> int``.
COMMANDS = "llmplug.commands"


def _plugin_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    import importlib.metadata as md

    for ep in md.entry_points(group=COMMANDS):
        if ep.name in sub.choices:
            continue  # the built-in commands (and the first plugin of a name) win
        try:
            module = ep.load()
            module.add_parser(sub).set_defaults(plugin_run=module.run)
        except Exception as exc:  # a broken plugin costs its own command only
            print(f"llmplug: the command {ep.name!r} was skipped: {exc}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    if args.command == "plugins":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # failures are listed below the table instead
            return _plugins(Registry(), as_json=args.json)
    plugin_run = getattr(args, "plugin_run", None)
    if plugin_run is not None:
        return int(plugin_run(args))
    from . import batch, chat, models

    command = {"batch": batch.run, "chat": chat.run, "models": models.run}[args.command]
    return command(args)


def main(argv: Sequence[str] | None = None) -> int:
    import os

    from llmplug._vocab._errors import ConfigError, LLMError

    from ._common import EXIT_CALL, EXIT_CONFIG, EXIT_INTERRUPTED, CLIError, err

    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except CLIError as exc:
        err(exc.message)
        return exc.code
    except ConfigError as exc:
        err(exc.message)
        return EXIT_CONFIG
    except LLMError as exc:
        err(str(exc))
        return EXIT_CALL
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say, and nowhere to say it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: one line, and the traceback only when asked for
        if os.environ.get("LLMPLUG_DEBUG"):
            raise
        err(f"unexpected {type(exc).__name__}: {exc} (LLMPLUG_DEBUG=1 shows the traceback)")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

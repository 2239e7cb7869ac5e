"""``llmplug models``: what provider.json offers, with keys shown by fingerprint only."""

from __future__ import annotations

import argparse

from ._common import EXIT_OK, add_config_argument, load_models

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "models", help="list providers, models, wires, keys (fingerprints) and limits"
    )
    add_config_argument(p)


def run(args: argparse.Namespace) -> int:
    rows = [("model", "wire", "keys", "req/min", "tok/min", "price in/cached/out per 1M")]
    loaded = load_models(args.config)
    for provider, models in loaded.items():
        for name, llm in models.items():
            status = llm.get_rate_limit_status()
            refill = status.get("refill_rate")
            rpm = f"{refill * 60:g} (burst {status.get('capacity')})" if refill else "-"
            tpm = f"{llm.token_limiter.capacity:g}" if llm.token_limiter is not None else "-"
            p = llm.pricing
            price = "-"
            if p is not None:
                cached = p.input if p.cached_input is None else p.cached_input
                price = f"{p.input:g}/{cached:g}/{p.output:g}"
            keys = [k["key"] for k in llm.key_pool.status()]
            rows.append(
                (f"{provider}/{name}", llm.wire, f"{len(keys)}: {', '.join(keys)}", rpm, tpm, price)
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for name, group in loaded.groups.items():
        members = ", ".join(m.name for m in group.members)
        line = f"group {name} ({group.strategy}): {members}"
        for label, chain in (
            ("fallbacks", group.fallbacks),
            ("context-window fallbacks", group.context_window_fallbacks),
        ):
            if chain:
                line += f"; {label}: {', '.join(m.name for m in chain)}"
        print(line)
    return EXIT_OK

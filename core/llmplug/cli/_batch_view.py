"""What a batch shows while it runs and when it ends: rich's live display on a terminal, plain
periodic lines otherwise, and a summary table. A group shows a row per member: its circuit
(from :meth:`ModelGroup.status`), load, and, for a member that is an interface, its keys and
budgets."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO, cast

from llmplug._interfaces._group import ModelGroup

if TYPE_CHECKING:
    from llmplug._interfaces._interface import LLMInterface

    from ._batch_run import Stats

__all__ = ["Lane", "Progress", "lanes", "summary_rows"]


class Lane(NamedTuple):
    """One member of a group as the display shows it."""

    name: str
    #: The member's interface, whose keys and budgets are shown; None for a member group.
    llm: LLMInterface | None
    #: Its circuit and load, from the group's status().
    state: dict[str, Any]


def lanes(group: ModelGroup) -> list[Lane]:
    """A row per member and fallback of ``group``."""
    status = group.status()
    return [
        Lane(
            m.name,
            None if isinstance(m.llm, ModelGroup) else cast("LLMInterface", m.llm),
            status[m.name],
        )
        for m in group.all_members
    ]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def budget(llm: LLMInterface | ModelGroup) -> tuple[float | None, float | None]:
    """The interface's requests and tokens per minute budgets (None: none known). A group's
    members each have their own (shown per member): the group has none of its own."""
    if isinstance(llm, ModelGroup):
        return None, None
    status = llm.get_rate_limit_status()
    rpm = status.get("refill_rate")
    tpm = llm.token_limiter.refill_rate * 60 if llm.token_limiter is not None else None
    return (float(rpm) * 60 if isinstance(rpm, int | float) else None), tpm


def _of(value: float, limit: float | None) -> str:
    return f"{value:,.0f}" + (f" / {limit:,.0f}" if limit else "")


def _keys(llm: LLMInterface) -> str:
    return " ".join(f"{k['key']}:{k['state']}" for k in llm.key_pool.status())


def _circuit(state: dict[str, Any]) -> str:
    left = state["ejected_for_s"]
    return str(state["state"]) + (f" {left:.1f}s" if left else "")


def _budgets(llm: LLMInterface) -> str:
    brpm, btpm = budget(llm)
    return " ".join(
        f"{b:,.0f} {unit}/min" for b, unit in ((brpm, "req"), (btpm, "tok")) if b is not None
    )


def _member_text(lane: Lane) -> str:
    """A member in a plain progress line: circuit, in flight, budgets, keys."""
    parts = [f"{lane.name} {_circuit(lane.state)}", f"in flight {lane.state['in_flight']}"]
    if lane.llm is not None:
        if limits := _budgets(lane.llm):
            parts.append(f"budget {limits}")
        parts.append(f"keys {_keys(lane.llm)}")
    return "[" + ", ".join(parts) + "]"


def status_line(stats: Stats, llm: LLMInterface | ModelGroup, in_flight: int) -> str:
    rpm, tpm = stats.per_minute()
    brpm, btpm = budget(llm)
    left = stats.remaining()
    if isinstance(llm, ModelGroup):
        who = "members " + " ".join(_member_text(lane) for lane in lanes(llm))
    else:
        who = f"keys {_keys(llm)}"
    return (
        f"done {stats.ok:,}  failed {stats.failed:,}  "
        f"remaining {'-' if left is None else f'{left:,}'}  in flight {in_flight}  "
        f"req/min {_of(rpm, brpm)}  tok/min {_of(tpm, btpm)}  eta {_duration(stats.eta())}  "
        f"{who}"
    )


class Progress:
    """Draws the progress until :meth:`close`: live on a terminal, a line every ``interval``
    seconds otherwise."""

    def __init__(
        self,
        stream: TextIO,
        llm: LLMInterface | ModelGroup,
        stats: Stats,
        in_flight: Any,
        interval: float,
    ) -> None:
        self.stream = stream
        self.llm = llm
        self.stats = stats
        self.in_flight = in_flight
        self.interval = interval
        self.live: Any = None
        self.task: asyncio.Task[None] | None = None
        self.tty = stream.isatty()

    def start(self) -> None:
        if self.tty:
            try:
                from rich.console import Console
                from rich.live import Live
            except ImportError:
                self.tty = False  # without the cli extra: plain lines
            else:
                console = Console(file=self.stream)
                self.live = Live(get_renderable=self._table, console=console, refresh_per_second=4)
                self.live.start()
                return
        self.task = asyncio.create_task(self._lines())

    def say(self, text: str) -> None:
        if self.live is not None:
            self.live.console.print(text)
        else:
            print(text, file=self.stream, flush=True)

    async def _lines(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            stamp = time.strftime("%H:%M:%S")
            line = status_line(self.stats, self.llm, self.in_flight())
            print(f"{stamp} {line}", file=self.stream, flush=True)

    def _table(self) -> Any:
        from rich.table import Table

        s, llm = self.stats, self.llm
        rpm, tpm = s.per_minute()
        brpm, btpm = budget(llm)
        left = s.remaining()
        head = Table.grid(padding=(0, 2))
        head.add_row(
            f"[green]done {s.ok:,}[/]",
            f"[red]failed {s.failed:,}[/]",
            f"remaining {'-' if left is None else f'{left:,}'}",
            f"in flight {self.in_flight()}",
            f"ETA {_duration(s.eta())}",
        )
        head.add_row(f"req/min {_of(rpm, brpm)}", f"tok/min {_of(tpm, btpm)}", "", "", "")
        outer = Table.grid()
        outer.add_row(head)
        if isinstance(llm, ModelGroup):
            rows = lanes(llm)  # one status() for both tables of this frame
            outer.add_row(_members_table(rows))
            outer.add_row(_keys_table([(x.name, x.llm) for x in rows if x.llm is not None]))
        else:
            outer.add_row(_keys_table([("", llm)]))
        return outer

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.live is not None:
            self.live.stop()


def _keys_table(llms: list[tuple[str, LLMInterface]]) -> Any:
    """Each key's state and load; with a group, under the member whose key it is."""
    from rich.table import Table

    members = any(name for name, _ in llms)  # a lone interface's rows have no member name
    head = ["member"] if members else []
    keys = Table(*head, "key", "state", "in flight", "requests", "errors", box=None)
    for name, llm in llms:
        for i, k in enumerate(llm.key_pool.status()):
            style = {"ok": "green", "cooling": "yellow"}.get(k["state"], "red")
            state = k["state"] + (f" {k['cooldown_seconds']:.1f}s" if k["state"] != "ok" else "")
            keys.add_row(
                *([name if i == 0 else ""] if members else []),
                k["key"],
                f"[{style}]{state}[/]",
                str(k["in_flight"]),
                f"{k['requests']:,}",
                f"{k['errors']:,}",
            )
    return keys


def _members_table(rows: list[Lane]) -> Any:
    """Each member's circuit, load and budgets (its keys are in the keys table)."""
    from rich.table import Table

    table = Table(
        "member",
        "circuit",
        "in flight",
        "requests",
        "failed",
        "rpm budget",
        "tpm budget",
        box=None,
    )
    for lane in rows:
        st = lane.state
        style = {"closed": "green", "half_open": "yellow"}.get(st["state"], "red")
        rpm, tpm = budget(lane.llm) if lane.llm is not None else (None, None)
        table.add_row(
            lane.name,
            f"[{style}]{_circuit(st)}[/]",
            str(st["in_flight"]),
            f"{st['requests']:,}",
            f"{st['errors']:,}",
            "-" if rpm is None else f"{rpm:,.0f}",
            "-" if tpm is None else f"{tpm:,.0f}",
        )
    return table


def summary_rows(
    stats: Stats, wall: float, llm: LLMInterface | ModelGroup | None = None
) -> list[tuple[str, str]]:
    u = stats.usage
    rows = [("succeeded", f"{stats.ok:,}"), ("failed", f"{stats.failed:,}")]
    rows += [(f"  {kind}", f"{n:,}") for kind, n in stats.errors.most_common()]
    if stats.skipped:
        rows.append(("already in the output", f"{stats.skipped:,}"))
    rows += [
        ("input tokens", f"{u.input_tokens:,}"),
        ("  cached", f"{u.cached_tokens:,}"),
        ("output tokens", f"{u.output_tokens:,}"),
        ("  reasoning", f"{u.reasoning_tokens:,}"),
    ]
    if stats.cost is not None:
        rows.append(("cost", _money(stats.cost)))
        if stats.unpriced:  # answered by a member without pricing: not in the cost
            rows.append(("  answers without a price", f"{stats.unpriced:,}"))
    if stats.hits:
        rows.append(("cache hits", f"{stats.hits:,}"))
        rows.append(("  saved", _money(stats.saved)))
    if isinstance(llm, ModelGroup):
        for lane in lanes(llm):
            st = lane.state
            calls = f"requests {st['requests']:,}, failed {st['errors']:,}, {_circuit(st)}"
            rows.append((f"member {lane.name}", calls))
    rate = stats.finished / wall * 60 if wall > 0 else 0.0
    rows += [("wall time", _duration(wall)), ("requests/min", f"{rate:,.0f}")]
    return rows


def _money(amount: float) -> str:
    return f"{amount:,.4f}" if amount >= 1 else f"{amount:.6f}"


def print_summary(
    stream: TextIO, stats: Stats, wall: float, llm: LLMInterface | ModelGroup | None = None
) -> None:
    rows = summary_rows(stats, wall, llm)
    if stream.isatty():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            table = Table("outcome", "count", title="batch summary")
            for name, value in rows:
                table.add_row(name, value)
            Console(file=stream).print(table)
            return
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print("batch summary", file=stream)
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value.rjust(vwidth)}", file=stream)
    stream.flush()

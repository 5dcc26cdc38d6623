"""The progress bar: days done, events per second, time left (rich.progress).

Not on a terminal (CI, ``nohup``, a log file), a bar redrawn in place shows nothing
useful: a plain line is printed every tenth of the run instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from baitiao.simulation.driver import ProgressHook


@contextmanager
def day_progress(console: Console, total_days: int) -> Iterator[ProgressHook]:
    if not console.is_terminal:
        yield _progress_lines(console)
        return
    columns = (
        TextColumn("[bold]simulated days"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8} events/s"),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("days", total=total_days, rate="-")
        started = [0.0]

        def hook(done: int, events: int, total: int) -> None:
            if done == 0:
                started[0] = time.perf_counter()
                progress.reset(task, total=total, rate="-")
                return
            elapsed = max(time.perf_counter() - started[0], 1e-9)
            progress.update(task, completed=done, rate=f"{events / elapsed:,.0f}")

        yield hook


def _progress_lines(console: Console) -> ProgressHook:
    started = [0.0]

    def hook(done: int, events: int, total: int) -> None:
        if done == 0:
            started[0] = time.perf_counter()
            return
        step = max(1, total // 10)
        if done % step and done != total:
            return
        elapsed = time.perf_counter() - started[0]
        left = elapsed / done * (total - done)
        console.print(
            f"simulated days {done}/{total}  {events / max(elapsed, 1e-9):,.0f} events/s  "
            f"elapsed {_clock(elapsed)}  left {_clock(left)}",
            highlight=False,
        )

    return hook


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"

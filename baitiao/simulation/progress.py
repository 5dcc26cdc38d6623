"""The progress bar: days done, events per second, time left (rich.progress)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from baitiao.simulation.driver import ProgressHook


@contextmanager
def day_progress(console: Console, total_days: int) -> Iterator[ProgressHook]:
    columns = (TextColumn("[bold]simulated days"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:>8} events/s"), TextColumn("elapsed"), TimeElapsedColumn(),
               TextColumn("left"), TimeRemainingColumn())
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

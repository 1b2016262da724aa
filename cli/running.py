"""A command's running display and signals: the progress bars (images, and a batch's passes),
SIGINT/SIGTERM asking a run to stop, and the exit that a signal makes."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from .common import EXIT_INTERRUPTED, count, escape, stderr

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console
    from rich.progress import Progress

    from saliency import LoadedModel, MethodOptions


def exit_code_for(signum: int | None) -> int:
    """128 + the signal's number, as shells report a process ended by it: 130 for SIGINT."""
    return 128 + signum if signum is not None else EXIT_INTERRUPTED


@contextmanager
def passes_shown(progress: Progress) -> Iterator[None]:
    """A second bar, under the images, for the passes of the batch being explained (SmoothGrad's
    copies, Integrated Gradients' points, Score-CAM's channels, Occlusion's windows, RISE's
    masks): a Score-CAM or RISE image can take minutes. Added once a batch has passes."""
    from saliency.engine.progress import watching_passes

    tasks: list[Any] = []

    def watch(done: int, total: int) -> None:
        if not tasks:
            tasks.append(progress.add_task("  passes", total=total, unit="pass"))
        progress.update(tasks[0], completed=done, total=total)

    with watching_passes(watch):
        yield


def exit_now(code: int) -> NoReturn:
    """End the process after a signal: a thread the run left stuck in a read or in the model
    cannot delay it, nor can the seconds of module teardown. The run has closed its files."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def progress(console: Console, quiet: bool) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            unit = task.fields.get("unit", "img")
            return Text(f"{speed:.1f} {unit}/s" if speed else f"- {unit}/s")

    if not quiet and not console.is_terminal:
        return plain_progress(console)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )


def plain_progress(console: Console) -> Progress:
    """Progress for output that is not a terminal (a log file, a job's output, CI), where a bar
    shows nothing: a plain line per unfinished task every few seconds (``SALIENCY_PROGRESS``
    seconds, 10 by default): done/total, rate, time left."""
    import threading

    from rich.progress import Progress

    every = float(os.environ.get("SALIENCY_PROGRESS", "10"))

    class Lines(Progress):
        def start(self) -> None:
            super().start()
            self._done = threading.Event()
            threading.Thread(target=self._every, daemon=True, name="progress").start()

        def stop(self) -> None:
            if hasattr(self, "_done"):
                self._done.set()
            super().stop()

        def _every(self) -> None:
            while not self._done.wait(every):
                for task in self.tasks:
                    if task.total and not task.finished and task.completed < task.total:
                        self.console.print(line(task), highlight=False)

    return Lines(console=console, disable=True)


def line(task: Any) -> str:
    """``explaining: 12/100 (12%), 3.4 img/s, about 26 s left``."""
    from saliency.models.timing import duration

    unit = task.fields.get("unit", "img")
    done, total = int(task.completed), int(task.total)
    text = f"{task.description.strip()}: {done}/{total} ({done / total:.0%})"
    elapsed = task.elapsed or 0.0
    if done and elapsed > 0:  # the mean rate so far: steadier than the last few samples'
        rate = done / elapsed
        text += f", {rate:.1f} {unit}/s, about {duration((total - done) / rate)} left"
    return text


class Stopper:
    """SIGINT/SIGTERM ask the run to stop after the current batch; a second signal stops now."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Stopper:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def __call__(self) -> bool:
        return self.signal is not None


def say_cost(
    loaded: LoadedModel,
    methods: Sequence[str],
    options: MethodOptions,
    photos: int,
    per_target: str | None = None,
) -> None:
    """Before a long run: each method that costs many forward passes a photo (RISE's masks,
    Occlusion's windows) with the time it will take, from the model's pass measured here,
    where that is over half a minute, and the settings that set it. ``per_target``: what a
    photo may hold many of, each explained (``detection``), if anything."""
    from saliency.engine.registry import get_method

    size = (loaded.input_size, loaded.input_size)
    costly = []
    for name in methods:
        method = get_method(name)
        settings = options.of(method)
        passes = method.forwards(settings, size)
        if passes is None:
            continue
        levers = [  # the settings that change how many
            f"--set {s.name}=N" for s in method.settings
            if s.kind is int and method.forwards({**settings, s.name: 2 * settings[s.name]}, size)
            != passes
        ]  # fmt: skip
        costly.append((name, passes * max(1, options.smooth), levers))
    if not costly:
        return
    from saliency.models.timing import duration, pass_seconds

    each = pass_seconds(loaded, min(options.batch_size, 4))
    unit = f" and {per_target}" if per_target else ""
    for name, passes, levers in costly:
        total = passes * each * photos
        if total < 30:
            continue
        lever = f" ({' or '.join(levers)} for another count)" if levers else ""
        stderr().print(
            f"[yellow]note:[/] {escape(name)} costs {passes:,} forward passes per photo{unit}"
            f"{escape(lever)}: about {duration(passes * each)} each here, a pass measured now at "
            f"{each * 1000:.0f} ms; {count(photos, 'photo')}: about {duration(total)}"
            + (f" per {per_target} each holds" if per_target else "")
        )

"""Progress of long commands on stderr, with or without a terminal.

On a TTY a :class:`Progress` draws a tqdm bar over an iterable and prints each stage as it
starts. Without one (CI logs, ``nohup``, a pipe) tqdm stays silent, so it prints plain lines
instead, e.g.::

    lowbench: evaluate light/static: building variant ... 5 s
    lowbench: evaluate light/static: pairs 7/21, 12 s

each stage as it starts, a line at the start and at the end of each loop, and, while nothing
else was printed for an interval, a heartbeat line naming the current stage or loop position.
The first interval is quiet (its state shows in the first heartbeat), so a command that fails
at once, e.g. on bad input, still answers with its one error line. The interval is
``LOWBENCH_PROGRESS_INTERVAL`` seconds (default 5; 0 prints every stage and step at once).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

from lowbench.errors import LowbenchError

T = TypeVar("T")

#: Seconds between two plain progress lines when stderr is not a terminal.
DEFAULT_INTERVAL_S = 5.0
INTERVAL_ENV = "LOWBENCH_PROGRESS_INTERVAL"


def interval_from_env() -> float:
    """The interval between plain progress lines (s): ``$LOWBENCH_PROGRESS_INTERVAL`` or 5."""
    text = os.environ.get(INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_INTERVAL_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also rejects nan
        raise LowbenchError(f"{INTERVAL_ENV}={text!r} is not a number of seconds >= 0; set it "
                            "to e.g. 5 or unset it")
    return value


class Progress:
    """Reports one command's progress on ``stream`` (default stderr), each line prefixed
    ``lowbench: <label>:``; elapsed times are whole seconds since the reporter was made.

    Use as a context manager (or call :meth:`close`): it stops the heartbeat thread."""

    def __init__(self, label: str, *, stream: IO[str] | None = None,
                 interval_s: float | None = None, tty: bool | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = interval_from_env() if interval_s is None else interval_s
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._last_line: float | None = None  # monotonic time of the last line printed
        self._now = ""  # what is going on, for the heartbeat ("building variant ...")
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the heartbeat (no line is printed after this)."""
        self._stop.set()
        if self._heartbeat is not None and self._heartbeat is not threading.current_thread():
            self._heartbeat.join()

    def elapsed_s(self) -> float:
        """Seconds since this reporter was made."""
        return time.monotonic() - self._t0

    def _line(self, text: str) -> None:
        """Print one line (caller holds the lock)."""
        print(f"lowbench: {self.label}: {text}", file=self.stream, flush=True)
        self._last_line = time.monotonic()

    def _quiet(self) -> bool:
        """Whether plain lines wait for the heartbeat: within the first interval, before any
        line (caller holds the lock)."""
        return (not self.tty and self._last_line is None
                and time.monotonic() - self._t0 < self.interval_s)

    def _beat(self) -> None:
        while not self._stop.wait(min(self.interval_s, 1.0)):
            with self._lock:
                if self._stop.is_set():
                    return
                since = time.monotonic() - (self._last_line or self._t0)
                if self._now and since >= self.interval_s:
                    self._line(f"{self._now} {self.elapsed_s():.0f} s")

    def _start_heartbeat(self) -> None:
        if self.tty or self.interval_s <= 0 or self._heartbeat is not None:
            return
        self._heartbeat = threading.Thread(target=self._beat, name="lowbench-progress",
                                           daemon=True)
        self._heartbeat.start()

    def stage(self, message: str) -> None:
        """Say that a stage starts (e.g. "latency")."""
        with self._lock:
            self._now = f"{message} ..."
            if not self._quiet():
                self._line(f"{self._now} {self.elapsed_s():.0f} s")
        self._start_heartbeat()

    def iterate(self, items: Iterable[T], what: str, total: int | None = None) -> Iterator[T]:
        """Yield ``items``, reporting ``what done/total``: a tqdm bar on a terminal, else a line
        at the start, one per interval and one at the end."""
        if total is None:
            try:
                total = len(items)  # type: ignore[arg-type]
            except TypeError:
                total = None
        if self.tty:
            from tqdm import tqdm

            yield from tqdm(items, desc=f"{self.label} {what}", total=total, file=self.stream,
                            leave=False)
            return
        of = f"/{total}" if total is not None else ""
        done = 0

        def report(suffix: str = "") -> None:
            with self._lock:
                self._now = f"{what} {done}{of},"
                if not self._quiet():
                    self._line(f"{self._now} {self.elapsed_s():.0f} s{suffix}")

        report()
        self._start_heartbeat()
        for item in items:
            yield item
            done += 1
            if self.interval_s <= 0 and (total is None or done < total):
                report()
            else:
                with self._lock:  # the heartbeat prints the position at each interval
                    self._now = f"{what} {done}{of},"
        report(", done")


__all__ = ["DEFAULT_INTERVAL_S", "INTERVAL_ENV", "Progress", "interval_from_env"]

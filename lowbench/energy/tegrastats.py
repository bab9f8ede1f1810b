"""NVIDIA Jetson power from ``tegrastats``: line parser and a subprocess-based energy meter.

Units: power in mW (tegrastats prints mW), energy in mJ/J, time in s (``time.monotonic()``).
"""

from __future__ import annotations

import bisect
import itertools
import re
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import IO

from lowbench.energy.base import EnergyMeter, EnergyWindow, MeterError

# A rail is "NAME cur/avg" (L4T R28-R32: "VDD_IN 2532/2698"), "NAME curmW/avgmW" (R35/R36) or
# "NAME curmW/avgmW/maxmW" (JetPack 7, R38/R39). Only the current (first) value is used.
# Each value's "mW" suffix is optional on its own, so a damaged rail such as "598mW/598" (kept on
# purpose in fixtures/tegrastats/orin_nano8_jp6_a.txt) still yields its current value 598 mW;
# anything else ("598mW/abc", "12x4mW/5mW") is not a rail and is skipped.
# Temperatures ("cpu@52.5C", "cpu@47.9C/48.3C"), frequencies ("GR3D_FREQ 0%@[0,0]") and memory
# ("RAM 1923/3964MB", "IRAM 0/252kB(lfb") never match: their value token is not all digits/"mW".
_RAIL_NAME = re.compile(r"[A-Z][A-Za-z0-9_]*")
_RAIL_VALUE = re.compile(r"(\d+(?:\.\d+)?)(?:mW)?(?:/\d+(?:\.\d+)?(?:mW)?){1,2}")
_NOT_RAILS = frozenset({"RAM", "SWAP", "IRAM"})
# "NC" = not-connected INA3221 channel (AGX Orin, JetPack 5); it reads 0 mW and names no rail.
_NOT_CONNECTED = "NC"

# Which reading is the board's total power (mW)?
#  1. VIN (AGX Thor devkit, L4T R38): the whole-board input, upstream of every other rail.
#     When present it is the total; adding the module rails to it would double count.
#  2. VDD_IN (TX1, TX2, Xavier NX, Orin Nano/NX): the module's input rail.
#  3. POM_5V_IN (Nano): the module's 5 V input rail.
#  4. Any other "*_IN" rail: a module input by NVIDIA's naming; taken as the total as well.
#  5. Otherwise the sum of all connected rails (NC skipped). This is jetson_stats' convention
#     (jtop/core/power.py total_power(): POM_5V_IN/VDD_IN if present, else sum all rails) and
#     NVIDIA's forum answer for AGX Xavier (topic 81016: "sum of all rails"):
#     - AGX Xavier: GPU, CPU, SOC, CV, VDDRQ and SYS5V are the six channels of its two
#       INA3221s; SYS5V is the 5 V system rail, not the module input, so it is one addend
#       among the six rather than a total.
#     - AGX Orin: VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0 (JetPack 6/7). Despite "VIN" in its
#       name VIN_SYS_5V0 is the 5 V system rail, not a whole-board input. JetPack 5 also prints
#       VDDQ_VDD2_1V8AO, which is summed too (as jtop does), so JetPack 5 AGX Orin totals
#       include ~0.3-1 W that JetPack 6 totals lack: compare AGX Orin only within one JetPack.
#     - AGX Thor without VIN: VDD_GPU + VDD_CPU_SOC_MSS + VIN_SYS_5V0 is a module-level sum,
#       well below VIN (idle fixtures: ~13.5 W of module rails vs 19.8 W at VIN), so Thor
#       numbers with and without VIN are not comparable.
#  The meter records which rule it used in EnergyWindow.source (e.g. "tegrastats:VDD_IN").
_WHOLE_INPUT_RAILS = ("VIN", "VDD_IN", "POM_5V_IN")


def parse_rails(line: str) -> dict[str, float]:
    """Return ``{rail name: current power in mW}`` for every power rail in one tegrastats line."""
    tokens = line.split()
    rails: dict[str, float] = {}
    for name, value in itertools.pairwise(tokens):
        if name in _NOT_RAILS or name == _NOT_CONNECTED or not _RAIL_NAME.fullmatch(name):
            continue
        match = _RAIL_VALUE.fullmatch(value)
        if match is not None:
            rails[name] = float(match.group(1))
    return rails


def total_power_mw(rails: dict[str, float]) -> tuple[float | None, str]:
    """Board total power in mW from parsed rails, plus the rule used (None, reason if no rails)."""
    if not rails:
        return None, "no power rails"
    for name in _WHOLE_INPUT_RAILS:
        if name in rails:
            return rails[name], name
    for name, value in rails.items():
        if name.endswith("_IN"):
            return value, name
    return sum(rails.values()), "sum(" + "+".join(rails) + ")"


def parse_tegrastats(line: str) -> dict:
    """Parse one tegrastats sample (any Jetson generation; leading timestamp allowed).

    Returns ``{"rails": {name: current power in mW}, "total_mw": board total in mW or None}``;
    ``total_mw`` is None when the line has no power rails (e.g. L4T R28 TX1). See the comment
    above ``_WHOLE_INPUT_RAILS`` for which rail is the total and when rails are summed.
    """
    rails = parse_rails(line)
    return {"rails": rails, "total_mw": total_power_mw(rails)[0]}


def _power_at(times: Sequence[float], powers: Sequence[float], t: float) -> float:
    """Power in mW at time ``t`` (s): linear between samples, held flat beyond the first/last."""
    i = bisect.bisect_right(times, t)
    if i == 0:
        return powers[0]
    if i == len(times):
        return powers[-1]
    t_a, t_b = times[i - 1], times[i]
    if t_b == t_a:
        return powers[i]
    return powers[i - 1] + (powers[i] - powers[i - 1]) * (t - t_a) / (t_b - t_a)


def integrate_mw(samples: Sequence[tuple[float, float]], t0: float, t1: float) -> float:
    """Energy in mJ over ``[t0, t1]`` (s) from ``(time s, power mW)`` samples sorted by time.

    Trapezoid rule on the piecewise-linear interpolation of the samples, clipped to the window:
    the power at ``t0``/``t1`` is interpolated between the neighbouring samples, and held at the
    first/last sample's value where the window extends beyond the samples.
    """
    if not samples:
        raise ValueError("no power samples to integrate")
    if t1 < t0:
        raise ValueError(f"window ends before it starts ({t0} s > {t1} s)")
    times = [s[0] for s in samples]
    powers = [s[1] for s in samples]
    inner = [t for t in times if t0 < t < t1]
    points = [t0, *inner, t1]
    values = [_power_at(times, powers, t) for t in points]
    return sum(
        (points[k + 1] - points[k]) * (values[k] + values[k + 1]) / 2.0
        for k in range(len(points) - 1)
    )


def power_samples(lines: Sequence[tuple[float, str]]) -> list[tuple[float, float, str]]:
    """``(time s, board total mW, rule)`` of every timestamped tegrastats line that has power
    rails (:func:`total_power_mw`), in order; lines without rails are skipped."""
    out = []
    for arrived, line in lines:
        total, rule = total_power_mw(parse_rails(line))
        if total is not None:
            out.append((float(arrived), total, rule))
    return out


def window_energy(samples: Sequence[tuple[float, float, str]], t0: float, t1: float
                  ) -> EnergyWindow:
    """The :class:`EnergyWindow` (J, s, mW) of ``[t0, t1]`` (s) from ``(time s, mW, rule)``
    samples (:func:`power_samples`): :func:`integrate_mw` over the window; the source names
    the rule(s) that gave the total. The one integration of tegrastats power: the meter here, a
    device bundle's recorded lines on the host. Raises MeterError without samples."""
    if not samples:
        raise MeterError("tegrastats printed no power rails in the window (this board/L4T "
                         "prints no INA3221 rails, or they need root)")
    energy_mj = integrate_mw([(t, p) for t, p, _ in samples], t0, t1)
    duration_s = t1 - t0
    rules = list(dict.fromkeys(rule for _, _, rule in samples))
    return EnergyWindow(
        energy_j=energy_mj / 1000.0,
        duration_s=duration_s,
        mean_power_mw=energy_mj / duration_s if duration_s > 0 else samples[-1][1],
        samples=sum(1 for t, _, _ in samples if t0 <= t <= t1),
        source="tegrastats:" + ",".join(rules),
    )


class TegrastatsMeter(EnergyMeter):
    """Energy from a ``tegrastats --interval MS`` subprocess (board total power, mW -> J).

    Each stdout line is timestamped with ``time.monotonic()`` on arrival; lines without rails
    are skipped. ``start()`` returns once the first sample has arrived (so the window is
    covered), ``stop()`` waits for one sample past the window end, terminates the process and
    integrates with :func:`integrate_mw` (trapezoid, clipped to the window). Arrival times lag
    the INA3221 reading by up to one interval; the window is long compared to that. No sudo is
    used: on some boards/L4T releases a few rails are only printed for root.
    """

    name = "tegrastats"

    def __init__(
        self,
        path: str,
        interval_ms: int = 50,
        first_sample_timeout_s: float = 5.0,
        kill_timeout_s: float = 2.0,
    ) -> None:
        if interval_ms < 1:
            raise ValueError(f"interval_ms must be >= 1 ms, got {interval_ms}")
        self.path = path
        self.interval_ms = interval_ms
        self.first_sample_timeout_s = first_sample_timeout_s
        self.kill_timeout_s = kill_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._samples: list[tuple[float, float, str]] = []
        self._lines = 0
        self._eof_at: float | None = None
        self._stderr_tail: deque[str] = deque(maxlen=10)
        self._t0: float | None = None

    def _read_stdout(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                arrived = time.monotonic()
                total, rule = total_power_mw(parse_rails(line))
                with self._cond:
                    self._lines += 1
                    if total is not None:
                        self._samples.append((arrived, total, rule))
                    self._cond.notify_all()
        except (OSError, ValueError):  # pipe closed under us by close()
            pass
        with self._cond:
            self._eof_at = time.monotonic()
            self._cond.notify_all()

    def _read_stderr(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                self._stderr_tail.append(line.strip())
        except (OSError, ValueError):
            pass

    def _describe_exit(self) -> str:
        """Exit code and last stderr lines of a process that ended by itself."""
        code = None
        if self._proc is not None:
            try:
                code = self._proc.wait(timeout=self.kill_timeout_s)
            except subprocess.TimeoutExpired:
                code = None
        for thread in self._threads[1:]:
            thread.join(timeout=1.0)
        tail = " | ".join(line for line in self._stderr_tail if line) or "nothing"
        return f"exit code {code}, stderr: {tail}"

    def start(self) -> None:
        """Launch tegrastats and return once its first power sample (mW) has arrived."""
        if self._proc is not None:
            raise RuntimeError("TegrastatsMeter.start() called twice without stop()")
        self._samples, self._lines, self._eof_at = [], 0, None
        self._stderr_tail.clear()
        cmd = [self.path, "--interval", str(self.interval_ms)]
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        except OSError as err:
            raise MeterError(f"cannot run tegrastats at {self.path!r}: {err}") from err
        self._proc = proc
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(proc.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(proc.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        with self._cond:
            self._cond.wait_for(
                lambda: bool(self._samples) or self._eof_at is not None,
                timeout=self.first_sample_timeout_s,
            )
            have_sample, ended, lines = bool(self._samples), self._eof_at is not None, self._lines
        if have_sample:
            self._t0 = time.monotonic()
            return
        if ended:
            detail = self._describe_exit()
            self.close()
            raise MeterError(
                f"tegrastats at {self.path!r} exited before printing a power sample ({detail})"
            )
        self.close()
        if lines:
            raise MeterError(
                f"tegrastats at {self.path!r} printed {lines} line(s) but no power rails within "
                f"{self.first_sample_timeout_s} s (this board/L4T prints no INA3221 rails, "
                "or they need root)"
            )
        raise MeterError(
            f"tegrastats at {self.path!r} printed nothing within {self.first_sample_timeout_s} s"
        )

    def stop(self) -> EnergyWindow:
        """Close the window: energy in J, duration in s, mean power in mW over [start, stop]."""
        if self._proc is None or self._t0 is None:
            raise RuntimeError("TegrastatsMeter.stop() called without start()")
        t0, t1 = self._t0, time.monotonic()
        wait_s = max(3 * self.interval_ms / 1000.0, 0.5)
        with self._cond:
            self._cond.wait_for(
                lambda: self._eof_at is not None or self._samples[-1][0] >= t1, timeout=wait_s
            )
            samples = list(self._samples)
            eof_at = self._eof_at
        if eof_at is not None and eof_at <= t1:
            detail = self._describe_exit()
            self.close()
            raise MeterError(
                f"tegrastats at {self.path!r} died during the measurement window, "
                f"{eof_at - t0:.2f} s after start ({detail})"
            )
        self.close()
        return window_energy(samples, t0, t1)

    def close(self) -> None:
        """Terminate tegrastats (SIGTERM, then SIGKILL after ``kill_timeout_s`` s) and clean up."""
        proc, self._proc, self._t0 = self._proc, None, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self.kill_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for thread, stream in zip(self._threads, (proc.stdout, proc.stderr), strict=False):
            thread.join(timeout=1.0)
            # A reader still blocked (a grandchild holding the pipe) keeps its stream: closing
            # it would block on the reader's buffer lock. The reader threads are daemons.
            if stream is not None and not thread.is_alive():
                stream.close()
        self._threads = []

"""A periodic one-line progress report with the time remaining, for long work (torch-free; used by the
evaluation loop, the `sde` studies and figures, and the benchmarks), and a duration as the console prints it."""

from __future__ import annotations

import sys
import time


class Progress:
    """`update(done)` prints `[label] 42.0%  elapsed 12.3s  remaining 17.0s  note` at most every `every_s`
    seconds (always when `force`), to `stream` (stderr by default: safe in CI logs)."""

    def __init__(self, total: float, label: str = "", every_s: float = 5.0, stream=None, unit: str = ""):
        self.total, self.label, self.every, self.unit = max(total, 1e-12), label, every_s, unit
        self.stream = stream or sys.stderr
        self.t0 = self.last = time.perf_counter()
        self.done = 0.0

    def update(self, done: float, note: str = "", force: bool = False) -> None:
        self.done = done
        now = time.perf_counter()
        if not force and now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.t0
        frac = min(done / self.total, 1.0)
        remaining_s = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        count = f" {done:g}/{self.total:g} {self.unit}" if self.unit else ""
        print(f"[{self.label}] {100 * frac:5.1f}%{count}  elapsed {elapsed:6.1f}s  remaining {remaining_s:6.1f}s"
              f"  {note}".rstrip(), file=self.stream, flush=True)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")

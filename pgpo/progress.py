"""A periodic one-line progress report with the time remaining, for long work (torch-free; used by the
evaluation loop and by the `sde` studies)."""

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


def step_line(rec: dict, max_steps: int) -> str:
    """One compact console line for a `train` record of the run log (pgpo.runlog):
    `step 3/8  loss 0.123  reward 0.25  I 0.181  m 1.36  lr 1.0e-05  4.1 s/step  ETA 20s` (with `Ibar` and `w`, the
    mean loss weight, after I when a variant logs them)."""
    def num(key, fmt):
        v = rec.get(key)
        return "n/a" if v is None else format(v, fmt)
    step = rec["step"]
    per_step = rec["elapsed_s"] / step if rec.get("elapsed_s") and step else None
    eta = "n/a" if per_step is None else duration(per_step * max(max_steps - step, 0))
    dt = rec.get("step_time_s")
    extra = "".join(f"  {label} {num(key, '.3g')}" for key, label in (("info_ema", "Ibar"), ("weight_mean", "w"))
                    if rec.get(key) is not None)          # the variants' moving average / mean loss weight
    return (f"step {step}/{max_steps}  loss {num('loss', '.4g')}  reward {num('reward_mean', '.3g')}  "
            f"I {num('info', '.3g')}{extra}  m {num('multiplier', '.3g')}  lr {num('lr', '.2e')}  "
            f"{'n/a' if dt is None else f'{dt:.1f}'} s/step  ETA {eta}")

"""Stability monitor: flag (and optionally stop) a collapsing run, keeping its best checkpoint.

Collapse signals, each checked over `patience` consecutive observations:
  accuracy  validation mean@k below (best so far - accuracy_drop)
  length    moving average of the mean completion length below length_ratio x its reference (the average
            of the first `window` training steps)
  entropy   the same for the student's token entropy (top-k + tail support, `pgpo/entropy` metric)
On a collapse the monitor writes {"kind": "collapse", ...} to the step log, warns, and with `stop: true`
ends training. Whenever validation reaches a new best, a checkpoint is forced at that step and recorded as
the trainer's best checkpoint, which checkpoint rotation never deletes; a best at step 0 (the initial model,
`eval.at_start`) is recorded as the best step with no checkpoint folder (the initial model is the model path).

Plain Python (no transformers): the decisions are testable on the core install; the Trainer callback is
`pgpo.callbacks.MonitorCallback`, which adds only the base class.
"""

from __future__ import annotations

import logging
import os
from collections import deque

logger = logging.getLogger(__name__)


class StabilityMonitor:
    def __init__(self, settings, steplog=None, trainer=None):
        self.s = settings
        self.steplog, self.trainer = steplog, trainer
        self.best = None
        self.best_step = None
        self.flagged: list[dict] = []
        self._bad_acc = 0
        self._series = {"length": [], "entropy": []}
        self._recent = {k: deque(maxlen=settings.window) for k in self._series}
        self._bad = {"length": 0, "entropy": 0}
        self._pending_save = False
        self._stop = False

    # -- observations ---------------------------------------------------------------------------------
    def observe_eval(self, step: int, value: float) -> None:
        if value is None:
            return
        if self.best is None or value > self.best:
            self.best, self.best_step = value, step
            self._pending_save = True
            self._bad_acc = 0
            return
        if value < self.best - self.s.accuracy_drop:
            self._bad_acc += 1
            if self._bad_acc >= self.s.patience:
                self._flag(step, "accuracy", f"mean@k {value:.4f} < best {self.best:.4f} (step {self.best_step}) - "
                                             f"{self.s.accuracy_drop}")
        else:
            self._bad_acc = 0

    def observe_train(self, step: int, length: float | None, entropy: float | None) -> None:
        for key, v, ratio in (("length", length, self.s.length_ratio), ("entropy", entropy, self.s.entropy_ratio)):
            if v is None:
                continue
            self._series[key].append(v)
            self._recent[key].append(v)
            ref_vals = self._series[key][: self.s.window]
            if len(self._series[key]) <= self.s.window:
                continue
            ref = sum(ref_vals) / len(ref_vals)
            avg = sum(self._recent[key]) / len(self._recent[key])
            if ref > 0 and avg < ratio * ref:
                self._bad[key] += 1
                if self._bad[key] >= self.s.patience:
                    self._flag(step, key, f"moving average {avg:.4g} < {ratio} x reference {ref:.4g}")
            else:
                self._bad[key] = 0

    def _flag(self, step: int, signal: str, why: str) -> None:
        rec = {"kind": "collapse", "step": step, "signal": signal, "reason": why, "best_step": self.best_step,
               "best_mean_at_k": self.best, "stopping": bool(self.s.stop)}
        if any(f["signal"] == signal for f in self.flagged):
            return                                             # report each signal once
        self.flagged.append(rec)
        logger.warning("stability monitor: %s collapse at step %d: %s%s", signal, step, why,
                       "; stopping" if self.s.stop else "")
        if self.steplog is not None and self._is_main():
            self.steplog.write(rec)
        if self.s.stop:
            self._stop = True

    # -- checkpointed state (a resumed run continues the same decisions) --------------------------------------
    def export(self) -> dict:
        """What the decisions depend on, as JSON: the best so far, the bad-observation counters, the series."""
        return {"best": self.best, "best_step": self.best_step, "flagged": self.flagged, "bad_acc": self._bad_acc,
                "series": self._series, "bad": self._bad, "stop": self._stop}

    def restore(self, saved: dict) -> None:
        self.best, self.best_step = saved["best"], saved["best_step"]
        self.flagged, self._bad_acc = list(saved["flagged"]), int(saved["bad_acc"])
        self._series = {k: list(v) for k, v in saved["series"].items()}
        self._recent = {k: deque(v[-self.s.window:], maxlen=self.s.window) for k, v in self._series.items()}
        self._bad, self._stop = dict(saved["bad"]), bool(saved["stop"])

    def _is_main(self) -> bool:
        return self.trainer is None or self.trainer.accelerator.is_main_process

    # -- trainer hooks (called through MonitorCallback) -----------------------------------------------------
    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.observe_train(state.global_step, logs.get("completions/mean_length"), logs.get("pgpo/entropy"))
        if self._stop:
            control.should_training_stop = True
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self._pending_save:
            self._pending_save = False
            state.best_global_step, state.best_metric = self.best_step, self.best
            if self.best_step:                   # a checkpoint at the best step, forced now, protected from rotation
                control.should_save = True
                state.best_model_checkpoint = os.path.join(args.output_dir, f"checkpoint-{self.best_step}")
            else:                                # the initial model (eval.at_start) is model.name_or_path: no folder
                state.best_model_checkpoint = None
        if self._stop:
            control.should_training_stop = True
            control.should_save = True
        return control

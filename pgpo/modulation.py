"""PGPO's variants beyond the paper, as rules shared by the trainer and the SDE toolkit (torch-free).

The paper's rule is m_k = m_alpha(I_k) with m_alpha(I) = min(1 + alpha I, m_max) (pgpo.multiplier). Three
variants change what enters m or where m acts:

smoothed I
    Ibar_k, an exponential moving average of I_k with weight w per step, bias-corrected (as Adam's moments):

        S_k = (1 - w) S_{k-1} + w I_k,  S_0 = 0,      Ibar_k = S_k / (1 - (1 - w)^k)

    so Ibar_1 = I_1 and Ibar_k is a normalised weighted mean of I_1..I_k. Computed here by the equivalent
    recursion Ibar_k = Ibar_{k-1} + lambda_k (I_k - Ibar_{k-1}), lambda_k = w / (1 - (1 - w)^k). In the trainer
    w = 1 / pgpo.ema_steps (a time constant in optimizer steps); in the SDE toolkit w = eta / tau (a time constant
    tau in SDE time), whose limit is the augmented system dS = (I(Theta) - S) / tau dt, Ibar = S / (1 - exp(-t/tau)),
    i.e. dIbar = (I - Ibar) / (tau (1 - exp(-t/tau))) dt: rate 1/t at the start, 1/tau once t >> tau (sde.variants).
    With `signal: smoothed` the step uses m_k = m_alpha(Ibar_k). A noisy I_k biases the paper's drift by the Jensen
    gap E[m(I_B)] - m(I), which does not shrink with eta. Ibar_k averages about 1 / w steps: its variance is O(w)
    (spread O(sqrt(w))), so the gap E[m(Ibar)] - m(E Ibar) is O(w) where m is smooth; at the clipped m's kink it is
    O(sqrt(w)) locally, but a path spends only O(sqrt(w)) time near the kink, so the drift bias integrates to O(w).
scale-free sensitivity
    m_k = m_beta(I_k / Ibar_k) = min(1 + beta I_k / Ibar_k, m_max): beta is dimensionless (I in nats/token, or a
    toy loss's units, cancels), so one beta can transfer across domains and models. I_k / Ibar_k is the step's
    information relative to its recent history; at k = 1 it is 1. With `signal: smoothed` the numerator is Ibar_k
    too, which makes m constant (1 + beta, capped): refused by the settings.
per-sample / per-token modulation
    not a step multiplier but loss weights w = m_alpha(I_i) (per completion) or m_alpha(I_t) (per distilled token),
    detached; optionally normalised so that the loss's own average of the weights is 1 (a re-weighting: a loss equal on
    every token keeps its value). The torch side is pgpo.token_weights; the SDE side sde.variants.

Every rule reduces to SDPO / SGD exactly when its sensitivity is 0 (the multiplier is the identity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import numpy as np

from pgpo.multiplier import Multiplier

ArrayLike = Union[float, np.ndarray]

SIGNALS = ("raw", "smoothed")
GRANULARITIES = ("batch", "sample", "token")


class InfoEMA:
    """The bias-corrected moving average Ibar_k of I_k (module docstring), for a float I or an array of per-path I
    (updated in place). `weight` in (0, 1]; 1 makes Ibar_k = I_k."""

    def __init__(self, weight: float):
        if not (isinstance(weight, (int, float)) and 0.0 < float(weight) <= 1.0):
            raise ValueError(f"the moving-average weight must be in (0, 1], got {weight!r}")
        self.weight = float(weight)
        self.steps = 0
        self.value: ArrayLike | None = None

    def rate(self, step: int) -> float:
        """lambda_k = w / (1 - (1 - w)^k): 1 at k = 1, tending to w."""
        return self.weight / -math.expm1(step * math.log1p(-self.weight)) if self.weight < 1.0 else 1.0

    def update(self, info: ArrayLike) -> ArrayLike:
        """Fold in I_k (a finite float, or an array); returns Ibar_k (the array is updated in place)."""
        self.steps += 1
        lam = self.rate(self.steps)
        if isinstance(info, np.ndarray):
            if self.value is None or self.steps == 1:
                self.value = np.array(info, dtype=float, copy=True)
            else:
                self.value += lam * (info - self.value)
            return self.value
        info = float(info)
        if not math.isfinite(info):
            raise ValueError(f"Ibar takes finite I only, got {info!r}")
        self.value = info if self.steps == 1 else self.value + lam * (info - self.value)
        return self.value

    def state_dict(self) -> dict:
        if isinstance(self.value, np.ndarray):
            raise TypeError("only the scalar moving average is checkpointed")
        return {"weight": self.weight, "steps": self.steps, "value": self.value}

    def load_state_dict(self, state: dict) -> None:
        if float(state["weight"]) != self.weight:
            raise ValueError(f"checkpointed Ibar has weight {state['weight']} but this run uses {self.weight}: the "
                             "moving average would not resume exactly (pgpo.ema_steps changed)")
        self.steps = int(state["steps"])
        self.value = None if state["value"] is None else float(state["value"])


def relative_info(info: ArrayLike, ibar: ArrayLike) -> ArrayLike:
    """I / Ibar, 0 where Ibar <= 0 (only when every I so far was <= 0: nothing to be relative to)."""
    if isinstance(info, np.ndarray) or isinstance(ibar, np.ndarray):
        info, ibar = np.asarray(info, float), np.asarray(ibar, float)
        out = np.zeros(np.broadcast(info, ibar).shape)
        np.divide(info, ibar, out=out, where=ibar > 0)
        return out
    return float(info) / float(ibar) if ibar > 0 else 0.0


@dataclass(frozen=True)
class StepRule:
    """m_k from I_k and Ibar_k for the batch-level variants: `mult` is m_alpha (absolute) or m_beta (scale_free);
    `signal` says whether I_k or Ibar_k enters it."""

    mult: Multiplier
    signal: str = "raw"
    scale_free: bool = False

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise ValueError(f"signal must be one of {SIGNALS}, got {self.signal!r}")
        if self.scale_free and self.signal == "smoothed":
            raise ValueError("a scale-free rule with the smoothed signal is the constant 1 + beta: use signal raw")

    @property
    def needs_ema(self) -> bool:
        return self.scale_free or self.signal == "smoothed"

    def __call__(self, info: ArrayLike, ibar: ArrayLike | None = None, out: np.ndarray | None = None) -> ArrayLike:
        if self.needs_ema and ibar is None:
            raise ValueError("this rule needs Ibar")
        x = ibar if self.signal == "smoothed" else info
        if self.scale_free:
            x = relative_info(x, ibar)
        if isinstance(x, np.ndarray):
            return self.mult(x, out=out)
        return float(self.mult(x))

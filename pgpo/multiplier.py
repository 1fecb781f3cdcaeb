"""The physics-guided step multiplier m(I) (paper Eq. 9) and its smooth variant.

    clipped_linear:  m(I) = min(1 + alpha * I, m_max)                       (the paper's rule)
    smooth:          m(I) = 1 + (m_max - 1) * tanh(alpha * I / (m_max - 1))

Both map an information signal I >= 0 into [1, m_max], are non-decreasing in I and Lipschitz with
constant alpha, which is all Theorem A.2 asks of m. A negative I (an estimation artefact: mutual
information is non-negative) is treated as 0, so m never drops below the baseline step.

This module is pure Python + NumPy: `import pgpo.multiplier` must not pull in torch.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Literal, Union

import numpy as np

Shape = Literal["clipped_linear", "smooth"]
SHAPES: tuple[str, ...] = typing.get_args(Shape)       # the shapes, declared once (Shape)
DEFAULT_M_MAX = 2.0              # the cap used wherever none is given (trainer settings, sde panels)

ArrayLike = Union[float, int, np.ndarray]


def validate(alpha: float, m_max: float, shape: str = "clipped_linear") -> None:
    """Raise ValueError naming the offending field when (alpha, m_max, shape) is not a valid multiplier."""
    if shape not in SHAPES:
        raise ValueError(f"multiplier shape must be one of {SHAPES}, got {shape!r}")
    for name, value in (("alpha", alpha), ("m_max", m_max)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise ValueError(f"{name} must be a real number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")
    if m_max < 1:
        raise ValueError(f"m_max must be >= 1, got {m_max!r}")


@dataclass(frozen=True)
class Multiplier:
    """m(I) for one (shape, alpha, m_max). Call it on a float or on a NumPy array of I values."""

    alpha: float
    m_max: float
    shape: Shape = "clipped_linear"

    def __post_init__(self) -> None:
        validate(self.alpha, self.m_max, self.shape)

    @property
    def is_identity(self) -> bool:
        """True when m(I) == 1 for every I (alpha = 0 or m_max = 1): plain SGD / SDPO."""
        return self.alpha == 0 or self.m_max == 1

    def __call__(self, info: ArrayLike, out: np.ndarray | None = None) -> ArrayLike:
        if isinstance(info, np.ndarray):
            return self._array(info, out)
        if out is not None:
            raise TypeError("out= is only supported for numpy array input")
        return self._scalar(float(info))

    # -- scalar path (exact same arithmetic as the array path, in Python floats) -------------------
    def _scalar(self, info: float) -> float:
        if math.isnan(info):
            raise ValueError("information signal I is NaN; filter non-finite I before calling m(I)")
        info = max(info, 0.0)
        if self.is_identity:
            return 1.0
        if self.shape == "clipped_linear":
            return min(1.0 + self.alpha * info, float(self.m_max))
        span = self.m_max - 1.0
        return 1.0 + span * math.tanh(self.alpha * info / span)

    # -- vectorised path: in place into `out` when given ------------------------------------------
    def _array(self, info: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        if np.isnan(info).any():
            raise ValueError("information signal I contains NaN; filter non-finite I before calling m(I)")
        if out is None:
            out = np.empty(info.shape, dtype=np.result_type(info.dtype, np.float64))
        if self.is_identity:
            out.fill(1.0)
            return out
        np.maximum(info, 0.0, out=out)
        if self.shape == "clipped_linear":
            out *= self.alpha
            out += 1.0
            np.minimum(out, self.m_max, out=out)
            return out
        span = self.m_max - 1.0
        out *= self.alpha / span
        np.tanh(out, out=out)
        out *= span
        out += 1.0
        return out

    def derivative(self, info: ArrayLike, below_kink: bool | None = None) -> ArrayLike:
        """m'(I), elementwise: 0 for I <= 0 (m is flat at 1 there). The clipped m has a kink at 1 + alpha I = m_max:
        `below_kink` picks the one-sided derivative there (True: alpha, False: 0); None decides from I itself (the
        cap side, 0, at the kink)."""
        arr = np.asarray(info, dtype=float)
        if self.is_identity:
            d = np.zeros_like(arr)
        elif self.shape == "clipped_linear":
            below = (1.0 + self.alpha * arr < self.m_max) if below_kink is None else np.full(arr.shape, bool(below_kink))
            d = np.where((arr > 0) & below, self.alpha, 0.0)
        else:
            span = self.m_max - 1.0
            d = np.where(arr > 0, self.alpha / np.cosh(self.alpha * np.maximum(arr, 0.0) / span) ** 2, 0.0)
        return d if isinstance(info, np.ndarray) else float(d)

    def on(self, info):
        """m(I) elementwise on a torch tensor (float64; negative I as 0), the rule of __call__ with the tensor's own
        operations, so that the values stay on its device. torch is imported by the caller, never here."""
        x = info.double().clamp(min=0.0)
        if self.is_identity:
            return x * 0.0 + 1.0
        if self.shape == "clipped_linear":
            return (1.0 + self.alpha * x).clamp(max=float(self.m_max))
        span = self.m_max - 1.0
        return 1.0 + span * (self.alpha * x / span).tanh()


def multiplier(info: ArrayLike, alpha: float, m_max: float, shape: Shape = "clipped_linear") -> ArrayLike:
    """Functional form: m(I) for the given shape and parameters."""
    return Multiplier(alpha=alpha, m_max=m_max, shape=shape)(info)


def alpha_grid_for_span(info_typical: float, m_max: float, fractions=(0.25, 1.0, 4.0)) -> list[float]:
    """Sensitivities that put a typical I at the given fractions of the multiplier's range.

    alpha = f * (m_max - 1) / I_typical: f = 1 reaches the cap exactly at the typical I, f < 1 stays in the
    linear part, f > 1 saturates most steps. Used to choose a documented alpha grid from measured I_k.
    """
    if not (info_typical > 0 and math.isfinite(info_typical)):
        raise ValueError(f"info_typical must be a positive finite number, got {info_typical!r}")
    validate(0.0, m_max)
    if m_max == 1:
        raise ValueError("m_max = 1 makes every alpha equivalent; choose m_max > 1")
    return [float(f) * (m_max - 1.0) / info_typical for f in fractions]

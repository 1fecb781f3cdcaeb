"""PGPO's settings, declared once: the `pgpo:` section of a run config, the `pgpo` field of PGPOConfig and
the input of PGPOController are this one object (torch-free).

    m_k = m(I_k),  m = min(1 + alpha I, m_max) ("clipped_linear", the paper's)
                   or 1 + (m_max - 1) tanh(alpha I / (m_max - 1)) ("smooth")

The variants (pgpo.modulation explains each):
    ema_steps: n        Ibar_k, the bias-corrected moving average of I_k with weight 1/n per optimizer step
    signal: smoothed    m_k = m(Ibar_k) instead of m(I_k)                                   (needs ema_steps)
    beta: b             scale-free: m_k = min(1 + b I_k / Ibar_k, m_max); alpha must be 0  (needs ema_steps)
    granularity:        batch (the step is multiplied by m_k), or sample / token: loss weights m(I_i) per
                        completion / m(I_t) per distilled token, detached, and the step is not multiplied
    normalize: true     sample / token weights divided by the loss's own average of them (all ranks)

`alpha` is PGPO's *sensitivity* (alpha = 0 is plain SDPO; I_k is still measured and logged). It is not the
SDPO loss's JSD weight (`training.distillation_alpha`): when the I_k estimator is the loss's own divergence
("sdpo_divergence") it takes that weight from the loss, so the two can never differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from pgpo.modulation import GRANULARITIES, SIGNALS, StepRule
from pgpo.multiplier import DEFAULT_M_MAX, SHAPES, Multiplier, Shape
from runtools.schema import ConfigError, positive

ESTIMATORS = ("kl_teacher_student", "kl_student_teacher", "sdpo_divergence")
REDUCTIONS = ("token_mean", "sample_mean")


@dataclass
class PGPOSettings:
    alpha: float = 0.0                      # sensitivity of m(I); 0 = plain SDPO
    m_max: float = DEFAULT_M_MAX            # cap of m
    shape: Shape = "clipped_linear"
    # m(I): min(1 + alpha I, m_max), or a smooth saturation with the same slope at 0
    estimator: Literal["kl_teacher_student", "kl_student_teacher", "sdpo_divergence"] = "kl_teacher_student"
    # the information signal I_k (token KLs between teacher and student)
    reduction: Literal["token_mean", "sample_mean"] = "token_mean"
    # average I over tokens (token_mean) or per sample first (sample_mean)
    chunk_size: int = 128                   # sequence chunk for I_k from full-vocabulary logits
    beta: float = 0.0                       # scale-free sensitivity: m = min(1 + beta I / Ibar, m_max)
    ema_steps: Optional[float] = None       # time constant of Ibar in optimizer steps (weight 1 / ema_steps)
    signal: Literal["raw", "smoothed"] = "raw"  # raw: m(I_k); smoothed: m(Ibar_k)
    granularity: Literal["batch", "sample", "token"] = "batch"  # one m_k per batch, or per-sample / per-token weights
    normalize: bool = True                  # sample / token weights: the loss's average of them made 1

    def validate(self, where: str = "pgpo") -> "PGPOSettings":
        if not self.alpha >= 0:
            raise ConfigError(f"{where}.alpha: must be >= 0, got {self.alpha}")
        if not self.m_max >= 1:
            raise ConfigError(f"{where}.m_max: must be >= 1, got {self.m_max}")
        for name, allowed in (("shape", SHAPES), ("estimator", ESTIMATORS), ("reduction", REDUCTIONS),
                              ("signal", SIGNALS), ("granularity", GRANULARITIES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{where}.{name}: must be one of {list(allowed)}, got {getattr(self, name)!r}")
        positive(where, "chunk_size", self.chunk_size)
        if not self.beta >= 0:
            raise ConfigError(f"{where}.beta: must be >= 0, got {self.beta}")
        if self.beta > 0 and self.alpha > 0:
            raise ConfigError(f"{where}.beta: the scale-free sensitivity replaces alpha; set alpha: 0 (got alpha "
                              f"{self.alpha} and beta {self.beta})")
        if self.ema_steps is not None and not self.ema_steps >= 1:
            raise ConfigError(f"{where}.ema_steps: the moving average's time constant must be >= 1 optimizer step, "
                              f"got {self.ema_steps}")
        if (self.beta > 0 or self.signal == "smoothed") and self.ema_steps is None:
            raise ConfigError(f"{where}.ema_steps: required by " + ("beta > 0 (I_k is divided by its moving average)"
                              if self.beta > 0 else "signal: smoothed (m is taken of the moving average)"))
        if self.beta > 0 and self.signal == "smoothed":
            raise ConfigError(f"{where}.signal: with beta the smoothed signal makes m the constant 1 + beta "
                              "(Ibar / Ibar); use signal: raw")
        if self.granularity != "batch" and (self.beta > 0 or self.signal == "smoothed"):
            raise ConfigError(f"{where}.granularity: sample / token weights use alpha on each sample's or token's "
                              "own I; beta and signal: smoothed modulate the batch step (granularity: batch)")
        return self

    @property
    def sensitivity(self) -> float:
        """alpha, or beta for the scale-free rule; 0 means plain SDPO."""
        return self.beta if self.beta > 0 else self.alpha

    @property
    def is_sdpo(self) -> bool:
        """True when no variant changes SDPO's update (every m or weight is 1)."""
        return self.multiplier().is_identity

    def multiplier(self) -> Multiplier:
        """m_alpha, or m_beta for the scale-free rule (applied to I / Ibar)."""
        return Multiplier(self.sensitivity, self.m_max, self.shape)

    def step_rule(self) -> StepRule:
        """m_k from (I_k, Ibar_k) for granularity batch (pgpo.modulation.StepRule)."""
        return StepRule(self.multiplier(), signal=self.signal, scale_free=self.beta > 0)

    def label(self) -> str:
        """A short name for tables and legends: SDPO, PGPO α=10, PGPO β=0.5 (scale-free, Ibar 10 steps), ..."""
        if self.is_sdpo:
            return "SDPO"
        parts = []
        if self.signal == "smoothed":
            parts.append(f"smoothed I, {self.ema_steps:g} steps")
        if self.beta > 0:
            parts.append(f"scale-free, Ibar {self.ema_steps:g} steps")
        if self.granularity != "batch":
            parts.append(f"per {self.granularity}" + ("" if self.normalize else ", unnormalised"))
        head = f"PGPO {'β' if self.beta > 0 else 'α'}={self.sensitivity:g}"
        return head + (f" ({'; '.join(parts)})" if parts else "")

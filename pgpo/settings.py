"""PGPO's settings, declared once: the `pgpo:` section of a run config, the `pgpo` field of PGPOConfig and
the input of PGPOController are this one object (torch-free).

    m_k = m(I_k),  m = min(1 + alpha I, m_max) ("clipped_linear", the paper's)
                   or 1 + (m_max - 1) tanh(alpha I / (m_max - 1)) ("smooth")

`alpha` is PGPO's *sensitivity* (alpha = 0 is plain SDPO; I_k is still measured and logged). It is not the
SDPO loss's JSD weight (`sdpo.distillation_alpha`): when the I_k estimator is the loss's own divergence
("sdpo_divergence") it takes that weight from the loss, so the two can never differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pgpo.multiplier import DEFAULT_M_MAX, SHAPES, Multiplier
from pgpo.schema import ConfigError, positive

ESTIMATORS = ("kl_teacher_student", "kl_student_teacher", "sdpo_divergence")
REDUCTIONS = ("token_mean", "sample_mean")


@dataclass
class PGPOSettings:
    alpha: float = 0.0                      # sensitivity of m(I); 0 = plain SDPO
    m_max: float = DEFAULT_M_MAX            # cap of m
    shape: Literal["clipped_linear", "smooth"] = "clipped_linear"
    estimator: Literal["kl_teacher_student", "kl_student_teacher", "sdpo_divergence"] = "kl_teacher_student"
    reduction: Literal["token_mean", "sample_mean"] = "token_mean"
    chunk_size: int = 128                   # sequence chunk for I_k from full-vocabulary logits

    def validate(self, where: str = "pgpo") -> "PGPOSettings":
        if not self.alpha >= 0:
            raise ConfigError(f"{where}.alpha: must be >= 0, got {self.alpha}")
        if not self.m_max >= 1:
            raise ConfigError(f"{where}.m_max: must be >= 1, got {self.m_max}")
        for name, allowed in (("shape", SHAPES), ("estimator", ESTIMATORS), ("reduction", REDUCTIONS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{where}.{name}: must be one of {list(allowed)}, got {getattr(self, name)!r}")
        positive(where, "chunk_size", self.chunk_size)
        return self

    def multiplier(self) -> Multiplier:
        return Multiplier(self.alpha, self.m_max, self.shape)

"""PGPOController: from student/teacher outputs to an exactly applied m_k, identical on every rank.

Per optimizer step:
    controller.observe_logits(student_logits, teacher_logits, mask)   # each micro-batch (or observe_topk)
    decision = controller.finalize()                                  # before the step (before the last
                                                                      # backward under DeepSpeed)
    optimizer.step()                                                  # the hooks apply decision.multiplier

A step whose I is non-finite, could not be computed, or has no distilled token uses m = 1; it is counted
and logged, and never touches the optimizer state. A step whose *gradient* norm is non-finite is skipped
altogether (pgpo.optim.NonFiniteStepGuard): no update, no moments, no history entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from pgpo.distributed import InfoAccumulator
from pgpo.information import ESTIMATORS, REDUCTIONS, InfoStats, information_from_logits, information_from_topk
from pgpo.multiplier import Multiplier
from pgpo.optim import NonFiniteStepGuard, StepModulator

logger = logging.getLogger(__name__)


@dataclass
class PGPOSettings:
    """PGPO's own knobs. alpha = 0 is plain SDPO (I is still measured and logged)."""

    alpha: float = 0.0
    m_max: float = 2.0
    shape: str = "clipped_linear"
    estimator: str = "kl_teacher_student"
    reduction: str = "token_mean"
    jsd_alpha: float = 0.5          # only for estimator = "sdpo_divergence"
    chunk_size: int = 128           # sequence chunk for full-vocabulary logits

    def validate(self) -> None:
        Multiplier(self.alpha, self.m_max, self.shape)   # names alpha / m_max / shape on error
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"pgpo.estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"pgpo.reduction must be one of {REDUCTIONS}, got {self.reduction!r}")
        if not 0.0 <= self.jsd_alpha <= 1.0:
            raise ValueError(f"pgpo.jsd_alpha must be in [0, 1], got {self.jsd_alpha!r}")
        if int(self.chunk_size) < 1:
            raise ValueError(f"pgpo.chunk_size must be >= 1, got {self.chunk_size!r}")


@dataclass
class StepDecision:
    multiplier: float
    info: float | None
    fallback: str | None
    tokens: float


class PGPOController:
    def __init__(self, optimizer: torch.optim.Optimizer, settings: PGPOSettings, group=None, device=None):
        settings.validate()
        self.settings = settings
        self.multiplier = Multiplier(settings.alpha, settings.m_max, settings.shape)
        self.modulator = StepModulator(optimizer)
        self.guard = NonFiniteStepGuard(optimizer, on_skip=self.modulator.discard)   # installed after the hooks
        self.accumulator = InfoAccumulator()
        self.group, self.device = group, device
        self.last: StepDecision | None = None

    # -- per micro-batch ---------------------------------------------------------------------------------
    def observe(self, stats: InfoStats) -> None:
        self.accumulator.add(stats)

    def observe_logits(self, student_logits, teacher_logits, mask) -> None:
        s = self.settings
        self._observe_safely(lambda: information_from_logits(
            student_logits, teacher_logits, mask, estimator=s.estimator, reduction=s.reduction,
            jsd_alpha=s.jsd_alpha, chunk_size=s.chunk_size))

    def observe_topk(self, student_logp, teacher_logp, mask, *, add_tail: bool = True, final_support: bool = False):
        s = self.settings
        self._observe_safely(lambda: information_from_topk(
            student_logp, teacher_logp, mask, add_tail=add_tail, final_support=final_support,
            estimator=s.estimator, reduction=s.reduction, jsd_alpha=s.jsd_alpha))

    def _observe_safely(self, compute) -> None:
        try:
            stats = compute()
        except Exception as exc:  # a failure costs this step its modulation, never the run
            logger.warning("PGPO: computing I failed on a micro-batch (%s: %s); this step uses m = 1",
                           type(exc).__name__, exc)
            self.accumulator.add_failure()
            return
        self.observe(stats)

    # -- per optimizer step ------------------------------------------------------------------------------
    def finalize(self) -> StepDecision:
        """Reduce the step's statistics over micro-batches and ranks, choose m_k and arm the optimizer."""
        stats = self.accumulator.reduce(self.group, self.device)
        info = stats.value if stats.ok else None
        fallback = None
        if stats.failed > 0:
            fallback = f"I could not be computed on {int(stats.failed)} micro-batch(es)"
        elif stats.nonfinite > 0:
            fallback = f"non-finite divergence on {int(stats.nonfinite)} token(s)"
        elif stats.count == 0:
            fallback = "no distilled tokens in this step"
        if fallback is None:
            m = float(self.multiplier(info))
        else:
            m = 1.0
            level = logging.INFO if stats.count == 0 and stats.failed == 0 and stats.nonfinite == 0 else logging.WARNING
            logger.log(level, "PGPO: m = 1 for this step (%s)", fallback)
        m = self.modulator.arm(m, info=info, fallback=fallback)
        self.last = StepDecision(m, info, fallback, stats.count)
        return self.last

    def state_dict(self) -> dict:
        return {"modulator": self.modulator.state_dict(), "guard": self.guard.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.modulator.load_state_dict(state["modulator"])
        self.guard.load_state_dict(state.get("guard", {}))

"""PGPOController: from student/teacher outputs to an exactly applied m_k, identical on every rank.

Per optimizer step:
    controller.observe_logits(student_logits, teacher_logits, mask)   # each micro-batch (or observe_topk)
    decision = controller.finalize()                                  # before the step (before the last
                                                                      # backward under DeepSpeed)
    optimizer.step()                                                  # the hooks apply decision.multiplier

A step whose I is non-finite or has no distilled token uses m = 1 (the two cases the design names); it is
counted and logged, and never touches the optimizer state. Anything else that goes wrong while computing I
(a shape bug, say) raises: it must not silently turn PGPO into SDPO for a whole run. A step whose
*gradient* norm is non-finite is skipped altogether (pgpo.optim.NonFiniteStepGuard): no update, no
moments, no history entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from pgpo.distributed import InfoAccumulator
from pgpo.information import InfoStats, information_from_logits, information_from_topk
from pgpo.optim import NonFiniteStepGuard, StepModulator
from pgpo.settings import PGPOSettings

logger = logging.getLogger(__name__)


@dataclass
class StepDecision:
    multiplier: float
    info: float | None
    fallback: str | None
    tokens: float


class PGPOController:
    """`settings` (validated once, here) choose m(I), the estimator and the reduction; `jsd_weight` is the SDPO
    loss's JSD weight, used when the estimator is the loss's own divergence. With `per_engine_step` the caller
    ends each optimizer step with `end_step()` (the trainer does, so that DeepSpeed's one step() call per
    parameter group all get the same m and the same skip decision); `norm_source` gives the guard a global
    gradient norm (DeepSpeed's)."""

    def __init__(self, optimizer: torch.optim.Optimizer, settings: PGPOSettings, jsd_weight: float = 0.5,
                 group=None, device=None, per_engine_step: bool = False, norm_source=None):
        self.settings = settings.validate()
        self.jsd_weight = float(jsd_weight)
        self.multiplier = settings.multiplier()
        self.modulator = StepModulator(optimizer, per_engine_step=per_engine_step)
        self.guard = NonFiniteStepGuard(optimizer, on_skip=self.modulator.discard, per_engine_step=per_engine_step,
                                        norm_source=norm_source)                  # installed after the hooks
        self.accumulator = InfoAccumulator()
        self.group, self.device = group, device

    # -- per micro-batch ---------------------------------------------------------------------------------
    def observe(self, stats: InfoStats) -> None:
        self.accumulator.add(stats)

    def observe_logits(self, student_logits, teacher_logits, mask) -> None:
        s = self.settings
        self.observe(information_from_logits(student_logits, teacher_logits, mask, estimator=s.estimator,
                                             reduction=s.reduction, jsd_weight=self.jsd_weight,
                                             chunk_size=s.chunk_size))

    def observe_topk(self, student_logp, teacher_logp, mask, *, add_tail: bool = True, final_support: bool = False):
        s = self.settings
        self.observe(information_from_topk(student_logp, teacher_logp, mask, add_tail=add_tail,
                                           final_support=final_support, estimator=s.estimator,
                                           reduction=s.reduction, jsd_weight=self.jsd_weight))

    # -- per optimizer step ------------------------------------------------------------------------------
    def finalize(self) -> StepDecision:
        """Reduce the step's statistics over micro-batches and ranks, choose m_k and arm the optimizer."""
        stats = self.accumulator.reduce(self.group, self.device)
        info = stats.value if stats.ok else None
        fallback = None
        if stats.nonfinite > 0:
            fallback = f"non-finite divergence on {int(stats.nonfinite)} token(s)"
        elif stats.count == 0:
            fallback = "no distilled tokens in this step"
        if fallback is None:
            m = float(self.multiplier(info))
        else:
            m = 1.0
            logger.log(logging.INFO if stats.nonfinite == 0 else logging.WARNING, "PGPO: m = 1 for this step (%s)",
                       fallback)
        m = self.modulator.arm(m, info=info, fallback=fallback)
        return StepDecision(m, info, fallback, stats.count)

    def end_step(self) -> None:
        """After the engine's optimizer step (per_engine_step): record it once, reset the guard's decision."""
        self.modulator.end_step()
        self.guard.end_step()

    def state_dict(self) -> dict:
        return {"modulator": self.modulator.state_dict(), "guard": self.guard.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.modulator.load_state_dict(state["modulator"])
        self.guard.load_state_dict(state.get("guard", {}))

"""PGPOController: from student/teacher outputs to an exactly applied m_k, identical on every rank.

Per optimizer step:
    controller.observe_logits(student_logits, teacher_logits, mask)   # each micro-batch (or observe_topk)
    decision = controller.finalize()                                  # before the step (before the last
                                                                      # backward under DeepSpeed)
    optimizer.step()                                                  # the hooks apply decision.multiplier

A step whose I is non-finite or has no distilled token uses m = 1 (the two cases the design names); it is
counted and logged, and never touches the optimizer state nor the moving average Ibar.

The variants (pgpo.modulation): with `ema_steps` the controller keeps Ibar_k (from the all-reduced I_k, so identical
on every rank; checkpointed with the controller's state); `signal: smoothed` and `beta` choose m_k from it; with
granularity sample / token the trainer passes each micro-batch's per-token loss through `weigh()` and the step itself
is not multiplied (m_k = 1). Anything else that goes wrong while computing I
(a shape bug, say) raises: it must not silently turn PGPO into SDPO for a whole run. A step whose
*gradient* norm is non-finite is skipped altogether (pgpo.optim.NonFiniteStepGuard): no update, no
moments, no history entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from pgpo.distributed import InfoAccumulator
from pgpo.information import InfoStats, information_from_logits, information_from_topk, reduce_per_token
from pgpo.modulation import InfoEMA
from pgpo.optim import NonFiniteStepGuard, StepModulator
from pgpo.settings import PGPOSettings
from pgpo.token_weights import global_mean, raw_weights

logger = logging.getLogger(__name__)


@dataclass
class StepDecision:
    multiplier: float
    info: float | None
    fallback: str | None
    tokens: float
    info_ema: float | None = None           # Ibar_k after this step's I_k (None without ema_steps)
    weight_mean: float | None = None        # sample / token weights before normalisation, over this rank's tokens
    weight_max: float | None = None
    weight_tokens: float = 0.0              # this rank's tokens behind weight_mean


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
        self.rule = settings.step_rule()
        self.ema = InfoEMA(1.0 / settings.ema_steps) if settings.ema_steps is not None else None
        self.modulator = StepModulator(optimizer, per_engine_step=per_engine_step)
        self.guard = NonFiniteStepGuard(optimizer, on_skip=self._on_skip, per_engine_step=per_engine_step,
                                        norm_source=norm_source)                  # installed after the hooks
        self.accumulator = InfoAccumulator()
        self.group, self.device = group, device
        self._ema_before: dict | None = None        # Ibar before this step's update (restored if the step is skipped)
        self._weights: torch.Tensor | None = None    # this step's local (sum, count, max) of the raw weights, kept on
                                                    # the weights' device (no host sync per micro-batch)
        self.normalisers: list[tuple[float, float, float]] = []   # this step's (normaliser, local sum, local count)
                                                    # per micro-batch, normalize only (tests read them; reset per step)

    @property
    def weights_loss(self) -> bool:
        """True when the loss is re-weighted per sample / token (granularity sample or token, m not the identity)."""
        return self.settings.granularity != "batch" and not self.multiplier.is_identity

    def _on_skip(self) -> None:
        self.modulator.discard()
        if self.ema is not None and self._ema_before is not None:
            self.ema.load_state_dict(self._ema_before)              # a skipped step leaves no trace in Ibar
        self._ema_before = None

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

    def observe_per_token(self, per_token_info, mask) -> None:
        """Observe I from per-token divergences already computed (pgpo.information.per_token_from_*)."""
        self.observe(reduce_per_token(per_token_info, mask, self.settings.reduction))

    def weigh(self, per_token_loss, per_token_info, mask):
        """The per-token loss times the sample / token weights (detached; pgpo.token_weights), divided when `normalize`
        by the loss's own average of the weights over the micro-batch on all ranks. Every rank must call it for every
        training micro-batch (the normalisation all-reduces); `per_token_info` may be None for an empty mask."""
        if not self.weights_loss:
            return per_token_loss
        if per_token_info is None:
            per_token_info = per_token_loss.new_zeros(mask.shape, dtype=torch.float32)
        w = raw_weights(per_token_info, mask, self.multiplier, self.settings.granularity)
        m = mask.bool()
        st = torch.stack([torch.where(m, w, 0.0).sum(), m.sum().to(w.dtype),
                          torch.where(m, w, float("-inf")).max()])
        if self._weights is None:
            self._weights = st
        else:
            self._weights = torch.cat([self._weights[:2] + st[:2], torch.maximum(self._weights[2:], st[2:])])
        if self.settings.normalize:
            mean, local_sum, local_count = global_mean(w, mask, self.group, self.device)
            self.normalisers.append((mean, local_sum, local_count))
            w = w / mean
        return per_token_loss * w.to(per_token_loss.dtype)

    # -- per optimizer step ------------------------------------------------------------------------------
    def finalize(self) -> StepDecision:
        """Reduce the step's statistics over micro-batches and ranks, choose m_k and arm the optimizer."""
        stats = self.accumulator.reduce(self.group, self.device)
        self.normalisers = []
        info = stats.value if stats.ok else None
        fallback = None
        if stats.nonfinite > 0:
            fallback = f"non-finite divergence on {int(stats.nonfinite)} token(s)"
        elif stats.count == 0:
            fallback = "no distilled tokens in this step"
        ibar = None
        self._ema_before = None
        if self.ema is not None:
            if fallback is None:
                self._ema_before = self.ema.state_dict()
                ibar = self.ema.update(info)
            else:
                ibar = self.ema.value
        if fallback is None:
            m = 1.0 if self.settings.granularity != "batch" else self.rule(info, ibar)
        else:
            m = 1.0
            logger.log(logging.INFO if stats.nonfinite == 0 else logging.WARNING, "PGPO: m = 1 for this step (%s)",
                       fallback)
        m = self.modulator.arm(m, info=info, fallback=fallback, info_ema=ibar)
        w_sum, w_count, w_max = (0.0, 0.0, 0.0) if self._weights is None else self._weights.tolist()
        self._weights = None
        weights = (w_sum / w_count, w_max, w_count) if w_count > 0 else (None, None, 0.0)
        return StepDecision(m, info, fallback, stats.count, ibar, *weights)

    def end_step(self) -> None:
        """After the engine's optimizer step (per_engine_step): record it once, reset the guard's decision."""
        self.modulator.end_step()
        self.guard.end_step()
        self._ema_before = None

    def state_dict(self) -> dict:
        out = {"modulator": self.modulator.state_dict(), "guard": self.guard.state_dict()}
        if self.ema is not None:
            out["info_ema"] = self.ema.state_dict()
        return out

    def load_state_dict(self, state: dict) -> None:
        self.modulator.load_state_dict(state["modulator"])
        self.guard.load_state_dict(state.get("guard", {}))
        if self.ema is not None:
            check_resumable(self.settings, state)
            self.ema.load_state_dict(state["info_ema"])


def check_resumable(settings: PGPOSettings, state: dict, where: str = "the checkpoint") -> None:
    """Raise ValueError when a controller state cannot resume a run with these settings: a run with a moving average
    Ibar needs the checkpointed one (restarting it would change every later m_k)."""
    if settings.ema_steps is not None and "info_ema" not in state:
        raise ValueError(f"{where} has no moving average Ibar (it was written without pgpo.ema_steps): resuming would "
                         "restart Ibar; start a new run instead")

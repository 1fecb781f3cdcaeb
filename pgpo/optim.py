"""Apply the multiplier m_k to the final update of any torch optimizer, for exactly one step.

Mechanism: scale every parameter group's learning rate by m_k, let the optimizer step, restore the
learning rates. The lr scheduler keeps owning the base learning rate, gradient clipping happens before
the step as usual, and optimizer state is never touched by the modulation itself.

Exactness. The parameter change is exactly m times the unmodulated one, and every state tensor is
bit-identical, whenever the update is linear in lr and the state does not depend on lr. Tested
(tests/test_optim.py) for: SGD (momentum, dampening, Nesterov, weight decay), Adam (L2, AMSGrad),
AdamW (decoupled decay -lr*wd*theta is linear in lr too; foreach and single-tensor kernels), Adamax,
NAdam, RAdam, RMSprop with momentum (its buffer holds grad/avg, lr-free), Adadelta, Adagrad (lr_decay
divides lr, so it stays linear).
Not exact, because lr enters the optimizer state: ASGD (eta and mu are computed from lr and stored),
Rprop (lr seeds the per-parameter step sizes), LBFGS (line search, stored step). Nor are optimizers
that compute their own step size (Adafactor with relative_step) or schedule-free ones (their averaging
weights depend on lr). For those, modulating the lr is still a valid *heuristic* but not PGPO's
"multiply the final update by m" exactly.

Use: `modulator.arm(m)`, then whoever owns the loop calls `optimizer.step()` (a plain PyTorch loop, HF
Trainer, accelerate, DeepSpeed's wrapped base optimizer): optimizer step pre/post hooks scale and restore
the lrs for exactly that step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

@dataclass
class StepRecord:
    """One optimizer step: its index (counted by the modulator), the multiplier applied, the I that
    produced it (None when unknown) and why m fell back to 1 (None when it did not)."""

    step: int
    multiplier: float
    info: float | None = None
    fallback: str | None = None
    info_ema: float | None = None          # the moving average Ibar_k after this step (pgpo.modulation), if kept


class StepModulator:
    """Scale the next optimizer step's update by m (see module docstring).

    The history of (step, m, I, fallback) is kept (the last `history_limit` entries; counters are kept in
    full) and travels with `state_dict()` / `load_state_dict()`.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, history_limit: int | None = 100_000,
                 per_engine_step: bool = False):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"StepModulator needs a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.history_limit = history_limit
        self.per_engine_step = per_engine_step
        self.history: list[StepRecord] = []
        self.steps = 0
        self.fallbacks = 0
        self._armed: tuple | None = None             # for the next step
        self._current: tuple | None = None            # the step in flight
        self._inflight = False
        self._saved_lrs: list | None = None
        self._handles = [optimizer.register_step_pre_hook(self._pre_hook),
                         optimizer.register_step_post_hook(self._post_hook)]

    # -- choosing m ------------------------------------------------------------------------------------
    def arm(self, multiplier: float, info: float | None = None, fallback: str | None = None,
            info_ema: float | None = None) -> float:
        """Set m for the next optimizer.step(). A non-finite or < 1 m is refused: m = 1 is used instead
        and the step is recorded as a fallback. Returns the m that will be applied."""
        m = float(multiplier)
        if not math.isfinite(m):
            fallback = fallback or f"non-finite multiplier {multiplier!r}"
            m = 1.0
        elif m < 1.0:
            fallback = fallback or f"multiplier {m} < 1"
            m = 1.0
        if fallback is not None:
            m = 1.0
        self._armed = (m, info if info is None or math.isfinite(info) else None, fallback, info_ema)
        return m

    def discard(self) -> None:
        """Forget the armed m (its step was skipped: nothing is applied or recorded)."""
        self._armed = None

    # -- hooks ----------------------------------------------------------------------------------------
    def _pre_hook(self, optimizer, args, kwargs):
        if self._inflight:   # the previous call raised before its post-hook: undo its lr scaling
            self._restore()
            if not self.per_engine_step:
                self._current = None
        if self._current is None:             # the first call of this step takes the armed decision
            self._current = self._armed if self._armed is not None else (1.0, None, None, None)
            self._armed = None
        self._inflight = True
        m = self._current[0]
        if m != 1.0:
            self._saved_lrs = [g["lr"] for g in optimizer.param_groups]
            for g in optimizer.param_groups:
                g["lr"] = g["lr"] * m

    def _post_hook(self, optimizer, args, kwargs):
        self._restore()
        self._inflight = False
        if not self.per_engine_step:
            self.end_step()

    def end_step(self) -> None:
        """Close the step in flight: record (step, m, I, fallback) once. Called by the post-hook after each
        optimizer.step() call, or - with per_engine_step - by the caller once per engine step, because DeepSpeed
        (ZeRO-1/2/3) calls the torch optimizer's step() once per parameter (sub-)group: every one of those calls
        gets the same m. A step without any optimizer call (skipped) records nothing."""
        if self._current is None:
            return
        m, info, fallback, info_ema = self._current
        self._current = None
        self.steps += 1
        if fallback is not None:
            self.fallbacks += 1
        self.history.append(StepRecord(self.steps, m, info, fallback, info_ema))
        if self.history_limit is not None and len(self.history) > self.history_limit:
            del self.history[: len(self.history) - self.history_limit]

    def _restore(self) -> None:
        if self._saved_lrs is not None:
            for g, lr in zip(self.optimizer.param_groups, self._saved_lrs):
                g["lr"] = lr
            self._saved_lrs = None

    # -- checkpointing --------------------------------------------------------------------------------
    @property
    def last(self) -> StepRecord | None:
        return self.history[-1] if self.history else None

    def state_dict(self) -> dict:
        return {"steps": self.steps, "fallbacks": self.fallbacks, "history_limit": self.history_limit,
                "history": [asdict(r) for r in self.history]}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        self.fallbacks = int(state["fallbacks"])
        self.history_limit = state.get("history_limit", self.history_limit)
        self.history = [StepRecord(**r) for r in state["history"]]
        self._armed = None


class NonFiniteStepGuard:
    """Skip an optimizer step whose gradient norm is not finite; every rank takes the same decision.

    Installed on the torch optimizer that really steps (inside accelerate / DeepSpeed wrappers, so it also
    acts under ZeRO, where the step runs inside the last backward and Hugging Face's loop cannot skip it).
    The decision is taken at the first step() call of a step and holds for every call until `end_step()`
    (DeepSpeed calls step() once per parameter (sub-)group; without per_engine_step every call is a step):
    from `norm_source()` when given (DeepSpeed's global gradient norm, computed before its per-group calls and
    identical on every rank - needed there, since one call sees only one group), otherwise from the norm of
    the gradients this rank holds (full gradients under DDP, local shards under FSDP2) with a MAX all-reduce
    of the 0/1 flag over the default process group. On a non-finite norm the
    optimizer is not called: parameters, moments and step counters are untouched, and the step hooks
    (StepModulator's lr scaling and history) do not run; `on_skip()` is called once. The check costs one pass
    over the gradients, like gradient clipping.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, on_skip=None, per_engine_step: bool = False,
                 norm_source=None):
        self.optimizer = optimizer
        self.on_skip = on_skip
        self.per_engine_step = per_engine_step
        self.norm_source = norm_source
        self.skipped = 0
        self.last_skipped = False
        self._decision: bool | None = None       # this step's "skip?", once taken
        self._step = optimizer.step
        optimizer.step = self.step

    def gradients_finite(self) -> bool:
        if self.norm_source is not None:
            return math.isfinite(float(self.norm_source()))
        import torch.distributed as dist

        grads = [p.grad for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        grads = [g.to_local() if type(g).__name__ == "DTensor" else g for g in grads]
        device = grads[0].device if grads else torch.device("cpu")
        bad = torch.zeros((), device=device)
        if grads:
            norms = torch._foreach_norm([g.detach() for g in grads])
            bad = (~torch.isfinite(torch.stack([n.float() for n in norms]).sum())).float()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            if dist.get_backend() == "nccl" and bad.device.type != "cuda":
                bad = bad.to(torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        return bool(bad.item() == 0)

    def step(self, closure=None):
        if self._decision is None:
            self._decision = not self.gradients_finite()
            self.last_skipped = self._decision
            if self._decision:
                self._record_skip()
        skip = self._decision
        if not self.per_engine_step:
            self._decision = None
        if skip:
            return None
        return self._step() if closure is None else self._step(closure)

    def end_step(self) -> None:
        """Close the step (per_engine_step): the next step() call takes a new decision."""
        self._decision = None

    def note_engine_skip(self) -> bool:
        """At the end of an engine step (per_engine_step, before `end_step()`): if the optimizer was never called,
        the engine skipped the step itself - DeepSpeed does when its own overflow check sees a non-finite gradient,
        and so does a mixed-precision gradient scaler. Record it as this guard's skip (`on_skip()` included) so the
        step leaves no trace; returns whether it did."""
        if self._decision is not None:
            return False
        self.last_skipped = True
        self._record_skip()
        return True

    def _record_skip(self) -> None:
        self.skipped += 1
        if self.on_skip is not None:
            self.on_skip()

    def state_dict(self) -> dict:
        return {"skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        self.skipped = int(state.get("skipped", 0))


def optimizer_chain(opt) -> list:
    """`opt` and every optimizer it wraps through `.optimizer` (accelerate -> DeepSpeed -> torch), outermost first."""
    chain, seen = [opt], {id(opt)}
    while getattr(opt, "optimizer", None) is not None and id(opt.optimizer) not in seen:
        opt = opt.optimizer
        chain.append(opt)
        seen.add(id(opt))
    return chain


def innermost_optimizer(opt) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate / DeepSpeed wrappers (whose step() they all end up calling)."""
    opt = optimizer_chain(opt)[-1]
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"cannot find a torch optimizer inside {type(opt).__name__}")
    return opt

import copy

import pytest
import torch

from pgpo.controller import PGPOController
from pgpo.settings import PGPOSettings
from pgpo.information import InfoStats
from pgpo.optim import StepModulator

EXACT = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
    "sgd_wd": lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.05),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1),
    "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adam_l2": lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1, amsgrad=True),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.01),
    "adamw_foreach": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1, foreach=True),
    "adamw_single": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1, foreach=False),
    "adamax": lambda p: torch.optim.Adamax(p, lr=1e-2),
    "nadam": lambda p: torch.optim.NAdam(p, lr=1e-2, weight_decay=0.01, decoupled_weight_decay=True),
    "radam": lambda p: torch.optim.RAdam(p, lr=1e-2),
    "rmsprop_momentum": lambda p: torch.optim.RMSprop(p, lr=1e-2, momentum=0.9),
    "adadelta": lambda p: torch.optim.Adadelta(p, lr=0.5),
    "adagrad_decay": lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.01),
}
NOT_EXACT = {  # lr enters the state: the docstring of pgpo.optim lists these
    "asgd": lambda p: torch.optim.ASGD(p, lr=1e-2),
    "rprop": lambda p: torch.optim.Rprop(p, lr=1e-2),
}


def _setup(make, seed=0, warmup=3):
    torch.manual_seed(seed)
    params = [torch.randn(5, 4, dtype=torch.float64, requires_grad=True),
              torch.randn(7, dtype=torch.float64, requires_grad=True)]
    opt = make(params)
    for _ in range(warmup):               # non-trivial moments / momentum buffers
        _grad(params)
        opt.step()
    return params, opt


def _pair(make, warmup=3):
    """Two identical (params, optimizer) copies with their own modulators, cloned by deepcopy so that
    every state tensor keeps its dtype (load_state_dict would cast some of them)."""
    params, opt = _setup(make, warmup=warmup)
    p2, o2 = copy.deepcopy((params, opt))
    return (params, opt, StepModulator(opt)), (p2, o2, StepModulator(o2))


def _grad(params, seed=123):
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)


def _one_step(params, opt, mod, m):
    before = [p.detach().clone() for p in params]
    _grad(params, seed=7)
    mod.arm(m)                             # engine-style: arm, then the loop calls optimizer.step()
    opt.step()
    return [p.detach() - b for p, b in zip(params, before)]


def _state_tensors(opt):
    out = []
    for st in opt.state.values():
        for k in sorted(st):
            out.append((k, st[k]))
    return out


@pytest.mark.parametrize("name", sorted(EXACT))
def test_update_is_exactly_m_times_and_state_is_bit_identical(name):
    (params, opt, mod), (p2, o2, mod2) = _pair(EXACT[name])
    base_lrs = [g["lr"] for g in opt.param_groups]
    d1 = _one_step(params, opt, mod, 1.0)
    d2 = _one_step(p2, o2, mod2, 2.5)
    for a, b in zip(d1, d2):
        torch.testing.assert_close(b, 2.5 * a, rtol=1e-12, atol=1e-15)
    s1, s2 = _state_tensors(opt), _state_tensors(o2)
    assert len(s1) == len(s2) > 0 or name.startswith("sgd")
    for (k1, v1), (k2, v2) in zip(s1, s2):
        assert k1 == k2
        if torch.is_tensor(v1):
            assert torch.equal(v1, v2), (name, k1)
        else:
            assert v1 == v2
    assert [g["lr"] for g in o2.param_groups] == base_lrs      # lr restored exactly
    assert mod2.last.multiplier == 2.5 and mod2.last.fallback is None


@pytest.mark.parametrize("name", sorted(NOT_EXACT))
def test_documented_non_exact_optimizers_really_are_not(name):
    (params, opt, mod), (p2, o2, mod2) = _pair(NOT_EXACT[name], warmup=0)
    _one_step(params, opt, mod, 1.0)
    _one_step(p2, o2, mod2, 2.5)
    differs = any(not torch.equal(v1, v2) for (_, v1), (_, v2) in zip(_state_tensors(opt), _state_tensors(o2))
                  if torch.is_tensor(v1))
    assert differs


def test_composes_with_scheduler_and_clipping():
    """The scheduler's lr sequence is untouched; the update with clipping is still m times: with identical
    clipped gradients, the modulated AdamW step equals -m lr (wd theta + S) where S is the moment term of the
    reference optimizer's step at the same lr (AdamW's moments do not depend on theta)."""
    torch.manual_seed(0)
    wd = 0.01
    w = torch.randn(10, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.AdamW([w], lr=1e-3, weight_decay=wd)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 4))
    mod = StepModulator(opt)
    w_ref = w.detach().clone().requires_grad_(True)
    opt_ref = torch.optim.AdamW([w_ref], lr=1e-3, weight_decay=wd)
    sched_ref = torch.optim.lr_scheduler.LambdaLR(opt_ref, lambda s: min(1.0, (s + 1) / 4))
    lrs, lrs_ref = [], []
    for step in range(6):
        g = torch.randn(10, dtype=torch.float64) * 10
        for p in (w, w_ref):
            p.grad = g.clone()
            assert float(torch.nn.utils.clip_grad_norm_([p], 1.0)) > 1.0        # clipping really acts
        m = 1.0 if step % 2 else 1.7
        lr = opt.param_groups[0]["lr"]
        before, before_ref = w.detach().clone(), w_ref.detach().clone()
        mod.arm(m)
        opt.step()
        opt_ref.step()
        moment_term = -(w_ref.detach() - before_ref) - lr * wd * before_ref          # S of the reference step
        want = -m * lr * wd * before - m * moment_term
        assert torch.allclose(w.detach() - before, want, rtol=1e-12, atol=1e-15), step
        sched.step(); sched_ref.step()
        lrs.append(sched.get_last_lr()[0]); lrs_ref.append(sched_ref.get_last_lr()[0])
        assert opt.param_groups[0]["lr"] == opt_ref.param_groups[0]["lr"]
    assert lrs == lrs_ref
    assert [r.multiplier for r in mod.history] == [1.7, 1.0, 1.7, 1.0, 1.7, 1.0]


def test_non_finite_multiplier_falls_back_and_leaves_state_as_a_plain_step():
    (params, opt, mod), (p2, o2, mod2) = _pair(EXACT["adamw"])
    _one_step(params, opt, mod, 1.0)
    assert mod2.arm(float("nan")) == 1.0
    _grad(p2, seed=7)
    o2.step()
    d2 = [p.detach() for p in p2]
    for a, b in zip(params, d2):
        assert torch.equal(a.detach(), b)
    for (_, v1), (_, v2) in zip(_state_tensors(opt), _state_tensors(o2)):
        assert torch.equal(v1, v2)
    assert mod2.fallbacks == 1 and "non-finite" in mod2.last.fallback
    assert mod2.arm(0.5) == 1.0                 # m < 1 is refused too


def test_unarmed_step_is_plain_and_arming_lasts_one_step():
    params, opt = _setup(EXACT["sgd"], warmup=0)
    mod = StepModulator(opt)
    mod.arm(3.0)
    _grad(params); opt.step()
    _grad(params); opt.step()
    assert [r.multiplier for r in mod.history] == [3.0, 1.0]


def test_lr_restored_when_the_step_raises():
    w = torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    mod = StepModulator(opt)

    def bad_closure():
        raise RuntimeError("boom")

    mod.arm(2.0)
    with pytest.raises(RuntimeError):
        opt.step(bad_closure)
    w.grad = torch.ones(3)
    opt.step()                                   # next step first restores the lr
    assert opt.param_groups[0]["lr"] == 0.1
    assert torch.allclose(w.detach(), torch.full((3,), -0.1))


def test_state_dict_round_trip_keeps_history():
    params, opt = _setup(EXACT["sgd"], warmup=0)
    mod = StepModulator(opt)
    for m in (1.0, 2.0, float("inf"), 1.5):
        mod.arm(m, info=0.3)
        _grad(params)
        opt.step()
    st = mod.state_dict()
    mod2 = StepModulator(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))
    mod2.load_state_dict(st)
    assert mod2.history == mod.history and mod2.steps == 4 and mod2.fallbacks == 1
    assert [r.multiplier for r in mod2.history] == [1.0, 2.0, 1.0, 1.5]


def test_controller_from_stats_to_multiplier():
    w = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    ctl = PGPOController(opt, PGPOSettings(alpha=2.0, m_max=3.0))
    ctl.observe(InfoStats(total=0.3, count=2))
    ctl.observe(InfoStats(total=0.5, count=2))          # token-weighted: I = 0.8 / 4 = 0.2
    d = ctl.finalize()
    assert d.info == pytest.approx(0.2) and d.multiplier == pytest.approx(1.4) and d.fallback is None
    w.grad = torch.ones(2)
    opt.step()
    assert torch.allclose(w.detach(), torch.full((2,), -0.14))
    # non-finite tokens and empty steps - the two cases the design names - give m = 1
    for stats, reason in ((InfoStats(total=1.0, count=3, nonfinite=1), "non-finite"),
                          (InfoStats(), "no distilled tokens")):
        ctl.observe(stats)
        d = ctl.finalize()
        assert d.multiplier == 1.0 and reason in d.fallback
        opt.step()
    assert ctl.modulator.fallbacks == 2


def test_a_programming_error_in_the_estimator_raises_instead_of_falling_back_to_sdpo():
    w = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    ctl = PGPOController(opt, PGPOSettings(alpha=2.0, m_max=3.0))
    with pytest.raises(ValueError, match="differ in shape"):
        ctl.observe_logits(torch.zeros(1, 3, 5), torch.zeros(1, 4, 5), torch.ones(1, 3))   # shape mismatch


@pytest.mark.parametrize("field, value", [("alpha", -1.0), ("m_max", 0.5), ("shape", "cubic"),
                                          ("estimator", "js"), ("reduction", "max"), ("chunk_size", 0)])
def test_settings_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^pgpo\.{field}: "):
        PGPOSettings(**{field: value}).validate()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_gradient_skips_the_step_and_drops_its_multiplier(bad):
    """A non-finite gradient: parameters, moments and step count are untouched, nothing is recorded, and the m
    armed for that step is not carried over to the next one."""
    from pgpo.optim import NonFiniteStepGuard

    torch.manual_seed(0)
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.AdamW([w], lr=1e-2)
    mod = StepModulator(opt)
    guard = NonFiniteStepGuard(opt, on_skip=mod.discard)
    w.grad = torch.ones(5, dtype=torch.float64)
    mod.arm(1.5)
    opt.step()
    state = {k: v.clone() for k, v in opt.state[w].items()}
    before = w.detach().clone()
    w.grad = torch.ones(5, dtype=torch.float64)
    w.grad[2] = bad
    mod.arm(2.0)
    assert opt.step() is None and guard.last_skipped and guard.skipped == 1
    assert torch.equal(w.detach(), before)
    assert all(torch.equal(v, opt.state[w][k]) for k, v in state.items())
    assert [r.multiplier for r in mod.history] == [1.5]
    w.grad = torch.ones(5, dtype=torch.float64)
    opt.step()                                                  # nothing armed: a plain step
    assert not guard.last_skipped and [r.multiplier for r in mod.history] == [1.5, 1.0]
    assert not torch.equal(w.detach(), before)
    assert guard.state_dict() == {"skipped": 1}


def _zero_style_step(opt, groups):
    """What DeepSpeed's ZeRO optimizers do in one engine step: the torch optimizer's step() once per parameter
    group, with only that group's (flat) parameters in place."""
    for i, params in enumerate(groups):
        for j, g in enumerate(opt.param_groups):
            g["params"] = params if j == i else []
        opt.step()
    for g, params in zip(opt.param_groups, groups):
        g["params"] = params


@pytest.mark.parametrize("bad_group", [None, 1])
def test_one_decision_per_engine_step_when_the_engine_steps_each_group(bad_group):
    """Two parameter groups (decay / no decay, as HF builds them) stepped one by one as under ZeRO: every group
    gets the same m, one history record per engine step, and a non-finite gradient in one group skips the
    whole step (not just its group)."""
    from pgpo.optim import NonFiniteStepGuard

    torch.manual_seed(0)
    a, b = torch.randn(4, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    pa, pb = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    ra, rb = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    opt = torch.optim.SGD([{"params": [pa], "weight_decay": 0.1}, {"params": [pb], "weight_decay": 0.0}], lr=0.1)
    ref = torch.optim.SGD([{"params": [ra], "weight_decay": 0.1}, {"params": [rb], "weight_decay": 0.0}], lr=0.1)
    mod = StepModulator(opt, per_engine_step=True)
    # DeepSpeed computes the global gradient norm before its per-group calls; the guard reads it
    global_norm = lambda: float(torch.cat([pa.grad, pb.grad]).norm())          # noqa: E731
    guard = NonFiniteStepGuard(opt, on_skip=mod.discard, per_engine_step=True, norm_source=global_norm)
    for p in (pa, pb, ra, rb):
        p.grad = torch.ones_like(p)
    if bad_group is not None:
        (pa, pb)[bad_group].grad[0] = float("nan")
    mod.arm(2.0, info=0.5)
    _zero_style_step(opt, [[pa], [pb]])
    mod.end_step(); guard.end_step()
    if bad_group is not None:
        assert torch.equal(pa.detach(), a) and torch.equal(pb.detach(), b) and guard.skipped == 1
        assert mod.history == []
        return
    _zero_style_step(ref, [[ra], [rb]])
    for p, r, x in ((pa, ra, a), (pb, rb, b)):
        assert torch.allclose(p.detach() - x, 2.0 * (r.detach() - x), rtol=1e-12, atol=0)
    assert [(h.step, h.multiplier) for h in mod.history] == [(1, 2.0)] and not guard.last_skipped
    assert all(g["lr"] == 0.1 for g in opt.param_groups)


def test_a_step_the_engine_skipped_without_calling_the_optimizer_is_recorded_as_skipped():
    """DeepSpeed's own overflow check (and a mixed-precision gradient scaler) skip a non-finite step without calling
    the torch optimizer, so the guard never decides: at the end of the engine step it must count the skip and
    discard the armed m, and a step the optimizer did run must not be counted."""
    from pgpo.optim import NonFiniteStepGuard
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1)
    mod = StepModulator(opt, per_engine_step=True)
    calls = []
    guard = NonFiniteStepGuard(opt, on_skip=lambda: (calls.append(1), mod.discard()), per_engine_step=True)
    mod.arm(1.5, info=0.2)
    assert guard.note_engine_skip() is True                    # the optimizer was never called in this step
    assert guard.skipped == 1 and guard.last_skipped and calls == [1] and mod._armed is None
    guard.end_step()
    mod.end_step()
    assert mod.steps == 0 and mod.history == []                # nothing applied, nothing recorded
    p.grad = torch.ones(3)
    mod.arm(1.5, info=0.2)
    opt.step()
    assert guard.note_engine_skip() is False and guard.skipped == 1 and not guard.last_skipped
    guard.end_step()
    mod.end_step()
    assert mod.steps == 1 and torch.allclose(p.detach(), torch.full((3,), 1 - 0.15))

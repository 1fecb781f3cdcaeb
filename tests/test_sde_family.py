"""The SDE family is declared once (sde.family) and stepped by one Euler-Maruyama loop (sde.simulate.em_steps): the
simulator, the closed forms, the stationary floors and the escape temperatures all follow the declaration, and the
loop's block-wise draws and terms reproduce the plain one-draw-a-step loop bit for bit."""

import math

import numpy as np
import pytest

from pgpo.multiplier import Multiplier
from sde import escape, exact, stationary
from sde.family import FAMILY, ORDER2_KINDS, SDE_KINDS, ModelSDE, member
from sde.problems import get_problem
from sde.simulate import ConstantMultiplier, LinearSDE, em_steps, euler_maruyama
from sde.weak_error import sde_moments_mc


@pytest.mark.parametrize("kind", SDE_KINDS)
def test_closed_form_moments_match_the_one_loop(kind):
    """Each member's OU mean and second moment (sde.exact, from the declaration) against Monte Carlo of ModelSDE
    through the one loop (Richardson over r and 2r), within 4 standard errors plus 2e-4 for the Richardson residual
    (O(h^2); 4e-5 on gradient flow, which has no noise); constant m = c != 1."""
    q, c, eta, t_end = get_problem("quadratic-rotated"), 1.7, 0.1, 1.0
    mc = sde_moments_mc(lambda: ModelSDE(q, ConstantMultiplier(c), eta, kind), q, eta, t_end, ["linear", "sq_norm",
                        "cross"], 40_000, r=4, seed=3)
    mean, cov = exact.sde_ou_moments(q, eta, t_end, kind, c)
    for g, rm in mc.items():
        want = float(exact.expectation(g, mean, cov, eta, None, q))
        assert abs(rm.mean - want) < 4 * rm.stderr + 2e-4, (kind, g, rm.mean, want, rm.stderr)


@pytest.mark.parametrize("kind", SDE_KINDS)
def test_model_sde_terms_are_the_declared_factors(kind):
    """ModelSDE's drift and diffusion at a state: -d(c) A x h (+ the order-2 term) and s(c) sqrt(eta) S dw."""
    q, c, eta, h = get_problem("quadratic-rotated"), 1.7, 0.1, 0.01
    sde, kd = ModelSDE(q, ConstantMultiplier(c), eta, kind), member(kind)
    x = np.array([[0.3, -0.8]])
    drift = sde.increment(x, np.zeros((1, 2)), h, np.empty((1, 2)))[0]
    b = -kd.drift_factor(c) * (q.A @ x[0])
    if kd.order2:
        b = b - 0.5 * eta * kd.drift_factor(c) ** 2 * (q.A @ q.A @ x[0])
    np.testing.assert_allclose(drift, b * h, rtol=1e-13, atol=1e-15)
    dw = np.array([[0.2, -0.1]])
    noise = sde.increment(x, dw, h, np.empty((1, 2)))[0] - drift
    np.testing.assert_allclose(noise, kd.diffusion_factor(c) * math.sqrt(eta) * (q.noise(x, dw, np.empty((1, 2)))[0]),
                               rtol=1e-12, atol=1e-15)


def test_the_declaration_is_consistent():
    assert set(ORDER2_KINDS) == {k for k, m in FAMILY.items() if m.order2}
    for k, base in ORDER2_KINDS.items():
        assert (FAMILY[k].drift_m, FAMILY[k].noisy, FAMILY[k].noise_m) == \
            (FAMILY[base].drift_m, FAMILY[base].noisy, FAMILY[base].noise_m)
    assert member("sgd_sde").drift_factor(3.0) == 1.0 and member("gradient_flow").diffusion_factor(3.0) == 0.0
    with pytest.raises(ValueError, match="unknown SDE kind"):
        member("milstein")


@pytest.mark.parametrize("kind", stationary.STATIONARY_SDES)
def test_leading_floor_is_the_small_eta_limit_of_the_exact_floor(kind):
    """eta s^2 tr(Sigma) / (4 d) from the declaration, for every noisy member (sgd_sde: d = 1, whatever c)."""
    q, eta = get_problem("quadratic-rotated"), 1e-5
    for c in (0.6, 1.7):
        exact_floor = stationary.closed_form_floors(q, eta, c, [kind])[kind]["loss"]
        assert stationary.leading_floor(q, eta, c, kind) == pytest.approx(exact_floor, rel=1e-4)


@pytest.mark.parametrize("kind", escape.SDES)
def test_escape_temperature_is_the_diffusion_over_twice_the_drift(kind):
    p, c, eta = get_problem("double-well-escape"), 1.5, 0.05
    s2 = escape.diffusion_sq(p, ConstantMultiplier(c), eta, kind, np.array([0.0, 1.0]))
    np.testing.assert_allclose(s2 / (2 * c), escape.temperature(p, c, eta, kind), rtol=1e-15)
    mu = escape.drift(p, ConstantMultiplier(c), kind, np.array([1.3]))
    assert mu[0] == pytest.approx(-c * p.grad(np.array([[1.3]]), np.empty((1, 1)))[0, 0], rel=1e-15)


def _plain_loop(sde, x0, h, n_steps, n_paths, rng):
    """The Euler-Maruyama loop without blocks: one draw a step, then the SDE's own step (its drift update and its
    diffusion for an additive SDE, its whole increment otherwise)."""
    x = np.tile(np.asarray(x0, float), (n_paths, 1))
    dw, inc = np.empty((n_paths, sde.noise_dim)), np.empty((n_paths, sde.dim))
    for _ in range(n_steps):
        rng.standard_normal(out=dw)
        dw *= math.sqrt(h)
        if getattr(sde, "additive", False):
            sde.drift_step(x, h)
            x += sde.diffusion(dw, inc)
        else:
            sde.increment(x, dw, h, inc)
            x += inc
    return x


class _NotAdditive(LinearSDE):
    additive = False


@pytest.mark.parametrize("case", ["diag", "full", "fullA", "model"])
def test_block_draws_are_bit_identical_to_the_plain_loop(case):
    rng = np.random.default_rng(0)
    if case == "model":
        p = get_problem("softmax")
        sde, x0 = ModelSDE(p, Multiplier(alpha=1.0, m_max=2.0), 0.05, "matched_2"), p.theta0
    else:
        d = 5
        a = np.linspace(0.5, 2.0, d) if case != "fullA" else np.eye(d) + 0.1 * rng.standard_normal((d, d))
        s = np.linspace(0.3, 1.0, d) if case == "diag" else rng.standard_normal((d, 3))
        sde, x0 = LinearSDE(a, s, b=np.linspace(-0.1, 0.1, d) if case == "fullA" else None), np.ones(d)
    for n in (1, 37, 3000):
        want = _plain_loop(sde, x0, 1e-2, 53, n, np.random.default_rng(n))
        got = euler_maruyama(sde, x0, 1e-2, 53, n, rng=np.random.default_rng(n))
        assert np.array_equal(got, want), (case, n)
        if isinstance(sde, LinearSDE):
            # the whole increment gives the same steps, rounded in another order: each step's two results differ by
            # a few roundings of |x| + |noise|, and I - h A (spectral radius < 1 here) does not amplify them
            plain = euler_maruyama(_NotAdditive(sde.A, sde.S, sde.b), x0, 1e-2, 53, n, rng=np.random.default_rng(n))
            bound = 53 * 4 * np.finfo(float).eps * (np.abs(want).max() + 1.0)
            assert np.abs(plain - want).max() <= bound, (case, n)


def test_em_steps_takes_the_increments_in_order():
    sde = LinearSDE(np.array([1.0, 2.0]), np.array([0.5, 0.25]))
    dws = np.random.default_rng(1).standard_normal((4, 3, 2))
    x = em_steps(sde, np.ones((3, 2)), dws, 0.1, np.empty((3, 2)))
    y = np.ones((3, 2))
    for dw in dws:
        y = y + (-0.1 * (y * sde.A) + dw * sde.S)
    np.testing.assert_allclose(x, y, rtol=1e-14)

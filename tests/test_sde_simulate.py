"""Cross-checks of the simulation core: sdeint, closed forms, coupling, bridge, sign conventions."""

import math

import numpy as np
import pytest

from pgpo.multiplier import Multiplier
from sde.family import ModelSDE
from sde.exact import discrete_moments, exact_weak_error, ou_moments
from sde.problems import get_problem, quadratic_2d
from sde.simulate import (IDENTITY, DiscreteProcess, LinearSDE, bridge_increments, euler_maruyama,
                          gradient_flow_path)
from sde.stats import fit_slope
from sde.specs import MultiplierSpec
from sde.weak_error import discrete_moments_mc, estimate_weak_errors


def _diffusion_matrix(sde: ModelSDE, y):
    """sigma(y) as a (d, m) matrix: the increment's response to unit noise, minus its drift."""
    cols = []
    zero = sde.increment(y[None, :], np.zeros((1, sde.noise_dim)), 1.0, np.empty((1, sde.dim)))[0]
    for j in range(sde.noise_dim):
        e = np.zeros((1, sde.noise_dim))
        e[0, j] = 1.0
        cols.append(sde.increment(y[None, :], e, 1.0, np.empty((1, sde.dim)))[0] - zero)
    return np.stack(cols, axis=1), zero


@pytest.mark.parametrize("problem,kind", [("double-well", "matched"), ("softmax", "paper"),
                                          ("least-squares", "matched"), ("quadratic-d10", "sgd_sde")])
def test_one_path_equals_sdeint_itoEuler(problem, kind):
    sdeint = pytest.importorskip("sdeint")
    p = get_problem(problem)
    sde = ModelSDE(p, MultiplierSpec(None, 2.5, "clipped_linear").build(p), 0.05, kind)
    h, steps = 0.01, 200
    rng = np.random.default_rng(5)
    dW = rng.standard_normal((steps, 1, sde.noise_dim)) * math.sqrt(h)
    ours = euler_maruyama(sde, p.theta0, h, steps, 1, dW=dW)[0]

    def f(y, t):
        return _diffusion_matrix(sde, y)[1]       # drift b(y) (the increment with dw = 0, h = 1)

    def G(y, t):
        return _diffusion_matrix(sde, y)[0]

    theirs = sdeint.itoEuler(f, G, p.theta0.copy(), np.linspace(0, h * steps, steps + 1), dW=dW[:, 0, :])[-1]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)


def test_linear_sde_equals_sdeint_itoEuler_full_noise():
    sdeint = pytest.importorskip("sdeint")
    rng = np.random.default_rng(0)
    A = np.eye(3) + 0.1 * rng.standard_normal((3, 3))
    S = rng.standard_normal((3, 2))
    sde = LinearSDE(A, S, b=np.array([0.1, 0.0, -0.2]))
    h, steps = 0.01, 300
    dW = rng.standard_normal((steps, 1, 2)) * math.sqrt(h)
    ours = euler_maruyama(sde, np.ones(3), h, steps, 1, dW=dW)[0]
    theirs = sdeint.itoEuler(lambda y, t: -A @ y + sde.b, lambda y, t: S, np.ones(3),
                             np.linspace(0, h * steps, steps + 1), dW=dW[:, 0, :])[-1]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)


def test_discrete_pgpo_is_euler_maruyama_of_the_matched_sde_with_minus_sqrt_eta_z():
    """The sign convention of the coupling: theta - eta m (grad + S Z) == EM step of the matched SDE
    at h = eta driven by dW = -sqrt(eta) Z. Exact (same floating-point operations up to rounding)."""
    p = get_problem("least-squares")
    mult = MultiplierSpec(None, 2.5, "clipped_linear").build(p)
    eta, steps, n = 0.05, 40, 64
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((steps, n, p.noise_dim))
    disc = DiscreteProcess(p, mult, eta)
    x = np.tile(p.theta0, (n, 1))
    for k in range(steps):
        disc.step(x, z=Z[k])
    y = euler_maruyama(ModelSDE(p, mult, eta, "matched"), p.theta0, eta, steps, n, dW=-math.sqrt(eta) * Z)
    np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
    # and the opposite sign is a genuinely different path
    y_wrong = euler_maruyama(ModelSDE(p, mult, eta, "matched"), p.theta0, eta, steps, n, dW=math.sqrt(eta) * Z)
    assert np.abs(x - y_wrong).max() > 1e-2


def test_bridge_increments_sum_exactly_and_have_bridge_variance():
    rng = np.random.default_rng(0)
    n, r, h = 200_000, 8, 0.01
    total = np.tile([0.3, -0.1], (n, 1))
    inc = bridge_increments(total, r, h, rng)
    np.testing.assert_allclose(inc.sum(axis=0), total, atol=1e-13)
    # given the sum, each increment has mean total/r and variance h (1 - 1/r)
    v = inc[3].var(axis=0)
    se_v = h * (1 - 1 / r) * math.sqrt(2 / n)
    assert (np.abs(v - h * (1 - 1 / r)) < 5 * se_v).all()
    assert (np.abs(inc[3].mean(axis=0) - total[0] / r) < 5 * math.sqrt(h / n)).all()
    # covariance between two increments of the bridge is -h/r
    c = np.mean((inc[0, :, 0] - total[0, 0] / r) * (inc[1, :, 0] - total[0, 0] / r))
    assert abs(c + h / r) < 5 * h * math.sqrt(1 / n)


def test_discrete_sgd_moments_agree_with_closed_form_within_ci():
    p = quadratic_2d()
    eta, t_end, n = 0.05, 1.0, 200_000
    mc = discrete_moments_mc(p, IDENTITY, eta, t_end, ["sq_norm", "linear"], n, seed=11)
    mean, cov = discrete_moments(p, eta, 20)
    exact = {"sq_norm": mean @ mean + np.trace(cov), "linear": mean[0]}
    for g, rm in mc.items():
        assert abs(rm.mean - exact[g]) < 3.9 * rm.stderr, (g, rm.mean, exact[g], rm.stderr)


def test_euler_maruyama_ou_moments_converge_to_closed_form():
    """EM with Richardson over r and 2r reproduces the exact OU moment within the Monte Carlo CI."""
    p = quadratic_2d()
    eta, t_end = 0.1, 1.0
    est = estimate_weak_errors(p, IDENTITY, eta, t_end, ["sgd_sde"], ["sq_norm"], 200_000, r=4, seed=2)
    pe = est[("sgd_sde", "sq_norm")]
    mean, cov = ou_moments(p, eta, t_end)
    exact_sde = mean @ mean + np.trace(cov)
    exact_err = exact_weak_error(p, eta, t_end, "sgd_sde", "sq_norm")["error"]
    assert abs(pe.error - exact_err) < 4 * pe.stderr + 1e-5, (pe.error, exact_err, pe.stderr)
    assert abs(pe.mean_sde - exact_sde) < 0.01


def test_ou_covariance_matches_numerical_integral():
    from scipy.integrate import quad_vec
    p = get_problem("quadratic-d10")
    eta, t = 0.07, 1.3
    _, cov = ou_moments(p, eta, t, c=1.7, diffusion_scale=1.7)
    a = p.curvatures * 1.7

    def integrand(s):
        e = np.exp(-a * s)
        return (e[:, None] * p.noise_cov * e[None, :]) * eta * 1.7 ** 2

    ref, _ = quad_vec(integrand, 0.0, t, epsabs=1e-13)
    np.testing.assert_allclose(cov, ref, atol=1e-11)


def test_exact_sgd_vs_sgd_sde_slope_is_one():
    """With exact moments (no Monte Carlo) SGD vs SGD-SDE on the quadratic is order 1 within +-0.05."""
    p = quadratic_2d()
    etas = [2.0 ** -j for j in range(5, 12)]
    for g in ("sq_norm", "linear", "fluctuation"):
        errs = [exact_weak_error(p, e, 1.0, "sgd_sde", g)["error"] for e in etas]
        fit = fit_slope(etas, errs, [0.0] * len(etas))
        assert abs(fit["slope"] - 1.0) <= 0.05, (g, fit)
        assert fit["slope_ci"][0] <= fit["slope"] <= fit["slope_ci"][1]


def test_coupling_cuts_the_standard_error_at_least_tenfold():
    p = quadratic_2d()
    mult = MultiplierSpec(None, 2.5, "clipped_linear").build(p)
    eta = 0.0125
    kw = dict(r=4, seed=9)
    coupled = estimate_weak_errors(p, mult, eta, 1.0, ["matched"], ["sq_norm"], 20_000, coupled=True, **kw)
    indep = estimate_weak_errors(p, mult, eta, 1.0, ["matched"], ["sq_norm"], 20_000, coupled=False, **kw)
    c, i = coupled[("matched", "sq_norm")], indep[("matched", "sq_norm")]
    assert i.stderr >= 10 * c.stderr, (i.stderr, c.stderr)
    # both estimate the same weak error
    assert abs(c.error - i.error) < 4 * math.hypot(c.stderr, i.stderr)


def test_control_gradient_flow_on_fluctuation_is_not_order_one():
    """A check that must fail does fail: noiseless gradient flow cannot model the fluctuation."""
    p = quadratic_2d()
    etas = [0.1, 0.05, 0.025, 0.0125]
    errs, ses = [], []
    for e in etas:
        pe = estimate_weak_errors(p, IDENTITY, e, 1.0, ["gradient_flow"], ["fluctuation"], 4000, seed=1)[
            ("gradient_flow", "fluctuation")]
        errs.append(pe.error)
        ses.append(pe.stderr)
    fit = fit_slope(etas, errs, ses)
    assert fit["slope"] is not None and fit["slope_ci"][1] < 0.5, fit


def test_matched_sde_is_order_one_on_fluctuation_and_paper_sde_is_not():
    p = quadratic_2d()
    mult = MultiplierSpec(None, 2.5, "clipped_linear").build(p)
    etas = [0.05, 0.025, 0.0125, 0.00625]
    res = {k: ([], []) for k in ("paper", "matched")}
    for i, e in enumerate(etas):
        est = estimate_weak_errors(p, mult, e, 1.0, ["paper", "matched"], ["fluctuation"], 8000, seed=i)
        for k in res:
            res[k][0].append(est[(k, "fluctuation")].error)
            res[k][1].append(est[(k, "fluctuation")].stderr)
    matched = fit_slope(etas, *res["matched"])
    paper = fit_slope(etas, *res["paper"])
    assert matched["slope_ci"][0] <= 1.15 and matched["slope_ci"][1] >= 0.85, matched
    assert paper["slope_ci"][1] < 0.5, paper


def test_gradient_flow_path_matches_closed_form_on_quadratic():
    p = quadratic_2d()
    np.testing.assert_allclose(gradient_flow_path(p, IDENTITY, 1.3), np.exp(-1.3 * p.curvatures) * p.theta0,
                               rtol=1e-9)
    mult = Multiplier(0.0, 1.0)
    assert gradient_flow_path(p, mult, 0.5).shape == (2,)


def test_invalid_process_combinations_fail_clearly():
    p = quadratic_2d()
    with pytest.raises(ValueError, match="no finite dataset"):
        DiscreteProcess(p, IDENTITY, 0.1, noise="minibatch")
    with pytest.raises(ValueError, match="genuine minibatches"):
        DiscreteProcess(get_problem("softmax"), IDENTITY, 0.1, noise="gaussian", info="same_batch")
    with pytest.raises(ValueError, match="unknown SDE kind"):
        ModelSDE(p, IDENTITY, 0.1, "milstein")
    with pytest.raises(ValueError, match="does not divide"):
        estimate_weak_errors(p, IDENTITY, 0.3, 1.0, ["sgd_sde"], ["sq_norm"], 10)
    with pytest.raises(ValueError, match="coupled"):
        estimate_weak_errors(get_problem("softmax"), IDENTITY, 0.1, 1.0, ["sgd_sde"], ["sq_norm"], 10,
                             noise="minibatch", coupled=True)

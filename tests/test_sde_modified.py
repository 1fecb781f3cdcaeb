"""The order-2 modified equations (sde.simulate's matched_2 / paper_2) and the closed forms they are checked
against: every expected value here is computed independently of the code under test (full-matrix recursions,
matrix exponentials and Van Loan integrals, finite differences)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import linalg

from pgpo.multiplier import Multiplier
from sde.family import ModelSDE
from sde.exact import discrete_moments, exact_error_series, exact_weak_error, ou_moments
from sde.specs import MultiplierSpec
from sde.problems import get_problem
from sde.simulate import ConstantMultiplier, gradient_flow_path
from sde.stats import SeriesMoments
from sde.weak_error import estimate_weak_errors

PROBLEMS = ["quadratic", "quadratic-rotated", "quadratic-d10", "double-well", "softmax", "least-squares"]


def _full_discrete(q, eta, n, c):
    """Mean and covariance of the linear recursion with full matrices (no eigenbasis)."""
    m = np.eye(q.dim) - eta * c * q.A
    mean, cov = q.theta0.copy(), np.zeros((q.dim, q.dim))
    for _ in range(n):
        mean, cov = m @ mean, m @ cov @ m.T + (eta * c) ** 2 * q.noise_cov
    return mean, cov


def _van_loan(q, k_mat, q_mat, t):
    """Mean and covariance at t of dX = -K X dt + dW with diffusion covariance Q, via the matrix exponential of
    Van Loan's block matrix (no Lyapunov algebra, no eigenbasis)."""
    d = q.dim
    block = np.zeros((2 * d, 2 * d))
    block[:d, :d], block[:d, d:], block[d:, d:] = -k_mat, q_mat, k_mat.T
    e = linalg.expm(block * t)
    phi = e[:d, :d]
    return phi @ q.theta0, e[:d, d:] @ phi.T


def test_rotated_quadratic_is_not_diagonal_and_its_hessian_is_consistent():
    q = get_problem("quadratic-rotated")
    assert abs(q.A[0, 1]) > 0.1 and abs(q.noise_cov[0, 1]) > 0.1
    assert not np.allclose(q.A @ q.noise_cov, q.noise_cov @ q.A)            # they do not commute
    x = np.random.default_rng(0).standard_normal((5, 2))
    num = np.stack([(q.loss(x + e) - q.loss(x - e)) / 2e-6 for e in np.eye(2) * 1e-6], axis=1)
    np.testing.assert_allclose(q.grad(x, np.empty_like(x)), num, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("name", ["quadratic-rotated", "quadratic-d10"])
@pytest.mark.parametrize("c", [1.0, 2.0])
def test_discrete_moments_equal_the_full_matrix_recursion(name, c):
    q = get_problem(name)
    mean, cov = discrete_moments(q, 0.05, 17, c)
    m2, c2 = _full_discrete(q, 0.05, 17, c)
    np.testing.assert_allclose(mean, m2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cov, c2, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("kind,scale,order2", [("matched", 2.0, False), ("paper", 1.0, False),
                                                ("matched_2", 2.0, True), ("paper_2", 1.0, True)])
def test_ou_moments_equal_van_loan_with_the_order2_drift_matrix(kind, scale, order2):
    """K = c A (+ eta c^2 A^2 / 2 for the order-2 drift: (grad b) b = c^2 A^2 x for b = -c A x)."""
    q, eta, c, t = get_problem("quadratic-rotated"), 0.1, 2.0, 1.3
    k_mat = c * q.A + (0.5 * eta * c * c * q.A @ q.A if order2 else 0.0)
    mean, cov = _van_loan(q, k_mat, scale ** 2 * eta * q.noise_cov, t)
    m2, c2 = ou_moments(q, eta, t, c, scale, order2=order2)
    np.testing.assert_allclose(m2, mean, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(c2, cov, rtol=1e-9, atol=1e-13)


def test_exact_order2_errors_shrink_by_four_per_halving_and_the_papers_by_two():
    """Closed forms on the rotated quadratic, constant c = 2: the matched order-2 equation is order 2 on every
    second-moment test function, the paper's diffusion stays order 1 (its covariance is off by (c^2 - 1) eta Sigma);
    on theta_1 (a mean) the diffusion does not enter."""
    q = get_problem("quadratic-rotated")
    for g in ("sq_norm", "loss", "cross"):
        e = [exact_weak_error(q, eta, 1.0, "matched_2", g, c=2.0)["error"] for eta in (0.004, 0.002)]
        assert e[0] / e[1] == pytest.approx(4.0, rel=0.02), g
        e = [exact_weak_error(q, eta, 1.0, "paper_2", g, c=2.0)["error"] for eta in (0.004, 0.002)]
        assert e[0] / e[1] == pytest.approx(2.0, rel=0.03), g
    e = [exact_weak_error(q, eta, 1.0, "paper_2", "linear", c=2.0)["error"] for eta in (0.004, 0.002)]
    assert e[0] / e[1] == pytest.approx(4.0, rel=0.02)


def test_max_over_time_is_the_maximum_of_the_series():
    q = get_problem("quadratic-rotated")
    s = exact_error_series(q, 0.05, 1.0, "paper", "sq_norm", c=2.0)
    ex = exact_weak_error(q, 0.05, 1.0, "paper", "sq_norm", c=2.0)
    k = int(np.argmax(np.abs(s["error"])))
    assert ex["max_error"] == s["error"][k] and ex["argmax"] == k
    for k in (0, 7, 20):        # the series is the endpoint error of the shorter horizon
        if k:
            assert s["error"][k] == pytest.approx(exact_weak_error(q, 0.05, 0.05 * k, "paper", "sq_norm", c=2.0)["error"],
                                                  rel=1e-10, abs=1e-15)
    assert s["error"][0] == 0.0


@pytest.mark.parametrize("name", PROBLEMS)
def test_hvp_is_the_hessian_times_v(name):
    p = get_problem(name)
    rng = np.random.default_rng(1)
    x = p.theta0 + 0.3 * rng.standard_normal((4, p.dim))
    v = rng.standard_normal((4, p.dim))
    got = p.hvp(x, v, np.empty_like(x))
    want = np.stack([p.hessian(x[i]) @ v[i] for i in range(4)])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(info=st.floats(0.0, 5.0), alpha=st.floats(0.1, 4.0), m_max=st.floats(1.2, 4.0),
       shape=st.sampled_from(["clipped_linear", "smooth"]))
def test_multiplier_derivative_matches_finite_differences(info, alpha, m_max, shape):
    m = Multiplier(alpha, m_max, shape)
    h = 1e-6
    kink = (m_max - 1) / alpha
    if shape == "clipped_linear" and abs(info - kink) < 1e-4 or info < 1e-4:
        return                                           # one-sided at the kink and at I = 0
    fd = (m(info + h) - m(info - h)) / (2 * h)
    assert m.derivative(info) == pytest.approx(fd, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(m.derivative(np.array([info, info])), [m.derivative(info)] * 2)


def _numerical_order2_drift(p, mult, eta, x):
    """b - (eta/2) J b with the Jacobian J of b = -m(I) grad L by central differences, one state at a time."""
    def b(y):
        g = p.grad(y[None, :], np.empty((1, p.dim)))[0]
        i = float(p.info(y[None, :], np.empty(1))[0])
        return -float(mult(i)) * g
    out = []
    for xi in x:
        h = 1e-6
        jac = np.stack([(b(xi + e) - b(xi - e)) / (2 * h) for e in np.eye(p.dim) * h], axis=1)
        out.append(b(xi) - 0.5 * eta * jac @ b(xi))
    return np.array(out)


@pytest.mark.parametrize("name", ["quadratic-rotated", "softmax", "double-well", "least-squares"])
@pytest.mark.parametrize("shape", ["clipped_linear", "smooth"])
def test_order2_drift_equals_b_minus_half_eta_jacobian_times_b(name, shape):
    """The increment of matched_2 / paper_2 with zero noise is h [b - (eta/2)(grad b) b], checked against a
    finite-difference Jacobian (away from the clipped m's kink, where the Jacobian jumps)."""
    p = get_problem(name)
    mult = MultiplierSpec(m_max=2.5, shape=shape).build(p)
    rng = np.random.default_rng(4)
    along = gradient_flow_path(p, mult, 4.0, np.array([0.2, 1.0, 2.0, 3.0, 4.0]))   # from the cap into the linear part
    x = np.concatenate([p.theta0 + 0.4 * rng.standard_normal((6, p.dim)), along + 0.05 * rng.standard_normal(along.shape)])
    info = p.info(x, np.empty(len(x)))
    if shape == "clipped_linear":
        x = x[np.abs(1 + mult.alpha * info - mult.m_max) > 1e-3]
        below = 1 + mult.alpha * p.info(x, np.empty(len(x))) < mult.m_max
        assert below.sum() >= 2 and (~below).sum() >= 1          # both sides of the kink: m' = alpha and m' = 0
    eta, h = 0.07, 0.01
    want = _numerical_order2_drift(p, mult, eta, x) * h
    for kind in ("matched_2", "paper_2"):
        sde = ModelSDE(p, mult, eta, kind)
        got = sde.increment(x.copy(), np.zeros((len(x), p.noise_dim)), h, np.empty_like(x))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_order2_diffusions_are_the_matched_and_the_papers():
    p = get_problem("quadratic-rotated")
    mult = ConstantMultiplier(2.5)
    x = np.zeros((3, 2))                                   # grad L = 0 there: the increment is the noise alone
    dw = np.random.default_rng(5).standard_normal((3, 2))
    s = p.noise(x, dw, np.empty_like(x)) * math.sqrt(0.1)
    np.testing.assert_allclose(ModelSDE(p, mult, 0.1, "matched_2").increment(x, dw, 0.01, np.empty_like(x)), 2.5 * s)
    np.testing.assert_allclose(ModelSDE(p, mult, 0.1, "paper_2").increment(x, dw, 0.01, np.empty_like(x)), s)


def test_monte_carlo_order2_errors_match_the_closed_form():
    """Coupled Monte Carlo of the order-2 SDEs against discrete PGPO (constant c on the rotated quadratic) agrees
    with the exact error within 4 standard errors, at the endpoint and at each of the 20 steps (the Richardson-
    extrapolated solver's O((eta/r)^2) residual is far below the standard error at this path count)."""
    q, c, eta = get_problem("quadratic-rotated"), ConstantMultiplier(2.0), 0.05
    est = estimate_weak_errors(q, c, eta, 1.0, ["matched_2", "paper_2"], ["sq_norm", "loss", "cross"], 20_000,
                               r=4, seed=2, over_time=True)
    for (k, g), pe in est.items():
        ex = exact_error_series(q, eta, 1.0, k, g, c=2.0)["error"]
        assert abs(pe.error - ex[-1]) <= 4 * pe.stderr, (k, g, pe.error, ex[-1], pe.stderr)
        series = pe.over_time
        assert series.n == 20_000 and len(series.mean) == 20
        assert series.mean[-1] == pytest.approx(pe.error, rel=1e-9, abs=1e-12)    # the last step is the endpoint
        assert (np.abs(series.mean - ex[1:]) <= 4 * series.stderr).all(), (k, g)


def test_series_moments_merge_like_one_pass():
    rng = np.random.default_rng(6)
    data = rng.standard_normal((300, 5)) * np.arange(1, 6)
    parts = [data[:70], data[70:71], data[71:]]
    acc = SeriesMoments()
    for p in parts:
        mu = p.mean(axis=0)
        acc.merge(SeriesMoments.of(mu, ((p - mu) ** 2).sum(axis=0), len(p)))
    np.testing.assert_allclose(acc.mean, data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(acc.stderr, data.std(axis=0, ddof=1) / math.sqrt(300), rtol=1e-10)
    v, se, k = acc.max_abs()
    assert k == int(np.argmax(np.abs(data.mean(axis=0)))) and v == acc.mean[k]


def test_max_over_time_curves_merge_rounds_and_bound_the_maximum():
    """sized_estimate merges the per-step moments of its rounds exactly like the endpoint ones, and the max-over-time
    curve's simultaneous band contains the exact maximum (closed form, constant c)."""
    from sde.runners.weak_error import _max_over_time_curve, sized_estimate
    from sde.panels import WeakErrorPanel
    q, c = get_problem("quadratic-rotated"), ConstantMultiplier(2.0)
    acc, _ = sized_estimate(q, c, 0.05, 1.0, "paper_2", ["sq_norm"], 4, 0.05, 500, 2000, 6000, seed=5, over_time=True)
    series = acc[("over_time", "sq_norm")]
    assert series.n == acc["sq_norm"].n > 2000                     # more than one round was merged
    assert series.mean[-1] == pytest.approx(acc["sq_norm"].mean, rel=1e-9)
    p = WeakErrorPanel("w", "quadratic-rotated", [0.05], ["sq_norm"], ["paper_2"], over_time=True)
    rec = _max_over_time_curve(p, [series], {}, {"T": 1.0}, "paper_2", "sq_norm", {})
    exact = exact_weak_error(q, 0.05, 1.0, "paper_2", "sq_norm", c=2.0)
    lo, hi = rec["max_band"][0]
    assert rec["error_at"] == "max_k" and lo <= abs(exact["max_error"]) <= hi
    assert rec["argmax_t"][0] == pytest.approx(0.05 * (int(np.argmax(np.abs(series.mean))) + 1))

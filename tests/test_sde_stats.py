import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sde.stats import RunningMoments, fit_slope, local_slopes, paths_for_precision


@given(st.floats(0.2, 3.0), st.floats(1e-3, 10.0))
def test_exact_power_law_gives_exact_slope(p, c):
    eta = np.array([0.1, 0.05, 0.025, 0.0125])
    fit = fit_slope(eta, c * eta ** p, np.zeros(4))
    assert fit["slope"] == pytest.approx(p, abs=1e-9)
    assert fit["slope_ci"][1] - fit["slope_ci"][0] < 1e-6
    assert all(s == pytest.approx(p, abs=1e-9) for s in fit["local_slopes"])


def test_points_inside_three_standard_errors_are_not_fitted():
    eta = [0.1, 0.05, 0.025, 0.0125]
    err = [1e-2, 5e-3, 2.5e-3, 1e-4]
    se = [1e-4, 1e-4, 1e-4, 1e-4]              # last point: |err| = 1 s.e.
    fit = fit_slope(eta, err, se)
    assert fit["used"] == [True, True, True, False]
    assert fit["slope"] == pytest.approx(1.0, abs=0.02)


def test_sign_change_stops_the_asymptotic_run():
    eta = [0.1, 0.05, 0.025, 0.0125]
    err = [+5e-3, -4e-3, -2e-3, -1e-3]
    fit = fit_slope(eta, err, [1e-6] * 4)
    assert fit["used"] == [False, True, True, True]
    assert fit["slope"] == pytest.approx(1.0, abs=1e-6)


def test_noisy_fit_interval_covers_truth_at_nominal_rate():
    rng = np.random.default_rng(0)
    eta = np.array([0.1, 0.05, 0.025, 0.0125, 0.00625])
    hits, trials = 0, 400
    for _ in range(trials):
        truth = 0.3 * eta
        se = 0.05 * truth
        fit = fit_slope(eta, truth + se * rng.standard_normal(5), se)
        hits += fit["slope_ci"][0] <= 1.0 <= fit["slope_ci"][1]
    # 95 % nominal; 400 trials -> s.d. ~1.1 %; accept [0.90, 0.99]
    assert 0.90 <= hits / trials <= 0.99


def test_too_few_points_give_no_slope():
    fit = fit_slope([0.1, 0.05], [1e-3, 1e-5], [1e-4, 1e-4])
    assert fit["slope"] is None


@settings(max_examples=60)
@given(st.lists(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40), min_size=1, max_size=6))
def test_running_moments_merge_equals_batch(chunks):
    rm = RunningMoments()
    for c in chunks:
        rm.add(np.array(c))
    allv = np.concatenate([np.array(c) for c in chunks])
    assert rm.n == allv.size
    assert rm.mean == pytest.approx(allv.mean(), abs=1e-9 * (1 + np.abs(allv).max()))
    if allv.size > 1:
        assert rm.var == pytest.approx(allv.var(ddof=1), rel=1e-7, abs=1e-7)


def test_paths_for_precision_formula():
    n = paths_for_precision(sigma=2.0, error=0.01, rho=0.2)
    assert n == math.ceil((1.959963984540054 * 2.0 / (0.2 * 0.01)) ** 2)
    assert 1.96 * 2.0 / math.sqrt(n) <= 0.2 * 0.01 * 1.0001
    with pytest.raises(ValueError):
        paths_for_precision(1.0, 0.0)


def test_local_slopes_handle_zero():
    assert local_slopes([0.1, 0.05, 0.025], [1e-2, 0.0, 1e-3]) == [None, None]


@settings(max_examples=40)
@given(st.lists(st.floats(-100, 100), min_size=2, max_size=30), st.lists(st.floats(-100, 100), min_size=2, max_size=30))
def test_running_moments_merge_of_two_sets(a, b):
    x, y = RunningMoments(), RunningMoments()
    x.add(np.array(a))
    y.add(np.array(b))
    x.merge(y)
    allv = np.array(a + b)
    assert x.n == allv.size
    assert x.mean == pytest.approx(allv.mean(), abs=1e-9)
    assert x.var == pytest.approx(allv.var(ddof=1), rel=1e-7, abs=1e-7)


def _exact_wls(x, y, w, degree):
    """Weighted least squares in exact rational arithmetic (normal equations over Fractions, Gauss-Jordan)."""
    from fractions import Fraction as F
    xs, ys, ws = ([F(float(v)) for v in a] for a in (x, y, w))
    n = degree + 1
    a = [[sum(wi * xi ** (i + j) for xi, wi in zip(xs, ws)) for j in range(n)] for i in range(n)]
    b = [sum(wi * yi * xi ** i for xi, yi, wi in zip(xs, ys, ws)) for i in range(n)]
    m = [row + [bi] for row, bi in zip(a, b)]
    for c in range(n):
        p = next(r for r in range(c, n) if m[r][c] != 0)
        m[c], m[p] = m[p], m[c]
        m[c] = [v / m[c][c] for v in m[c]]
        for r in range(n):
            if r != c:
                m[r] = [vr - m[r][c] * vc for vr, vc in zip(m[r], m[c])]
    return [float(row[-1]) for row in m]


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=25, deadline=None)
def test_the_weighted_fit_matches_exact_rational_arithmetic_on_ill_conditioned_grids(seed):
    """eta over two decades with relative weights 1/e^2 (the normal equations' condition number is about 1e9): the
    QR fit keeps the coefficients to 1e-9 of the exact least-squares solution (in the columns' own units)."""
    from sde.stats import weighted_polyfit
    rng = np.random.default_rng(seed)
    eta = 0.1 * 0.5 ** np.arange(8)
    e = 0.3 * eta + 2.0 * eta ** 2 + 5.0 * eta ** 3 + 1e-4 * rng.standard_normal(8) * eta
    w = 1.0 / e ** 2
    beta, cov, chi2 = weighted_polyfit(eta, e, w, 2)
    exact = _exact_wls(eta, e, w, 2)
    scale = [1.0, 1.0 / eta.max(), 1.0 / eta.max() ** 2]          # compare in the columns' own units
    for b, ex, s in zip(beta, exact, scale):
        assert abs(b - ex) <= 1e-9 * s * max(abs(v) / t for v, t in zip(exact, scale))
    design = np.vander(eta, 3, increasing=True)
    assert chi2 == pytest.approx(float((w * (e - design @ np.array(exact)) ** 2).sum()), rel=1e-6)
    assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_an_interpolating_fit_has_chi2_exactly_zero():
    from sde.stats import weighted_polyfit
    beta, _, chi2 = weighted_polyfit([0.1, 0.05, 0.025], [3.0, 1.0, 2.0], [1.0, 2.0, 3.0], 2)
    assert chi2 == 0.0
    assert np.polyval(beta[::-1], 0.05) == pytest.approx(1.0, rel=1e-12)

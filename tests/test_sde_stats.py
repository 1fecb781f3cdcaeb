import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sde.stats import RunningMoments, fit_error_model, fit_slope, local_slopes, paths_for_precision


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


ETAS = np.array([0.1, 0.05, 0.025, 0.0125, 0.00625])


def _noisy(truth, rel=0.03, seed=0):
    se = rel * np.abs(truth) + 1e-6
    return truth + se * np.random.default_rng(seed).standard_normal(truth.size), se


def test_a_plateau_converges_elsewhere_and_its_interval_covers_it():
    err, se = _noisy(0.02 + 0.5 * ETAS)
    fit = fit_error_model(ETAS, err, se)
    assert fit["verdict"] == "converges elsewhere"
    assert fit["B_ci"][0] <= 0.02 <= fit["B_ci"][1]


def test_an_order_one_curve_with_curvature_is_order_one():
    err, se = _noisy(0.3 * ETAS + 2.0 * ETAS ** 2, seed=1)
    fit = fit_error_model(ETAS, err, se)
    assert fit["verdict"] == "order 1"
    assert fit["B_ci"][0] <= 0.0 <= fit["B_ci"][1] and fit["C1_ci"][0] <= 0.3 <= fit["C1_ci"][1]


def test_an_order_two_curve_is_order_two():
    """Over 40 noise draws: order 2 in most, a false order 1 or plateau rarely (each needs a 3 s.e. excursion);
    the rest inconclusive (B or C1 between 2 and 3 s.e.)."""
    verdicts = []
    for seed in range(40):
        err, se = _noisy(2.0 * ETAS ** 2, seed=100 + seed)
        fit = fit_error_model(ETAS, err, se)
        verdicts.append(fit["verdict"])
        if fit["verdict"] == "order 2":
            assert fit["C2_ci"][0] <= 2.0 <= fit["C2_ci"][1] or abs(fit["C2"] - 2.0) < 4 * fit["C2_se"]
    assert verdicts.count("order 2") >= 28
    assert verdicts.count("order 1") + verdicts.count("converges elsewhere") <= 2


def test_the_old_slope_rule_failure_a_shallow_slope_with_a_plateau_is_not_order_one():
    """0.73 [0.55, 0.91] on a curve converging to a non-zero limit used to read 'order 1'."""
    truth = 0.004 + 0.2 * ETAS
    err, se = _noisy(truth, rel=0.01, seed=3)
    assert fit_slope(ETAS, err, se)["slope"] < 0.9
    assert fit_error_model(ETAS, err, se)["verdict"] == "converges elsewhere"


def test_a_significant_but_tiny_offset_is_not_a_plateau():
    """An order-1 curve measured so precisely that a 1e-5 offset (0.5 % of the smallest error, what an eta^1.5 term
    leaves on this grid) exceeds 3 s.e.: not a plateau, by the 5 % share rule."""
    truth = -1e-5 + 0.2 * ETAS
    se = 1e-7 * np.ones(5)
    fit = fit_error_model(ETAS, truth, se)
    assert abs(fit["B"]) > 3 * fit["B_se"]
    assert fit["verdict"] == "order 1" and fit["coefficients"]["B"] == "zero"
    assert fit_error_model(ETAS, 2e-3 + 0.2 * ETAS, se)["verdict"] == "converges elsewhere"   # 6 % of e(eta_min)


def test_an_offset_between_two_and_three_standard_errors_is_undetermined():
    """B's 95 % interval excludes 0 but |B| < 3 s.e.: neither 'zero' nor 'non-zero', so no order is claimed."""
    se = np.full(5, 1e-4)
    truth = 0.2 * ETAS + 1e-3                                       # 20 % of the smallest error: material
    fit = fit_error_model(ETAS, truth, se)
    z = fit["B"] / fit["B_se"]
    offset = (2.5 - z) * fit["B_se"]                                 # move B to 2.5 s.e.: same design, same s.e.
    fit = fit_error_model(ETAS, truth + offset, se)
    assert fit["B_ci"][0] > 0 and fit["B"] < 3 * fit["B_se"]
    assert fit["coefficients"]["B"] == "undetermined" and fit["verdict"] == "inconclusive"


def test_a_fit_trimmed_to_three_points_gives_no_verdict():
    etas = np.array([0.1, 0.05, 0.025, 0.0125])
    truth = 0.3 * etas + 30.0 * etas ** 3
    fit = fit_error_model(etas, truth, np.full(4, 1e-6))
    assert fit["used"] == [False, True, True, True] and fit["verdict"] == "inconclusive"
    assert "no degree of freedom" in fit["reason"]


def test_two_points_above_noise_give_no_fit():
    fit = fit_error_model([0.1, 0.05, 0.025], [1e-2, 5e-3, 1e-5], [1e-4, 1e-4, 1e-4])
    assert fit["n_above_noise"] == 2 and fit["B"] is None and fit["verdict"] == "inconclusive"
    fit = fit_error_model([0.1, 0.05], [1e-2, 5e-3], [1e-4, 1e-4])
    assert fit["B"] is None and fit["verdict"] == "inconclusive"


def test_pure_noise_is_inconclusive():
    err = 1e-4 * np.random.default_rng(4).standard_normal(5)
    assert fit_error_model(ETAS, err, np.full(5, 1e-4))["verdict"] == "inconclusive"


def test_a_misfit_drops_the_largest_step_sizes():
    etas = np.array([0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625])
    truth = 0.3 * etas + etas ** 3                                 # an eta^3 term the model lacks
    se = 1e-5 * np.ones(6)
    fit = fit_error_model(etas, truth, se)
    assert fit["used"][0] is False and all(fit["used"][-3:])
    assert (fit["p_value"] is None or fit["p_value"] >= 0.05) and fit["verdict"] == "order 1"


def test_closed_form_curves_use_the_residual_scatter():
    etas = 2.0 ** -np.arange(5, 13)
    order1 = -0.2 * etas + 0.4 * etas ** 2 + 3.0 * etas ** 3
    fit = fit_error_model(etas, order1, np.zeros(etas.size))
    assert fit["exact"] and fit["verdict"] == "order 1" and fit["C1_ci"][0] <= -0.2 <= fit["C1_ci"][1]
    fit = fit_error_model(etas, 0.75 + order1, np.zeros(etas.size))
    assert fit["verdict"] == "converges elsewhere" and fit["B_ci"][0] <= 0.75 <= fit["B_ci"][1]
    exact_poly = 0.5 * etas + etas ** 2                            # fitted exactly: residuals at rounding level
    assert fit_error_model(etas, exact_poly, np.zeros(etas.size))["verdict"] == "order 1"


@settings(max_examples=40, deadline=None)
@given(st.floats(-1.0, 1.0), st.floats(-2.0, 2.0), st.floats(-5.0, 5.0))
def test_noise_free_curves_recover_their_coefficients(b, c1, c2):
    truth = b + c1 * ETAS + c2 * ETAS ** 2
    fit = fit_error_model(ETAS, truth, np.full(5, 1e-9))
    if fit["B"] is None:                                            # fewer than 3 points above 3e-9
        assert (np.abs(truth) > 3e-9).sum() < 3
        return
    assert fit["B"] == pytest.approx(b, abs=1e-7) and fit["C1"] == pytest.approx(c1, abs=1e-5)
    e_min = abs(truth[-1])                                           # the (fitted = true) error at the smallest eta

    def state(v, se, share, material=True):
        material = share >= 0.05 * e_min if material else True
        if abs(v) > 3 * se and material:
            return "non-zero"
        return "zero" if abs(v) <= 1.959963984540054 * se or not material else "undetermined"
    sb = state(b, fit["B_se"], abs(b))
    s1 = state(c1, fit["C1_se"], abs(c1) * ETAS[-1])
    s2 = state(c2, fit["C2_se"], 0.0, material=False)
    expected = ("converges elsewhere" if sb == "non-zero" else "inconclusive" if sb == "undetermined" else
                "order 1" if s1 == "non-zero" else "inconclusive" if s1 == "undetermined" else
                "order 2" if s2 == "non-zero" else "inconclusive")
    assert fit["verdict"] == expected


def test_plateau_interval_covers_at_the_nominal_rate():
    truth = 0.01 + 0.3 * ETAS
    se = 0.02 * truth
    rng = np.random.default_rng(5)
    hits = sum(fit["B_ci"][0] <= 0.01 <= fit["B_ci"][1]
               for fit in (fit_error_model(ETAS, truth + se * rng.standard_normal(5), se) for _ in range(400)))
    assert 0.90 <= hits / 400 <= 0.99                                # 95 % nominal, s.d. ~1.1 %


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

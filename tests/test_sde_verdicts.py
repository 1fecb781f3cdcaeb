"""The verdict rule (sde.verdicts), the closed forms' exact coefficients (sde.asymptotics) and the rule's
calibration (sde.calibration)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sde.asymptotics import exact_coefficients
from sde.verdicts import (EQUIVALENCE_FRACTION, MATERIAL_FRACTION, assign, decide, family_rejections, fit_curve, holm,
                          judge)

ETAS = np.array([0.1, 0.05, 0.025, 0.0125, 0.00625])


def _noisy(truth, rel=0.03, seed=0):
    se = rel * np.abs(truth) + 1e-6
    return truth + se * np.random.default_rng(seed).standard_normal(truth.size), se


def test_a_plateau_converges_elsewhere_and_its_interval_covers_it():
    err, se = _noisy(0.02 + 0.5 * ETAS)
    fit = judge(ETAS, err, se)
    assert fit["verdict"] == "converges elsewhere"
    assert fit["B_ci"][0] <= 0.02 <= fit["B_ci"][1]


def test_an_order_one_curve_with_curvature_is_order_one_and_states_its_bound():
    err, se = _noisy(0.3 * ETAS + 2.0 * ETAS ** 2, seed=1)
    fit = judge(ETAS, err, se)
    assert fit["verdict"] == "order 1"
    assert fit["B_ci"][0] <= 0.0 <= fit["B_ci"][1] and fit["C1_ci"][0] <= 0.3 <= fit["C1_ci"][1]
    assert fit["bound"]["B"] == pytest.approx(abs(fit["B"]) + 1.6448536269514722 * fit["B_se"])
    assert f"|B| < {fit['bound']['B']:.2g}" in fit["reason"]
    assert fit["bound"]["B"] < EQUIVALENCE_FRACTION * abs(fit["error_at_min_eta"])


def test_an_order_two_curve_is_order_two_and_never_a_plateau():
    """Over 40 noise draws (3 % of each error): order 2 in most; a plateau would need B beyond 1.96 s.e. *and* the
    same sign beyond 2 s.e. without the largest eta and with an eta^3 term."""
    verdicts = []
    for seed in range(40):
        err, se = _noisy(2.0 * ETAS ** 2, seed=100 + seed)
        fit = judge(ETAS, err, se)
        verdicts.append(fit["verdict"])
        if fit["verdict"] == "order 2":
            assert abs(fit["C2"] - 2.0) < 4 * fit["C2_se"]
    assert verdicts.count("order 2") >= 28
    assert verdicts.count("converges elsewhere") <= 2


def test_a_shallow_slope_with_a_plateau_is_not_order_one():
    """0.73 [0.55, 0.91] on a curve converging to a non-zero limit used to read 'order 1'."""
    from sde.stats import fit_slope
    err, se = _noisy(0.004 + 0.2 * ETAS, rel=0.01, seed=3)
    assert fit_slope(ETAS, err, se)["slope"] < 0.9
    assert judge(ETAS, err, se)["verdict"] == "converges elsewhere"


def test_a_significant_but_tiny_offset_is_not_a_plateau():
    """An order-1 curve measured so precisely that a 1e-5 offset (0.5 % of the smallest error) is significant: not a
    plateau, by the share rule; a 2e-3 offset (6 %) is."""
    se = 1e-7 * np.ones(5)
    fit = judge(ETAS, -1e-5 + 0.2 * ETAS, se)
    assert abs(fit["B"]) > 3 * fit["B_se"] and fit["share"]["B"] < MATERIAL_FRACTION
    assert fit["verdict"] == "order 1"
    assert judge(ETAS, 2e-3 + 0.2 * ETAS, se)["verdict"] == "converges elsewhere"


def test_a_bent_order_one_curve_is_not_read_as_a_plateau():
    """e = 0.3 eta + 20 eta^3 on six points with s.e. 3e-5: the quadratic fit passes its chi^2 test and its B is
    3.5 s.e. from 0 (and material), but the fit without the largest eta and the fit with an eta^3 term lose it, so
    the plateau is refused."""
    etas = 0.1 * 0.5 ** np.arange(6)
    truth = 0.3 * etas + 20.0 * etas ** 3
    se = np.full(6, 3e-5)
    fit = fit_curve(etas, truth, se)
    rej = family_rejections([fit])[0]
    assert fit["status"] == "fit" and fit["p_value"] > 0.05
    assert rej["B"] and fit["share"]["B"] >= MATERIAL_FRACTION and abs(fit["B"] / fit["B_se"]) > 3
    verdict, reason = decide(fit, rej)
    assert verdict == "inconclusive" and "not stable" in reason
    assert [c["check"] for c in fit["stable"]] == ["largest eta dropped", "eta^3 term added"]
    assert abs(fit["stable"][1]["B"]) < 1e-3 * fit["stable"][1]["B_se"]       # the cubic model is exact here


def test_a_fit_trimmed_to_three_points_gives_no_verdict():
    etas = np.array([0.1, 0.05, 0.025, 0.0125])
    truth = 0.3 * etas + 30.0 * etas ** 3
    fit = judge(etas, truth, np.full(4, 1e-6))
    assert fit["used"] == [False, True, True, True] and fit["verdict"] == "inconclusive"
    assert "no degree of freedom" in fit["reason"]


def test_two_points_above_noise_give_no_fit():
    fit = judge([0.1, 0.05, 0.025], [1e-2, 5e-3, 1e-5], [1e-4, 1e-4, 1e-4])
    assert fit["n_above_noise"] == 2 and fit["B"] is None and fit["verdict"] == "inconclusive"
    fit = judge([0.1, 0.05], [1e-2, 5e-3], [1e-4, 1e-4])
    assert fit["B"] is None and fit["verdict"] == "inconclusive"


def test_pure_noise_is_inconclusive():
    err = 1e-4 * np.random.default_rng(4).standard_normal(5)
    assert judge(ETAS, err, np.full(5, 1e-4))["verdict"] == "inconclusive"


def test_a_misfit_drops_the_largest_step_sizes():
    etas = np.array([0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625])
    truth = 0.3 * etas + etas ** 3                                 # an eta^3 term the model lacks
    fit = judge(etas, truth, 1e-5 * np.ones(6))
    assert fit["used"][0] is False and all(fit["used"][-3:])
    assert (fit["p_value"] is None or fit["p_value"] >= 0.05) and fit["verdict"] == "order 1"


def test_plateau_interval_covers_at_the_nominal_rate():
    truth = 0.01 + 0.3 * ETAS
    se = 0.02 * truth
    rng = np.random.default_rng(5)
    hits = sum(fit["B_ci"][0] <= 0.01 <= fit["B_ci"][1]
               for fit in (fit_curve(ETAS, truth + se * rng.standard_normal(5), se) for _ in range(400)))
    assert 0.90 <= hits / 400 <= 0.99                                # 95 % nominal, s.d. ~1.1 %


def test_an_order_verdicts_bound_covers_a_small_true_plateau():
    """A true plateau of 0.3 e(eta_min), noise 10 % of e(eta_min): whenever the rule says 'order', its one-sided 95 %
    bound |B| < delta must exceed the plateau in at least ~95 % of cases (binomial slack over 400 draws)."""
    b = 0.3 * ETAS.min()
    truth = b + ETAS
    se = np.full(5, 0.1 * truth.min())
    rng = np.random.default_rng(6)
    orders = wrong = 0
    for _ in range(400):
        fit = judge(ETAS, truth + se * rng.standard_normal(5), se)
        if fit["verdict"] in ("order 1", "order 2"):
            orders += 1
            wrong += fit["bound"]["B"] <= b
    assert orders > 0 and wrong <= 0.05 * 400 + 3 * math.sqrt(0.05 * 0.95 * 400)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30), st.sampled_from([0.01, 0.05, 0.2]))
def test_holm_is_the_step_down_procedure(ps, level):
    """Against the definition: H_(i) is rejected iff p_(j) <= level / (m - j + 1) for every j <= i."""
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    expected = [False] * m
    for rank, i in enumerate(order):
        if all(ps[order[j]] <= level / (m - j) for j in range(rank + 1)):
            expected[i] = True
    assert holm(ps, level) == expected


def test_multiplicity_a_curve_significant_alone_is_not_when_the_family_is_large():
    """B at 4 s.e. (p = 6.3e-5): a plateau on its own, not among 400 curves (1200 tests: Holm's smallest threshold
    0.05 / 1200 = 4.2e-5, 4.1 s.e.)."""
    se = np.full(5, 1e-4)
    base = 0.2 * ETAS + 2e-3
    fit = fit_curve(ETAS, base, se)
    err = base + (4.0 * fit["B_se"] - fit["B"])                    # same design, B moved to 4 s.e.
    alone = judge(ETAS, err, se)
    assert alone["B"] / alone["B_se"] == pytest.approx(4.0) and alone["verdict"] == "converges elsewhere"
    curves = [{"fit": fit_curve(ETAS, err, se)}] + [{"fit": fit_curve(ETAS, 0.2 * ETAS, se)} for _ in range(399)]
    assign(curves)
    assert curves[0]["verdict"] != "converges elsewhere"


def test_exact_coefficients_of_gradient_descent_against_its_flow():
    """f(eta) = (1 - eta a)^(2T/eta) - e^(-2aT): the series log(1 - x) = -x - x^2/2 - ... gives B = 0,
    C1 = -T a^2 e^(-2aT), C2 = e^(-2aT) (T^2 a^4 / 2 - 2 T a^3 / 3)."""
    a, t = 1.3, 1.0

    def f(eta):
        n = round(t / eta)
        return math.exp(2 * n * math.log1p(-eta * a)) - math.exp(-2 * a * t)
    r = exact_coefficients(f, 1 / 64)
    e = math.exp(-2 * a * t)
    c1, c2 = -t * a * a * e, e * (t * t * a ** 4 / 2 - 2 * t * a ** 3 / 3)
    assert abs(r["B"]) <= 10 * r["tolerance"]["B"] and r["tolerance"]["B"] < 1e-12
    assert r["C1"] == pytest.approx(c1, rel=1e-9) and abs(r["C1"] - c1) <= r["tolerance"]["C1"] + 1e-12
    assert r["C2"] == pytest.approx(c2, rel=1e-6) and abs(r["C2"] - c2) <= 10 * r["tolerance"]["C2"]


def test_the_matched_order_two_constant_is_the_exact_one():
    """The committed C2 = 2.72 [2.67, 2.76] for matched_2 (rotated quadratic, m = 2, |theta|^2) came from residual
    scatter and excluded the true value; the exact coefficient is 2.665 (extrapolated to ~1e-8)."""
    from sde.exact import exact_endpoint_error
    from sde.problems import get_problem
    p = get_problem("quadratic-rotated")
    r = exact_coefficients(lambda e: exact_endpoint_error(p, e, 1.0, "matched_2", "sq_norm", c=2.0), 0.05)
    assert r["C2"] == pytest.approx(2.6652, abs=1e-4) and r["tolerance"]["C2"] < 1e-5
    assert abs(r["B"]) <= 10 * r["tolerance"]["B"] and abs(r["C1"]) <= 10 * r["tolerance"]["C1"]
    fit = judge([0.05], [0.0], [0.0], exact=r)
    assert fit["verdict"] == "order 2"


def test_calibration_counts_false_plateaus_of_a_known_family():
    """Curves whose truth is order 1 (B = 0) exactly: the bootstrap's false-plateau rate is small, and a curve family
    with a real plateau gives no false order claims at this precision."""
    from sde.calibration import calibrate
    curves = []
    for i in range(12):
        truth = (0.2 + 0.01 * i) * ETAS + ETAS ** 2
        curves.append({"eta": ETAS.tolist(), "error": truth.tolist(), "stderr": (0.03 * truth).tolist(),
                       "prediction": 0.0, "sde": "matched", "g": "sq_norm", "method": "monte_carlo"})
    truth = 0.01 + 0.3 * ETAS
    curves.append({"eta": ETAS.tolist(), "error": truth.tolist(), "stderr": (0.01 * truth).tolist(),
                   "prediction": 0.01, "sde": "paper", "g": "fluctuation", "method": "monte_carlo"})
    cal = calibrate(curves, reps=60, seed=3)
    fp = cal["rates"]["false_plateau"]
    assert cal["curves"] == 13 and cal["curves_B_zero"] == 12
    assert fp["per_curve_mean"] <= 0.05 and fp["table_p_at_least_one"] <= 0.2
    assert cal["rates"]["false_order"]["table_expected"] == 0.0
    assert all(p["truth_model"]["adequate"] for p in cal["per_curve"])

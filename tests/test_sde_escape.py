"""Metastable escape (sde.escape): the exact first-passage quadrature against closed forms, Monte Carlo against
the quadrature, Kramers as its low-temperature limit."""

import math

import numpy as np
import pytest

from sde import escape
from sde.escape import Passage, exact_mfpt, exact_mfpt_1d, first_passage_mc, kramers_mfpt
from sde.specs import MultiplierSpec
from sde.problems import DoubleWell, get_problem
from sde.simulate import ConstantMultiplier


@pytest.mark.parametrize("mu,s2,x0,a", [(0.7, 0.3, 1.0, -0.5), (2.0, 4.0, 0.2, -3.0)])
def test_constant_drift_gives_distance_over_speed(mu, s2, x0, a):
    """dX = -mu dt + s dW from x0 down to a: E tau = (x0 - a) / mu, whatever s."""
    got = exact_mfpt_1d(lambda y: -mu + 0 * y, lambda y: s2 + 0 * y, x0, a, x0 + 40 * s2 / mu + 10)
    assert got == pytest.approx((x0 - a) / mu, rel=1e-6)


def test_ornstein_uhlenbeck_exit_time_matches_its_series():
    """dX = -k X dt + s dW from x0 = 0 down to a < 0. Independent answer: E tau = int_a^0 ... computed here by
    the classical formula T(0) = (sqrt(pi) / k) int_0^{|a| sqrt(k) / s} e^{u^2} erfc(-u) du (scipy quad)."""
    from scipy import integrate, special
    k, s, a = 1.3, 0.9, -0.8
    want = integrate.quad(lambda u: math.exp(u * u) * special.erfc(-u), 0.0, abs(a) * math.sqrt(k) / s)[0]
    want *= math.sqrt(math.pi) / k
    got = exact_mfpt_1d(lambda y: -k * y, lambda y: s * s + 0 * y, 0.0, a, 8.0)
    assert got == pytest.approx(want, rel=1e-6)


def test_deterministic_walk_passes_at_the_counted_step():
    rng = np.random.default_rng(0)
    res = first_passage_mc(lambda x, _r: x.__isub__(0.3), 1.0, -0.5, 0.1, 7, 100.0, rng)
    assert res.mean == pytest.approx(0.5) and res.stderr == 0.0 and res.n_censored == 0     # 1 - 0.3 k <= -0.5: k = 5


def test_censored_paths_are_counted_and_the_mean_is_a_lower_bound():
    rng = np.random.default_rng(0)
    res = first_passage_mc(lambda x, _r: None, 1.0, 0.0, 0.5, 9, 3.0, rng)                   # never moves
    assert isinstance(res, Passage) and res.n_censored == 9 and res.censored_fraction == 1.0
    assert res.mean == res.horizon == 3.0


@pytest.mark.parametrize("sde,c", [("matched", 2.0), ("paper", 1.0)])
def test_euler_maruyama_passage_times_match_the_exact_mfpt(sde, c):
    """Monte Carlo of the SDE itself (Euler-Maruyama, h = eta/8) from x* over the barrier agrees with the quadrature
    within 4 standard errors plus 3 % for the scheme's O(h) bias (measured with 8000 paths at h = eta/4, eta/8 and
    eta/16, the three means agree within about 1 % standard errors: the bias is not resolved at that size)."""
    p = get_problem("double-well-escape")
    mult, eta = ConstantMultiplier(c), 0.1
    exact = exact_mfpt(p, mult, eta, sde)
    h = eta / 8
    res = first_passage_mc(escape.sde_step(p, mult, eta, sde, h), p.well, escape.escape_target(p), h, 3000,
                           12 * exact, np.random.default_rng(3))
    assert res.n_censored <= 3
    assert abs(res.mean - exact) <= 4 * res.stderr + 0.03 * exact, (res.mean, res.stderr, exact)


def test_state_dependent_mfpt_lies_between_the_constant_ones():
    """With m(I) rising from 1 in the well to 2.5 at the barrier, the matched SDE escapes faster than with m = 1
    and slower than with m = 2.5 everywhere; the paper's SDE the other way round."""
    p = get_problem("double-well-escape")
    mult = MultiplierSpec(alpha=1.15, m_max=2.5).build(p)
    for sde in ("matched", "paper"):
        lo, mid, hi = (exact_mfpt(p, m, 0.1, sde) for m in (ConstantMultiplier(1.0), mult, ConstantMultiplier(2.5)))
        assert (hi < mid < lo) if sde == "matched" else (lo < mid < hi), sde


def test_kramers_is_the_low_temperature_limit_of_the_exact_mfpt():
    """The ratio exact / Kramers tends to 1 as the temperature falls (its corrections are O(T_eff / dV))."""
    p = DoubleWell(sigma=1.0)
    ratios = [exact_mfpt(p, ConstantMultiplier(1.0), eta, "matched") / kramers_mfpt(p, 1.0, eta, "matched")
              for eta in (0.4, 0.2, 0.1)]
    assert all(r > 1 for r in ratios) and ratios[0] > ratios[1] > ratios[2] and abs(ratios[2] - 1) < 0.1
    # the two SDEs' temperatures differ by c^2: log MFPT ratio ~ dV (1/T_paper - 1/T_matched)
    pe = get_problem("double-well-escape")
    c, eta = 2.0, 0.1
    log_ratio = math.log(exact_mfpt(pe, ConstantMultiplier(c), eta, "paper") /
                         exact_mfpt(pe, ConstantMultiplier(c), eta, "matched"))
    t_m, t_p = eta * c * pe.sigma ** 2 / 2, eta * pe.sigma ** 2 / (2 * c)
    assert log_ratio == pytest.approx(escape.barrier(pe) * (1 / t_p - 1 / t_m), rel=0.05)


def test_escape_panel_rows_carry_the_exact_and_the_monte_carlo_times():
    from sde.panels import EscapePanel
    from sde.runners.escape import escape_panel
    from sde.study import StudyProgress
    p = EscapePanel("e", "double-well-escape", [0.2], constants=[2.0], paths=300, horizon_factor=8.0)
    (row,) = escape_panel(p, StudyProgress("t", 1))
    pe = get_problem("double-well-escape")
    exact = exact_mfpt(pe, ConstantMultiplier(2.0), 0.2, "matched")
    assert row["exact"]["matched"] == exact and row["discrete"]["horizon"] == pytest.approx(8.0 * exact, abs=0.2)
    d = row["discrete"]
    assert d["n_paths"] == 300 and 0 <= d["n_censored"] <= 300 and d["ci95"][0] < d["mean"] < d["ci95"][1]
    assert row["temperature"]["matched"] == pytest.approx(0.2 * 2.0 * 2.5 ** 2 / 2)
    assert row["kramers"]["paper"] == kramers_mfpt(pe, 2.0, 0.2, "paper")


def test_infeasible_escape_horizons_are_refused_before_any_work(tmp_path):
    from runtools.schema import ConfigError
    from sde.studyfile import load_study
    p = tmp_path / "s.yaml"
    p.write_text("name: x\npanels:\n  - {id: a, kind: escape, problem: double-well, etas: [0.1], constants: [1.0]}\n")
    with pytest.raises(ConfigError, match=r"etas: at eta=0.1 with constants: 1 the horizon is .* steps"):
        load_study(str(p))

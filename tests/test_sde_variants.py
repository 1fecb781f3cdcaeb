"""sde.variants: the variants' discrete processes and SDEs against independent computations (torch-free)."""

import itertools
import math

import numpy as np
import pytest

from pgpo.modulation import InfoEMA, StepRule
from pgpo.multiplier import Multiplier
from runtools.schema import ConfigError
from sde.problems import get_problem
from sde.simulate import DiscreteProcess
from sde.theory import batch_law
from sde.variants import (PerSampleDiscrete, PerSampleSDE, SmoothedDiscrete, SmoothedSDE, per_sample_drift,
                          smoothed_flow)

SOFTMAX = get_problem("softmax")
MULT = Multiplier(alpha=12.0, m_max=2.5)


def _ordered_tuples(problem, size):
    """Every ordered minibatch of sample classes with its probability (prod p_c): independent of batch_law's
    multiset enumeration."""
    reps, probs = problem.sample_groups()
    for combo in itertools.product(range(len(reps)), repeat=size):
        yield reps[list(combo)], float(np.prod(probs[list(combo)]))


def _direction_law(problem, mult, x, normalize):
    """Mean and covariance of one per-sample-weighted step direction at state x, by brute force over ordered batches."""
    dirs, ws = [], []
    one = np.empty(1)
    for idx, w in _ordered_tuples(problem, problem.batch_size):
        num, den = np.zeros(problem.dim), 0.0
        for i in idx:
            wi = float(mult(float(problem.batch_info(x[None, :], np.array([[i]]), one)[0])))
            num += wi * problem.batch_grad(x[None, :], np.array([[i]]), np.empty((1, problem.dim)))[0]
            den += wi
        dirs.append(num / (den if normalize else problem.batch_size))
        ws.append(w)
    dirs, ws = np.array(dirs), np.array(ws)
    mean = ws @ dirs
    cov = (dirs - mean).T @ ((dirs - mean) * ws[:, None])
    return mean, cov


@pytest.mark.parametrize("normalize", [False, True])
def test_per_sample_sde_has_the_mean_and_covariance_of_the_weighted_step(normalize):
    """Drift = -E[direction], diffusion D with D D^T = eta Cov[direction], both against a brute-force sum over the
    4^4 ordered minibatches of the softmax's classes; and the unnormalised drift is -E_i[m(I_i) grad l_i]."""
    law = batch_law(SOFTMAX)
    x = np.array([0.3, -0.2, 0.1, -0.4])
    mean, cov = _direction_law(SOFTMAX, MULT, x, normalize)
    drift = per_sample_drift(SOFTMAX, MULT, x[None, :], law, normalize)[0]
    np.testing.assert_allclose(drift, -mean, rtol=1e-10, atol=1e-14)
    eta = 0.05
    sde = PerSampleSDE(SOFTMAX, MULT, eta, normalize, law)
    cols = []
    for j in range(sde.noise_dim):                        # the diffusion's columns: h = 0, dW = e_j
        dw = np.zeros((1, sde.noise_dim))
        dw[0, j] = 1.0
        cols.append(sde.increment(x[None, :], dw, 0.0, np.empty((1, 4)))[0])
    d = np.array(cols).T
    np.testing.assert_allclose(d @ d.T, eta * cov, rtol=1e-9, atol=1e-15)
    if not normalize:
        info = np.empty(1)
        per = [MULT(float(SOFTMAX.batch_info(x[None, :], np.array([[i]]), info)[0])) *
               SOFTMAX.batch_grad(x[None, :], np.array([[i]]), np.empty((1, 4)))[0] for i in range(SOFTMAX.n_data)]
        np.testing.assert_allclose(drift, -np.mean(per, axis=0), rtol=1e-10, atol=1e-14)


def test_per_sample_discrete_with_the_identity_is_minibatch_sgd():
    ident = Multiplier(0.0, 1.0)
    a, b = np.tile(SOFTMAX.theta0, (500, 1)), np.tile(SOFTMAX.theta0, (500, 1))
    ra, rb = np.random.default_rng(1), np.random.default_rng(1)
    ps, sgd = PerSampleDiscrete(SOFTMAX, ident, 0.1, normalize=False), DiscreteProcess(SOFTMAX, ident, 0.1, "minibatch")
    for _ in range(20):
        ps.advance(a, ra)
        sgd.advance(b, rb)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert np.ptp(a, axis=0).max() > 0.1                  # the minibatches really differed across paths


def test_smoothed_discrete_with_unit_weight_is_the_papers_pgpo():
    """tau <= eta makes the moving-average weight 1: Ibar_k = I_k, so m(Ibar_k) = m(I_k), path by path."""
    q = get_problem("quadratic")
    mult = Multiplier(2.0, 2.5)
    a, b = np.tile(q.theta0, (300, 1)), np.tile(q.theta0, (300, 1))
    za, zb = np.empty((300, q.noise_dim)), np.empty((300, q.noise_dim))
    ra, rb = np.random.default_rng(2), np.random.default_rng(2)
    sm = SmoothedDiscrete(q, StepRule(mult, signal="smoothed"), 0.05, tau=0.01, noise="gaussian", info="exact")
    pg = DiscreteProcess(q, mult, 0.05)
    for _ in range(20):
        sm.advance(a, ra, za)
        pg.advance(b, rb, zb)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_bias_corrected_average_converges_at_order_one_to_the_augmented_equation():
    """For a known signal I(t), the discrete Ibar at T (weight eta / tau) against S(T) / (1 - exp(-T / tau)) with
    dS = (I - S) / tau dt (closed form by quadrature): the error halves with eta (the docstring's O(eta) claim)."""
    from scipy.integrate import quad
    tau, T = 0.2, 1.0
    sig = lambda t: 1.0 + math.sin(3 * t)                   # noqa: E731
    s_T = quad(lambda u: math.exp(-(T - u) / tau) * sig(u) / tau, 0.0, T, epsabs=1e-13)[0]
    exact = s_T / -math.expm1(-T / tau)
    errs = []
    for eta in (0.02, 0.01, 0.005, 0.0025):
        ema = InfoEMA(eta / tau)
        for k in range(int(round(T / eta)) + 1):
            v = ema.update(sig(k * eta))
        errs.append(abs(v - exact))
    ratios = [errs[i] / errs[i + 1] for i in range(3)]
    assert all(1.8 < r < 2.2 for r in ratios), (errs, ratios)


def test_paired_difference_vanishes_when_m_ignores_I_and_not_otherwise():
    from sde.variants import paired_difference_mc
    same = paired_difference_mc(SOFTMAX, StepRule(Multiplier(0.0, 1.0)), 0.1, 0.2, 1.0, ["sq_norm"], 3000, seed=4)
    assert same["sq_norm"].mean == 0.0 and same["sq_norm"].stderr == 0.0    # the noisy I is never used
    raw = paired_difference_mc(SOFTMAX, StepRule(MULT), 0.1, 0.2, 1.0, ["sq_norm"], 3000, seed=4)
    assert abs(raw["sq_norm"].mean) > 5 * raw["sq_norm"].stderr > 0          # the Jensen gap, resolved by pairing


def test_augmented_sde_increment():
    """S's drift (I - S)/tau, the clock, Ibar(0) = I(theta_0), and theta's drift -m(Ibar) grad L with no noise."""
    q = get_problem("quadratic")
    rule = StepRule(Multiplier(2.0, 2.5), signal="smoothed")
    sde = SmoothedSDE(q, rule, eta=0.1, tau=0.3)
    x = np.tile(sde.x0, (1, 1))
    out = sde.increment(x, np.zeros((1, q.noise_dim)), 0.01, np.empty((1, sde.dim)))
    info = float(q.info(q.theta0[None, :], np.empty(1))[0])
    g = q.grad(q.theta0[None, :], np.empty((1, q.dim)))[0]
    np.testing.assert_allclose(out[0, :q.dim], -0.01 * min(1 + 2 * info, 2.5) * g, rtol=1e-13)
    assert out[0, q.dim] == pytest.approx(0.01 * info / 0.3) and out[0, q.dim + 1] == 0.01
    x2 = np.concatenate([q.theta0, [0.7, 0.5]])[None, :]   # S = 0.7 at t = 0.5: Ibar = 0.7 / (1 - e^(-0.5/0.3))
    out2 = sde.increment(x2, np.zeros((1, q.noise_dim)), 0.01, np.empty((1, sde.dim)))
    ibar = 0.7 / -math.expm1(-0.5 / 0.3)
    np.testing.assert_allclose(out2[0, :q.dim], -0.01 * min(1 + 2 * ibar, 2.5) * g, rtol=1e-13)
    assert np.isfinite(smoothed_flow(q, rule, 0.3, 1.0)).all()


@pytest.mark.parametrize("panel, needle", [
    ("{id: a, kind: variant, variant: smoothed, problem: quadratic, etas: [0.1], tests: [sq_norm]}",
     r"problem: 'quadratic' has no dataset"),
    ("{id: a, kind: variant, variant: smoothed, problem: softmax, etas: [0.1], tests: [sq_norm], infos: [same_batch]}",
     r"infos\[0\]: the moving average takes"),
    ("{id: a, kind: variant, variant: per_sample, problem: least-squares, etas: [0.1], tests: [sq_norm]}",
     r"normalize: the normalised per-sample SDE sums over the 52360 minibatches"),
    ("{id: a, kind: variant, variant: scale_free, problem: softmax, etas: [0.1], tests: [sq_norm], tau: 0}",
     r"tau: must be positive"),
    ("{id: a, kind: variant, variant: per_sample, problem: softmax, etas: [0.1], tests: [sq_norm], "
     "distribution_eta: 0.2}", r"distribution_eta: 0.2 is not in etas"),
    ("{id: a, kind: variant, variant: tokens, problem: softmax, etas: [0.1], tests: [sq_norm]}", r"variant: must be one of"),
])
def test_variant_panels_check_their_fields(tmp_path, panel, needle):
    from sde.studyfile import load_study
    p = tmp_path / "s.yaml"
    p.write_text(f"name: x\npanels:\n  - {panel}\n")
    with pytest.raises(ConfigError, match=needle):
        load_study(str(p))


def test_variant_panel_runs_and_records_its_curves(tmp_path):
    import json

    from sde.studyfile import study_from_dict
    from sde.study import run_study
    doc = {"name": "v", "panels": [
        {"id": "s", "kind": "variant", "variant": "smoothed", "problem": "softmax", "etas": [0.1, 0.05],
         "tests": ["sq_norm"], "discrete_paths": 2000, "sde_paths": 1000, "distribution_paths": 200},
        {"id": "p", "kind": "variant", "variant": "per_sample", "problem": "softmax", "etas": [0.1, 0.05],
         "tests": ["linear"], "discrete_paths": 2000, "sde_paths": 500, "normalize": [True]}]}
    out = json.load(open(run_study(study_from_dict(doc, "test"), str(tmp_path), n_workers=1)))
    s, p = (pan["items"] for pan in out["panels"])
    curves = [(c["sde"], c["info"], c["variant"]) for c in s if "verdict" in c]
    assert curves == [("augmented", "independent_batch", "smoothed"), ("matched", "independent_batch", "none"),
                      ("augmented", "exact", "smoothed"), ("matched", "exact", "none"),
                      ("exact-I process", "independent_batch", "smoothed"),
                      ("exact-I process", "independent_batch", "none")]
    dist = s[-1]["distribution"]
    assert set(dist) == {"paper", "smoothed"} and len(dist["smoothed"]["t"]) == 20
    assert all(1.0 <= v <= 2.5 for v in dist["smoothed"]["q10"] + dist["smoothed"]["q90"])
    assert [(c["sde"], c["normalize"]) for c in p if "verdict" in c] == [("per_sample", True), ("matched", True)]
    assert p[1]["prediction"] < 0 and p[-1]["distribution"]["normalised"]["relative_drift_gap"][0] == \
        pytest.approx(1 - 1 / 2.0)                          # equal weights at theta_0: normalised 1 vs m = m_max = 2

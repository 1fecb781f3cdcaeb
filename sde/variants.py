"""PGPO's variants beyond the paper in the toolkit: their discrete processes and the SDEs they converge to.

The rules are pgpo.modulation's (shared with the trainer). Notation as in sde.simulate: one discrete step spans SDE
time eta, g_k is the step's gradient (grad L + S Z with Gaussian noise, or a genuine minibatch gradient), and I_k the
information signal: I(theta_k) ("exact"), or the mean per-sample I of an independent minibatch ("independent_batch",
whose spread does not shrink with eta).

Smoothed I and the scale-free rule (state theta, plus the moving average)
    discrete   Ibar_k = bias-corrected EMA of I_0..I_k (the k + 1 signals seen at steps 0..k; pgpo.modulation counts
               them from 1) with weight w = eta / tau (pgpo.modulation.InfoEMA),
               m_k = rule(I_k, Ibar_k)   (smoothed: m_alpha(Ibar_k); scale-free: m_beta(I_k / Ibar_k)),
               theta_{k+1} = theta_k - eta m_k g_k
    SDE        the augmented system, state (Theta, S, t):
                   dTheta = -m(I(Theta), Ibar) grad L dt + m sqrt(eta) S dW        (matched diffusion)
                   dS     = (I(Theta) - S) / tau dt,   S(0) = 0,   dt = dt
                   Ibar(t) = S(t) / (1 - exp(-t / tau))   (Ibar(0) = I(theta_0), the limit)
    Why. With w = eta / tau the un-corrected average S_k = (1 - w) S_{k-1} + w I_k is the Euler scheme of
    dS = (I - S) / tau dt, and the correction's denominator 1 - (1 - w)^k = 1 - exp(-k eta / tau) + O(eta): so
    Ibar_k = Ibar(k eta) + O(eta) along a path. Equivalently dIbar = (I - Ibar) / tau dt / (1 - exp(-t / tau)): the
    rate is 1/t at the start (Ibar is the plain mean of the I seen so far) and 1/tau once t >> tau. A noisy I_k enters
    Ibar with weight w: its fluctuation has variance O(w^2) per step, O(eta) over the run, so it moves E g(theta_N)
    by O(eta) - as theta's own noise does - and the SDE needs no noise in S for order 1. Hence the claim: the smoothed
    variant with an independent-batch I converges at order 1 to the augmented SDE, whereas the unsmoothed one plateaus
    against the exact-I SDE (E_B[m(I_B)] != m(I): sde.theory's Jensen gap). The first ~tau/eta steps, where Ibar is the
    mean of few I_k (variance ~ Var(I_B)/k), add a term of order eta log(tau/eta) that the fit B + C1 eta + C2 eta^2
    can only approximate. How it is measured (study `variants`): the direct comparison of two independent Monte Carlo
    estimates is below its resolution at small eta, so the claim rests on two resolved curves - the smoothed process
    with the exact I against the augmented SDE, and the noisy-I process against the exact-I one on the same gradient
    minibatches (paired_difference_mc, a control variate).
    For the scale-free rule with the noisy I_k in the numerator, the Jensen gap of m_beta(I_B / Ibar) remains: it is
    checked here with the exact I.

Per-sample modulation (finite-data problems)
    discrete   minibatch i_1..i_B, w_j = m_alpha(I_{i_j}) (each sample's own I), detached;
               g_k = sum_j w_j grad l_{i_j} / B   (unnormalised)   or   / sum_j w_j   (normalised: mean weight 1,
               as the trainer's per-sample weights with pgpo.normalize)
    SDE        the direction u_b of each minibatch b of the exact batch law (sde.theory.batch_law):
               u_b = sum_c A_bc grad l_c with A_bc = F_bc w_c (/ sum_c F_bc w_c when normalised), F the class
               frequencies in b; drift -E_b[u_b], diffusion sqrt(eta) Cov_b(u_b)^(1/2) (exact in law, as
               sde.theory.AveragedDriftSDE): the matched SDE of the re-weighted step. Unnormalised, the drift is
               -E_i[m(I_i) grad l_i]; normalised, it is E_b of a ratio (no closed form in i alone).
    Against batch PGPO. Its drift is -m(I) grad L = -m(E_i I_i) E_i grad l_i: different unless m is constant on the
    samples' I_i, so the per-sample process plateaus against batch PGPO's SDE at g(per-sample flow(T)) - g(theta_bar(T))
    (predicted by solving both ODEs).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp

from pgpo.modulation import InfoEMA, StepRule
from pgpo.multiplier import Multiplier
from sde.family import member
from sde.parallel import Scratch
from sde.problems import Problem

VARIANTS = ("smoothed", "scale_free", "per_sample")


# -------------------------------------------------------------------------------------------------------------------
class SmoothedDiscrete:
    """Discrete PGPO whose m_k is `rule`(I_k, Ibar_k), Ibar the bias-corrected EMA with weight eta / tau (module
    docstring). One object per block of paths: the EMA's state is per path. `last_m` holds the last step's m."""

    def __init__(self, problem: Problem, rule: StepRule, eta: float, tau: float, noise: str = "minibatch",
                 info: str = "independent_batch"):
        if noise not in ("gaussian", "minibatch"):
            raise ValueError(f"noise must be gaussian or minibatch, got {noise!r}")
        if info not in ("exact", "independent_batch"):
            raise ValueError(f"info must be exact or independent_batch, got {info!r}")
        if info != "exact" and noise != "minibatch":
            raise ValueError("a minibatch I needs minibatch noise")
        if noise == "minibatch" and not problem.has_dataset:
            raise ValueError(f"problem {problem.name!r} has no dataset for minibatch noise")
        self.problem, self.rule, self.eta, self.noise, self.info = problem, rule, eta, noise, info
        self.ema = InfoEMA(min(eta / tau, 1.0))
        self.x0 = problem.theta0
        self.last_m: np.ndarray | None = None
        self._scratch = Scratch()

    def advance(self, x: np.ndarray, rng: np.random.Generator, z: np.ndarray | None = None) -> None:
        """One step with this step's randomness drawn from rng (Gaussian noise into z, or minibatch indices)."""
        p, n = self.problem, x.shape[0]
        if self.noise == "gaussian":
            rng.standard_normal(out=z)
            self.step(x, z=z)
            return
        idx = rng.integers(0, p.n_data, size=(n, p.batch_size))
        idx_info = rng.integers(0, p.n_data, size=(n, p.batch_size)) if self.info != "exact" else None
        self.step(x, idx=idx, idx_info=idx_info)

    def step(self, x: np.ndarray, z: np.ndarray | None = None, idx: np.ndarray | None = None,
             idx_info: np.ndarray | None = None) -> None:
        """One step with given randomness: normals z (Gaussian noise) or the gradient's minibatch idx, and the
        information's independent minibatch idx_info (info independent_batch)."""
        p, n = self.problem, x.shape[0]
        g = self._scratch.get("g", x.shape)
        info = self._scratch.get("info", (n,))
        if self.noise == "gaussian":
            p.grad(x, g)
            g += p.noise(x, z, self._scratch.get("noise", x.shape))
        else:
            p.batch_grad(x, idx, g)
        if self.info == "exact":
            p.info(x, info)
        else:
            p.batch_info(x, idx_info, info)
        ibar = self.ema.update(info) if self.rule.needs_ema else None
        m = self.rule(info, ibar, out=self._scratch.get("m", (n,)))
        self.last_m = m
        g *= m[:, None]
        g *= self.eta
        x -= g


def paired_difference_mc(problem: Problem, rule: StepRule, eta: float, tau: float, t_end: float, tests, n_paths: int,
                         seed: int = 0, chunk: int = 50_000) -> dict:
    """E[g(theta^noisy_N) - g(theta^exact_N)] for SmoothedDiscrete with an independent-batch I against the same process
    with the exact I, both driven by the same gradient minibatches (a control variate: the paired difference has a
    far smaller variance than either process, so it resolves whether the noisy I changes the limit)."""
    from sde.simulate import n_steps_for
    from sde.stats import RunningMoments
    from sde.weak_error import merged_blocks, make_test_function
    n_steps = n_steps_for(t_end, eta)
    gfun = {name: make_test_function(name, eta, problem=problem) for name in tests}
    seeds = np.random.SeedSequence(seed).spawn(math.ceil(n_paths / chunk))

    def block(c: int) -> dict:
        n = min(chunk, n_paths - c * chunk)
        noisy = SmoothedDiscrete(problem, rule, eta, tau, info="independent_batch")
        exact = SmoothedDiscrete(problem, rule, eta, tau, info="exact")
        rng = np.random.default_rng(seeds[c])
        xa, xb = np.tile(problem.theta0, (n, 1)), np.tile(problem.theta0, (n, 1))
        for _ in range(n_steps):
            idx = rng.integers(0, problem.n_data, size=(n, problem.batch_size))
            idx_info = rng.integers(0, problem.n_data, size=(n, problem.batch_size))
            noisy.step(xa, idx=idx, idx_info=idx_info)
            exact.step(xb, idx=idx)
        return {name: RunningMoments.of(g(xa) - g(xb)) for name, g in gfun.items()}

    return merged_blocks(block, len(seeds), list(tests))


class SmoothedSDE:
    """The augmented SDE of SmoothedDiscrete, state (Theta, S, t) (module docstring); `kind` matched (diffusion
    m sqrt(eta) S) or paper (sqrt(eta) S). Test functions read the first problem.dim columns."""

    def __init__(self, problem: Problem, rule: StepRule, eta: float, tau: float, kind: str = "matched"):
        if kind not in ("matched", "paper"):
            raise ValueError(f"kind must be matched or paper, got {kind!r}")
        self.problem, self.rule, self.eta, self.tau, self.kind = problem, rule, eta, tau, kind
        self._noise_m = member(kind).noise_m                 # the diffusion factor m or 1 (sde.family)
        self.dim = problem.dim + 2
        self.noise_dim = problem.noise_dim
        self.x0 = np.concatenate([problem.theta0, [0.0, 0.0]])
        self._sqrt_eta = math.sqrt(eta)
        self._scratch = Scratch()

    def increment(self, x, dw, h, out):
        p, d, n = self.problem, self.problem.dim, x.shape[0]
        th = np.ascontiguousarray(x[:, :d])
        s, t = x[:, d], x[:, d + 1]
        info = p.info(th, self._scratch.get("info", (n,)))
        with np.errstate(divide="ignore", invalid="ignore"):
            ibar = np.where(t > 0, s / -np.expm1(-t / self.tau), info)
        m = self.rule(info, ibar if self.rule.needs_ema else None, out=self._scratch.get("m", (n,)))
        noise = p.noise(th, dw, self._scratch.get("noise", th.shape))
        noise *= self._sqrt_eta
        if self._noise_m:
            noise *= m[:, None]
        grad = p.grad(th, self._scratch.get("g", th.shape))
        grad *= (h * m)[:, None]
        np.subtract(noise, grad, out=out[:, :d])
        out[:, d] = h * (info - s) / self.tau
        out[:, d + 1] = h
        return out


# -------------------------------------------------------------------------------------------------------------------
class PerSampleDiscrete:
    """Discrete PGPO with per-sample loss weights w_j = m(I_{i_j}) on a genuine minibatch (module docstring)."""

    def __init__(self, problem: Problem, mult: Multiplier, eta: float, normalize: bool):
        if not problem.has_dataset:
            raise ValueError(f"problem {problem.name!r} has no dataset: per-sample weights need samples")
        self.problem, self.mult, self.eta, self.normalize = problem, mult, eta, normalize
        self.x0 = problem.theta0
        self._scratch = Scratch()

    def advance(self, x: np.ndarray, rng: np.random.Generator, z: np.ndarray | None = None) -> None:
        p, n = self.problem, x.shape[0]
        idx = rng.integers(0, p.n_data, size=(n, p.batch_size))
        num = self._scratch.get("num", x.shape)
        den = self._scratch.get("den", (n,))
        g = self._scratch.get("g", x.shape)
        info = self._scratch.get("info", (n,))
        w = self._scratch.get("w", (n,))
        num.fill(0.0)
        den.fill(0.0)
        for j in range(p.batch_size):
            one = idx[:, j:j + 1]
            self.mult(p.batch_info(x, one, info), out=w)
            p.batch_grad(x, one, g)
            g *= w[:, None]
            num += g
            den += w
        if self.normalize:
            num /= den[:, None]
        else:
            num /= p.batch_size
        num *= self.eta
        x -= num


def _class_terms(problem: Problem, mult: Multiplier, x: np.ndarray, law):
    """(w_c (n, G), w_c grad l_c (n, G, d)) for the sample classes of the batch law."""
    from sde.theory import _per_class
    i_c, g_c = _per_class(problem, x, law)
    w_c = mult(i_c)
    return w_c, w_c[:, :, None] * g_c


def _batch_directions(problem: Problem, mult: Multiplier, x: np.ndarray, law, normalize: bool) -> np.ndarray:
    """u_b (n, n_batches, d) = sum_c F_bc w_c g_c (/ sum_c F_bc w_c when normalised), by one batched matmul."""
    w_c, wg = _class_terms(problem, mult, x, law)
    u = np.matmul(law.freq, wg)                                         # (n, nb, d)
    if normalize:
        u /= (w_c @ law.freq.T)[:, :, None]
    return u


def per_sample_drift(problem: Problem, mult: Multiplier, x: np.ndarray, law, normalize: bool) -> np.ndarray:
    """-E_b[u_b] for paths x (n, d); unnormalised it is -E_i[m(I_i) grad l_i] = -sum_c p_c w_c g_c."""
    if not normalize:
        _, wg = _class_terms(problem, mult, x, law)
        return -np.matmul(problem.sample_groups()[1], wg)
    return -np.matmul(law.weight, _batch_directions(problem, mult, x, law, True))


class PerSampleSDE:
    """The matched SDE of PerSampleDiscrete, exact in law. Unnormalised, the step is the mean of B independent
    w_i grad l_i, so its covariance is Cov_c(w_c g_c) / B over the sample classes: noise
    sqrt(eta / B) sum_c sqrt(p_c) dW_c (w_c g_c - E) (noise_dim = classes). Normalised, over the batch law:
    sqrt(eta) sum_b sqrt(w_b) dW_b (u_b - E u) (noise_dim = minibatches; use problems with few sample classes)."""

    def __init__(self, problem: Problem, mult: Multiplier, eta: float, normalize: bool, law=None):
        from sde.theory import batch_law
        self.problem, self.mult, self.eta, self.normalize = problem, mult, eta, normalize
        self.law = law or batch_law(problem)
        self.dim = problem.dim
        self._p = problem.sample_groups()[1]                              # the classes' probabilities p_c
        self.noise_dim = self.law.n_batches if normalize else self._p.size
        self.x0 = problem.theta0
        self._scale = math.sqrt(eta) if normalize else math.sqrt(eta / problem.batch_size)
        self._sqrt_w = np.sqrt(self.law.weight if normalize else self._p)

    def increment(self, x, dw, h, out):
        if self.normalize:
            u = _batch_directions(self.problem, self.mult, x, self.law, True)       # (n, nb, d)
            mean = np.matmul(self.law.weight, u)
        else:
            _, u = _class_terms(self.problem, self.mult, x, self.law)              # (n, G, d)
            mean = np.matmul(self._p, u)
        sw_dw = dw * self._sqrt_w
        np.matmul(sw_dw[:, None, :], u, out=out[:, None, :])
        out -= mean * sw_dw.sum(axis=1)[:, None]
        out *= self._scale
        out -= h * mean
        return out


def per_sample_flow(problem: Problem, mult: Multiplier, t_end: float, normalize: bool, law=None) -> np.ndarray:
    """The endpoint of d theta/dt = -E_b[u_b](theta) (the per-sample process's mean flow)."""
    from sde.theory import ATOL, RTOL, batch_law
    law = law or batch_law(problem)
    sol = solve_ivp(lambda _t, y: per_sample_drift(problem, mult, y[None, :], law, normalize)[0], (0.0, t_end),
                    problem.theta0, method="DOP853", rtol=RTOL, atol=ATOL)
    if not sol.success:
        raise RuntimeError(f"per-sample flow failed: {sol.message}")
    return sol.y[:, -1]


def smoothed_flow(problem: Problem, rule: StepRule, tau: float, t_end: float) -> np.ndarray:
    """theta(T) of the augmented system without noise (dTheta = -m grad L dt, dS = (I - S)/tau dt)."""
    from sde.theory import ATOL, RTOL
    d = problem.dim

    def rhs(t, y):
        th = y[None, :d]
        info = float(problem.info(th, np.empty(1))[0])
        ibar = y[d] / -math.expm1(-t / tau) if t > 0 else info
        m = rule(info, ibar if rule.needs_ema else None)
        g = problem.grad(th, np.empty((1, d)))[0]
        return np.concatenate([-m * g, [(info - y[d]) / tau]])

    sol = solve_ivp(rhs, (0.0, t_end), np.concatenate([problem.theta0, [0.0]]), method="DOP853", rtol=RTOL, atol=ATOL)
    if not sol.success:
        raise RuntimeError(f"smoothed flow failed: {sol.message}")
    return sol.y[:d, -1]


__all__ = ["VARIANTS", "SmoothedDiscrete", "paired_difference_mc", "SmoothedSDE", "PerSampleDiscrete", "PerSampleSDE", "per_sample_drift",
           "per_sample_flow", "smoothed_flow"]

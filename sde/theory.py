"""What the weak error tends to as eta -> 0: the plateaus B that sde.stats.fit_error_model measures.

Notation: L the loss, I = L - L* the information signal (so grad I = grad L), m(I) the multiplier, H = Hess L,
Sigma(theta) the minibatch-gradient covariance (batch size included), and theta_bar(t) the modulated gradient
flow d theta_bar / dt = -m(I(theta_bar)) grad L(theta_bar), theta_bar(0) = theta_0.

1. Fluctuation plateau (test function g_eta = |theta - theta_bar(T)|^2 / eta).
   Every process of the family is theta_bar + sqrt(eta) xi + o(sqrt(eta)), with xi Gaussian to leading order (the
   linear-noise, or van Kampen, approximation):

       d xi = J(t) xi dt + D(t) dW,    J = d/dtheta [-m(I) grad L] at theta_bar = -m H - m'(I) grad L grad L^T,

   so E g_eta(theta_T) -> tr P(T), where P solves the Lyapunov ODE

       dP/dt = J P + P J^T + D D^T,    P(0) = 0,

   with D D^T = m^2 Sigma for discrete PGPO (a step adds eta^2 m^2 Sigma of variance per eta of time) and for the
   moment-matched SDE, Sigma for the paper's SDE, 0 for gradient flow; SGD and the SGD-SDE are the case m = 1.
   The plateau of e = E g(discrete) - E g(SDE) is B = tr P_discrete(T) - tr P_SDE(T) (0 for the matched SDE).
   The clipped m has a kink at 1 + alpha I = m_max, where m' jumps between alpha and 0. theta_bar crosses it at
   isolated times, so the ODE is integrated piecewise, stopping at every crossing (an event) and using the
   one-sided m' of each segment.
   For a constant m = c on the quadratic (A = diag(a)) the ODE is solved in closed form,
   P_ij(T) = s^2 Sigma_ij (1 - exp(-c (a_i + a_j) T)) / (c (a_i + a_j)), s = c (discrete, matched), 1 (paper).

2. Noisy-I plateau (test functions |theta|^2 and theta_1). With I_k from a minibatch of fixed size B, Var(I_B)
   does not shrink with eta: discrete PGPO converges (order 1) to the SDE whose drift is the minibatch average

       independent batch:  b(theta) = -E_B[m(I_B(theta))] grad L(theta)
       same batch:         b(theta) = -E_B[m(I_B(theta)) grad L_B(theta)]

   and whose diffusion is sqrt(eta) Cov(update)^(1/2) (`AveragedDriftSDE`). Its eta -> 0 limit is the ODE
   d theta~/dt = b(theta~); against an SDE with the exact-I drift (limit theta_bar) the plateau is
   B = g(theta~(T)) - g(theta_bar(T)). Expectations over minibatches (size B, drawn with replacement) are exact:
   sums over the multisets of classes of interchangeable samples (`BatchLaw`).

3. Jensen gap at a state theta: gap(B) = E_B[m(I_B)] - m(I). Where m is linear it is 0 (E I_B = I); at the kink of
   the clipped m it is alpha E[min(I_B - I, 0)] ~ -alpha sd(I_1) / sqrt(2 pi B), i.e. O(B^-1/2). The same-batch
   drift gap E[m(I_B) grad L_B] - m grad L is alpha Cov(I_B, grad L_B) = O(1/B) in the linear part.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp
from scipy.special import gammaln

from pgpo.multiplier import Multiplier
from sde.problems import Problem, Quadratic
from sde.family import drifts_apart, member
from sde.simulate import gradient_flow_path

RTOL, ATOL = 1e-10, 1e-12


def kink_gap(problem: Problem, mult: Multiplier, theta: np.ndarray) -> float:
    """1 + alpha I(theta) - m_max: negative below the clipped m's kink, positive at the cap."""
    return 1.0 + mult.alpha * float(problem.info(theta[None, :], np.empty(1))[0]) - mult.m_max


def fluctuation_traces(problem: Problem, mult: Multiplier, t_end: float) -> dict[str, float]:
    """tr P(T) of the linear-noise fluctuations about theta_bar, for D D^T = m^2 Sigma ("m2": discrete PGPO and the
    matched SDE) and D D^T = Sigma ("1": the paper's SDE); both 0 for gradient flow. Module docstring, part 1."""
    d = problem.dim
    clipped = mult.shape == "clipped_linear" and not mult.is_identity
    g, info = np.empty((1, d)), np.empty(1)

    def rhs(_t, y, below):
        th = y[:d]
        x = th[None, :]
        problem.grad(x, g)
        i = float(problem.info(x, info)[0])
        m = 1.0 if mult.is_identity else float(mult(i))
        jac = -m * problem.hessian(th) - mult.derivative(i, below_kink=below) * np.outer(g[0], g[0])
        sig = problem.covariance(x)[0]
        out = [-m * g[0]]
        for k, q in enumerate((m * m * sig, sig)):
            p = y[d + k * d * d: d + (k + 1) * d * d].reshape(d, d)
            out.append((jac @ p + p @ jac.T + q).ravel())
        return np.concatenate(out)

    y = np.concatenate([problem.theta0, np.zeros(2 * d * d)])
    t = 0.0
    below = kink_gap(problem, mult, problem.theta0) < 0 if clipped else None
    while t < t_end:
        event = None
        if clipped:
            def event(_t, yy, _below):
                return kink_gap(problem, mult, yy[:d])
            event.terminal, event.direction = True, (1.0 if below else -1.0)
        sol = solve_ivp(rhs, (t, t_end), y, method="DOP853", rtol=RTOL, atol=ATOL, args=(below,),
                        events=event)
        if not sol.success:
            raise RuntimeError(f"Lyapunov ODE failed: {sol.message}")
        if sol.status == 1:                     # crossed the kink: continue with the other one-sided m'
            t, y, below = float(sol.t_events[0][0]), sol.y_events[0][0], not below
        else:
            t, y = t_end, sol.y[:, -1]
    p_m2 = y[d:d + d * d].reshape(d, d)
    p_1 = y[d + d * d:].reshape(d, d)
    return {"m2": float(np.trace(p_m2)), "1": float(np.trace(p_1))}


def fluctuation_trace_constant(problem: Quadratic, c: float, t_end: float, diffusion_scale: float) -> float:
    """tr P(T) in closed form for a constant multiplier c on the quadratic and diffusion s sqrt(eta) S: the OU
    covariance of sde.exact at eta = 1 (P scales with eta)."""
    from sde.exact import ou_moments
    return float(np.trace(ou_moments(problem, 1.0, t_end, c, diffusion_scale)[1]))


def fluctuation_plateau(problem: Problem, mult: Multiplier, t_end: float, sde: str) -> float | None:
    """Predicted lim_{eta->0} of E g_eta(discrete) - E g_eta(SDE) for g_eta = |theta - theta_bar(T)|^2 / eta
    (None when the SDE's drift differs from the discrete process's: sgd_sde against PGPO)."""
    return Plateaus(problem, mult, t_end).fluctuation(sde)


# ----------------------------------------------------------------------------------------------------
@dataclass
class BatchLaw:
    """The exact law of a minibatch of `size` samples drawn with replacement: one row per multiset of sample
    classes, `idx` (n_batches, size) representative sample indices, `weight` its probability, `freq`
    (n_batches, n_classes) the class frequencies in the batch."""

    idx: np.ndarray
    weight: np.ndarray
    freq: np.ndarray
    reps: np.ndarray
    size: int

    @property
    def n_batches(self) -> int:
        return self.weight.size


MAX_BATCHES = 2_000_000


def n_batches(problem: Problem, size: int | None = None) -> int:
    """How many multisets of `size` (default: the problem's batch size) sample classes batch_law enumerates."""
    b = int(size or problem.batch_size)
    return math.comb(len(problem.sample_groups()[0]) + b - 1, b)


def batch_law(problem: Problem, size: int | None = None) -> BatchLaw:
    """Enumerate the minibatch law of `problem` (its classes of interchangeable samples: Problem.sample_groups)."""
    reps, probs = problem.sample_groups()
    b = int(size or problem.batch_size)
    g = len(reps)
    n = n_batches(problem, b)
    if n > MAX_BATCHES:
        raise ValueError(f"{problem.name}: {n} multisets of {b} among {g} sample classes; too many to enumerate")
    combos = np.fromiter(itertools.chain.from_iterable(itertools.combinations_with_replacement(range(g), b)),
                         dtype=np.int64, count=n * b).reshape(n, b)
    counts = np.zeros((n, g))
    np.add.at(counts, (np.repeat(np.arange(n), b), combos.ravel()), 1.0)
    with np.errstate(divide="ignore"):
        logp = np.log(probs)
    logw = gammaln(b + 1) - gammaln(counts + 1).sum(axis=1) + (counts * logp).sum(axis=1, where=counts > 0)
    return BatchLaw(idx=reps[combos], weight=np.exp(logw), freq=counts / b, reps=reps, size=b)


def _per_class(problem: Problem, x: np.ndarray, law: BatchLaw) -> tuple[np.ndarray, np.ndarray]:
    """Per-class information I_c(x) (n, G) and gradients (n, G, d): one-sample batches of each representative, all
    (path, class) pairs in one call (or the problem's own vectorised `class_info_grads`)."""
    fast = getattr(problem, "class_info_grads", None)
    if fast is not None:
        return fast(x)
    n, d = x.shape
    g = len(law.reps)
    xs = np.repeat(x, g, axis=0)                                    # row k: path k // g, class k % g
    idx = np.tile(law.reps, n)[:, None]
    info = problem.batch_info(xs, idx, np.empty(n * g)).reshape(n, g)
    grads = problem.batch_grad(xs, idx, np.empty((n * g, d))).reshape(n, g, d)
    return info, grads


def averaged_drift(problem: Problem, mult: Multiplier, info: str, x: np.ndarray, law: BatchLaw) -> np.ndarray:
    """b(x) of part 2 for paths x (n, d): -E_B[m(I_B)] grad L ("independent_batch"), -E_B[m(I_B) grad L_B]
    ("same_batch"), or -m(I) grad L ("exact")."""
    n, d = x.shape
    if info == "exact":
        g = problem.grad(x, np.empty((n, d)))
        return -mult(problem.info(x, np.empty(n)))[:, None] * g
    i_c, g_c = _per_class(problem, x, law)
    m_b = mult(i_c @ law.freq.T)                                     # (n, n_batches): I_B is linear in the counts
    if info == "independent_batch":
        return -(m_b @ law.weight)[:, None] * problem.grad(x, np.empty((n, d)))
    if info == "same_batch":
        # E[m_B g_B] = sum_b w_b m_b sum_c f_bc g_c
        return -np.einsum("nc,ncd->nd", (m_b * law.weight) @ law.freq, g_c)
    raise ValueError(f"unknown info source {info!r}")


def averaged_flow(problem: Problem, mult: Multiplier, info: str, t_end: float, law: BatchLaw | None = None
                  ) -> np.ndarray:
    """theta~(T): the endpoint of d theta/dt = b(theta) (part 2)."""
    law = law or batch_law(problem)

    def rhs(_t, y):
        return averaged_drift(problem, mult, info, y[None, :], law)[0]

    sol = solve_ivp(rhs, (0.0, t_end), problem.theta0, method="DOP853", rtol=RTOL, atol=ATOL)
    if not sol.success:
        raise RuntimeError(f"averaged-drift ODE failed: {sol.message}")
    return sol.y[:, -1]


def _g(test: str, x: np.ndarray) -> float:
    if test == "sq_norm":
        return float(x @ x)
    if test == "linear":
        return float(x[0])
    raise ValueError(f"no noisy-I plateau for test function {test!r}")


def noisy_info_plateau(problem: Problem, mult: Multiplier, info: str, t_end: float, test: str,
                       law: BatchLaw | None = None) -> float:
    """Predicted lim_{eta->0} of E g(noisy-I PGPO) - E g(exact-I SDE) = g(theta~(T)) - g(theta_bar(T))."""
    return Plateaus(problem, mult, t_end, law).noisy_info(info, test)


class Plateaus:
    """The predicted plateaus of one (problem, multiplier, T), each ODE solved once however many curves ask:
    the Lyapunov traces (part 1), theta_bar(T) and the averaged-drift flow of each info source (part 2)."""

    def __init__(self, problem: Problem, mult: Multiplier, t_end: float, law: BatchLaw | None = None):
        self.problem, self.mult, self.t_end, self._law = problem, mult, t_end, law
        self._traces: dict | None = None
        self._theta_bar: np.ndarray | None = None
        self._flows: dict[str, np.ndarray] = {}

    def fluctuation(self, sde: str) -> float | None:
        """As fluctuation_plateau."""
        if drifts_apart(sde, self.mult):
            return None
        kind = member(sde)      # an order-2 member has its base's diffusion: its drift moves g_eta by only O(eta)
        if self._traces is None:
            self._traces = fluctuation_traces(self.problem, self.mult, self.t_end)
        tr = self._traces                       # D D^T = s(m)^2 Sigma: m^2 Sigma, Sigma, or 0 (sde.family)
        return tr["m2"] - (tr["m2"] if kind.noise_m else tr["1"] if kind.noisy else 0.0)

    def noisy_info(self, info: str, test: str) -> float:
        """As noisy_info_plateau."""
        if self._theta_bar is None:
            self._theta_bar = gradient_flow_path(self.problem, self.mult, self.t_end)
        if info not in self._flows:
            self._law = self._law or batch_law(self.problem)
            self._flows[info] = averaged_flow(self.problem, self.mult, info, self.t_end, self._law)
        return _g(test, self._flows[info]) - _g(test, self._theta_bar)


def kink_state(problem: Problem, mult: Multiplier, t_end: float) -> tuple[float, np.ndarray]:
    """(t, theta_bar(t)) where the modulated gradient flow crosses the clipped m's kink (first crossing)."""
    d = problem.dim
    g = np.empty((1, d))

    def rhs(_t, y):
        x = y[None, :]
        problem.grad(x, g)
        return -float(mult(float(problem.info(x, np.empty(1))[0]))) * g[0]

    def event(_t, y):
        return kink_gap(problem, mult, y)
    event.terminal = True
    sol = solve_ivp(rhs, (0.0, t_end), problem.theta0, method="DOP853", rtol=RTOL, atol=ATOL, events=event)
    if not sol.t_events[0].size:
        raise ValueError(f"theta_bar does not cross the kink of m before T = {t_end}")
    return float(sol.t_events[0][0]), sol.y_events[0][0]


def jensen_gap(problem: Problem, mult: Multiplier, theta: np.ndarray, size: int) -> dict:
    """At state theta, for minibatches of `size`: the independent-batch gap E_B[m(I_B)] - m(I) and the same-batch
    drift gap |E_B[m(I_B) grad L_B] - m(I) grad L| (Euclidean norm), by exact enumeration."""
    law = batch_law(problem, size)
    x = np.asarray(theta, float)[None, :]
    m = float(mult(float(problem.info(x, np.empty(1))[0])))
    i_c, _ = _per_class(problem, x, law)
    em = float(mult(i_c @ law.freq.T)[0] @ law.weight)
    exact = averaged_drift(problem, mult, "exact", x, law)[0]
    same = averaged_drift(problem, mult, "same_batch", x, law)[0]
    return {"batch_size": size, "n_batches": law.n_batches, "independent": em - m,
            "same_batch": float(np.linalg.norm(same - exact))}


# ----------------------------------------------------------------------------------------------------
class AveragedDriftSDE:
    """The SDE that noisy-I PGPO converges to (part 2): drift b(theta), diffusion sqrt(eta) C^(1/2), C the covariance
    of one step's update direction u:

        independent batch:  u = m(I_B') grad L_B,  C = E[m^2] Sigma + Var(m) grad L grad L^T
                            noise sqrt(E m^2) S dW_1 + sqrt(Var m) grad L dW_2    (noise_dim = problem's + 1)
        same batch:         u = m(I_B) grad L_B,   C = sum_b w_b (u_b - E u)(u_b - E u)^T
                            noise sum_b sqrt(w_b) (u_b - E u) dW_b                (noise_dim = n_batches)

    Both are exact in law (a Gaussian with covariance C); the cost per step grows with the number of batches, so
    use it on problems whose batch law is small (the teacher-student softmax: 35 batches of 4 among 4 classes).
    """

    def __init__(self, problem: Problem, mult: Multiplier, eta: float, info: str, law: BatchLaw | None = None):
        if info not in ("independent_batch", "same_batch"):
            raise ValueError(f"the averaged-drift SDE models a minibatch I: info must be independent_batch or "
                             f"same_batch, got {info!r}")
        self.problem, self.mult, self.eta, self.info = problem, mult, eta, info
        self.law = law or batch_law(problem)
        self.dim = problem.dim
        self.noise_dim = problem.noise_dim + 1 if info == "independent_batch" else self.law.n_batches
        self._sqrt_eta = math.sqrt(eta)
        self._sqrt_w = np.sqrt(self.law.weight)

    def increment(self, x, dw, h, out):
        n, d = x.shape
        law = self.law
        i_c, g_c = _per_class(self.problem, x, law)
        m_b = self.mult(i_c @ law.freq.T)                             # (n, n_batches)
        if self.info == "independent_batch":
            em = m_b @ law.weight
            em2 = (m_b * m_b) @ law.weight
            grad = self.problem.grad(x, np.empty((n, d)))
            self.problem.noise(x, dw[:, :-1], out)
            out *= np.sqrt(em2)[:, None]
            out += np.sqrt(np.maximum(em2 - em * em, 0.0))[:, None] * grad * dw[:, -1:]
            out *= self._sqrt_eta
            out -= h * em[:, None] * grad
            return out
        # u_b = m_b g_B with g_B = sum_c F_bc g_c, so sums over batches reduce to sums over classes:
        # E u = sum_c [(m w) F]_c g_c and sum_b sqrt(w_b) dW_b (u_b - E u) = sum_c [(sqrt(w) dW m) F]_c g_c - E u sum_b sqrt(w_b) dW_b
        mean = np.einsum("nc,ncd->nd", (m_b * law.weight) @ law.freq, g_c)
        sw_dw = dw * self._sqrt_w
        np.einsum("nc,ncd->nd", (sw_dw * m_b) @ law.freq, g_c, out=out)
        out -= mean * sw_dw.sum(axis=1)[:, None]
        out *= self._sqrt_eta
        out -= h * mean
        return out


__all__ = ["fluctuation_traces", "fluctuation_trace_constant", "fluctuation_plateau", "Plateaus", "BatchLaw",
           "batch_law", "n_batches",
           "averaged_drift", "averaged_flow", "noisy_info_plateau", "kink_state", "jensen_gap", "AveragedDriftSDE",
           ]

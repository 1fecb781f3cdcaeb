"""Euler-Maruyama (one loop, `em_steps`), the stepper of the SDE family (`ModelSDE`), the discrete processes, and
Brownian-bridge coupling.

Conventions. Discrete PGPO with Gaussian gradient noise:

    theta_{k+1} = theta_k - eta * m_k * (grad L(theta_k) + S(theta_k) Z_k),   Z_k ~ N(0, I)

(SGD is m_k = 1). The SDE family that models it is declared once, in sde.family, with ModelSDE, a member's drift
and diffusion terms on a problem; `em_steps` is the one Euler-Maruyama loop that steps them.

One discrete step spans SDE time eta. Coupling: the SDE's Brownian increment over that step is
W_{(k+1)eta} - W_{k eta} = -sqrt(eta) Z_k (the discrete update *subtracts* eta m S Z_k, and the SDE's
diffusion adds sqrt(eta) S dW), refined into r fine increments by a Brownian bridge.

Everything is vectorised over paths and written in place into preallocated buffers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from pgpo.multiplier import Multiplier
from sde.parallel import Scratch
from sde.problems import Problem

NOISE_MODELS = ("gaussian", "minibatch")
INFO_SOURCES = ("exact", "independent_batch", "same_batch")

IDENTITY = Multiplier(alpha=0.0, m_max=1.0)


@dataclass(frozen=True)
class ConstantMultiplier:
    """m(I) = c for every I: PGPO with a fixed step multiplier (SGD at learning rate c eta), whose SDEs are
    Ornstein-Uhlenbeck processes on the quadratic (closed forms in sde.exact). Duck-types pgpo.multiplier.Multiplier
    where sde uses it (call, derivative, is_identity, alpha / m_max / shape for records)."""

    c: float
    alpha: float = 0.0
    shape: str = "constant"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.c) and self.c > 0):
            raise ValueError(f"a constant multiplier must be positive and finite, got {self.c!r}")

    @property
    def m_max(self) -> float:
        return self.c

    @property
    def is_identity(self) -> bool:
        return self.c == 1.0

    def __call__(self, info, out: np.ndarray | None = None):
        if isinstance(info, np.ndarray):
            out = np.empty(info.shape) if out is None else out
            out.fill(self.c)
            return out
        return self.c

    def derivative(self, info, below_kink=None):
        return np.zeros(np.shape(info)) if isinstance(info, np.ndarray) else 0.0


class SDE(Protocol):
    """Anything Euler-Maruyama can step: the increment b(x) h + sigma(x) dw, all evaluated at x (Ito).

    An SDE whose diffusion does not depend on x may also declare its two terms apart (`additive = True`):
    `drift_step(x, h)`, the drift's Euler update x <- x + b(x) h in place, and `diffusion(dws, out)` = sigma dw for
    a whole block of increments; `em_steps` then applies the diffusion to a block of steps at once and steps
    x <- (x + b(x) h) + sigma dw. `increment` gives the same step up to rounding (the order of the additions
    differs), and nothing but the SDE decides how its drift is rounded."""

    dim: int
    noise_dim: int

    def increment(self, x: np.ndarray, dw: np.ndarray, h: float, out: np.ndarray) -> np.ndarray: ...


BLOCK_VALUES = 1 << 16          # Brownian increments drawn (and diffused) per call: steps per block = this // (n m)


def em_steps(sde: SDE, x: np.ndarray, dws: np.ndarray, h: float, inc: np.ndarray,
             noise: np.ndarray | None = None) -> np.ndarray:
    """The Euler-Maruyama loop: advance x (n, dim) in place by one step of size h per Brownian increment in dws
    (k, n, noise_dim), in order: x += b(x) h + sigma(x) dw. `inc` (n, dim) is scratch. An additive SDE's diffusion is
    applied to all k increments at once, into `noise` (k, n, dim) when given."""
    if getattr(sde, "additive", False):
        noise = sde.diffusion(dws, np.empty(dws.shape[:2] + (sde.dim,)) if noise is None else noise[:len(dws)])
        drift_step, add = sde.drift_step, np.add
        for nj in noise:
            drift_step(x, h)
            add(x, nj, out=x)
        return x
    for dw in dws:
        sde.increment(x, dw, h, inc)
        x += inc
    return x


def euler_maruyama(sde: SDE, x0: np.ndarray, h: float, n_steps: int, n_paths: int | None = None, *,
                   rng: np.random.Generator | None = None, dW: np.ndarray | None = None,
                   out: np.ndarray | None = None) -> np.ndarray:
    """Simulate `n_paths` paths of `sde` from x0 for n_steps steps of size h; return the final states.

    dW, when given, holds the Brownian increments, shape (n_steps, n_paths, noise_dim) (variance h
    each); otherwise they are drawn from `rng`, sqrt(h) N(0, 1) per step in path-major order, several steps per
    draw (the stream, hence the result, is the same as one draw a step). Buffers are allocated once.
    """
    if h <= 0 or not math.isfinite(h):
        raise ValueError(f"step h must be positive and finite, got {h}")
    x0 = np.asarray(x0, dtype=float)
    if dW is not None:
        dW = np.asarray(dW, dtype=float)
        if dW.ndim != 3 or dW.shape[0] < n_steps or dW.shape[2] != sde.noise_dim:
            raise ValueError(f"dW must have shape (>= n_steps, n_paths, {sde.noise_dim}), got {dW.shape}")
        n_paths = dW.shape[1] if n_paths is None else n_paths
    if n_paths is None:
        n_paths = x0.shape[0] if x0.ndim == 2 else 1
    if dW is None and rng is None:
        raise ValueError("give either rng or dW")
    x = np.empty((n_paths, sde.dim)) if out is None else out
    x[...] = x0
    inc = np.empty_like(x)
    k = max(1, min(n_steps, BLOCK_VALUES // (n_paths * max(sde.noise_dim, sde.dim))))
    dw = np.empty((k, n_paths, sde.noise_dim)) if dW is None else None
    noise = np.empty((k, n_paths, sde.dim)) if getattr(sde, "additive", False) else None
    sqrt_h = math.sqrt(h)
    for start in range(0, n_steps, k):
        stop = min(start + k, n_steps)
        if dW is None:
            w = dw[:stop - start]
            rng.standard_normal(out=w)
            w *= sqrt_h
        else:
            w = dW[start:stop]
        em_steps(sde, x, w, h, inc, noise)
    return x


def euler_maruyama_blocks(sde: SDE, x0: np.ndarray, h: float, n_steps: int, n_paths: int, seed: int = 0,
                          block: int = 5000) -> np.ndarray:
    """`euler_maruyama` over blocks of `block` paths, each with its own generator (SeedSequence(seed).spawn), run on
    sde.parallel's block pool: the final states (n_paths, dim) are identical for any number of workers. The SDE's
    terms must be safe to call from several threads (LinearSDE and ModelSDE keep scratch buffers per thread;
    LinearSDE's tiles of S are only read, and its I - h A for a new step size replaces the kept one whole)."""
    from sde.parallel import map_blocks

    n_blocks = math.ceil(n_paths / block)
    seeds = np.random.SeedSequence(seed).spawn(n_blocks)
    out = np.empty((n_paths, sde.dim))

    def run(b: int) -> None:
        lo, hi = b * block, min((b + 1) * block, n_paths)
        euler_maruyama(sde, x0, h, n_steps, hi - lo, rng=np.random.default_rng(seeds[b]), out=out[lo:hi])

    map_blocks(run, range(n_blocks))
    return out


def bridge_increments(total: np.ndarray, r: int, h: float, rng: np.random.Generator,
                      out: np.ndarray | None = None) -> np.ndarray:
    """r Brownian increments of variance h each, conditioned to sum to `total` (shape (n, noise_dim)).

    For i.i.d. Gaussians xi_j, (xi_j - mean(xi)) is independent of their sum, so
    xi_j - mean(xi) + total / r has exactly the conditional (Brownian-bridge) law. Returns (r, n, noise_dim).
    """
    out = np.empty((r,) + total.shape) if out is None else out
    rng.standard_normal(out=out)
    out *= math.sqrt(h)
    shift = out.mean(axis=0)
    np.subtract(total / r, shift, out=shift)
    out += shift
    return out


class LinearSDE:
    """dX = (-A X + b) dt + S dW with constant A and S (an Ornstein-Uhlenbeck process), additive noise.

    A is a (d, d) matrix or a length-d vector (diagonal); S is (d, noise_dim) or a length-d vector (diagonal
    noise, noise_dim = d). The drift's Euler update is one product with I - h A (then + h b), formed once per step
    size, and the noise one more addition: for a diagonal A without b, two passes over the paths a step (a full A
    adds a copy, b an addition). A diagonal I - h A or S is multiplied as a copy tiled to the paths' shape, so that
    NumPy runs one flat loop instead of one per path (same values).
    It is the benchmark and cross-check workhorse; no committed result depends on its last bits.
    """

    additive = True

    def __init__(self, A, S, b=None):
        A, S = np.asarray(A, float), np.asarray(S, float)
        self.diag_drift, self.diag_noise = A.ndim == 1, S.ndim == 1
        self.dim = A.shape[0]
        self.noise_dim = self.dim if self.diag_noise else S.shape[1]
        if S.shape[0] != self.dim:
            raise ValueError("S must have as many rows as A")
        self.A, self.S = A, S
        self.St = None if self.diag_noise else np.ascontiguousarray(S.T)
        self.b = None if b is None else np.asarray(b, float)
        # read-only arrays by (name, number of paths), shared by threads: the tile of S, and ("flow", n) -> (h, I - h A)
        self._tiled: dict = {}
        self._scratch = Scratch()

    @staticmethod
    def _rows(v: np.ndarray, n: int) -> np.ndarray:
        """The vector v repeated as n contiguous rows."""
        return np.ascontiguousarray(np.broadcast_to(v, (n, v.shape[0])))

    def _tile(self, name: str, n: int) -> np.ndarray:
        t = self._tiled.get((name, n))
        if t is None:
            t = self._tiled[(name, n)] = self._rows(getattr(self, name), n)
        return t

    def _flow(self, h: float, n: int) -> np.ndarray:
        """I - h A for step h: its transpose (a matrix), or as a diagonal tiled to n paths. The last step size's
        is kept per n; a new tuple replaces it whole, so threads never see a half-built one."""
        kept = self._tiled.get(("flow", n))
        if kept is None or kept[0] != h:
            if self.diag_drift:
                f = self._rows(1.0 - h * self.A, n)
            else:
                f = np.ascontiguousarray((np.eye(self.dim) - h * self.A).T)
            kept = self._tiled[("flow", n)] = (h, f)
        return kept[1]

    def drift_step(self, x, h):
        f = self._flow(h, x.shape[0])
        if self.diag_drift:
            np.multiply(x, f, out=x)
        else:
            tmp = self._scratch.get("flow", x.shape)            # one scratch buffer per thread
            np.matmul(x, f, out=tmp)
            x[...] = tmp
        if self.b is not None:
            x += h * self.b
        return x

    def diffusion(self, dws, out):
        if self.diag_noise:
            return np.multiply(dws, self._tile("S", dws.shape[-2]), out=out)
        return np.matmul(dws, self.St, out=out)

    def increment(self, x, dw, h, out):
        out[...] = x
        self.drift_step(out, h)
        out -= x
        out += self.diffusion(dw, self._scratch.get("tmp", x.shape))
        return out


# ----------------------------------------------------------------------------------------------------
@dataclass
class _Buffers:
    g: np.ndarray
    info: np.ndarray
    m: np.ndarray


def _buffers(scratch: Scratch, n: int, d: int) -> _Buffers:
    """Scratch buffers for n paths, one set per thread (an SDE object may be stepped from several threads)."""
    return _Buffers(scratch.get("g", (n, d)), scratch.get("info", (n,)), scratch.get("m", (n,)))


@dataclass
class DiscreteProcess:
    """Discrete SGD (identity multiplier) or PGPO on `problem` with step eta.

    noise = "gaussian": the gradient is grad L + S Z with Z supplied by the caller (for coupling).
    noise = "minibatch": a genuine minibatch of `problem.batch_size` indices drawn with replacement.
    info = "exact": I_k = I(theta_k); "independent_batch": I from a second, independent minibatch;
    "same_batch": I from the gradient's own minibatch (the biased ablation).
    """

    problem: Problem
    multiplier: Multiplier
    eta: float
    noise: str = "gaussian"
    info: str = "exact"
    _scratch: Scratch = field(default_factory=Scratch, repr=False)

    def __post_init__(self) -> None:
        if self.noise not in NOISE_MODELS:
            raise ValueError(f"unknown noise model {self.noise!r}; choose one of {NOISE_MODELS}")
        if self.info not in INFO_SOURCES:
            raise ValueError(f"unknown info source {self.info!r}; choose one of {INFO_SOURCES}")
        if self.noise == "gaussian" and self.info != "exact":
            raise ValueError("batch information estimates need genuine minibatches (noise='minibatch')")
        if self.noise == "minibatch" and not self.problem.has_dataset:
            raise ValueError(f"problem {self.problem.name!r} has no finite dataset for minibatch noise")
        self.dim = self.problem.dim
        self.noise_dim = self.problem.noise_dim

    def step(self, x: np.ndarray, z: np.ndarray | None = None, rng: np.random.Generator | None = None) -> None:
        """Advance all paths one step in place. Gaussian noise needs z (n, noise_dim); minibatch needs rng."""
        n = x.shape[0]
        buf = _buffers(self._scratch, n, self.dim)
        g = buf.g
        if self.noise == "gaussian":
            noise = self._scratch.get("noise", (n, self.dim))
            self.problem.grad(x, g)
            g += self.problem.noise(x, z, noise)
            info = self.problem.info(x, buf.info) if not self.multiplier.is_identity else None
        else:
            b = self.problem.batch_size
            idx = rng.integers(0, self.problem.n_data, size=(n, b))
            self.problem.batch_grad(x, idx, g)
            info = None
            if not self.multiplier.is_identity:
                if self.info == "exact":
                    info = self.problem.info(x, buf.info)
                elif self.info == "same_batch":
                    info = self.problem.batch_info(x, idx, buf.info)
                else:
                    idx2 = rng.integers(0, self.problem.n_data, size=(n, b))
                    info = self.problem.batch_info(x, idx2, buf.info)
        if info is not None:
            g *= self.multiplier(info, out=buf.m)[:, None]
        g *= self.eta
        x -= g


    def advance(self, x: np.ndarray, rng: np.random.Generator, z: np.ndarray | None = None) -> None:
        """One step with this step's randomness drawn from rng: standard normals into the buffer z
        (Gaussian noise; the caller keeps them for coupling) or a minibatch."""
        if self.noise == "gaussian":
            rng.standard_normal(out=z)
            self.step(x, z=z)
        else:
            self.step(x, rng=rng)


def gradient_flow_path(problem: Problem, multiplier: Multiplier, t_end: float,
                       t_eval: np.ndarray | None = None) -> np.ndarray:
    """The deterministic path theta_bar(t) of d theta/dt = -m(I(theta)) grad L(theta), to tight tolerance.

    Returns theta_bar(t_end) (shape (dim,)) or, with t_eval, the states at those times (len(t_eval), dim).
    """
    from scipy.integrate import solve_ivp

    g = np.empty((1, problem.dim))
    info = np.empty(1)

    def rhs(_t, y):
        x = y[None, :]
        problem.grad(x, g)
        m = 1.0 if multiplier.is_identity else multiplier(float(problem.info(x, info)[0]))
        return -m * g[0]

    sol = solve_ivp(rhs, (0.0, t_end), problem.theta0, method="DOP853", rtol=1e-11, atol=1e-12,
                    t_eval=t_eval, dense_output=False)
    if not sol.success:
        raise RuntimeError(f"gradient-flow ODE failed: {sol.message}")
    return sol.y.T if t_eval is not None else sol.y[:, -1]


def n_steps_for(t_end: float, eta: float) -> int:
    """Number of discrete steps N with N eta = t_end; eta must divide t_end (up to rounding)."""
    if not eta > 0:
        raise ValueError(f"eta must be positive, got {eta}")
    if not eta < t_end:
        raise ValueError(f"eta must be smaller than T: eta={eta} >= T={t_end}")
    n = int(round(t_end / eta))
    if abs(n * eta - t_end) > 1e-9 * t_end:
        raise ValueError(f"eta={eta} does not divide T={t_end}; use eta = T / integer")
    return n

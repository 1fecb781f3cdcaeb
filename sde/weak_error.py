"""Weak error between a discrete process and members of the SDE family, with Monte Carlo error bars.

The quantity estimated is the error at the horizon, e(eta) = E g(theta_N) - E g(Theta_{N eta}) with
N = T / eta (the grids used here make T / eta an integer). The SDE expectation is taken from
Euler-Maruyama at fine step h = eta / r, Richardson-extrapolated over r and 2r on the expectation:
E g(Theta) ~ 2 E g(Theta^{(2r)}) - E g(Theta^{(r)}), which removes the O(h) bias of the fine solver.

Per path we form D = g(theta_N) - [2 g(Theta^{(2r)}) - g(Theta^{(r)})] and report mean(D) with its
standard error. With coupling (Gaussian noise) all three share one Brownian path, bridged from the
discrete draws, so D has a tiny variance; without it (genuine minibatches) the SDE paths use
independent noise and the estimate is unbiased but noisier.

Test functions g: `sq_norm` |theta|^2, `linear` theta_1 (first coordinate), `loss` L(theta), `cross` theta_1 theta_2
(fixed test functions, as in Definition A.1), and `fluctuation` |theta - theta_bar(T)|^2 / eta, the rescaled
distance from the (modulated) gradient-flow path, which discriminates between SDEs that share a drift.

With `over_time`, Definition A.1 as written is estimated too: max_{k <= N} |E g(theta_k) - E g(Theta_{k eta})|, from
the per-step differences D_k of the same coupled paths (`PairEstimate.over_time`, sde.stats.SeriesMoments). The
maximum of noisy per-step estimates is biased up where the error is not resolved at every step; curve records keep
a simultaneous 95 % band for it (SeriesMoments.max_band) beside the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from pgpo.multiplier import Multiplier
from sde.family import ModelSDE, member
from sde.problems import Problem
from sde.simulate import IDENTITY, DiscreteProcess, bridge_increments, em_steps, gradient_flow_path, n_steps_for
from sde.parallel import map_blocks
from sde.stats import RunningMoments, SeriesMoments

TEST_FUNCTIONS = ("sq_norm", "linear", "loss", "cross", "fluctuation")
BLOCK_PATHS = 20_000          # paths per block of work (sde.parallel): fixed, so results do not depend on --workers


def make_test_function(name: str, eta: float, theta_bar: np.ndarray | None = None,
                       problem: Problem | None = None) -> Callable:
    if name == "sq_norm":
        return lambda x: np.einsum("nd,nd->n", x, x)
    if name == "linear":
        return lambda x: x[:, 0].copy()
    if name == "cross":
        return lambda x: x[:, 0] * x[:, 1]
    if name == "loss":
        if problem is None:
            raise ValueError("the loss test function needs the problem")
        return problem.loss
    if name == "fluctuation":
        if theta_bar is None:
            raise ValueError("the fluctuation test function needs theta_bar(T)")
        tb = np.asarray(theta_bar, float)

        def fluct(x):
            dx = x - tb
            return np.einsum("nd,nd->n", dx, dx) / eta
        return fluct
    raise ValueError(f"unknown test function {name!r}; choose from {TEST_FUNCTIONS}")


@dataclass
class PairEstimate:
    """Weak error of the discrete process against one SDE for one test function; `moments` are the per-path
    differences' running moments (mergeable with another estimate's: sde.study adds paths in rounds)."""

    error: float
    stderr: float
    mean_discrete: float
    mean_sde: float
    n_paths: int
    moments: RunningMoments
    over_time: SeriesMoments | None = None      # D_k for k = 1..N (with over_time=True)


def estimate_weak_errors(problem: Problem, multiplier: Multiplier, eta: float, t_end: float,
                         sde_kinds: Sequence[str], tests: Sequence[str], n_paths: int, *,
                         r: int = 4, richardson: bool = True, coupled: bool = True,
                         noise: str = "gaussian", info: str = "exact", seed: int = 0,
                         chunk: int | None = None, progress: Callable[[int], None] | None = None,
                         over_time: bool = False, average_from: int | None = None
                         ) -> dict[tuple[str, str], PairEstimate]:
    """Monte Carlo weak errors at t_end for every (sde kind, test function) pair.

    The discrete process is SGD when `multiplier` is the identity, PGPO otherwise; the SDEs use the same
    multiplier (sgd_sde ignores it). `progress(paths_done)` is called after each chunk. With `over_time`, the
    per-step differences D_k (k = 1..N) of every fixed test function (not the fluctuation, defined at T) are kept as
    `PairEstimate.over_time`. With `average_from = k0`, every path's g is its time average over steps k0+1..N instead
    of its value at N (the stationary regime, sde.stationary): each path contributes one number, so the standard
    errors stay honest under the autocorrelation along a path.
    """
    if n_paths < 2:
        raise ValueError(f"n_paths must be at least 2, got {n_paths}")
    if r < 1:
        raise ValueError(f"r must be >= 1, got {r}")
    for k in sde_kinds:
        member(k)                                   # ValueError naming the kinds for an unknown one
    if coupled and noise != "gaussian":
        raise ValueError("only Gaussian noise can be coupled to the SDE's Brownian motion")
    n_steps = n_steps_for(t_end, eta)
    theta_bar = gradient_flow_path(problem, multiplier, t_end) if "fluctuation" in tests else None
    gfun = {name: make_test_function(name, eta, theta_bar, problem) for name in tests}
    levels = (2 * r, r) if richardson else (r,)
    fine = levels[0]
    m = problem.noise_dim
    if chunk is None:  # blocks of at most BLOCK_PATHS paths, the (fine, n, m) increment buffer near 32 MB
        chunk = int(min(n_paths, BLOCK_PATHS, max(1000, 4_000_000 // (fine * max(m, problem.dim)))))
    n_chunks = math.ceil(n_paths / chunk)
    seeds = np.random.SeedSequence(seed).spawn(n_chunks)
    sqrt_eta = math.sqrt(eta)
    timed = [g for g in tests if g != "fluctuation"] if over_time else []
    if average_from is not None and not 0 <= average_from < n_steps:
        raise ValueError(f"average_from must be a step in [0, {n_steps}), got {average_from}")
    if average_from is not None and (over_time or "fluctuation" in tests):
        raise ValueError("time averages are for fixed test functions at the endpoint (not over_time, not fluctuation)")

    def block(c: int) -> dict:
        """Moments of one block of paths; its own process objects (their buffers are not shared across threads)."""
        n = min(chunk, n_paths - c * chunk)
        disc = DiscreteProcess(problem, multiplier, eta, noise=noise, info=info)
        sdes = {k: ModelSDE(problem, multiplier, eta, k) for k in sde_kinds}
        rng = np.random.default_rng(seeds[c])
        x_d = np.tile(problem.theta0, (n, 1))
        states = {(k, lv): np.tile(problem.theta0, (n, 1)) for k in sde_kinds for lv in levels}
        inc = np.empty((n, problem.dim))
        z = np.empty((n, m))
        z_sde = np.empty((n, m)) if not coupled else z
        dw_fine = np.empty((fine, n, m))
        dw_coarse = np.empty((r, n, m)) if richardson else None
        series = {(k, g): (np.empty(n_steps), np.empty(n_steps)) for k in sde_kinds for g in timed}

        def sde_value(g, k):
            """g of SDE kind k, Richardson-extrapolated over the two fine levels when enabled."""
            if richardson:
                return 2.0 * g(states[(k, levels[0])]) - g(states[(k, levels[1])])
            return g(states[(k, levels[0])])

        sums = None
        if average_from is not None:
            sums = {key: np.zeros(n) for key in [("discrete", g) for g in tests] +
                    [(k, g) for k in sde_kinds for g in tests]}
        for step in range(n_steps):
            disc.advance(x_d, rng, z)
            if sdes:
                if not coupled:
                    rng.standard_normal(out=z_sde)
                bridge_increments(-sqrt_eta * z_sde, fine, eta / fine, rng, out=dw_fine)
                if richardson:
                    np.add(dw_fine[0::2], dw_fine[1::2], out=dw_coarse)
            for k, sde in sdes.items():
                for lv in levels:
                    em_steps(sde, states[(k, lv)], dw_fine if lv == fine else dw_coarse, eta / lv, inc)
            for gname in timed:
                gd = gfun[gname](x_d)
                for k in sde_kinds:
                    dk = gd - sde_value(gfun[gname], k)
                    mu = dk.mean()
                    series[(k, gname)][0][step] = mu
                    series[(k, gname)][1][step] = ((dk - mu) ** 2).sum()
            if sums is not None and step + 1 > average_from:
                for gname, g in gfun.items():
                    sums[("discrete", gname)] += g(x_d)
                    for k in sde_kinds:
                        sums[(k, gname)] += sde_value(g, k)
        out = {("series", *key): SeriesMoments.of(mu, m2, n) for key, (mu, m2) in series.items()}
        count = n_steps - average_from if sums is not None else 1
        for gname, g in gfun.items():
            gd = g(x_d) if sums is None else sums[("discrete", gname)] / count
            out[("discrete", gname)] = RunningMoments.of(gd)
            for k in sde_kinds:
                gs = sde_value(g, k) if sums is None else sums[(k, gname)] / count
                out[(k, gname)] = RunningMoments.of(gs)
                out[("diff", k, gname)] = RunningMoments.of(gd - gs)
        return out

    acc = {(k, g): RunningMoments() for k in sde_kinds for g in tests}
    acc_t = {(k, g): SeriesMoments() for k in sde_kinds for g in timed}
    acc_d = {g: RunningMoments() for g in tests}
    acc_s = {(k, g): RunningMoments() for k in sde_kinds for g in tests}

    def merge(c: int, part: dict) -> None:
        for g in tests:
            acc_d[g].merge(part[("discrete", g)])
            for k in sde_kinds:
                acc_s[(k, g)].merge(part[(k, g)])
                acc[(k, g)].merge(part[("diff", k, g)])
        for key in acc_t:
            acc_t[key].merge(part[("series", *key)])
        if progress is not None:
            progress(min((c + 1) * chunk, n_paths))

    map_blocks(block, range(n_chunks), merge)
    return {key: PairEstimate(error=a.mean, stderr=a.stderr, mean_discrete=acc_d[key[1]].mean,
                              mean_sde=acc_s[key].mean, n_paths=a.n, moments=a, over_time=acc_t.get(key))
            for key, a in acc.items()}


def merged_blocks(block: Callable[[int], dict], n_blocks: int, names: Sequence[str]) -> dict[str, RunningMoments]:
    """Run `block(c)` -> {name: RunningMoments} for every block (sde.parallel) and merge them in block order."""
    out = {name: RunningMoments() for name in names}
    for part in map_blocks(block, range(n_blocks)):
        for name in names:
            out[name].merge(part[name])
    return out


def discrete_moments_mc(problem: Problem, multiplier: Multiplier, eta: float, t_end: float, tests: Sequence[str],
                        n_paths: int, *, noise: str = "gaussian", info: str = "exact", seed: int = 0,
                        theta_bar: np.ndarray | None = None, chunk: int = 50_000,
                        make_process: Callable[[], object] | None = None) -> dict[str, RunningMoments]:
    """Monte Carlo E g(theta_N) of the discrete process alone (no SDE), in blocks of paths (sde.parallel).
    `make_process()` builds another discrete process per block (sde.variants: `advance(x, rng, z)`, initial state
    `x0`, whose first problem.dim columns are theta) instead of DiscreteProcess(problem, multiplier, ...)."""
    n_steps = n_steps_for(t_end, eta)
    if theta_bar is None and "fluctuation" in tests:
        theta_bar = gradient_flow_path(problem, multiplier, t_end)
    gfun = {name: make_test_function(name, eta, theta_bar, problem) for name in tests}
    seeds = np.random.SeedSequence(seed).spawn(math.ceil(n_paths / chunk))

    def block(c: int) -> dict:
        n = min(chunk, n_paths - c * chunk)
        disc = make_process() if make_process is not None else \
            DiscreteProcess(problem, multiplier, eta, noise=noise, info=info)
        rng = np.random.default_rng(seeds[c])
        x = np.tile(getattr(disc, "x0", problem.theta0), (n, 1))
        z = np.empty((n, problem.noise_dim))
        for _ in range(n_steps):
            disc.advance(x, rng, z)
        th = x[:, :problem.dim]
        return {name: RunningMoments.of(g(th)) for name, g in gfun.items()}

    return merged_blocks(block, len(seeds), tests)


def sde_moments_mc(make_sde: Callable[[], object], problem: Problem, eta: float, t_end: float,
                   tests: Sequence[str], n_paths: int, *, r: int = 4, seed: int = 0, chunk: int = BLOCK_PATHS
                   ) -> dict[str, RunningMoments]:
    """Monte Carlo E g(Theta_T) of one SDE alone (its own Brownian paths, not coupled to a discrete process),
    Euler-Maruyama at h = eta / r and eta / (2r) on the same Brownian path, Richardson-extrapolated per path:
    2 g(Theta^(2r)) - g(Theta^(r)). `make_sde()` builds the SDE (one per block: its buffers are not shared); an SDE
    with an augmented state starts from its `x0` and its first problem.dim columns are theta."""
    n_steps = n_steps_for(t_end, eta)
    gfun = {name: make_test_function(name, eta, problem=problem) for name in tests}   # no fluctuation: no theta_bar
    seeds = np.random.SeedSequence(seed).spawn(math.ceil(n_paths / chunk))
    fine = 2 * r

    def block(c: int) -> dict:
        n = min(chunk, n_paths - c * chunk)
        sde = make_sde()
        rng = np.random.default_rng(seeds[c])
        x0 = getattr(sde, "x0", problem.theta0)
        xf, xc = np.tile(x0, (n, 1)), np.tile(x0, (n, 1))
        inc = np.empty_like(xf)
        dw = np.empty((fine, n, sde.noise_dim))
        dw_coarse = np.empty((r, n, sde.noise_dim))
        for _ in range(n_steps):
            rng.standard_normal(out=dw)
            dw *= math.sqrt(eta / fine)
            np.add(dw[0::2], dw[1::2], out=dw_coarse)
            em_steps(sde, xf, dw, eta / fine, inc)
            em_steps(sde, xc, dw_coarse, eta / r, inc)
        d = problem.dim
        return {name: RunningMoments.of(2.0 * g(xf[:, :d]) - g(xc[:, :d])) for name, g in gfun.items()}

    return merged_blocks(block, len(seeds), tests)


def mean_paths(problem: Problem, multiplier: Multiplier, eta: float, t_end: float, sde_kinds: Sequence[str],
               n_paths: int, *, r: int = 4, coupled: bool = True, noise: str = "gaussian",
               info: str = "exact", seed: int = 0) -> dict:
    """Mean trajectories E theta(t) of the discrete process and each SDE on the discrete time grid,
    with the information signal I and multiplier m along the first path (for intuition figures)."""
    n_steps = n_steps_for(t_end, eta)
    disc = DiscreteProcess(problem, multiplier, eta, noise=noise, info=info)
    sdes = {k: ModelSDE(problem, multiplier, eta, k) for k in sde_kinds}
    rng = np.random.default_rng(seed)
    m = problem.noise_dim
    x_d = np.tile(problem.theta0, (n_paths, 1))
    xs = {k: np.tile(problem.theta0, (n_paths, 1)) for k in sde_kinds}
    inc = np.empty_like(x_d)
    z = np.empty((n_paths, m))
    dw = np.empty((r, n_paths, m))
    info_buf = np.empty(n_paths)
    t = [0.0]
    mean_d = [x_d.mean(axis=0).tolist()]
    sd_d = [x_d.std(axis=0).tolist()]
    mean_s = {k: [xs[k].mean(axis=0).tolist()] for k in sde_kinds}
    sd_s = {k: [xs[k].std(axis=0).tolist()] for k in sde_kinds}
    i_path, m_path = [], []
    for step in range(n_steps):
        info_now = float(problem.info(x_d[:1], info_buf[:1])[0])
        i_path.append(info_now)
        m_path.append(float(multiplier(info_now)))
        disc.advance(x_d, rng, z)
        zz = z if coupled else rng.standard_normal(z.shape)
        bridge_increments(-math.sqrt(eta) * zz, r, eta / r, rng, out=dw)
        for k, sde in sdes.items():
            em_steps(sde, xs[k], dw, eta / r, inc)
        t.append((step + 1) * eta)
        mean_d.append(x_d.mean(axis=0).tolist())
        sd_d.append(x_d.std(axis=0).tolist())
        for k in sde_kinds:
            mean_s[k].append(xs[k].mean(axis=0).tolist())
            sd_s[k].append(xs[k].std(axis=0).tolist())
    return {"t": t, "discrete_mean": mean_d, "discrete_sd": sd_d, "sde_mean": mean_s, "sde_sd": sd_s,
            "info_path": i_path, "multiplier_path": m_path, "n_paths": n_paths, "eta": eta,
            "gradient_flow": gradient_flow_path(problem, multiplier, t_end, np.array(t)).tolist()}


__all__ = ["TEST_FUNCTIONS", "PairEstimate", "estimate_weak_errors", "discrete_moments_mc", "sde_moments_mc", "mean_paths",
           "make_test_function", "IDENTITY"]

"""Euler-Maruyama throughput: this project (1 and 2 workers) vs JAX, diffrax, torchsde and sdeint, and the cost of
the normals alone.

The same SDE, dX = -A X dt + S dW (d = 2 and 10; diagonal and full noise; 10 000 paths x 1 000 steps,
h = 1e-3, float64), simulated by
  - project    sde.simulate.euler_maruyama (NumPy, in place, vectorised over paths), one thread
  - project-2w sde.simulate.euler_maruyama_blocks on 2 worker threads (blocks of 5 000 paths, own generators)
  - jax-scan   a hand-written jax.lax.scan Euler-Maruyama over all paths, jitted (compile time excluded)
  - diffrax    diffrax.diffeqsolve(Euler(), UnsafeBrownianPath) vmapped over paths, jitted (compile excluded)
  - torchsde   torchsde.sdeint(method="euler"), its default Brownian motion (BrownianInterval), timed on a twentieth
               of the steps and extrapolated (--torchsde-steps): over all 1 000 steps at d = 10 it ran 30x slower than
               jax-scan and 140-190 s a repeat, and the whole benchmark took 16 minutes. Its cost per step grows with
               the horizon (over 1 000 steps a step cost 3x what it costs over 50 at d = 2), so the extrapolated figure
               overstates its throughput: the comparison favours the peer, never the project
  - sdeint     sdeint.itoEuler, one path at a time (timed on a subset of paths, extrapolated)
  - draws      rng.standard_normal(out=buf) for the same number of normals: the single-thread ceiling
  - draws-2t   the same from 2 threads with independent generators: the 2-worker ceiling
Prints path-steps/s (median of --repeats) and ratios, all measured side by side in one run (interleaved, so that
machine noise hits every method alike). A peer that is not installed is reported as missing.

    python benchmarks/sde_throughput.py [--paths 10000] [--steps 1000] [--repeats 3] [--torchsde-steps 50]
                                        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import math
import threading

import numpy as np

from sde.parallel import workers
from sde.simulate import LinearSDE, euler_maruyama, euler_maruyama_blocks


def problem(d: int, full: bool):
    rng = np.random.default_rng(d)
    a = np.linspace(0.5, 2.0, d)
    if full:
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        return LinearSDE(a, q @ np.diag(np.linspace(0.3, 1.0, d)))
    return LinearSDE(a, np.linspace(0.3, 1.0, d))


def time_project(sde, n, steps, h, seed):
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    euler_maruyama(sde, np.ones(sde.dim), h, steps, n, rng=rng)
    return time.perf_counter() - t


def time_project_2w(sde, n, steps, h, seed):
    with workers(2):
        t = time.perf_counter()
        euler_maruyama_blocks(sde, np.ones(sde.dim), h, steps, n, seed=seed)
        return time.perf_counter() - t


def time_draws(sde, n, steps, seed):
    rng = np.random.default_rng(seed)
    buf = np.empty((n, sde.noise_dim))
    t = time.perf_counter()
    for _ in range(steps):
        rng.standard_normal(out=buf)
    return time.perf_counter() - t


def time_draws_2t(sde, n, steps, seed):
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)]
    bufs = [np.empty((n // 2, sde.noise_dim)) for _ in range(2)]

    def draw(i):
        for _ in range(steps):
            rngs[i].standard_normal(out=bufs[i])

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(2)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - t


_JAX_CACHE: dict = {}


def _jax():
    import jax
    jax.config.update("jax_enable_x64", True)
    return jax


def time_jax_scan(sde, n, steps, h, seed):
    jax = _jax()
    jnp = jax.numpy
    key = ("scan", id(sde), n, steps)
    if key not in _JAX_CACHE:
        a, s_, full, m = jnp.asarray(sde.A), jnp.asarray(sde.S), not sde.diag_noise, sde.noise_dim

        @jax.jit
        def run(k, x0):
            def step(x, kk):
                dw = jax.random.normal(kk, (n, m), dtype=jnp.float64) * math.sqrt(h)
                return x - h * a * x + (dw @ s_.T if full else dw * s_), None
            return jax.lax.scan(step, x0, jax.random.split(k, steps))[0]
        x0 = jnp.ones((n, sde.dim))
        run(jax.random.PRNGKey(0), x0).block_until_ready()          # compile outside the timing
        _JAX_CACHE[key] = (run, x0)
    run, x0 = _JAX_CACHE[key]
    t = time.perf_counter()
    run(jax.random.PRNGKey(seed), x0).block_until_ready()
    return time.perf_counter() - t


def time_diffrax(sde, n, steps, h, seed):
    jax = _jax()
    jnp = jax.numpy
    import diffrax
    import lineax
    key = ("diffrax", id(sde), n, steps)
    if key not in _JAX_CACHE:
        a, s_, m = jnp.asarray(sde.A), jnp.asarray(sde.S), sde.noise_dim
        y0 = jnp.ones(sde.dim)

        def diffusion(t, y, args):
            return s_ if not sde.diag_noise else lineax.DiagonalLinearOperator(s_)

        def solve(k):
            bm = diffrax.UnsafeBrownianPath(shape=(m,), key=k)
            terms = diffrax.MultiTerm(diffrax.ODETerm(lambda t, y, args: -a * y), diffrax.ControlTerm(diffusion, bm))
            return diffrax.diffeqsolve(terms, diffrax.Euler(), 0.0, steps * h, dt0=h, y0=y0,
                                       saveat=diffrax.SaveAt(t1=True), max_steps=steps + 1,
                                       adjoint=diffrax.ForwardMode()).ys

        run = jax.jit(jax.vmap(solve))
        run(jax.random.split(jax.random.PRNGKey(0), n)).block_until_ready()
        _JAX_CACHE[key] = run
    run = _JAX_CACHE[key]
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    t = time.perf_counter()
    run(keys).block_until_ready()
    return time.perf_counter() - t


def time_torchsde(sde, n, steps, h, seed):
    import torch
    import torchsde

    full = not sde.diag_noise
    a = torch.tensor(sde.A)
    S = torch.tensor(sde.S)

    class OU(torch.nn.Module):
        sde_type = "ito"
        noise_type = "general" if full else "diagonal"

        def f(self, t, y):
            return -y * a

        def g(self, t, y):
            return S.expand(y.shape[0], *S.shape) if full else S.expand(y.shape[0], S.shape[0])

    torch.manual_seed(seed)
    y0 = torch.ones(n, sde.dim, dtype=torch.float64)
    ts = torch.tensor([0.0, steps * h], dtype=torch.float64)
    t = time.perf_counter()
    with torch.no_grad():
        torchsde.sdeint(OU(), y0, ts, method="euler", dt=h)
    return time.perf_counter() - t


def time_sdeint(sde, n_sub, steps, h, seed):
    import sdeint

    S = np.diag(sde.S) if sde.diag_noise else sde.S
    a = sde.A
    tspan = np.linspace(0.0, steps * h, steps + 1)
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    for _ in range(n_sub):
        dW = rng.standard_normal((steps, sde.noise_dim)) * np.sqrt(h)
        sdeint.itoEuler(lambda y, _t: -a * y, lambda y, _t: S, np.ones(sde.dim), tspan, dW=dW)
    return time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=1_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sdeint-paths", type=int, default=20, help="paths actually run by the sdeint loop")
    ap.add_argument("--torchsde-steps", type=int, default=None,
                    help="steps actually run by torchsde, extrapolated (default: steps / 20, at least 1)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    n, steps, h = args.paths, args.steps, 1e-3
    torch_steps = args.torchsde_steps or max(1, steps // 20)
    rows = []
    peers = {"jax-scan": time_jax_scan, "diffrax": time_diffrax, "torchsde": time_torchsde}
    available = {}
    for name, fn in peers.items():
        try:
            fn(problem(2, False), 100, 10, h, 0)
            available[name] = fn
        except ImportError as e:
            print(f"{name}: not installed ({e}); pip install -e '.[dev]'")
    cols = ["project", "project-2w", *available, "sdeint", "draws", "draws-2t"]
    print(f"{n} paths x {steps} steps; path-steps/s, median of {args.repeats} (sdeint: {args.sdeint_paths} paths, "
          f"torchsde: {torch_steps} steps, extrapolated)")
    print(f"{'case':12s} " + " ".join(f"{c:>10s}" for c in cols) +
          f" {'best peer':>10s} {'1w/peer':>8s} {'2w/peer':>8s} {'2w/1w':>6s} {'2w/draws':>8s}")
    from runtools.progress import Progress
    prog = Progress(4 * args.repeats, label="throughput", every_s=0.0, unit="repeats")
    done = 0
    for d in (2, 10):
        for full in (False, True):
            sde = problem(d, full)
            times = {c: [] for c in cols}
            for rep in range(args.repeats):  # interleaved so that machine noise hits all alike
                prog.update(done, note=f"d={d} {'full' if full else 'diagonal'} noise, repeat {rep + 1}", force=True)
                done += 1
                times["project"].append(time_project(sde, n, steps, h, rep))
                times["project-2w"].append(time_project_2w(sde, n, steps, h, rep))
                for name, fn in available.items():
                    times[name].append(fn(sde, n, torch_steps if name == "torchsde" else steps, h, rep))
                times["sdeint"].append(time_sdeint(sde, args.sdeint_paths, steps, h, rep))
                times["draws"].append(time_draws(sde, n, steps, rep))
                times["draws-2t"].append(time_draws_2t(sde, n, steps, rep))
            r = {"d": d, "noise": "full" if full else "diagonal"}
            for c in cols:
                r[c] = ((args.sdeint_paths if c == "sdeint" else n) * (torch_steps if c == "torchsde" else steps)
                        / statistics.median(times[c]))
            peer = max((c for c in cols if c in available or c == "sdeint"), key=lambda c: r[c])
            r["best_peer"] = peer
            r["ratio_1w_best_peer"] = r["project"] / r[peer]
            r["ratio_2w_best_peer"] = r["project-2w"] / r[peer]
            r["ratio_2w_1w"] = r["project-2w"] / r["project"]
            r["ratio_2w_draws"] = r["project-2w"] / r["draws"]
            rows.append(r)
            print(f"d={d:<2d} {r['noise']:8s} " + " ".join(f"{r[c]:10.3g}" for c in cols) +
                  f" {peer:>10s} {r['ratio_1w_best_peer']:8.2f} {r['ratio_2w_best_peer']:8.2f} "
                  f"{r['ratio_2w_1w']:6.2f} {r['ratio_2w_draws']:8.2f}", flush=True)
    if args.json:
        from runtools.files import atomic_write_json
        atomic_write_json(args.json, {"paths": n, "steps": steps, "repeats": args.repeats, "rows": rows}, indent=1)
    return rows


if __name__ == "__main__":
    main()

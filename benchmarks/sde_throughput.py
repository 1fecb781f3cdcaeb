"""Euler-Maruyama throughput: this project vs torchsde vs sdeint, and the cost of the normals alone.

The same SDE, dX = -A X dt + S dW (d = 2 and 10; diagonal and full noise; 10 000 paths x 1 000 steps,
h = 1e-3), simulated by
  - project   sde.simulate.euler_maruyama (NumPy, in place, vectorised over paths)
  - torchsde  torchsde.sdeint(method="euler"), its default Brownian motion (BrownianInterval)
  - sdeint    sdeint.itoEuler, one path at a time (timed on a subset of paths, extrapolated)
  - draws     rng.standard_normal(out=buf) for the same number of normals: the ceiling
Prints path-steps/s (median of --repeats) and the ratios, all measured side by side in one run.

    python benchmarks/sde_throughput.py [--paths 10000] [--steps 1000] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from sde.simulate import LinearSDE, euler_maruyama


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


def time_draws(sde, n, steps, seed):
    rng = np.random.default_rng(seed)
    buf = np.empty((n, sde.noise_dim))
    t = time.perf_counter()
    for _ in range(steps):
        rng.standard_normal(out=buf)
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
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    n, steps, h = args.paths, args.steps, 1e-3
    ps = n * steps
    rows = []
    print(f"{n} paths x {steps} steps; path-steps/s, median of {args.repeats} (sdeint: {args.sdeint_paths} paths, "
          f"extrapolated)")
    print(f"{'case':12s} {'project':>10s} {'torchsde':>10s} {'sdeint':>10s} {'draws':>10s} "
          f"{'x torchsde':>10s} {'x sdeint':>9s} {'% ceiling':>9s}")
    for d in (2, 10):
        for full in (False, True):
            sde = problem(d, full)
            tp, td, tt, ts = [], [], [], []
            for rep in range(args.repeats):  # interleaved so that machine noise hits all alike
                tp.append(time_project(sde, n, steps, h, rep))
                td.append(time_draws(sde, n, steps, rep))
                tt.append(time_torchsde(sde, n, steps, h, rep))
                ts.append(time_sdeint(sde, args.sdeint_paths, steps, h, rep))
            r = {"d": d, "noise": "full" if full else "diagonal",
                 "project": ps / statistics.median(tp), "draws": ps / statistics.median(td),
                 "torchsde": ps / statistics.median(tt),
                 "sdeint": args.sdeint_paths * steps / statistics.median(ts)}
            r["ratio_torchsde"] = r["project"] / r["torchsde"]
            r["ratio_sdeint"] = r["project"] / r["sdeint"]
            r["fraction_of_ceiling"] = r["project"] / r["draws"]
            rows.append(r)
            print(f"d={d:<2d} {r['noise']:8s} {r['project']:10.3g} {r['torchsde']:10.3g} {r['sdeint']:10.3g} "
                  f"{r['draws']:10.3g} {r['ratio_torchsde']:10.1f} {r['ratio_sdeint']:9.0f} "
                  f"{100 * r['fraction_of_ceiling']:8.0f}%", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"paths": n, "steps": steps, "repeats": args.repeats, "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()

"""The noisy-I limits checked directly: E g(discrete PGPO with a minibatch I) extrapolated to eta -> 0 against the
averaged-drift ODE's endpoint g(theta~(T)) that sde.theory predicts.

    python experiments/weak_convergence/noisy_limit.py                       # results/weak_convergence/noisy_limit.json
    python experiments/weak_convergence/noisy_limit.py --paths 20000 --etas 0.02 0.01 --out /tmp/limit.json   # seconds

Why: the noise study (noise.yaml) measures each noisy-I plateau B by fitting e(eta) = B + C1 eta + C2 eta^2 over
eta in [0.1, 0.00625] (least squares) or [0.1, 0.0125] (softmax). Where I comes from the gradient's own batch, the
fitted B of 3 of the 4 curves lies outside its 95 % interval around the predicted g(theta~(T)) - g(theta_bar(T)), all
smaller in magnitude than predicted. Either the prediction misses a term, or the fit is biased. This script decides
between the two without the fit and without the SDE: at eta -> 0 the discrete process itself converges to
g(theta~(T)) (theta_bar's term is a deterministic ODE value), so Richardson's extrapolation of its Monte Carlo mean
from two small step sizes, 2 E g(eta/2) - E g(eta), must agree with the prediction up to its standard error and an
O(eta^2) remainder (the eta^2 coefficient of E g times eta^2 / 2: under 1e-5 here, measured from the study's C2).

Each panel of noise.yaml with a minibatch I is checked, for each info source and test function; every (panel,
eta, info) draws its own paths (seeds from the panel id and eta), so the result does not depend on the order of runs.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STUDY = os.path.join(HERE, "noise.yaml")
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(HERE)), "results", "weak_convergence", "noisy_limit.json")


def check_panel(panel, etas: list[float], n_paths: int, progress) -> list[dict]:
    """One row per (info, test): the extrapolated limit, its s.e., the predicted limit and z."""
    import zlib

    from sde.specs import multiplier_for
    from sde.problems import get_problem
    from sde.theory import averaged_flow, batch_law
    from sde.weak_error import discrete_moments_mc

    problem, mult = get_problem(panel.problem), multiplier_for(panel)
    law = batch_law(problem)
    rows = []
    for info in [i for i in panel.infos if i != "exact"]:
        limit = averaged_flow(problem, mult, info, panel.T, law)
        predicted = {"sq_norm": float(limit @ limit), "linear": float(limit[0])}
        means = []
        for eta in etas:
            seed = zlib.crc32(f"{panel.id}/{info}/{eta!r}".encode())
            t0 = time.perf_counter()
            means.append(discrete_moments_mc(problem, mult, eta, panel.T, list(predicted), n_paths,
                                             noise="minibatch", info=info, seed=seed))
            progress(f"{panel.id} {info} eta={eta:g}: {time.perf_counter() - t0:.0f} s")
        (coarse, fine) = means
        for g, pred in predicted.items():
            est = 2.0 * fine[g].mean - coarse[g].mean
            se = math.sqrt(4.0 * fine[g].stderr ** 2 + coarse[g].stderr ** 2)
            rows.append(dict(panel=panel.id, problem=panel.problem, info=info, g=g, etas=etas, paths=n_paths,
                             means=[m[g].mean for m in means], stderrs=[m[g].stderr for m in means],
                             extrapolated=est, stderr=se, predicted=pred, z=(est - pred) / se))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--etas", type=float, nargs=2, default=[0.002, 0.001], metavar=("ETA", "ETA_HALF"),
                    help="the two step sizes (the second half the first)")
    ap.add_argument("--paths", type=int, default=400_000)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if not math.isclose(args.etas[1], args.etas[0] / 2):
        ap.error(f"--etas: the second step size must be half the first, got {args.etas}")
    if args.paths < 2:
        ap.error(f"--paths must be at least 2, got {args.paths}")

    import json

    from runtools.files import atomic_write_text
    from sde.studyfile import load_study

    panels = [p for p in load_study(STUDY).panels
              if p.kind == "minibatch" and p.discrete == "pgpo" and set(p.infos) - {"exact"}]
    n_tasks = sum(len(set(p.infos) - {"exact"}) for p in panels) * 2
    t_start, done = time.perf_counter(), [0]

    def progress(msg):
        done[0] += 1
        elapsed = time.perf_counter() - t_start
        eta = elapsed / done[0] * (n_tasks - done[0])
        print(f"[noisy_limit {done[0]}/{n_tasks}, {elapsed:.0f} s, about {eta:.0f} s left] {msg}", file=sys.stderr,
              flush=True)

    rows = [r for p in panels for r in check_panel(p, args.etas, args.paths, progress)]
    args_given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python experiments/weak_convergence/noisy_limit.py", *args_given])
    doc = {"what": __doc__.splitlines()[0], "command": command, "rows": rows}
    atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    for r in rows:
        print(f"{r['panel']:20s} {r['info']:18s} {r['g']:8s} limit {r['extrapolated']:.6f} +- {r['stderr']:.6f}  "
              f"predicted {r['predicted']:.6f}  z = {r['z']:+.2f}")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

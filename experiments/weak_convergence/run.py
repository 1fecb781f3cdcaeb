"""Run the weak-convergence study (all five studies, or some) and draw its figures and table.

    python experiments/weak_convergence/run.py --quick                 # ~2 min: results/weak_convergence_quick
    python experiments/weak_convergence/run.py                         # full, <= 15 min: results/weak_convergence
    python experiments/weak_convergence/run.py --only theorem_pgpo     # one study
    python paper_figures/weak_convergence.py --results results/weak_convergence   # figures only (< 30 s)

Each study writes <out>/<study>.json; figures and the slopes table go to <out>/figures (or --figures).
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STUDIES = ["theorem_sgd", "theorem_pgpo", "noise", "multiplier", "trajectories"]


def main(argv=None):
    from pgpo.schema import ConfigError
    from sde.study import load_study, run_study

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small grids and path counts (about 2 minutes)")
    ap.add_argument("--only", nargs="+", choices=STUDIES, help="run only these studies")
    ap.add_argument("--out", help="results directory (default results/weak_convergence[_quick])")
    ap.add_argument("--figures", help="figure directory (default <out>/figures)")
    ap.add_argument("--no-figures", action="store_true")
    args = ap.parse_args(argv)
    out = args.out or os.path.join("results", "weak_convergence_quick" if args.quick else "weak_convergence")
    names = args.only or STUDIES
    try:                                                                    # validate every study first
        studies = [load_study(os.path.join(HERE, f"{n}.yaml"), quick=args.quick) for n in names]
    except ConfigError as e:
        ap.error(str(e))
    t0 = time.perf_counter()
    for st in studies:
        ts = time.perf_counter()
        path = run_study(st, out, quick=args.quick)
        print(f"{st.name}: {time.perf_counter() - ts:.0f} s -> {path}", flush=True)
    print(f"all studies: {time.perf_counter() - t0:.0f} s", flush=True)
    if not args.no_figures:
        from sde.report import make_all
        figs = make_all(out, args.figures or os.path.join(out, "figures"))
        print("figures:", ", ".join(sorted(os.path.basename(f) for f in figs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the weak-convergence study (all nine studies, or some) and draw its figures and table.

    python experiments/weak_convergence/run.py --quick                 # results/weak_convergence_quick
    python experiments/weak_convergence/run.py                         # full study: runs/weak_convergence
    python experiments/weak_convergence/run.py --only theorem_pgpo     # one study
    python experiments/weak_convergence/run.py --out results/weak_convergence \
        --figures paper_figures/weak_convergence --overwrite           # regenerate the committed results
    python paper_figures/weak_convergence.py --results results/weak_convergence   # figures only (seconds)

Each study writes <out>/<study>.json; figures and the verdict table go to <out>/figures (or --figures), redrawn
from every result present. Results already in <out> are never replaced silently: --overwrite replaces them.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STUDIES = ["theorem_sgd", "theorem_pgpo", "noise", "multiplier", "trajectories", "modified_equation", "stationary",
           "escape", "variants"]


def main(argv=None):
    from pgpo.fileio import OutputFolderError, prepare_output_folder
    from pgpo.schema import ConfigError, OneLineParser, int_at_least
    from sde.study import load_study, run_study

    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small grids and path counts (about 2 minutes)")
    ap.add_argument("--only", nargs="+", choices=STUDIES, help="run only these studies")
    ap.add_argument("--out", help="results directory (default results/weak_convergence_quick with --quick, else "
                                  "runs/weak_convergence)")
    ap.add_argument("--overwrite", action="store_true", help="replace results of the same studies already in --out")
    ap.add_argument("--figures", help="figure directory (default <out>/figures)")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--workers", type=int_at_least(1), default=None,
                    help="threads for independent tasks and path blocks (default: all cores; results do not depend on it)")
    args = ap.parse_args(argv)
    out = args.out or (os.path.join("results", "weak_convergence_quick") if args.quick
                       else os.path.join("runs", "weak_convergence"))
    names = args.only or STUDIES
    try:                                                                    # validate every study first
        studies = [load_study(os.path.join(HERE, f"{n}.yaml"), quick=args.quick) for n in names]
        prepare_output_folder(out, overwrite=args.overwrite, holds=tuple(f"{n}.json" for n in names),
                              resume_flag=None, clear=False)      # the atomic writes replace them at the end
        if not args.no_figures:
            # figures are derived from the results and redrawn in place (documented): only check the folder
            prepare_output_folder(args.figures or os.path.join(out, "figures"), resume=True)
    except (ConfigError, OutputFolderError) as e:
        ap.error(str(e))
    t0 = time.perf_counter()
    for st in studies:
        ts = time.perf_counter()
        path = run_study(st, out, quick=args.quick, n_workers=args.workers)
        print(f"{st.name}: {time.perf_counter() - ts:.0f} s -> {path}", flush=True)
    print(f"all studies: {time.perf_counter() - t0:.0f} s", flush=True)
    if not args.no_figures:
        from sde.report import make_all
        figs = make_all(out, args.figures or os.path.join(out, "figures"))
        print("figures:", ", ".join(sorted(os.path.basename(f) for f in figs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

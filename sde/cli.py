"""Command line: `python -m sde verify ...`, `python -m sde plot ...` and `python -m sde calibrate ...`.

    python -m sde verify --problem quadratic --quick --out runs/quadratic
    python -m sde plot --results runs/quadratic/results.json
    python -m sde calibrate --results results/weak_convergence [--reps 500]    # the verdict rule's error rates

Bad arguments end the program with exit status 2 and a one-line message on stderr, before any work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from pgpo.multiplier import SHAPES
from runtools.args import OneLineParser, int_at_least
from sde.problems import PROBLEMS


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m sde", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    v = sub.add_parser("verify", help="weak error of SGD/PGPO against the SDE family on one problem")
    v.add_argument("--problem", required=True, help=f"one of: {', '.join(PROBLEMS)}")
    v.add_argument("--quick", action="store_true", help="small grid and path counts (under a minute)")
    v.add_argument("--out", required=True, help="output directory (results.json, weak_error.png)")
    v.add_argument("--overwrite", action="store_true", help="replace results.json and the figure already in --out")
    v.add_argument("--paths", type=int_at_least(2), help="Monte Carlo paths per eta for every group")
    v.add_argument("--eta", type=_positive_float, nargs="+", help="eta grid (each must divide T)")
    v.add_argument("--T", type=_positive_float, help="horizon T (default 1)")
    v.add_argument("--r", type=int, help="fine Euler-Maruyama steps per discrete step (default 4; 2r for Richardson)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--workers", type=int_at_least(1), help="threads for independent tasks and path blocks (default: all "
                   "cores; results do not depend on it)")
    v.add_argument("--alpha", type=float, help="PGPO sensitivity (default: 2 / I(theta_0))")
    v.add_argument("--m-max", type=float, help="PGPO multiplier cap (default 2.5, so that m starts at the cap)")
    v.add_argument("--shape", choices=SHAPES, help="multiplier shape")
    pl = sub.add_parser("plot", help="redraw weak_error.png from a results.json")
    pl.add_argument("--results", required=True)
    pl.add_argument("--out", help="figure path (default: weak_error.png beside the results)")
    sub.add_parser("rule", help="print the verdict rule (sde.verdicts.VERDICT_RULE)")
    c = sub.add_parser("calibrate", help="measure the verdict rule's error rates on a study's curves (parametric "
                                         "bootstrap; sde.calibration), written to <results>/calibration.json")
    c.add_argument("--results", required=True, help="folder of study results (e.g. results/weak_convergence)")
    c.add_argument("--reps", type=int_at_least(10), default=500, help="bootstrap replicates of the whole table")
    c.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    from runtools.args import one_line_endings
    parser = build_parser()
    args = parser.parse_args(argv)
    with one_line_endings(f"python -m sde {args.command}"):
        return _dispatch(parser, args)


def _dispatch(parser, args) -> int:
    if args.command == "verify":
        return _verify(parser, args)
    if args.command == "calibrate":
        return _calibrate(parser, args)
    if args.command == "rule":
        from sde.verdicts import VERDICT_RULE
        print(VERDICT_RULE)
        return 0
    return _plot(parser, args)


def _verify(parser, args) -> int:
    from runtools.files import OutputFolderError, prepare_output_folder
    from runtools.schema import ConfigError
    from sde.plotting import fit_text, plot_weak_error
    from sde.results import study_curves
    from sde.study import run_study
    from sde.verify import verification_study

    if args.problem not in PROBLEMS:
        parser.error(f"unknown problem {args.problem!r}; choose one of {', '.join(PROBLEMS)}")
    try:
        study = verification_study(args.problem, args.quick, etas=args.eta, T=args.T, paths=args.paths, r=args.r,
                                   alpha=args.alpha, m_max=args.m_max, shape=args.shape, seed=args.seed)
        prepare_output_folder(args.out, overwrite=args.overwrite, resume_flag=None, clear=False,
                              holds=("results.json", "weak_error.png", "weak_error.pdf"))   # replaced atomically
    except (ConfigError, OutputFolderError) as e:
        parser.error(str(e))
    t0 = time.perf_counter()
    path = run_study(study, args.out, quick=args.quick, filename="results.json", n_workers=args.workers)
    with open(path) as f:
        doc = json.load(f)
    fig = plot_weak_error(doc, os.path.join(args.out, "weak_error.png"))
    print(f"wrote {path} and {fig} ({time.perf_counter() - t0:.1f} s)")
    print("verdicts: sde.verdicts.VERDICT_RULE over these curves as one family (`python -m sde rule` prints it)")
    for c in study_curves(doc):
        slope = "n/a" if c["slope"] is None else f"{c['slope']:.2f} [{c['slope_ci'][0]:.2f}, {c['slope_ci'][1]:.2f}]"
        print(f"  {c['discrete']:4s} vs {c['sde']:13s} g={c['g']:11s} {c['method']:15s} {c['noise']:9s} "
              f"{c['info']:17s} {fit_text(c)}  (slope {slope})")
    return 0


def _calibrate(parser, args) -> int:
    from runtools.progress import Progress
    from sde.calibration import CALIBRATION_NAME, calibrate, stress, summary_line
    from sde.report import load
    from sde.results import write_json
    from sde.table import table_curves

    try:
        curves = table_curves(load(args.results))
    except (OSError, json.JSONDecodeError) as e:
        parser.error(f"cannot read results in {args.results!r}: {e}")
    prog = Progress(args.reps, label="calibrate", unit="replicates", stream=sys.stdout)
    t0 = time.perf_counter()
    doc = calibrate(curves, reps=args.reps, seed=args.seed, progress=lambda i, n, _t: prog.update(i))
    doc["stress"] = stress()
    doc["wall_s"] = time.perf_counter() - t0
    path = write_json(os.path.join(args.results, CALIBRATION_NAME), doc)
    print(f"wrote {path} ({doc['wall_s']:.0f} s)")
    print(summary_line(doc))
    return 0


def _plot(parser, args) -> int:
    from sde.plotting import plot_weak_error

    from sde.results import refit

    try:
        with open(args.results) as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        parser.error(f"cannot read results {args.results!r}: {e}")
    if not isinstance(doc, dict) or not ("curves" in doc or "panels" in doc):
        parser.error(f"{args.results} is not a results file of sde verify or of a study (no curves or panels in it)")
    results = refit(doc)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.results)), "weak_error.png")
    print(plot_weak_error(results, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

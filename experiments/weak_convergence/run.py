"""Run the weak-convergence study (all nine studies, or some) and draw its figures and table.

    python experiments/weak_convergence/run.py --quick                 # results/weak_convergence_quick
    python experiments/weak_convergence/run.py                         # full study: runs/weak_convergence
    python experiments/weak_convergence/run.py --only theorem_pgpo     # one study
    python experiments/weak_convergence/run.py --out results/weak_convergence \
        --figures paper_figures/weak_convergence --overwrite           # regenerate the committed results
    python paper_figures/weak_convergence.py --results results/weak_convergence   # figures only (seconds)

Each study writes <out>/<study>.json; figures and the verdict table go to <out>/figures (or --figures), redrawn
from every result present. Results already in <out> are never replaced silently: a rerun keeps a finished study
(its results made with the same panels), continues an interrupted one from its finished panels
(<out>/.partial-<study>.json; bit-identical to an uninterrupted run), and refuses results of other settings;
--overwrite redoes them. Ctrl-C stops with one line saying how to continue.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
from sde.studyfile import STUDIES  # noqa: E402 - the studies, in order (one YAML file each beside this script)


def finished(out: str, study, quick: bool) -> bool:
    """True when out/<study>.json holds this study's results with the same panels (a rerun keeps it); ConfigError
    when it holds results of other settings (only --overwrite replaces those)."""
    import json

    from runtools.schema import ConfigError
    from sde.study import comparable_spec
    path = os.path.join(out, f"{study.name}.json")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        doc = json.load(f)
    specs = [comparable_spec(p) for p in study.panels]
    if doc.get("quick") != quick or [p.get("spec") for p in doc.get("panels", [])] != specs:
        raise ConfigError(f"{path} holds results of other settings than {study.name}.yaml: pass --overwrite to redo "
                          f"the study (or choose another --out)")
    return True


def check_figure_roles(out: str, rerun: set) -> None:
    """ConfigError (one line, naming both files) when results in `out` that this run keeps, of a study whose panels
    fig4 takes by role, lack the panel its study file gives the role to (results older than a renamed panel): the
    figures drawn after the run would fail on them, so the run is refused before any study runs. The studies in
    `rerun` are about to be written from their study files, so they are not read."""
    import json

    from sde.report import role_panels
    from sde.studyfile import ROLE_STUDIES
    docs = {}
    for name in ROLE_STUDIES:
        path = os.path.join(out, f"{name}.json")
        if name not in rerun and os.path.exists(path):
            with open(path) as f:
                docs[name] = json.load(f)
    role_panels(docs, out, HERE)


def main(argv=None):
    from runtools.args import OneLineParser, int_at_least
    from runtools.files import OutputFolderError, prepare_output_folder
    from runtools.schema import ConfigError
    from sde.study import run_study
    from sde.studyfile import load_study

    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small grids and path counts (about 2 minutes)")
    ap.add_argument("--only", nargs="+", choices=STUDIES, help="run only these studies")
    ap.add_argument("--out", help="results directory (default results/weak_convergence_quick with --quick, else "
                                  "runs/weak_convergence)")
    ap.add_argument("--overwrite", action="store_true", help="redo studies whose results are already in --out (without "
                    "it a rerun keeps finished studies and continues an interrupted one from its finished panels)")
    ap.add_argument("--figures", help="figure directory (default <out>/figures)")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--workers", type=int_at_least(1), default=None,
                    help="threads for independent tasks and path blocks (default: all cores; results do not depend on it)")
    args = ap.parse_args(argv)
    out = args.out or (os.path.join("results", "weak_convergence_quick") if args.quick
                       else os.path.join("runs", "weak_convergence"))
    names = args.only or STUDIES
    figures = args.figures or os.path.join(out, "figures")
    try:                                                                    # validate every study first
        studies = [load_study(os.path.join(HERE, f"{n}.yaml"), quick=args.quick) for n in names]
        if args.figures and os.path.exists(args.figures) and not os.path.isdir(args.figures):
            raise OutputFolderError(f"--figures {args.figures} is a file, not a folder")
        prepare_output_folder(out, overwrite=args.overwrite, resume=not args.overwrite, resume_flag=None,
                              clear=False, create=False)          # the atomic writes replace results at the end
        kept = {st.name for st in studies if not args.overwrite and finished(out, st, args.quick)}
        if not args.no_figures:
            check_figure_roles(out, {st.name for st in studies} - kept)
    except (ConfigError, OutputFolderError) as e:
        ap.error(str(e))
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    for st in studies:
        if st.name in kept:
            print(f"{st.name}: kept ({os.path.join(out, st.name + '.json')} holds it; --overwrite redoes it)", flush=True)
            continue
        ts = time.perf_counter()
        path = run_study(st, out, quick=args.quick, n_workers=args.workers)
        print(f"{st.name}: {time.perf_counter() - ts:.0f} s -> {path}", flush=True)
    print(f"all studies: {time.perf_counter() - t0:.0f} s", flush=True)
    if not args.no_figures:
        from sde.report import make_all
        try:
            figs = make_all(out, figures, progress_stream=sys.stderr, studies_dir=HERE)
        except ConfigError as e:
            ap.error(str(e))
        print("figures:", ", ".join(sorted(os.path.basename(f) for f in figs)))
    return 0


if __name__ == "__main__":
    from runtools.args import one_line_endings
    with one_line_endings("weak_convergence/run.py", interrupted=lambda: (
            "weak_convergence/run.py: interrupted; finished studies and panels are kept: run the same command again "
            "to continue")):
        sys.exit(main())

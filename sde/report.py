"""Figures and the verdict table of the weak-convergence study, from saved results only (no simulation).

    python paper_figures/weak_convergence.py --results results/weak_convergence --out paper_figures/weak_convergence
        [--studies experiments/weak_convergence]     # the study files the results were made from (the default)
    (or `make_all(results_dir, out_dir, studies_dir=...)` from Python; experiments/weak_convergence/run.py calls it)

Writes fig1_theorem_sgd, fig2_theorem_pgpo, fig3_noise, fig4_multiplier, fig5_trajectories, fig6_batch_gap,
fig7_modified_equation, fig8_stationary, fig9_escape, fig10_variants (PNG and PDF; sde.figures), weak_convergence_table.md
and weak_convergence_table.json (sde.table). The figures find their panels by what the study files (sde.studyfile)
declare: kinds, which the results record, and the roles of the panels a figure takes one by one (StudyResults), for
which the files of the studies that give roles (sde.studyfile.ROLE_STUDIES) are read; no other study file is needed.
"""

from __future__ import annotations

import json
import os
import sys

import matplotlib

from runtools.args import OneLineParser
from runtools.progress import Progress
from runtools.schema import ConfigError
from sde.results import refit, study_curves
from sde.studyfile import ROLE_STUDIES, ROLES, STUDIES, STUDY_DIR, load_study
from sde.table import write_table
from sde.verdicts import assign


def load(results_dir: str) -> dict:
    docs = {}
    for name in STUDIES:
        path = os.path.join(results_dir, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                docs[name] = refit(json.load(f))
    if not docs:
        raise FileNotFoundError(f"no study results in {results_dir}")
    assign([c for doc in docs.values() for c in study_curves(doc)])     # one family: the whole table (Holm)
    return docs


def load_calibration(results_dir: str) -> dict | None:
    """The verdict rule's measured error rates for these results (sde.calibration), when measured."""
    from sde.calibration import CALIBRATION_NAME
    path = os.path.join(results_dir, CALIBRATION_NAME)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def role_panels(docs: dict, results_dir: str, studies_dir: str = STUDY_DIR) -> dict:
    """role -> the results panel that has it, for every role (sde.studyfile.ROLES) whose study's results are in `docs`
    (as loaded, or the raw JSON: only ids are read). Only those studies' files are read (ROLE_STUDIES): every other
    panel is taken by its kind, which its results record. A study file that lacks a role fails as it loads; results
    without the panel the file gives the role to (results older than a renamed panel) fail in one line naming both
    files."""
    found = {}
    for name in ROLE_STUDIES:
        if name not in docs:
            continue
        path = os.path.join(studies_dir, f"{name}.yaml")
        study = load_study(path, quick=bool(docs[name].get("quick")))
        by_id = {p["id"]: p for p in docs[name]["panels"]}
        for role in (role for role, r in ROLES.items() if r.study == name):
            pid = study.with_role(role).id
            if pid not in by_id:
                raise ConfigError(f"{os.path.join(results_dir, name + '.json')}: no panel {pid!r}, which {path} "
                                  f"gives `role: {role}`: rerun the study (its results predate the study file)")
            found[role] = by_id[pid]
    return found


class StudyResults:
    """The results of each study (load), with their panels found as the study files declare them: by kind, or by role
    (sde.studyfile.ROLES). Every role of a study whose results are present is resolved here, before anything is drawn
    (role_panels)."""

    def __init__(self, docs: dict, results_dir: str, studies_dir: str = STUDY_DIR):
        self.docs = docs
        self.roles = role_panels(docs, results_dir, studies_dir)

    def of_kind(self, study: str, kind: str) -> list[dict]:
        """The panels of `kind` in the study's results, in file order."""
        return [p for p in self.docs[study]["panels"] if p["kind"] == kind]

    def with_role(self, role: str) -> dict | None:
        """The results panel with `role`, or None when its study's results are not present; KeyError for a role that
        sde.studyfile.ROLES does not declare (a figure's typo)."""
        if role not in ROLES:
            raise KeyError(f"no role {role!r}; the roles are {', '.join(ROLES)} (sde.studyfile.ROLES)")
        return self.roles[role] if ROLES[role].study in self.docs else None


def make_all(results_dir: str, out_dir: str, progress_stream=None, studies_dir: str = STUDY_DIR) -> list[str]:
    from sde.figures import FIGURES
    matplotlib.use("Agg", force=True)
    docs = load(results_dir)
    res = StudyResults(docs, results_dir, studies_dir)
    os.makedirs(out_dir, exist_ok=True)
    written: list[str] = []
    todo = [fig for fig in FIGURES if fig.study in docs]
    # the ETA weighs each figure by the curves it draws (fig7 draws six times as many as fig6)
    weight = {fig.study: 1 + len(study_curves(docs[fig.study])) for fig in todo}
    prog = Progress(sum(weight[fig.study] for fig in todo) + 1, label="figures", every_s=0.0, stream=progress_stream)
    done = 0
    for fig in todo:                                 # fig1 ... fig10, each from the results present
        fig.draw(res, fig.study, out_dir, written)
        done += weight[fig.study]
        if progress_stream is not None:
            prog.update(done, note=os.path.basename(written[-1]).rsplit(".", 1)[0], force=True)
    write_table(docs, out_dir, written, load_calibration(results_dir))
    return written


def main(argv=None):
    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results/weak_convergence")
    ap.add_argument("--out", default="paper_figures/weak_convergence")
    ap.add_argument("--studies", default=STUDY_DIR, help="the study files the results were made from (only those of "
                    f"{', '.join(ROLE_STUDIES)} are read: their roles say which panel fig4 takes; default: the "
                    "repository's experiments/weak_convergence)")
    args = ap.parse_args(argv)
    try:
        files = make_all(args.results, args.out, progress_stream=sys.stderr, studies_dir=args.studies)
    except ConfigError as e:
        ap.error(str(e))
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Running a study: every panel of a study file (sde.studyfile) on worker threads, its progress, and the results
file, with the finished panels of an interrupted run kept and continued.

Each panel runs through its kind's runner (sde.runners.RUNNERS) and returns JSON-ready dictionaries (curve records:
sde.results); `run_study` writes them, with each panel's spec (panel_spec), to <out>/<study>.json
atomically. Independent tasks and blocks of paths run on `--workers` threads (sde.parallel) with results independent
of the worker count; every panel seeds itself from its own identity (sde.runners.common.panel_seed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time

from runtools.progress import Progress
from sde.parallel import workers
from sde.results import finite_or_none, study_curves, write_json
from sde.runners import RUNNERS
from sde.studyfile import Study
from sde.verdicts import VERDICT_RULE, assign

__all__ = ["run_study", "panel_spec", "comparable_spec", "StudyProgress"]


class StudyProgress:
    """Progress over the panels of a study, one line every few seconds with the time remaining."""

    def __init__(self, name: str, n_panels: int):
        self.p = Progress(max(n_panels, 1), label=name, every_s=5.0)
        self.done = 0.0
        self.lock = threading.Lock()                    # tasks report from worker threads

    def advance(self, panel: str, fraction: float, note: str = "") -> None:
        with self.lock:
            self.done += fraction
            self.p.update(self.done, note=f"{panel} {note}")

    def note(self, text: str) -> None:
        """A progress line (rate-limited) without advancing: long Monte Carlo rounds stay visible."""
        with self.lock:
            self.p.update(self.done, note=text)


PARTIAL = ".partial-{name}.json"        # finished panels of an unfinished study, beside its results


def panel_spec(p) -> dict:
    """The panel's settings as its results record them (`spec`): every field but `role`, which names what the report
    draws from the panel and changes no number (results stay valid when it changes)."""
    spec = dataclasses.asdict(p)
    spec.pop("role")
    return spec


def comparable_spec(p) -> dict:
    """The panel's spec as a results file holds it once written (JSON numbers, no NaN): what a rerun compares a
    finished panel's `spec` with to keep it."""
    return json.loads(json.dumps(finite_or_none(panel_spec(p))))


def run_study(study: Study, out_dir: str, quick: bool = False, filename: str | None = None,
              n_workers: int | None = None) -> str:
    """Run every panel of `study` (sde.studyfile.load_study) on `n_workers` threads (default: all cores; the results
    do not depend on it) and write <out_dir>/<name>.json (or `filename`); returns its path.

    After each panel the finished panels are saved (atomically) to <out_dir>/.partial-<name>.json; a run that was
    interrupted continues from there: a finished panel whose spec is unchanged is taken as it is (every panel seeds
    itself from its own identity, so the result is bit-identical to an uninterrupted run), the others are run. The
    partial file is removed once the study's results are written."""
    prog = StudyProgress(study.name, len(study.panels))
    t0 = time.perf_counter()
    partial_path = os.path.join(out_dir, PARTIAL.format(name=filename or study.name))
    done = {}
    if os.path.exists(partial_path):
        with open(partial_path) as f:
            prev = json.load(f)
        if prev.get("quick") == quick:
            done = {p["id"]: p for p in prev.get("panels", [])}
    results = []
    for p in study.panels:
        if p.id in done and done[p.id]["spec"] == comparable_spec(p):
            results.append(done[p.id])
            prog.advance(p.id, 1.0, "kept from the interrupted run")
            continue
        tp = time.perf_counter()
        with workers(n_workers):
            items = RUNNERS[p.kind](p, prog)
        wall = time.perf_counter() - tp
        for it in items:
            it["wall_time_s"] = wall / max(len(items), 1)
            it["panel_wall_time_s"] = wall
        results.append({"id": p.id, "kind": p.kind, "spec": panel_spec(p), "items": items, "wall_time_s": wall})
        write_json(partial_path, {"study": study.name, "quick": quick, "panels": results})
    doc = {"study": study.name, "title": study.title, "quick": quick, "error_at": "T", "verdict_rule": VERDICT_RULE,
           "panels": results, "wall_time_s": time.perf_counter() - t0}
    assign(study_curves(doc))                 # the study's curves as one family (the table re-assigns over all)
    path = write_json(os.path.join(out_dir, filename or f"{study.name}.json"), doc)
    if os.path.exists(partial_path):
        os.remove(partial_path)
    return path

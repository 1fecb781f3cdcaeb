"""escape panels: metastable first-passage times over the double well's barrier (sde.escape)."""

from __future__ import annotations

import numpy as np

from sde.panels import EscapePanel
from sde.parallel import map_tasks
from sde.problems import get_problem
from sde.results import multiplier_record
from sde.runners.common import panel_seed
from sde.specs import panel_multipliers
from sde.stats import Z95


def escape_panel(p: EscapePanel, prog) -> list[dict]:
    """Mean first-passage times over the barrier (sde.escape): discrete PGPO by Monte Carlo with a horizon of
    horizon_factor x the exact MFPT of the matched SDE, its closest model (where the discrete MFPT is close to it and
    exit times are close to exponential, about exp(-horizon_factor) of the paths are censored; the count is recorded
    either way), the SDEs exactly, Kramers for constant m."""
    from sde import escape
    problem = get_problem(p.problem)
    mults = [m for _, m in panel_multipliers(p, problem)]
    jobs = [(i, eta) for i in range(len(mults)) for eta in p.etas]

    def one(job):
        i, eta = job
        mult = mults[i]
        exact = {s: escape.exact_mfpt(problem, mult, eta, s) for s in escape.SDES}
        horizon = p.horizon_factor * exact["matched"]
        rng = np.random.default_rng(panel_seed(p, i, eta))
        mc = escape.first_passage_mc(escape.discrete_step(problem, mult, eta), problem.well,
                                     escape.escape_target(problem), eta, p.paths, horizon, rng,
                                     progress=lambda n: prog.note(f"{p.id} m #{i} eta={eta:g} passed={n}"))
        c = getattr(mult, "c", None)
        return {"panel": p.id, "problem": p.problem, "eta": eta, "constant": c,
                "multiplier_spec": multiplier_record(mult), "start": problem.well,
                "target": escape.escape_target(problem), "barrier": escape.barrier(problem),
                "horizon_factor": p.horizon_factor,
                "discrete": {"mean": mc.mean, "stderr": mc.stderr, "ci95": [mc.mean - Z95 * mc.stderr,
                                                                             mc.mean + Z95 * mc.stderr],
                             "n_paths": mc.n_paths, "n_censored": mc.n_censored,
                             "censored_fraction": mc.censored_fraction, "horizon": mc.horizon},
                "exact": exact,
                "kramers": None if c is None else {s: escape.kramers_mfpt(problem, c, eta, s) for s in escape.SDES},
                "temperature": None if c is None else {s: escape.temperature(problem, c, eta, s) for s in escape.SDES}}

    return map_tasks(one, jobs, lambda i, _r: prog.advance(p.id, 1.0 / len(jobs),
                                                            f"m #{jobs[i][0]} eta={jobs[i][1]:g}"))

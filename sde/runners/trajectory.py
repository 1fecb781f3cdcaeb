"""trajectory panels: mean +- sd of theta(t) for the discrete process and each SDE, and I_k, m_k along a path."""

from __future__ import annotations

from sde.panels import TrajectoryPanel
from sde.problems import get_problem
from sde.results import multiplier_record
from sde.runners.common import cap_fraction, panel_seed
from sde.specs import multiplier_for
from sde.weak_error import mean_paths


def trajectory_panel(p: TrajectoryPanel, prog) -> list[dict]:
    problem = get_problem(p.problem)
    mult = multiplier_for(p)
    res = mean_paths(problem, mult, p.eta, p.T, p.sdes, p.paths, r=p.r, seed=panel_seed(p))
    res.update(panel=p.id, problem=p.problem, discrete=p.discrete, multiplier_spec=multiplier_record(mult),
               cap_fraction=cap_fraction(problem, mult, p.eta, p.T, p.paths, panel_seed(p, "cap")))
    prog.advance(p.id, 1.0)
    return [res]

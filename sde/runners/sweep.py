"""sweep panels: the weak error at fixed step sizes across a grid of (alpha, m_max) and multiplier shapes, its
Richardson limit beside the predicted one, and the fraction of steps at the cap."""

from __future__ import annotations

import math

import numpy as np

from pgpo.multiplier import Multiplier
from sde.panels import SweepPanel
from sde.parallel import map_tasks
from sde.problems import get_problem
from sde.runners.common import cap_fraction, panel_seed, prediction_for
from sde.stats import Z95
from sde.weak_error import estimate_weak_errors


def richardson_weights(etas) -> np.ndarray:
    """w with sum_i w_i e(eta_i) = the value at eta = 0 of the polynomial of degree n - 1 through the n points: the
    limit B with the O(eta), ..., O(eta^(n-1)) terms removed (three halving steps: (8 e(eta/4) - 6 e(eta/2) +
    e(eta)) / 3)."""
    x = np.asarray(etas, float)
    return np.linalg.solve(np.vander(x, len(x), increasing=True).T, np.eye(len(x))[0])


def sweep_panel(p: SweepPanel, prog) -> list[dict]:
    """Each (shape, alpha, m_max) point: the weak errors at the panel's step sizes (successive halvings), the limit B
    they extrapolate to (Richardson over all of them: with three, the O(eta) and O(eta^2) terms are removed) with
    its s.e., and the limit sde.theory predicts for it (`predicted`, as for every curve of the table: 0 on sq_norm,
    the Lyapunov ODE's plateau on the paper SDE's fluctuation)."""
    from sde.theory import Plateaus
    problem = get_problem(p.problem)
    i0 = float(problem.info(problem.theta0[None, :], np.empty(1))[0])
    grid = [(shape, f, mm) for shape in p.shapes for f in p.alpha_times_I0 for mm in p.m_max]

    def one_point(point):
        shape, f, mm = point
        mult = Multiplier(alpha=f / i0, m_max=mm, shape=shape)
        row = {"panel": p.id, "problem": p.problem, "shape": shape, "alpha": mult.alpha,
               "alpha_times_I0": f, "m_max": mm, "T": p.T, "r": p.r, "errors": {}, "limit": {},
               "cap_fraction": cap_fraction(problem, mult, p.etas[-1], p.T, p.cap_paths,
                                            panel_seed(p, shape, f, mm, "cap"))}
        for eta in p.etas:
            est = estimate_weak_errors(problem, mult, eta, p.T, p.sdes, p.tests, p.paths, r=p.r,
                                       seed=panel_seed(p, shape, f, mm, eta))
            for (s, g), pe in est.items():
                row["errors"].setdefault(f"{s}|{g}", []).append(
                    {"eta": eta, "error": pe.error, "stderr": pe.stderr, "constant": pe.error / eta})
        plateaus = Plateaus(problem, mult, p.T)
        w = richardson_weights(p.etas)
        for key, pts in row["errors"].items():
            s, g = key.split("|")
            by_eta = {x["eta"]: x for x in pts}
            b = float(sum(wi * by_eta[e]["error"] for wi, e in zip(w, p.etas)))
            se = math.sqrt(sum((wi * by_eta[e]["stderr"]) ** 2 for wi, e in zip(w, p.etas)))
            row["limit"][key] = {"B": b, "stderr": se, "ci95": [b - Z95 * se, b + Z95 * se],
                                 **prediction_for(plateaus, s, g)}
        return row

    return map_tasks(one_point, grid, lambda i, _r: prog.advance(
        p.id, 1.0 / len(grid), "{} alpha*I0={:g} m_max={:g}".format(*grid[i])))

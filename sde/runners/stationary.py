"""stationary panels: the stationary floors of discrete PGPO and each SDE over the eta grid (sde.stationary), closed
form on the quadratics with a constant m, else coupled Monte Carlo with time averages after a burn-in."""

from __future__ import annotations

import math

from sde.panels import StationaryPanel
from sde.parallel import map_tasks
from sde.problems import Quadratic, TeacherStudentSoftmax, get_problem
from sde.results import curve_record, multiplier_record
from sde.runners.common import panel_seed
from sde.simulate import n_steps_for
from sde.specs import panel_multipliers
from sde.weak_error import estimate_weak_errors


def stationary_panel(p: StationaryPanel, prog) -> list[dict]:
    """Stationary floors of discrete PGPO and each SDE over the eta grid (sde.stationary): one curve per (multiplier,
    SDE, test function) with error(eta) = floor_discrete - floor_SDE, fitted by the same rule as every curve; the
    floors themselves (with standard errors) ride along for the floor-vs-c figure."""
    from sde.asymptotics import exact_coefficients
    from sde.stationary import burn_in_for, closed_form_floors, leading_floor
    problem = get_problem(p.problem)
    mults = [m for _, m in panel_multipliers(p, problem)]
    burn = [(p.burn_in, None) if p.burn_in is not None or p.method == "closed_form" else burn_in_for(problem, m)
            for m in mults]                      # (burn-in, slowest rate) per multiplier
    step = max(p.etas)                           # a whole number of the largest step (every eta divides it)
    burn = [(b if rate is None else math.ceil(b / step - 1e-9) * step, rate) for b, rate in burn]
    jobs = [(i, eta) for i in range(len(mults)) for eta in p.etas]
    loss_min = problem.loss_min

    def one(job):
        i, eta = job
        mult = mults[i]
        if p.method == "closed_form":
            f = closed_form_floors(problem, eta, mult.c, p.sdes)
            return {(name, g): (f[name][g], 0.0) for name in f for g in p.tests}, {n: f[n]["covariance"] for n in f}
        est = estimate_weak_errors(problem, mult, eta, burn[i][0] + p.window, p.sdes, p.tests, p.paths, r=p.r,
                                   seed=panel_seed(p, i, eta), average_from=n_steps_for(burn[i][0], eta))
        out = {}
        for g in p.tests:
            shift = loss_min if g == "loss" else 0.0
            d = next(v for (k, gg), v in est.items() if gg == g)
            out[("discrete", g)] = (d.mean_discrete - shift, None)
            for k in p.sdes:
                pe = est[(k, g)]
                out[(k, g)] = (pe.mean_sde - shift, None)
                out[("diff", k, g)] = (pe.error, pe.stderr)
        return out, None

    res = dict(zip(jobs, map_tasks(one, jobs, lambda i, _r: prog.advance(
        p.id, 1.0 / len(jobs), f"m #{jobs[i][0]} eta={jobs[i][1]:g}"))))
    curves = []
    constant_sigma = isinstance(problem, (Quadratic, TeacherStudentSoftmax))     # Sigma does not depend on theta
    for i, mult in enumerate(mults):
        for k in p.sdes:
            for g in p.tests:
                rows = [res[(i, eta)][0] for eta in p.etas]
                coef = None
                if p.method == "closed_form":
                    errs, ses = [r[("discrete", g)][0] - r[(k, g)][0] for r in rows], [0.0] * len(p.etas)
                    coef = exact_coefficients(lambda e: _floor_gap(problem, e, mult.c, k, g), max(p.etas) / 2)
                else:
                    errs, ses = [r[("diff", k, g)][0] for r in rows], [r[("diff", k, g)][1] for r in rows]
                c = getattr(mult, "c", None)
                c1 = None
                if c is not None and g == "loss" and constant_sigma and k != "sgd_sde":
                    # the discrete floor's leading order is the matched SDE's: C1 = its leading floor - the SDE's
                    c1 = leading_floor(problem, 1.0, c, "matched") - leading_floor(problem, 1.0, c, k)
                curves.append(curve_record(
                    p.etas, errs, ses, [0 if p.method == "closed_form" else p.paths] * len(p.etas), exact=coef,
                    panel=p.id, problem=p.problem, discrete="pgpo", sde=k, g=g, T=None, error_at="stationary",
                    coupled=p.method != "closed_form", noise="gaussian", info="exact", method=p.method, r=p.r,
                    label=p.label, multiplier_spec=multiplier_record(mult), constant=c,
                    reference="closed_form" if p.method == "closed_form" else "richardson",
                    burn_in=burn[i][0], window=p.window, slowest_rate=burn[i][1],
                    transient=None if burn[i][1] is None else math.exp(-burn[i][1] * burn[i][0]),
                    floor_discrete=[r[("discrete", g)][0] for r in rows], floor_sde=[r[(k, g)][0] for r in rows],
                    prediction=0.0, prediction_method="0: both floors are O(eta)", predicted_C1=c1,
                    covariance=[res[(i, eta)][1] for eta in p.etas] if p.method == "closed_form" else None))
    return curves


def _floor_gap(problem, eta: float, c: float, sde: str, g: str) -> float:
    """floor(discrete) - floor(sde) of test function g, closed form (sde.stationary)."""
    from sde.stationary import closed_form_floors
    f = closed_form_floors(problem, eta, c, [sde])
    return f["discrete"][g] - f[sde][g]

"""weak_error panels: discrete SGD/PGPO vs SDEs on test functions over an eta grid. `method: closed_form` uses the
quadratic's exact moments; otherwise coupled Monte Carlo. Path counts per (SDE, eta) come from a pilot run:
N = (1.96 sd(D) / (rho |error|))^2, clipped to [min, max]; the achieved CI/|error| ratio is recorded, so a binding cap
is visible in the results. With `over_time`, also Definition A.1's max over k <= N."""

from __future__ import annotations

import math

from sde.panels import WeakErrorPanel
from sde.parallel import map_tasks
from sde.problems import get_problem
from sde.results import curve_record, multiplier_record
from sde.runners.common import panel_seed, prediction_for
from sde.specs import multiplier_for
from sde.stats import Z95, paths_for_precision
from sde.weak_error import estimate_weak_errors


def weak_error_panel(p: WeakErrorPanel, prog) -> list[dict]:
    from sde.theory import Plateaus
    problem = get_problem(p.problem)
    mult = multiplier_for(p)
    common = dict(panel=p.id, problem=p.problem, discrete=p.discrete)
    extra = {"T": p.T, "error_at": "T", "coupled": p.method != "closed_form", "noise": "gaussian", "info": "exact",
             "method": p.method, "r": p.r, "multiplier_spec": multiplier_record(mult), "label": p.label}
    plateaus = Plateaus(problem, mult, p.T)
    pred = {(s, g): prediction_for(plateaus, s, g) for s in p.sdes for g in p.tests}
    curves = []
    if p.method == "closed_form":
        from sde.asymptotics import exact_coefficients
        from sde.exact import exact_endpoint_error, exact_weak_error
        c = getattr(mult, "c", 1.0)
        eta0 = max(p.etas) / 2              # extrapolated from eta_max / 2 down by 2^8 (sde.asymptotics)
        for s in p.sdes:
            for g in p.tests:
                ex = [exact_weak_error(problem, e, p.T, s, g, c=c) for e in p.etas]
                zeros = [0.0] * len(p.etas)
                coef = exact_coefficients(lambda e: exact_endpoint_error(problem, e, p.T, s, g, c=c), eta0)
                curves.append(curve_record(p.etas, [x["error"] for x in ex], zeros, [0] * len(p.etas), **common,
                                           sde=s, g=g, **extra, reference="closed_form", exact=coef, **pred[(s, g)]))
                if p.over_time and g != "fluctuation":
                    coef = exact_coefficients(lambda e: exact_weak_error(problem, e, p.T, s, g, c=c)["max_error"], eta0)
                    curves.append(curve_record(p.etas, [x["max_error"] for x in ex], zeros, [0] * len(p.etas),
                                               exact=coef, **common, sde=s, g=g, **{**extra, "error_at": "max_k"},
                                               argmax_t=[x["argmax"] * e for x, e in zip(ex, p.etas)],
                                               reference="closed_form", **pred[(s, g)]))
        prog.advance(p.id, 1.0)
        return curves
    pc = p.paths
    if pc.fixed is not None:            # a fixed path count: every SDE on the same discrete paths, per eta
        def one_eta(eta):
            return estimate_weak_errors(problem, mult, eta, p.T, p.sdes, p.tests, pc.fixed, r=p.r,
                                        seed=panel_seed(p, eta), over_time=p.over_time,
                                        progress=lambda n, eta=eta: prog.note(f"{p.id} eta={eta:g} paths={n}"))
        ests = map_tasks(one_eta, p.etas, lambda i, _r: prog.advance(
            p.id, 1.0 / len(p.etas), f"eta={p.etas[i]:g} n={pc.fixed}"))
        for s in p.sdes:
            for g in p.tests:
                pes = [est[(s, g)] for est in ests]
                curves.append(curve_record(p.etas, [pe.error for pe in pes], [pe.stderr for pe in pes],
                                           [pc.fixed] * len(p.etas), **common, sde=s, g=g, **extra,
                                           reference="richardson", mean_discrete=[pe.mean_discrete for pe in pes],
                                           mean_sde=[pe.mean_sde for pe in pes], **pred[(s, g)]))
                if pes[0].over_time is not None:
                    curves.append(_max_over_time_curve(p, [pe.over_time for pe in pes], common, extra, s, g,
                                                       pred[(s, g)]))
        return curves
    jobs = [(s, eta) for s in p.sdes for eta in p.etas]

    def one_job(job):
        s, eta = job
        return sized_estimate(problem, mult, eta, p.T, s, p.tests, p.r, pc.rho, pc.pilot, pc.min, pc.max,
                              panel_seed(p, s, eta), progress=lambda n: prog.note(f"{p.id} {s} eta={eta:g} paths={n}"),
                              over_time=p.over_time)
    results = dict(zip(jobs, map_tasks(one_job, jobs, lambda i, res: prog.advance(
        p.id, 1.0 / len(jobs), f"{jobs[i][0]} eta={jobs[i][1]:g} n={res[0][p.tests[0]].n}"))))
    for s in p.sdes:
        for g in p.tests:
            est = [results[(s, eta)][0][g] for eta in p.etas]
            pilot = [results[(s, eta)][1][g] for eta in p.etas]
            curves.append(curve_record(p.etas, [m.mean for m in est], [m.stderr for m in est], [m.n for m in est],
                                       **common, sde=s, g=g, **extra, reference="richardson", rho=pc.rho,
                                       pilot=[{"error": m.mean, "stderr": m.stderr} for m in pilot],
                                       paths_cap=[pc.min, pc.max], **pred[(s, g)]))
            if p.over_time and g != "fluctuation":
                curves.append(_max_over_time_curve(p, [results[(s, eta)][0][("over_time", g)] for eta in p.etas],
                                                   common, extra, s, g, pred[(s, g)]))
    return curves


def _max_over_time_curve(p, series, common, extra, sde, g, pred) -> dict:
    """Definition A.1's error max_{k <= N} |E g(theta_k) - E g(Theta_{k eta})| over the eta grid, from each eta's
    per-step moments (sde.stats.SeriesMoments): the signed error at the maximising step, its standard error there,
    that step's time, and a simultaneous 95 % band for the maximum (`max_band`; the point value is biased up where
    the per-step errors are not resolved, `max_over_se` says by how many standard errors the maximum stands out)."""
    top = [sm.max_abs() for sm in series]
    bands = [sm.max_band() for sm in series]
    return curve_record(p.etas, [v for v, _, _ in top], [max_k_stderr(se, b) for (_, se, _), b in zip(top, bands)],
                        [sm.n for sm in series], **common, sde=sde, g=g, **{**extra, "error_at": "max_k"},
                        reference="richardson", argmax_t=[(k + 1) * eta for (_, _, k), eta in zip(top, p.etas)],
                        max_band=bands, max_over_se=[abs(v) / se if se > 0 else None for v, se, _ in top], **pred)


def max_k_stderr(se_at_max: float, band: list[float]) -> float:
    """The standard error a max-over-time point is fitted with: that of its step, or the simultaneous band's half-width
    / 1.96 when larger (a maximum that does not stand out from the per-step noise is then not 'above 3 s.e.', and the
    verdict rule leaves it out instead of reading its upward bias as a plateau)."""
    return max(se_at_max, (band[1] - band[0]) / (2 * Z95))


def sized_estimate(problem, mult, eta, T, sde, tests, r, rho, n_pilot, n_min, n_max, seed, progress=None,
                   over_time=False):
    """Weak errors for one SDE and eta with enough paths that the 95 % half-width is at most rho |error| for
    every test function, or n_max paths. A pilot of n_pilot paths (kept separate, reported) gives the
    per-path spread; paths are then added in rounds sized by N = (1.96 sd / (rho |error|))^2, using the
    current estimate of the error (doubling while the error is not yet resolved). With over_time, the returned
    moments also hold ("over_time", g): the per-step differences (sde.stats.SeriesMoments)."""
    base = [0]

    def run(n, sd):
        cb = None if progress is None else (lambda done: progress(base[0] + done))
        est = estimate_weak_errors(problem, mult, eta, T, [sde], tests, n, r=r, seed=sd, progress=cb,
                                   over_time=over_time)
        base[0] += n
        out = {g: est[(sde, g)].moments for g in tests}
        out.update({("over_time", g): est[(sde, g)].over_time for g in tests if est[(sde, g)].over_time is not None})
        return out

    pilot = run(n_pilot, seed)
    acc = run(n_min, seed + 1)
    rounds = 2
    while acc[tests[0]].n < n_max:
        need = acc[tests[0]].n
        for g in tests:
            m = acc[g]
            if abs(m.mean) > 3 * m.stderr:               # resolved: size for rho
                if Z95 * m.stderr > rho * abs(m.mean):
                    need = max(need, paths_for_precision(math.sqrt(m.var), m.mean, rho))
            else:                                       # not yet resolved: double
                need = max(need, 2 * m.n)
        if need <= acc[tests[0]].n:
            break
        more = int(min(need, n_max) - acc[tests[0]].n)
        if more < 100:
            break
        new = run(more, seed + rounds)
        for key in acc:
            acc[key].merge(new[key])
        rounds += 1
    return acc, pilot

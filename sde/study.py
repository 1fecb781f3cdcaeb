"""The weak-convergence study: config-driven panels of curves, with path counts chosen from a pilot.

A study file (YAML) lists panels; each panel has a `kind`:

weak_error    discrete SGD/PGPO vs SDEs on test functions over an eta grid. `method: closed_form` uses the
              quadratic's exact moments; otherwise coupled Monte Carlo. Path counts per (SDE, eta) come
              from a pilot run: N = (1.96 sd(D) / (rho |error|))^2, clipped to [min, max]; the achieved
              CI/|error| ratio is recorded, so a binding cap is visible in the results.
minibatch     genuine minibatch noise (cannot be coupled to a Brownian path). The error is estimated with a
              control variate: e_mb = (E g_mb - E g_gauss) + e_gauss, where e_gauss is the coupled weak error
              of the Gaussian-noise process (tiny variance) and the two discrete means are cheap, independent
              simulations with many paths (no SDE needed). Info sources: exact, independent batch, same batch.
              With `averaged_paths`, noisy-I PGPO is also compared with the averaged-drift SDE (sde.theory), the
              limit it does converge to (the positive control).
sweep         the weak error at fixed step sizes across a grid of (alpha, m_max) and multiplier shapes,
              with the fraction of steps whose multiplier sits at the cap.
trajectory    mean +- sd of theta(t) for the discrete process and each SDE, and I_k, m_k along a path.
batch_gap     the Jensen gap E_B[m(I_B)] - m(I) over batch sizes B, by exact enumeration (sde.theory).
stationary    stationary floors (sde.stationary); escape: metastable first-passage times (sde.escape).
variant       PGPO's variants beyond the paper (sde.variants): smoothed I, the scale-free rule, per-sample weights,
              each against its SDE by independent Monte Carlo, beside the comparison the variant changes.

Every curve carries the predicted plateau B beside the fitted one (sde.theory; `prediction`). Independent tasks
and blocks of paths run on `--workers` threads (sde.parallel) with results independent of the worker count.

The study file's schema (one dataclass per panel kind) is sde.panels. Every panel returns JSON-ready
dictionaries (curve records: sde.results); `run_study` writes them to <out>/<study>.json atomically.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time
import zlib

import numpy as np

from pgpo.multiplier import Multiplier
from runtools.progress import Progress
from sde.panels import (BatchGapPanel, EscapePanel, MinibatchPanel, StationaryPanel, Study, SweepPanel, TrajectoryPanel,
                        VariantPanel, WeakErrorPanel, load_study, multiplier_for, panel_multipliers)
from sde.parallel import map_tasks, workers
from sde.problems import Quadratic, TeacherStudentSoftmax, get_problem
from sde.results import curve_record, finite_or_none, multiplier_record, study_curves, write_json
from sde.simulate import DiscreteProcess, n_steps_for
from sde.stats import Z95, fit_slope, paths_for_precision
from sde.verdicts import VERDICT_RULE, assign
from sde.weak_error import discrete_moments_mc, estimate_weak_errors, mean_paths, sde_moments_mc

__all__ = ["load_study", "run_study", "sized_estimate", "cap_fraction"]


def _seed(panel, *parts) -> int:
    """A reproducible seed from the panel's seed (when not 0), its id and parameters (str hashes are salted per
    process, so crc32)."""
    parts = ((panel.seed,) if panel.seed else ()) + (panel.id, *parts)
    return int(np.random.SeedSequence([zlib.crc32(str(p).encode()) for p in parts]).generate_state(1)[0])


# ---------------------------------------------------------------------------------------------------
def prediction_for(plateaus, sde: str, g: str, info: str = "exact") -> dict:
    """The predicted plateau B of a curve (from the panel's sde.theory.Plateaus), and how it was obtained."""
    if info in ("independent_batch", "same_batch") and sde != "averaged":
        if g == "fluctuation":
            return {"prediction": None, "prediction_method": "none (noisy I: the fluctuation about theta_bar diverges)"}
        return {"prediction": plateaus.noisy_info(info, g),
                "prediction_method": "g(averaged-drift flow) - g(theta_bar), exact minibatch enumeration"}
    if g == "fluctuation":
        b = plateaus.fluctuation(sde)
        return {"prediction": b, "prediction_method": "Lyapunov ODE (linear-noise) along theta_bar"
                if b is not None else "none (different drift)"}
    if sde == "sgd_sde" and not plateaus.mult.is_identity:
        return {"prediction": None, "prediction_method": "none (different drift)"}
    return {"prediction": 0.0, "prediction_method": "0: same drift, O(sqrt(eta)) diffusion"}


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
                                        seed=_seed(p, eta), over_time=p.over_time,
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
                              _seed(p, s, eta), progress=lambda n: prog.note(f"{p.id} {s} eta={eta:g} paths={n}"),
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


# ---------------------------------------------------------------------------------------------------
def minibatch_panel(p: MinibatchPanel, prog) -> list[dict]:
    """Weak error of PGPO/SGD with genuine minibatches, by a control variate on the Gaussian model; with
    `averaged_paths`, noisy-I PGPO also against the averaged-drift SDE it converges to (sde.theory)."""
    from sde.theory import AveragedDriftSDE, Plateaus, batch_law
    problem = get_problem(p.problem)
    mult = multiplier_for(p)
    sde = p.sde or ("matched" if p.discrete == "pgpo" else "sgd_sde")
    infos = list(p.infos) if p.discrete == "pgpo" else ["exact"]
    noisy = [i for i in infos if i != "exact"]
    law = batch_law(problem) if noisy else None
    averaged = noisy if p.averaged_paths else []

    def one_eta(eta):
        seed = _seed(p, eta)
        cpl = estimate_weak_errors(problem, mult, eta, p.T, [sde], p.tests, p.coupled_paths, r=p.r, seed=seed)
        gauss = discrete_moments_mc(problem, mult, eta, p.T, p.tests, p.discrete_paths, seed=seed + 1)
        mb = {src: discrete_moments_mc(problem, mult, eta, p.T, p.tests, p.discrete_paths, noise="minibatch",
                                       info="exact" if p.discrete == "sgd" else src, seed=seed + 2 + i)
              for i, src in enumerate(infos)}
        avg = {src: sde_moments_mc(lambda src=src: AveragedDriftSDE(problem, mult, eta, src, law), problem, eta,
                                   p.T, p.tests, p.averaged_paths, r=p.r, seed=_seed(p, eta, "averaged", src))
               for src in averaged}
        return cpl, gauss, mb, avg

    per_eta = map_tasks(one_eta, p.etas, lambda i, _r: prog.advance(p.id, 1.0 / len(p.etas), f"eta={p.etas[i]:g}"))
    plateaus = Plateaus(problem, mult, p.T, law)
    base = dict(panel=p.id, problem=p.problem, discrete=p.discrete, T=p.T, reference="richardson", label=p.label,
                r=p.r, batch_size=problem.batch_size, multiplier_spec=multiplier_record(mult))
    out = []
    for g in p.tests:
        c = [r[0][(sde, g)] for r in per_eta]
        out.append(curve_record(p.etas, [x.error for x in c], [x.stderr for x in c], [p.coupled_paths] * len(p.etas),
                                **base, sde=sde, g=g, coupled=True, noise="gaussian", info="exact",
                                method="monte_carlo", **prediction_for(plateaus, sde, g)))
    for src in infos:
        for g in p.tests:
            errs, ses = [], []
            for cpl, gauss, mb, _ in per_eta:
                c, gm, mm = cpl[(sde, g)], gauss[g], mb[src][g]
                errs.append(mm.mean - gm.mean + c.error)
                ses.append(math.sqrt(mm.stderr ** 2 + gm.stderr ** 2 + c.stderr ** 2))
            out.append(curve_record(p.etas, errs, ses, [p.discrete_paths] * len(p.etas), **base, sde=sde, g=g,
                                    coupled=False, noise="minibatch", info=src, method="control_variate",
                                    **prediction_for(plateaus, sde, g, src)))
    for src in averaged:
        for g in p.tests:
            errs = [r[2][src][g].mean - r[3][src][g].mean for r in per_eta]
            ses = [math.hypot(r[2][src][g].stderr, r[3][src][g].stderr) for r in per_eta]
            out.append(curve_record(p.etas, errs, ses, [p.averaged_paths] * len(p.etas), **base, sde="averaged",
                                    g=g, coupled=False, noise="minibatch", info=src, method="independent_paths",
                                    prediction=0.0, prediction_method="0: the SDE noisy-I PGPO converges to"))
    return out


def batch_gap_panel(p: BatchGapPanel, prog) -> list[dict]:
    """The Jensen gap of a minibatch I over batch sizes, by exact enumeration (sde.theory.jensen_gap): at the state
    where theta_bar crosses the clipped m's kink, with the panel's m and with the cap lifted (m linear)."""
    from sde.theory import jensen_gap, kink_state
    problem = get_problem(p.problem)
    mult = multiplier_for(p)
    t_kink, theta = kink_state(problem, mult, p.T)
    linear = Multiplier(alpha=mult.alpha, m_max=1e12)
    rows = map_tasks(lambda b: {"batch_size": b, "kink": jensen_gap(problem, mult, theta, b),
                                "linear": jensen_gap(problem, linear, theta, b)}, p.batch_sizes,
                     lambda i, _r: prog.advance(p.id, 1.0 / len(p.batch_sizes), f"B={p.batch_sizes[i]}"))
    sizes = [float(b) for b in p.batch_sizes]
    fits = {}
    for where, key in (("kink", "independent"), ("kink", "same_batch"), ("linear", "same_batch")):
        vals = [abs(r[where][key]) for r in rows]
        fits[f"{where}|{key}"] = fit_slope(sizes, vals, [0.0] * len(vals))
    return [{"panel": p.id, "problem": p.problem, "multiplier_spec": multiplier_record(mult), "t_kink": t_kink,
             "theta_kink": theta.tolist(), "rows": rows,
             "slopes": {k: {"slope": f["slope"], "slope_ci": f["slope_ci"]} for k, f in fits.items()}}]


# ---------------------------------------------------------------------------------------------------
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
                                   seed=_seed(p, i, eta), average_from=n_steps_for(burn[i][0], eta))
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
        rng = np.random.default_rng(_seed(p, i, eta))
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


def cap_fraction(problem, mult: Multiplier, eta: float, T: float, n_paths: int, seed: int) -> float:
    """Fraction of (path, step) pairs of discrete PGPO whose multiplier is at the cap m_max."""
    if mult.is_identity:
        return 0.0
    disc = DiscreteProcess(problem, mult, eta)
    rng = np.random.default_rng(seed)
    x = np.tile(problem.theta0, (n_paths, 1))
    z = np.empty((n_paths, problem.noise_dim))
    info = np.empty(n_paths)
    at_cap = 0
    steps = n_steps_for(T, eta)
    for _ in range(steps):
        m = mult(problem.info(x, info))
        at_cap += int((m >= mult.m_max * (1 - 1e-12)).sum())
        disc.advance(x, rng, z)
    return at_cap / (n_paths * steps)


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
                                            _seed(p, shape, f, mm, "cap"))}
        for eta in p.etas:
            est = estimate_weak_errors(problem, mult, eta, p.T, p.sdes, p.tests, p.paths, r=p.r,
                                       seed=_seed(p, shape, f, mm, eta))
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


def trajectory_panel(p: TrajectoryPanel, prog) -> list[dict]:
    problem = get_problem(p.problem)
    mult = multiplier_for(p)
    res = mean_paths(problem, mult, p.eta, p.T, p.sdes, p.paths, r=p.r, seed=_seed(p))
    res.update(panel=p.id, problem=p.problem, discrete=p.discrete, multiplier_spec=multiplier_record(mult),
               cap_fraction=cap_fraction(problem, mult, p.eta, p.T, p.paths, _seed(p, "cap")))
    prog.advance(p.id, 1.0)
    return [res]


# ---------------------------------------------------------------------------------------------------
def _variant_curve(p, errs, ses, **fields) -> dict:
    """A curve of a variant panel over p.etas (discrete_paths per eta): the panel's fields, then `fields`."""
    return curve_record(p.etas, errs, ses, [p.discrete_paths] * len(p.etas), panel=p.id, problem=p.problem,
                        discrete="pgpo", T=p.T, error_at="T", r=p.r, label=p.label, **fields)


def _independent_curve(p, est_d, est_s, g, **fields) -> dict:
    """A curve E g(discrete) - E g(SDE) over p.etas from independent Monte Carlo estimates (per-eta dicts)."""
    errs = [d[g].mean - s[g].mean for d, s in zip(est_d, est_s)]
    ses = [math.hypot(d[g].stderr, s[g].stderr) for d, s in zip(est_d, est_s)]
    return _variant_curve(p, errs, ses, g=g, coupled=False, method="independent_paths", reference="richardson",
                          sde_paths=p.sde_paths, **fields)


def _m_quantiles(make, eta, T, n, seed, problem) -> dict:
    """m_k along discrete paths: per step the mean and the 10 / 50 / 90 % quantiles over n paths."""
    disc = make()
    rng = np.random.default_rng(seed)
    x = np.tile(problem.theta0, (n, 1))
    z = np.empty((n, problem.noise_dim))
    rows = []
    for k in range(n_steps_for(T, eta)):
        disc.advance(x, rng, z)
        q = np.quantile(disc.last_m, [0.1, 0.5, 0.9])
        rows.append([k * eta, float(disc.last_m.mean()), *map(float, q)])
    rows = np.asarray(rows)
    return {"t": rows[:, 0].tolist(), "mean": rows[:, 1].tolist(), "q10": rows[:, 2].tolist(),
            "q50": rows[:, 3].tolist(), "q90": rows[:, 4].tolist()}


def variant_panel(p: VariantPanel, prog) -> list[dict]:
    """sde.variants' processes against their SDEs (VariantPanel's docstring lists the curves)."""
    from pgpo.modulation import StepRule
    from sde import variants as V
    from sde.simulate import ModelSDE, gradient_flow_path
    from sde.theory import Plateaus, batch_law
    problem = get_problem(p.problem)
    mult = p.multiplier.build(problem)
    law = batch_law(problem) if p.variant == "per_sample" or any(i != "exact" for i in p.infos) else None
    beta = Multiplier(alpha=p.beta, m_max=mult.m_max, shape=mult.shape)
    rule = {"smoothed": StepRule(mult, signal="smoothed"), "scale_free": StepRule(beta, scale_free=True)}.get(p.variant)
    text = {"smoothed": f"m_alpha(Ibar), tau={p.tau:g}", "scale_free": f"m_beta(I/Ibar), beta={p.beta:g}, tau={p.tau:g}",
            "per_sample": "per-sample weights m(I_i)"}[p.variant]
    mtext = (f"{'clipped' if mult.shape == 'clipped_linear' else 'smooth'} m, "
             + (f"beta={p.beta:g}" if p.variant == "scale_free" else f"alpha={mult.alpha:.3g}") + f", m_max={mult.m_max:g}")
    base = dict(variant=p.variant, noise="minibatch", batch_size=problem.batch_size, tau=p.tau,
                multiplier_spec=multiplier_record(beta if p.variant == "scale_free" else mult))

    def one_eta(eta):
        sd = lambda *parts: _seed(p, eta, *parts)                                          # noqa: E731
        out = {}
        if p.variant in ("smoothed", "scale_free"):
            out["sde"] = sde_moments_mc(lambda: V.SmoothedSDE(problem, rule, eta, p.tau), problem, eta, p.T, p.tests,
                                        p.sde_paths, r=p.r, seed=sd("augmented"))
            for src in p.infos:
                out[("disc", src)] = discrete_moments_mc(
                    problem, mult, eta, p.T, p.tests, p.discrete_paths, seed=sd("disc", src),
                    make_process=lambda src=src: V.SmoothedDiscrete(problem, rule, eta, p.tau, info=src))
            if p.variant == "smoothed":
                out["matched"] = sde_moments_mc(lambda: ModelSDE(problem, mult, eta, "matched"), problem, eta, p.T,
                                                p.tests, p.sde_paths, r=p.r, seed=sd("matched"))
                for src in p.infos:
                    out[("raw", src)] = discrete_moments_mc(problem, mult, eta, p.T, p.tests, p.discrete_paths,
                                                            noise="minibatch", info=src, seed=sd("raw", src))
                if "independent_batch" in p.infos:        # noisy I vs exact I, same gradient batches (paired)
                    for name, r in (("smoothed", rule), ("raw", StepRule(mult))):
                        out[("paired", name)] = V.paired_difference_mc(problem, r, eta, p.tau, p.T, p.tests,
                                                                       p.discrete_paths, seed=sd("paired", name))
        else:
            out["matched"] = sde_moments_mc(lambda: ModelSDE(problem, mult, eta, "matched"), problem, eta, p.T,
                                            p.tests, p.sde_paths, r=p.r, seed=sd("matched"))
            for norm in p.normalize:
                out[("disc", norm)] = discrete_moments_mc(
                    problem, mult, eta, p.T, p.tests, p.discrete_paths, seed=sd("disc", norm),
                    make_process=lambda norm=norm: V.PerSampleDiscrete(problem, mult, eta, norm))
                out[("sde", norm)] = sde_moments_mc(lambda norm=norm: V.PerSampleSDE(problem, mult, eta, norm, law),
                                                    problem, eta, p.T, p.tests, p.sde_paths, r=p.r, seed=sd("sde", norm))
        return out

    per_eta = map_tasks(one_eta, p.etas, lambda i, _r: prog.advance(p.id, 1.0 / len(p.etas), f"eta={p.etas[i]:g}"))
    curves = []
    if p.variant in ("smoothed", "scale_free"):
        plateaus = Plateaus(problem, mult, p.T, law)
        for src in p.infos:
            for g in p.tests:
                curves.append(_independent_curve(p, [r[("disc", src)] for r in per_eta], [r["sde"] for r in per_eta], g,
                                                 sde="augmented", info=src, m_text=f"{mtext}; {text}", **base,
                                                 prediction=0.0 if (p.variant == "smoothed" or src == "exact") else None,
                                                 prediction_method="0: the augmented SDE of this process" if
                                                 (p.variant == "smoothed" or src == "exact") else
                                                 "none (a noisy I_k / Ibar_k: Jensen gap of m_beta)"))
                if p.variant == "smoothed":
                    curves.append(_independent_curve(p, [r[("raw", src)] for r in per_eta], [r["matched"] for r in per_eta],
                                                     g, sde="matched", info=src, m_text=f"{mtext}; the paper's m(I_k)",
                                                     **{**base, "variant": "none"},
                                                     **prediction_for(plateaus, "matched", g, src)))
        if p.variant == "smoothed" and "independent_batch" in p.infos:
            for name in ("smoothed", "raw"):
                for g in p.tests:
                    d = [r[("paired", name)][g] for r in per_eta]
                    pred = (dict(prediction=0.0, prediction_method="0: the same augmented SDE") if name == "smoothed"
                            else prediction_for(plateaus, "matched", g, "independent_batch"))
                    curves.append(_variant_curve(
                        p, [x.mean for x in d], [x.stderr for x in d], g=g, coupled=True, method="paired_paths",
                        reference="exact-I process", sde="exact-I process", info="independent_batch",
                        m_text=f"{mtext}; " + (f"{text}" if name == "smoothed" else "the paper's m(I_k)") +
                        ", noisy I - exact I on the same gradient batches",
                        **{**base, "variant": p.variant if name == "smoothed" else "none"}, **pred))
    else:
        theta_bar = gradient_flow_path(problem, mult, p.T)
        for norm in p.normalize:
            flow = V.per_sample_flow(problem, mult, p.T, norm, law)
            ntext = "normalised" if norm else "unnormalised"
            for g in p.tests:
                d = [r[("disc", norm)] for r in per_eta]
                curves.append(_independent_curve(p, d, [r[("sde", norm)] for r in per_eta], g, sde="per_sample",
                                                 info="per_sample", normalize=norm, m_text=f"{mtext}; {text}, {ntext}",
                                                 **base, prediction=0.0,
                                                 prediction_method="0: the per-sample SDE (matched, exact batch law)"))
                pred = (float(flow @ flow - theta_bar @ theta_bar) if g == "sq_norm" else
                        float(flow[0] - theta_bar[0]) if g == "linear" else None)
                curves.append(_independent_curve(p, d, [r["matched"] for r in per_eta], g, sde="matched",
                                                 info="per_sample", normalize=norm,
                                                 m_text=f"{mtext}; {text}, {ntext}, vs batch PGPO's SDE", **base,
                                                 prediction=pred, prediction_method="g(per-sample flow) - g(theta_bar), "
                                                 "ODEs with the exact batch law" if pred is not None else "none"))
    curves.append(_variant_distribution(p, problem, mult, rule, beta, law))
    prog.advance(p.id, 0.0, "distribution")
    return curves


def _variant_distribution(p, problem, mult, rule, beta, law) -> dict:
    """How the variant changes the step along the run, at distribution_eta: m_k's distribution for the variant and for
    the paper's rule (smoothed, scale-free), or the per-sample drift's relative distance from m(I) grad L along
    theta_bar(t)."""
    from pgpo.modulation import StepRule
    from sde import variants as V
    from sde.simulate import gradient_flow_path
    eta = p.distribution_eta or min(p.etas)
    out = {"panel": p.id, "variant": p.variant, "problem": p.problem, "eta": eta, "distribution": {}}
    if p.variant in ("smoothed", "scale_free"):
        src = next((i for i in p.infos if i != "exact"), "exact") if p.variant == "smoothed" else "exact"
        out["info"] = src
        for name, r in (("paper", StepRule(mult)), (p.variant, rule)):
            out["distribution"][name] = _m_quantiles(lambda r=r: V.SmoothedDiscrete(problem, r, eta, p.tau, info=src),
                                                     eta, p.T, p.distribution_paths, _seed(p, "dist", name), problem)
        return out
    ts = np.linspace(0.0, p.T, 41)
    path = gradient_flow_path(problem, mult, p.T, t_eval=ts)
    g = problem.grad(path, np.empty_like(path))
    batch = mult(problem.info(path, np.empty(len(ts))))[:, None] * g
    for norm in p.normalize:
        ps = -V.per_sample_drift(problem, mult, path, law, norm)
        out["distribution"]["normalised" if norm else "unnormalised"] = {
            "t": ts.tolist(), "relative_drift_gap": (np.linalg.norm(ps - batch, axis=1) /
                                                     np.linalg.norm(batch, axis=1)).tolist(),
            "cosine": ((ps * batch).sum(1) / np.linalg.norm(ps, axis=1) / np.linalg.norm(batch, axis=1)).tolist()}
    return out


PANELS = {"weak_error": weak_error_panel, "minibatch": minibatch_panel, "sweep": sweep_panel,
          "trajectory": trajectory_panel, "batch_gap": batch_gap_panel, "stationary": stationary_panel,
          "escape": escape_panel, "variant": variant_panel}


# ---------------------------------------------------------------------------------------------------
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


def run_study(study: Study, out_dir: str, quick: bool = False, filename: str | None = None,
              n_workers: int | None = None) -> str:
    """Run every panel of `study` (sde.panels.load_study) on `n_workers` threads (default: all cores; the results
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
        spec = json.loads(json.dumps(finite_or_none(dataclasses.asdict(p))))
        if p.id in done and done[p.id]["spec"] == spec:
            results.append(done[p.id])
            prog.advance(p.id, 1.0, "kept from the interrupted run")
            continue
        tp = time.perf_counter()
        with workers(n_workers):
            items = PANELS[p.kind](p, prog)
        wall = time.perf_counter() - tp
        for it in items:
            it["wall_time_s"] = wall / max(len(items), 1)
            it["panel_wall_time_s"] = wall
        results.append({"id": p.id, "kind": p.kind, "spec": dataclasses.asdict(p), "items": items,
                        "wall_time_s": wall})
        write_json(partial_path, {"study": study.name, "quick": quick, "panels": results})
    doc = {"study": study.name, "title": study.title, "quick": quick, "error_at": "T", "verdict_rule": VERDICT_RULE,
           "panels": results, "wall_time_s": time.perf_counter() - t0}
    assign(study_curves(doc))                 # the study's curves as one family (the table re-assigns over all)
    path = write_json(os.path.join(out_dir, filename or f"{study.name}.json"), doc)
    if os.path.exists(partial_path):
        os.remove(partial_path)
    return path

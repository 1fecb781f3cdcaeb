"""minibatch and batch_gap panels: genuine minibatch noise. It cannot be coupled to a Brownian path: the error is
estimated with a control variate, e_mb = (E g_mb - E g_gauss) + e_gauss, where e_gauss is the coupled weak error of
the Gaussian-noise process (tiny variance) and the two discrete means are cheap, independent simulations with many
paths (no SDE needed). Info sources: exact, independent batch, same batch. With `averaged_paths`, noisy-I PGPO is also
compared with the averaged-drift SDE (sde.theory), the limit it does converge to (the positive control). batch_gap:
the Jensen gap of a minibatch I over batch sizes, by exact enumeration."""

from __future__ import annotations

import math

from pgpo.multiplier import Multiplier
from sde.panels import BatchGapPanel, MinibatchPanel
from sde.parallel import map_tasks
from sde.problems import get_problem
from sde.results import curve_record, multiplier_record
from sde.runners.common import panel_seed, prediction_for
from sde.specs import multiplier_for
from sde.stats import fit_slope
from sde.weak_error import discrete_moments_mc, estimate_weak_errors, sde_moments_mc


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
        seed = panel_seed(p, eta)
        cpl = estimate_weak_errors(problem, mult, eta, p.T, [sde], p.tests, p.coupled_paths, r=p.r, seed=seed)
        gauss = discrete_moments_mc(problem, mult, eta, p.T, p.tests, p.discrete_paths, seed=seed + 1)
        mb = {src: discrete_moments_mc(problem, mult, eta, p.T, p.tests, p.discrete_paths, noise="minibatch",
                                       info="exact" if p.discrete == "sgd" else src, seed=seed + 2 + i)
              for i, src in enumerate(infos)}
        avg = {src: sde_moments_mc(lambda src=src: AveragedDriftSDE(problem, mult, eta, src, law), problem, eta,
                                   p.T, p.tests, p.averaged_paths, r=p.r, seed=panel_seed(p, eta, "averaged", src))
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

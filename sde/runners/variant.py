"""variant panels: PGPO's variants beyond the paper (sde.variants) - smoothed I, the scale-free rule, per-sample
weights - each against its SDE by independent Monte Carlo, beside the comparison the variant changes."""

from __future__ import annotations

import math

import numpy as np

from pgpo.multiplier import Multiplier
from sde.panels import VariantPanel
from sde.parallel import map_tasks
from sde.problems import get_problem
from sde.results import curve_record, multiplier_record
from sde.runners.common import panel_seed, prediction_for
from sde.simulate import n_steps_for
from sde.weak_error import discrete_moments_mc, sde_moments_mc


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
    from sde.family import ModelSDE
    from sde.simulate import gradient_flow_path
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
        sd = lambda *parts: panel_seed(p, eta, *parts)                                          # noqa: E731
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
                                                     eta, p.T, p.distribution_paths, panel_seed(p, "dist", name), problem)
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

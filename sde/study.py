"""The weak-convergence study: config-driven panels of curves, with path counts chosen from a pilot.

A study file (YAML) lists panels; each panel has a `kind`:

weak_error    discrete SGD/PGPO vs SDEs on test functions over an eta grid. `method: closed_form` uses the
              quadratic's exact moments; otherwise coupled Monte Carlo. Path counts per (SDE, eta) come
              from a pilot run: N = (1.96 sd(D) / (rho |error|))^2, clipped to [min, max]; the achieved
              CI/|error| ratio is recorded, so a binding cap is visible in the results.
minibatch     genuine minibatch noise (cannot be coupled to a Brownian path). The error is estimated with a
              control variate: e_mb = (E g_mb - E g_gauss) + e_gauss, where e_gauss is the coupled weak error
              of the Gaussian-noise process (tiny variance) and the two discrete means are cheap, independent
              simulations with many paths (no SDE needed). Info sources: independent batch, same batch.
sweep         the weak error at fixed step sizes across a grid of (alpha, m_max) and multiplier shapes,
              with the fraction of steps whose multiplier sits at the cap.
trajectory    mean +- sd of theta(t) for the discrete process and each SDE, and I_k, m_k along a path.

The study file's schema (one dataclass per panel kind) is sde.panels. Every panel returns JSON-ready
dictionaries (curve records: sde.results); `run_study` writes them to <out>/<study>.json atomically.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import zlib

import numpy as np

from pgpo.multiplier import Multiplier
from pgpo.progress import Progress
from sde.panels import (MinibatchPanel, Study, SweepPanel, TrajectoryPanel, WeakErrorPanel, load_study,
                        multiplier_for)
from sde.problems import get_problem
from sde.results import curve_record, multiplier_record, write_json
from sde.simulate import DiscreteProcess, n_steps_for
from sde.stats import Z95, paths_for_precision
from sde.weak_error import discrete_moments_mc, estimate_weak_errors, mean_paths

__all__ = ["load_study", "run_study", "sized_estimate", "cap_fraction"]


def _seed(panel, *parts) -> int:
    """A reproducible seed from the panel's seed (when not 0), its id and parameters (str hashes are salted per
    process, so crc32)."""
    parts = ((panel.seed,) if panel.seed else ()) + (panel.id, *parts)
    return int(np.random.SeedSequence([zlib.crc32(str(p).encode()) for p in parts]).generate_state(1)[0])


# ---------------------------------------------------------------------------------------------------
def weak_error_panel(p: WeakErrorPanel, prog) -> list[dict]:
    problem = get_problem(p.problem)
    mult = multiplier_for(p)
    common = dict(panel=p.id, problem=p.problem, discrete=p.discrete)
    extra = {"T": p.T, "coupled": p.method != "closed_form", "noise": "gaussian", "info": "exact",
             "method": p.method, "r": p.r, "multiplier_spec": multiplier_record(mult), "label": p.label}
    curves = []
    if p.method == "closed_form":
        from sde.exact import exact_weak_error
        for s in p.sdes:
            for g in p.tests:
                errs = [exact_weak_error(problem, e, p.T, s, g)["error"] for e in p.etas]
                curves.append(curve_record(p.etas, errs, [0.0] * len(p.etas), [0] * len(p.etas), **common, sde=s,
                                           g=g, **extra, reference="closed_form"))
        prog.advance(p.id, 1.0)
        return curves
    pc = p.paths
    if pc.fixed is not None:            # a fixed path count: every SDE on the same discrete paths, per eta
        per = {(s, g): {"err": [], "se": [], "md": [], "ms": []} for s in p.sdes for g in p.tests}
        for eta in p.etas:
            est = estimate_weak_errors(problem, mult, eta, p.T, p.sdes, p.tests, pc.fixed, r=p.r, seed=_seed(p, eta),
                                       progress=lambda n, eta=eta: prog.note(f"{p.id} eta={eta:g} paths={n}"))
            for key, pe in est.items():
                d = per[key]
                d["err"].append(pe.error); d["se"].append(pe.stderr)
                d["md"].append(pe.mean_discrete); d["ms"].append(pe.mean_sde)
            prog.advance(p.id, 1.0 / len(p.etas), f"eta={eta:g} n={pc.fixed}")
        for (s, g), d in per.items():
            curves.append(curve_record(p.etas, d["err"], d["se"], [pc.fixed] * len(p.etas), **common, sde=s, g=g,
                                       **extra, reference="richardson", mean_discrete=d["md"], mean_sde=d["ms"]))
        return curves
    for s in p.sdes:
        per = {g: {"err": [], "se": [], "n": [], "pilot": []} for g in p.tests}
        for eta in p.etas:
            note = (lambda n, s=s, eta=eta: prog.note(f"{p.id} {s} eta={eta:g} paths={n}"))
            est, pilot = sized_estimate(problem, mult, eta, p.T, s, p.tests, p.r, pc.rho, pc.pilot, pc.min, pc.max,
                                        _seed(p, s, eta), progress=note)
            for g in p.tests:
                m = est[g]
                per[g]["err"].append(m.mean)
                per[g]["se"].append(m.stderr)
                per[g]["n"].append(m.n)
                per[g]["pilot"].append({"error": pilot[g].mean, "stderr": pilot[g].stderr})
            prog.advance(p.id, 1.0 / (len(p.sdes) * len(p.etas)), f"{s} eta={eta:g} n={est[p.tests[0]].n}")
        for g in p.tests:
            d = per[g]
            curves.append(curve_record(p.etas, d["err"], d["se"], d["n"], **common, sde=s, g=g, **extra,
                                       reference="richardson", rho=pc.rho, pilot=d["pilot"],
                                       paths_cap=[pc.min, pc.max]))
    return curves


def sized_estimate(problem, mult, eta, T, sde, tests, r, rho, n_pilot, n_min, n_max, seed, progress=None):
    """Weak errors for one SDE and eta with enough paths that the 95 % half-width is at most rho |error| for
    every test function, or n_max paths. A pilot of n_pilot paths (kept separate, reported) gives the
    per-path spread; paths are then added in rounds sized by N = (1.96 sd / (rho |error|))^2, using the
    current estimate of the error (doubling while the error is not yet resolved)."""
    base = [0]

    def run(n, sd):
        cb = None if progress is None else (lambda done: progress(base[0] + done))
        est = estimate_weak_errors(problem, mult, eta, T, [sde], tests, n, r=r, seed=sd, progress=cb)
        base[0] += n
        return {g: est[(sde, g)].moments for g in tests}

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
        for g in tests:
            acc[g].merge(new[g])
        rounds += 1
    return acc, pilot


# ---------------------------------------------------------------------------------------------------
def minibatch_panel(p: MinibatchPanel, prog) -> list[dict]:
    """Weak error of PGPO/SGD with genuine minibatches, by a control variate on the Gaussian model."""
    problem = get_problem(p.problem)
    mult = multiplier_for(p)
    sde = p.sde or ("matched" if p.discrete == "pgpo" else "sgd_sde")
    infos = list(p.infos) if p.discrete == "pgpo" else ["exact"]
    curves = {(src, g): {"err": [], "se": []} for src in ["gaussian", *infos] for g in p.tests}
    for eta in p.etas:
        seed = _seed(p, eta)
        cpl = estimate_weak_errors(problem, mult, eta, p.T, [sde], p.tests, p.coupled_paths, r=p.r, seed=seed)
        gauss = discrete_moments_mc(problem, mult, eta, p.T, p.tests, p.discrete_paths, seed=seed + 1)
        for g in p.tests:
            c = cpl[(sde, g)]
            curves[("gaussian", g)]["err"].append(c.error)
            curves[("gaussian", g)]["se"].append(c.stderr)
        for i, src in enumerate(infos):
            info = "exact" if p.discrete == "sgd" else src
            mb = discrete_moments_mc(problem, mult, eta, p.T, p.tests, p.discrete_paths, noise="minibatch",
                                     info=info, seed=seed + 2 + i)
            for g in p.tests:
                c, gm, mm = cpl[(sde, g)], gauss[g], mb[g]
                curves[(src, g)]["err"].append(mm.mean - gm.mean + c.error)
                curves[(src, g)]["se"].append(math.sqrt(mm.stderr ** 2 + gm.stderr ** 2 + c.stderr ** 2))
        prog.advance(p.id, 1.0 / len(p.etas), f"eta={eta:g}")
    out = []
    for (src, g), d in curves.items():
        n = p.coupled_paths if src == "gaussian" else p.discrete_paths
        out.append(curve_record(p.etas, d["err"], d["se"], [n] * len(p.etas), panel=p.id, problem=p.problem,
                                discrete=p.discrete, sde=sde, g=g, T=p.T, coupled=src == "gaussian",
                                noise="gaussian" if src == "gaussian" else "minibatch",
                                info="exact" if src in ("gaussian", "exact") else src,
                                method="monte_carlo" if src == "gaussian" else "control_variate",
                                reference="richardson", label=p.label, r=p.r, batch_size=problem.batch_size,
                                multiplier_spec=multiplier_record(mult)))
    return out


# ---------------------------------------------------------------------------------------------------
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


def sweep_panel(p: SweepPanel, prog) -> list[dict]:
    problem = get_problem(p.problem)
    i0 = float(problem.info(problem.theta0[None, :], np.empty(1))[0])
    rows = []
    grid = [(shape, f, mm) for shape in p.shapes for f in p.alpha_times_I0 for mm in p.m_max]
    for shape, f, mm in grid:
        mult = Multiplier(alpha=f / i0, m_max=mm, shape=shape)
        row = {"panel": p.id, "problem": p.problem, "shape": shape, "alpha": mult.alpha,
               "alpha_times_I0": f, "m_max": mm, "T": p.T, "r": p.r, "errors": {},
               "cap_fraction": cap_fraction(problem, mult, p.etas[-1], p.T, p.cap_paths,
                                            _seed(p, shape, f, mm, "cap"))}
        for eta in p.etas:
            est = estimate_weak_errors(problem, mult, eta, p.T, p.sdes, p.tests, p.paths, r=p.r,
                                       seed=_seed(p, shape, f, mm, eta))
            for (s, g), pe in est.items():
                row["errors"].setdefault(f"{s}|{g}", []).append(
                    {"eta": eta, "error": pe.error, "stderr": pe.stderr, "constant": pe.error / eta})
        rows.append(row)
        prog.advance(p.id, 1.0 / len(grid), f"{shape} alpha*I0={f:g} m_max={mm:g}")
    return rows


def trajectory_panel(p: TrajectoryPanel, prog) -> list[dict]:
    problem = get_problem(p.problem)
    mult = multiplier_for(p)
    res = mean_paths(problem, mult, p.eta, p.T, p.sdes, p.paths, r=p.r, seed=_seed(p))
    res.update(panel=p.id, problem=p.problem, discrete=p.discrete, multiplier_spec=multiplier_record(mult),
               cap_fraction=cap_fraction(problem, mult, p.eta, p.T, p.paths, _seed(p, "cap")))
    prog.advance(p.id, 1.0)
    return [res]


PANELS = {"weak_error": weak_error_panel, "minibatch": minibatch_panel, "sweep": sweep_panel,
          "trajectory": trajectory_panel}


# ---------------------------------------------------------------------------------------------------
class StudyProgress:
    """Progress over the panels of a study, one line every few seconds with the time remaining."""

    def __init__(self, name: str, n_panels: int):
        self.p = Progress(max(n_panels, 1), label=name, every_s=5.0)
        self.done = 0.0

    def advance(self, panel: str, fraction: float, note: str = "") -> None:
        self.done += fraction
        self.p.update(self.done, note=f"{panel} {note}")

    def note(self, text: str) -> None:
        """A progress line (rate-limited) without advancing: long Monte Carlo rounds stay visible."""
        self.p.update(self.done, note=text)


def run_study(study: Study, out_dir: str, quick: bool = False, filename: str | None = None) -> str:
    """Run every panel of `study` (sde.panels.load_study) and write <out_dir>/<name>.json (or `filename`);
    returns its path."""
    prog = StudyProgress(study.name, len(study.panels))
    t0 = time.perf_counter()
    results = []
    for p in study.panels:
        tp = time.perf_counter()
        items = PANELS[p.kind](p, prog)
        wall = time.perf_counter() - tp
        for it in items:
            it["wall_time_s"] = wall / max(len(items), 1)
            it["panel_wall_time_s"] = wall
        results.append({"id": p.id, "kind": p.kind, "spec": dataclasses.asdict(p), "items": items,
                        "wall_time_s": wall})
    doc = {"study": study.name, "title": study.title, "quick": quick, "error_at": "T",
           "panels": results, "wall_time_s": time.perf_counter() - t0}
    return write_json(os.path.join(out_dir, filename or f"{study.name}.json"), doc)

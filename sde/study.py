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

Every panel returns JSON-ready dictionaries; `run_study` writes them to <out>/<study>.json atomically.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
import zlib

import numpy as np
import yaml

from pgpo.multiplier import Multiplier
from sde.problems import get_problem
from sde.simulate import IDENTITY, DiscreteProcess
from sde.stats import Z95, RunningMoments, fit_slope, paths_for_precision, verdict
from sde.verify import default_multiplier
from sde.weak_error import Progress, discrete_moments_mc, estimate_weak_errors, mean_paths, n_steps_for

PANEL_KINDS = ("weak_error", "minibatch", "sweep", "trajectory")


def _mult(problem, spec: dict, discrete: str) -> Multiplier:
    if discrete == "sgd":
        return IDENTITY
    m = spec.get("multiplier", {})
    return default_multiplier(problem, m.get("alpha"), m.get("m_max", 2.5), m.get("shape", "clipped_linear"))


def _seed(*parts) -> int:
    """A reproducible seed from the panel id and parameters (str hashes are salted per process)."""
    return int(np.random.SeedSequence([zlib.crc32(str(p).encode()) for p in parts]).generate_state(1)[0])


def _curve(panel_id, problem, discrete, sde, g, etas, errs, ses, ns, extra) -> dict:
    fit = fit_slope(etas, errs, ses)
    ratios = [None if (s is None or e == 0) else Z95 * s / abs(e) for e, s in zip(errs, ses)]
    return {"panel": panel_id, "problem": problem, "discrete": discrete, "sde": sde, "g": g, "eta": list(etas),
            "error": list(errs), "stderr": list(ses), "ci95": [[e - Z95 * s, e + Z95 * s] for e, s in zip(errs, ses)],
            "ci_over_error": ratios, "slope": fit["slope"], "slope_ci": fit["slope_ci"],
            "local_slopes": fit["local_slopes"], "used_in_fit": fit["used"], "chi2_red": fit["chi2_red"],
            "verdict": verdict(fit), "n_paths": min(ns) if ns else 0, "n_paths_per_eta": list(ns), **extra}


# ---------------------------------------------------------------------------------------------------
def weak_error_panel(spec: dict, prog) -> list[dict]:
    problem = get_problem(spec["problem"])
    discrete = spec.get("discrete", "pgpo")
    mult = _mult(problem, spec, discrete)
    etas, T, tests, sdes = spec["etas"], float(spec.get("T", 1.0)), spec["tests"], spec["sdes"]
    extra = {"T": T, "coupled": spec.get("method", "monte_carlo") != "closed_form", "noise": "gaussian",
             "info": "exact", "method": spec.get("method", "monte_carlo"), "r": spec.get("r", 4),
             "multiplier": None if mult.is_identity else {"alpha": mult.alpha, "m_max": mult.m_max,
                                                          "shape": mult.shape},
             "label": spec.get("label", "")}
    curves = []
    if spec.get("method") == "closed_form":
        from sde.exact import exact_weak_error
        for s in sdes:
            for g in tests:
                errs = [exact_weak_error(problem, e, T, s, g)["error"] for e in etas]
                curves.append(_curve(spec["id"], spec["problem"], discrete, s, g, etas, errs, [0.0] * len(etas),
                                     [0] * len(etas), {**extra, "reference": "closed_form"}))
        prog.advance(spec["id"], 1.0)
        return curves
    pc = spec.get("paths", {})
    rho, n_pilot = pc.get("rho", 0.2), pc.get("pilot", 2000)
    n_min, n_max = pc.get("min", 5000), pc.get("max", 200_000)
    for s in sdes:
        per = {g: {"err": [], "se": [], "n": [], "pilot": []} for g in tests}
        for eta in etas:
            est, pilot = sized_estimate(problem, mult, eta, T, s, tests, extra["r"], rho, n_pilot, n_min, n_max,
                                        _seed(spec["id"], s, eta),
                                        progress=lambda n, s=s, eta=eta: prog.note(f"{spec['id']} {s} eta={eta:g} "
                                                                                   f"paths={n}"))
            for g in tests:
                pe = est[g]
                per[g]["err"].append(pe.mean)
                per[g]["se"].append(pe.stderr)
                per[g]["n"].append(pe.n)
                per[g]["pilot"].append({"error": pilot[g].mean, "stderr": pilot[g].stderr})
            prog.advance(spec["id"], 1.0 / (len(sdes) * len(etas)), f"{s} eta={eta:g} n={est[tests[0]].n}")
        for g in tests:
            d = per[g]
            curves.append(_curve(spec["id"], spec["problem"], discrete, s, g, etas, d["err"], d["se"], d["n"],
                                 {**extra, "reference": "richardson", "rho": rho, "pilot": d["pilot"],
                                  "paths_cap": [n_min, n_max]}))
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
        return {g: _moments(est[(sde, g)]) for g in tests}

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


def _moments(pe) -> RunningMoments:
    m = RunningMoments()
    m.n, m.mean = pe.n_paths, pe.error
    m.m2 = pe.stderr ** 2 * pe.n_paths * (pe.n_paths - 1)
    return m


# ---------------------------------------------------------------------------------------------------
def minibatch_panel(spec: dict, prog) -> list[dict]:
    """Weak error of PGPO/SGD with genuine minibatches, by a control variate on the Gaussian model."""
    problem = get_problem(spec["problem"])
    discrete = spec.get("discrete", "pgpo")
    mult = _mult(problem, spec, discrete)
    etas, T, tests = spec["etas"], float(spec.get("T", 1.0)), spec["tests"]
    sde = spec.get("sde", "matched" if discrete == "pgpo" else "sgd_sde")
    infos = spec.get("infos", ["independent_batch", "same_batch"]) if discrete == "pgpo" else ["exact"]
    n_coupled = spec.get("coupled_paths", 50_000)
    n_disc = spec.get("discrete_paths", 1_000_000)
    curves = {(src, g): {"err": [], "se": [], "gauss_err": []} for src in ["gaussian", *infos] for g in tests}
    for eta in etas:
        seed = _seed(spec["id"], eta)
        cpl = estimate_weak_errors(problem, mult, eta, T, [sde], tests, n_coupled, seed=seed)
        gauss = discrete_moments_mc(problem, mult, eta, T, tests, n_disc, seed=seed + 1)
        for g in tests:
            c = cpl[(sde, g)]
            curves[("gaussian", g)]["err"].append(c.error)
            curves[("gaussian", g)]["se"].append(c.stderr)
        for i, src in enumerate(infos):
            info = "exact" if discrete == "sgd" else src
            mb = discrete_moments_mc(problem, mult, eta, T, tests, n_disc, noise="minibatch", info=info,
                                     seed=seed + 2 + i)
            for g in tests:
                c, gm, mm = cpl[(sde, g)], gauss[g], mb[g]
                curves[(src, g)]["err"].append(mm.mean - gm.mean + c.error)
                curves[(src, g)]["se"].append(math.sqrt(mm.stderr ** 2 + gm.stderr ** 2 + c.stderr ** 2))
        prog.advance(spec["id"], 1.0 / len(etas), f"eta={eta:g}")
    out = []
    for (src, g), d in curves.items():
        noise = "gaussian" if src == "gaussian" else "minibatch"
        info = "exact" if src in ("gaussian", "exact") else src
        n = n_coupled if src == "gaussian" else n_disc
        out.append(_curve(spec["id"], spec["problem"], discrete, sde, g, etas, d["err"], d["se"], [n] * len(etas),
                          {"T": T, "coupled": src == "gaussian", "noise": noise, "info": info,
                           "method": "monte_carlo" if src == "gaussian" else "control_variate",
                           "reference": "richardson", "label": spec.get("label", ""), "r": 4,
                           "batch_size": problem.batch_size,
                           "multiplier": None if mult.is_identity else {"alpha": mult.alpha, "m_max": mult.m_max,
                                                                        "shape": mult.shape}}))
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


def sweep_panel(spec: dict, prog) -> list[dict]:
    problem = get_problem(spec["problem"])
    T, tests, sdes, etas = float(spec.get("T", 1.0)), spec["tests"], spec["sdes"], spec["etas"]
    i0 = float(problem.info(problem.theta0[None, :], np.empty(1))[0])
    rows = []
    grid = [(shape, f, mm) for shape in spec.get("shapes", ["clipped_linear"])
            for f in spec["alpha_times_I0"] for mm in spec["m_max"]]
    for shape, f, mm in grid:
        mult = Multiplier(alpha=f / i0, m_max=mm, shape=shape)
        row = {"panel": spec["id"], "problem": spec["problem"], "shape": shape, "alpha": mult.alpha,
               "alpha_times_I0": f, "m_max": mm, "T": T, "errors": {},
               "cap_fraction": cap_fraction(problem, mult, etas[-1], T, spec.get("cap_paths", 2000),
                                            _seed(spec["id"], shape, f, mm, "cap"))}
        for eta in etas:
            est = estimate_weak_errors(problem, mult, eta, T, sdes, tests, spec.get("paths", 20_000),
                                       seed=_seed(spec["id"], shape, f, mm, eta))
            for (s, g), pe in est.items():
                row["errors"].setdefault(f"{s}|{g}", []).append(
                    {"eta": eta, "error": pe.error, "stderr": pe.stderr, "constant": pe.error / eta})
        rows.append(row)
        prog.advance(spec["id"], 1.0 / len(grid), f"{shape} alpha*I0={f:g} m_max={mm:g}")
    return rows


def trajectory_panel(spec: dict, prog) -> list[dict]:
    problem = get_problem(spec["problem"])
    mult = _mult(problem, spec, spec.get("discrete", "pgpo"))
    res = mean_paths(problem, mult, spec["eta"], float(spec.get("T", 1.0)), spec["sdes"], spec.get("paths", 20_000),
                     r=spec.get("r", 8), seed=_seed(spec["id"]))
    res.update(panel=spec["id"], problem=spec["problem"], discrete=spec.get("discrete", "pgpo"),
               multiplier=None if mult.is_identity else {"alpha": mult.alpha, "m_max": mult.m_max, "shape": mult.shape},
               cap_fraction=cap_fraction(problem, mult, spec["eta"], float(spec.get("T", 1.0)),
                                         spec.get("paths", 20_000), _seed(spec["id"], "cap")))
    prog.advance(spec["id"], 1.0)
    return [res]


PANELS = {"weak_error": weak_error_panel, "minibatch": minibatch_panel, "sweep": sweep_panel,
          "trajectory": trajectory_panel}


# ---------------------------------------------------------------------------------------------------
class StudyProgress:
    """Progress over the panels of a study, one line every few seconds with an ETA."""

    def __init__(self, name: str, n_panels: int):
        self.p = Progress(max(n_panels, 1), label=name, every_s=5.0)
        self.done = 0.0

    def advance(self, panel: str, fraction: float, note: str = "") -> None:
        self.done += fraction
        self.p.update(self.done, note=f"{panel} {note}")

    def note(self, text: str) -> None:
        """A progress line (rate-limited) without advancing: long Monte Carlo rounds stay visible."""
        self.p.update(self.done, note=text)


def apply_quick(spec: dict) -> dict:
    """A panel's quick version: its `quick:` mapping overrides its own keys (nested one level)."""
    spec = copy.deepcopy(spec)
    quick = spec.pop("quick", None) or {}
    for k, v in quick.items():
        if isinstance(v, dict) and isinstance(spec.get(k), dict):
            spec[k].update(v)
        else:
            spec[k] = v
    return spec


def load_study(path: str, quick: bool = False) -> dict:
    with open(path) as f:
        study = yaml.safe_load(f)
    if not isinstance(study, dict) or "panels" not in study or "name" not in study:
        raise ValueError(f"{path}: a study needs `name` and `panels`")
    panels = []
    for i, p in enumerate(study["panels"]):
        if p.get("kind") not in PANEL_KINDS:
            raise ValueError(f"{path}: panels[{i}].kind must be one of {PANEL_KINDS}, got {p.get('kind')!r}")
        if "id" not in p or "problem" not in p:
            raise ValueError(f"{path}: panels[{i}] needs `id` and `problem`")
        get_problem(p["problem"])
        p = apply_quick(p) if quick else {k: v for k, v in p.items() if k != "quick"}
        for eta in p.get("etas", [p.get("eta")] if "eta" in p else []):
            n_steps_for(float(p.get("T", 1.0)), eta)
        panels.append(p)
    study["panels"] = panels
    return study


def run_study(study: dict, out_dir: str, quick: bool = False) -> str:
    prog = StudyProgress(study["name"], len(study["panels"]))
    t0 = time.perf_counter()
    results = []
    for p in study["panels"]:
        tp = time.perf_counter()
        items = PANELS[p["kind"]](p, prog)
        wall = time.perf_counter() - tp
        for it in items:
            it["wall_time_s"] = wall / max(len(items), 1)
            it["panel_wall_time_s"] = wall
        results.append({"id": p["id"], "kind": p["kind"], "spec": p, "items": items, "wall_time_s": wall})
    doc = {"study": study["name"], "title": study.get("title", ""), "quick": quick, "error_at": "T",
           "panels": results, "wall_time_s": time.perf_counter() - t0}
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{study['name']}.json")
    from sde.verify import _finite_or_none, _json_default
    with open(path + ".tmp", "w") as f:
        json.dump(_finite_or_none(doc), f, indent=1, allow_nan=False, default=_json_default)
    os.replace(path + ".tmp", path)
    return path

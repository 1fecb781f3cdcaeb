"""Weak-convergence verification for one problem: runs groups of curves and writes results.json.

A *group* is one discrete process (SGD or PGPO; Gaussian or minibatch noise; an information source)
compared with several SDEs on several test functions over an eta grid. Each (SDE, test function)
pair becomes one *curve* in results.json:

    problem, discrete (sgd | pgpo), sde (gradient_flow | sgd_sde | paper | matched), g, eta, error,
    stderr, ci95, slope, slope_ci, local_slopes, used_in_fit, n_paths, coupled, method
    (monte_carlo | closed_form), noise, info, reference (richardson | closed_form), T, r, multiplier,
    mean_discrete, mean_sde, verdict

The error is the error at the horizon T (error_at = "T").
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

from pgpo.multiplier import DEFAULT_M_MAX, Multiplier
from pgpo.progress import Progress
from sde.panels import MultiplierSpec
from sde.problems import PROBLEMS, get_problem
from sde.results import curve_record, multiplier_record, write_json
from sde.simulate import IDENTITY, SDE_KINDS, n_steps_for
from sde.weak_error import TEST_FUNCTIONS, estimate_weak_errors


@dataclass
class Group:
    discrete: str                       # "sgd" | "pgpo"
    sdes: list[str]
    tests: list[str]
    n_paths: int
    noise: str = "gaussian"
    info: str = "exact"
    coupled: bool = True
    method: str = "monte_carlo"         # or "closed_form" (quadratic SGD only)
    etas: list[float] | None = None     # defaults to the run's grid
    label: str = ""

    def validate(self) -> None:
        if self.discrete not in ("sgd", "pgpo"):
            raise ValueError(f"discrete must be 'sgd' or 'pgpo', got {self.discrete!r}")
        for s in self.sdes:
            if s not in SDE_KINDS:
                raise ValueError(f"unknown sde {s!r}; choose from {SDE_KINDS}")
        for g in self.tests:
            if g not in TEST_FUNCTIONS:
                raise ValueError(f"unknown test function {g!r}; choose from {TEST_FUNCTIONS}")
        if self.method not in ("monte_carlo", "closed_form"):
            raise ValueError(f"method must be monte_carlo or closed_form, got {self.method!r}")
        if self.method == "monte_carlo" and self.n_paths < 2:
            raise ValueError(f"n_paths must be at least 2, got {self.n_paths}")


@dataclass
class VerifyConfig:
    problem: str
    etas: list[float]
    T: float = 1.0
    r: int = 4
    seed: int = 0
    alpha: float | None = None          # None: 2 / I(theta_0), so m starts at the cap
    m_max: float = DEFAULT_M_MAX
    shape: str = "clipped_linear"
    groups: list[Group] = field(default_factory=list)

    def validate(self) -> None:
        if self.problem not in PROBLEMS:
            raise ValueError(f"unknown problem {self.problem!r}; choose one of {', '.join(PROBLEMS)}")
        if not self.T > 0 or not math.isfinite(self.T):
            raise ValueError(f"T must be positive, got {self.T}")
        if not self.etas:
            raise ValueError("eta grid is empty")
        for eta in self.etas:
            if not eta > 0:
                raise ValueError(f"eta must be positive, got {eta}")
            if eta >= self.T:
                raise ValueError(f"eta must be smaller than T: eta={eta} >= T={self.T}")
            n_steps_for(self.T, eta)
        if self.r < 1:
            raise ValueError(f"r must be >= 1, got {self.r}")
        if self.alpha is not None and self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        Multiplier(self.alpha or 0.0, self.m_max, self.shape)
        for g in self.groups:
            g.validate()
            if g.method == "closed_form" and self.problem not in ("quadratic", "quadratic-d10"):
                raise ValueError("closed_form curves exist only for the quadratic problems")
            if g.noise == "minibatch" and not get_problem(self.problem).has_dataset:
                raise ValueError(f"problem {self.problem!r} has no dataset for minibatch noise")


def default_config(problem: str, quick: bool) -> VerifyConfig:
    """The built-in verification for a problem: SGD and PGPO against the SDE family."""
    etas = [0.1, 0.05, 0.025, 0.0125, 0.00625] if quick else [0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125]
    paths = 10_000 if quick else 100_000
    all_tests = list(TEST_FUNCTIONS)
    groups = [
        Group("sgd", ["sgd_sde", "gradient_flow"], all_tests, paths, label="SGD, Gaussian noise"),
        Group("pgpo", ["paper", "matched", "gradient_flow"], all_tests, paths, label="PGPO, Gaussian noise"),
    ]
    if problem in ("quadratic", "quadratic-d10"):
        groups.insert(0, Group("sgd", ["sgd_sde", "gradient_flow"], all_tests, 0, coupled=False,
                               method="closed_form", etas=[2.0 ** -j for j in range(5, 13)],
                               label="SGD, exact moments"))
    if problem in ("softmax", "least-squares") and not quick:
        # genuine minibatch noise cannot be coupled to a Brownian path: many independent paths
        mb_paths, mb_etas = 1_000_000, etas[:4]
        for info in ("independent_batch", "same_batch"):
            groups.append(Group("pgpo", ["paper", "matched"], ["sq_norm", "linear"], mb_paths, noise="minibatch",
                                info=info, coupled=False, etas=mb_etas,
                                label=f"PGPO, minibatch noise, I from {info.replace('_', ' ')}"))
    return VerifyConfig(problem=problem, etas=etas, m_max=2.5, groups=groups)     # m starts at the cap 2.5


def run_verification(cfg: VerifyConfig) -> dict:
    """Run every group of `cfg`; return the results dictionary (see module docstring)."""
    cfg.validate()
    problem = get_problem(cfg.problem)
    pgpo_mult = MultiplierSpec(cfg.alpha, cfg.m_max, cfg.shape).build(problem)
    work = sum(max(g.n_paths, 1) * sum(1.0 / e for e in (g.etas or cfg.etas)) for g in cfg.groups)  # path-steps
    prog = Progress(work, label=f"verify {cfg.problem}")
    done_work = 0.0
    t0 = time.perf_counter()
    curves = []
    for gi, group in enumerate(cfg.groups):
        mult = IDENTITY if group.discrete == "sgd" else pgpo_mult
        etas = group.etas or cfg.etas
        per = {(s, t): {"err": [], "se": [], "md": [], "ms": []} for s in group.sdes for t in group.tests}
        for ei, eta in enumerate(etas):
            if group.method == "closed_form":
                from sde.exact import exact_weak_error
                for s in group.sdes:
                    for t in group.tests:
                        e = exact_weak_error(problem, eta, cfg.T, s, t, c=1.0)
                        d = per[(s, t)]
                        d["err"].append(e["error"]); d["se"].append(0.0)
                        d["md"].append(e["mean_discrete"]); d["ms"].append(e["mean_sde"])
                continue
            base = done_work

            def _progress(paths_done, base=base, eta=eta):
                prog.update(base + paths_done / eta, note=f"group {gi + 1}/{len(cfg.groups)} eta={eta:g}")

            est = estimate_weak_errors(problem, mult, eta, cfg.T, group.sdes, group.tests, group.n_paths,
                                       r=cfg.r, coupled=group.coupled, noise=group.noise, info=group.info,
                                       seed=cfg.seed * 1_000_003 + gi * 1009 + ei, progress=_progress)
            done_work += group.n_paths / eta
            for (s, t), pe in est.items():
                d = per[(s, t)]
                d["err"].append(pe.error); d["se"].append(pe.stderr)
                d["md"].append(pe.mean_discrete); d["ms"].append(pe.mean_sde)
        for (s, t), d in per.items():
            curves.append(curve_record(
                etas, d["err"], d["se"], [group.n_paths] * len(etas), problem=cfg.problem, discrete=group.discrete,
                sde=s, g=t, coupled=group.coupled, method=group.method, noise=group.noise, info=group.info,
                reference="closed_form" if group.method == "closed_form" else "richardson", T=cfg.T, r=cfg.r,
                error_at="T", label=group.label, multiplier=multiplier_record(mult), mean_discrete=d["md"],
                mean_sde=d["ms"]))
    prog.update(work, note="done", force=True)
    cfg_dict = asdict(cfg)
    cfg_dict["pgpo_multiplier"] = multiplier_record(pgpo_mult)
    return {"problem": cfg.problem, "problem_spec": problem.describe(), "config": cfg_dict,
            "error_at": "T", "curves": curves, "wall_time_s": time.perf_counter() - t0}


def write_results(results: dict, out_dir: str) -> str:
    """Write results.json atomically (strict JSON) and return its path."""
    return write_json(os.path.join(out_dir, "results.json"), results)

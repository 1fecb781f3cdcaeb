"""The study file's schema: one typed dataclass per panel kind, defaults declared once, loaded by the same strict
loader as the trainer's configs (runtools.schema: an unknown key gets "did you mean ...?", a wrong type names the
field). A study file (YAML):

    name: theorem_pgpo            # the results file is <out>/<name>.json
    title: "..."                  # optional
    panels:
      - kind: weak_error | minibatch | sweep | trajectory | batch_gap | stationary | escape | variant
        id: ...
        problem: quadratic | quadratic-rotated | quadratic-d10 | double-well | double-well-escape | softmax |
                 least-squares
        ...                       # the fields of the panel's class below
        quick: {...}              # optional: overrides of this panel's own keys for the quick version
                                  # (nested mappings are merged one level deep); checked as strictly

Both the full and the quick version of every panel are built (and so checked) when a study is loaded.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

from pgpo.multiplier import DEFAULT_M_MAX, Multiplier, Shape
from runtools.schema import ConfigError, build, read_yaml
from sde.problems import PROBLEMS, Problem, get_problem
from sde.simulate import IDENTITY, INFO_SOURCES, SDE_KINDS, ConstantMultiplier, n_steps_for
from sde.weak_error import TEST_FUNCTIONS

R_DEFAULT = 4                      # fine Euler-Maruyama steps per discrete step (and 2r for Richardson)
T_DEFAULT = 1.0


@dataclass
class MultiplierSpec:
    """m(I) for discrete PGPO. alpha None: 2 / I(theta_0), so m(I(theta_0)) = min(3, m_max) - a run starts at
    the cap (for m_max <= 3) and crosses into the linear part as I decays. `constant: c` instead: m = c for every I
    (sde.simulate.ConstantMultiplier; the quadratic's closed forms need it)."""

    alpha: Optional[float] = None
    m_max: float = DEFAULT_M_MAX
    shape: Shape = "clipped_linear"
    constant: Optional[float] = None

    def build(self, problem: Problem) -> Multiplier | ConstantMultiplier:
        if self.constant is not None:
            return ConstantMultiplier(float(self.constant))
        alpha = self.alpha
        if alpha is None:
            i0 = float(problem.info(problem.theta0[None, :], np.empty(1))[0])
            alpha = 2.0 / i0 if i0 > 0 else 1.0
        return Multiplier(alpha=float(alpha), m_max=float(self.m_max), shape=self.shape)


@dataclass
class PathSizing:
    """Monte Carlo path counts chosen from a pilot: N = (1.96 sd(D) / (rho |error|))^2, clipped to [min, max];
    or a fixed count."""

    rho: float = 0.2
    pilot: int = 2000
    min: int = 5000
    max: int = 200_000
    fixed: Optional[int] = None        # exactly this many paths per eta, no pilot (sde verify)


@dataclass
class WeakErrorPanel:
    """Discrete SGD/PGPO vs SDEs on test functions over an eta grid (closed form on the quadratic, else coupled
    Monte Carlo with path counts sized from a pilot)."""

    id: str
    problem: str
    etas: list[float]
    tests: list[str]
    sdes: list[str]
    kind: Literal["weak_error"] = "weak_error"
    discrete: Literal["sgd", "pgpo"] = "pgpo"
    method: Literal["monte_carlo", "closed_form"] = "monte_carlo"
    multiplier: MultiplierSpec = field(default_factory=MultiplierSpec)
    paths: PathSizing = field(default_factory=PathSizing)
    T: float = T_DEFAULT
    r: int = R_DEFAULT
    over_time: bool = False                       # also Definition A.1's max over k <= N (fixed test functions)
    label: str = ""
    seed: int = 0                                 # 0: seeds from the panel id alone


@dataclass
class MinibatchPanel:
    """Genuine minibatch noise, by a control variate on the Gaussian-noise process (see sde.study)."""

    id: str
    problem: str
    etas: list[float]
    tests: list[str]
    kind: Literal["minibatch"] = "minibatch"
    discrete: Literal["sgd", "pgpo"] = "pgpo"
    sde: Optional[str] = None                     # default: matched for PGPO, sgd_sde for SGD
    infos: list[str] = field(default_factory=lambda: ["independent_batch", "same_batch"])   # PGPO only
    multiplier: MultiplierSpec = field(default_factory=MultiplierSpec)
    coupled_paths: int = 50_000
    discrete_paths: int = 1_000_000
    averaged_paths: int = 0                       # > 0: also against the averaged-drift SDE (noisy infos)
    T: float = T_DEFAULT
    r: int = R_DEFAULT
    label: str = ""
    seed: int = 0                                 # 0: seeds from the panel id alone


@dataclass
class SweepPanel:
    """The weak error at fixed step sizes across a grid of (alpha, m_max) and multiplier shapes."""

    id: str
    problem: str
    etas: list[float]
    tests: list[str]
    sdes: list[str]
    alpha_times_I0: list[float]                   # alpha in units of 1 / I(theta_0)
    m_max: list[float]
    kind: Literal["sweep"] = "sweep"
    shapes: list[str] = field(default_factory=lambda: ["clipped_linear"])
    paths: int = 20_000
    cap_paths: int = 2000
    T: float = T_DEFAULT
    r: int = R_DEFAULT
    label: str = ""
    seed: int = 0                                 # 0: seeds from the panel id alone


@dataclass
class TrajectoryPanel:
    """Mean +- sd of theta(t) for the discrete process and each SDE, and I_k, m_k along a path."""

    id: str
    problem: str
    eta: float
    sdes: list[str]
    kind: Literal["trajectory"] = "trajectory"
    discrete: Literal["sgd", "pgpo"] = "pgpo"
    multiplier: MultiplierSpec = field(default_factory=MultiplierSpec)
    paths: int = 20_000
    T: float = T_DEFAULT
    r: int = R_DEFAULT
    label: str = ""
    seed: int = 0                                 # 0: seeds from the panel id alone


@dataclass
class BatchGapPanel:
    """The Jensen gap E_B[m(I_B)] - m(I) (and the same-batch drift gap) over batch sizes B, by exact enumeration,
    at the state where the modulated gradient flow crosses the clipped m's kink (sde.theory)."""

    id: str
    problem: str
    batch_sizes: list[int]
    kind: Literal["batch_gap"] = "batch_gap"
    multiplier: MultiplierSpec = field(default_factory=MultiplierSpec)
    T: float = T_DEFAULT                          # the horizon within which theta_bar must cross the kink
    label: str = ""
    seed: int = 0


@dataclass
class StationaryPanel:
    """The stationary floor E_inf L - L* (and E|theta|^2) of discrete PGPO against SDEs over an eta grid, for constant
    multipliers c (closed form on the quadratics) and state-dependent ones (coupled Monte Carlo with time averages
    over `window` after `burn_in`, both in SDE time); sde.stationary."""

    id: str
    problem: str
    etas: list[float]
    sdes: list[str]
    kind: Literal["stationary"] = "stationary"
    method: Literal["monte_carlo", "closed_form"] = "closed_form"
    constants: list[float] = field(default_factory=list)
    multipliers: list[MultiplierSpec] = field(default_factory=list)
    tests: list[str] = field(default_factory=lambda: ["loss", "sq_norm"])
    burn_in: Optional[float] = None               # SDE time; default: sde.stationary.burn_in_for each multiplier
    window: float = 20.0
    paths: int = 10_000
    floor_eta: Optional[float] = None             # the eta of the floor-vs-c figure (default: the smallest)
    r: int = R_DEFAULT
    label: str = ""
    seed: int = 0

    @property
    def T(self) -> float:
        """The averaging window plus the burn-in when the panel fixes it (a sized burn-in adds to it per multiplier)."""
        return (self.burn_in or 0.0) + self.window


@dataclass
class EscapePanel:
    """Mean first-passage time over the double well's barrier for discrete PGPO (Monte Carlo, censoring reported)
    against the exact MFPT of the matched and the paper's SDE (quadrature) and Kramers / Eyring; sde.escape."""

    id: str
    problem: str
    etas: list[float]
    kind: Literal["escape"] = "escape"
    constants: list[float] = field(default_factory=list)
    multipliers: list[MultiplierSpec] = field(default_factory=list)
    paths: int = 2000
    horizon_factor: float = 10.0                  # horizon = this x the exact MFPT of the matched SDE
    label: str = ""
    seed: int = 0


@dataclass
class VariantPanel:
    """One of PGPO's variants beyond the paper (sde.variants) against its SDE, beside the comparison it changes, by
    independent Monte Carlo (discrete paths; Richardson-extrapolated SDE paths):

    smoothed     m(Ibar_k) for each I source in `infos` vs the augmented SDE, and the paper's m(I_k) with the same
                 noisy I vs the exact-I matched SDE (the plateau smoothing removes)
    scale_free   m_beta(I_k / Ibar_k) for each I source vs its augmented SDE
    per_sample   weights m(I_i) per sample, for each `normalize`, vs the per-sample SDE and vs batch PGPO's SDE
    plus, at `distribution_eta`, how m (or the drift) differs from the paper's rule along the run."""

    id: str
    problem: str
    etas: list[float]
    tests: list[str]
    variant: Literal["smoothed", "scale_free", "per_sample"]
    kind: Literal["variant"] = "variant"
    multiplier: MultiplierSpec = field(default_factory=MultiplierSpec)   # m_alpha (the paper's rule beside beta)
    beta: float = 1.0                             # scale_free: m = min(1 + beta I / Ibar, multiplier.m_max)
    tau: float = 0.2                              # Ibar's time constant in SDE time (smoothed, scale_free)
    infos: list[str] = field(default_factory=lambda: ["independent_batch", "exact"])    # smoothed / scale_free
    normalize: list[bool] = field(default_factory=lambda: [False, True])                # per_sample
    discrete_paths: int = 400_000
    sde_paths: int = 200_000
    distribution_paths: int = 20_000
    distribution_eta: Optional[float] = None      # default: the smallest eta
    T: float = T_DEFAULT
    r: int = 2
    label: str = ""
    seed: int = 0


# the weak-convergence study: one YAML file each in experiments/weak_convergence/, in the order of the figures
STUDIES = ("theorem_sgd", "theorem_pgpo", "noise", "multiplier", "trajectories", "modified_equation", "stationary",
           "escape", "variants")

PANEL_TYPES = {"weak_error": WeakErrorPanel, "minibatch": MinibatchPanel, "sweep": SweepPanel,
               "trajectory": TrajectoryPanel, "batch_gap": BatchGapPanel, "stationary": StationaryPanel,
               "escape": EscapePanel, "variant": VariantPanel}
Panel = (WeakErrorPanel | MinibatchPanel | SweepPanel | TrajectoryPanel | BatchGapPanel | StationaryPanel | EscapePanel
         | VariantPanel)
AVERAGED_MAX_BATCHES = 1000                       # the averaged-drift SDE sums over the batch law at every step


def multiplier_for(panel) -> Multiplier:
    """The panel's discrete-process multiplier: the identity for SGD."""
    if getattr(panel, "discrete", "pgpo") == "sgd":
        return IDENTITY
    return panel.multiplier.build(get_problem(panel.problem))


def check_panel(p, where: str) -> None:
    """Range and consistency checks a type cannot express; ConfigError names the field."""
    if p.problem not in PROBLEMS:
        raise ConfigError(f"{where}.problem: unknown problem {p.problem!r}; choose one of {', '.join(PROBLEMS)}")
    for name, allowed in (("sdes", SDE_KINDS), ("tests", TEST_FUNCTIONS), ("infos", INFO_SOURCES)):
        for i, v in enumerate(getattr(p, name, None) or []):
            if v not in allowed:
                raise ConfigError(f"{where}.{name}[{i}]: unknown {name[:-1]} {v!r}; choose from {list(allowed)}")
    if getattr(p, "sde", None) is not None and p.sde not in SDE_KINDS:
        raise ConfigError(f"{where}.sde: unknown sde {p.sde!r}; choose from {list(SDE_KINDS)}")
    if isinstance(p, EscapePanel):
        check_escape(p, where)
        return
    if isinstance(p, VariantPanel):
        check_variant(p, where)
    if isinstance(p, SweepPanel) and (len(p.etas) not in (2, 3) or
                                      any(not math.isclose(a, 2 * b) for a, b in zip(p.etas, p.etas[1:]))):
        raise ConfigError(f"{where}.etas: a sweep takes two or three step sizes, each half the one before (its limit "
                          f"is extrapolated from them), got {p.etas}")
    if isinstance(p, StationaryPanel):
        check_stationary(p, where)
        if p.method == "closed_form":               # no time grid: the Lyapunov equations are solved directly
            return
    if not p.T > 0:
        raise ConfigError(f"{where}.T: must be positive, got {p.T}")
    if getattr(p, "r", 1) < 1:                     # batch_gap simulates nothing: no r
        raise ConfigError(f"{where}.r: must be >= 1, got {p.r}")
    paths = getattr(p, "paths", None)
    if isinstance(paths, PathSizing) and paths.fixed is not None and paths.fixed < 2:
        raise ConfigError(f"{where}.paths.fixed: must be at least 2, got {paths.fixed}")
    for i, eta in enumerate(getattr(p, "etas", None) or ([p.eta] if hasattr(p, "eta") else [])):
        try:
            n_steps_for(p.T, eta)
        except ValueError as e:
            raise ConfigError(f"{where}.eta{'s[%d]' % i if hasattr(p, 'etas') else ''}: {e}") from None
    if getattr(p, "method", None) == "closed_form" and not isinstance(p, StationaryPanel):
        if not p.problem.startswith("quadratic"):
            raise ConfigError(f"{where}.method: closed_form exists only for the quadratic problems")
        if p.discrete == "pgpo" and p.multiplier.constant is None:
            raise ConfigError(f"{where}.multiplier.constant: closed_form PGPO needs a constant multiplier (a "
                              f"state-dependent m makes the recursion non-linear)")
    if getattr(p, "discrete", None) == "sgd" and getattr(p, "multiplier", None) is not None and \
            p.multiplier.constant is not None:
        raise ConfigError(f"{where}.multiplier.constant: SGD has m = 1; use discrete: pgpo for a constant multiplier")
    if "cross" in (getattr(p, "tests", None) or []) and get_problem(p.problem).dim < 2:
        raise ConfigError(f"{where}.tests: `cross` (theta_1 theta_2) needs dim >= 2; {p.problem!r} has "
                          f"dim {get_problem(p.problem).dim}")
    if isinstance(p, (MinibatchPanel, BatchGapPanel, VariantPanel)) and not get_problem(p.problem).has_dataset:
        raise ConfigError(f"{where}.problem: {p.problem!r} has no dataset for minibatch noise")
    if isinstance(p, MinibatchPanel) and p.averaged_paths:
        from sde.theory import n_batches
        n = n_batches(get_problem(p.problem))
        if n > AVERAGED_MAX_BATCHES:
            raise ConfigError(f"{where}.averaged_paths: the averaged-drift SDE sums over the {n} minibatches of "
                              f"{p.problem!r} at every step (at most {AVERAGED_MAX_BATCHES}); use a problem with "
                              f"fewer sample classes (softmax) or set averaged_paths: 0")
        if p.averaged_paths < 2:
            raise ConfigError(f"{where}.averaged_paths: must be 0 or at least 2, got {p.averaged_paths}")
    if isinstance(p, BatchGapPanel):
        if p.multiplier.shape != "clipped_linear" or p.multiplier.constant is not None:
            raise ConfigError(f"{where}.multiplier.shape: the batch gap is measured at the clipped m's kink")
        if not p.batch_sizes or min(p.batch_sizes) < 1:
            raise ConfigError(f"{where}.batch_sizes: need batch sizes >= 1, got {p.batch_sizes}")
        from sde.theory import MAX_BATCHES, kink_state, n_batches
        prob = get_problem(p.problem)
        n = n_batches(prob, max(p.batch_sizes))
        if n > MAX_BATCHES:
            raise ConfigError(f"{where}.batch_sizes: {n} minibatches of {max(p.batch_sizes)} to enumerate "
                              f"(at most {MAX_BATCHES}); use smaller batch sizes")
        try:
            kink_state(prob, p.multiplier.build(prob), p.T)
        except ValueError as e:
            raise ConfigError(f"{where}.multiplier: {e}") from None
    if hasattr(p, "multiplier") and not isinstance(p, SweepPanel):
        _check_spec(p.multiplier, f"{where}.multiplier")


def _check_spec(spec: MultiplierSpec, where: str) -> None:
    """A MultiplierSpec's values (the constant, or alpha / m_max / shape); ConfigError names `where`."""
    try:
        if spec.constant is not None:
            ConstantMultiplier(float(spec.constant))
        else:
            Multiplier(spec.alpha or 0.0, spec.m_max, spec.shape)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


def panel_multipliers(p, problem: Problem) -> list[tuple[str, object]]:
    """(config name, multiplier) of a stationary / escape panel: its `constants`, then its `multipliers`."""
    return [(f"constants: {c:g}", ConstantMultiplier(float(c))) for c in p.constants] + \
        [(f"multipliers[{i}]", m.build(problem)) for i, m in enumerate(p.multipliers)]


def _check_multiplier_list(p, where: str) -> None:
    """`constants` and `multipliers` of a stationary / escape panel."""
    if not p.constants and not p.multipliers:
        raise ConfigError(f"{where}.constants: give constant multipliers and/or `multipliers`")
    for i, c in enumerate(p.constants):
        if not c > 0:
            raise ConfigError(f"{where}.constants[{i}]: must be positive, got {c}")
    for i, m in enumerate(p.multipliers):
        if m.constant is not None:
            raise ConfigError(f"{where}.multipliers[{i}].constant: list constant multipliers under `constants`")
        _check_spec(m, f"{where}.multipliers[{i}]")
    if not p.etas:
        raise ConfigError(f"{where}.etas: give at least one step size")


def check_stationary(p: StationaryPanel, where: str) -> None:
    _check_multiplier_list(p, where)
    if not p.sdes:
        raise ConfigError(f"{where}.sdes: give at least one SDE to compare with")
    for i, t in enumerate(p.tests):
        if t not in ("loss", "sq_norm"):
            raise ConfigError(f"{where}.tests[{i}]: the stationary panel measures `loss` and `sq_norm`, got {t!r}")
    if p.method == "closed_form":
        if not p.problem.startswith("quadratic"):
            raise ConfigError(f"{where}.method: closed_form exists only for the quadratic problems")
        if p.multipliers:
            raise ConfigError(f"{where}.multipliers: a state-dependent m has no closed form; use method: monte_carlo")
        from sde.stationary import STATIONARY_SDES
        for i, s in enumerate(p.sdes):
            if s not in STATIONARY_SDES:
                raise ConfigError(f"{where}.sdes[{i}]: no stationary closed form for {s!r}; choose from "
                                  f"{list(STATIONARY_SDES)}")
        prob = get_problem(p.problem)
        worst = max(p.etas) * max(p.constants) * float(prob.curvatures.max())
        if worst >= 2.0:
            raise ConfigError(f"{where}.etas: eta c a_max = {worst:.3g} >= 2 makes the discrete process unstable")
    else:
        if (p.burn_in is not None and p.burn_in <= 0) or p.window <= 0:
            raise ConfigError(f"{where}.window: burn_in and window must be positive, got {p.burn_in}, {p.window}")
        if p.paths < 2:
            raise ConfigError(f"{where}.paths: must be at least 2, got {p.paths}")
        for i, eta in enumerate(p.etas):
            try:
                n_steps_for(p.window, eta)
                if p.burn_in is not None:
                    n_steps_for(p.burn_in, eta)
            except ValueError as e:
                raise ConfigError(f"{where}.etas[{i}]: {e} (burn_in / window)") from None
    if p.floor_eta is not None and p.floor_eta not in p.etas:
        raise ConfigError(f"{where}.floor_eta: {p.floor_eta} is not in etas {p.etas}")


def check_variant(p: VariantPanel, where: str) -> None:
    for name in ("discrete_paths", "sde_paths", "distribution_paths"):
        if getattr(p, name) < 2:
            raise ConfigError(f"{where}.{name}: must be at least 2, got {getattr(p, name)}")
    if not p.tau > 0:
        raise ConfigError(f"{where}.tau: must be positive, got {p.tau}")
    if not p.beta >= 0:
        raise ConfigError(f"{where}.beta: must be >= 0, got {p.beta}")
    if p.multiplier.constant is not None:
        raise ConfigError(f"{where}.multiplier.constant: the variants modulate with m(I); give alpha / m_max")
    if p.variant in ("smoothed", "scale_free"):
        if not p.infos:
            raise ConfigError(f"{where}.infos: give at least one I source")
        for i, src in enumerate(p.infos):
            if src not in ("exact", "independent_batch"):
                raise ConfigError(f"{where}.infos[{i}]: the moving average takes `exact` or `independent_batch`, "
                                  f"got {src!r}")
    if p.variant == "per_sample":
        if not p.normalize:
            raise ConfigError(f"{where}.normalize: give [false], [true] or both")
        if True in p.normalize:
            from sde.theory import n_batches
            n = n_batches(get_problem(p.problem))
            if n > AVERAGED_MAX_BATCHES:
                raise ConfigError(f"{where}.normalize: the normalised per-sample SDE sums over the {n} minibatches of "
                                  f"{p.problem!r} at every step (at most {AVERAGED_MAX_BATCHES}); use softmax")
    if p.distribution_eta is not None and p.distribution_eta not in p.etas:
        raise ConfigError(f"{where}.distribution_eta: {p.distribution_eta} is not in etas {p.etas}")


ESCAPE_MAX_STEPS = 5_000_000        # the horizon of one escape simulation, in discrete steps


def check_escape(p: EscapePanel, where: str) -> None:
    from sde.escape import exact_mfpt
    from sde.problems import DoubleWell
    prob = get_problem(p.problem)
    if not isinstance(prob, DoubleWell):
        raise ConfigError(f"{where}.problem: escape is measured on a double well, got {p.problem!r}")
    _check_multiplier_list(p, where)
    for i, eta in enumerate(p.etas):
        if not 0 < eta < 1:
            raise ConfigError(f"{where}.etas[{i}]: must be in (0, 1), got {eta}")
    if p.paths < 2:
        raise ConfigError(f"{where}.paths: must be at least 2, got {p.paths}")
    if not p.horizon_factor >= 1:
        raise ConfigError(f"{where}.horizon_factor: must be >= 1, got {p.horizon_factor}")
    for name, mult in panel_multipliers(p, prob):    # the horizon is horizon_factor x the matched SDE's exact MFPT
        for eta in p.etas:
            steps = p.horizon_factor * exact_mfpt(prob, mult, eta, "matched", n_grid=20_001) / eta
            if steps > ESCAPE_MAX_STEPS:
                raise ConfigError(f"{where}.etas: at eta={eta:g} with {name} the horizon is {steps:.3g} steps (at most "
                                  f"{ESCAPE_MAX_STEPS}): the barrier is too high for this noise; use larger etas or "
                                  f"a hotter problem (double-well-escape)")


def apply_quick(raw: dict) -> dict:
    """A panel's quick version: its `quick:` mapping overrides its own keys (nested mappings merged)."""
    raw = copy.deepcopy(raw)
    quick = raw.pop("quick", None) or {}
    for k, v in quick.items():
        if isinstance(v, dict) and isinstance(raw.get(k), dict):
            raw[k].update(v)
        else:
            raw[k] = v
    return raw


def build_panel(raw: dict, where: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    kind = raw.get("kind")
    if kind not in PANEL_TYPES:
        raise ConfigError(f"{where}.kind: must be one of {list(PANEL_TYPES)}, got {kind!r}")
    panel = build(PANEL_TYPES[kind], raw, where)
    check_panel(panel, where)
    return panel


@dataclass
class Study:
    name: str
    panels: list
    title: str = ""


def study_from_dict(doc: dict, source: str, quick: bool = False) -> Study:
    """A Study from its mapping; every panel is checked in both versions, the requested one is kept."""
    if not isinstance(doc, dict) or "panels" not in doc or "name" not in doc:
        raise ConfigError(f"{source}: a study needs `name` and `panels`")
    unknown = set(doc) - {"name", "title", "panels"}
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)}; a study has name, title, panels")
    panels = []
    for i, raw in enumerate(doc["panels"]):
        where = f"{source}: panels[{i}]"
        full = build_panel({k: v for k, v in raw.items() if k != "quick"} if isinstance(raw, dict) else raw, where)
        small = build_panel(apply_quick(raw), f"{where} (quick)")
        panels.append(small if quick else full)
    ids = [p.id for p in panels]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{source}: panel ids must be unique, got {ids}")
    return Study(str(doc["name"]), panels, str(doc.get("title", "")))


def load_study(path: str, quick: bool = False) -> Study:
    return study_from_dict(read_yaml(path, "study"), path, quick)

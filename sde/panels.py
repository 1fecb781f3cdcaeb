"""The panel kinds of a study file: one dataclass per kind, each with its own `validate(where)` (ConfigError naming
the field, one line), declared here once with the registry PANEL_TYPES (kind -> class). The study file itself (name,
title, panels, the quick versions) is sde.studyfile; running a panel is sde.runners, one module per kind.

    weak_error    discrete SGD/PGPO vs SDEs on test functions over an eta grid (closed form on the quadratics, else
                  coupled Monte Carlo with path counts sized from a pilot)
    minibatch     genuine minibatch noise, by a control variate on the Gaussian-noise process; I exact, from an
                  independent or the same batch; optionally against the averaged-drift SDE
    sweep         the weak error at fixed step sizes across a grid of (alpha, m_max) and multiplier shapes
    trajectory    mean +- sd of theta(t) for the discrete process and each SDE, and I_k, m_k along a path
    batch_gap     the Jensen gap E_B[m(I_B)] - m(I) over batch sizes B, by exact enumeration
    stationary    stationary floors of discrete PGPO against SDEs, for constant and state-dependent multipliers
    escape        mean first-passage times over the double well's barrier (Monte Carlo, exact quadrature, Kramers)
    variant       PGPO's variants beyond the paper (smoothed I, scale-free rule, per-sample weights) against their SDEs

Every kind has `id` (unique in its study; results are keyed by it), `label` and `seed` (0: seeds from the id alone),
and `role`: what the report draws from this panel where a figure takes one particular panel rather than every panel
of a kind (sde.studyfile.ROLES, checked when the file is loaded). The role changes no number, so it is not part of the
panel's `spec` in its results (sde.study.panel_spec).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Optional

from runtools.schema import ConfigError
from sde.family import SDE_KINDS
from sde.problems import get_problem
from sde.simulate import INFO_SOURCES, n_steps_for
from sde.specs import (R_DEFAULT, T_DEFAULT, MultiplierSpec, PathSizing, batches_to_sum, check_closed_form,
                       check_cross, check_dataset, check_grid, check_multiplier_list, check_names, check_sgd_multiplier,
                       panel_multipliers)
from sde.weak_error import TEST_FUNCTIONS


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
    role: str = ""

    def validate(self, where: str) -> None:
        check_names(self, where, sdes=SDE_KINDS, tests=TEST_FUNCTIONS)
        check_grid(self, where)
        self.paths.validate(f"{where}.paths")
        if self.method == "closed_form":
            check_closed_form(self, where)
            if self.discrete == "pgpo" and self.multiplier.constant is None:
                raise ConfigError(f"{where}.multiplier.constant: closed_form PGPO needs a constant multiplier (a "
                                  f"state-dependent m makes the recursion non-linear)")
        check_sgd_multiplier(self, where)
        check_cross(self, where)
        self.multiplier.validate(f"{where}.multiplier")


@dataclass
class MinibatchPanel:
    """Genuine minibatch noise, by a control variate on the Gaussian-noise process (sde.runners.minibatch)."""

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
    role: str = ""

    def validate(self, where: str) -> None:
        check_names(self, where, tests=TEST_FUNCTIONS, infos=INFO_SOURCES, sde=SDE_KINDS)
        check_grid(self, where)
        check_sgd_multiplier(self, where)
        check_cross(self, where)
        check_dataset(self, where)
        if self.averaged_paths:
            batches_to_sum(self, where, "averaged_paths", "the averaged-drift SDE",
                           "use a problem with fewer sample classes (softmax) or set averaged_paths: 0")
            if self.averaged_paths < 2:
                raise ConfigError(f"{where}.averaged_paths: must be 0 or at least 2, got {self.averaged_paths}")
        self.multiplier.validate(f"{where}.multiplier")


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
    role: str = ""

    def validate(self, where: str) -> None:
        check_names(self, where, sdes=SDE_KINDS, tests=TEST_FUNCTIONS)
        if len(self.etas) not in (2, 3) or any(not math.isclose(a, 2 * b) for a, b in zip(self.etas, self.etas[1:])):
            raise ConfigError(f"{where}.etas: a sweep takes two or three step sizes, each half the one before (its "
                              f"limit is extrapolated from them), got {self.etas}")
        check_grid(self, where)
        check_cross(self, where)


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
    role: str = ""

    def validate(self, where: str) -> None:
        check_names(self, where, sdes=SDE_KINDS)
        check_grid(self, where, [self.eta], eta_name="eta")
        check_sgd_multiplier(self, where)
        self.multiplier.validate(f"{where}.multiplier")


@dataclass
class BatchGapPanel:
    """The Jensen gap E_B[m(I_B)] - m(I) (and the same-batch drift gap) over batch sizes B, by exact enumeration,
    at the state where the modulated gradient flow crosses the clipped m's kink (sde.theory)."""

    id: str
    problem: str
    batch_sizes: list[int]
    discrete: ClassVar[str] = "pgpo"              # PGPO's gap (not a field: the panel has no SGD version)
    kind: Literal["batch_gap"] = "batch_gap"
    multiplier: MultiplierSpec = field(default_factory=MultiplierSpec)
    T: float = T_DEFAULT                          # the horizon within which theta_bar must cross the kink
    label: str = ""
    seed: int = 0
    role: str = ""

    def validate(self, where: str) -> None:
        check_names(self, where)
        if not self.T > 0:                        # no time grid: nothing is simulated
            raise ConfigError(f"{where}.T: must be positive, got {self.T}")
        check_dataset(self, where)
        if self.multiplier.shape != "clipped_linear" or self.multiplier.constant is not None:
            raise ConfigError(f"{where}.multiplier.shape: the batch gap is measured at the clipped m's kink")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ConfigError(f"{where}.batch_sizes: need batch sizes >= 1, got {self.batch_sizes}")
        from sde.theory import MAX_BATCHES, kink_state, n_batches
        prob = get_problem(self.problem)
        n = n_batches(prob, max(self.batch_sizes))
        if n > MAX_BATCHES:
            raise ConfigError(f"{where}.batch_sizes: {n} minibatches of {max(self.batch_sizes)} to enumerate "
                              f"(at most {MAX_BATCHES}); use smaller batch sizes")
        try:
            kink_state(prob, self.multiplier.build(prob), self.T)
        except ValueError as e:
            raise ConfigError(f"{where}.multiplier: {e}") from None
        self.multiplier.validate(f"{where}.multiplier")


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
    role: str = ""

    @property
    def T(self) -> float:
        """The averaging window plus the burn-in when the panel fixes it (a sized burn-in adds to it per multiplier)."""
        return (self.burn_in or 0.0) + self.window

    def validate(self, where: str) -> None:
        check_names(self, where, sdes=SDE_KINDS, tests=TEST_FUNCTIONS)
        check_multiplier_list(self, where)
        if not self.sdes:
            raise ConfigError(f"{where}.sdes: give at least one SDE to compare with")
        for i, t in enumerate(self.tests):
            if t not in ("loss", "sq_norm"):
                raise ConfigError(f"{where}.tests[{i}]: the stationary panel measures `loss` and `sq_norm`, got {t!r}")
        if self.method == "closed_form":
            self._validate_closed_form(where)
        else:
            self._validate_monte_carlo(where)
        if self.floor_eta is not None and self.floor_eta not in self.etas:
            raise ConfigError(f"{where}.floor_eta: {self.floor_eta} is not in etas {self.etas}")
        if self.method != "closed_form":          # no time grid in closed form: the Lyapunov equations are solved
            check_grid(self, where)

    def _validate_closed_form(self, where: str) -> None:
        check_closed_form(self, where)
        if self.multipliers:
            raise ConfigError(f"{where}.multipliers: a state-dependent m has no closed form; use method: monte_carlo")
        from sde.stationary import STATIONARY_SDES
        for i, s in enumerate(self.sdes):
            if s not in STATIONARY_SDES:
                raise ConfigError(f"{where}.sdes[{i}]: no stationary closed form for {s!r}; choose from "
                                  f"{list(STATIONARY_SDES)}")
        prob = get_problem(self.problem)
        worst = max(self.etas) * max(self.constants) * float(prob.curvatures.max())
        if worst >= 2.0:
            raise ConfigError(f"{where}.etas: eta c a_max = {worst:.3g} >= 2 makes the discrete process unstable")

    def _validate_monte_carlo(self, where: str) -> None:
        if (self.burn_in is not None and self.burn_in <= 0) or self.window <= 0:
            raise ConfigError(f"{where}.window: burn_in and window must be positive, got {self.burn_in}, {self.window}")
        if self.paths < 2:
            raise ConfigError(f"{where}.paths: must be at least 2, got {self.paths}")
        for i, eta in enumerate(self.etas):
            try:
                n_steps_for(self.window, eta)
                if self.burn_in is not None:
                    n_steps_for(self.burn_in, eta)
            except ValueError as e:
                raise ConfigError(f"{where}.etas[{i}]: {e} (burn_in / window)") from None


ESCAPE_MAX_STEPS = 5_000_000        # the horizon of one escape simulation, in discrete steps


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
    role: str = ""

    def validate(self, where: str) -> None:
        from sde.escape import exact_mfpt
        from sde.problems import DoubleWell
        check_names(self, where)
        prob = get_problem(self.problem)
        if not isinstance(prob, DoubleWell):
            raise ConfigError(f"{where}.problem: escape is measured on a double well, got {self.problem!r}")
        check_multiplier_list(self, where)
        for i, eta in enumerate(self.etas):
            if not 0 < eta < 1:
                raise ConfigError(f"{where}.etas[{i}]: must be in (0, 1), got {eta}")
        if self.paths < 2:
            raise ConfigError(f"{where}.paths: must be at least 2, got {self.paths}")
        if not self.horizon_factor >= 1:
            raise ConfigError(f"{where}.horizon_factor: must be >= 1, got {self.horizon_factor}")
        for name, mult in panel_multipliers(self, prob):  # the horizon: horizon_factor x the matched SDE's exact MFPT
            for eta in self.etas:
                steps = self.horizon_factor * exact_mfpt(prob, mult, eta, "matched", n_grid=20_001) / eta
                if steps > ESCAPE_MAX_STEPS:
                    raise ConfigError(f"{where}.etas: at eta={eta:g} with {name} the horizon is {steps:.3g} steps (at "
                                      f"most {ESCAPE_MAX_STEPS}): the barrier is too high for this noise; use larger "
                                      f"etas or a hotter problem (double-well-escape)")


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
    role: str = ""

    def validate(self, where: str) -> None:
        check_names(self, where, tests=TEST_FUNCTIONS, infos=INFO_SOURCES)
        for name in ("discrete_paths", "sde_paths", "distribution_paths"):
            if getattr(self, name) < 2:
                raise ConfigError(f"{where}.{name}: must be at least 2, got {getattr(self, name)}")
        if not self.tau > 0:
            raise ConfigError(f"{where}.tau: must be positive, got {self.tau}")
        if not self.beta >= 0:
            raise ConfigError(f"{where}.beta: must be >= 0, got {self.beta}")
        if self.multiplier.constant is not None:
            raise ConfigError(f"{where}.multiplier.constant: the variants modulate with m(I); give alpha / m_max")
        if self.variant in ("smoothed", "scale_free"):
            if not self.infos:
                raise ConfigError(f"{where}.infos: give at least one I source")
            for i, src in enumerate(self.infos):
                if src not in ("exact", "independent_batch"):
                    raise ConfigError(f"{where}.infos[{i}]: the moving average takes `exact` or `independent_batch`, "
                                      f"got {src!r}")
        if self.variant == "per_sample":
            if not self.normalize:
                raise ConfigError(f"{where}.normalize: give [false], [true] or both")
            if True in self.normalize:
                batches_to_sum(self, where, "normalize", "the normalised per-sample SDE", "use softmax")
        if self.distribution_eta is not None and self.distribution_eta not in self.etas:
            raise ConfigError(f"{where}.distribution_eta: {self.distribution_eta} is not in etas {self.etas}")
        check_grid(self, where)
        check_cross(self, where)
        check_dataset(self, where)
        self.multiplier.validate(f"{where}.multiplier")


KINDS = (WeakErrorPanel, MinibatchPanel, SweepPanel, TrajectoryPanel, BatchGapPanel, StationaryPanel, EscapePanel,
         VariantPanel)
PANEL_TYPES = {next(f.default for f in dataclasses.fields(cls) if f.name == "kind"): cls for cls in KINDS}


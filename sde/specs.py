"""What the panel kinds of a study file share (sde.panels): the multiplier and path-count specs, the defaults declared
once, and the checks several kinds run on their fields. Every check raises runtools.schema.ConfigError naming the
field (`where` is the panel's dotted path in its file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from pgpo.multiplier import DEFAULT_M_MAX, Multiplier, Shape
from runtools.schema import ConfigError
from sde.problems import PROBLEMS, Problem, get_problem
from sde.simulate import IDENTITY, ConstantMultiplier, n_steps_for

R_DEFAULT = 4                      # fine Euler-Maruyama steps per discrete step (and 2r for Richardson)
T_DEFAULT = 1.0
AVERAGED_MAX_BATCHES = 1000                       # the averaged-drift SDE sums over the batch law at every step


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

    def validate(self, where: str) -> None:
        """The constant, or alpha / m_max / shape, as the multiplier classes accept them; ConfigError names `where`."""
        try:
            if self.constant is not None:
                ConstantMultiplier(float(self.constant))
            else:
                Multiplier(self.alpha or 0.0, self.m_max, self.shape)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None


@dataclass
class PathSizing:
    """Monte Carlo path counts chosen from a pilot: N = (1.96 sd(D) / (rho |error|))^2, clipped to [min, max];
    or a fixed count."""

    rho: float = 0.2
    pilot: int = 2000
    min: int = 5000
    max: int = 200_000
    fixed: Optional[int] = None        # exactly this many paths per eta, no pilot (sde verify)

    def validate(self, where: str) -> None:
        if self.fixed is not None and self.fixed < 2:
            raise ConfigError(f"{where}.fixed: must be at least 2, got {self.fixed}")


def multiplier_for(panel) -> Multiplier:
    """The panel's discrete-process multiplier: the identity for SGD."""
    if panel.discrete == "sgd":
        return IDENTITY
    return panel.multiplier.build(get_problem(panel.problem))


def panel_multipliers(p, problem: Problem) -> list[tuple[str, object]]:
    """(config name, multiplier) of a stationary / escape panel: its `constants`, then its `multipliers`."""
    return [(f"constants: {c:g}", ConstantMultiplier(float(c))) for c in p.constants] + \
        [(f"multipliers[{i}]", m.build(problem)) for i, m in enumerate(p.multipliers)]


# ---------------------------------------------------------------------------------------------------
# checks several kinds share (each kind's validate() calls those that apply to it, in this order)
def check_names(p, where: str, **allowed) -> None:
    """The panel's problem is known, and each named list field (or the single `sde`) holds only allowed names."""
    if p.problem not in PROBLEMS:
        raise ConfigError(f"{where}.problem: unknown problem {p.problem!r}; choose one of {', '.join(PROBLEMS)}")
    for name, ok in allowed.items():
        if name == "sde":
            if p.sde is not None and p.sde not in ok:
                raise ConfigError(f"{where}.sde: unknown sde {p.sde!r}; choose from {list(ok)}")
            continue
        for i, v in enumerate(getattr(p, name) or []):
            if v not in ok:
                raise ConfigError(f"{where}.{name}[{i}]: unknown {name[:-1]} {v!r}; choose from {list(ok)}")


def check_grid(p, where: str, etas: list[float] | None = None, eta_name: str = "etas") -> None:
    """A positive horizon T, r >= 1, and every step size dividing T (the kinds that simulate on a time grid)."""
    if not p.T > 0:
        raise ConfigError(f"{where}.T: must be positive, got {p.T}")
    if p.r < 1:
        raise ConfigError(f"{where}.r: must be >= 1, got {p.r}")
    for i, eta in enumerate(p.etas if etas is None else etas):
        try:
            n_steps_for(p.T, eta)
        except ValueError as e:
            raise ConfigError(f"{where}.{eta_name}{'[%d]' % i if eta_name == 'etas' else ''}: {e}") from None


def check_closed_form(p, where: str) -> None:
    if not p.problem.startswith("quadratic"):
        raise ConfigError(f"{where}.method: closed_form exists only for the quadratic problems")


def check_sgd_multiplier(p, where: str) -> None:
    if p.discrete == "sgd" and p.multiplier.constant is not None:
        raise ConfigError(f"{where}.multiplier.constant: SGD has m = 1; use discrete: pgpo for a constant multiplier")


def check_cross(p, where: str) -> None:
    if "cross" in p.tests and get_problem(p.problem).dim < 2:
        raise ConfigError(f"{where}.tests: `cross` (theta_1 theta_2) needs dim >= 2; {p.problem!r} has "
                          f"dim {get_problem(p.problem).dim}")


def check_dataset(p, where: str) -> None:
    if not get_problem(p.problem).has_dataset:
        raise ConfigError(f"{where}.problem: {p.problem!r} has no dataset for minibatch noise")


def check_multiplier_list(p, where: str) -> None:
    """`constants` and `multipliers` of a stationary / escape panel."""
    if not p.constants and not p.multipliers:
        raise ConfigError(f"{where}.constants: give constant multipliers and/or `multipliers`")
    for i, c in enumerate(p.constants):
        if not c > 0:
            raise ConfigError(f"{where}.constants[{i}]: must be positive, got {c}")
    for i, m in enumerate(p.multipliers):
        if m.constant is not None:
            raise ConfigError(f"{where}.multipliers[{i}].constant: list constant multipliers under `constants`")
        m.validate(f"{where}.multipliers[{i}]")
    if not p.etas:
        raise ConfigError(f"{where}.etas: give at least one step size")


def batches_to_sum(p, where: str, name: str, what: str, fix: str) -> None:
    """A field whose SDE sums over every minibatch of the problem at every step: at most AVERAGED_MAX_BATCHES."""
    from sde.theory import n_batches
    n = n_batches(get_problem(p.problem))
    if n > AVERAGED_MAX_BATCHES:
        raise ConfigError(f"{where}.{name}: {what} sums over the {n} minibatches of {p.problem!r} at every step (at "
                          f"most {AVERAGED_MAX_BATCHES}); {fix}")

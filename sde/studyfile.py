"""The study file (YAML): a name, a title and a list of panels, loaded by the same strict loader as the trainer's
configs (runtools.schema: an unknown key gets "did you mean ...?", a wrong type names the field).

    name: theorem_pgpo            # the results file is <out>/<name>.json
    title: "..."                  # optional
    panels:
      - kind: weak_error | minibatch | sweep | trajectory | batch_gap | stationary | escape | variant
        id: ...                   # unique in the study
        problem: quadratic | quadratic-rotated | quadratic-d10 | double-well | double-well-escape | softmax |
                 least-squares
        role: ...                 # optional: what the report draws from this panel (ROLES below)
        ...                       # the fields of the panel's kind (sde.panels)
        quick: {...}              # optional: overrides of this panel's own keys for the quick version
                                  # (nested mappings are merged one level deep); checked as strictly

Both the full and the quick version of every panel are built (and so checked) when a study is loaded, and a study
whose figures take particular panels (ROLES) must give each of those roles to exactly one panel of the right kind,
with what the figure reads from it: a file in which such a panel is missing, its role misspelt, or the curves or
multiplier its figure draws left out, fails here, in one line, not when figures are drawn.
"""

from __future__ import annotations

import copy
import difflib
import os
from dataclasses import dataclass

from runtools.schema import ConfigError, build, read_yaml
from sde.panels import PANEL_TYPES

# the weak-convergence study: one YAML file each in experiments/weak_convergence/, in the order of the figures
STUDIES = ("theorem_sgd", "theorem_pgpo", "noise", "multiplier", "trajectories", "modified_equation", "stationary",
           "escape", "variants")
STUDY_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments",
                         "weak_convergence")


@dataclass(frozen=True)
class Role:
    """A panel a figure takes by what it is for: the study that must declare it, the kind it must be, the figure that
    draws it and what it draws there, and what the figure reads from it, checked as the file loads: `curves`, the
    "sde|test" pairs it plots (the panel's sdes and tests must hold both), and `m_shape`, a state-dependent PGPO
    multiplier m(I) of this shape ("any": any shape) whose m_k, cap or shape the figure shows ("": none needed)."""

    study: str
    kind: str
    figure: str
    draws: str
    curves: tuple[str, ...] = ()
    m_shape: str = ""


SHAPE_CURVES = ("matched|fluctuation", "paper|fluctuation")      # fig4 (a) sets the two shapes' curves side by side
ROLES = {
    "smooth_shape": Role("multiplier", "weak_error", "fig4_multiplier (a)", "the smooth m's fluctuation curves",
                         SHAPE_CURVES, "smooth"),
    "sensitivity_sweep": Role("multiplier", "sweep", "fig4_multiplier (c, d)",
                              "weak-error size and cap fraction vs alpha", ("matched|sq_norm", "paper|fluctuation")),
    "clipped_shape": Role("theorem_pgpo", "weak_error", "fig4_multiplier (a)",
                          "the clipped m's curves beside the smooth", SHAPE_CURVES, "clipped_linear"),
    "multiplier_path": Role("trajectories", "trajectory", "fig4_multiplier (b)", "I_k and m_k along one path",
                            m_shape="any"),
}
ROLE_STUDIES = tuple(dict.fromkeys(r.study for r in ROLES.values()))     # the studies whose files name roles


def check_role(p, where: str) -> None:
    if not p.role:
        return
    if p.role not in ROLES:
        close = difflib.get_close_matches(p.role, list(ROLES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known roles: {', '.join(ROLES)}"
        raise ConfigError(f"{where}.role: unknown role {p.role!r}{hint}")
    r = ROLES[p.role]
    if r.kind != p.kind:
        raise ConfigError(f"{where}.role: {p.role} is a {r.kind} panel's role ({r.figure}: {r.draws}), "
                          f"not a {p.kind} panel's")


@dataclass
class Study:
    name: str
    panels: list
    title: str = ""

    def with_role(self, role: str):
        """The panel that has `role` (load_study has checked that exactly one has)."""
        return next(p for p in self.panels if p.role == role)


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
    panel.validate(where)
    check_role(panel, where)
    return panel


def check_role_needs(p, needs: str) -> None:
    """What the figure that takes the panel reads from it (Role.curves, Role.m_shape); `needs` starts the message."""
    r = ROLES[p.role]
    missing = [c for c in r.curves if c.split("|")[0] not in p.sdes or c.split("|")[1] not in p.tests]
    if missing:
        raise ConfigError(f"{needs} the curve(s) {', '.join(missing)} (sde|test; {r.figure} draws {r.draws}): add "
                          f"them to sdes / tests")
    if not r.m_shape:
        return
    got = ("discrete: sgd" if p.discrete != "pgpo" else
           f"multiplier.constant: {p.multiplier.constant:g}" if p.multiplier.constant is not None else
           f"multiplier.shape: {p.multiplier.shape}" if r.m_shape not in ("any", p.multiplier.shape) else None)
    if got:
        shape = "" if r.m_shape == "any" else f"{r.m_shape} "
        raise ConfigError(f"{needs} discrete: pgpo with a {shape}multiplier m(I), got {got} ({r.figure} draws "
                          f"{r.draws})")


def check_roles(name: str, panels: list, source: str) -> None:
    """Each role of study `name` (ROLES) on exactly one panel, which has what its figure reads; no role on a panel of
    another study."""
    for i, p in enumerate(panels):
        if p.role and ROLES[p.role].study != name:
            raise ConfigError(f"{source}: panels[{i}] ({p.id}).role: {p.role} belongs to study "
                              f"{ROLES[p.role].study!r}, not {name!r}")
        if p.role:
            check_role_needs(p, f"{source}: panels[{i}] ({p.id}).role: {p.role} needs")
    for role, r in ROLES.items():
        if r.study != name:
            continue
        having = [p.id for p in panels if p.role == role]
        if not having:
            raise ConfigError(f"{source}: no panel has `role: {role}`; give it to the {r.kind} panel that "
                              f"{r.figure} draws ({r.draws})")
        if len(having) > 1:
            raise ConfigError(f"{source}: panels {having} all have `role: {role}`; one panel takes it")


def study_from_dict(doc: dict, source: str, quick: bool = False) -> Study:
    """A Study from its mapping; every panel is checked in both versions, the requested one is kept."""
    if not isinstance(doc, dict) or "panels" not in doc or "name" not in doc:
        raise ConfigError(f"{source}: a study needs `name` and `panels`")
    unknown = set(doc) - {"name", "title", "panels"}
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)}; a study has name, title, panels")
    full, small = [], []
    for i, raw in enumerate(doc["panels"]):
        where = f"{source}: panels[{i}]"
        full.append(build_panel({k: v for k, v in raw.items() if k != "quick"} if isinstance(raw, dict) else raw, where))
        small.append(build_panel(apply_quick(raw), f"{where} (quick)"))
    ids = [p.id for p in (small if quick else full)]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{source}: panel ids must be unique, got {ids}")
    check_roles(str(doc["name"]), full, source)
    check_roles(str(doc["name"]), small, f"{source} (quick)")
    return Study(str(doc["name"]), small if quick else full, str(doc.get("title", "")))


def load_study(path: str, quick: bool = False) -> Study:
    return study_from_dict(read_yaml(path, "study"), path, quick)

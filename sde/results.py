"""What `sde` writes: one curve record per (discrete process, SDE, test function), the multiplier's record,
and strict JSON files written atomically (used by `sde verify` and the studies alike); and `study_curves`,
which reads the curves back from a written document.

A curve record holds the eta grid, the weak errors at the horizon T with standard errors and 95 % CIs, the
ratio CI / |error|, the fit e = B + C1 eta + C2 eta^2 (sde.verdicts.fit_curve; the verdict is given to a whole
family of curves at once by sde.verdicts.assign), the log-log slope with its CI and the local slopes
(sde.stats.fit_slope, secondary),
the path counts, and whatever the caller adds (T, r, noise, info, method, multiplier, label, ...).
"""

from __future__ import annotations

import json
import math

from pgpo.multiplier import Multiplier
from runtools.files import atomic_write_text
from sde.stats import Z95, fit_slope
from sde.verdicts import VERDICT_RULE, assign, fit_curve


def multiplier_record(mult: Multiplier) -> dict | None:
    """{"alpha", "m_max", "shape"} of a PGPO multiplier; None for SGD (the identity). Records store it under
    `multiplier_spec` (in log.jsonl, `multiplier` is the number m_k)."""
    return None if mult.is_identity else {"alpha": mult.alpha, "m_max": mult.m_max, "shape": mult.shape}


def fit_fields(etas, errors, stderrs, exact: dict | None = None) -> dict:
    """What a curve record derives from its numbers: the fit B + C1 eta + C2 eta^2 (exact coefficients for a closed
    form) and the secondary log-log slope. The verdict is the family's (sde.verdicts.assign)."""
    errors = [float("nan") if e is None else e for e in errors]
    stderrs = [float("nan") if s is None else s for s in stderrs]
    fit = fit_slope(etas, errors, stderrs)
    return {"slope": fit["slope"], "slope_ci": fit["slope_ci"], "local_slopes": fit["local_slopes"],
            "used_in_slope": fit["used"], "chi2_red_slope": fit["chi2_red"],
            "fit": fit_curve(etas, errors, stderrs, exact=exact)}


def curve_record(etas, errors, stderrs, n_paths, exact: dict | None = None, **fields) -> dict:
    """A weak-error curve: `fields` (problem, discrete, sde, g, ...) first, then the numbers and the fit; `exact`:
    a closed form's asymptotic coefficients (sde.asymptotics), kept in the record."""
    ns = list(n_paths)
    extra = {} if exact is None else {"exact_coefficients": exact}
    return {**fields, "eta": list(etas), "error": list(errors), "stderr": list(stderrs),
            "ci95": [[e - Z95 * s, e + Z95 * s] for e, s in zip(errors, stderrs)],
            "ci_over_error": [None if (s is None or e == 0) else Z95 * s / abs(e) for e, s in zip(errors, stderrs)],
            **fit_fields(etas, errors, stderrs, exact), "n_paths": min(ns) if ns else 0, "n_paths_per_eta": ns, **extra}


def refit(doc: dict) -> dict:
    """Recompute every curve's fit from its stored numbers (in place; returns doc), so that figures and tables always
    apply the current rule without re-simulating; the verdicts are those of the document's curves as one family
    (the table re-assigns them over all studies together: sde.report.load)."""
    curves = study_curves(doc)
    for c in curves:
        for stale in ("used_in_fit", "chi2_red", "verdict", "verdict_reason"):
            c.pop(stale, None)
        c.update(fit_fields(c["eta"], c["error"], c["stderr"], c.get("exact_coefficients")))
    assign(curves)
    if "panels" in doc:
        doc["verdict_rule"] = VERDICT_RULE
    return doc


def finite_or_none(o):
    """Replace NaN/inf floats by None so that the JSON is strict (NaN is not JSON)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: finite_or_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite_or_none(v) for v in o]
    return o


def _json_default(o):
    import numpy as np
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_json(path: str, doc: dict) -> str:
    """Strict JSON (non-finite numbers as null), written atomically; returns the path."""
    return atomic_write_text(path, json.dumps(finite_or_none(doc), indent=1, allow_nan=False,
                                              default=_json_default))


def study_curves(doc: dict) -> list[dict]:
    """Every weak-error curve of a study document (sweep rows and trajectories are not curves); a results.json
    written before `sde verify` became a study keeps its curves at the top level."""
    if "panels" not in doc:
        return doc["curves"]
    return [it for p in doc["panels"] for it in p["items"] if "eta" in it and isinstance(it["eta"], list)]

"""What every panel runner shares: its seeds, its curves' predicted plateau, and the fraction of steps at the cap.

A runner takes a panel of its kind (sde.panels) and the study's progress (sde.study.StudyProgress: `advance`, `note`)
and returns JSON-ready dictionaries (curve records: sde.results).
"""

from __future__ import annotations

import zlib

import numpy as np

from pgpo.multiplier import Multiplier
from sde.family import drifts_apart
from sde.simulate import DiscreteProcess, n_steps_for


def panel_seed(panel, *parts) -> int:
    """A reproducible seed from the panel's seed (when not 0), its id and parameters (str hashes are salted per
    process, so crc32)."""
    parts = ((panel.seed,) if panel.seed else ()) + (panel.id, *parts)
    return int(np.random.SeedSequence([zlib.crc32(str(p).encode()) for p in parts]).generate_state(1)[0])


def prediction_for(plateaus, sde: str, g: str, info: str = "exact") -> dict:
    """The predicted plateau B of a curve (from the panel's sde.theory.Plateaus), and how it was obtained."""
    if info in ("independent_batch", "same_batch") and sde != "averaged":
        if g == "fluctuation":
            return {"prediction": None, "prediction_method": "none (noisy I: the fluctuation about theta_bar diverges)"}
        return {"prediction": plateaus.noisy_info(info, g),
                "prediction_method": "g(averaged-drift flow) - g(theta_bar), exact minibatch enumeration"}
    if g == "fluctuation":
        b = plateaus.fluctuation(sde)
        return {"prediction": b, "prediction_method": "Lyapunov ODE (linear-noise) along theta_bar"
                if b is not None else "none (different drift)"}
    if drifts_apart(sde, plateaus.mult):
        return {"prediction": None, "prediction_method": "none (different drift)"}
    return {"prediction": 0.0, "prediction_method": "0: same drift, O(sqrt(eta)) diffusion"}


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

"""The figures of the weak-convergence study, one module per family, drawn from saved results only (sde.report).

FIGURES lists them in order, each with the study whose results it needs (named there only): a figure is drawn when
that study's results are present, and is passed the study's name. Inside it, a figure finds its panels by what the
study files declare - every panel of a kind (`res.of_kind(study, kind)`), or the one panel with a role
(`res.with_role(role)`, sde.studyfile.ROLES) - never by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sde.figures.escape import fig_escape
from sde.figures.multiplier import fig_multiplier, fig_trajectories
from sde.figures.noise import fig_batch_gap, fig_noise
from sde.figures.stationary import fig_stationary
from sde.figures.theorem import fig_modified_equation, fig_theorem_pgpo, fig_theorem_sgd
from sde.figures.variants import fig_variants


@dataclass(frozen=True)
class Figure:
    study: str                        # drawn when this study's results are present; its curves weigh its progress
    draw: Callable                    # draw(res, study, out_dir, written): saves PNG + PDF, appends their paths


FIGURES = (Figure("theorem_sgd", fig_theorem_sgd), Figure("theorem_pgpo", fig_theorem_pgpo), Figure("noise", fig_noise),
           Figure("noise", fig_batch_gap), Figure("multiplier", fig_multiplier),
           Figure("trajectories", fig_trajectories), Figure("modified_equation", fig_modified_equation),
           Figure("stationary", fig_stationary), Figure("escape", fig_escape), Figure("variants", fig_variants))

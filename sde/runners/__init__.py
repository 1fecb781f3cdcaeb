"""Running the panels of a study: one module per panel kind (batch_gap beside minibatch, its noise family), each a
function `<kind>_panel(panel, progress) -> list[dict]`; RUNNERS maps every kind of sde.panels.PANEL_TYPES to its
function. Every curve carries the predicted plateau B beside the fitted one (sde.theory; `prediction`); every random
number comes from the panel's own seed (sde.runners.common.panel_seed), so a panel's results do not depend on the other
panels, the order they run in, or the number of worker threads."""

from __future__ import annotations

from sde.runners.escape import escape_panel
from sde.runners.minibatch import batch_gap_panel, minibatch_panel
from sde.runners.stationary import stationary_panel
from sde.runners.sweep import sweep_panel
from sde.runners.trajectory import trajectory_panel
from sde.runners.variant import variant_panel
from sde.runners.weak_error import weak_error_panel

RUNNERS = {"weak_error": weak_error_panel, "minibatch": minibatch_panel, "sweep": sweep_panel,
           "trajectory": trajectory_panel, "batch_gap": batch_gap_panel, "stationary": stationary_panel,
           "escape": escape_panel, "variant": variant_panel}

"""PGPO: Physics-Guided Policy Optimization with Self-Distillation.

The package is split so that the light parts stay light:

- `pgpo.multiplier` - m(I); NumPy only (shared with the `sde` toolkit).
- `pgpo.information`, `pgpo.optim`, `pgpo.distributed` - the method on torch, for any training loop.
- `pgpo.trainer` and friends - the Science-QA trainer on TRL's SDPO (needs the `train` extra).

Nothing heavy is imported here: `import pgpo.multiplier` must not import torch.
"""

__version__ = "0.1.0"

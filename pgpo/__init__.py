"""PGPO: Physics-Guided Policy Optimization with Self-Distillation.

The package is split so that the light parts stay light:

- `pgpo.multiplier` - m(I); NumPy only (shared with the `sde` toolkit).
- `pgpo.information`, `pgpo.optim`, `pgpo.distributed` - the method on torch, for any training loop.
- `pgpo.trainer` and friends - the Science-QA trainer on TRL's SDPO (needs the `train` extra).

Nothing heavy is imported here: `import pgpo.multiplier` must not import torch.
"""

__version__ = "0.1.0"
__all__ = ["PGPOConfig", "PGPOTrainer", "PGPOSettings"]


def __getattr__(name: str):
    """`from pgpo import PGPOTrainer, PGPOConfig` as TRL users write `from trl import ...`, imported on first use so
    that `import pgpo` (and pgpo.multiplier) stays free of torch."""
    if name == "PGPOTrainer":
        from pgpo.trainer import PGPOTrainer
        return PGPOTrainer
    if name == "PGPOConfig":
        from pgpo.trainer_config import PGPOConfig
        return PGPOConfig
    if name == "PGPOSettings":
        from pgpo.settings import PGPOSettings
        return PGPOSettings
    raise AttributeError(f"module 'pgpo' has no attribute {name!r}")

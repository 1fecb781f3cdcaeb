"""sde: simulate discrete SGD/PGPO against the SDE family that models them and measure weak error.

NumPy/SciPy core, vectorised over paths. Imports nothing from torch, transformers or trl; from the
rest of the project only torch-free modules: `pgpo.multiplier`, `pgpo.modulation` (the trainer's rules it models)
and the `runtools` package (strict loading, atomic writes, figures, progress lines, argparse helpers).
"""

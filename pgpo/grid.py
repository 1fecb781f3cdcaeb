"""Expand a grid file (base config x domains x methods x seeds) into one run per combination.

    base: paper-qwen3-8b.yaml          (relative to the grid file)
    output_root: runs/science_qa
    domains: [chemistry, ...]
    seeds: [0, 1, 2]
    methods: {sdpo: {pgpo.alpha: 0.0}, pgpo-a10: {pgpo.alpha: 10.0}}

Each run gets output_dir = <output_root>/<domain>/<method>-seed<seed> and is validated like any config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import yaml

from pgpo.config import ConfigError, load_config


@dataclass(frozen=True)
class GridRun:
    name: str
    config: str
    overrides: tuple[str, ...]
    output_dir: str
    domain: str
    method: str
    seed: int


def load_grid(path: str, validate: bool = True) -> list[GridRun]:
    try:
        with open(path) as f:
            g = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read grid {path!r}: {e}") from None
    allowed = {"base", "output_root", "domains", "seeds", "methods"}
    if not isinstance(g, dict) or set(g) - allowed or not {"base", "domains", "seeds", "methods"} <= set(g):
        raise ConfigError(f"{path}: a grid needs keys base, domains, seeds, methods (optional output_root); "
                          f"got {sorted(g) if isinstance(g, dict) else type(g).__name__}")
    base = os.path.normpath(os.path.join(os.path.dirname(path), g["base"]))
    root = g.get("output_root", "runs")
    runs = []
    for domain in g["domains"]:
        for method, sets in g["methods"].items():
            for seed in g["seeds"]:
                out = os.path.join(root, domain, f"{method}-seed{seed}")
                ov = [f"data.domain={domain}", f"training.seed={seed}", f"training.output_dir={out}",
                      f"name={domain}-{method}-seed{seed}"] + [f"{k}={v}" for k, v in (sets or {}).items()]
                runs.append(GridRun(f"{domain}/{method}-seed{seed}", base, tuple(ov), out, domain, method, seed))
    if validate:
        for r in runs:
            try:
                load_config(r.config, list(r.overrides))
            except ConfigError as e:
                raise ConfigError(f"grid run {r.name}: {e}") from None
    return runs

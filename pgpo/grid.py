"""Expand a grid file (base config x domains x methods x seeds) into one run per combination.

    base: paper-qwen3-8b.yaml          (relative to the grid file)
    output_root: runs/science_qa
    domains: [chemistry, ...]
    seeds: [0, 1, 2]
    methods: {sdpo: {pgpo.alpha: 0.0}, pgpo-a10: {pgpo.alpha: 10.0}}

    ablations:                         (optional) named blocks of further methods, each with its own domains
      variants:                        and seeds (default: the grid's); expanded after the main methods
        seeds: [0]
        methods: {pgpo-smoothed: {pgpo.alpha: 10.0, pgpo.ema_steps: 10, pgpo.signal: smoothed}}

Each run gets output_dir = <output_root>/<domain>/<method>-seed<seed> and is validated like any config. A method
name must be unique across the main block and the ablations (it names the output folder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


from pgpo.config import ConfigError, load_config
from runtools.schema import read_yaml


@dataclass(frozen=True)
class GridRun:
    name: str
    config: str
    overrides: tuple[str, ...]
    output_dir: str
    domain: str
    method: str
    seed: int
    block: str = "main"                 # "main" or the ablation block's name


def load_grid(path: str, validate: bool = True) -> list[GridRun]:
    g = read_yaml(path, "grid")
    allowed = {"base", "output_root", "domains", "seeds", "methods", "ablations"}
    if not isinstance(g, dict) or set(g) - allowed or not {"base", "domains", "seeds", "methods"} <= set(g):
        raise ConfigError(f"{path}: a grid needs keys base, domains, seeds, methods (optional output_root, "
                          f"ablations); got {sorted(g) if isinstance(g, dict) else type(g).__name__}")
    base = os.path.normpath(os.path.join(os.path.dirname(path), g["base"]))
    root = g.get("output_root", "runs")
    blocks = [("main", g["domains"], g["seeds"], g["methods"])]
    ablations = g.get("ablations") or {}
    if not isinstance(ablations, dict):
        raise ConfigError(f"{path}: ablations: expected a mapping of named blocks")
    for name, blk in ablations.items():
        if not isinstance(blk, dict) or "methods" not in blk or set(blk) - {"domains", "seeds", "methods"}:
            raise ConfigError(f"{path}: ablations.{name}: a block has methods (and optional domains, seeds)")
        blocks.append((str(name), blk.get("domains", g["domains"]), blk.get("seeds", g["seeds"]), blk["methods"]))
    seen: dict[str, str] = {}
    for block, _, _, methods in blocks:
        if not isinstance(methods, dict):
            raise ConfigError(f"{path}: {block} methods: expected a mapping of method name -> overrides")
        for m in methods:
            if m in seen:
                raise ConfigError(f"{path}: method {m!r} appears in {seen[m]} and {block}: names must be unique")
            seen[m] = block
    runs = []
    for block, domains, seeds, methods in blocks:
        for domain in domains:
            for method, sets in methods.items():
                for seed in seeds:
                    out = os.path.join(root, domain, f"{method}-seed{seed}")
                    ov = [f"data.domain={domain}", f"training.seed={seed}", f"training.output_dir={out}",
                          f"name={domain}-{method}-seed{seed}"] + [f"{k}={v}" for k, v in (sets or {}).items()]
                    runs.append(GridRun(f"{domain}/{method}-seed{seed}", base, tuple(ov), out, domain, method, seed,
                                        block))
    if validate:
        for r in runs:
            try:
                load_config(r.config, list(r.overrides))
            except ConfigError as e:
                raise ConfigError(f"grid run {r.name}: {e}") from None
    return runs

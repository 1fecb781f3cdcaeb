"""Record the resolved settings of every shipped preset (and every grid method) as the code at this commit
resolves them: the trainer's PGPOConfig field by field, and the model / data / eval / monitor / pgpo sections.

    HF_HUB_OFFLINE=1 python tests/data/make_preset_settings.py     # writes tests/data/preset_settings.json

Made once, before the run configuration moved onto PGPOConfig (issue: one config, TRL's), so that
tests/test_preset_settings.py can compare the presets' meaning after the change with before it. This script uses
the configuration API of that time; it is kept for the record, not rerun.
"""
import dataclasses
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"

from pgpo.config import load_config                     # noqa: E402
from pgpo.grid import load_grid                         # noqa: E402
from pgpo.run import trainer_arguments                  # noqa: E402
from pgpo.trainer_config import PGPOConfig              # noqa: E402

PRESETS = ["experiments/science_qa/smoke-cpu.yaml", "experiments/science_qa/paper-qwen3-8b.yaml",
           "experiments/science_qa/paper-qwen3-8b-vllm-server.yaml", "experiments/small_model/smollm2-arithmetic.yaml"]


def resolved(path, overrides=()):
    cfg = load_config(os.path.join(ROOT, path), list(overrides))
    args = PGPOConfig(**trainer_arguments(cfg, cfg.training.accumulation_for(1), cfg.training.reporters()),
                      use_cpu=True)
    trainer = json.loads(json.dumps(args.to_dict(), default=str))
    return {"trainer": trainer, **{s: dataclasses.asdict(getattr(cfg, s)) for s in ("model", "data", "eval", "monitor")},
            "name": cfg.name}


out = {p: resolved(p) for p in PRESETS}
for r in load_grid(os.path.join(ROOT, "experiments/science_qa/grid.yaml")):
    if r.domain == "chemistry" and r.seed == 0:
        out[f"grid:{r.method}"] = resolved("experiments/science_qa/grid.yaml".replace("grid.yaml", "paper-qwen3-8b.yaml"),
                                           r.overrides)
with open(os.path.join(ROOT, "tests", "data", "preset_settings.json"), "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
print(len(out), "presets recorded")

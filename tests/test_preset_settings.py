"""The shipped presets mean what they meant before the run configuration moved onto PGPOConfig.

tests/data/preset_settings.json holds every preset's resolved settings (each PGPOConfig field, and the model, data,
eval and monitor sections) as the earlier configuration code resolved them (made at commit a6536f5 by
tests/data/make_preset_settings.py, with that code). Here the same presets - and each method of the paper grid -
are resolved by today's loader and compared field by field. The differences allowed are the ones the move itself
makes, each listed in MOVED_FIELDS with the reason.
"""
import json
import os

import pytest

pytest.importorskip("trl")

from pgpo.config import load_config                 # noqa: E402
from pgpo.grid import load_grid                     # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEFORE = os.path.join(ROOT, "tests", "data", "preset_settings.json")
# earlier name -> today's (the value must be equal): activation checkpointing was a model-section flag
MOVED_FIELDS = {("model", "gradient_checkpointing"): ("training", "activation_checkpointing")}
# fields TRL leaves unset that the earlier code wrote out with the value TRL uses when they are unset:
# data_seed (the earlier code set it to seed; SDPO's sampler reads seed, and transformers' data_seed defaults to it)
UNSET_MEANS = {"data_seed": "seed"}
# the recording was made with transformers 5.24.0 (TRL 1.16.0); another transformers has other TrainingArguments
# fields, so there only the fields both have are compared (the CI run at the dependency floors has 5.17)
RECORDED_WITH = "5.24.0"


def _resolved(key: str) -> dict:
    if key.startswith("grid:"):
        run = next(r for r in load_grid(os.path.join(ROOT, "experiments", "science_qa", "grid.yaml"))
                   if r.method == key[5:] and r.domain == "chemistry" and r.seed == 0)
        cfg = load_config(run.config, list(run.overrides))
    else:
        cfg = load_config(os.path.join(ROOT, key))
    d = cfg.to_dict()
    d["training"]["pgpo"] = d.pop("pgpo")
    return d


def _differences(before: dict, after: dict) -> list[str]:
    import transformers
    out = []
    old_trainer, new_trainer = before["trainer"], after["training"]
    names = set(old_trainer) | set(new_trainer)
    if transformers.__version__ != RECORDED_WITH:
        names = set(old_trainer) & set(new_trainer)
    for name in sorted(names):
        if name == "activation_checkpointing" or name == "gradient_checkpointing":
            continue                                    # compared below, with the model section's flag
        a, b = old_trainer.get(name, "<absent>"), new_trainer.get(name, "<absent>")
        if b is None and name in UNSET_MEANS:
            b = new_trainer[UNSET_MEANS[name]]
        if a != b:
            out.append(f"training.{name}: {a!r} -> {b!r}")
    for section in ("model", "data", "eval", "monitor"):
        for name in sorted(set(before[section]) | set(after[section])):
            if (section, name) in MOVED_FIELDS:
                new_section, new_name = MOVED_FIELDS[(section, name)]
                b = new_trainer.get(new_name, new_trainer.get("gradient_checkpointing"))
                if before[section][name] != b:
                    out.append(f"{section}.{name} -> {new_section}.{new_name}: {before[section][name]!r} -> {b!r}")
                continue
            a, b = before[section].get(name, "<absent>"), after[section].get(name, "<absent>")
            if a != b:
                out.append(f"{section}.{name}: {a!r} -> {b!r}")
    if before["name"] != after["name"]:
        out.append(f"name: {before['name']!r} -> {after['name']!r}")
    return out


with open(BEFORE) as f:
    RECORDED = json.load(f)


@pytest.mark.parametrize("preset", sorted(RECORDED))
def test_every_preset_resolves_to_the_settings_it_had(preset):
    assert _differences(RECORDED[preset], _resolved(preset)) == []


def test_the_comparison_sees_a_changed_setting():
    """The comparison is not blind: one changed field of a preset is reported, by name."""
    key = "experiments/science_qa/smoke-cpu.yaml"
    after = _resolved(key)
    after["training"]["learning_rate"] *= 2
    after["eval"]["every_steps"] += 1
    assert _differences(RECORDED[key], after) == [
        f"training.learning_rate: {RECORDED[key]['trainer']['learning_rate']!r} -> "
        f"{RECORDED[key]['trainer']['learning_rate'] * 2!r}",
        f"eval.every_steps: {RECORDED[key]['eval']['every_steps']!r} -> {RECORDED[key]['eval']['every_steps'] + 1!r}"]

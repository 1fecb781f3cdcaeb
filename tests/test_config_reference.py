"""The config field reference (`python -m pgpo fields`): generated from the dataclasses, so complete by construction;
these tests check that construction against the dataclasses and the loader."""

import pytest
import dataclasses
import subprocess
import sys

import yaml

from pgpo.config import FIXED, SECTIONS, SET_FROM, load_config
from pgpo.config_reference import field_reference


def _rows(text: str) -> dict:
    rows, section = {}, None
    for line in text.splitlines():
        if line.startswith("## `"):
            section = line.split("`")[1]
        elif line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows[(section, cells[0].strip("`"))] = cells
    return rows


@pytest.mark.train
def test_every_field_is_listed_once_with_its_default_and_a_description():
    rows = _rows(field_reference())
    expected = {(name, sf.name) for name, (cls, _) in SECTIONS.items() for sf in dataclasses.fields(cls)}
    from pgpo.trainer_config import PGPOConfig
    trainer = {("training", f.name) for f in dataclasses.fields(PGPOConfig)
               if f.init and not f.name.startswith("_") and f.name not in SET_FROM and f.name not in FIXED}
    assert set(rows) == expected | trainer and len(expected) > 40 and len(trainer) > 150
    for (section, name), cells in rows.items():
        if section == "training":
            continue
        _, typ, default, description = cells
        assert description, (section, name)
        value = getattr(SECTIONS[section][0](), name)
        assert yaml.safe_load(default.strip("`").replace("'", '"')) == value or repr(value) == default.strip("`")
    import warnings
    with warnings.catch_warnings():                 # TRL's own default sets transformers' deprecated checkpointing name
        warnings.simplefilter("ignore", FutureWarning)
        defaults = PGPOConfig(output_dir="unused", use_cpu=True)     # the training rows show TRL's defaults
    for name in ("learning_rate", "distillation_topk", "temperature", "max_completion_length"):
        value, shown = getattr(defaults, name), rows[("training", name)][1].strip("`")
        assert shown == ("null" if value is None else repr(value)), name


@pytest.mark.train
def test_the_documented_choices_are_the_ones_the_loader_accepts(tmp_path):
    """Every choice a Literal-typed field lists loads, and a value outside them is refused naming the field."""
    rows = _rows(field_reference())
    literal = {k: v[1] for k, v in rows.items() if k[0] != "training" and "'" in v[1] and " or " not in v[1]}
    assert ("pgpo", "shape") in literal and ("eval", "backend") in literal
    for (section, name), typ in literal.items():
        choices = [c.strip().strip("'") for c in typ.split("\\|")]
        for c in choices:
            cfg = load_config(None, [f"{section}.{name}={c}"] + _companions(section, name, c))
            assert getattr(cfg.pgpo if section == "pgpo" else getattr(cfg, section), name) == c
        try:
            load_config(None, [f"{section}.{name}=no-such-choice"])
        except Exception as e:                                # noqa: BLE001
            assert f"{section}.{name}" in str(e)
        else:
            raise AssertionError(f"{section}.{name}: an unknown choice was accepted")


def _companions(section: str, name: str, choice: str) -> list[str]:
    """Settings a choice needs to be valid on its own (the loader's cross-field checks)."""
    if (section, name) == ("sdpo", "distillation_mode") and choice != "topk_logits":
        return ["training.distillation_topk=null"] + (["training.distillation_alpha=1.0"] if choice == "sampled_token" else [])
    if (section, name) == ("pgpo", "signal") and choice == "smoothed":
        return ["pgpo.ema_steps=10", "pgpo.alpha=1"]
    if (section, name) == ("pgpo", "granularity") and choice != "batch":
        return ["pgpo.alpha=1"]
    if (section, name) == ("data", "source") and choice == "dir":
        return ["data.path=/nonexistent"]
    return []


def test_the_cli_prints_one_section():
    out = subprocess.run([sys.executable, "-m", "pgpo", "fields", "monitor"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "## `monitor`" in out.stdout and "## `training`" not in out.stdout and "| `accuracy_drop` |" in out.stdout

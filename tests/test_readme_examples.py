"""The README's Python API examples run as written (the TRL one on a tiny model, for two steps)."""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.train


def _example(name: str) -> str:
    text = open(os.path.join(ROOT, "README.md")).read()
    m = re.search(rf"<!-- example: {name} -->\n```python\n(.*?)```", text, re.S)
    assert m, f"README has no example {name!r}"
    return m.group(1)


def test_the_plain_pytorch_example_modulates_every_step(capsys):
    code = _example("torch")
    scope: dict = {}
    exec(compile(code, "README.md:torch", "exec"), scope)
    mod, m = scope["modulator"], scope["m"]
    assert mod.steps == 20 and len(mod.history) == 20
    for rec in mod.history:                                    # each step's m_k is m(I_k) of that step
        assert rec.multiplier == pytest.approx(float(m(rec.info))) and 1.0 <= rec.multiplier <= 2.0
    assert "[" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_trl_example_trains(tmp_path, monkeypatch):
    from pgpo.models import write_tiny_qwen3
    from pgpo.run import PACKAGED_TOKENIZER
    monkeypatch.chdir(tmp_path)
    model = write_tiny_qwen3(str(tmp_path / "tiny"), PACKAGED_TOKENIZER, seed=0, initializer_range=0.3)
    code = _example("trl")
    for old, new in (('"models/smollm2-135m-instruct"', repr(model)), ("max_steps=50", "max_steps=2"),
                     ("per_device_train_batch_size=16, num_generations=8", "per_device_train_batch_size=8, "
                      "num_generations=4, report_to=[], use_cpu=True")):
        assert old in code, old
        code = code.replace(old, new)
    scope: dict = {}
    exec(compile(code, "README.md:trl", "exec"), scope)
    tr = scope["trainer"]
    assert tr.state.global_step == 2
    hist = tr.pgpo_controller().modulator.history
    assert len(hist) == 2 and all(1.0 <= r.multiplier <= 2.0 for r in hist)
    assert os.path.isdir(tmp_path / "runs" / "my-pgpo")

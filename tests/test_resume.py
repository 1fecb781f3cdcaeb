"""`pgpo train --resume`: what it continues, what it refuses, what it records - decided before anything loads."""

import json
import os
import sys
import types

import pytest
import yaml

from pgpo import cli
from pgpo.config import load_config
from pgpo.resume import ResumeError, check
from cli_helpers import one_error_line
from trainer_helpers import SMALL_VOCAB

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "experiments", "science_qa", "smoke-cpu.yaml")


def _run_folder(tmp_path, step=2, overrides=()):
    """A run folder as a finished smoke run leaves it: run_config.yaml and a complete checkpoint at `step`."""
    run = tmp_path / "run"
    cfg = load_config(SMOKE, [f"training.output_dir={run}", *overrides])
    (run / f"checkpoint-{step}").mkdir(parents=True)
    (run / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (run / f"checkpoint-{step}" / "pgpo_state.json").write_text("{}")
    (run / "run_config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    (run / "log.jsonl").write_text(json.dumps({"kind": "train", "step": step}) + "\n")
    return run


@pytest.fixture
def trained(monkeypatch):
    """run_training replaced: records what it would have been asked to do."""
    seen = []
    monkeypatch.setitem(sys.modules, "pgpo.run", types.SimpleNamespace(
        run_training=lambda cfg, resume=None, overwrite=False: seen.append((cfg, resume))))
    return seen


@pytest.mark.train
def test_a_finished_run_resumes_to_nothing(tmp_path, capsys, trained):
    run = _run_folder(tmp_path, step=2)
    assert cli.main(["train", "--config", SMOKE, f"training.output_dir={run}", "--resume"]) == 0
    assert "already finished at step 2" in capsys.readouterr().out and trained == []
    assert not (run / "checkpoint-3").exists() and not (run / "resumes.jsonl").exists()


@pytest.mark.train
def test_a_changed_meaning_is_refused_naming_the_fields(tmp_path, capsys, trained):
    run = _run_folder(tmp_path, step=1)
    before = (run / "run_config.yaml").read_text()
    line = one_error_line(capsys, ["train", "--config", SMOKE, f"training.output_dir={run}", "pgpo.alpha=5",
                              "training.learning_rate=3e-4", "--resume"])
    assert "pgpo.alpha 2.0 -> 5" in line and "training.learning_rate 0.0001 -> 0.0003" in line
    assert trained == [] and (run / "run_config.yaml").read_text() == before


@pytest.mark.train
def test_safe_changes_are_allowed_and_recorded(tmp_path, capsys, trained):
    run = _run_folder(tmp_path, step=2)
    before = (run / "run_config.yaml").read_text()
    assert cli.main(["train", "--config", SMOKE, f"training.output_dir={run}", "training.max_steps=5",
                     "eval.every_steps=2", "--resume"]) == 0
    assert len(trained) == 1 and trained[0][1] == "auto"
    out = capsys.readouterr().out
    assert "training.max_steps 2 -> 5" in out and "eval.every_steps 0 -> 2" in out
    rec = [json.loads(x) for x in (run / "resumes.jsonl").read_text().splitlines()]
    assert rec[-1]["from_step"] == 2 and rec[-1]["changes"] == {"eval.every_steps": {"from": 0, "to": 2},
                                                                "training.max_steps": {"from": 2, "to": 5}}
    assert (run / "run_config.yaml").read_text() == before              # the run's record is not rewritten


@pytest.mark.train
def test_resume_without_a_checkpoint_is_refused(tmp_path, capsys, trained):
    line = one_error_line(capsys, ["train", "--config", SMOKE, f"training.output_dir={tmp_path / 'none'}", "--resume"])
    assert "does not exist: nothing to resume" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_error_line(capsys, ["train", "--config", SMOKE, f"training.output_dir={empty}", "--resume"])
    assert "holds no complete checkpoint" in line and trained == []


def test_check_rules():
    old = {"pgpo": {"alpha": 2.0}, "training": {"max_steps": 10, "output_dir": "runs/a"}, "eval": {"every_steps": 5}}
    new = {"pgpo": {"alpha": 2.0}, "training": {"max_steps": 20, "output_dir": "/abs/runs/a"}, "eval": {"every_steps": 1}}
    assert check(new, old, step=4) == {"eval.every_steps": (5, 1), "training.max_steps": (10, 20)}
    with pytest.raises(ResumeError, match="below the step"):
        check({**new, "training": {"max_steps": 3}}, old, step=4)
    with pytest.raises(ResumeError, match="pgpo.beta None -> 0.5"):
        check({**new, "pgpo": {"alpha": 2.0, "beta": 0.5}}, old, step=4)
    epochs = {"training": {"max_steps": -1, "num_train_epochs": 3}}     # TRL's default: train by epochs
    assert check(epochs, epochs, step=4) == {}
    assert check({"training": {"log_completions": True}}, {"training": {"log_completions": False}}, step=4) == \
        {"training.log_completions": (False, True)}
    with pytest.raises(ResumeError, match="training.num_train_epochs 3 -> 4"):
        check({"training": {"max_steps": -1, "num_train_epochs": 4}}, epochs, step=4)


@pytest.mark.train
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ctrl_c_during_training_is_one_line_naming_how_to_continue(tmp_path):
    """SIGINT after the first checkpoint: exit 130, one line on stderr naming the checkpoint and the command; the
    named command then finishes the run."""
    import signal
    import subprocess
    import time
    run = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "pgpo", "train", "--config", SMOKE, f"training.output_dir={run}",
           "training.max_steps=30", *SMALL_VOCAB]
    # SIGINT's default disposition in the child, whatever this process inherited (a suite started as a background
    # job of a shell has SIGINT ignored, which exec keeps, and Python then installs no KeyboardInterrupt handler)
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 400
    while time.time() < deadline and not (run / "checkpoint-1" / "trainer_state.json").exists():
        time.sleep(0.5)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    lines = [ln for ln in err.splitlines() if ln.strip() and "WARNING" not in ln and "INFO" not in ln]
    assert len(lines) == 1, lines
    assert "interrupted; the newest checkpoint is" in lines[0] and "--resume" in lines[0]
    assert "Traceback" not in err

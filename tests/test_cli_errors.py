"""`pgpo eval` refuses bad input in one line (exit status 2) before loading anything, and changes nothing on disk."""

import os

import pytest

from pgpo import cli
from cli_helpers import one_error_line


def _ckpt(folder):
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write("{}")


def test_missing_model_path_is_one_line(capsys, tmp_path):
    line = one_error_line(capsys, ["eval", "--model", str(tmp_path / "runs" / "x" / "checkpoint-9"), "--domain", "chemistry"])
    assert "no such folder" in line


def test_run_folder_instead_of_checkpoint_lists_the_checkpoints(capsys, tmp_path):
    run = tmp_path / "run"
    for n in (10, 2):
        _ckpt(str(run / f"checkpoint-{n}"))
    (run / "log.jsonl").write_text("")
    line = one_error_line(capsys, ["eval", "--model", str(run), "--domain", "chemistry"])
    assert "is a run folder, not a checkpoint" in line
    assert line.index("checkpoint-2") < line.index("checkpoint-10")
    line = one_error_line(capsys, ["eval", "--model", str(run / "log.jsonl"), "--domain", "chemistry"])
    assert "is a file" in line


def test_out_that_is_a_folder_is_refused_before_work(capsys, tmp_path):
    _ckpt(str(tmp_path / "ck"))
    before = sorted(os.listdir(tmp_path))
    line = one_error_line(capsys, ["eval", "--model", str(tmp_path / "ck"), "--domain", "chemistry", "--out", str(tmp_path)])
    assert "is a folder" in line and sorted(os.listdir(tmp_path)) == before


def test_unknown_domain_is_one_line_and_aliases_are_canonical(capsys, tmp_path, monkeypatch):
    _ckpt(str(tmp_path / "ck"))
    assert "unknown domain" in one_error_line(capsys, ["eval", "--model", str(tmp_path / "ck"), "--domain", "chemystry"])
    seen = {}

    def fake_load(task, domain, split, limit=None):                 # stop right after the argument checks
        seen["domain"] = domain
        raise SystemExit(0)
    import pgpo.data
    monkeypatch.setattr(pgpo.data, "load_task", fake_load)
    with pytest.raises(SystemExit):
        cli.main(["eval", "--model", str(tmp_path / "ck"), "--domain", "chem", "--out", str(tmp_path / "new" / "r.json")])
    assert seen["domain"] == "chemistry" and (tmp_path / "new").is_dir()


def test_eval_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["eval", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 16)" in out and "512 on CPU" in out and "(default: 0.6)" in out


@pytest.mark.train
def test_import_model_refuses_what_is_not_a_model_in_one_line(capsys, tmp_path):
    """A non-GGUF file, a missing source, a folder without config.json, a file that only claims to be GGUF: one line
    each, and --out is never created."""
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    out = tmp_path / "model"
    assert "not a .gguf file" in one_error_line(capsys, ["import-model", str(notes), "--out", str(out)])
    assert "no such file, folder or installed distribution" in one_error_line(
        capsys, ["import-model", str(tmp_path / "nothing"), "--out", str(out)])
    (tmp_path / "empty").mkdir()
    assert "no config.json" in one_error_line(capsys, ["import-model", str(tmp_path / "empty"), "--out", str(out)])
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a gguf file at all")
    line = one_error_line(capsys, ["import-model", str(fake), "--out", str(out)])
    import importlib.util
    if importlib.util.find_spec("gguf") is None:
        assert "needs the `gguf` package" in line
    else:
        assert "is not a loadable model" in line and "fake.gguf" in line
    assert not out.exists()


def test_eval_refuses_an_existing_out_file_unless_overwrite(capsys, tmp_path):
    _ckpt(str(tmp_path / "ck"))
    out = tmp_path / "r.json"
    out.write_text('{"mine": true}')
    line = one_error_line(capsys, ["eval", "--model", str(tmp_path / "ck"), "--domain", "chem", "--out", str(out)])
    assert "already exists" in line and "--overwrite" in line and out.read_text() == '{"mine": true}'


@pytest.mark.train
def test_plan_refuses_zero_gpus_and_a_file_that_is_not_an_accelerate_config(capsys, tmp_path):
    smoke = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments", "science_qa",
                         "smoke-cpu.yaml")
    assert "--gpus must be >= 1" in one_error_line(capsys, ["plan", "--config", smoke, "--gpus", "0", "--gpu-mem", "80"])
    line = one_error_line(capsys, ["plan", "--config", smoke, "--accelerate", smoke, "--gpu-mem", "80"])
    assert "is not an accelerate config" in line


def test_a_yaml_syntax_error_is_one_line_with_its_position(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  tiny: true\n training: [\n")
    line = one_error_line(capsys, ["train", "--config", str(bad)])
    assert f"{bad}:3:2: not valid YAML" in line
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert "the config is empty" in one_error_line(capsys, ["train", "--config", str(empty)])
    assert not (tmp_path / "runs").exists()

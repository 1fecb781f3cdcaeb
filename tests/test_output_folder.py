"""The output-folder rule: a folder that already holds a run's output is refused before any work, unless --resume
(continue) or --overwrite (replace); the refusal is one line, exit status 2, and nothing on disk changes."""

import os
import subprocess
import sys
import types

import pytest

from runtools.files import OutputFolderError, prepare_output_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "experiments", "science_qa", "smoke-cpu.yaml")


def _snapshot(folder):
    """Every file under folder with its bytes and mtime: 'nothing on disk changed' is equality of snapshots."""
    out = {}
    for root, _dirs, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = (fh.read(), os.stat(p).st_mtime_ns)
    return out


def _one_line_exit_2(res):
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def _old_run(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint-6").mkdir(parents=True)
    (run / "log.jsonl").write_text('{"kind": "train", "step": 6}\n')
    (run / "checkpoint-6" / "trainer_state.json").write_text('{"global_step": 6}')   # a complete checkpoint
    (run / "checkpoint-6" / "pgpo_state.json").write_text("{}")
    return run


def test_helper_refuses_resumes_and_overwrites(tmp_path):
    run = _old_run(tmp_path)
    before = _snapshot(run)
    with pytest.raises(OutputFolderError, match="--resume to continue it or --overwrite"):
        prepare_output_folder(str(run))
    assert _snapshot(run) == before
    prepare_output_folder(str(run), resume=True)
    assert _snapshot(run) == before
    with pytest.raises(OutputFolderError, match="choose one"):
        prepare_output_folder(str(run), resume=True, overwrite=True)
    prepare_output_folder(str(run), overwrite=True, clear=False)        # check only: nothing deleted
    assert _snapshot(run) == before
    prepare_output_folder(str(run), overwrite=True)
    assert os.listdir(run) == []
    prepare_output_folder(str(tmp_path / "new" / "deeper"))
    assert (tmp_path / "new" / "deeper").is_dir()


def test_helper_names_files_and_respects_holds(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(OutputFolderError, match="is a file"):
        prepare_output_folder(str(f))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    prepare_output_folder(str(out), holds=("results.json",))           # unrelated files are not output
    (out / "results.json").write_text("{}")
    with pytest.raises(OutputFolderError, match="results.json"):
        prepare_output_folder(str(out), holds=("results.json",), resume_flag=None)
    prepare_output_folder(str(out), holds=("results.json",), overwrite=True, resume_flag=None)
    assert sorted(os.listdir(out)) == ["notes.txt"]                     # only what the run writes is replaced


def _train(args, tmp_path, run):
    return subprocess.run([sys.executable, "-m", "pgpo", "train", "--config", SMOKE,
                           f"training.output_dir={run}", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"})


@pytest.mark.train
def test_train_refuses_a_used_output_dir(tmp_path, capsys):
    """The refusal as a user meets it (a `python -m pgpo train` process: exit status 2, one line); the next one in
    process (tests/cli_helpers.py: the same main, the same SystemExit(2) and one line, without a second start-up)."""
    from cli_helpers import one_error_line
    run = _old_run(tmp_path)
    before = _snapshot(run)
    line = _one_line_exit_2(_train([], tmp_path, run))
    assert "training.output_dir" in line and "--resume" in line and "--overwrite" in line
    line = one_error_line(capsys, ["train", "--config", SMOKE, f"training.output_dir={run}", "--resume", "--overwrite"])
    assert "choose one" in line
    assert _snapshot(run) == before


@pytest.mark.train
def test_train_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    from cli_helpers import one_error_line
    f = tmp_path / "run"
    f.write_text("not a folder")
    line = one_error_line(capsys, ["train", "--config", SMOKE, f"training.output_dir={f}"])
    assert "is a file" in line and f.read_text() == "not a folder"


@pytest.mark.train
def test_train_resume_keeps_and_overwrite_clears(tmp_path, monkeypatch):
    """In process, with run_training replaced: --resume and --overwrite both reach it with the folder intact (the run
    clears the previous outputs itself, after its own checks: pgpo.run.build_trainer)."""
    from pgpo import cli
    seen = []
    monkeypatch.setitem(sys.modules, "pgpo.run", types.SimpleNamespace(
        run_training=lambda cfg, resume=None, overwrite=False: seen.append(
            (resume, overwrite, sorted(os.listdir(cfg.training.output_dir))))))
    run = _old_run(tmp_path)
    assert cli.main(["train", "--config", SMOKE, f"training.output_dir={run}", "training.max_steps=10",
                     "--resume"]) == 0
    assert seen[-1] == ("auto", False, ["checkpoint-6", "log.jsonl", "resumes.jsonl"])
    assert cli.main(["train", "--config", SMOKE, f"training.output_dir={run}", "--overwrite"]) == 0
    assert seen[-1] == (None, True, ["checkpoint-6", "log.jsonl", "resumes.jsonl"])


def test_overwrite_deletes_only_run_outputs_and_never_the_working_folder(tmp_path, monkeypatch):
    from pgpo.runlog import RUN_OUTPUTS
    run = _old_run(tmp_path)
    (run / ".staging-checkpoint-7").mkdir()
    (run / "notes.txt").write_text("mine")
    prepare_output_folder(str(run), overwrite=True, holds=RUN_OUTPUTS)
    assert sorted(os.listdir(run)) == ["notes.txt"]
    (run / "log.jsonl").write_text("")
    monkeypatch.chdir(run)
    with pytest.raises(OutputFolderError, match="current folder"):
        prepare_output_folder(str(run), overwrite=True, holds=RUN_OUTPUTS)
    assert (run / "log.jsonl").exists()


def test_sde_verify_refuses_existing_results_before_simulating(tmp_path):
    out = tmp_path / "v"
    out.mkdir()
    (out / "results.json").write_text('{"old": true}')
    before = _snapshot(out)
    res = subprocess.run([sys.executable, "-m", "sde", "verify", "--problem", "quadratic", "--quick", "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "--overwrite" in _one_line_exit_2(res)
    assert _snapshot(out) == before
    f = tmp_path / "file"
    f.write_text("x")
    res = subprocess.run([sys.executable, "-m", "sde", "verify", "--problem", "quadratic", "--quick", "--out", str(f)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "is a file" in _one_line_exit_2(res) and f.read_text() == "x"


def test_study_runner_refuses_existing_results(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "theorem_sgd.json").write_text("{}")
    before = _snapshot(out)
    res = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "weak_convergence", "run.py"), "--quick",
                          "--only", "theorem_sgd", "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    line = _one_line_exit_2(res)
    assert "theorem_sgd.json" in line and "--overwrite" in line
    assert _snapshot(out) == before


def test_atomic_write_leaves_the_old_file_or_the_new_one_and_no_temporary(tmp_path, monkeypatch):
    """A failed write (here: fsync raising mid-way) keeps the previous content and leaves no temporary file; two
    writes to the same target never share a temporary name; a finished write is readable by others (0644)."""
    import os
    import stat

    from runtools.files import atomic_write_text
    target = tmp_path / "result.json"
    atomic_write_text(str(target), "old")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644

    def broken_fsync(fd):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", broken_fsync)
    try:
        atomic_write_text(str(target), "new")
    except OSError:
        pass
    else:
        raise AssertionError("the failing write did not raise")
    monkeypatch.undo()
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]

    names = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (names.append(src), real_replace(src, dst)))
    atomic_write_text(str(target), "a")
    atomic_write_text(str(target), "b")
    assert target.read_text() == "b" and len(set(names)) == 2

import importlib.util
import os
import subprocess
import sys

import pytest

from trainer_helpers import FAST, ROOT, SMOKE

LAUNCH = os.path.join(ROOT, "experiments", "science_qa", "launch.py")

pytestmark = pytest.mark.slow


def _grid(tmp_path):
    g = tmp_path / "grid.yaml"
    g.write_text(f"base: {SMOKE}\noutput_root: {tmp_path / 'runs'}\ndomains: [physics]\nseeds: [0]\n"
                 "methods:\n  sdpo: {pgpo.alpha: 0.0}\n  pgpo-a2: {pgpo.alpha: 2.0}\n")
    return str(g)


def _launch(*args):
    return subprocess.run([sys.executable, LAUNCH, *args], capture_output=True, text=True, cwd=ROOT, timeout=900)


def _launch_here(capsys, *args):
    """launch.py's main in this process (no interpreter start-up): (exit code, stdout, stderr)."""
    spec = importlib.util.spec_from_file_location("science_qa_launch", LAUNCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    capsys.readouterr()
    try:
        code = mod.main(list(args))
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.train
def test_dry_run_lists_every_run_starting_fresh(capsys):
    """Runs without a folder start (no --resume, which would refuse a folder with nothing to resume)."""
    code, stdout, stderr = _launch_here(capsys, "--dry-run", "--match", "chemistry/pgpo-a10")
    assert code == 0, stderr
    lines = [ln for ln in stdout.splitlines() if ln.strip().startswith("accelerate launch")]
    assert len(lines) == 3 and all("--resume" not in ln and "pgpo.alpha=10.0" in ln for ln in lines)
    assert "zero3-8gpu.yaml" in lines[0]


@pytest.mark.train
def test_runs_once_then_skips(tmp_path, capsys):
    """The launcher as a user runs it (a process that starts the run); the re-run that only skips and the refused
    arguments in this process."""
    grid = _grid(tmp_path)
    extra = ["--set", *FAST, "training.max_steps=1"]
    first = _launch("--grid", grid, "--accelerate", "none", "--match", "pgpo-a2", *extra)
    assert first.returncode == 0, first.stdout + first.stderr
    out = tmp_path / "runs" / "physics" / "pgpo-a2-seed0"
    assert (out / "DONE.json").exists() and (out / "checkpoint-1").is_dir()
    code, stdout, _ = _launch_here(capsys, "--grid", grid, "--accelerate", "none", "--match", "pgpo-a2", *extra)
    assert code == 0 and "done, skipped" in stdout and "0 launched" in stdout, stdout
    code, _, stderr = _launch_here(capsys, "--grid", grid, "--match", "nothing-like-this")
    assert code == 2 and "matches --match" in stderr
    code, _, stderr = _launch_here(capsys, "--grid", grid, "--block", "nosuch")
    assert code == 2 and "has blocks main (or all)" in stderr

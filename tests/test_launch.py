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


@pytest.mark.train
def test_dry_run_lists_every_run_starting_fresh():
    """Runs without a folder start (no --resume, which would refuse a folder with nothing to resume)."""
    res = _launch("--dry-run", "--match", "chemistry/pgpo-a10")
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.strip().startswith("accelerate launch")]
    assert len(lines) == 3 and all("--resume" not in ln and "pgpo.alpha=10.0" in ln for ln in lines)
    assert "zero3-8gpu.yaml" in lines[0]


@pytest.mark.train
def test_runs_once_then_skips(tmp_path):
    grid = _grid(tmp_path)
    extra = ["--set", *FAST, "training.max_steps=1"]
    first = _launch("--grid", grid, "--accelerate", "none", "--match", "pgpo-a2", *extra)
    assert first.returncode == 0, first.stdout + first.stderr
    out = tmp_path / "runs" / "physics" / "pgpo-a2-seed0"
    assert (out / "DONE.json").exists() and (out / "checkpoint-1").is_dir()
    again = _launch("--grid", grid, "--accelerate", "none", "--match", "pgpo-a2", *extra)
    assert "done, skipped" in again.stdout and "0 launched" in again.stdout
    bad = _launch("--grid", grid, "--match", "nothing-like-this")
    assert bad.returncode == 2 and "matches --match" in bad.stderr
    bad = _launch("--grid", grid, "--block", "nosuch")
    assert bad.returncode == 2 and "has blocks main (or all)" in bad.stderr

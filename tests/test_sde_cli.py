import json
import subprocess
import sys

import pytest

from sde.cli import main
from sde.results import study_curves

REQUIRED = {"problem", "discrete", "sde", "g", "eta", "error", "stderr", "slope", "slope_ci", "n_paths", "coupled"}


@pytest.mark.parametrize("argv, needle", [
    (["verify", "--problem", "nope", "--out", "x"], "unknown problem"),
    (["verify", "--problem", "quadratic", "--eta", "2.0", "--out", "x"], "eta must be smaller than T"),
    (["verify", "--problem", "quadratic", "--paths", "-5", "--out", "x"], "--paths"),
    (["verify", "--problem", "quadratic", "--eta", "0.3", "--out", "x"], "does not divide"),
    (["verify", "--problem", "quadratic"], "--out"),
])
def test_bad_arguments_exit_nonzero_with_one_line(argv, needle, tmp_path):
    res = subprocess.run([sys.executable, "-m", "sde", *argv], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert needle in lines[0]
    assert not (tmp_path / "x").exists()       # failed before any work


def test_quick_quadratic_writes_results_and_figure(tmp_path, capsys):
    out = tmp_path / "q"
    assert main(["verify", "--problem", "quadratic", "--quick", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert (out / "weak_error.png").stat().st_size > 10_000
    curves = study_curves(res)
    assert res["error_at"] == "T" and curves
    for c in curves:
        assert REQUIRED <= set(c)
        assert c["discrete"] in ("sgd", "pgpo") and c["sde"] in ("gradient_flow", "sgd_sde", "paper", "matched")
        assert len(c["eta"]) == len(c["error"]) == len(c["stderr"])
        assert isinstance(c["coupled"], bool)
    sq = [c for c in curves if (c["discrete"], c["sde"], c["g"]) == ("sgd", "sgd_sde", "sq_norm")]
    assert sq and all(0.85 <= c["slope"] <= 1.15 for c in sq)
    mc = [c for c in sq if c["method"] == "monte_carlo"]
    assert mc and mc[0]["coupled"] and mc[0]["n_paths"] >= 1000
    # the figure is regenerated from the JSON alone
    (out / "weak_error.png").unlink()
    assert main(["plot", "--results", str(out / "results.json")]) == 0
    assert (out / "weak_error.png").exists()

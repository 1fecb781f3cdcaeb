"""The benchmark scripts run (tiny sizes): they print figures, they assert nothing about speed."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


def _run(args, timeout=600):
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return res


@pytest.mark.train
def test_sde_throughput_script(tmp_path):
    out = tmp_path / "t.json"
    res = _run(["benchmarks/sde_throughput.py", "--paths", "200", "--steps", "20", "--repeats", "1",
                "--sdeint-paths", "2", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert {(r["d"], r["noise"]) for r in rows} == {(2, "diagonal"), (2, "full"), (10, "diagonal"), (10, "full")}
    assert all(r["project"] > 0 and r["project-2w"] > 0 and r["ratio_2w_best_peer"] > 0 for r in rows)
    assert "best peer" in res.stdout
    assert {"jax-scan", "diffrax", "torchsde"} <= set(rows[0])           # the dev extra's peers all ran


@pytest.mark.train
def test_pgpo_overhead_script(tmp_path):
    out = tmp_path / "o.json"
    _run(["benchmarks/pgpo_overhead.py", "--steps", "1", "--memory-steps", "1", "--batch", "1", "--prompt", "8",
          "--response", "8", "--json", str(out)])
    s = json.loads(out.read_text())["summary"]
    assert set(s) == {"sdpo", "pgpo", "pgpo_full", "smoothed", "scale_free", "sample", "token"}
    assert s["sdpo"]["time_ratio"] == 1.0 and all(v["peak_rss_kib"] > 0 for v in s.values())


@pytest.mark.train
def test_gpu_check_script_in_cpu_mode(tmp_path):
    out = tmp_path / "g.json"
    _run(["benchmarks/gpu_check.py", "--device", "cpu", "--small", "--json", str(out)])
    r = json.loads(out.read_text())
    assert r["sdpo"]["multiplier"] == [1.0, 1.0] and all(m > 1 for m in r["pgpo"]["multiplier"])
    assert set(r["information_memory"]) >= {"full_chunked_128", "full_one_piece", "topk100_tail"}
    assert r["ema_fp32"]["measured_gib"] == r["ema_fp32"]["planned_gib"] > 0       # 4 bytes per parameter
    assert r["sdpo"]["planned_peak_gib"] > 0

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
    import importlib.util
    installed = {peer for peer, module in (("jax-scan", "jax"), ("diffrax", "diffrax"), ("torchsde", "torchsde"))
                 if importlib.util.find_spec(module) is not None}
    assert installed <= set(rows[0])                   # every installed peer of the dev extra ran (CI: all three)


@pytest.mark.train
def test_pgpo_overhead_script(tmp_path):
    """The summary's medians and ratios recomputed from the per-step times and per-variant memory the script records
    (two timed steps, so that the median of per-step ratios differs from the ratio of medians); a 2 048-token
    vocabulary (the script's default is Qwen3's). Three variants, one for each way a step computes I_k: none (SDPO),
    from the full logits, per token from the loss's support with weights (each variant's memory is a fresh process;
    the others differ only in the controller's settings, which tests/test_variants_trainer.py trains)."""
    import statistics
    out = tmp_path / "o.json"
    variants = ["sdpo", "pgpo_full", "token"]
    _run(["benchmarks/pgpo_overhead.py", "--steps", "2", "--memory-steps", "1", "--batch", "1", "--prompt", "8",
          "--response", "8", "--vocab", "2048", "--variants", *variants, "--json", str(out)])
    rec = json.loads(out.read_text())
    s, times, mem = rec["summary"], rec["times"], rec["memory"]
    assert list(s) == variants
    assert all(m["vocab"] == 2048 for m in mem.values())
    assert all(len(times[v]) == 2 and min(times[v]) > 0 for v in s)
    base = statistics.median(times["sdpo"])
    for v, row in s.items():
        assert row["median_step_s"] == pytest.approx((times[v][0] + times[v][1]) / 2, rel=1e-12)
        assert row["time_ratio"] == pytest.approx(row["median_step_s"] / base, rel=1e-12)
        pairs = [a / b for a, b in zip(times[v], times["sdpo"])]
        assert row["paired_time_ratio"] == pytest.approx((pairs[0] + pairs[1]) / 2, rel=1e-12)
        assert row["peak_rss_kib"] == mem[v]["peak_rss_kib"] > 0
        assert row["peak_ratio"] == pytest.approx(mem[v]["peak_rss_kib"] / mem["sdpo"]["peak_rss_kib"], rel=1e-12)


@pytest.mark.train
def test_gpu_check_script_in_cpu_mode(tmp_path):
    out = tmp_path / "g.json"
    from trainer_helpers import SMALL_TOKENIZER
    _run(["benchmarks/gpu_check.py", "--device", "cpu", "--small", "--tokenizer", SMALL_TOKENIZER, "--json", str(out)])
    r = json.loads(out.read_text())
    assert r["sdpo"]["multiplier"] == [1.0, 1.0] and all(m > 1 for m in r["pgpo"]["multiplier"])
    assert set(r["information_memory"]) >= {"full_chunked_128", "full_one_piece", "topk100_tail"}
    assert r["ema_fp32"]["measured_gib"] == r["ema_fp32"]["planned_gib"] > 0       # 4 bytes per parameter
    assert r["sdpo"]["planned_peak_gib"] > 0


def test_suite_cpu_script_accounts_for_each_process(tmp_path):
    """One test that starts one Python process: the script records pytest and that process, files the process under
    the tests' processes, and the hooks' CPU seconds stay within the getrusage total (each hook reads its process's
    CPU before the process ends; os.times counts in clock ticks, hence one tick per process of slack)."""
    out = tmp_path / "s.json"
    _run(["benchmarks/suite_cpu.py", "--json", str(out), "--", "-q", "-p", "no:cacheprovider",
          "tests/test_multiplier.py::test_light_imports_do_not_pull_torch"])
    rec = json.loads(out.read_text())
    assert rec["exit"] == 0
    procs = rec["processes"]
    main = [p for p in procs if p["argv"][1].endswith("pytest/__main__.py")]
    started = [p for p in procs if p["argv"][1] == "-c"]
    assert len(main) == 1 and len(started) == 1 and len(procs) == 2, procs
    assert started[0]["ppid"] == main[0]["pid"] and started[0]["xdist_worker"] is None
    assert rec["pytest_cpu_s"] == main[0]["cpu_s"]
    assert rec["by_folder"] == {"(none named)": started[0]["cpu_s"]}
    assert 0 < main[0]["cpu_s"] + started[0]["cpu_s"] <= rec["cpu_s"] + 2 / os.sysconf("SC_CLK_TCK")

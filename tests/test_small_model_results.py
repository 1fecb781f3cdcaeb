"""The committed small-model experiment (paper_figures/small_model) against the README's words: its numbers
recomputed from the committed run logs. Torch-free."""

import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("method", ["pgpo-low", "pgpo-high", "pgpo-scale-free"])
def test_committed_logs_support_the_readme_paired_differences(method):
    """The README's paired PGPO - SDPO table, recomputed from the committed run logs (the last and the best
    evaluation of each seed, minus SDPO's with the same seed, in points) and a t interval computed here."""
    from statistics import mean, stdev

    from scipy.stats import t as student_t
    logs = os.path.join(ROOT, "paper_figures", "small_model", "logs")

    def evals(name, seed):
        with open(os.path.join(logs, f"{name}-seed{seed}", "log.jsonl")) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return [r["mean_at_k"] for r in rows if r["kind"] == "eval"]

    readme = open(os.path.join(ROOT, "README.md")).read()
    label = {"pgpo-low": "PGPO α = 1.9", "pgpo-high": "PGPO α = 7.6", "pgpo-scale-free": "PGPO scale-free"}[method]
    row = next(line for line in readme.splitlines() if line.startswith(f"| {label} | ") and "[" in line)
    for pick in (lambda e: e[-1], max):
        diffs = [100 * (pick(evals(method, s)) - pick(evals("sdpo", s))) for s in range(3)]
        half = student_t.ppf(0.975, 2) * stdev(diffs) / 3 ** 0.5
        text = ", ".join(f"{d:+.1f}" for d in diffs).replace("-", "−")
        interval = f"{mean(diffs):+.1f} [{mean(diffs) - half:+.1f}, {mean(diffs) + half:+.1f}]".replace("-", "−")
        assert text in row and interval in row, (row, text, interval)

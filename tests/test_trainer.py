"""End-to-end PGPO trainer tests on CPU: tiny random Qwen3, the real data; the README's smoke run with the full Qwen3
tokenizer, the rest on its 2 048-token cut (trainer_helpers.SMALL_TOKENIZER)."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

import reference_sdpo
from trainer_helpers import ROOT, SMOKE, make_trainer, params, recording_trainer_cls

pytestmark = pytest.mark.slow


_CONSOLE = {}


def _log(out_dir):
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The README's smoke command, as a user runs it."""
    out = tmp_path_factory.mktemp("smoke")
    cmd = [sys.executable, "-m", "pgpo", "train", "--config", SMOKE, f"training.output_dir={out}"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
    _CONSOLE.update(stdout=res.stdout, stderr=res.stderr)
    return out


def test_smoke_console_is_one_compact_line_per_step(smoke_run):
    """stdout: one `step k/2 ...` line per optimizer step with I, m and an ETA, and no metrics dict; stderr: no
    FutureWarning from the pinned libraries."""
    import re
    steps = [ln for ln in _CONSOLE["stdout"].splitlines() if re.match(r"^step \d+/2 ", ln)]
    assert len(steps) == 2 and steps[0].startswith("step 1/2") and steps[1].startswith("step 2/2")
    rec = [r for r in _log(smoke_run) if r["kind"] == "train"]
    for ln, r in zip(steps, rec):
        assert f"I {r['info']:.3g}" in ln and f"m {r['multiplier']:.3g}" in ln and "ETA" in ln and len(ln) < 140
    out = _CONSOLE["stdout"] + _CONSOLE["stderr"]
    assert "{'loss'" not in out and "'self_distillation/" not in out
    assert "FutureWarning" not in _CONSOLE["stderr"]


def test_smoke_run_logs_finite_information_and_the_multiplier_of_the_logged_information(smoke_run):
    """The CLI run's log is self-consistent: m = min(1 + 2 I, 2) of the logged I (smoke preset: alpha 2, m_max 2).
    That the logged I is the right I is test_multiplier_is_m_of_independently_recomputed_information's job."""
    lines = [r for r in _log(smoke_run) if r["kind"] == "train"]
    assert [r["step"] for r in lines] == [1, 2]
    for r in lines:
        assert math.isfinite(r["info"]) and r["info"] > 0
        assert 1.0 < r["multiplier"] <= 2.0 and r["fallback"] == 0
        assert r["multiplier"] == pytest.approx(min(1 + 2.0 * r["info"], 2.0))
        assert r["skipped"] == 0 and r["skipped_total"] == 0
        for key in ("loss", "reward_mean", "success_fraction", "distilled_fraction", "lr", "grad_norm", "tokens",
                    "step_time_s"):
            assert r[key] is not None, key
        assert r["distilled_fraction"] == 1.0               # answer-key feedback: every sample is distilled


def test_smoke_run_writes_complete_checkpoints(smoke_run):
    names = sorted(os.listdir(smoke_run))
    assert "checkpoint-1" in names and "checkpoint-2" in names
    ck = os.path.join(smoke_run, "checkpoint-2")
    for f in ("config.json", "model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth",
              "trainer_state.json", "tokenizer_config.json", "pgpo_state.json", "teacher/ema_fp32.safetensors"):
        assert os.path.exists(os.path.join(ck, f)), f
    st = json.load(open(os.path.join(ck, "pgpo_state.json")))["controller"]["modulator"]
    assert st["steps"] == 2 and [h["multiplier"] for h in st["history"]] == \
        [r["multiplier"] for r in _log(smoke_run) if r["kind"] == "train"]
    # the checkpoint loads as a plain Hugging Face model
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(ck)
    assert m.config.model_type == "qwen3"


def test_eval_command_on_the_smoke_checkpoint(smoke_run, tmp_path):
    out = tmp_path / "eval.json"
    cmd = [sys.executable, "-m", "pgpo", "eval", "--model", os.path.join(smoke_run, "checkpoint-2"), "--domain",
           "chemistry", "--k", "2", "--max-questions", "2", "--max-new-tokens", "8", "--backend", "transformers",
           "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    r = json.loads(out.read_text())
    assert r["k"] == 2 and r["n_questions"] == 2 and 0.0 <= r["mean_at_k"] <= 1.0
    assert "mean@2" in res.stdout


def test_alpha_zero_is_sdpo_bit_for_bit(tmp_path, sdpo_reference_params):
    """Without the rollout importance weight (which TRL's SDPO never applies: it drops the rollout log-probs)
    and in fp32 (where TRL's in-place EMA and the fp32 average agree), alpha = 0 is TRL's SDPO exactly (the same
    settings' SDPOTrainer run: conftest.sdpo_reference_params)."""
    a = make_trainer(tmp_path / "pgpo", ["pgpo.alpha=0", "training.distillation_is_clip=null"])
    a.train()
    pa, pb = params(a), sdpo_reference_params
    assert pa.keys() == pb.keys()
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert all(r.multiplier == 1.0 for r in a.pgpo_controller().modulator.history)
    assert any(not torch.equal(pa[k], params_before) for k, params_before in
               _initial(tmp_path / "pgpo").items())             # and training did move the weights


def _initial(out_dir):
    from safetensors.torch import load_file
    sd = load_file(os.path.join(out_dir, "init_model", "model.safetensors"))
    return {k if k.startswith("model.") else k: v for k, v in sd.items()}


def test_first_pgpo_update_is_m1_times_the_sdpo_update(tmp_path):
    sdpo = make_trainer(tmp_path / "sdpo", ["pgpo.alpha=0"], max_steps=1)
    p0 = params(sdpo)
    sdpo.train()
    pgpo = make_trainer(tmp_path / "pgpo", ["pgpo.alpha=2", "pgpo.m_max=3"], max_steps=1,
                        trainer_cls=recording_trainer_cls())
    assert all(torch.equal(p0[k], v) for k, v in params(pgpo).items())          # same start
    pgpo.train()
    (rec,) = pgpo.pgpo_controller().modulator.history
    m1 = rec.multiplier
    want = min(1 + 2 * reference_sdpo.information(pgpo.records, 100), 3.0)    # I_1 recomputed from the logits
    assert m1 == pytest.approx(want, rel=1e-5) and 1.1 < m1 < 3.0 and rec.fallback is None
    ps, pp = params(sdpo), params(pgpo)
    eps = torch.finfo(torch.float32).eps
    for k in p0:
        d_s, d_p = ps[k] - p0[k], pp[k] - p0[k]
        tol = 4 * eps * m1 * (p0[k].abs() + ps[k].abs() + pp[k].abs()) + 1e-12   # float32 rounding of 3 values
        assert torch.all((d_p - m1 * d_s).abs() <= tol), k
    assert not torch.equal(ps["model.embed_tokens.weight"], pp["model.embed_tokens.weight"])


def test_resume_from_checkpoint_is_exact(tmp_path):
    full = make_trainer(tmp_path / "full", max_steps=2)
    full.train()
    first = make_trainer(tmp_path / "split", max_steps=1)
    first.train()
    assert os.path.isdir(tmp_path / "split" / "checkpoint-1")
    resumed = make_trainer(tmp_path / "split", max_steps=2)
    resumed.train(resume_from_checkpoint=str(tmp_path / "split" / "checkpoint-1"))
    pf, pr = params(full), params(resumed)
    assert all(torch.equal(pf[k], pr[k]) for k in pf)
    keys = ("step", "loss", "info", "multiplier", "grad_norm", "reward_mean", "lr")
    lf = [{k: r[k] for k in keys} for r in _log(tmp_path / "full") if r["kind"] == "train"]
    lr = [{k: r[k] for k in keys} for r in _log(tmp_path / "split") if r["kind"] == "train"]
    assert lf == lr
    h = resumed.pgpo_controller().modulator.history
    assert [r.step for r in h] == [1, 2]                          # PGPO state came back with the checkpoint


@pytest.mark.slow
def test_report_to_wandb_offline_logs_every_step(tmp_path, monkeypatch):
    """training.report_to=wandb with W&B offline: one local run whose history has the per-step metrics."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    t = make_trainer(tmp_path / "run", ["training.report_to=wandb"], max_steps=2)
    assert "wandb" in t.args.report_to
    t.train()
    import glob

    import wandb
    wandb.finish()                                # end the run (Trainer leaves it open for later logs)
    wandb.teardown()                              # finish only tells wandb's service process; this waits for it to
    #                                               close the run file (else a loaded machine reads a bare header)
    runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(runs) == 1 and os.path.getsize(runs[0]) > 0
    data = open(runs[0], "rb").read()             # the run's records: protobuf, metric names stored as bytes
    for key in (b"train/pgpo/info", b"train/pgpo/multiplier", b"train/loss"):
        assert key in data, key


def test_report_to_names_must_be_known_and_installed():
    from pgpo.config import ConfigError, load_config
    with pytest.raises(ConfigError, match="'comet' is not one of"):
        load_config(None, ["training.report_to=comet"])
    assert load_config(None, ["training.report_to=none"]).training.report_to == []
    assert "not installed (pip install mlflow)" in str(pytest.raises(ConfigError, load_config, None,
                                                                      ["training.report_to=mlflow"]).value)


def test_sdpo_metric_names_are_logged_unchanged(smoke_run):
    """SDPO's `self_distillation/distillation_loss` and `sdpo/distillation_loss` (dashboards keyed on SDPO's names find
    them); PGPO's additions under pgpo/ and nothing of SDPO's renamed to pgpo/."""
    hist = json.load(open(os.path.join(smoke_run, "checkpoint-2", "trainer_state.json")))["log_history"]
    keys = set().union(*(h.keys() for h in hist if "loss" in h))
    assert {"self_distillation/distillation_loss", "sdpo/distillation_loss", "pgpo/info", "pgpo/multiplier"} <= keys
    assert "pgpo/distillation_loss" not in keys

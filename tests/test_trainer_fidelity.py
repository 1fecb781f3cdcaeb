"""The trainer against independent recomputations: I_k and m_k, the applied AdamW update, the fp32 EMA teacher,
the rollout importance weight, the non-finite-gradient skip, and the master-weights refusal."""

import json
import os

import pytest
import torch

import reference_sdpo as ref
from trainer_helpers import make_trainer, recording_trainer_cls

pytestmark = pytest.mark.slow

K = 100            # smoke preset: top-100 + tail, JSD alpha 0.5, EMA rate 0.05


def _log(out_dir):
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f if json.loads(line)["kind"] == "train"]


class Snapshots:
    """A TrainerCallback that copies parameters, gradients and AdamW state around every optimizer step."""

    def __init__(self, trainer):
        from transformers import TrainerCallback

        snaps = self
        self.trainer, self.pre, self.post, self.end = trainer, [], [], []

        class CB(TrainerCallback):
            def on_pre_optimizer_step(self, args, state, control, **kw):
                snaps.pre.append(snaps._state(with_grads=True))

            def on_optimizer_step(self, args, state, control, **kw):
                snaps.post.append(snaps._state(with_grads=False))

            def on_step_end(self, args, state, control, **kw):
                snaps.end.append({"student": {n: p.detach().clone() for n, p in trainer.model.named_parameters()},
                                  "teacher": {n: p.detach().clone()
                                              for n, p in trainer.teacher_model.named_parameters()}})

        trainer.add_callback(CB())

    def _state(self, with_grads):
        opt = self.trainer.optimizer.optimizer if hasattr(self.trainer.optimizer, "optimizer") else self.trainer.optimizer
        out = {"groups": [], "lr": [g["lr"] for g in opt.param_groups]}
        for g in opt.param_groups:
            rows = []
            for p in g["params"]:
                st = opt.state.get(p, {})
                rows.append({"p": p.detach().clone(), "g": p.grad.detach().clone() if with_grads and p.grad is not None
                             else None, "m": st["exp_avg"].clone() if "exp_avg" in st else torch.zeros_like(p),
                             "v": st["exp_avg_sq"].clone() if "exp_avg_sq" in st else torch.zeros_like(p),
                             "t": float(st["step"]) if "step" in st else 0.0})
            out["groups"].append({"wd": g["weight_decay"], "betas": g["betas"], "eps": g["eps"], "rows": rows})
        return out


def _adamw_update(pre, group_index, row_index, lr):
    """The unmodulated torch AdamW update of one parameter, in float64, from the state before the step."""
    g = pre["groups"][group_index]
    row = g["rows"][row_index]
    (b1, b2), eps, wd = g["betas"], g["eps"], g["wd"]
    p, grad, m, v, t = (row["p"].double(), row["g"].double(), row["m"].double(), row["v"].double(), row["t"] + 1)
    m1, v1 = b1 * m + (1 - b1) * grad, b2 * v + (1 - b2) * grad * grad
    denom = v1.sqrt() / (1 - b2 ** t) ** 0.5 + eps
    return -lr * wd * p - (lr / (1 - b1 ** t)) * m1 / denom


def test_multiplier_is_m_of_independently_recomputed_information(tmp_path):
    """Per optimizer step (gradient accumulation 2, warm-up 2, three steps of which two have lr > 0):
    I_k recomputed in float64 from the student and teacher logits of both micro-batches (KL(teacher || student)
    on the student's top-100 + tail, token mean) equals the trainer's; m_k = min(1 + 2 I_k, 3); and the applied
    AdamW update is m_k times the unmodulated update computed here from the optimizer state before the step."""
    alpha, m_max = 2.0, 3.0
    tr = make_trainer(tmp_path, ["training.per_device_train_batch_size=4", "training.warmup_steps=2",
                                 f"pgpo.alpha={alpha}", f"pgpo.m_max={m_max}"], max_steps=3,
                      trainer_cls=recording_trainer_cls())
    assert tr.args.gradient_accumulation_steps == 2
    snaps = Snapshots(tr)
    tr.train()
    hist = tr.pgpo_controller().modulator.history
    assert len(hist) == 3 and len(snaps.pre) == len(snaps.post) == 3
    positive_lr_steps = 0
    for k in range(3):
        recs = [r for r in tr.records if r["step"] == k]
        assert len(recs) == 2                                            # both micro-batches of step k
        info = ref.information(recs, K)
        assert hist[k].info == pytest.approx(info, rel=1e-5)
        m = min(1 + alpha * info, m_max)
        assert hist[k].multiplier == pytest.approx(m, rel=1e-5) and hist[k].fallback is None
        pre, post = snaps.pre[k], snaps.post[k]
        base_lr = pre["lr"][0]
        positive_lr_steps += base_lr > 0
        eps32 = torch.finfo(torch.float32).eps
        for gi, g in enumerate(pre["groups"]):
            for ri, row in enumerate(g["rows"]):
                want = hist[k].multiplier * _adamw_update(pre, gi, ri, base_lr)
                got = post["groups"][gi]["rows"][ri]["p"].double() - row["p"].double()
                tol = 4 * eps32 * (row["p"].double().abs() + got.abs()) + 1e-5 * want.abs() + 1e-30
                assert torch.all((got - want).abs() <= tol), (k, gi, ri)
    assert positive_lr_steps == 2


def test_teacher_is_the_fp32_ema_of_the_student_history(tmp_path):
    """After each step the teacher equals (1 - r) teacher + r student computed here from the recorded student
    parameters (r = 0.05, fp32), starting from the initial weights; resuming carries the average."""
    from safetensors.torch import load_file

    tr = make_trainer(tmp_path, [], max_steps=3)
    snaps = Snapshots(tr)
    init = {n: p.detach().clone() for n, p in tr.teacher_model.named_parameters()}
    tr.train()
    ema = {n: v.double() for n, v in init.items()}
    for end in snaps.end:
        for n in ema:
            ema[n] = 0.95 * ema[n] + 0.05 * end["student"][n].double()
            assert torch.allclose(end["teacher"][n].double(), ema[n], rtol=0, atol=1e-6), n
    saved = load_file(os.path.join(tmp_path, "checkpoint-3", "teacher", "ema_fp32.safetensors"))
    assert all(saved[n].dtype == torch.float32 and torch.equal(saved[n], snaps.end[-1]["teacher"][n]) for n in ema)
    assert any(not torch.equal(snaps.end[-1]["teacher"][n], init[n]) for n in ema)


def test_rollout_importance_weight_uses_the_generating_policy_logprobs(tmp_path):
    """Rollout log-probs from a perturbed copy of the model (as a vLLM engine with other numerics would give)
    reach the loss: each micro-batch's loss equals the SDPO top-100 + tail JSD with per-token weight
    min(pi_student / pi_rollout, 2), recomputed here; some weights are clipped, some are below 1."""
    base = recording_trainer_cls()

    class PerturbedRollouts(base):
        def _generate_transformers(self, prompt_ids):
            prompts, completions = super()._generate_transformers(prompt_ids)
            if self.perturbed is None:
                import copy
                self.perturbed = copy.deepcopy(self.accelerator.unwrap_model(self.model)).eval()
                g = torch.Generator().manual_seed(7)
                with torch.no_grad():
                    for p in self.perturbed.parameters():
                        p.add_(0.1 * torch.randn(p.shape, generator=g))
            lps = []
            with torch.no_grad():
                for pr, co in zip(prompts, completions):
                    ids = torch.tensor([list(pr) + list(co)])
                    logits = self.perturbed(input_ids=ids).logits[0, len(pr) - 1:-1].double() / self.temperature
                    lp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(co).unsqueeze(-1)).squeeze(-1)
                    lps.append(lp)
            self.rollout_truth.extend(lps)
            self._rollout_logprobs = [[[float(x)] for x in lp] for lp in lps]        # vLLM's format
            return prompts, completions

    PerturbedRollouts.perturbed = None
    PerturbedRollouts.rollout_truth = []
    tr = make_trainer(tmp_path, [], max_steps=1, trainer_cls=PerturbedRollouts)
    tr.rollout_truth = []
    tr.train()
    (rec,) = tr.records
    B, T = rec["completion_ids"].shape
    rollout = torch.zeros(B, T, dtype=torch.float64)
    for i, lp in enumerate(tr.rollout_truth):
        rollout[i, :len(lp)] = lp
    want = ref.distillation_loss(rec, K, 0.5, 2.0, rollout)
    assert float(rec["loss"]) == pytest.approx(want, rel=1e-5)
    ratio = (ref.token_logprobs(rec["student_logits"], rec["completion_ids"]) - rollout).exp()[rec["loss_mask"] > 0]
    assert (ratio > 2).any() and (ratio < 1).any()
    assert float(rec["loss"]) != pytest.approx(ref.distillation_loss(rec, K, 0.5, None, rollout), rel=1e-3)


def test_transformers_rollouts_carry_the_generating_weights_logprobs(tmp_path):
    """On the transformers generation path the rollout log-probs are the generating (current) weights' own:
    recomputed here from the recorded student logits of the same step (ratio 1 up to float rounding)."""
    tr = make_trainer(tmp_path, [], max_steps=1, trainer_cls=recording_trainer_cls())
    tr.train()
    (rec,) = tr.records
    assert rec["rollout_logps"] is not None
    mask = rec["loss_mask"] > 0
    student = ref.token_logprobs(rec["student_logits"], rec["completion_ids"])
    assert torch.allclose(rec["rollout_logps"].double()[mask], student[mask], atol=1e-4)


def test_nonfinite_gradient_skips_the_step(tmp_path):
    """A NaN gradient at step 2: parameters, AdamW moments, the EMA teacher and the PGPO history are untouched,
    the log says skipped, and step 3 trains again."""
    from transformers import TrainerCallback

    tr = make_trainer(tmp_path, [], max_steps=3)

    class InjectNaN(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kw):
            if state.global_step == 1:
                next(tr.model.parameters()).grad[0, 0] = float("nan")

    tr.add_callback(InjectNaN())
    snaps = Snapshots(tr)
    tr.train()
    s1, s2, s3 = snaps.end
    assert all(torch.equal(s1["student"][n], s2["student"][n]) for n in s1["student"])
    assert all(torch.equal(s1["teacher"][n], s2["teacher"][n]) for n in s1["teacher"])
    assert any(not torch.equal(s2["student"][n], s3["student"][n]) for n in s1["student"])
    assert len(snaps.post) == 3                        # HF's loop called step(); the guard did not run the update
    after1, after2 = snaps.post[0], snaps.post[1]
    for g1, g2 in zip(after1["groups"], after2["groups"]):
        for r1, r2 in zip(g1["rows"], g2["rows"]):
            assert torch.equal(r1["m"], r2["m"]) and torch.equal(r1["v"], r2["v"]) and r1["t"] == r2["t"]
    hist = tr.pgpo_controller().modulator.history
    assert [r.step for r in hist] == [1, 2] and tr.pgpo_controller().guard.skipped == 1
    log = _log(tmp_path)
    assert [r["skipped"] for r in log] == [0, 1, 0] and [r["skipped_total"] for r in log] == [0, 1, 1]
    # the skipped step applied no m_k: its row says so (null), the others show theirs
    assert log[1]["multiplier"] is None and log[0]["multiplier"] > 1 and log[2]["multiplier"] > 1
    assert log[1]["info"] is not None                  # I_k was measured all the same
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())
    st = json.load(open(os.path.join(tmp_path, "checkpoint-3", "pgpo_state.json")))["controller"]
    assert st["guard"]["skipped"] == 1


def test_bf16_weights_without_master_weights_are_refused_before_loading(tmp_path, capsys):
    from pgpo.config import ConfigError

    with pytest.raises(ConfigError, match=r"^model\.dtype: bfloat16 weights without fp32 master weights.*"
                                          r"model\.dtype=float32.*DeepSpeed"):
        make_trainer(tmp_path, ["model.dtype=bfloat16"])
    assert not os.path.exists(os.path.join(tmp_path, "init_model"))      # nothing was built or loaded
    from cli_helpers import one_error_line
    from trainer_helpers import SMOKE
    line = one_error_line(capsys, ["train", "--config", SMOKE, "model.dtype=bfloat16",
                                   f"training.output_dir={tmp_path / 'cli'}"])   # `pgpo train`: exit 2, one line
    assert "model.dtype: bfloat16" in line
    assert not (tmp_path / "cli" / "init_model").exists()


def test_the_python_api_refuses_bf16_weights_without_master_weights(tmp_path):
    """PGPOConfig + PGPOTrainer built directly (no CLI): bf16 weights under DDP-style training are refused in one
    line, the same as the CLI's."""
    import datasets
    from transformers import AutoTokenizer

    from pgpo.models import write_tiny_qwen3
    from pgpo.trainer import PGPOTrainer
    from pgpo.trainer_config import PGPOConfig
    from trainer_helpers import SMALL_TOKENIZER

    path = write_tiny_qwen3(str(tmp_path / "m"), SMALL_TOKENIZER, seed=0, hidden_size=32, num_hidden_layers=1)
    tok = AutoTokenizer.from_pretrained(path)
    ds = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": "1 + 1?"}]}] * 4)
    args = PGPOConfig(output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, num_generations=2, max_steps=1,
                      max_completion_length=4, use_cpu=True, report_to=[], bf16=False,
                      model_init_kwargs={"dtype": "bfloat16"})
    with pytest.raises(ValueError, match=r"^model\.dtype: bfloat16 weights without fp32 master weights"):
        PGPOTrainer(model=path, reward_funcs=[lambda completions, **k: [0.0] * len(completions)], args=args,
                    train_dataset=ds, processing_class=tok)

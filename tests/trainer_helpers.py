"""Small-run helpers shared by the trainer tests and the DDP worker."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "experiments", "science_qa", "smoke-cpu.yaml")
# Qwen3's tokenizer cut to 2 048 tokens (tests/data/make_small_tokenizer.py): the tiny model's output layer has 2 048
# rows instead of 151 936, most of its compute. The tests that run the smoke preset as a user does keep the full one.
SMALL_TOKENIZER = os.path.join(ROOT, "tests", "data", "qwen3-tokenizer-2k")
SMALL_VOCAB = [f"model.tokenizer={SMALL_TOKENIZER}"]
# 2 questions x 4 rollouts = 8 completions per optimizer step, 16 new tokens, the small vocabulary: about a second
# per step
FAST = [*SMALL_VOCAB, "training.generation_batch_size=8", "training.num_generations=4", "training.per_device_train_batch_size=8",
        "training.max_completion_length=16", "training.max_prompt_length=512", "data.max_train_questions=8"]


def make_trainer(out_dir, overrides=(), max_steps=2, trainer_cls=None, reward_funcs=None):
    from pgpo.config import load_config
    from pgpo.run import build_trainer

    cfg = load_config(SMOKE, FAST + [f"training.output_dir={out_dir}", f"training.max_steps={max_steps}",
                                     *overrides])
    return build_trainer(cfg, trainer_cls=trainer_cls, reward_funcs=reward_funcs)


def params(trainer):
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters()}


def param_digest(model) -> str:
    """SHA-256 of a model's parameter names and bytes (the multi-process workers compare ranks with it)."""
    import hashlib
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def reference_ema(values, n):
    """Bias-corrected EMA with weight 1/n, the Adam way: S_k = (1 - w) S + w I_k, Ibar_k = S_k / (1 - (1 - w)^k)."""
    w, s, out = 1.0 / n, 0.0, []
    for k, v in enumerate(values, start=1):
        s = (1 - w) * s + w * v
        out.append(s / (1 - (1 - w) ** k))
    return out


def recording_trainer_cls():
    """PGPOTrainer that keeps, per training micro-batch, what the loss saw and returned (for independent
    recomputation in tests): student/teacher logits, masks, completion ids, rollout log-probs, loss, and the
    sample / token weights' (normaliser, local sum, local count) when the loss was re-weighted with normalize."""
    from pgpo.trainer import PGPOTrainer

    class RecordingTrainer(PGPOTrainer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.records = []

        def _compute_self_distillation_loss(self, model, inputs, distillation_logits):
            loss = super()._compute_self_distillation_loss(model, inputs, distillation_logits)
            if model.training:
                dl = distillation_logits
                old = inputs.get("rollout_per_token_logps")
                self.records.append({"step": self.state.global_step,
                                     "student_logits": dl.student_logits.detach().clone(),
                                     "teacher_logits": dl.teacher_logits.detach().clone(),
                                     "loss_mask": dl.loss_mask.detach().clone(),
                                     "completion_ids": dl.completion_ids.detach().clone(),
                                     "rollout_logps": None if old is None else old.detach().clone(),
                                     "loss": loss.detach().clone(),
                                     "normaliser": list(self._pgpo.normalisers[-1])
                                     if self._pgpo is not None and self._pgpo.normalisers else None})
            return loss

    return RecordingTrainer

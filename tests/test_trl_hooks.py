"""Guards for the library internals the trainer relies on, by what they do rather than by their source text.

One short recorded run (a tiny Qwen3, two optimizer steps of two micro-batches each, a checkpoint after each step)
watches every TRL / transformers hook PGPOTrainer overrides or calls: that TRL still calls it, when, with what, and
what it does with the result. If one of these fails after an upgrade, the message names the hook: read
pgpo/trainer.py before relaxing anything, the hook moved or changed meaning.

Not covered here: DeepSpeed's `_global_grad_norm` / `ds_tensor` / `ds_persist` (they need a DeepSpeed engine), and
TRL's vLLM path (`_generate_vllm`, `VLLMGeneration`'s sleep flag and log-probs), which tests/test_vllm_engine.py
runs with a real engine in the vLLM environment.
"""

import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest

import torch
import trl

from trainer_helpers import make_trainer

STEPS, ACCUMULATION = 2, 2


def test_trl_version_is_the_pinned_one():
    assert trl.__version__ == "1.16.0", "pgpo.trainer was written against TRL 1.16.0 (see pyproject.toml)"


def test_every_setting_the_run_makes_itself_is_a_field_of_sdpo_config():
    """The loader checks a config's `training` keys against PGPOConfig; the fields it sets from other sections or
    fixes must exist in TRL too (a rename upstream fails here, by name)."""
    from trl.experimental.sdpo import SDPOConfig

    from pgpo.config import FIXED, SET_FROM
    from pgpo.prompts import teacher_templates
    names = {f.name for f in dataclasses.fields(SDPOConfig)}
    ours = {*SET_FROM, *FIXED, *teacher_templates("paper"), *teacher_templates("reference"), "model_init_kwargs",
            "report_to", "use_cpu"} - {"pgpo"}
    missing = sorted(ours - names)
    assert not missing, f"SDPOConfig / TrainingArguments no longer have {missing}"


def test_the_settings_pgpo_passes_raise_no_deprecation_warning(tmp_path):
    """Every setting under its current name (e.g. transformers' activation_checkpointing, not the deprecated
    gradient_checkpointing, whichever name the config uses), for TRL's default and with checkpointing on and off."""
    import warnings

    from pgpo.config import load_config
    for extra, on in (([], True), (["training.gradient_checkpointing=true"], True),
                      (["training.gradient_checkpointing=false"], False),
                      (["training.activation_checkpointing=false"], False)):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            args = load_config(None, [f"training.output_dir={tmp_path}", *extra]).training
        deprecations = [f"{w.category.__name__}: {w.message}" for w in seen
                        if issubclass(w.category, (FutureWarning, DeprecationWarning))]
        assert not deprecations, deprecations
        assert args.gradient_checkpointing is on
        if hasattr(args, "activation_checkpointing"):
            assert args.activation_checkpointing is on


def _spy_trainer_cls():
    from pgpo.trainer import PGPOTrainer

    class Spy(PGPOTrainer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.calls = []                       # (hook, details) in call order

        def sample_rollouts(self, inputs):
            self.calls.append(("sample_rollouts", {"n": len(inputs)}))
            return super().sample_rollouts(inputs)

        def _generate(self, prompt_ids):
            self.calls.append(("_generate", {"n": len(prompt_ids)}))
            return super()._generate(prompt_ids)

        def _compute_self_distillation_loss(self, model, inputs, distillation_logits):
            loss = super()._compute_self_distillation_loss(model, inputs, distillation_logits)
            self.calls.append(("distillation_loss", {
                "logits_type": type(distillation_logits), "training": model.training, "loss": loss.detach().clone(),
                "sync": self.accelerator.gradient_state.sync_gradients, "step": self.state.global_step,
                "logits": distillation_logits}))
            return loss

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if model.training:
                self.calls.append(("compute_loss", {"loss": loss.detach().clone()}))
            return loss

        def _save_optimizer_and_scheduler(self, output_dir):
            self.calls.append(("save", {"dir": output_dir}))
            super()._save_optimizer_and_scheduler(output_dir)

        def _load_optimizer_and_scheduler(self, checkpoint):
            self.calls.append(("load", {"dir": checkpoint}))
            super()._load_optimizer_and_scheduler(checkpoint)

    return Spy


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("hooks") / "run"
    overrides = ["training.per_device_train_batch_size=4", "training.save_steps=1", "training.save_total_limit=5"]
    trainer = make_trainer(str(out), overrides, max_steps=STEPS, trainer_cls=_spy_trainer_cls())
    assert trainer.args.gradient_accumulation_steps == ACCUMULATION
    trainer.train()
    return trainer, str(out), overrides


def _calls(trainer, name):
    return [d for n, d in trainer.calls if n == name]


def test_trl_calls_the_self_distillation_hook_once_per_micro_batch_with_its_logits(recorded):
    from trl.experimental.sdpo.sdpo_trainer import DistillationLogits
    trainer, _, _ = recorded
    calls = [c for c in _calls(trainer, "distillation_loss") if c["training"]]
    assert len(calls) == STEPS * ACCUMULATION, (
        "SDPOTrainer.compute_loss no longer calls _compute_self_distillation_loss once per training micro-batch: "
        "PGPOTrainer's loss (and I_k) would not run")
    for c in calls:
        assert c["logits_type"] is DistillationLogits
        fields = {f.name for f in dataclasses.fields(c["logits"])}
        assert {"student_logits", "teacher_logits", "loss_mask", "completion_ids"} <= fields


def test_trl_divides_the_hook_loss_by_the_accumulation_steps_and_nothing_else(recorded):
    trainer, _, _ = recorded
    hook = [c["loss"] for c in _calls(trainer, "distillation_loss") if c["training"]]
    returned = [c["loss"] for c in _calls(trainer, "compute_loss")]
    assert len(hook) == len(returned) == STEPS * ACCUMULATION
    for h, r in zip(hook, returned):
        assert torch.equal(r, h / ACCUMULATION), (
            "SDPOTrainer.compute_loss changed what it does with the distillation loss (PGPO's loss is its hook's "
            f"return over the accumulation steps): {float(h)} -> {float(r)}")


def test_sync_gradients_is_set_before_each_micro_batch_so_the_step_finalises_on_the_last(recorded):
    trainer, _, _ = recorded
    flags = [c["sync"] for c in _calls(trainer, "distillation_loss") if c["training"]]
    assert flags == [False, True] * STEPS, (
        "transformers' training loop no longer sets accelerate's sync_gradients before each micro-batch: "
        f"PGPO finalises m_k on the wrong micro-batch (flags {flags})")
    steps = [c["step"] for c in _calls(trainer, "distillation_loss") if c["training"]]
    assert steps == [s for s in range(STEPS) for _ in range(ACCUMULATION)]


def test_the_loop_steps_the_optimizer_pgpo_modulates_once_per_optimizer_step(recorded):
    trainer, _, _ = recorded
    modulator = trainer.pgpo_controller().modulator
    assert modulator.steps == STEPS, (
        "the torch optimizer PGPO hooks (register_step_pre_hook on the innermost optimizer) was stepped "
        f"{modulator.steps} times in {STEPS} optimizer steps: the training loop steps another object")
    assert trainer.state.global_step == STEPS


def test_rollouts_go_through_sample_rollouts_and_generate(recorded):
    trainer, _, _ = recorded
    names = [n for n, _ in trainer.calls if n in ("sample_rollouts", "_generate")]
    assert names and names.count("sample_rollouts") >= STEPS, "TRL no longer builds batches with sample_rollouts"
    assert all(a == "sample_rollouts" and b == "_generate" for a, b in zip(names[::2], names[1::2])), (
        f"sample_rollouts no longer generates through _generate: {names}")


def test_checkpoint_hooks_save_into_each_checkpoint_and_load_from_it_on_resume(recorded, tmp_path):
    import shutil
    trainer, out, overrides = recorded
    saved = [c["dir"] for c in _calls(trainer, "save")]
    assert [os.path.basename(d) for d in saved] == [f"checkpoint-{s}" for s in range(1, STEPS + 1)], saved
    for d in saved:
        assert os.path.isdir(os.path.join(out, os.path.basename(d))), "the saved checkpoint folder is missing"
    copy = tmp_path / "resume"
    shutil.copytree(out, copy)
    again = make_trainer(str(copy), overrides, max_steps=STEPS + 1, trainer_cls=_spy_trainer_cls())
    again.train(resume_from_checkpoint=str(copy / f"checkpoint-{STEPS}"))
    loaded = [c["dir"] for c in _calls(again, "load")]
    assert loaded and os.path.basename(os.path.normpath(loaded[0])) == f"checkpoint-{STEPS}", (
        f"Trainer._load_optimizer_and_scheduler was not called with the resumed checkpoint: {loaded}")


def test_forward_logits_is_the_temperature_scaled_next_token_logits_of_the_completion(recorded):
    trainer, _, _ = recorded
    model = trainer.model
    ids = torch.randint(0, model.config.vocab_size, (2, 7))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        got = trainer._forward_logits(model, ids, mask, logits_to_keep=3)
        full = model(input_ids=ids, attention_mask=mask).logits
    want = full[:, -4:-1, :] / trainer.temperature
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5, rtol=1e-4), (
        "SDPOTrainer._forward_logits changed meaning (PGPOTrainer uses it for the rollout log-probs)")


def test_trl_still_returns_early_without_a_collective_on_an_empty_mask(recorded, monkeypatch):
    """Why PGPOTrainer re-implements the loss: TRL 1.16.0 skips the metric all-gather when a micro-batch has nothing
    to distill, so ranks with and without distilled tokens would disagree on their collectives. If this fails, TRL
    changed the function: re-read it against PGPOTrainer._compute_self_distillation_loss (which must keep running
    the gathers)."""
    from trl.experimental.sdpo import SDPOTrainer
    trainer, _, _ = recorded
    dl = _calls(trainer, "distillation_loss")[0]["logits"]
    gathers = []
    monkeypatch.setattr(trainer.accelerator, "gather", lambda t: gathers.append(t) or t)
    inputs = {"old_per_token_logps": None}
    full = SDPOTrainer._compute_self_distillation_loss(trainer, trainer.model, inputs, dl)
    assert len(gathers) == 1 and torch.isfinite(full), "TRL's loss no longer gathers its metric once"
    empty = dataclasses.replace(dl, loss_mask=torch.zeros_like(dl.loss_mask))
    loss = SDPOTrainer._compute_self_distillation_loss(trainer, trainer.model, inputs, empty)
    assert len(gathers) == 1 and float(loss.detach()) == 0.0, (
        "TRL now runs the metric gather on an empty mask (or stopped returning zero): PGPOTrainer's own loss "
        "may no longer be needed - re-read both")


def test_split_tensor_dict_splits_every_key_so_our_extra_batch_key_travels():
    from trl.trainer.utils import split_tensor_dict
    batch = {"completion_ids": torch.arange(8).view(4, 2), "rollout_per_token_logps": torch.arange(4.0)}
    parts = split_tensor_dict(batch, 2)
    assert [p["rollout_per_token_logps"].tolist() for p in parts] == [[0.0, 1.0], [2.0, 3.0]], (
        "trl.trainer.utils.split_tensor_dict no longer splits every key: rollout_per_token_logps would be lost")


def test_torch_foreach_norm_is_the_per_tensor_two_norm():
    ts = [torch.tensor([3.0, 4.0]), torch.tensor([[1.0, 2.0], [2.0, 4.0]])]
    assert [float(x) for x in torch._foreach_norm(ts)] == [5.0, 5.0], "torch._foreach_norm changed meaning"


def test_a_dtensor_is_recognised_by_its_class_name_and_gives_its_local_shard(tmp_path):
    """FSDP2's parameters and gradients are DTensors; pgpo (ema_teacher, optim) tells them by class name and reads
    `.to_local()`. One process, a one-device mesh."""
    script = textwrap.dedent("""
        import torch, torch.distributed as dist
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor import Shard, distribute_tensor
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:0", rank=0, world_size=1)
        mesh = init_device_mesh("cpu", (1,))
        t = distribute_tensor(torch.arange(6.0).view(3, 2), mesh, [Shard(0)])
        p = torch.nn.Parameter(t)
        from pgpo.ema_teacher import is_sharded, local_storage
        assert type(p.data).__name__ == "DTensor", type(p.data).__name__
        assert is_sharded(torch.nn.ParameterList([p]))
        assert type(local_storage(p)) is torch.Tensor and torch.equal(local_storage(p), torch.arange(6.0).view(3, 2))
        dist.destroy_process_group()
        print("ok")
    """)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0 and r.stdout.strip() == "ok", (
        "torch's DTensor is no longer recognised the way pgpo detects it (class name 'DTensor', .to_local()): "
        + r.stderr[-800:])

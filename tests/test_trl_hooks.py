"""Guards for the pinned TRL / transformers internals the trainer relies on. If one of these fails after an
upgrade, read pgpo/trainer.py before relaxing anything: the hook moved or changed meaning."""

import dataclasses
import inspect

import pytest

trl = pytest.importorskip("trl")
from transformers import Trainer  # noqa: E402
from trl.experimental.sdpo import SDPOConfig, SDPOTrainer  # noqa: E402
from trl.experimental.sdpo import loss_utils, sdpo_trainer  # noqa: E402


def test_trl_version_is_the_pinned_one():
    assert trl.__version__ == "1.16.0", "pgpo.trainer was written against TRL 1.16.0 (see pyproject.toml)"


def test_self_distillation_hook_signature_and_call_site():
    sig = inspect.signature(SDPOTrainer._compute_self_distillation_loss)
    assert list(sig.parameters) == ["self", "model", "inputs", "distillation_logits"]
    src = inspect.getsource(SDPOTrainer.compute_loss)
    assert "self._compute_self_distillation_loss(model, inputs, distillation_logits)" in src
    assert "loss / accumulation_scale" in src
    fields = {f.name for f in dataclasses.fields(sdpo_trainer.DistillationLogits)}
    assert {"student_logits", "teacher_logits", "loss_mask", "completion_ids"} <= fields


def test_topk_branch_is_the_one_we_mirror():
    src = inspect.getsource(SDPOTrainer._compute_self_distillation_loss)
    for needle in ("compute_topk_self_distillation_loss(", "apply_importance_sampling_clipping(",
                   "(per_token_loss * distillation_logits.loss_mask).sum(-1) / distillation_logits.loss_mask.sum(-1).clamp(",
                   "loss = loss.mean()", "self._log_self_distillation_metric("):
        assert needle in src, needle
    for name in ("compute_divergence", "add_tail_bucket", "compute_topk_self_distillation_loss",
                 "apply_importance_sampling_clipping"):
        assert hasattr(loss_utils, name)


def test_training_loop_sets_sync_gradients_before_each_micro_batch():
    src = inspect.getsource(Trainer._run_epoch)
    i_sync = src.index("self.accelerator.gradient_state._set_sync_gradients(do_sync_step)")
    i_step = src.index("self.training_step(model, inputs, num_items_in_batch)")
    i_opt = src.index("self.optimizer.step()")
    assert i_sync < i_step < i_opt


def test_checkpoint_hooks_exist():
    assert list(inspect.signature(Trainer._save_optimizer_and_scheduler).parameters) == ["self", "output_dir"]
    assert list(inspect.signature(Trainer._load_optimizer_and_scheduler).parameters) == ["self", "checkpoint"]


def test_config_fields_we_set_exist():
    from pgpo.config import load_config
    from pgpo.run import trainer_arguments
    names = {f.name for f in dataclasses.fields(SDPOConfig)}
    kw = trainer_arguments(load_config(None, []), 4, [])
    missing = [k for k in kw if k != "pgpo" and k not in names]
    assert not missing, missing


def test_trl_still_returns_early_on_an_empty_mask():
    """The reason PGPOTrainer re-implements the loss: TRL 1.16.0 skips the metric gather when a micro-batch has
    nothing to distill, so ranks disagree on their collectives. If this fails, TRL changed the function: re-read
    it against PGPOTrainer._compute_self_distillation_loss (which must keep running the gathers)."""
    src = inspect.getsource(SDPOTrainer._compute_self_distillation_loss)
    early = src.index("if distillation_logits.loss_mask.sum() == 0:")
    assert "return distillation_logits.student_logits.sum() * 0.0" in src[early:src.index("if self.args.distillation_mode")]


def test_rollout_and_teacher_hooks_we_override_exist():
    assert list(inspect.signature(SDPOTrainer.sample_rollouts).parameters) == ["self", "inputs"]
    assert "batch = self.sample_rollouts(inputs)" in inspect.getsource(SDPOTrainer._prepare_training_batch)
    assert "self._generate(prompt_ids)" in inspect.getsource(SDPOTrainer.sample_rollouts)
    from trl.trainer import utils as trl_utils
    src = inspect.getsource(trl_utils.split_tensor_dict)                # our extra batch key is split too
    assert "for key, tensor in tensor_dict.items():" in src
    gen = inspect.getsource(SDPOTrainer._generate_vllm)
    assert "self.vllm_generation.generate(" in gen and "self._last_loaded_step" in gen
    assert "logprobs=None" in inspect.getsource(SDPOTrainer.__init__)      # TRL asks vLLM for no log-probs
    setup = inspect.getsource(SDPOTrainer._setup_teacher_model)
    assert "SyncTeacherModelCallback(teacher_model=self.teacher_model" in setup


def test_vllm_generation_sleep_flag_and_logprobs_are_what_we_use():
    from trl.generation import vllm_generation
    gen = inspect.getsource(vllm_generation.VLLMGeneration.generate)
    assert "self._llm_weights_sleeping" in gen and "self.sync_weights()" in gen
    assert '"logprobs": self.logprobs' in gen
    assert "self._llm_weights_sleeping = False" in inspect.getsource(vllm_generation.VLLMGeneration.sync_weights)
    assert 'logprobs_mode="processed_logprobs"' in inspect.getsource(vllm_generation.VLLMGeneration)


def test_training_loop_steps_the_optimizer_we_guard():
    src = inspect.getsource(Trainer._run_epoch)
    assert "self.optimizer.step()" in src and "self.lr_scheduler.step()" in src

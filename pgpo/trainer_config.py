"""PGPOConfig: TRL's SDPOConfig plus PGPO's settings as one field - the one declaration of every trainer setting.

Every field of `trl.experimental.sdpo.SDPOConfig` (and of transformers' TrainingArguments beneath it) keeps its TRL
name, default and TRL's own checks. PGPOConfig adds:

    pgpo                          PGPO's settings (pgpo.settings.PGPOSettings; a mapping of its fields is accepted)
    gradient_accumulation_steps   default None: generation_batch_size / (per-device batch x processes), so that one
                                  optimizer step consumes one generation batch, as in the SDPO reference (TRL's
                                  default, 1, with a generation batch of several micro-batches would take several
                                  optimizer steps per generation); 1 when generation_batch_size is not given either
    checks TRL does not make      each setting below checked once, here, with the field's name in the message

`pgpo.alpha = 0` (and `pgpo.beta = 0`) is plain SDPO.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Optional

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")   # TRL is pinned (pyproject.toml): its experimental warning is noise
from trl.experimental.sdpo import SDPOConfig  # noqa: E402

from pgpo.settings import PGPOSettings


def _launch_processes() -> int:
    """The number of training processes of this launch, as accelerate / torchrun / DeepSpeed announce it."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def one_step_per_generation(generation_batch_size: int, per_device: int, processes: int) -> int:
    """Gradient-accumulation steps that make one optimizer step consume one generation batch."""
    if generation_batch_size % (per_device * processes):
        raise ValueError(f"generation_batch_size: {generation_batch_size} completions per optimizer step is not "
                         f"divisible by per_device_train_batch_size x processes = {per_device} x {processes}")
    return generation_batch_size // (per_device * processes)


@dataclass
class PGPOConfig(SDPOConfig):
    """SDPOConfig plus `pgpo`, PGPO's settings as one object; see the module docstring."""

    pgpo: PGPOSettings = field(default_factory=PGPOSettings, metadata={"help": "PGPO's settings."})
    gradient_accumulation_steps: Optional[int] = field(default=None, metadata={
        "help": "Micro-batches per optimizer step. Default: generation_batch_size / (per-device batch x processes), "
                "one optimizer step per generation batch (1 when generation_batch_size is not set)."})
    # True when gradient_accumulation_steps was derived from generation_batch_size (pgpo plan re-derives it for
    # another process count); not a setting
    accumulation_derived: bool = field(default=False, init=False, repr=False)

    def __post_init__(self):
        if isinstance(self.pgpo, dict):
            self.pgpo = PGPOSettings(**self.pgpo)
        self.pgpo.validate()
        self._check_ranges()
        derived = (self.gradient_accumulation_steps is None and self.generation_batch_size is not None
                   and self.steps_per_generation is None)
        if self.gradient_accumulation_steps is None:
            self.gradient_accumulation_steps = (one_step_per_generation(self.generation_batch_size,
                                                                        self.per_device_train_batch_size,
                                                                        _launch_processes()) if derived else 1)
        self.accumulation_derived = derived
        super().__post_init__()
        if derived and self.generation_batch_size != (self.per_device_train_batch_size * self.world_size
                                                       * self.gradient_accumulation_steps):
            raise ValueError(f"gradient_accumulation_steps: derived for {_launch_processes()} processes (WORLD_SIZE) "
                             f"but the launch has {self.world_size}; set it explicitly")
        if not self.pgpo.is_sdpo and self.distillation_weight == 0:
            raise ValueError("pgpo.alpha / pgpo.beta > 0 needs a distillation term (distillation_weight > 0) to "
                             "measure I_k")
        if not self.pgpo.is_sdpo and self.use_teacher_server:
            raise ValueError("PGPO needs the teacher's logits in the trainer; use_teacher_server is not supported")

    def _check_ranges(self) -> None:
        """The settings TRL and transformers take without a check (a bad value would fail late or silently)."""
        def need(ok: bool, name: str, rule: str):
            if not ok:
                raise ValueError(f"{name}: {rule}, got {getattr(self, name)!r}")
        need(self.learning_rate > 0, "learning_rate", "must be positive")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(0 <= self.adam_beta1 < 1, "adam_beta1", "must be in [0, 1)")
        need(0 <= self.adam_beta2 < 1, "adam_beta2", "must be in [0, 1)")
        need(self.max_grad_norm >= 0, "max_grad_norm", "must be >= 0 (0 disables clipping)")
        need(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        need(self.num_generations >= 2, "num_generations", "SDPO needs >= 2 rollouts per question (a sibling must "
                                                           "succeed)")
        need(self.temperature > 0, "temperature", "must be positive")
        need(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        need(0 < self.vllm_gpu_memory_utilization <= 1, "vllm_gpu_memory_utilization", "must be in (0, 1]")
        need(0 <= self.distillation_alpha <= 1, "distillation_alpha", "must be in [0, 1]")
        need(0 <= self.teacher_update_rate <= 1, "teacher_update_rate", "must be in [0, 1]")
        need(self.teacher_sync_steps > 0, "teacher_sync_steps", "must be positive")
        need(self.distillation_is_clip is None or self.distillation_is_clip > 0, "distillation_is_clip",
             "must be positive or null")
        need(self.max_prompt_length is None or self.max_reprompt_len >= self.max_prompt_length, "max_reprompt_len",
             f"must be at least max_prompt_length ({self.max_prompt_length}); the teacher sees the prompt plus a "
             "solution")
        if self.distillation_mode == "topk_logits":
            need(self.distillation_topk is not None and self.distillation_topk > 0, "distillation_topk",
                 "must be a positive integer when distillation_mode is topk_logits")
        else:
            need(self.distillation_topk is None, "distillation_topk",
                 "must be null unless distillation_mode is topk_logits")
        if self.gradient_accumulation_steps is not None:
            need(self.gradient_accumulation_steps > 0, "gradient_accumulation_steps", "must be positive")

    def to_dict(self):
        d = super().to_dict()
        d["pgpo"] = dataclasses.asdict(self.pgpo)
        return d

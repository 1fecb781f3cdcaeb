"""Run configuration: a YAML file of sections, validated before any model or dataset is loaded.

    model:    what to train (a hub name or path; or `tiny: true` for a random tiny Qwen3 on CPU)
    data:     domain, source, prompt style, privileged feedback, malformed-record policy
    pgpo:     pgpo.settings.PGPOSettings: alpha (0 = plain SDPO), m_max, multiplier shape, I estimator
    sdpo:     the distillation objective and teacher (TRL SDPOConfig fields)
    training: optimisation, batching, generation, checkpointing (TRL/HF TrainingArguments fields)
    eval:     periodic mean@k validation
    monitor:  collapse detection (accuracy, length, entropy), optional early stop

Every key is checked: an unknown key, a wrong type or an out-of-range value raises ConfigError with a
message naming the field (`training.learning_rate: expected a number, got 'fast'`). Overrides are
`dotted.key=value` strings whose value is read as YAML (`pgpo.alpha=2`, `training.output_dir=/tmp/r`).
This module imports neither torch nor transformers.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Literal, Optional

import yaml

from pgpo.data import DOMAINS, DataError, canonical_domain
from pgpo.fileio import atomic_write_text
from pgpo.schema import ConfigError, build, positive, read_yaml, unit
from pgpo.settings import PGPOSettings


@dataclass
class ModelSection:
    name_or_path: str = "Qwen/Qwen3-8B"     # a hub name or a local model folder (e.g. from `pgpo import-model`)
    tiny: bool = False                      # build a random tiny Qwen3 (Qwen3 vocabulary) from a config
    tiny_hidden_size: int = 64              # tiny model: hidden size (a multiple of 4)
    tiny_layers: int = 2                    # tiny model: decoder layers
    tiny_seed: int = 0                      # tiny model: the seed of its random weights
    tiny_init_std: float = 0.02             # initializer_range; larger makes outputs depend on the context
    tokenizer: Optional[str] = None         # default: the model's own; tiny models use the packaged one
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    # the weights' dtype; bfloat16/float16 need DeepSpeed's fp32 master weights
    attn_implementation: Optional[Literal["eager", "sdpa", "flash_attention_2", "flash_attention_3"]] = None
    # transformers' attention kernel (default: its choice)
    gradient_checkpointing: bool = False    # recompute activations in the backward pass (less memory, more time)

    def validate(self, where: str) -> None:
        positive(where, "tiny_hidden_size", self.tiny_hidden_size)
        positive(where, "tiny_layers", self.tiny_layers)
        positive(where, "tiny_init_std", self.tiny_init_std)
        if self.tiny and self.tiny_hidden_size % 4:
            raise ConfigError(f"{where}.tiny_hidden_size: must be a multiple of 4 (4 attention heads)")


@dataclass
class DataSection:
    task: Literal["sciknoweval", "arithmetic"] = "sciknoweval"   # arithmetic: pgpo.data.arithmetic (domain unused)
    domain: str = "chemistry"               # SciKnowEval domain: chemistry, physics, biology, material
    source: Literal["packaged", "hub", "dir"] = "packaged"
    # packaged (shipped with pgpo), hub (datasets; needs network) or dir (`path`)
    path: Optional[str] = None              # folder of the data when source is dir
    prompt_style: Literal["paper", "reference"] = "reference"
    # reference: TRL's SDPO reprompt template; paper: the paper's
    feedback: Literal["none", "answer_key"] = "none"
    # the teacher's privileged context beside sibling solutions; answer_key leaks the answer (tests only)
    on_malformed: Literal["report", "error", "zip"] = "report"
    # malformed records: report (skip and count), error, zip (keep what parses)
    max_train_questions: Optional[int] = None  # use at most this many training questions
    max_eval_questions: Optional[int] = None  # evaluate on at most this many held-out questions

    def validate(self, where: str) -> None:
        try:
            self.domain = canonical_domain(self.domain)
        except DataError:
            raise ConfigError(f"{where}.domain: unknown domain {self.domain!r}; choose one of "
                              f"{', '.join(DOMAINS)}") from None
        if self.source == "dir" and not self.path:
            raise ConfigError(f"{where}.path: required when source is 'dir'")
        for name in ("max_train_questions", "max_eval_questions"):
            v = getattr(self, name)
            if v is not None:
                positive(where, name, v)
        if self.task == "arithmetic" and self.source != "packaged":
            raise ConfigError(f"{where}.source: the arithmetic task is generated; source must be 'packaged'")

    @property
    def subject(self) -> str:
        """What a run is about, for tables and figures: the Science-QA domain, or the task's name."""
        return self.domain if self.task == "sciknoweval" else self.task


@dataclass
class SDPOSection:
    distillation_mode: Literal["sampled_token", "full_logits", "topk_logits"] = "topk_logits"
    # what is distilled: the sampled token, all logits, or the top-k
    distillation_topk: Optional[int] = 100  # k of topk_logits
    distillation_add_tail: bool = True      # topk_logits: add the remaining probability mass as one tail bucket
    distillation_alpha: float = 0.5         # the divergence's mixture: 0 forward KL, 1 reverse KL, 0.5 Jensen-Shannon
    distillation_is_clip: Optional[float] = 2.0  # clip of the importance weight for off-policy rollouts (null: none)
    distillation_weight: float = 1.0        # weight of the distillation loss
    teacher_model_kind: Literal["ema", "live", "base"] = "ema"
    # ema (an EMA of the student), live (the student itself) or base (the initial weights)
    teacher_update_rate: float = 0.05       # EMA rate of the teacher per sync
    teacher_sync_steps: int = 1             # optimizer steps between teacher updates
    remove_thinking_from_demonstration: bool = True  # strip <think> blocks from a sibling solution shown to the teacher
    dont_reprompt_on_self_success: bool = True  # a successful rollout is not shown its own solution
    success_reward_threshold: float = 1.0   # reward at which a rollout counts as a successful demonstration
    max_reprompt_len: int = 10240           # tokens of the teacher's prompt (question plus demonstration)
    environment_feedback_only_without_solution: bool = True  # environment feedback only when no sibling succeeded

    def validate(self, where: str) -> None:
        unit(where, "distillation_alpha", self.distillation_alpha)
        unit(where, "distillation_weight", self.distillation_weight)
        unit(where, "teacher_update_rate", self.teacher_update_rate)
        positive(where, "teacher_sync_steps", self.teacher_sync_steps)
        positive(where, "max_reprompt_len", self.max_reprompt_len)
        if self.distillation_is_clip is not None and self.distillation_is_clip <= 0:
            raise ConfigError(f"{where}.distillation_is_clip: must be positive or null")
        if self.distillation_mode == "topk_logits":
            if self.distillation_topk is None:
                raise ConfigError(f"{where}.distillation_topk: required when distillation_mode is topk_logits")
            positive(where, "distillation_topk", self.distillation_topk)
        elif self.distillation_topk is not None:
            raise ConfigError(f"{where}.distillation_topk: must be null unless distillation_mode is topk_logits")
        if self.distillation_mode == "sampled_token" and self.distillation_alpha != 1.0:
            raise ConfigError(f"{where}.distillation_alpha: sampled_token distillation requires 1.0 (reverse KL)")


REPORTERS = {"tensorboard": "tensorboard", "wandb": "wandb"}     # report_to name -> the package it needs


@dataclass
class TrainingSection:
    output_dir: str = "runs/pgpo"           # the run folder: log.jsonl, checkpoints, run_config.yaml, DONE.json
    seed: int = 42                          # seeds data order, sampling and initialisation
    max_steps: int = 100                    # optimizer steps
    learning_rate: float = 1e-5             # peak learning rate
    lr_scheduler_type: Literal["constant_with_warmup", "constant", "linear", "cosine"] = "constant_with_warmup"
    # transformers' schedule
    warmup_steps: int = 10                  # linear warm-up steps
    weight_decay: float = 0.01              # AdamW weight decay
    adam_beta1: float = 0.9                 # AdamW beta1
    adam_beta2: float = 0.999               # AdamW beta2
    adam_epsilon: float = 1e-8              # AdamW epsilon
    max_grad_norm: float = 1.0              # gradient clipping norm (0: none)
    optim: Literal["adamw_torch", "adamw_torch_fused", "sgd", "adafactor"] = "adamw_torch"
    # transformers' optimizer name
    questions_per_step: int = 32            # prompts per generation batch
    num_generations: int = 8                # rollouts per prompt
    per_device_train_batch_size: int = 8    # completions per micro-batch
    gradient_accumulation_steps: Optional[int] = None   # default: generation batch / (per-device x processes)
    max_prompt_length: int = 2048           # prompt tokens
    max_completion_length: int = 8192       # tokens per rollout
    temperature: float = 1.0                # rollout sampling temperature
    top_p: float = 1.0                      # rollout nucleus sampling
    save_steps: int = 50                    # steps between checkpoints
    save_total_limit: Optional[int] = None  # checkpoints kept (the monitor's best is always kept); null keeps all
    logging_steps: int = 1                  # must be 1: the per-step JSONL log
    bf16: bool = True                       # bf16 autocast compute
    use_vllm: bool = False                  # rollouts from vLLM instead of transformers generate
    vllm_mode: Literal["colocate", "server"] = "colocate"
    # colocate (vLLM in the training processes) or server (trl vllm-serve)
    vllm_gpu_memory_utilization: float = 0.3  # colocate: the GPU memory fraction vLLM may take
    vllm_tensor_parallel_size: int = 1      # colocate: tensor-parallel size of the vLLM engine
    vllm_enable_sleep_mode: bool = False    # colocate: offload vLLM's weights and cache during the training step
    vllm_server_base_url: Optional[str] = None  # server: the URL of `trl vllm-serve`
    vllm_max_model_length: Optional[int] = None  # vLLM's context length (default: the model's)
    report_to: str = "auto"                 # none, auto (TensorBoard when installed), or a list: tensorboard,wandb
    dataloader_num_workers: int = 0         # transformers' data loader processes

    def validate(self, where: str) -> None:
        for name in ("max_steps", "questions_per_step", "num_generations", "per_device_train_batch_size",
                     "max_prompt_length", "max_completion_length", "save_steps", "logging_steps"):
            positive(where, name, getattr(self, name))
        if self.gradient_accumulation_steps is not None:
            positive(where, "gradient_accumulation_steps", self.gradient_accumulation_steps)
        if self.save_total_limit is not None:
            positive(where, "save_total_limit", self.save_total_limit)
        if self.num_generations < 2:
            raise ConfigError(f"{where}.num_generations: SDPO needs >= 2 rollouts per question (a sibling "
                              f"must succeed), got {self.num_generations}")
        if not self.learning_rate > 0:
            raise ConfigError(f"{where}.learning_rate: must be positive, got {self.learning_rate}")
        if self.warmup_steps < 0:
            raise ConfigError(f"{where}.warmup_steps: must be >= 0, got {self.warmup_steps}")
        if self.weight_decay < 0:
            raise ConfigError(f"{where}.weight_decay: must be >= 0, got {self.weight_decay}")
        for b in ("adam_beta1", "adam_beta2"):
            v = getattr(self, b)
            if not 0 <= v < 1:
                raise ConfigError(f"{where}.{b}: must be in [0, 1), got {v}")
        if self.max_grad_norm < 0:
            raise ConfigError(f"{where}.max_grad_norm: must be >= 0 (0 disables clipping)")
        if not self.temperature > 0:
            raise ConfigError(f"{where}.temperature: must be positive, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"{where}.top_p: must be in (0, 1], got {self.top_p}")
        if not 0 < self.vllm_gpu_memory_utilization <= 1:
            raise ConfigError(f"{where}.vllm_gpu_memory_utilization: must be in (0, 1]")
        self.reporters()                        # validated here (names, installed), used by pgpo.run
        if self.logging_steps != 1:
            raise ConfigError(f"{where}.logging_steps: the per-step JSONL log needs 1, got {self.logging_steps}")

    def reporters(self) -> list[str]:
        """The logging integrations Trainer reports to (transformers' `report_to`): none, TensorBoard when installed
        (auto), or the listed ones, each of which must be installed (W&B runs offline with WANDB_MODE=offline)."""
        import importlib.util
        choice = str(self.report_to).strip()
        if choice == "none":
            return []
        if choice == "auto":
            return ["tensorboard"] if importlib.util.find_spec("tensorboard") is not None else []
        names = [n.strip() for n in choice.replace(" ", ",").split(",") if n.strip()]
        for n in names:
            if n not in REPORTERS:
                raise ConfigError(f"training.report_to: {n!r} is not one of none, auto, {', '.join(REPORTERS)} (a "
                                  "comma-separated list of the latter is allowed)")
            if importlib.util.find_spec(REPORTERS[n]) is None:
                raise ConfigError(f"training.report_to: {n} is not installed (pip install {REPORTERS[n]})")
        return names

    @property
    def generation_batch_size(self) -> int:
        return self.questions_per_step * self.num_generations

    def accumulation_for(self, num_processes: int) -> int:
        """Gradient-accumulation steps that make one optimizer step consume one generation batch."""
        gen, per = self.generation_batch_size, self.per_device_train_batch_size * num_processes
        if self.gradient_accumulation_steps is not None:
            if self.per_device_train_batch_size * self.gradient_accumulation_steps * num_processes != gen:
                raise ConfigError(
                    f"training.gradient_accumulation_steps: per-device batch {self.per_device_train_batch_size} x "
                    f"accumulation {self.gradient_accumulation_steps} x processes {num_processes} must equal the "
                    f"generation batch questions_per_step x num_generations = {gen}")
            return self.gradient_accumulation_steps
        if gen % per:
            raise ConfigError(
                f"training.per_device_train_batch_size: the generation batch {gen} (questions_per_step x "
                f"num_generations) is not divisible by per-device batch x processes = {per}")
        return gen // per


@dataclass
class EvalSection:
    every_steps: int = 5                    # 0 disables periodic validation
    num_samples: int = 16                   # k of mean@k
    temperature: float = 0.6                # sampling temperature
    top_p: float = 0.95                     # nucleus sampling
    max_new_tokens: Optional[int] = None    # default: training.max_completion_length
    max_questions: Optional[int] = None     # evaluate at most this many held-out questions
    batch_size: int = 16                    # prompts per generate call (transformers)
    backend: Literal["auto", "transformers", "vllm"] = "auto"
    # auto (vLLM when installed and a GPU is present), transformers or vllm
    at_start: bool = False                  # also evaluate before the first step

    def validate(self, where: str) -> None:
        if self.every_steps < 0:
            raise ConfigError(f"{where}.every_steps: must be >= 0, got {self.every_steps}")
        positive(where, "num_samples", self.num_samples)
        positive(where, "batch_size", self.batch_size)
        if not self.temperature > 0:
            raise ConfigError(f"{where}.temperature: must be positive")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"{where}.top_p: must be in (0, 1]")
        for name in ("max_new_tokens", "max_questions"):
            if getattr(self, name) is not None:
                positive(where, name, getattr(self, name))


@dataclass
class MonitorSection:
    enabled: bool = True                    # watch for collapse and keep the best checkpoint by mean@k
    accuracy_drop: float = 0.10       # flag when mean@k falls this far below its best
    length_ratio: float = 0.5         # ... or mean completion length below this fraction of its early level
    entropy_ratio: float = 0.5        # ... or the student's token entropy likewise
    window: int = 5                   # steps in the reference and moving averages
    patience: int = 2                 # consecutive bad observations before flagging
    stop: bool = False                # end training on a collapse (the best checkpoint is kept either way)

    def validate(self, where: str) -> None:
        unit(where, "accuracy_drop", self.accuracy_drop)
        for name in ("length_ratio", "entropy_ratio"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise ConfigError(f"{where}.{name}: must be in (0, 1], got {v}")
        positive(where, "window", self.window)
        positive(where, "patience", self.patience)


@dataclass
class RunConfig:
    name: str = "run"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    pgpo: PGPOSettings = field(default_factory=PGPOSettings)
    sdpo: SDPOSection = field(default_factory=SDPOSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    eval: EvalSection = field(default_factory=EvalSection)
    monitor: MonitorSection = field(default_factory=MonitorSection)

    def validate(self) -> "RunConfig":
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if dataclasses.is_dataclass(section):
                section.validate(f.name)
        if self.sdpo.max_reprompt_len < self.training.max_prompt_length:
            raise ConfigError("sdpo.max_reprompt_len: must be at least training.max_prompt_length "
                              f"({self.training.max_prompt_length}); the teacher sees the prompt plus a solution")
        return self

    @property
    def method(self) -> str:
        return "sdpo" if self.pgpo.is_sdpo else "pgpo"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def master_weights_problem(cfg: RunConfig, deepspeed: bool) -> str | None:
    """Why this run would train low-precision weights without an fp32 master copy, or None.

    torch AdamW updates the weights in their own dtype: with bf16 weights and lr 1e-5 most coordinates of an
    update are below bf16 resolution and are lost. DeepSpeed (ZeRO, bf16 mode) keeps fp32 master weights in
    its optimizer; DDP and FSDP2 do not, so they need fp32 weights (training.bf16 still computes in bf16).
    """
    if deepspeed or cfg.model.dtype == "float32" or (cfg.model.tiny and cfg.model.dtype == "auto"):
        return None                                   # (a tiny model is written in float32)
    return master_weights_message(cfg.model.dtype, cfg.training.learning_rate)


def master_weights_message(dtype: str, learning_rate: float) -> str:
    """The one line that refuses low-precision weights without master weights (the CLI before loading anything,
    PGPOTrainer for a model built in Python)."""
    return (f"model.dtype: {dtype} weights without fp32 master weights (torch AdamW at lr {learning_rate:g} would "
            "lose most updates); set model.dtype=float32 (training.bf16 keeps bf16 compute) or launch with a "
            "DeepSpeed ZeRO config such as experiments/accelerate/zero3-8gpu.yaml")


SECTION_PURPOSE = {
    "model": "what to train",
    "data": "the questions, prompt style and privileged feedback",
    "pgpo": "the step multiplier m_k (pgpo.settings.PGPOSettings; alpha 0 is plain SDPO)",
    "sdpo": "the distillation objective and the teacher (TRL SDPOConfig fields)",
    "training": "optimisation, batching, generation, checkpointing (TRL / transformers TrainingArguments fields)",
    "eval": "periodic mean@k validation on held-out questions",
    "monitor": "collapse detection and the best checkpoint",
}


def _field_comments(cls) -> dict[str, str]:
    """The trailing `# comment` of each field in a dataclass's source (the reference's descriptions)."""
    import inspect
    import re
    out, last = {}, None
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s{4}(\w+): [^#]*?(?:#\s*(.*))?$", line)
        if m and not line.strip().startswith(("def ", "@")):
            last = m.group(1)
            out[last] = (m.group(2) or "").strip()
        elif last and re.match(r"\s+#\s*(.*)$", line):            # a comment continued on the next line
            out[last] = (out[last] + " " + line.strip().lstrip("#").strip()).strip()
        else:
            last = None
    return out


def _type_text(tp) -> str:
    import typing
    args = typing.get_args(tp)
    if typing.get_origin(tp) is Literal:
        return " \\| ".join(repr(a) if isinstance(a, str) else str(a) for a in args)
    if typing.get_origin(tp) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _type_text(inner[0]) + " or null" if len(inner) == 1 else " or ".join(map(_type_text, inner))
    return getattr(tp, "__name__", str(tp))


def field_reference(section: str | None = None) -> str:
    """Every config field: its section, type (or choices), default and description, as Markdown generated from
    the dataclasses themselves (`python -m pgpo fields`), so the reference cannot fall behind the code."""
    import typing
    hints = typing.get_type_hints(RunConfig)
    out = ["# Config fields", "",
           "Generated from the dataclasses in `pgpo/config.py` and `pgpo/settings.py` by `python -m pgpo fields`. "
           "In a YAML file a field is `section: {field: value}`; on the command line `section.field=value` (read as "
           "YAML). Top level: `name` (the run's name, default 'run') and `base` (a YAML file this one extends).", ""]
    for f in dataclasses.fields(RunConfig):
        if not dataclasses.is_dataclass(hints[f.name]) or (section and f.name != section):
            continue
        cls = hints[f.name]
        comments, types = _field_comments(cls), typing.get_type_hints(cls)
        out += [f"## `{f.name}`: {SECTION_PURPOSE.get(f.name, '')}", "",
                "| field | type | default | description |", "|---|---|---|---|"]
        for sf in dataclasses.fields(cls):
            default = sf.default if sf.default is not dataclasses.MISSING else sf.default_factory()
            shown = "null" if default is None else (str(default).lower() if isinstance(default, bool) else repr(default))
            out.append(f"| `{sf.name}` | {_type_text(types[sf.name])} | `{shown}` | {comments.get(sf.name, '')} |")
        out.append("")
    return "\n".join(out)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` overrides (value read as YAML) to a nested dict, in place."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected dotted.key=value")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"{key}: cannot read value {raw!r}: {e}") from None
        node = data
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"{key}: {p!r} is not a section")
            node = nxt
        node[parts[-1]] = value
    return data


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_config_file(path: str, _seen: tuple = ()) -> dict:
    """The raw mapping of a config file; `base: other.yaml` (relative to the file) is read first and this
    file's keys are merged over it, section by section."""
    data = read_yaml(path, "config")
    if not data:
        raise ConfigError(f"{path}: the config is empty (give at least the model and training sections; see "
                          "experiments/science_qa/smoke-cpu.yaml)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base: expected a file name")
    base_path = os.path.normpath(os.path.join(os.path.dirname(path), base))
    if base_path in _seen:
        raise ConfigError(f"{path}: base files form a cycle ({' -> '.join(_seen + (base_path,))})")
    return _merge(read_config_file(base_path, _seen + (os.path.normpath(path),)), data)


def load_config(path: str | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and validate a run configuration (nothing heavy is imported or loaded)."""
    data: dict = read_config_file(path) if path is not None else {}
    apply_overrides(data, overrides or [])
    return build(RunConfig, data, "").validate()


def dump_config(cfg: RunConfig, path: str) -> None:
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))

"""Per-GPU memory plan for a run config, before launching: does it fit, and what is the largest term?

    python -m pgpo plan --config experiments/science_qa/paper-qwen3-8b.yaml --gpus 8 --gpu-mem 80 \
        [--strategy ddp|zero2|zero3|fsdp2 | --accelerate experiments/accelerate/zero3-8gpu.yaml]

Accounting (bytes per GPU; P = parameters, N = data-parallel processes, b = bytes of the model dtype):

  student weights      P b                      (ddp, zero2)   P b / N   (zero3, fsdp2)
  EMA teacher          P b                      (ddp, zero2)   P b / N   (zero3, fsdp2)   0 for a live teacher
  EMA fp32 average     4 P (ddp, zero2)  4 P / N (zero3, fsdp2); only for an EMA teacher with b < 4
                       (pgpo.ema_teacher: the average is kept in fp32, the teacher's copy is its cast)
  gradients            P b                      (ddp)          P b / N   (zero2, zero3, fsdp2)
  optimizer (AdamW)    2 P b  states in the parameter dtype (torch AdamW; ddp, fsdp2 sharded by N)
                       12 P / N  fp32 master weights + two fp32 moments (DeepSpeed zero2 / zero3)
  activations          gradient checkpointing: layers x B x L x hidden x 2 (layer inputs) + one layer's
                       working set B x L x (7 hidden + 2 kv + 3 intermediate) x 2;
                       without: layers x B x L x (7 hidden + 2 kv + 3 intermediate) x 2
                       (B = per-device micro-batch, L = max prompt + max completion; flash attention, no L^2)
  distillation logits  B x C x V x 14 bytes (C = max completion, V = vocabulary): student logits, their
                       temperature-scaled copy and gradient, teacher logits and copy (bf16), and one fp32
                       log-sum-exp temporary
  I_k buffers          top-k: B x C x (k + 1) x 4 x 4; full vocabulary: B x chunk x V x 4 x 3
  variant weights      pgpo.granularity sample / token: B x C x (4 + 3 x 8) (per-token I_t, fp64 weights)
  zero3 gather         2 x (largest layer) x b (prefetched full-precision layer during forward/backward)
  vLLM (colocate)      gpu_memory_utilization x GPU memory (bf16 weights 2 P / tp + KV cache); with sleep mode it
                       is released while training, so the peak is max(generation phase, training phase)

The numbers are estimates (allocator fragmentation, CUDA context ~0.5-1 GiB and NCCL buffers come on top;
`--headroom` reserves a fraction for them). tests/test_plan.py checks them against hand-computed values.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from pgpo.config import RunConfig, master_weights_problem

GIB = 1024 ** 3
STRATEGIES = ("ddp", "zero2", "zero3", "fsdp2")
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "auto": 2}


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @property
    def layer_params(self) -> int:
        attn = self.hidden * self.heads * self.head_dim * 2 + self.hidden * self.kv_heads * self.head_dim * 2
        mlp = 3 * self.hidden * self.intermediate
        norms = 2 * self.hidden + 2 * self.head_dim          # input/post norms, q_norm/k_norm (Qwen3)
        return attn + mlp + norms

    @property
    def params(self) -> int:
        emb = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * self.layer_params + emb + self.hidden

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim


# Qwen3 family (config.json of each model; head_dim 128 throughout)
KNOWN = {
    "Qwen/Qwen3-0.6B": ModelShape(1024, 28, 3072, 16, 8, 128, 151936, True),
    "Qwen/Qwen3-1.7B": ModelShape(2048, 28, 6144, 16, 8, 128, 151936, True),
    "Qwen/Qwen3-4B": ModelShape(2560, 36, 9728, 32, 8, 128, 151936, True),
    "Qwen/Qwen3-8B": ModelShape(4096, 36, 12288, 32, 8, 128, 151936, False),
    "Qwen/Qwen3-14B": ModelShape(5120, 40, 17408, 40, 8, 128, 151936, False),
    "Qwen/Qwen3-32B": ModelShape(5120, 64, 25600, 64, 8, 128, 151936, False),
}


def shape_for(cfg: RunConfig) -> ModelShape:
    """The model's shape: the tiny config, a known Qwen3 name, or a local config.json."""
    if cfg.model.tiny:
        h = cfg.model.tiny_hidden_size
        return ModelShape(h, cfg.model.tiny_layers, 2 * h, 4, 2, h // 4, 151936, True)
    if cfg.model.name_or_path in KNOWN:
        return KNOWN[cfg.model.name_or_path]
    path = os.path.join(cfg.model.name_or_path, "config.json")
    if os.path.exists(path):
        with open(path) as f:
            c = json.load(f)
        heads = c["num_attention_heads"]
        return ModelShape(c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], heads,
                          c.get("num_key_value_heads", heads), c.get("head_dim", c["hidden_size"] // heads),
                          c["vocab_size"], bool(c.get("tie_word_embeddings", False)))
    raise ValueError(f"model.name_or_path: unknown model {cfg.model.name_or_path!r} and no local config.json; "
                     f"known: {', '.join(KNOWN)}")


@dataclass
class Term:
    name: str
    bytes: float
    phase: str                 # "always", "train" or "generate"
    note: str = ""


@dataclass
class Plan:
    strategy: str
    gpus: int
    gpu_mem_gib: float
    params: int
    terms: list[Term] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    headroom: float = 0.05

    def phase_total(self, phase: str) -> float:
        return sum(t.bytes for t in self.terms if t.phase in ("always", phase))

    @property
    def peak(self) -> float:
        return max(self.phase_total("train"), self.phase_total("generate"))

    @property
    def peak_phase(self) -> str:
        return "train" if self.phase_total("train") >= self.phase_total("generate") else "generate"

    @property
    def fits(self) -> bool:
        return self.peak <= self.gpu_mem_gib * GIB * (1 - self.headroom)

    @property
    def largest(self) -> Term:
        return max(self.terms, key=lambda t: t.bytes)

    def to_dict(self) -> dict:
        return {"strategy": self.strategy, "gpus": self.gpus, "gpu_mem_gib": self.gpu_mem_gib, "params": self.params,
                "terms": [{"name": t.name, "gib": t.bytes / GIB, "phase": t.phase, "note": t.note} for t in self.terms],
                "train_phase_gib": self.phase_total("train") / GIB,
                "generate_phase_gib": self.phase_total("generate") / GIB, "peak_gib": self.peak / GIB,
                "fits": self.fits, "largest": self.largest.name, "headroom": self.headroom, "notes": self.notes}

    def render(self) -> str:
        lines = [f"memory plan per GPU: {self.strategy}, {self.gpus} GPU(s) x {self.gpu_mem_gib:g} GiB, "
                 f"{self.params / 1e9:.2f} B parameters"]
        for t in self.terms:
            lines.append(f"  {t.name:28s} {t.bytes / GIB:9.2f} GiB  [{t.phase}]  {t.note}")
        lines.append(f"  {'training phase':28s} {self.phase_total('train') / GIB:9.2f} GiB")
        lines.append(f"  {'generation phase':28s} {self.phase_total('generate') / GIB:9.2f} GiB")
        verdict = "FITS" if self.fits else "DOES NOT FIT"
        lines.append(f"peak {self.peak / GIB:.2f} GiB ({self.peak_phase} phase) of {self.gpu_mem_gib:g} GiB "
                     f"(keeping {self.headroom:.0%} headroom): {verdict}; largest term: {self.largest.name} "
                     f"({self.largest.bytes / GIB:.2f} GiB)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def accumulation_for(training, gpus: int) -> int:
    """Gradient-accumulation steps on `gpus` processes: an explicit setting as it is; one PGPOConfig derived from the
    generation batch re-derived, so that one optimizer step consumes one generation batch there too."""
    if not training.accumulation_derived:
        return training.gradient_accumulation_steps
    from pgpo.trainer_config import one_step_per_generation
    return one_step_per_generation(training.generation_batch_size, training.per_device_train_batch_size, gpus)


def estimate(cfg: RunConfig, gpus: int, gpu_mem_gib: float, strategy: str = "ddp",
             shape: ModelShape | None = None, headroom: float = 0.05) -> Plan:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if gpus < 1 or not gpu_mem_gib > 0:
        raise ValueError("need gpus >= 1 and gpu_mem > 0")
    s = shape or shape_for(cfg)
    t = sd = cfg.training
    P = s.params
    b = DTYPE_BYTES[cfg.model.dtype]
    n = gpus
    shard_w = strategy in ("zero3", "fsdp2")
    shard_g = strategy != "ddp"
    plan = Plan(strategy, gpus, gpu_mem_gib, P, headroom=headroom)
    add = plan.terms.append

    add(Term("student weights", P * b / (n if shard_w else 1), "always", f"{P / 1e9:.2f} B params x {b} B"))
    if sd.teacher_model_kind != "live":
        add(Term("EMA teacher weights", P * b / (n if shard_w else 1), "always", f"{sd.teacher_model_kind} copy"))
    if sd.teacher_model_kind == "ema" and b < 4:
        add(Term("EMA teacher fp32 average", 4 * P / (n if shard_w else 1), "always",
                 "the EMA is averaged in fp32 (its bf16 copy above is what the forward pass uses)"))
    add(Term("gradients", P * b / (n if shard_g else 1), "train"))
    if strategy in ("zero2", "zero3"):
        add(Term("optimizer (fp32 master+Adam)", 12 * P / n, "always", "DeepSpeed fp32 master weights and moments"))
    else:
        add(Term("optimizer (AdamW states)", 2 * P * b / (n if strategy == "fsdp2" else 1), "always",
                 "two moments in the parameter dtype"))
    B = t.per_device_train_batch_size
    if t.max_prompt_length is None:
        raise ValueError("training.max_prompt_length: the memory plan needs a prompt length (null: no truncation)")
    L = t.max_prompt_length + t.max_completion_length
    C = t.max_completion_length
    per_tok_layer = 7 * s.hidden + 2 * s.kv_dim + 3 * s.intermediate
    if getattr(t, "activation_checkpointing", None) or t.gradient_checkpointing:
        act = s.layers * B * L * s.hidden * 2 + B * L * per_tok_layer * 2
        note = f"checkpointed, micro-batch {B} x {L} tokens"
    else:
        act = s.layers * B * L * per_tok_layer * 2
        note = f"no checkpointing, micro-batch {B} x {L} tokens"
    add(Term("activations", act, "train", note))
    add(Term("distillation logits", B * C * s.vocab * 14, "train", f"{B} x {C} completion tokens x {s.vocab} vocab"))
    if sd.distillation_mode == "topk_logits":
        add(Term("I_k buffers (top-k)", B * C * (sd.distillation_topk + 1) * 4 * 4, "train"))
    else:
        add(Term("I_k buffers (chunked)", B * min(cfg.pgpo.chunk_size, C) * s.vocab * 4 * 3, "train"))
    if cfg.pgpo.granularity != "batch":
        add(Term("per-sample / per-token weights", B * C * (4 + 8 * 3), "train",
                 f"{cfg.pgpo.granularity}: I_t (fp32) and three fp64 weight buffers"))
    if strategy == "zero3":
        add(Term("zero3 layer gather", 2 * s.layer_params * b, "train", "prefetched full layers"))
    problem = master_weights_problem(cfg, deepspeed=strategy in ("zero2", "zero3"))
    if problem:
        plan.notes.append(f"the trainer refuses this launch: {problem}")
    if t.use_vllm and t.vllm_mode == "colocate":
        reserve = t.vllm_gpu_memory_utilization * gpu_mem_gib * GIB
        phase = "generate" if t.vllm_enable_sleep_mode else "always"
        weights = P * 2 / t.vllm_tensor_parallel_size          # vLLM serves the bf16 checkpoint
        add(Term("vLLM (weights + KV cache)", reserve, phase,
                 f"gpu_memory_utilization {t.vllm_gpu_memory_utilization} x {gpu_mem_gib:g} GiB; "
                 + ("released while training (sleep mode)" if t.vllm_enable_sleep_mode else "held throughout")))
        kv_per_token = 2 * s.layers * s.kv_dim * 2 / t.vllm_tensor_parallel_size
        kv_tokens = max(reserve - weights, 0) / kv_per_token
        need = t.per_device_train_batch_size * t.vllm_tensor_parallel_size * L
        if weights >= reserve:
            plan.notes.append(f"vLLM weights ({weights / GIB:.1f} GiB) exceed its reservation ({reserve / GIB:.1f} "
                              "GiB): raise vllm_gpu_memory_utilization or the tensor-parallel size")
            plan.terms[-1].bytes = max(reserve, weights)
        else:
            plan.notes.append(f"vLLM KV cache holds about {kv_tokens / 1e3:.0f}k tokens per engine; a micro-batch of "
                              f"full-length sequences needs {need / 1e3:.0f}k")
    elif t.use_vllm:
        plan.notes.append("vLLM server mode: the generation GPUs are separate; plan them with the server's own "
                          f"settings (weights {P * b / GIB:.1f} GiB / tensor-parallel size + KV cache)")
    return plan


def strategy_from_accelerate(path: str) -> tuple[str, int]:
    """(strategy, processes) read from an accelerate config file."""
    from runtools.schema import ConfigError, read_yaml

    try:
        c = read_yaml(path, "accelerate config")
    except ConfigError as e:
        raise ValueError(str(e)) from None
    if not isinstance(c, dict) or "distributed_type" not in c:
        raise ValueError(f"{path} is not an accelerate config (no distributed_type; `accelerate config` writes one, "
                         "see experiments/accelerate/)")
    dt = str(c["distributed_type"]).upper()
    if dt not in ("NO", "MULTI_GPU", "MULTI_CPU", "DEEPSPEED", "FSDP"):
        raise ValueError(f"{path}: distributed_type {c['distributed_type']!r} is not one the planner knows "
                         "(NO, MULTI_GPU, MULTI_CPU, DEEPSPEED, FSDP)")
    procs = int(c.get("num_processes", 1))
    if dt == "DEEPSPEED":
        stage = int((c.get("deepspeed_config") or {}).get("zero_stage", 2))
        return ("zero3" if stage == 3 else "zero2"), procs
    if dt == "FSDP":
        return "fsdp2", procs
    return "ddp", procs

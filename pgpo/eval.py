"""mean@k accuracy on Science-QA: k samples per question (temperature 0.6, top-p 0.95 by default).

mean@k = the average over questions of the fraction of a question's k samples whose answer letter is right
(pgpo.rewards), as in the SDPO reference's validation metric. Backends: transformers `generate` (CPU or
GPU) and vLLM (when installed; `backend="auto"` picks it on a CUDA machine).
"""

from __future__ import annotations

import logging
import math
import statistics
import sys
import time
from dataclasses import dataclass, field

from pgpo.data import Question
from pgpo.prompts import conversation
from runtools.progress import Progress

logger = logging.getLogger(__name__)


@dataclass
class EvalResult:
    mean_at_k: float
    k: int
    n_questions: int
    correct: list[int] = field(default_factory=list)      # per question, out of k
    answered: float = 0.0                                 # fraction of samples with a readable answer
    wall_s: float = 0.0
    backend: str = ""

    def to_dict(self) -> dict:
        return {"mean_at_k": self.mean_at_k, "k": self.k, "n_questions": self.n_questions,
                "answered_fraction": self.answered, "wall_s": self.wall_s, "backend": self.backend,
                "stderr": self.stderr, "correct": self.correct}

    @property
    def stderr(self) -> float | None:
        """Standard error of mean@k over questions (questions are the independent unit); None with one question."""
        if self.n_questions < 2:
            return None
        acc = [c / self.k for c in self.correct]
        return statistics.stdev(acc) / math.sqrt(len(acc))


def score(questions: list[Question], completions: list[list[str]]) -> EvalResult:
    """Grade k completions per question."""
    correct, answered, total = [], 0, 0
    for q, comps in zip(questions, completions, strict=True):
        answers = [q.read(c) for c in comps]              # an option letter, or a number (word problems)
        answered += sum(x is not None for x in answers)
        total += len(answers)
        correct.append(sum(x == q.answer for x in answers))
    k = len(completions[0]) if completions else 0
    mean = sum(correct) / (k * len(questions)) if questions and k else float("nan")
    return EvalResult(mean, k, len(questions), correct, answered / total if total else 0.0)


def stop_token_ids(model, tokenizer) -> list[int]:
    """The ids that end a completion: the tokenizer's end-of-sequence token and the model's generation config's
    (Qwen3 ends a turn with <|im_end|>, Gemma with <end_of_turn>: each model says which of its own)."""
    own = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [tokenizer.eos_token_id] + (own if isinstance(own, (list, tuple)) else [own])
    return sorted({int(t) for t in ids if t is not None})


def rank_shard(items: list, rank: int, world: int) -> tuple[list, int]:
    """(this rank's items padded to the same length on every rank, how many are real). Ranks that generate with
    sharded weights (FSDP2, ZeRO-3) gather parameters in every forward, so every rank must run the same number of
    generate calls: the padding repeats the shard's last item (or the first item), and its results are dropped."""
    shard = items[rank::world]
    per = -(-len(items) // world)
    filler = shard[-1] if shard else items[0]
    return shard + [filler] * (per - len(shard)), len(shard)


def generate_transformers(model, tokenizer, questions: list[Question], style: str, k: int, temperature: float,
                          top_p: float, max_new_tokens: int, batch_size: int = 16, seed: int = 0,
                          label: str = "eval", show_progress: bool = True, synced: bool = False) -> list[list[str]]:
    """k sampled completions per question. `synced`: the model's weights are sharded over ranks - every rank keeps
    running forward passes until all of them have finished (transformers' synced_gpus), so that the gathers match."""
    import torch
    from transformers import GenerationConfig

    eos = stop_token_ids(model, tokenizer)
    cfg = GenerationConfig(do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
                           max_new_tokens=max_new_tokens, num_return_sequences=k, eos_token_id=eos,
                           pad_token_id=tokenizer.pad_token_id)
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out: list[list[str]] = []
    per_batch = max(1, batch_size // k) if k <= batch_size else 1
    prog = Progress(len(questions), label=label, every_s=0.0, stream=sys.stdout, unit="questions") \
        if show_progress else None
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(questions), per_batch):
            qs = questions[i:i + per_batch]
            texts = [tokenizer.apply_chat_template(conversation(q, style), tokenize=False, add_generation_prompt=True,
                                                   enable_thinking=False) for q in qs]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            with torch.no_grad():
                ids = model.generate(**enc, generation_config=cfg, synced_gpus=synced)
            comp = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            out += [comp[j * k:(j + 1) * k] for j in range(len(qs))]
            if prog is not None:
                prog.update(min(i + per_batch, len(questions)), force=True)
    finally:
        tokenizer.padding_side = old_side
        if was_training:
            model.train()
    return out


CPU_KV_CACHE_GIB = 2.0        # vLLM's CPU engine: KV cache to reserve (VLLM_CPU_KVCACHE_SPACE) when none is set


def engine_problem(error: BaseException) -> str:
    """vLLM's error at engine start, as one line with the cause and the fix."""
    text = " ".join(str(error).split())
    if "head" in text.lower() and ("unsupported" in text.lower() or "not supported" in text.lower()):
        return (f"vLLM's attention kernels do not support this model's head size ({text[:160]}): use --backend "
                "transformers")
    if "memory" in text.lower():
        return (f"vLLM could not reserve memory for its engine ({text[:200]}): lower --vllm-memory (GiB of KV cache "
                "on CPU, fraction of GPU memory on a GPU) or use --backend transformers")
    return f"vLLM could not run ({type(error).__name__}: {text[:240]}): use --backend transformers, or fix the install"


def generate_vllm(model_path: str, tokenizer, questions: list[Question], style: str, k: int, temperature: float,
                  top_p: float, max_new_tokens: int, seed: int = 0, memory: float | None = None,
                  **llm_kwargs) -> list[list[str]]:
    """k samples per question from a vLLM engine on model_path. `memory`: on CPU the GiB of KV cache to reserve
    (VLLM_CPU_KVCACHE_SPACE; default CPU_KV_CACHE_GIB when the variable is not set), on a GPU the fraction of its
    memory (gpu_memory_utilization; default vLLM's). Engine errors become BackendError (one line)."""
    import os

    import torch
    on_gpu = torch.cuda.is_available()
    # the engine in this process: its errors arrive here as exceptions (one line below), not as a child's traceback
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    if not on_gpu:
        if memory is not None or "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = f"{memory if memory is not None else CPU_KV_CACHE_GIB:g}"
    elif memory is not None:
        llm_kwargs["gpu_memory_utilization"] = memory
    try:
        from vllm import LLM, SamplingParams
        llm = LLM(model=model_path, seed=seed, **llm_kwargs)
    except Exception as e:                    # noqa: BLE001 - vLLM raises many types at start; the user needs one line
        raise BackendError(engine_problem(e)) from None
    # a per-request seed needs a GPU generator (vLLM's CPU sampler refuses it); the engine's own seed is set above
    params = SamplingParams(n=k, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens,
                            **({"seed": seed} if on_gpu else {}))
    texts = [tokenizer.apply_chat_template(conversation(q, style), tokenize=False, add_generation_prompt=True,
                                           enable_thinking=False) for q in questions]
    try:
        outs = llm.generate(texts, params, use_tqdm=False)
    except Exception as e:                    # noqa: BLE001
        raise BackendError(engine_problem(e)) from None
    return [[c.text for c in o.outputs] for o in outs]


class BackendError(RuntimeError):
    """The chosen generation backend cannot run (the message is one line naming the cause)."""


def choose_backend(backend: str) -> str:
    """`auto`: vLLM on a CUDA machine where vLLM is installed, else transformers. A vLLM that is installed but does
    not import is an error (one line with vLLM's own), never a silent switch to a 10-50x slower backend."""
    if backend != "auto":
        return backend
    import torch
    if not torch.cuda.is_available():
        return "transformers"
    try:
        import vllm  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != "vllm":
            raise BackendError(f"vLLM is installed but does not import (missing {e.name!r}): fix the install, or "
                               "pass --backend transformers") from None
        return "transformers"
    except Exception as e:                 # noqa: BLE001 - a broken vLLM raises anything at import
        raise BackendError(f"vLLM is installed but does not import ({type(e).__name__}: "
                           f"{' '.join(str(e).split())[:200]}): fix the install, or pass --backend transformers") from None
    return "vllm"


def evaluate_path(model_path: str, questions: list[Question], style: str, k: int = 16, temperature: float = 0.6,
                  top_p: float = 0.95, max_new_tokens: int = 8192, batch_size: int = 16, backend: str = "auto",
                  seed: int = 0, dtype: str = "auto", vllm_memory: float | None = None) -> EvalResult:
    """Evaluate a saved model (a directory in Hugging Face format, e.g. a checkpoint)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    backend = choose_backend(backend)
    t0 = time.perf_counter()
    if backend == "vllm":
        from pgpo.vllm_support import check_vllm
        check_vllm()                                    # one line for a mismatched install, before the engine loads
        comps = generate_vllm(model_path, tokenizer, questions, style, k, temperature, top_p, max_new_tokens, seed,
                              memory=vllm_memory, **({} if dtype == "auto" else {"dtype": dtype}))
    else:
        import torch
        from transformers import AutoModelForCausalLM

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(dev)
        comps = generate_transformers(model, tokenizer, questions, style, k, temperature, top_p, max_new_tokens,
                                      batch_size, seed)
    res = score(questions, comps)
    res.wall_s, res.backend = time.perf_counter() - t0, backend
    return res

"""GPU check (at most ~5 minutes on one NVIDIA GPU): the PGPO trainer in bf16 on a random Qwen3 of a few
hundred million parameters, with and without PGPO, plus the peak memory of computing I_k for one
8 192-token response over the 151 936-token vocabulary.

    python benchmarks/gpu_check.py [--json out.json]          # on a CUDA machine
    python benchmarks/gpu_check.py --device cpu --small       # the same code path, tiny, on CPU (CI smoke)

Prints, per variant (SDPO = alpha 0, PGPO = alpha 2): median step time (first step excluded), tokens/s and
peak GPU memory beside `pgpo plan`'s estimate for the same shape (fp32 weights with bf16 autocast: the
trainer refuses bf16 weights without DeepSpeed), then the PGPO/SDPO time and memory ratios, the memory of the
fp32 EMA average of a bf16 teacher of the same shape (measured vs the planner's 4 bytes per parameter), then the
extra peak memory of I_k from full logits in sequence chunks, from full logits in one piece, and from the
top-100 + tail support.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def _mem(device):
    import torch
    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset(device):
    import torch
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def train_variant(alpha: float, args, workdir: str) -> dict:
    import torch

    from pgpo.config import load_config
    from pgpo.run import build_trainer

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    smoke = os.path.join(root, "experiments", "science_qa", "smoke-cpu.yaml")
    out = os.path.join(workdir, f"alpha{alpha:g}")
    ov = [f"training.output_dir={out}", f"pgpo.alpha={alpha}", "pgpo.m_max=2.0",
          f"model.tiny_hidden_size={args.hidden}", f"model.tiny_layers={args.layers}", "model.tiny_init_std=0.3",
          "model.dtype=float32",
          f"training.bf16={'true' if args.device == 'cuda' else 'false'}",
          f"training.generation_batch_size={args.questions * args.rollouts}", f"training.num_generations={args.rollouts}",
          f"training.per_device_train_batch_size={args.questions * args.rollouts // args.accumulation}",
          f"training.max_completion_length={args.completion}", "training.max_prompt_length=1024",
          f"training.max_steps={args.steps}", f"training.save_steps={10 * args.steps}", "eval.every_steps=0",
          "monitor.enabled=false", f"data.max_train_questions={args.questions * args.steps}"]
    if args.tokenizer:
        ov.append(f"model.tokenizer={args.tokenizer}")
    cfg = load_config(smoke, ov)
    from pgpo.plan import estimate
    planned = estimate(cfg, 1, 141.0, "ddp")
    trainer = build_trainer(cfg)
    _reset(args.device)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    peak = _mem(args.device)
    with open(os.path.join(out, "log.jsonl")) as f:
        lines = [json.loads(x) for x in f if '"train"' in x]
    times = [r["step_time_s"] for r in lines[1:]] or [lines[0]["step_time_s"]]
    tokens = statistics.median(r["tokens"] for r in lines)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    del trainer
    if args.device == "cuda":
        torch.cuda.empty_cache()
    return {"alpha": alpha, "median_step_s": statistics.median(times), "tokens_per_step": tokens,
            "tokens_per_s": tokens / statistics.median(times), "peak_mem_gib": peak / 2**30, "wall_s": wall,
            "params": n_params, "info": [r["info"] for r in lines], "multiplier": [r["multiplier"] for r in lines],
            "planned_peak_gib": planned.peak / 2**30}


def ema_memory(args) -> dict:
    """Bytes the fp32 EMA average of a bf16 teacher takes, measured, against the planner's 4 P."""
    import torch

    from pgpo.ema_teacher import FP32EMATeacher
    from pgpo.models import build_tiny_qwen3

    teacher = build_tiny_qwen3(seed=0, hidden_size=args.hidden, num_hidden_layers=args.layers).to(
        device=args.device, dtype=torch.bfloat16)
    P = sum(p.numel() for p in teacher.parameters())
    _reset(args.device)
    before = torch.cuda.memory_allocated() if args.device == "cuda" else 0
    ema = FP32EMATeacher(teacher, rate=0.05)
    measured = (torch.cuda.memory_allocated() - before) if args.device == "cuda" else ema.shadow_bytes
    return {"params": P, "measured_gib": measured / 2**30, "planned_gib": 4 * P / 2**30}


def information_memory(args) -> dict:
    import torch

    from pgpo.information import information_from_logits, information_from_topk, topk_support

    T, V = args.info_tokens, args.info_vocab
    dev = args.device
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    g = torch.Generator(device=dev).manual_seed(0)
    s = torch.randn(1, T, V, device=dev, dtype=dtype, generator=g)
    t = torch.randn(1, T, V, device=dev, dtype=dtype, generator=g)
    mask = torch.ones(1, T, device=dev)
    out = {"tokens": T, "vocab": V, "logits_gib_each": s.numel() * s.element_size() / 2**30}
    for name, fn in (("full_chunked_128", lambda: information_from_logits(s, t, mask, chunk_size=128)),
                     ("full_one_piece", lambda: information_from_logits(s, t, mask, chunk_size=T)),
                     ("topk100_tail", lambda: information_from_topk(*topk_support(s, t, 100), mask))):
        _reset(dev)
        base = torch.cuda.memory_allocated() if dev == "cuda" else _mem(dev)
        t0 = time.perf_counter()
        st = fn()
        if dev == "cuda":
            torch.cuda.synchronize()
        out[name] = {"extra_peak_gib": (_mem(dev) - base) / 2**30, "seconds": time.perf_counter() - t0,
                     "I": st.value}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--small", action="store_true", help="tiny sizes (CPU smoke test of this script)")
    ap.add_argument("--tokenizer", help="a tokenizer folder for the trained model (default: the smoke preset's, "
                    "Qwen3's 151 936 tokens; the tests give a 2 048-token cut of it)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    big = dict(hidden=1024, layers=16, questions=8, rollouts=8, accumulation=2, completion=512, steps=5,
               info_tokens=8192, info_vocab=151936)
    small = dict(hidden=64, layers=2, questions=2, rollouts=4, accumulation=1, completion=8, steps=2,
                 info_tokens=256, info_vocab=4096)
    for k, v in (small if args.small else big).items():
        setattr(args, k, v)
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.exit(2, "gpu_check: no CUDA device (use --device cpu --small for the CPU smoke run)\n")
    info = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu", "torch": torch.__version__}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        runs = [train_variant(a, args, work) for a in (0.0, 2.0)]
    mem = information_memory(args)
    ema = ema_memory(args)
    sdpo, pgpo = runs
    res = {"env": info, "sizes": {k: getattr(args, k) for k in big}, "sdpo": sdpo, "pgpo": pgpo,
           "time_ratio": pgpo["median_step_s"] / sdpo["median_step_s"],
           "memory_ratio": pgpo["peak_mem_gib"] / sdpo["peak_mem_gib"], "information_memory": mem, "ema_fp32": ema,
           "total_s": time.perf_counter() - t0}
    print(f"{info['device']}, torch {info['torch']}; random Qwen3 with {sdpo['params'] / 1e6:.0f} M parameters, "
          f"{args.questions} questions x {args.rollouts} rollouts x {args.completion} tokens, {args.steps} steps")
    for name, r in (("SDPO", sdpo), ("PGPO", pgpo)):
        print(f"  {name}: step {r['median_step_s']:.3f} s, {r['tokens_per_s']:.0f} tokens/s, peak "
              f"{r['peak_mem_gib']:.2f} GiB (planner {r['planned_peak_gib']:.2f} GiB), I_k {['%.3g' % x for x in r['info']]}, m_k "
              f"{['%.3g' % x for x in r['multiplier']]}")
    print(f"  PGPO/SDPO: time x{res['time_ratio']:.3f}, peak memory x{res['memory_ratio']:.3f}")
    print(f"fp32 EMA average of a bf16 teacher ({ema['params'] / 1e6:.0f} M parameters): measured "
          f"{ema['measured_gib']:.3f} GiB, planner {ema['planned_gib']:.3f} GiB")
    print(f"I_k on one {mem['tokens']}-token response x {mem['vocab']} vocabulary "
          f"(each logits tensor {mem['logits_gib_each']:.2f} GiB):")
    for k in ("full_chunked_128", "full_one_piece", "topk100_tail"):
        print(f"  {k:18s} extra peak {mem[k]['extra_peak_gib']:.3f} GiB, {mem[k]['seconds']:.3f} s")
    print(f"total {res['total_s']:.0f} s")
    if args.json:
        from runtools.files import atomic_write_json
        atomic_write_json(args.json, res, indent=1)
    return res


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

"""Overhead of PGPO over SDPO for one distillation training step, on a tiny Qwen3 on CPU.

Time: all variants in one process, alternating step by step (paired, same memory and cache state);
medians over `--steps` steps and the median of the per-step ratios. Memory: each variant alone in a fresh
process (so that its peak RSS is its own). Variants:

  sdpo       student forward + EMA-teacher forward + top-100+tail JSD (alpha 0.5) + backward + AdamW
  pgpo       the same + I_k from the loss's own top-k(+tail) log-probs + m_k applied to the AdamW step
  pgpo_full  the same, but I_k recomputed from the full-vocabulary logits (chunked): the cost when the
             loss does not already hold top-k log-probs (for information; no target)
  smoothed   pgpo with m_k = m(Ibar_k), Ibar the moving average of I_k (pgpo.ema_steps 10)
  scale_free m_k = min(1 + 0.5 I_k / Ibar_k, 2)
  sample     per-sample loss weights m(I_i), normalised (the step is not multiplied)
  token      per-token loss weights m(I_t), normalised

Prints median step time, peak RSS and the step's peak RSS increment, and the PGPO/SDPO ratios.
Targets (issues): time ratio <= 1.03 and peak-memory ratio <= 1.05 for `pgpo`; <= 1.01 for the variants
relative to SDPO, like batch PGPO.

    python benchmarks/pgpo_overhead.py [--steps 12] [--batch 4] [--response 128] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def _setup(batch: int, prompt: int, response: int, seed: int, vocab: int):
    import torch

    from pgpo.models import build_tiny_qwen3

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    student = build_tiny_qwen3(seed=0, vocab_size=vocab)
    teacher = build_tiny_qwen3(seed=0, vocab_size=vocab)
    teacher.requires_grad_(False)
    teacher.eval()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-5, betas=(0.9, 0.999), weight_decay=0.01)
    top = min(151_000, vocab)
    ids = torch.randint(0, top, (batch, prompt + response))
    t_ids = torch.cat([torch.randint(0, top, (batch, 2 * prompt)), ids[:, prompt:]], dim=1)
    mask = torch.ones(batch, response)
    return student, teacher, opt, ids, t_ids, mask


VARIANT_SETTINGS = {"sdpo": {}, "pgpo": {}, "pgpo_full": {},
                    "smoothed": {"ema_steps": 10.0, "signal": "smoothed"},
                    "scale_free": {"alpha": 0.0, "beta": 0.5, "ema_steps": 10.0},
                    "sample": {"granularity": "sample"}, "token": {"granularity": "token"}}


def settings_for(variant):
    from pgpo.settings import PGPOSettings
    return PGPOSettings(**{"alpha": 1.0, "m_max": 2.0, **VARIANT_SETTINGS[variant]}).validate()


def use_variant(ctl, variant, emas):
    """Point the one controller on the shared optimizer at `variant`'s settings (its own Ibar kept in `emas`), so
    that every variant steps the same optimizer through the same hooks (a benchmark-only shortcut)."""
    from pgpo.modulation import InfoEMA
    st = settings_for(variant)
    ctl.settings, ctl.multiplier, ctl.rule = st, st.multiplier(), st.step_rule()
    if st.ema_steps is not None and variant not in emas:
        emas[variant] = InfoEMA(1.0 / st.ema_steps)
    ctl.ema = emas.get(variant)


def make_step(variant, student, teacher, opt, ids, t_ids, mask, response, ctl, emas=None):
    """One distillation training step; `variant` decides whether and how I_k and m_k (or weights) are computed."""
    import torch

    from pgpo.distill import topk_distillation
    from pgpo.information import per_token_from_topk

    def step():
        if ctl is not None and emas is not None:
            use_variant(ctl, variant, emas)
        s_logits = student(input_ids=ids, logits_to_keep=response + 1).logits[:, :-1]
        with torch.no_grad():
            t_logits = teacher(input_ids=t_ids, logits_to_keep=response + 1).logits[:, :-1]
        per_tok, s_lp, t_lp = topk_distillation(s_logits, t_logits, k=100, add_tail=True, jsd_weight=0.5)
        if variant == "pgpo_full":
            ctl.observe_logits(s_logits.detach(), t_logits, mask)
        elif variant != "sdpo":                  # as the trainer: per-token I_k from the loss's own support
            info = per_token_from_topk(s_lp.detach(), t_lp, final_support=True)
            ctl.observe_per_token(info, mask)
            per_tok = ctl.weigh(per_tok, info, mask)
        loss = (per_tok * mask).sum() / mask.sum()
        if variant != "sdpo":
            ctl.finalize()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def time_worker(variants, steps, batch, prompt, response, seed, vocab) -> dict:
    """All variants in one process, alternating step by step: paired timings under the same conditions."""
    from pgpo.controller import PGPOController
    from pgpo.settings import PGPOSettings

    student, teacher, opt, ids, t_ids, mask = _setup(batch, prompt, response, seed, vocab)
    ctl = PGPOController(opt, PGPOSettings(alpha=1.0, m_max=2.0))
    emas: dict = {}
    fns = {v: make_step(v, student, teacher, opt, ids, t_ids, mask, response, ctl, emas) for v in variants}
    for v in variants:                          # warm-up: allocator, AdamW state, kernels
        fns[v]()
    times = {v: [] for v in variants}
    for i in range(steps):
        order = variants if i % 2 == 0 else variants[::-1]
        for v in order:
            t = time.perf_counter()
            fns[v]()
            times[v].append(time.perf_counter() - t)
    return times


def memory_worker(variant, steps, batch, prompt, response, seed, vocab) -> dict:
    """Peak RSS of one variant alone in a fresh process."""
    import psutil

    from pgpo.controller import PGPOController

    student, teacher, opt, ids, t_ids, mask = _setup(batch, prompt, response, seed, vocab)
    ctl = PGPOController(opt, settings_for(variant)) if variant != "sdpo" else None
    step = make_step(variant, student, teacher, opt, ids, t_ids, mask, response, ctl)
    step()
    rss_before = psutil.Process().memory_info().rss // 1024
    for _ in range(steps):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"variant": variant, "peak_rss_kib": peak, "step_peak_increment_kib": peak - rss_before,
            "vocab": student.config.vocab_size}


def _run(args, mode, variant=None):
    cmd = [sys.executable, __file__, "--worker", mode, "--steps", str(args.steps), "--batch", str(args.batch),
           "--prompt", str(args.prompt), "--response", str(args.response), "--vocab", str(args.vocab),
           "--variants", *args.variants]
    if variant:
        cmd += ["--variant", variant]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12, help="timed steps per variant")
    ap.add_argument("--memory-steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--response", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=151_936, help="the tiny model's vocabulary (default Qwen3-8B's)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANT_SETTINGS), choices=list(VARIANT_SETTINGS))
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker == "time":
        print(json.dumps(time_worker(args.variants, args.steps, args.batch, args.prompt, args.response, 0, args.vocab)))
        return None
    if args.worker == "memory":
        print(json.dumps(memory_worker(args.variant, args.steps, args.batch, args.prompt, args.response, 0,
                                       args.vocab)))
        return None
    print(f"[overhead] timing {len(args.variants)} variants x {args.steps} steps in one process ...", file=sys.stderr,
          flush=True)
    times = _run(args, "time")
    mem_args = argparse.Namespace(**{**vars(args), "steps": args.memory_steps})
    mem = {}
    for i, v in enumerate(args.variants):
        print(f"[overhead] peak memory {i + 1}/{len(args.variants)}: {v} (a fresh process)", file=sys.stderr, flush=True)
        mem[v] = _run(mem_args, "memory", v)
    base_t = statistics.median(times["sdpo"])
    print(f"tiny Qwen3 (vocab {mem['sdpo']['vocab']}), batch {args.batch} x (prompt {args.prompt} + response "
          f"{args.response}), top-100+tail JSD, AdamW, 1 thread")
    print(f"time: {args.steps} steps per variant, alternating in one process; memory: one fresh process per variant")
    print(f"{'variant':10s} {'median s':>9s} {'time x':>7s} {'paired x':>8s} {'peak MiB':>9s} {'peak x':>7s} "
          f"{'step +MiB':>9s} {'step+ x':>7s}")
    summary = {}
    for v in args.variants:
        paired = statistics.median(a / b for a, b in zip(times[v], times["sdpo"]))
        s = {"median_step_s": statistics.median(times[v]), "time_ratio": statistics.median(times[v]) / base_t,
             "paired_time_ratio": paired, "peak_rss_kib": mem[v]["peak_rss_kib"],
             "peak_ratio": mem[v]["peak_rss_kib"] / mem["sdpo"]["peak_rss_kib"],
             "step_peak_increment_kib": mem[v]["step_peak_increment_kib"],
             "increment_ratio": mem[v]["step_peak_increment_kib"] / max(mem["sdpo"]["step_peak_increment_kib"], 1)}
        summary[v] = s
        print(f"{v:10s} {s['median_step_s']:9.3f} {s['time_ratio']:7.3f} {paired:8.3f} "
              f"{s['peak_rss_kib'] / 1024:9.0f} {s['peak_ratio']:7.3f} {s['step_peak_increment_kib'] / 1024:9.0f} "
              f"{s['increment_ratio']:7.3f}")
    if args.json:
        from runtools.files import atomic_write_json
        atomic_write_json(args.json, {"args": vars(args), "times": times, "memory": mem, "summary": summary}, indent=1)
    return summary


if __name__ == "__main__":
    main()

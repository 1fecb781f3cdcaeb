"""Overhead of PGPO over SDPO for one distillation training step, on a tiny Qwen3 on CPU.

Each variant runs in its own fresh process (so that peak RSS is its own), variants interleaved, and
the figures are medians over `--repeats` processes x `--steps` timed steps:

  sdpo       student forward + EMA-teacher forward + top-100+tail JSD (alpha 0.5) + backward + AdamW
  pgpo       the same + I_k from the loss's own top-k(+tail) log-probs + m_k applied to the AdamW step
  pgpo_full  the same, but I_k recomputed from the full-vocabulary logits (chunked): the cost when the
             loss does not already hold top-k log-probs (for information; no target)

Prints median step time, peak RSS and the step's peak RSS increment, and the PGPO/SDPO ratios.
Targets (issue): time ratio <= 1.03 and peak-memory ratio <= 1.05 for `pgpo`.

    python benchmarks/pgpo_overhead.py [--repeats 3] [--steps 6] [--batch 4] [--response 128]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def worker(variant: str, steps: int, batch: int, prompt: int, response: int, seed: int) -> dict:
    import psutil
    import torch

    from pgpo.controller import PGPOController, PGPOSettings
    from pgpo.distill import topk_distillation
    from pgpo.models import build_tiny_qwen3

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    student = build_tiny_qwen3(seed=0)
    teacher = build_tiny_qwen3(seed=0)
    teacher.requires_grad_(False)
    teacher.eval()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-5, betas=(0.9, 0.999), weight_decay=0.01)
    ctl = PGPOController(opt, PGPOSettings(alpha=1.0, m_max=2.0)) if variant != "sdpo" else None
    vocab = student.config.vocab_size
    ids = torch.randint(0, 151_000, (batch, prompt + response))
    t_ids = torch.cat([torch.randint(0, 151_000, (batch, 2 * prompt)), ids[:, prompt:]], dim=1)
    mask = torch.ones(batch, response)

    def step():
        s_logits = student(input_ids=ids, logits_to_keep=response + 1).logits[:, :-1]
        with torch.no_grad():
            t_logits = teacher(input_ids=t_ids, logits_to_keep=response + 1).logits[:, :-1]
        per_tok, s_lp, t_lp = topk_distillation(s_logits, t_logits, k=100, add_tail=True, jsd_alpha=0.5)
        loss = (per_tok * mask).sum() / mask.sum()
        if variant == "pgpo":
            ctl.observe_topk(s_lp.detach(), t_lp, mask, has_tail=True)
            ctl.finalize()
        elif variant == "pgpo_full":
            ctl.observe_logits(s_logits.detach(), t_logits, mask)
            ctl.finalize()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    step()                                     # warm-up: allocator, AdamW state
    rss_before = psutil.Process().memory_info().rss // 1024
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"variant": variant, "median_step_s": statistics.median(times), "peak_rss_kib": peak,
            "step_peak_increment_kib": peak - rss_before, "vocab": vocab,
            "last_m": None if ctl is None else ctl.modulator.last.multiplier}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--response", type=int, default=128)
    ap.add_argument("--variants", nargs="+", default=["sdpo", "pgpo", "pgpo_full"])
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.batch, args.prompt, args.response, seed=0)))
        return None
    runs = {v: [] for v in args.variants}
    for rep in range(args.repeats):           # interleaved so that machine noise hits all variants alike
        for v in args.variants:
            cmd = [sys.executable, __file__, "--worker", v, "--steps", str(args.steps), "--batch", str(args.batch),
                   "--prompt", str(args.prompt), "--response", str(args.response)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            runs[v].append(json.loads(out))
            print(f"  repeat {rep + 1}/{args.repeats} {v:9s} step {runs[v][-1]['median_step_s']:.3f}s "
                  f"peak {runs[v][-1]['peak_rss_kib'] / 1024:.0f} MiB", flush=True)
    summary = {}
    for v, rs in runs.items():
        summary[v] = {k: statistics.median(r[k] for r in rs)
                      for k in ("median_step_s", "peak_rss_kib", "step_peak_increment_kib")}
    base = summary["sdpo"]
    print(f"\ntiny Qwen3 (vocab {runs['sdpo'][0]['vocab']}), batch {args.batch} x (prompt {args.prompt} + response "
          f"{args.response}), top-100+tail JSD, AdamW; medians of {args.repeats} processes x {args.steps} steps")
    print(f"{'variant':10s} {'step s':>8s} {'peak MiB':>9s} {'step +MiB':>9s} {'time x':>7s} {'peak x':>7s} "
          f"{'step+ x':>7s}")
    for v, s in summary.items():
        s["time_ratio"] = s["median_step_s"] / base["median_step_s"]
        s["peak_ratio"] = s["peak_rss_kib"] / base["peak_rss_kib"]
        s["increment_ratio"] = s["step_peak_increment_kib"] / max(base["step_peak_increment_kib"], 1)
        print(f"{v:10s} {s['median_step_s']:8.3f} {s['peak_rss_kib'] / 1024:9.0f} "
              f"{s['step_peak_increment_kib'] / 1024:9.0f} {s['time_ratio']:7.3f} {s['peak_ratio']:7.3f} "
              f"{s['increment_ratio']:7.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": runs, "summary": summary}, f, indent=1)
    return summary


if __name__ == "__main__":
    main()

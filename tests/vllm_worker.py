"""Subprocess side of tests/test_vllm_engine.py: each check runs in its own process (a vLLM engine sets up
process-wide state), prints one JSON line prefixed RESULT, and exits 0.

    python tests/vllm_worker.py greedy MODEL_DIR            vLLM vs transformers greedy completions (fp32)
    python tests/vllm_worker.py colocate MODEL_DIR OUT_DIR  a 3-step colocated run with in-training evaluation
"""

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")       # the engine core in this process
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROBE_TOKENS = 12


def chat_prompts(tok, n):
    from pgpo.data import load_questions
    from pgpo.prompts import conversation

    qs = load_questions("chemistry", "test", limit=n).questions
    ids = [tok.apply_chat_template(conversation(q, "reference"), tokenize=True, add_generation_prompt=True,
                                   enable_thinking=False) for q in qs]
    return [list(p["input_ids"]) if hasattr(p, "keys") else list(p) for p in ids]


def hf_greedy(model, prompt, n_tokens):
    """transformers' greedy continuation and its per-token log-probs (teacher-forced), fp32."""
    import torch

    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=n_tokens, do_sample=False)
    return out[0, len(prompt):].tolist()


def hf_logprobs(model, prompt, completion):
    import torch

    with torch.no_grad():
        ids = torch.tensor([prompt + completion])
        logp = torch.log_softmax(model(ids).logits[0, len(prompt) - 1:-1].float(), dim=-1)
    return [float(logp[i, t]) for i, t in enumerate(completion)]


def engine_greedy(llm, prompt, n_tokens):
    """The engine's greedy continuation with the sampled tokens' log-probs."""
    from vllm import SamplingParams

    out = llm.generate([{"prompt_token_ids": prompt}], SamplingParams(temperature=0.0, max_tokens=n_tokens, logprobs=0),
                       use_tqdm=False)[0].outputs[0]
    return list(out.token_ids), [float(lp[t].logprob) for lp, t in zip(out.logprobs, out.token_ids)]


def greedy(model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from vllm import LLM

    from pgpo.vllm_support import check_vllm

    check_vllm()
    tok = AutoTokenizer.from_pretrained(model_dir)
    prompts = chat_prompts(tok, 4)
    t0 = time.perf_counter()
    llm = LLM(model=model_dir, dtype="float32", seed=0, enforce_eager=True, max_model_len=2048)
    t_engine = time.perf_counter() - t0
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = []
    for p in prompts:
        v_ids, v_lp = engine_greedy(llm, p, 24)
        h_ids = hf_greedy(model, p, 24)
        rows.append({"vllm": v_ids, "hf": h_ids[:len(v_ids)], "hf_full": h_ids, "vllm_logprobs": v_lp,
                     "hf_logprobs": hf_logprobs(model, p, v_ids)})
    return {"rows": rows, "engine_start_s": t_engine}


def colocate(model_dir, out_dir):
    import yaml

    from pgpo.config import load_config
    from pgpo.run import build_trainer
    from pgpo.trainer import PGPOTrainer

    records = []

    class Recording(PGPOTrainer):
        """After each rollout (TRL has synced the engine by then): the engine's greedy probe against the current
        policy's, and the log-probs vLLM returned for the rollout."""

        def _generate_vllm(self, prompt_ids):
            vg = self.vllm_generation
            calls = []
            sync = vg.sync_weights
            vg.sync_weights = lambda: (calls.append(1), sync())[1]      # count the trainer's own syncs
            try:
                out = super()._generate_vllm(prompt_ids)
            finally:
                vg.sync_weights = sync
            llm = vg.llm
            model = self.accelerator.unwrap_model(self.model)
            was_training = model.training
            model.eval()
            e_ids, e_lp = engine_greedy(llm, probe, PROBE_TOKENS)
            records.append({"step": self.state.global_step, "own_syncs": len(calls),
                            "engine": e_ids, "policy": hf_greedy(model, probe, PROBE_TOKENS),
                            "engine_logprobs": e_lp, "policy_logprobs": hf_logprobs(model, probe, e_ids),
                            "initial_logprobs": hf_logprobs(initial, probe, e_ids),
                            "rollout_logprobs": [[None if lp is None or lp[0] is None else float(lp[0]) for lp in seq]
                                                 for seq in (self._rollout_logprobs or [])]})
            model.train(was_training)
            return out

        def sample_rollouts(self, inputs):
            """The batch's rollout log-probs (what the loss's importance weight reads) against the ones vLLM returned
            for the same completions (the last recorded rollout)."""
            batch = super().sample_rollouts(inputs)
            r = batch.get("rollout_per_token_logps")
            vllm_lps = records[-1]["rollout_logprobs"]
            diff = 0.0
            for i, seq in enumerate(vllm_lps):
                for t, lp in enumerate(seq[:r.shape[1]]):
                    diff = max(diff, abs(float(r[i, t]) - lp))
            records.append({"step": self.state.global_step, "batch_vs_vllm_logprobs": diff,
                            "batch_rows": int(r.shape[0]), "vllm_rows": len(vllm_lps)})
            return batch

    cfg_path = os.path.join(ROOT, "experiments", "science_qa", "smoke-cpu.yaml")
    raw = yaml.safe_load(open(cfg_path))
    raw["model"] = {"name_or_path": model_dir, "dtype": "float32"}
    raw["training"].update(output_dir=out_dir, max_steps=3, learning_rate=3e-3, save_steps=100, use_vllm=True,
                           vllm_mode="colocate", vllm_enable_sleep_mode=False, vllm_max_model_length=2048)
    raw["training"]["distillation_is_clip"] = 2.0
    # evaluation after step 2 only: the rollout of step 2 then relies on the trainer's own sync (evaluation syncs too)
    raw["eval"] = {"every_steps": 2, "num_samples": 2, "max_questions": 2, "max_new_tokens": 8, "backend": "vllm"}
    path = os.path.join(out_dir + ".yaml")
    with open(path, "w") as f:
        yaml.safe_dump(raw, f)
    cfg = load_config(path)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import torch

    tok = AutoTokenizer.from_pretrained(model_dir)
    probe = chat_prompts(tok, 1)[0]
    initial = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    t0 = time.perf_counter()
    trainer = build_trainer(cfg, trainer_cls=Recording)
    trainer.train()
    evals = [json.loads(line) for line in open(os.path.join(out_dir, "log.jsonl")) if '"eval"' in line]
    return {"records": records, "evals": evals, "train_s": time.perf_counter() - t0}


if __name__ == "__main__":
    mode = sys.argv[1]
    result = greedy(sys.argv[2]) if mode == "greedy" else colocate(sys.argv[2], sys.argv[3])
    print("RESULT " + json.dumps(result), flush=True)

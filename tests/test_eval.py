import json
import sys
import types

import pytest

from pgpo.data import load_questions
from pgpo.eval import score

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qs():
    return load_questions("physics", "test", limit=3).questions


def test_score_mean_at_k(qs):
    right = [f"\\boxed{{{q.answer}}}" for q in qs]
    wrong = ["\\boxed{Z}" for _ in qs]
    res = score(qs, [[r, w, r, "no answer"] for r, w in zip(right, wrong)])
    assert res.k == 4 and res.correct == [2, 2, 2] and res.mean_at_k == 0.5
    assert res.answered == pytest.approx(0.5)          # "\\boxed{Z}" is no valid letter, "no answer" has none
    assert res.stderr == 0.0


class _FakeOut:
    def __init__(self, text):
        self.text = text


class _FakeLLM:
    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def generate(self, prompts, sampling_params=None, use_tqdm=False):
        self.calls.append((len(prompts), sampling_params))
        return [types.SimpleNamespace(outputs=[_FakeOut(f"<answer>{a}</answer>") for _ in range(sampling_params.n)])
                for a in self.answers[: len(prompts)]]


def _fake_trainer(qs, mode):
    from accelerate import Accelerator
    from transformers import AutoTokenizer

    from pgpo.run import PACKAGED_TOKENIZER

    synced = []
    vg = types.SimpleNamespace(mode=mode, tensor_parallel_size=1, enable_sleep_mode=False,
                               sync_weights=lambda: synced.append(1), llm=_FakeLLM([q.answer for q in qs]))
    tok = AutoTokenizer.from_pretrained(PACKAGED_TOKENIZER)

    class Client:
        def generate(self, prompts, n, temperature, top_p, max_tokens):
            ids = [tok.encode(f"<answer>{qs[j].answer}</answer>") for j in range(len(prompts)) for _ in range(n)]
            return {"completion_ids": ids}

    vg.vllm_client = Client()
    trainer = types.SimpleNamespace(use_vllm=True, vllm_generation=vg, processing_class=tok,
                                    accelerator=Accelerator(cpu=True))
    return trainer, synced


@pytest.mark.parametrize("mode", ["colocate", "server"])
def test_in_training_eval_uses_the_trainers_vllm_engine(qs, tmp_path, monkeypatch, mode):
    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    import importlib.machinery
    fake = types.ModuleType("vllm")
    fake.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    fake.SamplingParams = SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", fake)
    from pgpo.callbacks import EvalCallback
    from pgpo.config import load_config
    from pgpo.callbacks import StepLog

    cfg = load_config(None, ["eval.num_samples=3", "eval.max_new_tokens=64"])
    trainer, synced = _fake_trainer(qs, mode)
    log = StepLog(str(tmp_path / "log.jsonl"))
    cb = EvalCallback(trainer, qs, cfg, log)
    cb._run(types.SimpleNamespace(global_step=5))
    rec = json.loads((tmp_path / "log.jsonl").read_text())
    assert rec["kind"] == "eval" and rec["step"] == 5 and rec["mean_at_k"] == 1.0 and rec["k"] == 3
    assert synced == [1]                                   # weights synced before sampling
    if mode == "colocate":
        (n, params), = trainer.vllm_generation.llm.calls
        assert n == len(qs) and params.n == 3 and params.temperature == 0.6 and params.top_p == 0.95
        assert params.max_tokens == 64


def test_in_training_eval_with_transformers(tmp_path):
    from trainer_helpers import make_trainer
    t = make_trainer(tmp_path, ["eval.every_steps=1", "eval.max_questions=2", "eval.num_samples=2",
                                "eval.max_new_tokens=4", "eval.at_start=true"], max_steps=1)
    t.train()
    evals = [json.loads(ln) for ln in open(tmp_path / "log.jsonl") if '"eval"' in ln]
    assert [e["step"] for e in evals] == [0, 1]
    assert all(e["k"] == 2 and e["n_questions"] == 2 and 0 <= e["mean_at_k"] <= 1 for e in evals)


def test_in_training_eval_does_not_change_training(tmp_path):
    import torch

    from trainer_helpers import make_trainer, params
    plain = make_trainer(tmp_path / "plain", ["monitor.enabled=false"], max_steps=2)
    plain.train()
    evald = make_trainer(tmp_path / "eval", ["monitor.enabled=false", "eval.every_steps=1", "eval.max_questions=2",
                                             "eval.num_samples=2", "eval.max_new_tokens=4"], max_steps=2)
    evald.train()
    a, b = params(plain), params(evald)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_auto_backend_never_falls_back_silently_from_a_broken_vllm(monkeypatch):
    """On a CUDA machine: vLLM not installed -> transformers; installed but failing to import -> one-line error."""
    import sys

    import torch

    from pgpo.eval import BackendError, choose_backend
    assert choose_backend("transformers") == "transformers" and choose_backend("vllm") == "vllm"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_backend("auto") == "transformers"                   # CPU: transformers, whatever is installed
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    class Broken:
        def find_spec(self, name, path=None, target=None):
            if name == "vllm":
                raise RuntimeError("CUDA driver version is insufficient")
            return None
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    with pytest.raises(BackendError, match="CUDA driver version is insufficient"):
        choose_backend("auto")

    class Missing:
        def find_spec(self, name, path=None, target=None):
            if name == "vllm":
                raise ModuleNotFoundError("No module named 'vllm'", name="vllm")
            return None
    monkeypatch.setattr(sys, "meta_path", [Missing(), *sys.meta_path[1:]])
    assert choose_backend("auto") == "transformers"


@pytest.mark.timeout(300)
def test_sharded_evaluation_with_an_odd_question_count_ends_on_every_rank(tmp_path):
    """FSDP2 on 2 gloo ranks, 3 questions: rank 1 is padded to two questions and generation runs synced, so both
    ranks make the same generate calls and finish (bounded time) with every real question answered once."""
    import json
    import os

    from distributed_utils import run_workers

    from pgpo.eval import rank_shard
    assert rank_shard([1, 2, 3], 0, 2) == ([1, 3], 2) and rank_shard([1, 2, 3], 1, 2) == ([2, 2], 1)
    assert rank_shard([1], 1, 2) == ([1], 0)
    worker = os.path.join(os.path.dirname(__file__), "dist_worker_fsdp_eval.py")
    out = str(tmp_path / "rank_RANK.json")
    run_workers(worker, 2, [out], timeout=240)
    r0, r1 = (json.load(open(out.replace("RANK", str(r)))) for r in (0, 1))
    assert (r0["n_real"], r1["n_real"]) == (2, 1) and r0["n_padded"] == r1["n_padded"] == 2
    assert r0["calls"] == r1["calls"] == 2
    assert r0["ids"] == r1["ids"] and len(r0["ids"]) == 3 and r0["k"] == [2]

"""In-training evaluation on a colocated, sleeping vLLM engine leaves TRL's record of the engine's state true.

Level-2 sleep discards the engine's weights; TRL's `VLLMGeneration` records that in `_llm_weights_sleeping`
and re-pushes the training weights before its next generation. The evaluation callback must keep that
record true, or the next training rollout samples from discarded weights. The engine here is a stand-in that
fails on any generation without current weights; `VLLMGeneration.generate` is TRL's real method.
"""

import importlib.machinery
import sys
import types

import pytest

pytest.importorskip("trl")


class Engine:
    """vLLM's LLM as far as sleep mode goes: level-2 sleep drops weights and KV cache."""

    def __init__(self, clock):
        self.clock, self.weights, self.kv_cache, self.generated_with = clock, None, False, []

    def sleep(self, level):
        assert level == 2
        self.weights, self.kv_cache = None, False

    def wake_up(self, tags=None):
        if "kv_cache" in (tags or ["kv_cache"]):
            self.kv_cache = True

    def load(self):
        self.weights = self.clock["version"]

    def generate(self, prompts, sampling_params=None, use_tqdm=False):
        if self.weights != self.clock["version"] or not self.kv_cache:
            raise AssertionError(f"generation on weights {self.weights!r} (current: {self.clock['version']}), "
                                 f"kv cache awake: {self.kv_cache}")
        self.generated_with.append(self.weights)
        out = types.SimpleNamespace(token_ids=[1, 2], logprobs=None, text="<answer>A</answer>")
        return [types.SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=[out] * sampling_params.n)
                for p in prompts]


@pytest.fixture
def fake_vllm(monkeypatch):
    from trl.generation import vllm_generation         # before the stand-in module exists (version checks)

    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)
            self.n = kw.get("n", 1)

    mod = types.ModuleType("vllm")
    mod.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    mod.SamplingParams = SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setattr(vllm_generation, "SamplingParams", SamplingParams, raising=False)
    return vllm_generation


def _sleeping_trl_engine(vllm_generation, clock):
    """A real VLLMGeneration (colocate, sleep mode) in the state TRL leaves it after __init__: asleep."""
    vg = object.__new__(vllm_generation.VLLMGeneration)
    engine = Engine(clock)

    def sync_weights():                     # TRL's sync_weights, as far as the engine's state goes
        engine.wake_up(tags=["weights"])
        engine.load()
        vg._llm_weights_sleeping = False

    vg.__dict__.update(mode="colocate", enable_sleep_mode=True, _llm_weights_sleeping=True, llm=engine,
                       tensor_parallel_size=1, accelerator=None, model=object(), temperature=1.0, top_p=1.0,
                       top_k=0, min_p=None, repetition_penalty=1.0, max_completion_length=4, logprobs=0,
                       generation_kwargs={}, structured_outputs_regex=None, sync_weights=sync_weights)
    return vg, engine


def test_training_generation_after_evaluation_runs_on_current_weights(fake_vllm, tmp_path):
    from accelerate import Accelerator
    from transformers import AutoTokenizer

    from pgpo.callbacks import EvalCallback
    from pgpo.config import load_config
    from pgpo.data import load_questions
    from pgpo.run import PACKAGED_TOKENIZER
    from pgpo.callbacks import StepLog

    clock = {"version": 1}
    vg, engine = _sleeping_trl_engine(fake_vllm, clock)
    vg.generate(prompts=[[1, 2, 3]], images=None, num_generations=1)           # a training rollout, step 1
    clock["version"] = 2                                                       # the optimizer steps
    qs = load_questions("physics", "test", limit=2).questions
    # the config before the Accelerator: building its PGPOConfig resets accelerate's state
    cfg = load_config(None, ["eval.num_samples=2", "eval.max_new_tokens=4"])
    trainer = types.SimpleNamespace(use_vllm=True, vllm_generation=vg, accelerator=Accelerator(cpu=True),
                                    processing_class=AutoTokenizer.from_pretrained(PACKAGED_TOKENIZER))
    EvalCallback(trainer, qs, cfg, StepLog(str(tmp_path / "log.jsonl")))._run(types.SimpleNamespace(global_step=1))
    assert engine.weights is None and vg._llm_weights_sleeping              # asleep, and TRL knows it
    clock["version"] = 3                                                       # another optimizer step
    vg.generate(prompts=[[1, 2, 3]], images=None, num_generations=1)          # TRL's own next rollout
    assert engine.generated_with == [1, 2, 3]                                 # every generation on current weights

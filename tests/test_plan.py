"""The memory plan against hand-computed numbers for a small, fully specified config."""

import glob
import os

import pytest

from pgpo.config import load_config
from pgpo.plan import GIB, KNOWN, ModelShape, accumulation_for, estimate, strategy_from_accelerate

ROOT = os.path.dirname(os.path.dirname(__file__))
SHAPE = ModelShape(hidden=64, layers=2, intermediate=128, heads=4, kv_heads=2, head_dim=16, vocab=1000, tied=False)


def _cfg(*extra):
    return load_config(None, ["model.dtype=bfloat16", "training.gradient_checkpointing=true",
                              "training.per_device_train_batch_size=2", "training.max_prompt_length=100",
                              "training.max_completion_length=50", "training.generation_batch_size=16",
                              "training.num_generations=4", "training.distillation_mode=topk_logits", "training.distillation_topk=10", *extra])


def test_parameter_count_by_hand():
    # per layer: q 64x64 + o 64x64 + k,v 64x32 each = 12288; mlp 3 x 64 x 128 = 24576; norms 2x64 + 2x16 = 160
    assert SHAPE.layer_params == 12288 + 24576 + 160
    assert SHAPE.params == 2 * (12288 + 24576 + 160) + 2 * 1000 * 64 + 64
    assert KNOWN["Qwen/Qwen3-8B"].params == pytest.approx(8.19e9, rel=0.01)      # Qwen3-8B: 8.2 B
    assert KNOWN["Qwen/Qwen3-0.6B"].params == pytest.approx(0.596e9, rel=0.02)


def test_ddp_terms_by_hand():
    plan = estimate(_cfg(), gpus=4, gpu_mem_gib=1.0, strategy="ddp", shape=SHAPE)
    P = SHAPE.params
    t = {x.name: x.bytes for x in plan.terms}
    assert t["student weights"] == P * 2 and t["EMA teacher weights"] == P * 2 and t["gradients"] == P * 2
    assert t["optimizer (AdamW states)"] == 4 * P
    L, B = 150, 2
    per_tok_layer = 7 * 64 + 2 * 32 + 3 * 128
    assert t["activations"] == 2 * B * L * 64 * 2 + B * L * per_tok_layer * 2
    assert t["distillation logits"] == B * 50 * 1000 * 14
    assert t["I_k buffers (top-k)"] == B * 50 * 11 * 16
    assert plan.phase_total("train") == sum(t.values())
    assert plan.largest.name == "distillation logits" and plan.fits     # ~1.9 MB of 1 GiB


def test_sharding_divides_by_processes_and_zero_keeps_fp32_masters():
    P = SHAPE.params
    z3 = {x.name: x.bytes for x in estimate(_cfg(), 4, 1.0, "zero3", shape=SHAPE).terms}
    assert z3["student weights"] == P * 2 / 4 and z3["gradients"] == P * 2 / 4
    assert z3["optimizer (fp32 master+Adam)"] == 12 * P / 4
    assert z3["zero3 layer gather"] == 2 * SHAPE.layer_params * 2
    z2 = {x.name: x.bytes for x in estimate(_cfg(), 4, 1.0, "zero2", shape=SHAPE).terms}
    assert z2["student weights"] == P * 2 and z2["gradients"] == P * 2 / 4
    f2 = {x.name: x.bytes for x in estimate(_cfg("model.dtype=float32"), 4, 1.0, "fsdp2", shape=SHAPE).terms}
    assert f2["student weights"] == P * 4 / 4 and f2["optimizer (AdamW states)"] == 2 * P * 4 / 4


def test_vllm_phases_and_verdict():
    cfg = _cfg("training.use_vllm=true", "training.vllm_gpu_memory_utilization=0.5",
               "training.vllm_enable_sleep_mode=true")
    plan = estimate(cfg, 1, 0.001, "ddp", shape=SHAPE)
    t = {x.name: x for x in plan.terms}
    assert t["vLLM (weights + KV cache)"].bytes == 0.5 * 0.001 * GIB and t["vLLM (weights + KV cache)"].phase == "generate"
    assert plan.phase_total("generate") < plan.phase_total("train") + t["vLLM (weights + KV cache)"].bytes
    assert not plan.fits                                      # 1 MiB is not enough for ~3 MB of training state
    awake = estimate(_cfg("training.use_vllm=true", "training.vllm_enable_sleep_mode=false"), 1, 1.0, "ddp",
                     shape=SHAPE)
    assert {x.name: x.phase for x in awake.terms}["vLLM (weights + KV cache)"] == "always"


def test_paper_preset_on_8x80gib():
    cfg = load_config(os.path.join(ROOT, "experiments", "science_qa", "paper-qwen3-8b.yaml"))
    z3 = estimate(cfg, 8, 80, "zero3")
    assert z3.fits and z3.peak / GIB < 60
    big = estimate(load_config(os.path.join(ROOT, "experiments", "science_qa", "paper-qwen3-8b.yaml"),
                               ["training.per_device_train_batch_size=4"]), 8, 80, "zero3")
    assert not big.fits and big.largest.name == "distillation logits"
    ddp = estimate(cfg, 8, 80, "ddp")
    assert any("the trainer refuses this launch: model.dtype: bfloat16" in n for n in ddp.notes)
    assert not any("refuses" in n for n in z3.notes)                        # ZeRO keeps fp32 master weights
    fp32 = estimate(load_config(os.path.join(ROOT, "experiments", "science_qa", "paper-qwen3-8b.yaml"),
                                ["model.dtype=float32"]), 8, 80, "fsdp2")
    assert not any("refuses" in n for n in fp32.notes)


def test_fp32_ema_average_is_counted_only_for_low_precision_ema_teachers():
    P = SHAPE.params
    z3 = {x.name: x.bytes for x in estimate(_cfg(), 4, 1.0, "zero3", shape=SHAPE).terms}
    assert z3["EMA teacher fp32 average"] == 4 * P / 4 and z3["EMA teacher weights"] == 2 * P / 4
    ddp = {x.name: x.bytes for x in estimate(_cfg(), 4, 1.0, "ddp", shape=SHAPE).terms}
    assert ddp["EMA teacher fp32 average"] == 4 * P
    f32 = {x.name for x in estimate(_cfg("model.dtype=float32"), 4, 1.0, "fsdp2", shape=SHAPE).terms}
    assert "EMA teacher fp32 average" not in f32                  # the fp32 teacher is its own average
    live = {x.name for x in estimate(_cfg("training.teacher_model_kind=live"), 4, 1.0, "zero3", shape=SHAPE).terms}
    assert "EMA teacher fp32 average" not in live and "EMA teacher weights" not in live


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "experiments", "accelerate", "*.yaml"))),
                         ids=os.path.basename)
def test_every_accelerate_file_parses_and_batches_add_up(path):
    strategy, procs = strategy_from_accelerate(path)
    assert strategy in ("ddp", "zero2", "zero3", "fsdp2") and procs >= 1
    for preset in glob.glob(os.path.join(ROOT, "experiments", "science_qa", "*.yaml")):
        if preset.endswith("grid.yaml") or "smoke" in preset:
            continue
        cfg = load_config(preset)
        ga = accumulation_for(cfg.training, procs)
        assert cfg.training.per_device_train_batch_size * ga * procs == cfg.questions_per_step * cfg.training.num_generations


def test_plan_cli(tmp_path):
    from pgpo.cli import main
    cfg = os.path.join(ROOT, "experiments", "science_qa", "paper-qwen3-8b.yaml")
    assert main(["plan", "--config", cfg, "--accelerate", os.path.join(ROOT, "experiments", "accelerate",
                                                                      "zero3-8gpu.yaml"), "--gpu-mem", "80"]) == 0
    assert main(["plan", "--config", cfg, "--gpus", "8", "--gpu-mem", "80", "--strategy", "zero3",
                 "training.per_device_train_batch_size=4"]) == 1
    with pytest.raises(SystemExit):
        main(["plan", "--config", cfg, "--gpus", "3", "--gpu-mem", "80"])         # 256 not divisible by 3


@pytest.mark.parametrize("path", [p for p in sorted(glob.glob(os.path.join(ROOT, "experiments", "science_qa", "*.yaml")))
                                  if not p.endswith("grid.yaml")], ids=os.path.basename)
def test_plan_runs_for_every_preset(path, capsys):
    from pgpo.cli import main
    rc = main(["plan", "--config", path, "--gpus", "1" if "smoke" in path else "8", "--gpu-mem", "80",
               "--strategy", "ddp" if "smoke" in path else "zero3"])
    out = capsys.readouterr().out
    assert rc in (0, 1) and "largest term:" in out and "completions per optimizer step" in out
    if "smoke" in path:
        assert rc == 0                     # the CPU smoke run is tiny

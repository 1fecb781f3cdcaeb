"""The fp32 EMA teacher with bf16 weights: the teacher is the bf16 cast of an fp32 EMA of the student's parameter
history, computed here independently; TRL's in-dtype EMA is not (the reason the project replaces it)."""

import copy

import pytest
import torch

from pgpo.ema_teacher import FP32EMATeacher, local_storage

pytest.importorskip("transformers")


def _bf16_pair():
    from pgpo.models import build_tiny_qwen3
    student = build_tiny_qwen3(seed=0, hidden_size=32, num_hidden_layers=1).to(torch.bfloat16)
    return student, copy.deepcopy(student).requires_grad_(False)


def _train(student, teacher_update, steps, lr=1e-2):
    """`steps` bf16 AdamW steps on a next-token loss; teacher_update() after each; returns the student history."""
    opt = torch.optim.AdamW(student.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    history = []
    for _ in range(steps):
        ids = torch.randint(0, 1000, (2, 12), generator=g)
        loss = student(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        history.append({n: p.detach().float().clone() for n, p in student.named_parameters()})
        teacher_update()
    return history


def test_bf16_teacher_is_the_cast_of_the_fp32_ema_of_the_student_history():
    student, teacher = _bf16_pair()
    init = {n: p.detach().double().clone() for n, p in teacher.named_parameters()}
    ema = FP32EMATeacher(teacher, rate=0.05)
    assert ema.shadow_bytes == 4 * sum(p.numel() for p in teacher.parameters())
    history = _train(student, lambda: ema.update(student), steps=30)
    want = {n: v.clone() for n, v in init.items()}
    for params in history:                                  # the recursion, written out in float64
        for n in want:
            want[n] = want[n] * 0.95 + params[n].double() * 0.05
    shadow = ema.state_dict()
    for n, p in teacher.named_parameters():
        assert shadow[n].dtype == torch.float32
        # fp32 rounding only: each of the 30 steps rounds twice (mul, add) at <= 2^-24 of the largest magnitude
        bound = 2 * 30 * 2.0 ** -24 * float(want[n].abs().max())
        assert float((shadow[n].double() - want[n]).abs().max()) <= bound, n
        assert p.dtype == torch.bfloat16 and torch.equal(p, shadow[n].to(torch.bfloat16)), n   # the final cast


def test_in_dtype_ema_loses_most_of_the_drift_that_the_fp32_ema_keeps():
    """TRL's SyncTeacherModelCallback update (in place, bf16) at a small learning rate: measured here against
    the fp32 EMA, its error is a large fraction of the EMA's own drift, while the fp32 teacher's is only the
    final rounding."""
    from trl.experimental.sdpo.teacher_sync import SyncTeacherModelCallback

    student, teacher = _bf16_pair()
    init = {n: p.detach().float().clone() for n, p in teacher.named_parameters()}
    trl_teacher = copy.deepcopy(teacher)
    ema = FP32EMATeacher(teacher, rate=0.05)

    def both():
        ema.update(student)
        SyncTeacherModelCallback._sync_target_model(student, trl_teacher, 0.05)

    _train(student, both, steps=30, lr=1e-4)
    drift = sum(float((ema.state_dict()[n] - init[n]).norm()) for n in init)
    err_trl = sum(float((p.float() - ema.state_dict()[n]).norm()) for n, p in trl_teacher.named_parameters())
    err_ours = sum(float((p.float() - ema.state_dict()[n]).norm()) for n, p in teacher.named_parameters())
    assert drift > 0
    assert err_trl > 0.3 * drift and err_ours < err_trl / 3


def test_fp32_teacher_is_its_own_average_and_checkpoints_round_trip():
    from pgpo.models import build_tiny_qwen3
    student = build_tiny_qwen3(seed=0, hidden_size=32, num_hidden_layers=1)
    teacher = copy.deepcopy(student).requires_grad_(False)
    ema = FP32EMATeacher(teacher, rate=0.5)
    assert ema.shadow_bytes == 0 and local_storage(next(teacher.parameters())).dtype == torch.float32
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    ema.update(student)
    sd = ema.state_dict()
    other = FP32EMATeacher(copy.deepcopy(student).requires_grad_(False), rate=0.5)
    other.load_state_dict(sd)
    assert all(torch.equal(a, b) for a, b in zip(other.teacher.parameters(), teacher.parameters()))
    with pytest.raises(RuntimeError, match="lacks"):
        other.load_state_dict({})


@pytest.mark.timeout(200)
def test_fsdp2_sharded_teacher_keeps_the_fp32_average_of_its_own_shard(tmp_path):
    import json
    import os

    from distributed_utils import run_workers

    out = str(tmp_path / "rank_RANK.json")
    run_workers(os.path.join(os.path.dirname(__file__), "dist_worker_fsdp_ema.py"), 2, [out], timeout=150)
    r0, r1 = (json.load(open(out.replace("RANK", str(r)))) for r in (0, 1))
    for r in (r0, r1):
        assert r["ok"] and r["shapes_local"], r
        assert r["shadow_bytes"] < r["full_bytes"]                      # each rank holds only its shard
    assert r0["shadow_bytes"] + r1["shadow_bytes"] == r0["full_bytes"]


def test_zero3_storage_is_the_partition_also_for_persistent_parameters():
    """Under ZeRO-3 a parameter's partition (`ds_tensor`) is what the optimizer writes and what a gather rebuilds
    the full tensor from - for the persistent ones (`ds_persist`) too, whose full copy DeepSpeed refreshes from the
    partitions after each step (the EMA does the same: tests/test_deepspeed.py runs it on a real ZeRO-3 engine,
    where an EMA of the persistent full copies went stale)."""
    part = torch.nn.Parameter(torch.zeros(4))
    part.ds_tensor = torch.nn.Parameter(torch.ones(2))
    part.ds_persist = False
    pers = torch.nn.Parameter(torch.zeros(4))
    pers.ds_tensor = torch.nn.Parameter(torch.ones(2))
    pers.ds_persist = True
    assert local_storage(part).shape == (2,) and local_storage(pers).shape == (2,)
    assert local_storage(part).data_ptr() == part.ds_tensor.data_ptr()
    assert local_storage(pers).data_ptr() == pers.ds_tensor.data_ptr()

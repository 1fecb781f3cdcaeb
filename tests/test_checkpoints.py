"""Checkpoints as Hugging Face keeps them: the stability monitor's best checkpoint survives rotation, the path in
trainer_state.json exists, a resumed run keeps the same best, and a save killed half-way is never resumed from."""

import json
import os

import pytest

from pgpo.checkpoints import discard_incomplete, is_complete, last_complete_checkpoint

pytestmark = pytest.mark.train


def _scripted_eval(monkeypatch, right_at):
    """In-training evaluation answers every question right at the steps in `right_at`, wrong otherwise (the
    generation is scripted; scoring, the monitor, the log and the checkpoint logic are the real ones)."""
    from pgpo.callbacks import EvalCallback

    def generate(self, shard, state):
        k = self.cfg.eval.num_samples
        wrong = {q.id: next(lab for lab in q.labels if lab != q.answer) for q in shard}
        return [[f"<answer>{q.answer if state.global_step in right_at else wrong[q.id]}</answer>"] * k
                for q in shard]

    monkeypatch.setattr(EvalCallback, "_generate", generate)


def _checkpoints(run):
    return sorted(int(n.split("-")[1]) for n in os.listdir(run) if n.startswith("checkpoint-"))


def _state(run, step):
    return json.load(open(os.path.join(run, f"checkpoint-{step}", "trainer_state.json")))


EVAL = ["eval.every_steps=1", "eval.max_questions=2", "eval.num_samples=2", "eval.max_new_tokens=4",
        "monitor.enabled=true", "training.save_steps=1"]


@pytest.mark.slow
@pytest.mark.parametrize("limit", [1, 2])
def test_rotation_keeps_the_monitors_best_checkpoint_and_resume_keeps_it_best(tmp_path, monkeypatch, limit):
    from trainer_helpers import make_trainer

    from pgpo.runlog import of_kind, read_log

    _scripted_eval(monkeypatch, right_at={2})
    run = tmp_path / "run"
    make_trainer(run, EVAL + [f"training.save_total_limit={limit}"], max_steps=5).train()
    evals = of_kind(read_log(str(run / "log.jsonl")), "eval")
    assert [e["step"] for e in evals] == [1, 2, 3, 4, 5]
    best = max(evals, key=lambda e: e["mean_at_k"])["step"]
    assert best == 2 and evals[1]["mean_at_k"] == 1.0
    # rotation keeps the best checkpoint and the newest; at the end of training Hugging Face keeps only the best
    # when the limit is 1 (Trainer._finalize_training)
    last = 2 if limit == 1 else 5
    assert _checkpoints(run) == sorted({2, last})
    st = _state(run, last)
    assert st["best_global_step"] == 2 and st["best_metric"] == 1.0
    assert st["best_model_checkpoint"] == str(run / "checkpoint-2") and os.path.isdir(st["best_model_checkpoint"])
    assert all(is_complete(str(run / f"checkpoint-{s}"), s) for s in {2, last})

    # resume to step 7 (from the newest checkpoint kept): the restored monitor keeps step 2 as the best, so
    # rotation still protects it and the log is continued from the checkpoint's step
    make_trainer(run, EVAL + [f"training.save_total_limit={limit}"], max_steps=7).train(resume_from_checkpoint=True)
    evals = of_kind(read_log(str(run / "log.jsonl")), "eval")
    assert [e["step"] for e in evals] == [1, 2, 3, 4, 5, 6, 7]
    assert [e["mean_at_k"] for e in evals] == [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    last = 2 if limit == 1 else 7
    assert _checkpoints(run) == sorted({2, last})
    st = _state(run, last)
    assert st["best_global_step"] == 2 and st["best_model_checkpoint"] == str(run / "checkpoint-2")
    if limit == 2:
        monitor = st["stateful_callbacks"]["MonitorCallback"]["attributes"]
        assert monitor["best_step"] == 2 and monitor["best"] == 1.0 and st["global_step"] == 7


@pytest.mark.slow
def test_a_best_initial_model_records_no_checkpoint_folder(tmp_path, monkeypatch, caplog):
    """Evaluation at start scores best (the trained steps do worse): the best step is 0, which has no checkpoint, so
    trainer_state.json names no best folder (a path to a checkpoint-0 that never exists would be dropped with a
    warning on resume) and no extra checkpoint is forced; a resume keeps step 0 as the best."""
    from trainer_helpers import make_trainer

    _scripted_eval(monkeypatch, right_at={0})
    run = tmp_path / "run"
    ov = EVAL[:-1] + ["eval.at_start=true", "training.save_steps=2", "eval.every_steps=2"]
    make_trainer(run, ov, max_steps=2).train()
    st = _state(run, 2)
    assert _checkpoints(run) == [2]
    assert st["best_global_step"] == 0 and st["best_metric"] == 1.0 and st["best_model_checkpoint"] is None
    import logging
    with caplog.at_level(logging.WARNING):
        make_trainer(run, ov, max_steps=4).train(resume_from_checkpoint=True)
    assert "does not exist anymore" not in caplog.text
    st = _state(run, 4)
    assert st["best_global_step"] == 0 and st["best_model_checkpoint"] is None


def test_a_killed_save_is_never_resumed_from(tmp_path):
    """The newest folder of a save that did not finish (no trainer_state.json, a torn one, or no PGPO state) is
    skipped by resume and removed before training continues; the run then ends as an uninterrupted one would."""
    from trainer_helpers import make_trainer, params

    a = tmp_path / "a"
    make_trainer(a, max_steps=1).train()
    # a save of step 2 killed before trainer_state.json: the model file is there, nothing else
    torn = a / "checkpoint-2"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"partial")
    assert last_complete_checkpoint(str(a)).endswith("checkpoint-1")
    t = make_trainer(a, max_steps=2)
    t.train(resume_from_checkpoint=True)
    assert is_complete(str(a / "checkpoint-2"), 2)
    b = tmp_path / "b"
    straight = make_trainer(b, max_steps=2)
    straight.train()
    pa, pb = params(t), params(straight)
    assert all(bool((pa[n] == pb[n]).all()) for n in pa)


def test_completeness_rules(tmp_path):
    def ckpt(step, state=True, pgpo=True, torn=False):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if state:
            (d / "trainer_state.json").write_text('{"global_step": ' if torn else json.dumps({"global_step": step}))
        if pgpo:
            (d / "pgpo_state.json").write_text("{}")
        return str(d)

    assert last_complete_checkpoint(str(tmp_path)) is None
    c3 = ckpt(3)
    ckpt(10)                                               # complete: chosen over 3 (numeric, not lexical, order)
    assert last_complete_checkpoint(str(tmp_path)).endswith("checkpoint-10")
    ckpt(11, pgpo=False)
    ckpt(12, torn=True)
    ckpt(13, state=False)
    assert last_complete_checkpoint(str(tmp_path)).endswith("checkpoint-10")
    removed = discard_incomplete(str(tmp_path))
    assert sorted(os.path.basename(p) for p in removed) == ["checkpoint-11", "checkpoint-12", "checkpoint-13"]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-10", "checkpoint-3"]
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    assert not is_complete(c3, 3)                           # a state that names another step is not this one's

import json
import math
import types

import pytest

from pgpo.config import ConfigError, MonitorSection, load_config
from pgpo.monitor import StabilityMonitor


class Log:
    def __init__(self):
        self.lines = []

    def write(self, rec):
        self.lines.append(rec)


def _ctl():
    return types.SimpleNamespace(should_training_stop=False, should_save=False)


def _state(step):
    return types.SimpleNamespace(global_step=step, best_global_step=None, best_model_checkpoint=None,
                                 best_metric=None)


def test_accuracy_collapse_after_patience_and_best_checkpoint_kept():
    log = Log()
    m = StabilityMonitor(MonitorSection(accuracy_drop=0.1, patience=2, stop=True), log)
    args = types.SimpleNamespace(output_dir="/runs/x")
    for step, acc in ((5, 0.60), (10, 0.72), (15, 0.65), (20, 0.61), (25, 0.58)):
        m.observe_eval(step, acc)
        c, st = _ctl(), _state(step)
        m.on_step_end(args, st, c)
        if step == 10:                        # a new best forces a save and is recorded as the best checkpoint
            assert c.should_save and st.best_model_checkpoint == "/runs/x/checkpoint-10"
        if step < 25:
            assert not c.should_training_stop
    assert c.should_training_stop and c.should_save
    (rec,) = log.lines
    assert rec["kind"] == "collapse" and rec["signal"] == "accuracy" and rec["step"] == 25
    assert rec["best_step"] == 10 and rec["best_mean_at_k"] == 0.72


def test_a_single_dip_or_a_small_drop_is_not_a_collapse():
    m = StabilityMonitor(MonitorSection(accuracy_drop=0.1, patience=2), Log())
    for step, acc in ((1, 0.7), (2, 0.55), (3, 0.69), (4, 0.55), (5, 0.62), (6, 0.65)):
        m.observe_eval(step, acc)
    assert m.flagged == []


def test_length_and_entropy_collapse_against_early_reference():
    log = Log()
    m = StabilityMonitor(MonitorSection(length_ratio=0.5, entropy_ratio=0.5, window=3, patience=2), log)
    lengths = [1000, 1100, 900, 950, 800, 400, 300, 200, 150]
    entropies = [2.0] * 9
    for step, (l, e) in enumerate(zip(lengths, entropies), 1):
        m.on_log(None, _state(step), _ctl(), logs={"loss": 0.1, "completions/mean_length": l, "pgpo/entropy": e})
    assert [r["signal"] for r in log.lines] == ["length"]
    assert log.lines[0]["step"] == 9 and not log.lines[0]["stopping"]


@pytest.mark.parametrize("override, needle", [("monitor.length_ratio=0", "monitor.length_ratio"),
                                              ("monitor.accuracy_drop=2", "monitor.accuracy_drop"),
                                              ("monitor.patience=0", "monitor.patience")])
def test_monitor_settings_are_validated(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(None, [override])


@pytest.mark.slow
@pytest.mark.train
def test_trainer_logs_entropy_for_the_monitor(tmp_path):
    from trainer_helpers import make_trainer
    t = make_trainer(tmp_path, ["monitor.stop=true"], max_steps=2)
    t.train()
    lines = [json.loads(x) for x in open(tmp_path / "log.jsonl")]
    train = [r for r in lines if r["kind"] == "train"]
    assert all(r["entropy"] is not None and math.isfinite(r["entropy"]) and r["entropy"] > 0 for r in train)
    mons = [c for c in t.callback_handler.callbacks if isinstance(c, StabilityMonitor)]
    assert len(mons) == 1 and len(mons[0]._series["entropy"]) == 2

from pgpo.runlog import step_line


def test_step_line_is_compact_and_computes_the_eta_from_the_mean_step_time():
    rec = {"kind": "train", "step": 2, "loss": 0.123456, "reward_mean": 0.25, "info": 0.18123, "multiplier": 1.3625,
           "lr": 1e-5, "step_time_s": 4.06, "elapsed_s": 10.0}
    line = step_line(rec, 8)
    assert line == "step 2/8  loss 0.1235  reward 0.25  I 0.181  m 1.36  lr 1.00e-05  4.1 s/step  ETA 30s"
    assert step_line({**rec, "elapsed_s": 2 * 3700.0}, 4).endswith("ETA 2h03m")


def test_step_line_shows_missing_metrics_as_na():
    line = step_line({"step": 1, "info": None, "multiplier": None, "elapsed_s": None}, 2)
    assert "I n/a  m n/a" in line and line.endswith("ETA n/a")


def test_step_line_shows_the_variants_fields_only_when_logged():
    rec = {"step": 1, "info": 0.2, "multiplier": 1.5, "elapsed_s": 1.0, "info_ema": 0.1811, "weight_mean": None}
    assert "I 0.2  Ibar 0.181  m 1.5" in step_line(rec, 2)
    assert "I 0.2  w 1.23  m 1" in step_line({**rec, "info_ema": None, "weight_mean": 1.234, "multiplier": 1.0}, 2)

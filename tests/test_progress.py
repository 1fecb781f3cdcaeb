from pgpo.progress import step_line


def test_step_line_is_compact_and_computes_the_eta_from_the_mean_step_time():
    rec = {"kind": "train", "step": 2, "loss": 0.123456, "reward_mean": 0.25, "info": 0.18123, "multiplier": 1.3625,
           "lr": 1e-5, "step_time_s": 4.06, "elapsed_s": 10.0}
    line = step_line(rec, 8)
    assert line == "step 2/8  loss 0.1235  reward 0.25  I 0.181  m 1.36  lr 1.00e-05  4.1 s/step  ETA 30s"
    assert step_line({**rec, "elapsed_s": 2 * 3700.0}, 4).endswith("ETA 2h03m")


def test_step_line_shows_missing_metrics_as_na():
    line = step_line({"step": 1, "info": None, "multiplier": None, "elapsed_s": None}, 2)
    assert "I n/a  m n/a" in line and line.endswith("ETA n/a")

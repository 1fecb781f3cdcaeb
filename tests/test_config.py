import glob
import os
import subprocess
import sys

import pytest

from pgpo.config import ConfigError, RunConfig, apply_overrides, load_config

ROOT = os.path.dirname(os.path.dirname(__file__))
PRESETS = sorted(glob.glob(os.path.join(ROOT, "experiments", "science_qa", "*.yaml")))


@pytest.mark.parametrize("path", [p for p in PRESETS if not p.endswith("grid.yaml")], ids=os.path.basename)
def test_every_preset_validates(path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)


@pytest.mark.parametrize("overrides, needle", [
    (["pgpo.alpha=2", "pgpo.beta=0.5", "pgpo.ema_steps=10"], "pgpo.beta: the scale-free sensitivity replaces alpha"),
    (["pgpo.alpha=0", "pgpo.beta=0.5"], "pgpo.ema_steps: required by beta > 0"),
    (["pgpo.alpha=2", "pgpo.signal=smoothed"], "pgpo.ema_steps: required by signal: smoothed"),
    (["pgpo.alpha=0", "pgpo.beta=0.5", "pgpo.ema_steps=10", "pgpo.signal=smoothed"],
     "pgpo.signal: with beta the smoothed signal makes m the constant"),
    (["pgpo.alpha=2", "pgpo.ema_steps=10", "pgpo.signal=smoothed", "pgpo.granularity=token"],
     "pgpo.granularity: sample / token weights use alpha"),
])
def test_variant_combinations_that_cannot_work_are_refused(overrides, needle):
    assert needle in _err(overrides)


def test_variant_settings_name_the_method():
    from pgpo.settings import PGPOSettings
    assert load_config(None, ["pgpo.alpha=0", "pgpo.granularity=token"]).method == "sdpo"
    assert load_config(None, ["pgpo.alpha=0", "pgpo.beta=0.5", "pgpo.ema_steps=10"]).method == "pgpo"
    assert PGPOSettings(alpha=0.0, beta=0.5, ema_steps=10).validate().label() == \
        "PGPO β=0.5 (scale-free, Ibar 10 steps)"
    assert PGPOSettings(alpha=10.0, granularity="token", normalize=False).label() == "PGPO α=10 (per token, unnormalised)"
    assert PGPOSettings(alpha=10.0).label() == "PGPO α=10" and PGPOSettings().label() == "SDPO"


def _err(overrides, path=None):
    with pytest.raises(ConfigError) as e:
        load_config(path, overrides)
    return str(e.value)


@pytest.mark.parametrize("override, needle", [
    ("training.learnin_rate=1e-5", "training.learnin_rate: unknown key; did you mean 'learning_rate'?"),
    ("trainig.seed=1", "trainig: unknown key; did you mean 'training'?"),
    ("training.learning_rate=fast", "training.learning_rate: expected a number"),
    ("training.max_steps=2.5", "training.max_steps: expected an integer"),
    ("training.bf16=yes please", "training.bf16: expected true or false"),
    ("pgpo.alpha=-1", "pgpo.alpha: must be >= 0"),
    ("pgpo.m_max=0.5", "pgpo.m_max: must be >= 1"),
    ("pgpo.shape=cubic", "pgpo.shape: must be one of"),
    ("pgpo.estimator=js", "pgpo.estimator: must be one of"),
    ("pgpo.beta=-0.5", "pgpo.beta: must be >= 0"),
    ("pgpo.granularity=layer", "pgpo.granularity: must be one of"),
    ("pgpo.signal=ema", "pgpo.signal: must be one of"),
    ("pgpo.ema_steps=0.5", "pgpo.ema_steps: the moving average's time constant must be >= 1"),
    ("pgpo.normalize=maybe", "pgpo.normalize: expected true or false"),
    ("training.distillation_alpha=1.5", "training.distillation_alpha: must be in [0, 1]"),
    ("training.distillation_topk=0", "training.distillation_topk: must be"),
    ("data.domain=astronomy", "data.domain: unknown domain 'astronomy'"),
    ("training.num_generations=1", "training.num_generations"),
    ("training.top_p=0", "training.top_p"),
    ("training.learning_rate=.inf", "training.learning_rate: must be finite"),
    ("training.logging_steps=5", "training.logging_steps: fixed at 1"),
    ("training.include_environment_feedback=true", "training.include_environment_feedback: set by data.feedback"),
    ("training.questions_per_step=4", "training.questions_per_step: moved; use training.generation_batch_size"),
    ("sdpo.distillation_alpha=0.5", "sdpo: moved; SDPO's settings are TRL SDPOConfig fields"),
    ("training.generation_batch_size=30", "generation_batch_size"),
    ("training.max_reprompt_len=100", "training.max_reprompt_len: must be at least max_prompt_length"),
    ("training.report_to=comet", "training.report_to: 'comet' is not one of"),
    ("training.distillation_weight=2", "training.distillation_weight: `distillation_weight` must be in [0, 1]"),
    ("training.lr_scheduler_type=bogus", "training.lr_scheduler_type: bogus is not a valid SchedulerType"),
    ("eval.num_samples=0", "eval.num_samples: must be positive"),
    ("model.dtype=int8", "model.dtype: must be one of"),
])
def test_bad_values_name_the_field(override, needle):
    assert needle in _err([override])


def test_overrides_are_yaml_typed_and_nested():
    d = apply_overrides({}, ["pgpo.alpha=2", "training.output_dir=/tmp/x", "training.bf16=false",
                             "training.save_total_limit=null"])
    assert d == {"pgpo": {"alpha": 2}, "training": {"output_dir": "/tmp/x", "bf16": False, "save_total_limit": None}}
    cfg = load_config(None, ["pgpo.alpha=2"])
    assert cfg.pgpo.alpha == 2.0 and isinstance(cfg.pgpo.alpha, float) and cfg.method == "pgpo"
    assert load_config(None, []).method == "sdpo"
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        apply_overrides({}, ["pgpo.alpha"])


def test_batch_arithmetic():
    """One optimizer step consumes one generation batch: PGPOConfig derives the accumulation from the launch's
    process count (WORLD_SIZE) unless it is given; `pgpo plan` does the same sum for another count."""
    from pgpo.plan import accumulation_for
    ov = ["training.generation_batch_size=256", "training.num_generations=8", "training.per_device_train_batch_size=8"]
    t = load_config(None, ov).training          # 32 questions x 8 rollouts = 256 per optimizer step, 1 process
    assert (t.gradient_accumulation_steps, t.steps_per_generation, t.generation_batch_size) == (32, 32, 256)
    assert accumulation_for(t, 8) == 4 and accumulation_for(t, 1) == 32       # 8 GPUs x 8 per device x 4
    with pytest.raises(ValueError, match="not divisible"):
        accumulation_for(t, 3)
    explicit = load_config(None, ov + ["training.gradient_accumulation_steps=2"]).training
    assert (explicit.gradient_accumulation_steps, explicit.steps_per_generation) == (2, 32)   # TRL's meaning kept
    assert accumulation_for(explicit, 8) == 2                      # an explicit setting is planned as it is
    spg = load_config(None, ["training.steps_per_generation=4", "training.per_device_train_batch_size=8"]).training
    assert (spg.gradient_accumulation_steps, spg.steps_per_generation, spg.generation_batch_size) == (1, 4, 32)
    assert "accumulation_derived" not in t.to_dict() and t.accumulation_derived and not spg.accumulation_derived
    plain = load_config(None, ["training.per_device_train_batch_size=8"]).training   # no generation batch: TRL's
    assert (plain.gradient_accumulation_steps, plain.generation_batch_size) == (1, 8)
    assert accumulation_for(plain, 8) == 1                         # (and not "8 is not divisible by 64")
    assert load_config(None, ["training.max_prompt_length=null"]).training.max_prompt_length is None
    assert "per_device_train_batch_size x processes = 8 x 1" in _err(
        ["training.generation_batch_size=12", "training.num_generations=4", "training.per_device_train_batch_size=8"])


def test_any_trl_field_is_a_setting_under_its_trl_name():
    """A field this project never mentions (TRL's `epsilon`, transformers' `torch_empty_cache_steps`) is set from
    the config without a code change; a compound-typed one (`lr_scheduler_kwargs`) reaches TRL as given."""
    cfg = load_config(None, ["training.epsilon=0.3", "training.torch_empty_cache_steps=7",
                             "training.lr_scheduler_kwargs={num_cycles: 2}"])
    assert (cfg.training.epsilon, cfg.training.torch_empty_cache_steps) == (0.3, 7)
    assert cfg.training.lr_scheduler_kwargs == {"num_cycles": 2}
    assert "training.torch_empty_cache_steps: expected an integer" in _err(["training.torch_empty_cache_steps=many"])


@pytest.mark.parametrize("body, heavy, line", [
    ("eval:\n  evry_steps: 1\n", "[]", "eval.evry_steps: unknown key; did you mean 'every_steps'?"),
    ("training:\n  learnig_rate: 1.0\n", None, "training.learnig_rate: unknown key; did you mean 'learning_rate'?"),
])
def test_cli_reports_config_errors_in_one_line_before_loading_anything(tmp_path, body, heavy, line):
    """A section's error comes before torch is imported; a `training` error needs TRL's field list (TRL imports
    torch) but still comes before any model, dataset or output folder."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  output_dir: %s\n" % (tmp_path / "out") + body.replace("training:\n", ""))
    code = "import sys, runpy; sys.argv=['pgpo','train','--config',%r]; " \
           "import pgpo.cli as c\ntry:\n    c.main(sys.argv[1:])\nexcept SystemExit as e:\n" \
           "    bad=[m for m in ('torch','transformers','trl') if m in sys.modules]\n" \
           "    print('HEAVY', bad, file=sys.stderr); raise" % str(bad)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("HEAVY")]
    assert len(lines) == 1 and line in lines[0]
    if heavy is not None:
        assert f"HEAVY {heavy}" in res.stderr              # failed before importing torch/transformers/trl
    assert not (tmp_path / "out").exists()


def test_missing_or_broken_files(tmp_path):
    assert "cannot read config" in _err([], str(tmp_path / "nope.yaml"))
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    assert "top level must be a mapping" in _err([], str(p))
    q = tmp_path / "broken.yaml"
    q.write_text("training: [\n")
    assert "not valid YAML" in _err([], str(q))


def test_variants_ablation_block_expands_to_valid_runs_and_plans(capsys):
    from pgpo.cli import main
    from pgpo.grid import load_grid
    grid = os.path.join(ROOT, "experiments", "science_qa", "grid.yaml")
    runs = [r for r in load_grid(grid) if r.block == "variants"]
    assert len(runs) == 4 * 6 * 3 and len({r.output_dir for r in runs}) == len(runs)
    cfgs = {r.method: load_config(r.config, list(r.overrides)).pgpo for r in runs}
    assert {m: (p.alpha, p.beta, p.ema_steps, p.signal, p.granularity) for m, p in cfgs.items()} == {
        "pgpo-b0.25": (0.0, 0.25, 10.0, "raw", "batch"), "pgpo-b0.5": (0.0, 0.5, 10.0, "raw", "batch"),
        "pgpo-b1": (0.0, 1.0, 10.0, "raw", "batch"), "pgpo-smoothed-a10": (10.0, 0.0, 10.0, "smoothed", "batch"),
        "pgpo-token-a10": (10.0, 0.0, None, "raw", "token"), "pgpo-sample-a10": (10.0, 0.0, None, "raw", "sample")}
    assert main(["grid", "--grid", grid, "--block", "variants"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(runs) and all("pgpo.granularity=token" in line for line in lines if "token-a10" in line)
    tok = next(r for r in runs if r.method == "pgpo-token-a10")           # `pgpo plan` answers for an ablation run
    rc = main(["plan", "--config", tok.config, "--gpus", "8", "--gpu-mem", "80", "--strategy", "zero3",
               *[o for o in tok.overrides if o.startswith("pgpo.")]])
    out = capsys.readouterr().out
    assert rc in (0, 1) and "per-sample / per-token weights" in out
    with pytest.raises(SystemExit):
        main(["grid", "--grid", grid, "--block", "nothing"])


def test_paper_grid_expands_to_48_valid_runs():
    from pgpo.grid import load_grid
    runs = [r for r in load_grid(os.path.join(ROOT, "experiments", "science_qa", "grid.yaml")) if r.block == "main"]
    assert len(runs) == 4 * 4 * 3
    assert len({r.output_dir for r in runs}) == len(runs)
    alphas = {load_config(r.config, list(r.overrides)).pgpo.alpha for r in runs}
    assert alphas == {0.0, 2.5, 10.0, 40.0}
    cfg = load_config(runs[0].config, list(runs[0].overrides))
    # the reference SDPO settings are explicit in the preset
    assert (cfg.training.distillation_mode, cfg.training.distillation_topk, cfg.training.distillation_add_tail,
            cfg.training.distillation_alpha, cfg.training.teacher_update_rate) == ("topk_logits", 100, True, 0.5, 0.05)
    t = cfg.training
    assert (t.learning_rate, t.warmup_steps, t.weight_decay, t.max_grad_norm, cfg.questions_per_step,
            t.num_generations, t.max_prompt_length, t.max_completion_length, t.use_vllm, t.vllm_mode) == \
        (1e-5, 10, 0.01, 1.0, 32, 8, 2048, 8192, True, "colocate")
    assert (cfg.eval.every_steps, cfg.eval.num_samples, cfg.eval.temperature, cfg.eval.top_p) == (5, 16, 0.6, 0.95)


def test_bad_grid_is_reported(tmp_path):
    from pgpo.grid import load_grid
    g = tmp_path / "g.yaml"
    g.write_text("base: nope.yaml\ndomains: [chemistry]\nseeds: [0]\nmethods: {x: {pgpo.alpha: 1}}\n")
    with pytest.raises(ConfigError, match="grid run chemistry/x-seed0: cannot read config"):
        load_grid(str(g))
    g.write_text("base: a.yaml\nseeds: [0]\n")
    with pytest.raises(ConfigError, match="a grid needs keys"):
        load_grid(str(g))


def test_base_files_merge_section_by_section(tmp_path):
    (tmp_path / "a.yaml").write_text("training:\n  seed: 3\n  max_steps: 7\npgpo:\n  alpha: 1.0\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\ntraining:\n  seed: 5\n")
    cfg = load_config(str(tmp_path / "b.yaml"), ["pgpo.m_max=3"])
    assert (cfg.training.seed, cfg.training.max_steps, cfg.pgpo.alpha, cfg.pgpo.m_max) == (5, 7, 1.0, 3.0)
    (tmp_path / "c.yaml").write_text("base: d.yaml\n")
    (tmp_path / "d.yaml").write_text("base: c.yaml\n")
    assert "cycle" in _err([], str(tmp_path / "c.yaml"))
    server = load_config(os.path.join(ROOT, "experiments", "science_qa", "paper-qwen3-8b-vllm-server.yaml"))
    assert server.training.vllm_mode == "server" and server.training.learning_rate == 1e-5


def test_every_python_float_literal_is_accepted(tmp_path):
    """YAML 1.1 reads `1e-5` (no dot) as a string; a float field takes it as the number it spells."""
    cfg = load_config(None, ["training.learning_rate=1e-5", "pgpo.alpha=2E1", "pgpo.m_max=1E3",
                             "training.teacher_update_rate=.5"])
    assert cfg.training.learning_rate == 1e-5 and cfg.pgpo.alpha == 20.0 and cfg.pgpo.m_max == 1000.0
    assert cfg.training.teacher_update_rate == 0.5
    (tmp_path / "c.yaml").write_text("training:\n  learning_rate: 3e-6\n")
    assert load_config(str(tmp_path / "c.yaml")).training.learning_rate == 3e-6
    with pytest.raises(ConfigError, match="training.learning_rate: must be positive"):
        load_config(None, ["training.learning_rate=-1e-4"])
    with pytest.raises(ConfigError, match="training.learning_rate: expected a number, got 'fast'"):
        load_config(None, ["training.learning_rate=fast"])


def test_the_information_estimators_jsd_weight_is_the_losss():
    """One JSD weight per run: the I_k estimator takes `training.distillation_alpha`; `pgpo` has no weight of its own."""
    from pgpo.settings import PGPOSettings
    assert "jsd_alpha" not in {f for f in PGPOSettings.__dataclass_fields__}
    with pytest.raises(ConfigError, match=r"^pgpo\.jsd_alpha: unknown key"):
        load_config(None, ["pgpo.jsd_alpha=0.3"])
    assert isinstance(load_config(None, []).pgpo, PGPOSettings)            # the config section is the settings

"""Test-wide settings: no hub, no telemetry, deterministic threads."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # under `pytest -n N` each worker (and the processes it starts) computes on one thread: N workers on N cores.
    # The variable reaches the processes a test starts and torch (imported later); NumPy's BLAS is already loaded
    # by the time this file runs (a plugin imports NumPy), so its thread pool is limited here as well.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=int(os.environ["OMP_NUM_THREADS"]))

# Test modules that need the `train` extra (torch, transformers, TRL; a run config's `training:` section is TRL's
# PGPOConfig, so loading a config needs it too). On the core install
# (`pip install -e ".[test]"`: numpy, scipy, matplotlib, pyyaml) they are not collected and the rest runs;
# `.ci/run` runs that core suite once in a venv without torch, so `import sde` and `import pgpo.multiplier`
# staying torch-free is enforced.
import importlib.util  # noqa: E402

import pytest  # noqa: E402

TRAIN_ONLY = ["test_config.py", "test_plan.py", "test_distill.py", "test_distributed.py", "test_trainer_two_ranks.py", "test_ema_teacher.py",
              "test_eval.py", "test_information.py", "test_optim.py", "test_trainer.py", "test_trainer_fidelity.py",
              "test_trl_hooks.py", "test_vllm_sleep_state.py", "test_variants_trainer.py"]
HAVE_TRAIN = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "trl"))
collect_ignore = [] if HAVE_TRAIN else TRAIN_ONLY


def pytest_report_header(config):
    if not HAVE_TRAIN:
        return f"core install (no torch/transformers/trl): {len(TRAIN_ONLY)} train-only test modules not collected"


def pytest_collection_modifyitems(config, items):
    """Tests marked `train` inside otherwise torch-free modules are skipped on the core install."""
    if HAVE_TRAIN:
        return
    skip = pytest.mark.skip(reason="needs the `train` extra (torch, transformers, trl)")
    for item in items:
        if "train" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def sdpo_reference_params(tmp_path_factory):
    """TRL's own SDPOTrainer, two steps of the tests' fast settings (trainer_helpers.FAST) without the rollout
    importance weight (which TRL's SDPO never applies): its final parameters. The tests that show a PGPO setting is
    SDPO bit for bit (alpha = 0, the zero-sensitivity variants) compare with this one run."""
    from trl.experimental.sdpo import SDPOTrainer

    from trainer_helpers import make_trainer, params
    trainer = make_trainer(tmp_path_factory.mktemp("sdpo-reference"),
                           ["pgpo.alpha=0", "training.distillation_is_clip=null"], trainer_cls=SDPOTrainer)
    trainer.train()
    return params(trainer)

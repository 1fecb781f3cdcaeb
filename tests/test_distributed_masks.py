"""Two gloo processes whose ranks disagree about whether a micro-batch has anything to distill.

With one completion per device and no feedback this is the normal case on several GPUs; TRL 1.16.0's
SDPOTrainer returns early from its loss there and skips a gather the other ranks run, so it hangs (reproduce:
`python tests/dist_worker_uneven.py OUT RESULT rank_without_success:0:trl` under 2 processes). The PGPO trainer
must finish - for alpha > 0 and for alpha = 0, the project's SDPO baseline - with identical parameters, teachers
and m_k on both ranks. The four runs share one 2-process launch, which is killed after `timeout` seconds (the
tests fail instead of hanging CI).
"""

import json
import os

import pytest

from distributed_utils import run_workers

HERE = os.path.dirname(__file__)
pytestmark = pytest.mark.slow


RUNS = [f"{scenario}:{alpha}" for scenario in ("rank_without_success", "one_masked_microbatch") for alpha in (0.0, 2.0)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The four runs (two scenarios, alpha 0 and 2) in one 2-process launch: each rank's record of each run."""
    tmp = tmp_path_factory.mktemp("uneven")
    result = str(tmp / "rank_RANK.json")
    run_workers(os.path.join(HERE, "dist_worker_uneven.py"), 2, [str(tmp / "run"), result, *RUNS], timeout=480)
    ranks = [json.load(open(result.replace("RANK", str(r)))) for r in (0, 1)]
    return {run: (ranks[0][run], ranks[1][run]) for run in RUNS}


def _assert_identical(r0, r1, alpha):
    assert r0["world"] == r1["world"] == 2
    assert r0["digest"] == r1["digest"] and r0["teacher_digest"] == r1["teacher_digest"]
    assert r0["multipliers"] == r1["multipliers"] and r0["infos"] == r1["infos"] and len(r0["multipliers"]) == 2
    assert all(f is None for f in r0["fallbacks"])           # rank 0's tokens define I_k for both ranks
    if alpha == 0:
        assert r0["multipliers"] == [1.0, 1.0]
    else:
        assert all(1.0 < m <= 2.0 for m in r0["multipliers"])


@pytest.mark.timeout(600)
@pytest.mark.parametrize("alpha", [0.0, 2.0], ids=["sdpo", "pgpo"])
def test_one_rank_with_nothing_to_distill(runs, alpha):
    r0, r1 = runs[f"rank_without_success:{alpha}"]
    assert r0["accumulation"] == 4
    assert len(r0["mask_sums"]) == len(r1["mask_sums"]) == 8 and all(n > 0 for _, n in r0["mask_sums"])
    assert all(n == 0 for _, n in r1["mask_sums"])              # every micro-batch of rank 1 is masked
    _assert_identical(r0, r1, alpha)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("alpha", [0.0, 2.0], ids=["sdpo", "pgpo"])
def test_one_masked_micro_batch_under_accumulation(runs, alpha):
    r0, r1 = runs[f"one_masked_microbatch:{alpha}"]
    assert r0["accumulation"] == 2
    assert all(n > 0 for _, n in r0["mask_sums"])
    assert [n > 0 for _, n in r1["mask_sums"]] == [True, False, True, False]   # only its 2nd micro-batch
    _assert_identical(r0, r1, alpha)

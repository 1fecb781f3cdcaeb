"""Two gloo processes see different data and end with the same m_k and the same parameters."""

import json
import os

import pytest

from distributed_utils import run_workers

HERE = os.path.dirname(__file__)


@pytest.mark.timeout(300)
def test_two_ranks_agree_on_multiplier_and_parameters(tmp_path):
    out = str(tmp_path / "rank_RANK.json")
    run_workers(os.path.join(HERE, "dist_worker_core.py"), 2, [out], timeout=240)
    r0, r1 = (json.load(open(out.replace("RANK", str(r)))) for r in (0, 1))
    for s0, s1 in zip(r0["steps"], r1["steps"]):
        assert s0["m"] == s1["m"] and s0["info"] == s1["info"]
        assert s0["local"] != s1["local"]                         # the ranks really saw different data
        # I_k is the token-weighted mean over both ranks and both micro-batches
        tot = sum(t for t, _ in s0["local"] + s1["local"])
        cnt = sum(c for _, c in s0["local"] + s1["local"])
        assert s0["info"] == pytest.approx(tot / cnt, rel=1e-12)
        assert 1.0 < s0["m"] <= 2.0
    assert r0["params"] == r1["params"]                            # bit-identical replicas
    assert r0["history"] == [s["m"] for s in r0["steps"]]

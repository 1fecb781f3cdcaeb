"""Results do not depend on the number of worker threads (sde.parallel): same blocks, same seeds, same merge order."""

import json

import pytest

from sde.studyfile import study_from_dict
from sde.parallel import map_blocks, map_tasks, workers
from sde.study import run_study

STUDY = {
    "name": "parallel",
    "panels": [
        {"id": "sized", "kind": "weak_error", "problem": "softmax", "sdes": ["matched", "paper"],
         "tests": ["sq_norm", "fluctuation"], "etas": [0.1, 0.05], "paths": {"pilot": 200, "min": 500, "max": 3000}},
        {"id": "fixed", "kind": "weak_error", "problem": "double-well", "discrete": "sgd", "sdes": ["sgd_sde"],
         "tests": ["linear"], "etas": [0.1, 0.05], "paths": {"fixed": 45_000}},      # 3 blocks of <= 20 000 paths
        {"id": "mb", "kind": "minibatch", "problem": "softmax", "infos": ["same_batch"], "tests": ["sq_norm"],
         "etas": [0.1, 0.05], "coupled_paths": 2000, "discrete_paths": 120_000, "averaged_paths": 2000, "r": 2},
        {"id": "sweep", "kind": "sweep", "problem": "quadratic", "sdes": ["matched"], "tests": ["sq_norm"],
         "etas": [0.1, 0.05], "alpha_times_I0": [1.0, 2.0], "m_max": [2.0], "paths": 1000, "cap_paths": 200},
    ],
}


def _strip(o):
    """The document without wall-clock times."""
    if isinstance(o, dict):
        return {k: _strip(v) for k, v in o.items() if "wall_time" not in k}
    if isinstance(o, list):
        return [_strip(v) for v in o]
    return o


def test_study_is_bit_identical_for_one_and_two_workers(tmp_path):
    study = study_from_dict(STUDY, "test")
    docs = []
    for n in (1, 2):
        path = run_study(study, str(tmp_path), filename=f"w{n}.json", n_workers=n)
        with open(path) as f:
            docs.append(_strip(json.load(f)))
    assert json.dumps(docs[0], sort_keys=True) == json.dumps(docs[1], sort_keys=True)
    fixed = next(p for p in docs[0]["panels"] if p["id"] == "fixed")
    assert fixed["items"][0]["n_paths"] == 45_000


def test_maps_keep_item_order_and_report_in_order():
    seen = []
    with workers(2):
        out = map_tasks(lambda i: map_blocks(lambda j: 10 * i + j, range(3)), range(4),
                        lambda i, r: seen.append(i))
    assert out == [[10 * i + j for j in range(3)] for i in range(4)] and seen == [0, 1, 2, 3]


def test_workers_must_be_positive():
    with pytest.raises(ValueError, match="workers must be >= 1"):
        with workers(0):
            pass


def test_an_interrupted_study_continues_bit_identically(tmp_path, monkeypatch):
    """Ctrl-C during the third panel: the two finished panels are in the partial file; the rerun takes them and runs
    the rest, and its document equals an uninterrupted run's (wall times aside)."""
    import os

    import sde.study as st
    study = study_from_dict(STUDY, "test")
    whole = run_study(study, str(tmp_path / "a"), n_workers=1)
    real = dict(st.RUNNERS)
    calls = []

    def interrupt_third(kind):
        def run(p, prog):
            calls.append(p.id)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return real[kind](p, prog)
        return run
    monkeypatch.setattr(st, "RUNNERS", {k: interrupt_third(k) for k in real})
    out = tmp_path / "b"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        run_study(study, str(out), n_workers=1)
    partial = json.load(open(out / ".partial-parallel.json"))
    assert [p["id"] for p in partial["panels"]] == ["sized", "fixed"]
    monkeypatch.setattr(st, "RUNNERS", real)
    resumed = run_study(study, str(out), n_workers=2)
    assert not os.path.exists(out / ".partial-parallel.json")
    a, b = (_strip(json.load(open(p))) for p in (whole, resumed))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

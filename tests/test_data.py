import json
import os

import pytest

from pgpo import data as D
from pgpo.data import DataError, build_questions, cross_split_duplicates, load_questions

COUNTS = {"biology": (450, 50), "chemistry": (1890, 210), "material": (841, 94), "physics": (720, 80)}


@pytest.mark.parametrize("domain", sorted(COUNTS))
def test_packaged_split_sizes_and_validity(domain):
    tr = load_questions(domain, "train")
    te = load_questions(domain, "test")
    n_bad = len(tr.problems) + len(te.problems)
    assert len(tr) + len(tr.problems) == COUNTS[domain][0]
    assert len(te) + len(te.problems) == COUNTS[domain][1]
    assert n_bad == (1 if domain == "material" else 0)
    for q in tr.questions[:50] + te.questions[:50]:
        assert q.answer in q.labels and len(q.labels) == len(q.texts) in (2, 4)


def test_known_malformed_record_is_reported_by_id(caplog):
    with caplog.at_level("WARNING"):
        res = load_questions("material", "train")
    (p,) = res.problems
    assert p.id == "material-00368" and "5 choice texts but 4 labels" in str(p)
    assert "material-00368" in caplog.text
    assert all(q.id != "material-00368" for q in res.questions)
    with pytest.raises(DataError, match="material-00368"):
        load_questions("material", "train", on_malformed="error")
    zipped = {q.id: q for q in load_questions("material", "train", on_malformed="zip").questions}
    q = zipped["material-00368"]                 # the reference's zip: the hint text becomes option A
    assert q.labels == ("A", "B", "C", "D") and q.texts[0].startswith("Remember") and q.answer == "C"
    assert q.answer_text == "Ba6Bi2Zr7Fe1O24"


def test_train_test_duplicate_is_reported():
    assert cross_split_duplicates("material") == [("material-00377", "material-00365")]
    assert cross_split_duplicates("chemistry") == []


def test_every_validation_rule_names_the_record():
    good = {"id": "x-1", "question": "Q?", "type": "mcq-2-choices", "domain": "Physics", "answerKey": "A",
            "choices": {"text": ["yes", "no"], "label": ["A", "B"]}}
    bad = [
        dict(good, id="x-2", answerKey="C"),
        dict(good, id="x-3", choices={"text": ["yes", "no"], "label": ["A", "C"]}),
        dict(good, id="x-4", type="mcq-4-choices"),
        dict(good, id="x-5", question="   "),
        dict(good, id="x-6", choices={"text": ["yes", ""], "label": ["A", "B"]}),
        dict(good, id="x-7", choices="A) yes B) no"),
        dict(good, id="x-8", domain="Chemistry"),
        {k: v for k, v in good.items() if k != "answerKey"} | {"id": "x-9"},
        dict(good),                               # duplicate id
        "not an object",
    ]
    res = build_questions([good] + bad, "train", domain="physics")
    assert [q.id for q in res.questions] == ["x-1"]
    ids = [p.id for p in res.problems]
    assert ids == ["x-2", "x-3", "x-4", "x-5", "x-6", "x-7", "x-8", "x-9", "x-1", "<record 10>"]
    reasons = {p.id: " ".join(p.reasons) for p in res.problems}
    assert "answerKey 'C' not among labels" in reasons["x-2"]
    assert "duplicate id" in reasons["x-1"]


def test_corrupt_jsonl_line_is_reported(tmp_path):
    src = os.path.join(D.DATA_DIR, "physics_test.jsonl")
    lines = open(src).read().splitlines()
    (tmp_path / "physics_test.jsonl").write_text("\n".join(lines[:3] + ["{not json"] + lines[3:5]) + "\n")
    res = load_questions("physics", "test", source="dir", path=str(tmp_path))
    assert len(res) == 5 and len(res.problems) == 1 and res.problems[0].id == "physics_test.jsonl:4"


def test_hub_loader_reproduces_the_packaged_split(monkeypatch):
    """Feed the hub path the filtered rows (hub schema, in hub order) and get the packaged split back."""
    datasets = pytest.importorskip("datasets")
    rows = []
    for split in ("train", "test"):
        with open(os.path.join(D.DATA_DIR, f"physics_{split}.jsonl")) as f:
            rows += [json.loads(line) for line in f]
    rows.sort(key=lambda r: r["sdpo_idx"])
    hub = [{"question": r["question"], "choices": r["choices"], "answerKey": r["answerKey"], "type": r["type"],
            "domain": r["domain"], "details": {"level": r["level"], "task": r["task"], "subtask": r["subtask"]}}
           for r in rows]
    noise = [dict(hub[0], domain="Chemistry"), dict(hub[1], details={"level": "L2"}), dict(hub[2], type="true_or_false")]
    fake = datasets.Dataset.from_list(noise[:1] + hub[:5] + noise[1:] + hub[5:])
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: fake)
    for split in ("train", "test"):
        got = load_questions("physics", split, source="hub")
        want = load_questions("physics", split)
        assert [q.question for q in got.questions] == [q.question for q in want.questions]
        assert [q.answer for q in got.questions] == [q.answer for q in want.questions]


def test_bad_arguments():
    with pytest.raises(DataError, match="unknown domain"):
        load_questions("astronomy", "train")
    with pytest.raises(DataError, match="unknown split"):
        load_questions("physics", "validation")
    with pytest.raises(DataError, match="unknown data source"):
        load_questions("physics", "train", source="s3")
    assert load_questions("materials", "test", limit=3).questions[0].domain == "material"


def test_shipped_files_match_checksums():
    import hashlib
    for line in open(os.path.join(D.DATA_DIR, "SHA256SUMS")):
        digest, name = line.split()
        with open(os.path.join(D.DATA_DIR, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, name

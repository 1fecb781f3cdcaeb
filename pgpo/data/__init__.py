"""Science-QA (SciKnowEval L3 multiple choice): the packaged SDPO split, or the same split from the hub.

    from pgpo.data import load_questions
    res = load_questions("chemistry", "train")          # packaged files (offline)
    res.questions, res.problems, res.duplicates

Every record is validated. Malformed records are *reported* with their ids and reasons, never silently
dropped: `on_malformed="report"` (default) excludes them and logs one warning listing them, "error" raises,
and "zip" keeps them as the SDPO reference formats them (labels zipped with texts; extra texts ignored).
Exact duplicates (same question and choices) are reported, within and across splits.

Hub loading (`source="hub"`) filters `hicai-zju/SciKnowEval` to level L3 and types mcq-4-choices /
mcq-2-choices for one domain and splits it with `train_test_split(test_size=0.1, seed=42)`, which
reproduces the packaged files exactly.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Iterable

logger = logging.getLogger(__name__)

DATA_DIR = os.path.join(os.path.dirname(__file__), "sciknoweval")
DOMAINS = ("chemistry", "physics", "biology", "material")
_DOMAIN_NAMES = {"chemistry": "Chemistry", "physics": "Physics", "biology": "Biology", "material": "Material"}
_ALIASES = {"materials": "material", "chem": "chemistry", "bio": "biology", "phys": "physics"}
SPLITS = ("train", "test")
TYPES = {"mcq-4-choices": 4, "mcq-2-choices": 2}
HUB_NAME = "hicai-zju/SciKnowEval"
ON_MALFORMED = ("report", "error", "zip")


class DataError(ValueError):
    """Raised for unknown domains/splits/sources, unreadable files, or malformed records under "error"."""


@dataclass(frozen=True)
class Question:
    id: str
    domain: str
    split: str
    type: str
    question: str
    labels: tuple[str, ...]
    texts: tuple[str, ...]
    answer: str
    task: str = ""

    @property
    def answer_text(self) -> str:
        return self.texts[self.labels.index(self.answer)]

    def choices(self) -> list[tuple[str, str]]:
        return list(zip(self.labels, self.texts))

    def read(self, text: str) -> str | None:
        """The option letter the completion commits to (pgpo.rewards.extract_choice), or None."""
        from pgpo.rewards import extract_choice
        return extract_choice(text, self.labels, self.texts)


@dataclass(frozen=True)
class RecordProblem:
    id: str
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.id}: {'; '.join(self.reasons)}"


@dataclass
class LoadResult:
    questions: list[Question]
    problems: list[RecordProblem] = field(default_factory=list)
    duplicates: list[tuple[str, ...]] = field(default_factory=list)
    source: str = "packaged"

    def __len__(self) -> int:
        return len(self.questions)


def canonical_domain(domain: str) -> str:
    d = str(domain).strip().lower()
    d = _ALIASES.get(d, d)
    if d not in DOMAINS:
        raise DataError(f"unknown domain {domain!r}; choose one of {', '.join(DOMAINS)}")
    return d


def validate_record(rec: dict, domain: str | None = None) -> list[str]:
    """Reasons why a raw record is malformed (empty list: the record is fine)."""
    reasons = []
    for key, typ in (("id", str), ("question", str), ("answerKey", str), ("type", str)):
        if not isinstance(rec.get(key), typ):
            reasons.append(f"field {key!r} missing or not a {typ.__name__}")
    if reasons:
        return reasons
    if not rec["question"].strip():
        reasons.append("empty question")
    ch = rec.get("choices")
    if not isinstance(ch, dict) or not isinstance(ch.get("text"), list) or not isinstance(ch.get("label"), list):
        return reasons + ["field 'choices' must be {'text': [...], 'label': [...]}"]
    texts, labels = ch["text"], ch["label"]
    if len(texts) != len(labels):
        reasons.append(f"{len(texts)} choice texts but {len(labels)} labels")
    expected = [chr(ord("A") + i) for i in range(len(labels))]
    if labels != expected:
        reasons.append(f"labels {labels} are not {expected}")
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        reasons.append("empty or non-string choice text")
    if rec["answerKey"] not in labels:
        reasons.append(f"answerKey {rec['answerKey']!r} not among labels {labels}")
    n = TYPES.get(rec["type"])
    if n is None:
        reasons.append(f"type {rec['type']!r} is not one of {sorted(TYPES)}")
    elif len(labels) != n:
        reasons.append(f"type {rec['type']} but {len(labels)} labels")
    if domain is not None and str(rec.get("domain", "")).lower() != _DOMAIN_NAMES[domain].lower():
        reasons.append(f"domain {rec.get('domain')!r} is not {_DOMAIN_NAMES[domain]!r}")
    return reasons


def _to_question(rec: dict, split: str, zip_mode: bool) -> Question:
    labels = tuple(rec["choices"]["label"])
    texts = tuple(rec["choices"]["text"])
    if zip_mode:                     # the reference's format_choices zips labels with texts
        n = min(len(labels), len(texts))
        labels, texts = labels[:n], texts[:n]
    return Question(id=rec["id"], domain=str(rec.get("domain", "")).lower(), split=split, type=rec["type"],
                    question=rec["question"], labels=labels, texts=texts, answer=rec["answerKey"],
                    task=str(rec.get("task", "")))


def build_questions(records: Iterable[dict], split: str, domain: str | None = None,
                    on_malformed: str = "report", source: str = "packaged") -> LoadResult:
    """Validate raw records and turn them into Questions (see module docstring for on_malformed)."""
    if on_malformed not in ON_MALFORMED:
        raise DataError(f"on_malformed must be one of {ON_MALFORMED}, got {on_malformed!r}")
    out, problems, seen_ids = [], [], set()
    for i, rec in enumerate(records):
        rid = rec.get("id") if isinstance(rec, dict) and isinstance(rec.get("id"), str) else f"<record {i}>"
        reasons = validate_record(rec, domain) if isinstance(rec, dict) else ["not a JSON object"]
        if rid in seen_ids:
            reasons = reasons + ["duplicate id"]
        seen_ids.add(rid)
        if reasons:
            problems.append(RecordProblem(rid, tuple(reasons)))
            fixable = on_malformed == "zip" and all("choice texts but" in r for r in reasons) \
                and rec["answerKey"] in rec["choices"]["label"][: len(rec["choices"]["text"])]
            if not fixable:
                continue
        out.append(_to_question(rec, split, zip_mode=on_malformed == "zip"))
    if problems:
        msg = "; ".join(str(p) for p in problems)
        if on_malformed == "error":
            raise DataError(f"{len(problems)} malformed record(s) in {domain or ''} {split}: {msg}")
        action = "kept in the reference's zipped form where possible" if on_malformed == "zip" else "excluded"
        logger.warning("%d malformed record(s) %s: %s", len(problems), action, msg)
    return LoadResult(out, problems, find_duplicates(out), source)


def find_duplicates(questions: Iterable[Question]) -> list[tuple[str, ...]]:
    """Groups of ids whose question and choices are identical."""
    groups: dict[tuple, list[str]] = {}
    for q in questions:
        groups.setdefault((q.question.strip(), q.labels, q.texts), []).append(q.id)
    return [tuple(ids) for ids in groups.values() if len(ids) > 1]


def _read_jsonl(path: str) -> list[dict]:
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    rows.append({"id": f"{os.path.basename(path)}:{lineno}", "_error": str(e)})
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e
    return rows


def split_like_reference(rows):
    """The reference's 90/10 split (datasets' train_test_split, seed 42) of a datasets.Dataset."""
    parts = rows.train_test_split(test_size=0.1, seed=42)
    return parts["train"], parts["test"]


def _hub_rows(domain: str, hub_name: str):
    import datasets

    ds = datasets.load_dataset(hub_name, split="test")
    name = _DOMAIN_NAMES[domain]

    def keep(x):
        level = (x.get("details") or {}).get("level", x.get("level"))
        return x["domain"] == name and level == "L3" and x["type"] in TYPES

    return ds.filter(keep)


def _hub_record(row: dict, domain: str, idx: int, split: str) -> dict:
    details = row.get("details") or {}
    return {"id": f"{domain}-{idx:05d}", "sdpo_idx": idx, "split": split, "domain": row.get("domain"),
            "level": details.get("level", row.get("level")), "type": row.get("type"),
            "task": details.get("task", row.get("task", "")), "subtask": details.get("subtask", ""),
            "question": row.get("question"), "choices": row.get("choices"), "answerKey": row.get("answerKey")}


def load_task(task: str, domain: str, split: str, source: str = "packaged", path: str | None = None,
              on_malformed: str = "report", limit: int | None = None) -> LoadResult:
    """The questions of a run's task: Science-QA (load_questions) or the generated word problems
    (pgpo.data.arithmetic; `domain`, `source` and `path` do not apply)."""
    if task == "arithmetic":
        from pgpo.data.arithmetic import load_word_problems
        try:
            return LoadResult(load_word_problems(split, limit), source="generated")
        except ValueError as e:
            raise DataError(str(e)) from None
    if task != "sciknoweval":
        raise DataError(f"unknown task {task!r}; choose sciknoweval or arithmetic")
    return load_questions(domain, split, source, path, on_malformed, limit=limit)


def load_questions(domain: str, split: str, source: str = "packaged", path: str | None = None,
                   on_malformed: str = "report", hub_name: str = HUB_NAME, limit: int | None = None) -> LoadResult:
    """Questions of one domain and split.

    source: "packaged" (the files shipped with pgpo), "dir" (the same file layout under `path`), or "hub".
    limit: keep the first `limit` valid questions (after validation; for smoke runs).
    """
    domain = canonical_domain(domain)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if source in ("packaged", "dir"):
        base = DATA_DIR if source == "packaged" else path
        if not base:
            raise DataError("source='dir' needs a path")
        rows = _read_jsonl(os.path.join(base, f"{domain}_{split}.jsonl"))
    elif source == "hub":
        filtered = _hub_rows(domain, hub_name)
        indexed = filtered.add_column("sdpo_idx", list(range(len(filtered))))
        train, test = split_like_reference(indexed)
        part = train if split == "train" else test
        rows = sorted((_hub_record(r, domain, r["sdpo_idx"], split) for r in part), key=lambda r: r["sdpo_idx"])
    else:
        raise DataError(f"unknown data source {source!r}; choose packaged, dir or hub")
    res = build_questions(rows, split, domain, on_malformed=on_malformed, source=source)
    if res.duplicates:
        logger.info("%s %s: %d group(s) of identical questions: %s", domain, split, len(res.duplicates),
                    res.duplicates)
    if limit is not None:
        if limit < 1:
            raise DataError(f"limit must be >= 1, got {limit}")
        res.questions = res.questions[:limit]
    return res


def cross_split_duplicates(domain: str, source: str = "packaged", path: str | None = None) -> list[tuple[str, ...]]:
    """Identical questions appearing in both train and test (a leak worth knowing about)."""
    tr = load_questions(domain, "train", source, path)
    te = load_questions(domain, "test", source, path)
    test_ids = {q.id for q in te.questions}
    return [g for g in find_duplicates(tr.questions + te.questions) if any(i in test_ids for i in g)
            and any(i not in test_ids for i in g)]

"""The labelled messages: one JSON object a line.

{"text": "...", "context": "the assistant's turn before, or empty", "label": "risk" | "safe",
 "category": "suicide" | "self_harm" | "harm_to_others" | "abuse" | "none",
 "kind": "clear" | "indirect" | "negated" | "third_party" | "figurative" | "ordinary" | "clinical",
 "lang": "en" | "es"}
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).with_name("data")
EVAL_FILE = DATA_DIR / "eval.jsonl"
TRAIN_FILES = (
    "train.jsonl",
    "train_more_es.jsonl",
    "train_more_en_safe.jsonl",
    "train_more_en_risk.jsonl",
    "train_more_en_hard.jsonl",  # sad-but-safe and figurative messages beside risk in the same register
    "train_more_es_hard.jsonl",
    "train_more_context.jsonl",  # short answers whose meaning is the question before them
    "train_more_followups_en.jsonl",  # everyday follow-ups after the companion's empathic turns
    "train_more_followups_es.jsonl",
)
CATEGORIES = ("suicide", "self_harm", "harm_to_others", "abuse")
RISK_KINDS = ("clear", "indirect")
SAFE_KINDS = ("negated", "third_party", "figurative", "ordinary", "clinical")


@dataclass(frozen=True)
class Example:
    text: str
    context: str
    category: str  # "none" for safe messages
    kind: str
    lang: str

    @property
    def risky(self) -> bool:
        return self.category != "none"


def load(path: Path) -> list[Example]:
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        example = Example(row["text"], row.get("context") or "", row["category"], row["kind"], row["lang"])
        if (row["label"] == "risk") != example.risky or example.category not in (*CATEGORIES, "none"):
            raise ValueError(f"{path}:{number}: label {row['label']!r} and category {row['category']!r} disagree")
        if example.kind not in (*RISK_KINDS, *SAFE_KINDS):
            raise ValueError(f"{path}:{number}: unknown kind {example.kind!r}")
        examples.append(example)
    return examples


def load_training() -> list[Example]:
    """Every training file: written in batches, each with an emphasis (its name says which)."""
    return [example for name in TRAIN_FILES if (DATA_DIR / name).exists() for example in load(DATA_DIR / name)]


def normalized(text: str) -> str:
    """For finding the same message in both sets: case, accents, punctuation and spacing aside."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(char for char in text if not unicodedata.combining(char))
    return re.sub(r"[\W_]+", " ", text).strip()

"""Measure the crisis detector (rules + learned head, as the proxy runs it) on data/eval.jsonl.

    python -m safety.evaluate [--check] [--misses] [--record]

Prints, per kind of message, how many were flagged: recall for the risk kinds, false-positive rate
for the others; then per risk category and per language, and the overall precision. `--check`
exits 1 when a goal below is missed (`make test` runs the evaluation through tests/safety/);
`--record` writes the tables into docs/safety.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from proxy.policies.crisis.detector import CrisisDetector
from proxy.policies.crisis.model import CARD_FILE, MODEL_DIR
from safety.dataset import CATEGORIES, EVAL_FILE, RISK_KINDS, SAFE_KINDS, Example, load, load_training, normalized

GOALS = {"clear": 0.95, "indirect": 0.95}  # recall at least
LIMITS = {"figurative": 0.05, "ordinary": 0.05}  # false-positive rate at most


@dataclass
class Tally:
    total: int = 0
    flagged: int = 0

    @property
    def rate(self) -> float:
        return self.flagged / self.total if self.total else 0.0


@dataclass
class Evaluation:
    by_kind: dict[str, Tally]
    by_category: dict[str, Tally]  # risk messages, by their category
    by_language: dict[tuple[str, str], Tally]  # (lang, "risk" | "safe")
    category_right: int  # flagged risk messages given their own category
    precision: float
    misses: list[tuple[Example, str | None]]  # (example, what the detector said)
    ms_per_message: float

    def failures(self) -> list[str]:
        failed = [f"recall on {kind} {self.by_kind[kind].rate:.3f} < {goal}" for kind, goal in GOALS.items()
                  if self.by_kind[kind].rate < goal]  # fmt: skip
        failed += [f"false-positive rate on {kind} {self.by_kind[kind].rate:.3f} > {limit}"
                   for kind, limit in LIMITS.items() if self.by_kind[kind].rate > limit]  # fmt: skip
        return failed


def evaluate(detector: CrisisDetector, examples: list[Example]) -> Evaluation:
    by_kind: dict[str, Tally] = defaultdict(Tally)
    by_category: dict[str, Tally] = defaultdict(Tally)
    by_language: dict[tuple[str, str], Tally] = defaultdict(Tally)
    category_right = flagged_total = flagged_risky = 0
    misses = []
    started = time.perf_counter()
    for example in examples:
        verdict = detector.assess(example.text, example.context)
        tallies = [by_kind[example.kind], by_language[(example.lang, "risk" if example.risky else "safe")]]
        if example.risky:
            tallies.append(by_category[example.category])
        for tally in tallies:
            tally.total += 1
            tally.flagged += verdict.flagged
        flagged_total += verdict.flagged
        flagged_risky += verdict.flagged and example.risky
        category_right += verdict.flagged and verdict.category == example.category
        if verdict.flagged != example.risky:
            misses.append((example, verdict.category))
    elapsed = time.perf_counter() - started
    return Evaluation(dict(by_kind), dict(by_category), dict(by_language), category_right,
                      flagged_risky / flagged_total if flagged_total else 1.0, misses,
                      1000 * elapsed / len(examples))  # fmt: skip


def report(evaluation: Evaluation) -> str:
    lines = ["| messages | n | flagged | measure |", "|---|---:|---:|---|"]
    for kind in (*RISK_KINDS, *SAFE_KINDS):
        tally = evaluation.by_kind.get(kind, Tally())
        measure = "recall" if kind in RISK_KINDS else "false-positive rate"
        goal = f" (goal ≥ {GOALS[kind]})" if kind in GOALS else f" (limit ≤ {LIMITS[kind]})" if kind in LIMITS else ""
        lines.append(f"| {kind} | {tally.total} | {tally.flagged} | {measure} {tally.rate:.3f}{goal} |")
    lines += ["", "| risk category | n | recall |", "|---|---:|---:|"]
    for category in CATEGORIES:
        tally = evaluation.by_category.get(category, Tally())
        lines.append(f"| {category} | {tally.total} | {tally.rate:.3f} |")
    lines += ["", "| language | risk recall | safe false-positive rate |", "|---|---:|---:|"]
    for lang in sorted({lang for lang, _ in evaluation.by_language}):
        risk = evaluation.by_language.get((lang, "risk"), Tally())
        safe = evaluation.by_language.get((lang, "safe"), Tally())
        lines.append(f"| {lang} | {risk.rate:.3f} ({risk.total}) | {safe.rate:.3f} ({safe.total}) |")
    risky_flagged = sum(evaluation.by_kind[kind].flagged for kind in RISK_KINDS if kind in evaluation.by_kind)
    lines += ["", f"precision {evaluation.precision:.3f}; flagged risk messages with the right category "
              f"{evaluation.category_right}/{risky_flagged}; {evaluation.ms_per_message:.1f} ms a message"]  # fmt: skip
    return "\n".join(lines)


def overlap(train: list[Example], evaluation: list[Example]) -> set[tuple[str, str]]:
    """Messages in both sets, with the same context (after normalizing): the sets must stay apart.
    ("yes" is in both, but after different questions: that is the point of it.)"""

    def keys(examples: list[Example]) -> set[tuple[str, str]]:
        return {(normalized(e.text), normalized(e.context)) for e in examples}

    return keys(train) & keys(evaluation)


SAFETY_DOC = Path(__file__).resolve().parents[1] / "docs" / "safety.md"
BEGIN, END = "<!-- safety:evaluation:begin -->", "<!-- safety:evaluation:end -->"


def record(text: str, failures: list[str]) -> None:
    card = json.loads((MODEL_DIR / CARD_FILE).read_text(encoding="utf-8"))
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    missed = "".join(f"\n- Missed: {failure}." for failure in failures) or "\n- Every goal holds."
    section = (f"{BEGIN}\nMeasured {date} with `python -m safety.evaluate --record`: the model trained on "
               f"{card['trained_on']} messages, threshold {card['threshold']}, with the rules before it.\n\n"
               f"{text}\n{missed}\n{END}")  # fmt: skip
    document = SAFETY_DOC.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    SAFETY_DOC.write_text(pattern.sub(lambda _: section, document), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--misses", action="store_true", help="list the messages the detector got wrong")
    parser.add_argument("--record", action="store_true", help="write the tables into docs/safety.md")
    args = parser.parse_args()
    examples = load(EVAL_FILE)
    shared = overlap(load_training(), examples)
    evaluation = evaluate(CrisisDetector.load(), examples)
    print(report(evaluation))
    if args.misses:
        for example, said in evaluation.misses:
            print(f"  {example.kind:11} {example.category:14} said {said or 'safe':14} {example.text!r}")
    failures = evaluation.failures() + ([f"{len(shared)} messages are in both sets"] if shared else [])
    for failure in failures:
        print("MISSED:", failure)
    if args.record:
        record(report(evaluation), failures)
    if args.check and failures:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Frustration benchmark: bot/frustration.py's score_message against hand-labelled
customer messages (bench/data/frustration.yml).

    .venv/bin/python bench/frustration.py [--errors all|tuned|held-out|none]

Upset means score >= 2 (bot.frustration.UPSET); the positive label is angry or furious.
Every message is scored twice: with the intent a good NLU would give (as the bot does)
and with no intent (words and shouting only). The figures are given separately for the
part the word lists were tuned on and the held-out part (every third item). Prints
counts per level, the confusion of level against score, precision / recall / F1, and
the false positives and false negatives.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bot.frustration import MAX, UPSET, score_message  # noqa: E402

DATA = PROJECT / "bench" / "data" / "frustration.yml"
LEVELS = ("calm", "annoyed", "angry", "furious")
POSITIVE = {"angry", "furious"}
PARTS = {"tuned": False, "held-out": True}


@dataclass(frozen=True)
class Item:
    text: str
    level: str
    intent: str
    held_out: bool

    @property
    def upset(self) -> bool:
        return self.level in POSITIVE


def load(path: Path = DATA) -> list[Item]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))["items"]
    return [Item(i["text"], i["level"], i["intent"], bool(i.get("held_out", False))) for i in raw]


def scores(items: list[Item], with_intent: bool) -> list[int]:
    return [score_message(i.text, i.intent if with_intent else None) for i in items]


def prf(items: list[Item], predicted: list[int]) -> dict[str, float]:
    tp = sum(i.upset and s >= UPSET for i, s in zip(items, predicted, strict=True))
    fp = sum(not i.upset and s >= UPSET for i, s in zip(items, predicted, strict=True))
    fn = sum(i.upset and s < UPSET for i, s in zip(items, predicted, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"n": len(items), "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def confusion(items: list[Item], predicted: list[int]) -> None:
    counts = Counter(zip((i.level for i in items), predicted, strict=True))
    print(f"| level \\ score | {' | '.join(str(s) for s in range(MAX + 1))} | share ≥ {UPSET} |")
    print(f"| --- | {' | '.join('---' for _ in range(MAX + 2))} |")
    for level in LEVELS:
        row = [counts[level, s] for s in range(MAX + 1)]
        total = sum(row)
        upset = sum(row[UPSET:]) / total if total else 0.0
        print(f"| {level} | {' | '.join(str(c) for c in row)} | {upset:.2f} |")


def errors(items: list[Item], predicted: list[int], part: str) -> None:
    rows = [(i, s) for i, s in zip(items, predicted, strict=True) if part == "all" or i.held_out == PARTS[part]]
    for title, wrong in (
        (f"False positives (calm or annoyed, score ≥ {UPSET})", lambda i, s: not i.upset and s >= UPSET),
        (f"False negatives (angry or furious, score < {UPSET})", lambda i, s: i.upset and s < UPSET),
    ):
        found = [(i, s) for i, s in rows if wrong(i, s)]
        print(f"\n{title}, {part}: {len(found)}")
        for i, s in found:
            mark = "held-out" if i.held_out else "tuned"
            print(f"- [{mark}] {i.text}  (label {i.level}, intent {i.intent}, score {s})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errors", choices=["all", *PARTS, "none"], default="all",
                        help="which part's false positives / negatives to list")  # fmt: skip
    args = parser.parse_args()
    items = load()
    parts = {name: [i for i in items if i.held_out == held] for name, held in PARTS.items()}

    print(f"Frustration detector on {DATA.relative_to(PROJECT)}: {len(items)} messages")
    print(f"\n| level | {' | '.join(parts)} | all |")
    print(f"| --- | {' | '.join('---' for _ in parts)} | --- |")
    for level in LEVELS:
        cells = [sum(i.level == level for i in part) for part in parts.values()]
        print(f"| {level} | {' | '.join(str(c) for c in cells)} | {sum(cells)} |")

    print(f"\nUpset = score ≥ {UPSET}; positive label = angry or furious")
    print("| part | scored | n | TP | FP | FN | precision | recall | F1 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for with_intent, scored in ((True, "with intent"), (False, "words only")):
        for name, part in [*parts.items(), ("all", items)]:
            r = prf(part, scores(part, with_intent))
            print(f"| {name} | {scored} | {r['n']} | {r['tp']} | {r['fp']} | {r['fn']} "
                  f"| {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |")  # fmt: skip

    for name, part in parts.items():
        print(f"\nConfusion, {name} part, scored with intent")
        confusion(part, scores(part, with_intent=True))
    print("\nConfusion, all messages, words only")
    confusion(items, scores(items, with_intent=False))

    if args.errors != "none":
        errors(items, scores(items, with_intent=True), args.errors)


if __name__ == "__main__":
    main()

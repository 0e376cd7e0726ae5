"""Evaluating a trained model on the held-out set (holdout/nlu.yml, never trained on):
per-intent precision, recall and F1, entity F1, FAQ answer accuracy, the confusion
matrix, and every example it gets wrong."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bot.text import normalize

log = logging.getLogger(__name__)
FALLBACK = "nlu_fallback"


@dataclass(frozen=True)
class Case:
    """One held-out example: what a customer typed and what it means."""

    text: str
    intent: str  # faq, not faq/how_to_pay: the classifier's level
    response_key: str | None  # faq/how_to_pay
    entities: tuple[tuple[str, str], ...]  # (entity, value)


@dataclass
class Scores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Evaluation:
    model: str
    cases: int
    accuracy: float
    macro_f1: float
    intents: dict[str, Scores]
    entity: Scores
    entities: dict[str, Scores]
    faq_accuracy: float | None
    labels: list[str]
    confusion: list[list[int]]  # rows: true labels, columns: predicted (labels + nlu_fallback)
    wrong: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Evaluation:
        data = dict(data)
        data["intents"] = {k: Scores(**v) for k, v in data["intents"].items()}
        data["entity"] = Scores(**data["entity"])
        data["entities"] = {k: Scores(**v) for k, v in data["entities"].items()}
        return cls(**data)


def load_cases(path: Path) -> list[Case]:
    from rasa.shared.nlu.training_data.loading import load_data

    cases = []
    for message in load_data(str(path)).intent_examples:
        entities = tuple((e["entity"], normalize(str(e["value"]))) for e in message.get("entities") or [])
        cases.append(Case(message.get("text"), message.get("intent"), message.get("intent_response_key"), entities))
    return cases


def evaluate(model_path: Path, cases: list[Case]) -> Evaluation:
    """Parse every case with the model (loaded in this process) and score it."""
    from rasa.core.agent import Agent

    agent = Agent.load(str(model_path))

    async def parse_all() -> list[dict]:
        return [await agent.parse_message(case.text) for case in cases]

    return score(str(model_path), cases, asyncio.run(parse_all()))


def score(model: str, cases: list[Case], parses: list[dict]) -> Evaluation:
    """The figures for parses of the cases (separate from parsing, to be testable)."""
    labels = sorted({case.intent for case in cases})
    columns = labels if FALLBACK in labels else [*labels, FALLBACK]
    index = {label: i for i, label in enumerate(columns)}
    confusion = [[0] * len(columns) for _ in labels]
    intents_true, intents_predicted = [], []
    found, expected, hit = Counter(), Counter(), Counter()
    faq_cases = faq_right = 0
    wrong = []
    for case, parse in zip(cases, parses, strict=True):
        intent = (parse.get("intent") or {}).get("name") or FALLBACK
        confidence = float((parse.get("intent") or {}).get("confidence") or 0.0)
        intents_true.append(case.intent)
        intents_predicted.append(intent)
        if intent in index:
            confusion[labels.index(case.intent)][index[intent]] += 1
        got = Counter((e["entity"], normalize(str(e["value"]))) for e in _entities(parse))
        want = Counter(case.entities)
        for key in set(got) | set(want):
            found[key[0]] += got[key]
            expected[key[0]] += want[key]
            hit[key[0]] += min(got[key], want[key])
        answer = None
        if case.response_key:
            faq_cases += 1
            answer = _response_key(parse)
            faq_right += answer == case.response_key
        mistakes = []
        if intent != case.intent:
            mistakes.append("intent")
        if got != want:
            mistakes.append("entities")
        if case.response_key and answer != case.response_key:
            mistakes.append("faq")
        if mistakes:
            wrong.append(
                {
                    "text": case.text,
                    "expected": case.response_key or case.intent,
                    "predicted": answer if "faq" in mistakes and intent == "faq" else intent,
                    "confidence": round(confidence, 3),
                    "expected_entities": [list(e) for e in case.entities],
                    "predicted_entities": sorted([list(e) for e in got.elements()]),
                    "mistakes": mistakes,
                }
            )
    per_intent = {label: _scores(intents_true, intents_predicted, label) for label in labels}
    per_entity = {
        name: _from_counts(hit[name], found[name], expected[name]) for name in sorted(set(found) | set(expected))
    }
    total = _from_counts(sum(hit.values()), sum(found.values()), sum(expected.values()))
    right = sum(t == p for t, p in zip(intents_true, intents_predicted, strict=True))
    return Evaluation(
        model=model,
        cases=len(cases),
        accuracy=right / len(cases) if cases else 0.0,
        macro_f1=sum(s.f1 for s in per_intent.values()) / len(per_intent) if per_intent else 0.0,
        intents=per_intent,
        entity=total,
        entities=per_entity,
        faq_accuracy=faq_right / faq_cases if faq_cases else None,
        labels=columns,
        confusion=confusion,
        wrong=wrong,
    )


def _entities(parse: dict) -> list[dict]:
    """Entities once per span: the regex and DIET extractors may both find one."""
    seen, unique = set(), []
    for entity in parse.get("entities") or []:
        key = (entity.get("entity"), entity.get("start"), entity.get("end"))
        if key not in seen:
            seen.add(key)
            unique.append(entity)
    return unique


def _response_key(parse: dict) -> str | None:
    selector = (parse.get("response_selector") or {}).get("faq") or {}
    return (selector.get("response") or {}).get("intent_response_key")


def _scores(truth: list[str], predicted: list[str], label: str) -> Scores:
    true_positive = sum(t == label and p == label for t, p in zip(truth, predicted, strict=True))
    return _from_counts(true_positive, predicted.count(label), truth.count(label))


def _from_counts(hits: int, found: int, expected: int) -> Scores:
    precision = hits / found if found else 0.0
    recall = hits / expected if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(round(precision, 4), round(recall, 4), round(f1, 4), expected)


def plot_confusion(evaluation: Evaluation, path: Path, title: str) -> Path:
    """The confusion matrix as a PNG (rows: the true intent, columns: the prediction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, columns = evaluation.labels[: len(evaluation.confusion)], evaluation.labels
    size = max(6.0, 0.45 * len(columns) + 2)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(evaluation.confusion, cmap="Blues", aspect="auto")
    axes.set_xticks(range(len(columns)), labels=columns, rotation=70, ha="right", fontsize=8)
    axes.set_yticks(range(len(rows)), labels=rows, fontsize=8)
    axes.set_xlabel("predicted intent")
    axes.set_ylabel("true intent")
    axes.set_title(title, fontsize=10)
    peak = max((max(row) for row in evaluation.confusion), default=0)
    for i, row in enumerate(evaluation.confusion):
        for j, count in enumerate(row):
            if count:
                colour = "white" if count > peak / 2 else "black"
                axes.text(j, i, str(count), ha="center", va="center", fontsize=7, color=colour)
    figure.colorbar(image, ax=axes, fraction=0.04)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

"""The held-out set judges candidate models: it must cover every intent, keep clear of
the training data, and be annotated the way the training data is."""

from __future__ import annotations

from pathlib import Path

from rasa.shared.nlu.training_data.loading import load_data

from bot.training.checks import misaligned, same_and_near
from bot.training.nlu_data import NluData

PROJECT = Path(__file__).resolve().parents[1]
HOLDOUT = load_data(str(PROJECT / "holdout" / "nlu.yml"))


def _label(message) -> str:
    return message.get("intent_response_key") or message.get("intent")


def test_every_intent_and_faq_question_is_held_out() -> None:
    trained = set(NluData(PROJECT).intent_files())
    held_out = [_label(m) for m in HOLDOUT.intent_examples]
    assert trained == set(held_out)
    assert all(held_out.count(name) >= (4 if name.startswith("faq/") else 12) for name in trained)


def test_no_held_out_example_is_a_copy_or_near_copy_of_a_training_example() -> None:
    data = NluData(PROJECT)
    examples = data.examples()
    close = {
        m.get("text"): f.message
        for m in HOLDOUT.intent_examples
        for f in same_and_near(data, m.get("text"), _label(m), examples)
    }
    assert not close


def test_held_out_entities_fall_on_token_boundaries() -> None:
    broken = [
        (m.get("text"), value)
        for m in HOLDOUT.entity_examples
        for value in misaligned(
            PROJECT, m.get("text"), [(e["start"], e["end"], e["entity"]) for e in m.get("entities")]
        )
    ]
    assert not broken

"""The training data keeps the contract and fits the Chinese pipeline."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from rasa.shared.nlu.training_data.loading import load_data

from bot.empathy import TOPICS, response_name
from bot.text import normalize
from bot.training.checks import allowed_warning, misaligned, validation_warnings

PROJECT = Path(__file__).resolve().parents[1]
CONTRACT_INTENTS = {
    "greet", "goodbye", "thank", "affirm", "deny", "bot_challenge", "query_bill", "bill_too_high",
    "query_outage", "report_power_quality", "report_hazard", "meter_dispute", "payment_not_restored",
    "complain", "request_human", "query_ticket", "express_frustration", "inform", "faq", "out_of_scope",
}  # fmt: skip
CONTRACT_FAQ = {
    "how_to_pay", "tiered_pricing", "time_of_use_pricing", "meter_verification",
    "new_connection", "change_of_holder", "invoice", "service_hours",
}  # fmt: skip
CONTRACT_ENTITIES = {"account_number", "phone", "ticket_id", "person_name", "address", "month"}
@pytest.fixture(scope="module")
def training():
    return load_data(str(PROJECT / "data" / "nlu"))


@pytest.fixture(scope="module")
def domain() -> dict:
    return yaml.safe_load((PROJECT / "domain.yml").read_text(encoding="utf-8"))


def test_contract_intents_and_entities_are_in_the_domain(domain: dict) -> None:
    assert set(domain["intents"]) >= CONTRACT_INTENTS
    assert set(domain["entities"]) >= CONTRACT_ENTITIES
    assert {f"utter_faq/{key}" for key in CONTRACT_FAQ} <= set(domain["responses"])


def test_every_intent_has_at_least_25_varied_examples(training) -> None:
    counts: dict[str, int] = defaultdict(int)
    for example in training.intent_examples:
        counts[example.get("intent")] += 1
    for intent in CONTRACT_INTENTS - {"faq"}:
        assert counts[intent] >= 25, f"{intent}: {counts[intent]} examples"
    assert counts["faq"] >= 25 * len(CONTRACT_FAQ)


def test_every_faq_sub_intent_has_examples_and_an_answer(training, domain: dict) -> None:
    sub_intents: dict[str, int] = defaultdict(int)
    for example in training.intent_examples:
        if example.get("intent") == "faq":
            sub_intents[example.get("intent_response_key")] += 1
    assert {f"faq/{key}" for key in CONTRACT_FAQ} <= set(sub_intents)
    for key, count in sub_intents.items():
        assert count >= 20, f"{key}: {count} examples"
        assert f"utter_{key}" in domain["responses"], key


def test_no_text_is_labelled_with_two_intents(training) -> None:
    labels: dict[str, set[str]] = defaultdict(set)
    for example in training.intent_examples:
        labels[normalize(example.get("text"))].add(example.get("intent"))
    clashes = {text: intents for text, intents in labels.items() if len(intents) > 1}
    assert not clashes


def test_annotated_examples_keep_their_offsets_when_normalised(training) -> None:
    """The normaliser skips an annotated example whose length it would change, so its
    entities would be learned from unnormalised text: none may be like that."""
    shifted = [e.get("text") for e in training.entity_examples if len(normalize(e.get("text"))) != len(e.get("text"))]
    assert not shifted


def test_entity_annotations_fall_on_jieba_token_boundaries(training) -> None:
    misaligned_values = [
        (example.get("text"), value)
        for example in training.entity_examples
        for value in misaligned(
            PROJECT, example.get("text"), [(e["start"], e["end"], e["entity"]) for e in example.get("entities")]
        )
    ]
    assert not misaligned_values


def test_number_entities_have_regexes(training) -> None:
    names = {pattern["name"] for pattern in training.regex_features}
    assert {"account_number", "phone", "ticket_id", "month"} <= names
    account = next(p["pattern"] for p in training.regex_features if p["name"] == "account_number")
    assert re.search(account, "查下3201000001上个月电费") and not re.search(account, "13800000001")


def test_rasa_data_validate_has_no_warnings() -> None:
    """The empathy lines of domain.yml are spoken by actions (so that none is said twice),
    and the EXTERNAL_ intents are said by agents through the HTTP API and decided by
    HandoffPolicy, never by customers, stories or rules; Rasa's validator reports both as
    unused. Those, and nothing else, may warn (the trainers' labelling allows the same)."""
    passed, warnings = validation_warnings(PROJECT)
    assert passed, "\n".join(warnings)
    unexpected = [line for line in warnings if not allowed_warning(line)]
    assert not unexpected, "\n".join(unexpected)


def test_every_empathy_topic_has_its_scripted_lines(domain: dict) -> None:
    scripted = {name for name in domain["responses"] if name.startswith("utter_empathy_")}
    assert scripted == {response_name(topic) for topic in TOPICS}

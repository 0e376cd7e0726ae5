"""The Rasa server's per-turn speed-ups (issue 8) change nothing Rasa decides: the action
server's answers are checked against the same schema, events read back as the same
classes, and the FAQ selector answers exactly the messages the classifier calls `faq`."""

from __future__ import annotations

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.core.events import Event
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.utils.common import all_subclasses

import bot.nlu  # noqa: F401  (what the Rasa server imports with the model)
from bot import rasa_speedups
from bot.nlu.selector import RetrievalResponseSelector

ACTION = RemoteAction("action_read_turn", None)


def test_the_rasa_server_runs_with_the_speed_ups() -> None:
    assert RemoteAction._validate_action_result is rasa_speedups._validate_action_result
    assert Event.resolve_by_type is rasa_speedups._resolve_by_type


def test_a_valid_action_answer_passes() -> None:
    answer = {
        "events": [{"event": "slot", "name": "frustration", "value": 1.0, "timestamp": None}],
        "responses": [{"text": "您好"}],
    }
    assert ACTION._validate_action_result(answer) is True


@pytest.mark.parametrize(
    "answer",
    [
        {"events": [{"event": "no_such_event"}], "responses": []},
        {"events": "not a list", "responses": []},
        {"events": [], "responses": ["not an object"]},
    ],
)
def test_an_invalid_action_answer_is_refused_as_rasa_refuses_it(answer: dict) -> None:
    with pytest.raises(ValidationError) as refused:
        ACTION._validate_action_result(answer)
    assert "Failed to validate Action server response from API" in refused.value.message


def test_every_event_name_reads_back_as_rasa_s_own_class() -> None:
    for cls in all_subclasses(Event):
        assert Event.resolve_by_type(cls.type_name) is rasa_speedups._resolve_event_class(cls.type_name)
        assert Event.resolve_by_type(cls.type_name) is rasa_speedups._resolve_event_class(cls.type_name)  # cached


def test_an_unknown_event_name_is_still_an_error_or_the_default() -> None:
    with pytest.raises(ValueError, match="Unknown event name"):
        Event.resolve_by_type("no_such_event")
    assert Event.resolve_by_type("no_such_event", default=Event) is Event
    assert "no_such_event" not in rasa_speedups._EVENT_CLASSES


@pytest.fixture
def selector(monkeypatch: pytest.MonkeyPatch) -> tuple[RetrievalResponseSelector, list[str]]:
    """The selector's gate, with Rasa's selection replaced by a stand-in that records."""
    chosen: list[str] = []

    def select(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            chosen.append(message.get("text"))
            message.set("response_selector", {"all_retrieval_intents": ["faq"], "faq": {"picked": True}}, True)
        return messages

    monkeypatch.setattr(ResponseSelector, "process", select)
    gate = RetrievalResponseSelector.__new__(RetrievalResponseSelector)
    gate.retrieval_intent, gate.all_retrieval_intents = "faq", ["faq"]
    return gate, chosen


def _message(text: str, intent: str | None) -> Message:
    message = Message(data={"text": text})
    if intent:
        message.set("intent", {"name": intent, "confidence": 0.9})
    return message


def test_only_faq_messages_are_given_an_answer(selector) -> None:
    gate, chosen = selector
    faq, greeting = _message("电费怎么交", "faq"), _message("你好", "greet")
    gate.process([faq, greeting])
    assert chosen == ["电费怎么交"]
    assert faq.get("response_selector")["faq"] == {"picked": True}
    assert greeting.get("response_selector") == {"all_retrieval_intents": ["faq"]}
    assert "response_selector" in greeting.as_dict(only_output_properties=True)


def test_without_an_intent_the_selector_answers_as_rasa_s_does(selector) -> None:
    gate, chosen = selector
    gate.process([_message("电费怎么交", None)])
    assert chosen == ["电费怎么交"]

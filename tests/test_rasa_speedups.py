"""The Rasa server's per-turn speed-ups (issue 8) change nothing Rasa decides: the action
server's answers are checked against the same schema, events read back as the same
classes, and the FAQ selector answers exactly the messages the classifier calls `faq`."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import os
import subprocess
import sys
import types
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse
import structlog
from jsonschema import ValidationError, exceptions, validators
from rasa.core import processor
from rasa.core.actions.action import RemoteAction
from rasa.core.featurizers.tracker_featurizers import MaxHistoryTrackerFeaturizer
from rasa.core.policies import rule_policy
from rasa.core.policies.rule_policy import RulePolicy
from rasa.engine.graph import ExecutionContext, GraphComponent, GraphSchema, SchemaNode
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.core.constants import (
    ACTION_LISTEN_NAME,
    ACTION_SESSION_START_NAME,
    ACTION_UNLIKELY_INTENT_NAME,
    RULE_ONLY_LOOPS,
    RULE_ONLY_SLOTS,
)
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActionExecutionRejected,
    ActionReverted,
    ActiveLoop,
    AgentUttered,
    AllSlotsReset,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    DefinePrevUserUtteredFeaturization,
    EntitiesAdded,
    Event,
    FollowupAction,
    LoopInterrupted,
    ReminderCancelled,
    ReminderScheduled,
    Restarted,
    SessionStarted,
    SlotSet,
    StoryExported,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.utils.common import all_subclasses
from rasa.utils.endpoints import ClientResponseError, EndpointConfig

import bot.nlu  # noqa: F401  (what the Rasa server imports with the model)
from bot.nlu.selector import RetrievalResponseSelector
from bot.rasa_speedups import action_calls, debug_lines, policies
from bot.rasa_speedups import graph as graph_speedups
from bot.rasa_speedups import nlu as nlu_speedups
from bot.rasa_speedups import states as state_speedups
from bot.rasa_speedups import trackers as tracker_speedups
from tests.e2e.servers import running
from tests.event_stream import wait_for

ACTION = RemoteAction("action_read_turn", None)
PROJECT = Path(__file__).resolve().parents[1]


def test_the_rasa_server_runs_with_the_speed_ups() -> None:
    assert RemoteAction._validate_action_result is action_calls._validate_action_result
    assert RemoteAction._action_call_format is action_calls._action_call_format
    assert DialogueStateTracker.applied_events is tracker_speedups._applied_events
    assert Event.resolve_by_type is tracker_speedups._resolve_by_type
    assert Domain.states_for_tracker_history is state_speedups._states_for_tracker_history
    assert all(module.copy is debug_lines._copy_for_debug_lines for module in debug_lines.MODULES)


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


def _every_kind_of_event() -> list[dict[str, Any]]:
    """One event of every kind an action may answer with, as Rasa writes it."""
    said = UserUttered(
        "户号3201000001", {"name": "inform", "confidence": 0.9},
        [{"entity": "account_number", "value": "3201000001", "start": 2, "end": 12, "confidence": 0.99}],
        parse_data={"intent_ranking": [{"name": "inform", "confidence": 0.9}], "response_selector": {}},
    )  # fmt: skip
    made = [
        said, ActionExecuted("action_read_turn", policy="RulePolicy", confidence=1.0), SlotSet("request", "query_bill"),
        SlotSet("frustration", None), BotUttered("您好", {"buttons": []}), ActiveLoop("account_form"), ActiveLoop(None),
        FollowupAction("action_listen"), ReminderScheduled("EXTERNAL_reminder", datetime.now(), name="r1"),
        ReminderCancelled(name="r1"), AllSlotsReset(), Restarted(), UserUtteranceReverted(), ActionReverted(),
        ConversationPaused(), ConversationResumed(), SessionStarted(), ActionExecutionRejected("validate_account_form"),
        LoopInterrupted(True), EntitiesAdded([{"entity": "phone", "value": "13912345678"}]),
        DefinePrevUserUtteredFeaturization(False), StoryExported(), AgentUttered("人工客服"),
    ]  # fmt: skip
    return json.loads(json.dumps([event.as_dict() for event in made]))


def _answers() -> list[Any]:
    """Answers an action server might give: each kind of event alone, all together, and
    each spoiled in a way the schema refuses or allows."""
    kinds = _every_kind_of_event()
    answers: list[Any] = [{"events": [kind], "responses": [{"text": "好的"}]} for kind in kinds]
    answers += [{"events": kinds}, {}, {"responses": []}, {"events": [], "extra": 1}, [], "events", None]
    spoils = [
        ("timestamp", "yesterday"), ("metadata", []), ("metadata", None), ("event", 5), ("event", "no_such_event"),
        ("name", 3), ("value", object), ("entities", "none"), ("parse_data", []), ("confidence", "high"),
        ("text", 1), ("hide_rule_turn", "yes"), ("policy", None),
    ]  # fmt: skip
    for kind in kinds:
        for key, value in spoils:
            spoiled = {**kind}
            if value is object:
                spoiled.pop("name", None), spoiled.pop("value", None)
            else:
                spoiled[key] = value
            answers.append({"events": [spoiled]})
        answers.append({"events": [kind, "not an event"]})
    answers += [{"events": kinds, "responses": "none"}, {"events": kinds, "responses": [1]}, {"events": {"a": 1}}]
    return answers


def test_the_answer_is_refused_or_passed_exactly_as_by_rasa_s_whole_schema() -> None:
    """The check of an event against the one kind it names passes what Rasa's schema
    passes, and anything else gets Rasa's own error."""
    schema, checked_alone = RemoteAction.action_response_format_spec(), 0
    whole = validators.validator_for(schema)(schema)  # what jsonschema.validate does, but the meta-schema check
    for answer in _answers():
        error = exceptions.best_match(whole.iter_errors(answer))
        expected = error.message if error is not None else None
        if expected is None:
            assert ACTION._validate_action_result(answer) is True, answer
            checked_alone += action_calls._plainly_valid(answer)
        else:
            assert not action_calls._plainly_valid(answer), answer
            with pytest.raises(ValidationError) as refused:
                ACTION._validate_action_result(answer)
            assert refused.value.message.startswith(expected + ". Failed to validate Action server response")
    assert checked_alone > 25  # every valid answer but those that are not objects of events


def test_every_event_name_reads_back_as_rasa_s_own_class() -> None:
    for cls in all_subclasses(Event):
        assert Event.resolve_by_type(cls.type_name) is tracker_speedups._resolve_event_class(cls.type_name)
        assert Event.resolve_by_type(cls.type_name) is tracker_speedups._resolve_event_class(cls.type_name)  # cached


def test_an_unknown_event_name_is_still_an_error_or_the_default() -> None:
    with pytest.raises(ValueError, match="Unknown event name"):
        Event.resolve_by_type("no_such_event")
    assert Event.resolve_by_type("no_such_event", default=Event) is Event
    assert "no_such_event" not in tracker_speedups._EVENT_CLASSES


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


# --- the conversation's states, carried on from one prediction to the next ----------------


def _session(*events: Event) -> list[Event]:
    """A conversation from its session's start, as a Rasa server's tracker store keeps it."""
    return [ActionExecuted(ACTION_SESSION_START_NAME), SessionStarted(), ActionExecuted(ACTION_LISTEN_NAME), *events]


def _as_rasa_does(domain: Domain, tracker: DialogueStateTracker, *options: Any) -> list:
    return state_speedups._original_states_for_tracker_history(domain, tracker, *options)


def _rule_only_data(domain: Domain) -> dict[str, list[str]]:
    return {RULE_ONLY_SLOTS: [slot.name for slot in domain.slots[:3]], RULE_ONLY_LOOPS: list(domain.form_names[:1])}


def test_the_states_carried_on_are_the_states_rasa_computes(story_events) -> None:
    """Long conversations (the stories and rules one after another) growing event by event,
    read back from the tracker store every few events, asked with every option the
    policies use: always Rasa's own states."""
    domain, stories = story_events
    options = [(False, False, None), (False, True, _rule_only_data(domain)), (True, False, _rule_only_data(domain))]
    made, carried_on, asked = _count_states(domain), 0, 0
    for start in range(0, len(stories), 9):
        # as the tracker store gives them back (what only training sets, such as `unpredictable`, gone)
        events = _read_back(_session(*(event for story in stories[start : start + 9] for event in story)))
        tracker, applied = DialogueStateTracker(f"speedups-{uuid.uuid4().hex}", domain.slots), []
        for n, event in enumerate(events, 1):
            tracker.update(event)
            if n % 7 == 0:  # the next message: the tracker store gives the same events as new objects
                tracker = DialogueStateTracker.from_dict(tracker.sender_id, _dicts(tracker.events), domain.slots)
            # a loop's next round takes its last round out of the applied events: replayed from the start
            grown = _dicts(tracker.applied_events())[: len(applied)] == applied
            applied = _dicts(tracker.applied_events())
            for option in options:
                before, asked = len(made), asked + 1
                states = domain.states_for_tracker_history(tracker, *option)
                if grown:  # carried on: at most the last action's state and the state now
                    assert len(made) - before <= 2
                    carried_on += 1
                assert states == _as_rasa_does(domain, tracker, *option)
    assert carried_on > asked / 2  # most of the time (the stories here have many loops)
    assert state_speedups._original_states_for_tracker_history is not Domain.states_for_tracker_history


def test_a_history_that_changed_is_replayed_from_the_start(story_events) -> None:
    domain, stories = story_events
    sender = f"speedups-{uuid.uuid4().hex}"
    first = _session(*(event for story in stories[:5] for event in story))
    tracker = DialogueStateTracker.from_events(sender, first, domain.slots)
    domain.states_for_tracker_history(tracker)
    rewound = [*first, UserUtteranceReverted(), ActionReverted(), *stories[5]]
    again = [*first, Restarted(), *stories[6]]
    other = _session(*(event for story in stories[7:12] for event in story))  # another conversation, same id
    for events in (rewound, again, other, first):
        tracker = DialogueStateTracker.from_events(sender, events, domain.slots)
        for option in ((False, False, None), (False, True, _rule_only_data(domain))):
            assert domain.states_for_tracker_history(tracker, *option) == _as_rasa_does(domain, tracker, *option)


def test_states_edited_by_a_featurizer_do_not_change_the_next_answer(story_events) -> None:
    """Rasa's featurizers drop the user's text or intent from the states they are given,
    the last state's and every state's; the states and their lists are the caller's."""
    domain, stories = story_events
    said = [UserUttered("查电费", {"name": "query_bill", "confidence": 0.9}), ActionExecuted("utter_ok")]
    last = [ActionExecuted(ACTION_LISTEN_NAME), UserUttered("谢谢", {"name": "thank", "confidence": 0.9})]
    events = _session(*stories[0], *said, *stories[1], *said, *last)  # messages with their words, the last one too
    tracker = DialogueStateTracker.from_events(f"speedups-{uuid.uuid4().hex}", events, domain.slots)
    option = (False, True, _rule_only_data(domain))
    for use_text in (True, False, True):
        edited = [domain.states_for_tracker_history(tracker, *option) for _ in range(2)]
        MaxHistoryTrackerFeaturizer()._choose_last_user_input(edited, use_text_for_last_user_input=use_text)
        edited[1].pop()
        for state in edited[1]:
            state.clear()
        assert domain.states_for_tracker_history(tracker, *option) == _as_rasa_does(domain, tracker, *option)


def test_the_rule_policy_is_given_the_states_its_featurizer_gives(story_events, tmp_path, monkeypatch) -> None:
    """Conversations of the stories and rules with messages in words, growing event by event
    and read back now and then, asked with the text and then the intent of the last message
    (as the rule policy asks): Rasa's states with Rasa's featurizer's edits, every time."""
    domain, stories = story_events
    policy = _rule_policy(tmp_path)
    rule_only = _rule_only_data(domain)
    asked, by_rasa = 0, []
    original = state_speedups._original_rule_prediction_states

    def counted(*args: Any) -> list:
        by_rasa.append(args)
        return original(*args)

    monkeypatch.setattr(state_speedups, "_original_rule_prediction_states", counted)
    for start in range(0, len(stories), 12):
        said = [ActionExecuted(ACTION_LISTEN_NAME), UserUttered("查电费", {"name": "query_bill", "confidence": 0.9})]
        chunk = [event for story in stories[start : start + 12] for event in (*story, *said)]
        events = _read_back(_session(*chunk))
        tracker = DialogueStateTracker(f"speedups-{uuid.uuid4().hex}", domain.slots)
        for n, event in enumerate(events, 1):
            tracker.update(event)
            if n % 9 == 0:
                tracker = DialogueStateTracker.from_dict(tracker.sender_id, _dicts(tracker.events), domain.slots)
            for use_text in (True, False, True):
                expected = _as_rasa_does(domain, tracker, False, False, rule_only)
                MaxHistoryTrackerFeaturizer()._choose_last_user_input([expected], use_text_for_last_user_input=use_text)
                assert policy._prediction_states(tracker, domain, use_text, rule_only) == expected
                asked += 1
    assert asked > 1000 and by_rasa == []  # each one carried on
    assert any("text" in state.get("user", {}) for state in expected)  # words were there to be dropped
    assert RulePolicy._prediction_states is state_speedups._rule_prediction_states


def test_a_rasa_server_keeps_a_bounded_number_of_replays(story_events) -> None:
    domain, stories = story_events
    for n in range(state_speedups.REPLAYS_KEPT + 20):
        domain.states_for_tracker_history(
            DialogueStateTracker.from_events(f"many-{n}", _session(*stories[0]), domain.slots)
        )
    assert len(domain._replays) == state_speedups.REPLAYS_KEPT
    assert ("many-0", False, False, ()) not in domain._replays  # the least recently asked went first


def _count_states(domain: Domain) -> list[None]:
    """A list that grows by one for every state the domain makes."""
    made: list[None] = []
    active_state = domain.get_active_state

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(None)
        return active_state(*args, **kwargs)

    domain.get_active_state = counted
    return made


def _dicts(events: Iterable[Event]) -> list[dict]:
    return json.loads(json.dumps([event.as_dict() for event in events]))


def _read_back(events: list[Event]) -> list[Event]:
    return [Event.from_parameters(event) for event in _dicts(events)]


def test_the_last_turns_the_memoization_looks_back_at_leave_the_replay_alone(story_events) -> None:
    domain, stories = story_events
    events = _read_back(_session(*(event for story in stories[:6] for event in story)))
    tracker = DialogueStateTracker.from_events(f"speedups-{uuid.uuid4().hex}", events, domain.slots)
    option = (False, True, _rule_only_data(domain))
    domain.states_for_tracker_history(tracker, *option)
    last_turns = DialogueStateTracker.from_events(tracker.sender_id, events[-12:], domain.slots)
    assert domain.states_for_tracker_history(last_turns, *option) == _as_rasa_does(domain, last_turns, *option)
    made = _count_states(domain)
    states = domain.states_for_tracker_history(tracker, *option)
    assert len(made) == 1  # only the state now: carried on
    assert states == _as_rasa_does(domain, tracker, *option)


def test_a_conversation_read_back_from_the_tracker_store_is_carried_on(story_events) -> None:
    """What the NLU adds to a message's parse data reads back changed (tuples become lists):
    still the same conversation."""
    domain, stories = story_events
    said = UserUttered(
        "查电费", {"name": "query_bill", "confidence": 0.9}, parse_data={"text_tokens": [(0, 1), (1, 3)]}
    )
    tracker = DialogueStateTracker.from_events(f"speedups-{uuid.uuid4().hex}", _session(said), domain.slots)
    domain.states_for_tracker_history(tracker)
    read_back = DialogueStateTracker.from_dict(tracker.sender_id, _dicts(tracker.events), domain.slots)
    read_back.update(ActionExecuted("action_read_turn"))
    made = _count_states(domain)
    states = domain.states_for_tracker_history(read_back)
    assert len(made) == 2  # the state before action_read_turn, and the state now
    assert states == _as_rasa_does(domain, read_back)
    # the events read back now stand in the replay: the message's next calls find them as they are
    (replay,) = (replay for key, replay in domain._replays.items() if key[0] == tracker.sender_id)
    assert all(kept is event for kept, event in zip(replay.events, read_back.applied_events(), strict=True))
    before = len(made)
    assert domain.states_for_tracker_history(read_back) == states
    assert len(made) - before == 1  # the state now only


# --- requests to an endpoint on a kept session ------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """A JSON endpoint speaking HTTP/1.1 with keep-alive, noting each request's client port
    and each connection's end."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[int, str, dict[str, str]]]
    ended: list[int]

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.client_address[1], self.path, dict(self.headers)))
        status = 400 if b"refuse" in body else 200
        answer = json.dumps({"echo": json.loads(body)}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def finish(self) -> None:
        super().finish()
        self.ended.append(self.client_address[1])

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[EndpointConfig, type[_Recorder]]]:
    handler = type("Recorder", (_Recorder,), {"seen": [], "ended": []})
    with running(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as url:
        yield EndpointConfig(f"{url}/webhook", token="s3cret", headers={"X-Cluster": "loopback"}), handler


def test_requests_to_an_endpoint_share_a_connection_and_carry_rasa_s_headers(endpoint) -> None:
    config, server = endpoint

    async def talk() -> list[Any]:
        return [await config.request(json={"n": n}, method="post") for n in range(3)]

    assert EndpointConfig.session is action_calls._session
    assert asyncio.run(talk()) == [{"echo": {"n": n}} for n in range(3)]
    assert len({port for port, _path, _headers in server.seen}) == 1  # one connection for the three
    for _port, path, headers in server.seen:
        assert path == "/webhook?token=s3cret"
        assert headers["X-Cluster"] == "loopback" and headers["Content-Type"] == "application/json"


def test_an_endpoint_s_refusal_is_rasa_s_client_response_error(endpoint) -> None:
    config, _server = endpoint
    with pytest.raises(ClientResponseError) as refused:
        asyncio.run(config.request(json={"please": "refuse"}, method="post"))
    assert refused.value.status == 400 and json.loads(refused.value.text) == {"echo": {"please": "refuse"}}


def test_an_idle_connection_is_let_go_before_the_server_would(endpoint, monkeypatch) -> None:
    config, server = endpoint
    monkeypatch.setattr(action_calls, "KEEP_ALIVE_SECONDS", 0.3)

    async def talk() -> None:
        await config.request(json={"n": 1}, method="post")
        await asyncio.to_thread(wait_for, lambda: server.ended, "the idle connection closed by the client")
        await config.request(json={"n": 2}, method="post")

    asyncio.run(talk())
    first, second = (port for port, _path, _headers in server.seen)
    assert server.ended[0] == first and second != first


# --- the request: the conversation as Rasa writes it -----------------------------------


def _conversation(domain: Domain, stories: list[list[Event]]) -> DialogueStateTracker:
    """The stories one after another with a customer's message whose NLU data has tuples
    and Chinese, as a Rasa server's tracker holds it."""
    said = UserUttered(
        "帮我查下3201000001上个月电费", {"name": "query_bill", "confidence": 0.93},
        [{"entity": "account_number", "value": "3201000001", "start": 4, "end": 14}],
        parse_data={"text_tokens": [(0, 1), (1, 3)], "intent_ranking": [{"name": "query_bill", "confidence": 0.93}]},
        metadata={"page": "https://95598.example/帮助"},
    )  # fmt: skip
    events = _session(*(event for story in stories[:8] for event in story), said, ActionExecuted("action_read_turn"))
    events += [ActionExecuted("account_form"), ActiveLoop("account_form")]  # a loop, started by the message
    return DialogueStateTracker.from_events(f"speedups-{uuid.uuid4().hex}", events, domain.slots)


def _bodies(action: RemoteAction, tracker: DialogueStateTracker, domain: Domain) -> tuple[str, str]:
    """The request's text as the kept session writes it, and as Rasa writes it."""
    ours = action_calls._dumps(action._action_call_format(tracker, domain))
    rasa = json.dumps(action_calls._original_action_call_format(action, tracker, domain))
    return ours, rasa


@pytest.mark.parametrize("selective", [False, True])
def test_a_request_carries_the_conversation_as_rasa_writes_it(story_events, selective) -> None:
    domain, stories = story_events
    tracker = _conversation(domain, stories)
    endpoint = EndpointConfig("http://actions/webhook", enable_selective_domain=selective)
    action = RemoteAction("action_read_turn", endpoint)

    ours, rasa = _bodies(action, tracker, domain)
    assert ours == rasa
    assert ("domain" in json.loads(ours)) is not selective
    assert _bodies(action, tracker, domain)[0] == ours  # the events' texts kept: the same again

    tracker.update(SlotSet("frustration", 2.0))  # the next action's call: one more event
    sent = tracker.events[-3]
    sent.metadata = {**sent.metadata, "model_id": "swapped"}  # what Rasa's tracker may set again
    ours, rasa = _bodies(action, tracker, domain)
    assert ours == rasa and '"swapped"' in ours and '"frustration", "value": 2.0' in ours


def test_only_the_form_validations_are_sent_the_domain(story_events) -> None:
    """As the project's endpoints.yml and domain.yml configure it."""
    from rasa.core.utils import AvailableEndpoints

    endpoint = AvailableEndpoints.read_endpoints(str(PROJECT / "endpoints.yml")).action
    domain, stories = Domain.load(str(PROJECT / "domain.yml")), story_events[1]
    tracker = _conversation(domain, stories)

    def sent(name: str) -> dict:
        return json.loads(action_calls._dumps(RemoteAction(name, endpoint)._action_call_format(tracker, domain)))

    with_domain = {name for name in domain.user_actions if "domain" in sent(name)}
    assert with_domain == {"validate_account_form", "validate_ticket_form"}


def test_a_request_goes_out_as_rasa_writes_it_through_the_kept_session(story_events, endpoint) -> None:
    config, _server = endpoint
    domain, stories = story_events
    tracker = _conversation(domain, stories)
    action = RemoteAction("action_read_turn", config)

    echoed = asyncio.run(config.request(json=action._action_call_format(tracker, domain), method="post"))
    assert echoed == {"echo": json.loads(_bodies(action, tracker, domain)[1])}


# --- the applied events, worked out once for each state of the events -------------------


def test_the_applied_events_are_rasa_s_as_the_conversation_grows(story_events) -> None:
    domain, stories = story_events
    said = UserUttered("3201000001", {"name": "inform", "confidence": 0.9})
    form = [ActionExecuted("account_form"), ActiveLoop("account_form"), ActionExecuted(ACTION_LISTEN_NAME), said]
    form += [ActionExecuted("account_form"), ActionExecuted(ACTION_LISTEN_NAME), said]  # the loop's next round
    form += [ActionExecutionRejected("account_form"), ActionExecuted("utter_ok"), ActionExecuted("account_form")]
    other_loop = [ActionExecuted("ticket_form"), ActiveLoop("ticket_form"), ActionExecuted(ACTION_LISTEN_NAME), said]
    events = _session(*stories[0], UserUtteranceReverted(), ActionReverted(), *stories[1], Restarted(), *stories[2])
    events += [*form, ActiveLoop(None), *stories[3], *other_loop, ActionExecuted("ticket_form"), *form]
    events += [event for story in stories[4:10] for event in story]
    tracker = DialogueStateTracker(f"speedups-{uuid.uuid4().hex}", domain.slots)
    for event in events:
        tracker.update(event)
        expected = tracker_speedups._original_applied_events(tracker)
        first = tracker.applied_events()
        assert first == expected and first is not expected
        first.append(SlotSet("frustration", 3.0))  # a caller's own list: the next one is not changed
        assert tracker.applied_events() == expected


# --- the rule policy's rules, parsed once ------------------------------------------------


def test_a_rule_key_is_parsed_once_into_what_rasa_parses() -> None:
    key = json.dumps([{"prev_action": {"action_name": "action_listen"}, "user": {"intent": "request_human"}}])
    assert RulePolicy._rule_key_to_state is policies._rule_key_to_state
    parsed = RulePolicy._rule_key_to_state(key)
    assert parsed == json.loads(key) and RulePolicy._rule_key_to_state(key) is parsed


def _rule_policy(tmp_path: Path) -> RulePolicy:
    return RulePolicy(
        RulePolicy.get_default_config(), LocalModelStorage(tmp_path), Resource("rules"),
        ExecutionContext(GraphSchema({}), "speedups"),
    )  # fmt: skip


def test_the_rules_that_apply_are_rasa_s(story_events, tmp_path) -> None:
    """Rules of one to four states cut from the stories, matched against the conversations
    the stories make as they grow: the same rules apply as when Rasa walks back through
    the whole conversation."""
    domain, stories = story_events
    policy, matched = _rule_policy(tmp_path), 0
    conversations = [
        state_speedups._original_states_for_tracker_history(
            domain, DialogueStateTracker.from_events("rules", _session(*story), domain.slots), False, True,
            _rule_only_data(domain),
        )
        for story in stories
    ]  # fmt: skip
    rules = {
        json.dumps(states[end - length : end], sort_keys=True): "utter_ok"
        for states in conversations
        for end in range(1, len(states) + 1)
        for length in range(1, 5)
        if end - length >= 0
    }
    for states in conversations:
        for end in range(1, len(states) + 1):
            found = policies._get_possible_keys(policy, rules, states[:end])
            assert found == policies._original_get_possible_keys(policy, rules, states[:end])
            matched += bool(found)
    assert matched > len(conversations)  # rules did apply, not only none


@pytest.mark.parametrize("max_history", [1, 4, 8])
def test_the_memoization_s_featurizer_gives_rasa_s_last_states(story_events, max_history) -> None:
    """With and without `action_unlikely_intent` among the last turns, which Rasa leaves
    out before it keeps the last `max_history` states when asked to."""
    domain, stories = story_events
    said = [ActionExecuted(ACTION_LISTEN_NAME), UserUttered("查电费", {"name": "query_bill", "confidence": 0.9})]
    unlikely = [*said, ActionExecuted(ACTION_UNLIKELY_INTENT_NAME), ActionExecuted("utter_ok"), *said]
    featurizer = MaxHistoryTrackerFeaturizer(max_history=max_history)
    for story, last in itertools.product(stories[:12], (said, unlikely, [*unlikely, *unlikely])):
        tracker = DialogueStateTracker.from_events(f"memo-{uuid.uuid4().hex}", _session(*story, *last), domain.slots)
        for use_text, ignore_rule_only, unlikely in [(False, True, True), (True, True, True), (False, False, False)]:
            options = (use_text, ignore_rule_only, _rule_only_data(domain), unlikely)
            ours = featurizer.prediction_states([tracker], domain, *options)
            rasa = state_speedups._original_max_history_prediction_states(featurizer, [tracker], domain, *options)
            assert ours == rasa and len(ours[0]) <= max_history


# --- a tracker copied without replaying its events --------------------------------------


def _tracker_state(tracker: DialogueStateTracker) -> dict[str, Any]:
    """Everything a tracker holds, slots by value and whether set, the events by identity."""
    kept_apart = ("events", "slots", "_applied_events_kept")
    state = {key: value for key, value in vars(tracker).items() if key not in kept_apart}
    state["slots"] = {name: (type(slot), slot.value, slot.has_been_set) for name, slot in tracker.slots.items()}
    state["events"] = [id(event) for event in tracker.events]
    return state


def test_a_copy_holds_what_rasa_s_replayed_copy_holds(story_events) -> None:
    domain, stories = story_events
    said = UserUttered("查电费", {"name": "query_bill", "confidence": 0.9})
    events = _session(*stories[0], said, ActiveLoop("account_form"), SlotSet("requested_slot", "account_number"))
    events += [LoopInterrupted(True), ConversationPaused(), ConversationResumed(), FollowupAction("utter_ok")]
    events += [UserUtteranceReverted(), *stories[1], ActionReverted(), Restarted(), *stories[2], *stories[3]]
    tracker = DialogueStateTracker(f"speedups-{uuid.uuid4().hex}", domain.slots)
    tracker.model_id = "model-1"  # as the processor's tracker: not copied by Rasa either
    for event in events:
        tracker.update(event)
        ours, rasa = tracker.copy(), tracker_speedups._original_copy(tracker)
        assert _tracker_state(ours) == _tracker_state(rasa)


def test_a_copy_changes_apart_from_its_original(story_events) -> None:
    domain, stories = story_events
    events = _session(*stories[0], ActiveLoop("account_form"), SlotSet("request", "query_bill"))
    tracker = DialogueStateTracker.from_events(f"speedups-{uuid.uuid4().hex}", events, domain.slots)
    before = _tracker_state(tracker)

    copied = tracker.copy()
    for event in (ActionExecuted("utter_ok"), SlotSet("request", "query_outage"), LoopInterrupted(True)):
        copied.update(event)
    assert _tracker_state(tracker) == before
    assert copied.get_slot("request") == "query_outage" and tracker.get_slot("request") == "query_bill"
    assert copied.active_loop.is_interrupted and not tracker.active_loop.is_interrupted


# --- a message's features combined for DIET ----------------------------------------------


def _features(kind: str, seed: int) -> list[Features]:
    numbers = np.random.default_rng(seed)
    made = []
    for origin in ("RegexFeaturizer", "CountVectorsFeaturizer", "CountVectorsFeaturizer2"):
        values = numbers.integers(0, 2, size=(5, 7)).astype(np.float32)
        matrix = scipy.sparse.coo_matrix(values) if kind == "sparse" else values
        made.append(Features(matrix, "sequence", "text", origin))
    return made


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_a_message_s_features_combine_as_rasa_combines_them(kind) -> None:
    origins = ["RegexFeaturizer", "CountVectorsFeaturizer", "CountVectorsFeaturizer2"]
    for count in (1, 2, 3):
        parts, again = _features(kind, count)[:count], _features(kind, count)[:count]
        ours = Message._combine_features(parts, origins)
        rasa = nlu_speedups._original_combine_features(again, origins)
        as_array = (lambda m: m.toarray()) if kind == "sparse" else np.asarray
        assert np.array_equal(as_array(ours.features), as_array(rasa.features))
        assert (ours.type, ours.attribute, ours.origin) == (rasa.type, rasa.attribute, rasa.origin)
        assert ours.fingerprint() == rasa.fingerprint()
        ours.combine_with_features(_features(kind, 9)[0])  # the combination is its own: the parts stay as they were
        for part, unchanged in zip(parts, _features(kind, count)[:count], strict=True):
            assert np.array_equal(as_array(part.features), as_array(unchanged.features))
            assert part.origin == unchanged.origin and part.features is not ours.features


# --- the model's graph, built once for each set of targets ------------------------------


class _Step(GraphComponent):
    """A graph component that writes down the inputs it got."""

    @classmethod
    def create(cls, config: dict, model_storage: Any, resource: Any, execution_context: Any) -> _Step:
        return cls(config["name"])

    def __init__(self, name: str) -> None:
        self.name = name

    def step(self, **inputs: Any) -> str:
        return f"{self.name}({','.join(f'{key}={value}' for key, value in sorted(inputs.items()))})"


def _graph() -> GraphSchema:
    def node(name: str, **needs: str) -> SchemaNode:
        return SchemaNode(needs=needs, uses=_Step, constructor_name="create", fn="step", config={"name": name})

    return GraphSchema({
        "tokens": node("tokens", text="__message__"), "features": node("features", tokens="tokens"),
        "intent": node("intent", features="features", tokens="tokens"), "policy": node("policy", intent="intent"),
        "other": node("other", text="__message__"),
    })  # fmt: skip


def test_a_graph_run_gives_what_rasa_s_run_gives_and_its_graph_is_built_once(tmp_path, monkeypatch) -> None:
    runner = DaskGraphRunner(_graph(), LocalModelStorage(tmp_path), ExecutionContext(_graph(), "speedups"), hooks=[])
    target_sets = (["intent"], ["policy", "other"], ["tokens"])
    asked = [(text, targets) for text in ("查电费", "停电了") for targets in target_sets]
    expected = [graph_speedups._original_run(runner, {"__message__": text}, targets) for text, targets in asked]
    built: list[list[str]] = []
    minimal = GraphSchema.minimal_graph_schema

    def counted(schema: GraphSchema, targets: list[str]) -> GraphSchema:
        built.append(targets)
        return minimal(schema, targets)

    monkeypatch.setattr(GraphSchema, "minimal_graph_schema", counted)

    assert [runner.run({"__message__": text}, targets) for text, targets in asked] == expected
    assert expected[0]["intent"] == "intent(features=features(tokens=tokens(text=查电费)),tokens=tokens(text=查电费))"
    assert built == [["intent"], ["policy", "other"], ["tokens"]]  # once each, not once a run


def _debug_line_copies(module: types.ModuleType) -> tuple[int, list[str]]:
    """How many times `module` deep-copies a value for a structlog debug line, and each
    other use it makes of the `copy` module (line: source)."""
    source = inspect.getsource(module)
    tree = ast.parse(source)
    for_debug: set[int] = set()
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and ast.unparse(call.func) == "structlogger.debug":
            for keyword in call.keywords:
                if isinstance(keyword.value, ast.Call) and ast.unparse(keyword.value.func) == "copy.deepcopy":
                    for_debug.add(id(keyword.value.func.value))
    other = [
        f"{node.lineno}: {ast.get_source_segment(source, node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id == "copy" and id(node) not in for_debug
    ]
    return len(for_debug), other


@pytest.mark.parametrize("module", debug_lines.MODULES, ids=lambda module: module.__name__)
def test_the_modules_copy_only_for_debug_lines(module: types.ModuleType) -> None:
    """What the speed-up relies on, read from Rasa's own source: in these modules a deep copy
    is only ever an argument of a debug line (a Rasa upgrade that copies for another
    reason fails here)."""
    copies, other = _debug_line_copies(module)
    assert copies > 0
    assert other == []


def test_the_rule_policy_formats_its_states_only_for_its_debug_line() -> None:
    tree = ast.parse(inspect.getsource(rule_policy))
    formatted = [
        node for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and "format_tracker_states" in ast.unparse(node.value)
    ]  # fmt: skip
    assert [ast.unparse(node) for node in formatted] == ["current_states = self.format_tracker_states(states)"]
    read = [node for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id == "current_states"]
    debug_lines_read = [
        keyword.value for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "structlogger.debug"
        for keyword in node.keywords if "current_states" in ast.unparse(keyword.value)
    ]  # fmt: skip
    assert [ast.unparse(value) for value in debug_lines_read] == ["copy.deepcopy(current_states)"]
    assert len(read) == 2  # assigned once, read once: by the debug line
    states = [{"prev_action": {"action_name": "action_listen"}, "user": {"intent": "greet"}}]
    assert RulePolicy.format_tracker_states(states) == ""  # debug lines are dropped here (tests/conftest.py)
    with _structlog_at(logging.DEBUG):
        assert RulePolicy.format_tracker_states(states) == debug_lines._original_format_tracker_states(states)
        assert "greet" in RulePolicy.format_tracker_states(states)


@contextlib.contextmanager
def _structlog_at(level: int) -> Iterator[None]:
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))
    try:
        yield
    finally:
        structlog.configure(**saved)


def test_a_debug_line_gets_its_copy_only_when_debug_lines_are_written() -> None:
    events = [SlotSet("phone", "13800000001"), UserUttered("查电费", {"name": "query_bill"}, [{"entity": "a"}])]
    assert processor.copy.deepcopy(events) is events  # debug lines are dropped here (tests/conftest.py)
    with _structlog_at(logging.DEBUG):
        copied = processor.copy.deepcopy(events)
    assert copied == events and copied is not events
    assert copied[1].entities is not events[1].entities


def test_rasa_run_drops_debug_lines_unless_asked_for_them() -> None:
    """Configured as `rasa run` configures structlog: the level of LOG_LEVEL (INFO unless
    set), DEBUG with --debug."""
    script = (
        "import logging; import bot.nlu; from rasa.utils.log_utils import configure_structlog;"
        "from bot.rasa_speedups.debug_lines import debug_written;"
        "configure_structlog(None); print(debug_written());"
        "configure_structlog(logging.DEBUG); print(debug_written())"
    )
    env = {key: value for key, value in os.environ.items() if key != "LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT, env=env, capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    assert done.stdout.split()[-2:] == ["False", "True"]

"""The Rasa server's per-turn speed-ups (issue 8) change nothing Rasa decides: the action
server's answers are checked against the same schema, events read back as the same
classes, and the FAQ selector answers exactly the messages the classifier calls `faq`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME, RULE_ONLY_LOOPS, RULE_ONLY_SLOTS
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActionReverted,
    Event,
    Restarted,
    SessionStarted,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.generator import TrainingDataGenerator
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.importers.importer import TrainingDataImporter
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.utils.common import all_subclasses
from rasa.utils.endpoints import ClientResponseError, EndpointConfig

import bot.nlu  # noqa: F401  (what the Rasa server imports with the model)
from bot import rasa_speedups
from bot.nlu.selector import RetrievalResponseSelector
from tests.e2e.servers import running
from tests.event_stream import wait_for

ACTION = RemoteAction("action_read_turn", None)
PROJECT = Path(__file__).resolve().parents[1]


def test_the_rasa_server_runs_with_the_speed_ups() -> None:
    assert RemoteAction._validate_action_result is rasa_speedups._validate_action_result
    assert Event.resolve_by_type is rasa_speedups._resolve_by_type
    assert Domain.states_for_tracker_history is rasa_speedups._states_for_tracker_history


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


# --- the conversation's states, carried on from one prediction to the next ----------------


@pytest.fixture(scope="module")
def story_events() -> tuple[Domain, list[list[Event]]]:
    """The domain and the events of every story and rule of the project, as training sees them."""
    importer = TrainingDataImporter.load_from_dict(
        domain_path=str(PROJECT / "domain.yml"), training_data_paths=[str(PROJECT / "data")]
    )
    domain = importer.get_domain()
    trackers = TrainingDataGenerator(importer.get_stories(), domain, augmentation_factor=0).generate()
    return domain, [list(tracker.events) for tracker in trackers]


def _session(*events: Event) -> list[Event]:
    """A conversation from its session's start, as a Rasa server's tracker store keeps it."""
    return [ActionExecuted(ACTION_SESSION_START_NAME), SessionStarted(), ActionExecuted(ACTION_LISTEN_NAME), *events]


def _as_rasa_does(domain: Domain, tracker: DialogueStateTracker, *options: Any) -> list:
    return rasa_speedups._original_states_for_tracker_history(domain, tracker, *options)


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
    assert rasa_speedups._original_states_for_tracker_history is not Domain.states_for_tracker_history


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
    domain, stories = story_events
    tracker = DialogueStateTracker.from_events(
        f"speedups-{uuid.uuid4().hex}", _session(*stories[0], *stories[1]), domain.slots
    )
    option = (False, True, _rule_only_data(domain))
    for state in domain.states_for_tracker_history(tracker, *option):  # as _choose_last_user_input does, and worse
        for sub_state in state.values():
            sub_state.clear()
        state.clear()
    assert domain.states_for_tracker_history(tracker, *option) == _as_rasa_does(domain, tracker, *option)


def test_a_rasa_server_keeps_a_bounded_number_of_replays(story_events) -> None:
    domain, stories = story_events
    for n in range(rasa_speedups.REPLAYS_KEPT + 20):
        domain.states_for_tracker_history(
            DialogueStateTracker.from_events(f"many-{n}", _session(*stories[0]), domain.slots)
        )
    assert len(domain._replays) == rasa_speedups.REPLAYS_KEPT
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

    assert EndpointConfig.session is rasa_speedups._session
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
    monkeypatch.setattr(rasa_speedups, "KEEP_ALIVE_SECONDS", 0.3)

    async def talk() -> None:
        await config.request(json={"n": 1}, method="post")
        await asyncio.to_thread(wait_for, lambda: server.ended, "the idle connection closed by the client")
        await config.request(json={"n": 2}, method="post")

    asyncio.run(talk())
    first, second = (port for port, _path, _headers in server.seen)
    assert server.ended[0] == first and second != first

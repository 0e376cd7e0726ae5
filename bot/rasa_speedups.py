"""Per-turn costs of Rasa Open Source 3.6 itself, removed in the Rasa server (issue 8).

Imported by `bot.nlu`, which every Rasa server of this project loads with the model (the
pipeline names its components), so the Rasa server always runs with it; nothing here
changes what Rasa decides or says. bench/RESULTS.md, "Where the time goes (issue 8)",
has the measurements.

- The action server's answer is checked against Rasa's response schema after every
  custom action call (`RemoteAction._validate_action_result`) with `jsonschema.validate`,
  which first checks the schema itself against the JSON Schema 2020-12 meta-schema: about
  25-50 ms of CPU per action call with jsonschema 4.17, half the Rasa server's time under
  load (RasaHQ/rasa#11717; the bare `rasa init` bot has no custom actions and never pays
  it). The schema is a constant, so it is checked once here, and each answer is
  validated with the compiled validator: same schema, same errors, same message.
- Every event read back (the tracker store rebuilds the whole conversation from its
  events on each message, and each action's answer is a list of events) looks its class
  up with `Event.resolve_by_type`, which walks Rasa's whole class tree of events, with an
  `inspect.isabstract` check for each, every time: about 40 µs an event, 10-15 ms a
  message on a conversation of 30 turns (~360 events). Event classes are all defined at
  import and their type names are unique, so the first answer for a name is kept.
- Each prediction turns the whole conversation into states (`Domain.states_for_tracker_history`,
  through `tracker.past_states`): every event replayed into a fresh tracker, a state made
  at every action, for each policy and each of the ~3 predictions a message, about 7.6 ms
  a message at 30 turns. The states of the turns before an event depend only on the
  events before it, so a conversation's replay (from its session's start) is kept (the
  last 512 conversations) and
  carried on from where it stopped when the next call's events begin with the same events
  as last time; any other history (a revert, a new session, another conversation under
  the same id) is replayed from the start, as Rasa does. Callers get their own copies of
  the states, which Rasa's featurizers edit in place.
- Every request to an endpoint (the action server's 2-3 calls a message) opens a new
  aiohttp session and a new connection, and closes both (`async with endpoint.session()`).
  Each endpoint now keeps one session per event loop, lent to each request and left
  open, with Rasa's headers, auth and timeout, whose connections stay
  open for KEEP_ALIVE_SECONDS between requests: less than Sanic's 5 s (the action server's
  default), so a connection is never reused just as the server closes it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import rasa
from jsonschema import exceptions, validators
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.constants import ACTION_SESSION_START_NAME, PREVIOUS_ACTION
from rasa.shared.core.domain import Domain, State, SubState
from rasa.shared.core.events import ActionExecuted, Event
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT, EndpointConfig

log = logging.getLogger(__name__)


def _compiled_action_response_validator() -> Any:
    schema = RemoteAction.action_response_format_spec()
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)  # what jsonschema.validate repeats on every call
    return validator_class(schema)


_ACTION_RESPONSE_VALIDATOR = _compiled_action_response_validator()


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    """RemoteAction._validate_action_result of Rasa 3.6 with the schema checked once."""
    error = exceptions.best_match(_ACTION_RESPONSE_VALIDATOR.iter_errors(result))
    if error is None:
        return True
    error.message += (
        f". Failed to validate Action server response from API, "
        f"make sure your response from the Action endpoint is valid. "
        f"For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


_resolve_event_class = Event.resolve_by_type
_EVENT_CLASSES: dict[str, type[Event]] = {}


def _resolve_by_type(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
    """Event.resolve_by_type of Rasa 3.6, remembering the class found for each name."""
    found = _EVENT_CLASSES.get(type_name)
    if found is None:
        found = _resolve_event_class(type_name, default)
        if found is not None and found.type_name == type_name:  # not the default, not "topic"
            _EVENT_CLASSES[type_name] = found
    return found


REPLAYS_KEPT = 512  # conversations whose replay a Rasa server keeps, the least recently used dropped
_original_states_for_tracker_history = Domain.states_for_tracker_history


@dataclass
class _Replay:
    """One conversation replayed as far as Rasa's loop in `states_for_tracker_history` got:
    the events applied, the tracker after them, the states of the actions among them, and
    the loop's two variables."""

    tracker: DialogueStateTracker
    events: list[Event] = field(default_factory=list)
    states: list[State] = field(default_factory=list)
    last_ml_action: SubState | None = None
    turn_was_hidden: bool = False


def _states_for_tracker_history(
    self: Domain,
    tracker: DialogueStateTracker,
    omit_unset_slots: bool = False,
    ignore_rule_only_turns: bool = False,
    rule_only_data: dict[str, Any] | None = None,
) -> list[State]:
    """Domain.states_for_tracker_history of Rasa 3.6, carried on from the last call's replay."""
    if type(tracker) is not DialogueStateTracker or not _whole_session(tracker):
        return _original_states_for_tracker_history(
            self, tracker, omit_unset_slots, ignore_rule_only_turns, rule_only_data
        )
    replays: OrderedDict[tuple, _Replay] = self.__dict__.setdefault("_replays", OrderedDict())  # dies with the model
    key = (tracker.sender_id, omit_unset_slots, ignore_rule_only_turns, _frozen(rule_only_data))
    events = tracker.applied_events()
    replay = replays.pop(key, None)
    if replay is None or not _begins_with(events, replay.events):
        replay = _Replay(tracker.init_copy())
    replays[key] = replay
    if len(replays) > REPLAYS_KEPT:
        replays.popitem(last=False)
    options = (omit_unset_slots, ignore_rule_only_turns, rule_only_data)
    for event in events[len(replay.events) :]:
        if isinstance(event, ActionExecuted):
            replay.last_ml_action, replay.turn_was_hidden = _add_state(
                self, replay.states, replay.tracker, event.hide_rule_turn, replay.last_ml_action,
                replay.turn_was_hidden, *options,
            )  # fmt: skip
        replay.tracker.update(event)
        replay.events.append(event)
    # the state after the last event, as Rasa's loop ends; not kept: the next event decides the turn
    kept = len(replay.states)
    _add_state(self, replay.states, replay.tracker, False, replay.last_ml_action, replay.turn_was_hidden, *options)
    states = _copied(replay.states)
    del replay.states[kept:]
    return states


def _whole_session(tracker: DialogueStateTracker) -> bool:
    """A conversation as the tracker store keeps it, from its session's start: not a
    training tracker (they keep states of their own) nor a conversation's last turns (the
    MemoizationPolicy looks back at those, under the same id)."""
    first = tracker.events[0] if tracker.events else None
    return isinstance(first, ActionExecuted) and first.action_name == ACTION_SESSION_START_NAME


def _add_state(
    domain: Domain,
    states: list[State],
    tracker: DialogueStateTracker,
    hide_rule_turn: bool,
    last_ml_action: SubState | None,
    turn_was_hidden: bool,
    omit_unset_slots: bool,
    ignore_rule_only_turns: bool,
    rule_only_data: dict[str, Any] | None,
) -> tuple[SubState | None, bool]:
    """One round of the loop in Rasa 3.6's `states_for_tracker_history`, line for line:
    the state of `tracker` added to `states` unless the turn is hidden; the loop's two
    variables returned."""
    if ignore_rule_only_turns:
        if not turn_was_hidden:
            last_ml_action = domain._get_prev_action_sub_state(tracker)
        if not tracker.followup_action and tracker.latest_action_name != tracker.active_loop_name:
            turn_was_hidden = hide_rule_turn
        if turn_was_hidden:
            return last_ml_action, turn_was_hidden
    state = domain.get_active_state(tracker, omit_unset_slots=omit_unset_slots)
    if ignore_rule_only_turns:
        domain._remove_rule_only_features(state, rule_only_data)
        if states:
            domain._substitute_rule_only_user_input(state, states[-1])
        if last_ml_action:
            state[PREVIOUS_ACTION] = last_ml_action
    states.append(domain._clean_state(state))
    return last_ml_action, turn_was_hidden


def _begins_with(events: list[Event], replayed: list[Event]) -> bool:
    """Whether `events` start with the events replayed: the same objects within a message,
    equal ones (every attribute, the timestamp too) when the tracker was read again."""
    return len(events) >= len(replayed) and all(
        new is old or _same_event(new, old) for new, old in zip(events, replayed, strict=False)
    )


def _same_event(new: Event, old: Event) -> bool:
    """Equal in every attribute but a message's `parse_data`, which no state reads (the
    event keeps the intent, entities and text apart) and which reads back from the tracker
    store changed (its `text_tokens` tuples become lists)."""
    if new.__class__ is not old.__class__:
        return False
    if "parse_data" not in new.__dict__:
        return new.__dict__ == old.__dict__
    return {**new.__dict__, "parse_data": None} == {**old.__dict__, "parse_data": None}


def _frozen(rule_only_data: dict[str, Any] | None) -> tuple:
    return tuple(sorted((name, tuple(values)) for name, values in (rule_only_data or {}).items()))


def _copied(states: list[State]) -> list[State]:
    """The states and their sub-states copied, a sub-state shared by several states still
    shared (Rasa's loop shares the user's between turns, and its featurizers edit them)."""
    copies: dict[int, SubState] = {}
    result = []
    for state in states:
        copy: State = {}
        for kind, sub_state in state.items():
            if id(sub_state) not in copies:
                copies[id(sub_state)] = dict(sub_state)
            copy[kind] = copies[id(sub_state)]
        result.append(copy)
    return result


KEEP_ALIVE_SECONDS = 2.0
_KEPT: dict[aiohttp.ClientSession, asyncio.AbstractEventLoop] = {}  # every kept session, closed at exit


class _Borrowed:
    """A kept session lent to one `async with` (as Rasa uses `EndpointConfig.session()`),
    left open at its end."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def __aenter__(self) -> aiohttp.ClientSession:
        return self.session

    async def __aexit__(self, *_exc: object) -> None:
        return None


def _session(self: EndpointConfig) -> _Borrowed:
    """EndpointConfig.session of Rasa 3.6 (its headers, auth and timeout), kept for the
    endpoint on the running event loop, made on first use."""
    loop = asyncio.get_running_loop()
    kept = self.__dict__.get("_kept_session")
    if kept is not None and _KEPT.get(kept) is loop and not kept.closed:
        return _Borrowed(kept)
    if kept is not None:
        _let_go(kept)  # made on an earlier loop (tests run several)
    auth = aiohttp.BasicAuth(self.basic_auth["username"], self.basic_auth["password"]) if self.basic_auth else None
    session = aiohttp.ClientSession(
        headers=self.headers,
        auth=auth,
        timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
        connector=aiohttp.TCPConnector(keepalive_timeout=KEEP_ALIVE_SECONDS),
    )
    self.__dict__["_kept_session"], _KEPT[session] = session, loop
    return _Borrowed(session)


def _let_go(session: aiohttp.ClientSession) -> None:
    """Close a kept session, from outside its event loop; its loop may be closed already
    (a Rasa server's, once Sanic stopped), and then its connections are simply dropped
    (aiohttp's `_close` marks the connector closed before it closes the transports, which
    a closed loop refuses), so that it does not log "Unclosed client session" at exit."""
    loop = _KEPT.pop(session, None)
    if session.closed:
        return
    if loop is not None and not loop.is_closed() and not loop.is_running():
        loop.run_until_complete(session.close())
        return
    with contextlib.suppress(RuntimeError):
        session.connector._close()


@atexit.register
def _let_all_go() -> None:
    for session in list(_KEPT):
        _let_go(session)


_installed = False


def install() -> None:
    """Put the speed-ups in place, once (what was wrapped around them since, such as
    bench/turn_costs.py's timers, stays); only on Rasa 3.6, whose methods they replace."""
    global _installed
    if _installed:
        return
    _installed = True
    if not rasa.__version__.startswith("3.6."):
        log.warning("Rasa %s: speed-ups written for 3.6 left out (bot/rasa_speedups.py)", rasa.__version__)
        return
    RemoteAction._validate_action_result = _validate_action_result
    Event.resolve_by_type = staticmethod(_resolve_by_type)
    Domain.states_for_tracker_history = _states_for_tracker_history
    EndpointConfig.session = _session

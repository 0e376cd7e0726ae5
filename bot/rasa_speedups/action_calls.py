"""Calls to the action server: the request, its connection and the check of the answer.

- The request carries the whole conversation as JSON, for each of the 2-3 calls of a
  message (`RemoteAction._action_call_format`: every event turned into a dict, then the
  whole written out): a tenth of the Rasa server's CPU on conversations of 30 turns. Each
  event's JSON is written once here, kept while the event lives (the same event objects
  serve every call of a message, and with the embedded default's tracker store every
  later message too), and the request's text is put together from them: the same bytes
  as Rasa writes. The domain goes only to the actions that ask for it when the endpoint
  has `enable_selective_domain` (endpoints.yml, domain.yml).
- Every request to an endpoint opens a new aiohttp session and a new connection, and
  closes both (`async with endpoint.session()`). Each endpoint now keeps one session per
  event loop, lent to each request and left open, with Rasa's headers, auth and timeout,
  whose connections stay open for KEEP_ALIVE_SECONDS between requests: less than Sanic's
  5 s (the action server's default), so a connection is never reused just as the server
  closes it.
- The answer is checked against Rasa's response schema (`RemoteAction._validate_action_result`)
  with `jsonschema.validate`, which first checks the schema itself against its
  meta-schema: 25-50 ms of CPU per call with jsonschema 4.17 (RasaHQ/rasa#11717). The
  schema is checked once here. Each event of the answer must match exactly one of the 23
  kinds of event of a `oneOf`; jsonschema tries all 23 and builds an error for each of the
  22 that fail (6 % of the Rasa server's CPU). Every kind fixes the event's name
  (`"event": {"const": ...}`), so only the kind named can match: an event is checked
  against that kind alone, and any answer that does not pass so is checked by the whole
  schema, which gives Rasa's own error.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import json
import uuid
import weakref
from collections.abc import Iterable
from typing import Any

import aiohttp
import rasa
from jsonschema import exceptions, validators
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.constants import ACTIVE_LOOP, FOLLOWUP_ACTION
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT, EndpointConfig

# --- the answer's check ------------------------------------------------------------------


def _validator(schema: dict[str, Any]) -> Any:
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)  # what jsonschema.validate repeats on every call
    return validator_class(schema)


_RESPONSE_SCHEMA = RemoteAction.action_response_format_spec()
_ACTION_RESPONSE_VALIDATOR = _validator(_RESPONSE_SCHEMA)


def _validators_by_event_name(event_schema: dict[str, Any]) -> dict[str, Any]:
    """For each kind of event of the `oneOf`, a validator of the event schema with that
    kind alone."""
    base = {key: value for key, value in event_schema.items() if key != "oneOf"}
    kinds = event_schema["oneOf"]
    return {kind["properties"]["event"]["const"]: _validator({**base, "allOf": [kind]}) for kind in kinds}


_EVENT_VALIDATORS = _validators_by_event_name(_RESPONSE_SCHEMA["properties"]["events"]["items"])
_RESPONSES_VALIDATOR = _validator(_RESPONSE_SCHEMA["properties"]["responses"])


def _plainly_valid(result: Any) -> bool:
    """Whether the answer passes, each event checked against the one kind it names."""
    if not isinstance(result, dict):
        return False
    events = result.get("events", [])
    if not isinstance(events, list):
        return False
    for event in events:
        name = event.get("event") if isinstance(event, dict) else None
        validator = _EVENT_VALIDATORS.get(name) if isinstance(name, str) else None
        if validator is None or not validator.is_valid(event):
            return False
    return "responses" not in result or _RESPONSES_VALIDATOR.is_valid(result["responses"])


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    """RemoteAction._validate_action_result of Rasa 3.6: the same schema, the same errors."""
    if _plainly_valid(result):
        return True
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


# --- the request -------------------------------------------------------------------------

EVENTS_KEPT = 200_000  # event texts kept at most; past it they are written again as asked
_EVENT_JSON: dict[int, tuple[weakref.ref, dict[str, Any], float, str]] = {}  # id -> event, metadata, time, JSON


class _EventsJSON:
    """A conversation's events in a request, written out by the kept sessions' encoder."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.events = list(events)

    def json(self) -> str:
        return "[" + ", ".join(_event_json(event) for event in self.events) + "]"


def _event_json(event: Event) -> str:
    """`json.dumps(event.as_dict())`, written once for each event (an event's metadata and
    time are the only attributes Rasa sets again after making it: then it is written anew)."""
    key = id(event)
    kept = _EVENT_JSON.get(key)
    if kept is not None and kept[0]() is event and kept[1] is event.metadata and kept[2] == event.timestamp:
        return kept[3]
    text = json.dumps(event.as_dict())
    if len(_EVENT_JSON) >= EVENTS_KEPT:
        _EVENT_JSON.clear()
    alive = weakref.ref(event, lambda ref, key=key: _forget(key, ref))
    _EVENT_JSON[key] = (alive, event.metadata, event.timestamp, text)
    return text


def _forget(key: int, ref: weakref.ref) -> None:
    kept = _EVENT_JSON.get(key)
    if kept is not None and kept[0] is ref:
        del _EVENT_JSON[key]


_original_action_call_format = RemoteAction._action_call_format


def _action_call_format(self: RemoteAction, tracker: DialogueStateTracker, domain: Domain) -> dict[str, Any]:
    """RemoteAction._action_call_format of Rasa 3.6, the events left for the encoder."""
    result = {
        "next_action": self._name,
        "sender_id": tracker.sender_id,
        "tracker": _tracker_state(tracker),
        "version": rasa.__version__,
    }
    if not self._is_selective_domain_enabled() or domain.does_custom_action_explicitly_need_domain(self.name()):
        result["domain"] = domain.as_dict()
    return result


def _tracker_state(tracker: DialogueStateTracker) -> dict[str, Any]:
    """`tracker.current_state(EventVerbosity.ALL)` of Rasa 3.6 as the request writes it: the
    events left for the encoder, and the active loop not deep-copied first (`dataclasses.asdict`
    copies the whole message that started the loop), since the request is written out at once."""
    loop = tracker.active_loop
    return {
        "sender_id": tracker.sender_id,
        "slots": tracker.current_slot_values(),
        "latest_message": tracker._latest_message_data(),
        "latest_event_time": tracker.events[-1].timestamp if tracker.events else None,
        FOLLOWUP_ACTION: tracker.followup_action,
        "paused": tracker.is_paused(),
        "events": _EventsJSON(tracker.events),
        "latest_input_channel": tracker.get_latest_input_channel(),
        ACTIVE_LOOP: {field.name: getattr(loop, field.name) for field in dataclasses.fields(loop)} if loop else {},
        "latest_action": tracker.latest_action,
        "latest_action_name": tracker.latest_action_name,
    }


_PLACE = f'"events-{uuid.uuid4().hex}-'  # where a request's events go, before they are put in


def _dumps(value: Any) -> str:
    """json.dumps (aiohttp's default encoder), with the events of a request put in as written."""
    fragments: list[str] = []

    def events_placeholder(obj: Any) -> str:
        if not isinstance(obj, _EventsJSON):
            raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
        fragments.append(obj.json())
        return f"{_PLACE[1:]}{len(fragments) - 1}"

    text = json.dumps(value, default=events_placeholder)
    for index, fragment in enumerate(fragments):
        text = text.replace(f'{_PLACE}{index}"', fragment, 1)
    return text


# --- the connection ----------------------------------------------------------------------

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
        json_serialize=_dumps,
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


def install() -> None:
    RemoteAction._validate_action_result = _validate_action_result
    RemoteAction._action_call_format = _action_call_format
    EndpointConfig.session = _session

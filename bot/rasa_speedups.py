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
"""

from __future__ import annotations

import logging
from typing import Any

import rasa
from jsonschema import exceptions, validators
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.events import Event

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


def install() -> None:
    """Put the speed-ups in place (idempotent); only on Rasa 3.6, whose methods they replace."""
    if not rasa.__version__.startswith("3.6."):
        log.warning("Rasa %s: speed-ups written for 3.6 left out (bot/rasa_speedups.py)", rasa.__version__)
        return
    RemoteAction._validate_action_result = _validate_action_result
    Event.resolve_by_type = staticmethod(_resolve_by_type)

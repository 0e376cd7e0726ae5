"""A conversation's events and its tracker: the events' classes, the events that apply,
and a copy of the tracker.

- Every event read back (a tracker store rebuilding a conversation, each action's answer)
  looks its class up with `Event.resolve_by_type`, which walks Rasa's whole class tree of
  events, with an `inspect.isabstract` check for each, every time: about 40 µs an event,
  10-15 ms a message on a conversation of 30 turns (~360 events). Event classes are all
  defined at import and their type names are unique, so the first answer for a name is
  kept.
- `DialogueStateTracker.applied_events` (the events left after restarts, reverts and a
  loop's earlier rounds) walks the whole conversation twice and is asked for it a dozen
  times a message (the states, the rules, the session check, the last action...): 9 % of
  the Rasa server's CPU on conversations of 30 turns under load. A tracker's events only
  ever grow at the end (`update` appends; Rasa replaces a tracker, never edits its
  events), so the answer is kept with the tracker until its events change length or last
  event; each caller gets its own copy of the list.
- `DialogueStateTracker.copy` makes a new tracker and replays every event into it (each
  action a message runs gets a copy to work on, and so does a form that starts): the
  state a tracker is in is the one its events left (Rasa changes a tracker only through
  events), so the copy takes the events and that state instead, each mutable part its own.
"""

from __future__ import annotations

import copy
import dataclasses

from rasa.shared.constants import DEFAULT_SENDER_ID
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import AnySlotDict, DialogueStateTracker

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


_original_applied_events = DialogueStateTracker.applied_events
_APPLIED = "_applied_events_kept"  # the tracker's attribute: (events, their length, the last one, applied)


def _applied_events(self: DialogueStateTracker) -> list[Event]:
    """DialogueStateTracker.applied_events of Rasa 3.6, worked out once for each state of
    the tracker's events."""
    events = self.events
    last = events[-1] if events else None
    kept = self.__dict__.get(_APPLIED)
    if kept is not None and kept[0] is events and kept[1] == len(events) and kept[2] is last:
        return list(kept[3])
    applied = _original_applied_events(self)
    self.__dict__[_APPLIED] = (events, len(events), last, applied)
    return list(applied)


_original_copy = DialogueStateTracker.copy


def _copy(self: DialogueStateTracker) -> DialogueStateTracker:
    """DialogueStateTracker.copy of Rasa 3.6 (`travel_back_in_time(inf)`: a tracker from
    `init_copy`, every event replayed into it) without the replay."""
    if type(self) is not DialogueStateTracker or isinstance(self.slots, AnySlotDict):
        return _original_copy(self)
    tracker = DialogueStateTracker.__new__(DialogueStateTracker)  # what init_copy sets, then the state
    tracker._max_event_history = self._max_event_history
    tracker.events = tracker._create_events(self.events)
    tracker.sender_id = self.sender_id or DEFAULT_SENDER_ID
    tracker.slots = {name: copy.copy(slot) for name, slot in self.slots.items()}  # each value and whether it was set
    tracker.sender_source = None
    tracker.is_rule_tracker = self.is_rule_tracker
    tracker._paused = self._paused
    tracker.followup_action = self.followup_action
    tracker.latest_action = dict(self.latest_action) if self.latest_action is not None else None
    tracker.latest_message = self.latest_message
    tracker.latest_bot_utterance = self.latest_bot_utterance
    tracker.active_loop = dataclasses.replace(self.active_loop) if self.active_loop is not None else None
    tracker.model_id = tracker.assistant_id = None
    return tracker


def install() -> None:
    Event.resolve_by_type = staticmethod(_resolve_by_type)
    DialogueStateTracker.applied_events = _applied_events
    DialogueStateTracker.copy = _copy

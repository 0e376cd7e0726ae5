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
  events), so the answer is kept with the tracker and carried on over the events added
  since; each caller gets its own copy of the list.
- `DialogueStateTracker.copy` makes a new tracker and replays every event into it (each
  action a message runs gets a copy to work on, and so does a form that starts): the
  state a tracker is in is the one its events left (Rasa changes a tracker only through
  events), so the copy takes the events and that state instead, each mutable part its own.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections import deque

from rasa.shared.constants import DEFAULT_SENDER_ID
from rasa.shared.core.events import (
    ActionExecuted,
    ActionReverted,
    ActiveLoop,
    Event,
    Restarted,
    SessionStarted,
    UserUtteranceReverted,
    UserUttered,
)
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
_APPLIED = "_applied_events_kept"  # the tracker's attribute holding its _Applied


@dataclasses.dataclass
class _Applied:
    """The applied events worked out for a tracker's events as they were: the deque, its
    length and last event then, the loops named in it, the result."""

    events: deque
    length: int
    last: Event | None
    loop_names: set[str]
    applied: list[Event]


def _applied_events(self: DialogueStateTracker) -> list[Event]:
    """DialogueStateTracker.applied_events of Rasa 3.6, worked out once for each state of
    the tracker's events, and carried on over the events added since (unless they name a
    loop not named before, which can change how earlier events count)."""
    events, kept = self.events, self.__dict__.get(_APPLIED)
    length, last = len(events), events[-1] if events else None
    if kept is not None and kept.events is events:
        if kept.length == length and kept.last is last:
            return list(kept.applied)
        if 0 < kept.length < length and events[kept.length - 1] is kept.last:
            added = list(itertools.islice(events, kept.length, length))
            if not {e.name for e in added if isinstance(e, ActiveLoop) and e.name} - kept.loop_names:
                applied = list(kept.applied)
                for event in added:
                    _apply(self, event, applied, kept.loop_names)
                self.__dict__[_APPLIED] = _Applied(events, length, last, kept.loop_names, applied)
                return list(applied)
    loop_names = {e.name for e in events if isinstance(e, ActiveLoop) and e.name}
    applied = []
    for event in events:
        _apply(self, event, applied, loop_names)
    self.__dict__[_APPLIED] = _Applied(events, length, last, loop_names, applied)
    return list(applied)


def _apply(tracker: DialogueStateTracker, event: Event, applied: list[Event], loop_names: set[str]) -> None:
    """One round of the loop in Rasa 3.6's `applied_events`, line for line."""
    if isinstance(event, (Restarted, SessionStarted)):
        applied.clear()
    elif isinstance(event, ActionReverted):
        tracker._undo_till_previous(ActionExecuted, applied)
    elif isinstance(event, UserUtteranceReverted):
        tracker._undo_till_previous(UserUttered, applied)
        tracker._undo_till_previous(ActionExecuted, applied)
    elif (
        isinstance(event, ActionExecuted)
        and event.action_name in loop_names
        and not tracker._first_loop_execution_or_unhappy_path(event.action_name, applied)
    ):
        tracker._undo_till_previous_loop_execution(event.action_name, applied)
    else:
        applied.append(event)


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

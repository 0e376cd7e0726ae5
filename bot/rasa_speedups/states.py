"""A conversation's states for the policies, carried on from one prediction to the next.

Each prediction turns the whole conversation into states (`Domain.states_for_tracker_history`,
through `tracker.past_states`): every event replayed into a fresh tracker, a state made at
every action, for each policy and each of the ~3 predictions a message, about 7.6 ms a
message at 30 turns. The states of the turns before an event depend only on the events
before it, so a conversation's replay (from its session's start) is kept (the last 512
conversations) and carried on from where it stopped when the next call's events begin with
the same events as last time; any other history (a revert, a new session, another
conversation under the same id) is replayed from the start, as Rasa does. Callers get their
own copies of the states and of the parts Rasa's featurizers edit in place. The
MemoizationPolicy's featurizer keeps only the last few states of all it asks for: only
those are copied for it. The RulePolicy asks for all of them twice a prediction (with the
message's text, then its intent) and only reads them: it gets the replay's states as its
featurizer would leave them, made once for each state, and a copy of the last one only.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from rasa.core.featurizers.tracker_featurizers import (
    MaxHistoryTrackerFeaturizer,
    _is_prev_action_unlikely_intent_in_state,
)
from rasa.core.policies.rule_policy import RulePolicy
from rasa.shared.core.constants import ACTION_SESSION_START_NAME, PREVIOUS_ACTION, USER
from rasa.shared.core.domain import Domain, State, SubState
from rasa.shared.core.events import ActionExecuted, Event
from rasa.shared.core.trackers import DialogueStateTracker, is_prev_action_listen_in_state
from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT

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
    # `states` as the RulePolicy's featurizer leaves them but for the last one, as far as made
    for_rules: list[State] = field(default_factory=list)


def _states_for_tracker_history(
    self: Domain,
    tracker: DialogueStateTracker,
    omit_unset_slots: bool = False,
    ignore_rule_only_turns: bool = False,
    rule_only_data: dict[str, Any] | None = None,
) -> list[State]:
    """Domain.states_for_tracker_history of Rasa 3.6, carried on from the last call's replay."""
    states = _replayed(self, tracker, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
    if states is None:
        return _original_states_for_tracker_history(
            self, tracker, omit_unset_slots, ignore_rule_only_turns, rule_only_data
        )
    return _copied(states)


_original_max_history_prediction_states = MaxHistoryTrackerFeaturizer.prediction_states


def _max_history_prediction_states(
    self: MaxHistoryTrackerFeaturizer,
    trackers: list[DialogueStateTracker],
    domain: Domain,
    use_text_for_last_user_input: bool = False,
    ignore_rule_only_turns: bool = False,
    rule_only_data: dict[str, Any] | None = None,
    ignore_action_unlikely_intent: bool = False,
) -> list[list[State]]:
    """MaxHistoryTrackerFeaturizer.prediction_states of Rasa 3.6 (the MemoizationPolicy's),
    which keeps only the last `max_history` states: only those are copied."""
    replayed = [_replayed(domain, tracker, False, ignore_rule_only_turns, rule_only_data) for tracker in trackers]
    if type(self) is not MaxHistoryTrackerFeaturizer or not self.max_history or None in replayed:
        return _original_max_history_prediction_states(
            self, trackers, domain, use_text_for_last_user_input, ignore_rule_only_turns, rule_only_data,
            ignore_action_unlikely_intent,
        )  # fmt: skip
    trackers_as_states = [
        _copied(_last_states(states, self.max_history, ignore_action_unlikely_intent)) for states in replayed
    ]
    self._choose_last_user_input(trackers_as_states, use_text_for_last_user_input)
    return trackers_as_states


def _last_states(states: list[State], max_history: int, without_unlikely_intent: bool) -> list[State]:
    """The last `max_history` states, those after `action_unlikely_intent` left out first if
    asked (as Rasa leaves them out before slicing), walking back only as far as needed."""
    if not without_unlikely_intent:
        return states[-max_history:]
    kept: list[State] = []
    for state in reversed(states):
        if not _is_prev_action_unlikely_intent_in_state(state):
            kept.append(state)
            if len(kept) == max_history:
                break
    kept.reverse()
    return kept


def _replayed(
    domain: Domain,
    tracker: DialogueStateTracker,
    omit_unset_slots: bool,
    ignore_rule_only_turns: bool,
    rule_only_data: dict[str, Any] | None,
) -> list[State] | None:
    """The conversation's states as Rasa's loop makes them, carried on from the replay kept
    (a new list of the replay's own states, not to be edited); None for a tracker that is
    not a whole session."""
    carried = _carried_on(domain, tracker, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
    if carried is None:
        return None
    replay, last = carried
    return replay.states + last


def _carried_on(
    domain: Domain,
    tracker: DialogueStateTracker,
    omit_unset_slots: bool,
    ignore_rule_only_turns: bool,
    rule_only_data: dict[str, Any] | None,
) -> tuple[_Replay, list[State]] | None:
    """The conversation's replay, carried on over its new events, and the state after its
    last event (none if that turn is hidden); None for a tracker that is not a whole session."""
    if type(tracker) is not DialogueStateTracker or not _whole_session(tracker):
        return None
    replays: OrderedDict[tuple, _Replay] = domain.__dict__.setdefault("_replays", OrderedDict())  # dies with the model
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
                domain, replay.states, replay.tracker, event.hide_rule_turn, replay.last_ml_action,
                replay.turn_was_hidden, *options,
            )  # fmt: skip
        replay.tracker.update(event)
        replay.events.append(event)
    # the state after the last event, as Rasa's loop ends; not kept: the next event decides the turn
    kept = len(replay.states)
    _add_state(domain, replay.states, replay.tracker, False, replay.last_ml_action, replay.turn_was_hidden, *options)
    last = replay.states[kept:]
    del replay.states[kept:]
    return replay, last


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
    equal ones (every attribute, the timestamp too) when the tracker was read again. Equal
    ones then take the place of those they equal in `replayed`, so that the message's next
    calls find the same objects again, which is quicker to check."""
    if len(events) < len(replayed):
        return False
    if all(map(operator.is_, events, replayed)):
        return True
    if not all(new is old or _same_event(new, old) for new, old in zip(events, replayed, strict=False)):
        return False
    replayed[:] = events[: len(replayed)]
    return True


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
    """The states, each with its own copy of the user's sub-state: the only part Rasa edits
    once a state is made (its featurizers drop the user's text or intent:
    `_choose_last_user_input`, `_remove_user_text_if_intent`); a user sub-state shared by
    several states (Rasa's loop shares it between turns) is still shared. The other
    sub-states, which nothing edits, are the replay's own."""
    users: dict[int, SubState] = {}
    result = []
    for state in states:
        copy = dict(state)
        user = state.get(USER)
        if user is not None:
            if id(user) not in users:
                users[id(user)] = dict(user)
            copy[USER] = users[id(user)]
        result.append(copy)
    return result


_original_rule_prediction_states = RulePolicy._prediction_states


def _rule_prediction_states(
    self: RulePolicy,
    tracker: DialogueStateTracker,
    domain: Domain,
    use_text_for_last_user_input: bool = False,
    rule_only_data: dict[str, Any] | None = None,
) -> list[State]:
    """RulePolicy._prediction_states of Rasa 3.6 (its featurizer's `prediction_states`, all
    states, none ignored), for a policy that only reads them: the replay's states with the
    user's text dropped where the intent is there, each made once, and the last state made
    for this call (its text or its intent dropped, as asked)."""
    featurizer = self.featurizer
    carried = None
    if type(featurizer) is MaxHistoryTrackerFeaturizer and not featurizer.max_history:
        carried = _carried_on(domain, tracker, False, False, rule_only_data)
    if carried is None or not carried[1]:
        return _original_rule_prediction_states(self, tracker, domain, use_text_for_last_user_input, rule_only_data)
    replay, (last,) = carried
    user = last.get(USER)
    if user is not None and any(state.get(USER) is user for state in replay.states):
        # shared with an earlier turn, whose state the featurizer would edit with it
        return _original_rule_prediction_states(self, tracker, domain, use_text_for_last_user_input, rule_only_data)
    replay.for_rules.extend(_without_text_if_intent(state) for state in replay.states[len(replay.for_rules) :])
    last = dict(last)
    if user is not None:
        user = last[USER] = dict(user)
        if is_prev_action_listen_in_state(last):  # _choose_last_user_input, test for test
            for name in (INTENT, ENTITIES) if use_text_for_last_user_input else (TEXT,):
                if user.get(name):
                    del user[name]
    return [*replay.for_rules, _without_text_if_intent(last)]


def _without_text_if_intent(state: State) -> State:
    """The state as `_remove_user_text_if_intent` leaves it (a new state if it changes)."""
    user = state.get(USER, {})
    if not (user.get(INTENT) and user.get(TEXT)):
        return state
    return {**state, USER: {key: value for key, value in user.items() if key != TEXT}}


def install() -> None:
    Domain.states_for_tracker_history = _states_for_tracker_history
    MaxHistoryTrackerFeaturizer.prediction_states = _max_history_prediction_states
    RulePolicy._prediction_states = _rule_prediction_states

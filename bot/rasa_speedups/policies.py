"""The rule policy's comparison of the conversation with its rules.

- RulePolicy keeps each rule as a JSON text (its key) and parses it again every time it
  compares the rule with one state of the conversation (`_rule_key_to_state`, called by
  `_is_rule_applicable` for every state of the conversation and every rule still
  possible): hundreds of parses a prediction on a conversation of 30 turns. A model's
  rules do not change, so each key is parsed once; the rule's states are only ever read.
- To find the rules that apply (`_get_possible_keys`) it walks back through the whole
  conversation, though a rule only looks at as many states as it has: further back,
  `_is_rule_applicable` says yes to every rule left. The walk stops there.
"""

from __future__ import annotations

import functools
import json

from rasa.core.policies.rule_policy import RulePolicy
from rasa.shared.core.domain import State

RULE_KEYS_KEPT = 8192  # parsed rule keys kept (a model has a few hundred; a promoted model brings its own)


@functools.lru_cache(maxsize=RULE_KEYS_KEPT)
def _rule_key_to_state(rule_key: str) -> list[State]:
    """RulePolicy._rule_key_to_state of Rasa 3.6, parsed once for each key."""
    return json.loads(rule_key)


_original_get_possible_keys = RulePolicy._get_possible_keys


def _get_possible_keys(self: RulePolicy, lookup: dict[str, str], states: list[State]) -> set[str]:
    """RulePolicy._get_possible_keys of Rasa 3.6, stopped where no rule left looks back."""
    possible_keys = set(lookup.keys())
    for i, state in enumerate(reversed(states)):
        if all(i >= len(_rule_key_to_state(key)) for key in possible_keys):
            break  # every rule left is applicable from here on, whatever the state
        possible_keys = {key for key in possible_keys if self._is_rule_applicable(key, i, state)}
    return possible_keys


def install() -> None:
    RulePolicy._rule_key_to_state = staticmethod(_rule_key_to_state)
    RulePolicy._get_possible_keys = _get_possible_keys

"""The rule policy's comparison of the conversation with its rules.

RulePolicy keeps each rule as a JSON text (its key) and parses it again every time it
compares the rule with one state of the conversation (`_rule_key_to_state`, called by
`_is_rule_applicable` for every state of the conversation and every rule still possible):
hundreds of parses a prediction on a conversation of 30 turns. A model's rules do not
change, so each key is parsed once; the rule's states are only ever read.
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


def install() -> None:
    RulePolicy._rule_key_to_state = staticmethod(_rule_key_to_state)

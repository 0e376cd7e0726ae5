"""Copies made for debug log lines that are not written.

Rasa 3.6 hands structlog a deep copy of what it logs at debug level, so that a masking
processor cannot edit the conversation: the events of every action the message runs, the
message's entities, the policies' states, the form's slots. Python makes each copy before
the call, whether or not the line is written; at Rasa's default level (INFO) structlog's
filtering logger drops the line at once and the copy is thrown away. In the modules of a
message's path, the copy is made only when debug lines are written; so is the text of the
whole conversation's states that the rule policy writes for its debug line (twice a
prediction).
"""

from __future__ import annotations

import copy
import logging
import types
from typing import Any

import structlog
from rasa.core import processor
from rasa.core.actions import forms
from rasa.core.policies import memoization, rule_policy

# the modules whose only use of `copy` is a deep copy handed to a debug line
# (tests/test_rasa_speedups.py reads their source to hold them to it)
MODULES = (processor, forms, memoization, rule_policy)

# the loggers Rasa's configure_structlog builds for a level above DEBUG
_DEBUG_DROPPED = frozenset(
    structlog.make_filtering_bound_logger(level)
    for level in (logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
)

def debug_written() -> bool:
    """Whether structlog writes debug lines (anything but a filtering logger above DEBUG)."""
    return structlog.get_config()["wrapper_class"] not in _DEBUG_DROPPED


def _deepcopy_if_written(value: Any, memo: dict | None = None) -> Any:
    return copy.deepcopy(value, memo) if debug_written() else value


_copy_for_debug_lines = types.SimpleNamespace(copy=copy.copy, deepcopy=_deepcopy_if_written, Error=copy.Error)


_original_format_tracker_states = rule_policy.RulePolicy.format_tracker_states


def _format_tracker_states_if_written(states: list[dict]) -> str:
    """Policy.format_tracker_states, which the rule policy calls only for its debug line."""
    return _original_format_tracker_states(states) if debug_written() else ""


def install() -> None:
    for module in MODULES:
        module.copy = _copy_for_debug_lines
    rule_policy.RulePolicy.format_tracker_states = staticmethod(_format_tracker_states_if_written)

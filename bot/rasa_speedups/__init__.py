"""Per-turn costs of Rasa Open Source 3.6 itself, removed in the Rasa server (issue 8).

Installed by `bot.nlu`, which every Rasa server of this project imports with the model (the
pipeline names its components), so the Rasa server always runs with them; nothing here
changes what Rasa decides, says or sends. bench/RESULTS.md, "Where the time goes (issue
8)", has the measurements.

- `action_calls`: the request to the action server written from each event's JSON kept,
  the connection kept, the answer checked against the one kind of event it names;
- `trackers`: an event's class and a tracker's applied events, each worked out once, and
  a tracker copied without replaying its events;
- `states`: a conversation's states for the policies carried on from the last prediction;
- `policies`: the rule policy's rules parsed once;
- `nlu`: a message's features combined for DIET without deep copies;
- `graph`: the model's graph for each set of targets built once;
- `debug_lines`: the deep copies Rasa makes for its debug log lines, made only when those
  lines are written.

The embedded default's tracker store (bot/tracker_store.py) keeps the conversation's event
objects from one message to the next, which lets these recognise what they did before.
"""

from __future__ import annotations

import logging

import rasa

from bot.rasa_speedups import action_calls, debug_lines, graph, nlu, policies, states, trackers

log = logging.getLogger(__name__)
_installed = False


def install() -> None:
    """Put the speed-ups in place, once (what was wrapped around them since, such as
    bench/turn_costs.py's timers, stays); only on Rasa 3.6, whose methods they replace."""
    global _installed
    if _installed:
        return
    _installed = True
    if not rasa.__version__.startswith("3.6."):
        log.warning("Rasa %s: speed-ups written for 3.6 left out (bot/rasa_speedups)", rasa.__version__)
        return
    for part in (action_calls, debug_lines, graph, nlu, policies, states, trackers):
        part.install()

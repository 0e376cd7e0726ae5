"""What a speed-up of one step saves, timed both ways on the very same calls.

    .venv/bin/python bench/speedup_costs.py [--conversations 3] [--turns 30]

The machine's speed drifts by up to 2x within an hour here, more than a speed-up of one
step saves, so two runs side by side (bench/turn_costs.py of two checkouts, two servers in
bench/serving.py) cannot tell them apart. Here one live conversation at a time (the model
loaded in this process with the project's endpoints, an action server of its own, structlog
at INFO as under `rasa run`) runs with each step below timed both ways on every call it
makes: the speed-up (its result is the one used), then Rasa's own function on the same
arguments, the results compared where they must be equal. What both ways share is done
first and timed apart: the conversation's replay (bot/rasa_speedups/states.py) carried on
over the new events, which Rasa's states are made from too.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import logging
import os
import sys
import time
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turn_costs import SCRIPT, endpoints_with_action_server

PROJECT = Path(__file__).resolve().parents[1]


@dataclass
class Step:
    """One step timed both ways."""

    name: str
    compared: bool
    shared: Callable[..., Any] | None = None  # what both ways start with, on the same arguments
    calls: int = 0
    shared_seconds: float = 0.0
    rasa_seconds: float = 0.0
    ours_seconds: float = 0.0
    different: int = 0

    def both(self, ours: Callable[..., Any], rasa: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.process_time()
            if self.shared:
                self.shared(*args, **kwargs)
                self.shared_seconds += time.process_time() - began
                began = time.process_time()
            result = ours(*args, **kwargs)
            between = time.process_time()
            expected = rasa(*args, **kwargs)
            self.ours_seconds += between - began
            self.rasa_seconds += time.process_time() - between
            self.calls += 1
            self.different += self.compared and result != expected
            return result

        return timed


def instrument() -> list[Step]:
    """Each step's speed-up and Rasa's function, timed both ways where Rasa calls them."""
    from rasa.core.policies.rule_policy import RulePolicy

    from bot.rasa_speedups import debug_lines, states

    def replay_carried_on(_policy: Any, tracker: Any, domain: Any, *_text: bool, rule_only_data: Any = None) -> None:
        states._carried_on(domain, tracker, False, False, rule_only_data)

    rule_states = Step("rule policy: the conversation's states (twice a prediction)", True, replay_carried_on)
    RulePolicy._prediction_states = rule_states.both(
        states._rule_prediction_states, states._original_rule_prediction_states
    )
    formatted = Step("rule policy: those states as text for its debug line", compared=False)
    RulePolicy.format_tracker_states = staticmethod(
        formatted.both(debug_lines._format_tracker_states_if_written, debug_lines._original_format_tracker_states)
    )
    copies = Step("deep copies for debug lines (processor, forms, policies)", compared=False)
    timed_copy = types.SimpleNamespace(
        copy=copy.copy, deepcopy=copies.both(debug_lines._deepcopy_if_written, copy.deepcopy), Error=copy.Error
    )
    for module in debug_lines.MODULES:
        module.copy = timed_copy
    return [rule_states, formatted, copies]


async def converse(endpoints: Path, conversations: int, turns: int) -> list[Step]:
    from rasa.core.agent import load_agent
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
    from rasa.core.utils import AvailableEndpoints
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.INFO)
    agent = await load_agent(
        model_path=str(PROJECT / "models" / "current.tar.gz"),
        endpoints=AvailableEndpoints.read_endpoints(str(endpoints)),
    )
    for text in SCRIPT:  # warm-up: TensorFlow traces its graphs on the first messages
        await agent.handle_message(UserMessage(text, CollectingOutputChannel(), "warm-up"))
    steps = instrument()
    for _ in range(conversations):
        sender = f"speedup-costs-{uuid.uuid4().hex[:8]}"
        for text in itertools.islice(itertools.cycle(SCRIPT), turns):
            await agent.handle_message(UserMessage(text, CollectingOutputChannel(), sender))
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=3)
    parser.add_argument("--turns", type=int, default=30, help="messages per conversation")
    args = parser.parse_args()
    os.chdir(PROJECT)
    sys.path.insert(0, str(PROJECT))
    logging.disable(logging.WARNING)
    with endpoints_with_action_server(PROJECT) as endpoints:
        steps = asyncio.run(converse(endpoints, args.conversations, args.turns))
    messages = args.conversations * args.turns
    print(f"\n{args.conversations} conversations of {args.turns} messages ({messages} messages)\n")
    print("| step | calls a message | shared CPU ms a message | Rasa's | speed-up's | saved | results that differ |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for step in steps:
        shared, rasa, ours = (
            seconds * 1000 / messages for seconds in (step.shared_seconds, step.rasa_seconds, step.ours_seconds)
        )
        differ = step.different if step.compared else "(not compared)"
        print(f"| {step.name} | {step.calls / messages:.1f} | {shared:.2f} | {rasa:.2f} | {ours:.2f} | "
              f"{rasa - ours:.2f} | {differ} |")  # fmt: skip


if __name__ == "__main__":
    main()

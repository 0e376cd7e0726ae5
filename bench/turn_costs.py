"""Where a message's time goes in the Rasa server: the CPU time of each stage of a turn.

    .venv/bin/python bench/turn_costs.py [--model PATH] [--project DIR] [--conversations 3] [--turns 30]

Loads the model in this process as `rasa run` does, with the project's endpoints.yml (its
NLG and tracker store) and a real action server of its own (a scratch SQLite database with
the demo data in bench/out), and sends conversations of the serving benchmark's script
(bench/serving.py), one message at a time, after a warm-up conversation. Rasa's steps are
wrapped with timers of this process's CPU time (TensorFlow's threads included; the action
server is another process and is not counted); each step counts its own time, without the
wrapped steps inside it. Prints the stages by category per message, how many action calls
and policy predictions a message makes, and what a message costs by its place in the
conversation (the conversation grows). `--project DIR` measures another checkout, its code
and its endpoints (e.g. `git worktree add /tmp/before HEAD`), with the model given.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import collections
import contextlib
import functools
import inspect
import itertools
import logging
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# the serving benchmark's customer script, read without importing it (it puts its own
# project first on the path, and `--project` may name another one)
SCRIPT = ast.literal_eval(
    (HERE / "serving.py").read_text(encoding="utf-8").split("OUR_SCRIPT = ", 1)[1].split("]", 1)[0] + "]"
)

POLICY_NODES = ("Policy", "select_prediction", "rule_only_data", "domain_provider")
# (category, test on the wrapped step's label), first match wins
CATEGORIES = [
    ("NLU: DIET (intents, entities)", lambda s: "DIETClassifier" in s),
    ("NLU: FAQ response selector", lambda s: "ResponseSelector" in s),
    (
        "NLU: normaliser (OpenCC), Jieba, regex and count-vector featurizers",
        lambda s: any(k in s for k in ("normalizer", "Jieba", "RegexFeaturizer", "CountVectors")),
    ),
    ("dialogue: conversation → states for the policies (past_states)", lambda s: s == "past_states"),
    (
        "dialogue: the policies' own work, choosing the action",
        lambda s: s == "predict" or any(k in s for k in POLICY_NODES),
    ),
    ("NLU: other components, running the graph", lambda s: s == "nlu graph" or s.startswith("node:")),
    ("action calls: answer checked against Rasa's response schema", lambda s: s == "validate action answer"),
    ("action calls: HTTP request (JSON of tracker and domain)", lambda s: s == "http"),
    ("action calls: tracker → dict, answer → events, bookkeeping", lambda s: s.startswith("action ")),
    ("tracker store: load (rebuild the conversation from its events)", lambda s: s.startswith("load ")),
    ("tracker store: save (serialise the conversation)", lambda s: s == "save"),
    ("NLG (FreshResponses)", lambda s: s == "nlg"),
    ("rest of Rasa's message handling", lambda s: True),
]


class Timers:
    """Process CPU time per label, each call's own time (time in wrapped callees taken out)."""

    def __init__(self) -> None:
        self.own: collections.Counter[str] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()
        self._stack: list[list[Any]] = []

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        original = getattr(owner, attr)
        timers = self

        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def timed(*args: Any, **kwargs: Any) -> Any:
                timers._enter(label)
                try:
                    return await original(*args, **kwargs)
                finally:
                    timers._leave()

        else:

            @functools.wraps(original)
            def timed(*args: Any, **kwargs: Any) -> Any:
                timers._enter(label)
                try:
                    return original(*args, **kwargs)
                finally:
                    timers._leave()

        setattr(owner, attr, timed)

    def _enter(self, label: str) -> None:
        # events read back inside the tracker store's load belong to the load
        if label == "action events" and any(frame[2] == "load store" for frame in self._stack):
            label = "load events"
        self._stack.append([time.process_time(), 0.0, label])

    def _leave(self) -> None:
        began, inner, label = self._stack.pop()
        spent = time.process_time() - began
        self.own[label] += spent - inner
        self.calls[label] += 1
        if self._stack:
            self._stack[-1][1] += spent

    def reset(self) -> None:
        self.own.clear()
        self.calls.clear()


def instrument(timers: Timers) -> None:
    """Wrap the steps of Rasa 3.6's message handling (call before the model is loaded)."""
    from rasa.core import tracker_store
    from rasa.core.actions.action import RemoteAction
    from rasa.core.processor import MessageProcessor
    from rasa.engine.graph import GraphNode
    from rasa.shared.core import events
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.utils.endpoints import EndpointConfig

    try:  # the project's own replacements of Rasa's steps first, so that the timers wrap them
        from bot import rasa_speedups

        rasa_speedups.install()
    except ImportError:
        pass
    for method in ("handle_message", "log_message", "run_action_extract_slots", "_run_prediction_loop"):
        timers.wrap(MessageProcessor, method, "rest")
    timers.wrap(MessageProcessor, "_parse_message_with_graph", "nlu graph")
    timers.wrap(MessageProcessor, "_predict_next_with_tracker", "predict")
    timers.wrap(MessageProcessor, "_run_action", "action run")
    timers.wrap(MessageProcessor, "fetch_tracker_and_update_session", "load session")
    timers.wrap(tracker_store.InMemoryTrackerStore, "retrieve", "load store")
    timers.wrap(tracker_store.InMemoryTrackerStore, "save", "save")
    timers.wrap(RemoteAction, "run", "action remote")
    timers.wrap(RemoteAction, "_action_call_format", "action tracker to dict")
    timers.wrap(EndpointConfig, "request", "http")
    timers.wrap(events, "deserialise_events", "action events")
    timers.wrap(DialogueStateTracker, "past_states", "past_states")
    timers.wrap(RemoteAction, "_validate_action_result", "validate action answer")
    from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator

    timers.wrap(TemplatedNaturalLanguageGenerator, "generate", "nlg")
    try:
        from bot.nlg import FreshResponses

        timers.wrap(FreshResponses, "generate", "nlg")
    except ImportError:
        pass

    original = GraphNode.__call__

    def node_call(self: GraphNode, *args: Any, **kwargs: Any) -> Any:
        timers._enter(f"node:{self._node_name}")
        try:
            return original(self, *args, **kwargs)
        finally:
            timers._leave()

    GraphNode.__call__ = node_call


def start_action_server(project: Path, out: Path, port: int, database_url: str) -> subprocess.Popen:
    log = (out / f"turn-costs-actions-{port}.log").open("w", encoding="utf-8")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "RASA_TELEMETRY_ENABLED": "false",
        "SANIC_HOST": "127.0.0.1",
        "SANIC_KEEP_ALIVE_TIMEOUT": "120",
    }
    rasa = Path(sys.executable).with_name("rasa")
    server = subprocess.Popen(
        [str(rasa), "run", "actions", "--port", str(port)], cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the action server exited early, see {log.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError("the action server did not come up")


@contextlib.contextmanager
def endpoints_with_action_server(project: Path) -> Iterator[Path]:
    """The project's endpoints.yml pointed at an action server of its own, on a scratch
    SQLite database with the demo data in bench/out; the server stopped afterwards."""
    out = project / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)

    from bot import clock
    from bot.db import session_factory
    from bot.demo_data import ensure_demo_data
    from bot.schema import upgrade

    database_url = f"sqlite:///{out / 'turn-costs.db'}"
    upgrade(database_url)
    ensure_demo_data(session_factory(database_url), clock.now())
    from tests.e2e.servers import free_port

    port = free_port()
    endpoints = out / f"turn-costs-endpoints-{port}.yml"
    endpoints.write_text(
        (project / "endpoints.yml").read_text(encoding="utf-8").replace("127.0.0.1:5055", f"127.0.0.1:{port}"),
        encoding="utf-8",
    )
    actions = start_action_server(project, out, port, database_url)
    try:
        yield endpoints
    finally:
        actions.terminate()
        actions.wait(timeout=30)
        endpoints.unlink(missing_ok=True)


async def converse(model: Path, endpoints_file: Path, timers: Timers, conversations: int, turns: int) -> dict:
    from rasa.core.agent import load_agent
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
    from rasa.core.utils import AvailableEndpoints
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)
    agent = await load_agent(model_path=str(model), endpoints=AvailableEndpoints.read_endpoints(str(endpoints_file)))
    from rasa.core.actions.action import RemoteAction

    if not hasattr(RemoteAction._validate_action_result, "__wrapped__"):  # replaced by bot.rasa_speedups
        timers.wrap(RemoteAction, "_validate_action_result", "validate action answer")
    for text in SCRIPT:  # warm-up: TensorFlow traces its graphs on the first messages
        await agent.handle_message(UserMessage(text, CollectingOutputChannel(), "warm-up"))
    timers.reset()
    by_turn: dict[int, list[float]] = collections.defaultdict(list)
    began = time.process_time()
    for _ in range(conversations):
        sender = f"turn-costs-{uuid.uuid4().hex[:8]}"
        for index, text in enumerate(itertools.islice(itertools.cycle(SCRIPT), turns)):
            turn_began = time.process_time()
            await agent.handle_message(UserMessage(text, CollectingOutputChannel(), sender))
            by_turn[index].append(time.process_time() - turn_began)
    return {"total": time.process_time() - began, "messages": conversations * turns, "by_turn": by_turn}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=HERE.parent, help="the checkout whose code runs")
    parser.add_argument("--model", type=Path, help="default: the project's models/current.tar.gz")
    parser.add_argument("--conversations", type=int, default=3)
    parser.add_argument("--turns", type=int, default=30, help="messages per conversation")
    args = parser.parse_args()
    project = args.project.resolve()
    model = (args.model or project / "models" / "current.tar.gz").resolve()
    os.chdir(project)
    sys.path.insert(0, str(project))
    logging.disable(logging.WARNING)
    timers = Timers()
    instrument(timers)
    with endpoints_with_action_server(project) as endpoints:
        run = asyncio.run(converse(model, endpoints, timers, args.conversations, args.turns))
    report(model, run, timers)


def report(model: Path, run: dict, timers: Timers) -> None:
    n = run["messages"]
    by_category: collections.Counter[str] = collections.Counter()
    for label, seconds in timers.own.items():
        category = next(name for name, test in CATEGORIES if test(label))
        by_category[category] += seconds
    print(f"\n{model}: {n} messages, {run['total'] * 1000 / n:.1f} ms of Rasa-server CPU a message")
    print(
        f"{timers.calls['action remote'] / n:.2f} action calls and {timers.calls['predict'] / n:.2f} "
        "policy predictions a message\n"
    )
    print("| stage | CPU ms a message | share |")
    print("| --- | --- | --- |")
    for name, _ in CATEGORIES:
        print(f"| {name} | {by_category[name] * 1000 / n:.1f} | {by_category[name] / run['total']:.0%} |")
    turns = run["by_turn"]
    costs = [statistics.mean(turns[i]) * 1000 for i in sorted(turns)]
    print("\nCPU ms a message by its place in the conversation:", ", ".join(f"{c:.0f}" for c in costs))


if __name__ == "__main__":
    main()

"""Running the model's graph (the NLU once a message, the policies for each prediction).

`DaskGraphRunner.run` works out again, on every run, which nodes the targets need
(`GraphSchema.minimal_graph_schema`, whose walk of the dependencies builds lists path by
path and tests membership in them: 3 % of the Rasa server's CPU under load) and the dask
graph of those nodes. A runner's schema and nodes are fixed when the model is loaded, so
both are worked out once for each set of targets; each run gets its own copy of the dask
graph, to which it adds its inputs.
"""

from __future__ import annotations

from typing import Any

import dask
from rasa.engine.exceptions import GraphRunError
from rasa.engine.runner.dask import DaskGraphRunner, logger

_KEPT = "_graphs_kept"  # the runner's attribute: targets -> their dask graph


_original_run = DaskGraphRunner.run


def _run(
    self: DaskGraphRunner, inputs: dict[str, Any] | None = None, targets: list[str] | None = None
) -> dict[str, Any]:
    """DaskGraphRunner.run of Rasa 3.6, with each set of targets' graph built once."""
    run_targets = targets if targets else self._graph_schema.target_names
    kept: dict[tuple[str, ...], dict[str, Any]] = self.__dict__.setdefault(_KEPT, {})
    key = tuple(run_targets)
    if key not in kept:
        kept[key] = self._build_dask_graph(self._graph_schema.minimal_graph_schema(run_targets))
    run_graph = dict(kept[key])

    if inputs:
        self._add_inputs_to_graph(inputs, run_graph)

    logger.debug(f"Running graph with inputs: {inputs}, targets: {targets} and {self._execution_context}.")

    try:
        dask_result = dask.get(run_graph, run_targets)
        return dict(dask_result)
    except RuntimeError as e:
        raise GraphRunError("Error running runner.") from e


def install() -> None:
    DaskGraphRunner.run = _run

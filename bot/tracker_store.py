"""The embedded default's tracker store: Rasa's in-memory store, with one store per
process instead of one per loaded model.

Replacing the model through Rasa's HTTP API (PUT /model, what promoting a trained model
does) builds a new agent with a new tracker store from endpoints.yml; Rasa's own
InMemoryTrackerStore would start empty and every customer mid-conversation would lose
it. Production keeps trackers in PostgreSQL and does not need this.
"""

from __future__ import annotations

from typing import Any

from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain

_CONVERSATIONS: dict[str, str] = {}  # sender id -> serialised tracker, for the process's life


class ProcessTrackerStore(InMemoryTrackerStore):
    """Conversations in this process's memory, kept across model swaps."""

    def __init__(self, domain: Domain, event_broker: EventBroker | None = None, **kwargs: Any) -> None:
        super().__init__(domain, event_broker, **kwargs)
        self.store = _CONVERSATIONS

"""What can go wrong when agents take over a conversation."""

from __future__ import annotations


class HandoffError(Exception):
    """Base of the handoff service's named failures."""


class AlreadyClaimed(HandoffError):
    """Another agent was first."""

    def __init__(self, number: str, by: str | None) -> None:
        super().__init__(f"ticket {number} is already claimed by {by}")
        self.number = number
        self.by = by


class NotLive(HandoffError):
    """The customer is not waiting on a live conversation (handed back, resolved, callback)."""


class NotYours(HandoffError):
    """Only the agent who claimed the conversation answers in it."""


class RasaUnavailable(HandoffError):
    """The Rasa server did not take the agent's message for the customer's channel."""

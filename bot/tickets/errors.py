"""The ticket service's named failures: callers answer each one differently."""

from __future__ import annotations


class TicketError(Exception):
    """Base of the ticket service's own errors."""


class TicketNotFound(TicketError, LookupError):
    """No ticket has that number."""


class IllegalTransition(TicketError):
    """The ticket cannot move from its status to the one asked for."""


class InvalidDraft(TicketError, ValueError):
    """The draft is not a ticket that can be filed (unknown category, empty conversation id, ...)."""


class TicketStoreUnavailable(TicketError):
    """The database did not answer: the caller apologises and gives the 95598 line."""


class EventHistoryIsAppendOnly(TicketError):
    """Something tried to change or delete a ticket event: the history is a record, never edited."""

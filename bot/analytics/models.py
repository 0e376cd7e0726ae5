"""Tables of the analytics consumer: the events already counted, the facts of each
conversation, and the dashboard's figures per day (bot/analytics/bookkeeping.py keeps
them, bot/reports.py reads them); and the conversations the bot could not serve, which
the recovery worker hands to a person (bot/cluster/recovery.py)."""

from __future__ import annotations

from sqlalchemy import Column, Date, DateTime, Integer, String, UniqueConstraint

from bot.db import Base


class CountedEventRow(Base):
    """One event of Rasa's stream that has been counted: RabbitMQ may deliver it again,
    and a second delivery finds its key here and changes nothing. A redelivery follows
    the first within the consumer's downtime, so keys are forgotten some time after they
    were counted (bookkeeping.forget_counted), not kept for ever."""

    __tablename__ = "analytics_events"

    key = Column(String(64), primary_key=True)  # sha256 of the event as Rasa published it
    at = Column(DateTime, nullable=False)  # the event's own time
    counted_at = Column(DateTime, index=True)  # when the consumer counted it (local); set on every insert


class ConversationFactsRow(Base):
    """A conversation as the event stream saw it. It starts with the customer's first
    message; until that message is counted (events may arrive out of order when several
    consumers share the queue) the start and the channel are unknown."""

    __tablename__ = "analytics_conversations"

    conversation_id = Column(String(255), primary_key=True)
    channel = Column(String(32))
    started_at = Column(DateTime)
    last_message_at = Column(DateTime)  # the customer's or the bot's
    messages = Column(Integer, nullable=False, default=0)  # the customer's
    relayed = Column(Integer, nullable=False, default=0)  # of them, passed on to an agent
    fallbacks = Column(Integer, nullable=False, default=0)  # turns the fallback answered
    handed_over_at = Column(DateTime)  # when its handoff ticket was filed


class DayFiguresRow(Base):
    """The dashboard's figures of one local day. Conversations and handoffs count on the
    day the conversation started (as containment always has), messages on their own day."""

    __tablename__ = "analytics_days"

    day = Column(Date, primary_key=True)
    conversations = Column(Integer, nullable=False, default=0)
    handed_over = Column(Integer, nullable=False, default=0)
    messages = Column(Integer, nullable=False, default=0)
    relayed = Column(Integer, nullable=False, default=0)
    fallbacks = Column(Integer, nullable=False, default=0)


class InterruptionRow(Base):
    """A moment the bot apologised in place of an action that could not run (nginx's
    actions door when no action server answers: `kind` actions_down). The recovery worker
    keeps the apology's promise: it hands the conversation to a person once the action
    servers answer again, and records when and on which ticket. One row per conversation
    and moment, however often the event is delivered."""

    __tablename__ = "interruptions"
    __table_args__ = (UniqueConstraint("conversation_id", "happened_at", "kind"),)

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(255), nullable=False)
    happened_at = Column(DateTime, nullable=False)  # the apology's own time
    kind = Column(String(32), nullable=False)
    # a worker handing the conversation over holds it until then; after a failed attempt
    # the next one waits until then (set on the conversation's earliest open row)
    claimed_until = Column(DateTime)
    recovered_at = Column(DateTime, index=True)  # when the conversation was handed over
    ticket_number = Column(String(16))  # its handoff ticket; none while the bot still asks for a phone

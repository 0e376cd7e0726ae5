"""Tables of the handoff service: conversations handed to a person, what was said after
the handoff, and every conversation the bot had (for containment)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, Text

from bot.db import Base


class HandoffRow(Base):
    """One hand-over of a conversation to the agents, from the request until it ends."""

    __tablename__ = "handoffs"

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(255), nullable=False, index=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=False, index=True)
    channel = Column(String(32), nullable=False)
    status = Column(String(16), nullable=False, index=True)  # waiting | active | ended | callback
    reason = Column(String(32))  # request_human | fallbacks | identity_locked | frustration
    created_at = Column(DateTime, nullable=False)
    claimed_by = Column(String(64))
    claimed_at = Column(DateTime)
    reminder_sent_at = Column(DateTime)
    ended_at = Column(DateTime)
    ended_by = Column(String(64))
    end_reason = Column(String(16))  # handed_back | resolved
    last_customer_at = Column(DateTime)
    # the conversation while it is live (waiting or active): one live handoff per conversation
    live_key = Column(String(255), unique=True)


class HandoffMessageRow(Base):
    """A line said after the handoff: the customer's, an agent's, or the bot's notice."""

    __tablename__ = "handoff_messages"

    id = Column(Integer, primary_key=True)
    handoff_id = Column(Integer, ForeignKey("handoffs.id"), nullable=False, index=True)
    at = Column(DateTime, nullable=False)
    speaker = Column(String(16), nullable=False)  # customer | agent | bot
    author = Column(String(64))  # the agent's user name
    text = Column(Text, nullable=False)
    delivered_at = Column(DateTime)  # agent lines: when Rasa sent it to the customer's channel
    error = Column(Text)  # agent lines: why it could not be delivered


class ConversationRow(Base):
    """A conversation the bot had, counted once when it starts (containment)."""

    __tablename__ = "conversations"

    conversation_id = Column(String(255), primary_key=True)
    channel = Column(String(32), nullable=False)
    started_at = Column(DateTime, nullable=False, index=True)

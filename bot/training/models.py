"""Tables of the trainers' inbox and of model promotions."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, ForeignKey, Integer, String, Text

from bot.db import Base


class InboxItemRow(Base):
    """One text the bot misunderstood, personal data already replaced by placeholders;
    every sighting of the same text counts here."""

    __tablename__ = "nlu_inbox_items"

    id = Column(Integer, primary_key=True)
    group_key = Column(String(64), nullable=False, unique=True)  # sha256 of the normalised text
    text = Column(Text, nullable=False)  # as first typed, redacted
    sightings = Column(Integer, nullable=False, default=0)
    predicted_intent = Column(String(64))  # of the latest sighting
    confidence = Column(Float)
    reasons = Column(String(64), nullable=False, default="")  # low_confidence,fallback,flagged
    channels = Column(String(128), nullable=False, default="")  # rest,socketio,wechat,...
    first_seen_at = Column(DateTime, nullable=False)
    last_seen_at = Column(DateTime, nullable=False, index=True)
    status = Column(String(16), nullable=False, default="open", index=True)  # open | labelled | discarded
    label_intent = Column(String(64))
    example = Column(Text)  # what went into the training data, with its entity marks
    training_file = Column(String(128))
    decided_by = Column(String(64))
    decided_at = Column(DateTime)


class InboxSightingRow(Base):
    """One customer message behind an inbox item; its key makes a retried turn count once."""

    __tablename__ = "nlu_inbox_sightings"

    key = Column(String(64), primary_key=True)  # sha256 of conversation and message: no ids stored
    item_id = Column(Integer, ForeignKey("nlu_inbox_items.id"), nullable=False, index=True)
    at = Column(DateTime, nullable=False)
    channel = Column(String(32), nullable=False)
    reason = Column(String(16), nullable=False)
    predicted_intent = Column(String(64))
    confidence = Column(Float)
    flagged_by = Column(String(64))


class PromotionRow(Base):
    """A model put in front of customers (or refused), with the figures that decided it."""

    __tablename__ = "model_promotions"

    id = Column(Integer, primary_key=True)
    at = Column(DateTime, nullable=False)
    model = Column(String(255), nullable=False)
    candidate_macro_f1 = Column(Float)
    current_macro_f1 = Column(Float)
    forced = Column(Integer, nullable=False, default=0)
    outcome = Column(String(16), nullable=False)  # promoted | refused | failed
    detail = Column(Text)
    by = Column(String(64))

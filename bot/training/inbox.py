"""The trainers' inbox: customer messages the bot was unsure of (top intent below the
fallback threshold), that ended in a fallback, or that an agent flagged. Personal data
is replaced by placeholders before anything is stored; the same text is one item with a
count, and each message behind it counts once however often its turn is retried."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import yaml
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.config import PROJECT_ROOT
from bot.masking import redact
from bot.text import normalize
from bot.tickets.store import read, write
from bot.training.models import InboxItemRow, InboxSightingRow

REASONS = {"low_confidence": "把握不大", "fallback": "没听懂", "flagged": "坐席标记"}
STATUSES = {"open": "待处理", "labelled": "已标注", "discarded": "已丢弃"}
MAX_TEXT = 500  # longer messages are kept cut, with a mark


class NotOpen(Exception):
    """The inbox item was labelled or discarded already (by someone else, perhaps)."""


class NoSuchItem(Exception):
    """No inbox item has this number."""


@dataclass(frozen=True)
class InboxItem:
    id: int
    text: str
    sightings: int
    predicted_intent: str | None
    confidence: float | None
    reasons: tuple[str, ...]
    channels: tuple[str, ...]
    first_seen_at: datetime
    last_seen_at: datetime
    status: str
    label_intent: str | None
    example: str | None
    training_file: str | None
    decided_by: str | None


@lru_cache(maxsize=1)
def fallback_threshold() -> float:
    """The FallbackClassifier's threshold in config.yml: below it the bot is unsure."""
    config = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text(encoding="utf-8"))
    for component in config.get("pipeline", []):
        if component.get("name") == "FallbackClassifier":
            return float(component.get("threshold", 0.3))
    return 0.3


def reason_for(intent: str | None, confidence: float | None) -> str | None:
    """Why this parse belongs in the inbox, or None (the FallbackClassifier names an
    unsure parse `nlu_fallback`)."""
    if intent == "nlu_fallback":
        return "low_confidence"
    if confidence is not None and confidence < fallback_threshold():
        return "low_confidence"
    return None


def best_guess(
    intent: str | None, confidence: float | None, ranking: Iterable[dict]
) -> tuple[str | None, float | None]:
    """The intent the model leaned to, skipping `nlu_fallback`."""
    if intent != "nlu_fallback":
        return intent, confidence
    for candidate in ranking:
        if candidate.get("name") not in (None, "nlu_fallback"):
            return candidate["name"], candidate.get("confidence")
    return None, None


def sighting_key(conversation_id: str, message_key: str) -> str:
    return hashlib.sha256(f"{conversation_id}\x1f{message_key}".encode()).hexdigest()


def collect(
    sessions: sessionmaker,
    text: str,
    *,
    key: str,
    reason: str,
    channel: str,
    moment: datetime,
    predicted_intent: str | None = None,
    confidence: float | None = None,
    names: Iterable[str] = (),
    flagged_by: str | None = None,
) -> int | None:
    """Put one customer message in the inbox (redacted first); returns the item's number,
    or None for a message with nothing to learn from (empty)."""
    if reason not in REASONS:
        raise ValueError(f"unknown inbox reason {reason!r}")
    shown = redact(text.strip(), names)
    if len(shown) > MAX_TEXT:
        shown = shown[:MAX_TEXT] + "…"
    grouped = normalize(shown)
    if not grouped:
        return None
    group_key = hashlib.sha256(grouped.encode()).hexdigest()

    def work(session: Session) -> int:
        item = _item_for(session, group_key, shown, moment)
        known = session.get(InboxSightingRow, key)
        if known is not None:  # the same message again (a retried turn): one more reason at most
            item.reasons = _joined(item.reasons, reason)
            return item.id
        session.add(
            InboxSightingRow(
                key=key, item_id=item.id, at=moment, channel=channel, reason=reason,
                predicted_intent=predicted_intent, confidence=confidence, flagged_by=flagged_by,
            )
        )  # fmt: skip
        session.execute(
            update(InboxItemRow).where(InboxItemRow.id == item.id).values(sightings=InboxItemRow.sightings + 1)
        )
        item.reasons = _joined(item.reasons, reason)
        item.channels = _joined(item.channels, channel)
        item.last_seen_at = max(item.last_seen_at, moment)
        if predicted_intent is not None:
            item.predicted_intent, item.confidence = predicted_intent, confidence
        if item.status == "discarded" and reason == "flagged":
            item.status = "open"  # an agent says it matters after all
        return item.id

    for attempt in range(2):
        try:
            return write(sessions, work, integrity_errors=True)
        except IntegrityError:  # a concurrent first sighting of the same text or message
            if attempt:
                raise
    raise AssertionError("unreachable")


def _item_for(session: Session, group_key: str, text: str, moment: datetime) -> InboxItemRow:
    item = session.scalars(select(InboxItemRow).where(InboxItemRow.group_key == group_key)).first()
    if item is None:
        item = InboxItemRow(
            group_key=group_key, text=text, sightings=0, reasons="", channels="",
            first_seen_at=moment, last_seen_at=moment, status="open",
        )  # fmt: skip
        session.add(item)
        session.flush()
    return item


def _joined(values: str, value: str) -> str:
    present = [v for v in values.split(",") if v]
    return ",".join(present if value in present else [*present, value])


def items(sessions: sessionmaker, status: str = "open", limit: int = 200) -> list[InboxItem]:
    """The inbox, the most frequent first (then the most recent)."""
    query = (
        select(InboxItemRow)
        .where(InboxItemRow.status == status)
        .order_by(InboxItemRow.sightings.desc(), InboxItemRow.last_seen_at.desc(), InboxItemRow.id)
        .limit(limit)
    )
    return read(sessions, lambda session: [_view(row) for row in session.scalars(query)])


def item(sessions: sessionmaker, item_id: int) -> InboxItem:
    def work(session: Session) -> InboxItem:
        row = session.get(InboxItemRow, item_id)
        if row is None:
            raise NoSuchItem(f"no inbox item {item_id}")
        return _view(row)

    return read(sessions, work)


def counts(sessions: sessionmaker) -> dict[str, int]:
    """How many items each status holds."""
    query = select(InboxItemRow.status, func.count()).group_by(InboxItemRow.status)
    found = read(sessions, lambda session: dict(session.execute(query).all()))
    return {status: int(found.get(status, 0)) for status in STATUSES}


def decide(
    sessions: sessionmaker,
    item_id: int,
    by: str,
    moment: datetime,
    *,
    intent: str | None = None,
    example: str | None = None,
    training_file: str | None = None,
) -> InboxItem:
    """Close an open item: labelled (with the example written) or, without an intent,
    discarded. Only one decision wins."""
    values = {
        "status": "labelled" if intent else "discarded",
        "label_intent": intent,
        "example": example,
        "training_file": training_file,
        "decided_by": by,
        "decided_at": moment,
    }

    def work(session: Session) -> InboxItem:
        row = session.get(InboxItemRow, item_id)
        if row is None:
            raise NoSuchItem(f"no inbox item {item_id}")
        changed = session.execute(
            update(InboxItemRow).where(InboxItemRow.id == item_id, InboxItemRow.status == "open").values(**values)
        ).rowcount
        if not changed:
            raise NotOpen(f"inbox item {item_id} is {row.status} already")
        session.refresh(row)
        return _view(row)

    return write(sessions, work)


def _view(row: InboxItemRow) -> InboxItem:
    return InboxItem(
        id=row.id,
        text=row.text,
        sightings=row.sightings,
        predicted_intent=row.predicted_intent,
        confidence=row.confidence,
        reasons=tuple(r for r in row.reasons.split(",") if r),
        channels=tuple(c for c in row.channels.split(",") if c),
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        status=row.status,
        label_intent=row.label_intent,
        example=row.example,
        training_file=row.training_file,
        decided_by=row.decided_by,
    )

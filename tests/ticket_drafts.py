"""Drafts for the ticket tests: each test files in conversations and on accounts of its own."""

from __future__ import annotations

import uuid
from datetime import datetime

from bot.tickets.records import Draft

NOW = datetime(2026, 11, 24, 10, 0)


def new_account() -> str:
    """A 10-digit account of the test's own, so other tests' tickets never count as repeats."""
    return "39" + f"{uuid.uuid4().int % 10**8:08d}"


def draft(**changes) -> Draft:
    values = {
        "request_type": "complaint",
        "subject": "complaint",
        "category": "tariff_billing",
        "channel": "rest",
        "conversation_id": f"test-{uuid.uuid4().hex}",
        "description": "电费比上个月高了很多",
    }
    return Draft(**{**values, **changes})

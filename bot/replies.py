"""The texts actions send, chosen from bot/replies.yml and filled with data."""

from __future__ import annotations

import random
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import yaml

CATALOGUE = Path(__file__).with_name("replies.yml")


@lru_cache(maxsize=1)
def catalogue() -> dict[str, list[str]]:
    with CATALOGUE.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def render(key: str, avoid: Iterable[str] = (), **values: object) -> str:
    """One variant of `key`, filled with `values`; variants already said (`avoid`) come last."""
    said = set(avoid)
    texts = [text.format(**values) for text in catalogue()[key]]
    fresh = [text for text in texts if text not in said]
    return random.choice(fresh or texts)

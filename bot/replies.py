"""The texts actions send, chosen from bot/replies.yml (data-filled answers) and from
the scripted responses of domain.yml (the empathy lines), and filled with values."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import yaml

from bot.config import PROJECT_ROOT

CATALOGUE = Path(__file__).with_name("replies.yml")
DOMAIN = PROJECT_ROOT / "domain.yml"


@lru_cache(maxsize=1)
def catalogue() -> dict[str, list[str]]:
    with CATALOGUE.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@lru_cache(maxsize=1)
def scripted() -> dict[str, list[str]]:
    """The text variants of every response in domain.yml."""
    with DOMAIN.open(encoding="utf-8") as handle:
        responses = yaml.safe_load(handle)["responses"]
    return {name: [variant["text"] for variant in variants] for name, variants in responses.items()}


def render(key: str, avoid: Iterable[str] = (), **values: object) -> str:
    """One variant of `key`, filled with `values`; variants already said (`avoid`) come last."""
    said = list(avoid)
    texts = [text.format(**values) for text in catalogue()[key]]
    # a variant was said when it was all or part of something said (an empathy line's next step)
    fresh = [text for text in texts if not any(text in s for s in said)]
    return random.choice(fresh or texts)


def render_scripted(name: str, avoid: Iterable[str] = (), **values: object) -> str:
    """One variant of a domain.yml response whose scripted words (its longest part
    without placeholders) have not been said yet in this conversation."""
    said = list(avoid)
    texts = scripted()[name]
    fresh = [t for t in texts if not any(_scripted_part(t) in s for s in said)]
    return random.choice(fresh or texts).format(**values)


def _scripted_part(template: str) -> str:
    return max(re.split(r"\{\w+\}", template), key=len)

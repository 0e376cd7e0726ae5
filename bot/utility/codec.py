"""The JSON shape of utility records on the wire (company API <-> HttpUtilityData)."""

from __future__ import annotations

import dataclasses
import typing
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

T = TypeVar("T")


def to_json(record: Any) -> dict[str, Any]:
    """A record as JSON-ready values: dates in ISO format, money and kWh as strings."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if isinstance(value, (date, datetime)):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        out[field.name] = value
    return out


def from_json(cls: type[T], data: dict[str, Any]) -> T:
    """The inverse of `to_json`, typed by the record's annotations. A field with a default
    may be missing (a company system older than the field); any other missing field is a KeyError."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if field.name not in data and field.default is not dataclasses.MISSING:
            continue
        raw = data[field.name]
        kind = hints[field.name]
        if raw is None:
            values[field.name] = None
        elif datetime in _members(kind):
            values[field.name] = datetime.fromisoformat(raw)
        elif date in _members(kind):
            values[field.name] = date.fromisoformat(raw)
        elif Decimal in _members(kind):
            values[field.name] = Decimal(raw)
        elif bool in _members(kind):
            if not isinstance(raw, bool):  # "false" would read as true
                raise ValueError(f"{field.name} must be true or false, not {raw!r}")
            values[field.name] = raw
        else:
            values[field.name] = raw
    return cls(**values)


def _members(kind: Any) -> tuple:
    return typing.get_args(kind) or (kind,)

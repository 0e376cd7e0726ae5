"""Labelling an inbox item: the trainer names the intent (existing or new) and marks the
entities; the example is checked, then written into data/nlu and the item closed. The
console and the command line both call `label` and `discard`."""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from bot.masking import ACCOUNT_PLACEHOLDER, NAME_PLACEHOLDER, PHONE_PLACEHOLDER, PLACEHOLDERS
from bot.training import inbox
from bot.training.checks import Finding, in_holdout, misaligned, same_and_near, validate_change
from bot.training.nlu_data import INTENT_NAME, TOPIC_NAME, Entity, NluData, annotate, clean_text, spans

# placeholders become made-up values the model learns the entity from
_FAKE = {
    ACCOUNT_PLACEHOLDER: ("account_number", lambda n: f"32{n % 10**8:08d}"),
    PHONE_PLACEHOLDER: ("phone", lambda n: f"139{n % 10**8:08d}"),
    NAME_PLACEHOLDER: ("person_name", lambda n: ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆")[n % 6]),
}
MAX_EXAMPLE = 200


@dataclass
class Outcome:
    """What became of a label: accepted (and where it went) or refused, with the reasons."""

    accepted: bool
    intent: str
    example: str | None = None
    file: str | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    forceable: bool = False  # every problem is one a trainer may overrule


def prepare(text: str, entities: list[Entity]) -> tuple[str, list[Entity], list[str]]:
    """The text with placeholders filled by made-up values (marked as their entities),
    normalised to one line; and any problem with it in plain words."""
    problems = []
    text = clean_text(text)
    seed = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    marked = list(entities)
    for placeholder, (entity, fake) in _FAKE.items():
        while placeholder in text:
            value = fake(seed)
            seed //= 7
            text = text.replace(placeholder, value, 1)
            marked.append(Entity(value, entity))
    left = [p for p in PLACEHOLDERS if p in text]
    if left:
        problems.append(f"句子里还有 {'、'.join(left)}：请改写成普通说法或删掉，再标注。")
    if not text:
        problems.append("句子是空的。")
    elif len(text) > MAX_EXAMPLE:
        problems.append(f"句子太长（{len(text)} 字）：训练例句请控制在 {MAX_EXAMPLE} 字以内，只留关键的一句。")
    return text, [Entity(clean_text(e.value), e.entity) for e in marked], problems


def check(data: NluData, intent: str, text: str, entities: list[Entity], *, topic: str | None = None,
          force: bool = False) -> Outcome:  # fmt: skip
    """Everything that must hold before the example is written, without writing it."""
    outcome = Outcome(False, intent)
    if not INTENT_NAME.match(intent) or intent.startswith(("EXTERNAL_", "nlu_fallback")):
        outcome.problems.append(f"意图名 {intent!r} 不合规：用小写英文字母、数字和下划线，例如 ask_invoice。")
        return outcome
    if topic is not None and not TOPIC_NAME.match(topic):
        outcome.problems.append(f"主题文件名 {topic!r} 不合规：用小写英文字母、数字和下划线，例如 billing。")
        return outcome
    text, entities, problems = prepare(text, entities)
    outcome.problems += problems
    known_entities = set(data.domain_entities())
    for entity in entities:
        if entity.entity not in known_entities:
            usable = "、".join(sorted(known_entities))
            outcome.problems.append(f"实体 {entity.entity} 不在 domain.yml 里（可用：{usable}）。")
    try:
        example = annotate(text, entities)
    except ValueError as error:
        outcome.problems.append(f"{error}，无法标成实体。")
        return outcome
    broken = misaligned(data.project, text, spans(text, entities))
    if broken:
        outcome.problems.append(
            f"实体「{'」「'.join(broken)}」和分词的边界对不上，模型学不到；"
            f"请只标完整的词（例如「上个月」而不是「上个」），或把这个词加进 data/dictionary。"
        )
    if outcome.problems:
        return outcome
    known = data.intent_files()
    if intent not in known:
        where = data.file_for(intent, topic).relative_to(data.project)
        outcome.notes.append(f"{intent} 是新意图，例句会写进 {where}，意图名会加进 domain.yml。")
    findings = same_and_near(data, text, intent)
    held_out = in_holdout(data.project, text)
    if held_out:
        findings.append(held_out)
    if not any(f.blocking and not f.forceable for f in findings):
        findings += validate_change(data, lambda copy: _write(copy, intent, example, topic))
    return _judge(outcome, findings, force, example, str(data.file_for(intent, topic).relative_to(data.project)))


def _judge(outcome: Outcome, findings: list[Finding], force: bool, example: str, file: str) -> Outcome:
    blocking = [f for f in findings if f.blocking]
    outcome.notes += [f.message for f in findings if not f.blocking]
    if force:
        outcome.notes += [f"已强制接受：{f.message}" for f in blocking if f.forceable]
        blocking = [f for f in blocking if not f.forceable]
    outcome.problems += [f.message for f in blocking]
    outcome.forceable = bool(blocking) and all(f.forceable for f in blocking)
    outcome.accepted = not outcome.problems
    outcome.example, outcome.file = example, file
    return outcome


def _write(data: NluData, intent: str, example: str, topic: str | None) -> str:
    data.add_example(intent, example, topic=topic, note=f"added from the trainers' inbox on {date.today():%Y-%m-%d}")
    return intent


@contextmanager
def _data_lock(data: NluData) -> Iterator[None]:
    """One change to the training files at a time (two trainers, or console and CLI)."""
    path = data.project / "var" / "training-data.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def label(
    sessions: sessionmaker,
    project: Path,
    item_id: int,
    intent: str,
    by: str,
    moment: datetime,
    *,
    entities: list[Entity] | None = None,
    text: str | None = None,
    topic: str | None = None,
    force: bool = False,
) -> Outcome:
    """Check the inbox item (or the trainer's rewording of it, `text`) as an example of
    `intent`; if it passes, write it into the training data and close the item."""
    item = inbox.item(sessions, item_id)
    if item.status != "open":
        raise inbox.NotOpen(f"inbox item {item_id} is {item.status} already")
    data = NluData(project)
    with _data_lock(data):
        outcome = check(data, intent, text or item.text, entities or [], topic=topic, force=force)
        if outcome.accepted:
            touched = [data.file_for(intent, topic), data.domain_path]
            before = {path: path.read_text(encoding="utf-8") if path.exists() else None for path in touched}
            _write(data, intent, outcome.example, topic)
            try:
                inbox.decide(
                    sessions, item_id, by, moment, intent=intent, example=outcome.example, training_file=outcome.file
                )
            except Exception:  # closed meanwhile, or the database is down: the files as they were
                for path, content in before.items():
                    path.write_text(content, encoding="utf-8") if content is not None else path.unlink()
                raise
    return outcome


def discard(sessions: sessionmaker, item_id: int, by: str, moment: datetime) -> inbox.InboxItem:
    """Nothing to learn from this item (noise, or a customer's personal matter)."""
    return inbox.decide(sessions, item_id, by, moment)

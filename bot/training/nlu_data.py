"""The training data as trainers change it: which file of data/nlu holds an intent, the
examples already there, and writing one more example (or a new intent) into the right
place as a text edit, so the files keep their comments, order and topic grouping."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.text import normalize

INTENT_NAME = re.compile(r"^[a-z][a-z0-9_]{1,48}(/[a-z][a-z0-9_]{1,48})?$")
TOPIC_NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
# an annotated entity in Rasa's markdown-like syntax: [上个月](month) or [x]{"entity": ...}
_MARK = re.compile(r"\[([^\]]+)\](?:\((\w+)(?::[^)]*)?\)|\{[^}]*\})")
NEW_FILE_HEADER = 'version: "3.1"\n\nnlu:\n'


@dataclass(frozen=True)
class Example:
    intent: str
    text: str  # plain, entity marks removed
    file: str  # relative to the project, data/nlu/billing.yml


@dataclass(frozen=True)
class Entity:
    value: str
    entity: str


def plain(example: str) -> str:
    """The text of an annotated example: [上个月](month)的电费 -> 上个月的电费."""
    return _MARK.sub(lambda m: m[1], example)


def annotate(text: str, entities: list[Entity]) -> str:
    """Rasa's markup for `text` with each entity's first free occurrence marked."""
    spans = []
    for entity in entities:
        start = _free_occurrence(text, entity.value, spans)
        if start is None:
            raise ValueError(f"『{entity.value}』不在这句话里")
        spans.append((start, start + len(entity.value), entity.entity))
    marked, end = [], 0
    for start, stop, name in sorted(spans):
        marked += [text[end:start], f"[{text[start:stop]}]({name})"]
        end = stop
    return "".join(marked) + text[end:]


def spans(text: str, entities: list[Entity]) -> list[tuple[int, int, str]]:
    """(start, end, entity) of each entity in `text`, as annotate() marks them."""
    found: list[tuple[int, int, str]] = []
    for entity in entities:
        start = _free_occurrence(text, entity.value, found)
        if start is not None:
            found.append((start, start + len(entity.value), entity.entity))
    return found


def _free_occurrence(text: str, value: str, taken: list[tuple[int, int, str]]) -> int | None:
    start = text.find(value) if value else -1
    while start >= 0:
        if all(start >= stop or start + len(value) <= begin for begin, stop, _ in taken):
            return start
        start = text.find(value, start + 1)
    return None


class NluData:
    """data/nlu/*.yml and domain.yml of one project (the real one, or a copy)."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.nlu_dir = project / "data" / "nlu"
        self.domain_path = project / "domain.yml"

    def files(self) -> list[Path]:
        return sorted(p for p in self.nlu_dir.glob("*.yml"))

    def topics(self) -> list[str]:
        """The topic files an example can go to (regex.yml holds patterns, not intents)."""
        return [p.stem for p in self.files() if self._intents_in(p)]

    def examples(self) -> list[Example]:
        found = []
        for path in self.files():
            for block in self._blocks(path):
                for line in (block.get("examples") or "").splitlines():
                    text = line.strip().removeprefix("- ").strip()
                    if text:
                        found.append(Example(block["intent"], plain(text), self._relative(path)))
        return found

    def intent_files(self) -> dict[str, Path]:
        return {intent: path for path in self.files() for intent in self._intents_in(path)}

    def domain_intents(self) -> list[str]:
        domain = yaml.safe_load(self.domain_path.read_text(encoding="utf-8")) or {}
        return [i if isinstance(i, str) else next(iter(i)) for i in domain.get("intents", [])]

    def domain_entities(self) -> list[str]:
        domain = yaml.safe_load(self.domain_path.read_text(encoding="utf-8")) or {}
        return [e if isinstance(e, str) else next(iter(e)) for e in domain.get("entities", [])]

    def file_for(self, intent: str, topic: str | None = None) -> Path:
        """Where an example of `intent` goes: the file that has the intent already; for a
        new intent, the topic file named (a retrieval intent goes with its siblings)."""
        known = self.intent_files()
        if intent in known:
            return known[intent]
        parent = intent.split("/")[0] + "/"
        sibling = next((path for name, path in known.items() if name.startswith(parent)), None)
        if sibling is not None:
            return sibling
        return self.nlu_dir / f"{topic or 'other'}.yml"

    def add_example(self, intent: str, example: str, *, topic: str | None = None, note: str = "") -> Path:
        """Append `example` (annotated, one line) under `intent`; a new intent gets its own
        block at the end of its topic file, and its name in domain.yml."""
        path = self.file_for(intent, topic)
        line = f"    - {example}\n"
        text = path.read_text(encoding="utf-8") if path.exists() else NEW_FILE_HEADER
        lines = text.splitlines(keepends=True)
        at = self._end_of_block(lines, intent)
        if at is None:
            if text and not text.endswith("\n"):
                text += "\n"
            rule = "# " + "-" * 75 + "\n"
            heading = f"# {intent}: {note}\n" if note else f"# {intent}\n"
            text += f"\n{rule}{heading}{rule}- intent: {intent}\n  examples: |\n{line}"
        else:
            lines.insert(at, line)
            text = "".join(lines)
        path.write_text(text, encoding="utf-8")
        if "/" not in intent and intent not in self.domain_intents():
            self._add_domain_intent(intent)
        return path

    def _end_of_block(self, lines: list[str], intent: str) -> int | None:
        """The line after the last example of `intent`'s block, or None if there is none."""
        start = next((i for i, line in enumerate(lines) if line.rstrip() == f"- intent: {intent}"), None)
        if start is None:
            return None
        end = start + 1
        for i in range(start + 1, len(lines)):
            if lines[i].strip() and not lines[i].startswith(" "):
                break  # the next block, or a comment heading it
            if lines[i].startswith("    ") and lines[i].strip().startswith("- ") or lines[i].strip() == "examples: |":
                end = i + 1
        return end

    def _add_domain_intent(self, intent: str) -> None:
        """Put the intent at the end of the customers' intents in domain.yml (before the
        agents' EXTERNAL_ ones), as a text edit that keeps the file's comments."""
        lines = self.domain_path.read_text(encoding="utf-8").splitlines(keepends=True)
        start = lines.index("intents:\n")
        last = start
        for i in range(start + 1, len(lines)):
            stripped = lines[i].strip()
            if stripped.startswith("- ") and not stripped.startswith("- EXTERNAL_"):
                last = i
            elif stripped and not lines[i].startswith(" "):
                break
        lines.insert(last + 1, f"  - {intent}\n")
        self.domain_path.write_text("".join(lines), encoding="utf-8")

    def _blocks(self, path: Path) -> list[dict]:
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return [block for block in content.get("nlu") or [] if isinstance(block, dict) and "intent" in block]

    def _intents_in(self, path: Path) -> list[str]:
        return [block["intent"] for block in self._blocks(path)]

    def _relative(self, path: Path) -> str:
        return str(path.relative_to(self.project))


def clean_text(text: str) -> str:
    """One line of normalised text (the normaliser would otherwise shift the entities'
    offsets when it reads the example at training time)."""
    return normalize(" ".join(text.split()))

"""What is checked before an example joins the training data, each finding in plain
words: the same text under two intents, near-duplicates already present, entity marks
the tokenizer would split, and `rasa data validate` on a copy of the project."""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jieba

from bot.empathy import TOPICS, response_name
from bot.handoff.names import EXTERNAL_ACTIONS
from bot.text import normalize
from bot.training.nlu_data import Example, NluData

NEAR = 0.85  # difflib ratio from which two examples say the same thing
# Rasa 3.6 merges every retrieval intent into the domain it came from and warns about the
# "duplicate"; listing `faq` in domain.yml is still required.
KNOWN_RASA_FALSE_POSITIVE = "The following duplicated intents have been found across multiple domain files: faq"
_UNUSED_UTTERANCE = re.compile(r"The utterance '(\w+)' is not used in any story or rule")
_AGENTS_INTENT = re.compile(
    r"The intent '(\w+)' (is listed in the domain file, but is not found in the NLU training data"
    r"|is not used in any story or rule)"
)


@dataclass(frozen=True)
class Finding:
    message: str
    blocking: bool  # refuses the example (unless forced, for near-duplicates)
    forceable: bool = False


def same_and_near(data: NluData, text: str, intent: str, examples: list[Example] | None = None) -> list[Finding]:
    """The same text under any intent, and texts nearly the same, in plain words."""
    mine = normalize(text)
    findings = []
    for example in examples if examples is not None else data.examples():
        theirs = normalize(example.text)
        if theirs == mine:
            if example.intent == intent:
                findings.append(Finding(f"这句话已经在意图 {intent} 的例句里了（{example.file}），不用再加。", True))
            else:
                findings.append(
                    Finding(
                        f"同一句话已经标成了意图 {example.intent}（{example.file}）。"
                        f"一句话只能属于一个意图，否则模型无所适从；请确认哪个意图是对的。",
                        True,
                    )
                )
            continue
        matcher = difflib.SequenceMatcher(None, mine, theirs, autojunk=False)
        if matcher.real_quick_ratio() < NEAR or matcher.quick_ratio() < NEAR or (ratio := matcher.ratio()) < NEAR:
            continue
        if example.intent == intent:
            findings.append(
                Finding(f"和已有例句「{example.text}」几乎一样（相似度 {ratio:.0%}），再加一句帮助不大。", False)
            )
        else:
            findings.append(
                Finding(
                    f"和意图 {example.intent} 的例句「{example.text}」几乎一样（相似度 {ratio:.0%}，"
                    f"{example.file}），标成 {intent} 会让两个意图互相打架。确认无误可以强制接受。",
                    True,
                    forceable=True,
                )
            )
    return findings


def in_holdout(project: Path, text: str) -> Finding | None:
    """Held-out examples judge the models; trained on, they would judge nothing."""
    from rasa.shared.nlu.training_data.loading import load_data

    path = project / "holdout" / "nlu.yml"
    held_out = {normalize(m.get("text")) for m in load_data(str(path)).intent_examples} if path.exists() else set()
    if normalize(text) in held_out:
        return Finding("这句话在留出集（holdout/nlu.yml）里，是用来考模型的，拿去训练会让评估失真。换个说法吧。", True)
    return None


@lru_cache(maxsize=4)
def _tokenizer(dictionary: Path) -> jieba.Tokenizer:
    tokenizer = jieba.Tokenizer()
    for path in sorted(dictionary.iterdir()) if dictionary.is_dir() else ():
        tokenizer.load_userdict(str(path))
    return tokenizer


def misaligned(project: Path, text: str, spans: list[tuple[int, int, str]]) -> list[str]:
    """Entity values that do not start and end on a word boundary of the JiebaTokenizer
    (with the project's dictionary): the model cannot learn those."""
    tokens = list(_tokenizer(project / "data" / "dictionary").tokenize(text))
    starts, ends = {start for _, start, _ in tokens}, {end for _, _, end in tokens}
    return [text[start:end] for start, end, _ in spans if start not in starts or end not in ends]


def allowed_warning(line: str, intent: str | None = None) -> bool:
    """Warnings of `rasa data validate` that are expected: Rasa's faq false positive, the
    empathy lines spoken by actions, the agents' EXTERNAL_ intents."""
    spoken_by_actions = {response_name(topic) for topic in TOPICS}
    unused = _UNUSED_UTTERANCE.search(line)
    external = _AGENTS_INTENT.search(line)
    return (
        KNOWN_RASA_FALSE_POSITIVE in line
        or (unused is not None and unused[1] in spoken_by_actions)
        or (external is not None and external[1] in EXTERNAL_ACTIONS)
    )


def validation_warnings(project: Path) -> tuple[bool, list[str]]:
    """Run `rasa data validate` in `project`: (passed, the warning and error lines)."""
    rasa = Path(sys.executable).with_name("rasa")
    result = subprocess.run(
        [str(rasa), "data", "validate"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if "UserWarning" in line or "ERROR" in line]
    return result.returncode == 0, lines


def validate_change(data: NluData, change: Callable[[NluData], str | None]) -> list[Finding]:
    """Make `change(copy)` on a scratch copy of the project's training files and domain,
    then run `rasa data validate` there: what it reports about the change."""
    with tempfile.TemporaryDirectory(prefix="nlu-check-") as scratch:
        copy = Path(scratch)
        for name in ("config.yml", "domain.yml"):
            shutil.copy2(data.project / name, copy / name)
        shutil.copytree(data.project / "data", copy / "data")
        intent = change(NluData(copy))
        passed, lines = validation_warnings(copy)
    findings = []
    for line in lines:
        if allowed_warning(line):
            continue
        message = line.split("UserWarning:", 1)[-1].strip()
        if intent and f"'{intent}'" in line and "not used in any story or rule" in line:
            findings.append(
                Finding(
                    f"新意图 {intent} 还没有规则或故事：模型能认出它，但机器人还不知道怎么回答。"
                    f"按 docs/adding-an-intent.md 补上回复和规则。",
                    False,
                )
            )
        else:
            findings.append(Finding(f"rasa data validate 报告：{message}", True))
    if not passed and not any(f.blocking for f in findings):
        findings.append(Finding("rasa data validate 没有通过（详见服务器日志）。", True))
    return findings


def _env() -> dict[str, str]:
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

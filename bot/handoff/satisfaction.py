"""The customer's answer to "how satisfied were you, 1 to 5": a score and any comment."""

from __future__ import annotations

import re

from bot.text import normalize

# a bare digit is a score only standing alone ("5", "5，很好"): not "停电2天了", "3号楼", "等了5分钟"
_DIGIT = re.compile(r"(?<![\d.])([1-5])(?:\s*(?:分(?!钟)|星|颗星)|(?![\d.\w]))")
_HANZI = re.compile(r"([一二三四五])\s*(?:分(?!钟)|星|颗星)")
_HANZI_SCORES = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5}
# longest first: "非常不满意" must not be read as "满意". The 满意 words count anywhere in a
# message that is not a question; 一般/还行/凑合 only opening it ("电费一般多少" is no verdict)
_WORDS = (
    ("非常不满意", 1),
    ("很不满意", 1),
    ("特别不满意", 1),
    ("不太满意", 2),
    ("不满意", 2),
    ("一般般", 3),
    ("一般", 3),
    ("还行", 3),
    ("凑合", 3),
    ("非常满意", 5),
    ("很满意", 5),
    ("特别满意", 5),
    ("满意", 4),
)
# a verdict opens the message ("满意，谢谢", "还算满意"); a question is not one ("满意吗？", "一般多少钱")
_LEAD = re.compile(r"^(?:我觉得|感觉|总体|整体|还算|比较|挺|蛮)*")
_QUESTION = re.compile(r"[?？]|吗|么|多少|多久|不行")
_FILLER = re.compile(r"^[\s,.!?;:，。！？；：、~～…]+|[\s,.!?;:，。！？；：、~～…]+$")


def parse_rating(text: str | None) -> tuple[int, str | None] | None:
    """(score, comment) from "5", "4分，客服很耐心", "非常满意"; None when the message is
    not a rating (the customer has moved on to something else)."""
    typed = normalize(text)
    if not typed.strip():
        return None
    for pattern in (_DIGIT, _HANZI):
        found = pattern.search(typed)
        if found:
            score = int(found[1]) if found[1].isdigit() else _HANZI_SCORES[found[1]]
            return score, _comment(typed[: found.start()] + " " + typed[found.end() :])
    verdict = _LEAD.sub("", _FILLER.sub("", typed))
    if _QUESTION.search(verdict):
        return None
    for word, score in _WORDS:
        at = verdict.find(word)
        if at == 0 or (at > 0 and "满意" in word):
            # the customer's own words are the comment, unless they are the verdict alone
            return score, _comment(text or "") if len(verdict) > len(word) + 2 else None
    return None


def _comment(rest: str) -> str | None:
    rest = _FILLER.sub("", rest.strip())
    return rest or None

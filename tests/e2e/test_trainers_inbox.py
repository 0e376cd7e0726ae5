"""The trainers' inbox fills from real conversations through the Rasa and action servers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.db import session_factory
from bot.training import inbox
from bot.training.models import InboxItemRow, InboxSightingRow
from tests.e2e.conftest import Conversation, Stack

pytestmark = pytest.mark.e2e


def _parse_of_last_message(stack: Stack, sender: str) -> dict:
    return [e for e in stack.tracker_events(sender) if e["event"] == "user"][-1]["parse_data"]


def _items(stack: Stack) -> list[InboxItemRow]:
    with session_factory(stack.database_url)() as session:
        return list(session.scalars(select(InboxItemRow)))


# Nonsense about "that thing": the model sends some of it to nlu_fallback and places the
# rest (often as `inform`); which ones depends on the training run, so the fixtures ask the
# running server and take the first it cannot place with every phone or name used below.
NONSENSE = (
    "那个圆不溜秋的东西咋回事", "咕噜咕噜的东西能不能弄一下", "那个咯吱咯吱响的铁疙瘩谁来弄", "扑通扑通那个啥能弄不",
    "稀里哗啦一堆东西谁管", "嘎吱嘎吱那玩意你们弄吗", "楼道里那个黑乎乎的箱子是谁的", "嗡嗡嗡的那玩意儿你们管不管",
)
PHONES = ("13812345678", "13900000011", "13900000022")
NAME = "王小明"


def _first_unplaced(stack: Stack, templates: list[str], fills: dict[str, tuple[str, ...]]) -> str:
    """The first template the server's NLU sends to nlu_fallback with each of the fills."""
    seen = {}
    for template in templates:
        texts = [template.format(**{key: value}) for key, values in fills.items() for value in values]
        seen[template] = [stack.parse(text)["intent"]["name"] for text in texts]
        if set(seen[template]) == {"nlu_fallback"}:
            return template
    pytest.fail(f"the model is sure of every nonsense message (it should fall back on some): {seen}")


@pytest.fixture(scope="module")
def unsure_phone(stack: Stack) -> str:
    """A nonsense message with a phone number in front, as `{phone} ...`."""
    return _first_unplaced(stack, [f"{{phone}} {stem}" for stem in NONSENSE], {"phone": PHONES})


@pytest.fixture(scope="module")
def unsure_name(stack: Stack) -> str:
    """A nonsense message in which the customer gives a name, as `...，我叫{name}`."""
    return _first_unplaced(stack, [f"{stem}，我叫{{name}}" for stem in NONSENSE], {"name": (NAME,)})


def _unsure(stack: Stack, conversation: Conversation, text: str) -> dict:
    conversation.say(text)
    parse = _parse_of_last_message(stack, conversation.sender)
    assert parse["intent"]["name"] == "nlu_fallback", parse["intent"]  # the NLU really was unsure
    return parse


def _collected(stack: Stack, template: str) -> list[InboxItemRow]:
    """The inbox items of `template` (its personal data replaced by placeholders)."""
    masked = template.format(phone="<手机号>", name="<姓名>")
    return [item for item in _items(stack) if item.text == masked]


def test_an_unsure_message_lands_in_the_inbox_with_personal_data_masked(
    stack: Stack, chat: Conversation, unsure_phone: str
) -> None:
    parse = _unsure(stack, chat, unsure_phone.format(phone=PHONES[0]))
    found = _collected(stack, unsure_phone)
    assert len(found) == 1, [item.text for item in _items(stack)]
    item = found[0]
    assert item.text.startswith("<手机号> ") and PHONES[0] not in item.text
    assert set(item.reasons.split(",")) == {"low_confidence", "fallback"}
    assert item.channels == "rest"
    guess = next(r for r in parse["intent_ranking"] if r["name"] != "nlu_fallback")
    assert item.predicted_intent == guess["name"]
    assert item.confidence == pytest.approx(guess["confidence"])


def test_a_name_the_customer_gives_is_masked(stack: Stack, chat: Conversation, unsure_name: str) -> None:
    _unsure(stack, chat, unsure_name.format(name=NAME))
    texts = [item.text for item in _items(stack)]
    assert unsure_name.format(name="<姓名>") in texts
    assert not [text for text in texts if NAME in text]


def test_the_same_words_group_once_masked_and_each_message_counts_once(stack: Stack, unsure_phone: str) -> None:
    before = sum(item.sightings for item in _collected(stack, unsure_phone))
    for phone in PHONES[1:]:
        _unsure(stack, stack.conversation(), unsure_phone.format(phone=phone))
    found = _collected(stack, unsure_phone)
    assert len(found) == 1 and found[0].sightings == before + 2
    with session_factory(stack.database_url)() as session:
        sightings = session.scalars(select(InboxSightingRow).where(InboxSightingRow.item_id == found[0].id)).all()
    assert len(sightings) == before + 2 and all(s.channel == "rest" for s in sightings)
    counts = [item.sightings for item in inbox.items(session_factory(stack.database_url))]
    assert counts == sorted(counts, reverse=True) and found[0].sightings in counts  # the most frequent first


def test_a_message_the_bot_understood_is_not_collected(stack: Stack, chat: Conversation) -> None:
    before = len(_items(stack))
    chat.say("你好")
    assert _parse_of_last_message(stack, chat.sender)["intent"]["name"] == "greet"
    assert len(_items(stack)) == before


def test_the_identity_answer_is_never_collected(stack: Stack, chat: Conversation) -> None:
    chat.say("查电费 户号3201000002")
    chat.say("欧阳某某某")  # a wrong name, as unsure as NLU gets
    assert not [item for item in _items(stack) if "欧阳" in item.text or "某某" in item.text]

"""What the bot said in a saved turn, read back from the tracker for a message delivered
again (bot/exactly_once.py); the whole path runs on real servers in tests/test_rest_channel.py."""

from __future__ import annotations

from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.exactly_once import message_key, saved_replies

BUTTONS = [{"title": "是", "payload": "/affirm"}, {"title": "否", "payload": "/deny"}]


def conversation() -> DialogueStateTracker:
    return DialogueStateTracker.from_events(
        "customer-1",
        [
            ActionExecuted(ACTION_LISTEN_NAME),
            UserUttered("你好", {"name": "greet"}, message_id="m1"),
            ActionExecuted("utter_greet"),
            BotUttered("您好，请问有什么可以帮您？", {"buttons": BUTTONS}),
            ActionExecuted(ACTION_LISTEN_NAME),
            UserUttered("查电费", {"name": "query_bill"}, message_id="m2"),
            SlotSet("requested_slot", "account_number"),
            ActionExecuted("bill_form"),
            BotUttered("好的，我来帮您查电费。"),
            BotUttered("请提供您的户号。"),
            ActionExecuted(ACTION_LISTEN_NAME),
            BotUttered("客服马上就来。"),  # said later (a reminder), not in the turn of m2
            UserUttered("3201000001", {"name": "inform"}, message_id="m3"),
        ],
    )


def test_the_replies_of_a_saved_turn_are_its_bot_messages_up_to_the_next_listen():
    tracker = conversation()

    assert [(e.text, e.data.get("buttons")) for e in saved_replies(tracker, "m1")] == [
        ("您好，请问有什么可以帮您？", BUTTONS)
    ]
    assert [e.text for e in saved_replies(tracker, "m2")] == ["好的，我来帮您查电费。", "请提供您的户号。"]
    assert saved_replies(tracker, "m3") == []  # saved, but nothing said (yet)
    assert saved_replies(tracker, "m4") is None  # never saved: to be processed


def test_a_message_key_is_bounded_and_tells_senders_apart():
    assert len(message_key("s" * 5000, "m" * 128)) == 64
    assert message_key("a", "1") != message_key("b", "1") != message_key("a", "2")

"""What each kind of WeChat message means for the bot, and the words the channel itself says.

Text and recognised voice go to the bot as typed; the menu's buttons (CLICK events) send the
bot an intent; a shared location asks for outages when its address names a supply area;
"解绑" unbinds; following gets a welcome and the menu; pictures, videos, links and the rest
get a polite answer that says what the bot can do. Nothing here does I/O: bot/wechat/inbox.py
acts on what these functions decide.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wechatpy.events import BaseEvent
from wechatpy.messages import BaseMessage
from wechatpy.replies import TextReply

from bot.masking import mask_account, mask_openid

# the menu configured in the admin console (docs/wechat.md): button key -> the intent sent
MENU = {"QUERY_BILL": "/query_bill", "QUERY_OUTAGE": "/query_outage", "HUMAN": "/request_human"}
UNBIND = "解绑"
# a passive reply carries one text; a longer answer goes through the API
REPLY_BYTES = 2000

# --- what the channel says (product text) ---------------------------------------------------
CAN_DO = (
    "我可以帮您：查电费、查停电、报修和投诉，也可以转人工客服。请直接打字或发语音告诉我您要办什么，或者点下方菜单。"
)
WELCOME = (
    "您好，欢迎关注95598供电服务！我是智能客服，全天在线。\n"
    "点下方菜单或直接发消息：\n"
    "· 查电费：本月和往月的电费、交费情况\n"
    "· 停电查询：片区停电和预计来电时间（也可以发送位置）\n"
    "· 人工客服：转接人工客服\n"
    "户号核对身份后会绑定到您的微信，以后查电费不用再核对；回复“解绑”可随时解除。"
)
NOT_UNDERSTOOD = {
    "image": "收到您的图片，不过我暂时看不懂图片。",
    "video": "收到您的视频，不过我暂时看不了视频。",
    "shortvideo": "收到您的视频，不过我暂时看不了视频。",
    "link": "收到您分享的链接，不过我暂时打不开链接。",
    "file": "收到您的文件，不过我暂时打不开文件。",
    "voice": "这条语音我没能听清，打字发给我会更准确。",
    "location": "收到您的位置，但没能对应到我们的供电片区。您也可以直接发小区或路名，比如“光明路停电了吗”。",
}
SOMETHING_ELSE = "这类消息我暂时看不懂。"
BOT_TROUBLE = "抱歉，系统刚才没有处理成功，请您稍后再发一次，或拨打95598供电服务热线。"
NOTHING_TO_UNBIND = "您的微信还没有绑定户号，不需要解绑。查电费时核对身份后会自动绑定。"


def unbound(account_number: str) -> str:
    return f"已解除您的微信与户号{mask_account(account_number)}的绑定，以后查询会重新核对身份。"


def bound(account_number: str) -> str:
    return f"已将户号{mask_account(account_number)}绑定到您的微信，以后查电费不用再核对身份；回复“解绑”可随时解除。"


# --- what a message means -------------------------------------------------------------------


@dataclass(frozen=True)
class ToBot:
    """Send the bot this text (a customer's words, or an intent like /query_bill)."""

    text: str


@dataclass(frozen=True)
class Answer:
    """The channel answers at once; the bot is not involved."""

    texts: tuple[str, ...]


@dataclass(frozen=True)
class Unbind:
    """The follower wants the 户号 unbound."""


@dataclass(frozen=True)
class Unfollowed:
    """The follower left the official account (unsubscribe)."""


@dataclass(frozen=True)
class SharedLocation:
    """A location shared from WeChat's map; its address may name a supply area."""

    label: str


Meaning = ToBot | Answer | Unbind | Unfollowed | SharedLocation


def meaning(message: BaseMessage) -> Meaning:
    """What to do with a message or event."""
    if isinstance(message, BaseEvent):
        return _event(message)
    kind = _raw_type(message)
    if kind == "text":
        text = (message.content or "").strip()
        if text.rstrip("。.!！ ") == UNBIND:
            return Unbind()
        return ToBot(typed(text)) if typed(text) else Answer((CAN_DO,))
    if kind == "voice" and (message.recognition or "").strip():
        return ToBot(typed(message.recognition.strip()))
    if kind == "location" and (message.label or "").strip():
        return SharedLocation(message.label.strip())
    return Answer((NOT_UNDERSTOOD.get(kind, SOMETHING_ELSE) + CAN_DO,))


def _event(event: BaseEvent) -> Meaning:
    if event.event in ("subscribe", "subscribe_scan"):
        return Answer((WELCOME,))
    if event.event == "unsubscribe":
        return Unfollowed()
    if event.event == "click":
        intent = MENU.get((event.key or "").strip())
        return ToBot(intent) if intent else Answer((CAN_DO,))
    return Answer(())  # menu links (VIEW), scans, location reports...: nothing to say


def typed(text: str) -> str:
    """A customer's words never count as an intent payload ("/request_human"): only the
    menu sends those, so a leading slash is dropped."""
    return text.lstrip("/").strip()


def outage_request(area: str) -> ToBot:
    """Ask the bot for the outages of a known area, as the menu would with the place named."""
    return ToBot("/query_outage" + json.dumps({"address": area}, ensure_ascii=False))


def dedup_key(message: BaseMessage) -> str:
    """What WeChat keeps the same when it retries: the MsgId, or for events (which have
    none) the sender and the creation time."""
    if message.id:
        return f"msg:{message.id}"
    event = getattr(message, "event", "") or message._data.get("Event", "")
    return f"event:{message.source}:{message._data.get('CreateTime')}:{event}"


def loggable(key: str) -> str:
    """A dedup key for the log: an event's key names the follower, masked here."""
    kind, _, rest = key.partition(":")
    if kind != "event":
        return key
    openid, _, tail = rest.partition(":")
    return f"event:{mask_openid(openid)}:{tail}"


def _raw_type(message: BaseMessage) -> str:
    # wechatpy's UnknownMessage (file, and types added later) keeps only the raw fields
    return str(message._data.get("MsgType") or "").strip().lower()


# --- what goes back ---------------------------------------------------------------------------


def as_text(message: Mapping[str, Any]) -> str:
    """A bot message (Rasa's dict) as WeChat text: buttons become words to reply with."""
    parts = []
    text = (message.get("text") or "").strip()
    if text:
        parts.append(text)
    buttons = message.get("buttons") or message.get("quick_replies") or []
    titles = [str(b.get("title")) for b in buttons if isinstance(b, Mapping) and b.get("title")]
    if titles:
        parts.append("可回复：" + " / ".join(titles))
    if message.get("image"):
        parts.append(str(message["image"]))
    return "\n".join(parts)


def texts_of(messages: Iterable[Mapping[str, Any]]) -> list[str]:
    return [t for t in (as_text(m) for m in messages) if t]


def split_for_reply(texts: list[str]) -> tuple[list[str], list[str]]:
    """The texts for the passive reply (all of them joined when they fit), and the rest
    (when the answer cannot be pushed, the first text is the reply and the rest is lost)."""
    if not texts or len(joined(texts).encode("utf-8")) <= REPLY_BYTES:
        return texts, []
    return texts[:1], texts[1:]


def joined(texts: list[str]) -> str:
    return "\n\n".join(texts)


def passive_reply(message: BaseMessage, texts: list[str]) -> str:
    """The XML answer in the HTTP response (被动回复)."""
    # "]]>" would end the CDATA section the text is wrapped in
    content = joined(texts).replace("]]>", "]] >")
    return TextReply(message=message, content=content).render()

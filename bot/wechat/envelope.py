"""What arrives from WeChat, checked before anything reads it, and the answer sealed the same
way: the signature over the token, timestamp and nonce; a timestamp within five minutes;
a body of reasonable size that is plain XML (no DOCTYPE, no entities: defusedxml); and in
safe mode (安全模式, `encrypt_type=aes`) the message signature and the AES envelope.

Signatures, AES and message parsing are wechatpy's; this module decides what to refuse.
Every refusal is a `Refused` with the HTTP status and the reason for the log.
"""

from __future__ import annotations

import binascii
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.messages import BaseMessage
from wechatpy.utils import check_signature

from bot.wechat.config import WeChatConfig


class Refused(Exception):
    """The request is not answered: `status` for WeChat (or whoever sent it), `reason` for the log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Opened:
    """A message that passed every check, in plain XML, and how to answer it."""

    xml: str
    encrypted: bool  # answered encrypted too
    nonce: str


def verify_url(config: WeChatConfig, args: Mapping[str, str], now: float) -> str:
    """The server-URL check of the admin console (GET): the echostr back when the signature holds."""
    check_origin(config, args, now)
    echo = args.get("echostr") or ""
    if not echo:
        raise Refused(400, "verification without echostr")
    return echo


def check_origin(config: WeChatConfig, args: Mapping[str, str], now: float) -> None:
    """Signed with our token, and sent within five minutes (a replayed request is older)."""
    signature, timestamp, nonce = (args.get(k) or "" for k in ("signature", "timestamp", "nonce"))
    if not (signature and timestamp and nonce):
        raise Refused(403, "signature, timestamp or nonce missing")
    if not timestamp.isdigit():
        raise Refused(403, "timestamp is not a number")
    skew = now - int(timestamp)
    if abs(skew) > config.max_clock_skew_seconds:
        raise Refused(403, f"timestamp {'old' if skew > 0 else 'in the future'} by {abs(int(skew))} s")
    try:
        check_signature(config.token, signature, timestamp, nonce)
    except InvalidSignatureException:
        raise Refused(403, "signature does not match the token") from None


def open_request(config: WeChatConfig, args: Mapping[str, str], body: bytes, now: float) -> Opened:
    """A message POSTed by WeChat, checked and, in safe mode, decrypted."""
    if len(body) > config.max_body_bytes:
        raise Refused(400, f"body of {len(body)} bytes over the {config.max_body_bytes} limit")
    check_origin(config, args, now)
    outer = screen(body)
    nonce = args.get("nonce") or ""
    if (args.get("encrypt_type") or "raw").lower() != "aes":
        _check_fields(outer)
        return Opened(_text(body), encrypted=False, nonce=nonce)
    if not config.safe_mode:
        raise Refused(400, "encrypted message but no WECHAT_ENCODING_AES_KEY")
    encrypt = outer.findtext("Encrypt")
    if not encrypt:
        raise Refused(400, "encrypted message without Encrypt")
    try:
        inner = _crypto(config).decrypt_message(
            {"Encrypt": encrypt}, args.get("msg_signature") or "", args.get("timestamp"), nonce
        )
    except InvalidSignatureException:
        raise Refused(403, "msg_signature does not match") from None
    except InvalidAppIdException:
        raise Refused(403, "encrypted for another AppID") from None
    except (ValueError, TypeError, IndexError, binascii.Error, struct.error, UnicodeDecodeError):
        raise Refused(400, "Encrypt is not a valid AES envelope") from None
    _check_fields(screen(inner.encode("utf-8")))
    return Opened(inner, encrypted=True, nonce=nonce)


def screen(body: bytes) -> Element:
    """The body as XML if it is plain XML: no DOCTYPE (so no entity expansion, no external
    entities), well formed, UTF-8, rooted at <xml>. WeChat never sends anything else."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as error:
        raise Refused(400, f"XML refused by defusedxml: {type(error).__name__}") from None
    except (ParseError, ValueError, UnicodeDecodeError):
        raise Refused(400, "malformed XML") from None
    if root.tag != "xml":
        raise Refused(400, f"XML root <{root.tag[:20]}> is not <xml>")
    return root


def parse(opened: Opened) -> BaseMessage:
    """The wechatpy message or event of a checked request."""
    try:
        return parse_message(opened.xml)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise Refused(400, "not a WeChat message") from None


def _check_fields(root: Element) -> None:
    """What every message and event carries: its type, its sender, its time."""
    if not (root.findtext("MsgType") or "").strip() or not (root.findtext("FromUserName") or "").strip():
        raise Refused(400, "message without MsgType or FromUserName")
    if not (root.findtext("CreateTime") or "").strip().isdigit():
        raise Refused(400, "message without a numeric CreateTime")


def seal(config: WeChatConfig, opened: Opened, reply_xml: str) -> str:
    """The reply as WeChat expects it: encrypted when the message came encrypted."""
    if not opened.encrypted:
        return reply_xml
    return _crypto(config).encrypt_message(reply_xml, opened.nonce, str(int(time.time())))


def _crypto(config: WeChatConfig) -> WeChatCrypto:
    return WeChatCrypto(config.token, config.encoding_aes_key, config.app_id)


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "body is not UTF-8") from None

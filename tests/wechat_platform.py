"""WeChat's side of the webhook, as the platform sends it: the message XML as WeChat writes
it, the query string it signs (signature, timestamp, nonce, openid; in safe mode also
encrypt_type=aes and msg_signature over the AES envelope), its headers, and its reading of
the answer (a passive reply, decrypted and its signature checked, or "success").
wechatpy serves as the independent implementation of the signatures and the AES."""

from __future__ import annotations

import random
import string
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode

import xmltodict
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

ACCOUNT = "gh_3f1b2d95598a"  # the official account's original id (原始ID)
_OPENID_CHARS = string.ascii_letters + string.digits + "_-"


def new_openid(rng: random.Random | None = None) -> str:
    """A follower's openid as WeChat makes them: 28 characters starting with "o"."""
    rng = rng or random.Random()
    return "o" + "".join(rng.choice(_OPENID_CHARS) for _ in range(27))


def sign(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


@dataclass
class Answer:
    status: int
    body: str
    seconds: float

    @property
    def success(self) -> bool:
        return self.status == 200 and self.body == "success"


class WeChatPlatform:
    def __init__(self, webhook: str, token: str, aes_key: str = "", app_id: str = "") -> None:
        self.webhook, self.token, self.aes_key, self.app_id = webhook, token, aes_key, app_id
        self._ids = random.Random()
        self._crypto = WeChatCrypto(token, aes_key, app_id) if aes_key else None

    # --- messages as WeChat writes them ------------------------------------------------

    def msg_id(self) -> str:
        return str(self._ids.randrange(6_000_000_000_000_000_000, 7_000_000_000_000_000_000))

    @staticmethod
    def _xml(openid: str, kind: str, fields: str, created: int | None = None) -> str:
        created = created or int(time.time())
        return (
            f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>\n"
            f"<FromUserName><![CDATA[{openid}]]></FromUserName>\n"
            f"<CreateTime>{created}</CreateTime>\n"
            f"<MsgType><![CDATA[{kind}]]></MsgType>\n"
            f"{fields}</xml>"
        )

    def text(self, openid: str, content: str, msg_id: str | None = None) -> str:
        return self._xml(
            openid, "text", f"<Content><![CDATA[{content}]]></Content>\n<MsgId>{msg_id or self.msg_id()}</MsgId>\n"
        )

    def voice(self, openid: str, recognition: str | None) -> str:
        heard = "" if recognition is None else f"<Recognition><![CDATA[{recognition}]]></Recognition>\n"
        return self._xml(openid, "voice", (
            "<MediaId><![CDATA[gyci5a-xtk1PwVnhOyTw1lpg3ndwI8b6DNQTSFF-ee5jVNNhm9qOaUzVHsCnDmkE]]></MediaId>\n"
            f"<Format><![CDATA[amr]]></Format>\n{heard}<MsgId>{self.msg_id()}</MsgId>\n"
        ))  # fmt: skip

    def image(self, openid: str) -> str:
        return self._xml(openid, "image", (
            "<PicUrl><![CDATA[http://mmbiz.qpic.cn/mmbiz_jpg/3f1b2d95598a/0]]></PicUrl>\n"
            f"<MediaId><![CDATA[media_id_image_1]]></MediaId>\n<MsgId>{self.msg_id()}</MsgId>\n"
        ))  # fmt: skip

    def video(self, openid: str, kind: str = "video") -> str:
        return self._xml(openid, kind, (
            "<MediaId><![CDATA[media_id_video_1]]></MediaId>\n"
            f"<ThumbMediaId><![CDATA[thumb_media_id_1]]></ThumbMediaId>\n<MsgId>{self.msg_id()}</MsgId>\n"
        ))  # fmt: skip

    def link(self, openid: str) -> str:
        return self._xml(openid, "link", (
            "<Title><![CDATA[停电通知]]></Title>\n<Description><![CDATA[光明路停电]]></Description>\n"
            f"<Url><![CDATA[https://mp.weixin.qq.com/s/abc]]></Url>\n<MsgId>{self.msg_id()}</MsgId>\n"
        ))  # fmt: skip

    def location(self, openid: str, label: str) -> str:
        return self._xml(openid, "location", (
            "<Location_X>31.230416</Location_X>\n<Location_Y>121.473701</Location_Y>\n<Scale>15</Scale>\n"
            f"<Label><![CDATA[{label}]]></Label>\n<MsgId>{self.msg_id()}</MsgId>\n"
        ))  # fmt: skip

    def event(self, openid: str, event: str, key: str | None = None, created: int | None = None) -> str:
        key_field = "" if key is None else f"<EventKey><![CDATA[{key}]]></EventKey>\n"
        return self._xml(openid, "event", f"<Event><![CDATA[{event}]]></Event>\n{key_field}", created)

    # --- the request ------------------------------------------------------------------

    def query(self, openid: str, encrypt: str | None = None, timestamp: int | None = None) -> dict[str, str]:
        timestamp_text, nonce = str(timestamp or int(time.time())), str(self._ids.randrange(10**9, 10**10))
        query = {"signature": sign(self.token, timestamp_text, nonce), "timestamp": timestamp_text, "nonce": nonce}
        query["openid"] = openid
        if encrypt is not None:
            query |= {"encrypt_type": "aes", "msg_signature": sign(self.token, timestamp_text, nonce, encrypt)}
        return query

    def seal(self, xml: str) -> str:
        """The message in safe mode: the plain XML encrypted into <Encrypt>."""
        assert self._crypto is not None, "safe mode needs the EncodingAESKey"
        sealed = xmltodict.parse(self._crypto.encrypt_message(xml, "0", "0"))["xml"]
        return sealed["Encrypt"]

    def post(self, xml: str, encrypted: bool = False, query: dict[str, str] | None = None, body: bytes | None = None,
             timeout: float = 30) -> Answer:  # fmt: skip
        openid = xmltodict.parse(xml)["xml"]["FromUserName"] if body is None else "oTest"
        if encrypted:
            encrypt = self.seal(xml)
            query = query or self.query(openid, encrypt=encrypt)
            body = (f"<xml>\n    <ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>\n"
                    f"    <Encrypt><![CDATA[{encrypt}]]></Encrypt>\n</xml>").encode()  # fmt: skip
        else:
            query = query or self.query(openid)
            body = xml.encode() if body is None else body
        return self.raw_post(query, body, timeout)

    def raw_post(self, query: dict[str, str], body: bytes, timeout: float = 30) -> Answer:
        request = urllib.request.Request(
            f"{self.webhook}?{urlencode(query)}",
            data=body,
            headers={"Content-Type": "text/xml", "User-Agent": "Mozilla/4.0", "Accept": "*/*", "Pragma": "no-cache"},
            method="POST",
        )
        began = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Answer(response.status, response.read().decode(), time.monotonic() - began)
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.read().decode(errors="replace"), time.monotonic() - began)

    def get(self, query: dict[str, str]) -> Answer:
        began = time.monotonic()
        try:
            with urllib.request.urlopen(f"{self.webhook}?{urlencode(query)}", timeout=30) as response:
                return Answer(response.status, response.read().decode(), time.monotonic() - began)
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.read().decode(errors="replace"), time.monotonic() - began)

    # --- the answer as WeChat reads it ----------------------------------------------------

    def reply_of(self, answer: Answer, openid: str) -> str | None:
        """The passive reply's text (None for "success"); checks what WeChat would check:
        addressed to the follower from the account, and in safe mode correctly signed."""
        assert answer.status == 200, f"HTTP {answer.status}: {answer.body}"
        if answer.body == "success" or answer.body == "":
            return None
        xml = xmltodict.parse(answer.body)["xml"]
        if "Encrypt" in xml:
            assert self._crypto is not None
            plain = self._crypto.decrypt_message(answer.body, xml["MsgSignature"], xml["TimeStamp"], xml["Nonce"])
            xml = xmltodict.parse(plain)["xml"]
        assert xml["ToUserName"] == openid and xml["FromUserName"] == ACCOUNT, xml
        assert xml["MsgType"] == "text", xml
        return xml["Content"]

"""The WeChat channel's checks and rules without a server: signatures and AES against
WeChat's published test vectors, what is refused (and why), what each message means."""

from __future__ import annotations

import re
import time

import pytest
import xmltodict
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto

from bot.wechat import envelope, messages
from bot.wechat.config import DEFAULT_API_URL, WeChatConfig
from bot.wechat.envelope import Refused
from tests.wechat_platform import ACCOUNT, WeChatPlatform, new_openid, sign

# WeChat's own sample for message encryption (the 加解密 sample code of the official
# account platform): token, EncodingAESKey, AppID, and a message with its msg_signature
SAMPLE = {
    "token": "spamtest",
    "key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "app_id": "wx2c2769f8efd9abc2",
    "timestamp": "1409735669",
    "nonce": "1320562132",
    "msg_signature": "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
    "encrypt": (
        "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9F"
        "rXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt"
        "+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0"
        "EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
    ),
}
# wechatpy's test vector for the URL signature (tests/test_utils.py)
URL_SIGNATURE = {"token": "test", "signature": "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff",
                 "timestamp": "1410685589", "nonce": "test"}  # fmt: skip

TOKEN, KEY, APP_ID = "t0ken95598", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a"


def config(**changes) -> WeChatConfig:
    values = dict(token=TOKEN, encoding_aes_key=KEY, app_id=APP_ID, app_secret="secret", api_url=DEFAULT_API_URL)
    return WeChatConfig(**{**values, **changes})


@pytest.fixture
def platform() -> WeChatPlatform:
    return WeChatPlatform("http://unused", TOKEN, KEY, APP_ID)


def opened(platform: WeChatPlatform, xml: str, encrypted: bool = False, now: float | None = None, **query):
    openid = re.search(r"<FromUserName>(?:<!\[CDATA\[)?([^<\]]+)", xml)[1]
    if encrypted:
        encrypt = platform.seal(xml)
        args = platform.query(openid, encrypt=encrypt) | query
        body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    else:
        args, body = platform.query(openid) | query, xml
    return envelope.open_request(config(), args, body.encode(), now or int(args["timestamp"]))


# --- signatures and AES: WeChat's vectors ----------------------------------------------------


def test_the_url_signature_of_the_published_vector_holds():
    vector = URL_SIGNATURE
    cfg = config(token=vector["token"])
    args = {k: vector[k] for k in ("signature", "timestamp", "nonce")} | {"echostr": "5837397520665436492"}
    assert envelope.verify_url(cfg, args, now=int(vector["timestamp"])) == "5837397520665436492"
    with pytest.raises(Refused) as refused:
        envelope.verify_url(cfg, args | {"signature": vector["signature"][:-1] + "e"}, now=int(vector["timestamp"]))
    assert refused.value.status == 403 and "signature" in refused.value.reason


def test_wechats_sample_message_is_decrypted_and_parsed():
    cfg = config(token=SAMPLE["token"], encoding_aes_key=SAMPLE["key"], app_id=SAMPLE["app_id"])
    ts, nonce = SAMPLE["timestamp"], SAMPLE["nonce"]
    args = {"signature": sign(SAMPLE["token"], ts, nonce), "timestamp": ts, "nonce": nonce,
            "encrypt_type": "aes", "msg_signature": SAMPLE["msg_signature"]}  # fmt: skip
    body = f"<xml><ToUserName>gh_10f6c3c3ac5a</ToUserName><Encrypt><![CDATA[{SAMPLE['encrypt']}]]></Encrypt></xml>"
    result = envelope.open_request(cfg, args, body.encode(), now=int(ts))
    message = envelope.parse(result)
    assert result.encrypted
    assert (message.type, message.content, message.source) == ("text", "abcdteT", "oyORnuP8q7ou2gfYjqLzSIWZf0rs")
    assert messages.dedup_key(message) == "msg:6054768590064713728"
    # one character of the published msg_signature changed: refused
    with pytest.raises(Refused) as refused:
        envelope.open_request(cfg, args | {"msg_signature": "5d197aaffba7e9b25a30732f161a50dee96bd5fb"}, body.encode(),
                              now=int(ts))  # fmt: skip
    assert refused.value.status == 403


def test_the_encrypted_reply_opens_with_wechats_own_code(platform):
    openid = new_openid()
    result = opened(platform, platform.text(openid, "查电费"), encrypted=True)
    message = envelope.parse(result)
    sealed = envelope.seal(config(), result, messages.passive_reply(message, ["您好", "请提供户号"]))
    xml = xmltodict.parse(sealed)["xml"]
    assert "Content" not in sealed and "您好" not in sealed
    plain = WeChatCrypto(TOKEN, KEY, APP_ID).decrypt_message(
        sealed, xml["MsgSignature"], xml["TimeStamp"], xml["Nonce"]
    )
    reply = parse_message(plain)
    assert (reply.content, reply.source, reply.target) == ("您好\n\n请提供户号", ACCOUNT, openid)


def test_a_plain_message_is_answered_in_plain(platform):
    openid = new_openid()
    result = opened(platform, platform.text(openid, "你好"))
    message = envelope.parse(result)
    assert not result.encrypted and message.content == "你好"
    assert envelope.seal(config(), result, "<xml>reply</xml>") == "<xml>reply</xml>"


# --- refusals ---------------------------------------------------------------------------------


def refusal(platform, xml=None, body: bytes | None = None, encrypted=False, now=None, cfg=None, **query) -> Refused:
    openid = new_openid()
    xml = xml or platform.text(openid, "你好")
    args = platform.query(openid) | query
    with pytest.raises(Refused) as refused:
        if encrypted:
            opened(platform, xml, encrypted=True, now=now, **query)
        else:
            envelope.open_request(cfg or config(), args, body if body is not None else xml.encode(), now or time.time())
    return refused.value


@pytest.mark.parametrize("age", [301, 3600, -301])
def test_a_timestamp_over_five_minutes_off_is_refused(platform, age):
    openid = new_openid()
    args = platform.query(openid)
    with pytest.raises(Refused) as refused:
        envelope.open_request(config(), args, platform.text(openid, "你好").encode(), int(args["timestamp"]) + age)
    assert refused.value.status == 403 and "timestamp" in refused.value.reason


def test_a_timestamp_within_five_minutes_passes(platform):
    openid = new_openid()
    args = platform.query(openid)
    envelope.open_request(config(), args, platform.text(openid, "你好").encode(), int(args["timestamp"]) + 299)


@pytest.mark.parametrize("query", [{"signature": "0" * 40}, {"signature": ""}, {"nonce": "1"}, {"timestamp": "abc"}])
def test_a_forged_or_missing_signature_is_refused(platform, query):
    assert refusal(platform, **query).status == 403


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName><![CDATA[gh_3f1b2d95598a]]></ToUserName><FromUserName>&lol3;</FromUserName>
<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>&lol3;</Content></xml>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh</ToUserName><FromUserName>oAttacker</FromUserName><CreateTime>1700000000</CreateTime>
<MsgType>text</MsgType><Content>&secret;</Content><MsgId>1</MsgId></xml>"""
DOCTYPE_ONLY = (
    '<?xml version="1.0"?><!DOCTYPE xml SYSTEM "http://evil.example/x.dtd"><xml><MsgType>text</MsgType></xml>'
)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (BILLION_LAUGHS, "defusedxml"),
        (EXTERNAL_ENTITY, "defusedxml"),
        (DOCTYPE_ONLY, "defusedxml"),
        ("<xml><MsgType>text</MsgType>", "malformed"),
        ("not xml at all", "malformed"),
        ('{"MsgType": "text"}', "malformed"),
        ("<root><MsgType>text</MsgType></root>", "root"),
        ("<xml><FromUserName>o1</FromUserName><CreateTime>1</CreateTime></xml>", "MsgType"),
        ("<xml><MsgType>text</MsgType><FromUserName>o1</FromUserName><CreateTime>x</CreateTime></xml>", "CreateTime"),
    ],
)
def test_bad_xml_is_refused_with_its_reason(platform, body, reason):
    refused = refusal(platform, body=body.encode())
    assert refused.status == 400 and reason in refused.reason


def test_an_oversized_body_is_refused_before_anything_else(platform):
    huge = platform.text(new_openid(), "电" * 30_000).encode()
    assert len(huge) > 64 * 1024
    refused = refusal(platform, body=huge, signature="0" * 40)  # refused for its size, not the signature
    assert refused.status == 400 and "limit" in refused.reason


def test_entity_tricks_inside_the_aes_envelope_are_refused(platform):
    refused = refusal(platform, xml=EXTERNAL_ENTITY, encrypted=True)
    assert refused.status == 400 and "defusedxml" in refused.reason


def test_a_broken_aes_envelope_is_refused(platform):
    openid = new_openid()
    encrypt = "bm90IGFlcw=="  # base64, but no AES block
    args = platform.query(openid, encrypt=encrypt)
    body = f"<xml><ToUserName>{ACCOUNT}</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    with pytest.raises(Refused) as refused:
        envelope.open_request(config(), args, body, int(args["timestamp"]))
    assert refused.value.status == 400 and "AES" in refused.value.reason


def test_a_message_encrypted_for_another_account_is_refused():
    other = WeChatPlatform("http://unused", TOKEN, KEY, "wx0000000000000000")
    openid = new_openid()
    encrypt = other.seal(other.text(openid, "你好"))
    args = other.query(openid, encrypt=encrypt)
    body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    with pytest.raises(Refused) as refused:
        envelope.open_request(config(), args, body, int(args["timestamp"]))
    assert refused.value.status == 403 and "AppID" in refused.value.reason


def test_an_encrypted_message_without_a_key_is_refused(platform):
    openid = new_openid()
    encrypt = platform.seal(platform.text(openid, "你好"))
    args = platform.query(openid, encrypt=encrypt)
    body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    with pytest.raises(Refused) as refused:
        envelope.open_request(config(encoding_aes_key=""), args, body, int(args["timestamp"]))
    assert refused.value.status == 400 and "ENCODING_AES_KEY" in refused.value.reason


# --- what a message means -----------------------------------------------------------------------


def meaning_of(xml: str):
    return messages.meaning(parse_message(xml))


def test_text_goes_to_the_bot_as_typed_but_never_as_an_intent(platform):
    openid = new_openid()
    assert meaning_of(platform.text(openid, "查电费")) == messages.ToBot("查电费")
    assert meaning_of(platform.text(openid, "/EXTERNAL_handoff_resolved")) == messages.ToBot(
        "EXTERNAL_handoff_resolved"
    )
    assert meaning_of(platform.text(openid, "  ")) == messages.Answer((messages.CAN_DO,))


@pytest.mark.parametrize("text", ["解绑", " 解绑。", "解绑！"])
def test_unbind_is_the_word_alone(platform, text):
    assert meaning_of(platform.text(new_openid(), text)) == messages.Unbind()


def test_unbind_inside_a_sentence_is_for_the_bot(platform):
    assert meaning_of(platform.text(new_openid(), "怎么解绑户号")) == messages.ToBot("怎么解绑户号")


def test_voice_is_its_recognition(platform):
    openid = new_openid()
    assert meaning_of(platform.voice(openid, "光明路停电了吗。")) == messages.ToBot("光明路停电了吗。")
    unheard = meaning_of(platform.voice(openid, None))
    assert isinstance(unheard, messages.Answer) and "语音" in unheard.texts[0] and messages.CAN_DO in unheard.texts[0]


@pytest.mark.parametrize(
    ("kind", "word"), [("image", "图片"), ("video", "视频"), ("shortvideo", "视频"), ("link", "链接")]
)
def test_what_the_bot_cannot_read_gets_a_polite_answer(platform, kind, word):
    openid = new_openid()
    xml = {"image": platform.image, "link": platform.link}.get(kind, lambda o: platform.video(o, kind))(openid)
    answer = meaning_of(xml)
    assert isinstance(answer, messages.Answer)
    assert word in answer.texts[0] and "查电费" in answer.texts[0] and "转人工" in answer.texts[0]


def test_an_unknown_type_gets_a_polite_answer(platform):
    xml = platform._xml(new_openid(), "file", "<Title><![CDATA[a.pdf]]></Title><MsgId>1</MsgId>")
    answer = meaning_of(xml)
    assert isinstance(answer, messages.Answer) and messages.CAN_DO in answer.texts[0]


def test_a_location_is_looked_up_by_its_label(platform):
    assert meaning_of(platform.location(new_openid(), "光明路12号")) == messages.SharedLocation("光明路12号")
    assert messages.outage_request("光明路") == messages.ToBot('/query_outage{"address": "光明路"}')


@pytest.mark.parametrize(("key", "intent"), [("QUERY_BILL", "/query_bill"), ("QUERY_OUTAGE", "/query_outage"),
                                             ("HUMAN", "/request_human")])  # fmt: skip
def test_menu_clicks_are_intents(platform, key, intent):
    assert meaning_of(platform.event(new_openid(), "CLICK", key)) == messages.ToBot(intent)


def test_events(platform):
    openid = new_openid()
    assert meaning_of(platform.event(openid, "subscribe", "")) == messages.Answer((messages.WELCOME,))
    assert meaning_of(platform.event(openid, "subscribe", "qrscene_95598")) == messages.Answer((messages.WELCOME,))
    assert meaning_of(platform.event(openid, "unsubscribe", "")) == messages.Unfollowed()
    assert meaning_of(platform.event(openid, "CLICK", "SOMETHING_NEW")) == messages.Answer((messages.CAN_DO,))
    assert meaning_of(platform.event(openid, "VIEW", "https://example.com")) == messages.Answer(())
    for word in ("查电费", "停电查询", "人工客服", "解绑"):
        assert word in messages.WELCOME


def test_events_are_deduplicated_by_sender_and_time(platform):
    openid = new_openid()
    first = parse_message(platform.event(openid, "CLICK", "QUERY_BILL", created=1700000000))
    again = parse_message(platform.event(openid, "CLICK", "QUERY_BILL", created=1700000000))
    later = parse_message(platform.event(openid, "CLICK", "QUERY_BILL", created=1700000001))
    assert messages.dedup_key(first) == messages.dedup_key(again) != messages.dedup_key(later)
    assert openid in messages.dedup_key(first)


# --- what goes back ----------------------------------------------------------------------------------


def test_buttons_become_words_to_reply_with():
    message = {
        "text": "请为这次服务打分",
        "buttons": [{"title": "5分", "payload": "5"}, {"title": "1分", "payload": "1"}],
    }
    assert messages.as_text(message) == "请为这次服务打分\n可回复：5分 / 1分"
    assert messages.texts_of([{"text": ""}, {"text": "好的"}]) == ["好的"]


def test_a_long_answer_is_split_between_the_reply_and_the_api():
    short = ["您好", "请提供户号"]
    assert messages.split_for_reply(short) == (short, [])
    long = ["电" * 400, "费" * 400]  # 2,400 bytes joined
    assert messages.split_for_reply(long) == (long[:1], long[1:])


def test_the_passive_reply_cannot_be_broken_out_of(platform):
    openid = new_openid()
    reply = messages.passive_reply(parse_message(platform.text(openid, "你好")), ["a]]><MsgType>news</MsgType>"])
    assert xmltodict.parse(reply)["xml"]["MsgType"] == "text"


# --- settings ---------------------------------------------------------------------------------------


def test_settings_come_from_the_environment_and_default_to_off(monkeypatch):
    keys = ("token", "encoding_aes_key", "app_id", "app_secret", "api_url")
    for key in keys:
        monkeypatch.delenv(f"WECHAT_{key.upper()}", raising=False)
    quoted = {key: f"${{WECHAT_{key.upper()}}}" for key in keys}  # as in credentials.yml
    off = WeChatConfig.from_credentials(quoted)
    assert not off.enabled and not off.safe_mode and not off.can_push and off.api_url == DEFAULT_API_URL
    monkeypatch.setenv("WECHAT_TOKEN", TOKEN)
    monkeypatch.setenv("WECHAT_ENCODING_AES_KEY", KEY)
    monkeypatch.setenv("WECHAT_APP_ID", APP_ID)
    monkeypatch.setenv("WECHAT_APP_SECRET", "s3cret")
    monkeypatch.setenv("WECHAT_API_URL", "http://127.0.0.1:9/")
    on = WeChatConfig.from_credentials(quoted)
    assert (on.token, on.encoding_aes_key, on.app_id, on.app_secret) == (TOKEN, KEY, APP_ID, "s3cret")
    assert on.enabled and on.safe_mode and on.can_push and on.api_url == "http://127.0.0.1:9"
    assert WeChatConfig.from_credentials({"token": "literal"}).token == "literal"  # a value written out


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [({"encoding_aes_key": "short"}, "43 characters"), ({"app_id": ""}, "WECHAT_APP_ID")],
)
def test_settings_that_cannot_work_stop_the_start(changes, complaint):
    with pytest.raises(ValueError, match=complaint):
        config(**changes).check()


def test_keys_in_the_log_mask_the_follower(platform):
    openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    event = messages.dedup_key(parse_message(platform.event(openid, "CLICK", "HUMAN", created=1700000000)))
    assert messages.loggable(event) == "event:oUpF8u****eS6o:1700000000:click"
    assert messages.loggable("msg:6054768590064713728") == "msg:6054768590064713728"

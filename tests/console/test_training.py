"""The trainers' page over HTTP: the inbox (most frequent first, personal data masked),
who may open it, labelling into a scratch copy of the project's training data (accepted,
refused with the reasons, forced), discarding, CSRF, and agents flagging a customer's
line of a conversation for the trainers."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import clock
from bot.db import session_factory
from bot.demo_data import ensure_demo_data
from bot.handoff import service
from bot.schema import upgrade
from bot.training import inbox
from bot.training.nlu_data import NluData
from tests.console.conftest import PASSWORD, Browser, Console, start_console
from tests.training_project import PROJECT, scratch_project, training_files


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return scratch_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def console(project: Path, tmp_path_factory) -> Iterator[Console]:
    """A console of its own (an inbox nobody else fills) writing into the scratch project."""
    url = f"sqlite:///{tmp_path_factory.mktemp('training') / 'bot.db'}"
    upgrade(url)
    ensure_demo_data(session_factory(url), clock.now())
    server = start_console(url, tmp_path_factory.mktemp("console"), TRAINING_PROJECT=str(project))
    yield server
    server.stop()
    server.rasa.close()


def collect(console: Console, text: str, times: int = 1, **changes) -> int:
    """`times` customer messages saying `text`, each of its own conversation."""
    values = {"reason": "low_confidence", "channel": "wechat", "predicted_intent": "query_bill", "confidence": 0.31}
    values.update(changes)
    for _ in range(times):
        key = inbox.sighting_key(f"test-{uuid.uuid4().hex}", "1")
        number = inbox.collect(console.sessions, text, key=key, moment=clock.now(), **values)
    return number


def item_html(page: str, item_id: int) -> str:
    """One item's part of the page."""
    start = page.index(f'id="item-{item_id}"')
    ends = [i for i in (page.find('class="panel inbox-item', start), page.find("</ol>", start)) if i >= 0]
    return page[start : min(ends)]


def open_ids(browser: Browser) -> list[int]:
    return [int(n) for n in re.findall(r'id="item-(\d+)"', browser.get("/training").text)]


def test_a_trainer_lands_on_the_inbox_most_frequent_first_with_personal_data_masked(console: Console) -> None:
    rare = collect(console, "我的电话13812345678，怎么一直收不到缴费短信", 1)
    often = collect(console, "电卡插进去没反应是怎么回事", 3, channel="socketio")
    between = collect(console, "户号3201000001这个月怎么没出账单", 2, reason="fallback")
    trainer = Browser(console.url)
    user = console.user("trainer", "钱训练")
    response = trainer.login(user.username, PASSWORD)
    assert response.status_code == 303 and response.headers["Location"] == "/training"

    page = trainer.get("/training")
    assert page.status_code == 200
    ids = open_ids(trainer)
    assert ids.index(often) < ids.index(between) < ids.index(rare)
    assert "13812345678" not in page.text and "3201000001" not in page.text
    assert "我的电话&lt;手机号&gt;，怎么一直收不到缴费短信" in item_html(page.text, rare)
    assert "&lt;户号&gt;这个月怎么没出账单" in item_html(page.text, between)
    often_html = item_html(page.text, often)
    assert "3 次" in often_html and "网页聊天" in often_html and "把握不大" in often_html
    assert "query_bill（31%）" in often_html
    assert "没听懂" in item_html(page.text, between)
    counts = inbox.counts(console.sessions)
    tab = re.search(r'data-status="open"[^>]*>待处理 <span class="count">(\d+)</span>', page.text)
    assert int(tab[1]) == counts["open"] >= 3
    assert '<a href="/training"' in page.text  # the nav's 训练
    assert '<option value="query_bill">' in page.text  # the intents offered


def test_the_inbox_is_for_trainers_and_admins_only(console: Console) -> None:
    item = collect(console, "你们那个什么电e宝是干嘛的")
    agent = console.signed_in("agent")
    assert agent.get("/training").status_code == 403
    assert agent.post(f"/training/{item}/discard").status_code == 403
    assert 'href="/training"' not in agent.get("/").text
    supervisor = console.signed_in("supervisor")
    assert supervisor.get("/training").status_code == 403
    admin = console.signed_in("admin")
    assert admin.get("/training").status_code == 200
    assert inbox.item(console.sessions, item).status == "open"


def test_labelling_with_an_existing_intent_writes_the_example_and_closes_the_item(
    console: Console, project: Path
) -> None:
    text = "上个月的电费比平常贵出一大截是不是抄错表了"
    item = collect(console, text, predicted_intent="meter_dispute")
    trainer = console.signed_in("trainer")
    real_before = training_files(PROJECT)
    response = trainer.post(
        f"/training/{item}/label",
        {"intent": "bill_too_high", "text": text, "entity_value_1": "上个月", "entity_1": "month", "topic": "billing"},
    )
    assert response.status_code == 303, response.text[:2000]
    assert response.headers["Location"] == f"/training?notice=labelled&item={item}"

    example = "[上个月](month)的电费比平常贵出一大截是不是抄错表了"
    assert f"    - {example}\n" in (project / "data" / "nlu" / "billing.yml").read_text(encoding="utf-8")
    assert NluData(project).intent_files()["bill_too_high"].name == "billing.yml"
    page = trainer.get(response.headers["Location"]).text
    notice = re.search(r'<p class="notice" id="notice" role="status">(.*?)</p>', page, re.S)[1]
    assert notice == f"已写入 data/nlu/billing.yml：{example}"
    assert item not in open_ids(trainer)
    decided = inbox.item(console.sessions, item)
    assert (decided.status, decided.label_intent) == ("labelled", "bill_too_high")
    assert decided.decided_by == trainer.user.username
    labelled = trainer.get("/training?status=labelled").text
    assert example in item_html(labelled, item) and "bill_too_high" in item_html(labelled, item)
    assert training_files(PROJECT) == real_before  # the real data/ untouched

    again = trainer.post(f"/training/{item}/label", {"intent": "bill_too_high", "topic": "billing"})
    assert again.status_code == 409 and "已由" in again.text and "标注为 bill_too_high" in again.text


def test_a_conflicting_label_is_refused_with_the_reason_and_nothing_is_written(console: Console, project: Path) -> None:
    item = collect(console, "查电费")
    trainer = console.signed_in("trainer")
    before = training_files(project)
    response = trainer.post(f"/training/{item}/label", {"intent": "query_outage", "text": "查电费", "topic": "outage"})
    assert response.status_code == 422
    part = item_html(response.text, item)
    problems = re.search(rf'<div class="problems" id="problems-{item}" role="alert">(.*?)</div>', part, re.S)[1]
    assert "同一句话已经标成了意图 query_bill" in problems and "一句话只能属于一个意图" in problems
    assert 'value="query_outage"' in part  # the form as the trainer filled it
    assert 'id="label-error"' in response.text
    assert 'class="forceable"' not in part  # an exact duplicate cannot be forced
    assert training_files(project) == before
    assert inbox.item(console.sessions, item).status == "open" and item in open_ids(trainer)


def test_a_near_duplicate_may_be_forced_when_the_page_says_so(console: Console, project: Path) -> None:
    existing = next(e.text for e in NluData(project).examples() if e.intent == "query_outage" and len(e.text) >= 8)
    near = existing + "呀"
    item = collect(console, near)
    trainer = console.signed_in("trainer")
    form = {"intent": "bill_too_high", "text": near, "topic": "billing"}
    refused = trainer.post(f"/training/{item}/label", form)
    assert refused.status_code == 422
    part = item_html(refused.text, item)
    assert "几乎一样" in part and f'id="forceable-{item}"' in part and "强制接受" in part
    forced = trainer.post(f"/training/{item}/label", {**form, "force": "1"})
    assert forced.status_code == 303, forced.text[:2000]
    page = trainer.get(forced.headers["Location"]).text
    notes = re.search(r'<ul class="notice notes" id="notice-notes">(.*?)</ul>', page, re.S)[1]
    assert "已强制接受" in notes
    assert trainer.get(forced.headers["Location"]).text.count('id="notice-notes"') == 0  # shown once


def test_what_the_form_lacks_is_said_before_anything_is_checked(console: Console) -> None:
    item = collect(console, "那个钱我转过去了你们收到没有")
    trainer = console.signed_in("trainer")
    response = trainer.post(
        f"/training/{item}/label", {"intent": "", "text": "那个钱我转过去了你们收到没有", "entity_value_2": "钱"}
    )
    assert response.status_code == 422
    part = item_html(response.text, item)
    assert "请填写意图名" in part and "请为「钱」选择实体类型" in part
    assert 'name="entity_value_2" value="钱"' in part
    assert trainer.post("/training/987654/label", {"intent": "query_bill"}).status_code == 404


def test_discarding_closes_the_item(console: Console) -> None:
    item = collect(console, "哈哈哈哈哈")
    trainer = console.signed_in("trainer")
    response = trainer.post(f"/training/{item}/discard")
    assert response.status_code == 303 and response.headers["Location"] == "/training?notice=discarded"
    assert "已丢弃" in trainer.get(response.headers["Location"]).text
    assert item not in open_ids(trainer)
    assert f'id="item-{item}"' in trainer.get("/training?status=discarded").text
    again = trainer.post(f"/training/{item}/discard")
    assert again.status_code == 409 and "丢弃" in again.text
    assert trainer.post_json(f"/training/{item}/label", {"intent": "greet"}).status_code == 409


def test_changes_without_the_csrf_token_are_refused(console: Console, project: Path) -> None:
    item = collect(console, "电费发票在哪里开")
    trainer = console.signed_in("trainer")
    before = training_files(project)
    assert trainer.post(f"/training/{item}/label", {"intent": "query_bill"}, csrf="").status_code == 403
    assert trainer.post(f"/training/{item}/discard", csrf="").status_code == 403
    assert trainer.post(f"/training/{item}/discard", csrf="not-the-token").status_code == 403
    assert inbox.item(console.sessions, item).status == "open"
    assert training_files(project) == before


def test_an_agent_flags_a_customer_line_for_the_trainers_once(console: Console) -> None:
    agent = console.signed_in("agent")
    number, conversation = console.handed_over()
    assert agent.post(f"/tickets/{number}/claim").status_code == 303
    said = service.customer_said(console.sessions, conversation, "我那个表是不是坏了 号码13912345678", clock.now())
    bot = service.bot_said(console.sessions, conversation, "已为您转接人工客服", clock.now())
    page = agent.get(f"/tickets/{number}").text
    flag = f"/tickets/{number}/messages/{said.id}/flag"
    assert f'action="{flag}"' in page
    assert f'action="/tickets/{number}/messages/{bot.id}/flag"' not in page

    response = agent.post(flag)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/tickets/{number}?notice=flagged&flagged={said.id}"
    shown = agent.get(response.headers["Location"]).text
    assert "已标记给训练师" in shown and '<span class="flagged">已标记</span>' in shown
    again = agent.post_json(flag)  # as the page's script does it
    assert again.status_code == 200 and again.json()["flagged"] == said.id

    item = inbox.item(console.sessions, again.json()["item"])
    assert item.text == "我那个表是不是坏了 号码<手机号>"
    assert item.sightings == 1 and item.reasons == ("flagged",) and item.channels == ("socketio",)
    trainer = console.signed_in("trainer")
    part = item_html(trainer.get("/training").text, item.id)
    assert "坐席标记" in part and "13912345678" not in part

    assert agent.post(f"/tickets/{number}/messages/{bot.id}/flag").status_code == 400
    other, _conversation = console.handed_over()
    assert agent.post(f"/tickets/{other}/messages/{said.id}/flag").status_code == 404
    assert agent.post(flag, csrf="").status_code == 403
    assert trainer.post(flag).status_code == 403  # the conversation view is the agents'

"""The trainers' services on real files and databases: redaction, the inbox, writing
examples into Rasa's YAML, the checks before an example is accepted, the scores of an
evaluation and the verdict on a candidate."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from rasa.shared.nlu.training_data.loading import load_data
from sqlalchemy import select

from bot.db import session_factory
from bot.masking import redact
from bot.training import inbox, labelling
from bot.training.candidate import MAX_DROP, judge, leaked_holdout
from bot.training.checks import misaligned
from bot.training.evaluation import Case, plot_confusion, score
from bot.training.models import InboxItemRow
from bot.training.nlu_data import Entity, NluData, annotate, plain

PROJECT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 24, 10, 0)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch copy of the project's training files: tests write into it, never into data/."""
    for name in ("config.yml", "domain.yml"):
        shutil.copy2(PROJECT / name, tmp_path / name)
    for folder in ("data", "holdout"):
        shutil.copytree(PROJECT / folder, tmp_path / folder)
    return tmp_path


@pytest.fixture
def sessions(empty_database_url: str):
    from bot.schema import upgrade

    upgrade(empty_database_url)
    return session_factory(empty_database_url)


# -- redaction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("我手机13812345678，户号3201000001", "我手机<手机号>，户号<户号>"),
        ("电话 138-1234-5678 打不通", "电话 <手机号> 打不通"),
        ("我叫王小明，查电费", "我叫<姓名>，查电费"),
        ("户主是欧阳娜娜", "户主是<姓名>"),
        ("身份证110101199003074512", "身份证<证件号>"),
        ("卡号6222020200112233", "卡号<号码>"),
        ("张先生家停电了", "张先生家停电了"),  # a surname alone identifies nobody
    ],
)
def test_personal_data_becomes_placeholders(typed: str, stored: str) -> None:
    assert redact(typed) == stored


def test_names_known_in_the_conversation_are_redacted_anywhere() -> None:
    assert redact("李建国说电费不对", ["李建国"]) == "<姓名>说电费不对"


# -- the inbox -------------------------------------------------------------------------


def _collect(sessions, text: str, key: str, **kwargs) -> int | None:
    values = {"reason": "low_confidence", "channel": "rest", "moment": NOW, "predicted_intent": "query_bill"}
    values.update(kwargs)
    return inbox.collect(sessions, text, key=key, confidence=0.3, **values)


def test_the_same_text_is_one_item_counted_per_message_and_redacted_before_it_is_stored(sessions) -> None:
    first = _collect(sessions, "我家13812345678停电了咋整", "a")
    again = _collect(sessions, "我家13912345678停电了咋整", "b", channel="wechat")  # another phone, same words
    assert first == again
    _collect(sessions, "我家13812345678停电了咋整", "a", reason="fallback")  # the same message, retried
    with sessions() as session:
        stored = session.scalars(select(InboxItemRow)).all()
    assert len(stored) == 1 and "138" not in stored[0].text and "<手机号>" in stored[0].text
    item = inbox.item(sessions, first)
    assert item.sightings == 2
    assert item.reasons == ("low_confidence", "fallback")
    assert item.channels == ("rest", "wechat")


def test_the_inbox_is_sorted_by_frequency(sessions) -> None:
    _collect(sessions, "那个啥", "1")
    for n in range(3):
        _collect(sessions, "电闸跳了又跳", f"x{n}", moment=NOW + timedelta(minutes=n))
    _collect(sessions, "嗯嗯嗯", "2", moment=NOW + timedelta(hours=1))
    assert [(i.text, i.sightings) for i in inbox.items(sessions)] == [
        ("电闸跳了又跳", 3),
        ("嗯嗯嗯", 1),
        ("那个啥", 1),
    ]


def test_traditional_and_full_width_spellings_group_together(sessions) -> None:
    assert _collect(sessions, "電費怎麼這麼貴", "t") == _collect(sessions, "电费怎么这么贵", "s")


def test_an_empty_message_is_not_collected(sessions) -> None:
    assert _collect(sessions, "   ", "e") is None
    assert inbox.items(sessions) == []


def test_a_decided_item_cannot_be_decided_again_and_a_flag_reopens_a_discarded_one(sessions) -> None:
    number = _collect(sessions, "巴拉巴拉", "k")
    labelling.discard(sessions, number, "trainer", NOW)
    with pytest.raises(inbox.NotOpen):
        labelling.discard(sessions, number, "trainer", NOW)
    assert inbox.counts(sessions) == {"open": 0, "labelled": 0, "discarded": 1}
    _collect(sessions, "巴拉巴拉", "agent-flag", reason="flagged", flagged_by="agent1")
    assert inbox.item(sessions, number).status == "open"


def test_unsure_parses_are_the_ones_collected() -> None:
    threshold = inbox.fallback_threshold()
    assert inbox.reason_for("nlu_fallback", 0.9) == "low_confidence"
    assert inbox.reason_for("query_bill", threshold - 0.01) == "low_confidence"
    assert inbox.reason_for("query_bill", threshold + 0.01) is None
    ranking = [{"name": "nlu_fallback", "confidence": 0.45}, {"name": "query_outage", "confidence": 0.31}]
    assert inbox.best_guess("nlu_fallback", 0.45, ranking) == ("query_outage", 0.31)


# -- writing Rasa's YAML ---------------------------------------------------------------


def test_an_example_goes_under_its_intent_in_the_topic_file_which_stays_valid_rasa_yaml(project: Path) -> None:
    data = NluData(project)
    before = (project / "data" / "nlu" / "outage.yml").read_text(encoding="utf-8")
    path = data.add_example("query_outage", "帮我查下停电")
    assert path == project / "data" / "nlu" / "outage.yml"
    after = path.read_text(encoding="utf-8")
    assert [line for line in before.splitlines() if line.startswith("#")] == [
        line for line in after.splitlines() if line.startswith("#")
    ]  # the topic comments stay
    loaded = load_data(str(path))
    assert ("帮我查下停电", "query_outage") in {(m.get("text"), m.get("intent")) for m in loaded.intent_examples}
    assert len(loaded.intent_examples) == len(load_data(str(PROJECT / "data/nlu/outage.yml")).intent_examples) + 1


def test_a_new_intent_gets_a_block_in_its_topic_file_and_its_name_in_the_domain(project: Path) -> None:
    data = NluData(project)
    data.add_example("report_power_theft", "邻居家好像在偷电", topic="complaints", note="from the inbox")
    data.add_example("report_power_theft", "有人私自接线[3201000001](account_number)")
    loaded = load_data(str(project / "data" / "nlu" / "complaints.yml"))
    theft = [m for m in loaded.intent_examples if m.get("intent") == "report_power_theft"]
    assert [m.get("text") for m in theft] == ["邻居家好像在偷电", "有人私自接线3201000001"]
    assert theft[1].get("entities")[0]["entity"] == "account_number"
    domain = yaml.safe_load((project / "domain.yml").read_text(encoding="utf-8"))
    intents = domain["intents"]
    assert "report_power_theft" in intents
    assert intents.index("report_power_theft") < intents.index("EXTERNAL_agent_reply")


def test_a_faq_question_joins_its_siblings(project: Path) -> None:
    data = NluData(project)
    assert data.file_for("faq/power_theft_reward").name == "faq.yml"
    assert data.file_for("brand_new", topic="billing").name == "billing.yml"
    assert data.file_for("brand_new").name == "other.yml"


def test_entities_are_marked_in_rasa_syntax() -> None:
    example = annotate("查3201000001上个月的电费", [Entity("上个月", "month"), Entity("3201000001", "account_number")])
    assert example == "查[3201000001](account_number)[上个月](month)的电费"
    assert plain(example) == "查3201000001上个月的电费"
    with pytest.raises(ValueError, match="不在这句话里"):
        annotate("查电费", [Entity("九月", "month")])


# -- the checks before an example is accepted ------------------------------------------


def test_an_example_already_under_another_intent_is_refused_with_the_reason(project: Path) -> None:
    outcome = labelling.check(NluData(project), "query_outage", "查电费", [])
    assert not outcome.accepted and not outcome.forceable
    assert any("query_bill" in problem and "一句话只能属于一个意图" in problem for problem in outcome.problems)


def test_a_near_duplicate_of_another_intent_is_refused_unless_forced(project: Path) -> None:
    data = NluData(project)
    existing = next(e.text for e in data.examples() if e.intent == "query_outage" and len(e.text) >= 8)
    near = existing + "呀"
    refused = labelling.check(data, "bill_too_high", near, [])
    assert not refused.accepted and refused.forceable
    assert any("几乎一样" in p and "query_outage" in p for p in refused.problems)
    forced = labelling.check(data, "bill_too_high", near, [], force=True)
    assert forced.accepted and any("已强制接受" in note for note in forced.notes)


def test_placeholders_become_made_up_values_marked_as_entities(project: Path) -> None:
    outcome = labelling.check(NluData(project), "query_bill", "帮我瞅瞅<户号>俺家欠费不", [])
    assert outcome.accepted, outcome.problems
    assert "<户号>" not in outcome.example and "](account_number)" in outcome.example


def test_a_placeholder_that_is_no_entity_must_be_reworded(project: Path) -> None:
    outcome = labelling.check(NluData(project), "query_bill", "用卡<号码>交的电费查一下", [])
    assert not outcome.accepted and any("<号码>" in p for p in outcome.problems)


def test_an_entity_split_by_the_tokenizer_is_refused(project: Path) -> None:
    assert misaligned(project, "查上个月电费", [(1, 3, "month")]) == ["上个"]
    outcome = labelling.check(NluData(project), "query_bill", "查上个月电费吧", [Entity("上个", "month")])
    assert not outcome.accepted and any("分词" in p for p in outcome.problems)


def test_a_held_out_example_is_refused(project: Path) -> None:
    held_out = load_data(str(project / "holdout" / "nlu.yml")).intent_examples[0]
    outcome = labelling.check(NluData(project), "greet", held_out.get("text"), [])
    assert not outcome.accepted and any("留出集" in p for p in outcome.problems)


def test_unknown_entities_and_bad_intent_names_are_refused(project: Path) -> None:
    data = NluData(project)
    assert not labelling.check(data, "Query Bill!", "查电费吧", []).accepted
    assert not labelling.check(data, "EXTERNAL_agent_reply", "查电费吧", []).accepted
    outcome = labelling.check(data, "query_bill", "查九月电费吧", [Entity("九月", "date")])
    assert any("date" in p for p in outcome.problems)


def test_labelling_writes_the_example_and_closes_the_item(project: Path, sessions) -> None:
    number = _collect(sessions, "我家<姓名>说电费多扣了一百", "m")  # text as the inbox stores it
    outcome = labelling.label(sessions, project, number, "bill_too_high", "trainer", NOW)
    assert outcome.accepted, outcome.problems
    loaded = load_data(str(project / "data" / "nlu"))
    written = [m for m in loaded.intent_examples if "多扣了一百" in m.get("text")]
    assert {m.get("intent") for m in written} == {"bill_too_high"}
    assert len(written) == 1 and written[0].get("entities")[0]["entity"] == "person_name"
    item = inbox.item(sessions, number)
    assert item.status == "labelled" and item.label_intent == "bill_too_high"
    assert item.training_file == "data/nlu/billing.yml"


def test_a_refused_label_writes_nothing_and_leaves_the_item_open(project: Path, sessions) -> None:
    number = _collect(sessions, "查电费", "c")
    before = {p.name: p.read_text(encoding="utf-8") for p in (project / "data" / "nlu").iterdir()}
    outcome = labelling.label(sessions, project, number, "query_outage", "trainer", NOW)
    assert not outcome.accepted
    assert before == {p.name: p.read_text(encoding="utf-8") for p in (project / "data" / "nlu").iterdir()}
    assert inbox.item(sessions, number).status == "open"


# -- evaluation and the verdict --------------------------------------------------------


def _parse(intent: str, confidence: float = 0.9, entities=(), answer: str | None = None) -> dict:
    parse = {
        "intent": {"name": intent, "confidence": confidence},
        "entities": [{"entity": e, "value": v, "start": 0, "end": len(v)} for e, v in entities],
    }
    if answer:
        parse["response_selector"] = {"faq": {"response": {"intent_response_key": answer}}}
    return parse


def test_scores_follow_the_definitions() -> None:
    cases = [
        Case("a", "query_bill", None, (("month", "9月"),)),
        Case("b", "query_bill", None, ()),
        Case("c", "query_outage", None, ()),
        Case("d", "faq", "faq/how_to_pay", ()),
    ]
    parses = [
        _parse("query_bill", entities=[("month", "9月")]),
        _parse("query_outage"),
        _parse("nlu_fallback", 0.2),
        _parse("faq", answer="faq/invoice"),
    ]
    evaluation = score("m", cases, parses)
    bill, outage = evaluation.intents["query_bill"], evaluation.intents["query_outage"]
    assert (bill.precision, bill.recall, bill.support) == (1.0, 0.5, 2)
    assert (outage.precision, outage.recall, outage.f1) == (0.0, 0.0, 0.0)
    assert evaluation.accuracy == 0.5 and evaluation.faq_accuracy == 0.0
    assert evaluation.macro_f1 == pytest.approx((2 / 3 + 0 + 1) / 3, abs=1e-3)
    assert evaluation.entity.f1 == 1.0
    assert evaluation.confusion[evaluation.labels.index("query_outage")][evaluation.labels.index("nlu_fallback")] == 1
    assert {w["text"] for w in evaluation.wrong} == {"b", "c", "d"}


def test_a_candidate_more_than_a_point_worse_is_refused() -> None:
    cases = [Case(str(n), "query_bill" if n % 2 else "greet", None, ()) for n in range(100)]
    good = score("current", cases, [_parse(c.intent) for c in cases])
    slightly = score("candidate", cases, [_parse(c.intent) for c in cases[:-1]] + [_parse("greet")])
    worse = score("candidate", cases, [_parse(c.intent) for c in cases[:-3]] + [_parse("greet")] * 3)
    assert good.macro_f1 - slightly.macro_f1 == pytest.approx(MAX_DROP) and judge(slightly, good).promotable
    assert good.macro_f1 - worse.macro_f1 > MAX_DROP
    verdict = judge(worse, good)
    assert not verdict.promotable and "不予上线" in verdict.reason


def test_the_confusion_matrix_is_a_png(tmp_path: Path) -> None:
    cases = [Case("a", "greet", None, ()), Case("b", "thank", None, ())]
    evaluation = score("m", cases, [_parse("greet"), _parse("greet")])
    path = plot_confusion(evaluation, tmp_path / "confusion.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_the_holdout_is_never_trained_on(project: Path) -> None:
    assert leaked_holdout(PROJECT) == []
    example = load_data(str(project / "holdout" / "nlu.yml")).intent_examples[0]
    NluData(project).add_example(example.get("intent_response_key") or example.get("intent"), example.get("text"))
    assert leaked_holdout(project) == [example.get("text")]

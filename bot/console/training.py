"""The trainers' page (训练): the NLU inbox, customer messages the bot was unsure of, fell
back on, or an agent flagged, the most frequent first. A trainer labels one as an
example of an intent (bot.training.labelling checks it, writes it into data/nlu and
closes the item) or discards it. Agents flag a customer's line of a conversation for
the trainers from the conversation view (标记给训练师)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

from sanic import Request, Sanic
from sanic.response import HTTPResponse
from sqlalchemy.orm import sessionmaker

from bot.console import staff
from bot.console.conversation import the_ticket
from bot.console.web import allow, answer, console, now, refuse, render, run, see_other, user_of, wants_json
from bot.handoff import service
from bot.tickets.records import Ticket
from bot.training import inbox, labelling
from bot.training.nlu_data import Entity, NluData
from bot.utility import UtilityUnavailable, utility_data

BACK = "/training"
LIMIT = 200  # items shown per tab, the most frequent first
ENTITY_ROWS = 3  # entity marks per example; placeholders such as <手机号> are marked by themselves
OTHER_TOPIC = "other"
NOTICES = {"discarded": "已丢弃，这句话不会进入训练数据"}
FLAGGED = "已标记给训练师"
MAX_INTENT = 100
MAX_TEXT = 500
KEPT_NOTES = 200  # notes of accepted labels waiting for the page after the redirect


@dataclass(frozen=True)
class LabelForm:
    """What the trainer typed into one item's form (kept as typed, to show it again)."""

    intent: str = ""
    text: str = ""
    entities: tuple[tuple[str, str], ...] = (("", ""),) * ENTITY_ROWS  # (value, entity) rows
    topic: str = OTHER_TOPIC
    force: bool = False

    @classmethod
    def read(cls, request: Request) -> LabelForm:
        def field(name: str) -> str:
            return (request.form.get(name) or "").strip()

        return cls(
            intent=field("intent")[:MAX_INTENT],
            text=field("text")[:MAX_TEXT],
            entities=tuple((field(f"entity_value_{n}"), field(f"entity_{n}")) for n in range(1, ENTITY_ROWS + 1)),
            topic=field("topic") or OTHER_TOPIC,
            force=field("force") == "1",
        )

    def problems(self, topics: list[str], entities: list[str]) -> list[str]:
        """What the form itself lacks, before the example is checked."""
        problems = [] if self.intent else ["请填写意图名（可从列表里选，也可以填一个新意图）。"]
        for value, entity in self.entities:
            if value and not entity:
                problems.append(f"请为「{value}」选择实体类型，或清空这一行。")
            elif entity and not value:
                problems.append(f"选了实体 {entity}，但没有填句子里对应的文字。")
            elif entity and entity not in entities:
                problems.append(f"实体 {entity} 不在 domain.yml 里。")
        if self.topic not in topics:
            problems.append(f"主题 {self.topic} 不存在，请从列表里选。")
        return problems

    def marked(self) -> list[Entity]:
        return [Entity(value, entity) for value, entity in self.entities if value and entity]


def inbox_view(sessions: sessionmaker, project: Path, status: str) -> dict:
    """Everything the page shows: one tab of the inbox, the counts, and the intents,
    topics and entities the forms offer."""
    data = NluData(project)
    intent_files = data.intent_files()
    return {
        "tab": status,
        "items": inbox.items(sessions, status, LIMIT),
        "counts": inbox.counts(sessions),
        "intents": sorted(intent_files),
        "topics": topics(data),
        "entities": data.domain_entities(),
        # a new intent most likely belongs with the one the model guessed
        "topic_of": {intent: path.stem for intent, path in intent_files.items()},
        "names": staff.display_names(sessions),
    }


def topics(data: NluData) -> list[str]:
    found = data.topics()
    return found if OTHER_TOPIC in found else [*found, OTHER_TOPIC]


async def _page(request: Request, status: str = "open", *, code: int = 200, **context) -> HTTPResponse:
    the_console = console(request)
    view = await run(inbox_view, the_console.sessions, the_console.project, status)
    context.setdefault("notice", None)
    context.setdefault("notes", [])
    context.setdefault("failed", None)
    return render(
        request, "training.html", status=code, STATUS_NAMES=inbox.STATUSES, REASONS=inbox.REASONS,
        LIMIT=LIMIT, LabelForm=LabelForm, **view, **context,
    )  # fmt: skip


@allow("training")
async def training_page(request: Request) -> HTTPResponse:
    status = request.args.get("status", "open")
    if status not in inbox.STATUSES:
        status = "open"
    notice, notes = NOTICES.get(request.args.get("notice", "")), []
    if request.args.get("notice") == "labelled":
        notice, notes = await _labelled_notice(request)
    return await _page(request, status, notice=notice, notes=notes)


async def _labelled_notice(request: Request) -> tuple[str | None, list[str]]:
    """After an accepted label: where the example went (from the database) and the
    checks' notes (kept in memory by this person's request, so no link can forge them)."""
    try:
        item_id = int(request.args.get("item", ""))
        done = await run(inbox.item, console(request).sessions, item_id)
    except (ValueError, inbox.NoSuchItem):
        return None, []
    if done.status != "labelled":
        return None, []
    notes = request.app.ctx.label_notes.pop((user_of(request).username, item_id), [])
    return f"已写入 {done.training_file}：{done.example}", notes


@allow("training")
async def label_item(request: Request, item_id: int) -> HTTPResponse:
    the_console, user = console(request), user_of(request)
    form = LabelForm.read(request)
    refused = await _unless_open(request, item_id)
    if refused is not None:
        return refused
    data = NluData(the_console.project)
    known_topics, known_entities = await run(lambda: (topics(data), data.domain_entities()))
    problems = form.problems(known_topics, known_entities)
    if problems:
        return await _refused(request, item_id, form, problems, forceable=False)
    try:
        outcome = await run(
            labelling.label,
            the_console.sessions,
            the_console.project,
            item_id,
            form.intent,
            user.username,
            now(),
            entities=form.marked(),
            text=form.text or None,
            topic=form.topic,
            force=form.force,
        )
    except inbox.NoSuchItem:
        return refuse(request, 404, "找不到这条待标注的消息", back=BACK)
    except inbox.NotOpen:
        return await _not_open(request, item_id)
    if not outcome.accepted:
        return await _refused(request, item_id, form, outcome.problems, forceable=outcome.forceable)
    if wants_json(request):
        return answer(asdict(outcome))
    kept: OrderedDict = request.app.ctx.label_notes
    kept[(user.username, item_id)] = outcome.notes
    while len(kept) > KEPT_NOTES:
        kept.popitem(last=False)
    return see_other(f"{BACK}?notice=labelled&item={item_id}")


async def _refused(
    request: Request, item_id: int, form: LabelForm, problems: list[str], *, forceable: bool
) -> HTTPResponse:
    """Nothing was written: the page again (422), the reasons next to the item, the form
    as the trainer filled it."""
    if wants_json(request):
        return answer({"accepted": False, "problems": problems, "forceable": forceable}, status=422)
    failed = {"item": item_id, "problems": problems, "forceable": forceable, "form": form}
    return await _page(request, "open", code=422, failed=failed)


async def _unless_open(request: Request, item_id: int) -> HTTPResponse | None:
    try:
        found = await run(inbox.item, console(request).sessions, item_id)
    except inbox.NoSuchItem:
        return refuse(request, 404, "找不到这条待标注的消息", back=BACK)
    return None if found.status == "open" else await _not_open(request, item_id)


async def _not_open(request: Request, item_id: int) -> HTTPResponse:
    """409: someone decided this item already (another trainer, or the command line)."""
    sessions = console(request).sessions
    found = await run(inbox.item, sessions, item_id)
    names = await run(staff.display_names, sessions)
    who = names.get(found.decided_by, found.decided_by) if found.decided_by else "其他人"
    done = f"标注为 {found.label_intent}" if found.status == "labelled" else "丢弃"
    return refuse(request, 409, f"这条消息已由 {who} {done}，无需再处理。请回到列表看其他消息。", back=BACK)


@allow("training")
async def discard_item(request: Request, item_id: int) -> HTTPResponse:
    try:
        await run(labelling.discard, console(request).sessions, item_id, user_of(request).username, now())
    except inbox.NoSuchItem:
        return refuse(request, 404, "找不到这条待标注的消息", back=BACK)
    except inbox.NotOpen:
        return await _not_open(request, item_id)
    if wants_json(request):
        return answer({"discarded": item_id})
    return see_other(f"{BACK}?notice=discarded")


@allow("queue")
async def flag_message(request: Request, number: str, message_id: int) -> HTTPResponse:
    """An agent says the bot should learn from this customer line: it joins the inbox
    (redacted there), once however often it is flagged."""
    sessions = console(request).sessions

    def look():
        ticket = the_ticket(sessions, number)
        message = next((m for m in service.messages(sessions, ticket.number) if m.id == message_id), None)
        return ticket, service.handoff_for_ticket(sessions, ticket.number), message

    ticket, handoff, message = await run(look)
    back = f"/tickets/{ticket.number}"
    if message is None:
        return refuse(request, 404, "这条消息不在该工单的对话里", back=back)
    if message.speaker != "customer":
        return refuse(request, 400, "只能标记客户说的话", back=back)
    # the line's own handoff says where the customer wrote from; an older one, the ticket
    channel = handoff.channel if handoff is not None and handoff.id == message.handoff_id else ticket.channel
    item_id = await run(
        inbox.collect,
        sessions,
        message.text,
        key=inbox.sighting_key("handoff-message", str(message.id)),
        reason="flagged",
        channel=channel,
        moment=now(),
        names=await run(_customer_names, ticket),
        flagged_by=user_of(request).username,
    )
    if item_id is None:
        return refuse(request, 400, "这条消息没有可供训练的文字", back=back)
    if wants_json(request):
        return answer({"flagged": message.id, "item": item_id, "notice": FLAGGED})
    return see_other(f"{back}?notice=flagged&flagged={message.id}")


def _customer_names(ticket: Ticket) -> list[str]:
    """The account holder's name, so that it is redacted wherever the customer typed it."""
    if not ticket.account_number:
        return []
    try:
        account = utility_data().account(ticket.account_number)
    except UtilityUnavailable:
        return []
    return [account.holder_name] if account is not None and account.holder_name else []


def add_routes(app: Sanic) -> None:
    app.ctx.label_notes = OrderedDict()
    app.add_route(training_page, "/training", methods=["GET"], name="training_page")
    app.add_route(label_item, "/training/<item_id:int>/label", methods=["POST"], name="training_label")
    app.add_route(discard_item, "/training/<item_id:int>/discard", methods=["POST"], name="training_discard")
    app.add_route(
        flag_message, "/tickets/<number>/messages/<message_id:int>/flag", methods=["POST"], name="flag_message"
    )

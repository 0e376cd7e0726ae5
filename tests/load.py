"""Simulated customers filing a staff-conduct complaint over the REST channel, for the
load benchmarks (bench/complaints.py, bench/cluster.py) and the cluster's fault tests.

Each customer (own sender id, own phone 139xxxxxxxx) says three things:
  1. a complaint about staff conduct  -> the bot confirms the category ("服务行为 ... 对吗？")
  2. "对"                              -> the bot asks for a callback phone (手机号)
  3. the 11-digit phone               -> the bot files the ticket and says its number (GD…)

Every message carries a message id. A message that got no answer (connection refused or
reset, a timeout, 502/503 from nginx) is sent again with the same id, as a careful client
does: the cluster's REST channel processes an id once, so a retry is never answered twice.
Behind nginx each customer can have a loopback address of its own (127.0.x.y), so nginx's
rate per customer address applies per customer.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from sqlalchemy import bindparam, create_engine, text

# Staff-conduct complaints as customers write them. Each names the person and how they
# behaved (态度 / 推来推去 / 不耐烦 / 骂人 / 爱答不理 / 挂电话 ...), which is what makes the bot
# guess 服务行为 and ask to confirm it.
COMPLAINTS = [
    "我要投诉，营业厅的工作人员态度很差，推来推去",
    "我要投诉你们抄表员，态度太恶劣了，问两句就骂人",
    "投诉一下营业厅柜台那个小姑娘，爱答不理的，问什么都不耐烦",
    "我要投诉，上门的工作人员说话很冲，还吼我",
    "你们客服挂我电话，态度极差，我要投诉",
    "我要投诉营业厅的人，办个过户推来推去跑了三趟",
]
CONFIRM = re.compile(r"服务行为.*(对吗|可以吗)[？?]")
ASK_PHONE = re.compile(r"手机号")
NUMBER = re.compile(r"GD\d{12,13}")  # past 9,999 tickets a day a 5th digit (bot/tickets/numbers.py)
RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass
class Turn:
    text: str
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    seconds: float | None = None  # first send to the answer, retries included
    answered_at: float | None = None  # time.perf_counter() of the answer (or of the last attempt's failure)
    attempts: int = 0
    status: int | None = None
    replies: list[str] = field(default_factory=list)
    error: str | None = None  # "timeout", "HTTP 500", "ClientConnectorError", ... (of the last attempt)


@dataclass
class Customer:
    index: int
    sender: str
    phone: str
    complaint: str
    address: str | None = None  # the loopback address the customer sends from
    turns: list[Turn] = field(default_factory=list)
    deviations: list[str] = field(default_factory=list)  # replies that left the expected flow
    told: str | None = None  # the last ticket number the bot said, in any turn
    seconds: float | None = None  # the whole complaint, first message sent to last reply

    @property
    def errors(self) -> list[str]:
        return [t.error for t in self.turns if t.error]


def session_for(customer: Customer, timeout: float) -> aiohttp.ClientSession:
    """The customer's own connections, from their own address when they have one."""
    local = (customer.address, 0) if customer.address else None
    connector = aiohttp.TCPConnector(limit=0, local_addr=local, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout))


async def send(
    session: aiohttp.ClientSession, url: str, sender: str, turn: Turn, retries: int = 0, backoff: float = 0.5
) -> None:
    """Post one message; unanswered, post it again with the same id (`retries` times)."""
    began = time.perf_counter()
    body = {"sender": sender, "message": turn.text, "message_id": turn.message_id}
    for attempt in range(retries + 1):
        turn.attempts, turn.error = attempt + 1, None
        try:
            async with session.post(f"{url}/webhooks/rest/webhook", json=body) as r:
                turn.status = r.status
                answer = await r.json(content_type=None) if r.status == 200 else await r.text()
                if r.status == 200:
                    turn.replies = [m.get("text", "") for m in answer if isinstance(m, dict)]
                    break
                turn.error = f"HTTP {r.status}"
                if r.status not in RETRY_STATUSES:
                    break
        except asyncio.TimeoutError:
            turn.error = "timeout"
        except (aiohttp.ClientError, ValueError) as error:
            turn.error = type(error).__name__
        if attempt < retries:
            await asyncio.sleep(backoff * (attempt + 1))
    turn.answered_at = time.perf_counter()
    turn.seconds = turn.answered_at - began


async def complain(
    session: aiohttp.ClientSession,
    url: str,
    customer: Customer,
    start_line: asyncio.Event,
    retries: int = 0,
    pause: Callable[[], float] | None = None,
) -> None:
    """The three messages, each sent the moment the last answer came, or `pause()` seconds
    later (a customer reading the answer and typing; counted in `customer.seconds`)."""
    await start_line.wait()
    began = time.perf_counter()
    expectations = (
        (customer.complaint, CONFIRM, "no 服务行为 confirmation"),
        ("对", ASK_PHONE, "no question for the phone"),
        (customer.phone, NUMBER, "no ticket number"),
    )
    for message, expected, deviation in expectations:
        if pause is not None:
            await asyncio.sleep(pause())
        turn = Turn(message)
        customer.turns.append(turn)
        await send(session, url, customer.sender, turn, retries)
        if turn.error:
            return  # the conversation is broken off; the database check tells what was filed
        said = "\n".join(turn.replies)
        if not expected.search(said):
            customer.deviations.append(f"{deviation}: {said!r}")
    customer.seconds = time.perf_counter() - began
    customer.told = told_number(customer)
    last = "\n".join(customer.turns[-1].replies)
    masked = customer.phone[:3] + "****" + customer.phone[-4:]
    if NUMBER.search(last) and masked not in last:
        customer.deviations.append(f"the filing reply does not repeat the masked phone {masked}")


def told_number(customer: Customer) -> str | None:
    """The last ticket number the bot said in this conversation, in whichever turn."""
    said = [n for turn in customer.turns for reply in turn.replies for n in NUMBER.findall(reply)]
    return said[-1] if said else None


async def complain_all(
    url: str, customers: list[Customer], timeout: float, retries: int = 0, during: Callable | None = None
) -> float:
    """All customers at once, each over their own connections; `during` (a coroutine
    function) runs beside them from the start. The wall time of the load."""
    sessions = [session_for(customer, timeout) for customer in customers]
    try:
        start_line = asyncio.Event()
        tasks = [
            asyncio.create_task(complain(session, url, customer, start_line, retries))
            for session, customer in zip(sessions, customers, strict=False)
        ]
        await asyncio.sleep(0.1)  # every task is waiting at the start line
        began = time.perf_counter()
        start_line.set()
        beside = asyncio.create_task(during()) if during else None
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - began
        if beside is not None:
            await beside
        return wall
    finally:
        await asyncio.gather(*(session.close() for session in sessions))


def customer_address(index: int) -> str:
    """A loopback address of its own for customer `index` (127.0.1.1, 127.0.1.2, ...)."""
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


def make_customers(count: int, run_tag: str, own_addresses: bool = False) -> list[Customer]:
    rng = random.Random(run_tag)
    suffixes = rng.sample(range(10**8), count)  # distinct phones
    return [
        Customer(
            index=i,
            sender=f"complaint-{run_tag}-{i:04d}",
            phone=f"139{suffix:08d}",
            complaint=COMPLAINTS[i % len(COMPLAINTS)],
            address=customer_address(i) if own_addresses else None,
        )
        for i, suffix in enumerate(suffixes)
    ]


def check_database(url: str, customers: list[Customer]) -> tuple[dict[str, int], list[str]]:
    """Figures from the tickets of these customers' conversations, and what is wrong with them."""
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT number, conversation_id, callback_phone, category, request_type FROM tickets"
                     " WHERE conversation_id IN :senders").bindparams(bindparam("senders", expanding=True)),
                {"senders": [c.sender for c in customers]},
            ).all()
            sequence = connection.execute(text("SELECT COALESCE(MAX(last), 0) FROM ticket_sequences")).scalar()
    finally:
        engine.dispose()
    n = len(customers)
    numbers = Counter(row.number for row in rows)
    figures: dict[str, int] = {
        "tickets": len(rows), "distinct numbers": len(numbers), "sequence high-water mark": sequence,
    }  # fmt: skip
    problems: list[str] = []
    if len(rows) != n:
        problems.append(f"{len(rows)} tickets in the database for {n} customers")
    for number, times in numbers.items():
        if times > 1:
            problems.append(f"ticket number {number} used {times} times")
    by_conversation: dict[str, list] = {}
    for row in rows:
        by_conversation.setdefault(row.conversation_id, []).append(row)
    kinds: Counter[str] = Counter()
    for customer in customers:
        mine = by_conversation.get(customer.sender, [])
        who = f"customer {customer.index} ({customer.sender})"
        if len(mine) != 1:
            kinds["no ticket" if not mine else "more than one ticket"] += 1
            problems.append(f"{who}: {len(mine)} tickets {[r.number for r in mine]}, told {customer.told}")
            continue
        row = mine[0]
        if row.number != customer.told:
            kinds["ticket never told" if customer.told is None else "told another number"] += 1
            problems.append(f"{who}: ticket {row.number} in the database, told {customer.told}")
        if row.callback_phone != customer.phone:
            kinds["callback phone not the one given"] += 1
            problems.append(f"{who}: callback phone {row.callback_phone!r}, gave {customer.phone}")
        if (row.category, row.request_type) != ("staff_conduct", "complaint"):
            kinds["not filed as a staff-conduct complaint"] += 1
            problems.append(f"{who}: filed as {row.request_type}/{row.category}")
    figures |= {f"customers with {kind}": count for kind, count in kinds.items()}
    return figures, problems

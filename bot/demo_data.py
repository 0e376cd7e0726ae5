"""The demo data of the embedded default: three accounts, two areas with outages.

Dates are relative to today, and the data is made afresh on a new day, so the demo
never goes stale: 张伟's latest bill is far higher than the month before (last month
was an estimated reading, 估抄, and this month's real reading catches up), 王强 paid
his arrears yesterday and his reconnection is overdue, 光明路 has a fault outage now
and 幸福里 a planned outage tomorrow.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from bot import models, tariff
from bot.months import shift

SEED_KEY = "demo_seeded_on"
MONTHS_OF_BILLS = 14

AREAS = [
    ("光明路", "陈明", "13900000011"),
    ("幸福里", "刘芳", "13900000012"),
    ("和平路", "赵磊", "13900000013"),
]

# usage in kWh, oldest month first; the last is the latest bill
_ZHANG_WEI = [238, 205, 172, 160, 178, 196, 214, 262, 288, 276, 231, 195, 118, 521]
_LI_NA = [182, 160, 141, 133, 139, 150, 166, 198, 221, 214, 176, 152, 149, 158]
_WANG_QIANG = [226, 201, 180, 169, 185, 203, 219, 255, 279, 268, 224, 205, 199, 212]
_ACCOUNTS = [
    ("3201000001", "张伟", "13800000001", "光明路", "光明路18号3单元502", "normal", _ZHANG_WEI),
    ("3201000002", "李娜", "13800000002", "幸福里", "幸福里小区7栋1204", "normal", _LI_NA),
    ("3201000003", "王强", "13800000003", "光明路", "光明路46号", "disconnected", _WANG_QIANG),
]


class NotADemoDatabase(Exception):
    """The database holds accounts that are not demo data: it is never cleared."""


def ensure_demo_data(sessions: sessionmaker, now: datetime) -> bool:
    """Load the demo data if it is missing or was made on another day; True if it was (re)made."""
    demo_numbers = {number for number, *_ in _ACCOUNTS}
    with sessions.begin() as session:
        seeded = session.get(models.Meta, SEED_KEY)
        if seeded is not None and seeded.value == now.date().isoformat():
            return False
        others = session.scalars(select(models.Account.number).where(models.Account.number.not_in(demo_numbers)))
        if others.first() is not None:
            raise NotADemoDatabase("the database holds real accounts; demo data is not loaded there")
        _clear(session)
        _seed(session, now)
        session.merge(models.Meta(key=SEED_KEY, value=now.date().isoformat()))
    return True


def _clear(session: Session) -> None:
    for table in (
        models.Outage,
        models.ReconnectionOrder,
        models.Payment,
        models.MeterReading,
        models.Bill,
        models.Account,
        models.Area,
    ):
        session.execute(delete(table))


def _seed(session: Session, now: datetime) -> None:
    areas = {name: models.Area(name=name, manager_name=m, manager_phone=p) for name, m, p in AREAS}
    session.add_all(areas.values())
    session.flush()

    latest = shift(now.date().replace(day=1), -1)
    yesterday = now - timedelta(days=1)
    paid_yesterday = max(datetime.combine(yesterday.date(), time(0, 0)), now - timedelta(hours=26))
    # the 24-hour promise has passed, even just after midnight
    reconnection_due = min(paid_yesterday + timedelta(hours=24), now - timedelta(minutes=5))

    for number, name, phone, area, address, status, _usages in _ACCOUNTS:
        session.add(
            models.Account(
                number=number,
                holder_name=name,
                phone=phone,
                area_id=areas[area].id,
                address=address,
                status=status,
            )
        )
    session.flush()

    for number, _name, _phone, _area, _address, _status, usages in _ACCOUNTS:
        reading = Decimal(8000 + int(number[-1]) * 1500)
        for index, usage in enumerate(usages):
            period = shift(latest, index - len(usages) + 1)
            usage_kwh = Decimal(usage)
            reading += usage_kwh
            estimated = number == "3201000001" and index == len(usages) - 2
            read_on = shift(period, 1)
            due = read_on.replace(day=25)
            paid_at = _paid_at(number, index, len(usages), due, paid_yesterday)
            amount = tariff.amount_for(usage_kwh)
            session.add(
                models.Bill(
                    account_number=number,
                    period=period,
                    usage_kwh=usage_kwh,
                    amount=amount,
                    due_date=due,
                    paid_at=paid_at,
                    reading_estimated=estimated,
                )
            )
            session.add(
                models.MeterReading(
                    account_number=number,
                    read_on=read_on,
                    reading_kwh=reading,
                    usage_kwh=usage_kwh,
                    estimated=estimated,
                )
            )
            if paid_at is not None and number != "3201000003":
                channel = ("微信", "支付宝", "网上国网App")[index % 3]
                session.add(models.Payment(account_number=number, paid_at=paid_at, amount=amount, channel=channel))

    # 王强 paid three months of arrears at once, yesterday
    arrears = sum(
        (tariff.amount_for(Decimal(u)) for u in _WANG_QIANG[-3:]),
        Decimal(0),
    )
    for index, usage in enumerate(_WANG_QIANG[:-3]):
        period = shift(latest, index - len(_WANG_QIANG) + 1)
        paid = datetime.combine(shift(period, 1).replace(day=12), time(19, 20))
        session.add(
            models.Payment(
                account_number="3201000003",
                paid_at=paid,
                amount=tariff.amount_for(Decimal(usage)),
                channel="微信",
            )
        )
    session.add(
        models.Payment(account_number="3201000003", paid_at=paid_yesterday, amount=arrears, channel="营业厅柜台")
    )
    session.add(
        models.ReconnectionOrder(
            account_number="3201000003",
            created_at=paid_yesterday + timedelta(minutes=10),
            due_at=reconnection_due,
            status="pending",
        )
    )

    started = (now - timedelta(hours=2)).replace(minute=(now.minute // 5) * 5, second=0)
    tomorrow = now.date() + timedelta(days=1)
    session.add_all(
        [
            models.Outage(
                area_id=areas["光明路"].id,
                kind="fault",
                starts_at=started,
                ends_at=started + timedelta(hours=5),
                cause="10千伏线路故障（大风刮断树枝搭落线路）",
                status="in_progress",
            ),
            models.Outage(
                area_id=areas["光明路"].id,
                kind="fault",
                starts_at=datetime.combine(now.date() - timedelta(days=20), time(14, 5)),
                ends_at=datetime.combine(now.date() - timedelta(days=20), time(17, 40)),
                cause="低压线路接头烧损",
                status="restored",
            ),
            models.Outage(
                area_id=areas["幸福里"].id,
                kind="planned",
                starts_at=datetime.combine(tomorrow, time(8, 0)),
                ends_at=datetime.combine(tomorrow, time(16, 0)),
                cause="10千伏线路设备检修",
                status="scheduled",
            ),
        ]
    )


def _paid_at(number: str, index: int, count: int, due: date, paid_yesterday: datetime) -> datetime | None:
    if number == "3201000003" and index >= count - 3:
        return paid_yesterday
    if number == "3201000001" and index == count - 1:
        return None  # the high bill, not yet paid
    return datetime.combine(due - timedelta(days=12 + index % 5), time(20, 15))


def seeded_on(sessions: sessionmaker) -> date | None:
    with sessions() as session:
        value = session.scalar(select(models.Meta.value).where(models.Meta.key == SEED_KEY))
    return date.fromisoformat(value) if value else None

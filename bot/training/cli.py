"""`python -m bot nlu ...`: the trainers' inbox, labelling, candidate models and promotion
from the command line (the console's 训练 pages call the same services)."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

from bot import clock
from bot.config import PROJECT_ROOT, load_settings

EXIT_REFUSED = 3  # a refused label, candidate or promotion: not a crash, a "no"


def _sessions(args: argparse.Namespace):
    from bot.db import session_factory

    return session_factory(args.database_url or load_settings().database_url)


def _who(args: argparse.Namespace) -> str:
    return args.by or os.environ.get("USER") or getpass.getuser()


def _quiet_rasa() -> None:
    """Rasa logs every parse at debug level; the trainer wants the report."""
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.WARNING)
    configure_structlog(logging.WARNING)


def cmd_inbox(args: argparse.Namespace) -> int:
    from bot.training import inbox

    found = inbox.items(_sessions(args), args.status, args.limit)
    if args.json:
        print(json.dumps([_plain(item) for item in found], ensure_ascii=False, indent=2))
        return 0
    if not found:
        print(f"收件箱里没有{inbox.STATUSES[args.status]}的句子。")
        return 0
    print(f"{'编号':>5} {'次数':>4}  {'模型猜':<22} {'置信度':>6}  来源    句子")
    for item in found:
        guess = item.label_intent or item.predicted_intent or "—"
        confidence = f"{item.confidence:.2f}" if item.confidence is not None else "—"
        reasons = "/".join(inbox.REASONS[r] for r in item.reasons)
        print(f"{item.id:>5} {item.sightings:>4}  {guess:<22} {confidence:>6}  {reasons:<6}  {item.text}")
    return 0


def _plain(item: object) -> dict:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in asdict(item).items()}


def cmd_label(args: argparse.Namespace) -> int:
    from bot.training import inbox, labelling
    from bot.training.nlu_data import Entity

    entities = []
    for mark in args.entity or []:
        value, _, name = mark.rpartition("=")
        if not value or not name:
            print(f"实体要写成 值=实体名，例如 上个月=month（收到的是 {mark!r}）", file=sys.stderr)
            return 2
        entities.append(Entity(value, name))
    try:
        outcome = labelling.label(
            _sessions(args), args.project, args.item, args.intent, _who(args), clock.now(),
            entities=entities, text=args.text, topic=args.topic, force=args.force,
        )  # fmt: skip
    except inbox.NoSuchItem:
        print(f"收件箱里没有编号 {args.item}。", file=sys.stderr)
        return 2
    except inbox.NotOpen as error:
        print(f"这一条已经处理过了：{error}", file=sys.stderr)
        return EXIT_REFUSED
    for note in outcome.notes:
        print(f"提示：{note}")
    if not outcome.accepted:
        for problem in outcome.problems:
            print(f"未接受：{problem}", file=sys.stderr)
        if outcome.forceable:
            print("确认无误的话，加 --force 再运行一次。", file=sys.stderr)
        return EXIT_REFUSED
    print(f"已写入 {outcome.file}：{outcome.example}（意图 {outcome.intent}）")
    print("下一步：python -m bot nlu candidate 训练并评估候选模型。")
    return 0


def cmd_discard(args: argparse.Namespace) -> int:
    from bot.training import inbox, labelling

    try:
        labelling.discard(_sessions(args), args.item, _who(args), clock.now())
    except inbox.NoSuchItem:
        print(f"收件箱里没有编号 {args.item}。", file=sys.stderr)
        return 2
    except inbox.NotOpen as error:
        print(f"这一条已经处理过了：{error}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"已丢弃 {args.item}。")
    return 0


def cmd_candidate(args: argparse.Namespace) -> int:
    """Train (or take --model), evaluate next to the current model, write the report."""
    import shutil
    import subprocess

    from bot.training import candidate

    project: Path = args.project
    out = candidate.new_candidate_dir(project)
    try:
        if args.model:
            out.mkdir(parents=True)
            shutil.copy2(args.model, out / candidate.MODEL_FILE)
        else:
            print(f"训练候选模型到 {out} ……", flush=True)
            candidate.train(project, out, args.config)
        _quiet_rasa()
        print("在留出集上评估候选模型和当前模型 ……", flush=True)
        verdict = candidate.assess(project, out, args.current or project / "models" / "current.tar.gz")
    except subprocess.CalledProcessError as error:
        print(f"训练失败（rasa train 退出码 {error.returncode}），请看上面的输出。", file=sys.stderr)
        return 1
    except candidate.HoldoutLeak as error:
        print(f"不能评估：{error}。请把这些句子从 data/nlu 里删掉。", file=sys.stderr)
        return 1
    print(f"报告：{out / candidate.REPORT_MD}（混淆矩阵 {out / candidate.CONFUSION_PNG}）")
    print(("可以上线：" if verdict.promotable else "不予上线：") + verdict.reason)
    if verdict.promotable:
        print(f"上线：python -m bot nlu promote {out.relative_to(project) if out.is_relative_to(project) else out}")
    return 0 if verdict.promotable else EXIT_REFUSED


def cmd_promote(args: argparse.Namespace) -> int:
    from bot.training import candidate, promotion

    project: Path = args.project
    chosen = args.candidate or candidate.latest_candidate(project)
    if chosen is None or not (chosen / candidate.REPORT_JSON).exists():
        print("没有评估过的候选模型：先运行 python -m bot nlu candidate。", file=sys.stderr)
        return 2
    settings = load_settings()
    urls = [url.rstrip("/") for url in args.rasa_url] if args.rasa_url else [settings.rasa_url]
    token = settings.rasa_token or _token_file(project)
    try:
        done = promotion.promote(
            project, chosen, urls, token, _sessions(args), _who(args), clock.now(), force=args.force
        )
    except promotion.PromotionRefused as error:
        print(f"不予上线：{error}", file=sys.stderr)
        return EXIT_REFUSED
    except promotion.PromotionFailed as error:
        print(f"上线失败：{error}", file=sys.stderr)
        return 1
    forced = "（强制）" if done.forced else ""
    print(f"已上线{forced}：{', '.join(done.servers)} 正在用 {done.model}；下次启动也用它（models/current.tar.gz）。")
    return 0


def _token_file(project: Path) -> str:
    path = project / "var" / "rasa-token"
    return path.read_text().strip() if path.exists() else ""


def add_commands(sub: argparse._SubParsersAction) -> None:
    nlu = sub.add_parser("nlu", help="teach the bot: the inbox, labelling, candidate models, promotion")
    nlu_sub = nlu.add_subparsers(dest="nlu_command", required=True)

    def common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--database-url")
        parser.add_argument("--project", type=Path, default=PROJECT_ROOT, help="project root (default: this one)")
        return parser

    listing = common(nlu_sub.add_parser("inbox", help="what the bot misunderstood, the most frequent first"))
    listing.add_argument("--status", choices=["open", "labelled", "discarded"], default="open")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_inbox)

    label = common(nlu_sub.add_parser("label", help="label an inbox item with an intent (existing or new)"))
    label.add_argument("item", type=int, help="the inbox item's number")
    label.add_argument("intent", help="e.g. query_outage, faq/invoice, or a new name such as ask_invoice")
    label.add_argument("--entity", action="append", metavar="VALUE=ENTITY", help="mark an entity, e.g. 上个月=month")
    label.add_argument("--text", help="the example in other words (the inbox text with personal data removed)")
    label.add_argument("--topic", help="for a new intent: the data/nlu file (billing, outage... default other)")
    label.add_argument("--force", action="store_true", help="accept a near-duplicate of another intent's example")
    label.add_argument("--by", help="the trainer's name (default: the user)")
    label.set_defaults(func=cmd_label)

    discard = common(nlu_sub.add_parser("discard", help="nothing to learn from this inbox item"))
    discard.add_argument("item", type=int)
    discard.add_argument("--by")
    discard.set_defaults(func=cmd_discard)

    train = common(
        nlu_sub.add_parser("candidate", help="train a candidate model, evaluate it on the held-out set, report")
    )
    train.add_argument("--config", type=Path, help="the training configuration (default: config.yml)")
    train.add_argument("--model", type=Path, help="evaluate this trained model instead of training one")
    train.add_argument("--current", type=Path, help="the model to compare with (default: models/current.tar.gz)")
    train.set_defaults(func=cmd_candidate)

    promote = common(nlu_sub.add_parser("promote", help="put a candidate in front of customers, without a restart"))
    promote.add_argument("candidate", nargs="?", type=Path, help="the candidate's folder (default: the latest)")
    promote.add_argument("--force", action="store_true", help="promote even if its macro-F1 dropped")
    promote.add_argument("--rasa-url", action="append", help="a Rasa server to update (default: RASA_URL); repeatable")
    promote.add_argument("--by")
    promote.set_defaults(func=cmd_promote)

"""Promoting a candidate: every running Rasa server loads it through the HTTP API
(PUT /model, no restart; conversations stay in the tracker store), then it becomes
models/current.tar.gz for the next start, the one before it kept as previous.tar.gz.
Refused candidates are not promoted unless forced; every attempt is recorded."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests
from sqlalchemy.orm import sessionmaker

from bot.tickets.store import write
from bot.training.candidate import MODEL_FILE, Verdict, read_report
from bot.training.models import PromotionRow

log = logging.getLogger(__name__)
LOAD_TIMEOUT = 300.0  # loading a model takes Rasa some seconds; a busy server longer


class PromotionRefused(Exception):
    """The candidate is worse than the current model (and promotion was not forced)."""


class PromotionFailed(Exception):
    """A Rasa server did not take the model; the message says which and why."""


@dataclass
class Promotion:
    model: Path
    servers: list[str]
    verdict: Verdict
    forced: bool


def model_id(model: Path) -> str:
    """The id Rasa gives a trained model (in its metadata): what /status reports."""
    from rasa.engine.storage.local_model_storage import LocalModelStorage

    return LocalModelStorage.metadata_from_archive(model).model_id


def promote(
    project: Path,
    candidate_dir: Path,
    rasa_urls: list[str],
    token: str,
    sessions: sessionmaker,
    by: str,
    moment: datetime,
    *,
    force: bool = False,
) -> Promotion:
    """Put the candidate in front of customers on every server in `rasa_urls`."""
    model = (candidate_dir / MODEL_FILE).resolve()
    verdict = read_report(candidate_dir)[2]
    if not verdict.promotable and not force:
        _record(sessions, moment, model, verdict, force, "refused", verdict.reason, by)
        raise PromotionRefused(verdict.reason)
    wanted = model_id(model)
    done = []
    for url in rasa_urls:
        try:
            _load(url, token, model, wanted)
        except PromotionFailed as error:
            detail = f"{error}" + (f"（已换上新模型的服务器：{', '.join(done)}）" if done else "")
            _record(sessions, moment, model, verdict, force, "failed", detail, by)
            raise PromotionFailed(detail) from error
        done.append(url)
    install(project, candidate_dir)
    _record(sessions, moment, model, verdict, force, "promoted", verdict.reason, by)
    return Promotion(model, done, verdict, force and not verdict.promotable)


def _load(url: str, token: str, model: Path, wanted: str) -> None:
    params = {"token": token} if token else {}
    try:
        answer = requests.put(f"{url}/model", params=params, json={"model_file": str(model)}, timeout=LOAD_TIMEOUT)
        if answer.status_code != 204:
            raise PromotionFailed(f"{url} 没有换上模型：HTTP {answer.status_code} {answer.text[:200]}")
        status = requests.get(f"{url}/status", params=params, timeout=30)
        status.raise_for_status()
    except requests.RequestException as error:
        raise PromotionFailed(f"连不上 Rasa 服务器 {url}：{type(error).__name__}") from error
    running = status.json().get("model_id")
    if running != wanted:
        raise PromotionFailed(f"{url} 报告正在用的模型是 {running}，不是 {wanted}")
    log.info("%s runs model %s now", url, wanted)


def install(project: Path, candidate_dir: Path) -> None:
    """Make the candidate models/current.tar.gz (atomically), keeping the old one as
    previous.tar.gz, with the fingerprint that tells scripts/train.sh it is current."""
    models = project / "models"
    current = models / "current.tar.gz"
    if current.exists():
        shutil.copy2(current, models / "previous.tar.gz")
        fingerprint = models / "current.fingerprint"
        if fingerprint.exists():
            shutil.copy2(fingerprint, models / "previous.fingerprint")
    staged = models / ".current.tar.gz.new"
    shutil.copy2(candidate_dir / MODEL_FILE, staged)
    os.replace(staged, current)
    if (candidate_dir / "fingerprint").exists():
        shutil.copy2(candidate_dir / "fingerprint", models / "current.fingerprint")


def _record(
    sessions: sessionmaker,
    moment: datetime,
    model: Path,
    verdict: Verdict,
    forced: bool,
    outcome: str,
    detail: str,
    by: str,
) -> None:
    row = PromotionRow(
        at=moment,
        model=str(model),
        candidate_macro_f1=verdict.candidate_macro_f1,
        current_macro_f1=verdict.current_macro_f1,
        forced=int(forced),
        outcome=outcome,
        detail=detail,
        by=by,
    )
    write(sessions, lambda session: session.add(row))

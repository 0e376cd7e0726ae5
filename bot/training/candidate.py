"""A candidate model: trained from the training data as it is now, evaluated on the
held-out set next to the current model, with a report a trainer can read and a verdict:
promotable, or refused because its macro-F1 fell by more than a point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.training.evaluation import Evaluation, evaluate, load_cases, plot_confusion

MAX_DROP = 0.01  # one point of macro-F1
HOLDOUT = Path("holdout") / "nlu.yml"
REPORT_JSON, REPORT_MD, CONFUSION_PNG, MODEL_FILE = "report.json", "report.md", "confusion.png", "model.tar.gz"


class HoldoutLeak(Exception):
    """Held-out examples are in the training data: the comparison would mean nothing."""


@dataclass
class Verdict:
    promotable: bool
    reason: str
    candidate_macro_f1: float
    current_macro_f1: float | None

    @property
    def change(self) -> float | None:
        return None if self.current_macro_f1 is None else self.candidate_macro_f1 - self.current_macro_f1


def judge(candidate: Evaluation, current: Evaluation | None) -> Verdict:
    """Refuse a candidate whose macro-F1 on the held-out set is more than a point below the current's."""
    if current is None:
        return Verdict(True, "没有正在使用的模型可比较", candidate.macro_f1, None)
    drop = current.macro_f1 - candidate.macro_f1
    if drop > MAX_DROP + 1e-9:  # exactly one point is still allowed, whatever the float says
        reason = (
            f"候选模型的 macro-F1 {candidate.macro_f1:.3f} 比当前模型 {current.macro_f1:.3f} "
            f"低了 {drop * 100:.1f} 个点（允许 {MAX_DROP * 100:.0f} 个点）：不予上线，除非强制。"
        )
        return Verdict(False, reason, candidate.macro_f1, current.macro_f1)
    reason = f"macro-F1 {current.macro_f1:.3f} → {candidate.macro_f1:.3f}，可以上线。"
    return Verdict(True, reason, candidate.macro_f1, current.macro_f1)


def leaked_holdout(project: Path) -> list[str]:
    """Held-out texts that are also training examples."""
    from bot.text import normalize
    from bot.training.nlu_data import NluData

    trained = {normalize(example.text) for example in NluData(project).examples()}
    return [case.text for case in load_cases(project / HOLDOUT) if normalize(case.text) in trained]


def train(project: Path, out: Path, config: Path | None = None) -> Path:
    """Train a full model (NLU and dialogue) from the project's files into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    rasa = Path(sys.executable).with_name("rasa")
    command = [
        str(rasa), "train", "--config", str(config or project / "config.yml"), "--domain", "domain.yml",
        "--data", "data", "--out", str(out), "--fixed-model-name", "model", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "PYTHONPATH": str(project)}
    subprocess.run(command, cwd=project, check=True, env=env)
    fingerprint = subprocess.run(
        ["bash", str(project / "scripts" / "fingerprint.sh")], cwd=project, check=True, capture_output=True, text=True
    ).stdout.strip()
    (out / "fingerprint").write_text(fingerprint + "\n")
    return out / MODEL_FILE


def assess(project: Path, candidate_dir: Path, current_model: Path | None) -> Verdict:
    """Evaluate the candidate in `candidate_dir` and the current model on the held-out set,
    write the report there, and return the verdict (also in report.json)."""
    leaks = leaked_holdout(project)
    if leaks:
        raise HoldoutLeak("留出集的例句出现在训练数据里：" + "、".join(leaks[:5]))
    cases = load_cases(project / HOLDOUT)
    candidate = evaluate(candidate_dir / MODEL_FILE, cases)
    current = evaluate(current_model, cases) if current_model and current_model.exists() else None
    verdict = judge(candidate, current)
    plot_confusion(candidate, candidate_dir / CONFUSION_PNG, f"candidate {candidate_dir.name}: intents on holdout")
    report = {
        "candidate": candidate.to_dict(),
        "current": current.to_dict() if current else None,
        "verdict": {"promotable": verdict.promotable, "reason": verdict.reason},
        "at": datetime.now().isoformat(timespec="seconds"),
    }
    (candidate_dir / REPORT_JSON).write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    (candidate_dir / REPORT_MD).write_text(markdown(candidate, current, verdict), encoding="utf-8")
    return verdict


def read_report(candidate_dir: Path) -> tuple[Evaluation, Evaluation | None, Verdict]:
    report = json.loads((candidate_dir / REPORT_JSON).read_text(encoding="utf-8"))
    candidate = Evaluation.from_dict(report["candidate"])
    current = Evaluation.from_dict(report["current"]) if report["current"] else None
    return candidate, current, judge(candidate, current)


def new_candidate_dir(project: Path) -> Path:
    return project / "models" / "candidates" / datetime.now().strftime("%Y%m%d-%H%M%S")


def latest_candidate(project: Path) -> Path | None:
    found = sorted(p for p in (project / "models" / "candidates").glob("*") if (p / MODEL_FILE).exists())
    return found[-1] if found else None


def markdown(candidate: Evaluation, current: Evaluation | None, verdict: Verdict) -> str:
    """The report: verdict, summary figures side by side, per-intent and entity scores,
    and the examples the candidate gets wrong."""

    def figure(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    lines = [
        "# 候选模型评估报告",
        "",
        f"**结论：{'可以上线' if verdict.promotable else '不予上线'}**。{verdict.reason}",
        "",
        f"留出集（{HOLDOUT}，从不参与训练）共 {candidate.cases} 句。混淆矩阵见 {CONFUSION_PNG}。",
        "",
        "| 指标 | 当前模型 | 候选模型 |",
        "| --- | --- | --- |",
        f"| 意图 macro-F1 | {figure(current and current.macro_f1)} | {figure(candidate.macro_f1)} |",
        f"| 意图准确率 | {figure(current and current.accuracy)} | {figure(candidate.accuracy)} |",
        f"| 实体 F1 | {figure(current and current.entity.f1)} | {figure(candidate.entity.f1)} |",
        f"| 常见问题答案准确率 | {figure(current and current.faq_accuracy)} | {figure(candidate.faq_accuracy)} |",
        "",
        "## 各意图",
        "",
        "| 意图 | 例句数 | 精确率 | 召回率 | F1 | 当前 F1 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, scores in sorted(candidate.intents.items(), key=lambda item: item[1].f1):
        before = current.intents.get(name) if current else None
        lines.append(
            f"| {name} | {scores.support} | {scores.precision:.3f} | {scores.recall:.3f} | {scores.f1:.3f} "
            f"| {figure(before.f1 if before else None)} |"
        )
    lines += ["", "## 实体", "", "| 实体 | 数量 | 精确率 | 召回率 | F1 |", "| --- | --- | --- | --- | --- |"]
    for name, scores in candidate.entities.items():
        lines.append(f"| {name} | {scores.support} | {scores.precision:.3f} | {scores.recall:.3f} | {scores.f1:.3f} |")
    lines += ["", f"## 候选模型答错的例句（{len(candidate.wrong)} 句）", ""]
    if candidate.wrong:
        lines += ["| 例句 | 应为 | 识别为 | 置信度 | 错在 |", "| --- | --- | --- | --- | --- |"]
        for case in candidate.wrong:
            mistakes = "、".join({"intent": "意图", "entities": "实体", "faq": "答案"}[m] for m in case["mistakes"])
            text = case["text"].replace("|", "\\|")
            expected, predicted, confidence = case["expected"], case["predicted"], case["confidence"]
            lines.append(f"| {text} | {expected} | {predicted} | {confidence:.2f} | {mistakes} |")
    else:
        lines.append("没有。")
    return "\n".join(lines) + "\n"

"""Teaching the bot, timed: label one inbox item, retrain a candidate, evaluate it and the
current model on the held-out set, promote it into a running Rasa server.

    .venv/bin/python bench/training.py [--keep]

Works on a scratch copy of the project in bench/out/training-* (with its own Rasa cache,
so the first training is cold) and a scratch SQLite database; a Rasa server is started on
the project's current model with the HTTP API behind a token. Two rounds:

  round 1 (cold)  one inbox item labelled as a new example, then the candidate trained
                  with no Rasa cache, evaluated next to the current model, promoted;
  round 2 (warm)  another example, the candidate trained with round 1's cache (only the
                  components whose inputs changed are retrained), evaluated, promoted.

Prints the wall time of each step, the model's size (the .tar.gz Rasa loads, and
unpacked) and the Rasa server's memory before and after each swap. The server's log stays
in the scratch folder, which is removed unless --keep.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bot import clock  # noqa: E402
from bot.db import session_factory  # noqa: E402
from bot.schema import upgrade  # noqa: E402
from bot.training import candidate, inbox, labelling, promotion  # noqa: E402
from tests.e2e.servers import free_port, start, wait_until_up  # noqa: E402
from tests.training_project import scratch_project  # noqa: E402

TOKEN = "bench-token"
EXAMPLES = [("这会儿整栋楼突然都黑了是咋回事", "query_outage"), ("俺们这片咋又没电了，啥时候能来", "query_outage")]
TIMED = ("train", "evaluate (both models)", "promote (PUT /model)")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def unpacked_mb(model: Path) -> float:
    with tarfile.open(model) as archive:
        return sum(member.size for member in archive.getmembers()) / 2**20


def one_round(name: str, root: Path, sessions, url: str, example: tuple[str, str], pid: int) -> dict:
    text, intent = example
    figures: dict[str, float | str] = {"round": name}
    item = inbox.collect(
        sessions, text, key=inbox.sighting_key("bench", name), reason="low_confidence", channel="bench",
        moment=clock.now(),
    )  # fmt: skip
    started = time.monotonic()
    outcome = labelling.label(sessions, root, item, intent, "bench", clock.now())
    figures["label (checks, rasa data validate)"] = time.monotonic() - started
    if not outcome.accepted:
        raise SystemExit(f"the label was refused: {outcome.problems}")
    out = candidate.new_candidate_dir(root)
    started = time.monotonic()
    candidate.train(root, out)
    figures["train"] = time.monotonic() - started
    started = time.monotonic()
    verdict = candidate.assess(root, out, root / "models" / "current.tar.gz")
    figures["evaluate (both models)"] = time.monotonic() - started
    started = time.monotonic()
    promotion.promote(root, out, [url], TOKEN, sessions, "bench", clock.now(), force=True)
    figures["promote (PUT /model)"] = time.monotonic() - started
    figures["retrain + evaluate + promote"] = sum(figures[key] for key in TIMED)
    figures["macro-F1, current → candidate"] = f"{verdict.current_macro_f1:.3f} → {verdict.candidate_macro_f1:.3f}"
    figures["model .tar.gz (MB)"] = (out / candidate.MODEL_FILE).stat().st_size / 2**20
    figures["model unpacked (MB)"] = unpacked_mb(out / candidate.MODEL_FILE)
    figures["Rasa server RSS after the swap (MB)"] = rss_mb(pid)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    out = PROJECT / "bench" / "out" / f"training-{time.strftime('%Y%m%d-%H%M%S')}"
    root = scratch_project(out / "project", runnable=True)
    shutil.copy2(PROJECT / "endpoints.yml", root / "endpoints.yml")
    database = f"sqlite:///{out / 'bench.db'}"
    upgrade(database)
    sessions = session_factory(database)
    os.environ["RASA_TELEMETRY_ENABLED"] = "false"
    port = free_port()
    rasa = start(
        "rasa",
        [
            str(PROJECT / ".venv" / "bin" / "rasa"), "run", "--port", str(port), "--interface", "127.0.0.1",
            "--model", str(root / "models" / "current.tar.gz"), "--endpoints", str(root / "endpoints.yml"),
            "--enable-api", "--auth-token", TOKEN,
        ],
        {"RASA_TELEMETRY_ENABLED": "false"},
        out,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(rasa, f"{url}/", ready="Hello from Rasa")
        before = rss_mb(rasa.popen.pid)
        names = ("1 (cold cache)", "2 (warm cache)")
        rounds = [
            one_round(name, root, sessions, url, example, rasa.popen.pid)
            for name, example in zip(names, EXAMPLES, strict=True)
        ]
    finally:
        rasa.stop()
    print(f"\nRetrain + evaluate + promote on {os.cpu_count()} cores; Rasa server RSS at start {before:.0f} MB")
    print(f"| step | {' | '.join(str(r['round']) for r in rounds)} |")
    print(f"| --- | {' | '.join('---' for _ in rounds)} |")
    for key in [k for k in rounds[0] if k != "round"]:
        cells = [r[key] if isinstance(r[key], str) else f"{r[key]:.1f}" for r in rounds]
        unit = " (s)" if key in (*TIMED, "retrain + evaluate + promote") or key.startswith("label") else ""
        print(f"| {key}{unit} | {' | '.join(cells)} |")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()

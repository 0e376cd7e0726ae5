"""A scratch copy of the project's training files for tests and benchmarks that label
examples or train: they write into the copy, never into the real data/."""

from __future__ import annotations

import shutil
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def scratch_project(where: Path, *, runnable: bool = False) -> Path:
    """config.yml, domain.yml, data/ (and holdout/, which the checks read) copied to `where`.

    `runnable` adds what training, evaluating and serving need: the test stories, the
    code (bot/, scripts/, actions/ as links to this checkout) and the current model."""
    where.mkdir(parents=True, exist_ok=True)
    for name in ("config.yml", "domain.yml"):
        shutil.copy2(PROJECT / name, where / name)
    for folder in ("data", "holdout"):
        shutil.copytree(PROJECT / folder, where / folder)
    if runnable:
        shutil.copytree(PROJECT / "tests" / "stories", where / "tests" / "stories")
        for code in ("bot", "scripts", "actions"):
            (where / code).symlink_to(PROJECT / code)
        (where / "models").mkdir()
        shutil.copy2(PROJECT / "models" / "current.tar.gz", where / "models" / "current.tar.gz")
    return where


def training_files(project: Path) -> dict[str, str]:
    """The NLU files and the domain as they stand, to see that nothing was written."""
    paths = [*sorted((project / "data" / "nlu").glob("*.yml")), project / "domain.yml"]
    return {str(path.relative_to(project)): path.read_text(encoding="utf-8") for path in paths}

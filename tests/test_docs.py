"""The docs against the code: every SMTP variable the code reads and every
command the CLI has are in the README, every test docs/reliability.md cites
exists, and `make run` installs only the runtime dependencies (a newcomer's
first command pulled mypy, ruff and hypothesis)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from monitor.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_smtp_variable_the_code_reads_is_in_the_readme():
    names = set()
    for path in (ROOT / "monitor").rglob("*.py"):
        names |= set(re.findall(r"MONITOR_SMTP_[A-Z]+", path.read_text(encoding="utf-8")))
    assert names >= {"MONITOR_SMTP_HOST", "MONITOR_SMTP_PORT", "MONITOR_SMTP_FROM"}
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert not missing, f"README does not document {missing}"


def _commands(group: click.Group, prefix: str = "monitor") -> list[str]:
    found = []
    for name, command in sorted(group.commands.items()):
        if command.hidden:
            continue
        found.append(f"{prefix} {name}")
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix} {name}")
    return found


def test_every_command_is_in_the_readme():
    commands = _commands(cli)
    assert "monitor feeds add" in commands and "monitor topics check" in commands
    missing = [c for c in commands if c not in README]
    assert not missing, f"README does not mention {missing}"


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_make_run_installs_only_the_runtime_dependencies(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # -n prints what make would run, in a copy with no virtual environment yet.
    plan = subprocess.run(["make", "-n", "run"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=30, check=True).stdout
    installs = [line for line in plan.splitlines() if "pip install" in line]
    assert installs and all(line.rstrip().endswith("-e .") for line in installs), plan
    test_plan = subprocess.run(["make", "-n", "test"], cwd=tmp_path, capture_output=True,
                               text=True, timeout=30, check=True).stdout
    assert "-e '.[test,bench]'" in test_plan


def test_every_test_docs_reliability_cites_exists():
    text = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    cited = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)", text))
    assert len(cited) > 50
    missing = sorted(f"{path}::{name}" for path, name in cited
                     if not (ROOT / path).exists()
                     or not re.search(rf"def {name}\b", (ROOT / path).read_text(encoding="utf-8")))
    assert not missing, f"docs/reliability.md cites tests that do not exist: {missing}"


def test_the_article_settings_are_in_the_readme():
    for name in ("article_text", "article_budget", "article_per_host", "article_window",
                 "article:"):
        assert name in README, f"README does not mention {name}"

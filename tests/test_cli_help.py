"""The command line can be discovered on a fresh machine: every ``--help`` works with no
environment at all, and a command that needs a setting names it when it runs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from app.cli import main

BIN = Path(sys.executable).parent / "ostiary"
ROOT = Path(__file__).resolve().parent.parent


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()):
    yield prefix
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))
        else:
            yield (*prefix, name)


def bare(*args: str, cwd) -> subprocess.CompletedProcess:
    """``ostiary ARGS`` with an empty environment, in an empty folder."""
    return subprocess.run([str(BIN), *args], env={}, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_every_command_is_listed_without_an_app(tmp_path):
    paths = list(command_paths(main))
    assert len(paths) > 40
    listed = bare("--help", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for name in main.commands:
        assert f"  {name} " in listed.stdout


# Run in one process with an empty environment (one process per command would take a minute).
EVERY_HELP = """
import json, sys
from click.testing import CliRunner
from app.cli import main
from tests.test_cli_help import command_paths
runner, shown = CliRunner(), {}
for path in command_paths(main):
    result = runner.invoke(main, [*path, "--help"], prog_name="ostiary", env={})
    shown[" ".join(path)] = [result.exit_code, result.output[:200]]
print(json.dumps(shown))
"""


def test_every_help_needs_no_environment(tmp_path):
    ran = subprocess.run([sys.executable, "-c", EVERY_HELP], env={"PYTHONPATH": str(ROOT)}, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    shown = json.loads(ran.stdout)
    assert set(shown) == {" ".join(path) for path in command_paths(main)}
    for path, (status, output) in shown.items():
        assert status == 0, (path, output)
        assert output.startswith(f"Usage: ostiary {path}".rstrip()), (path, output)
    assert not (tmp_path / "instance").exists()


def test_a_command_names_the_missing_setting_when_it_runs(tmp_path):
    ran = bare("keys", "list", cwd=tmp_path)
    assert ran.returncode == 1
    assert ran.stderr.strip() == ("ostiary: error: OSTIARY_SECRET_KEY is not set (see docs/deployment.md)")


def test_flask_limiters_commands_are_not_offered(tmp_path):
    assert "limiter" not in main.commands
    assert bare("limiter", "--help", cwd=tmp_path).returncode == 2

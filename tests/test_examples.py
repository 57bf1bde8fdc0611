"""Every ``console`` example of README.md and docs/ runs as written and prints what it shows.

A ``console`` block is a shell session: lines starting with ``$ `` are
commands, the lines after each are its output, compared like a doctest
(``...`` stands for anything, runs of blank space are one). The blocks run
in one directory, README.md first, then docs/ in name order, so an example
can use what an earlier one made. ``tripsearch serve ... &`` starts a real
server on a free loopback port (in the text: 127.0.0.1:8000) that the
commands after it reach, and its output is the line it prints once ready.
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tripsearch.testing.server import ServerProcess, start_server

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCUMENTED_ADDRESS = "127.0.0.1:8000"
READY_TIMEOUT_S = 180
_CHECKER = doctest.OutputChecker()
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclass(frozen=True)
class Step:
    command: str
    expected: str
    where: str  # file:line, for the failure message


def console_steps(path: Path) -> Iterator[Step]:
    """Yield the commands of the ``console`` blocks of ``path``, each with the output shown after it."""
    lines = path.read_text().splitlines()
    inside = False
    command: tuple[str, int] | None = None
    output: list[str] = []
    for number, line in enumerate(lines, 1):
        if not inside:
            inside = line.strip() == "```console"
            continue
        if line.startswith("$ ") or line.strip() == "```":
            if command is not None:
                yield Step(command[0], "\n".join(output), f"{path.relative_to(ROOT)}:{command[1]}")
            command, output = (line[2:], number) if line.startswith("$ ") else None, []
            inside = line.strip() != "```"
        elif command is not None:
            output.append(line)


class Shell:
    """Runs the steps in one directory with the installed ``tripsearch`` first on the PATH."""

    def __init__(self, home: Path) -> None:
        self.home = home
        bin_dir = str(Path(sys.executable).parent)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPSEARCH_")}
        self.env["PATH"] = bin_dir + os.pathsep + self.env.get("PATH", "")
        self.address = DOCUMENTED_ADDRESS  # until a server runs
        self.servers: list[ServerProcess] = []

    def run(self, step: Step) -> str:
        command = step.command.replace(DOCUMENTED_ADDRESS, self.address)
        if command.startswith("export "):
            name, _, value = command.removeprefix("export ").partition("=")
            self.env[name] = " ".join(shlex.split(value))
            return ""
        if command.endswith(" &"):
            return self._start_server(command.removesuffix(" &"), step)
        done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=self.home, env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{step.where}: `{step.command}` exited {done.returncode}:\n{done.stderr[-2000:]}"
        return done.stdout

    def _start_server(self, command: str, step: Step) -> str:
        assert command.startswith("tripsearch serve"), f"{step.where}: only `tripsearch serve` runs in the background"
        try:
            server = start_server(
                lambda port: [*shlex.split(command), "--port", str(port)], self.home, name=f"serve-{len(self.servers)}",
                ready=lambda server: f"ready on {server.url}/" in server.log.read_text(),  # printed once the server answers
                timeout_s=READY_TIMEOUT_S, poll_s=0.2, env=self.env, cwd=self.home,
            )  # fmt: skip
        except AssertionError as e:
            raise AssertionError(f"{step.where}: {e}") from None
        self.servers.append(server)
        self.address = server.url.removeprefix("http://")
        return server.log.read_text().split("\n", 1)[0] + "\n"

    def close(self) -> None:
        for server in self.servers:
            server.stop()


def test_documents_have_console_examples() -> None:
    steps = [step for path in DOCUMENTS for step in console_steps(path)]
    assert any("tripsearch search" in s.command for s in steps) and any(s.command.startswith("curl") for s in steps)


def test_console_examples_run_as_written(tmp_path: Path) -> None:
    shell = Shell(tmp_path)
    try:
        for path in DOCUMENTS:
            for step in console_steps(path):
                got = shell.run(step)
                want = step.expected.replace(DOCUMENTED_ADDRESS, shell.address)
                if not want.strip():
                    assert not got.strip(), f"{step.where}: `{step.command}` printed output its example does not show:\n{got[:2000]}"
                    continue
                assert _CHECKER.check_output(want + "\n", got, _FLAGS), (
                    f"{step.where}: `{step.command}` printed what its example does not show:\n"
                    + _CHECKER.output_difference(doctest.Example(step.command, want + "\n"), got, _FLAGS)[:4000]
                )
    finally:
        shell.close()


@pytest.mark.parametrize("text", ["```console\n$ echo a\na\n$ echo b\n```\n"])
def test_console_steps_are_read_with_their_output(tmp_path: Path, text: str) -> None:
    page = tmp_path / "page.md"
    page.write_text(text)
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert [(s.command, s.expected) for s in console_steps(page)] == [("echo a", "a"), ("echo b", "")]
    finally:
        ROOT = saved

"""Running Ansible from the tests: one environment, one run-and-parse step, one module runner.

- :func:`ansible_env` is the environment of every Ansible run (and of the tool stages of
  ``tests/run_all.py``): the checkout's ``ansible.cfg`` and collection, no colour, unbuffered,
  and the stdout ``callback`` the caller parses.
- :func:`run_playbook` runs ``ansible-playbook`` from the repository root and, with the
  ``ansible.posix.json`` callback, parses its result (:class:`PlaybookRun`).
- :func:`run_module` runs one module of the collection through a one-task playbook::

      from support.ansible import run_module

      result = run_module("server_settings", {**server.login_args(), "settings": {"work_mem": "8MB"}})
      assert result["changed"]
      result = run_module("server_settings", args, check=True, diff=True)
      failed = run_module("server_settings", bad_args, expect_fail=True)
      assert server.password not in failed.output      # raw stdout + stderr of ansible-playbook

  Every string argument is tagged ``!unsafe`` so Ansible never templates test data such as
  passwords; the module runs with this Python interpreter (the venv that has psycopg).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.paths import COLLECTIONS, REPO_ROOT

COLLECTION = "inventium.logical_replication"
JSON_CALLBACK = "ansible.posix.json"
DEFAULT_CALLBACK = "ansible.builtin.default"
DEFAULT_TIMEOUT = 300
# The lab's runs: neither the user's libpq settings nor a developer's ANSIBLE_* setting reach them.
LAB_DROP = ("PG", "ANSIBLE_")
VENV_BIN = Path(sys.executable).parent


def ansible_env(
    callback: str | None = JSON_CALLBACK,
    *,
    drop: Iterable[str] = ("PG",),
    venv_on_path: bool = False,
) -> dict[str, str]:
    """The environment of an Ansible run from the tests.

    ``callback``: the stdout callback, ``ansible.posix.json`` where the caller parses the result
    (module and role runs), ``ansible.builtin.default`` where it reads the text; ``None`` leaves
    it to ``ansible.cfg`` (the lab's runs, the tool stages). ``drop``: prefixes of inherited
    variables to leave out: the user's libpq settings (``PG*``) never reach a test's run; the
    lab's runs also drop ``ANSIBLE_*`` so that a developer's setting cannot change the lab; the
    tool stages drop nothing (pytest reads ``PG_VERSIONS``). ``venv_on_path`` puts this venv's
    ``bin`` first on ``PATH`` (the tool stages: molecule and ansible-lint call Ansible by name).
    """
    prefixes = tuple(drop)
    env = {key: value for key, value in os.environ.items() if not (prefixes and key.startswith(prefixes))}
    if venv_on_path:
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {
            "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_HOST_KEY_CHECKING": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if callback:
        env.update({"ANSIBLE_STDOUT_CALLBACK": callback, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"})
    return env


def ansible_playbook() -> str:
    """This venv's ``ansible-playbook`` (else the one on ``PATH``)."""
    found = shutil.which("ansible-playbook", path=str(VENV_BIN)) or shutil.which("ansible-playbook")
    if not found:
        raise AssertionError("ansible-playbook not found (activate the .venv)")
    return found


@dataclass
class PlaybookRun:
    """One ``ansible-playbook`` run: exit code, raw output and, with the JSON callback, its result."""

    command: list[str]
    rc: int
    stdout: str
    stderr: str
    seconds: float
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.stdout + "\n" + self.stderr

    def stats(self, host: str) -> dict[str, Any]:
        """The host's PLAY RECAP counters (``ok``, ``changed``, ``failures``...) of the JSON result."""
        return self.data.get("stats", {}).get(host, {})

    def task_results(self, host: str) -> list[tuple[str, dict[str, Any]]]:
        """``(task name, result)`` of every task that ran on ``host``, in order."""
        results = []
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                result = task.get("hosts", {}).get(host)
                if result is not None:
                    results.append((task["task"]["name"], result))
        return results


def parse_json_output(stdout: str) -> dict[str, Any]:
    """The ``ansible.posix.json`` document in ``stdout`` (warnings may precede it); ``{}`` if none."""
    start = stdout.find("{")
    if start < 0:
        return {}
    try:
        return json.loads(stdout[start:])
    except ValueError:
        return {}


def run_playbook(
    playbook: str | Path,
    *args: str,
    inventory: str | Path,
    callback: str | None = JSON_CALLBACK,
    env: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> PlaybookRun:
    """Run ``ansible-playbook -i inventory playbook *args`` from the repository root.

    ``env`` defaults to ``ansible_env(callback)``; the output is parsed when ``callback`` is the
    JSON callback. A failing play is not an error here: callers check ``rc`` and the results.
    """
    command = [ansible_playbook(), "-i", str(inventory), str(playbook), *args]
    started = time.monotonic()
    proc = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=ansible_env(callback) if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    data = parse_json_output(proc.stdout) if callback == JSON_CALLBACK else {}
    return PlaybookRun(command, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started, data)


# --------------------------------------------------------------------------- one module
class ModuleResult(dict):
    """The task result (a dict) plus the raw process output.

    Attributes: ``stdout``, ``stderr``, ``output`` (both), ``rc`` (ansible-playbook's exit code),
    ``command`` (argv), ``playbook`` (the generated playbook text).
    """

    stdout: str
    stderr: str
    rc: int
    command: list[str]
    playbook: str

    @property
    def output(self) -> str:
        return self.stdout + "\n" + self.stderr

    @property
    def failed(self) -> bool:
        return bool(self.get("failed"))


class AnsibleRunError(AssertionError):
    """The module did not behave as the test expected (message includes the raw output)."""


def _yaml_value(value: Any) -> str:
    """Render ``value`` as YAML flow syntax; every string becomes ``!unsafe "..."``."""
    if isinstance(value, str):
        # ansible-core 2.19 loads `!unsafe ""` as null; an empty string cannot be templated anyway.
        return "!unsafe " + json.dumps(value) if value else '""'
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(str(k))}: {_yaml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    raise TypeError(f"cannot pass {type(value).__name__} {value!r} to a module")


def build_playbook(module: str, args: dict[str, Any]) -> str:
    fqcn = module if "." in module else f"{COLLECTION}.{module}"
    return (
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  connection: local\n"
        "  vars:\n"
        f"    ansible_python_interpreter: {json.dumps(sys.executable)}\n"
        "  tasks:\n"
        f"    - name: {json.dumps('run ' + fqcn)}\n"
        f"      {fqcn}: {_yaml_value(args)}\n"
    )


def run_module(
    module: str,
    args: dict[str, Any],
    check: bool = False,
    diff: bool = False,
    expect_fail: bool = False,
    verbosity: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
) -> ModuleResult:
    """Run ``inventium.logical_replication.<module>`` with ``args`` through ``ansible-playbook``.

    ``check``/``diff`` add ``--check``/``--diff``. Raises :class:`AnsibleRunError` when the task
    fails and ``expect_fail`` is false, or succeeds while ``expect_fail`` is true. ``verbosity``
    adds ``-v`` flags (useful to prove secrets stay out of verbose output too).
    """
    playbook = build_playbook(module, args)
    flags = [flag for flag, wanted in (("--check", check), ("--diff", diff)) if wanted]
    if verbosity:
        flags.append("-" + "v" * verbosity)
    with tempfile.TemporaryDirectory(prefix="inventium-lr-play-") as tmp:
        path = Path(tmp) / "play.yml"
        path.write_text(playbook, encoding="utf-8")
        run = run_playbook(path, *flags, inventory="localhost,", timeout=timeout)
    tasks = run.task_results("localhost")
    if not tasks:
        raise AnsibleRunError(
            f"no task result from {' '.join(run.command)} (rc={run.rc})\n"
            f"--- playbook ---\n{playbook}\n--- stdout ---\n{run.stdout}\n--- stderr ---\n{run.stderr}"
        )
    task = tasks[0][1]
    result = ModuleResult(task)
    result.stdout, result.stderr, result.rc = run.stdout, run.stderr, run.rc
    result.command, result.playbook = run.command, playbook
    if result.failed and not expect_fail:
        raise AnsibleRunError(
            f"{module} failed: {result.get('msg')}\n--- result ---\n{json.dumps(task, indent=2, default=str)}"
            f"\n--- stderr ---\n{run.stderr}"
        )
    if expect_fail and not result.failed:
        raise AnsibleRunError(
            f"{module} was expected to fail but did not\n--- result ---\n{json.dumps(task, indent=2, default=str)}"
        )
    return result

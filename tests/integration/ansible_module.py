"""Run a module of the collection THROUGH ANSIBLE and return its task result.

Used by every module integration test::

    from ansible_module import run_module

    result = run_module("server_settings", {**server.login_args(), "settings": {"work_mem": "8MB"}})
    assert result["changed"]
    result = run_module("server_settings", args, check=True, diff=True)
    failed = run_module("server_settings", bad_args, expect_fail=True)
    assert server.password not in failed.output      # raw stdout + stderr of ansible-playbook

Each call writes a one-task playbook (every string argument tagged ``!unsafe`` so Ansible never
templates test data such as passwords) and runs ``ansible-playbook`` once, from the repository root
so ``ansible.cfg`` resolves ``inventium.logical_replication`` to the checkout, with the
``ansible.posix.json`` stdout callback. The module runs with this Python interpreter (the venv that
has psycopg).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTION = "inventium.logical_replication"
DEFAULT_TIMEOUT = 300


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


def _ansible_playbook() -> str:
    local = Path(sys.executable).parent / "ansible-playbook"
    if local.exists():
        return str(local)
    found = shutil.which("ansible-playbook")
    if not found:
        raise AnsibleRunError("ansible-playbook not found (activate the .venv)")
    return found


def ansible_environment() -> dict[str, str]:
    """Environment of every ansible-playbook run in the tests: repo config, JSON callback, no PG* variables."""
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(REPO_ROOT / "collections"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_HOST_KEY_CHECKING": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    # The user's libpq environment must not leak into the tests.
    for key in list(env):
        if key.startswith("PG"):
            del env[key]
    return env


def _task_result(data: dict[str, Any]) -> dict[str, Any] | None:
    for play in data.get("plays", []):
        for task in play.get("tasks", []):
            hosts = task.get("hosts", {})
            if "localhost" in hosts:
                return hosts["localhost"]
    return None


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
    with tempfile.TemporaryDirectory(prefix="inventium-lr-play-") as tmp:
        path = Path(tmp) / "play.yml"
        path.write_text(playbook, encoding="utf-8")
        command = [_ansible_playbook(), "-i", "localhost,", str(path)]
        if check:
            command.append("--check")
        if diff:
            command.append("--diff")
        if verbosity:
            command.append("-" + "v" * verbosity)
        proc = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=ansible_environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    data: dict[str, Any] = {}
    start = proc.stdout.find("{")
    if start >= 0:
        try:
            data = json.loads(proc.stdout[start:])
        except ValueError:
            data = {}
    task = _task_result(data)
    if task is None:
        raise AnsibleRunError(
            f"no task result from {' '.join(command)} (rc={proc.returncode})\n"
            f"--- playbook ---\n{playbook}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    result = ModuleResult(task)
    result.stdout, result.stderr, result.rc = proc.stdout, proc.stderr, proc.returncode
    result.command, result.playbook = command, playbook
    if result.failed and not expect_fail:
        raise AnsibleRunError(
            f"{module} failed: {result.get('msg')}\n--- result ---\n{json.dumps(task, indent=2, default=str)}"
            f"\n--- stderr ---\n{proc.stderr}"
        )
    if expect_fail and not result.failed:
        raise AnsibleRunError(
            f"{module} was expected to fail but did not\n--- result ---\n{json.dumps(task, indent=2, default=str)}"
        )
    return result

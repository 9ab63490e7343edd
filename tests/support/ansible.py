"""Running Ansible from the tests: one environment, one run-and-parse step, one module runner.

- :func:`ansible_env` is the environment of every Ansible run (and of the tool stages of
  ``tests/run_all.py``): the checkout's ``ansible.cfg`` and collection, no colour, unbuffered,
  and the stdout ``callback`` the caller parses.
- :func:`run_playbook` runs ``ansible-playbook`` from the repository root and, with the
  ``ansible.posix.json`` callback, parses its result (:class:`PlaybookRun`).
- :func:`run_module` runs one module of the collection, by default in this process the way
  Ansible's own module unit tests do (``patch_module_args``, ``main()``, the JSON the module
  prints), and through a one-task ``ansible-playbook`` run when ``verbosity`` is given, when the
  caller asks for it (``through_playbook=True``) or when ``INVENTIUM_MODULE_RUNNER=playbook`` is
  set (the whole suite through Ansible's controller, as before)::

      from support.ansible import run_module

      result = run_module("server_settings", {**server.login_args(), "settings": {"work_mem": "8MB"}})
      assert result["changed"]
      result = run_module("server_settings", args, check=True, diff=True)
      failed = run_module("server_settings", bad_args, expect_fail=True)
      assert server.password not in failed.output      # what the module (or ansible-playbook) printed

  Through the playbook every string argument is tagged ``!unsafe`` so Ansible never templates
  test data such as passwords; the module runs with this Python interpreter (the venv that has
  psycopg). In process, the module's arguments, check and diff mode reach ``AnsibleModule``
  exactly as the controller would pass them, and its result is what it printed; one
  ``ansible-playbook`` start costs ~2 s of CPU here, a module call in process a few ms, which is
  what keeps the integration stage within CI's budget.
"""

from __future__ import annotations

import contextlib
import importlib
import io
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
from unittest import mock

from support.paths import COLLECTIONS, REPO_ROOT

COLLECTION = "inventium.logical_replication"
JSON_CALLBACK = "ansible.posix.json"
DEFAULT_CALLBACK = "ansible.builtin.default"
DEFAULT_TIMEOUT = 300
# The lab's runs: neither the user's libpq settings nor a developer's ANSIBLE_* setting reach them.
LAB_DROP = ("PG", "ANSIBLE_")
VENV_BIN = Path(sys.executable).parent
# "playbook" runs every run_module call through ansible-playbook (the controller path), as a check.
MODULE_RUNNER_VARIABLE = "INVENTIUM_MODULE_RUNNER"


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


def status_output(inventory: str | Path, secrets: tuple[str, ...] = ()) -> str:
    """``playbooks/status.yml`` on ``inventory`` (default callback): its output with whitespace runs made one space
    (the YAML result format folds long lines). Fails when the run fails or one of ``secrets`` is in the output."""
    run = run_playbook("playbooks/status.yml", inventory=inventory, callback=DEFAULT_CALLBACK)
    for secret in secrets:
        assert secret not in run.output, "a password in the output of status.yml"
    assert run.rc == 0, run.output[-3000:]
    return " ".join(run.output.split())


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


_PLAY_HEADER = (
    "- hosts: localhost\n"
    "  gather_facts: false\n"
    "  connection: local\n"
    "  vars:\n"
    f"    ansible_python_interpreter: {json.dumps(sys.executable)}\n"
    "  tasks:\n"
)


def build_playbook(module: str, args: dict[str, Any]) -> str:
    fqcn = module if "." in module else f"{COLLECTION}.{module}"
    return _PLAY_HEADER + f"    - name: {json.dumps('run ' + fqcn)}\n      {fqcn}: {_yaml_value(args)}\n"


def run_module(
    module: str,
    args: dict[str, Any],
    check: bool = False,
    diff: bool = False,
    expect_fail: bool = False,
    verbosity: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
    through_playbook: bool = False,
) -> ModuleResult:
    """Run ``inventium.logical_replication.<module>`` with ``args``; the task result.

    ``check``/``diff`` are check and diff mode. Raises :class:`AnsibleRunError` when the module
    fails and ``expect_fail`` is false, or succeeds while ``expect_fail`` is true. ``verbosity``
    adds ``-v`` flags to an ``ansible-playbook`` run (to prove secrets stay out of the
    controller's verbose output too); it, ``through_playbook`` and ``INVENTIUM_MODULE_RUNNER=playbook``
    choose the playbook path (so do modules of other collections), otherwise the module runs in
    this process.
    """
    foreign = "." in module and not module.startswith(COLLECTION + ".")
    if foreign or verbosity or through_playbook or os.environ.get(MODULE_RUNNER_VARIABLE) == "playbook":
        result = _run_module_playbook(module, args, check, diff, verbosity, timeout)
    else:
        result = _run_module_in_process(module, args, check, diff)
    return _as_expected(module, result, expect_fail)


def _as_expected(module: str, result: ModuleResult, expect_fail: bool) -> ModuleResult:
    """``result``, or :class:`AnsibleRunError` when it failed or succeeded against ``expect_fail``."""
    if result.failed and not expect_fail:
        raise AnsibleRunError(
            f"{module} failed: {result.get('msg')}\n--- result ---\n{json.dumps(dict(result), indent=2, default=str)}"
            f"\n--- stderr ---\n{result.stderr}"
        )
    if expect_fail and not result.failed:
        raise AnsibleRunError(
            f"{module} was expected to fail but did not\n--- result ---\n"
            f"{json.dumps(dict(result), indent=2, default=str)}"
        )
    return result


@dataclass
class ModuleCall:
    """One task of :func:`run_modules`: the module, its arguments, check/diff mode, whether it must fail."""

    module: str
    args: dict[str, Any]
    check: bool = False
    diff: bool = False
    expect_fail: bool = False


def run_modules(calls: list[ModuleCall], verbosity: int = 0, timeout: float = DEFAULT_TIMEOUT) -> list[ModuleResult]:
    """Several module calls through ONE ``ansible-playbook`` run, one task each, in order; their results.

    For the tests that must go through the controller (``verbosity``: secrets kept out of ``-vvv``
    output) but make several calls in a row: one ``ansible-playbook`` start (~2 s of CPU) instead
    of one per call. Each task has its own check and diff mode (the ``check_mode``/``diff`` task
    keywords, which reach the module as ``--check``/``--diff`` do) and ``ignore_errors`` when it
    is expected to fail, so the next tasks still run; each result is checked like
    :func:`run_module`'s. Every result's ``stdout``/``stderr``/``output`` and ``rc`` are the
    whole run's: what the controller printed for all the calls (a secret in any of them is in
    each), and its exit code (non-zero only when the last call failed).
    """
    tasks = []
    for index, call in enumerate(calls):
        fqcn = call.module if "." in call.module else f"{COLLECTION}.{call.module}"
        task = f"    - name: {json.dumps(f'call {index}: run {fqcn}')}\n      {fqcn}: {_yaml_value(call.args)}\n"
        task += f"      check_mode: {json.dumps(call.check)}\n      diff: {json.dumps(call.diff)}\n"
        if call.expect_fail and index < len(calls) - 1:
            task += "      ignore_errors: true\n"
        tasks.append(task)
    playbook = _PLAY_HEADER + "".join(tasks)
    flags = ["-" + "v" * verbosity] if verbosity else []
    with tempfile.TemporaryDirectory(prefix="inventium-lr-play-") as tmp:
        path = Path(tmp) / "play.yml"
        path.write_text(playbook, encoding="utf-8")
        run = run_playbook(path, *flags, inventory="localhost,", timeout=timeout)
    tasks_run = run.task_results("localhost")
    if len(tasks_run) != len(calls):
        raise AnsibleRunError(
            f"{len(tasks_run)} task results for {len(calls)} calls from {' '.join(run.command)} (rc={run.rc})\n"
            f"--- playbook ---\n{playbook}\n--- stdout ---\n{run.stdout}\n--- stderr ---\n{run.stderr}"
        )
    results = []
    for call, (_name, task) in zip(calls, tasks_run, strict=True):
        result = ModuleResult(task)
        result.stdout, result.stderr, result.rc = run.stdout, run.stderr, run.rc
        result.command, result.playbook = run.command, playbook
        results.append(_as_expected(call.module, result, call.expect_fail))
    return results


def _module_path(module: str) -> str:
    return f"ansible_collections.inventium.logical_replication.plugins.modules.{module.rsplit('.', 1)[-1]}"


def _brief(message: Any) -> Any:
    """A warning or deprecation as the controller shows it: the event's message, not its envelope."""
    if isinstance(message, dict) and isinstance(message.get("event"), dict):
        return message["event"].get("msg")
    return message


def _run_module_in_process(module: str, args: dict[str, Any], check: bool, diff: bool) -> ModuleResult:
    """``main()`` of the module with ``args``, as the controller would start it; the JSON it printed.

    The user's libpq variables (``PG*``) are hidden from the module exactly as from a playbook
    run; warnings and deprecations collected by an earlier call in this process are cleared first.
    """
    from ansible.module_utils.common import warnings as ansible_warnings
    from ansible.module_utils.testing import patch_module_args

    target = importlib.import_module(_module_path(module))
    stdout, stderr = io.StringIO(), io.StringIO()
    hidden = [key for key in os.environ if key.startswith("PG")]
    with tempfile.TemporaryDirectory(prefix="inventium-lr-module-") as tmp:
        module_args = {
            **args,
            "_ansible_check_mode": check,
            "_ansible_diff": diff,
            "_ansible_module_name": module,
            "_ansible_tmpdir": tmp,
            "_ansible_remote_tmp": tmp,
        }
        ansible_warnings._global_warnings.clear()  # module state, shared by calls in one process
        ansible_warnings._global_deprecations.clear()
        code: Any = "main() returned instead of exiting"
        with (
            mock.patch.dict(os.environ, clear=False),
            patch_module_args(module_args),
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
        ):
            for key in hidden:
                del os.environ[key]
            try:
                target.main()
            except SystemExit as exc:
                code = exc.code
    printed = stdout.getvalue()
    start = printed.find("{")
    if start < 0:
        raise AnsibleRunError(
            f"{module} printed no result (exit {code})\n--- stdout ---\n{printed}\n--- stderr ---\n{stderr.getvalue()}"
        )
    data = json.loads(printed[start:])
    data.pop("invocation", None)  # the controller shows it only with -vvv
    for key in ("warnings", "deprecations"):
        if key in data:
            data[key] = [_brief(item) for item in data[key]]
    result = ModuleResult(data)
    result.stdout, result.stderr = printed, stderr.getvalue()
    result.rc = 0 if code in (0, None) else 2
    result.command, result.playbook = [f"{module}.main()"], ""
    return result


def _run_module_playbook(
    module: str, args: dict[str, Any], check: bool, diff: bool, verbosity: int, timeout: float
) -> ModuleResult:
    """The module through a one-task ``ansible-playbook`` run (``--check``, ``--diff``, ``-v``...)."""
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
    return result

"""The sampler runs where the collection is copied, without Ansible: its imports of the core must not need it.

The ``sampler`` image has Python, psycopg and the Docker SDK only; the role copies the program and
the whole ``module_utils`` package next to it. Importing Ansible anywhere in what the program
imports (``pg_module`` does) would stop it at start.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROGRAM = Path(__file__).resolve().parents[2] / "roles" / "sampler" / "files" / "inventium_sampler.py"

BLOCK_ANSIBLE = """
import importlib.abc, runpy, sys

class NoAnsible(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "ansible" or name.startswith("ansible."):
            raise ImportError(f"{name} is not installed where the sampler runs")
        return None

sys.meta_path.insert(0, NoAnsible())
sys.argv = [sys.argv[1], "--help"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_sampler_starts_without_ansible():
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_ANSIBLE, str(PROGRAM)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "--interval" in result.stdout

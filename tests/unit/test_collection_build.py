"""The built collection tarball holds the collection and nothing of the local lab."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_GALAXY = Path(sys.executable).parent / "ansible-galaxy"

# Local state that must never ship: the venv, generated lab secrets, caches.
FORBIDDEN_TOP_LEVEL = {".venv", ".lab", ".cache", ".build", ".git", ".pytest_cache", ".ruff_cache", "collections"}


def test_build_excludes_local_state(tmp_path: Path) -> None:
    # Local state exists in a developer's checkout; make sure it does in CI too,
    # otherwise the test could not notice it being packed.
    (ROOT / ".lab").mkdir(mode=0o700, exist_ok=True)
    subprocess.run(
        [str(ANSIBLE_GALAXY), "collection", "build", "--force", "--output-path", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (tarball,) = tmp_path.glob("inventium-logical_replication-*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    top_level = {name.split("/", 1)[0] for name in names}
    assert not top_level & FORBIDDEN_TOP_LEVEL, sorted(top_level & FORBIDDEN_TOP_LEVEL)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert {"MANIFEST.json", "FILES.json", "meta", "plugins", "roles"} <= top_level
    assert tarball.stat().st_size < 2 * 1024 * 1024, "collection tarball unexpectedly large"

"""Throwaway PostgreSQL servers for the integration tests.

The pytest fixtures in ``conftest.py`` are thin wrappers around this module; it can also be used
directly (e.g. from a script) to start servers of several major versions:

    harness = PgHarness([15, 17])
    server = harness.new_server(17)
    print(server.conninfo())
    harness.close()

Binaries come from the distro (``/usr/lib/postgresql/<major>/bin``) when present, otherwise from
the npm package pinned in ``tests/pg_versions.json``, downloaded once into a cache directory
outside the repository and verified against its pinned sha512 integrity. Servers run as an
unprivileged user (PostgreSQL refuses to run as root), listen on 127.0.0.1 only and live in
temporary directories that are removed when the harness is closed (fixture teardown, ``atexit``,
or the next session if the process was killed).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

LOG = logging.getLogger(__name__)

VERSIONS_FILE = Path(__file__).resolve().parent.parent / "pg_versions.json"
DEFAULT_MAJORS = (15, 17, 18)
DISTRO_ROOT = Path("/usr/lib/postgresql")
SESSION_PREFIX = "inventium-lr-"
LISTEN_HOST = "127.0.0.1"
SUPERUSER = "postgres"
FALLBACK_SERVER_USER = "inventium-lr-pg"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")

#: Settings written to every server's ``harness.conf`` (included from ``postgresql.conf``, so
#: ``ALTER SYSTEM`` still overrides them). ``settings=`` of :meth:`PgHarness.new_server` adds to /
#: overrides these.
BASE_SETTINGS: dict[str, str | int | bool] = {
    "listen_addresses": LISTEN_HOST,
    "wal_level": "logical",
    "max_replication_slots": 10,
    "max_wal_senders": 10,
    "max_logical_replication_workers": 6,
    "max_worker_processes": 16,
    "fsync": False,
    # The logical replication launcher of PostgreSQL <= 15 starts at most one worker per interval
    # (default 5s): every new subscription would wait up to 5 s. Also the apply-worker retry delay.
    "wal_retrieve_retry_interval": "250ms",
    "shared_buffers": "32MB",
    "password_encryption": "scram-sha-256",
    "timezone": "UTC",
    "log_timezone": "UTC",
    "log_line_prefix": "%m [%p] %q%a %u@%d ",
}

_PORT_ATTEMPTS = 5
_BIND_ERRORS = ("could not bind", "Address already in use", "could not create any TCP/IP sockets")


class HarnessError(RuntimeError):
    """The harness could not provide a PostgreSQL server (binaries, initdb, start, cleanup)."""


# --------------------------------------------------------------------------------------------
# Version selection and pins
# --------------------------------------------------------------------------------------------


def selected_majors(value: str | None = None) -> list[int]:
    """Majors to test, from ``PG_VERSIONS`` (``"15,17"``; default ``15,17,18``), sorted, unique."""
    if value is None:
        value = os.environ.get("PG_VERSIONS", "")
    tokens = [t for t in re.split(r"[\s,]+", value.strip()) if t]
    if not tokens:
        return list(DEFAULT_MAJORS)
    majors = set()
    for token in tokens:
        if not re.fullmatch(r"(?:pg)?\d{2}", token, re.IGNORECASE):
            raise HarnessError(f"PG_VERSIONS: {token!r} is not a PostgreSQL major version (expected e.g. 15,17,18)")
        majors.add(int(token[-2:]))
    return sorted(majors)


def pair_combos(majors: Sequence[int]) -> list[tuple[int, int]]:
    """Publisher/subscriber majors: one same-major pair per major, plus lowest -> highest."""
    combos = [(m, m) for m in sorted(majors)]
    if len(set(majors)) > 1:
        combos.append((min(majors), max(majors)))
    return combos


def lean_pair_combos(majors: Sequence[int]) -> list[tuple[int, int]]:
    """For behaviour that does not depend on the versions (the machine is small): of :func:`pair_combos`, the
    lowest same-major pair and lowest -> highest."""
    low, high = min(majors), max(majors)
    return [combo for combo in pair_combos(majors) if combo in {(low, low), (low, high)}]


def pg_pair_params(combos: Sequence[tuple[int, int]]) -> pytest.MarkDecorator:
    """A test's own ``pg_pair`` parameters (ids ``pub15-sub15``): ``@pg_pair_params(lean_pair_combos(majors))``."""
    return pytest.mark.parametrize(
        "pg_pair", [pytest.param(combo, id=f"pub{combo[0]}-sub{combo[1]}") for combo in combos], indirect=True
    )


@dataclass(frozen=True)
class Pin:
    """One pinned npm package version carrying PostgreSQL server binaries."""

    major: int
    package: str
    version: str
    integrity: str
    tarball: str


def load_pins(path: Path = VERSIONS_FILE) -> dict[int, Pin]:
    """Read ``tests/pg_versions.json``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        int(major): Pin(int(major), data["package"], entry["version"], entry["integrity"], entry["tarball"])
        for major, entry in data["versions"].items()
    }


def cache_root() -> Path:
    """``$INVENTIUM_LR_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/inventium-logical-replication``."""
    explicit = os.environ.get("INVENTIUM_LR_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "inventium-logical-replication"


# --------------------------------------------------------------------------------------------
# The unprivileged user that runs initdb / pg_ctl / postgres
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerUser:
    """The OS user owning data directories and running the server processes."""

    name: str
    uid: int
    gid: int

    @classmethod
    def resolve(cls) -> ServerUser:
        """Root: ``$INVENTIUM_LR_PG_USER``, else ``postgres``, else a created system user.

        Non-root: the current user.
        """
        if os.geteuid() != 0:
            entry = pwd.getpwuid(os.geteuid())
            return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)
        wanted = os.environ.get("INVENTIUM_LR_PG_USER")
        for name in [wanted] if wanted else [SUPERUSER, FALLBACK_SERVER_USER]:
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(name)
                if entry.pw_uid == 0:
                    raise HarnessError(f"INVENTIUM_LR_PG_USER={name} is root; PostgreSQL refuses to run as root")
                return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)
        if wanted:
            raise HarnessError(f"INVENTIUM_LR_PG_USER={wanted}: no such user")
        _run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                FALLBACK_SERVER_USER,
            ]
        )
        entry = pwd.getpwnam(FALLBACK_SERVER_USER)
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    @property
    def switches(self) -> bool:
        """True when commands must switch to this user (we are root)."""
        return os.geteuid() != self.uid

    def own(self, path: Path) -> None:
        """Give ``path`` to this user (no-op unless we are root)."""
        if self.switches:
            os.chown(path, self.uid, self.gid)

    def make_dir(self, path: Path, mode: int = 0o700) -> Path:
        """Create a directory owned by this user (mode ``mode``)."""
        path.mkdir(mode=mode)
        path.chmod(mode)
        self.own(path)
        return path

    def run(
        self, args: Sequence[str | Path], *, cwd: Path | str = "/", timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as this user with a minimal, PG*-free environment."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C",
            "LC_ALL": "C",
            "TZ": "UTC",
            "HOME": str(cwd),
        }
        kwargs: dict[str, Any] = {}
        if self.switches:
            kwargs = {"user": self.uid, "group": self.gid, "extra_groups": []}
        return _run(args, cwd=cwd, env=env, timeout=timeout, check=check, umask=0o077, **kwargs)


def _run(
    args: Sequence[str | Path], *, check: bool = True, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    argv = [str(a) for a in args]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{argv[0]} timed out after {timeout}s: {' '.join(argv)}") from exc
    if check and proc.returncode != 0:
        raise HarnessError(
            f"command failed (exit {proc.returncode}): {' '.join(argv)}\n{_tail(proc.stdout + proc.stderr, 30)}"
        )
    return proc


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# Binaries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgInstall:
    """A PostgreSQL server installation: ``root/bin/{initdb,pg_ctl,postgres}``."""

    major: int
    version: str  # e.g. "17.10"
    version_num: int  # e.g. 170010
    root: Path
    source: str  # "distro" or "npm:<package>@<version>"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def binary(self, name: str) -> Path:
        return self.bin_dir / name


def parse_version(output: str) -> tuple[int, str, int]:
    """``postgres (PostgreSQL) 17.10 (Debian ...)`` -> (17, "17.10", 170010)."""
    match = re.search(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?", output)
    if not match:
        raise HarnessError(f"cannot parse a PostgreSQL version from {output.strip()!r}")
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    return major, f"{major}.{minor}", major * 10000 + minor


def _probe(root: Path, source: str, expected_major: int) -> PgInstall:
    for name in SERVER_BINARIES:
        if not os.access(root / "bin" / name, os.X_OK):
            raise HarnessError(f"{root / 'bin' / name} is missing or not executable")
    major, version, version_num = parse_version(_run([root / "bin" / "postgres", "-V"]).stdout)
    if major != expected_major:
        raise HarnessError(f"{root / 'bin' / 'postgres'} is PostgreSQL {version}, expected major {expected_major}")
    for name in ("initdb", "pg_ctl"):  # also proves the shared libraries resolve
        _run([root / "bin" / name, "-V"])
    return PgInstall(major, version, version_num, root, source)


def distro_install(major: int) -> PgInstall | None:
    """The distro's server for ``major`` (Debian layout), if installed with pgoutput."""
    root = DISTRO_ROOT / str(major)
    if not all((root / "bin" / name).is_file() for name in SERVER_BINARIES):
        return None
    if not (root / "lib" / "pgoutput.so").is_file():
        return None
    return _probe(root, "distro", major)


def verify_integrity(path: Path, integrity: str) -> None:
    """Check ``path`` against an npm SRI string (``sha512-<base64>``); raise on mismatch."""
    expected = [item.split("-", 1)[1] for item in integrity.split() if item.startswith("sha512-")]
    if not expected:
        raise HarnessError(f"pinned integrity {integrity!r} has no sha512 digest")
    digest = hashlib.sha512()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    actual = base64.b64encode(digest.digest()).decode("ascii")
    if actual not in expected:
        raise HarnessError(f"{path.name}: sha512 mismatch (expected {expected[0]}, got {actual})")


def _download(pin: Pin, dest_dir: Path) -> Path:
    """Fetch the package tarball with ``npm pack`` (honours npm config), else from its registry URL."""
    npm = shutil.which("npm")
    if npm:
        proc = _run(
            [npm, "pack", f"{pin.package}@{pin.version}", "--pack-destination", dest_dir, "--loglevel=error"],
            cwd=dest_dir,
            timeout=900,
            check=False,
        )
        tarballs = sorted(dest_dir.glob("*.tgz"))
        if proc.returncode != 0 or len(tarballs) != 1:
            raise HarnessError(f"npm pack {pin.package}@{pin.version} failed:\n{_tail(proc.stdout + proc.stderr, 20)}")
        return tarballs[0]
    target = dest_dir / "package.tgz"
    try:
        with urllib.request.urlopen(pin.tarball, timeout=120) as response, target.open("wb") as out:  # noqa: S310
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise HarnessError(f"download of {pin.tarball} failed: {exc}") from exc
    return target


def _extract(tarball: Path, root: Path) -> None:
    """Extract ``package/native/*`` into ``root`` and re-create the package's library symlinks."""
    prefix = "package/native/"
    links: list[dict[str, str]] = []
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            if member.name == prefix + "pg-symlinks.json":
                handle = tar.extractfile(member)
                links = json.loads(handle.read()) if handle else []
            elif member.name.startswith(prefix) and (member.isfile() or member.isdir()):
                member.name = member.name[len(prefix) :]
                tar.extract(member, root, filter="data")
    for link in links:
        source = (root / link["source"].removeprefix("native/")).resolve()
        target = root / link["target"].removeprefix("native/")
        if not source.is_relative_to(root.resolve()) or not target.resolve().is_relative_to(root.resolve()):
            raise HarnessError(f"{tarball.name}: symlink {link} escapes the package")
        if not target.exists():
            target.symlink_to(os.path.relpath(source, target.parent.resolve()))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)  # noqa: S103 - the server user must read the cache
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o555 if os.stat(path).st_mode & 0o100 else 0o444)
    root.chmod(0o755)


def npm_install(pin: Pin, cache: Path | None = None) -> PgInstall:
    """The pinned npm build of ``pin.major`` from the cache, downloading it once.

    Downloads are serialised with a lock file, verified against the pinned sha512, extracted into
    a temporary directory and renamed into place, so a cache entry is either complete or absent.
    """
    parent = (cache or cache_root()) / "postgresql"
    final = parent / pin.version
    source = f"npm:{pin.package}@{pin.version}"
    if (final / "install.json").is_file():
        return _probe(final, source, pin.major)
    _make_public_dirs(parent)
    with (parent / f".{pin.version}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "install.json").is_file():
            return _probe(final, source, pin.major)
        for stale in parent.glob(f".{pin.version}.*.tmp"):  # left by an aborted run; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():
            shutil.rmtree(final)
        work = Path(tempfile.mkdtemp(prefix=f".{pin.version}.", suffix=".tmp", dir=parent))
        try:
            LOG.warning("downloading PostgreSQL %s (%s@%s)", pin.major, pin.package, pin.version)
            tarball = _download(pin, work)
            verify_integrity(tarball, pin.integrity)
            root = work / "root"
            root.mkdir()
            _extract(tarball, root)
            if not (root / "lib" / "postgresql" / "pgoutput.so").is_file():
                raise HarnessError(f"{pin.package}@{pin.version} has no lib/postgresql/pgoutput.so")
            install = _probe(root, source, pin.major)
            meta = {"package": pin.package, "version": pin.version, "integrity": pin.integrity}
            meta["server_version"] = install.version
            (root / "install.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            os.rename(root, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return replace(install, root=final)


def _make_public_dirs(path: Path) -> None:
    """``mkdir -p`` with mode 0755 for the directories it creates (existing ones are left alone)."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir()
            directory.chmod(0o755)


def resolve_install(major: int, pins: dict[int, Pin], cache: Path | None = None) -> PgInstall:
    """Distro binaries for ``major`` if present (unless ``INVENTIUM_LR_PG_SOURCE=npm``), else npm."""
    source = os.environ.get("INVENTIUM_LR_PG_SOURCE", "auto")
    if source not in ("auto", "npm"):
        raise HarnessError(f"INVENTIUM_LR_PG_SOURCE={source!r}: expected 'auto' or 'npm'")
    if source == "auto":
        found = distro_install(major)
        if found:
            return found
    pin = pins.get(major)
    if pin is None:
        raise HarnessError(
            f"PostgreSQL {major}: no server in {DISTRO_ROOT / str(major) / 'bin'} and no pinned npm version "
            f"in {VERSIONS_FILE.name} (pinned: {', '.join(str(m) for m in sorted(pins))})"
        )
    try:
        return npm_install(pin, cache)
    except HarnessError as exc:
        raise HarnessError(f"PostgreSQL {major}: cannot obtain {pin.package}@{pin.version}: {exc}") from exc


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------


def free_port(exclude: Iterable[int] = ()) -> int:
    """A currently unused TCP port on 127.0.0.1."""
    excluded = set(exclude)
    for _attempt in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LISTEN_HOST, 0))
            port = sock.getsockname()[1]
        if port not in excluded:
            return port
    raise HarnessError("no free TCP port on 127.0.0.1")


def _conf_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PostgresServer:
    """One throwaway PostgreSQL server (its own initdb, data dir, port, password and log).

    Use :meth:`PgHarness.new_server` (or the fixtures) rather than constructing it directly.

    Connection facts: :attr:`host` (127.0.0.1), :attr:`port`, :attr:`user` (``postgres``,
    superuser), :attr:`password` (random, scram-sha-256 over TCP). The unix socket in
    :attr:`socket_dir` uses ``trust``.
    """

    def __init__(
        self,
        install: PgInstall,
        workdir: Path,
        server_user: ServerUser,
        *,
        name: str | None = None,
        settings: dict[str, str | int | bool] | None = None,
        port_allocator: Callable[[], int] | None = None,
    ) -> None:
        self.install = install
        self.name = name or f"pg{install.major}"
        self.workdir = Path(workdir)
        self.password = secrets.token_urlsafe(24)
        self.port: int | None = None
        self.server_version_num: int | None = None
        self._server_user = server_user
        self._settings = {**BASE_SETTINGS, **(settings or {})}
        self._port_allocator = port_allocator or free_port
        self._initialized = False
        self.destroyed = False

    def __repr__(self) -> str:
        return f"<PostgresServer {self.name} {self.install.version} {self.host}:{self.port}>"

    # -- facts ---------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return LISTEN_HOST

    @property
    def user(self) -> str:
        return SUPERUSER

    @property
    def major(self) -> int:
        return self.install.major

    @property
    def version(self) -> str:
        return self.install.version

    @property
    def version_num(self) -> int:
        return self.install.version_num

    @property
    def bin_dir(self) -> Path:
        return self.install.bin_dir

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.workdir

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def settings(self) -> dict[str, str | int | bool]:
        """The settings this server is configured with (base settings + overrides)."""
        return dict(self._settings)

    @property
    def running(self) -> bool:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return False
        return _pid_alive(pid)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"), lines)
        except OSError:
            return "(no server log)"

    # -- lifecycle -----------------------------------------------------------------------------

    def init(self) -> None:
        """initdb with a random superuser password; write pg_hba.conf and harness.conf."""
        if self._initialized:
            return
        user = self._server_user
        if not self.workdir.exists():
            user.make_dir(self.workdir)
        (self.workdir / "server.json").write_text(json.dumps({"bin_dir": str(self.bin_dir)}) + "\n")
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        user.own(pwfile)
        try:
            user.run(
                [
                    self.install.binary("initdb"),
                    "--pgdata",
                    self.data_dir,
                    "--username",
                    SUPERUSER,
                    "--pwfile",
                    pwfile,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                cwd=self.workdir,
            )
        finally:
            pwfile.unlink()
        hba = (
            "# written by the inventium.logical_replication test harness\n"
            "local all all trust\n"
            "local replication all trust\n"
            f"host all all {LISTEN_HOST}/32 scram-sha-256\n"
            f"host replication all {LISTEN_HOST}/32 scram-sha-256\n"
        )
        self._write_data_file("pg_hba.conf", hba)
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# test harness settings (ALTER SYSTEM still overrides them)\ninclude 'harness.conf'\n")
        self._initialized = True

    def clone_from(self, primary: PostgresServer, slot: str | None = None) -> None:
        """Make this (not yet started) server a physical standby of ``primary``.

        A cold copy: the primary stops for the copy and starts again. (``pg_basebackup`` would do it
        online, but the PostgreSQL 17/18 binaries the harness fetches do not ship it, and one of
        another major refuses a newer server.) The copy's replication slots are removed, as a base
        backup leaves them out; ``standby.signal`` and ``primary_conninfo`` make it a standby that
        connects through the primary's unix socket (``trust`` there, so no password is written
        anywhere) with ``dbname=postgres``, which PostgreSQL 17+'s slot synchronization needs;
        ``slot`` (a physical slot that exists on the primary) becomes ``primary_slot_name``. The
        standby's superuser password is the primary's (it is a copy).
        """
        if self._initialized or self.data_dir.exists():
            raise HarnessError(f"{self.name} is initialized already; a standby starts from an empty data directory")
        primary.stop()
        try:
            self._server_user.run(["cp", "-a", primary.data_dir, self.data_dir], cwd=self.workdir, timeout=300)
        finally:
            primary.start()
        for leftover in (self.data_dir / "pg_replslot").iterdir():
            shutil.rmtree(leftover)
        (self.data_dir / "postmaster.opts").unlink(missing_ok=True)
        self._write_data_file("standby.signal", "")
        conninfo = f"host={primary.socket_dir} port={primary.port} user={SUPERUSER} dbname=postgres"
        recovery = f"primary_conninfo = '{conninfo}'\n" + (f"primary_slot_name = '{slot}'\n" if slot else "")
        auto = self.data_dir / "postgresql.auto.conf"
        self._write_data_file("postgresql.auto.conf", auto.read_text(encoding="utf-8") + recovery)
        self.password = primary.password
        self._initialized = True

    def promote(self) -> None:
        """``pg_ctl promote -w``: a standby becomes a primary."""
        self._server_user.run(
            [self.bin_dir / "pg_ctl", "promote", "-D", self.data_dir, "-w", "-t", "60", "-s"],
            cwd=self.workdir,
            timeout=90,
        )

    def _write_data_file(self, name: str, text: str) -> None:
        path = self.data_dir / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        self._server_user.own(path)

    def _write_conf(self) -> None:
        settings = {**self._settings, "port": self.port, "unix_socket_directories": str(self.socket_dir)}
        lines = [f"{key} = {_conf_value(value)}" for key, value in settings.items()]
        self._write_data_file(
            "harness.conf", "# written by the test harness on every start\n" + "\n".join(lines) + "\n"
        )

    def start(self) -> None:
        """Start (initdb first if needed) and wait until it accepts password connections."""
        if self.destroyed:
            raise HarnessError(f"{self.name} was destroyed")
        self.init()
        if self.running:
            return
        for _attempt in range(_PORT_ATTEMPTS):
            if self.port is None:
                self.port = self._port_allocator()
            self._write_conf()
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            proc = self._server_user.run(
                [self.bin_dir / "pg_ctl", "start", "-D", self.data_dir, "-l", self.log_path, "-w", "-t", "60", "-s"],
                cwd=self.workdir,
                timeout=90,
                check=False,
            )
            if proc.returncode == 0:
                break
            log = self._log_since(offset)
            self._kill()
            if any(marker in log for marker in _BIND_ERRORS):
                LOG.warning("%s: port %s taken, retrying with another port", self.name, self.port)
                self.port = None
                continue
            raise HarnessError(
                f"{self.name} ({self.install.version}, {self.install.source}) did not start "
                f"(pg_ctl exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()}\n"
                f"--- {self.log_path} ---\n{_tail(log, 40)}"
            )
        else:
            raise HarnessError(f"{self.name}: no usable TCP port after {_PORT_ATTEMPTS} attempts")
        try:
            self.server_version_num = int(self.scalar("SELECT current_setting('server_version_num')"))
        except psycopg.Error as exc:
            raise HarnessError(f"{self.name} started but refuses a password connection: {exc}") from exc
        if self.server_version_num // 10000 != self.major:
            raise HarnessError(f"{self.name}: server reports {self.server_version_num}, expected major {self.major}")

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m <mode> -w`` (falls back to immediate, then SIGKILL)."""
        if not self.running:
            return
        proc = self._server_user.run(
            [self.bin_dir / "pg_ctl", "stop", "-D", self.data_dir, "-m", mode, "-w", "-t", "60", "-s"],
            cwd=self.workdir,
            timeout=90,
            check=False,
        )
        if proc.returncode != 0 and self.running:
            self._kill()

    def _kill(self) -> None:
        if not self.running:
            return
        self._server_user.run(
            [self.bin_dir / "pg_ctl", "stop", "-D", self.data_dir, "-m", "immediate", "-w", "-t", "30", "-s"],
            cwd=self.workdir,
            timeout=60,
            check=False,
        )
        if self.running:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)

    def restart(self, mode: str = "fast") -> None:
        """Stop and start again on the same port (e.g. after ``ALTER SYSTEM`` of a restart-only setting)."""
        self.stop(mode)
        self.start()

    def reload(self) -> None:
        """``pg_ctl reload`` (SIGHUP)."""
        self._server_user.run([self.bin_dir / "pg_ctl", "reload", "-D", self.data_dir, "-s"], cwd=self.workdir)

    def destroy(self) -> None:
        """Stop immediately and delete the data directory. Idempotent."""
        if self.destroyed:
            return
        try:
            if self.workdir.exists():
                self.stop("immediate")
        finally:
            self.destroyed = True
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- connecting ----------------------------------------------------------------------------

    def conninfo(self, dbname: str = "postgres", **extra: Any) -> str:
        """libpq keyword/value connection string over TCP, including the password."""
        params = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": dbname,
            **extra,
        }
        return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})

    dsn = conninfo

    def login_args(self, dbname: str = "postgres") -> dict[str, Any]:
        """Connection options as the collection's modules name them (``login_host`` ...)."""
        return {
            "login_host": self.host,
            "login_port": self.port,
            "login_user": self.user,
            "login_password": self.password,
            "login_db": dbname,
        }

    def connect(self, dbname: str = "postgres", autocommit: bool = True, **kwargs: Any) -> psycopg.Connection:
        """A psycopg 3 connection over TCP with the password (autocommit by default)."""
        kwargs.setdefault("connect_timeout", 10)
        kwargs.setdefault("application_name", "pytest-harness")
        return psycopg.connect(self.conninfo(dbname), autocommit=autocommit, **kwargs)

    def execute(self, query: Any, params: Any = None, *, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement (or several without params) on a new connection; return its rows."""
        with self.connect(dbname) as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description is not None else []

    def scalar(self, query: Any, params: Any = None, *, dbname: str = "postgres") -> Any:
        """First column of the first row (None if no row)."""
        rows = self.execute(query, params, dbname=dbname)
        return rows[0][0] if rows else None

    def create_database(self, name: str | None = None, *, owner: str | None = None) -> Database:
        """CREATE DATABASE (unique name if none given); returns a :class:`Database`."""
        name = name or f"t_{secrets.token_hex(4)}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        self.execute(statement)
        return Database(self, name)

    def drop_database(self, name: str) -> None:
        """Drop a database with its subscriptions and its logical slots (see :func:`drop_databases`)."""
        drop_databases([Database(self, name)])


@dataclass(frozen=True)
class Database:
    """A database on a :class:`PostgresServer`; same helpers as the server, bound to ``name``."""

    server: PostgresServer
    name: str

    def conninfo(self, **extra: Any) -> str:
        return self.server.conninfo(self.name, **extra)

    dsn = conninfo

    def login_args(self) -> dict[str, Any]:
        return self.server.login_args(self.name)

    def connect(self, autocommit: bool = True, **kwargs: Any) -> psycopg.Connection:
        return self.server.connect(self.name, autocommit=autocommit, **kwargs)

    def execute(self, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
        return self.server.execute(query, params, dbname=self.name)

    def scalar(self, query: Any, params: Any = None) -> Any:
        return self.server.scalar(query, params, dbname=self.name)

    def exists(self) -> bool:
        return bool(self.server.scalar("SELECT count(*) FROM pg_database WHERE datname = %s", [self.name]))

    def drop(self) -> None:
        drop_databases([self])


def _drop_subscriptions(db: Database) -> None:
    """Disable, detach from their slots, and drop all subscriptions in ``db``."""
    with db.connect() as conn:
        subs = conn.execute(
            "SELECT subname, subslotname IS NOT NULL FROM pg_subscription"
            " WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
        for name, has_slot in subs:
            ident = sql.Identifier(name)
            conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
            if has_slot:
                conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
            conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))


def _drop_slots_and_database(db: Database, timeout: float = 15) -> None:
    """Drop the logical slots of ``db`` (terminating their walsenders), then the database."""
    deadline = time.monotonic() + timeout
    with db.server.connect() as conn:
        while True:
            slots = conn.execute(
                "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s", [db.name]
            ).fetchall()
            if not slots:
                break
            if time.monotonic() > deadline:
                raise HarnessError(f"{db.server.name}: cannot drop slots {slots} of database {db.name}")
            for slot, pid in slots:
                if pid:
                    conn.execute("SELECT pg_terminate_backend(%s)", [pid])
                with contextlib.suppress(psycopg.errors.ObjectInUse, psycopg.errors.UndefinedObject):
                    conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
            time.sleep(0.05)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))


def drop_databases(databases: Iterable[Database]) -> None:
    """Drop databases that may replicate to/from each other, in an order that always works.

    First every subscription in every database is disabled, detached (``slot_name = NONE``) and
    dropped; then each database's logical slots are dropped and the database is dropped with
    ``FORCE``. Every database is attempted; the first error is raised at the end.
    """
    dbs = [db for db in databases if not db.server.destroyed and db.server.running]
    errors: list[str] = []
    present = []
    for db in dbs:
        try:
            if db.exists():
                present.append(db)
                _drop_subscriptions(db)
        except (psycopg.Error, HarnessError) as exc:
            errors.append(f"{db.server.name}/{db.name}: {exc}")
    for db in present:
        try:
            _drop_slots_and_database(db)
        except (psycopg.Error, HarnessError) as exc:
            errors.append(f"{db.server.name}/{db.name}: {exc}")
    if errors:
        raise HarnessError("database cleanup failed: " + "; ".join(errors))


@dataclass(frozen=True)
class PgPair:
    """A publisher and a subscriber server."""

    publisher: PostgresServer
    subscriber: PostgresServer

    @property
    def id(self) -> str:
        return f"pub{self.publisher.major}-sub{self.subscriber.major}"


@dataclass(frozen=True)
class PairDatabases:
    """One fresh database on each side of a :class:`PgPair`."""

    publisher: Database
    subscriber: Database

    def drop(self) -> None:
        drop_databases([self.subscriber, self.publisher])


def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float = 30,
    interval: float = 0.1,
    message: str | Callable[[], str] = "condition",
) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); raise TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise TimeoutError(f"timed out after {timeout}s waiting for {text}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Session manager
# --------------------------------------------------------------------------------------------


def _process_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def cleanup_stale_sessions(server_user: ServerUser, tmp: Path | None = None) -> None:
    """Stop servers and remove directories of earlier sessions whose process is gone (killed runs)."""
    for session in Path(tmp or tempfile.gettempdir()).glob(SESSION_PREFIX + "*"):
        try:
            owner = json.loads((session / "session.json").read_text())
        except (OSError, ValueError):
            continue
        if _process_start_time(owner.get("pid", 0)) == owner.get("start_time"):
            continue  # still running
        for server_json in session.glob("servers/*/server.json"):
            data_dir = server_json.parent / "data"
            with contextlib.suppress(OSError, ValueError, HarnessError):
                bin_dir = Path(json.loads(server_json.read_text())["bin_dir"])
                if (data_dir / "postmaster.pid").exists():
                    server_user.run([bin_dir / "pg_ctl", "stop", "-D", data_dir, "-m", "immediate", "-w"], check=False)
        shutil.rmtree(session, ignore_errors=True)


class PgHarness:
    """Per-session owner of binaries and servers; :meth:`close` destroys everything it started.

    ``shared_server(major, slot)`` servers live for the whole session (the session-scoped fixtures
    reuse them) and can be started ahead of time in the background with :meth:`prepare`;
    ``new_server`` servers belong to the caller (destroy them, or let ``close`` do it).
    """

    def __init__(
        self,
        majors: Sequence[int],
        *,
        pins: dict[int, Pin] | None = None,
        cache: Path | None = None,
        server_user: ServerUser | None = None,
    ) -> None:
        self.majors = sorted(majors)
        self.pins = load_pins() if pins is None else pins
        self.cache = cache
        self.server_user = server_user or ServerUser.resolve()
        self._lock = threading.Lock()
        self._install_locks: dict[int, threading.Lock] = {}
        self._installs: dict[int, PgInstall] = {}
        self._install_errors: dict[int, str] = {}
        self._servers: list[PostgresServer] = []
        self._shared: dict[tuple[int, int], Future[PostgresServer]] = {}
        self._ports: set[int] = set()
        self._closed = False
        # initdb and server start are mostly CPU and waiting: a few in parallel pay off even on 2 cores
        self._pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="pg-harness")
        cleanup_stale_sessions(self.server_user)
        self.session_dir = Path(tempfile.mkdtemp(prefix=SESSION_PREFIX))
        self.session_dir.chmod(0o755)
        owner = {"pid": os.getpid(), "start_time": _process_start_time(os.getpid())}
        (self.session_dir / "session.json").write_text(json.dumps(owner) + "\n")
        (self.session_dir / "servers").mkdir(mode=0o755)
        atexit.register(self.close)

    # -- binaries ------------------------------------------------------------------------------

    def install(self, major: int) -> PgInstall:
        """Binaries for ``major`` usable by the server user (resolved once; a failure is remembered)."""
        with self._lock:
            major_lock = self._install_locks.setdefault(major, threading.Lock())
        with major_lock:
            if major in self._installs:
                return self._installs[major]
            if major in self._install_errors:
                raise HarnessError(self._install_errors[major])
            try:
                install = self._accessible(resolve_install(major, self.pins, self.cache))
            except HarnessError as exc:
                self._install_errors[major] = str(exc)
                raise
            self._installs[major] = install
            return install

    def _accessible(self, install: PgInstall) -> PgInstall:
        """Stage (hard links) binaries the server user cannot reach, e.g. a cache under /root."""
        if not self.server_user.switches or self._usable_by_server_user(install):
            return install
        staged = self.session_dir / f"pg-{install.version}"
        if not staged.exists():
            shutil.copytree(install.root, staged, symlinks=True, copy_function=_link_or_copy)
        staged_install = replace(install, root=staged)
        if not self._usable_by_server_user(staged_install):
            raise HarnessError(f"{self.server_user.name} cannot run {staged_install.binary('postgres')}")
        return staged_install

    def _usable_by_server_user(self, install: PgInstall) -> bool:
        try:
            self.server_user.run([install.binary("postgres"), "-V"])
        except (OSError, HarnessError):
            return False
        return True

    # -- servers -------------------------------------------------------------------------------

    def _allocate_port(self) -> int:
        with self._lock:
            port = free_port(self._ports)
            self._ports.add(port)
            return port

    def new_server(
        self,
        major: int,
        *,
        name: str | None = None,
        settings: dict[str, str | int | bool] | None = None,
        start: bool = True,
    ) -> PostgresServer:
        """A new server of ``major`` (own initdb, own system identifier); started unless ``start=False``."""
        install = self.install(major)
        name = name or f"pg{major}"
        with self._lock:
            if self._closed:
                raise HarnessError("harness is closed")
            workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.session_dir / "servers"))
            self.server_user.own(workdir)
            server = PostgresServer(
                install, workdir, self.server_user, name=name, settings=settings, port_allocator=self._allocate_port
            )
            self._servers.append(server)
        if start:
            try:
                server.start()
            except BaseException:
                server.destroy()
                raise
        return server

    def new_standby(
        self,
        primary: PostgresServer,
        *,
        name: str | None = None,
        slot: str | None = None,
        settings: dict[str, str | int | bool] | None = None,
    ) -> PostgresServer:
        """A started physical standby of ``primary`` (see :meth:`PostgresServer.clone_from`)."""
        server = self.new_server(primary.major, name=name or f"{primary.name}-standby", settings=settings, start=False)
        try:
            server.clone_from(primary, slot=slot)
            server.start()
        except BaseException:
            server.destroy()
            raise
        return server

    @staticmethod
    def pair_keys(pub_major: int, sub_major: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """``(major, slot)`` of the shared publisher and subscriber of a pair."""
        return (pub_major, 0), (sub_major, 1 if sub_major == pub_major else 0)

    def prepare(self, keys: Iterable[tuple[int, int]]) -> None:
        """Start shared servers ``(major, slot)`` in the background, in this order."""
        for key in keys:
            self._shared_future(key)

    def _shared_future(self, key: tuple[int, int], replace_destroyed: bool = False) -> Future[PostgresServer]:
        with self._lock:
            if self._closed:
                raise HarnessError("harness is closed")
            future = self._shared.get(key)
            if future is not None and replace_destroyed and future.done() and not future.exception():
                if future.result().destroyed:
                    future = None
            if future is None:
                major, slot = key
                future = self._pool.submit(self.new_server, major, name=f"pg{major}-shared{slot}")
                self._shared[key] = future
            return future

    def shared_server(self, major: int, slot: int = 0) -> PostgresServer:
        """The session's server number ``slot`` of ``major`` (started on first use, restarted if down)."""
        server = self._shared_future((major, slot), replace_destroyed=True).result()
        if not server.running:
            server.start()
        return server

    def pair(self, pub_major: int, sub_major: int) -> PgPair:
        """Shared publisher and subscriber (two distinct servers even for the same major)."""
        pub_key, sub_key = self.pair_keys(pub_major, sub_major)
        self.prepare([pub_key, sub_key])
        return PgPair(self.shared_server(*pub_key), self.shared_server(*sub_key))

    def close(self) -> None:
        """Destroy every server and remove the session directory. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        servers = list(self._servers)
        try:
            with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
                list(pool.map(_destroy_quietly, servers))
        except RuntimeError:  # no new threads during interpreter shutdown (atexit)
            for server in servers:
                _destroy_quietly(server)
        shutil.rmtree(self.session_dir, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)


def _destroy_quietly(server: PostgresServer) -> None:
    try:
        server.destroy()
    except Exception as exc:  # teardown must reach every server
        LOG.warning("could not destroy %s: %s", server, exc)


def install_sigterm_handler() -> None:
    """Turn SIGTERM into KeyboardInterrupt so fixture teardown and ``atexit`` still run."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def _handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _handler)

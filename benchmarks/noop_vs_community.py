"""Benchmark: a no-op re-run of this collection's modules vs the same objects with community.postgresql.

Two throwaway pairs of PostgreSQL clusters (publisher + subscriber, default major 15, started with
the test harness ``tests/integration/pg_harness.py`` and destroyed afterwards, also on errors and
SIGTERM), one pair per collection. Both sides declare the same objects:

* the publisher settings ``wal_level=logical``, ``max_replication_slots``, ``max_wal_senders`` and
  ``max_slot_wal_keep_size`` (the clusters start with ``wal_level=replica``): ours in one
  ``server_settings`` call, the peer one ``postgresql_set`` call per setting;
* four publications, each with a row filter, one of them with a column list: ours one
  ``publication`` call with ``publications: [...]``, the peer one ``postgresql_publication`` each;
* a spare (unused) logical replication slot: ours ``replication_slot`` with ``slots: [...]``, the
  peer ``postgresql_slot``;
* two subscriptions on the subscriber cluster: ours one ``subscription`` call with
  ``subscriptions: [...]``, the peer one ``postgresql_subscription`` each;
* one facts call on the publisher: ours ``replication_info``, the peer ``postgresql_info``
  (limited to the subsets about replication, ``PEER_INFO_SUBSETS``).

The modules log in with a password file (``PGPASSFILE``, set for the play), not ``login_password``:
community.postgresql 4.2.0's ``postgresql_publication`` fails with row filters whenever a module
argument is ``no_log`` (its ``RowFilter.__eq__`` meets a plain string in Ansible's
``remove_values``: "'str' object has no attribute 'rfilter'"). The publisher's password is still a
module argument on both sides: the subscriptions' connection to the publisher.

Each side is prepared first (the settings, a restart of its publisher through the harness, then
the whole playbook once), so the timed runs have nothing to do. Then ``--runs`` rounds run
interleaved: ours, the peer, and the ping floor (a playbook of as many ``ansible.builtin.ping``
tasks as ours has, what Ansible itself costs for that many tasks) and the same with as many pings
as the peer has tasks (their ratio is the one ours/peer would reach if every module call cost what
a ping costs). Every run is one
``ansible-playbook`` process (localhost, ``connection: local``, no fact gathering, this venv's
Python, the checkout's ``ansible.cfg``: ``tests/support/ansible.py``), timed from start to exit,
and its CPU seconds are counted (user + system of ``ansible-playbook`` and every process it
waited for; the PostgreSQL servers' share is not in it); ``changed=`` comes from its PLAY RECAP.
Finally each collection runs once more with ``-v`` and the cluster passwords of its pair are
counted in the output (ours must show none; the peer's count is reported as it is).

The row filters are written the way PostgreSQL deparses them (``((id > 1000) AND (id < 1000000))``)
because the peer compares them as text: with ``--natural-filters`` they are written as people
write them (``(id > 1000 AND id < 1000000)``, ``(id BETWEEN 1 AND 5000)``) and the peer re-applies
three of the four on every run (``changed`` > 0, as in the yardstick of ``docs/measurements.md``),
while ours compares them as the server stores them and stays at ``changed=0``.

With ``--floor`` a third side runs in the rounds: as many tasks as ours has, each calling a different
minimal module of a collection the script writes into its temporary directory (``AnsibleModule``,
``import psycopg``, connect to ours' publisher, ``SELECT 1``): what ours would cost if each of its calls
did only what any PostgreSQL module must do (a distinct module per task, like ours, so Ansible builds
each payload once per run as it does ours). Its ratio to the peer is the floor of ``ours/peer`` for
modules of this kind.

Prints a table per collection (runs, min, median, max seconds, median CPU seconds, tasks,
``changed`` per run), the ratio ``ours/peer`` of the minimums and of the medians (target <= 0.5
with ``changed=0``) and of the median CPU seconds (steadier than the wall clock on a busy machine), the
ping floor beside it, and the password counts; with ``--profile`` also the slowest tasks of one
more run of each side (``profile_tasks``). A benchmark reports, it does not gate: the exit code
is 1 only when a run failed. Compare ratios from one invocation; on the shared 2-core VM
absolute seconds move with the load of other jobs.

Usage::

    .venv/bin/python benchmarks/noop_vs_community.py [--runs 5] [--major 15] [--natural-filters] [--profile] [--floor]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.paths import use_checkout  # noqa: E402

use_checkout()  # tests/support: the collection, tests/ and tests/integration/ on sys.path

from lab_client import changed_tasks, parse_recap  # noqa: E402
from pg_harness import PgHarness, PostgresServer, install_sigterm_handler  # noqa: E402
from site_rerun import PROFILE_LINE  # noqa: E402  (benchmarks/ is sys.path[0] when run as a script)
from support.ansible import LAB_DROP, ansible_env, run_playbook  # noqa: E402

OURS = "inventium.logical_replication"
PEER = "community.postgresql"
DATABASE = "bench"
INVENTORY = "localhost,"
HOST = "localhost"

# The publishers start with values that differ, so the first run changes them (wal_level needs a restart).
INITIAL_SETTINGS = {"wal_level": "replica", "max_replication_slots": 10, "max_wal_senders": 10}
SETTINGS = {"wal_level": "logical", "max_replication_slots": 20, "max_wal_senders": 20, "max_slot_wal_keep_size": "1GB"}
TABLES = (
    "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, amount int NOT NULL, note text)",
    "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, region_id int NOT NULL)",
    "CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price int NOT NULL)",
    "CREATE TABLE events (id bigint PRIMARY KEY, kind int NOT NULL, payload text)",
)


@dataclass(frozen=True)
class Publication:
    name: str
    table: str
    stored: str  # the row filter as PostgreSQL 15 deparses it (pg_get_expr)
    natural: str  # the same filter as people write it (--natural-filters)
    columns: tuple[str, ...] = ()

    def row_filter(self, natural: bool) -> str:
        return self.natural if natural else self.stored


PUBLICATIONS = (
    Publication("pub_orders", "public.orders", "((id > 1000) AND (id < 1000000))", "(id > 1000 AND id < 1000000)"),
    Publication(
        "pub_customers",
        "public.customers",
        "((id >= 1) AND (id <= 5000))",
        "(id BETWEEN 1 AND 5000)",
        columns=("id", "name", "region_id"),
    ),
    Publication("pub_products", "public.products", "(id <> 0)", "(id <> 0)"),
    Publication("pub_events", "public.events", "((id % (2)::bigint) = 0)", "(id % 2 = 0)"),
)
SUBSCRIPTIONS = {"sub_a": ["pub_orders", "pub_customers"], "sub_b": ["pub_products", "pub_events"]}
SPARE_SLOT = "spare_slot"
# postgresql_info without the subsets that have nothing to do with replication (all settings, roles, tablespaces).
PEER_INFO_SUBSETS = ["version", "in_recovery", "databases", "replications", "repl_slots"]


@dataclass
class Pair:
    publisher: PostgresServer
    subscriber: PostgresServer

    @property
    def passwords(self) -> list[str]:
        return [self.publisher.password, self.subscriber.password]

    @property
    def passfile_lines(self) -> list[str]:
        return [f"{s.host}:{s.port}:*:{s.user}:{s.password}" for s in (self.publisher, self.subscriber)]

    def publisher_connection(self) -> dict[str, object]:
        return {
            "host": self.publisher.host,
            "port": self.publisher.port,
            "dbname": DATABASE,
            "user": self.publisher.user,
            "password": self.publisher.password,
        }


def login(server: PostgresServer) -> dict[str, object]:
    """The connection options of both collections, without the password (it comes from PGPASSFILE)."""
    return {key: value for key, value in server.login_args(DATABASE).items() if key != "login_password"}


def task(name: str, module: str, args: dict[str, object], tags: tuple[str, ...] = ()) -> dict[str, object]:
    entry: dict[str, object] = {"name": name, module: args}
    if tags:
        entry["tags"] = list(tags)
    return entry


def our_tasks(pair: Pair, natural: bool) -> list[dict[str, object]]:
    pub, sub = login(pair.publisher), login(pair.subscriber)
    publications = [
        {
            "name": p.name,
            "tables": [
                {"name": p.table, "where": p.row_filter(natural), **({"columns": list(p.columns)} if p.columns else {})}
            ],
        }
        for p in PUBLICATIONS
    ]
    subscriptions = [
        {"name": name, "publications": pubs, "publisher": pair.publisher_connection()}
        for name, pubs in SUBSCRIPTIONS.items()
    ]
    tasks = [
        task("publisher settings", f"{OURS}.server_settings", {**pub, "settings": SETTINGS}, tags=("settings",)),
        task("publications", f"{OURS}.publication", {**pub, "publications": publications}),
        task("spare slot", f"{OURS}.replication_slot", {**pub, "slots": [{"name": SPARE_SLOT}]}),
    ]
    tasks.append(task("subscriptions", f"{OURS}.subscription", {**sub, "subscriptions": subscriptions}))
    tasks.append(task("publisher facts", f"{OURS}.replication_info", pub))
    return tasks


def peer_tasks(pair: Pair, natural: bool) -> list[dict[str, object]]:
    pub, sub = login(pair.publisher), login(pair.subscriber)
    tasks = [
        task(
            f"setting {name}", f"{PEER}.postgresql_set", {**pub, "name": name, "value": str(value)}, tags=("settings",)
        )
        for name, value in SETTINGS.items()
    ]
    for p in PUBLICATIONS:
        # The peer takes either `tables` or `columns` (a table without columns: the whole table).
        objects = {"columns": {p.table: list(p.columns)}} if p.columns else {"tables": [p.table]}
        args = {**pub, "name": p.name, **objects, "rowfilters": {p.table: p.row_filter(natural)}}
        tasks.append(task(f"publication {p.name}", f"{PEER}.postgresql_publication", args))
    slot = {**pub, "name": SPARE_SLOT, "slot_type": "logical", "output_plugin": "pgoutput"}
    tasks.append(task("spare slot", f"{PEER}.postgresql_slot", slot))
    for name, pubs in SUBSCRIPTIONS.items():
        args = {**sub, "name": name, "publications": pubs, "connparams": pair.publisher_connection()}
        tasks.append(task(f"subscription {name}", f"{PEER}.postgresql_subscription", args))
    tasks.append(task("publisher facts", f"{PEER}.postgresql_info", {**pub, "filter": PEER_INFO_SUBSETS}))
    return tasks


FLOOR_COLLECTION = "floor.bench"
FLOOR_MODULE = """\
from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            login_host=dict(type="str"),
            login_port=dict(type="int"),
            login_user=dict(type="str"),
            login_db=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    import psycopg

    p = module.params
    login = dict(host=p["login_host"], port=p["login_port"], user=p["login_user"], dbname=p["login_db"])
    with psycopg.connect(**login) as conn:
        conn.execute("SELECT 1").fetchone()
    module.exit_json(changed=False)


if __name__ == "__main__":
    main()
"""
"""A minimal PostgreSQL module: Ansible's argument handling, psycopg imported, one connection, one query."""


def write_floor_collection(directory: Path, count: int) -> Path:
    """``count`` copies of :data:`FLOOR_MODULE` (``m1`` ...) as collection ``floor.bench``; returns its path root."""
    modules = directory / "floor" / "ansible_collections" / "floor" / "bench" / "plugins" / "modules"
    modules.mkdir(parents=True)
    for index in range(count):
        (modules / f"m{index + 1}.py").write_text(FLOOR_MODULE)
    return directory / "floor"


def floor_tasks(pair: Pair, count: int) -> list[dict[str, object]]:
    return [task(f"floor {i + 1}", f"{FLOOR_COLLECTION}.m{i + 1}", login(pair.publisher)) for i in range(count)]


def ping_tasks(count: int) -> list[dict[str, object]]:
    return [task(f"ping {index + 1}", "ansible.builtin.ping", {}) for index in range(count)]


def write_playbook(directory: Path, name: str, tasks: list[dict[str, object]], passfile: Path) -> Path:
    """One play on localhost, as every run of the benchmark; JSON is YAML (no templating in the values)."""
    play = {
        "name": name,
        "hosts": HOST,
        "gather_facts": False,
        "connection": "local",
        "vars": {"ansible_python_interpreter": sys.executable},
        "environment": {"PGPASSFILE": str(passfile)},
        "tasks": tasks,
    }
    path = directory / f"{name}.yml"
    path.write_text(json.dumps([play], indent=2) + "\n")
    path.chmod(0o600)  # it holds the clusters' passwords
    return path


@dataclass
class Side:
    label: str
    playbook: Path
    tasks: int
    passwords: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)
    verbose_password_count: int | None = None
    verbose_password_tasks: dict[str, int] = field(default_factory=dict)
    verbose_changed: int | None = None
    profile: list[tuple[float, str]] = field(default_factory=list)
    collections: Path | None = None  # a collections root to add (the floor's)


class RunFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Run:
    seconds: float  # wall clock, start to exit of ansible-playbook
    cpu: float  # user + system seconds of ansible-playbook and every process it waited for (workers, modules)
    changed: int
    output: str


# --strategy: the same for every side (ansible.cfg's Mitogen strategy by default).
STRATEGY = ""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(playbook: Path, *args: str, profile: bool = False, collections: Path | None = None) -> Run:
    """Run the playbook and read its PLAY RECAP; raises RunFailed when it failed."""
    env = ansible_env(callback=None, drop=LAB_DROP)  # ansible.cfg's text callback: the recap is parsed
    if collections is not None:
        env["ANSIBLE_COLLECTIONS_PATH"] = f"{collections}:{ROOT / 'collections'}"
    if profile:
        env.update({"ANSIBLE_CALLBACKS_ENABLED": "profile_tasks", "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "20"})
    if STRATEGY:
        env["ANSIBLE_STRATEGY"] = STRATEGY
    cpu_before = children_cpu()  # the PostgreSQL servers are not our children: their CPU is not counted
    run = run_playbook(playbook, *args, inventory=INVENTORY, callback=None, env=env)
    cpu = children_cpu() - cpu_before
    recap = parse_recap(run.output).get(HOST)
    if run.rc != 0 or recap is None or recap["failed"] or recap["unreachable"]:
        raise RunFailed(f"{playbook.name} {' '.join(args)} failed (exit {run.rc}):\n{run.output[-4000:]}")
    return Run(run.seconds, cpu, recap["changed"], run.output)


def count_per_task(output: str, secrets: list[str]) -> dict[str, int]:
    """How often the secrets occur in the output of each task (``TASK [name]`` sections), where they do."""
    counts: dict[str, int] = {}
    task_name = "(before the first task)"
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task_name = line[len("TASK [") :].split("]", 1)[0]
        found = sum(line.count(secret) for secret in secrets)
        if found:
            counts[task_name] = counts.get(task_name, 0) + found
    return counts


def timed(side: Side) -> None:
    run = run_once(side.playbook, collections=side.collections)
    side.seconds.append(run.seconds)
    side.cpu.append(run.cpu)
    side.changed.append(run.changed)
    if run.changed:
        names = [line.split("[", 1)[1].split("]", 1)[0] for line in changed_tasks(run.output)]
        print(f"  {side.label}: changed={run.changed}: {', '.join(names)}", flush=True)


def prepare(side: Side, publisher: PostgresServer) -> None:
    """Settings, a restart for wal_level, then everything once: the timed runs have nothing to do."""
    run_once(side.playbook, "--tags", "settings")
    publisher.restart()
    run_once(side.playbook)


def new_pair(harness: PgHarness, major: int, label: str) -> Pair:
    publisher = harness.new_server(major, name=f"{label}-pub", settings=INITIAL_SETTINGS)
    subscriber = harness.new_server(major, name=f"{label}-sub")
    for server in (publisher, subscriber):
        database = server.create_database(DATABASE)
        for statement in TABLES:
            database.execute(statement)
    return Pair(publisher, subscriber)


def peer_version() -> str:
    manifest = Path(sysconfig.get_paths()["purelib"]) / "ansible_collections/community/postgresql/MANIFEST.json"
    try:
        return json.loads(manifest.read_text())["collection_info"]["version"]
    except (OSError, ValueError, KeyError):
        return "?"


def report(sides: list[Side], pings: list[Side], floor: Side | None = None) -> None:
    pings = [*pings, floor] if floor else pings
    width = max(len(side.label) for side in [*sides, *pings])
    header = f"{'runs':>4}  {'min s':>6}  {'median s':>8}  {'max s':>6}  {'cpu median s':>12}  {'tasks':>5}"
    print(f"\n{'':<{width}}  {header}  changed per run")
    for side in [*sides, *pings]:
        changed = " ".join(str(c) for c in side.changed)
        print(
            f"{side.label:<{width}}  {len(side.seconds):>4}  {min(side.seconds):>6.2f}  "
            f"{statistics.median(side.seconds):>8.2f}  {max(side.seconds):>6.2f}  "
            f"{statistics.median(side.cpu):>12.2f}  {side.tasks:>5}  {changed}"
        )
    ours, peer = sides
    ratio_min = min(ours.seconds) / min(peer.seconds)
    ratio_median = statistics.median(ours.seconds) / statistics.median(peer.seconds)
    ratio_cpu = statistics.median(ours.cpu) / statistics.median(peer.cpu)
    print(f"\nours/peer min {ratio_min:.2f} median {ratio_median:.2f} (target <= 0.5)")
    print(f"ours/peer CPU seconds, median {ratio_cpu:.2f} (less disturbed by other jobs than the wall clock)")
    if floor:
        print(
            f"module floor ({floor.tasks} minimal PostgreSQL modules, one call each)/peer: min "
            f"{min(floor.seconds) / min(peer.seconds):.2f} median "
            f"{statistics.median(floor.seconds) / statistics.median(peer.seconds):.2f} cpu "
            f"{statistics.median(floor.cpu) / statistics.median(peer.cpu):.2f} (ours/peer if each of our calls "
            "did only what any PostgreSQL module must)"
        )
    ping, peer_ping = pings[:2]
    print(
        f"ping floor ({ping.tasks} ping tasks, ours has {ours.tasks}): min {min(ping.seconds):.2f} s "
        f"median {statistics.median(ping.seconds):.2f} s (cpu {statistics.median(ping.cpu):.2f} s); ours above it: "
        f"min {min(ours.seconds) - min(ping.seconds):.2f} s median "
        f"{statistics.median(ours.seconds) - statistics.median(ping.seconds):.2f} s "
        f"(cpu {statistics.median(ours.cpu) - statistics.median(ping.cpu):.2f} s)"
    )
    print(
        f"ping floors {ping.tasks}/{peer_ping.tasks} tasks: min {min(ping.seconds) / min(peer_ping.seconds):.2f} "
        f"median {statistics.median(ping.seconds) / statistics.median(peer_ping.seconds):.2f} "
        f"cpu {statistics.median(ping.cpu) / statistics.median(peer_ping.cpu):.2f} "
        "(ours/peer if every module call cost what a ping costs)"
    )
    for side in sides:
        print(
            f"{side.label}: cluster passwords in its -v output: {side.verbose_password_count} "
            f"(that run changed={side.verbose_changed})"
            + "".join(f"; {count} in '{name}'" for name, count in side.verbose_password_tasks.items())
        )
    for side in sides:
        if side.profile:
            print(f"\nslowest tasks of one more {side.label} run (profile_tasks):")
            for seconds, name in side.profile:
                print(f"  {seconds:5.2f} s  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="interleaved timed rounds (default 5)")
    parser.add_argument("--major", type=int, default=15, help="PostgreSQL major of the clusters (default 15)")
    parser.add_argument(
        "--natural-filters", action="store_true", help="write the row filters as people do (the peer re-applies them)"
    )
    parser.add_argument("--profile", action="store_true", help="one more run per side with profile_tasks")
    parser.add_argument("--floor", action="store_true", help="also time minimal PostgreSQL modules (see above)")
    parser.add_argument(
        "--strategy",
        default="",
        help="Ansible strategy of every run, e.g. linear (default: ansible.cfg's, Mitogen's mitogen_linear)",
    )
    args = parser.parse_args()
    global STRATEGY  # one setting for every run_once of this process
    STRATEGY = args.strategy

    install_sigterm_handler()  # an interrupted run still removes its clusters
    harness = PgHarness([args.major])
    try:
        with tempfile.TemporaryDirectory(prefix="noop-bench-") as tmp:
            directory = Path(tmp)
            ours_pair = new_pair(harness, args.major, "ours")
            peer_pair = new_pair(harness, args.major, "peer")
            passfile = directory / "pgpass"
            passfile.write_text("\n".join(ours_pair.passfile_lines + peer_pair.passfile_lines) + "\n")
            passfile.chmod(0o600)
            mine = our_tasks(ours_pair, args.natural_filters)
            theirs = peer_tasks(peer_pair, args.natural_filters)
            ours = Side(OURS, write_playbook(directory, "ours", mine, passfile), len(mine), ours_pair.passwords)
            peer_playbook = write_playbook(directory, "peer", theirs, passfile)
            peer = Side(f"{PEER} {peer_version()}", peer_playbook, len(theirs), peer_pair.passwords)
            ping = Side("ping floor", write_playbook(directory, "ping", ping_tasks(len(mine)), passfile), len(mine))
            peer_ping = Side(
                "ping floor, peer's tasks",
                write_playbook(directory, "ping_peer", ping_tasks(len(theirs)), passfile),
                len(theirs),
            )
            floor = None
            if args.floor:
                tasks = floor_tasks(ours_pair, len(mine))
                floor = Side("module floor", write_playbook(directory, "floor", tasks, passfile), len(mine))
                floor.collections = write_floor_collection(directory, len(mine))
            print(
                f"PostgreSQL {ours_pair.publisher.version}: two pairs of clusters; preparing both sides "
                f"(settings, restart, first run); strategy {STRATEGY or 'from ansible.cfg (mitogen_linear)'}",
                flush=True,
            )
            prepare(ours, ours_pair.publisher)
            prepare(peer, peer_pair.publisher)
            for index in range(args.runs):
                print(f"round {index + 1}/{args.runs}", flush=True)
                for side in (ours, peer, ping, peer_ping, *([floor] if floor else [])):
                    timed(side)
            for side in (ours, peer):
                verbose = run_once(side.playbook, "-v")
                side.verbose_changed = verbose.changed
                side.verbose_password_count = sum(verbose.output.count(password) for password in side.passwords)
                side.verbose_password_tasks = count_per_task(verbose.output, side.passwords)
                if args.profile:
                    recap = run_once(side.playbook, profile=True).output.split("TASKS RECAP", 1)[-1]
                    side.profile = [(float(m["seconds"]), m["task"].strip()) for m in PROFILE_LINE.finditer(recap)]
            report([ours, peer], [ping, peer_ping], floor)
    except RunFailed as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 1
    finally:
        harness.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

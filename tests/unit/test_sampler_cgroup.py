"""The sampler's container stats from cgroup files (no Docker API): v1 and v2, real file formats.

Fixtures in ``tests/unit/data/cgroup`` (README there): v1 copied from this machine's
``/sys/fs/cgroup`` two seconds apart, v2 in the kernel's formats. Every field must mean what it meant
with the Docker API: ``container_fields`` turns both documents into the same fields.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.paths import load_sampler

DATA = Path(__file__).resolve().parent / "data" / "cgroup"
CONTAINER_ID = "22636b067ec052e434b23e919ae3f21e4d75f87bf7001ae634507f79ed89d221"
CLOCK_TICKS = 100  # getconf CLK_TCK on the machine the fixtures come from


sampler = load_sampler("inventium_sampler_cgroup")


def reader(snapshot: str, **kwargs):
    return sampler.CgroupStats(
        str(DATA / snapshot / "root"), proc=str(DATA / snapshot / "proc"), clock_ticks=CLOCK_TICKS, **kwargs
    )


# ---------------------------------------------------------------------------------------- parsers


def test_proc_stat_cpu_time_is_dockers_seven_fields():
    # cpu  2940881 7144 1223820 10497068 21294 0 73815 112943 0 0: user..softirq, steal (112943) left out
    text = (DATA / "v1-1" / "proc" / "stat").read_text()
    assert sampler.parse_proc_stat_cpu_ns(text, CLOCK_TICKS) == 14_764_022 * 10_000_000


def test_proc_stat_without_a_cpu_line_is_an_error():
    with pytest.raises(ValueError, match="no cpu line"):
        sampler.parse_proc_stat_cpu_ns("ctxt 1\n", CLOCK_TICKS)


def test_meminfo_total_in_bytes():
    assert sampler.parse_meminfo_total((DATA / "v1-1" / "proc" / "meminfo").read_text()) == 24_683_792 * 1024


def test_memory_stat_of_v1():
    path = DATA / "v1-1" / "root" / "memory" / "docker" / CONTAINER_ID / "memory.stat"
    stats = sampler.parse_flat_keyed(path.read_text())
    assert stats["total_inactive_file"] == int(path.read_text().split("total_inactive_file ")[1].split()[0])
    assert "hierarchical_memory_limit" in stats


def test_blkio_v1_lines_and_the_empty_total():
    assert sampler.parse_blkio_v1("Total 0\n") == []
    text = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 12288\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n"
    assert sampler.parse_blkio_v1(text) == [
        {"major": 8, "minor": 0, "op": op, "value": value}
        for op, value in (("Read", 4096), ("Write", 8192), ("Sync", 12288), ("Async", 0), ("Discard", 0),
                          ("Total", 12288))
    ]  # fmt: skip


def test_io_stat_v2():
    text = (DATA / "v2" / "root" / "system.slice" / f"docker-{CONTAINER_ID}.scope" / "io.stat").read_text()
    assert sampler.parse_io_stat_v2(text) == [
        {"major": 253, "minor": 0, "op": "read", "value": 1_507_328},
        {"major": 253, "minor": 0, "op": "write", "value": 8_658_944},
        {"major": 7, "minor": 0, "op": "read", "value": 4096},
        {"major": 7, "minor": 0, "op": "write", "value": 0},
    ]


# ------------------------------------------------------------------------------- v1 (this machine)


def test_v1_document_and_fields_from_two_real_snapshots():
    first = reader("v1-1", online_cpus=2).stats(CONTAINER_ID)
    second = reader("v1-2", online_cpus=2).stats(CONTAINER_ID)
    assert first["cpu_stats"] == {
        "cpu_usage": {"total_usage": 12_581_132_713},
        "system_cpu_usage": 14_764_022 * 10_000_000,
        "online_cpus": 2,
    }
    # no limit: 9223372036854771712 in memory.limit_in_bytes becomes the host's memory, as Docker reports it
    assert first["memory_stats"]["limit"] == 24_683_792 * 1024
    assert first["blkio_stats"] == {"io_service_bytes_recursive": []}
    assert first["pids_stats"] == {"current": 6}

    assert sampler.container_fields(first) == {
        "cpu_percent": None,  # the first sample has nothing to compare with
        "online_cpus": 2,
        "memory_usage_bytes": 41_680_896 - 12_967_936,  # memory.usage_in_bytes minus total_inactive_file
        "memory_limit_bytes": 24_683_792 * 1024,
        "memory_percent": pytest.approx((41_680_896 - 12_967_936) / (24_683_792 * 1024) * 100),
        "block_read_bytes": 0,
        "block_write_bytes": 0,
        "pids": 6,
    }
    fields = sampler.container_fields(second, previous=first)
    # 32,821,151 ns of the container's CPU in 416 ticks (4.16 s) of the host's 2 CPUs
    assert fields["cpu_percent"] == pytest.approx(32_821_151 / 4_160_000_000 * 2 * 100)


def test_v1_with_a_memory_limit_and_combined_cpu_cpuacct(tmp_path):
    root = tmp_path / "v1"
    shutil.copytree(DATA / "v1-1", root)
    (root / "root" / "cpuacct").rename(root / "root" / "cpu,cpuacct")
    (root / "root" / "memory" / "docker" / CONTAINER_ID / "memory.limit_in_bytes").write_text("536870912\n")
    stats = sampler.CgroupStats(str(root / "root"), proc=str(root / "proc"), clock_ticks=CLOCK_TICKS).stats(
        CONTAINER_ID
    )
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] == 12_581_132_713
    assert stats["memory_stats"]["limit"] == 536_870_912


def test_a_container_without_cgroup_is_not_running(tmp_path):
    stats = reader("v1-1").stats("0" * 64)
    assert stats == {}
    assert sampler.container_fields(stats) is None  # -> running=0, as a stopped container's Docker stats


def test_the_systemd_driver_layout_is_found(tmp_path):
    root = tmp_path / "v1"
    shutil.copytree(DATA / "v1-1", root)
    for controller in ("cpuacct", "memory", "blkio", "pids"):
        base = root / "root" / controller
        (base / "system.slice").mkdir()
        (base / "docker" / CONTAINER_ID).rename(base / "system.slice" / f"docker-{CONTAINER_ID}.scope")
    stats = sampler.CgroupStats(str(root / "root"), proc=str(root / "proc"), clock_ticks=CLOCK_TICKS).stats(
        CONTAINER_ID
    )
    assert stats["pids_stats"] == {"current": 6}


# ----------------------------------------------------------------------------------------------- v2


def test_v2_document_and_fields():
    cgroup = reader("v2", online_cpus=2)
    assert cgroup.version == 2
    stats = cgroup.stats(CONTAINER_ID)
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] == 12_581_132 * 1000  # usage_usec in ns
    assert sampler.container_fields(stats) == {
        "cpu_percent": None,
        "online_cpus": 2,
        "memory_usage_bytes": 41_758_720 - 20_127_744,  # memory.current minus inactive_file
        "memory_limit_bytes": 536_870_912,  # memory.max
        "memory_percent": pytest.approx((41_758_720 - 20_127_744) / 536_870_912 * 100),
        "block_read_bytes": 1_507_328 + 4096,
        "block_write_bytes": 8_658_944,
        "pids": 6,
    }


def test_v2_without_a_limit_reports_the_hosts_memory(tmp_path):
    root = tmp_path / "v2"
    shutil.copytree(DATA / "v2", root)
    (root / "root" / "system.slice" / f"docker-{CONTAINER_ID}.scope" / "memory.max").write_text("max\n")
    stats = sampler.CgroupStats(str(root / "root"), proc=str(root / "proc"), clock_ticks=CLOCK_TICKS).stats(
        CONTAINER_ID
    )
    assert stats["memory_stats"]["limit"] == 24_683_792 * 1024


# ------------------------------------------------------------------------------------ configuration


def test_config_with_cgroup_ids():
    document = {
        "postgresql": {"s1": {"host": "127.0.0.1", "dbname": "subscriber"}},
        "docker": {"containers": ["subscriber1"], "cgroup": {"root": "/host/cgroup", "ids": {"subscriber1": "ab"}}},
    }
    config = sampler.parse_config(document)
    assert config["cgroup"] == {
        "root": "/host/cgroup",
        "ids": {"subscriber1": "ab"},
        "links": {},
        "net_root": "/sys/class/net",
    }
    document["docker"]["cgroup"]["links"] = {"subscriber1": ["../etc"]}
    with pytest.raises(sampler.ConfigError, match="lists of interface names"):
        sampler.parse_config(document)
    document["docker"]["cgroup"]["links"] = {"subscriber1": ["veth1a2b3c4"]}
    assert sampler.parse_config(document)["cgroup"]["links"] == {"subscriber1": ["veth1a2b3c4"]}
    document["docker"]["cgroup"]["ids"] = {}
    with pytest.raises(sampler.ConfigError, match="no id for subscriber1"):
        sampler.parse_config(document)


class Sink:
    def __init__(self):
        self.lines = []

    def add(self, lines):
        self.lines += lines


def test_container_sampler_reads_cgroups_and_never_the_socket(tmp_path):
    errors = sampler.ErrorCounter()
    cgroup = {"root": str(DATA / "v1-1" / "root"), "ids": {"subscriber1": CONTAINER_ID, "gone": "0" * 64}}
    thread = sampler.ContainerSampler(
        ["subscriber1", "gone"], str(tmp_path / "no-socket"), Sink(), errors, None, "sampler", cgroup=cgroup
    )
    thread.cgroup.proc = str(DATA / "v1-1" / "proc")
    thread.cgroup.clock_ticks = CLOCK_TICKS
    point = thread.sample("subscriber1", 1_700_000_000_000_000_000)
    text = "".join(point) if isinstance(point, list) else point
    assert "container,container=subscriber1,node=subscriber1" in text
    assert "running=1i" in text
    assert "pids=6i" in text
    gone = thread.sample("gone", 1_700_000_000_000_000_000)
    assert "running=0i" in ("".join(gone) if isinstance(gone, list) else gone)
    assert not errors.counts()


def host_link(net_root, name, rx_bytes, tx_bytes):
    """A host interface's counters as the kernel shows them in /sys/class/net/<name>/statistics (a number a line)."""
    statistics = net_root / name / "statistics"
    statistics.mkdir(parents=True)
    (statistics / "rx_bytes").write_text(f"{rx_bytes}\n")
    (statistics / "tx_bytes").write_text(f"{tx_bytes}\n")


def test_network_counters_come_from_the_host_end_of_the_link(tmp_path):
    """What the host end of a veth pair receives, the container sent: rx and tx swap sides."""
    net_root = tmp_path / "net"
    host_link(net_root, "veth1a2b3c4", rx_bytes=5_000, tx_bytes=70_000)
    cgroup = {
        "root": str(DATA / "v1-1" / "root"),
        "ids": {"subscriber1": CONTAINER_ID},
        "links": {"subscriber1": ["veth1a2b3c4", "vethgone"]},  # a re-created container's old link is gone
        "net_root": str(net_root),
    }
    errors = sampler.ErrorCounter()
    thread = sampler.ContainerSampler(["subscriber1"], str(tmp_path / "no-socket"), Sink(), errors, None, "s", cgroup)
    thread.cgroup.proc = str(DATA / "v1-1" / "proc")
    thread.cgroup.clock_ticks = CLOCK_TICKS
    stats = thread.read("subscriber1")
    assert stats["networks"] == {"veth1a2b3c4": {"rx_bytes": 70_000, "tx_bytes": 5_000}}
    fields = sampler.container_fields(stats)
    assert (fields["net_rx_bytes"], fields["net_tx_bytes"]) == (70_000, 5_000)
    # No link known (or none left): no network fields rather than zeros.
    assert "networks" not in sampler.CgroupStats(str(DATA / "v1-1" / "root"), net_root=str(net_root)).stats(
        CONTAINER_ID, ["vethgone"]
    )
    assert not errors.counts()

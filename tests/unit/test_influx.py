"""InfluxDB line protocol and client configuration (no server; the client's HTTP calls are
exercised against a real InfluxDB in tests/integration)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils._influx import (
    InfluxClient,
    client_from_endpoints,
    format_field_value,
    line,
)


def test_point_with_sorted_tags_and_typed_fields() -> None:
    text = line(
        "replication_slot",
        {"slot": "sub1", "node": "publisher"},
        {"active": True, "retained_wal_bytes": 16777216, "ratio": 0.5, "wal_status": "reserved"},
        1700000000000000000,
    )
    assert text == (
        "replication_slot,node=publisher,slot=sub1 "
        'active=true,retained_wal_bytes=16777216i,ratio=0.5,wal_status="reserved" 1700000000000000000'
    )


def test_no_timestamp_means_server_time() -> None:
    assert line("m", {}, {"v": 1}) == "m v=1i"


@pytest.mark.parametrize(
    ("measurement", "tags", "fields", "expected"),
    [
        ("my measure,x", {}, {"v": 1}, r"my\ measure\,x v=1i"),
        ("m", {"mode": "Access Share,Lock=1"}, {"v": 1}, r"m,mode=Access\ Share\,Lock\=1 v=1i"),
        ("m", {"a b": "c"}, {"f x=": 1}, r"m,a\ b=c f\ x\==1i"),
        ("m", {}, {"s": 'say "hi" \\ bye'}, r'm s="say \"hi\" \\ bye"'),
        ("m", {}, {"s": "two\nlines"}, r'm s="two\nlines"'),
        ("m", {"t": "two\nlines"}, {"v": 1}, r"m,t=two\nlines v=1i"),
    ],
)
def test_escaping(measurement: str, tags: dict, fields: dict, expected: str) -> None:
    assert line(measurement, tags, fields) == expected
    assert "\n" not in line(measurement, tags, fields)


def test_empty_and_none_values_are_left_out() -> None:
    text = line("m", {"node": "p", "slot": None, "empty": ""}, {"a": None, "b": float("nan"), "c": 2.0})
    assert text == "m,node=p c=2.0"


def test_a_point_without_storable_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="no field"):
        line("m", {"node": "p"}, {"a": None, "b": float("inf")})
    with pytest.raises(ValueError, match="name"):
        line("", {}, {"v": 1})


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, "true"), (False, "false"), (0, "0i"), (-3, "-3i"), (1.25, "1.25"), (1e20, "1e+20"), (b"x", '"x"')],
)
def test_field_values(value: object, expected: str) -> None:
    assert format_field_value(value) == expected


def test_client_validates_its_target() -> None:
    with pytest.raises(ValueError, match="database"):
        InfluxClient("http://127.0.0.1:8086", api=1)
    with pytest.raises(ValueError, match="token"):
        InfluxClient("http://127.0.0.1:8086", api=2, org="o", bucket="b")
    with pytest.raises(ValueError, match="api"):
        InfluxClient("http://127.0.0.1:8086", api=3, database="d")
    with pytest.raises(ValueError, match="http"):
        InfluxClient("file:///etc/passwd", api=1, database="d")


def test_client_repr_shows_no_secret() -> None:
    client = InfluxClient("http://127.0.0.1:8086", api=1, database="pglab", username="u", password="s3cret")
    assert "s3cret" not in repr(client)
    assert "pglab" in repr(client)
    client = InfluxClient("http://127.0.0.1:8086", api=2, org="inventium", bucket="pglab", token="t0ken")
    assert "t0ken" not in repr(client)


def test_client_from_endpoints_reads_secret_files(tmp_path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "influxdb-pglab").write_text("pw\n")
    (secrets / "influxdb-token").write_text("tok\n")
    endpoints = tmp_path / "endpoints.json"

    endpoints.write_text(json.dumps({"postgresql": {}}))
    assert client_from_endpoints(str(endpoints)) is None

    endpoints.write_text(
        json.dumps(
            {
                "influxdb": {
                    "url": "http://127.0.0.1:8086/",
                    "api": 1,
                    "database": "pglab",
                    "username": "pglab",
                    "password_file": "secrets/influxdb-pglab",
                }
            }
        )
    )
    client = client_from_endpoints(str(endpoints))
    assert (client.url, client.api, client.database) == ("http://127.0.0.1:8086", 1, "pglab")
    assert client._headers["Authorization"].startswith("Basic ")

    endpoints.write_text(
        json.dumps(
            {
                "influxdb": {
                    "url": "http://127.0.0.1:8086",
                    "api": 2,
                    "org": "inventium",
                    "bucket": "pglab",
                    "token_file": str(secrets / "influxdb-token"),
                }
            }
        )
    )
    client = client_from_endpoints(str(endpoints))
    assert (client.api, client.database, client._headers["Authorization"]) == (2, "pglab", "Token tok")

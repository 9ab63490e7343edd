"""The lab's data path: row filters and live replication (Molecule scenario ``lab``, verify).

subscriber1 subscribes to ``leadership_pub`` (``topic = 'leadership'``), subscriber2 to
``technical_pub`` (``topic = 'technical'``); both over TLS (``sslmode=verify-full``, lab CA).
Talks to the real servers with the passwords of ``.lab/secrets``; the test rows are removed again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lab_client import books, connect, wait_for

# The lab runs on this machine: the tests look at the local host.
testinfra_hosts = ["local://"]

LEADERSHIP = {(2, 22, "Great By Choice"), (5, 58, "Scaling Teams")}
TECHNICAL = {
    (1, 31, "Practical Object Oriented Design in Ruby"),
    (3, 73, "Building Evolutionary Architectures"),
    (4, 47, "Design Patterns in Ruby"),
}
TEST_IDS = (910001, 910002, 910003)
WITHOUT_TEST_ROWS = f"id <> ALL('{{{','.join(map(str, TEST_IDS))}}}')"


def _delete_test_rows() -> None:
    with connect("publisher") as conn:
        conn.execute("DELETE FROM public.books WHERE id = ANY(%s)", [list(TEST_IDS)])


@pytest.fixture
def clean_books() -> Iterator[None]:
    _delete_test_rows()
    yield
    _delete_test_rows()


def test_publisher_holds_the_demo_books() -> None:
    assert books("publisher", WITHOUT_TEST_ROWS) >= LEADERSHIP | TECHNICAL


def test_row_filters_split_the_books() -> None:
    assert books("subscriber1", WITHOUT_TEST_ROWS) == LEADERSHIP
    assert books("subscriber2", WITHOUT_TEST_ROWS) == TECHNICAL


def test_replication_runs_over_tls() -> None:
    with connect("publisher") as conn:
        rows = conn.execute(
            "SELECT r.application_name, s.ssl FROM pg_stat_replication AS r JOIN pg_stat_ssl AS s USING (pid)"
            " WHERE r.application_name IN ('subscriber1_sub', 'subscriber2_sub')"
        ).fetchall()
    assert dict(rows) == {"subscriber1_sub": True, "subscriber2_sub": True}


@pytest.mark.usefixtures("clean_books")
def test_changes_reach_the_right_subscriber_only() -> None:
    lead_id, tech_id, moved_id = TEST_IDS
    with connect("publisher") as conn:
        conn.execute(
            "INSERT INTO public.books (id, sku, title, topic) VALUES (%s, 1, 'Lead test', 'leadership'),"
            " (%s, 2, 'Tech test', 'technical')",
            [lead_id, tech_id],
        )
    took = wait_for(lambda: books("subscriber1", f"id = {lead_id}") and books("subscriber2", f"id = {tech_id}"))
    print(f"\nINSERT replicated in {took:.2f} s")
    assert not books("subscriber1", f"id = {tech_id}")
    assert not books("subscriber2", f"id = {lead_id}")

    with connect("publisher") as conn:
        conn.execute("UPDATE public.books SET title = 'Lead test, 2nd edition' WHERE id = %s", [lead_id])
        conn.execute("UPDATE public.books SET title = 'Tech test, 2nd edition' WHERE id = %s", [tech_id])
    took = wait_for(
        lambda: (
            books("subscriber1", f"id = {lead_id}") == {(lead_id, 1, "Lead test, 2nd edition")}
            and books("subscriber2", f"id = {tech_id}") == {(tech_id, 2, "Tech test, 2nd edition")}
        )
    )
    print(f"UPDATE replicated in {took:.2f} s")
    assert not books("subscriber1", f"id = {tech_id}")
    assert not books("subscriber2", f"id = {lead_id}")

    with connect("publisher") as conn:
        conn.execute("DELETE FROM public.books WHERE id = ANY(%s)", [[lead_id, tech_id]])
    took = wait_for(lambda: not books("subscriber1", f"id = {lead_id}") and not books("subscriber2", f"id = {tech_id}"))
    print(f"DELETE replicated in {took:.2f} s")

    # A row that changes topic moves between the filtered subscribers (PostgreSQL 15+ turns
    # the UPDATE into a DELETE on one side and an INSERT on the other).
    with connect("publisher") as conn:
        conn.execute(
            "INSERT INTO public.books (id, sku, title, topic) VALUES (%s, 3, 'Moving', 'leadership')", [moved_id]
        )
    wait_for(lambda: bool(books("subscriber1", f"id = {moved_id}")))
    assert not books("subscriber2", f"id = {moved_id}")
    with connect("publisher") as conn:
        conn.execute("UPDATE public.books SET topic = 'technical' WHERE id = %s", [moved_id])
    wait_for(lambda: not books("subscriber1", f"id = {moved_id}") and bool(books("subscriber2", f"id = {moved_id}")))
    with connect("publisher") as conn:
        conn.execute("DELETE FROM public.books WHERE id = %s", [moved_id])
    wait_for(lambda: not books("subscriber2", f"id = {moved_id}"))

    # Nothing else moved.
    assert books("subscriber1", WITHOUT_TEST_ROWS) == LEADERSHIP
    assert books("subscriber2", WITHOUT_TEST_ROWS) == TECHNICAL

# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The experiments' workload steps and the probe that samples while they run.

``STEPS`` is the table the spec validation uses: step kind -> ``{"doc", "params": {name: {"type",
"default", "doc"}}, "writes"}``. Every step also accepts :data:`COMMON_PARAMS` (``id``,
``background``). Types are ``int``, ``float`` (an int is accepted), ``str``, ``bool``, ``dict``;
a default of ``None`` means "optional, no value".

Tables (schema ``experiment``, created by the lab's publisher schema file and published by
``experiment_pub``; the same definitions on every node): ``marker``, ``heartbeat``, ``rows``,
``rows_full`` (REPLICA IDENTITY FULL, no primary key), ``books`` (the load generator's shape).
Tables a step creates itself (``initial_sync``, ``row_filter``) are created and dropped by it.
"""

from __future__ import annotations

COMMON_PARAMS = {
    "id": {"type": "str", "default": None, "doc": "Name for variant overrides (variants[].workload.<id>)."},
    "background": {
        "type": "bool",
        "default": False,
        "doc": "Run in a thread while the next steps run; joined by wait_caught_up and at the workload's end.",
    },
}

_TABLE_DOC = "Table in schema experiment the step writes (rows, rows_full or books)."

STEPS = {
    "large_transaction": {
        "doc": "INSERT rows into an experiment table in ONE transaction (plus the marker row).",
        "writes": True,
        "params": {
            "rows": {"type": "int", "default": 500000, "doc": "Rows inserted by the transaction."},
            "payload_bytes": {"type": "int", "default": 100, "doc": "Length of each row's text payload."},
            "table": {"type": "str", "default": "rows", "doc": _TABLE_DOC},
        },
    },
    "burst": {
        "doc": "INSERT rows as fast as possible in transactions of `batch` rows (the last one with the marker row).",
        "writes": True,
        "params": {
            "rows": {"type": "int", "default": 100000, "doc": "Rows inserted in total."},
            "batch": {"type": "int", "default": 1000, "doc": "Rows per transaction."},
            "payload_bytes": {"type": "int", "default": 100, "doc": "Length of each row's text payload."},
            "table": {"type": "str", "default": "rows", "doc": _TABLE_DOC},
        },
    },
    "pgbench": {
        "doc": "pgbench on the publisher's pgbench tables (bench_pub), optionally at a fixed rate (-R).",
        "writes": True,
        "params": {
            "duration": {"type": "int", "default": 30, "doc": "Seconds (-T)."},
            "rate": {"type": "float", "default": None, "doc": "Transactions per second (-R); none: full speed."},
            "clients": {"type": "int", "default": 2, "doc": "Client connections (-c)."},
            "jobs": {"type": "int", "default": 1, "doc": "Threads (-j)."},
            "builtin": {"type": "str", "default": "tpcb-like", "doc": "Built-in script (tpcb-like, simple-update)."},
            "init_scale": {
                "type": "int",
                "default": 0,
                "doc": "When > 0: pgbench -i -I gv at this scale before the run (not measured); 0: tables as they are.",
            },
        },
    },
    "hum": {
        "doc": "Steady INSERT/UPDATE/DELETE load (the load generator's hum) on experiment.books.",
        "writes": True,
        "params": {
            "rate": {"type": "float", "default": 200.0, "doc": "Operations (transactions) per second."},
            "duration": {"type": "float", "default": 30.0, "doc": "Seconds."},
            "mix": {"type": "dict", "default": None, "doc": "Weights {insert, update, delete}; default 50/35/15."},
        },
    },
    "pause": {
        "doc": "Disable each node's subscription for `seconds`, then enable it again (run a background writer "
        "before it); measures retained WAL at resume, catch-up and its rate.",
        "writes": False,
        "params": {
            "seconds": {"type": "float", "default": 10.0, "doc": "Seconds the subscription stays disabled."},
        },
    },
    "backlog": {
        "doc": "Disable each node's subscription, INSERT `rows` rows, enable it and time the drain "
        "(apply_rows_per_second).",
        "writes": True,
        "params": {
            "rows": {"type": "int", "default": 100000, "doc": "Rows written while the subscriptions are disabled."},
            "batch": {"type": "int", "default": 1, "doc": "Rows per transaction (1: one commit per row)."},
            "payload_bytes": {"type": "int", "default": 100, "doc": "Length of each row's text payload."},
            "table": {"type": "str", "default": "rows", "doc": _TABLE_DOC},
            "timeout": {"type": "float", "default": 600.0, "doc": "Seconds to wait for the drain."},
        },
    },
    "initial_sync": {
        "doc": "Create `tables` tables totalling `rows` rows on the publisher, a publication and on each node the "
        "step's own subscription (options copied from the node's lab subscription: binary, streaming; plus "
        "`options`), time until all tables are ready; with baseline copy also COPY | COPY; drop all afterwards.",
        "writes": False,
        "params": {
            "tables": {"type": "int", "default": 4, "doc": "Number of tables."},
            "rows": {"type": "int", "default": 1000000, "doc": "Rows in all tables together."},
            "payload_bytes": {"type": "int", "default": 100, "doc": "Length of each row's text payload."},
            "options": {
                "type": "dict",
                "default": None,
                "doc": "Extra CREATE SUBSCRIPTION options (binary, streaming, ...) overriding the copied ones.",
            },
            "timeout": {"type": "float", "default": 900.0, "doc": "Seconds to wait for all tables ready."},
        },
    },
    "update_delete": {
        "doc": "Fill a table with `rows` rows (not measured, waited until replicated), then UPDATE every row and "
        "DELETE every row in transactions of `batch` rows; measures apply_rows_per_second on each node.",
        "writes": True,
        "params": {
            "rows": {"type": "int", "default": 20000, "doc": "Rows filled, then updated, then deleted."},
            "batch": {"type": "int", "default": 1000, "doc": "Rows per UPDATE/DELETE transaction."},
            "table": {"type": "str", "default": "rows_full", "doc": _TABLE_DOC},
            "timeout": {"type": "float", "default": 900.0, "doc": "Seconds to wait for the nodes to apply."},
        },
    },
    "slot_limit": {
        "doc": "Disable each node's subscription and INSERT in batches (CHECKPOINT after each) until the node's "
        "slot is lost (max_slot_wal_keep_size comes from the variant's publisher_settings); records the wal_status "
        "transitions as events and the subscriber's error after re-enabling. Recovery (re-creating the "
        "subscription) is the runner's job: the result's `recovery` lists the nodes that need it.",
        "writes": True,
        "params": {
            "batch": {"type": "int", "default": 20000, "doc": "Rows per transaction of the burst."},
            "payload_bytes": {"type": "int", "default": 500, "doc": "Length of each row's text payload."},
            "max_rows": {"type": "int", "default": 2000000, "doc": "Stop (slot survived) after this many rows."},
            "table": {"type": "str", "default": "rows", "doc": _TABLE_DOC},
            "error_wait": {
                "type": "float",
                "default": 15.0,
                "doc": "Seconds to wait for the subscriber's error after re-enabling.",
            },
        },
    },
    "row_filter": {
        "doc": "Create experiment.rf_load, `publications` publications of it (row-filtered by k % publications, "
        "or one unfiltered) and on each node one subscription to them (copy_data false); INSERT `rows` rows in "
        "transactions of `batch`; wait until applied; drop it all.",
        "writes": True,
        "params": {
            "publications": {
                "type": "int",
                "default": 1,
                "doc": "Publications of the table (0: none, the table is written but not published).",
            },
            "filtered": {"type": "bool", "default": True, "doc": "Row filter on each publication (false: none)."},
            "rows": {"type": "int", "default": 200000, "doc": "Rows inserted."},
            "batch": {"type": "int", "default": 100, "doc": "Rows per transaction."},
            "payload_bytes": {"type": "int", "default": 100, "doc": "Length of each row's text payload."},
            "timeout": {"type": "float", "default": 600.0, "doc": "Seconds to wait for the nodes to apply."},
        },
    },
    "wait_caught_up": {
        "doc": "Join the background steps, then wait until every node has replayed the publisher's WAL up to now "
        "(records catchup_seconds from the last write's end).",
        "writes": False,
        "params": {
            "timeout": {"type": "float", "default": 600.0, "doc": "Seconds before the run fails."},
        },
    },
    "sleep": {
        "doc": "Sleep (e.g. to watch lag decay on the plots).",
        "writes": False,
        "params": {
            "seconds": {"type": "float", "default": 5.0, "doc": "Seconds."},
        },
    },
}
"""Step kind -> documentation, whether it writes, and its parameters (type, default, one-line doc)."""

STEP_KINDS = tuple(STEPS)
TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "dict": (dict,)}

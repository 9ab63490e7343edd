#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: replication_info
short_description: Read logical replication facts and health checks of a PostgreSQL server
version_added: 0.1.0
description:
  - Reads the logical replication state of one server, publisher or subscriber or both, and never
    changes anything (C(changed) is always V(false); check mode runs the same reads).
  - RV(server) - version, recovery, C(wal_level) running and pending a restart, replication limits
    and how much of them is used, C(max_slot_wal_keep_size) and the current WAL position.
  - RV(publications) - the publications of the database O(login_db) with their tables, column
    lists, row filters, schemas and options.
  - RV(slots) - every replication slot of the server with the WAL it retains and, on newer
    servers, invalidation and failover details.
  - RV(senders) - the WAL senders (C(pg_stat_replication)) with their lag in bytes and in seconds.
  - RV(subscriptions) - the subscriptions of the database O(login_db) with their workers, last
    messages, error and conflict counters and the synchronization state of every table;
    RV(subscription_counts) also counts those of the whole server.
  - RV(errors) - what the subscriptions' apply and table synchronization workers failed on, read from the
    server log where this login can read it (relation, key, PostgreSQL's error text, SQLSTATE, the remote
    transaction's finish LSN and the fix), and how many errors each logged in the last O(error_window) minutes.
  - RV(checks) - findings about the above, each with a severity, a code, a message and a hint.
  - With O(publisher), a subscriber is also compared with its publisher - RV(sequences) (how far each sequence of the
    subscribed tables lags the publisher's), RV(schema_drift) (published columns and tables the subscriber lacks or
    types differently) and, for a paused subscription, its slot's retained WAL and the time left to
    C(max_slot_wal_keep_size) at the publisher's current WAL rate.
  - Byte lag (V(*_lag_bytes), V(retained_wal_bytes)) is a distance in the WAL; it jumps with
    autovacuum or full-page images while no row is missing. Time lag (V(*_lag_seconds),
    V(seconds_since_*)) is measured by PostgreSQL from replies and messages. Both are returned.
  - The queries are those of the collection's metrics sampler (C(plugins/module_utils/health.py)).
author:
  - Inventium logical replication team (@inventium)
options:
  gather:
    description:
      - The subsets of facts to read and return. Subsets that are not listed are not returned.
      - V(checks) reads what it needs (server, slots, publications, subscriptions, errors) also when those
        subsets are not listed, but returns only the findings.
      - V(errors) reads the end of the server log (see O(log_max_bytes)) - only when the database has
        subscriptions.
      - V(sequences) and V(schema_drift) are returned only with O(publisher).
      - V(upgrade) (not in the default) - would C(pg_upgrade) keep this node's logical replication (PostgreSQL 17+) -
        PostgreSQL's checklist for publishers (every logical slot valid and caught up, C(wal_level), how many
        slots the new cluster needs) and subscribers (every table in state C(i) or C(r), a replication origin per
        subscription, how many origins the new cluster needs); its findings (C(upgrade_*)) join RV(checks). Below
        17 RV(upgrade.applies) is V(false) with the reason.
    type: list
    elements: str
    choices: [server, publications, slots, senders, subscriptions, errors, checks, sequences, schema_drift, upgrade]
    default: [server, publications, slots, senders, subscriptions, errors, checks, sequences, schema_drift]
  error_window:
    description:
      - Minutes. Errors of a subscription's workers logged within this time make the checks report it
        (V(subscription_errors), with the errors' count in the window and PostgreSQL's lifetime count); older
        errors do not, so a resolved problem stops being reported without resetting the statistics.
      - Fractions are allowed (V(0.5) is 30 seconds).
      - Only where the server log can be read (see RV(errors.available)); otherwise the checks report
        PostgreSQL's lifetime counters and say so.
    type: float
    default: 15
  log_max_bytes:
    description:
      - How much of the end of the server's current log file is read for RV(errors), as a number of bytes or
        a size with a unit (V(kB), V(MB), 1024-based), for example V(4MB).
      - Errors written before that part, or before the log file was last rotated, are not seen
        (RV(errors.window_complete) says whether the read part covers the whole window).
    type: str
    default: 1MB
  fail_on_connection_error:
    description:
      - What to do when the server cannot be read because connecting fails (server down, port closed,
        host unreachable, connection timeout, authentication refused ...) or because the server closes
        the connection while the facts are read (for example a restart).
      - V(true) fails the task with the connection error.
      - V(false) succeeds with RV(reachable=false), the connection error in RV(error) and one finding
        C(node_unreachable) (severity V(error)) in RV(checks); no other facts are returned. A status
        report over several servers (C(playbooks/status.yml)) keeps going this way and shows the others.
      - Errors that are not about the connection (for example an unsupported server version or a
        refused query) fail the task either way.
    type: bool
    default: true
  publisher:
    description:
      - The publisher of this subscriber's subscriptions, as the host the module runs on reaches it, with the keys of
        the M(inventium.logical_replication.subscription) module's
        O(inventium.logical_replication.subscription#module:publisher) option (libpq keywords; the password is never
        shown). The role needs to read the published tables' sequences
        (C(SELECT)) and the catalogs; the subscription's replication role does, in the lab.
      - When given, the checks compare the subscriber with it (V(sequence_gap), V(sequence_missing),
        V(schema_drift), a paused subscription's slot, V(failover_slot_not_failover), V(replication_loop)) and
        RV(sequences) and RV(schema_drift) are returned. A publisher
        that cannot be reached or read gives the finding V(publisher_comparison_unknown) (a warning), not a failure.
      - Only the tables of the publications of this database's subscriptions are compared.
    type: dict
  retained_wal_threshold:
    description:
      - The checks report an inactive replication slot that retains more WAL than this.
      - A number of bytes or a size with a unit - V(B), V(kB), V(MB), V(GB), V(TB) (1024-based),
        for example V(512MB).
    type: str
    default: 1GB
extends_documentation_fragment:
  - inventium.logical_replication.connection
  - inventium.logical_replication.publisher
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Supports PostgreSQL 13 and later. Values a server version lacks are not returned (see the
    C(returned) notes), for example the subscription error counters before PostgreSQL 15.
  - Any role can run it; some values need more privileges - the connection strings of
    subscriptions need a superuser (RV(subscriptions[].conninfo) is V(null) otherwise), a pending
    C(wal_level) needs read access to C(pg_file_settings) (superuser, or C(EXECUTE) on
    C(pg_show_all_file_settings())), and other users' WAL senders show their positions only to
    members of C(pg_read_all_stats).
  - Passwords in subscription connection strings are always replaced by C(********).
  - "The server log can be read through SQL when C(logging_collector = on) and the login is a superuser
    or has C(EXECUTE) on C(pg_current_logfile(text)), C(pg_stat_file(text, boolean)) and
    C(pg_read_binary_file(text, bigint, bigint, boolean)) in the database it connects to (and, for a
    C(log_directory) outside the data directory, membership in C(pg_read_server_files)). The
    C(jsonlog) file is preferred (PostgreSQL 15+), then C(csvlog), then C(stderr) (any
    C(log_line_prefix); the default C(%m [%p] ) gives time and process). A server that logs to its
    standard error only (C(logging_collector = off), for example in a container) gives
    RV(errors.available) V(false) with the reason, and the checks fall back to the lifetime counters."
seealso:
  - module: inventium.logical_replication.replication_slot
  - module: inventium.logical_replication.publication
  - module: inventium.logical_replication.server_settings
  - name: Monitoring logical replication
    description: PostgreSQL documentation on monitoring logical replication.
    link: https://www.postgresql.org/docs/current/logical-replication-monitoring.html
"""

EXAMPLES = r"""
- name: Read everything from the publisher
  inventium.logical_replication.replication_info:
    login_host: 127.0.0.1
    login_password: "{{ postgres_password }}"
    login_db: publisher
  register: publisher_info

- name: Fail when a check finds an error
  ansible.builtin.assert:
    that: publisher_info.checks | selectattr('severity', 'equalto', 'error') | list | length == 0
    fail_msg: "{{ publisher_info.checks | selectattr('severity', 'equalto', 'error') | map(attribute='message') }}"

- name: Only the subscriptions of a subscriber and its checks
  inventium.logical_replication.replication_info:
    login_db: subscriber
    gather: [subscriptions, checks]
  register: subscriber_info

- name: Wait until every table of every subscription is ready
  inventium.logical_replication.replication_info:
    login_db: subscriber
    gather: [subscriptions]
  register: sync
  until: sync.subscriptions | map(attribute='tables_not_ready') | sum == 0
  retries: 60
  delay: 2

- name: Report slots that retain more than 256 MB while inactive
  inventium.logical_replication.replication_info:
    login_db: publisher
    gather: [checks]
    retained_wal_threshold: 256MB
  register: slot_checks

- name: What the subscriptions' workers failed on in the last 5 minutes, and the fix
  inventium.logical_replication.replication_info:
    login_db: subscriber
    gather: [errors]
    error_window: 5
  register: errors

- name: Skip the remote transaction a duplicate key blocks (after deciding that its changes may be lost)
  inventium.logical_replication.subscription:
    login_db: subscriber
    name: "{{ item.name }}"
    skip_lsn: "{{ item.diagnoses[0].finish_lsn }}"
  loop: "{{ errors.errors.subscriptions | selectattr('apply_errors') | list }}"
  when: item.diagnoses[0].kind == 'unique_violation' and item.diagnoses[0].finish_lsn

- name: Read a subscriber that may be down without failing the play
  inventium.logical_replication.replication_info:
    login_port: 5434
    login_db: subscriber
    gather: [subscriptions, checks]
    fail_on_connection_error: false
  register: maybe_down

- name: Say so when it is down
  ansible.builtin.debug:
    msg: "UNREACHABLE: {{ maybe_down.error }}"
  when: not maybe_down.reachable

- name: Show the replay lag of every WAL sender
  ansible.builtin.debug:
    msg: "{{ item.application_name }}: {{ item.replay_lag_bytes }} bytes, {{ item.replay_lag_seconds }} s"
  loop: "{{ publisher_info.senders }}"
"""

RETURN = r"""
queries:
  description: Statements that changed something - always empty, the module only reads.
  returned: always
  type: list
  elements: str
  sample: []
database:
  description:
    - The database the module connected to (publications and subscriptions are those of this database).
    - When RV(reachable) is V(false), the database it tried to connect to (O(login_db), V(null) when not given).
  returned: always
  type: str
  sample: publisher
reachable:
  description:
    - Whether the server could be read. V(false) only with O(fail_on_connection_error=false), when connecting
      failed or the server closed the connection while the facts were read; then the module returns only
      C(changed), RV(queries), RV(database), RV(reachable), RV(error) and RV(checks) (none of the other facts).
  returned: always
  type: bool
  sample: true
error:
  description:
    - Why the server could not be read - the connection error as libpq or PostgreSQL reported it, naming host,
      port, user and database; passwords are never included.
  returned: when RV(reachable) is V(false)
  type: str
  sample: >-
    Unable to connect to PostgreSQL at host 127.0.0.1 port 5434 as user postgres database subscriber:
    connection failed: connection to server at "127.0.0.1", port 5434 failed: Connection refused
server:
  description: Facts about the server.
  returned: when O(gather) contains V(server)
  type: dict
  contains:
    version:
      description: PostgreSQL version.
      type: str
      sample: "17.10"
    version_num:
      description: C(server_version_num).
      type: int
      sample: 170010
    major:
      description: Major version.
      type: int
      sample: 17
    in_recovery:
      description: Whether the server is a standby (in recovery).
      type: bool
      sample: false
    database:
      description: The database connected to.
      type: str
      sample: publisher
    current_lsn:
      description: The current WAL insert position (C(pg_current_wal_lsn())), on a standby the last replayed one.
      type: str
      sample: 0/1A2B3C8
    current_lsn_bytes:
      description: RV(server.current_lsn) as a number of bytes since the start of the WAL.
      type: int
      sample: 27441096
    receive_lsn:
      description:
        - On a standby, the last WAL position its WAL receiver wrote and flushed (C(pg_last_wal_receive_lsn())),
          which is what a promotion replays up to. V(null) on a primary, and on a standby whose WAL receiver has not
          run since it started.
      type: str
      sample: 0/1A2B3C8
    receive_lsn_bytes:
      description: RV(server.receive_lsn) as a number of bytes since the start of the WAL.
      type: int
      sample: 27441096
    seconds_since_last_replayed_commit:
      description:
        - On a standby, seconds since the commit time of the last transaction it replayed
          (C(pg_last_xact_replay_timestamp())). V(null) on a primary or before a standby replayed any commit.
      type: float
      sample: 0.8
    wal_level:
      description: The running C(wal_level).
      type: str
      sample: logical
    wal_level_pending:
      description:
        - The C(wal_level) the next restart brings when the configuration files (C(postgresql.conf),
          C(postgresql.auto.conf)) set another value than the running one; V(null) when nothing is
          pending or it cannot be told (see RV(server.wal_level_pending_known)).
      type: str
      sample: null
    wal_level_pending_restart:
      description: Whether a changed C(wal_level) waits for a restart.
      type: bool
      sample: false
    wal_level_pending_known:
      description:
        - Whether the configuration files could be read (C(pg_file_settings)). When not,
          RV(server.wal_level_pending_restart) is PostgreSQL's C(pending_restart) flag, which is only
          updated by a reload.
      type: bool
      sample: true
    max_replication_slots:
      description: C(max_replication_slots).
      type: int
      sample: 10
    replication_slots_used:
      description: Replication slots that exist (temporary ones included).
      type: int
      sample: 2
    max_wal_senders:
      description: C(max_wal_senders).
      type: int
      sample: 10
    wal_senders_used:
      description: Running WAL sender processes.
      type: int
      sample: 2
    max_logical_replication_workers:
      description: C(max_logical_replication_workers).
      type: int
      sample: 4
    logical_replication_workers_used:
      description:
        - Running logical replication workers (apply, table synchronization and parallel apply; not the launcher).
      type: int
      sample: 1
    max_worker_processes:
      description: C(max_worker_processes).
      type: int
      sample: 8
    max_sync_workers_per_subscription:
      description: C(max_sync_workers_per_subscription).
      type: int
      sample: 2
    max_parallel_apply_workers_per_subscription:
      description: C(max_parallel_apply_workers_per_subscription).
      type: int
      returned: on PostgreSQL 16 and later
      sample: 2
    max_active_replication_origins:
      description: C(max_active_replication_origins) (before PostgreSQL 18 C(max_replication_slots) limits the origins).
      type: int
      returned: on PostgreSQL 18 and later
      sample: 10
    max_slot_wal_keep_size:
      description: C(max_slot_wal_keep_size) in bytes, V(null) when unlimited.
      type: int
      sample: null
publications:
  description: The publications of the database, sorted by name.
  returned: when O(gather) contains V(publications)
  type: list
  elements: dict
  contains:
    name:
      description: Name of the publication (exact, not quoted).
      type: str
      sample: leadership_pub
    owner:
      description: The owning role.
      type: str
      sample: postgres
    all_tables:
      description: Whether the publication is C(FOR ALL TABLES).
      type: bool
      sample: false
    tables:
      description: The tables listed in the publication (not those published through schemas or all tables), sorted.
      type: list
      elements: dict
      contains:
        name:
          description: Qualified name, quoted where needed.
          type: str
          sample: public.books
        schema:
          description: Schema name (exact).
          type: str
          sample: public
        table:
          description: Table name (exact).
          type: str
          sample: books
        columns:
          description: The column list (PostgreSQL 15+), V(null) when all columns are published.
          type: list
          elements: str
          sample: [id, sku, title, topic]
        where:
          description: The row filter as PostgreSQL deparses it (PostgreSQL 15+), V(null) when there is none.
          type: str
          sample: (topic = 'leadership'::text)
    schemas:
      description: The schemas published with C(TABLES IN SCHEMA) (PostgreSQL 15+), sorted.
      type: list
      elements: str
      sample: []
    publish:
      description: The published operations, in the order insert, update, delete, truncate.
      type: list
      elements: str
      sample: [insert, update, delete, truncate]
    publish_via_partition_root:
      description: Value of C(publish_via_partition_root).
      type: bool
      sample: false
    publish_generated_columns:
      description: Value of C(publish_generated_columns), V(none) or V(stored).
      type: str
      returned: on PostgreSQL 18 and later
      sample: none
    comment:
      description: The comment, V(null) when there is none.
      type: str
      sample: null
    published_table_count:
      description:
        - Number of tables the publication publishes (C(pg_publication_tables), schemas and all tables expanded).
      type: int
      sample: 1
slots:
  description:
    - Every replication slot of the server, sorted by name, with the values the
      M(inventium.logical_replication.replication_slot) module returns plus RV(slots[].confirmed_flush_lag_bytes).
  returned: when O(gather) contains V(slots)
  type: list
  elements: dict
  contains:
    name:
      description: Name of the slot.
      type: str
      sample: subscriber1
    slot_type:
      description: V(logical) or V(physical).
      type: str
      sample: logical
    plugin:
      description: Output plugin (V(null) for physical slots).
      type: str
      sample: pgoutput
    database:
      description: Database of a logical slot (V(null) for physical slots).
      type: str
      sample: publisher
    temporary:
      description: Whether the slot is temporary (for example a table synchronization slot).
      type: bool
      sample: false
    active:
      description: Whether a session is using the slot.
      type: bool
      sample: true
    active_pid:
      description: Process ID of the session using the slot, V(null) when inactive.
      type: int
      sample: 4242
    restart_lsn:
      description: Oldest WAL position the slot still needs.
      type: str
      sample: 0/1A2B3C8
    confirmed_flush_lsn:
      description: Position up to which the consumer of a logical slot confirmed receipt.
      type: str
      sample: 0/1A2B400
    wal_status:
      description: Availability of the WAL the slot needs (V(reserved), V(extended), V(unreserved), V(lost)).
      type: str
      sample: reserved
    safe_wal_size:
      description: Bytes of WAL that can still be written before the slot is in danger of losing WAL
        (V(null) unless C(max_slot_wal_keep_size) is set).
      type: int
      sample: null
    retained_wal_bytes:
      description: Bytes of WAL retained for the slot (current WAL position minus C(restart_lsn)).
      type: int
      sample: 16777216
    confirmed_flush_lag_bytes:
      description: Current WAL position minus C(confirmed_flush_lsn) (V(null) for physical slots).
      type: int
      sample: 0
    two_phase:
      description: Whether the slot decodes prepared transactions.
      type: bool
      returned: on PostgreSQL 14 and later
      sample: false
    two_phase_at:
      description: Position from which prepared transactions are decoded at PREPARE time.
      type: str
      returned: on PostgreSQL 18 and later
      sample: null
    conflicting:
      description: Whether a logical slot was invalidated by a recovery conflict (V(null) for physical slots).
      type: bool
      returned: on PostgreSQL 16 and later
      sample: false
    inactive_since:
      description: Since when the slot is inactive (ISO 8601), V(null) while active.
      type: str
      returned: on PostgreSQL 17 and later
      sample: "2025-11-21T23:30:00.123456+00:00"
    invalidation_reason:
      description: Why the slot was invalidated, V(null) when it is valid.
      type: str
      returned: on PostgreSQL 17 and later
      sample: null
    failover:
      description: Whether the slot is synchronized to standbys.
      type: bool
      returned: on PostgreSQL 17 and later
      sample: false
    synced:
      description: Whether the slot was synchronized from the primary (on a standby).
      type: bool
      returned: on PostgreSQL 17 and later
      sample: false
senders:
  description:
    - The WAL senders (C(pg_stat_replication)), logical and physical, table synchronization included.
    - Byte lags are measured against the current WAL position of the server (RV(server.current_lsn)).
  returned: when O(gather) contains V(senders)
  type: list
  elements: dict
  contains:
    pid:
      description: Process ID of the WAL sender.
      type: int
      sample: 4242
    user:
      description: The role the client connected as.
      type: str
      sample: replicator
    application_name:
      description: The client's C(application_name) (a subscription's name for its apply worker).
      type: str
      sample: subscriber1
    client_addr:
      description: IP address of the client, V(null) for a Unix socket.
      type: str
      sample: 127.0.0.1
    client_hostname:
      description: Host name of the client when C(log_hostname) is on.
      type: str
      sample: null
    client_port:
      description: TCP port of the client (V(-1) for a Unix socket).
      type: int
      sample: 51234
    backend_start:
      description: When the WAL sender started (ISO 8601).
      type: str
      sample: "2025-11-21T23:30:00.123456+00:00"
    state:
      description: State of the WAL sender (V(startup), V(catchup), V(streaming), V(backup), V(stopping)).
      type: str
      sample: streaming
    sync_state:
      description: Synchronous state (V(async), V(potential), V(sync), V(quorum)).
      type: str
      sample: async
    sync_priority:
      description: Priority for synchronous replication.
      type: int
      sample: 0
    slot_name:
      description: The replication slot the sender uses, V(null) without one.
      type: str
      sample: subscriber1
    slot_type:
      description: Type of that slot.
      type: str
      sample: logical
    sent_lsn:
      description: Last WAL position sent.
      type: str
      sample: 0/1A2B400
    write_lsn:
      description: Last position the client reported written.
      type: str
      sample: 0/1A2B400
    flush_lsn:
      description: Last position the client reported flushed.
      type: str
      sample: 0/1A2B400
    replay_lsn:
      description: Last position the client reported applied.
      type: str
      sample: 0/1A2B400
    sent_lag_bytes:
      description: Current WAL position minus RV(senders[].sent_lsn).
      type: int
      sample: 0
    write_lag_bytes:
      description: Current WAL position minus RV(senders[].write_lsn).
      type: int
      sample: 0
    flush_lag_bytes:
      description: Current WAL position minus RV(senders[].flush_lsn).
      type: int
      sample: 0
    replay_lag_bytes:
      description: Current WAL position minus RV(senders[].replay_lsn).
      type: int
      sample: 0
    write_lag_seconds:
      description: PostgreSQL's C(write_lag) in seconds; V(null) when the client has caught up and is idle.
      type: float
      sample: 0.0012
    flush_lag_seconds:
      description: PostgreSQL's C(flush_lag) in seconds; V(null) when the client has caught up and is idle.
      type: float
      sample: 0.0015
    replay_lag_seconds:
      description: PostgreSQL's C(replay_lag) in seconds; V(null) when the client has caught up and is idle.
      type: float
      sample: 0.0016
    reply_time:
      description: When the last reply from the client was sent (ISO 8601).
      type: str
      sample: "2025-11-21T23:30:10.123456+00:00"
    seconds_since_reply:
      description: Seconds since RV(senders[].reply_time) (a heartbeat age).
      type: float
      sample: 0.8
subscriptions:
  description: The subscriptions of the database, sorted by name.
  returned: when O(gather) contains V(subscriptions)
  type: list
  elements: dict
  contains:
    name:
      description: Name of the subscription (exact).
      type: str
      sample: subscriber1
    owner:
      description: The owning role.
      type: str
      sample: postgres
    enabled:
      description: Whether the subscription is enabled.
      type: bool
      sample: true
    publications:
      description: The publications subscribed to.
      type: list
      elements: str
      sample: [leadership_pub]
    conninfo:
      description:
        - Connection string to the publisher with the password replaced by C(********); V(null) when the
          login role may not read it (superusers only).
      type: str
      sample: host=127.0.0.1 port=5432 dbname=publisher user=replicator password=********
    origin_lsn:
      description:
        - The publisher's WAL position of the last transaction the subscription applied (its replication origin's
          C(remote_lsn)); kept across restarts and while the publisher is down. V(null) when the login role may not
          read C(pg_replication_origin_status) (superusers only by default) or nothing was applied yet.
      type: str
      sample: 0/1A2B3C8
    comment:
      description:
        - The subscription's comment (C(COMMENT ON SUBSCRIPTION)), V(null) when none. A paused subscription's holds
          its pause record as JSON (M(inventium.logical_replication.subscription_pause)).
      type: str
      sample: null
    slot_name:
      description: Name of the slot on the publisher, V(null) when none is associated.
      type: str
      sample: subscriber1
    synchronous_commit:
      description: The subscription's C(synchronous_commit).
      type: str
      sample: "off"
    binary:
      description: Whether data is transferred in binary format.
      type: bool
      returned: on PostgreSQL 14 and later
      sample: false
    streaming:
      description: Streaming of in-progress transactions - V(off), V(on) or V(parallel).
      type: str
      returned: on PostgreSQL 14 and later
      sample: "off"
    two_phase:
      description: Two-phase commit state - V(disabled), V(pending) or V(enabled).
      type: str
      returned: on PostgreSQL 15 and later
      sample: disabled
    disable_on_error:
      description: Whether the subscription is disabled when applying fails.
      type: bool
      returned: on PostgreSQL 15 and later
      sample: false
    origin:
      description: Which changes are requested - V(any) or V(none) (only those without a replication origin).
      type: str
      returned: on PostgreSQL 16 and later
      sample: any
    password_required:
      description: Whether the connection must use a password.
      type: bool
      returned: on PostgreSQL 16 and later
      sample: true
    run_as_owner:
      description: Whether changes are applied as the subscription owner.
      type: bool
      returned: on PostgreSQL 16 and later
      sample: false
    failover:
      description: Whether the slot is enabled for failover to standbys.
      type: bool
      returned: on PostgreSQL 17 and later
      sample: false
    workers:
      description: The running workers of the subscription.
      type: list
      elements: dict
      contains:
        pid:
          description: Process ID.
          type: int
          sample: 4243
        type:
          description:
            - V(apply), V(table synchronization) or V(parallel apply) (reported by PostgreSQL 17 and later,
              derived from the table and leader before).
          type: str
          sample: apply
        table:
          description: The table a table synchronization worker copies, else V(null).
          type: str
          sample: null
        leader_pid:
          description: The leader apply worker of a parallel apply worker, else V(null).
          type: int
          sample: null
    apply_worker_pid:
      description: Process ID of the apply worker, V(null) when it is not running.
      type: int
      sample: 4243
    received_lsn:
      description: Last WAL position received by the apply worker.
      type: str
      sample: 0/1A2B400
    latest_end_lsn:
      description: Last WAL position reported to the publisher.
      type: str
      sample: 0/1A2B400
    last_msg_send_time:
      description: Send time of the last message from the publisher (ISO 8601).
      type: str
      sample: "2025-11-21T23:30:10.123456+00:00"
    last_msg_receipt_time:
      description: Receipt time of the last message from the publisher (ISO 8601).
      type: str
      sample: "2025-11-21T23:30:10.124456+00:00"
    latest_end_time:
      description: Time of the last WAL position reported to the publisher (ISO 8601).
      type: str
      sample: "2025-11-21T23:30:10.123456+00:00"
    seconds_since_last_msg_send:
      description: Seconds since RV(subscriptions[].last_msg_send_time).
      type: float
      sample: 1.2
    seconds_since_last_msg_receipt:
      description: Seconds since RV(subscriptions[].last_msg_receipt_time) (a heartbeat age).
      type: float
      sample: 1.2
    seconds_since_latest_end:
      description: Seconds since RV(subscriptions[].latest_end_time).
      type: float
      sample: 1.2
    apply_error_count:
      description: Errors while applying changes since the statistics were reset (V(null) before PostgreSQL 15).
      type: int
      sample: 0
    sync_error_count:
      description: Errors during the initial table synchronization since the statistics were reset (V(null) before
        PostgreSQL 15).
      type: int
      sample: 0
    stats_reset:
      description: When the error counters were last reset (ISO 8601), V(null) when never.
      type: str
      sample: null
    conflicts:
      description: Conflict counters of C(pg_stat_subscription_stats) (C(confl_*) columns), by conflict type.
      type: dict
      returned: on PostgreSQL 18 and later
      sample:
        insert_exists: 0
        update_origin_differs: 0
        update_exists: 0
        update_missing: 0
        delete_origin_differs: 0
        delete_missing: 0
        multiple_unique_conflicts: 0
    tables:
      description: The subscribed tables and their synchronization state, sorted.
      type: list
      elements: dict
      contains:
        name:
          description: Qualified name on the subscriber, quoted where needed.
          type: str
          sample: public.books
        schema:
          description: Schema name.
          type: str
          sample: public
        table:
          description: Table name.
          type: str
          sample: books
        state:
          description:
            - The synchronization state, named as M(inventium.logical_replication.subscription) names it -
              V(init), V(data_copy), V(finished_copy), V(sync_done) or V(ready).
          type: str
          sample: ready
        state_code:
          description: PostgreSQL's code of the state (C(srsubstate) - C(i), C(d), C(f), C(s), C(r)).
          type: str
          sample: r
        lsn:
          description: WAL position at the end of the synchronization (C(srsublsn); V(null) before).
          type: str
          sample: 0/1A2B3C8
    table_states:
      description: Number of tables per state.
      type: dict
      sample:
        ready: 1
    tables_not_ready:
      description: Number of tables not in state V(ready).
      type: int
      sample: 0
subscription_counts:
  description: Numbers of subscriptions.
  returned: when O(gather) contains V(subscriptions)
  type: dict
  contains:
    database:
      description: Subscriptions in the database.
      type: int
      sample: 1
    cluster:
      description: Subscriptions of the whole server (all databases).
      type: int
      sample: 2
    cluster_enabled:
      description: Enabled subscriptions of the whole server.
      type: int
      sample: 2
errors:
  description:
    - The errors of the subscriptions' workers (apply, table synchronization, parallel apply) from the server log.
  returned: when O(gather) contains V(errors)
  type: dict
  contains:
    available:
      description: Whether the server log was read.
      type: bool
      sample: true
    reason:
      description: Why not, V(null) when it was read.
      type: str
      sample: null
    source:
      description:
        - Where the diagnoses come from - C(server log <path> (<format>, last <size> of <size>)) - or
          C(source unavailable - <why>) (logging_collector off, no privilege, file rotated away while reading).
      type: str
      sample: server log log/postgresql-2025-11-21_000000.json (jsonlog, last 1.0 MB of 3.2 MB)
    path:
      description: The log file read (as C(pg_current_logfile()) names it, relative to the data directory).
      type: str
      sample: log/postgresql-2025-11-21_000000.json
    format:
      description: V(jsonlog), V(csvlog) or V(stderr).
      type: str
      sample: jsonlog
    window_minutes:
      description: O(error_window).
      type: float
      sample: 15.0
    covers_since:
      description: Time of the oldest log line read (ISO 8601).
      type: str
      sample: "2025-11-21T23:01:02.123000+00:00"
    window_complete:
      description: Whether the part read covers the whole window (else the counts are lower bounds).
      type: bool
      sample: true
    subscriptions:
      description: One entry per subscription of the database, sorted by name.
      type: list
      elements: dict
      contains:
        name:
          description: The subscription.
          type: str
          sample: subscriber1
        apply_errors:
          description: Errors of its apply (and parallel apply) workers logged in the last O(error_window) minutes.
          type: int
          sample: 3
        sync_errors:
          description: Errors of its table synchronization workers logged in the last O(error_window) minutes.
          type: int
          sample: 0
        conflicts:
          description:
            - Conflicts PostgreSQL 18 logged in the last O(error_window) minutes, by type (C(insert_exists) ...),
              also those it resolved by itself (logged as C(LOG), not as an error).
          type: dict
          sample: {insert_exists: 2}
        last_error_time:
          description: When its last error was logged (also older than the window), V(null) when none was read.
          type: str
          sample: "2025-11-21T23:30:01.804000+00:00"
        disabled_by_error_time:
          description:
            - When C(disable_on_error) last disabled it according to the part of the log read, else V(null)
              (V(subscription_disabled) then names the error that disabled it).
          type: str
          sample: null
        diagnoses:
          description:
            - Its distinct errors in the part of the log read, newest first (at most 5); repeated errors (the worker
              retries) are one entry with a RV(errors.subscriptions[].diagnoses[].count).
          type: list
          elements: dict
          contains:
            time:
              description: When it was last logged (ISO 8601).
              type: str
            first_time:
              description: When it was first logged in the part read.
              type: str
            last_time:
              description: Same as RV(errors.subscriptions[].diagnoses[].time).
              type: str
            count:
              description: How often it was logged in the part read.
              type: int
            recent:
              description: Whether it was logged within the last O(error_window) minutes.
              type: bool
            subscription:
              description: The subscription.
              type: str
            worker:
              description: V(apply), V(table synchronization) or V(parallel apply) (V(null) when the log does not tell).
              type: str
              sample: apply
            pid:
              description: Process ID of the worker that logged it last.
              type: int
            kind:
              description:
                - V(unique_violation), V(missing_column), V(missing_relation), V(permission_denied) (on the
                  subscriber), V(publisher_permission_denied) (the publisher refused the initial copy's read),
                  V(connection), V(constraint_violation) or V(other).
              type: str
              sample: unique_violation
            relation:
              description: The table concerned, as PostgreSQL names it in the log.
              type: str
              sample: public.books
            key:
              description: The key PostgreSQL logs for a unique violation, as it writes it.
              type: str
              sample: (id)=(5900000)
            constraint:
              description: The unique constraint or index violated.
              type: str
              sample: books_pkey
            conflict:
              description: The conflict type PostgreSQL 18 logs (C(conflict=insert_exists)).
              type: str
              sample: null
            missing_columns:
              description: The columns the subscriber's table lacks (a V(missing_column) error).
              type: str
              sample: null
            severity:
              description: V(ERROR) (or V(FATAL)); V(LOG) for a conflict PostgreSQL 18 logged and resolved by itself.
              type: str
              sample: ERROR
            message:
              description: PostgreSQL's error message.
              type: str
              sample: duplicate key value violates unique constraint "books_pkey"
            detail:
              description: PostgreSQL's DETAIL (the rows PostgreSQL 18 adds to a conflict are left out).
              type: str
              sample: Key (id)=(5900000) already exists.
            sqlstate:
              description: The SQLSTATE (V(null) in a C(stderr) log whose C(log_line_prefix) lacks C(%e)).
              type: str
              sample: "23505"
            origin:
              description: The replication origin of the apply worker (C(pg_<subscription oid>)).
              type: str
              sample: pg_16392
            message_type:
              description: The logical replication message being applied (V(INSERT), V(UPDATE), ...).
              type: str
              sample: INSERT
            remote_xid:
              description: The remote transaction's ID.
              type: int
              sample: 729
            finish_lsn:
              description:
                - Where the remote transaction finishes - the LSN to skip it with
                  (O(inventium.logical_replication.subscription#module:skip_lsn)).
              type: str
              sample: 0/1925A60
            fix:
              description: What to do.
              type: str
              sample: >-
                Delete or fix the conflicting row on the subscriber (public.books, key (id)=(5900000)), or skip the
                remote transaction: ALTER SUBSCRIPTION subscriber1 SKIP (lsn = '0/1925A60') - ...
            source:
              description: RV(errors.source).
              type: str
    unattributed:
      description:
        - Recent diagnoses of logical replication workers whose subscription the part of the log read does not name
          (same fields as above).
      type: list
      elements: dict
sequences:
  description:
    - The sequences of the tables of the subscriptions' publications, compared with the publisher's (see
      M(inventium.logical_replication.sequences), which copies them). V(null) when the publisher could not be read
      (the finding V(publisher_comparison_unknown) says why).
  returned: when O(publisher) is given and O(gather) contains V(sequences)
  type: list
  elements: dict
  contains:
    name:
      description: Qualified name of the sequence.
      type: str
      sample: public.orders_id_seq
    publisher_value:
      description: Its last value on the publisher, V(null) when never used or unreadable.
      type: int
    subscriber_value:
      description: Its last value on the subscriber, V(null) when never used or missing.
      type: int
    gap:
      description: How many values the subscriber is behind (in the sequence's direction); V(null) when unknown.
      type: int
    state:
      description: V(ok), V(missing) (on the subscriber), V(missing_on_publisher), V(unreadable) or V(unused).
      type: str
schema_drift:
  description:
    - Differences between what the publisher publishes (column lists respected, generated columns left out unless
      published) and the subscriber's tables. Columns only the subscriber has are not drift. V(null) when the
      publisher could not be read.
  returned: when O(publisher) is given and O(gather) contains V(schema_drift)
  type: list
  elements: dict
  contains:
    table:
      description: Qualified table name.
      type: str
      sample: public.books
    kind:
      description: V(missing_table), V(missing_column) (the apply worker fails on it) or V(type_mismatch).
      type: str
    column:
      description: The column, V(null) for a missing table.
      type: str
    publisher_type:
      description: Its type on the publisher.
      type: str
    subscriber_type:
      description: Its type on the subscriber.
      type: str
upgrade:
  description:
    - Before a C(pg_upgrade) of this node (PostgreSQL 17+), the checklist of PostgreSQL's "Logical Replication -
      Upgrade" chapter. "Caught up" compares each slot's C(confirmed_flush_lsn) with the WAL position, an
      approximation (C(pg_upgrade) ignores records that carry no change); C(pg_upgrade --check) decides exactly.
  returned: when O(gather) contains V(upgrade)
  type: dict
  contains:
    applies:
      description: V(false) below PostgreSQL 17 (nothing of the logical replication state survives C(pg_upgrade)).
      type: bool
    reason:
      description: Why it does not apply, else V(null).
      type: str
    publisher:
      description:
        - C(wal_level), C(max_replication_slots), C(logical_slot_count), C(slots) (per slot C(name), C(plugin),
          C(active), C(invalid), C(confirmed_flush_lsn), C(unconsumed_bytes), C(caught_up)) and C(requirements)
          for the new cluster, as text.
      type: dict
    subscriber:
      description:
        - C(subscription_count), C(subscriptions) (with C(has_origin)), C(tables_not_ready) and C(requirements)
          for the new cluster, as text.
      type: dict
    findings:
      description: The C(upgrade_*) findings, also in RV(checks) when that is gathered.
      type: list
      elements: dict
checks:
  description:
    - Findings, errors first. An empty list means no problem was found.
    - When RV(reachable) is V(false), exactly one finding, C(node_unreachable) (severity V(error)), whose message
      contains RV(error) - also when O(gather) does not contain V(checks).
    - "A status over findings (C(playbooks/status.yml), the filter
      P(inventium.logical_replication.status_exit_code#filter)) - 0 healthy when no finding is worse than V(info),
      1 warnings when the worst is a V(warning), 2 critical when any is an V(error)."
    - "Codes - V(wal_level_not_logical), V(wal_level_pending) (a different C(wal_level) waits for a restart),
      V(max_replication_slots_too_low), V(max_wal_senders_too_low), V(max_active_replication_origins_too_low),
      V(max_logical_replication_workers_too_low), V(max_worker_processes_too_low), V(replica_identity_missing)
      (published tables without primary key or replica identity while C(update)/C(delete) are published),
      V(slot_inactive_retaining_wal) (over O(retained_wal_threshold)), V(slot_wal_unreserved), V(slot_wal_lost),
      V(slot_invalidated), V(subscription_disabled), V(subscription_not_running), V(subscription_errors),
      V(subscription_conflicts), V(tables_not_ready), V(sequences_not_replicated), V(node_unreachable) (the server
      could not be read, see O(fail_on_connection_error)), V(subscription_paused) (since when, by whom, why, until
      when; with O(publisher) the retained WAL and the time left to the limit), V(pause_overdue) (a pause past its
      planned end), V(paused_slot_lost) (with O(publisher) - the paused subscription's slot is gone or lost) and,
      with O(publisher), V(sequence_gap), V(sequence_missing), V(sequence_unreadable), V(schema_drift) and
      V(publisher_comparison_unknown)."
    - "Failover slots and two-way replication (PostgreSQL 16-18) - on a primary (17+),
      V(synchronized_standby_slots_broken) (an error - C(synchronized_standby_slots) lists a slot that does not
      exist, is logical or is invalidated, so the walsenders of failover slots wait), V(standby_slot_inactive) (a
      listed slot no standby is connected to, while failover slots exist) and
      V(standby_not_in_synchronized_standby_slots) (a physical slot in use by a standby but not listed, while failover
      slots exist); V(replication_loop_risk) (a subscription without C(origin = none) into tables this node also
      publishes); with O(publisher), V(failover_slot_not_failover) (a subscription with C(failover = true) whose slot
      on the publisher is not a failover slot) and V(replication_loop) (an error - the publisher subscribes back to
      this node and a direction lacks C(origin = none)). What only the standby knows (its C(sync_replication_slots),
      its slots' C(synced)) is not checked; run the module on the standby to read its slots."
    - V(subscription_errors) and V(subscription_conflicts) count the errors and conflicts logged in the last
      O(error_window) minutes where the server log can be read (older ones no longer count), else PostgreSQL's
      lifetime counters, and say so.
    - V(subscription_disabled) (when C(disable_on_error) disabled it), V(subscription_not_running),
      V(subscription_errors) and V(tables_not_ready) name the last error from the server log in the message, its fix
      in the hint, and add RV(checks[].diagnoses).
  returned: when O(gather) contains V(checks), and always when RV(reachable) is V(false)
  type: list
  elements: dict
  contains:
    severity:
      description: V(error), V(warning) or V(info).
      type: str
      sample: warning
    code:
      description: Stable identifier of the finding.
      type: str
      sample: subscription_disabled
    message:
      description: What was found, naming the objects concerned.
      type: str
      sample: "disabled subscription(s): subscriber1"
    hint:
      description: What to do about it.
      type: str
      sample: Enable with ALTER SUBSCRIPTION ... ENABLE (after fixing the error that disabled it).
    tables:
      description:
        - The tables concerned (C(schema.table), quoted where needed), as data - the message's listing is shortened
          when there are many.
      type: list
      elements: str
      returned: >-
        for V(replica_identity_missing), V(row_filter_outside_replica_identity) and
        V(column_list_lacks_replica_identity)
    diagnoses:
      description:
        - The last error of each subscription concerned, from the server log.
      type: list
      elements: dict
      returned: for subscription findings, when the server log names an error
      contains:
        subscription:
          description: The subscription.
          type: str
        worker:
          description: The worker type.
          type: str
        kind:
          description: As RV(errors.subscriptions[].diagnoses[].kind).
          type: str
        relation:
          description: The table concerned.
          type: str
        key:
          description: The conflicting key.
          type: str
        error:
          description: PostgreSQL's error message.
          type: str
        sqlstate:
          description: The SQLSTATE.
          type: str
        finish_lsn:
          description: The remote transaction's finish LSN (for skip_lsn).
          type: str
        time:
          description: When it was last logged.
          type: str
        count:
          description: How often it was logged in the part read.
          type: int
        fix:
          description: What to do.
          type: str
        source:
          description: Where it was read.
          type: str
    error_counts:
      description: Per subscription, the error counts behind V(subscription_errors).
      type: list
      elements: dict
      returned: for V(subscription_errors)
      contains:
        subscription:
          description: The subscription.
          type: str
        apply_errors:
          description: Apply errors logged in the window, V(null) when the log was not read.
          type: int
        sync_errors:
          description: Table synchronization errors logged in the window, V(null) when the log was not read.
          type: int
        apply_errors_lifetime:
          description: C(pg_stat_subscription_stats.apply_error_count).
          type: int
        sync_errors_lifetime:
          description: C(pg_stat_subscription_stats.sync_error_count).
          type: int
        window_minutes:
          description: O(error_window), V(null) when the counts are lifetime totals.
          type: float
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils._checks import (  # noqa: E402
    ThresholdError,
    node_unreachable,
    parse_bytes,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._server_log import (  # noqa: E402
    DEFAULT_ERROR_WINDOW,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (  # noqa: E402
    PgConnectionError,
    describe_target,
    psycopg,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.conninfo import (  # noqa: E402
    publisher_option_spec,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.health import (  # noqa: E402
    DEFAULT_GATHER,
    SUBSETS,
    collect,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import (  # noqa: E402
    PgModule,
    format_db_error,
)


def argument_spec():
    return dict(
        gather=dict(type="list", elements="str", choices=list(SUBSETS), default=list(DEFAULT_GATHER)),
        retained_wal_threshold=dict(type="str", default="1GB"),
        error_window=dict(type="float", default=DEFAULT_ERROR_WINDOW),
        log_max_bytes=dict(type="str", default="1MB"),
        fail_on_connection_error=dict(type="bool", default=True),
        publisher=publisher_option_spec(),
    )


def exit_unreachable(m, error):
    """Succeed with ``reachable: false``, the (redacted) error and its one finding; nothing else is returned."""
    m.exit(
        changed=False,
        reachable=False,
        database=m.params["login_db"],
        error=error,
        checks=[node_unreachable(error)],
    )


def main():
    m = PgModule(argument_spec=argument_spec())
    m.add_secret((m.params["publisher"] or {}).get("password"))
    try:
        threshold = parse_bytes(m.params["retained_wal_threshold"])
    except ThresholdError as exc:
        m.fail(f"retained_wal_threshold: {exc}")
    try:
        log_max_bytes = parse_bytes(m.params["log_max_bytes"])
    except ThresholdError as exc:
        m.fail(f"log_max_bytes: {exc}")
    if not log_max_bytes:
        m.fail("log_max_bytes: must be more than 0")
    if m.params["error_window"] <= 0:
        m.fail(f"error_window: must be more than 0 minutes, got {m.params['error_window']}")
    gather = [subset for subset in SUBSETS if subset in m.params["gather"]]
    tolerate = not m.params["fail_on_connection_error"]
    try:
        conn = m.connect(raise_errors=tolerate)
    except PgConnectionError as exc:
        exit_unreachable(m, str(exc))
    major = m.server_major
    m.require_versions("replication_info module", ())
    try:
        facts = collect(
            conn,
            major,
            gather=gather,
            retained_wal_threshold=threshold,
            error_window=m.params["error_window"],
            log_max_bytes=log_max_bytes,
            publisher=m.params["publisher"],
        )
        database = conn.info.dbname
    except psycopg.Error as exc:
        if m.connection_lost:
            # The server went away mid-read (a restart, a terminated backend, a network cut).
            error = format_db_error(
                exc,
                (),
                f"the connection to PostgreSQL at {describe_target(m.params)} was lost while reading replication facts",
            )
            if tolerate:
                exit_unreachable(m, m.redact(error))
            m.fail(error, sqlstate=exc.sqlstate)
        m.fail(format_db_error(exc, (), "reading replication facts failed"), sqlstate=exc.sqlstate)
    m.exit(changed=False, reachable=True, database=database, **facts)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: subscription
short_description: Create, change and drop PostgreSQL logical replication subscriptions
version_added: 0.1.0
description:
  - Creates, alters and drops a subscription (C(CREATE/ALTER/DROP SUBSCRIPTION)) in the database
    O(login_db) of the subscriber and converges every difference to the desired state - the publisher
    connection, the publications, every option C(ALTER SUBSCRIPTION ... SET) can change on the server's
    PostgreSQL version, and whether the subscription is enabled.
  - Options that are not given are not managed; an existing subscription keeps its values and a new one
    gets PostgreSQL's defaults.
  - The publisher connection is compared by meaning - the stored C(subconninfo) and the desired connection
    are both parsed with libpq's rules and compared key by key - so a re-run reports no change.
  - The publisher's password never appears in the module's output - C(queries), the returned state, the
    diff, warnings and error messages show C(********) instead.
  - Options that PostgreSQL cannot change on an existing subscription on the server's version (for
    example O(two_phase) before PostgreSQL 18) make the module fail before anything is changed, naming the
    option and the reason, unless O(recreate=true), which drops and re-creates the subscription.
  - Every option is checked against the server's version before anything is changed; the error names the
    option and the PostgreSQL major it needs (also for an item of O(subscriptions), named by index and name).
  - PostgreSQL changes O(failover) and O(two_phase) only while the subscription is disabled. For an enabled
    subscription the module disables it, waits until its workers stopped, changes the option and enables it
    again - in one task, replication resumes from the same slot - and returns RV(temporarily_disabled). When
    the change fails, the module enables the subscription again before failing, and says so.
  - With O(wait_for_sync=true) the module waits until the initial copy of every table has finished and
    the apply worker runs, and returns the per-table sync states.
  - C(CREATE SUBSCRIPTION) with a slot, C(ALTER SUBSCRIPTION) with a refresh of the publications and
    C(DROP SUBSCRIPTION) with a slot cannot run in a transaction block. The module validates everything
    first, runs such statements on their own and all other changes in one transaction, ordered so that a
    failing statement leaves nothing half-applied wherever PostgreSQL allows it.
  - Several subscriptions of the database in one call - O(subscriptions), a list of items with the options of
    the single form - use one connection and one read of C(pg_subscription). Every item is validated and
    planned (the checks the single form makes before its first statement) before the first change; bad input
    in any item (an invalid or duplicate name, both O(subscriptions[].publisher) and
    O(subscriptions[].conninfo), an option the server's version lacks or cannot change in place without
    O(subscriptions[].recreate), a subscription to create without publications or connection, ...) fails
    with a message that starts with the item's index and name, as in "subscriptions[2] (name=foo)", with
    nothing changed. Errors that Ansible finds in the arguments (an unknown suboption, a value of the wrong
    type or not among the choices) fail before the module runs; Ansible's message names the option and
    O(subscriptions).
  - The list form is not all or nothing - C(CREATE SUBSCRIPTION) and C(DROP SUBSCRIPTION) with a slot cannot
    run in a transaction block, so the items are applied in order and each item's changes are committed
    before the next item starts. When an item fails while being applied (the publisher refuses the
    connection, a statement fails, O(subscriptions[].wait_for_sync) times out, ...), the module fails naming
    that item; the items before it stay applied and are listed in RV(subscriptions), the failed item's message
    names the statements of its own that were committed, RV(queries) lists every statement that ran, and
    C(changed) is true when anything was changed. Re-running the task converges the rest.
  - With O(subscriptions[].wait_for_sync), an item waits for its own synchronization before the next item
    is applied.
author:
  - Inventium logical replication team (@inventium)
options:
  name:
    description:
      - Name of the subscription, as an SQL identifier (quote it to keep upper-case letters, for example
        V("MySub")).
      - Required unless O(subscriptions) is given; mutually exclusive with O(subscriptions).
    type: str
  subscriptions:
    description:
      - Several subscriptions of the database O(login_db) in one call, each item with the options of the
        single form. Mutually exclusive with every other option of the module except the connection options.
      - Not all or nothing, see the description above.
      - The result lists one entry per item in RV(subscriptions); RV(diff) is keyed by subscription name.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the subscription, see O(name). Each subscription at most once in the list.
        type: str
        required: true
      state:
        description: See O(state).
        type: str
        choices: [present, absent]
        default: present
      publications:
        description: See O(publications).
        type: list
        elements: str
      publisher:
        description: See O(publisher). Mutually exclusive with O(subscriptions[].conninfo).
        type: dict
        suboptions:
          host:
            description: See O(publisher.host).
            type: str
          port:
            description: See O(publisher.port).
            type: int
          dbname:
            description: See O(publisher.dbname).
            type: str
          user:
            description: See O(publisher.user).
            type: str
          password:
            description: See O(publisher.password). Never shown in the output.
            type: str
          sslmode:
            description: See O(publisher.sslmode).
            type: str
            choices: [disable, allow, prefer, require, verify-ca, verify-full]
          sslrootcert:
            description: See O(publisher.sslrootcert).
            type: str
          sslcert:
            description: See O(publisher.sslcert).
            type: str
          sslkey:
            description: See O(publisher.sslkey).
            type: str
          connect_timeout:
            description: See O(publisher.connect_timeout).
            type: int
          application_name:
            description: See O(publisher.application_name).
            type: str
          keepalives:
            description: See O(publisher.keepalives).
            type: int
            choices: [0, 1]
          keepalives_idle:
            description: See O(publisher.keepalives_idle).
            type: int
          keepalives_interval:
            description: See O(publisher.keepalives_interval).
            type: int
          keepalives_count:
            description: See O(publisher.keepalives_count).
            type: int
          tcp_user_timeout:
            description: See O(publisher.tcp_user_timeout).
            type: int
      conninfo:
        description: See O(conninfo). Mutually exclusive with O(subscriptions[].publisher).
        type: str
      enabled:
        description: See O(enabled).
        type: bool
      copy_data:
        description: See O(copy_data).
        type: bool
      create_slot:
        description: See O(create_slot).
        type: bool
      slot_name:
        description: See O(slot_name).
        type: str
      synchronous_commit:
        description: See O(synchronous_commit).
        type: str
      binary:
        description: See O(binary).
        type: bool
      streaming:
        description: See O(streaming).
        type: str
      two_phase:
        description: See O(two_phase).
        type: bool
      disable_on_error:
        description: See O(disable_on_error).
        type: bool
      origin:
        description: See O(origin).
        type: str
        choices: [none, any]
      run_as_owner:
        description: See O(run_as_owner).
        type: bool
      password_required:
        description: See O(password_required).
        type: bool
      failover:
        description: See O(failover).
        type: bool
      owner:
        description: See O(owner).
        type: str
      refresh:
        description: See O(refresh).
        type: bool
        default: false
      recreate:
        description: See O(recreate).
        type: bool
        default: false
      skip_lsn:
        description: See O(skip_lsn).
        type: str
      wait_for_sync:
        description: See O(wait_for_sync). The item waits before the next item is applied.
        type: bool
        default: false
      sync_timeout:
        description: See O(sync_timeout).
        type: int
        default: 300
  owner:
    description:
      - The role owning the subscription (C(ALTER SUBSCRIPTION ... OWNER TO)), as an SQL identifier. The
        subscription's apply and table synchronization workers run as its owner.
      - When not set, a new subscription is owned by O(login_user) and an existing one keeps its owner.
      - The login role creates the subscription (a superuser, or from PostgreSQL 16 a member of
        C(pg_create_subscription) with C(CREATE) on the database) and then hands it to O(owner) in the same
        task; a different owner of an existing subscription is changed in place. Log in as a superuser to
        manage a subscription owned by another role - only a superuser may read its connection (C(subconninfo)).
      - A role that does not exist fails the module before anything is changed, so does a role without
        superuser before PostgreSQL 16 (PostgreSQL 15 requires a superuser as a subscription's owner).
      - From PostgreSQL 16 the workers of a subscription owned by a non-superuser with O(password_required=true)
        (the default) connect to the publisher only with a password (and the publisher must ask for it).
        PostgreSQL does not check this when the owner changes - the subscription would fail in the server log -
        so the module fails before anything is changed when such an owner is given and the connection
        (O(publisher)/O(conninfo), else the stored one) has no password.
    type: str
  state:
    description:
      - V(present) creates or changes the subscription, V(absent) drops it.
      - When dropping, the subscription's replication slot on the publisher is dropped too. If the
        publisher cannot be reached within the connect timeout (O(publisher.connect_timeout), else
        O(connect_timeout)), the subscription is disabled, detached from its slot
        (C(SET (slot_name = NONE))) and dropped, and a warning names the slot left behind on the publisher
        (it retains WAL there until it is dropped with C(pg_drop_replication_slot)).
    type: str
    choices: [present, absent]
    default: present
  publications:
    description:
      - The publications (on the publisher) to subscribe to, as SQL identifiers. Required to create a
        subscription.
      - Order does not matter. Publications are added or removed with C(ALTER SUBSCRIPTION ... ADD/DROP/SET
        PUBLICATION); when the subscription is enabled the change refreshes the subscription's tables
        (with O(copy_data)), otherwise it is made with C(refresh = false) and a warning.
    type: list
    elements: str
  publisher:
    description:
      - The connection to the publisher, as it is stored in the subscription (the subscriber's server
        connects with it, not the Ansible host). Mutually exclusive with O(conninfo).
      - Values are quoted for libpq, so passwords with spaces, quotes, backslashes or C(=) work.
      - Keys that are not given are not part of the connection string.
    type: dict
    suboptions:
      host:
        description: Host name, IP address or Unix socket directory of the publisher (libpq C(host)).
        type: str
      port:
        description: Port of the publisher (libpq C(port)).
        type: int
      dbname:
        description: Database on the publisher that holds the publications (libpq C(dbname)).
        type: str
      user:
        description: Role to connect as; needs the C(REPLICATION) attribute (libpq C(user)).
        type: str
      password:
        description:
          - Password of O(publisher.user) (libpq C(password)). Never shown in the output.
        type: str
      sslmode:
        description: libpq C(sslmode).
        type: str
        choices: [disable, allow, prefer, require, verify-ca, verify-full]
      sslrootcert:
        description: Certificate authorities file on the subscriber's server (libpq C(sslrootcert)).
        type: str
      sslcert:
        description: Client certificate file on the subscriber's server (libpq C(sslcert)).
        type: str
      sslkey:
        description: Client key file on the subscriber's server (libpq C(sslkey)).
        type: str
      connect_timeout:
        description:
          - Seconds the subscriber waits for the publisher's connection (libpq C(connect_timeout)).
          - Also bounds how long O(state=absent) tries to reach the publisher to drop the slot.
        type: int
      application_name:
        description:
          - libpq C(application_name); the publisher shows it in C(pg_stat_replication). Defaults to the
            subscription's name (PostgreSQL's choice).
        type: str
      keepalives:
        description:
          - libpq C(keepalives) - V(1) turns TCP keepalives on for the subscriber's connection to the
            publisher (libpq's default), V(0) off.
          - The TCP keepalive options bound how long the subscriber's apply and sync workers take to
            notice a connection that died without a word (a network cut, a host that vanished), so that
            they reconnect instead of waiting for C(wal_receiver_timeout).
        type: int
        choices: [0, 1]
      keepalives_idle:
        description:
          - libpq C(keepalives_idle) - seconds of silence on the connection before the first TCP
            keepalive probe (V(0) - the operating system's default, 2 hours on Linux).
        type: int
      keepalives_interval:
        description: libpq C(keepalives_interval) - seconds between unanswered probes (V(0) - the system's default).
        type: int
      keepalives_count:
        description:
          - libpq C(keepalives_count) - unanswered probes after which the connection counts as dead
            (V(0) - the system's default).
        type: int
      tcp_user_timeout:
        description:
          - libpq C(tcp_user_timeout) - milliseconds that data sent may stay unacknowledged before the
            connection is closed (V(0) - the system's default). Keepalive probes only run on an idle
            connection; this covers a connection with data in flight (the apply worker's feedback).
        type: int
  conninfo:
    description:
      - The connection to the publisher as a libpq connection string (C(host=... port=... dbname=...)) or
        URI (C(postgresql://...)), used as given. Mutually exclusive with O(publisher).
      - It is compared with the stored connection by meaning (parsed key by key), not as text.
    type: str
  enabled:
    description:
      - Whether the subscription replicates (C(ALTER SUBSCRIPTION ... ENABLE/DISABLE)).
      - A new subscription is enabled unless O(slot_name=NONE).
    type: bool
  copy_data:
    description:
      - Copy the existing data of the published tables when the subscription is created, when
        publications are added and with O(refresh). Not stored in the subscription.
      - PostgreSQL's default is V(true).
    type: bool
  create_slot:
    description:
      - Create the replication slot on the publisher when the subscription is created (only then).
      - PostgreSQL's default is V(true); set V(false) when the slot exists already (see
        M(inventium.logical_replication.replication_slot)).
    type: bool
  slot_name:
    description:
      - Name of the replication slot on the publisher. Lower-case letters, digits and underscores.
      - A new subscription uses its own name. V(NONE) detaches the subscription from any slot (it must be
        disabled; a new one is then created with O(create_slot=false) and disabled).
      - Changing it only changes which slot the subscription uses; slots are neither created nor dropped.
    type: str
  synchronous_commit:
    description:
      - C(synchronous_commit) of the apply worker - V(off) (PostgreSQL's default for subscriptions),
        V(local), V(remote_write), V(remote_apply) or V(on). V(true), V(false), V(yes), V(no) are
        accepted for V(on) and V(off).
    type: str
  binary:
    description:
      - Copy and replicate data in binary format (PostgreSQL 14 or later).
    type: bool
  streaming:
    description:
      - How large in-progress transactions are received - V(off) (spilled on the publisher until commit),
        V(on) (streamed, applied at commit; PostgreSQL 14 or later) or V(parallel) (applied by parallel
        workers while they stream; PostgreSQL 16 or later). Booleans mean V(on) and V(off).
      - PostgreSQL's default is V(parallel) from version 18, V(off) before.
    type: str
  two_phase:
    description:
      - Replicate prepared transactions at C(PREPARE TRANSACTION) (PostgreSQL 15 or later).
      - Can be changed on an existing subscription from PostgreSQL 18 (before, use O(recreate=true)). PostgreSQL
        changes it only while the subscription is disabled - the module disables an enabled one for the change
        and enables it again (see RV(temporarily_disabled)).
      - While it is enabled, publications cannot be added and O(refresh) cannot be used with
        O(copy_data=true).
    type: bool
  disable_on_error:
    description:
      - Disable the subscription when the apply worker hits an error instead of retrying
        (PostgreSQL 15 or later).
    type: bool
  origin:
    description:
      - V(none) replicates only changes that originate on the publisher (not those it replicated from
        elsewhere), V(any) all changes (PostgreSQL 16 or later).
    type: str
    choices: [none, any]
  run_as_owner:
    description:
      - Apply changes as the subscription's owner instead of the tables' owners (PostgreSQL 16 or later).
    type: bool
  password_required:
    description:
      - Whether the connection must use a password; only a superuser can set V(false)
        (PostgreSQL 16 or later).
    type: bool
  failover:
    description:
      - Synchronize the replication slot to the publisher's standbys (PostgreSQL 17 or later).
      - Changed in place (C(ALTER SUBSCRIPTION ... SET (failover = ...)), which alters the slot on the publisher).
        PostgreSQL changes it only while the subscription is disabled - the module disables an enabled one for
        the change and enables it again (see RV(temporarily_disabled)); with O(enabled=false) it stays disabled.
    type: bool
  refresh:
    description:
      - Run C(ALTER SUBSCRIPTION ... REFRESH PUBLICATION) (with O(copy_data)) to pick up tables that were
        added to or removed from the publications on the publisher.
      - Reported as a change only when the subscription's table list changed (in check mode it is always
        reported, since only the publisher knows). Needs an enabled subscription.
      - Not needed when O(publications) change - that refreshes already.
    type: bool
    default: false
  recreate:
    description:
      - When an option cannot be changed on the existing subscription (see O(two_phase) and O(failover)),
        drop the subscription (and its slot) and create it again instead of failing.
      - The new subscription starts from scratch - with O(copy_data) (the default) every table is copied
        again, which fails on rows that already exist on the subscriber unless the tables are emptied
        first; with O(copy_data=false) changes made on the publisher in between are lost.
    type: bool
    default: false
  skip_lsn:
    description:
      - Skip the remote transaction that finishes at this LSN (C(ALTER SUBSCRIPTION ... SKIP (lsn = ...)),
        PostgreSQL 15 or later), to get past a transaction that keeps failing, for example with a
        duplicate key. The LSN is in the subscriber's log (C(... finished at 0/14C0378)).
      - Nothing is done when that LSN is already set or already behind the subscription's origin (the
        transaction was skipped or applied), so the task stays idempotent.
    type: str
  wait_for_sync:
    description:
      - Wait until every table of the subscription is synchronized (C(pg_subscription_rel) state C(ready))
        and the apply worker runs, also when nothing was changed. Not in check mode.
      - Polls one catalog query at an interval of 5% of the time waited so far (10 ms to 1 s).
      - Fails after O(sync_timeout) seconds listing the tables not ready, and immediately when the
        subscription is disabled (for example by O(disable_on_error)), with the error counts of
        C(pg_stat_subscription_stats) and the state of the apply worker.
    type: bool
    default: false
  sync_timeout:
    description:
      - Seconds to wait with O(wait_for_sync).
    type: int
    default: 300
extends_documentation_fragment:
  - inventium.logical_replication.connection
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - Supports PostgreSQL 13 and later on the subscriber. Options of newer versions fail with the option's
    name and the version that introduced it.
  - Creating a subscription needs a superuser (or, from PostgreSQL 16, a member of
    C(pg_create_subscription) with C(CREATE) on the database). Reading the stored connection
    (C(subconninfo)) needs a superuser; without it O(publisher)/O(conninfo) cannot be compared.
  - The subscriber's server connects to the publisher - when the subscription is created, when it is
    refreshed, when O(failover) or O(two_phase) change (they alter the slot) and when it is dropped.
    The Ansible host never connects to the publisher. Check mode makes no connection to the publisher.
  - The tables must exist on the subscriber with the same names and compatible columns; see
    M(inventium.logical_replication.publication) for the publisher's side.
seealso:
  - name: CREATE SUBSCRIPTION
    description: PostgreSQL documentation of CREATE SUBSCRIPTION.
    link: https://www.postgresql.org/docs/current/sql-createsubscription.html
  - name: ALTER SUBSCRIPTION
    description: PostgreSQL documentation of ALTER SUBSCRIPTION.
    link: https://www.postgresql.org/docs/current/sql-altersubscription.html
  - name: Logical replication conflicts
    description: How to resolve a conflict (fix the row, or skip the transaction).
    link: https://www.postgresql.org/docs/current/logical-replication-conflicts.html
  - module: inventium.logical_replication.publication
  - module: inventium.logical_replication.replication_slot
"""

EXAMPLES = r"""
- name: Subscribe to the leadership books and wait for the initial copy
  inventium.logical_replication.subscription:
    login_host: 127.0.0.1
    login_port: 5433
    login_password: "{{ subscriber_password }}"
    login_db: subscriber
    name: leadership_sub
    publications: [leadership_pub]
    publisher:
      host: 192.0.2.10
      port: 5432
      dbname: publisher
      user: replicator
      password: "{{ replicator_password }}"
      connect_timeout: 10
      # Notice a dead connection within ~20 s instead of wal_receiver_timeout
      # (or the system's 2 h keepalive default when nothing is sent).
      keepalives: 1
      keepalives_idle: 5
      keepalives_interval: 5
      keepalives_count: 3
      tcp_user_timeout: 20000
    wait_for_sync: true
    sync_timeout: 600
  register: sub

- name: Show the per-table sync states
  ansible.builtin.debug:
    msg: "{{ sub.subscription.tables | map(attribute='state') | list }}"

- name: Change options in place, subscribe to a second publication (refreshes the table list)
  inventium.logical_replication.subscription:
    login_db: subscriber
    name: leadership_sub
    publications: [leadership_pub, technical_pub]
    binary: true
    streaming: parallel
    synchronous_commit: remote_apply
    disable_on_error: true

- name: Pick up tables added to the publications on the publisher, without copying their rows
  inventium.logical_replication.subscription:
    login_db: subscriber
    name: leadership_sub
    refresh: true
    copy_data: false

- name: Skip a transaction that keeps failing (LSN from "finished at ..." in the subscriber's log)
  inventium.logical_replication.subscription:
    login_db: subscriber
    name: leadership_sub
    skip_lsn: 0/14C0378

- name: A connection string instead of the structured publisher (use the vault for the password)
  inventium.logical_replication.subscription:
    login_db: subscriber
    name: '"Reporting"'
    slot_name: reporting
    publications: [reporting_pub]
    conninfo: >-
      host=publisher.example.com dbname=app user=replicator
      password={{ vaulted_password }} sslmode=verify-full

- name: Enable failover on the slot (PostgreSQL 17+; disabled for the change, then enabled again)
  inventium.logical_replication.subscription:
    login_db: subscriber
    name: leadership_sub
    failover: true
  register: failover_on

- name: Say that the subscription was paused for it
  ansible.builtin.debug:
    msg: "leadership_sub was disabled while failover changed"
  when: failover_on.temporarily_disabled | default(false)

- name: Several subscriptions in one call (one connection, one read of pg_subscription; not all or nothing)
  inventium.logical_replication.subscription:
    login_db: subscriber
    subscriptions:
      - name: orders_sub
        publications: [orders_pub]
        publisher: "{{ publisher_connection }}"
      - name: customers_sub
        publications: [customers_pub]
        publisher: "{{ publisher_connection }}"
        binary: true
      - name: old_sub
        state: absent
  register: subs

- name: Show which subscriptions changed
  ansible.builtin.debug:
    msg: "{{ subs.subscriptions | selectattr('changed') | map(attribute='name') }}"

- name: Created by a superuser, owned by a role without superuser (member of pg_create_subscription)
  inventium.logical_replication.subscription:
    login_db: subscriber
    name: reporting_sub
    publications: [reporting_pub]
    publisher: "{{ publisher_connection }}"  # with a password: the owner is not a superuser
    owner: subscription_admin
    password_required: true

- name: Drop a subscription (and its slot on the publisher, when reachable)
  inventium.logical_replication.subscription:
    login_db: subscriber
    name: leadership_sub
    state: absent
"""

RETURN = r"""
queries:
  description:
    - The statements that changed the subscription (in check mode, those that would have been
      executed), with the publisher's password replaced by C(********). Reads are not listed.
  returned: always
  type: list
  elements: str
  sample:
    - >-
      CREATE SUBSCRIPTION "leadership_sub" CONNECTION 'host=192.0.2.10 port=5432 dbname=publisher
      user=replicator password=********' PUBLICATION "leadership_pub"
temporarily_disabled:
  description:
    - The subscription was enabled, PostgreSQL changes O(failover) or O(two_phase) only while it is disabled, so
      the module disabled it, changed the option and enabled it again (in check mode - would have).
  returned: when that happened (in the list form, in the item's entry of RV(subscriptions))
  type: bool
  sample: true
subscriptions:
  description:
    - One entry per item of O(subscriptions), in order.
    - When the module fails while applying an item, the entries of the items applied before it.
  returned: when O(subscriptions) is given
  type: list
  elements: dict
  contains:
    name:
      description: Name of the subscription (exact, not quoted).
      type: str
      sample: orders_sub
    changed:
      description: Whether this subscription was (in check mode, would be) created, changed or dropped.
      type: bool
      sample: true
    temporarily_disabled:
      description: As RV(temporarily_disabled) of the single form.
      returned: >-
        when the subscription was disabled for a O(subscriptions[].failover) or O(subscriptions[].two_phase)
        change
      type: bool
    subscription:
      description: The subscription after the run, as RV(subscription) of the single form.
      type: dict
    sync:
      description: The outcome of O(subscriptions[].wait_for_sync), as RV(sync) of the single form.
      returned: when O(subscriptions[].wait_for_sync=true), not in check mode
      type: dict
    queries:
      description: The statements of this subscription, as RV(queries).
      type: list
      elements: str
    diff:
      description: Before and after state of this subscription, as RV(diff) of the single form.
      returned: when diff mode is enabled
      type: dict
subscription:
  description:
    - The subscription after the run (in check mode, the predicted state), as PostgreSQL stores it.
    - Empty when the subscription does not exist.
    - Options the server's version does not have are left out.
  returned: when O(name) is given
  type: dict
  contains:
    name:
      description: Name of the subscription (exact, not quoted).
      type: str
      sample: leadership_sub
    oid:
      description: Object id of the subscription (names its replication origin C(pg_<oid>)).
      type: int
      sample: 16402
    owner:
      description: The owning role.
      type: str
      sample: postgres
    enabled:
      description: Whether the subscription is enabled.
      type: bool
      sample: true
    publications:
      description: The subscribed publications, in the stored order.
      type: list
      elements: str
      sample: [leadership_pub]
    conninfo:
      description:
        - The publisher connection in key/value form with the password replaced by C(********);
          V(null) when the login role may not read it.
      type: str
      sample: host=192.0.2.10 port=5432 dbname=publisher user=replicator password=********
    slot_name:
      description: The replication slot on the publisher, V(null) when detached (C(slot_name = NONE)).
      type: str
      sample: leadership_sub
    synchronous_commit:
      description: C(synchronous_commit) of the apply worker (booleans shown as V(on)/V(off)).
      type: str
      sample: "off"
    binary:
      description: Binary transfer (PostgreSQL 14+).
      type: bool
      returned: on PostgreSQL 14 and later
    streaming:
      description: V(off), V(on) or V(parallel) (PostgreSQL 14+).
      type: str
      returned: on PostgreSQL 14 and later
      sample: "off"
    two_phase:
      description: Whether two-phase commit is requested (PostgreSQL 15+).
      type: bool
      returned: on PostgreSQL 15 and later
    two_phase_state:
      description:
        - V(disabled), V(pending) (requested, enabled after the initial sync) or V(enabled).
      type: str
      returned: on PostgreSQL 15 and later
      sample: disabled
    disable_on_error:
      description: Value of C(disable_on_error) (PostgreSQL 15+).
      type: bool
      returned: on PostgreSQL 15 and later
    skip_lsn:
      description: The LSN of a remote transaction to be skipped, V(null) when none (PostgreSQL 15+).
      type: str
      returned: on PostgreSQL 15 and later
    origin:
      description: V(none) or V(any) (PostgreSQL 16+).
      type: str
      returned: on PostgreSQL 16 and later
      sample: any
    run_as_owner:
      description: Value of C(run_as_owner) (PostgreSQL 16+).
      type: bool
      returned: on PostgreSQL 16 and later
    password_required:
      description: Value of C(password_required) (PostgreSQL 16+).
      type: bool
      returned: on PostgreSQL 16 and later
    failover:
      description: Value of C(failover) (PostgreSQL 17+).
      type: bool
      returned: on PostgreSQL 17 and later
    tables:
      description:
        - The subscription's tables (C(pg_subscription_rel)) and their sync states - V(init), V(data_copy),
          V(finished_copy) (PostgreSQL 14+), V(sync_done), V(ready). Not part of the diff.
      type: list
      elements: dict
      contains:
        name:
          description: Qualified table name, quoted where needed.
          type: str
          sample: public.books
        state:
          description: Sync state.
          type: str
          sample: ready
        lsn:
          description: C(srsublsn) - the LSN of the sync_done/ready transition, V(null) before.
          type: str
          sample: 0/1A2B3C8
sync:
  description: The outcome of O(wait_for_sync).
  returned: when O(name) and O(wait_for_sync=true) are given, not in check mode
  type: dict
  contains:
    synced:
      description: Always V(true) in a successful result (the module fails otherwise).
      type: bool
    seconds:
      description: Seconds waited.
      type: float
      sample: 1.234
    polls:
      description: Catalog queries made while waiting.
      type: int
      sample: 31
    tables:
      description: Number of tables of the subscription.
      type: int
      sample: 1
    tables_not_ready:
      description: Tables not ready at the end (0 on success).
      type: int
      sample: 0
diff:
  description:
    - Before and after state of the subscription (see RV(subscription), without C(tables)), with C(--diff).
    - With O(subscriptions), C(before) and C(after) map each subscription name to its state; a subscription that
      does not exist on that side has no key.
  returned: when diff mode is enabled
  type: dict
  contains:
    before:
      description: State before the run (empty when the subscription did not exist).
      type: dict
    after:
      description: State after the run, predicted in check mode (empty when dropped).
      type: dict
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils._subscription_plan import (  # noqa: E402
    ORIGIN_VALUES,
    Desired,
    OptionError,
    SubscriptionModule,
    add_secrets,
    run_subscription_list,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.conninfo import (  # noqa: E402
    publisher_option_spec,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule  # noqa: E402


def subscription_options(top_level):
    """The options of one subscription (``name`` is optional at the top level: ``subscriptions`` may replace it)."""
    return dict(
        name=dict(type="str", required=not top_level),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        publications=dict(type="list", elements="str"),
        publisher=publisher_option_spec(),
        conninfo=dict(type="str", no_log=True),
        enabled=dict(type="bool"),
        copy_data=dict(type="bool"),
        create_slot=dict(type="bool"),
        slot_name=dict(type="str"),
        synchronous_commit=dict(type="str"),
        binary=dict(type="bool"),
        streaming=dict(type="str"),
        two_phase=dict(type="bool"),
        disable_on_error=dict(type="bool"),
        origin=dict(type="str", choices=list(ORIGIN_VALUES)),
        run_as_owner=dict(type="bool"),
        password_required=dict(type="bool", no_log=False),
        failover=dict(type="bool"),
        owner=dict(type="str"),
        refresh=dict(type="bool", default=False),
        recreate=dict(type="bool", default=False),
        skip_lsn=dict(type="str"),
        wait_for_sync=dict(type="bool", default=False),
        sync_timeout=dict(type="int", default=300),
    )


def argument_spec():
    return dict(
        **subscription_options(top_level=True),
        subscriptions=dict(type="list", elements="dict", options=subscription_options(top_level=False)),
    )


def main():
    m = PgModule(
        argument_spec=argument_spec(),
        required_one_of=[("name", "subscriptions")],
        mutually_exclusive=[("publisher", "conninfo")]
        + [("subscriptions", key) for key in subscription_options(top_level=True)],
    )
    if m.params["subscriptions"] is not None:
        run_subscription_list(m, m.params["subscriptions"])
        return
    add_secrets(m, m.params)
    try:
        desired = Desired(m.params)
    except OptionError as exc:
        m.fail(str(exc))
    m.add_secret(*desired.secrets())
    m.connect()
    SubscriptionModule(m, desired).run()


if __name__ == "__main__":
    main()

-- Tables of the lab's experiments (experiments/*.yml, playbooks/experiment.yml).
-- Empty after `make lab`: every experiment run empties what its steps touch
-- (TRUNCATE, replicated) and fills it. Published in experiment_pub and the
-- experiment_filter_N publications, which every lab subscriber subscribes to,
-- except the initial-sync tables (experiment_sync_pub), which only an
-- experiment's own subscription copies.
CREATE SCHEMA IF NOT EXISTS experiment;
-- Readable like public: the replication role dumps the published tables' schema.
GRANT USAGE ON SCHEMA experiment TO PUBLIC;

-- rows: narrow rows with a primary key (large transactions, bursts, steady
-- load, backlogs).
CREATE TABLE IF NOT EXISTS experiment.rows (
    id bigint PRIMARY KEY,
    k integer NOT NULL,
    grp integer NOT NULL,
    payload text NOT NULL
);

-- rows_full: the same rows without any key, REPLICA IDENTITY FULL (like the
-- lab's books): a subscriber finds the row of each UPDATE/DELETE by a scan,
-- or from PostgreSQL 16 on by an index an experiment creates on it.
CREATE TABLE IF NOT EXISTS experiment.rows_full (
    id bigint NOT NULL,
    k integer NOT NULL,
    grp integer NOT NULL,
    payload text NOT NULL
);
ALTER TABLE experiment.rows_full REPLICA IDENTITY FULL;

-- filtered: the table of the row filter experiments (publications
-- experiment_filter_1 .. experiment_filter_4).
CREATE TABLE IF NOT EXISTS experiment.filtered (
    id bigint PRIMARY KEY,
    k integer NOT NULL,
    grp integer NOT NULL,
    payload text NOT NULL
);

-- marker: the last transaction of a workload also inserts a row here; the
-- time until a subscriber sees it is the commit-to-visible latency.
CREATE TABLE IF NOT EXISTS experiment.marker (
    id bigint PRIMARY KEY,
    run text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- books: shaped like the lab's books (the workloads' load generator writes
-- id, sku, title, topic), for steady background load.
CREATE TABLE IF NOT EXISTS experiment.books (
    id bigint PRIMARY KEY,
    sku integer,
    title text,
    topic text
);

-- heartbeat: an experiment's probe beats here while a run lasts.
CREATE TABLE IF NOT EXISTS experiment.heartbeat (
    id integer PRIMARY KEY,
    seq bigint NOT NULL,
    beat_at timestamptz NOT NULL
);

-- sync_1 .. sync_4: the initial-sync tables (publication experiment_sync_pub).
CREATE TABLE IF NOT EXISTS experiment.sync_1 (id bigint PRIMARY KEY, k integer NOT NULL, payload text NOT NULL);
CREATE TABLE IF NOT EXISTS experiment.sync_2 (id bigint PRIMARY KEY, k integer NOT NULL, payload text NOT NULL);
CREATE TABLE IF NOT EXISTS experiment.sync_3 (id bigint PRIMARY KEY, k integer NOT NULL, payload text NOT NULL);
CREATE TABLE IF NOT EXISTS experiment.sync_4 (id bigint PRIMARY KEY, k integer NOT NULL, payload text NOT NULL);

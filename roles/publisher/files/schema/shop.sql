-- "The application" of the upgrade rehearsal (playbooks/upgrade_rehearsal.yml,
-- README "Switchover and upgrade"): two small tables published whole in
-- shop_pub, subscribed by the PostgreSQL 17 subscriber, so that the
-- application's writes can move from the PostgreSQL 15 publisher to it and
-- back. Primary keys: the replica identity of UPDATE/DELETE and the chunks of
-- the `compare` module; orders.id comes from a sequence, which a switchover
-- must copy (the `sequences` module) or the new primary's first INSERT would
-- collide with a replicated row.
CREATE SCHEMA IF NOT EXISTS shop;
-- Roles that may read a table still need USAGE on its schema: the replication
-- role's table copy and pg_dump of the subscribers' schema, and the application.
GRANT USAGE ON SCHEMA shop TO PUBLIC;

CREATE TABLE IF NOT EXISTS shop.orders (
    id bigserial PRIMARY KEY,
    note text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS shop.items (
    sku text PRIMARY KEY,
    qty integer NOT NULL
);

INSERT INTO shop.items (sku, qty)
SELECT 'sku-' || g, g FROM generate_series(1, 1000) AS g
ON CONFLICT (sku) DO NOTHING;

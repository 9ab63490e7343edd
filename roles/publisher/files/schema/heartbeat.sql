-- Heartbeat of the publisher, published in heartbeat_pub and subscribed by
-- every lab subscriber. The sampler upserts one row per publisher node
-- (node = its inventory name, beat_at = clock_timestamp(), seq = seq + 1)
-- every interval; on a subscriber, clock_timestamp() - beat_at is the time lag
-- of replication (the lab's nodes share one clock; on real hosts keep the
-- clocks in sync with NTP). The primary key is the replica identity of the
-- UPDATEs.
CREATE TABLE IF NOT EXISTS public.replication_heartbeat (
    node text PRIMARY KEY,
    beat_at timestamptz NOT NULL,
    seq bigint NOT NULL
);

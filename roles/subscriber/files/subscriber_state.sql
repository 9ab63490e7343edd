SELECT coalesce((SELECT array_agg(t) FROM unnest(string_to_array(%(tables)s, ',')) AS t
                 WHERE to_regclass(t) IS NULL), '{}') AS missing,
       coalesce((SELECT array_agg(t) FROM unnest(string_to_array(%(tables)s, ',')) AS t
                 WHERE to_regclass(t) IS NOT NULL
                   AND (xpath('/row/n/text()',
                              query_to_xml('SELECT EXISTS (SELECT FROM ' || to_regclass(t)::text || ') AS n',
                                           false, true, '')))[1]::text = 'true'), '{}') AS nonempty,
       EXISTS (SELECT FROM pg_catalog.pg_subscription AS s
               WHERE s.subname = %(subscription)s
                 AND s.subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
         AS subscribed,
       -- The subscription's tables as PostgreSQL knows them (pg_subscription_rel):
       -- they differ from the published ones after a table was added to or
       -- removed from a publication, which needs a REFRESH PUBLICATION.
       coalesce((SELECT array_agg(format('%%I.%%I', n.nspname, c.relname))
                 FROM pg_catalog.pg_subscription_rel AS r
                 JOIN pg_catalog.pg_subscription AS s ON s.oid = r.srsubid
                 JOIN pg_catalog.pg_class AS c ON c.oid = r.srrelid
                 JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
                 WHERE s.subname = %(subscription)s
                   AND s.subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())),
                '{}') AS subscribed_tables

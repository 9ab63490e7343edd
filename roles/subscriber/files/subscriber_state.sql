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
         AS subscribed

SELECT to_regclass('public.books') IS NULL AS demo_missing,
       COALESCE((SELECT c.relreplident = 'f' FROM pg_catalog.pg_class AS c
                 WHERE c.oid = to_regclass('public.books')), false) AS demo_replica_identity_full,
       CASE WHEN to_regclass('public.books') IS NULL THEN 0
            ELSE (xpath('/row/c/text()',
                        query_to_xml('SELECT count(*) AS c FROM public.books WHERE id BETWEEN 1 AND 5',
                                     false, true, '')))[1]::text::int
       END AS demo_rows,
       ARRAY(SELECT t FROM unnest(string_to_array(%(tables)s, ',')) AS t
             WHERE NOT COALESCE(has_table_privilege(%(role)s, to_regclass(t), 'SELECT'), false)) AS ungranted

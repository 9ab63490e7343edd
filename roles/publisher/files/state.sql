SELECT to_regclass('public.books') IS NULL AS demo_missing,
       COALESCE((SELECT c.relreplident = 'f' FROM pg_catalog.pg_class AS c
                 WHERE c.oid = to_regclass('public.books')), false) AS demo_replica_identity_full,
       CASE WHEN to_regclass('public.books') IS NULL THEN 0
            ELSE (xpath('/row/c/text()',
                        query_to_xml('SELECT count(*) AS c FROM public.books WHERE id BETWEEN 1 AND 5',
                                     false, true, '')))[1]::text::int
       END AS demo_rows,
       ARRAY(SELECT t FROM unnest(string_to_array(%(tables)s, ',')) AS t
             WHERE NOT COALESCE(has_table_privilege(%(role)s, to_regclass(t), 'SELECT'), false)) AS ungranted,
       -- The sequences of those tables (serial/identity columns, column defaults calling nextval) the role
       -- cannot read: the sequences module reads their values on the publisher as that role
       -- (playbooks/sync_sequences.yml). SELECT on a sequence reads its value, it cannot advance it.
       @UNGRANTED_SEQUENCES@ AS ungranted_sequences,
       -- Schema files to (re)apply, in their order: never applied, changed since
       -- (sha256 recorded in inventium.schema_files), or a table they create is gone.
       -- (The scalar subqueries inside query_to_xml always return one row: an
       -- empty result would be an empty, unparsable XML document.)
       ARRAY(SELECT f.value ->> 'name'
             FROM jsonb_array_elements(%(files)s::jsonb) WITH ORDINALITY AS f (value, n)
             -- CASE, not OR: the catalog lookup must not run without the table.
             WHERE CASE WHEN to_regclass('inventium.schema_files') IS NULL THEN true
                        WHEN EXISTS (SELECT FROM jsonb_array_elements_text(f.value -> 'tables') AS t (name)
                                     WHERE to_regclass(t.name) IS NULL) THEN true
                        ELSE (xpath('/row/s/text()',
                                    query_to_xml(format('SELECT (SELECT sha256 FROM inventium.schema_files WHERE name = %%L) AS s',
                                                        f.value ->> 'name'), false, true, '')))[1]::text
                             IS DISTINCT FROM f.value ->> 'sha256'
                   END
             ORDER BY f.n) AS schema_pending,
       -- The publications as the catalogs hold them (every publication, its tables,
       -- row filters, column lists, schemas, options, owner, comment), and the
       -- desired state and fingerprint recorded after the last run that managed
       -- them: equal means nothing changed on either side since.
       @FINGERPRINT@ AS publications_fingerprint,
       CASE WHEN to_regclass('inventium.memo') IS NULL THEN NULL
            ELSE (xpath('/row/v/text()',
                        query_to_xml('SELECT (SELECT value FROM inventium.memo WHERE name = ''publications'') AS v',
                                     false, true, '')))[1]::text
       END AS publications_memo

SELECT coalesce(array_agg(DISTINCT format('%%I.%%I', schemaname, tablename)), '{}') AS tables
FROM pg_catalog.pg_publication_tables
WHERE pubname = ANY(string_to_array(%(publications)s, ','))

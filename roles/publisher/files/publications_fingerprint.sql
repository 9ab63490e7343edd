md5(concat_ws('|',
    (SELECT string_agg(row_to_json(p)::text, ',' ORDER BY p.oid) FROM pg_catalog.pg_publication AS p),
    (SELECT string_agg(row_to_json(r)::text, ',' ORDER BY r.oid) FROM pg_catalog.pg_publication_rel AS r),
    (SELECT string_agg(d.objoid::text || ':' || d.description, ',' ORDER BY d.objoid)
     FROM pg_catalog.pg_description AS d WHERE d.classoid = 'pg_catalog.pg_publication'::regclass),
    CASE WHEN to_regclass('pg_catalog.pg_publication_namespace') IS NOT NULL
         THEN query_to_xml('SELECT pnpubid, pnnspid FROM pg_catalog.pg_publication_namespace ORDER BY oid',
                           false, true, '')::text
    END))

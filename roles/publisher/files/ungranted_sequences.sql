-- The sequences of the named tables (serial/identity columns, column defaults calling nextval) the
-- replication role cannot read. An expression: part of state.sql, and read again on its own after the
-- schema files created tables (their sequences exist only then). Parameters: tables, role.
ARRAY(SELECT pg_catalog.format('%%I.%%I', (SELECT n.nspname FROM pg_catalog.pg_namespace AS n WHERE n.oid = s.relnamespace), s.relname)
      FROM unnest(string_to_array(%(tables)s, ',')) AS t
      JOIN pg_catalog.pg_depend AS d
        ON d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = to_regclass(t)
           AND d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')
      JOIN pg_catalog.pg_class AS s ON s.oid = d.objid AND s.relkind = 'S'
      -- CASE: the privilege test must not run on a relation that is no sequence (a TOAST table).
      WHERE CASE WHEN s.relkind = 'S' THEN NOT has_sequence_privilege(%(role)s, s.oid, 'SELECT') END
      UNION
      SELECT pg_catalog.format('%%I.%%I', (SELECT n.nspname FROM pg_catalog.pg_namespace AS n WHERE n.oid = s.relnamespace), s.relname)
      FROM unnest(string_to_array(%(tables)s, ',')) AS t
      JOIN pg_catalog.pg_attrdef AS ad ON ad.adrelid = to_regclass(t)
      JOIN pg_catalog.pg_depend AS d
        ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid
           AND d.refclassid = 'pg_catalog.pg_class'::regclass
      JOIN pg_catalog.pg_class AS s ON s.oid = d.refobjid AND s.relkind = 'S'
      WHERE CASE WHEN s.relkind = 'S' THEN NOT has_sequence_privilege(%(role)s, s.oid, 'SELECT') END
      ORDER BY 1)

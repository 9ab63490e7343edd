-- The seed's select-by-id on the demo books (ids 1 to 5), as a pgbench script.
\set id random(1, 5)
SELECT id, sku, title, topic FROM books WHERE id = :id;

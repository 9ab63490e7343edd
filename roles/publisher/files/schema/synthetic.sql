-- Synthetic data for stress tests, published in synthetic_pub (workload
-- `synthetic`, role workload; module synthetic_data). The rows are generated
-- on the server (INSERT ... SELECT generate_series) in committed chunks.
--
-- synthetic_books: narrow, realistic book rows (the rows/s benchmark).
CREATE TABLE IF NOT EXISTS public.synthetic_books (
    id bigint PRIMARY KEY,
    isbn13 text NOT NULL,
    title text NOT NULL,
    author text NOT NULL,
    topic text NOT NULL,
    pages integer NOT NULL,
    price numeric(7, 2) NOT NULL,
    published date NOT NULL
);

-- synthetic_wide: 64 columns of mixed types (wide rows, many attributes to
-- decode and apply per change).
CREATE TABLE IF NOT EXISTS public.synthetic_wide (
    id bigint PRIMARY KEY,
    i01 integer, i02 integer, i03 integer, i04 integer, i05 integer, i06 integer, i07 integer, i08 integer,
    i09 integer, i10 integer, i11 integer, i12 integer, i13 integer, i14 integer, i15 integer, i16 integer,
    b01 bigint, b02 bigint, b03 bigint, b04 bigint, b05 bigint, b06 bigint, b07 bigint, b08 bigint,
    n01 numeric(12, 2), n02 numeric(12, 2), n03 numeric(12, 2), n04 numeric(12, 2),
    n05 numeric(12, 2), n06 numeric(12, 2), n07 numeric(12, 2), n08 numeric(12, 2),
    t01 text, t02 text, t03 text, t04 text, t05 text, t06 text, t07 text, t08 text,
    t09 text, t10 text, t11 text, t12 text, t13 text, t14 text, t15 text, t16 text,
    d01 date, d02 date, d03 date, d04 date,
    ts01 timestamptz, ts02 timestamptz, ts03 timestamptz, ts04 timestamptz,
    f01 boolean, f02 boolean, f03 boolean, f04 boolean,
    u01 uuid, u02 uuid, u03 uuid
);

-- synthetic_docs: large values, TOASTed text (a review of a few KB) and a
-- jsonb document per row.
CREATE TABLE IF NOT EXISTS public.synthetic_docs (
    id bigint PRIMARY KEY,
    book_id bigint NOT NULL,
    body text NOT NULL,
    attrs jsonb NOT NULL
);

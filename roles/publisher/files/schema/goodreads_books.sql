-- A Goodreads library export (CSV), published in library_pub (workload
-- `goodreads`, role workload; module goodreads_import).
--
-- One column per CSV column, snake_case from the header ("Author l-f" ->
-- author_l_f), with proper types: ISBNs are text without Excel's ="..."
-- quoting (they have leading zeros and an X check digit), dates come as
-- YYYY/MM/DD, the shelves are text arrays, an empty CSV field is NULL (the
-- shelves: an empty array). book_id is Goodreads' id of the book and the key
-- the import upserts on.
CREATE TABLE IF NOT EXISTS public.goodreads_books (
    book_id bigint PRIMARY KEY,
    title text NOT NULL,
    author text,
    author_l_f text,
    additional_authors text,
    isbn text,
    isbn13 text,
    my_rating smallint CHECK (my_rating BETWEEN 0 AND 5),
    average_rating numeric(3, 2),
    publisher text,
    binding text,
    number_of_pages integer,
    year_published integer,
    original_publication_year integer,
    date_read date,
    date_added date,
    bookshelves text[] NOT NULL DEFAULT '{}',
    bookshelves_with_positions text[] NOT NULL DEFAULT '{}',
    exclusive_shelf text,
    my_review text,
    spoiler boolean,
    private_notes text,
    read_count integer,
    owned_copies integer
);

CREATE TABLE IF NOT EXISTS public.books (
    id bigint PRIMARY KEY,
    sku integer,
    title text,
    topic text
);
-- The publications filter rows on topic, which is not part of the primary
-- key: with the default replica identity PostgreSQL refuses UPDATE and DELETE
-- on books. FULL makes the whole old row the identity.
ALTER TABLE public.books REPLICA IDENTITY FULL;
INSERT INTO public.books (id, sku, title, topic) VALUES
    (1, 31, 'Practical Object Oriented Design in Ruby', 'technical'),
    (2, 22, 'Great By Choice', 'leadership'),
    (3, 73, 'Building Evolutionary Architectures', 'technical'),
    (4, 47, 'Design Patterns in Ruby', 'technical'),
    (5, 58, 'Scaling Teams', 'leadership')
ON CONFLICT (id) DO NOTHING;

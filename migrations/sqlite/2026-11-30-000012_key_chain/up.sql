-- The link of each institution key version after the first: an HMAC under a key derived from
-- the version before it (client-crypto `key_chain`), made by the holder who rotated. The server
-- stores it and checks only its shape; clients check it before they seal anything under the new
-- version, so that a key planted in this table's envelopes cannot be used. Versions made before
-- this migration have none (NULL) until a holder of both versions adds it.
ALTER TABLE institution_keys ADD COLUMN link TEXT;

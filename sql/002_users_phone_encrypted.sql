-- users.phone holds a Fernet token (lib/fernet.h) made by the users
-- service with FERNET_KEYS: the database, its backups and the Redis cache
-- never see the number itself, and only the user and admins get it back.
-- Numbers stored in the clear before this migration were development data
-- (nothing was deployed with 001 alone); they are dropped rather than kept
-- readable. The check keeps a clear number from ever being stored again:
-- every Fernet token starts with version 0x80 and a 64-bit timestamp whose
-- top bytes are zero, which is "gAAAAA" in URL-safe base64.
UPDATE users SET phone = NULL, version = version + 1, updated_at = now()
 WHERE phone IS NOT NULL AND phone NOT LIKE 'gAAAAA%';
ALTER TABLE users ADD CONSTRAINT users_phone_encrypted
    CHECK (phone IS NULL OR phone LIKE 'gAAAAA%');

-- User names that are one name, or look like one, cannot both register
-- (issue 17: "admіn" with a Cyrillic і, or a fullwidth "ａdmin", beside
-- "admin"). Two columns, both unique, computed by the users service with
-- ICU (lib/namekey.h):
--   username_key       NFKC_Casefold(username): compatibility forms, case
--                      and default-ignorable characters folded. Logins look
--                      users up by it; it replaces the unique lower(username).
--   username_skeleton  the Unicode TR39 confusable skeleton of the key.
-- SQL cannot compute either (PostgreSQL 15 has no case folding beyond
-- lower() and no confusables table), so bin/migrate computes them for the
-- rows already there, with the same code as the service, into the
-- temporary table username_keys (id, key, skeleton) before this file runs
-- (src/migrate.c, its "username_keys" step; run by hand this file fails on
-- the missing table). Existing names that collide under the new rules stop
-- the migration, which bin/migrate reports by name: rename one of each pair
-- (UPDATE users SET username = ...), then run bin/migrate again.
ALTER TABLE users ADD COLUMN username_key text, ADD COLUMN username_skeleton text;
UPDATE users u SET username_key = k.key, username_skeleton = k.skeleton
  FROM username_keys k WHERE k.id = u.id;
ALTER TABLE users ALTER COLUMN username_key SET NOT NULL,
                  ALTER COLUMN username_skeleton SET NOT NULL;
DROP INDEX users_username_key;
CREATE UNIQUE INDEX users_username_key ON users (username_key);
CREATE UNIQUE INDEX users_username_skeleton_key ON users (username_skeleton);

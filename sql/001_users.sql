-- The users service (fcgi/users.c). Names are unique ignoring case, so
-- "Alice" cannot register beside "alice"; so are email addresses.
CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL CHECK (char_length(username) BETWEEN 3 AND 64),
    email         text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    full_name     text CHECK (char_length(full_name) <= 128),
    password_hash text NOT NULL,
    -- E.164 today; the security work stores it encrypted (Fernet)
    phone         text,
    scopes        text[] NOT NULL DEFAULT '{}',
    -- bumped by every update: the cache keeps only the newest version
    version       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- The public shape of a user, in one place: every answer of the service is
-- this compact JSON object (never the password hash). A one-expression SQL
-- function, so the planner inlines it into each prepared statement.
CREATE TYPE user_public AS (
    id bigint, username text, email text, full_name text, phone text,
    scopes text[], created_at timestamptz, updated_at timestamptz
);
CREATE FUNCTION user_json(u users) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT row_to_json(ROW(u.id, u.username, u.email, u.full_name, u.phone,
                           u.scopes, u.created_at, u.updated_at)::user_public)::text
$$;

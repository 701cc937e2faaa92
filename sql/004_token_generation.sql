-- A user's token generation (lib/token.h's "gen" claim): every token the
-- token route issues carries the user's token_gen of that moment, and a
-- change of password or email bumps it in the same transaction that writes
-- the revocation of the older generations to Redis (lib/denylist.h). Exact
-- where the issue time is not: iat counts whole seconds, so "tokens issued
-- before the change" cannot tell a token of the same second from one issued
-- just after. Starts at 1: tokens without the claim (bin/tokenctl's) count
-- as generation 0, older than any user's.
ALTER TABLE users ADD COLUMN token_gen bigint NOT NULL DEFAULT 1;

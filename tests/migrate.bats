#!/usr/bin/env bats
# bin/migrate against a real PostgreSQL: each migration once, in order, in a
# transaction of its own; a failing one rolled back with a clear error; a
# second run does nothing.

load helpers
load pg

setup_file() {
    start_pg --bare
}

teardown_file() {
    stop_pg
}

setup() {
    # a fresh database per test: drop and recreate `app`
    psql -X -q "postgresql:///postgres?host=$PG_DIR/run&user=postgres" \
        -c 'DROP DATABASE IF EXISTS app WITH (FORCE)' -c 'CREATE DATABASE app'
    MIG=$BATS_TEST_TMPDIR/sql
    mkdir -p "$MIG"
    # the repo's first migration, then each test's own (numbered from 002):
    # these tests are about migrate, not about the repo's later files
    cp "$REPO"/sql/001_users.sql "$MIG/"
}

migrate() { "$GW_BIN/migrate" --dir "$MIG" "$@"; }

@test "applies every migration in order, records each, and a second run changes nothing" {
    printf 'CREATE TABLE later (a int);\n' >"$MIG/010_later.sql"
    printf 'ALTER TABLE later ADD COLUMN b int;\n' >"$MIG/011_later_b.sql"
    run migrate
    assert_success
    assert_line --regexp '^migrate: applied 001_users.sql'
    assert_line --regexp '^migrate: applied 010_later.sql'
    assert_line --regexp '^migrate: applied 011_later_b.sql'
    # 011 depends on 010: the order was kept
    assert_equal "$(psql_app -c "SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM schema_migrations")" \
        "1:users,10:later,11:later_b"
    before=$(psql_app -c "SELECT string_agg(applied_at::text, ',') FROM schema_migrations")
    psql_app -c "INSERT INTO later VALUES (1, 2)"
    run migrate
    assert_success
    assert_output 'migrate: up to date (3 migrations, 0 applied now)'
    assert_equal "$(psql_app -c "SELECT string_agg(applied_at::text, ',') FROM schema_migrations")" "$before"
    assert_equal "$(psql_app -c "SELECT count(*) FROM later")" 1
    run migrate --status
    assert_success
    assert_output "$(printf 'applied  001_users.sql\napplied  010_later.sql\napplied  011_later_b.sql')"
}

@test "the default directory is sql/ beside bin/, and the repo's migrations give the users table" {
    # (the checkout's bin/ finds the checkout's sql/; the ASan build's
    # bin/, under build/asan/, has no sql/ beside it and is pointed there)
    run env -u MIGRATIONS_DIR "$REPO/bin/migrate"
    assert_success
    assert_line --regexp '^migrate: applied 001_users.sql'
    run env MIGRATIONS_DIR="$REPO/sql" "$GW_BIN/migrate"
    assert_success
    assert_equal "$(psql_app -c "SELECT to_regclass('users') IS NOT NULL")" t
}

@test "a failing migration is rolled back whole, names its file and line, and stops the run" {
    printf 'CREATE TABLE half (a int);\nINSERT INTO half VALUES (1);\nINSERT INTO nowhere VALUES (1);\n' \
        >"$MIG/002_broken.sql"
    printf 'CREATE TABLE after_broken (a int);\n' >"$MIG/003_after.sql"
    run migrate
    assert_failure 1
    assert_line --regexp '^migrate: applied 001_users.sql'
    assert_line 'migrate: 002_broken.sql:3: relation "nowhere" does not exist'
    assert_line 'migrate: 002_broken.sql rolled back; stopping'
    # nothing of 002 remains, 003 never ran, 001 stays applied
    assert_equal "$(psql_app -c "SELECT to_regclass('half') IS NULL, to_regclass('after_broken') IS NULL")" 't|t'
    assert_equal "$(psql_app -c "SELECT string_agg(version::text, ',') FROM schema_migrations")" 1
    # fixed, the next run applies it and the rest
    printf 'CREATE TABLE half (a int);\n' >"$MIG/002_broken.sql"
    run migrate
    assert_success
    assert_equal "$(psql_app -c "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations")" 1,2,3
}

@test "a migration edited after it was applied is an error" {
    run migrate
    assert_success
    printf '\n-- edited\n' >>"$MIG/001_users.sql"
    run migrate
    assert_failure 1
    assert_output --partial '001_users.sql changed after it was applied'
}

@test "two migrates at once apply each migration once" {
    printf 'CREATE TABLE once (a int);\nSELECT pg_sleep(0.5);\n' >"$MIG/002_once.sql"
    migrate >"$BATS_TEST_TMPDIR/a.out" 2>&1 &
    a=$!
    migrate >"$BATS_TEST_TMPDIR/b.out" 2>&1 &
    b=$!
    wait "$a"
    wait "$b"
    cat "$BATS_TEST_TMPDIR/a.out" "$BATS_TEST_TMPDIR/b.out"
    assert_equal "$(cat "$BATS_TEST_TMPDIR"/[ab].out | grep -c '^migrate: applied 002_once.sql')" 1
    assert_equal "$(psql_app -c "SELECT count(*) FROM schema_migrations")" 2
}

@test "bad names are skipped with a warning, duplicate versions refused" {
    printf 'SELECT 1;\n' >"$MIG/notes.sql"
    printf 'SELECT 1;\n' >"$MIG/README"
    run migrate
    assert_success
    assert_line 'migrate: ignoring notes.sql (not NNN_name.sql)'
    printf 'SELECT 1;\n' >"$MIG/001_again.sql"
    run migrate
    assert_failure 1
    assert_output --partial 'have the same version'
}

@test "no DATABASE_URL, or an unreachable one, is a clear error" {
    run env -u DATABASE_URL "$GW_BIN/migrate" --dir "$MIG"
    assert_failure 1
    assert_output 'migrate: DATABASE_URL is not set'
    run env DATABASE_URL="postgresql:///app?host=$BATS_TEST_TMPDIR/none&user=postgres" \
        "$GW_BIN/migrate" --dir "$MIG"
    assert_failure 1
    assert_output --partial 'migrate: cannot connect'
    run "$GW_BIN/migrate" --bogus
    assert_failure 2
}

@test "003 keys the users already there (NFKC_Casefold and TR39 skeleton, computed by migrate), then makes both unique" {
    cp "$REPO"/sql/002_*.sql "$MIG/"
    run migrate
    assert_success
    psql_app -c "INSERT INTO users (username, email, password_hash) VALUES
        ('Alice', 'a@x.io', 'h'), ('ＢＯＢ', 'b@x.io', 'h'), ('Straße', 's@x.io', 'h'),
        ('e' || U&'\0301' || 'mile', 'e@x.io', 'h'), ('O''Brien', 'o@x.io', 'h')"
    cp "$REPO"/sql/003_*.sql "$REPO"/sql/004_*.sql "$MIG/"
    run migrate
    assert_success
    assert_line 'migrate: 5 user names keyed'
    assert_line --regexp '^migrate: applied 003_username_keys.sql'
    assert_line --regexp '^migrate: applied 004_token_generation.sql'
    assert_equal "$(psql_app -c "SELECT string_agg(username_key, ',' ORDER BY id) FROM users")" \
        "alice,bob,strasse,$(printf '\u00e9')mile,o'brien"
    assert_equal "$(psql_app -c "SELECT count(DISTINCT username_skeleton), bool_and(token_gen = 1) FROM users")" '5|t'
    # the keys are what the users service computes: the same name in
    # another form, or a look-alike, is refused by the new indexes
    run psql_app -c "INSERT INTO users (username, username_key, username_skeleton, email, password_hash)
        SELECT 'ALICE', username_key, 'x', 'a2@x.io', 'h' FROM users WHERE id = 1"
    assert_failure
    assert_output --partial users_username_key
    run psql_app -c "INSERT INTO users (username, username_key, username_skeleton, email, password_hash)
        SELECT 'xyz', 'xyz', username_skeleton, 'a3@x.io', 'h' FROM users WHERE id = 2"
    assert_failure
    assert_output --partial users_username_skeleton_key
    # and no row can go without them
    run psql_app -c "INSERT INTO users (username, email, password_hash) VALUES ('later', 'l@x.io', 'h')"
    assert_failure
    assert_output --partial username_key
    # a second run changes nothing
    run migrate
    assert_success
    assert_output 'migrate: up to date (4 migrations, 0 applied now)'
}

@test "003 stops on existing names that would collide, naming them, changes nothing, and applies once they are renamed" {
    cp "$REPO"/sql/002_*.sql "$MIG/"
    run migrate
    assert_success
    # distinct under 001's lower(username), one name or look-alikes under 003's rules
    psql_app -c "INSERT INTO users (username, email, password_hash) VALUES
        ('admin', 'a1@x.io', 'h'), ('ａdmin', 'a2@x.io', 'h'), ('adm' || U&'\0456' || 'n', 'a3@x.io', 'h'),
        ('bob', 'b@x.io', 'h')"
    cp "$REPO"/sql/003_*.sql "$REPO"/sql/004_*.sql "$MIG/"
    run migrate
    assert_failure 1
    assert_line 'migrate: users 1 (admin), 2 (ａdmin) are one name (NFKC_Casefold)'
    assert_line "migrate: users 1 (admin), 2 (ａdmin), 3 (adm$(printf '\u0456')n) look alike (Unicode TR39 skeleton)"
    assert_line --partial 'rename all but one of each'
    assert_line 'migrate: 003_username_keys.sql rolled back; stopping'
    refute_line --partial '004_token_generation.sql'
    assert_equal "$(psql_app -c "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations")" 1,2
    assert_equal "$(psql_app -c "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'username_key'")" 0
    # renamed, they apply
    psql_app -c "UPDATE users SET username = 'admin_two' WHERE id = 2" -c "UPDATE users SET username = 'carol' WHERE id = 3"
    run migrate
    assert_success
    assert_line 'migrate: 4 user names keyed'
    assert_equal "$(psql_app -c "SELECT string_agg(username_key, ',' ORDER BY id) FROM users")" 'admin,admin_two,carol,bob'
}

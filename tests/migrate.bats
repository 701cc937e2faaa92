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

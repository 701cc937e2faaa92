#!/usr/bin/env bats
# tests/lint-bats, the check `make lint` runs on the suites: assertions that
# bash's errexit ignores mid-test are refused, with the file:line and rule;
# the suites as they are pass it.

load helpers

LINT=$REPO/tests/lint-bats

# planted FILE: a copy of a small suite with one line added mid-test
planted() {
    local f=$BATS_TEST_TMPDIR/$1.bats
    printf '%s\n' '@test "planted" {' '    run -0 true' '    assert_output ""' "$2" \
        '    [ 1 = 1 ]' '}' >"$f"
    echo "$f"
}

@test "lint-bats: the suites and their helpers as they are pass" {
    run -0 "$LINT"
    assert_output ""
}

@test "lint-bats: a mid-test ! is refused, with its file, line and rule" {
    local f
    f=$(planted bang '    ! grep -q secret /dev/null')
    run -1 "$LINT" "$f"
    assert_line --index 0 --partial "bang.bats:4: bang: ! grep -q"
    # also in a case branch, an else branch, and as a list's last part
    f=$(planted case '    case x in x) ! grep -q a /dev/null ;; esac')
    run -1 "$LINT" "$f"
    assert_line --index 0 --partial "case.bats:4: bang:"
    f=$(planted else '    if true; then :; else ! false; fi')
    run -1 "$LINT" "$f"
    assert_line --index 0 --partial "else.bats:4: bang:"
    f=$(planted last '    true || ! grep -q a /dev/null')
    run -1 "$LINT" "$f"
    assert_line --index 0 --partial "last.bats:4: bang:"
}

@test "lint-bats: a && list as a statement is refused; a condition, a fallback or a conditional value is not" {
    local f
    f=$(planted and '    [ 1 = 2 ] && [ 2 = 2 ]')
    run -1 "$LINT" "$f"
    assert_line --index 0 --partial "and.bats:4: and-chain: [ 1 = 2 ] && [ 2 = 2 ]"
    f=$(planted group '    [ -n x ] && { kill -0 $$; true; }')
    run -1 "$LINT" "$f"
    assert_line --index 0 --partial "group.bats:4: and-chain:"
    local ok
    for ok in '    [ 1 = 2 ] && [ 2 = 2 ] || fail "no"' \
        '    if [ 1 = 1 ] && ! false; then :; fi' \
        '    while [ 1 = 2 ] && true; do :; done' \
        '    for x in a; do [ "$x" = b ] && continue; done' \
        '    [ 1 = 2 ] && v=1' \
        '    x=$(cd / && pwd)' \
        '    (cd / && true)' \
        "    retry 1 0 eval '! false && true'" \
        '    run ! false' \
        '    ! false || fail "no"' \
        '    [ 1 = 2 ] && [ 2 = 2 ] # lint: ok reviewed'; do
        f=$(planted ok "$ok")
        run -0 "$LINT" "$f"
    done
    # a function's last statement is its status, which its caller checks
    printf '%s\n' 'up() { [ 1 = 1 ] && [ 2 = 2 ]; }' 'down() {' '    ! true' '}' >"$BATS_TEST_TMPDIR/fn.bash"
    run -0 "$LINT" "$BATS_TEST_TMPDIR/fn.bash"
}

@test "lint-bats: run with nothing checking its status or output is refused" {
    local f
    f=$(planted run '    run false')
    run -1 "$LINT" "$f"
    assert_line --index 0 --partial "run.bats:4: run-unchecked: run false"
    f=$(planted checked $'    run false\n    assert_failure')
    run -0 "$LINT" "$f"
}

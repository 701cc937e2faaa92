/* lib/beat.c: the schedule file (every field, every refusal with its
 * file:line, all or nothing) and the slots (`every` and `at`, the catch-up
 * window, midnight, exactly one slot per time however often beat runs). */
#include "../../lib/beat.c"

#include <stdlib.h>
#include <unistd.h>

#include "buf.h"
#include "check.h"

static struct beat_schedule s;
static char err[512];

static int parse(const char *text)
{
    beat_free(&s);
    err[0] = '\0';
    return beat_parse(&s, text, strlen(text), "sched", err, sizeof(err));
}

static void test_good(void)
{
    const char *text =
        "# periodic tasks\n"
        "\n"
        "cleanup   every 5m        tasks.add  [4, 4]\n"
        "  report\tat 14:00,02:30  tasks.xsum [[1, 2, 3]]  queue=reports priority=9\r\n"
        "   # indented comment\n"
        "k.w-1 every 1d pkg.mod.task_2 [] {\"a\": [1, \"x y\"], \"b\": null} "
        "window_is_not_for_every # trailing comment\n"
        "night at 23:59 tasks.mul [6,7] {} window=10m\n"
        "last every 30s tasks.add [\"#not a comment\", 1]";
    /* "window_is_not_for_every" is an unknown option: refused */
    check_int(parse(text), -1);
    check_str(err, "sched:6: unknown option 'window_is_not_for_every' (expected queue=NAME, "
                   "priority=N or window=DURATION)");
    check(s.n == 0 && s.entries == NULL, "nothing is kept from a refused file");

    text = "# periodic tasks\n"
           "\n"
           "cleanup   every 5m        tasks.add  [4, 4]\n"
           "  report\tat 14:00,02:30  tasks.xsum [[1, 2, 3]]  queue=reports priority=9\r\n"
           "   # indented comment\n"
           "k.w-1 every 1d pkg.mod.task_2 [] {\"a\": [1, \"x y\"], \"b\": null} # trailing\n"
           "night at 23:59 tasks.mul [6,7] {} window=10m\n"
           "last every 30s tasks.add [\"#not a comment\", 1]";
    if (!check_int(parse(text), 0)) {
        fprintf(stderr, "  err: %s\n", err);
        return;
    }
    if (!check_int(s.n, 5))
        return;
    struct beat_entry *e = &s.entries[0];
    check_str(e->name, "cleanup");
    check_str(e->task, "tasks.add");
    check_str(e->queue, "celery");
    check_int(e->priority, 0);
    check_int(e->every, 300);
    check_int(e->line, 3);
    check_json(e->args, "[4, 4]");
    check_json(e->kwargs, "{}");

    e = &s.entries[1];
    check_str(e->name, "report");
    check_str(e->task, "tasks.xsum");
    check_str(e->queue, "reports");
    check_int(e->priority, 9);
    check_int(e->every, 0);
    check_int(e->ntimes, 2);
    check_int(e->times[0], 2 * 3600 + 30 * 60); /* sorted */
    check_int(e->times[1], 14 * 3600);
    check_int(e->window, 3600);
    check_int(e->line, 4);
    check_json(e->args, "[[1, 2, 3]]");

    e = &s.entries[2];
    check_str(e->name, "k.w-1");
    check_str(e->task, "pkg.mod.task_2");
    check_int(e->every, 86400);
    check_json(e->args, "[]");
    check_json(e->kwargs, "{\"a\": [1, \"x y\"], \"b\": null}");

    e = &s.entries[3];
    check_int(e->window, 600);
    check_int(e->times[0], 23 * 3600 + 59 * 60);
    check_json(e->kwargs, "{}");

    e = &s.entries[4];
    check_int(e->every, 30);
    check_json(e->args, "[\"#not a comment\", 1]");
    check_int(e->line, 8);

    check_int(parse(""), 0);
    check_int(s.n, 0);
    check_int(parse("# nothing\n\n   \n\t\n"), 0);
    check_int(s.n, 0);
    check_int(parse("a every 1s t [] {}"), 0); /* the shortest */
    check_int(s.n, 1);
}

/* Each refused line: the message starts with "sched:<line>: " and contains
 * `want`, and nothing of the file is kept. */
static void refused(const char *text, int line, const char *want)
{
    int rc = parse(text);
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "sched:%d: ", line);
    if (!check(rc == -1 && strncmp(err, prefix, strlen(prefix)) == 0 && strstr(err, want) != NULL,
               "a bad schedule is refused with file:line and the reason")) {
        fprintf(stderr, "  text: %s\n  err:  %s\n  want: %s...%s\n", text, err, prefix, want);
    }
    check(s.n == 0 && s.entries == NULL, "and nothing is kept");
}

static void test_bad(void)
{
    const char *ok = "good every 1m tasks.add [1, 2]\n";
    char text[4096];
#define BAD(line, want)                                                                            \
    do {                                                                                           \
        snprintf(text, sizeof(text), "%s# c\n%s", ok, line);                                       \
        refused(text, 3, want);                                                                    \
    } while (0)
    BAD("x", "expected 'every' or 'at' after the name, got ''");
    BAD("x sometimes 5m tasks.add []", "expected 'every' or 'at' after the name, got 'sometimes'");
    BAD("x every", "expected a period after 'every'");
    BAD("x at", "expected times after 'at'");
    BAD("x every 5x tasks.add []", "every: expected a period such as 30s");
    BAD("x every 0m tasks.add []", "got '0m'");
    BAD("x every 5 tasks.add []", "got '5'");
    BAD("x every 05m tasks.add []", "got '05m'");
    BAD("x every -5m tasks.add []", "got '-5m'");
    BAD("x every 32d tasks.add []", "got '32d'");
    BAD("x every 99999999999999999999s tasks.add []", "every: expected");
    BAD("x every 5mm tasks.add []", "got '5mm'");
    BAD("x at 24:00 tasks.add []",
        "at: expected times HH:MM[,HH:MM...] (UTC, 00:00..23:59), got '24:00'");
    BAD("x at 2:30 tasks.add []", "at: expected times HH:MM");
    BAD("x at 02:60 tasks.add []", "at: expected times HH:MM");
    BAD("x at 02:30, tasks.add []", "at: expected times HH:MM");
    BAD("x at 02:30,,03:00 tasks.add []", "at: expected times HH:MM");
    BAD("x at 02:30;03:00 tasks.add []", "at: expected times HH:MM");
    BAD("x at 02:30,02:30 tasks.add []", "time 02:30 is given twice");
    BAD("x every 5m", "expected a task name");
    BAD("x every 5m tasks..add []", "task: expected a dotted name");
    BAD("x every 5m .add []", "task: expected a dotted name");
    BAD("x every 5m tasks.add. []", "task: expected a dotted name");
    BAD("x every 5m 1tasks.add []", "task: expected a dotted name");
    BAD("x every 5m tasks.1add []", "task: expected a dotted name");
    BAD("x every 5m tasks.add,[1] []", "task: expected a dotted name");
    BAD("x every 5m tasks.add", "expected ARGS, a JSON array");
    BAD("x every 5m tasks.add 4 4", "expected ARGS, a JSON array");
    BAD("x every 5m tasks.add {\"a\":1}", "expected ARGS, a JSON array");
    BAD("x every 5m tasks.add [1, 2", "args: bad JSON at column 26: ']' expected near end of file");
    BAD("x every 5m tasks.add [1, 2]x", "args: unexpected 'x' right after the JSON value");
    BAD("x every 5m tasks.add [1,]", "args: bad JSON");
    BAD("x every 5m tasks.add [1] {\"a\":1,\"a\":2}", "kwargs: bad JSON");
    BAD("x every 5m tasks.add [1] {\"a\":1", "kwargs: bad JSON");
    BAD("x every 5m tasks.add [1] [2]", "unknown option '[2]'");
    BAD("x every 5m tasks.add [1] queue=", "queue: expected 1..100 of [A-Za-z0-9._-], got ''");
    BAD("x every 5m tasks.add [1] queue=a/b", "got 'a/b'");
    BAD("x every 5m tasks.add [1] queue=revoked",
        "queue: 'revoked' is a name Redis or kombu keep for themselves");
    BAD("x every 5m tasks.add [1] queue=_kombu.binding.celery", "keep for themselves");
    BAD("x every 5m tasks.add [1] queue=a priority=1 queue=b", "option queue given twice");
    BAD("x every 5m tasks.add [1] priority=10", "priority: expected an integer in 0..9, got '10'");
    BAD("x every 5m tasks.add [1] priority=-1", "got '-1'");
    BAD("x every 5m tasks.add [1] priority= 1", "got ''");
    BAD("x every 5m tasks.add [1] Priority=1", "unknown option 'Priority=1'");
    BAD("x every 5m tasks.add [1] window=10m", "window= applies to 'at' entries only");
    BAD("x at 10:00 tasks.add [1] window=25h", "window: expected a duration");
    BAD("x at 10:00 tasks.add [1] window=0s", "window: expected a duration");
    BAD("x every 5m tasks.add [1] eta=5", "unknown option 'eta=5'");
    BAD("good every 5m tasks.add [1]", "name 'good' is already used on line 1");
    BAD("a/b every 5m tasks.add [1]", "name: expected 1..64 of [A-Za-z0-9._-], got 'a/b'");
    BAD("n:1 every 5m tasks.add [1]", "name: expected");
    BAD("x\xc3\xa9 every 5m tasks.add [1]", "name: expected");
    BAD("\"x\" every 5m tasks.add [1]", "name: expected");
#undef BAD

    /* limits */
    char name[80];
    memset(name, 'n', 65);
    name[65] = '\0';
    snprintf(text, sizeof(text), "%s every 1m t.a []", name);
    refused(text, 1, "name: expected 1..64");
    name[64] = '\0';
    snprintf(text, sizeof(text), "%s every 1m t.a []", name);
    check_int(parse(text), 0);
    char task[200];
    memset(task, 't', 129);
    task[129] = '\0';
    snprintf(text, sizeof(text), "x every 1m %s []", task);
    refused(text, 1, "task: expected");
    task[128] = '\0';
    snprintf(text, sizeof(text), "x every 1m %s []", task);
    check_int(parse(text), 0);
    char big[2000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(text, sizeof(text), "x every 1m %s []", big);
    refused(text, 1, "TASK is too long (1999 bytes)");

    /* 96 times are fine, 97 are not */
    struct buf b = {0};
    for (int n = 97; n >= 96; n--) {
        buf_clear(&b);
        buf_puts(&b, "x at ");
        for (int i = 0; i < n; i++)
            buf_printf(&b, "%s%02d:%02d", i ? "," : "", i * 14 / 60, i * 14 % 60);
        buf_puts(&b, " t.a []");
        if (n == 97) {
            refused(b.data, 1, "more than 96 times");
        } else if (check_int(parse(b.data), 0) && check_int(s.n, 1)) {
            check_int(s.entries[0].ntimes, 96);
            check_int(s.entries[0].times[95], 95 * 14 * 60);
        }
    }
    buf_free(&b);

    /* a NUL byte, counted on its line */
    const char nul[] = "a every 1m t.a []\nb every\0 1m t.a []\n";
    beat_free(&s);
    check_int(beat_parse(&s, nul, sizeof(nul) - 1, "sched", err, sizeof(err)), -1);
    check_str(err, "sched:2: a NUL byte (not a text file?)");

    /* too many entries */
    struct buf many = {0};
    beat_free(&s);
    for (int i = 0; i <= BEAT_ENTRIES_MAX; i++)
        buf_printf(&many, "e%d every 1m t.a [%d]\n", i, i);
    check_int(beat_parse(&s, many.data, many.len, "sched", err, sizeof(err)), -1);
    check_str(err, "sched:1001: more than 1000 entries");
    many.len -= strlen("e1000 every 1m t.a [1000]\n");
    check_int(beat_parse(&s, many.data, many.len, "sched", err, sizeof(err)), 0);
    check_str(s.entries[999].name, "e999");
    check_int(s.n, 1000);
    buf_free(&many);
    beat_free(&s);
}

static void test_duration(void)
{
    long v = -1;
    check(beat_parse_duration("1s", 1, 100, &v) == 0 && v == 1, "1s");
    check(beat_parse_duration("5m", 1, 1000, &v) == 0 && v == 300, "5m");
    check(beat_parse_duration("2h", 1, 10000, &v) == 0 && v == 7200, "2h");
    check(beat_parse_duration("31d", 1, 31L * 86400, &v) == 0 && v == 31L * 86400, "31d");
    v = 7;
    /* the last two overflow a long */
    static const char *const bad[] = {"", "s", "1", "0s", "01s", "1S", "1 s", " 1s", "1s ", "+1s",
                                      "-1s", "1.5m", "1w", "1sm", "99999999999999999999999d",
                                      "9223372036854775807d"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (!check(beat_parse_duration(bad[i], 1, 1000000, &v) == -1, "a bad duration is refused"))
            fprintf(stderr, "  '%s'\n", bad[i]);
    check(beat_parse_duration("101s", 1, 100, &v) == -1, "above max");
    check(beat_parse_duration("2m", 1, 100, &v) == -1, "above max after the unit");
    check(beat_parse_duration("1m", 61, 100, &v) == -1, "below min");
    check(beat_parse_duration(NULL, 1, 100, &v) == -1, "NULL");
    check_int(v, 7);
}

static const long long D = 86400;       /* a day */
static const long long T0 = 1764201600; /* 2025-11-27T00:00:00Z, a midnight */

static void test_due_every(void)
{
    check_int(parse("e every 5m t.a []"), 0);
    struct beat_entry *e = &s.entries[0];
    long long slot = -1;
    long ttl = -1;
    check(beat_due(e, T0, &slot, &ttl) == 1 && slot == T0, "due at a slot's start");
    check_int(ttl, 300 + BEAT_SKEW_S);
    check(beat_due(e, T0 + 299, &slot, &ttl) == 1 && slot == T0, "the same slot to its end");
    check(beat_due(e, T0 + 300, &slot, &ttl) == 1 && slot == T0 + 300, "the next slot");
    check(beat_due(e, 7, &slot, &ttl) == 1 && slot == 0, "near the epoch");
    slot = 5;
    check(beat_due(e, -1, &slot, &ttl) == 0 && slot == 5, "a time before the epoch is not due");

    check_int(parse("e every 7s t.a []"), 0);
    e = &s.entries[0];
    check(beat_due(e, 20, &slot, &ttl) == 1 && slot == 14 && ttl == 7 + BEAT_SKEW_S,
          "a period that does not divide a minute");

    /* running every second over a day gives every slot once, in order */
    check_int(parse("e every 1h t.a []"), 0);
    e = &s.entries[0];
    long long last = -1;
    int slots = 0, order = 1;
    for (long long now = T0; now < T0 + D; now += 13) {
        if (beat_due(e, now, &slot, &ttl) != 1)
            order = 0;
        if (slot != last) {
            order &= slot > last && slot % 3600 == 0 && slot <= now && now < slot + 3600;
            slots++;
            last = slot;
        }
    }
    check_int(slots, 24);
    check(order, "slots in order, each containing the times it is due at");
}

static void test_due_at(void)
{
    check_int(parse("r at 14:00,02:30 t.a []"), 0);
    struct beat_entry *e = &s.entries[0];
    long long slot = -1, t0230 = T0 + 2 * 3600 + 1800, t1400 = T0 + 14 * 3600;
    long ttl = -1;
    check(beat_due(e, t0230 - 1, &slot, &ttl) == 0, "not due before its time");
    check(beat_due(e, t0230, &slot, &ttl) == 1 && slot == t0230, "due at its time");
    check_int(ttl, 3600 + BEAT_SKEW_S);
    check(beat_due(e, t0230 + 3599, &slot, &ttl) == 1 && slot == t0230, "for the whole window");
    check(beat_due(e, t0230 + 3600, &slot, &ttl) == 0, "not after the window");
    check(beat_due(e, t1400 - 1, &slot, &ttl) == 0, "nor until the next time");
    check(beat_due(e, t1400 + 60, &slot, &ttl) == 1 && slot == t1400, "the next time");
    check(beat_due(e, T0 + D - 1, &slot, &ttl) == 0, "not at the end of the day");
    check(beat_due(e, T0 + D + 2 * 3600 + 1800, &slot, &ttl) == 1 && slot == t0230 + D,
          "the next day");

    /* a time late in the day stays due past midnight */
    check_int(parse("n at 23:30 t.a []"), 0);
    e = &s.entries[0];
    check(beat_due(e, T0 + 10 * 60, &slot, &ttl) == 1 && slot == T0 - 30 * 60,
          "yesterday's 23:30 is due at 00:10");
    check(beat_due(e, T0 + 30 * 60, &slot, &ttl) == 0, "but not at 00:30");
    check(beat_due(e, T0 + 23 * 3600 + 30 * 60, &slot, &ttl) == 1 &&
              slot == T0 + 23 * 3600 + 30 * 60,
          "today's 23:30");

    /* the window is cut at the next time, so slots never overlap */
    check_int(parse("q at 00:00,00:20,00:25 t.a [] window=2h"), 0);
    e = &s.entries[0];
    check(beat_due(e, T0 + 19 * 60 + 59, &slot, &ttl) == 1 && slot == T0 &&
              ttl == 1200 + BEAT_SKEW_S,
          "00:00's window ends at 00:20");
    check(beat_due(e, T0 + 20 * 60, &slot, &ttl) == 1 && slot == T0 + 1200, "00:20");
    check(beat_due(e, T0 + 25 * 60, &slot, &ttl) == 1 && slot == T0 + 1500 &&
              ttl == 7200 + BEAT_SKEW_S,
          "00:25 with its whole 2h window");
    check(beat_due(e, T0 + 2 * 3600 + 25 * 60, &slot, &ttl) == 0, "which ends at 02:25");

    check_int(parse("w at 12:00 t.a [] window=1m"), 0);
    e = &s.entries[0];
    check(beat_due(e, T0 + 12 * 3600 + 59, &slot, &ttl) == 1 && ttl == 60 + BEAT_SKEW_S,
          "a 1 min window");
    check(beat_due(e, T0 + 12 * 3600 + 60, &slot, &ttl) == 0, "is over after a minute");

    /* whatever the step of the runs (a crontab every minute, or one that
     * skipped some), each time of each day is due in exactly one slot, and
     * only inside its window */
    check_int(parse("z at 00:00,00:30,06:00,23:00 t.a []"), 0);
    e = &s.entries[0];
    static const int steps[] = {1, 60, 61, 97, 1799};
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        long long last = -1;
        int slots = 0, ok = 1;
        for (long long now = T0; now < T0 + 3 * D; now += steps[k]) {
            if (beat_due(e, now, &slot, &ttl) != 1)
                continue;
            ok &= slot <= now && now < slot + ttl - BEAT_SKEW_S && slot >= last;
            if (slot != last)
                slots++;
            last = slot;
        }
        /* 3 days of 4 times */
        if (!check(ok && slots == 12, "every slot once, in order, inside its window"))
            fprintf(stderr, "  step %d: %d slots\n", steps[k], slots);
    }
    /* a window shorter than the step between runs can be missed: 23:59's
     * ends at 00:00 */
    check_int(parse("m at 23:59,00:00 t.a []"), 0);
    e = &s.entries[0];
    check(beat_due(e, T0 + D - 1, &slot, &ttl) == 1 && slot == T0 + D - 60 &&
              ttl == 60 + BEAT_SKEW_S,
          "23:59 is due until 00:00");
    check(beat_due(e, T0 + D, &slot, &ttl) == 1 && slot == T0 + D, "then 00:00 is");
}

static void test_key_and_load(void)
{
    char key[64];
    beat_free(&s);
    check_int(beat_slot_key(key, sizeof(key), "cleanup", 1764201600), 0);
    check_str(key, "qrun:beat:cleanup:1764201600");
    check_int(beat_slot_key(key, 20, "cleanup", 1764201600), -1);

    char path[] = "/tmp/test_beat.XXXXXX";
    int fd = mkstemp(path);
    if (!check(fd >= 0, "a temp file"))
        return;
    const char *text = "a every 1m tasks.add [1, 2]\nb at 01:00 tasks.mul [2, 3] priority=2\n";
    check(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "written");
    close(fd);
    check_int(beat_load(&s, path, err, sizeof(err)), 0);
    check_int(s.n, 2);
    beat_free(&s);
    check_int(s.n, 0);
    beat_free(&s); /* twice is harmless */

    /* the error names the file given */
    FILE *f = fopen(path, "a");
    fputs("c every 1m tasks.add [1, 2] nope\n", f);
    fclose(f);
    check_int(beat_load(&s, path, err, sizeof(err)), -1);
    char want[128];
    snprintf(want, sizeof(want), "%s:3: unknown option 'nope'", path);
    check(strncmp(err, want, strlen(want)) == 0, "the file's name and line");
    unlink(path);
    check_int(beat_load(&s, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: No such file or directory", path);
    check_str(err, want);
    check(s.n == 0 && s.entries == NULL, "no entries");
}

int main(void)
{
    test_good();
    test_bad();
    test_duration();
    test_due_every();
    test_due_at();
    test_key_and_load();
    beat_free(&s);
    return check_done();
}

#ifndef BEAT_H
#define BEAT_H

#include <jansson.h>
#include <stddef.h>

/* Periodic tasks (Celery beat's job) for bin/qrunctl beat: the schedule
 * file and the slot each entry is due in. Pure: no Redis, no clock (the
 * caller passes `now`), no I/O but reading the file in beat_load.
 *
 * The schedule file, one entry per line, fields separated by blanks:
 *
 *   # NAME    WHEN            TASK       ARGS      [KWARGS]   [OPTION...]
 *   cleanup   every 5m        tasks.add  [4, 4]
 *   report    at 02:30,14:00  tasks.xsum [[1,2,3]]            queue=reports
 *   hello     every 1h        tasks.mul  [6, 7]    {}         priority=3
 *
 *   NAME     1..64 of [A-Za-z0-9._-], unique in the file (it names the
 *            entry's slot keys, qrun:beat:<NAME>:<slot>)
 *   WHEN     `every N<unit>` (unit s, m, h or d; 1 s .. 31 d), or
 *            `at HH:MM[,HH:MM...]` (UTC, 24-hour, two digits each, up to
 *            BEAT_TIMES_MAX times, no time twice)
 *   TASK     the full task name as a worker registers it: dot-separated
 *            identifiers ([A-Za-z_][A-Za-z0-9_]*), 1..128 characters
 *   ARGS     a JSON array (it may contain blanks)
 *   KWARGS   optionally, a JSON object (default {})
 *   OPTION   queue=NAME  (1..100 of [A-Za-z0-9._-], default celery)
 *            priority=N  (0..9, default 0; lower runs first)
 *            window=N<unit>  (`at` entries: how long after its time a slot
 *            may still be enqueued; default 1h, at most 24h)
 * Blank lines and lines whose first non-blank character is '#' are
 * ignored; a '#' token after the last field starts a comment.
 *
 * Slots. `every P`: the slots are [k*P, (k+1)*P) counted from the epoch
 * (so `every 1d` starts at midnight UTC); whenever beat runs it is due in
 * the current slot. `at T`: the slot of each time is [T, T + w) where w is
 * the window, cut short at the next time of the entry; beat runs within it
 * find it due, runs outside it do not. A slot is identified by its start
 * (epoch seconds), and enqueued at most once cluster-wide by taking its
 * key with SET NX; the key lives as long as the slot can still be due on
 * any host (the slot's length plus BEAT_SKEW_S for clocks that differ). */

#define BEAT_NAME_MAX 64
#define BEAT_TASK_MAX 128
#define BEAT_QUEUE_MAX 100
#define BEAT_TIMES_MAX 96
#define BEAT_SKEW_S 600          /* clock difference between hosts we tolerate */
#define BEAT_WINDOW_DEFAULT 3600 /* `at` catch-up window */
#define BEAT_FILE_MAX (1024 * 1024)
#define BEAT_ENTRIES_MAX 1000

struct beat_entry {
    char name[BEAT_NAME_MAX + 1];
    char task[BEAT_TASK_MAX + 1];
    char queue[BEAT_QUEUE_MAX + 1];
    json_t *args;   /* array, owned by the entry */
    json_t *kwargs; /* object, owned by the entry */
    int priority;
    long every;                /* seconds between slots; 0 for an `at` entry */
    int ntimes;                /* `at`: times[0..ntimes) in seconds after midnight UTC, */
    int times[BEAT_TIMES_MAX]; /* ascending */
    long window;               /* `at`: catch-up window in seconds */
    int line;                  /* where it was read */
};

struct beat_schedule {
    struct beat_entry *entries; /* [0..n), freed by beat_free */
    size_t n;
};

/* Parse a whole schedule from text[0..len); `fname` names it in errors.
 * All or nothing: returns 0 with every entry in *s (free with beat_free),
 * or -1 with *s empty and "fname:line: reason" in err. */
int beat_parse(struct beat_schedule *s, const char *text, size_t len, const char *fname, char *err,
               size_t errlen) __attribute__((warn_unused_result));

/* Read the file at path (at most BEAT_FILE_MAX bytes) and beat_parse it.
 * Same returns; a file that cannot be read is "path: reason". */
int beat_load(struct beat_schedule *s, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

void beat_free(struct beat_schedule *s);

/* Whether entry e is due at `now` (epoch seconds, >= 0). Returns 1 with the
 * slot's start in *slot and the lifetime its key needs in *ttl, or 0 (an
 * `at` entry outside every window). */
int beat_due(const struct beat_entry *e, long long now, long long *slot, long *ttl);

/* The slot key "qrun:beat:<name>:<slot>" into out; -1 if it does not fit. */
int beat_slot_key(char *out, size_t n, const char *name, long long slot);

/* Parse a duration "N<unit>" (unit s, m, h, d) of min..max seconds.
 * Returns 0 and sets *out, or -1. */
int beat_parse_duration(const char *s, long min, long max, long *out);

#endif

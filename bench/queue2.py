#!/usr/bin/python3
"""Measuring helpers for bench/queue2 (run with /usr/bin/python3: Debian's
python3-redis). Envelopes and small helpers come from taskbench.py. Each
subcommand prints one line of space-separated figures for the driver.

  preload URL KEY N MODE IDS [FLAKY_PCT ETA_PCT]
                               push N Celery v2 envelopes to list KEY (not the
                               queue: the driver RENAMEs it once the runner is
                               ready); ids and expected results to file IDS.
                               MODE plain: all tasks.add(i, i).
                               MODE mix: FLAKY_PCT % (20) tasks.flaky(1) (one
                               retry, then 1), ETA_PCT % (10) tasks.add(i, i)
                               with headers.eta RELEASE + 0..1 s, the rest
                               tasks.add(i, i), shuffled (seeded);
                               RELEASE = the preload's start + DELAY s (3),
                               written on the first line of IDS
                               -> "n"
  drain URL KEY QUEUE IDS      (mix: wait for RELEASE) RENAME KEY QUEUE, then
                               time until no message of the queue is left
                               anywhere (the queue's lists, its scheduled set,
                               every runner's in-flight lists: one atomic
                               script, every 5 ms); then read back every result
                               -> "n seconds tasks/s ok last_eta_s late_s"
  sleepers URL N SECS PGID IDS push N tasks.sleep(SECS), one at a time, each
                               once the one before is STARTED by a worker of
                               process group PGID; ids to IDS -> "pids"
  failover URL A B IDS LEASE   after a random 0..1 s, kill -9 process group A (a
                               runner and its workers holding the tasks in
                               IDS), then time until every task is STARTED by
                               a worker of group B (their meta's result.pid)
                               -> "seconds first_s beat_age_s b_lag_s"
                               beat_age: how old A's last heartbeat was at the
                               kill (A is due for reaping LEASE s after that
                               beat); b_lag: seconds - (LEASE - beat_age), how
                               long after that B had the tasks running

URL is a redis-py URL (unix:///path/redis.sock or redis://host:port/db).
"""
import datetime
import json
import os
import random
import signal
import sys
import time
import uuid

sys.dont_write_bytecode = True  # no bench/__pycache__ left in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taskbench import META, READY, connect, envelope  # noqa: E402

DELAY = 3.0  # preload start -> release of a mix (covers preload + runner start)

# How many messages of QUEUE are not settled: its lists (priority bands
# included), its scheduled set, and the in-flight lists of every registered
# runner (qrun:runners, each with its concurrency). A message is always in
# exactly one of them until its final result is stored (qrun.h), so 0 means
# every task is final. KEYS[1] queue name.
PENDING_LUA = """
local q = KEYS[1]
local n = redis.call('LLEN', q) + redis.call('ZCARD', 'qrun:scheduled:' .. q)
for _, b in ipairs({'\\6\\0223', '\\6\\0226', '\\6\\0229'}) do
  n = n + redis.call('LLEN', q .. b)
end
for _, id in ipairs(redis.call('ZRANGE', 'qrun:runners', 0, -1)) do
  local c = tonumber(redis.call('HGET', 'qrun:runner:' .. id, 'concurrency')) or 256
  for slot = 0, c - 1 do
    n = n + redis.call('LLEN', 'qrun:inflight:' .. id .. ':' .. slot)
  end
end
return n
"""


def iso(epoch):
    """headers.eta as Celery writes it: 2026-11-27T11:16:56.295718+00:00."""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat()


def with_eta(env, epoch):
    e = json.loads(env)
    e["headers"]["eta"] = iso(epoch)
    return json.dumps(e)


def cmd_preload(url, key, n, mode, ids_path, flaky_pct="20", eta_pct="10"):
    n = int(n)
    if mode not in ("plain", "mix"):
        print("preload: MODE is plain or mix", file=sys.stderr)
        return 2
    release = time.time() + DELAY
    rng = random.Random(4)
    r = connect(url)
    r.delete(key)
    lines = ["release %.6f" % (release if mode == "mix" else 0)]
    kinds = ["add"] * n
    if mode == "mix":  # exact shares, spread over the queue (seeded)
        nf = int(round(n * float(flaky_pct) / 100))
        ne = min(n - nf, int(round(n * float(eta_pct) / 100)))
        kinds = ["flaky"] * nf + ["eta"] * ne + ["add"] * (n - nf - ne)
        rng.shuffle(kinds)
    batch = []
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        tid = str(uuid.uuid4())
        kind = kinds[i]
        if kind == "flaky":
            env = envelope(tid, "tasks.flaky", [1])
            lines.append("%s flaky 1" % tid)
        elif kind == "eta":
            off = rng.uniform(0.0, 1.0)
            env = with_eta(envelope(tid, "tasks.add", [i, i]), release + off)
            lines.append("%s eta %d %.6f" % (tid, i + i, off))
        else:
            env = envelope(tid, "tasks.add", [i, i])
            lines.append("%s add %d" % (tid, i + i))
        batch.append(env)
        if len(batch) == 1000:
            pipe.lpush(key, *batch)  # LPUSH k a b c: a is RPOPed first
            batch = []
    if batch:
        pipe.lpush(key, *batch)
    pipe.execute()
    with open(ids_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(r.llen(key))
    return 0


def results(r, ids):
    """{id: meta dict or None} for every id, by MGET in chunks."""
    out = {}
    for i in range(0, len(ids), 2000):
        chunk = ids[i:i + 2000]
        for tid, raw in zip(chunk, r.mget([META + t for t in chunk])):
            out[tid] = json.loads(raw) if raw else None
    return out


def cmd_drain(url, key, queue, ids_path, timeout="300"):
    r = connect(url)
    lines = open(ids_path).read().split("\n")
    release = float(lines[0].split()[1])
    tasks = [ln.split() for ln in lines[1:] if ln.strip()]
    ids = [t[0] for t in tasks]
    last_eta = max([float(t[3]) for t in tasks if t[1] == "eta"] or [0.0])
    pending = r.register_script(PENDING_LUA)
    late = 0.0
    if release > 0:
        wait = release - time.time()
        if wait > 0:
            time.sleep(wait)
        late = time.time() - release  # > a few ms: the etas were less far ahead
    deadline = time.monotonic() + float(timeout)
    t0 = time.perf_counter()
    r.rename(key, queue)
    while pending(keys=[queue]) != 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    t1 = time.perf_counter()
    # Read back every result. None should be left unfinished (the count above
    # says so); if some are, the clock runs until they are final too.
    metas = results(r, ids)
    left = [t for t in ids if (metas[t] or {}).get("status") not in READY]
    if left:
        print("drain: %d tasks not final when the queue was empty" % len(left), file=sys.stderr)
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        m = results(r, left)
        left = [t for t in left if (m[t] or {}).get("status") not in READY]
        t1 = time.perf_counter()
    metas = results(r, ids)
    ok = 0
    for t in tasks:
        m = metas[t[0]] or {}
        if m.get("status") == "SUCCESS" and m.get("result") == int(t[2]):
            ok += 1
    secs = t1 - t0
    print("%d %.3f %.0f %d %.3f %.3f" % (len(ids), secs, len(ids) / secs, ok, last_eta, late))
    return 0 if ok == len(ids) else 1


def group_pids(pgid):
    """Live pids of process group pgid (from /proc, zombies left out)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp ...
        if fields[0] != "Z" and int(fields[2]) == int(pgid):
            pids.append(int(d))
    return pids


def started_by(meta, pids):
    if not meta or meta.get("status") != "STARTED":
        return None
    res = meta.get("result")
    pid = res.get("pid") if isinstance(res, dict) else None
    return pid if pid in pids else None


def cmd_sleepers(url, n, secs, pgid, ids_path, timeout="10"):
    r = connect(url)
    workers = [p for p in group_pids(pgid) if p != int(pgid)]
    ids, pids = [], []
    for _ in range(int(n)):
        tid = str(uuid.uuid4())
        r.lpush("celery", envelope(tid, "tasks.sleep", [float(secs)]))
        end = time.monotonic() + float(timeout)
        while True:
            raw = r.get(META + tid)
            pid = started_by(json.loads(raw) if raw else None, workers)
            if pid is not None:
                break
            if time.monotonic() > end:
                print("sleepers: %s not STARTED by group %s within %s s (%s)"
                      % (tid, pgid, timeout, raw), file=sys.stderr)
                return 1
            time.sleep(0.005)
        ids.append(tid)
        pids.append(pid)
    with open(ids_path, "w") as f:
        f.write("\n".join(ids) + "\n")
    print(" ".join(map(str, pids)))
    return 0 if len(set(pids)) == len(pids) else 1


def runner_of(r, pgid):
    """The registered runner id whose supervisor pid is pgid, or None."""
    for rid in r.zrange("qrun:runners", 0, -1):
        rid = rid.decode()
        if r.hget("qrun:runner:" + rid, "pid") == str(pgid).encode():
            return rid
    return None


def cmd_failover(url, a, b, ids_path, lease):
    r = connect(url)
    ids = open(ids_path).read().split()
    a_workers = [p for p in group_pids(a) if p != int(a)]
    b_workers = [p for p in group_pids(b) if p != int(b)]
    metas = results(r, ids)
    if any(started_by(metas[t], a_workers) is None for t in ids):
        print("failover: not every task is STARTED by group %s: %r" % (a, metas), file=sys.stderr)
        return 1
    rid = runner_of(r, a)
    # The kill at a random moment of A's and B's one-second beat cycles (they
    # started a fixed time apart): what a real death sees.
    time.sleep(random.uniform(0.0, 1.0))
    beat = r.zscore("qrun:runners", rid) if rid else None
    t0 = time.perf_counter()
    os.killpg(int(a), signal.SIGKILL)
    beat_age = time.time() - beat / 1000.0 if beat is not None else float("nan")
    deadline = time.monotonic() + 3 * float(lease) + 10
    done = {}
    while len(done) < len(ids) and time.monotonic() < deadline:
        for t, m in results(r, [t for t in ids if t not in done]).items():
            if started_by(m, b_workers) is not None:
                done[t] = time.perf_counter() - t0
        time.sleep(0.005)
    if len(done) < len(ids):
        print("failover: %d of %d tasks not STARTED by group %s within %.0f s"
              % (len(ids) - len(done), len(ids), b, 3 * float(lease) + 10), file=sys.stderr)
        return 1
    secs = max(done.values())
    # B's share: how long after A was due for reaping (LEASE after its last
    # beat) the tasks ran on B: B's reap tick (0..1 s) plus the claim.
    print("%.3f %.3f %.3f %.3f" % (secs, min(done.values()), beat_age,
                                   secs - (float(lease) - beat_age)))
    return 0


def main(argv):
    cmds = {"preload": cmd_preload, "drain": cmd_drain, "sleepers": cmd_sleepers,
            "failover": cmd_failover}
    if len(argv) < 2 or argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    return cmds[argv[1]](*argv[2:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/python3
"""Measuring helpers for bench/tasks (run with /usr/bin/python3: Debian's
python3-redis and python3-celery). Each subcommand prints one line of
space-separated figures for the driver to collect.

  preload URL KEY N IDS        push N tasks.add Celery v2 envelopes to list KEY
                               (not the queue: the driver RENAMEs it onto the
                               queue once the worker is ready), ids to file IDS
  drain URL KEY QUEUE IDS      RENAME KEY QUEUE, then time until every task in
                               IDS has a ready result
                               -> "n seconds tasks/s succeeded"
  rt URL N MODE                N sequential round trips, LPUSH of an envelope
                               to the result's PUBLISH (MODE worker), or the
                               client's own floor (MODE floor: LPUSH to a
                               scratch list, PUBLISH the result itself)
                               -> "p50_ms p99_ms mean_ms"
  client N                     the Celery client (celery_app, BENCH_REDIS_URL):
                               add.delay(i, i) N times, then .get() each
                               -> "n seconds tasks/s submit_tasks/s"
  http-rt HOST PORT N          N sequential POST /api/tasks/add + GET ?wait=5
                               on one keep-alive connection
                               -> "p50_ms p99_ms post_p50_ms get_p50_ms"
  http-check URL HOST PORT SINCE  after wrk: wait until the queue is drained,
                               count the stored results, read a sample back
                               over HTTP -> "tasks succeeded other e2e_tasks/s
                               sample_ok sample_n"

URL is a redis-py URL (unix:///path/redis.sock or redis://host:port/db).
"""
import base64
import http.client
import json
import os
import random
import sys
import time
import uuid

import redis

READY = ("SUCCESS", "FAILURE", "REVOKED")
META = "celery-task-meta-"
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
ORIGIN = "bench@%s" % os.uname().nodename


def envelope(task_id, name, args, kwargs=None, queue="celery"):
    """A Celery 5.2 protocol-2 message, as add.delay() sends it."""
    body = json.dumps([args, kwargs or {}, EMBED]).encode()
    return json.dumps({
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": name, "id": task_id, "shadow": None,
            "eta": None, "expires": None, "group": None, "group_index": None,
            "retries": 0, "timelimit": [None, None], "root_id": task_id,
            "parent_id": None, "argsrepr": repr(tuple(args)),
            "kwargsrepr": repr(kwargs or {}), "origin": ORIGIN,
            "ignore_result": False,
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "3b4c1a7e-bench-0000-0000-000000000000",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    })


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def status_of(raw):
    if raw is None:
        return None
    try:
        return json.loads(raw).get("status")
    except ValueError:
        return "BAD-JSON"


def connect(url):
    return redis.Redis.from_url(url)


def cmd_preload(url, key, n, ids_path):
    r = connect(url)
    r.delete(key)
    ids = []
    batch = []
    pipe = r.pipeline(transaction=False)
    for i in range(int(n)):
        tid = str(uuid.uuid4())
        ids.append(tid)
        batch.append(envelope(tid, "tasks.add", [i, i]))
        if len(batch) == 1000:
            pipe.lpush(key, *batch)  # LPUSH k a b c: a is RPOPed first
            batch = []
    if batch:
        pipe.lpush(key, *batch)
    pipe.execute()
    with open(ids_path, "w") as f:
        f.write("\n".join(ids) + "\n")
    print(r.llen(key))


def unfinished(r, ids):
    left = []
    for i in range(0, len(ids), 2000):
        chunk = ids[i:i + 2000]
        for tid, raw in zip(chunk, r.mget([META + t for t in chunk])):
            if status_of(raw) not in READY:
                left.append(tid)
    return left


def cmd_drain(url, key, queue, ids_path, timeout="300"):
    r = connect(url)
    ids = open(ids_path).read().split()
    deadline = time.monotonic() + float(timeout)
    tail = [META + t for t in ids[-64:]]  # the last ones claimed (FIFO)
    t0 = time.perf_counter()
    r.rename(key, queue)
    while time.monotonic() < deadline:
        if r.llen(queue) == 0 and all(status_of(v) in READY for v in r.mget(tail)):
            break
        time.sleep(0.005)
    t1 = time.perf_counter()
    # Every task, not only the tail: if some were still running (a worker
    # stalled on an early one), the clock runs until they are done too.
    left = unfinished(r, ids)
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = unfinished(r, left)
        t1 = time.perf_counter()
    ok = 0
    for i in range(0, len(ids), 2000):
        chunk = ids[i:i + 2000]
        for j, raw in enumerate(r.mget([META + t for t in chunk])):
            if raw is not None:
                m = json.loads(raw)
                n = i + j
                if m.get("status") == "SUCCESS" and m.get("result") == n + n:
                    ok += 1
    secs = t1 - t0
    print("%d %.3f %.0f %d" % (len(ids), secs, len(ids) / secs, ok))
    return 0 if ok == len(ids) else 1


def cmd_rt(url, n, mode, queue="celery"):
    n = int(n)
    r = connect(url)
    p = r.pubsub(ignore_subscribe_messages=True)
    p.psubscribe(META + "*")
    while p.get_message(timeout=1.0) is None and not p.subscribed:
        pass
    lat = []
    scratch = "bench:rt-floor"
    warm = 50
    for i in range(warm + n):
        tid = str(uuid.uuid4())
        env = envelope(tid, "tasks.add", [i, 1])
        t0 = time.perf_counter()
        if mode == "floor":
            r.lpush(scratch, env)
            r.publish(META + tid, json.dumps({"status": "SUCCESS", "result": i + 1, "task_id": tid}))
        else:
            r.lpush(queue, env)
        end = time.monotonic() + 10
        while True:
            m = p.get_message(timeout=max(0.0, end - time.monotonic()))
            if m is None:
                if time.monotonic() >= end:
                    print("rt: no result for %s within 10 s" % tid, file=sys.stderr)
                    return 1
                continue
            if m["type"] != "pmessage":
                continue
            d = json.loads(m["data"])
            if d.get("task_id") == tid and d.get("status") in READY:
                if d.get("result") != i + 1:
                    print("rt: wrong result %r" % (d,), file=sys.stderr)
                    return 1
                break
        if i >= warm:
            lat.append(time.perf_counter() - t0)
        if mode == "floor" and i % 500 == 0:
            r.delete(scratch)
    r.delete(scratch)
    ms = [x * 1000 for x in lat]
    print("%.3f %.3f %.3f" % (pct(ms, 50), pct(ms, 99), sum(ms) / len(ms)))
    return 0


def cmd_client(n):
    n = int(n)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from celery_app import add
    add.delay(1, 1).get(timeout=10)  # connections up, worker warm
    t0 = time.perf_counter()
    results = [add.delay(i, i) for i in range(n)]
    t1 = time.perf_counter()
    for i, res in enumerate(results):
        v = res.get(timeout=60)
        if v != i + i:
            print("client: task %d gave %r" % (i, v), file=sys.stderr)
            return 1
    t2 = time.perf_counter()
    print("%d %.3f %.0f %.0f" % (n, t2 - t0, n / (t2 - t0), n / (t1 - t0)))
    return 0


def cmd_http_rt(host, port, n):
    n = int(n)
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    body = json.dumps({"args": [1, 2]})
    hdrs = {"Content-Type": "application/json"}
    tot, posts, gets = [], [], []
    for i in range(50 + n):
        t0 = time.perf_counter()
        c.request("POST", "/api/tasks/add", body, hdrs)
        resp = c.getresponse()
        data = resp.read()
        if resp.status != 202:
            print("http-rt: POST %d %s" % (resp.status, data[:200]), file=sys.stderr)
            return 1
        tid = json.loads(data)["id"]
        t1 = time.perf_counter()
        c.request("GET", "/api/tasks/%s?wait=5" % tid)
        resp = c.getresponse()
        data = resp.read()
        t2 = time.perf_counter()
        d = json.loads(data)
        if resp.status != 200 or d.get("status") != "SUCCESS" or d.get("result") != 3:
            print("http-rt: GET %d %s" % (resp.status, data[:200]), file=sys.stderr)
            return 1
        if i >= 50:
            tot.append((t2 - t0) * 1000)
            posts.append((t1 - t0) * 1000)
            gets.append((t2 - t1) * 1000)
    print("%.3f %.3f %.3f %.3f" % (pct(tot, 50), pct(tot, 99), pct(posts, 50), pct(gets, 50)))
    return 0


def cmd_http_check(url, host, port, since, queue="celery", timeout="120"):
    r = connect(url)
    deadline = time.monotonic() + float(timeout)
    keys = []
    while time.monotonic() < deadline:
        if r.llen(queue) == 0 and not any(r.llen(k) for k in r.scan_iter("qrun:inflight:*", count=1000)):
            keys = list(r.scan_iter(META + "*", count=5000))
            left = 0
            for i in range(0, len(keys), 2000):
                left += sum(status_of(v) not in READY for v in r.mget(keys[i:i + 2000]))
            if left == 0:
                break
        time.sleep(0.02)
    done = time.time()
    ok = other = 0
    for i in range(0, len(keys), 2000):
        for raw in r.mget(keys[i:i + 2000]):
            m = json.loads(raw) if raw else {}
            if m.get("status") == "SUCCESS" and m.get("result") == 5:
                ok += 1
            else:
                other += 1
    sample = random.sample(keys, min(20, len(keys)))
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    sample_ok = 0
    for k in sample:
        tid = k.decode()[len(META):]
        c.request("GET", "/api/tasks/%s" % tid)
        resp = c.getresponse()
        d = json.loads(resp.read())
        if resp.status == 200 and d.get("status") == "SUCCESS" and d.get("result") == 5 and d.get("id") == tid:
            sample_ok += 1
    print("%d %d %d %.0f %d %d" % (len(keys), ok, other, ok / (done - float(since)), sample_ok, len(sample)))
    return 0


def main(argv):
    cmds = {"preload": cmd_preload, "drain": cmd_drain, "rt": cmd_rt, "client": cmd_client,
            "http-rt": cmd_http_rt, "http-check": cmd_http_check}
    if len(argv) < 2 or argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    return cmds[argv[1]](*argv[2:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

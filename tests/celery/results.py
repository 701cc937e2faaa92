"""results.py FILE: read the "id expected-result-json" lines enqueue.py wrote
and the stored results of REDIS_SOCK; print
  success=N wrong=N missing=N other=N
(success: SUCCESS with the expected result and task_id; wrong: SUCCESS with
another value; missing: no result key; other: any other state)."""
import json
import os
import sys

import redis


def main(path):
    r = redis.Redis(unix_socket_path=os.environ["REDIS_SOCK"],
                    password=open(os.environ["REDIS_DIR"] + "/password").read().strip())
    with open(path) as f:
        rows = [line.split(" ", 1) for line in f if line.strip()]
    counts = {"success": 0, "wrong": 0, "missing": 0, "other": 0}
    for start in range(0, len(rows), 1000):
        chunk = rows[start:start + 1000]
        metas = r.mget([f"celery-task-meta-{tid}" for tid, _ in chunk])
        for (tid, expected), raw in zip(chunk, metas):
            if raw is None:
                counts["missing"] += 1
                continue
            m = json.loads(raw)
            if m.get("status") != "SUCCESS":
                counts["other"] += 1
            elif m.get("result") == json.loads(expected) and m.get("task_id") == tid:
                counts["success"] += 1
            else:
                counts["wrong"] += 1
    print(" ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    main(*sys.argv[1:])

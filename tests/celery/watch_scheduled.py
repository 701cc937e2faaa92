"""watch_scheduled.py QUEUE OUT STOPFILE [TIMEOUT]: poll the ZSET
qrun:scheduled:QUEUE of REDIS_SOCK every 2 ms and append one JSON line to OUT
for each member not seen before: {"seen_ms": when this script first saw it
(ms since epoch), "score": its score, "msg": the member (the raw Celery
message)}. Writes OUT.ready once polling, and stops when STOPFILE exists or
after TIMEOUT seconds (default 60). For the retry suites: what the runner
schedules, and when, without racing the promoter from bash."""
import json
import os
import sys
import time

import redis


def main(queue, out, stopfile, timeout="60"):
    r = redis.Redis(unix_socket_path=os.environ["REDIS_SOCK"],
                    password=open(os.environ["REDIS_DIR"] + "/password").read().strip())
    key = f"qrun:scheduled:{queue}"
    seen = set()
    deadline = time.time() + float(timeout)
    with open(out, "a") as f:
        open(out + ".ready", "w").close()
        while time.time() < deadline and not os.path.exists(stopfile):
            for member, score in r.zrange(key, 0, -1, withscores=True):
                if member in seen:
                    continue
                seen.add(member)
                f.write(json.dumps({"seen_ms": int(time.time() * 1000), "score": score,
                                    "msg": member.decode()}) + "\n")
                f.flush()
            time.sleep(0.002)


if __name__ == "__main__":
    main(*sys.argv[1:])

"""enqueue.py N OUT [KIND [QUEUE]]: push N Celery protocol-v2 messages straight
onto the QUEUE list (default `celery`) of REDIS_SOCK (one pipeline, as
kombu's LPUSH would), and write "id expected-result-json" lines to OUT for
results.py.
KIND mix (default): tasks.add / tasks.mul / tasks.xsum with varying args;
KIND sleep:SECONDS: tasks.sleep(SECONDS)."""
import base64
import json
import os
import sys
import uuid

import redis


def message(task, args, task_id, queue="celery"):
    body = [args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    return json.dumps({
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None,
            "expires": None, "group": None, "group_index": None, "retries": 0,
            "timelimit": [None, None], "root_id": task_id, "parent_id": None,
            "argsrepr": repr(tuple(args)), "kwargsrepr": "{}", "origin": "enqueue.py",
            "ignore_result": False,
        },
        "properties": {
            "correlation_id": task_id, "reply_to": str(uuid.uuid4()), "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
            "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    })


def task_for(i, kind):
    if kind.startswith("sleep:"):
        s = float(kind[6:])
        return "tasks.sleep", [s], s
    if i % 3 == 0:
        return "tasks.add", [i, 2 * i], 3 * i
    if i % 3 == 1:
        return "tasks.mul", [i, 7], 7 * i
    return "tasks.xsum", [[i, i + 1, i + 2]], 3 * i + 3


def main(n, out, kind="mix", queue="celery"):
    r = redis.Redis(unix_socket_path=os.environ["REDIS_SOCK"],
                    password=open(os.environ["REDIS_DIR"] + "/password").read().strip())
    pipe = r.pipeline(transaction=False)
    with open(out, "a") as f:
        for i in range(int(n)):
            task, args, expected = task_for(i, kind)
            task_id = str(uuid.uuid4())
            pipe.lpush(queue, message(task, args, task_id, queue))
            f.write(f"{task_id} {json.dumps(expected)}\n")
            if i % 1000 == 999:
                pipe.execute()
    pipe.execute()


if __name__ == "__main__":
    main(*sys.argv[1:])

"""The task module that bench/tasks runs under a real Python Celery worker
and uses as the Python client of our runner: the same task names as
bin/queue-runner's registry (tasks.add, tasks.mul, ...), Celery's default
settings otherwise (prefork pool, prefetch 4, early ack, JSON, protocol 2).

  BENCH_REDIS_URL   broker and result backend, e.g. redis://127.0.0.1:PORT/0
  BENCH_READY_FILE  if set, the worker writes this file once it is ready
                    (Celery's worker_ready signal), so the benchmark knows
                    when to release the pre-loaded queue to it.
"""
import os
import time

from celery import Celery
from celery.signals import worker_ready

url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("tasks", broker=url, backend=url)


@app.task(name="tasks.add")
def add(x, y):
    return x + y


@app.task(name="tasks.mul")
def mul(x, y):
    return x * y


@app.task(name="tasks.xsum")
def xsum(numbers):
    return sum(numbers)


@app.task(name="tasks.sleep")
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@app.task(name="tasks.fail")
def fail(message):
    raise ValueError(message)


@worker_ready.connect
def _ready(**_):
    path = os.environ.get("BENCH_READY_FILE")
    if path:
        with open(path, "w") as f:
            f.write("ready\n")

"""The task registry of bin/queue-runner, in Python: the same names
(tasks.add, tasks.mul, tasks.xsum, tasks.sleep, tasks.fail) and semantics,
for the Celery interoperability tests. Broker and result backend: the test's
redis, from CELERY_URL (redis://127.0.0.1:PORT/0)."""
import os
import time

from celery import Celery

app = Celery("tasks", broker=os.environ["CELERY_URL"], backend=os.environ["CELERY_URL"])
app.conf.update(
    task_track_started=True,  # STARTED is stored, as our runner does
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task
def add(x, y):
    return x + y


@app.task
def mul(x, y):
    return x * y


@app.task
def xsum(numbers):
    return sum(numbers)


@app.task
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@app.task
def fail(message):
    raise ValueError(message)


@app.task(bind=True, max_retries=3)
def flaky(self, times):
    """Fails (asking to be retried) until it has been retried `times` times,
    then returns how many retries it took: lib/tasks.c's tasks.flaky."""
    if self.request.retries >= times:
        return self.request.retries
    raise self.retry(exc=ValueError(
        f"flaky: attempt {self.request.retries + 1} of {times + 1} failed"), countdown=0.1)

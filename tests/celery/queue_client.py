"""Unmodified Celery client calls for the queue part 2 suites (queue_retry,
queue_revoke, queue_limits): countdown, expires, named queues, retries seen
from the client, time limits in the message, revoke broadcasts. Each case
prints what it got on one line; the bats test compares.
  queue_client.py countdown S X Y     add.apply_async((X, Y), countdown=S).get()
                                      prints: id result sent_epoch done_epoch
  queue_client.py send_countdown S X Y   the same, no wait       prints: id
  queue_client.py send_expired X Y    add with expires 10 s ago    prints: id
  queue_client.py send_q QUEUE X Y    add.apply_async(queue=QUEUE) prints: id
  queue_client.py send_sleep S        sleep.delay(S)               prints: id
  queue_client.py retry_state TIMES   flaky.delay(TIMES), polling .state every
                                      10 ms until ready, then .get(): must raise
                                      prints: id STATES module.Class args
                                      (STATES: the distinct states seen, in order)
  queue_client.py timelimit S HARD SOFT   sleep.apply_async((S,), time_limit=HARD,
                                      soft_time_limit=SOFT) (0: none).get(): must raise
                                      prints: id module.Class elapsed_seconds
  queue_client.py revoke ID [terminate]   app.control.revoke(ID[, terminate=True])
"""
import datetime
import sys
import time

import tasks


def raised(res, timeout):
    """.get() the result, which must raise: (module.Class, args)."""
    try:
        value = res.get(timeout=timeout)
    except Exception as e:  # the exception rebuilt from the stored state
        cls = type(e)
        return f"{cls.__module__}.{cls.__qualname__}", list(e.args)
    print(res.id, "no exception, got", repr(value))
    sys.exit(1)


def main(case, *args):
    if case == "countdown":
        s, x, y = float(args[0]), int(args[1]), int(args[2])
        sent = time.time()
        res = tasks.add.apply_async((x, y), countdown=s)
        value = res.get(timeout=s + 30)
        print(res.id, value, f"{sent:.3f}", f"{time.time():.3f}")
    elif case == "send_countdown":
        s, x, y = float(args[0]), int(args[1]), int(args[2])
        print(tasks.add.apply_async((x, y), countdown=s).id)
    elif case == "send_expired":
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=10)
        print(tasks.add.apply_async((int(args[0]), int(args[1])), expires=past).id)
    elif case == "send_q":
        print(tasks.add.apply_async((int(args[1]), int(args[2])), queue=args[0]).id)
    elif case == "send_sleep":
        print(tasks.sleep.delay(float(args[0])).id)
    elif case == "retry_state":
        res = tasks.flaky.delay(int(args[0]))
        seen = []
        deadline = time.time() + 60
        while time.time() < deadline:
            state = res.state
            if not seen or seen[-1] != state:
                seen.append(state)
            if state in ("SUCCESS", "FAILURE", "REVOKED"):
                break
            time.sleep(0.01)
        cls, exc_args = raised(res, 10)
        print(res.id, ",".join(seen), cls, exc_args)
    elif case == "timelimit":
        s, hard, soft = float(args[0]), float(args[1]), float(args[2])
        t0 = time.time()
        res = tasks.sleep.apply_async((s,), time_limit=hard or None, soft_time_limit=soft or None)
        cls, _ = raised(res, 30)
        print(res.id, cls, f"{time.time() - t0:.3f}")
    elif case == "revoke":
        terminate = len(args) > 1 and args[1] == "terminate"
        tasks.app.control.revoke(args[0], terminate=terminate)
        print("revoked", args[0])
    else:
        sys.exit(f"queue_client.py: unknown case {case}")


if __name__ == "__main__":
    main(*sys.argv[1:])

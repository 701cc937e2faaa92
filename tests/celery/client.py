"""Unmodified Celery client calls for tests/celery_interop.bats; each case
prints what it got, the bats test compares.
  client.py add X Y        add.delay(X, Y).get(timeout=10)      prints: id result
  client.py send X Y       add.delay(X, Y), no wait             prints: id
  client.py fail MSG       fail.delay(MSG).get(): must raise    prints: id module.Class args
  client.py unknown NAME   send_task(NAME).get(): must raise    prints: id module.Class args
"""
import sys

import celery.exceptions

import tasks


def raised(res):
    try:
        value = res.get(timeout=10)
    except celery.exceptions.TimeoutError:
        raise
    except Exception as e:  # the exception rebuilt from the stored FAILURE
        cls = type(e)
        print(res.id, f"{cls.__module__}.{cls.__qualname__}", list(e.args),
              isinstance(e, celery.exceptions.NotRegistered))
        return
    print(res.id, "no exception, got", repr(value))
    sys.exit(1)


def main(case, *args):
    if case == "add":
        res = tasks.add.delay(int(args[0]), int(args[1]))
        print(res.id, res.get(timeout=10))
    elif case == "send":
        print(tasks.add.delay(int(args[0]), int(args[1])).id)
    elif case == "fail":
        raised(tasks.fail.delay(args[0]))
    elif case == "unknown":
        raised(tasks.app.send_task(args[0]))
    else:
        sys.exit(f"client.py: unknown case {case}")


if __name__ == "__main__":
    main(*sys.argv[1:])

#!/usr/bin/python3
"""A slow client, many times over (tests/slowloris.bats, doc/gateway-limits.md).

  slowloris.py HOST PORT [options]

Opens --conns TCP connections to HOST:PORT from --source (an address of
this machine: loopback has 127.0.0.0/8), --rate per second, each one
starting a request and never finishing it: the request line and a Host
header, then one more header line every --interval seconds (--mode
headers), or complete headers announcing a body of 1 MB and then one byte of
it every --interval seconds (--mode body). A connection that is refused or
closed is opened again at once while --reopen is set, so the attacker keeps
as many as it can. Stops by itself after --duration seconds, closes every
connection, and prints one JSON object: how many connections were opened,
refused (connect failed or reset before anything came back), answered (the
server sent something: an error status) and closed by the server without
an answer, the most open at once, how many were still open at the end, and
the longest any single connection stayed open (seconds). --ready FILE: FILE
is written once --conns connections at once have sent their first bytes
(the attack is in place), or when the first --conns attempts are over.
"""
import argparse
import errno
import json
import selectors
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--source", default="127.0.0.2")
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=1000.0, help="new connections per second")
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--mode", choices=("headers", "body"), default="headers")
    ap.add_argument("--path", default="/api/hello/world")
    ap.add_argument("--reopen", action="store_true")
    ap.add_argument("--ready", help="file to write once --conns connections have sent their first bytes")
    a = ap.parse_args()

    sel = selectors.DefaultSelector()
    start = time.monotonic()
    end = start + a.duration
    st = {"opened": 0, "refused": 0, "answered": 0, "closed": 0, "max_open": 0, "open_at_end": 0,
          "longest_s": 0.0, "statuses": {}}
    conns = {}  # socket -> [opened_at, next_drip, connected]

    def first_bytes():
        if a.mode == "headers":
            return ("GET %s HTTP/1.1\r\nHost: x\r\n" % a.path).encode()
        return ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000000\r\n\r\n" % a.path).encode()

    def drip():
        return b"X-a: b\r\n" if a.mode == "headers" else b"x"

    def open_one(now):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((a.source, 0))
            s.connect((a.host, a.port))
        except BlockingIOError:
            pass
        except OSError as e:
            s.close()
            if e.errno in (errno.EMFILE, errno.ENFILE):
                raise
            st["refused"] += 1
            return
        st["opened"] += 1
        conns[s] = [now, now + a.interval, False]
        sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ)

    def drop(s, now, why):
        info = conns.pop(s)
        sel.unregister(s)
        s.close()
        st["longest_s"] = max(st["longest_s"], now - info[0])
        if why:
            st[why] += 1

    wanted = a.conns
    made = 0
    ready_done = False
    while True:
        now = time.monotonic()
        if now >= end:
            break
        # open connections at the given rate, up to --conns at once
        due = min(wanted, int((now - start) * a.rate) + 1)
        while made < due:
            open_one(now)
            made += 1
        if a.reopen:
            while len(conns) < wanted and made >= wanted:
                before = len(conns)
                open_one(now)
                if len(conns) == before:
                    break
        st["max_open"] = max(st["max_open"], len(conns))
        for key, ev in sel.select(timeout=0.05):
            s = key.fileobj
            info = conns.get(s)
            if info is None:
                continue
            if ev & selectors.EVENT_READ:
                try:
                    data = s.recv(4096)
                except OSError:
                    drop(s, now, "refused" if not info[2] else "closed")
                    continue
                if data:
                    parts = data.split(b" ", 2)
                    code = parts[1].decode(errors="replace") if len(parts) > 1 else "?"
                    st["statuses"][code] = st["statuses"].get(code, 0) + 1
                    drop(s, now, "answered")
                else:
                    drop(s, now, "closed" if info[2] else "refused")
                continue
            if ev & selectors.EVENT_WRITE and not info[2]:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err != 0:
                    drop(s, now, "refused")
                    continue
                info[2] = True
                sel.modify(s, selectors.EVENT_READ)
                try:
                    s.send(first_bytes())
                except OSError:
                    drop(s, now, "closed")
        if a.ready and not ready_done:
            started = sum(1 for info in conns.values() if info[2])
            settled = made >= wanted and all(info[2] for info in conns.values())
            if started >= wanted or settled:
                with open(a.ready, "w") as f:
                    f.write("%d\n" % started)
                ready_done = True
        # one more line (or byte) on every connection whose time has come
        for s, info in list(conns.items()):
            if info[2] and now >= info[1]:
                info[1] = now + a.interval
                try:
                    s.send(drip())
                except OSError:
                    drop(s, now, "closed")
    now = time.monotonic()
    st["open_at_end"] = len(conns)
    for s in list(conns):
        drop(s, now, None)
    st["longest_s"] = round(st["longest_s"], 1)
    print(json.dumps(st, sort_keys=True))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""A small Chrome DevTools Protocol driver for the browser tests.

Runs Debian's Chromium headless (its own temporary profile, --no-sandbox:
the test machines are root), opens one tab and drives it over the DevTools
websocket (python3-websocket): navigate, evaluate JS (awaiting promises),
wait for a condition with a deadline, type (Input.insertText into a focused
field) and click (real mouse events at the element's centre, after checking
nothing covers it), and save PNG screenshots. Every console error, uncaught
exception, CSP violation and blocked request is collected; a scenario fails
on any. Chromium is always killed at the end (its whole process group).

usage: cdp.py docs      BASE_URL USER PASS OUTDIR
       cdp.py dashboard BASE_URL USER PASS OUTDIR
       cdp.py failed    BASE_URL USER PASS OUTDIR TASK_ID
       cdp.py routes    BASE_URL USER PASS OUTDIR ROUTE N
       cdp.py smoke     URL OUTDIR            (load a page, screenshot, no errors)

Prints one "screenshot: PATH" line per screenshot, "result: KEY=VALUE"
lines for the caller (task ids ...), and on failure "FAIL: ..." with the
errors seen; exits 0 on success, 1 on a failed check, 2 on usage errors.
"""

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import websocket  # python3-websocket (websocket-client)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Seconds for one DevTools command to answer, and default wait deadline.
CMD_TIMEOUT = 30
WAIT = float(os.environ.get("BROWSER_WAIT", "20"))


class Failure(Exception):
    pass


# Injected before any page script: record CSP violations the page sees
# (Chromium also logs them; this catches them whatever the log says).
CSP_HOOK = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') +
    ' at ' + (e.sourceFile || '') + ':' + (e.lineNumber || 0));
});
"""


def die_with_parent():
    """In the child before exec: SIGKILL when this driver dies, even by
    SIGKILL (prctl PR_SET_PDEATHSIG), so no Chromium outlives a killed test."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    if os.getppid() == 1:  # the parent died before prctl
        os._exit(1)


class Browser:
    def __init__(self, outdir, prefix):
        self.outdir = outdir
        self.prefix = prefix
        self.shots = []
        self.errors = []      # console errors, exceptions, CSP, blocked loads
        self.requests = {}    # requestId -> {"method","url","status"}
        self.notes = []
        self.proc = None
        self.ws = None
        self.next_id = 0
        self.profile = tempfile.mkdtemp(prefix="cdp-profile.")
        self.log_path = os.path.join(self.profile, "chromium.log")

    # -- process --------------------------------------------------------
    def start(self):
        args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps",
                "--hide-scrollbars", "--mute-audio", "--window-size=1280,900",
                # port 0: Chromium picks a free port and writes it to
                # DevToolsActivePort in the profile (no race for the port)
                "--remote-debugging-port=0", "--user-data-dir=" + self.profile,
                "about:blank"]
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=die_with_parent)
        portfile = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 30
        port = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Failure("chromium exited %s at start:\n%s" % (self.proc.returncode, self.chromium_log()))
            try:
                with open(portfile) as f:
                    first = f.readline().strip()
                if first:
                    port = int(first)
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        if port is None:
            raise Failure("chromium wrote no DevToolsActivePort in 30 s:\n" + self.chromium_log())
        self.port = port
        # a new tab of our own (PUT: Chromium refuses GET for /json/new)
        req = urllib.request.Request("http://127.0.0.1:%d/json/new?about:blank" % port, method="PUT")
        with urllib.request.urlopen(req, timeout=10) as r:
            target = json.load(r)
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=CMD_TIMEOUT,
                                              suppress_origin=True)
        self.cmd("Page.addScriptToEvaluateOnNewDocument", source=CSP_HOOK)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.cmd(domain + ".enable")
        self.cmd("Emulation.setDeviceMetricsOverride", width=1280, height=900,
                 deviceScaleFactor=1, mobile=False)

    def chromium_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-3000:]
        except OSError:
            return ""

    def stop(self):
        try:
            if self.ws is not None:
                self.ws.close()
        except Exception:
            pass
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            # the group: renderer/GPU/zygote children may outlive the browser
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            # and wait until the whole group is gone
            for _ in range(100):
                try:
                    os.killpg(self.proc.pid, 0)
                except (ProcessLookupError, PermissionError):
                    break
                time.sleep(0.05)
            else:
                print("warning: chromium processes of group %d still alive" % self.proc.pid, flush=True)
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- protocol -------------------------------------------------------
    def cmd(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.time() + CMD_TIMEOUT
        while True:
            if time.time() > deadline:
                raise Failure("%s: no answer in %d s" % (method, CMD_TIMEOUT))
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise Failure("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self.on_event(msg["method"], msg.get("params", {}))

    def pump(self, seconds):
        """Handle events for a while (between polls)."""
        end = time.time() + seconds
        while True:
            left = end - time.time()
            if left <= 0:
                return
            self.ws.settimeout(left)
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                return
            finally:
                self.ws.settimeout(CMD_TIMEOUT)
            if "method" in msg:
                self.on_event(msg["method"], msg.get("params", {}))

    def on_event(self, method, p):
        if method == "Runtime.consoleAPICalled":
            if p.get("type") in ("error", "assert"):
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
                self.errors.append("console.%s: %s" % (p["type"], text))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            exc = d.get("exception", {}).get("description") or d.get("text", "")
            self.errors.append("exception: %s (%s:%s)" % (exc, d.get("url", ""), d.get("lineNumber", "")))
        elif method == "Log.entryAdded":
            e = p.get("entry", {})
            if e.get("level") == "error":
                if e.get("source") == "network" and e.get("url", "").endswith("/favicon.ico"):
                    # the browser's own favicon request, not the page's doing
                    self.notes.append("favicon: " + e.get("text", ""))
                    return
                self.errors.append("log[%s]: %s %s" % (e.get("source"), e.get("text"), e.get("url", "")))
        elif method == "Network.requestWillBeSent":
            r = p["request"]
            self.requests[p["requestId"]] = {"method": r["method"], "url": r["url"], "status": None}
        elif method == "Network.responseReceived":
            r = self.requests.get(p["requestId"])
            if r is not None:
                r["status"] = p["response"]["status"]
        elif method == "Network.loadingFailed":
            r = self.requests.get(p["requestId"], {})
            if p.get("blockedReason") or p.get("corsErrorStatus"):
                self.errors.append("blocked load: %s %s: %s" % (
                    r.get("method"), r.get("url"), p.get("blockedReason") or p.get("corsErrorStatus")))

    # -- page -----------------------------------------------------------
    def navigate(self, url):
        self.cmd("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && location.href !== 'about:blank'",
                  "page %s loaded" % url)

    def js(self, expr):
        """Evaluate EXPR in the page (promises awaited); its value as JSON."""
        r = self.cmd("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise Failure("JS %r threw: %s" % (expr[:200], d.get("exception", {}).get("description", d.get("text"))))
        return r.get("result", {}).get("value")

    def wait(self, expr, what, timeout=None):
        """Poll EXPR until truthy (its value is returned) or fail."""
        deadline = time.time() + (timeout or WAIT)
        last_err = None
        while True:
            try:
                v = self.js(expr)
                if v:
                    return v
            except Failure as e:  # e.g. the page is navigating
                last_err = e
            if time.time() > deadline:
                self.shot("timeout")
                raise Failure("timed out after %.0f s waiting for %s%s" % (
                    timeout or WAIT, what, " (%s)" % last_err if last_err else ""))
            self.pump(0.1)

    def text(self, selector):
        return self.js("(function(){var e=document.querySelector(%s);return e?e.textContent.trim():null})()"
                       % json.dumps(selector))

    def type(self, selector, value):
        """Focus the field, clear it, and type VALUE (Input.insertText: input events fire)."""
        ok = self.js("""(function(){var e=document.querySelector(%s); if(!e) return false;
            e.scrollIntoView({block:'center'}); e.focus(); e.select && e.select(); e.value='';
            e.dispatchEvent(new Event('input',{bubbles:true})); return document.activeElement===e})()"""
                     % json.dumps(selector))
        if not ok:
            raise Failure("cannot focus %s" % selector)
        self.cmd("Input.insertText", text=value)
        got = self.js("document.querySelector(%s).value" % json.dumps(selector))
        if got != value:
            raise Failure("typed %r into %s, it holds %r" % (value, selector, got))

    def click(self, selector):
        """A real mouse click at the element's centre; fail if it is hidden or covered."""
        pos = self.js("""(function(){var e=document.querySelector(%s); if(!e) return 'missing';
            e.scrollIntoView({block:'center'}); var r=e.getBoundingClientRect();
            if(r.width===0||r.height===0) return 'not visible';
            var x=r.left+r.width/2, y=r.top+r.height/2, h=document.elementFromPoint(x,y);
            if(!(h===e||e.contains(h))) return 'covered by '+(h?h.outerHTML.slice(0,120):'nothing');
            if(e.disabled) return 'disabled';
            return [x,y]})()""" % json.dumps(selector))
        if not isinstance(pos, list):
            self.shot("click-failed")
            raise Failure("cannot click %s: %s" % (selector, pos))
        x, y = pos
        self.cmd("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        self.cmd("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left", clickCount=1)
        self.cmd("Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, button="left", clickCount=1)

    def scroll_to(self, selector, block="start"):
        self.js("(function(){var e=document.querySelector(%s); if(e) e.scrollIntoView({block:%s})})()"
                % (json.dumps(selector), json.dumps(block)))

    def shot(self, step, full=False):
        """Save a PNG of the viewport (FULL: the whole page) as
        OUTDIR/<prefix>-<NN>-<step>.png and print its path."""
        os.makedirs(self.outdir, exist_ok=True)
        n = len(self.shots) + 1
        path = os.path.join(self.outdir, "%s-%02d-%s.png" % (self.prefix, n, step))
        try:
            r = self.cmd("Page.captureScreenshot", format="png", captureBeyondViewport=full)
        except Exception as e:  # a screenshot must not hide the real failure
            print("screenshot %s failed: %s" % (path, e), flush=True)
            return None
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))
        self.shots.append(path)
        print("screenshot: " + path, flush=True)
        return path

    def check_clean(self):
        """Fail on any console error, exception, CSP violation or blocked load so far."""
        self.pump(0.3)
        try:
            csp = self.js("window.__cspViolations || []") or []
        except Failure:
            csp = []
        errs = self.errors + ["CSP violation: " + c for c in csp]
        if errs:
            raise Failure("errors in the page:\n  " + "\n  ".join(errs))

    def requests_to(self, method, pattern):
        rx = re.compile(pattern)
        return [r for r in self.requests.values() if r["method"] == method and rx.search(r["url"])]

    def login(self, user, password):
        self.wait("!!(document.querySelector('form#login') && document.querySelector('#token-state'))",
                  "form#login and #token-state")
        state = self.text("#token-state")
        if state != "signed out":
            raise Failure("#token-state before login is %r, want 'signed out'" % state)
        self.type("#username", user)
        self.type("#password", password)
        self.click("#login-submit")
        want = "signed in as " + user
        self.wait("(function(){var e=document.querySelector('#token-state');return e&&e.textContent.trim()===%s})()"
                  % json.dumps(want), "#token-state %r" % want)
        if not self.js("!!sessionStorage.getItem('token')"):
            raise Failure("signed in, but no sessionStorage 'token'")


def result(key, value):
    print("result: %s=%s" % (key, value), flush=True)


# -- scenarios ---------------------------------------------------------------

def op_sel(op):
    return 'section.op[data-op=%s]' % json.dumps(op)


def try_op(b, op, params, step):
    """Fill an operation's parameters, click its Try it, wait for the answer.
    Returns (status text, body text)."""
    sec = op_sel(op)
    b.wait("!!document.querySelector(%s)" % json.dumps(sec), "operation %s on the page" % op)
    # a response left from before must not count: wait for a new one
    before = b.text(sec + " .response-status")
    for name, value in params.items():
        b.type('%s input[name="%s"]' % (sec, name), value)
    b.click(sec + " button.try")
    status = b.wait("""(function(){var s=document.querySelector(%s);
        var t=s&&s.textContent.trim(); return t && t!==%s ? t : null})()"""
                    % (json.dumps(sec + " .response-status"), json.dumps(before or "")),
                    "%s .response-status" % op)
    b.wait("(function(){var p=document.querySelector(%s);return p&&p.textContent.trim().length>0})()"
           % json.dumps(sec + " pre.response-body"), "%s pre.response-body" % op)
    body = b.text(sec + " pre.response-body")
    b.scroll_to(sec + " .response-status", "center")
    b.shot(step)
    return status, body


def scenario_docs(b, base, user, password):
    b.navigate(base + "/docs/")
    b.shot("opened")
    txt = b.wait("""(function(){var e=document.querySelector('#spec-status');
        var t=e&&e.textContent.trim(); return /^loaded [0-9]+ operations$/.test(t)?t:null})()""",
                 "#spec-status 'loaded N operations'")
    n = int(txt.split()[1])
    result("operations", n)
    if n <= 10:
        raise Failure("#spec-status %r: want more than 10 operations" % txt)
    ops = b.js("document.querySelectorAll('section.op').length")
    if ops != n:
        raise Failure("#spec-status says %d operations, the page has %s section.op" % (n, ops))
    # the spec the page read is the one the server serves
    spec_ops = b.js("""fetch('/openapi.json').then(r=>r.json()).then(s=>{var n=0;
        for (var p in s.paths) for (var m in s.paths[p])
          if (['get','put','post','delete','patch','head','options','trace'].indexOf(m)>=0) n++;
        return n})""")
    if spec_ops != n:
        raise Failure("/openapi.json has %s operations, the page says %d" % (spec_ops, n))
    b.shot("spec-loaded")
    b.check_clean()

    b.login(user, password)
    b.shot("signed-in")

    status, body = try_op(b, "GET /api/hello/{name}", {"name": "browser"}, "try-hello")
    result("hello_status", status)
    if status != "200":
        raise Failure("Try it GET /api/hello/{name}: status %r, body %r" % (status, body))
    try:
        j = json.loads(body)
    except ValueError:
        raise Failure("Try it GET /api/hello/{name}: body is not JSON: %r" % body)
    if j != {"message": "Hello, browser!"}:
        raise Failure("Try it GET /api/hello/{name}: body %r" % body)
    if not b.requests_to("GET", r"/api/hello/browser$"):
        raise Failure("no GET /api/hello/browser request was seen")

    status, body = try_op(b, "GET /api/users/me", {}, "try-users-me")
    result("me_status", status)
    if status != "200":
        raise Failure("Try it GET /api/users/me: status %r, body %r" % (status, body))
    try:
        j = json.loads(body)
    except ValueError:
        raise Failure("Try it GET /api/users/me: body is not JSON: %r" % body)
    if j.get("username") != user:
        raise Failure("Try it GET /api/users/me: body %r, want username %r" % (body, user))
    result("me_id", j.get("id"))
    b.check_clean()


def li_ids(b, list_sel):
    return b.js("Array.from(document.querySelectorAll(%s)).map(e=>e.getAttribute('data-id'))"
                % json.dumps(list_sel + " > li[data-id]")) or []


def dashboard_open(b, base, user, password):
    b.navigate(base + "/")
    b.shot("opened")
    b.login(user, password)
    b.wait("!!document.querySelector('table#queues tr[data-queue=\"celery\"]')",
           "table#queues tr[data-queue=celery]")
    b.wait("(function(){var e=document.querySelector('#last-refresh');return e&&e.textContent.trim().length>0})()",
           "#last-refresh")


def scenario_dashboard(b, base, user, password):
    dashboard_open(b, base, user, password)
    row = b.js("""(function(){var r=document.querySelector('table#queues tr[data-queue="celery"]');
        var o={}; ['depth','in-flight','scheduled','failed'].forEach(function(c){
          var d=r.querySelector('td.'+c); o[c]=d?d.textContent.trim():null}); return o})()""")
    result("celery_row", json.dumps(row, sort_keys=True))
    missing = [c for c, v in row.items() if v is None]
    if missing:
        raise Failure("tr[data-queue=celery] lacks td.%s" % ", td.".join(missing))
    for c, v in row.items():
        if not re.fullmatch(r"[0-9]+", v):
            raise Failure("tr[data-queue=celery] td.%s is %r, want a count" % (c, v))
    b.wait("document.querySelectorAll('#runners li').length > 0", "a live runner in #runners")
    result("runners", b.js("document.querySelectorAll('#runners li').length"))
    # refreshes by itself: #last-refresh changes within two periods and a bit
    first = b.text("#last-refresh")
    b.wait("document.querySelector('#last-refresh').textContent.trim() !== %s" % json.dumps(first),
           "#last-refresh to change (auto refresh every 2 s)", timeout=6)
    b.shot("signed-in")

    before = set(li_ids(b, "ul#recent"))
    # every status the page shows for a new task, in order (PENDING ... SUCCESS)
    b.js("""(function(){var seen=%s; window.__statuses={};
        function scan(){document.querySelectorAll('ul#recent > li[data-id]').forEach(function(li){
          var id=li.getAttribute('data-id'); if(seen.indexOf(id)>=0) return;
          var s=li.querySelector('span.status'); if(!s) return; var t=s.textContent.trim();
          var l=window.__statuses[id]=window.__statuses[id]||[]; if(l[l.length-1]!==t) l.push(t)})}
        new MutationObserver(scan).observe(document.getElementById('recent'),
          {childList:true,subtree:true,characterData:true}); return true})()""" % json.dumps(sorted(before)))
    b.click("#submit-demo")
    new_id = b.wait("""(function(){var seen=%s; var l=document.querySelectorAll('ul#recent > li[data-id]');
        for (var i=0;i<l.length;i++){var id=l[i].getAttribute('data-id'); if(seen.indexOf(id)<0) return id}
        return null})()""" % json.dumps(sorted(before)), "a new li[data-id] in ul#recent")
    result("task_id", new_id)
    li = 'ul#recent > li[data-id=%s]' % json.dumps(new_id)
    b.shot("submitted")
    posts = b.requests_to("POST", r"/api/tasks/(tasks\.)?add$")
    if not posts:
        raise Failure("#submit-demo sent no POST /api/tasks/add")
    t0 = time.time()
    b.wait("(function(){var s=document.querySelector(%s);return s&&s.textContent.trim()==='SUCCESS'})()"
           % json.dumps(li + " span.status"), "task %s to show SUCCESS in ul#recent" % new_id, timeout=10)
    result("success_after_s", "%.1f" % (time.time() - t0))
    result("statuses_seen", ",".join(b.js("window.__statuses[%s]||[]" % json.dumps(new_id))))
    b.scroll_to("ul#recent")
    b.shot("task-success", full=True)
    rows = b.js("document.querySelectorAll('table#routes tr').length")
    result("routes_rows", rows)
    b.check_clean()


def scenario_failed(b, base, user, password, task_id):
    dashboard_open(b, base, user, password)
    li = 'ul#failed > li[data-id=%s]' % json.dumps(task_id)
    b.wait("!!document.querySelector(%s)" % json.dumps(li), "failed task %s in ul#failed" % task_id)
    b.scroll_to("ul#failed")
    b.shot("failed-listed")
    # the failure time the API has for it now, to see it fail again
    q = """fetch('/api/tasks?status=FAILURE&limit=200',{headers:{Authorization:'Bearer '+sessionStorage.getItem('token')}})
        .then(r=>r.json()).then(j=>{var f=j.items.filter(i=>i.id===%s)[0]; return f?String(f.failed_at):null})""" \
        % json.dumps(task_id)
    first = b.js(q)
    if first is None:
        raise Failure("task %s is not in GET /api/tasks?status=FAILURE" % task_id)
    b.click(li + " button.rerun")
    b.pump(0.5)
    posts = b.requests_to("POST", r"/api/tasks/%s/retry$" % re.escape(task_id))
    deadline = time.time() + WAIT
    while not any(p["status"] for p in posts) and time.time() < deadline:
        b.pump(0.1)
    if not posts:
        b.shot("rerun-not-sent")
        raise Failure(".rerun sent no POST /api/tasks/%s/retry" % task_id)
    result("retry_status", posts[-1]["status"])
    if posts[-1]["status"] != 202:
        raise Failure("POST /api/tasks/%s/retry answered %s" % (task_id, posts[-1]["status"]))
    b.shot("rerun-clicked")
    # it runs again, fails again: back on the list with a new failure time,
    # and the page shows it there again
    b.wait("(%s).then(t=>t!==null && t!==%s)" % (q, json.dumps(first)),
           "task %s to fail again (a new failed_at)" % task_id, timeout=15)
    b.wait("new Promise(r=>setTimeout(r,2500)).then(()=>!!document.querySelector(%s))" % json.dumps(li),
           "task %s back in ul#failed" % task_id, timeout=10)
    b.scroll_to("ul#failed")
    b.shot("failed-again", full=True)
    b.check_clean()


def route_row(b, route):
    """table#routes tr[data-route=ROUTE] as shown: its cells' text by class,
    and "idle" (the row's class); None if there is no such row."""
    return b.js(ROUTE_ROW % json.dumps("table#routes tr[data-route=%s]" % json.dumps(route)))


ROUTE_ROW = """(function(){var r=document.querySelector(%s); if(!r) return null;
    var o={idle: r.classList.contains('idle')};
    ['route','rate','p50','p99','total','errors','in-flight'].forEach(function(c){
      var d=r.querySelector('td.'+c); o[c]=d?d.textContent.trim():null}); return o})()"""


def wait_route_idle(b, route, what):
    """Until the route's row shows a rate of 0.00 and is marked idle: a
    refresh that compared two scrapes and saw no request to it."""
    row = ROUTE_ROW % json.dumps("table#routes tr[data-route=%s]" % json.dumps(route))
    return b.wait("(function(){var r=%s; return r && r.rate === '0.00' && r.idle ? r : null})()" % row,
                  "table#routes row %s %s" % (route, what), timeout=15)


def scenario_routes(b, base, user, password, route, n):
    """N requests to ROUTE (GET ROUTE/rI, sent from here, not by the page)
    while the dashboard is open. Results: the row's request count before
    and once it has them all, every rate shown while they came in (one per
    refresh that saw some), and the row after a refresh without any."""
    n = int(n)
    dashboard_open(b, base, user, password)
    before = wait_route_idle(b, route, "idle before the requests")
    result("total_before", before["total"])
    result("errors_before", before["errors"])
    b.shot("routes-before")
    codes = {}
    for i in range(n):
        try:
            with urllib.request.urlopen("%s%s/r%d" % (base, route, i), timeout=10) as r:
                codes[r.status] = codes.get(r.status, 0) + 1
        except urllib.error.HTTPError as e:
            codes[e.code] = codes.get(e.code, 0) + 1
    result("codes", json.dumps(codes, sort_keys=True))
    want = int(before["total"]) + n
    # each refresh's figures as the row's count changes, until it has them all
    rates, last, row = [], before["total"], before
    deadline = time.time() + WAIT
    while int(last) < want:
        if time.time() > deadline:
            b.shot("routes-timeout")
            raise Failure("table#routes row %s: %s requests, want %d" % (route, last, want))
        b.pump(0.1)
        row = route_row(b, route)
        if row["total"] != last:
            last = row["total"]
            rates.append(row["rate"])
    b.shot("routes-counted")
    result("total_after", last)
    result("rates", ",".join(rates))
    result("idle_when_counted", json.dumps(row["idle"]))
    result("p50", row["p50"])
    after = wait_route_idle(b, route, "idle again after the requests")
    result("total_idle", after["total"])
    result("errors_after", after["errors"])
    b.check_clean()


def scenario_smoke(b, url):
    b.navigate(url)
    b.shot("loaded")
    b.check_clean()


def main(argv):
    usage = {"docs": 4, "dashboard": 4, "failed": 5, "routes": 6, "smoke": 2}
    if len(argv) < 2 or argv[1] not in usage or len(argv) - 2 != usage[argv[1]]:
        print(__doc__, file=sys.stderr)
        return 2
    name, args = argv[1], argv[2:]
    outdir = args[3] if name in ("failed", "routes") else args[-1]
    prefix = os.environ.get("SHOT_PREFIX", name)
    b = Browser(outdir, prefix)

    def on_term(signum, frame):
        b.stop()
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    rc = 0
    try:
        b.start()
        if name == "docs":
            scenario_docs(b, args[0].rstrip("/"), args[1], args[2])
        elif name == "dashboard":
            scenario_dashboard(b, args[0].rstrip("/"), args[1], args[2])
        elif name == "failed":
            scenario_failed(b, args[0].rstrip("/"), args[1], args[2], args[4])
        elif name == "routes":
            scenario_routes(b, args[0].rstrip("/"), args[1], args[2], args[4], args[5])
        else:
            scenario_smoke(b, args[0])
        for n in b.notes:
            print("note: " + n, flush=True)
        print("ok: %s" % name, flush=True)
    except Failure as e:
        print("FAIL: %s" % e, flush=True)
        if b.errors:
            print("errors seen in the page:\n  " + "\n  ".join(b.errors), flush=True)
        rc = 1
    except Exception as e:  # protocol/websocket trouble: still a failure, still cleaned up
        print("FAIL: %s: %s" % (type(e).__name__, e), flush=True)
        rc = 1
    finally:
        if rc and b.proc is not None:
            print("requests seen:", flush=True)
            for r in b.requests.values():
                print("  %s %s -> %s" % (r["method"], r["url"], r["status"]), flush=True)
        b.stop()
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))

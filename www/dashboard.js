/* dashboard.js: the live dashboard at /. Every 2 s:
 *   GET /api/queues            -> table#queues (tr[data-queue] with td.depth,
 *                                 td.in-flight, td.scheduled, td.failed), ul#runners
 *   GET /api/tasks/{id}        -> ul#recent (the tasks this tab submitted, kept in
 *                                 sessionStorage "recent-tasks"), until each is ready
 *   GET /api/tasks?status=FAILURE -> ul#failed, each with a button.rerun
 *                                 (POST /api/tasks/{id}/retry)
 *   GET /metrics               -> table#routes: request rate over the last
 *                                 refresh, p50/p99 from the duration histogram
 * The /api calls need the token of auth.js, and are not made signed out.
 * #submit-demo sends tasks.add(2, 3) (POST /api/tasks/add).
 */
(function () {
  'use strict';

  var PERIOD_MS = 2000;
  var METRICS_RETRY_MS = 15000; /* after /metrics refused us (not loopback) */
  var RECENT_KEY = 'recent-tasks';
  var RECENT_MAX = 20;
  var FAILED_LIMIT = 50;
  var READY = { SUCCESS: 1, FAILURE: 1, REVOKED: 1 };

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function signedIn() { return !!Auth.getToken(); }

  function getJSON(path) {
    return Auth.api(path).then(Auth.readBody);
  }

  function fmtAge(s) {
    if (s === null || s === undefined) return '\u2014';
    if (s < 1) return s.toFixed(2) + ' s';
    if (s < 120) return s.toFixed(1) + ' s';
    if (s < 7200) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }

  function fmtLatency(sec) {
    if (sec === null || sec === undefined || isNaN(sec)) return '\u2014';
    if (sec < 0.001) return (sec * 1000).toFixed(2) + ' ms';
    if (sec < 1) return (sec * 1000).toFixed(1) + ' ms';
    return sec.toFixed(2) + ' s';
  }

  function fmtTime(iso) {
    if (!iso) return '';
    var d = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : iso + 'Z'); /* Celery's naive UTC */
    return isNaN(d) ? iso : d.toLocaleTimeString();
  }

  /* -- queues and runners -------------------------------------------------- */

  var queueRows = {};

  function renderQueues(j) {
    var tbody = $('queues').tBodies[0];
    var seen = {};
    (j.queues || []).forEach(function (q) {
      seen[q.name] = true;
      var tr = queueRows[q.name];
      if (!tr) {
        tr = el('tr');
        tr.setAttribute('data-queue', q.name);
        ['name', 'depth', 'in-flight', 'scheduled', 'failed', 'oldest'].forEach(function (c) {
          tr.appendChild(el('td', c));
        });
        queueRows[q.name] = tr;
      }
      tbody.appendChild(tr); /* keeps the API's order (by name) */
      var td = tr.cells;
      td[0].textContent = q.name;
      td[1].textContent = String(q.depth);
      td[2].textContent = String(q.in_flight);
      td[3].textContent = String(q.scheduled);
      td[4].textContent = String(q.failed);
      td[5].textContent = fmtAge(q.oldest_age_seconds);
      tr.classList.toggle('busy', q.depth > 0);
      tr.classList.toggle('has-failed', q.failed > 0);
    });
    Object.keys(queueRows).forEach(function (name) {
      if (!seen[name]) {
        queueRows[name].remove();
        delete queueRows[name];
      }
    });
    $('queues-state').textContent = j.truncated ? 'more queues exist than shown' : '';

    var ul = $('runners');
    var items = (j.runners || []).map(function (r) {
      var li = el('li');
      li.setAttribute('data-runner', r.id);
      li.appendChild(el('span', 'runner-id', r.id));
      li.appendChild(document.createTextNode(' '));
      li.appendChild(el('span', 'runner-info', 'queues ' + (r.queues || []).join(', ') + ' \u00b7 ' +
        r.concurrency + ' worker' + (r.concurrency === 1 ? '' : 's') + ' \u00b7 heartbeat ' +
        fmtAge(r.heartbeat_age_seconds) + ' ago \u00b7 up since ' + fmtTime(r.started)));
      return li;
    });
    ul.replaceChildren.apply(ul, items);
    $('runners-alive').textContent = String((j.runners || []).length);
  }

  function clearQueues(msg) {
    Object.keys(queueRows).forEach(function (n) { queueRows[n].remove(); });
    queueRows = {};
    $('runners').replaceChildren();
    $('runners-alive').textContent = '?';
    $('queues-state').textContent = msg || '';
  }

  function loadQueues() {
    return getJSON('/api/queues').then(function (res) {
      if (res.ok && res.json) renderQueues(res.json);
      else if (signedIn()) $('queues-state').textContent = 'queues unavailable (' + res.status + '): ' + Auth.reason(res);
    });
  }

  /* -- recent tasks -------------------------------------------------------- */

  function loadRecent() {
    try {
      var v = JSON.parse(sessionStorage.getItem(RECENT_KEY) || '[]');
      return Array.isArray(v) ? v.filter(function (t) { return t && typeof t.id === 'string'; }) : [];
    } catch (e) {
      return [];
    }
  }
  var recent = loadRecent();
  var recentItems = {};

  function saveRecent() {
    recent = recent.slice(0, RECENT_MAX);
    try { sessionStorage.setItem(RECENT_KEY, JSON.stringify(recent)); } catch (e) { /* full or off */ }
  }

  function addRecent(t) {
    recent = recent.filter(function (x) { return x.id !== t.id; });
    recent.unshift(t);
    saveRecent();
    renderRecent();
  }

  function resultText(t) {
    if (t.error) return t.error;
    if (t.status === 'SUCCESS') return '= ' + JSON.stringify(t.result);
    return '';
  }

  function renderRecent() {
    var ul = $('recent');
    var keep = {};
    recent.forEach(function (t) {
      keep[t.id] = true;
      var li = recentItems[t.id];
      if (!li) {
        li = el('li');
        li.setAttribute('data-id', t.id);
        li.appendChild(el('span', 'status'));
        li.appendChild(el('span', 'task'));
        li.appendChild(el('span', 'result'));
        li.appendChild(el('span', 'task-id'));
        recentItems[t.id] = li;
      }
      var st = li.querySelector('.status');
      st.textContent = t.status || 'PENDING';
      st.className = 'status s-' + (t.status || 'PENDING');
      li.querySelector('.task').textContent = (t.task || '?') + (t.args !== undefined ? '(' +
        (Array.isArray(t.args) ? t.args.map(function (a) { return JSON.stringify(a); }).join(', ') : '') + ')' : '');
      li.querySelector('.result').textContent = resultText(t);
      li.querySelector('.task-id').textContent = t.id;
      ul.appendChild(li); /* newest first: recent's order */
    });
    Object.keys(recentItems).forEach(function (id) {
      if (!keep[id]) {
        recentItems[id].remove();
        delete recentItems[id];
      }
    });
  }

  function updateTask(id, j) {
    var changed = false;
    recent.forEach(function (t) {
      if (t.id !== id) return;
      ['status', 'result', 'error', 'date_done', 'task'].forEach(function (k) {
        if (j[k] !== undefined && JSON.stringify(t[k]) !== JSON.stringify(j[k])) {
          t[k] = j[k];
          changed = true;
        }
      });
    });
    if (changed) {
      saveRecent();
      renderRecent();
    }
  }

  function pollTask(id, wait) {
    return getJSON('/api/tasks/' + encodeURIComponent(id) + (wait ? '?wait=' + wait : '')).then(function (res) {
      if (res.ok && res.json) updateTask(id, res.json);
      else if (res.status === 404) updateTask(id, { status: 'UNKNOWN', error: 'not found (expired?)' });
    });
  }

  function pollRecent() {
    var pending = recent.filter(function (t) { return !READY[t.status] && t.status !== 'UNKNOWN'; }).slice(0, 10);
    return Promise.all(pending.map(function (t) { return pollTask(t.id, 0); }));
  }

  function submitDemo() {
    var st = $('submit-state');
    if (!signedIn()) {
      st.textContent = 'sign in first';
      return;
    }
    var b = $('submit-demo');
    b.disabled = true;
    st.textContent = 'submitting...';
    var args = [2, 3];
    Auth.api('/api/tasks/add', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ args: args })
    }).then(Auth.readBody).then(function (res) {
      if (!res.ok || !res.json || !res.json.id) {
        st.textContent = 'not submitted (' + res.status + '): ' + Auth.reason(res);
        return;
      }
      st.textContent = '';
      addRecent({ id: res.json.id, task: res.json.task || 'tasks.add', args: args,
        status: res.json.status || 'PENDING', submitted: new Date().toISOString() });
      /* a long poll sees it finish at once, not at the next refresh */
      return pollTask(res.json.id, 10);
    }, function (e) {
      st.textContent = 'network error: ' + e.message;
    }).then(function () {
      b.disabled = false;
    });
  }

  /* -- failed tasks -------------------------------------------------------- */

  var failedItems = {};

  function renderFailed(j) {
    var ul = $('failed');
    var keep = {};
    (j.items || []).forEach(function (f) {
      keep[f.id] = true;
      var li = failedItems[f.id];
      if (!li) {
        li = el('li');
        li.setAttribute('data-id', f.id);
        li.appendChild(el('span', 'task'));
        li.appendChild(el('span', 'error'));
        li.appendChild(el('span', 'when'));
        li.appendChild(el('span', 'task-id'));
        var b = el('button', 'rerun', 'Re-run');
        b.type = 'button';
        b.addEventListener('click', function () { rerun(f.id, li, b); });
        li.appendChild(b);
        failedItems[f.id] = li;
      }
      li.querySelector('.task').textContent = f.task + (f.queue && f.queue !== 'celery' ? ' on ' + f.queue : '');
      li.querySelector('.error').textContent = f.error || '';
      li.querySelector('.when').textContent = 'failed ' + fmtTime(f.failed_at || f.date_done);
      li.querySelector('.task-id').textContent = f.id;
      ul.appendChild(li);
    });
    Object.keys(failedItems).forEach(function (id) {
      if (!keep[id]) {
        failedItems[id].remove();
        delete failedItems[id];
      }
    });
    var total = j.total || 0;
    $('failed-total').textContent = '(' + total + (total > (j.items || []).length ? ', newest ' + j.items.length + ' shown' : '') + ')';
  }

  function loadFailed() {
    return getJSON('/api/tasks?status=FAILURE&limit=' + FAILED_LIMIT).then(function (res) {
      if (res.ok && res.json) {
        renderFailed(res.json);
        if (!/^re-run|^not re-run/.test($('failed-state').textContent)) $('failed-state').textContent = '';
      } else if (signedIn()) {
        $('failed-state').textContent = 'failed list unavailable (' + res.status + '): ' + Auth.reason(res);
      }
    });
  }

  function rerun(id, li, b) {
    b.disabled = true;
    b.textContent = 'queued...';
    Auth.api('/api/tasks/' + encodeURIComponent(id) + '/retry', { method: 'POST', body: '' })
      .then(Auth.readBody).then(function (res) {
        if (res.ok && res.json) {
          $('failed-state').textContent = 're-run ' + (res.json.task || '') + ' ' + id + ': ' + (res.json.status || 'PENDING');
          addRecent({ id: res.json.id || id, task: res.json.task, status: res.json.status || 'PENDING',
            submitted: new Date().toISOString() });
          /* it left the failed list; it comes back if it fails again */
          li.remove();
          delete failedItems[id];
        } else {
          $('failed-state').textContent = 'not re-run (' + res.status + '): ' + Auth.reason(res);
        }
      }, function (e) {
        $('failed-state').textContent = 'not re-run: ' + e.message;
      }).then(function () {
        b.disabled = false;
        b.textContent = 'Re-run';
      });
  }

  /* -- /metrics ------------------------------------------------------------ */

  function unescapeLabel(v) {
    return v.replace(/\\(["\\n])/g, function (m, c) { return c === 'n' ? '\n' : c; });
  }

  function parseValue(v) {
    if (v === '+Inf') return Infinity;
    if (v === '-Inf') return -Infinity;
    return parseFloat(v);
  }

  /* Prometheus text format -> [{name, labels, value}] */
  function parseProm(text) {
    var out = [];
    var lineRx = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
    var labelRx = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    text.split('\n').forEach(function (line) {
      if (!line || line.charAt(0) === '#') return;
      var m = lineRx.exec(line);
      if (!m) return;
      var labels = {};
      if (m[2]) {
        var l;
        labelRx.lastIndex = 0;
        while ((l = labelRx.exec(m[2])) !== null) labels[l[1]] = unescapeLabel(l[2]);
      }
      out.push({ name: m[1], labels: labels, value: parseValue(m[3]) });
    });
    return out;
  }

  /* per route: {total, errors, inflight, count, buckets: {le: cumulative}} */
  function routeStats(samples) {
    var routes = {};
    function r(name) {
      if (!routes[name]) routes[name] = { total: 0, errors: 0, inflight: 0, count: 0, buckets: {} };
      return routes[name];
    }
    samples.forEach(function (s) {
      var route = s.labels.route;
      if (route === undefined) return;
      switch (s.name) {
        case 'http_requests_total':
          r(route).total += s.value;
          if (/^5/.test(s.labels.status || '')) r(route).errors += s.value;
          break;
        case 'http_request_duration_seconds_bucket':
          r(route).buckets[s.labels.le] = s.value;
          break;
        case 'http_request_duration_seconds_count':
          r(route).count = s.value;
          break;
        case 'http_requests_in_flight':
          r(route).inflight = s.value;
          break;
      }
    });
    return routes;
  }

  /* histogram_quantile, as Prometheus computes it: linear within a bucket;
   * in the +Inf bucket, the highest finite bound. */
  function quantile(q, buckets) {
    var bs = Object.keys(buckets).map(function (le) {
      return { le: parseValue(le), c: buckets[le] };
    }).filter(function (b) { return !isNaN(b.le); }).sort(function (a, b) { return a.le - b.le; });
    if (!bs.length) return null;
    var total = bs[bs.length - 1].c;
    if (!(total > 0)) return null;
    var rank = q * total;
    for (var i = 0; i < bs.length; i++) {
      if (bs[i].c >= rank) {
        if (bs[i].le === Infinity) return i > 0 ? bs[i - 1].le : null;
        var lo = i > 0 ? bs[i - 1].le : 0;
        var cLo = i > 0 ? bs[i - 1].c : 0;
        if (bs[i].c === cLo) return bs[i].le;
        return lo + (bs[i].le - lo) * (rank - cLo) / (bs[i].c - cLo);
      }
    }
    return null;
  }

  var prevMetrics = null; /* {t, routes} of the last good scrape */
  var metricsRetryAt = 0;
  var routeRows = {};

  function routeLabel(route) {
    return route === '/api' ? '/api (authorizer)' : route;
  }

  function renderRoutes(now, dtSec) {
    var tbody = $('routes').tBodies[0];
    var names = Object.keys(now).sort();
    var note = false;
    names.forEach(function (name) {
      var cur = now[name];
      var prev = prevMetrics && prevMetrics.routes[name];
      var rate = null;
      var win = null;
      if (prev && dtSec > 0 && cur.total >= prev.total) {
        rate = (cur.total - prev.total) / dtSec;
        if (cur.count > prev.count) {
          win = {};
          Object.keys(cur.buckets).forEach(function (le) {
            win[le] = cur.buckets[le] - (prev.buckets[le] || 0);
          });
        }
      }
      /* latency over the last refresh when the route had requests in it,
       * else since the start (marked *) */
      var b = win || cur.buckets;
      var p50 = quantile(0.5, b);
      var p99 = quantile(0.99, b);
      var tr = routeRows[name];
      if (!tr) {
        tr = el('tr');
        tr.setAttribute('data-route', name);
        ['route', 'rate', 'p50', 'p99', 'total', 'errors', 'in-flight'].forEach(function (c) {
          tr.appendChild(el('td', c));
        });
        routeRows[name] = tr;
      }
      var star = !win && p50 !== null ? '*' : '';
      if (star) note = true;
      var td = tr.cells;
      td[0].textContent = routeLabel(name);
      td[1].textContent = rate === null ? '\u2026' : rate.toFixed(2);
      td[2].textContent = fmtLatency(p50) + star;
      td[3].textContent = fmtLatency(p99) + star;
      td[4].textContent = String(cur.total);
      td[5].textContent = String(cur.errors);
      td[6].textContent = String(cur.inflight);
      tr.classList.toggle('idle', !rate);
      tbody.appendChild(tr);
    });
    Object.keys(routeRows).forEach(function (name) {
      if (!(name in now)) {
        routeRows[name].remove();
        delete routeRows[name];
      }
    });
    var na = tbody.querySelector('tr.not-available');
    if (na) na.remove();
    $('metrics-state').textContent = (prevMetrics ? '' : 'rates appear after the next refresh. ') +
      (note ? '* latency since the start (no requests in the last refresh)' : '');
  }

  function metricsUnavailable(why) {
    var tbody = $('routes').tBodies[0];
    Object.keys(routeRows).forEach(function (n) { routeRows[n].remove(); });
    routeRows = {};
    prevMetrics = null;
    var tr = tbody.querySelector('tr.not-available');
    if (!tr) {
      tr = el('tr', 'not-available');
      var td = el('td', 'not-available', 'not available');
      td.colSpan = 7;
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
    $('metrics-state').textContent = '/metrics not available (' + why + '): it answers loopback and ' +
      'GW_METRICS_ALLOW only';
    metricsRetryAt = Date.now() + METRICS_RETRY_MS;
  }

  function loadMetrics() {
    if (Date.now() < metricsRetryAt) return Promise.resolve();
    return fetch('/metrics', { cache: 'no-store' }).then(function (r) {
      if (!r.ok) {
        metricsUnavailable('HTTP ' + r.status);
        return null;
      }
      return r.text().then(function (text) {
        var t = performance.now();
        var routes = routeStats(parseProm(text));
        var dt = prevMetrics ? (t - prevMetrics.t) / 1000 : 0;
        renderRoutes(routes, dt);
        prevMetrics = { t: t, routes: routes };
      });
    }, function (e) {
      metricsUnavailable(e.message);
    });
  }

  /* -- the loop ------------------------------------------------------------ */

  var timer = null;
  var running = false;
  var again = false;

  function refresh() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    clearTimeout(timer);
    var jobs = [loadMetrics()];
    if (signedIn()) jobs.push(loadQueues(), loadFailed(), pollRecent());
    var errors = [];
    Promise.all(jobs.map(function (p) {
      return Promise.resolve(p).catch(function (e) { errors.push(e.message || String(e)); });
    })).then(function () {
      $('last-refresh').textContent = new Date().toLocaleTimeString();
      $('refresh-error').textContent = errors.length ? '(' + errors[0] + ')' : '';
      running = false;
      if (again) {
        again = false;
        refresh();
      } else {
        timer = setTimeout(refresh, PERIOD_MS);
      }
    });
  }

  function start() {
    $('submit-demo').addEventListener('click', submitDemo);
    renderRecent();
    Auth.onChange(function (token) {
      if (!token) {
        clearQueues('');
        $('failed').replaceChildren();
        failedItems = {};
        $('failed-total').textContent = '';
      }
      $('submit-state').textContent = '';
      refresh();
    });
    refresh();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();

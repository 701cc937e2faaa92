/* auth.js: the bearer token shared by the dashboard (/) and the docs (/docs/).
 *
 * OAuth2 password grant: POST /api/token (form-encoded grant_type=password,
 * username, password) answers {"access_token", ...}; the token is kept in
 * sessionStorage under "token" (this tab only, gone when it closes), the
 * user name under "token-user". Registration is POST /api/users (public).
 *
 * Exposes window.Auth (getToken, getUser, login, logout, register, api,
 * onChange) and, for the pages and tests, getToken/login/logout globals.
 * Wires the shared markup when the page has it:
 *   form#login (input#username, input#password, button#login-submit),
 *   #token-state ("signed out" / "signed in as <user>"), button#logout,
 *   #login-error; form#register (input#reg-username, input#reg-email,
 *   input#reg-password, button#register-submit), #register-state.
 */
(function () {
  'use strict';

  var KEY = 'token';
  var USER_KEY = 'token-user';
  var listeners = [];

  function store() {
    try {
      return window.sessionStorage;
    } catch (e) {
      return null; /* storage disabled: tokens live as long as the page */
    }
  }
  var memory = {};
  function get(k) {
    var s = store();
    return s ? s.getItem(k) : (memory[k] === undefined ? null : memory[k]);
  }
  function set(k, v) {
    var s = store();
    if (s) {
      if (v === null) s.removeItem(k); else s.setItem(k, v);
    } else if (v === null) {
      delete memory[k];
    } else {
      memory[k] = v;
    }
  }

  function getToken() { return get(KEY); }
  function getUser() { return get(USER_KEY); }

  function changed() {
    render();
    listeners.forEach(function (fn) {
      try { fn(getToken(), getUser()); } catch (e) { /* a listener's bug is its own */ }
    });
  }

  function setToken(token, user) {
    set(KEY, token);
    set(USER_KEY, token ? (user || subject(token) || 'unknown') : null);
    changed();
  }

  /* The token's "sub" claim (the user id), for a token got elsewhere. */
  function subject(token) {
    try {
      var p = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      var claims = JSON.parse(atob(p + '==='.slice((p.length + 3) % 4)));
      return claims.sub ? 'user ' + claims.sub : null;
    } catch (e) {
      return null;
    }
  }

  /* Read a response body: JSON when it parses, else the text. */
  function readBody(r) {
    return r.text().then(function (text) {
      var json = null;
      try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
      return { status: r.status, ok: r.ok, headers: r.headers, text: text, json: json };
    });
  }

  /* A short reason from an error body: FastAPI's {"detail"} (a string or a
   * list of {"loc","msg"}) or RFC 6749's {"error","error_description"}. */
  function reason(res) {
    var j = res.json;
    if (j && typeof j.detail === 'string') return j.detail;
    if (j && Array.isArray(j.detail)) {
      return j.detail.map(function (d) {
        return (Array.isArray(d.loc) ? d.loc.slice(1).join('.') + ': ' : '') + (d.msg || d.type);
      }).join('; ');
    }
    if (j && j.error) return j.error_description || j.error;
    return 'HTTP ' + res.status;
  }

  /* fetch() with the bearer token when signed in. A 401 that says the
   * token is no good (expired, revoked, invalid) signs out. */
  function api(path, opts) {
    opts = opts || {};
    var headers = new Headers(opts.headers || {});
    var token = getToken();
    if (token && !headers.has('Authorization')) headers.set('Authorization', 'Bearer ' + token);
    var init = {};
    Object.keys(opts).forEach(function (k) { init[k] = opts[k]; });
    init.headers = headers;
    if (!init.cache) init.cache = 'no-store';
    return fetch(path, init).then(function (r) {
      if (r.status === 401 && token && token === getToken() &&
          /invalid_token/.test(r.headers.get('WWW-Authenticate') || '')) {
        setToken(null);
        setError('Your session ended (' + (r.headers.get('WWW-Authenticate').match(/error_description="([^"]*)"/) || [0, 'token no longer valid'])[1] + '): sign in again.');
      }
      return r;
    });
  }

  function login(username, password) {
    var body = new URLSearchParams();
    body.set('grant_type', 'password');
    body.set('username', username);
    body.set('password', password);
    return fetch('/api/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: body.toString(),
      cache: 'no-store'
    }).then(readBody).then(function (res) {
      if (res.ok && res.json && res.json.access_token) {
        setToken(res.json.access_token, username);
        return { ok: true, status: res.status };
      }
      return { ok: false, status: res.status, detail: reason(res) };
    });
  }

  /* Sign out: forget the token and revoke it (RFC 7009), best effort. */
  function logout() {
    var token = getToken();
    setToken(null);
    if (!token) return Promise.resolve();
    var body = new URLSearchParams();
    body.set('token', token);
    return fetch('/api/token/revoke', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: body.toString(),
      cache: 'no-store'
    }).then(function () {}, function () {});
  }

  function register(fields) {
    var user = { username: fields.username, email: fields.email, password: fields.password };
    if (fields.full_name) user.full_name = fields.full_name;
    return fetch('/api/users', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(user),
      cache: 'no-store'
    }).then(readBody).then(function (res) {
      return { ok: res.ok, status: res.status, user: res.json, detail: res.ok ? null : reason(res) };
    });
  }

  function onChange(fn) { listeners.push(fn); }

  /* -- the shared markup ------------------------------------------------ */

  function $(id) { return document.getElementById(id); }

  function setError(msg) {
    var e = $('login-error');
    if (e) e.textContent = msg || '';
  }

  function render() {
    var state = $('token-state');
    var token = getToken();
    if (state) state.textContent = token ? 'signed in as ' + getUser() : 'signed out';
    document.documentElement.classList.toggle('signed-in', !!token);
    document.documentElement.classList.toggle('signed-out', !token);
    var form = $('login');
    if (form) form.hidden = !!token;
    var out = $('logout');
    if (out) out.hidden = !token;
  }

  function wire() {
    var form = $('login');
    if (form) {
      form.addEventListener('submit', function (ev) {
        ev.preventDefault();
        var u = $('username'), p = $('password'), b = $('login-submit');
        setError('');
        if (!u.value || !p.value) {
          setError('Enter a user name and a password.');
          return;
        }
        if (b) b.disabled = true;
        login(u.value.trim(), p.value).then(function (res) {
          if (res.ok) {
            p.value = '';
          } else {
            setError(res.status === 400 ? 'Wrong user name or password.' :
              res.status === 429 ? 'Too many attempts: wait a minute.' : res.detail);
          }
        }, function (e) {
          setError('Network error: ' + e.message);
        }).then(function () {
          if (b) b.disabled = false;
        });
      });
    }
    var out = $('logout');
    if (out) {
      out.addEventListener('click', function () {
        setError('');
        logout();
      });
    }
    var reg = $('register');
    if (reg) {
      reg.addEventListener('submit', function (ev) {
        ev.preventDefault();
        var st = $('register-state'), b = $('register-submit');
        var f = {
          username: $('reg-username').value.trim(),
          email: $('reg-email').value.trim(),
          password: $('reg-password').value
        };
        if (st) st.textContent = '';
        if (b) b.disabled = true;
        register(f).then(function (res) {
          if (!res.ok) {
            if (st) st.textContent = 'Not registered (' + res.status + '): ' + res.detail;
            return null;
          }
          if (st) st.textContent = 'Registered ' + f.username + ' (id ' + res.user.id + '); signing in...';
          return login(f.username, f.password).then(function (r2) {
            if (st) st.textContent = r2.ok ? 'Registered ' + f.username + ' and signed in.' :
              'Registered, but signing in failed: ' + r2.detail;
            if (r2.ok) $('reg-password').value = '';
          });
        }, function (e) {
          if (st) st.textContent = 'Network error: ' + e.message;
        }).then(function () {
          if (b) b.disabled = false;
        });
      });
    }
    render();
  }

  /* Another tab of ours signing in or out does not touch sessionStorage
   * here (it is per tab), so only this page's own changes matter. */

  window.Auth = {
    getToken: getToken,
    getUser: getUser,
    setToken: setToken,
    login: login,
    logout: logout,
    register: register,
    api: api,
    readBody: readBody,
    reason: reason,
    onChange: onChange
  };
  window.getToken = getToken;
  window.login = login;
  window.logout = logout;

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', wire);
  } else {
    wire();
  }
})();

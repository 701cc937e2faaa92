/* docs.js: the interactive API docs at /docs/, read from /openapi.json
 * (OpenAPI 3.1; 3.0 reads the same here). Every operation becomes
 *   <section class="op" data-op="GET /api/hello/{name}">
 * with its summary, description, security, parameters (an input[name] per
 * path, query and header parameter), request body (textarea.body for JSON,
 * one input[name] per field for form-encoded bodies), responses, and a
 * button.try ("Try it") that sends the request with the bearer token of
 * auth.js when signed in, then shows .response-status and pre.response-body.
 * Everything from the spec goes into the page as text, never as markup.
 */
(function () {
  'use strict';

  var METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
  var BODY_METHODS = { POST: 1, PUT: 1, PATCH: 1, DELETE: 1 };
  var spec = null;
  var base = '';
  var tokenUrl = null;

  /* -- small DOM helpers -------------------------------------------------- */

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === 'text') e.textContent = v;
        else if (k === 'class') e.className = v;
        else if (k === 'hidden') e.hidden = true;
        else e.setAttribute(k, v === true ? '' : String(v));
      });
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }

  function $(id) { return document.getElementById(id); }

  /* -- $ref ---------------------------------------------------------------- */

  function pointer(ref) {
    if (typeof ref !== 'string' || ref.indexOf('#/') !== 0) return undefined;
    var node = spec;
    var parts = ref.slice(2).split('/');
    for (var i = 0; i < parts.length; i++) {
      var key = decodeURIComponent(parts[i]).replace(/~1/g, '/').replace(/~0/g, '~');
      if (node === null || typeof node !== 'object' || !(key in node)) return undefined;
      node = node[key];
    }
    return node;
  }

  /* The object a $ref names, with the $ref's own siblings (3.1 allows
   * summary/description next to it) laid over it. */
  function deref(obj, depth) {
    depth = depth || 0;
    if (!obj || typeof obj !== 'object' || !obj.$ref || depth > 20) return obj;
    var target = pointer(obj.$ref);
    if (target === undefined) return obj;
    var out = {};
    var t = deref(target, depth + 1);
    Object.keys(t).forEach(function (k) { out[k] = t[k]; });
    Object.keys(obj).forEach(function (k) { if (k !== '$ref') out[k] = obj[k]; });
    return out;
  }

  function refName(ref) {
    return String(ref).split('/').pop();
  }

  /* -- schemas as text ----------------------------------------------------- */

  function range(lo, hi, unit) {
    unit = unit ? ' ' + unit : '';
    if (lo !== undefined && hi !== undefined) return lo + '..' + hi + unit;
    return lo !== undefined ? '>= ' + lo + unit : '<= ' + hi + unit;
  }

  function constraints(s) {
    var c = [];
    if (s.format) c.push(s.format);
    if (s.minLength !== undefined || s.maxLength !== undefined) c.push(range(s.minLength, s.maxLength, 'chars'));
    var lo = s.minimum !== undefined ? s.minimum : s.exclusiveMinimum;
    var hi = s.maximum !== undefined ? s.maximum : s.exclusiveMaximum;
    if (lo !== undefined || hi !== undefined) c.push(range(lo, hi));
    if (s.minItems !== undefined || s.maxItems !== undefined) c.push(range(s.minItems, s.maxItems, 'items'));
    if (s.pattern) c.push('/' + s.pattern + '/');
    if (s.default !== undefined) c.push('default ' + JSON.stringify(s.default));
    return c.length ? ' (' + c.join(', ') + ')' : '';
  }

  function oneLine(text, max) {
    text = String(text || '').replace(/\s+/g, ' ').trim();
    return text.length > max ? text.slice(0, max - 1) + '\u2026' : text;
  }

  /* A TypeScript-like rendering: { name: string (3..64 chars), age?: integer } */
  function schemaText(s, indent, seen) {
    indent = indent || '';
    seen = seen || [];
    if (s === undefined || s === null || s === true) return 'any';
    if (s === false) return 'never';
    if (typeof s !== 'object') return String(s);
    if (s.$ref) {
      if (seen.indexOf(s.$ref) >= 0 || seen.length > 8) return refName(s.$ref);
      var r = deref(s);
      if (r === s) return refName(s.$ref);
      return schemaText(r, indent, seen.concat([s.$ref]));
    }
    if (s.const !== undefined) return JSON.stringify(s.const);
    if (Array.isArray(s.enum)) {
      return s.enum.map(function (v) { return JSON.stringify(v); }).join(' | ');
    }
    var alt = s.oneOf || s.anyOf;
    var out;
    if (Array.isArray(alt)) {
      out = alt.map(function (x) { return schemaText(x, indent, seen); }).join(' | ');
      if (s.properties || s.type) out = '(' + out + ') & ' + schemaText(stripped(s, ['oneOf', 'anyOf']), indent, seen);
      return out;
    }
    if (Array.isArray(s.allOf)) {
      out = s.allOf.map(function (x) { return schemaText(x, indent, seen); }).join(' & ');
      if (s.properties) out += ' & ' + schemaText(stripped(s, ['allOf']), indent, seen);
      return out;
    }
    var types = Array.isArray(s.type) ? s.type : (s.type ? [s.type] : []);
    if (!types.length) {
      if (s.properties || s.additionalProperties) types = ['object'];
      else if (s.items || s.prefixItems) types = ['array'];
    }
    if (!types.length) return 'any' + constraints(s);
    out = types.map(function (t) {
      if (t === 'object') return objectText(s, indent, seen);
      if (t === 'array') {
        if (Array.isArray(s.prefixItems)) {
          return '[' + s.prefixItems.map(function (x) { return schemaText(x, indent, seen); }).join(', ') + ']';
        }
        var inner = schemaText(s.items, indent, seen);
        return (/[\s|&]/.test(inner) && inner.charAt(0) !== '{' ? '(' + inner + ')' : inner) + '[]';
      }
      return t;
    }).join(' | ');
    if (s.nullable) out += ' | null';
    return out + constraints(s);
  }

  function stripped(s, keys) {
    var o = {};
    Object.keys(s).forEach(function (k) { if (keys.indexOf(k) < 0) o[k] = s[k]; });
    return o;
  }

  function objectText(s, indent, seen) {
    var props = s.properties || {};
    var names = Object.keys(props);
    var req = Array.isArray(s.required) ? s.required : [];
    var ap = s.additionalProperties;
    if (!names.length && (ap === undefined || ap === true)) return 'object';
    var pad = indent + '  ';
    var lines = names.map(function (n) {
      var p = props[n];
      var d = p && (p.description || (p.$ref && deref(p).description));
      return pad + JSON.stringify(n).slice(1, -1) + (req.indexOf(n) >= 0 ? '' : '?') + ': ' +
        schemaText(p, pad, seen) + (d ? '  // ' + oneLine(d, 100) : '');
    });
    if (ap && typeof ap === 'object') lines.push(pad + '[key: string]: ' + schemaText(ap, pad, seen));
    else if (ap === true && names.length) lines.push(pad + '...');
    return '{\n' + lines.join('\n') + '\n' + indent + '}';
  }

  /* -- examples ------------------------------------------------------------ */

  function exampleOf(s, depth) {
    depth = depth || 0;
    if (!s || typeof s !== 'object' || depth > 8) return null;
    if (s.$ref) return exampleOf(deref(s), depth + 1);
    if (s.example !== undefined) return s.example;
    if (Array.isArray(s.examples) && s.examples.length) return s.examples[0];
    if (s.default !== undefined) return s.default;
    if (s.const !== undefined) return s.const;
    if (Array.isArray(s.enum) && s.enum.length) return s.enum[0];
    var alt = s.oneOf || s.anyOf;
    if (Array.isArray(alt) && alt.length) return exampleOf(alt[0], depth + 1);
    if (Array.isArray(s.allOf)) {
      var merged = {};
      s.allOf.forEach(function (x) {
        var v = exampleOf(x, depth + 1);
        if (v && typeof v === 'object' && !Array.isArray(v)) {
          Object.keys(v).forEach(function (k) { merged[k] = v[k]; });
        }
      });
      return merged;
    }
    var t = Array.isArray(s.type) ? s.type.filter(function (x) { return x !== 'null'; })[0] : s.type;
    if (!t && s.properties) t = 'object';
    if (!t && s.items) t = 'array';
    switch (t) {
      case 'object': {
        var o = {};
        var props = s.properties || {};
        var names = Object.keys(props);
        var req = Array.isArray(s.required) ? s.required : [];
        /* required fields; with none, those that carry an example, else the first */
        var pick = names.filter(function (n) { return req.indexOf(n) >= 0; });
        if (!pick.length) {
          pick = names.filter(function (n) {
            var p = deref(props[n]);
            return p && (p.example !== undefined || (Array.isArray(p.examples) && p.examples.length));
          });
        }
        if (!pick.length && names.length) pick = [names[0]];
        pick.forEach(function (n) { o[n] = exampleOf(props[n], depth + 1); });
        return o;
      }
      case 'array': {
        var item = exampleOf(s.items, depth + 1);
        return item === null ? [] : [item];
      }
      case 'string':
        if (s.format === 'email') return 'user@example.com';
        if (s.format === 'date-time') return new Date().toISOString();
        if (s.format === 'uuid') return '00000000-0000-0000-0000-000000000000';
        return 'string';
      case 'integer':
      case 'number':
        return s.minimum !== undefined ? s.minimum : 0;
      case 'boolean':
        return false;
      default:
        return null;
    }
  }

  /* The media type's own example, else its first named example, else one
   * made from the schema. */
  function mediaExample(media) {
    if (!media) return null;
    if (media.example !== undefined) return media.example;
    if (media.examples && typeof media.examples === 'object') {
      var k = Object.keys(media.examples)[0];
      if (k) {
        var ex = deref(media.examples[k]);
        if (ex && ex.value !== undefined) return ex.value;
      }
    }
    return exampleOf(media.schema);
  }

  /* -- security ------------------------------------------------------------ */

  /* {need: "none"|"optional"|"required", scopes: [...]} for an operation. */
  function securityOf(op) {
    var reqs = op.security !== undefined ? op.security : (spec.security || []);
    if (!Array.isArray(reqs) || !reqs.length) return { need: 'none', scopes: [] };
    var anonymous = false;
    var scopes = [];
    reqs.forEach(function (r) {
      var names = Object.keys(r || {});
      if (!names.length) anonymous = true;
      names.forEach(function (n) {
        (r[n] || []).forEach(function (sc) { if (scopes.indexOf(sc) < 0) scopes.push(sc); });
      });
    });
    return { need: anonymous ? 'optional' : 'required', scopes: scopes };
  }

  function findTokenUrl() {
    var schemes = (spec.components && spec.components.securitySchemes) || {};
    var url = null;
    Object.keys(schemes).forEach(function (k) {
      var s = deref(schemes[k]);
      if (s && s.type === 'oauth2' && s.flows && s.flows.password && s.flows.password.tokenUrl && !url) {
        url = s.flows.password.tokenUrl;
      }
    });
    if (!url) return null;
    try {
      var u = new URL(url, location.origin + base + '/');
      return u.origin === location.origin ? u.pathname : null;
    } catch (e) {
      return null;
    }
  }

  /* -- one operation ------------------------------------------------------- */

  function slug(s) {
    return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
  }

  function collectParams(pathItem, op) {
    var byKey = {};
    var order = [];
    (pathItem.parameters || []).concat(op.parameters || []).forEach(function (p) {
      p = deref(p);
      if (!p || !p.name) return;
      var key = p.in + ':' + p.name;
      if (!(key in byKey)) order.push(key);
      byKey[key] = p;
    });
    return order.map(function (k) { return byKey[k]; });
  }

  function paramSchema(p) {
    if (p.schema) return p.schema;
    if (p.content) {
      var k = Object.keys(p.content)[0];
      return k ? p.content[k].schema : null;
    }
    return null;
  }

  function renderParams(o) {
    if (!o.params.length) return null;
    var rows = o.params.map(function (p) {
      var schema = paramSchema(p);
      var ex = p.example !== undefined ? p.example : exampleOf(schema);
      var input = null;
      if (p.in === 'path' || p.in === 'query' || p.in === 'header') {
        input = el('input', {
          name: p.name,
          class: 'param',
          'data-in': p.in,
          'aria-label': p.name + ' (' + p.in + ')',
          placeholder: ex === null || ex === undefined ? '' : (typeof ex === 'string' ? ex : JSON.stringify(ex)),
          autocomplete: 'off',
          spellcheck: 'false'
        });
      }
      return el('tr', null, [
        el('td', { class: 'pname' }, [el('code', { text: p.name }),
          p.required ? el('span', { class: 'req', text: ' required', title: 'required' }) : null,
          p.deprecated ? el('span', { class: 'deprecated', text: ' deprecated' }) : null]),
        el('td', { class: 'pin', text: p.in }),
        el('td', { class: 'ptype' }, [el('code', { text: schemaText(schema).replace(/\s+/g, ' ') })]),
        el('td', { class: 'pdesc', text: p.description || '' }),
        el('td', { class: 'pinput' }, [input])
      ]);
    });
    return el('div', { class: 'params' }, [
      el('h4', { text: 'Parameters' }),
      el('table', null, [
        el('thead', null, [el('tr', null, ['name', 'in', 'type', 'description', 'value'].map(function (h) {
          return el('th', { text: h });
        }))]),
        el('tbody', null, rows)
      ])
    ]);
  }

  function isJson(type) {
    return /^application\/([a-z0-9.+-]*\+)?json\b/i.test(type);
  }

  function renderBody(o) {
    var rb = deref(o.op.requestBody);
    if (!rb || !rb.content) return null;
    var types = Object.keys(rb.content);
    var box = el('div', { class: 'request-body' }, [
      el('h4', null, ['Request body ', el('span', { class: 'ctype', text: types.join(', ') }),
        rb.required ? el('span', { class: 'req', text: ' required' }) : null]),
      rb.description ? el('p', { class: 'desc', text: rb.description }) : null
    ]);
    var json = types.filter(isJson)[0];
    var form = types.filter(function (t) { return /^application\/x-www-form-urlencoded/i.test(t); })[0];
    var chosen = json || form || types[0];
    var media = deref(rb.content[chosen]) || {};
    box.appendChild(el('pre', { class: 'schema', text: schemaText(media.schema) }));
    o.bodyType = chosen;
    if (json) {
      var ex = mediaExample(media);
      o.bodyEl = el('textarea', {
        class: 'body',
        rows: 4,
        spellcheck: 'false',
        'aria-label': 'request body (' + chosen + ')'
      });
      o.bodyEl.value = ex === null || ex === undefined ? '' : JSON.stringify(ex, null, 2);
      box.appendChild(el('label', { class: 'body-label' }, ['Body (' + chosen + ')', o.bodyEl]));
    } else if (form) {
      var s = deref(media.schema) || {};
      var props = s.properties || {};
      var req = Array.isArray(s.required) ? s.required : [];
      var fields = el('div', { class: 'form-fields' });
      o.formEls = [];
      Object.keys(props).forEach(function (n) {
        var p = deref(props[n]) || {};
        var ex = exampleOf(p);
        var fixed = p.const !== undefined ? p.const :
          (Array.isArray(p.enum) && p.enum.length === 1 ? p.enum[0] : (p.default !== undefined ? p.default : null));
        var input = el('input', {
          name: n,
          class: 'form-field',
          type: /password|secret/i.test(n) || p.format === 'password' ? 'password' : 'text',
          placeholder: ex === null || ex === undefined ? '' : String(ex),
          autocomplete: 'off',
          spellcheck: 'false'
        });
        if (fixed !== null) input.value = String(fixed);
        o.formEls.push(input);
        fields.appendChild(el('label', null, [
          el('code', { text: n }), req.indexOf(n) >= 0 ? el('span', { class: 'req', text: '*' }) : null,
          ' ', input]));
      });
      box.appendChild(fields);
    } else {
      o.bodyEl = el('textarea', { class: 'raw-body', rows: 3, 'aria-label': 'request body (' + chosen + ')' });
      box.appendChild(el('label', { class: 'body-label' }, ['Body (' + chosen + ')', o.bodyEl]));
    }
    return box;
  }

  function renderResponses(op) {
    var res = op.responses || {};
    var codes = Object.keys(res);
    if (!codes.length) return null;
    var list = el('dl', { class: 'responses' });
    codes.forEach(function (code) {
      var r = deref(res[code]) || {};
      var dd = el('dd', null, [el('span', { class: 'desc', text: r.description || '' })]);
      var content = r.content || {};
      Object.keys(content).forEach(function (t) {
        var m = deref(content[t]) || {};
        dd.appendChild(el('div', { class: 'ctype', text: t }));
        if (m.schema) dd.appendChild(el('pre', { class: 'schema', text: schemaText(m.schema) }));
      });
      var headers = Object.keys(r.headers || {});
      if (headers.length) dd.appendChild(el('div', { class: 'rheaders', text: 'headers: ' + headers.join(', ') }));
      var cls = 'code code-' + String(code).charAt(0).toLowerCase();
      list.appendChild(el('dt', { class: cls, text: code }));
      list.appendChild(dd);
    });
    return el('div', { class: 'responses-box' }, [el('h4', { text: 'Responses' }), list]);
  }

  function renderOp(o) {
    var sec = securityOf(o.op);
    var id = 'op-' + slug(o.method + ' ' + o.path);
    var badge = null;
    if (sec.need !== 'none') {
      badge = el('span', {
        class: 'lock' + (sec.need === 'optional' ? ' optional' : ''),
        title: sec.need === 'optional' ? 'a token is optional' : 'needs a bearer token',
        text: 'token' + (sec.scopes.length ? ' (' + sec.scopes.join(' ') + ')' : '') +
          (sec.need === 'optional' ? ' optional' : '')
      });
    }
    o.statusEl = el('span', { class: 'response-status', 'aria-live': 'polite' });
    o.metaEl = el('span', { class: 'response-meta' });
    o.bodyOut = el('pre', { class: 'response-body' });
    o.headersOut = el('pre', { class: 'response-headers' });
    o.errEl = el('span', { class: 'try-error error', role: 'alert' });
    o.button = el('button', { type: 'button', class: 'try', text: 'Try it' });
    o.urlEl = el('code', { class: 'request-url' });
    var section = el('section', {
      class: 'op method-' + o.method.toLowerCase() + (o.op.deprecated ? ' is-deprecated' : ''),
      id: id,
      'data-op': o.method + ' ' + o.path
    }, [
      el('h3', null, [
        el('span', { class: 'method', text: o.method }), ' ',
        el('code', { class: 'path', text: o.path }), ' ',
        el('span', { class: 'summary', text: o.op.summary || o.op.operationId || '' }), ' ',
        badge,
        o.op.deprecated ? el('span', { class: 'deprecated', text: 'deprecated' }) : null
      ]),
      o.op.description ? el('p', { class: 'desc', text: o.op.description }) : null,
      renderParams(o),
      renderBody(o),
      renderResponses(o.op),
      el('div', { class: 'try-box' }, [o.button, ' ', o.errEl]),
      el('div', { class: 'result', hidden: true }, [
        el('p', null, ['Status ', o.statusEl, ' ', o.metaEl, ' ', o.urlEl]),
        o.bodyOut,
        el('details', null, [el('summary', { text: 'response headers' }), o.headersOut])
      ])
    ]);
    o.section = section;
    o.button.addEventListener('click', function () { tryIt(o); });
    return section;
  }

  /* -- Try it -------------------------------------------------------------- */

  function inputsOf(o, cls) {
    return Array.prototype.slice.call(o.section.querySelectorAll('input.' + cls));
  }

  function tryIt(o) {
    o.errEl.textContent = '';
    var values = {};
    inputsOf(o, 'param').forEach(function (i) { values[i.getAttribute('data-in') + ':' + i.name] = i.value; });
    var missing = [];
    var path = o.path.replace(/\{([^}]+)\}/g, function (m, name) {
      var v = values['path:' + name];
      if (v === undefined || v === '') {
        missing.push(name);
        return m;
      }
      return encodeURIComponent(v);
    });
    o.params.forEach(function (p) {
      if (p.required && p.in !== 'path' && p.in !== 'cookie' && !values[p.in + ':' + p.name]) missing.push(p.name);
    });
    if (missing.length) {
      o.errEl.textContent = 'Fill in ' + missing.join(', ') + ' first.';
      return;
    }
    var query = new URLSearchParams();
    var headers = {};
    o.params.forEach(function (p) {
      var v = values[p.in + ':' + p.name];
      if (v === undefined || v === '') return;
      if (p.in === 'query') query.append(p.name, v);
      else if (p.in === 'header') headers[p.name] = v;
    });
    var url = base + path + (query.toString() ? '?' + query.toString() : '');
    var init = { method: o.method, headers: headers };
    if (o.bodyEl && o.bodyEl.value.trim() !== '') {
      init.body = o.bodyEl.value;
      headers['Content-Type'] = o.bodyType;
    } else if (o.formEls) {
      var form = new URLSearchParams();
      o.formEls.forEach(function (i) { if (i.value !== '') form.append(i.name, i.value); });
      init.body = form.toString();
      headers['Content-Type'] = o.bodyType;
    } else if (BODY_METHODS[o.method]) {
      init.body = ''; /* lighttpd wants a Content-Length on a POST */
    }
    o.statusEl.textContent = '';
    o.bodyOut.textContent = '';
    o.headersOut.textContent = '';
    o.metaEl.textContent = 'sending...';
    o.urlEl.textContent = o.method + ' ' + url;
    o.section.querySelector('.result').hidden = false;
    o.button.disabled = true;
    var t0 = performance.now();
    Auth.api(url, init).then(Auth.readBody).then(function (res) {
      var ms = performance.now() - t0;
      var hs = [];
      res.headers.forEach(function (v, k) { hs.push(k + ': ' + v); });
      o.headersOut.textContent = hs.join('\n');
      o.bodyOut.textContent = res.json !== null ? JSON.stringify(res.json, null, 2) :
        (res.text === '' ? '(empty body)' : res.text);
      o.metaEl.textContent = (res.ok ? 'ok' : 'error') + ', ' + ms.toFixed(0) + ' ms';
      o.section.classList.toggle('failed', !res.ok);
      o.statusEl.textContent = String(res.status);
      /* a token got through Try it signs this page in, as the form does */
      if (tokenUrl && o.method === 'POST' && path === tokenUrl.slice(base.length) &&
          res.ok && res.json && res.json.access_token) {
        var u = o.formEls && o.formEls.filter(function (i) { return i.name === 'username'; })[0];
        Auth.setToken(res.json.access_token, u ? u.value : null);
      }
    }, function (e) {
      o.metaEl.textContent = '';
      o.bodyOut.textContent = 'Network error: ' + e.message;
      o.statusEl.textContent = 'error';
    }).then(function () {
      o.button.disabled = false;
    });
  }

  /* -- the page ------------------------------------------------------------ */

  function operations() {
    var ops = [];
    Object.keys(spec.paths || {}).forEach(function (path) {
      var item = deref(spec.paths[path]) || {};
      METHODS.forEach(function (m) {
        if (!item[m] || typeof item[m] !== 'object') return;
        var op = item[m];
        ops.push({
          method: m.toUpperCase(),
          path: path,
          op: op,
          params: collectParams(item, op),
          tag: (op.tags && op.tags[0]) || 'other'
        });
      });
    });
    return ops;
  }

  function basePath() {
    var s = spec.servers && spec.servers[0] && spec.servers[0].url;
    if (!s || /\{/.test(s)) return '';
    try {
      var u = new URL(s, location.href);
      return u.origin === location.origin ? u.pathname.replace(/\/+$/, '') : '';
    } catch (e) {
      return '';
    }
  }

  function render() {
    var info = spec.info || {};
    if (info.title) {
      $('title').textContent = info.title;
      document.title = info.title + ' \u2014 API docs';
    }
    $('version').textContent = [info.version ? 'version ' + info.version : '',
      spec.openapi ? 'OpenAPI ' + spec.openapi : ''].filter(Boolean).join(' \u00b7 ');
    if (info.description) {
      var d = $('description');
      d.appendChild(el('p', { class: 'desc', text: info.description }));
      d.hidden = false;
    }
    base = basePath();
    tokenUrl = findTokenUrl();

    var ops = operations();
    var tagOrder = (spec.tags || []).map(function (t) { return t.name; });
    var tagDesc = {};
    (spec.tags || []).forEach(function (t) { tagDesc[t.name] = t.description; });
    ops.forEach(function (o) { if (tagOrder.indexOf(o.tag) < 0) tagOrder.push(o.tag); });

    var container = $('ops');
    var toc = $('toc');
    var tocList = el('ul');
    toc.appendChild(el('h2', { text: 'Operations' }));
    toc.appendChild(tocList);
    tagOrder.forEach(function (tag) {
      var group = ops.filter(function (o) { return o.tag === tag; });
      if (!group.length) return;
      var gid = 'tag-' + slug(tag);
      container.appendChild(el('div', { class: 'tag', id: gid }, [
        el('h2', { text: tag }),
        tagDesc[tag] ? el('p', { class: 'desc', text: tagDesc[tag] }) : null
      ].concat(group.map(renderOp))));
      var sub = el('ul');
      group.forEach(function (o) {
        sub.appendChild(el('li', null, [el('a', { href: '#' + o.section.id }, [
          el('span', { class: 'method method-' + o.method.toLowerCase(), text: o.method }), ' ',
          el('code', { text: o.path })])]));
      });
      tocList.appendChild(el('li', null, [el('a', { href: '#' + gid, text: tag }), sub]));
    });
    $('spec-status').textContent = 'loaded ' + ops.length + ' operations';
    /* a link to an operation (#op-...) now has its target */
    if (location.hash.length > 1) {
      var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (target) target.scrollIntoView();
    }
  }

  function load() {
    fetch('/openapi.json', { cache: 'no-cache' }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(function (j) {
      if (!j || typeof j !== 'object' || typeof j.paths !== 'object') throw new Error('not an OpenAPI document');
      spec = j;
      render();
    }).catch(function (e) {
      var st = $('spec-status');
      st.textContent = 'could not load /openapi.json: ' + e.message;
      st.classList.add('error');
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', load);
  else load();
})();

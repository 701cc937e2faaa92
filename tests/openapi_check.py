#!/usr/bin/python3
"""Check one HTTP answer against www/openapi.json (tests/openapi.bats).

usage: openapi_check.py SPEC METHOD TEMPLATE PATH STATUS BODYFILE HEADFILE
       openapi_check.py SPEC --lint

METHOD, TEMPLATE (a key of "paths", e.g. /api/users/{id}) and PATH (the
path requested, query allowed) name the operation; STATUS, BODYFILE and
HEADFILE (curl -D: the response headers) are what came back. It fails
(exit 1, the reasons on stderr) when:
  - TEMPLATE is not in the spec, or PATH does not match it (but a 404 for
    a path below it: /api/health/x is GET /api/health's 404);
  - METHOD is not an operation of TEMPLATE and the answer is not a 405
    whose Allow header names exactly the spec's methods (and HEAD with GET),
    with components.responses.MethodNotAllowed's body;
  - STATUS is not among the operation's responses (no "default" is used);
  - the Content-Type is not one the response lists, or a body comes with a
    response that has none;
  - the JSON body does not validate against the response's schema
    (JSON Schema 2020-12, every $ref resolved);
  - a header the response marks required is missing.
--lint checks the spec itself: every schema is valid 2020-12, every $ref
resolves, every operation has an operationId (unique), a summary and
responses, and every path template's parameters are declared.
"""
import json
import re
import sys

import jsonschema

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def fail(msgs):
    for m in msgs:
        print("openapi_check: " + m, file=sys.stderr)
    sys.exit(1)


def resolve(spec, node, seen=()):
    """node with every $ref replaced by what it points to (no cycles here)."""
    if isinstance(node, list):
        return [resolve(spec, x, seen) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/") or ref in seen:
            raise ValueError("unresolvable or cyclic $ref " + ref)
        target = spec
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise ValueError("dangling $ref " + ref)
            target = target[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        out = resolve(spec, target, seen + (ref,))
        if rest:  # 3.1 allows siblings of $ref: both must hold
            out = {"allOf": [out, resolve(spec, rest, seen)]}
        return out
    return {k: resolve(spec, v, seen) for k, v in node.items()}


def read_headers(path):
    """The last header block of a curl -D file: {lower-case name: value}."""
    blocks, cur = [], {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.startswith("HTTP/"):
                cur = {}
                blocks.append(cur)
            elif ":" in line:
                k, v = line.split(":", 1)
                cur[k.strip().lower()] = v.strip()
    return blocks[-1] if blocks else {}


def template_regex(template):
    parts = re.split(r"(\{[^}/]+\})", template)
    return "^" + "".join("[^/?]+" if p.startswith("{") else re.escape(p) for p in parts) + r"(\?.*)?$"


def validate(schema, instance, what):
    v = jsonschema.Draft202012Validator(schema)
    errs = sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return ["%s: at %s: %s" % (what, "/".join(map(str, e.absolute_path)) or "(root)", e.message)
            for e in errs]


def check_answer(spec, method, template, path, status, body, headers):
    item = spec["paths"].get(template)
    if item is None:
        return ["%s is not a path of the spec" % template]
    if not re.match(template_regex(template), path):
        # a 404 for a path below the template's (/api/health/x) is the operation's
        below = template_regex(template)[:-len(r"(\?.*)?$")] + "/"
        if not (status == "404" and re.match(below, path)):
            return ["%s does not match the template %s" % (path, template)]
    m = method.lower()
    ops = [k for k in item if k in METHODS]
    if m not in ops:
        if status != "405":
            return ["%s %s is no operation of the spec, yet the answer is %s, not 405" % (method, template, status)]
        want = {k.upper() for k in ops} | ({"HEAD"} if "get" in ops else set())
        got = {x.strip() for x in headers.get("allow", "").split(",") if x.strip()}
        errs = []
        if got != want:
            errs.append("405 Allow is %s; the spec's methods for %s are %s" % (sorted(got), template, sorted(want)))
        response = resolve(spec, spec["components"]["responses"]["MethodNotAllowed"])
        return errs + check_body(response, status, body, headers, "405 (components.responses.MethodNotAllowed)")
    op = item[m]
    responses = op.get("responses", {})
    if status not in responses:
        return ["%s %s answered %s, which the spec does not list (it lists %s)"
                % (method, template, status, ", ".join(sorted(responses)))]
    return check_body(resolve(spec, responses[status]), status, body, headers,
                      "%s %s %s" % (method, template, status))


def check_body(response, status, body, headers, what):
    errs = []
    for name, h in response.get("headers", {}).items():
        if h.get("required") and name.lower() not in headers:
            errs.append("%s: required header %s missing" % (what, name))
    content = response.get("content")
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if not content:
        if body:
            errs.append("%s: the spec gives no body, got %r" % (what, body[:200]))
        return errs
    if ctype not in content:
        return errs + ["%s: Content-Type %r is not one of %s" % (what, ctype, sorted(content))]
    schema = content[ctype].get("schema", {})
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            instance = json.loads(body)
        except ValueError as e:
            return errs + ["%s: body is not JSON (%s): %r" % (what, e, body[:200])]
    else:
        instance = body
    return errs + validate(schema, instance, what)


def lint(spec):
    errs = []
    if not str(spec.get("openapi", "")).startswith("3.1"):
        errs.append("openapi is %r, not 3.1.x" % spec.get("openapi"))
    try:
        full = resolve(spec, spec)
    except ValueError as e:
        return [str(e)]
    for name, s in full.get("components", {}).get("schemas", {}).items():
        try:
            jsonschema.Draft202012Validator.check_schema(s)
        except jsonschema.SchemaError as e:
            errs.append("schema %s: %s" % (name, e.message))
    ids = set()
    schemes = full.get("components", {}).get("securitySchemes", {})
    for template, item in full["paths"].items():
        names = set(re.findall(r"\{([^}/]+)\}", template))
        for m in (k for k in item if k in METHODS):
            op, what = item[m], "%s %s" % (m.upper(), template)
            for key in ("operationId", "summary", "responses"):
                if not op.get(key):
                    errs.append("%s: no %s" % (what, key))
            if op.get("operationId") in ids:
                errs.append("%s: operationId %s repeated" % (what, op["operationId"]))
            ids.add(op.get("operationId"))
            declared = {p["name"] for p in op.get("parameters", []) + item.get("parameters", [])
                        if p.get("in") == "path"}
            if declared != names:
                errs.append("%s: path parameters %s, template has %s" % (what, sorted(declared), sorted(names)))
            for req in op.get("security", []):
                for s in req:
                    if s not in schemes:
                        errs.append("%s: unknown security scheme %s" % (what, s))
            for status, r in op.get("responses", {}).items():
                if not re.match(r"^[1-5][0-9][0-9]$", status):
                    errs.append("%s: response %r is not a status" % (what, status))
                for ct, media in r.get("content", {}).items():
                    try:
                        jsonschema.Draft202012Validator.check_schema(media.get("schema", {}))
                    except jsonschema.SchemaError as e:
                        errs.append("%s %s %s: %s" % (what, status, ct, e.message))
            body = op.get("requestBody", {}).get("content", {})
            for ct, media in body.items():
                try:
                    jsonschema.Draft202012Validator.check_schema(media.get("schema", {}))
                except jsonschema.SchemaError as e:
                    errs.append("%s request %s: %s" % (what, ct, e.message))
    return errs


def main(argv):
    if len(argv) == 3 and argv[2] == "--lint":
        with open(argv[1], encoding="utf-8") as f:
            errs = lint(json.load(f))
    elif len(argv) == 8:
        spec_file, method, template, path, status, body_file, head_file = argv[1:]
        with open(spec_file, encoding="utf-8") as f:
            spec = json.load(f)
        with open(body_file, encoding="utf-8", errors="replace") as f:
            body = f.read()
        errs = check_answer(spec, method, template, path, status, body, read_headers(head_file))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if errs:
        fail(errs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/python3
"""Checks of the Dockerfile and docker-compose.yml for tests/docker.bats, as
far as they go without a container engine: the build context, what every
instruction and service names, and how they agree with each other, the
repo, scripts/deps and the installed tree (`make install DESTDIR=ROOT`).

  docker_check.py context REPO CTX OUT   copy the build stage's COPY sources
        (the context as .dockerignore leaves it) to CTX as the stage lays them
        out, and print the stage's make commands (DESTDIR=/out made OUT)
  docker_check.py dockerfile REPO ROOT   the Dockerfile's checks
  docker_check.py compose REPO CONFIG ROOT
                                         the checks of `docker-compose config`'s
                                         output CONFIG
  docker_check.py argv CONFIG SERVICE command|healthcheck ROOT
                                         a service's command or healthcheck
                                         argv, NUL-separated, with the image's
                                         paths under ROOT
  docker_check.py env REPO CONFIG SERVICE ROOT
                                         the environment the service's
                                         container gets (the image's ENV, then
                                         compose's), NUL-separated KEY=value
  docker_check.py get REPO CONFIG WHAT   one value: workdir, user, gw_port,
                                         drain (the runner's RUNNER_DRAIN)

Each check that fails prints one line; the exit status is 1 if any did.
Debian's python3 (/usr/bin/python3) has the yaml module (with docker-compose).
"""
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse

import yaml

LIBDIR = "/usr/local/lib/apistack"  # the contract's install layout
# Programs the upstream images provide, by image (without the tag).
UPSTREAM = {
    "redis": {"redis-server", "redis-cli", "docker-entrypoint.sh"},
    "postgres": {"postgres", "pg_isready", "psql", "docker-entrypoint.sh"},
    "prom/prometheus": {"/bin/prometheus", "prometheus", "promtool", "wget"},
}
DEBIAN12 = re.compile(r"^debian:(12|bookworm)([.-][A-Za-z0-9.-]*)?$")

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def finish():
    sys.exit(1 if failures else 0)


# ---- Dockerfile ------------------------------------------------------------

def instructions(path):
    """(KEYWORD, rest) per instruction: continuation lines joined, comments
    dropped (also inside a continued instruction, as Docker does)."""
    out, buf = [], ""
    for line in open(path, encoding="utf-8").read().split("\n"):
        s = line.strip()
        if s.startswith("#") or (not s and not buf):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        if buf.strip():
            kw, _, rest = buf.strip().partition(" ")
            out.append((kw.upper(), rest.strip()))
        buf = ""
    return out


def stages(repo):
    """[{image, name, instrs}] per FROM."""
    st = []
    for kw, rest in instructions(os.path.join(repo, "Dockerfile")):
        if kw == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            st.append({"image": words[0], "name": name, "instrs": []})
        elif st:
            st[-1]["instrs"].append((kw, rest))
    return st


def exec_form(rest):
    """The JSON array of an exec-form instruction, or None (shell form)."""
    try:
        v = json.loads(rest)
    except ValueError:
        return None
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return v
    return None


def of(stage, kw):
    return [rest for k, rest in stage["instrs"] if k == kw]


def run_segments(stage):
    """Every command of the stage's RUN lines (split at && and ;)."""
    segs = []
    for rest in of(stage, "RUN"):
        segs += [s.strip() for s in re.split(r"&&|;", rest) if s.strip()]
    return segs


def apt_packages(stage):
    pkgs = []
    for seg in run_segments(stage):
        m = re.search(r"apt-get\s+install\s+(.*)$", seg)
        if m:
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def env_of(stage):
    """ENV KEY=value pairs (the form this Dockerfile uses)."""
    env = {}
    for rest in of(stage, "ENV"):
        for w in rest.split():
            k, eq, v = w.partition("=")
            if eq:
                env[k] = v
    return env


def final_user(stage):
    users = of(stage, "USER")
    return users[-1] if users else None


def useradd(stage):
    """(name, uid) of the stage's useradd, or (None, None)."""
    for seg in run_segments(stage):
        if seg.split()[:1] == ["useradd"] or " useradd " in f" {seg} ":
            words = seg.split()
            name = words[-1]
            uid = None
            for i, w in enumerate(words):
                if w in ("--uid", "-u") and i + 1 < len(words):
                    uid = words[i + 1]
            return name, uid
    return None, None


def image_path(root, path):
    """A path of the image as it lies in the installed tree ROOT."""
    return os.path.join(root, path.lstrip("/"))


def deps_pkgs(repo, name):
    text = open(os.path.join(repo, "scripts/deps"), encoding="utf-8").read()
    m = re.search(r'^%s="([^"]*)"' % name, text, re.M)
    return m.group(1).split() if m else []


def graceful_timeout(repo):
    text = open(os.path.join(repo, "lighttpd.conf"), encoding="utf-8").read()
    m = re.search(r'"server\.graceful-shutdown-timeout"\s*=>\s*(\d+)', text)
    return int(m.group(1)) if m else 0


# ---- the build context (.dockerignore) ---------------------------------------

def ignore_rules(repo):
    rules = []
    path = os.path.join(repo, ".dockerignore")
    if not os.path.exists(path):
        return rules
    for line in open(path, encoding="utf-8"):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        neg = s.startswith("!")
        s = os.path.normpath(s.lstrip("!").strip()).lstrip("/")
        rules.append((neg, pattern_re(s)))
    return rules


def pattern_re(p):
    """Docker's .dockerignore patterns (Go filepath.Match, plus **)."""
    out, i = "", 0
    while i < len(p):
        c = p[i]
        if p.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if p.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = p.find("]", i)
            if j < 0:
                out += re.escape(c)
            else:
                cls = p[i + 1:j]
                out += "[" + ("^" + cls[1:] if cls.startswith("^") else cls) + "]"
                i = j
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


def ignored(rules, rel):
    """Whether the context leaves out rel: the last rule matching it or one
    of its parent directories decides."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    out = False
    for neg, rx in rules:
        if any(rx.match(p) for p in prefixes):
            out = not neg
    return out


def context_files(repo):
    rules = ignore_rules(repo)
    files = []
    for d, dirs, names in os.walk(repo):
        rel_d = os.path.relpath(d, repo)
        rel_d = "" if rel_d == "." else rel_d + "/"
        dirs[:] = [x for x in dirs if not (ignored(rules, rel_d + x) and
                                           not any(neg for neg, _ in rules))]
        for n in names:
            rel = rel_d + n
            if not ignored(rules, rel):
                files.append(rel)
    return sorted(files), rules


def copy_sources(stage):
    """(sources, dest, from) of each COPY/ADD."""
    out = []
    for kw, rest in stage["instrs"]:
        if kw not in ("COPY", "ADD"):
            continue
        words = rest.split()
        frm = None
        for w in words:
            if w.startswith("--from="):
                frm = w[len("--from="):]
        words = [w for w in words if not w.startswith("--")]
        arr = exec_form(rest)
        if arr:
            words = arr
        out.append((kw, words[:-1], words[-1], frm))
    return out


def cmd_context(repo, ctx, outdir):
    st = stages(repo)
    build = st[0]
    files, rules = context_files(repo)
    fileset = set(files)
    workdir = (of(build, "WORKDIR") or ["/"])[-1]
    for kw, srcs, dest, frm in copy_sources(build):
        for src in srcs:
            s = os.path.normpath(src).lstrip("/")
            s = "" if s == "." else s
            hits = [f for f in files if s == "" or f == s or f.startswith(s + "/")]
            if not hits:
                fail(f"build stage: {kw} {src}: not in the build context "
                     f"(missing from the repo, or left out by .dockerignore)")
                continue
            # where it lands, relative to the stage's WORKDIR (/src)
            d = dest if dest.startswith("/") else os.path.join(workdir, dest)
            d = os.path.relpath(d, workdir)
            for f in hits:
                if f == s and not dest.endswith("/") and len(srcs) == 1 and s in fileset:
                    target = d
                else:
                    target = os.path.join(d, os.path.relpath(f, s) if s else f)
                tp = os.path.join(ctx, target)
                os.makedirs(os.path.dirname(tp), exist_ok=True)
                shutil.copy2(os.path.join(repo, f), tp)
    cmds = []
    for seg in run_segments(build):
        if seg.startswith("make"):
            cmds.append(re.sub(r"DESTDIR=/out\b", "DESTDIR=" + outdir, seg))
    if not any("install" in c.split() for c in cmds):
        fail("build stage: no `make install DESTDIR=/out ...` step")
    print("\n".join(cmds))
    finish()


# ---- the Dockerfile's checks --------------------------------------------------

def needed_packages(root):
    """Debian packages of the shared libraries the installed programs link."""
    libs = set()
    for sub in ("bin", "cgi-bin"):
        d = image_path(root, LIBDIR + "/" + sub)
        for n in sorted(os.listdir(d)):
            out = subprocess.run(["readelf", "-d", os.path.join(d, n)], capture_output=True,
                                 text=True).stdout
            libs |= set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))
    cache = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
    where = {}
    for m in re.finditer(r"^\s*(\S+) \(([^)]*)\) => (\S+)$", cache, re.M):
        if "x86-64" in m.group(2) or m.group(1) not in where:
            where[m.group(1)] = m.group(3)
    pkgs = {}
    for lib in sorted(libs):
        path = where.get(lib)
        if path is None:
            fail(f"{lib}: not found by ldconfig")
            continue
        r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if r.returncode != 0:
            r = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True,
                               text=True)
        pkgs[lib] = r.stdout.split(":")[0].strip() if r.returncode == 0 else None
    return pkgs


def cmd_dockerfile(repo, root):
    st = stages(repo)
    if len(st) < 2:
        fail(f"Dockerfile: {len(st)} stage(s); a build stage and a runtime stage expected")
        finish()
    names = [s["name"] for s in st]
    for s in st:
        if not DEBIAN12.match(s["image"]):
            fail(f"FROM {s['image']}: not a Debian 12 (bookworm) image")
    build, final = st[0], st[-1]
    if not re.match(r"^debian:(12|bookworm)-slim", final["image"]):
        fail(f"runtime stage FROM {final['image']}: debian:12-slim expected")

    # build stage: scripts/deps's build packages, exactly
    want = set(deps_pkgs(repo, "pkgs_build"))
    got = set(apt_packages(build))
    if not want:
        fail("scripts/deps: no pkgs_build")
    if got != want:
        fail(f"build stage installs {sorted(got)}; scripts/deps pkgs_build is {sorted(want)}")

    # runtime stage: the packages of every library the programs link,
    # lighttpd and its TLS module (lighttpd.conf loads mod_openssl)
    rt = set(apt_packages(final))
    for lib, pkg in needed_packages(root).items():
        if pkg is None:
            fail(f"{lib}: no Debian package owns it")
        elif pkg not in rt and pkg != "libc6":
            fail(f"runtime stage: the programs link {lib} ({pkg}), not installed")
    for pkg in ("lighttpd", "lighttpd-mod-openssl"):
        if pkg not in rt:
            fail(f"runtime stage: {pkg} not installed")
    for pkg in sorted(rt & want):
        if pkg.endswith("-dev") or pkg in ("gcc", "make"):
            fail(f"runtime stage installs the build package {pkg}")

    # COPY --from: the build stage's install tree, to the same paths
    copies = copy_sources(final)
    if not any(frm for _, _, _, frm in copies):
        fail("runtime stage: no COPY --from=<build stage>")
    for kw, srcs, dest, frm in copies:
        if frm is None:
            fail(f"runtime stage: {kw} {' '.join(srcs)} from the context; only the build's output expected")
            continue
        if frm not in names[:-1]:
            fail(f"COPY --from={frm}: no such earlier stage")
        for src in srcs:
            if not (src == "/out" or src.startswith("/out/")):
                fail(f"COPY --from={frm} {src}: not under the build's DESTDIR /out")
                continue
            inner = src[len("/out"):] or "/"
            if not os.path.exists(image_path(root, inner)):
                fail(f"COPY --from={frm} {src}: {inner} is not in the installed tree")
            if os.path.normpath(inner) != os.path.normpath(dest):
                fail(f"COPY --from={frm} {src} {dest}: installed files name their final paths;"
                     f" it must land at {inner}")

    # a user that is not root, owning GW_STATE
    user = final_user(final)
    uname, uid = useradd(final)
    env = env_of(final)
    if user is None:
        fail("runtime stage: no USER (it would run as root)")
    else:
        u = user.split(":")[0]
        if u in ("root", "0"):
            fail(f"USER {user}: root")
        elif u not in (uname, uid):
            fail(f"USER {user}: not the user the stage creates ({uname}, uid {uid})")
    state = env.get("GW_STATE")
    if not state:
        fail("runtime stage: no ENV GW_STATE")
    else:
        owned = False
        for seg in run_segments(final):
            words = seg.split()
            if state not in words:
                continue
            if (words[:1] == ["install"] and "-d" in words and "-o" in words and
                    words[words.index("-o") + 1] in (uname, uid)):
                owned = True
            if words[:1] == ["chown"] and words[1].split(":")[0] in (uname, uid):
                owned = True
        if not owned:
            fail(f"GW_STATE {state}: not made owned by {uname}")
        vols = []
        for rest in of(final, "VOLUME"):
            vols += exec_form(rest) or rest.split()
        if state not in vols:
            fail(f"GW_STATE {state} (it holds the development keys): not a VOLUME")

    # exec form everywhere, a default command that exists
    for kw in ("CMD", "ENTRYPOINT"):
        for s in st:
            for rest in of(s, kw):
                if exec_form(rest) is None:
                    fail(f"{kw} {rest}: shell form; exec form (a JSON array) expected")
    cmds = of(final, "CMD")
    if not cmds:
        fail("runtime stage: no CMD")
    else:
        argv = exec_form(cmds[-1])
        if argv:
            check_program(argv[0], root, final, "CMD")
    if of(final, "ENTRYPOINT"):
        argv = exec_form(of(final, "ENTRYPOINT")[-1])
        if argv:
            check_program(argv[0], root, final, "ENTRYPOINT")
    hcs = of(final, "HEALTHCHECK")
    hport = None
    if not hcs:
        fail("runtime stage: no HEALTHCHECK")
    else:
        m = re.search(r"(?:^|\s)CMD\s+(.*)$", hcs[-1])
        argv = exec_form(m.group(1)) if m else None
        if argv is None:
            fail(f"HEALTHCHECK {hcs[-1]}: not CMD in exec form")
        else:
            check_program(argv[0], root, final, "HEALTHCHECK")
            hport = url_port(argv)
    workdir = (of(final, "WORKDIR") or [None])[-1]
    if workdir is None or not os.path.isdir(image_path(root, workdir)):
        fail(f"WORKDIR {workdir}: not a directory of the installed tree")

    # one port: ENV GW_PORT = EXPOSE = the healthcheck's
    port = env.get("GW_PORT")
    exposed = [p.split("/")[0] for rest in of(final, "EXPOSE") for p in rest.split()]
    if exposed != [port]:
        fail(f"EXPOSE {exposed}; ENV GW_PORT is {port}")
    if hport != port:
        fail(f"HEALTHCHECK's URL port {hport}; ENV GW_PORT is {port}")
    if env.get("GW_BIND") != "0.0.0.0":
        fail(f"ENV GW_BIND={env.get('GW_BIND')}: a container listens on 0.0.0.0")
    if env.get("GW_WORKERS") != "0":
        fail(f"ENV GW_WORKERS={env.get('GW_WORKERS')}: 0 (with workers a graceful stop cuts requests)")
    if env.get("GW_TLS_PORT") != "0":
        fail(f"ENV GW_TLS_PORT={env.get('GW_TLS_PORT')}: 0 (no development certificate in an image)")
    # lighttpd is the default command: SIGINT is its graceful stop
    sig = (of(final, "STOPSIGNAL") or ["SIGTERM"])[-1]
    if sig != "SIGINT":
        fail(f"STOPSIGNAL {sig}: SIGINT (lighttpd's graceful stop) expected")
    # what must never be in the build context
    files, rules = context_files(repo)
    for p in (".env", "var/secrets/token-keys", "build/x.o", "cgi-bin/hello", "bin/migrate"):
        if not ignored(rules, p):
            fail(f".dockerignore: {p} would be in the build context")
    finish()


def url_port(argv):
    for a in argv:
        u = urllib.parse.urlsplit(a)
        if u.scheme in ("http", "https") and u.hostname:
            return str(u.port or (443 if u.scheme == "https" else 80))
    return None


def check_program(prog, root, final, what):
    """A program the apistack image runs: in the installed tree (absolute,
    or on the image's PATH), or from a package the runtime stage installs."""
    if prog.startswith("/"):
        p = image_path(root, prog)
        if not (os.path.isfile(p) and os.access(p, os.X_OK)):
            fail(f"{what}: {prog} is not an executable of the installed tree")
        return
    if "/" in prog:
        workdir = (of(final, "WORKDIR") or ["/"])[-1]
        return check_program(os.path.join(workdir, prog), root, final, what)
    for d in env_of(final).get("PATH", "").split(":"):
        if d.startswith(LIBDIR) and os.access(image_path(root, d + "/" + prog), os.X_OK):
            return
    host = shutil.which(prog, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if host is None:
        fail(f"{what}: {prog}: no such program")
        return
    r = subprocess.run(["dpkg", "-S", os.path.realpath(host)], capture_output=True, text=True)
    if r.returncode != 0:
        r = subprocess.run(["dpkg", "-S", host], capture_output=True, text=True)
    pkg = r.stdout.split(":")[0].strip()
    if pkg not in apt_packages(final):
        fail(f"{what}: {prog} comes with {pkg or 'no package'}, which the runtime stage does not install")


# ---- docker-compose config ----------------------------------------------------

def load_config(path):
    return yaml.safe_load(open(path, encoding="utf-8"))


def duration(s):
    """Compose's durations (1m30s, 45s, 500ms) in seconds."""
    s = str(s)
    total, ok = 0.0, False
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(us|ms|h|m|s)", s):
        total += float(num) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
        ok = True
    return total if ok else None


def upstream(image):
    repo = image.rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image
    return repo


def cmd_compose(repo, config, root):
    cfg = load_config(config)
    svcs = cfg.get("services", {})
    st = stages(repo)
    final = st[-1]
    for name in ("gateway", "migrate", "queue-runner", "redis", "postgres", "prometheus"):
        if name not in svcs:
            fail(f"no service {name}")
    if failures:
        finish()
    gw, mig, qr = svcs["gateway"], svcs["migrate"], svcs["queue-runner"]
    red, pg, prom = svcs["redis"], svcs["postgres"], svcs["prometheus"]

    # our image: built here, one image for the three
    ours = [n for n, s in svcs.items() if "build" in s]
    for n in ("gateway", "migrate", "queue-runner"):
        b = svcs[n].get("build")
        if not b or os.path.realpath(b.get("context", "")) != os.path.realpath(repo):
            fail(f"{n}: not built from this repo's Dockerfile")
        if b and b.get("dockerfile", "Dockerfile") != "Dockerfile":
            fail(f"{n}: builds {b.get('dockerfile')}, not the Dockerfile")
    if len({svcs[n].get("image") for n in ours}) != 1:
        fail(f"services {ours} name different images")

    # every command, entrypoint and healthcheck: exec form, and it exists
    for n, s in svcs.items():
        for key in ("command", "entrypoint"):
            if key not in s:
                continue
            argv = s[key]
            if not isinstance(argv, list):
                fail(f"{n}: {key} {argv!r}: shell form; exec form (a list) expected")
                continue
            check_service_program(n, s, argv[0], root, final, key)
        hc = s.get("healthcheck")
        if hc is None:
            fail(f"{n}: no healthcheck")
            continue
        test = hc.get("test")
        if not isinstance(test, list) or test[0] not in ("CMD", "NONE"):
            fail(f"{n}: healthcheck {test!r}: [\"CMD\", ...] expected (CMD-SHELL runs a shell)")
            continue
        if test[0] == "NONE":
            if n != "migrate":
                fail(f"{n}: healthcheck disabled")
            continue
        check_service_program(n, s, test[1], root, final, "healthcheck")
    if "command" not in gw or "command" not in qr or "command" not in mig:
        fail("gateway, queue-runner and migrate must each name their command")

    # bind mounts: files of the repo
    for n, s in svcs.items():
        for v in s.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith("/") or src.startswith("."):
                p = os.path.realpath(os.path.join(repo, src))
                if not os.path.exists(p):
                    fail(f"{n}: bind mount {src}: no such file")
                elif not p.startswith(os.path.realpath(repo) + "/"):
                    fail(f"{n}: bind mount {src}: outside the repo")

    # ports
    genv, qenv = gw.get("environment", {}), qr.get("environment", {})
    port = str(genv.get("GW_PORT", ""))
    dport = env_of(final).get("GW_PORT")
    if port != dport:
        fail(f"gateway GW_PORT {port}; the image's is {dport}")
    targets = [str(p.get("target")) if isinstance(p, dict) else str(p).split(":")[-1].split("/")[0]
               for p in gw.get("ports", [])]
    if targets != [port]:
        fail(f"gateway publishes container port(s) {targets}; GW_PORT is {port}")
    hport = url_port(gw.get("healthcheck", {}).get("test", []))
    if hport != port:
        fail(f"gateway healthcheck's URL port {hport}; GW_PORT is {port}")
    if genv.get("GW_WORKERS", env_of(final).get("GW_WORKERS")) != "0":
        fail(f"gateway GW_WORKERS {genv.get('GW_WORKERS')}: 0 (with workers a graceful stop cuts requests)")
    if genv.get("GW_BIND") != "0.0.0.0":
        fail(f"gateway GW_BIND {genv.get('GW_BIND')}: 0.0.0.0 expected in a container")
    exposed = [p.split("/")[0] for rest in of(final, "EXPOSE") for p in rest.split()]
    if port not in exposed:
        fail(f"gateway GW_PORT {port} is not EXPOSEd ({exposed})")
    if "GW_STATE" in genv and genv["GW_STATE"] != env_of(final).get("GW_STATE"):
        fail(f"gateway GW_STATE {genv['GW_STATE']}: not the image's {env_of(final).get('GW_STATE')}")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in gw.get("volumes", []) if isinstance(v, str)}
    if env_of(final).get("GW_STATE") not in mounts:
        fail("gateway: GW_STATE (development keys, logs) is not on a volume")

    # Prometheus scrapes gateway:GW_PORT, from the one address allowed
    pconf = None
    for v in prom.get("volumes", []):
        parts = v.split(":")
        if parts[1] == "/etc/prometheus/prometheus.yml":
            pconf = os.path.join(repo, parts[0])
    if pconf is None or not os.path.isfile(pconf):
        fail("prometheus: no prometheus.yml of the repo mounted at /etc/prometheus/prometheus.yml")
    else:
        pc = yaml.safe_load(open(pconf, encoding="utf-8"))
        tg = [t for sc in pc.get("scrape_configs", []) for c in sc.get("static_configs", [])
              for t in c.get("targets", [])]
        if tg != [f"gateway:{port}"]:
            fail(f"prometheus targets {tg}; the gateway is gateway:{port}")
        paths = [sc.get("metrics_path", "/metrics") for sc in pc.get("scrape_configs", [])]
        if paths != ["/metrics"]:
            fail(f"prometheus metrics_path {paths}")
    pnets = prom.get("networks", {})
    addrs = [(net, (o or {}).get("ipv4_address")) for net, o in pnets.items()]
    fixed = [(net, a) for net, a in addrs if a]
    allow = genv.get("GW_METRICS_ALLOW", "")
    if len(pnets) != 1 or len(fixed) != 1:
        fail(f"prometheus networks {pnets}: one network with a fixed ipv4_address expected")
    else:
        net, addr = fixed[0]
        if allow != f"{addr}/32":
            fail(f"GW_METRICS_ALLOW {allow!r}; prometheus's address is {addr} ({addr}/32 expected)")
        if net not in (gw.get("networks") or {}):
            fail(f"the gateway is not on prometheus's network {net}")
        subnets = [c.get("subnet") for c in
                   ((cfg.get("networks", {}).get(net) or {}).get("ipam") or {}).get("config", [])]
        if not any(ipaddress.ip_address(addr) in ipaddress.ip_network(s) for s in subnets if s):
            fail(f"prometheus's address {addr} is not in network {net}'s subnet {subnets}")
        others = [n for n, s in svcs.items() if n not in ("gateway", "prometheus") and
                  net in (s.get("networks") or {})]
        if others:
            fail(f"services {others} share the metrics network {net}: they could read /metrics")

    # Redis and PostgreSQL as the programs name them
    red_cmd = red.get("command", [])
    red_port = "6379"
    if "--port" in red_cmd:
        red_port = red_cmd[red_cmd.index("--port") + 1]
    for n, s in svcs.items():
        url = (s.get("environment") or {}).get("REDIS_URL")
        if url is None:
            continue
        u = urllib.parse.urlsplit(url)
        if u.scheme != "redis" or u.hostname not in svcs or \
                upstream(svcs[u.hostname].get("image", "")) != "redis" or \
                str(u.port or 6379) != red_port:
            fail(f"{n}: REDIS_URL {url}: not the redis service's redis://redis:{red_port}")
    for n in ("gateway", "queue-runner"):
        if "REDIS_URL" not in (svcs[n].get("environment") or {}):
            fail(f"{n}: no REDIS_URL")
    penv = pg.get("environment", {})
    for n, s in svcs.items():
        url = (s.get("environment") or {}).get("DATABASE_URL")
        if url is None:
            continue
        u = urllib.parse.urlsplit(url)
        if u.hostname not in svcs or upstream(svcs[u.hostname].get("image", "")) != "postgres" \
                or str(u.port or 5432) != "5432":
            fail(f"{n}: DATABASE_URL's host {u.hostname}:{u.port}: not the postgres service")
        if urllib.parse.unquote(u.username or "") != penv.get("POSTGRES_USER") or \
                urllib.parse.unquote(u.password or "") != penv.get("POSTGRES_PASSWORD") or \
                u.path.lstrip("/") != penv.get("POSTGRES_DB"):
            fail(f"{n}: DATABASE_URL's user, password or database differ from postgres's")
    for n in ("gateway", "migrate"):
        if "DATABASE_URL" not in (svcs[n].get("environment") or {}):
            fail(f"{n}: no DATABASE_URL")
    if "DATABASE_URL" in qenv:
        fail("queue-runner: gets DATABASE_URL (a password it does not use)")

    # redis: AOF on, never evicts, its data on a volume
    flat = " ".join(red_cmd) if isinstance(red_cmd, list) else str(red_cmd)
    if "--appendonly yes" not in flat:
        fail(f"redis: {flat!r}: AOF not on (--appendonly yes)")
    if "--maxmemory-policy noeviction" not in flat:
        fail(f"redis: {flat!r}: not --maxmemory-policy noeviction")
    if not any(isinstance(v, str) and v.split(":")[1] == "/data" and not v.startswith("/")
               for v in red.get("volumes", [])):
        fail("redis: /data is not on a named volume")
    if not any(isinstance(v, str) and v.split(":")[1] == "/var/lib/postgresql/data" and
               not v.startswith("/") for v in pg.get("volumes", [])):
        fail("postgres: /var/lib/postgresql/data is not on a named volume")
    for n, img in (("redis", red.get("image", "")), ("postgres", pg.get("image", ""))):
        if "bookworm" not in img.split(":")[-1]:
            fail(f"{n}: image {img}: a Debian 12 (bookworm) tag expected")
    ptag = prom.get("image", "").split(":")
    if len(ptag) < 2 or ptag[-1] in ("", "latest"):
        fail(f"prometheus: image {prom.get('image')}: pin a version")

    # order and stopping
    deps = gw.get("depends_on", {})
    want = {"redis": "service_healthy", "postgres": "service_healthy",
            "migrate": "service_completed_successfully"}
    for d, cond in want.items():
        if (deps.get(d) or {}).get("condition") != cond:
            fail(f"gateway: depends_on {d} is not {cond}")
    if (mig.get("depends_on", {}).get("postgres") or {}).get("condition") != "service_healthy":
        fail("migrate: does not wait for postgres to be healthy")
    if str(mig.get("restart", "no")) != "no":
        fail(f"migrate: restart {mig.get('restart')}: a one-shot needs \"no\"")
    if gw.get("stop_signal") != "SIGINT":
        fail(f"gateway stop_signal {gw.get('stop_signal')}: SIGINT (graceful) expected")
    g = duration(gw.get("stop_grace_period", "10s"))
    if g is None or g <= graceful_timeout(repo):
        fail(f"gateway stop_grace_period {gw.get('stop_grace_period')}: not above lighttpd's"
             f" graceful-shutdown-timeout ({graceful_timeout(repo)} s)")
    if qr.get("stop_signal", "SIGINT") not in ("SIGTERM", "SIGINT"):
        fail(f"queue-runner stop_signal {qr.get('stop_signal')}: the runner drains on SIGTERM/SIGINT")
    drain = int(qenv.get("RUNNER_DRAIN", 30))
    g = duration(qr.get("stop_grace_period", "10s"))
    if g is None or g <= drain:
        fail(f"queue-runner stop_grace_period {qr.get('stop_grace_period')}: not above"
             f" RUNNER_DRAIN ({drain} s)")
    # scalable: no fixed name, no host port
    if "container_name" in qr or qr.get("ports"):
        fail("queue-runner: a container_name or host ports (--scale would clash)")

    # metrics: one volume, at METRICS_DIR, for the routes and every runner,
    # writable by the image's user
    mdir = genv.get("METRICS_DIR", env_of(final).get("METRICS_DIR"))
    if qenv.get("METRICS_DIR", env_of(final).get("METRICS_DIR")) != mdir:
        fail(f"METRICS_DIR differs: gateway {mdir}, queue-runner {qenv.get('METRICS_DIR')}")
    vol = {}
    for n in ("gateway", "queue-runner"):
        m = [v.split(":")[0] for v in svcs[n].get("volumes", [])
             if isinstance(v, str) and v.split(":")[1] == mdir]
        vol[n] = m[0] if m else None
    if vol["gateway"] is None or vol["gateway"] != vol["queue-runner"]:
        fail(f"METRICS_DIR {mdir} is not one volume shared by gateway and queue-runner ({vol})")
    elif vol["gateway"] in (cfg.get("volumes") or {}):
        o = (((cfg["volumes"][vol["gateway"]] or {}).get("driver_opts") or {}).get("o", ""))
        user = (final_user(final) or "").split(":")
        uname, uid = useradd(final)
        if "uid=" in o:
            ouid = re.search(r"uid=(\d+)", o).group(1)
            ogid = re.search(r"gid=(\d+)", o)
            if ouid != uid or (ogid and len(user) > 1 and ogid.group(1) != user[1]):
                fail(f"volume {vol['gateway']}: {o!r} is not owned by the image's user {user}")
    finish()


def check_service_program(n, s, prog, root, final, what):
    if "build" in s:
        check_program(prog, root, final, f"{n} {what}")
        return
    img = upstream(s.get("image", ""))
    if prog not in UPSTREAM.get(img, set()):
        fail(f"{n} {what}: {prog} is not a program of the {img or '?'} image (allow-list)")


# ---- what the runtime tests run ---------------------------------------------

def mapped(arg, root):
    if arg.startswith(LIBDIR + "/") or arg == LIBDIR:
        return image_path(root, arg)
    return arg


def cmd_argv(config, service, which, root):
    s = load_config(config)["services"][service]
    if which == "command":
        argv = s.get("command")
    else:
        argv = s["healthcheck"]["test"][1:]
    sys.stdout.write("\0".join(mapped(a, root) for a in argv) + "\0")


def cmd_env(repo, config, service, root):
    final = stages(repo)[-1]
    env = dict(env_of(final))
    env.update({k: ("" if v is None else str(v)) for k, v in
                (load_config(config)["services"][service].get("environment") or {}).items()})
    if "PATH" in env:
        env["PATH"] = ":".join(mapped(d, root) for d in env["PATH"].split(":"))
    sys.stdout.write("".join(f"{k}={v}\0" for k, v in env.items()))


def cmd_get(repo, config, what):
    final = stages(repo)[-1]
    if what == "workdir":
        print(of(final, "WORKDIR")[-1])
    elif what == "user":
        print(final_user(final))
    elif what == "gw_port":
        print(load_config(config)["services"]["gateway"]["environment"]["GW_PORT"])
    elif what == "drain":
        print(load_config(config)["services"]["queue-runner"]["environment"].get("RUNNER_DRAIN", 30))
    else:
        sys.exit(f"get: unknown {what}")


def main():
    a = sys.argv[1:]
    if a[:1] == ["context"] and len(a) == 4:
        cmd_context(a[1], a[2], a[3])
    elif a[:1] == ["dockerfile"] and len(a) == 3:
        cmd_dockerfile(a[1], a[2])
    elif a[:1] == ["compose"] and len(a) == 4:
        cmd_compose(a[1], a[2], a[3])
    elif a[:1] == ["argv"] and len(a) == 5:
        cmd_argv(a[1], a[2], a[3], a[4])
    elif a[:1] == ["env"] and len(a) == 5:
        cmd_env(a[1], a[2], a[3], a[4])
    elif a[:1] == ["get"] and len(a) == 4:
        cmd_get(a[1], a[2], a[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

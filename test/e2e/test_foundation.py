"""Foundation: health, errors, limits, headers, deployment files, process faults.

Fault tests restore what they break; the SIGTERM test is last and starts a new
ccrd afterwards, so modules that run after this one get a working stack.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import nginx_check
import stack
import systemd_check
from helpers import Client, http_request, sec_header_problems

MAX_BODY = 64 * 1024


def assert_security_headers(r, what):
    problems = sec_header_problems(r, what)
    assert not problems, "; ".join(problems)


def static_file(ctx):
    d = os.path.join(ctx.repo, "views", "static")
    names = sorted(os.listdir(d)) if os.path.isdir(d) else []
    if "ccr.css" in names:
        return "ccr.css"
    names = [n for n in names if os.path.isfile(os.path.join(d, n))]
    assert names, "views/static is empty: no static file to fetch"
    return names[0]


# ------------------------------------------------------------------ deployment

def test_nginx_prod_config_passes_nginx_t(ctx):
    ok, out = nginx_check.check_prod(ctx.repo)
    assert ok, "nginx -t nginx/ccr.conf: " + out


def test_nginx_prod_config_turns_gzip_off_against_debians_default(ctx):
    """Debian's nginx.conf has gzip on (text/html); the site's pages carry
    the CSRF token beside reflected input, BREACH's setting: the server
    block must say gzip off, and no location may turn it back on."""
    import re
    text = open(os.path.join(ctx.repo, "nginx", "ccr.conf")).read()
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    https = code[code.index("listen 443"):]
    assert re.search(r"^\s*gzip\s+off;", https, re.M), "no gzip off in the https server"
    assert not re.search(r"^\s*gzip\s+on;", code, re.M), "gzip on somewhere in nginx/ccr.conf"


def test_nginx_dev_template_passes_nginx_t(ctx):
    ok, out = nginx_check.check_dev(ctx.repo)
    assert ok, "nginx -t nginx/ccr-dev.conf.in: " + out


def test_systemd_units_verify_silently(ctx):
    ok, out = systemd_check.check_verify(ctx.repo)
    assert ok, "systemd-analyze verify: " + out


def test_systemd_ccrd_security_exposure_at_most_2_5(ctx):
    score, out = systemd_check.exposure(ctx.repo, "ccrd.service")
    assert score is not None, "no score in: " + out[-300:]
    assert score <= 2.5, "ccrd.service exposure %.1f > 2.5" % score


# ------------------------------------------------------------------ HTTP basics

# ------------------------------------------------------------------ make run's stack

TEST_TOOLS = ("chromium", "sqlmap", "lintian", "slowhttptest", "wrk", "nodejs", "libcmocka-dev",
              "debhelper")


def _make_dry(ctx, *args):
    p = subprocess.run(["make", "-n", "--no-print-directory", "-C", ctx.repo] + list(args),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, "make -n %s: %s" % (" ".join(args), p.stderr[-800:])
    return p.stdout


def _installed_by(out):
    """Packages in the `for p in ...` loops of the commands (backslash lines
    joined) that run apt-get, in make -n output."""
    pkgs = set()
    for cmd in out.replace("\\\n", " ").splitlines():
        if "apt-get" in cmd:
            for m in re.finditer(r"for p in ([^;]*);", cmd):
                pkgs.update(m.group(1).split())
    return pkgs


def test_make_all_never_installs_and_make_run_skips_test_tools(ctx):
    out = _make_dry(ctx, "all")
    assert "apt-get" not in out and "npm ci" not in out, \
        "make -n all would install packages:\n" + out[:1500]
    run = _installed_by(_make_dry(ctx, "run"))
    assert {"mariadb-server", "nginx", "python3-aiosmtpd", "libfcgi-dev"} <= run, \
        "make run does not install what the stack needs: %s" % sorted(run)
    extra = sorted(set(TEST_TOOLS) & run)
    assert not extra, "make run installs test tools: %s" % extra
    check_out = _make_dry(ctx, "check")
    chk = _installed_by(check_out)
    missing = sorted(set(TEST_TOOLS) - chk)
    assert not missing, "make check does not install %s" % missing
    assert "npm ci" in check_out, "make check does not run npm ci in test/browser"
    # a missing library: make stops before compiling and names it
    p = subprocess.run(["make", "--no-print-directory", "-C", ctx.repo, "all",
                        "PKGS=ccr-no-such-lib", "B=" + os.path.join(ctx.tmp, "nobuild")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0, "make all built without its libraries"
    assert "ccr-no-such-lib" in p.stderr and "cannot build" in p.stderr, p.stderr[-800:]
    assert "installing" not in p.stdout + p.stderr
    assert not os.path.exists(os.path.join(ctx.tmp, "nobuild", "obj")), "compiled anyway"


test_make_all_never_installs_and_make_run_skips_test_tools.timeout = 240


def _time_wait_ports():
    ports = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(f).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "06":   # TCP_TIME_WAIT
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def test_port_in_time_wait_counts_as_free_and_a_stack_starts_on_it(ctx):
    port = stack.pick_free_port()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    cli = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    conn.close()          # the server side closes first: it keeps the TIME_WAIT
    cli.recv(1)
    cli.close()
    srv.close()
    assert port in _time_wait_ports(), "no TIME_WAIT on port %d to test with" % port
    assert stack.port_free(port), "port_free(%d) says in use for a mere TIME_WAIT" % port
    st = stack.Stack(os.path.join(ctx.tmp, "timewait-var"), port, ctx.repo)
    try:
        st.start()
        r = http_request(port, "GET", "/login")
        assert r.status == 200, "GET /login on the new stack: %s" % r.status
    finally:
        st.stop()


test_port_in_time_wait_counts_as_free_and_a_stack_starts_on_it.timeout = 180


def _children_named(pid):
    out = {}
    for c in stack.children_of(pid):
        try:
            comm = open("/proc/%d/comm" % c).read().strip()
        except OSError:
            continue
        out.setdefault(comm, []).append(c)
    return out


def test_make_run_restarts_its_mariadb_and_keeps_serving(ctx):
    var = os.path.join(ctx.tmp, "run-var")
    port = stack.pick_free_port()
    log = os.path.join(ctx.tmp, "make-run.log")
    env = dict(os.environ, PORT=str(port), CCR_VAR=var)
    with open(log, "wb") as out:
        p = subprocess.Popen([stack.PYTHON, os.path.join(ctx.repo, "test", "stack.py"), "run"],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             env=env, start_new_session=True)
    try:
        def text():
            return open(log, encoding="utf-8", errors="replace").read()
        ctx.wait_until(lambda: "is running at" in text() or p.poll() is not None, 120,
                       "make run's stack to come up")
        assert p.poll() is None, "stack.py run exited:\n" + text()[-1500:]
        kids = _children_named(p.pid)
        db, ccrd, nginx = kids["mariadbd"][0], kids["ccrd"][0], kids["nginx"][0]
        os.kill(db, signal.SIGKILL)

        def back():
            assert p.poll() is None, "stack.py run stopped after mariadbd died:\n" + text()[-1500:]
            new = _children_named(p.pid).get("mariadbd", [])
            if not new or new[0] == db:
                return False
            return (http_request(port, "GET", "/healthz").status == 200 and
                    http_request(port, "GET", "/login").status == 200)
        ctx.wait_until(back, 60, "a new mariadbd and pages answering 200")
        kids = _children_named(p.pid)
        assert kids.get("ccrd") == [ccrd] and kids.get("nginx") == [nginx], \
            "ccrd/nginx were restarted: %s -> %s" % ((ccrd, nginx), kids)
        os.kill(p.pid, signal.SIGINT)    # Ctrl-C: everything stops, exit 0
        rc = p.wait(60)
        assert rc == 0, "stack.py run exited %s after Ctrl-C:\n%s" % (rc, text()[-1500:])
        assert stack.port_free(port), "port %d still taken after Ctrl-C" % port
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
            p.wait(60)


test_make_run_restarts_its_mariadb_and_keeps_serving.timeout = 240


def test_stack_in_a_0700_folder_serves_pages_and_static(ctx):
    priv = os.path.join(ctx.tmp, "home0700")
    os.makedirs(priv)
    os.chmod(priv, 0o700)     # as /root on Debian
    repo = os.path.join(priv, "checkout")
    for d in ("views", "schema", "nginx", "systemd"):
        shutil.copytree(os.path.join(ctx.repo, d), os.path.join(repo, d))
    st = stack.Stack(os.path.join(priv, "var"), stack.pick_free_port(), repo)
    st.ccrd_bin, st.admin_bin = ctx.stack.ccrd_bin, ctx.stack.admin_bin
    try:
        st.start()
        for path in ("/login", "/static/ccr.css"):
            r = http_request(st.port, "GET", path)
            assert r.status == 200, "GET %s from a 0700 folder: %s" % (path, r.status)
    finally:
        st.stop()


test_stack_in_a_0700_folder_serves_pages_and_static.timeout = 180


def test_healthz_ok(ctx):
    r = ctx.get("/healthz")
    assert r.status == 200, "GET /healthz: %d %r" % (r.status, r.text[:200])
    assert r.text.strip() == "ok", "GET /healthz body %r, want 'ok'" % r.text[:200]


def test_unknown_path_404_page_shows_request_id(ctx):
    path = "/no-such-page-%s" % os.urandom(4).hex()
    r = ctx.get(path)
    assert r.status == 404, "GET %s: %d" % (path, r.status)
    assert "text/html" in (r.header("Content-Type") or ""), "404 Content-Type %r" % r.header("Content-Type")
    # nginx logs its $request_id (passed to ccrd as REQUEST_ID) in rid=...
    access = os.path.join(ctx.stack.log_dir, "nginx-access.log")

    def rid():
        with open(access) as f:
            for line in f:
                if path in line:
                    m = re.search(r"rid=([0-9a-f]{32})", line)
                    return m and m.group(1)
        return None
    request_id = ctx.wait_until(rid, 3, "the access log line of %s" % path)
    assert request_id in r.text, "404 page does not show the request id %s" % request_id
    # ... and in ccrd's access line for the request (every request has an id
    # in its log line and on its error page)
    line = ctx.wait_until(lambda: next((l for l in ctx.log_since(0).splitlines() if path in l), None),
                          3, "ccrd's log line for %s" % path)
    assert request_id in line, "ccrd's log line lacks the request id %s: %r" % (request_id, line)


def test_wrong_method_405_with_allow(ctx):
    r = ctx.post("/healthz", body=b"")
    assert r.status == 405, "POST /healthz: %d" % r.status
    allow = r.header("Allow")
    assert allow, "405 without an Allow header"
    assert "GET" in [m.strip() for m in allow.split(",")], "Allow: %r lacks GET" % allow


def test_body_over_64k_is_413_from_ccrd(ctx):
    body = b"email=" + b"a" * (MAX_BODY + 1 - len(b"email="))
    assert len(body) == MAX_BODY + 1
    r = ctx.post("/login", body=body,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 413, "POST /login with %d bytes: %d" % (len(body), r.status)
    # nginx's own limit is 128k in the dev config, so this 413 is ccrd's: it
    # carries ccrd's headers, exactly once.
    assert_security_headers(r, "ccrd's 413")


def test_security_headers_on_page_404_and_static(ctx):
    r = ctx.get("/login")
    assert r.status == 200, "GET /login: %d" % r.status
    assert_security_headers(r, "GET /login")
    r = ctx.get("/no-such-page")
    assert r.status == 404, "GET /no-such-page: %d" % r.status
    assert_security_headers(r, "404 page")
    name = static_file(ctx)
    r = ctx.get("/static/" + name)
    assert r.status == 200, "GET /static/%s: %d" % (name, r.status)
    assert_security_headers(r, "static file")
    cc = r.header_all("Cache-Control")
    assert len(cc) == 1 and "max-age=31536000" in cc[0] and "immutable" in cc[0], \
        "static Cache-Control %r" % cc
    # responses nginx makes itself
    r = ctx.get("/static/no-such-file.css")
    assert r.status == 404, "GET /static/no-such-file.css: %d" % r.status
    assert_security_headers(r, "nginx 404")
    assert not r.header_all("Cache-Control"), "nginx 404 must not be cached: %r" % r.header_all("Cache-Control")
    assert r.header("Server") == "nginx", "server_tokens: Server %r" % r.header("Server")


def test_nginx_own_413_and_502_carry_security_headers(ctx):
    r = ctx.post("/login", body=b"a" * (200 * 1024),
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 413, "POST /login with 200 KiB: %d" % r.status
    assert_security_headers(r, "nginx 413")
    st = ctx.stack
    st.ccrd_stop()
    try:
        r = ctx.get("/login")
        assert r.status == 502, "GET /login with ccrd stopped: %d" % r.status
        assert_security_headers(r, "nginx 502")
    finally:
        st.ccrd_start()
        st.wait_healthy()


def test_ccrd_sets_security_headers_itself(ctx):
    # Straight to the FastCGI socket: nginx only fills in headers ccrd did not
    # send, so check that ccrd sends them.
    r = ctx.fcgi("GET", "/login")
    assert r.status == 200, "FastCGI GET /login: %d" % r.status
    assert_security_headers(r, "ccrd GET /login")
    r = ctx.fcgi("GET", "/no-such-page")
    assert r.status == 404, "FastCGI GET /no-such-page: %d" % r.status
    assert_security_headers(r, "ccrd 404")
    assert r.request_id in r.text, "ccrd 404 does not show REQUEST_ID %s" % r.request_id


def test_login_page_has_form_with_csrf_token(ctx):
    r = ctx.get("/login")
    assert r.status == 200, "GET /login: %d" % r.status
    assert "text/html" in (r.header("Content-Type") or ""), "Content-Type %r" % r.header("Content-Type")
    html = r.text
    m = re.search(r"<form\b[^>]*>", html, re.I)
    assert m, "no <form> on /login"
    assert re.search(r'method="post"', m.group(0), re.I), "login form is not POST: %s" % m.group(0)
    tok = r.csrf()
    assert tok, "no hidden csrf_token input with a value on /login"
    assert re.search(r'<input[^>]*name="csrf_token"[^>]*>', html) and \
        re.search(r'<input[^>]*type="hidden"[^>]*name="csrf_token"|<input[^>]*name="csrf_token"[^>]*type="hidden"', html), \
        "csrf_token input is not hidden"
    assert re.search(r'<input[^>]*name="email"', html), "no email input"
    assert re.search(r'<input[^>]*name="password"', html), "no password input"


# ------------------------------------------------------------------ faults

def test_database_down_503_then_recovers(ctx):
    st = ctx.stack
    master = st.ccrd_pid()
    st.db_stop()
    try:
        def down():
            r = ctx.get("/healthz")
            return r if r.status == 503 else None
        r = ctx.wait_until(down, 10, "/healthz = 503 with MariaDB stopped", 0.1)
        assert r.header("Retry-After"), "503 without Retry-After"
    finally:
        st.db_start()
    t0 = time.monotonic()
    ctx.wait_until(lambda: ctx.get("/healthz").status == 200, 5,
                   "/healthz = 200 after MariaDB restarted", 0.1)
    elapsed = time.monotonic() - t0
    # every worker reconnects, not just the one that answered first
    for _ in range(12):
        r = ctx.get("/healthz")
        assert r.status == 200, "after recovery (%.1fs): /healthz %d" % (elapsed, r.status)
    assert st.ccrd_pid() == master and stack.alive(master), "ccrd master changed or died"


class Load:
    """N threads doing GET /healthz and GET /login on keep-alive connections."""

    def __init__(self, ctx, threads=4, pause=0.002):
        self.ctx, self.n, self.pause = ctx, threads, pause
        self.ok = 0
        self.failures = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def run(self):
        c = Client(self.ctx.port, "127.0.0.1", keepalive=True, catch=True)
        paths = ("/healthz", "/login")
        i = 0
        while not self.stop.is_set():
            path = paths[i % 2]
            i += 1
            r = c.get(path, timeout=10)
            with self.lock:
                if r.status == 200:
                    self.ok += 1
                else:
                    self.failures.append("%s %s" % (path, r.status or r.err))
            time.sleep(self.pause)
        c.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(15)


def test_sighup_reload_under_load(ctx):
    st = ctx.stack
    workers = st.workers
    before = set(st.ccrd_children())
    master = st.ccrd_pid()
    with Load(ctx) as load:
        time.sleep(0.5)
        for _ in range(5):
            st.ccrd_signal(signal.SIGHUP)
            time.sleep(1.0)
        time.sleep(0.5)
    assert load.ok > 0, "no request succeeded"
    assert not load.failures, "%d of %d requests failed during reloads, e.g. %s" % (
        len(load.failures), load.ok + len(load.failures), load.failures[:3])
    new = ctx.wait_until(lambda: len(set(st.worker_pids()) - before) >= workers and
                         set(st.worker_pids()) - before, 5,
                         "%d new worker pids after SIGHUP" % workers)
    assert len(new) >= workers
    # the old workers finish and go: back to workers + mailer + webhook
    # sender + search indexer
    ctx.wait_until(lambda: len(st.ccrd_children()) <= workers + 3, 10,
                   "old workers to exit after reload (children: %s)" % st.ccrd_children())
    assert st.ccrd_pid() == master, "master changed"
    assert ctx.get("/healthz").status == 200


def test_worker_killed_is_replaced_within_1s(ctx):
    st = ctx.stack
    before = set(st.ccrd_children())
    victim = st.worker_pids()[0]
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    new = ctx.wait_until(lambda: set(st.ccrd_children()) - before, 1.0,
                         "a new child of ccrd after kill -9 of worker %d" % victim, 0.02)
    took = time.monotonic() - t0
    assert not stack.alive(victim), "killed worker %d still alive" % victim
    for i in range(20):
        r = ctx.get("/healthz" if i % 2 else "/login")
        assert r.status == 200, "request %d after the kill: %d" % (i, r.status)
    assert len(new) == 1, "expected one new worker, got %s (%.2fs)" % (sorted(new), took)


def test_sigterm_stops_master_and_children_exit_0(ctx):
    st = ctx.stack
    p = st.ccrd
    kids = st.ccrd_children()
    assert kids, "ccrd has no children"
    os.kill(p.pid, signal.SIGTERM)
    try:
        rc = p.wait(40)
    except Exception:
        raise AssertionError("ccrd did not exit within 40 s of SIGTERM")
    left = [k for k in kids if stack.alive(k)]
    group = stack.pgroup_members(p.pid)
    st.ccrd = None
    # start a fresh ccrd for the tests that follow
    st.ccrd_start()
    st.wait_healthy()
    assert rc == 0, "ccrd exit status %s after SIGTERM" % rc
    assert not left and not group, "left behind: children %s, process group %s" % (left, group)

"""Foundation: health, errors, limits, headers, deployment files, process faults.

Fault tests restore what they break; the SIGTERM test is last and starts a new
ccrd afterwards, so modules that run after this one get a working stack.
"""
import http.client
import os
import re
import signal
import threading
import time

import nginx_check
import stack
import systemd_check

CSP = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
SEC_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
MAX_BODY = 64 * 1024


def assert_security_headers(r, what):
    for name, want in SEC_HEADERS.items():
        got = r.header_all(name)
        assert got == [want], "%s: %s is %r, want exactly once %r" % (what, name, got, want)


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
    # ... and in ccrd's access line for the request (SPEC §6, §7)
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
        conn = None
        paths = ("/healthz", "/login")
        i = 0
        while not self.stop.is_set():
            path = paths[i % 2]
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.ctx.port, timeout=10)
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                if r.will_close:
                    conn.close()
                    conn = None
                res = r.status
            except (OSError, http.client.HTTPException) as e:
                res = "%s: %s" % (type(e).__name__, e)
                if conn:
                    conn.close()
                conn = None
            with self.lock:
                if res == 200:
                    self.ok += 1
                else:
                    self.failures.append("%s %s" % (path, res))
            time.sleep(self.pause)
        if conn:
            conn.close()

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
    # the old workers finish and go: back to workers + mailer children
    ctx.wait_until(lambda: len(st.ccrd_children()) <= workers + 1, 10,
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

"""benchstack.py — test/stack.py's Stack with the hooks `make bench` needs.

test/stack.py is used unchanged; BenchStack only overrides methods:

  db_dir      the MariaDB datadir may live outside $VAR (the cached data set),
  db_opts     mariadbd options instead of stack.DB_OPTS (64 MB buffer pool)
              for this instance: stack.DB_OPTS is swapped in around db_init /
              db_start, which read the module global at call time,
  nginx_patch a function(text) -> text applied to the rendered nginx.conf
              (stack.render_nginx_conf is wrapped around nginx_start),
  after_migrate  a function(stack) run after `ccr-admin migrate`, before the
              SMTP sink, ccrd and nginx start (Stack.start calls migrate()).

Plus a tiny HTTP client (no redirects, cookies by hand) for the set-up
requests of the benchmark.
"""
import http.client as httpclient
import os
import re
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))      # test/: stack.py
import stack  # noqa: E402

REPO = stack.REPO
StackError = stack.StackError


class BenchStack(stack.Stack):
    def __init__(self, var_dir, port, db_dir=None, db_opts=None, nginx_patch=None,
                 after_migrate=None, **kw):
        super().__init__(var_dir, port, REPO, **kw)
        if db_dir:
            self.db_dir = os.path.abspath(db_dir)
        self.db_opts = list(db_opts) if db_opts is not None else list(stack.DB_OPTS)
        self.nginx_patch = nginx_patch
        self.after_migrate = after_migrate

    def _with_db_opts(self, fn, *a, **kw):
        saved = stack.DB_OPTS
        stack.DB_OPTS = self.db_opts
        try:
            return fn(*a, **kw)
        finally:
            stack.DB_OPTS = saved

    def db_init(self):
        return self._with_db_opts(super().db_init)

    def db_start(self, timeout=300):
        # a large buffer pool and redo log take longer than the default 30 s
        return self._with_db_opts(super().db_start, timeout)

    def migrate(self):
        super().migrate()
        if self.after_migrate:
            self.after_migrate(self)

    def nginx_start(self, timeout=15):
        orig = stack.render_nginx_conf
        patch = self.nginx_patch

        def render(*a, **kw):
            conf = orig(*a, **kw)
            if patch:
                with open(conf) as f:
                    text = f.read()
                with open(conf + ".tmp", "w") as f:
                    f.write(patch(text))
                os.replace(conf + ".tmp", conf)
            return conf
        stack.render_nginx_conf = render
        try:
            return super().nginx_start(timeout)
        finally:
            stack.render_nginx_conf = orig


# ------------------------------------------------------------------ HTTP

class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def cookies(self):
        out = {}
        for v in self.header("Set-Cookie"):
            kv = v.split(";", 1)[0]
            if "=" in kv:
                k, val = kv.split("=", 1)
                out[k.strip()] = val.strip()
        return out

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")


def http(port, method, path, cookies=None, form=None, timeout=30):
    """One request through nginx on 127.0.0.1:port; no redirects followed."""
    headers = {}
    body = None
    if cookies:
        headers["Cookie"] = "; ".join("%s=%s" % kv for kv in cookies.items())
    if form is not None:
        body = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    c = httpclient.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return Resp(r.status, r.getheaders(), r.read())
    finally:
        c.close()


CSRF_RE = re.compile(r'name="csrf_token"\s+value="([0-9a-f]{64})"')


def csrf_of(text):
    m = CSRF_RE.search(text)
    return m.group(1) if m else None


def login(port, email, password):
    """Log in through the real form; returns (session cookie, session csrf token)."""
    r = http(port, "GET", "/login")
    anon = r.cookies().get("ccr_csrf") or csrf_of(r.text)
    if r.status != 200 or not anon:
        raise StackError("GET /login: %d, no csrf token" % r.status)
    r = http(port, "POST", "/login", cookies={"ccr_csrf": anon},
             form={"csrf_token": anon, "email": email, "password": password})
    sess = r.cookies().get("ccr_session")
    if r.status != 303 or not sess:
        raise StackError("POST /login as %s: %d %s" % (email, r.status, r.text[:300]))
    r = http(port, "GET", "/account", cookies={"ccr_session": sess})
    tok = csrf_of(r.text)
    if r.status != 200 or not tok:
        raise StackError("GET /account as %s: %d, no csrf token" % (email, r.status))
    return sess, tok

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

Plus the set-up requests of the benchmark (the real login, one checked
request an endpoint), made with test/e2e/helpers.py's Client.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))                        # test/: stack.py
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))   # test/e2e: helpers.py
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
import stack  # noqa: E402
import helpers  # noqa: E402

REPO = stack.REPO
StackError = stack.StackError


class BenchStack(stack.Stack):
    search_query_log = False

    def __init__(self, var_dir, port, db_dir=None, db_opts=None, nginx_patch=None,
                 after_migrate=None, **kw):
        # the benchmarks measure admin pages signed in with the password alone
        kw.setdefault("require_2fa", "none")
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

def http(port, method, path, cookies=None, form=None, timeout=30, headers=None, body=None):
    """One request through nginx on 127.0.0.1:port with these cookies (no
    csrf token added, no redirects followed) -> helpers.Response."""
    c = helpers.Client(port, "127.0.0.1")
    c.cookies.update(cookies or {})
    return c.request(method, path, form=form, body=body, headers=headers, csrf=None,
                     timeout=timeout)


def anon_csrf(port):
    """The ccr_csrf cookie GET /login sets (the anonymous double-submit token)."""
    c = helpers.Client(port, "127.0.0.1")
    r = c.get("/login", timeout=30)
    tok = c.cookies.get("ccr_csrf")
    if r.status != 200 or not tok:
        raise StackError("GET /login: %d, no ccr_csrf cookie" % r.status)
    return tok


def session_of(port, email, password):
    """Log in through the real form; returns (session cookie, session csrf token)."""
    c = helpers.Client(port, "127.0.0.1")
    r = c.get("/login", timeout=30)
    if r.status != 200 or not c.last_csrf:
        raise StackError("GET /login: %d, no csrf token" % r.status)
    r = helpers.login(c, email, password)
    if r.status != 303 or not c.session_cookie:
        raise StackError("POST /login as %s: %d %s" % (email, r.status, r.text[:300]))
    r = c.get("/account", timeout=30)
    tok = r.csrf()
    if r.status != 200 or not tok:
        raise StackError("GET /account as %s: %d, no csrf token" % (email, r.status))
    return c.session_cookie, tok

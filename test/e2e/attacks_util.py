"""Helpers of test_attacks.py only (stdlib only): worker memory, the
world's accounts and tickets, payloads, a source-rotating forwarder.  The
raw FastCGI records, the Client and the account helpers are helpers.py's.

Workers:

    worker_rss_kib(ctx)                  {pid: VmRSS KiB} of every worker

Accounts (helpers.register/logged_in with this module's password; every
Client leaves from a loopback address of its own, so the per-address login
throttle of this module never reaches other modules):

    new_customer(ctx, first, last), new_admin(ctx), new_agent(ctx, admin_client)
                                         -> (Client, email, id)
"""
import html.parser
import re
import socket

import helpers
from helpers import fresh_addr, page_errors, sql_str

PASSWORD = "Attack-surface-9"


# ------------------------------------------------------------------ workers

def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def worker_rss_kib(ctx):
    out = {}
    for pid in ctx.stack.worker_pids():
        v = rss_kib(pid)
        if v is not None:
            out[pid] = v
    return out


# ------------------------------------------------------------------ accounts

def new_customer(ctx, first="Ann", last="Attacker"):
    """A logged-in customer (helpers.register): (Client, email, id)."""
    u = helpers.register(ctx, password=PASSWORD, first=first, last=last, prefix="atk",
                         then="/tickets")
    return u.s, u.email, u.id


def new_admin(ctx, first="Ada", last="Admin"):
    """A logged-in admin (helpers.create_admin): (Client, email, id)."""
    u = helpers.create_admin(ctx, password=PASSWORD, first=first, last=last, prefix="atkadmin")
    return helpers.logged_in(ctx, u.email, PASSWORD, then="/tickets"), u.email, u.id


def new_agent(ctx, admin, first="Gus", last="Agent"):
    """An active agent made through POST /admin/agents by the Client admin
    (helpers.make_agents), logged in: (Client, email, id)."""
    [g] = helpers.make_agents(ctx, admin, [(first, last)], PASSWORD, prefix="atkagent")
    return g.s, g.email, g.id


def new_ticket(c, subject="Printer on fire", description="It is on fire.", priority="normal"):
    c.get("/tickets/new")
    r = c.post("/tickets", {"subject": subject, "description": description,
                            "priority": priority})
    assert r.status == 303, "POST /tickets: %d %s" % (r.status, page_errors(r))
    m = re.match(r"/tickets/(\d+)$", r.location or "")
    assert m, "POST /tickets: Location %r" % r.location
    return int(m.group(1))


# ------------------------------------------------------------------ XSS

XSS = [
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "</title><svg onload=alert(1)>",
    "javascript:alert(1)",
]

_URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data", "poster",
              "background"}
_BAD_TAGS = {"img", "svg", "iframe", "object", "embed", "math", "base", "frame", "audio",
             "video", "style"}
_OUR_SCRIPT = re.compile(r"/static/ccr\.js\?v=[0-9a-f]+$")


class _XssScan(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.bad = []
        self.in_title = 0

    def handle_starttag(self, tag, attrs):
        text = self.get_starttag_text() or tag
        if self.in_title:                 # a tag inside <title>: it was closed early
            self.bad.append("tag inside <title>: " + text[:120])
        if tag == "title":
            self.in_title += 1
        if tag == "script" and not any(k == "src" and v and _OUR_SCRIPT.search(v)
                                       for k, v in attrs):
            self.bad.append(text[:120])
        if tag in _BAD_TAGS:
            self.bad.append(text[:120])
        for k, v in attrs:
            if k.startswith("on"):
                self.bad.append("%s (%s=)" % (text[:120], k))
            if k in _URL_ATTRS and v is not None:
                u = re.sub(r"[\x00-\x20]", "", v).lower()
                if u.startswith(("javascript:", "vbscript:", "data:text/html")):
                    self.bad.append("%s (%s=%s)" % (text[:120], k, v[:40]))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        if tag == "title" and self.in_title:
            self.in_title -= 1


def xss_findings(html_text):
    """Markup in html_text that a payload of XSS could have made, as a
    browser's parser sees it: a <script> other than the site's own, an
    <img>/<svg>/<iframe>..., an on* attribute, a javascript: URL in
    href/src/action, a tag inside <title>."""
    p = _XssScan()
    try:
        p.feed(html_text)
        p.close()
    except Exception as e:  # noqa: BLE001 - a parser failure is itself suspicious
        return ["unparsable HTML: %s" % e]
    return p.bad


# ------------------------------------------------------------------ source-rotating forwarder

class RotatingForwarder:
    """A TCP forwarder on 127.0.0.1:<port> to nginx whose every upstream
    connection leaves from a fresh loopback address, so a tool that cannot
    choose its source address (sqlmap, slowhttptest) never trips the
    per-address login throttle nor shares it with the other modules.

        with RotatingForwarder(ctx) as fw:
            url = "http://127.0.0.1:%d/login" % fw.port
    """

    def __init__(self, ctx, rotate=True):
        import selectors
        import threading
        self.ctx = ctx
        self.rotate = rotate
        self.fixed = fresh_addr()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(512)
        self.port = self.lsock.getsockname()[1]
        self.sources = set()
        self._stop = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._threading = threading
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        for key in list(self._sel.get_map().values()):
            try:
                key.fileobj.close()
            except OSError:
                pass
        self.lsock.close()

    def _run(self):
        import selectors
        self.lsock.setblocking(False)
        self._sel.register(self.lsock, selectors.EVENT_READ, None)
        while not self._stop.is_set():
            for key, _ev in self._sel.select(0.2):
                if key.data is None:
                    try:
                        cs, _ = self.lsock.accept()
                    except OSError:
                        continue
                    src = fresh_addr() if self.rotate else self.fixed
                    self.sources.add(src)
                    try:
                        us = socket.create_connection(("127.0.0.1", self.ctx.port), timeout=5,
                                                      source_address=(src, 0))
                    except OSError:
                        cs.close()
                        continue
                    cs.setblocking(False)
                    us.setblocking(False)
                    self._sel.register(cs, selectors.EVENT_READ, us)
                    self._sel.register(us, selectors.EVENT_READ, cs)
                    continue
                src, dst = key.fileobj, key.data
                try:
                    d = src.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    d = b""
                if d:
                    try:
                        dst.setblocking(True)
                        dst.settimeout(10)
                        dst.sendall(d)
                        dst.setblocking(False)
                        continue
                    except OSError:
                        pass
                for s in (src, dst):
                    try:
                        self._sel.unregister(s)
                    except (KeyError, ValueError):
                        pass
                    s.close()


class Unthrottler:
    """While active, moves every login_failures row written after it started
    out of the 15-minute window (every `every` s), so a tool's failed logins
    never throttle anything; on exit does it once more."""

    def __init__(self, ctx, every=0.5):
        import threading
        self.ctx = ctx
        self.every = every
        self.first = int(ctx.sql_value("SELECT COALESCE(MAX(id), 0) FROM login_failures"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sweep(self):
        self.ctx.sql("UPDATE login_failures SET at = at - INTERVAL 16 MINUTE WHERE id > %d "
                     "AND at > NOW() - INTERVAL 15 MINUTE" % self.first)

    def _run(self):
        while not self._stop.wait(self.every):
            try:
                self.sweep()
            except Exception:
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)
        self.sweep()


# ------------------------------------------------------------------ outbox hygiene

def settle_outbox(ctx, where):
    """Test hygiene after a test that queued mail to addresses the SMTP sink
    refuses: mark those rows failed (so a mailer that crashes on a 5xx does
    not meet them again every lease period while later modules run) and
    free the rows a crashed mailer had claimed with them."""
    ctx.sql("UPDATE outbox SET status = 'failed', lease_until = NULL, "
            "last_error = 'settled by test_attacks' WHERE status = 'pending' AND (%s)" % where)
    live = ["%%:%d" % p for p in ctx.stack.mailer_pids()]
    keep = " AND ".join("claimed_by NOT LIKE %s" % sql_str(l) for l in live) or "1 = 1"
    ctx.sql("UPDATE outbox SET claimed_by = NULL, lease_until = NULL WHERE status = 'pending' "
            "AND claimed_by IS NOT NULL AND %s" % keep)


def mailer_deaths(ctx, mark):
    return [l for l in ctx.log_since(mark).splitlines()
            if "mailer" in l and ("killed by" in l or "exited with" in l)]

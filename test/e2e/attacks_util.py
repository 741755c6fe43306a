"""Helpers for test_attacks.py (stdlib only): raw FastCGI, worker memory,
attack clients and payloads.

Raw FastCGI (nginx bypassed):

    rec(type, content, rid=1)            one record (content may be any length
                                         up to 65535; padding to 8 bytes)
    nv(name, value, nlen=None, vlen=None)  a name/value pair; nlen/vlen lie
                                         about the lengths when given
    begin(role=RESPONDER)                a BEGIN_REQUEST record
    params_for(ctx, method, path, ...)   the params ctx.fcgi() would send
    raw_exchange(sock, data, ...)        send bytes, read until EOF or a
                                         deadline -> Exchange (records, stdout,
                                         closed, timed_out, status)

Workers:

    worker_rss_kib(ctx)                  {pid: VmRSS KiB} of every worker

Clients:

    Client(ctx)                          a helpers.Session whose connections
                                         leave from a loopback address of its
                                         own (127.x.y.z), so the per-address
                                         login throttle of this module never
                                         reaches other modules
"""
import html.parser
import http.client
import itertools
import os
import random
import re
import socket
import struct
import time

import helpers

PASSWORD = "Attack-surface-9"

FCGI_BEGIN_REQUEST = 1
FCGI_ABORT_REQUEST = 2
FCGI_END_REQUEST = 3
FCGI_PARAMS = 4
FCGI_STDIN = 5
FCGI_STDOUT = 6
FCGI_STDERR = 7
FCGI_DATA = 8
FCGI_GET_VALUES = 9
FCGI_GET_VALUES_RESULT = 10
FCGI_UNKNOWN_TYPE = 11

RESPONDER, AUTHORIZER, FILTER = 1, 2, 3


# ------------------------------------------------------------------ raw FastCGI

def rec(rtype, content=b"", rid=1, version=1, pad=None, clen=None):
    """One record.  clen lies about the content length when given."""
    n = len(content) if clen is None else clen
    p = (8 - len(content) % 8) % 8 if pad is None else pad
    return struct.pack("!BBHHBx", version, rtype, rid, n, p) + content + b"\0" * p


def records(rtype, content, rid=1):
    """content split into as many records as needed (65535 bytes each)."""
    out = b""
    for i in range(0, len(content), 65535):
        out += rec(rtype, content[i:i + 65535], rid)
    return out


def nvlen(n):
    return struct.pack("!B", n) if n < 128 else struct.pack("!I", (n & 0x7fffffff) | 0x80000000)


def nv(name, value, nlen=None, vlen=None):
    if isinstance(name, str):
        name = name.encode()
    if isinstance(value, str):
        value = value.encode()
    return (nvlen(len(name) if nlen is None else nlen) +
            nvlen(len(value) if vlen is None else vlen) + name + value)


def begin(role=RESPONDER, flags=0, rid=1):
    return rec(FCGI_BEGIN_REQUEST, struct.pack("!HB5x", role, flags), rid)


def params_for(ctx, method="GET", path="/healthz", query="", extra=None, drop=()):
    p = {
        "REQUEST_METHOD": method, "QUERY_STRING": query,
        "REQUEST_URI": path + ("?" + query if query else ""), "DOCUMENT_URI": path,
        "SCRIPT_NAME": path, "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "SERVER_ADDR": "127.0.0.1",
        "SERVER_PORT": str(ctx.port), "SERVER_NAME": "127.0.0.1", "REQUEST_SCHEME": "http",
        "HTTP_HOST": "127.0.0.1", "CONTENT_LENGTH": "", "CONTENT_TYPE": "",
    }
    p.update(extra or {})
    for k in drop:
        p.pop(k, None)
    return b"".join(nv(k, str(v)) for k, v in p.items())


def request_bytes(ctx, method="GET", path="/healthz", query="", extra=None, stdin=b"",
                  role=RESPONDER, drop=()):
    """A complete, well-formed request (params and stdin terminated)."""
    pb = params_for(ctx, method, path, query, extra, drop)
    return (begin(role) + records(FCGI_PARAMS, pb) + rec(FCGI_PARAMS) +
            records(FCGI_STDIN, stdin) + rec(FCGI_STDIN))


class Exchange:
    """What came back on one raw connection."""

    def __init__(self):
        self.records = []          # (type, request id, content)
        self.closed = False        # the peer closed (EOF or reset)
        self.timed_out = False     # the deadline passed with the connection open
        self.send_error = None
        self.trailing = b""        # bytes that do not make a whole record

    @property
    def stdout(self):
        return b"".join(c for t, _r, c in self.records if t == FCGI_STDOUT)

    @property
    def ended(self):
        return any(t == FCGI_END_REQUEST for t, _r, _c in self.records)

    @property
    def status(self):
        """The CGI Status of the answer, 200 when a header block lacks one,
        None when ccrd wrote no answer."""
        out = self.stdout
        if not out:
            return None
        m = re.match(rb"Status: (\d{3})", out)
        return int(m.group(1)) if m else 200

    def types(self):
        return [t for t, _r, _c in self.records]

    def __repr__(self):
        return "<Exchange status=%s types=%s closed=%s timed_out=%s %r>" % (
            self.status, self.types(), self.closed, self.timed_out, self.stdout[:80])


def raw_exchange(sock_path, data, timeout=5.0, shut_wr=True, chunks=None):
    """Send data (or the list `chunks`, one send each) on a new connection to
    ccrd's socket, half-close (shut_wr), and read records until the peer
    closes or `timeout` seconds pass."""
    ex = Exchange()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + timeout
    sender = None
    try:
        s.settimeout(timeout)
        s.connect(sock_path)

        def send():
            try:
                for part in (chunks if chunks is not None else [data]):
                    s.sendall(part)
                if shut_wr:
                    s.shutdown(socket.SHUT_WR)
            except OSError as e:       # ccrd closed early: fine, read what it said
                ex.send_error = e
        if sum(map(len, chunks if chunks is not None else [data])) > 65536:
            # a big input whose answers fill the socket buffer: send and
            # read at once, or both sides wait for each other
            import threading
            sender = threading.Thread(target=send, daemon=True)
            sender.start()
        else:
            send()
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                ex.timed_out = True
                break
            s.settimeout(left)
            try:
                d = s.recv(65536)
            except socket.timeout:
                ex.timed_out = True
                break
            except OSError:
                ex.closed = True
                break
            if not d:
                ex.closed = True
                break
            buf += d
            while len(buf) >= 8:
                _v, t, rid, clen, plen = struct.unpack("!BBHHBx", buf[:8])
                if len(buf) < 8 + clen + plen:
                    break
                ex.records.append((t, rid, buf[8:8 + clen]))
                buf = buf[8 + clen + plen:]
        ex.trailing = buf
    finally:
        s.close()
        if sender is not None:
            sender.join(5)
    return ex


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


# ------------------------------------------------------------------ clients

_addr_seq = itertools.count(1)
_addr_b = random.randint(1, 254)


def fresh_addr():
    """127.<b>.x.y, unique within this run (b random per run)."""
    n = next(_addr_seq)
    return "127.%d.%d.%d" % (_addr_b, 200 + n // 250, n % 250 + 2)


class Client(helpers.Session):
    def __init__(self, ctx, addr=None):
        self.addr = addr or fresh_addr()
        super().__init__(helpers.Via(ctx, self.addr))
        self.test_ctx = ctx

    def prime(self, path="/login"):
        r = self.get(path)
        assert r.status == 200 and self.last_csrf, "GET %s: %d (csrf %r)" % (
            path, r.status, self.last_csrf)
        return r

    def raw(self, method, path, body=None, headers=None, timeout=15):
        """One request with these exact headers (cookies added), no csrf magic."""
        hdrs = dict(headers or {})
        if self.cookies and "Cookie" not in hdrs:
            hdrs["Cookie"] = self.cookie_header()
        return self.ctx.http(method, path, body=body, headers=hdrs, timeout=timeout)


def sql_str(s):
    return "'" + str(s).replace("\\", "\\\\").replace("'", "\\'") + "'"


def user_id(ctx, email):
    v = ctx.sql_value("SELECT id FROM users WHERE email = %s" % sql_str(email))
    assert v, "no users row for %s" % email
    return int(v)


def register(ctx, first="Ann", last="Attacker", email=None, password=PASSWORD, client=None):
    """A logged-in customer: (Client, email, id)."""
    c = client or Client(ctx)
    email = email or ctx.unique_email("atk")
    c.prime("/register")
    r = c.post("/register", {"first_name": first, "last_name": last, "email": email,
                             "password": password, "confirm_password": password})
    assert r.status == 303, "POST /register %s: %d %s" % (email, r.status, error_text(r))
    r = c.get("/tickets")
    assert r.status == 200, "GET /tickets after registering: %d" % r.status
    return c, email, user_id(ctx, email.strip().lower())


def login(ctx, email, password=PASSWORD, client=None):
    c = client or Client(ctx)
    c.prime("/login")
    r = c.post("/login", {"email": email, "password": password})
    assert r.status == 303, "POST /login %s: %d %s" % (email, r.status, error_text(r))
    r = c.get("/tickets")
    assert r.status == 200, "GET /tickets after login: %d" % r.status
    return c


def make_admin(ctx, first="Ada", last="Admin"):
    email = ctx.unique_email("atkadmin")
    ctx.admin("create-admin", "--email", email, "--first-name", first, "--last-name", last,
              input=PASSWORD + "\n")
    return login(ctx, email), email, user_id(ctx, email)


def make_agent(ctx, admin, first="Gus", last="Agent"):
    """An active agent created through POST /admin/agents, password set with
    the mailed code, logged in: (Client, email, id)."""
    email = ctx.unique_email("atkagent")
    mark = ctx.mail_mark()
    admin.get("/admin/agents")
    r = admin.post("/admin/agents", {"first_name": first, "last_name": last, "email": email})
    assert r.status == 303, "POST /admin/agents: %d %s" % (r.status, error_text(r))
    m = ctx.wait_mail(lambda m: email in m.to, since=mark, timeout=15)
    code = re.search(r"(?<!\d)(\d{8})(?!\d)", m.body).group(1)
    c = Client(ctx)
    c.prime("/password/reset?email=" + email)
    r = c.post("/password/reset", {"email": email, "code": code, "password": PASSWORD,
                                   "confirm_password": PASSWORD})
    assert r.status == 303, "POST /password/reset (agent invite): %d %s" % (r.status, error_text(r))
    return login(ctx, email), email, user_id(ctx, email)


def new_ticket(c, subject="Printer on fire", description="It is on fire.", priority="normal"):
    c.get("/tickets/new")
    r = c.post("/tickets", {"subject": subject, "description": description,
                            "priority": priority})
    assert r.status == 303, "POST /tickets: %d %s" % (r.status, error_text(r))
    m = re.match(r"/tickets/(\d+)$", r.location or "")
    assert m, "POST /tickets: Location %r" % r.location
    return int(m.group(1))


def error_text(r):
    out = re.findall(r'class="(?:flash[^"]*|form-error|field-error|error-message)"[^>]*>'
                     r'(?:<p>)?([^<]*)', r.text)
    return "; ".join(x.strip() for x in out if x.strip())[:300] or "(Location %s)" % r.location


def unthrottle(ctx, *subjects):
    if subjects:
        ctx.sql("UPDATE login_failures SET at = at - INTERVAL 16 MINUTE WHERE subject IN (%s)"
                % ", ".join(sql_str(s) for s in subjects))


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


# ------------------------------------------------------------------ hash slots, outbox hygiene

class AllHashSlots:
    """Hold every Argon2 slot (hash-slot.N under hash_slot_dir, which
    test/stack.py sets to $VAR/run): a request that needs a hash waits 2 s
    and answers 503 - a 503 without touching the database."""

    def __init__(self, ctx, n=2):
        import configparser
        cp = configparser.ConfigParser(interpolation=None)
        cp.read(ctx.stack.conf)
        n = cp.getint("security", "max_concurrent_hashes", fallback=n)
        d = cp.get("security", "hash_slot_dir", fallback=ctx.stack.run_dir)
        self.paths = [os.path.join(d, "hash-slot.%d" % i) for i in range(n)]
        self.fds = []

    def __enter__(self):
        import fcntl
        for p in self.paths:
            fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self.fds.append(fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl
        for fd in self.fds:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self.fds = []


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

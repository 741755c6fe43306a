"""The shared helpers of the end-to-end tests (stdlib only).

A test is a plain function `test_xxx(ctx)` in a test/e2e/test_*.py module;
`ctx` is a Context:

    ctx.base_url, ctx.port, ctx.stack (test/stack.py Stack), ctx.repo, ctx.var
    ctx.http(method, path, form=None, body=None, headers=None) -> Response  (no redirects)
    ctx.get(path, **kw), ctx.post(path, form=None, **kw)
    ctx.session() -> Client from 127.0.0.1
    ctx.fcgi(method, path, ..., sock=None) -> Response  (straight to ccrd's socket, no nginx)
    ctx.sql(query) -> [[str, ...], ...]        (root over the private socket, db ccr)
    ctx.sql_value(query) -> str or None
    ctx.admin(*args, input=None, check=True)   (build/ccr-admin -c $VAR/ccr.conf ...)
    ctx.mails() -> [Mail]; ctx.mail_mark(); ctx.wait_mail(pred, since=mark, timeout=10)
    ctx.log_mark(); ctx.log_since(mark) -> str   ($VAR/log/ccrd.log)
    ctx.wait_until(pred, timeout, what)
    ctx.unique_email(prefix)

Failing: plain `assert` (with a message) or any exception.  raise Skip(reason)
to report SKIP (counted neither as pass nor as fail).

What the test modules share lives here, once:

HTTP through nginx
    Response                      status, headers, body (+ timing for Client)
    SEC_HEADERS, sec_header_problems(r, what)   the headers every response carries
    http_request(port, method, path, body, headers, timeout, addr)
                                  one request on a fresh connection
    fresh_addr()                  a loopback source address no other client
                                  of this run uses (127.b.x.y)
    Client(port, addr=None, keepalive=False, catch=False)
                                  the browser-like client: cookie jar, the
                                  last csrf_token seen (added to POST forms),
                                  its own source address, so the per-address
                                  login throttle (20 failures in 15 minutes)
                                  of one test never reaches another

Accounts
    User                          id, email, password, first, last, role, s (its Client)
    sql_str(s), user_id(ctx, email)
    register(ctx, ...), login(c, email, password), logged_in(ctx, email, password)
    create_admin(ctx, ...), create_agent_form(admin_client, ...),
    make_agents(ctx, admin_client, names, password)
    reset_code(mail), set_password(ctx, email, code, password)
    page_errors(r)                the flash and form errors of a page, for failure messages
    unthrottle(ctx, *subjects), AllHashSlots(ctx)

FastCGI straight to ccrd's socket (records built byte by byte, so the attack
tests can lie about any length)
    rec, records, nv, begin, cgi_params, params_for, request_bytes
    raw_exchange(sock, data, ...) -> Exchange;  fcgi_request(sock, params, stdin)
    fcgi(sock, port, method, path, ...) -> Response   (what ctx.fcgi calls)
    parse_cgi_response(stdout) -> Response
"""
import configparser
import email
import email.policy
import email.utils
import fcntl
import html
import http.client
import http.cookies
import itertools
import os
import random
import re
import socket
import struct
import threading
import time
import urllib.parse

import stack as stackmod

wait_until = stackmod.wait_until


class Skip(Exception):
    pass


# ------------------------------------------------------------------ HTTP

class Timed:
    """secs, ok and what() of a request record with t0, t1 (time.time()),
    method, path, status and err."""
    __slots__ = ()

    @property
    def secs(self):
        return self.t1 - self.t0

    @property
    def ok(self):
        """A page (200) or a form that went through (303)."""
        return self.status in (200, 303)

    def what(self):
        return "%s %s -> %s (%.2fs)" % (self.method, self.path, self.status or self.err, self.secs)


class Response(Timed):
    """status (int; None when the request failed and the Client caught it:
    see err), reason, headers [(name, value)], body (bytes).  A Client also
    records method, path and the times t0, t1 (time.time()) around it."""

    def __init__(self, status, reason, headers, body, method=None, path=None, t0=0.0,
                 t1=0.0, err=None):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.method, self.path, self.t0, self.t1, self.err = method, path, t0, t1, err

    def header(self, name, default=None):
        """First value of header `name` (case-insensitive), or default."""
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def location(self):
        return self.header("Location")

    def csrf(self):
        """The value of the first csrf_token hidden input in the body, or None."""
        return csrf_from(self.text)

    def __repr__(self):
        return "<Response %s %s, %d bytes>" % (self.status or self.err, self.reason, len(self.body))


SEC_HEADERS = {   # on every response, ccrd's and nginx's own
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def sec_header_problems(r, what):
    """Each security header not present exactly once with its value -> [problem]."""
    out = []
    for name, want in SEC_HEADERS.items():
        got = r.header_all(name)
        if got != [want]:
            out.append("%s: %s is %r, want exactly once %r" % (what, name, got, want))
    return out


_CSRF_RES = [
    re.compile(r'<input[^>]*\bname="csrf_token"[^>]*\bvalue="([^"]*)"', re.I),
    re.compile(r'<input[^>]*\bvalue="([^"]*)"[^>]*\bname="csrf_token"', re.I),
]


def csrf_from(text):
    for rx in _CSRF_RES:
        m = rx.search(text)
        if m:
            return html.unescape(m.group(1))
    return None


def encode_form(form):
    if form is None:
        return None
    items = form.items() if isinstance(form, dict) else form
    return urllib.parse.urlencode(list(items)).encode()


def http_request(port, method, path, body=None, headers=None, timeout=15, addr=None):
    """One request to 127.0.0.1:port on a fresh connection (from source
    address addr when given); never follows redirects."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                   source_address=(addr, 0) if addr else None)
    try:
        hdrs = {"Connection": "close"}
        hdrs.update(headers or {})
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        return Response(r.status, r.reason, r.getheaders(), r.read(), method, path)
    finally:
        c.close()


_addr_seq = itertools.count(1)
_addr_b = random.randint(1, 254)   # second octet, differs between runs


def fresh_addr():
    """A loopback address no other client of this run uses (127.b.x.y)."""
    n = next(_addr_seq)
    return "127.%d.%d.%d" % (_addr_b, n // 250, n % 250 + 1)


class Client:
    """A browser-like HTTP client to nginx on 127.0.0.1:port: keeps cookies
    (as a browser applies Set-Cookie) and the last csrf_token seen.

    addr: the source address (default: fresh_addr(), one of its own).
    keepalive: one persistent connection (reopened after 20 s idle; nginx
        drops idle ones after 30 s) instead of a new one per request.
    catch: a failed request returns a Response with status None and err
        set instead of raising (load loops keep counting)."""

    def __init__(self, port, addr=None, keepalive=False, catch=False):
        self.port = port
        self.addr = addr if addr is not None else fresh_addr()
        self.keepalive = keepalive
        self.catch = catch
        self.cookies = {}
        self.last_csrf = None
        self.last = None
        self.conn = None
        self.last_used = 0.0

    def cookie_header(self):
        return "; ".join("%s=%s" % kv for kv in self.cookies.items())

    @property
    def session_cookie(self):
        return self.cookies.get("ccr_session")

    def request(self, method, path, form=None, body=None, headers=None, csrf="auto", timeout=15):
        """csrf="auto" adds csrf_token=<last seen> to a POST form that lacks
        one; csrf=None sends none; any other string is sent as the token."""
        hdrs = dict(headers or {})
        if form is not None:
            form = list(form.items()) if isinstance(form, dict) else list(form)
            if method == "POST" and csrf is not None and not any(k == "csrf_token" for k, _ in form):
                tok = self.last_csrf if csrf == "auto" else csrf
                if tok is not None:
                    form.append(("csrf_token", tok))
        elif method == "POST" and body is None and csrf is not None:
            tok = self.last_csrf if csrf == "auto" else csrf
            form = [("csrf_token", tok)] if tok is not None else []
        if form is not None:
            body = encode_form(form)
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if self.cookies:
            hdrs["Cookie"] = self.cookie_header()
        r = self._send(method, path, body, hdrs, timeout)
        for sc in r.header_all("Set-Cookie"):
            store_cookie(self.cookies, sc)
        tok = csrf_from(r.text) if "html" in (r.header("Content-Type") or "") else None
        if tok:
            self.last_csrf = tok
        self.last = r
        return r

    def _send(self, method, path, body, hdrs, timeout):
        if not self.keepalive:
            hdrs = dict({"Connection": "close"}, **hdrs)
        t0 = time.time()
        if self.conn is not None and t0 - self.last_used > 20.0:
            self.close()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=timeout,
                    source_address=(self.addr, 0) if self.addr else None)
            elif self.conn.sock is not None:
                self.conn.sock.settimeout(timeout)
            self.conn.timeout = timeout
            self.conn.request(method, path, body=body, headers=hdrs)
            resp = self.conn.getresponse()
            data = resp.read()
            if resp.will_close or not self.keepalive:
                self.close()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            if not self.catch:
                raise
            self.last_used = time.time()
            return Response(None, "", [], b"", method, path, t0, self.last_used,
                            "%s: %s" % (type(e).__name__, e))
        self.last_used = time.time()
        return Response(resp.status, resp.reason, resp.getheaders(), data, method, path, t0,
                        self.last_used)

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.conn = None

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, form=None, **kw):
        return self.request("POST", path, form=form if form is not None else [], **kw)

    def raw(self, method, path, body=None, headers=None, timeout=15):
        """One request with these exact headers (cookies added), no csrf magic."""
        hdrs = dict(headers or {})
        if self.cookies and "Cookie" not in hdrs:
            hdrs["Cookie"] = self.cookie_header()
        return self._send(method, path, body, hdrs, timeout)

    def follow(self, r, limit=5):
        """Follow r's redirects with GET (303/302/301/307/308) and return the last response."""
        while r.status in (301, 302, 303, 307, 308) and limit > 0:
            loc = r.location
            u = urllib.parse.urlsplit(loc)
            path = urllib.parse.urlunsplit(("", "", u.path or "/", u.query, ""))
            r = self.get(path)
            limit -= 1
        return r

    def prime(self, path="/login"):
        """GET a form page, so the client has the anonymous ccr_csrf cookie and token."""
        r = self.get(path)
        assert r.status == 200 and self.last_csrf, "GET %s: %d (csrf %r)" % (
            path, r.status, self.last_csrf)
        return r

    def refresh_csrf(self, path="/account"):
        """GET a page of the session (asserting 200): the session's csrf token."""
        r = self.get(path)
        assert r.status == 200, "GET %s: %d %r" % (path, r.status, r.location)
        return r

    def clone(self, port=None):
        """The same login (cookies, csrf token) on a connection of its own."""
        c = Client(port or self.port, self.addr, self.keepalive, self.catch)
        c.cookies = dict(self.cookies)
        c.last_csrf = self.last_csrf
        return c


def store_cookie(jar, set_cookie):
    """Apply one Set-Cookie header to the dict jar as a browser would:
    Max-Age=0, a past Expires or an empty value delete the cookie."""
    c = http.cookies.SimpleCookie()
    try:
        c.load(set_cookie)
    except http.cookies.CookieError:
        return
    for name, m in c.items():
        expired = m["max-age"] in ("0",) or (m["expires"] and _past(m["expires"]))
        if expired or m.value == "":
            jar.pop(name, None)
        else:
            jar[name] = m.value


def _past(expires):
    try:
        return email.utils.parsedate_to_datetime(expires).timestamp() < time.time()
    except (TypeError, ValueError):
        return False


# ------------------------------------------------------------------ accounts

PASSWORD = "Corr3ct-horse-battery"   # what the account helpers use unless told


class User:
    """An account a test made; s is the Client that registered or logged
    in as it (None when it has none)."""

    def __init__(self, uid, email_addr, password, first, last, role, s=None):
        self.id = uid
        self.email = email_addr
        self.password = password
        self.first = first
        self.last = last
        self.role = role
        self.s = s

    @property
    def name(self):
        return "%s %s" % (self.first, self.last)

    def __repr__(self):
        return "<User %s #%s %s>" % (self.role, self.id, self.email)


def table_rows(text, body_re, key_re, what):
    """{key: the row's HTML} of the table whose <tbody> body_re's group 1
    captures; key_re's group 0 (or 1) in a row is its key."""
    m = re.search(body_re, text, re.S)
    assert m, "no %s" % what
    out = {}
    for tr in re.findall(r"<tr\b[^>]*>(.*?)</tr>", m.group(1), re.S):
        k = re.search(key_re, tr)
        if k:
            out[k.group(k.lastindex or 0)] = tr
    return out


def sql_str(s):
    """A MariaDB string literal (quotes included)."""
    return "'" + str(s).replace("\\", "\\\\").replace("'", "\\'") + "'"


def user_id(ctx, email_addr):
    v = ctx.sql_value("SELECT id FROM users WHERE email = %s" % sql_str(email_addr))
    assert v, "no users row for %s" % email_addr
    return int(v)


def page_errors(r):
    """The flash, form errors or error message of a page (else its
    Location), for failure messages."""
    out = re.findall(r'class="(?:flash[^"]*|form-error|field-error|error-message)"[^>]*>'
                     r'(?:<p>)?([^<]*)', r.text)
    return ("; ".join(html.unescape(x.strip()) for x in out if x.strip())[:300]
            or "(Location %s)" % r.location)


def register_form(email_addr, password=PASSWORD, first="Ada", last="Lovelace", role=None,
                  confirm=None):
    f = [("first_name", first), ("last_name", last), ("email", email_addr),
         ("password", password), ("confirm_password", password if confirm is None else confirm)]
    if role is not None:
        f.append(("role", role))
    return f


def register(ctx, email=None, password=PASSWORD, first="Ada", last="Lovelace", role=None,
             client=None, prefix="acct", then=None):
    """POST /register (GET /register first when the client holds no csrf
    token); asserts 303 to /tickets (to /login for role=agent, a pending
    request), then GETs `then` (asserting 200) when given.  -> User whose
    s is the client (a new one of its own address unless given)."""
    c = client or Client(ctx.port)
    email = email or ctx.unique_email(prefix)
    if c.last_csrf is None:
        c.prime("/register")
    r = c.post("/register", register_form(email, password, first, last, role))
    assert r.status == 303, "POST /register %s: %d %s" % (email, r.status, page_errors(r))
    want = "/login" if role == "agent" else "/tickets"
    assert urllib.parse.urlsplit(r.location).path == want, \
        "POST /register %s: to %r, want %s" % (email, r.location, want)
    if then:
        r = c.get(then)
        assert r.status == 200, "GET %s after registering: %d" % (then, r.status)
    addr = email.strip().lower()
    return User(user_id(ctx, addr), addr, password, first, last,
                "agent" if role == "agent" else "customer", c)


def login(c, email_addr, password, next=None):
    """POST /login on client c (GET /login first when it holds no csrf
    token) -> Response."""
    if c.last_csrf is None:
        c.prime("/login")
    form = [("email", email_addr), ("password", password)]
    if next is not None:
        form.append(("next", next))
    return c.post("/login", form)


def logged_in(ctx, email_addr, password, client=None, then="/account"):
    """A client (a new one of its own address unless given) logged in as
    email (asserts 303), after a GET of `then` (asserting 200) that gives it
    the session's csrf token."""
    c = client or Client(ctx.port)
    r = login(c, email_addr, password)
    assert r.status == 303, "POST /login as %s: %d %s" % (email_addr, r.status, page_errors(r))
    c.refresh_csrf(then)
    return c


def create_admin(ctx, email=None, password=PASSWORD, first=None, last=None, prefix="admin"):
    """build/ccr-admin create-admin (password on stdin) -> User without a session."""
    email = email or ctx.unique_email(prefix)
    args = ["create-admin", "--email", email]
    if first:
        args += ["--first-name", first]
    if last:
        args += ["--last-name", last]
    ctx.admin(*args, input=password + "\n")
    uid = ctx.sql_value("SELECT id FROM users WHERE email = %s" % sql_str(email.lower()))
    assert uid, "ccr-admin create-admin made no row for %s" % email
    return User(int(uid), email.lower(), password, first or "Admin", last or "User", "admin")


def reset_code(mail):
    """The 8-digit code of a reset or invitation mail (asserts there is one)."""
    codes = re.findall(r"(?<!\d)(\d{8})(?!\d)", mail.body)
    assert len(set(codes)) == 1, "want one 8-digit code in %r, got %r" % (mail.body[:500], codes)
    return codes[0]


def reset_form(email_addr, code, password):
    return [("email", email_addr), ("code", code), ("password", password),
            ("confirm_password", password)]


def set_password(ctx, email_addr, code, password, client=None):
    """GET /password/reset?email=, POST it with the code -> Response."""
    c = client or Client(ctx.port)
    c.prime("/password/reset?email=" + urllib.parse.quote(email_addr))
    return c.post("/password/reset", reset_form(email_addr, code, password))


def create_agent_form(admin, first, last, email_addr):
    """GET and POST /admin/agents as the Client admin -> Response."""
    admin.get("/admin/agents")
    return admin.post("/admin/agents", {"first_name": first, "last_name": last,
                                        "email": email_addr})


def make_agents(ctx, admin, names, password=PASSWORD, log_in=True, prefix="agent", client=None):
    """Active agents made through the admin page: POST /admin/agents as the
    Client admin, the 8-digit code from the invitation mail, /password/reset;
    logged in (a GET of /tickets) unless log_in=False.  names: [(first,
    last)]; the mails are awaited together.  client() makes the clients
    (default: one of its own address each).  -> [User]"""
    client = client or (lambda: Client(ctx.port))
    mark = ctx.mail_mark()
    made = []
    for first, last in names:
        email_addr = ctx.unique_email(prefix)
        r = create_agent_form(admin, first, last, email_addr)
        assert r.status == 303, "POST /admin/agents: %d %s" % (r.status, page_errors(r))
        made.append(User(user_id(ctx, email_addr), email_addr, password, first, last, "agent"))
    mails = wait_mails(ctx, [(lambda e: lambda m: e in m.to)(u.email) for u in made], mark,
                       what="agent invitation mails")
    for u, m in zip(made, mails):
        r = set_password(ctx, u.email, reset_code(m), password, client())
        assert r.status == 303, "POST /password/reset with the invitation code: %d %s" % (
            r.status, page_errors(r))
        if log_in:
            u.s = logged_in(ctx, u.email, password, client(), then="/tickets")
    return made


def unthrottle(ctx, *subjects):
    """Move the login failures of these emails and addresses out of the
    15-minute throttle window."""
    if subjects:
        ctx.sql("UPDATE login_failures SET at = at - INTERVAL 16 MINUTE WHERE subject IN (%s)"
                % ", ".join(sql_str(s) for s in subjects))


class AllHashSlots:
    """Hold every Argon2 slot (the flock(2) files hash-slot.N under
    hash_slot_dir, which test/stack.py sets to $VAR/run): a request that
    needs a hash now waits 2 s and answers 503 - a 503 without touching the
    database; one refused before hashing answers at once."""

    def __init__(self, ctx, n=2):
        cp = configparser.ConfigParser(interpolation=None)
        cp.read(ctx.stack.conf)
        n = cp.getint("security", "max_concurrent_hashes", fallback=n)
        d = cp.get("security", "hash_slot_dir", fallback=ctx.stack.run_dir)
        self.paths = [os.path.join(d, "hash-slot.%d" % i) for i in range(n)]
        self.fds = []

    def __enter__(self):
        for p in self.paths:
            fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self.fds.append(fd)
            fcntl.flock(fd, fcntl.LOCK_EX)   # blocks while a worker hashes
        return self

    def __exit__(self, *exc):
        for fd in self.fds:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self.fds = []


# ------------------------------------------------------------------ mail

class Mail:
    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)
        with open(path, "rb") as f:
            self.raw = f.read()
        self.msg = email.message_from_bytes(self.raw, policy=email.policy.default)

    @property
    def to(self):
        return str(self.msg.get("To", ""))

    @property
    def subject(self):
        return str(self.msg.get("Subject", ""))

    @property
    def body(self):
        part = self.msg.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    def __repr__(self):
        return "<Mail to=%r subject=%r>" % (self.to, self.subject)


def wait_mails(ctx, preds, since, timeout=15, what="mails"):
    """Distinct mails (not in since) matching each predicate, in order of preds."""
    found = [None] * len(preds)

    def look():
        used = set()
        for i in range(len(preds)):
            found[i] = None
        for m in ctx.mails():
            if m.name in since:
                continue
            for i, p in enumerate(preds):
                if found[i] is None and m.name not in used and p(m):
                    found[i] = m
                    used.add(m.name)
                    break
        return all(f is not None for f in found)
    try:
        ctx.wait_until(look, timeout, what, 0.1)
    except Exception:
        missing = [i for i, f in enumerate(found) if f is None]
        recent = [m for m in ctx.mails() if m.name not in since][-8:]
        raise AssertionError("%s: predicates %s unmatched after %ss; new mail: %s"
                             % (what, missing, timeout, recent))
    return found


# ------------------------------------------------------------------ FastCGI

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


def rec(rtype, content=b"", rid=1, version=1, pad=None, clen=None):
    """One record (content up to 65535 bytes, padded to 8).  clen and pad
    lie about the lengths when given."""
    n = len(content) if clen is None else clen
    p = (8 - len(content) % 8) % 8 if pad is None else pad
    return struct.pack("!BBHHBx", version, rtype, rid, n, p) + content + b"\0" * p


def records(rtype, content, rid=1):
    """content split into as many records as needed (65535 bytes each;
    none for empty content)."""
    out = b""
    for i in range(0, len(content), 65535):
        out += rec(rtype, content[i:i + 65535], rid)
    return out


def nvlen(n):
    return struct.pack("!B", n) if n < 128 else struct.pack("!I", (n & 0x7fffffff) | 0x80000000)


def nv(name, value, nlen=None, vlen=None):
    """A name/value pair; nlen/vlen lie about the lengths when given."""
    if isinstance(name, str):
        name = name.encode()
    if isinstance(value, str):
        value = value.encode()
    return (nvlen(len(name) if nlen is None else nlen) +
            nvlen(len(value) if vlen is None else vlen) + name + value)


def begin(role=RESPONDER, flags=0, rid=1):
    return rec(FCGI_BEGIN_REQUEST, struct.pack("!HB5x", role, flags), rid)


def cgi_params(port, method="GET", path="/healthz", query="", extra=None, drop=()):
    """The CGI parameters nginx passes for a request (a dict)."""
    p = {
        "REQUEST_METHOD": method, "QUERY_STRING": query,
        "REQUEST_URI": path + ("?" + query if query else ""), "DOCUMENT_URI": path,
        "SCRIPT_NAME": path, "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "SERVER_ADDR": "127.0.0.1",
        "SERVER_PORT": str(port), "SERVER_NAME": "127.0.0.1", "REQUEST_SCHEME": "http",
        "HTTP_HOST": "127.0.0.1", "CONTENT_LENGTH": "", "CONTENT_TYPE": "",
    }
    p.update(extra or {})
    for k in drop:
        p.pop(k, None)
    return p


def params_for(ctx, method="GET", path="/healthz", query="", extra=None, drop=()):
    """cgi_params as the bytes of a PARAMS stream."""
    return b"".join(nv(k, str(v))
                    for k, v in cgi_params(ctx.port, method, path, query, extra, drop).items())


def _frame(params, stdin=b"", role=RESPONDER):
    return (begin(role) + records(FCGI_PARAMS, params) + rec(FCGI_PARAMS) +
            records(FCGI_STDIN, stdin) + rec(FCGI_STDIN))


def request_bytes(ctx, method="GET", path="/healthz", query="", extra=None, stdin=b"",
                  role=RESPONDER, drop=()):
    """A complete, well-formed request (params and stdin terminated)."""
    return _frame(params_for(ctx, method, path, query, extra, drop), stdin, role)


class Exchange:
    """What came back on one raw connection."""

    def __init__(self):
        self.records = []          # (type, request id, content)
        self.closed = False        # the peer closed (EOF or reset)
        self.timed_out = False     # the deadline passed with the connection open
        self.send_error = None
        self.trailing = b""        # bytes that do not make a whole record

    def _stream(self, rtype):
        return b"".join(c for t, _r, c in self.records if t == rtype)

    @property
    def stdout(self):
        return self._stream(FCGI_STDOUT)

    @property
    def stderr(self):
        return self._stream(FCGI_STDERR)

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


def raw_exchange(sock_path, data, timeout=5.0, shut_wr=True, chunks=None, until_end=False):
    """Send data (or the list `chunks`, one send each) on a new connection to
    a ccrd socket, half-close (shut_wr), and read records until the peer
    closes, END_REQUEST arrives (until_end) or `timeout` seconds pass."""
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
            sender = threading.Thread(target=send, daemon=True)
            sender.start()
        else:
            send()
        buf = b""
        while not (until_end and ex.ended):
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


def fcgi_request(sock_path, params, stdin=b"", timeout=15):
    """One RESPONDER request (params: a dict) over a unix socket -> (stdout,
    stderr) bytes; raises when no END_REQUEST comes."""
    pb = b"".join(nv(k, str(v)) for k, v in params.items())
    ex = raw_exchange(sock_path, _frame(pb, stdin), timeout, shut_wr=False, until_end=True)
    if not ex.ended:
        if ex.timed_out:
            raise TimeoutError("no FastCGI END_REQUEST within %s s" % timeout)
        raise ConnectionError("FastCGI connection closed before END_REQUEST")
    return ex.stdout, ex.stderr


def fcgi(sock_path, port, method, path, query="", body=b"", headers=None, params=None,
         timeout=15):
    """A request as nginx would pass it for 127.0.0.1:port (headers become
    HTTP_* params; params override any) -> Response with its request_id."""
    p = cgi_params(port, method, path, query, {
        "REQUEST_ID": "%032x" % int.from_bytes(os.urandom(16), "big"),
        "CONTENT_LENGTH": str(len(body)) if body else ""})
    for k, v in (headers or {}).items():
        kk = k.upper().replace("-", "_")
        if kk in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            p[kk] = v
        else:
            p["HTTP_" + kk] = v
    p.update(params or {})
    out, _err = fcgi_request(sock_path, p, body, timeout)
    r = parse_cgi_response(out)
    r.request_id = p["REQUEST_ID"]
    return r


def parse_cgi_response(data):
    """CGI response (Status: header, headers, blank line, body) -> Response."""
    sep = data.find(b"\r\n\r\n")
    n = 4
    if sep < 0:
        sep, n = data.find(b"\n\n"), 2
    if sep < 0:
        raise ValueError("no header/body separator in FastCGI output")
    head, body = data[:sep].decode("latin-1"), data[sep + n:]
    headers, status, reason = [], 200, "OK"
    for line in head.splitlines():
        if not line.strip():
            continue
        k, _, v = line.partition(":")
        k, v = k.strip(), v.strip()
        if k.lower() == "status":
            code, _, reason = v.partition(" ")
            status = int(code)
        else:
            headers.append((k, v))
    return Response(status, reason, headers, body)


# ------------------------------------------------------------------ the context

class Context:
    def __init__(self, stack, tmp):
        self.stack = stack
        self.tmp = tmp
        self.repo = stack.repo
        self.var = stack.var
        self.port = stack.port
        self.base_url = stack.base_url
        self._n = itertools.count(1)

    # HTTP through nginx
    def http(self, method, path, form=None, body=None, headers=None, timeout=15):
        hdrs = dict(headers or {})
        if form is not None:
            body = encode_form(form)
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return http_request(self.port, method, path, body=body, headers=hdrs, timeout=timeout)

    def get(self, path, **kw):
        return self.http("GET", path, **kw)

    def post(self, path, form=None, **kw):
        return self.http("POST", path, form=form, **kw)

    def session(self):
        return Client(self.port, "127.0.0.1")

    # FastCGI straight to ccrd (or to another ccrd's socket)
    def fcgi(self, method, path, query="", body=b"", headers=None, params=None, timeout=15,
             sock=None):
        return fcgi(sock or self.stack.ccrd_sock, self.port, method, path, query, body, headers,
                    params, timeout)

    # database, admin tool
    def sql(self, query):
        return self.stack.sql(query)

    def sql_value(self, query):
        rows = self.stack.sql(query)
        return rows[0][0] if rows and rows[0] else None

    def admin(self, *args, input=None, check=True, timeout=60):
        return self.stack.admin(*args, input=input, check=check, timeout=timeout)

    def unique_email(self, prefix="user"):
        return "%s%d.%s@example.com" % (prefix, next(self._n), os.urandom(3).hex())

    # mail sink
    def _mail_files(self):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.stack.mail_dir, sub)
            try:
                for n in os.listdir(d):
                    p = os.path.join(d, n)
                    out.append((os.stat(p).st_mtime_ns, n, p))
            except FileNotFoundError:
                pass
        return sorted(out)

    def mails(self):
        """Every captured message, oldest first."""
        return [Mail(p) for _t, _n, p in self._mail_files()]

    def mail_mark(self):
        """An opaque mark: wait_mail(since=mark) only looks at mail arriving later."""
        return {n for _t, n, _p in self._mail_files()}

    def wait_mail(self, pred=lambda m: True, since=None, timeout=10):
        """First captured Mail (not in `since`) for which pred(mail) is true."""
        since = since or set()

        def find():
            for _t, n, p in self._mail_files():
                if n not in since:
                    m = Mail(p)
                    if pred(m):
                        return m
            return None
        return wait_until(find, timeout, "a matching mail in %s" % self.stack.mail_dir, 0.1)

    # ccrd log
    def log_mark(self):
        try:
            return os.path.getsize(self.stack.ccrd_log_path)
        except FileNotFoundError:
            return 0

    def log_since(self, mark):
        try:
            with open(self.stack.ccrd_log_path, "rb") as f:
                f.seek(mark)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    @staticmethod
    def wait_until(pred, timeout, what, interval=0.05):
        return wait_until(pred, timeout, what, interval)


def encode_multipart(fields, files=(), boundary=None):
    """A multipart/form-data body as browsers send it (RFC 7578): fields is
    [(name, str)], files [(field, filename, bytes, content_type)]; a
    filename given as bytes goes out raw, a str has '"', CR and LF
    percent-encoded as the HTML standard does.  (content_type, body)."""
    b = boundary or "----ccrFormBoundary" + os.urandom(8).hex()
    out = []
    for k, v in fields:
        out += [b"--" + b.encode(), ('Content-Disposition: form-data; name="%s"' % k).encode(),
                b"", v.encode("utf-8") if isinstance(v, str) else v]
    for field, name, data, ctype in files:
        if isinstance(name, str):
            name = name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A").encode()
        out += [b"--" + b.encode(),
                b'Content-Disposition: form-data; name="' + field.encode() + b'"; filename="' +
                name + b'"', ("Content-Type: %s" % ctype).encode(), b"", data]
    out.append(b"--" + b.encode() + b"--")
    return "multipart/form-data; boundary=" + b, b"\r\n".join(out) + b"\r\n"


def post_multipart(client, path, fields, files=(), csrf="auto", timeout=60):
    """POST a multipart form with the client's cookies and csrf token."""
    fields = list(fields)
    if csrf is not None and not any(k == "csrf_token" for k, _ in fields):
        fields.append(("csrf_token", client.last_csrf if csrf == "auto" else csrf))
    ctype, body = encode_multipart(fields, files)
    r = client.raw("POST", path, body=body, headers={"Content-Type": ctype}, timeout=timeout)
    tok = csrf_from(r.text) if "html" in (r.header("Content-Type") or "") else None
    if tok:
        client.last_csrf = tok
    return r

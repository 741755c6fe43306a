"""Helpers for the end-to-end tests (stdlib only).

A test is a plain function `test_xxx(ctx)` in a test/e2e/test_*.py module;
`ctx` is a Context:

    ctx.base_url, ctx.port, ctx.stack (test/stack.py Stack), ctx.repo, ctx.var
    ctx.http(method, path, form=None, body=None, headers=None) -> Response  (no redirects)
    ctx.get(path, **kw), ctx.post(path, form=None, **kw)
    ctx.session() -> Session   (cookie jar; remembers the last csrf_token seen)
    ctx.fcgi(method, path, ...) -> Response    (straight to ccrd's socket, no nginx)
    ctx.sql(query) -> [[str, ...], ...]        (root over the private socket, db ccr)
    ctx.sql_value(query) -> str or None
    ctx.admin(*args, input=None, check=True)   (build/ccr-admin -c $VAR/ccr.conf ...)
    ctx.create_admin(email, password)
    ctx.mails() -> [Mail]; ctx.mail_mark(); ctx.wait_mail(pred, since=mark, timeout=10)
    ctx.log_mark(); ctx.log_since(mark) -> str   ($VAR/log/ccrd.log)
    ctx.wait_until(pred, timeout, what)
    ctx.unique_email(prefix)

Failing: plain `assert` (with a message) or any exception.  raise Skip(reason)
to report SKIP (counted neither as pass nor as fail).
"""
import email
import email.policy
import email.utils
import http.client
import http.cookies
import html
import os
import re
import socket
import struct
import time
import urllib.parse
import itertools

import stack as stackmod

wait_until = stackmod.wait_until


class Skip(Exception):
    pass


class Response:
    """status (int), reason, headers [(name, value)], body (bytes)."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

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
        return "<Response %d %s, %d bytes>" % (self.status, self.reason, len(self.body))


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


def http_request(port, method, path, body=None, headers=None, timeout=15, host="127.0.0.1"):
    """One request on a fresh connection; never follows redirects."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        hdrs = {"Connection": "close"}
        hdrs.update(headers or {})
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        return Response(r.status, r.reason, r.getheaders(), data)
    finally:
        c.close()


class Session:
    """A browser-like client: keeps cookies, remembers the last csrf_token seen."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.cookies = {}
        self.last_csrf = None
        self.last = None

    def cookie_header(self):
        return "; ".join("%s=%s" % kv for kv in self.cookies.items())

    def request(self, method, path, form=None, body=None, headers=None, csrf="auto"):
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
        r = self.ctx.http(method, path, body=body, headers=hdrs)
        for sc in r.header_all("Set-Cookie"):
            self._store(sc)
        tok = csrf_from(r.text) if "html" in (r.header("Content-Type") or "") else None
        if tok:
            self.last_csrf = tok
        self.last = r
        return r

    def _store(self, set_cookie):
        store_cookie(self.cookies, set_cookie)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, form=None, **kw):
        return self.request("POST", path, form=form if form is not None else [], **kw)

    def follow(self, r, limit=5):
        """Follow r's redirects with GET (303/302/301/307/308) and return the last response."""
        while r.status in (301, 302, 303, 307, 308) and limit > 0:
            loc = r.location
            u = urllib.parse.urlsplit(loc)
            path = urllib.parse.urlunsplit(("", "", u.path or "/", u.query, ""))
            r = self.get(path)
            limit -= 1
        return r



class Via:
    """The `ctx.http` a Session calls, from a chosen loopback source address
    (so per-address login throttling of one test does not touch another)."""

    def __init__(self, ctx, src):
        self.ctx = ctx
        self.src = src

    def http(self, method, path, form=None, body=None, headers=None, timeout=15):
        hdrs = {"Connection": "close"}
        hdrs.update(headers or {})
        if form is not None:
            body = encode_form(form)
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        c = http.client.HTTPConnection("127.0.0.1", self.ctx.port, timeout=timeout,
                                       source_address=(self.src, 0) if self.src else None)
        try:
            c.request(method, path, body=body, headers=hdrs)
            r = c.getresponse()
            return Response(r.status, r.reason, r.getheaders(), r.read())
        finally:
            c.close()

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


FCGI_BEGIN, FCGI_END, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FCGI_STDERR = 1, 3, 4, 5, 6, 7


def _fcgi_record(rtype, content, rid=1):
    out = b""
    for i in range(0, max(len(content), 1), 65535):
        chunk = content[i:i + 65535]
        pad = (8 - len(chunk) % 8) % 8
        out += struct.pack("!BBHHBx", 1, rtype, rid, len(chunk), pad) + chunk + b"\0" * pad
        if not content:
            break
    return out


def _fcgi_len(n):
    return struct.pack("!B", n) if n < 128 else struct.pack("!I", n | 0x80000000)


def fcgi_request(sock_path, params, stdin=b"", timeout=15):
    """One FastCGI RESPONDER request over a unix socket; returns (stdout, stderr) bytes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        pb = b"".join(_fcgi_len(len(k)) + _fcgi_len(len(v)) + k + v for k, v in
                      ((k.encode(), str(v).encode()) for k, v in params.items()))
        msg = _fcgi_record(FCGI_BEGIN, struct.pack("!HB5x", 1, 0))
        if pb:
            msg += _fcgi_record(FCGI_PARAMS, pb)
        msg += _fcgi_record(FCGI_PARAMS, b"")
        if stdin:
            msg += _fcgi_record(FCGI_STDIN, stdin)
        msg += _fcgi_record(FCGI_STDIN, b"")
        s.sendall(msg)
        buf = b""
        out, err = [], []
        while True:
            while len(buf) < 8:
                d = s.recv(65536)
                if not d:
                    raise ConnectionError("FastCGI connection closed before END_REQUEST")
                buf += d
            _v, rtype, _rid, clen, plen = struct.unpack("!BBHHBx", buf[:8])
            while len(buf) < 8 + clen + plen:
                d = s.recv(65536)
                if not d:
                    raise ConnectionError("FastCGI connection closed mid-record")
                buf += d
            content, buf = buf[8:8 + clen], buf[8 + clen + plen:]
            if rtype == FCGI_STDOUT:
                out.append(content)
            elif rtype == FCGI_STDERR:
                err.append(content)
            elif rtype == FCGI_END:
                return b"".join(out), b"".join(err)
    finally:
        s.close()


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
        return Session(self)

    # FastCGI straight to ccrd
    def fcgi(self, method, path, query="", body=b"", headers=None, params=None, timeout=15):
        p = {
            "REQUEST_METHOD": method, "QUERY_STRING": query,
            "REQUEST_URI": path + ("?" + query if query else ""), "DOCUMENT_URI": path,
            "SCRIPT_NAME": path, "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1",
            "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "SERVER_ADDR": "127.0.0.1",
            "SERVER_PORT": str(self.port), "SERVER_NAME": "127.0.0.1",
            "REQUEST_SCHEME": "http", "HTTP_HOST": "127.0.0.1",
            "REQUEST_ID": "%032x" % int.from_bytes(os.urandom(16), "big"),
            "CONTENT_LENGTH": str(len(body)) if body else "",
            "CONTENT_TYPE": "",
        }
        for k, v in (headers or {}).items():
            kk = k.upper().replace("-", "_")
            if kk in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                p[kk] = v
            else:
                p["HTTP_" + kk] = v
        p.update(params or {})
        out, _err = fcgi_request(self.stack.ccrd_sock, p, body, timeout)
        r = parse_cgi_response(out)
        r.request_id = p["REQUEST_ID"]
        return r

    # database, admin tool
    def sql(self, query):
        return self.stack.sql(query)

    def sql_value(self, query):
        rows = self.stack.sql(query)
        return rows[0][0] if rows and rows[0] else None

    def admin(self, *args, input=None, check=True, timeout=60):
        return self.stack.admin(*args, input=input, check=check, timeout=timeout)

    def create_admin(self, email_addr, password):
        return self.admin("create-admin", "--email", email_addr, input=password + "\n")

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

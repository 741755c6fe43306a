"""Helpers for test_accounts.py (stdlib only).

    c = Client(ctx)                  a browser-like client (helpers.Session) whose
                                     connections come from its own loopback
                                     address (127.x.y.z), so the per-address
                                     login throttle of one test never touches
                                     another test (or the 127.0.0.1 every other
                                     module uses)
    register(ctx, role=..., ...)     -> (Client logged in or not, User)
    login(c, email, password, next=None) -> Response of POST /login
    create_admin(ctx, ...)           build/ccr-admin create-admin, password on stdin
    wait_mail_to(ctx, addr, since, subject=None, timeout) -> helpers.Mail
    reset_code(mail)                 the 8-digit code in a reset mail
    set_cookie(r, name)              the parsed Set-Cookie of `name` in a Response
    sha256_hex(s)
"""
import collections
import hashlib
import http.client
import itertools
import os
import re

import helpers

PASSWORD = "Corr3ct-horse-battery"

_addr_seq = itertools.count(1)
_addr_base = os.getpid() % 200 + 20   # second octet, differs between runs


def fresh_addr():
    """A loopback address no other client of this run uses (127.b.x.y)."""
    n = next(_addr_seq)
    return "127.%d.%d.%d" % (_addr_base, n // 250, n % 250 + 1)


class Client(helpers.Session):
    def __init__(self, ctx, addr="fresh"):
        self.addr = fresh_addr() if addr == "fresh" else addr
        super().__init__(helpers.Via(ctx, self.addr))
        self.test_ctx = ctx

    def prime(self, path="/login"):
        """GET a form page, so the client has the anonymous ccr_csrf cookie and token."""
        r = self.get(path)
        assert r.status == 200, "GET %s: %d" % (path, r.status)
        assert self.last_csrf, "no csrf_token on %s" % path
        return r

    def refresh_csrf(self, path="/account"):
        r = self.get(path)
        assert r.status == 200, "GET %s: %d %r" % (path, r.status, r.location)
        return r

    @property
    def session_cookie(self):
        return self.cookies.get("ccr_session")


User = collections.namedtuple("User", "id email password first last role")


def unique_email(ctx, prefix="acct"):
    return ctx.unique_email(prefix)


def register_form(email, password=PASSWORD, first="Ada", last="Lovelace", role=None,
                  confirm=None):
    f = [("first_name", first), ("last_name", last), ("email", email),
         ("password", password), ("confirm_password", password if confirm is None else confirm)]
    if role is not None:
        f.append(("role", role))
    return f


def register(ctx, email=None, password=PASSWORD, first="Ada", last="Lovelace", role=None,
             client=None):
    """Register through POST /register; asserts 303.  Returns (client, User)."""
    c = client or Client(ctx)
    email = email or unique_email(ctx)
    if c.last_csrf is None:
        c.prime("/register")
    r = c.post("/register", register_form(email, password, first, last, role))
    assert r.status == 303, "POST /register %s: %d %s" % (email, r.status, _why(r))
    uid = ctx.sql_value("SELECT id FROM users WHERE email = '%s'" % sql_str(email.strip().lower()))
    assert uid, "no users row for %s after registering" % email
    return c, User(int(uid), email.strip().lower(), password, first, last, role or "customer")


def customer(ctx, **kw):
    """A registered, logged-in customer whose client holds the session csrf token."""
    c, u = register(ctx, **kw)
    c.refresh_csrf("/account")
    return c, u


def login(c, email, password, next=None):
    if c.last_csrf is None:
        c.prime("/login")
    form = [("email", email), ("password", password)]
    if next is not None:
        form.append(("next", next))
    return c.post("/login", form)


def logged_in(ctx, email, password):
    """A fresh client logged in as email (asserts 303) with the session's csrf token."""
    c = Client(ctx)
    r = login(c, email, password)
    assert r.status == 303, "login %s: %d %s" % (email, r.status, _why(r))
    c.refresh_csrf("/account")
    return c


def create_admin(ctx, email=None, password=PASSWORD, first=None, last=None):
    email = email or unique_email(ctx, "admin")
    args = ["create-admin", "--email", email]
    if first:
        args += ["--first-name", first]
    if last:
        args += ["--last-name", last]
    ctx.admin(*args, input=password + "\n")
    uid = ctx.sql_value("SELECT id FROM users WHERE email = '%s'" % sql_str(email.lower()))
    assert uid, "ccr-admin create-admin made no row for %s" % email
    return User(int(uid), email.lower(), password, first or "Admin", last or "User", "admin")


def sql_str(s):
    return s.replace("\\", "\\\\").replace("'", "\\'")


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


def wait_mail_to(ctx, addr, since, subject=None, timeout=15):
    addr = addr.lower()

    def pred(m):
        return addr in m.to.lower() and (subject is None or subject in m.subject)
    return ctx.wait_mail(pred, since=since, timeout=timeout)


def mails_to(ctx, addr, since=None, subject=None):
    since = since or set()
    addr = addr.lower()
    return [m for m in ctx.mails() if m.name not in since and addr in m.to.lower()
            and (subject is None or subject in m.subject)]


def reset_code(mail):
    codes = re.findall(r"(?<!\d)(\d{8})(?!\d)", mail.body)
    assert len(set(codes)) == 1, "want one 8-digit code in %r, got %r" % (mail.body[:500], codes)
    return codes[0]


def request_code(ctx, c, email):
    """POST /password/forgot for email; returns the code from the mail it causes."""
    mark = ctx.mail_mark()
    if c.last_csrf is None:
        c.prime("/password/forgot")
    r = c.post("/password/forgot", [("email", email)])
    assert r.status == 303, "POST /password/forgot: %d" % r.status
    return reset_code(wait_mail_to(ctx, email, mark, "reset code"))


def reset_form(email, code, password):
    return [("email", email), ("code", code), ("password", password),
            ("confirm_password", password)]


def set_cookie(r, name):
    """{'value': v, attr(lower): value or True} of the last Set-Cookie for
    name (the one a browser keeps), or None."""
    for sc in reversed(r.header_all("Set-Cookie")):
        parts = [p.strip() for p in sc.split(";")]
        k, _, v = parts[0].partition("=")
        if k.strip() != name:
            continue
        out = {"value": v, "raw": sc}
        for p in parts[1:]:
            if not p:
                continue
            ak, eq, av = p.partition("=")
            out[ak.strip().lower()] = av.strip() if eq else True
        return out
    return None


def flash_of(c, r):
    """Follow r and return the flash text on the page it leads to ('' if none)."""
    page = c.follow(r)
    m = re.search(r'<div class="flash[^"]*"[^>]*><p>(.*?)</p>', page.text, re.S)
    return (m.group(1) if m else ""), page


def _why(r):
    m = re.search(r'class="(?:form-error|field-error|error-message)"[^>]*>(.*?)<', r.text)
    return "(%s)" % m.group(1) if m else "(Location %s)" % r.location


def messages(r):
    """Every form/field/error message on a page, in order."""
    return re.findall(r'<p class="(?:form-error|field-error|error-message)"[^>]*>(.*?)</p>',
                      r.text, re.S)


def audit_events(ctx, uid, since_id=0):
    return [row[0] for row in ctx.sql(
        "SELECT event FROM audit_log WHERE user_id = %d AND id > %d ORDER BY id" % (uid, since_id))]


def max_id(ctx, table):
    return int(ctx.sql_value("SELECT COALESCE(MAX(id), 0) FROM %s" % table))

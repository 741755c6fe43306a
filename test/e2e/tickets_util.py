"""Shared helpers for the ticket tests (stdlib only).

    u = register_customer(ctx)            # logged-in customer (User)
    a = make_admin(ctx)                   # ccr-admin create-admin + login
    g = make_agent(ctx, admin)            # POST /admin/agents, code from the mail,
                                          # /password/reset, login
    s = login(ctx, email, password)       # Session with its csrf token known
    m = wait_mails(ctx, [pred, ...], since=ctx.mail_mark())

Every Client made here talks to nginx from one loopback source address of
this module (addr(ctx), one per Context), so the per-address login throttle
(20 failures in 15 minutes) is not shared with other test modules that make
failed logins from 127.0.0.1.
"""
import html
import http.client
import os
import random
import re
import urllib.parse

import helpers

PASSWORD = "correct horse battery staple"
RID_RE = re.compile(r"[0-9a-f]{32}")


class User:
    def __init__(self, email, password, role, first, last, uid=None, session=None):
        self.email = email
        self.password = password
        self.role = role
        self.first = first
        self.last = last
        self.id = uid
        self.s = session

    @property
    def name(self):
        return "%s %s" % (self.first, self.last)

    def __repr__(self):
        return "<User %s #%s %s>" % (self.role, self.id, self.email)


class SourceCtx:
    """ctx, but HTTP leaves from another loopback address."""

    def __init__(self, ctx, addr):
        self._ctx = ctx
        self.addr = addr

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def http(self, method, path, form=None, body=None, headers=None, timeout=15):
        hdrs = dict(headers or {})
        if form is not None:
            body = helpers.encode_form(form)
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return http_from(self.addr, self._ctx.port, method, path, body, hdrs, timeout)

    def get(self, path, **kw):
        return self.http("GET", path, **kw)

    def post(self, path, form=None, **kw):
        return self.http("POST", path, form=form, **kw)


def http_from(addr, port, method, path, body=None, headers=None, timeout=15):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(addr, 0))
    try:
        hdrs = {"Connection": "close"}
        hdrs.update(headers or {})
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        return helpers.Response(r.status, r.reason, r.getheaders(), r.read())
    finally:
        c.close()


def source_ctx(ctx):
    sc = getattr(ctx, "_tickets_source_ctx", None)
    if sc is None:
        addr = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(0, 254), random.randint(2, 254))
        sc = SourceCtx(ctx, addr)
        ctx._tickets_source_ctx = sc
    return sc


def client(ctx):
    """A fresh cookie jar talking from this module's source address."""
    return helpers.Session(source_ctx(ctx))


def sql_str(s):
    """A MariaDB string literal."""
    return "'" + str(s).replace("\\", "\\\\").replace("'", "\\'") + "'"


def user_id(ctx, email):
    v = ctx.sql_value("SELECT id FROM users WHERE email = %s" % sql_str(email))
    assert v, "no users row for %s" % email
    return int(v)


def unique_word(prefix="zq"):
    """A letters-only token (FULLTEXT-searchable, no digits)."""
    return prefix + "".join(random.choice("bcdfghjklmnpqrstvwxz") for _ in range(10))


def login(ctx, email, password, expect=303):
    s = client(ctx)
    r = s.get("/login")
    assert r.status == 200, "GET /login: %d" % r.status
    r = s.post("/login", {"email": email, "password": password})
    assert r.status == expect, "POST /login as %s: %d (want %d) %s" % (
        email, r.status, expect, flash_or_error(r))
    if expect == 303:
        r = s.get("/tickets")
        assert r.status == 200, "GET /tickets after login as %s: %d" % (email, r.status)
    return s


def register_customer(ctx, first="Cara", last=None):
    last = last or "Cust" + unique_word("")[:6].capitalize()
    email = ctx.unique_email("cust")
    s = client(ctx)
    r = s.get("/register")
    assert r.status == 200, "GET /register: %d" % r.status
    r = s.post("/register", {"first_name": first, "last_name": last, "email": email,
                             "password": PASSWORD, "confirm_password": PASSWORD})
    assert r.status == 303 and r.location.endswith("/tickets"), \
        "POST /register: %d %s %s" % (r.status, r.location, flash_or_error(r))
    r = s.get("/tickets")
    assert r.status == 200, "GET /tickets after registering: %d" % r.status
    return User(email, PASSWORD, "customer", first, last, user_id(ctx, email), s)


def make_admin(ctx, first="Ada", last=None):
    last = last or "Admin" + unique_word("")[:5].capitalize()
    email = ctx.unique_email("admin")
    ctx.admin("create-admin", "--email", email, "--first-name", first, "--last-name", last,
              input=PASSWORD + "\n")
    s = login(ctx, email, PASSWORD)
    return User(email, PASSWORD, "admin", first, last, user_id(ctx, email), s)


def request_agent(ctx, first="Petra", last=None):
    """POST /register role=agent: a pending request.  User without session."""
    last = last or "Pending" + unique_word("")[:5].capitalize()
    email = ctx.unique_email("req")
    s = client(ctx)
    s.get("/register")
    r = s.post("/register", {"first_name": first, "last_name": last, "email": email,
                             "password": PASSWORD, "confirm_password": PASSWORD, "role": "agent"})
    assert r.status == 303 and urllib.parse.urlsplit(r.location).path == "/login", \
        "POST /register role=agent: %d %s" % (r.status, r.location)
    return User(email, PASSWORD, "agent", first, last, user_id(ctx, email), None)


def code_from(mail):
    m = re.search(r"(?<!\d)(\d{8})(?!\d)", mail.body)
    assert m, "no 8-digit code in mail %r: %r" % (mail.subject, mail.body[:400])
    return m.group(1)


def create_agent_form(ctx, admin, first, last, email):
    """POST /admin/agents as admin -> Response."""
    admin.s.get("/admin/agents")
    return admin.s.post("/admin/agents", {"first_name": first, "last_name": last, "email": email})


def set_password_with_code(ctx, email, code, password=PASSWORD):
    s = client(ctx)
    r = s.get("/password/reset?email=" + urllib.parse.quote(email))
    assert r.status == 200, "GET /password/reset: %d" % r.status
    r = s.post("/password/reset", {"email": email, "code": code, "password": password,
                                   "confirm_password": password})
    return r


def make_agents(ctx, admin, names, log_in=True):
    """Active agents made through the admin page (POST /admin/agents, the
    8-digit code from the mail, /password/reset), logged in unless
    log_in=False.  names: [(first, last)].  The mails are awaited together."""
    mark = ctx.mail_mark()
    made = []
    for first, last in names:
        email = ctx.unique_email("agent")
        r = create_agent_form(ctx, admin, first, last, email)
        assert r.status == 303, "POST /admin/agents: %d %s" % (r.status, flash_or_error(r))
        made.append(User(email, PASSWORD, "agent", first, last, user_id(ctx, email)))
    mails = wait_mails(ctx, [(lambda e: lambda m: e in m.to)(u.email) for u in made], mark,
                       what="agent invitation mails")
    for u, m in zip(made, mails):
        r = set_password_with_code(ctx, u.email, code_from(m))
        assert r.status == 303, "POST /password/reset with the invitation code: %d %s" % (
            r.status, flash_or_error(r))
        if log_in:
            u.s = login(ctx, u.email, PASSWORD)
    return made


def make_agent(ctx, admin, first="Gus", last=None):
    last = last or "Agent" + unique_word("")[:5].capitalize()
    return make_agents(ctx, admin, [(first, last)])[0]


def flash_or_error(r):
    """The flash, form errors or error message of a page, for failure messages."""
    t = r.text
    out = re.findall(r'class="(?:flash[^"]*|form-error|field-error|error-message)"[^>]*>(?:<p>)?([^<]*)', t)
    return "; ".join(html.unescape(x.strip()) for x in out if x.strip())[:300]


def strip_rid(text):
    return RID_RE.sub("RID", text)


# ------------------------------------------------------------------ mail

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


def mails_since(ctx, since, pred=lambda m: True):
    return [m for m in ctx.mails() if m.name not in since and pred(m)]


def wait_outbox_flushed(ctx, where, timeout=15):
    """Wait until no outbox row matching `where` is pending (all sent)."""
    def done():
        return ctx.sql_value("SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND (%s)" % where) == "0"
    ctx.wait_until(done, timeout, "outbox rows (%s) to be sent" % where, 0.1)
    bad = ctx.sql("SELECT id, status, last_error FROM outbox WHERE status <> 'sent' AND (%s)" % where)
    assert not bad, "outbox rows not sent: %s" % bad


def outbox(ctx, ticket_id, kind=None, to=None):
    q = "SELECT id, kind, to_addr, subject, status FROM outbox WHERE ticket_id = %d" % ticket_id
    if kind:
        q += " AND kind = %s" % sql_str(kind)
    if to:
        q += " AND to_addr = %s" % sql_str(to)
    return ctx.sql(q + " ORDER BY id")


def mail_about(ticket_id, to):
    """Predicate: a mail to `to` naming ticket #id in its subject or body."""
    tag = "#%d" % ticket_id
    rx = re.compile(re.escape(tag) + r"(?!\d)")
    return lambda m: to in m.to and (rx.search(m.subject) or rx.search(m.body))


def check_ticket_mail(ctx, m, ticket_id, to):
    """Every mail has Date, Message-ID, From, To, Subject headers and the
    ticket link built from the configured base URL (README "Mail")."""
    import email.utils
    for h in ("Date", "Message-ID", "From", "To", "Subject"):
        assert m.msg.get(h), "mail %r lacks a %s header" % (m.subject, h)
    assert email.utils.parsedate_to_datetime(str(m.msg["Date"])) is not None
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", str(m.msg["Message-ID"]).strip()), \
        "Message-ID %r" % m.msg["Message-ID"]
    assert to in m.to, "mail To %r, want %s" % (m.to, to)
    link = "%s/tickets/%d" % (ctx.base_url.rstrip("/"), ticket_id)
    assert re.search(re.escape(link) + r"(?!\d)", m.body), \
        "mail %r lacks the ticket link %s: %r" % (m.subject, link, m.body[:300])

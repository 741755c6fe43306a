"""Helpers of the ticket tests (stdlib only); the account helpers are
helpers.py's, bound here to this module's password and source address.

    u = register_customer(ctx)            # logged-in customer (helpers.User, u.s its Client)
    a = make_admin(ctx)                   # ccr-admin create-admin + login
    [g] = new_agents(ctx, admin, [(first, last)])   # POST /admin/agents, code
                                          # from the mail, /password/reset, login
    s = signed_in(ctx, email, password)   # Client with its csrf token known
    login_refused(ctx, email, password, 401)   # asserts that status
    m, = helpers.wait_mails(ctx, [pred], since=ctx.mail_mark())

Every Client made here talks to nginx from one loopback source address of
this module (addr(ctx), one per Context), so the per-address login throttle
(20 failures in 15 minutes) is not shared with other test modules that make
failed logins from 127.0.0.1.
"""
import random
import re
import time

import helpers
from helpers import sql_str

PASSWORD = "correct horse battery staple"
RID_RE = re.compile(r"[0-9a-f]{32}")


def addr(ctx):
    """The calling test module's source address, one per module and Context:
    the per-address limits (the admins' mail, the throttles) one module
    spends are not another's (with one address for the whole run, the
    modules before test_tickets used up its admin mails)."""
    per = ctx.__dict__.setdefault("_tickets_addrs", {})
    key = getattr(ctx, "module", None)
    if key not in per:
        per[key] = helpers.fresh_addr()
    return per[key]


def client(ctx):
    """A fresh cookie jar talking from this module's source address."""
    return helpers.Client(ctx.port, addr(ctx))


def unique_word(prefix="zq"):
    """A letters-only token (FULLTEXT-searchable, no digits)."""
    return prefix + "".join(random.choice("bcdfghjklmnpqrstvwxz") for _ in range(10))


def signed_in(ctx, email, password):
    """A Client logged in as email (helpers.logged_in, then GET /tickets)."""
    return helpers.logged_in(ctx, email, password, client(ctx), then="/tickets")


def login_refused(ctx, email, password, status):
    """POST /login from a fresh client of this module must answer status."""
    r = helpers.login(client(ctx), email, password)
    assert r.status == status, "POST /login as %s: %d (want %d) %s" % (
        email, r.status, status, helpers.page_errors(r))


def register_customer(ctx, first="Cara", last=None):
    last = last or "Cust" + unique_word("")[:6].capitalize()
    return helpers.register(ctx, password=PASSWORD, first=first, last=last, client=client(ctx),
                            prefix="cust", then="/tickets")


def make_admin(ctx, first="Ada", last=None):
    last = last or "Admin" + unique_word("")[:5].capitalize()
    u = helpers.create_admin(ctx, password=PASSWORD, first=first, last=last)
    u.s = signed_in(ctx, u.email, PASSWORD)
    return u


def request_agent(ctx, first="Petra", last=None):
    """POST /register role=agent: a pending request (its User's s is not logged in)."""
    last = last or "Pending" + unique_word("")[:5].capitalize()
    return helpers.register(ctx, password=PASSWORD, first=first, last=last, role="agent",
                            client=client(ctx), prefix="req")


def world(ctx, w):
    """A test module's fixture cache w (a dict): emptied when the suite's
    context (a new stack) changes, so no fixture outlives its database."""
    if w.get("_ctx") is not ctx:
        w.clear()
        w["_ctx"] = ctx
    return w


def world_admin(ctx, w, first, last):
    """The module's admin, made once per context."""
    world(ctx, w)
    if "admin" not in w:
        w["admin"] = make_admin(ctx, first, last)
    return w["admin"]


def set_password_with_code(ctx, email, code, password=PASSWORD):
    return helpers.set_password(ctx, email, code, password, client(ctx))


def new_agents(ctx, admin, names, log_in=True):
    """Active agents made through the admin page (helpers.make_agents) by the
    User admin, from this module's address.  names: [(first, last)]."""
    return helpers.make_agents(ctx, admin.s, names, PASSWORD, log_in,
                               client=lambda: client(ctx))


def strip_rid(text):
    return RID_RE.sub("RID", text)


# ------------------------------------------------------------------ mail

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


def wait_indexed(ctx, timeout=10):
    """Wait until the search indexer has taken every queued change
    (search_queue empty): a search made after it sees every change made
    before it (README "Search")."""
    t_end = time.monotonic() + timeout
    while True:
        n = int(ctx.sql_value("SELECT COUNT(*) FROM search_queue"))
        if n == 0:
            return
        if time.monotonic() > t_end:
            raise AssertionError("the search indexer left %d queued changes for %ds" % (n, timeout))
        time.sleep(0.05)

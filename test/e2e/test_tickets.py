"""Tickets: raise, lists, detail, conversation, assignment, life cycle,
auto-close, the agents admin page, their mail, and hostile input.

Users are made once per run (module cache W, rebuilt when the Context
changes) and their sessions reused; every test makes the tickets it needs, so
tests can run alone (-k) and in any order.  Mail is read from the sink's
Maildir; "no mail was sent" is read from the outbox once it is flushed.
"""
import html
import html.parser
import os
import re
import threading
import urllib.parse

import helpers
import tickets_util as tu

W = {}
NOT_THERE = "N/A"


# ------------------------------------------------------------------ fixtures

def world(ctx):
    return tu.world(ctx, W)


def admin(ctx):
    return tu.world_admin(ctx, W, "Ada", "Root")


def customer(ctx, key):
    """c1: the main customer; c2: another customer who never raises a ticket
    (the IDOR intruder and the empty list); others on demand."""
    w = world(ctx)
    if key not in w:
        w[key] = tu.register_customer(ctx, "Cara", key.upper() + "Cust")
    return w[key]


def agents(ctx):
    """a1: the main agent; a2: an agent never assigned the tickets under test
    (the IDOR intruder); a3: a second agent for re-assignment."""
    w = world(ctx)
    if "a1" not in w:
        made = tu.new_agents(ctx, admin(ctx), [("Alma", "Agentone"), ("Bruno", "Agenttwo"),
                                                ("Cleo", "Agentthree")])
        w["a1"], w["a2"], w["a3"] = made
    return w["a1"], w["a2"], w["a3"]


def path_of(location):
    u = urllib.parse.urlsplit(location or "")
    return u.path, urllib.parse.parse_qs(u.query, keep_blank_values=True), u.fragment


def raise_ticket(user, subject=None, description=None, priority=None, extra=()):
    subject = subject if subject is not None else "Printer %s jams" % tu.unique_word("")
    description = description if description is not None else "It jams on every page."
    form = [("subject", subject), ("description", description)]
    if priority is not None:
        form.append(("priority", priority))
    form += list(extra)
    r = user.s.post("/tickets", form)
    assert r.status == 303, "POST /tickets as %s: %d %s" % (user, r.status, helpers.page_errors(r))
    p, _q, _f = path_of(r.location)
    m = re.fullmatch(r"/tickets/(\d+)", p)
    assert m, "POST /tickets redirected to %r, want /tickets/{id}" % r.location
    return int(m.group(1))


def raw_form(pairs):
    """A form body with non-ASCII characters sent as raw UTF-8 bytes (a
    percent-encoded 20000-character multibyte text would exceed 64 KiB)."""
    enc = lambda v: "".join(urllib.parse.quote(ch, safe="") if ord(ch) < 128 else ch for ch in v)
    return "&".join("%s=%s" % (enc(k), enc(v)) for k, v in pairs).encode("utf-8")


def post_raw(user, path, pairs):
    pairs = list(pairs) + [("csrf_token", user.s.last_csrf)]
    return user.s.request("POST", path, body=raw_form(pairs),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})


def assign(ctx, tid, agent, expect=303):
    r = admin(ctx).s.post("/tickets/%d/assign" % tid, {"agent_id": str(agent.id)})
    assert r.status == expect, "assign #%d to %s: %d (want %d) %s" % (
        tid, agent, r.status, expect, helpers.page_errors(r))
    return r


def post_msg(user, tid, body):
    return user.s.post("/tickets/%d/messages" % tid, {"body": body})


def act(user, tid, action, form=None, expect=303):
    r = user.s.post("/tickets/%d/%s" % (tid, action), form or {})
    assert r.status == expect, "POST /tickets/%d/%s as %s: %d (want %d) %s" % (
        tid, action, user, r.status, expect, helpers.page_errors(r))
    return r


def open_resolved_closed(ctx, c, agent):
    """Three tickets of customer c: one open, one resolved and one closed
    (the last two handled by agent)."""
    t_open, t_res, t_closed = raise_ticket(c), raise_ticket(c), raise_ticket(c)
    for t in (t_res, t_closed):
        assign(ctx, t, agent)
    act(agent, t_res, "resolve")
    act(c, t_closed, "close")
    return t_open, t_res, t_closed


def row(ctx, tid):
    rows = ctx.sql("SELECT customer_id, IFNULL(agent_id, 0), status, priority, subject, "
                   "resolved_at IS NOT NULL, closed_at IS NOT NULL FROM tickets WHERE id = %d" % tid)
    assert rows, "no tickets row %d" % tid
    c, a, st, pr, subj, res, clo = rows[0]
    return {"customer_id": int(c), "agent_id": int(a), "status": st, "priority": pr,
            "subject": subj, "resolved_at": res == "1", "closed_at": clo == "1"}


def snapshot(ctx, tid):
    return {
        "ticket": ctx.sql("SELECT * FROM tickets WHERE id = %d" % tid),
        "messages": ctx.sql("SELECT * FROM messages WHERE ticket_id = %d ORDER BY id" % tid),
        "ratings": ctx.sql("SELECT * FROM ratings WHERE ticket_id = %d" % tid),
        "notices": ctx.sql("SELECT * FROM ticket_notices WHERE ticket_id = %d ORDER BY user_id" % tid),
        "outbox": ctx.sql("SELECT COUNT(*) FROM outbox WHERE ticket_id = %d" % tid),
    }


def missing_id(ctx):
    return int(ctx.sql_value("SELECT IFNULL(MAX(id), 0) FROM tickets")) + 1000000


def body_key(r):
    """A response body without its request ids, for 'exactly like' comparisons."""
    return tu.strip_rid(r.text)


def list_rows(text):
    """[(id, row_html)] of a ticket list page, in page order."""
    m = re.search(r"<tbody>(.*?)</tbody>", text, re.S)
    assert m, "no <tbody> in the ticket list"
    out = []
    for tr in re.findall(r"<tr\b[^>]*>(.*?)</tr>", m.group(1), re.S):
        i = re.search(r'href="/tickets/(\d+)"', tr)
        assert i, "a ticket row without a link to its ticket: %r" % tr[:300]
        out.append((int(i.group(1)), tr))
    return out


def list_ids(text):
    return [i for i, _ in list_rows(text)]


def next_link(text):
    m = re.search(r'<a\b[^>]*\brel="next"[^>]*>', text)
    if not m:
        return None
    h = re.search(r'\bhref="([^"]*)"', m.group(0))
    return html.unescape(h.group(1)) if h else None


def walk(sess, url, max_pages=400):
    """Follow the next links from url; returns (ids in order, pages)."""
    ids, pages = [], 0
    while url:
        r = sess.get(url)
        assert r.status == 200, "GET %s: %d" % (url, r.status)
        page = list_ids(r.text)
        assert len(page) <= 25, "%s: %d rows on one page, want at most 25" % (url, len(page))
        nxt = next_link(r.text)
        if nxt:
            assert len(page) == 25, "%s: a next link under a page of %d rows" % (url, len(page))
            assert "after=" in nxt, "next link %r has no after= cursor" % nxt
            assert "page=" not in nxt and "offset" not in nxt, "next link %r is not keyset" % nxt
        ids += page
        url = nxt
        pages += 1
        assert pages <= max_pages, "more than %d pages from %s" % (max_pages, url)
    return ids, pages


def db_ids(ctx, where):
    return [int(r[0]) for r in ctx.sql("SELECT id FROM tickets WHERE %s "
                                       "ORDER BY last_activity DESC, id DESC" % where)]


def page_text(r):
    """Visible text of a page (tags removed, entities decoded, spaces squeezed)."""
    t = re.sub(r"<(script|style)\b.*?</\1>", " ", r.text, flags=re.S)
    t = re.sub(r"<[^>]+>", " ", t)
    return " ".join(html.unescape(t).split())


def flash_after(sess, r, want):
    """Follow r's redirect; the page must show the flash `want`."""
    page = sess.follow(r)
    assert page.status == 200, "GET %s after the redirect: %d" % (r.location, page.status)
    assert want in page_text(page), "flash %r not shown on %s (flash/errors: %s)" % (
        want, r.location, helpers.page_errors(page))
    return page


def thread_ids(text):
    return [int(x) for x in re.findall(r'<li\b[^>]*\bid="m(\d+)"', text)]


def msg_ids(ctx, tid, after=0):
    return [int(r[0]) for r in ctx.sql("SELECT id FROM messages WHERE ticket_id = %d AND id > %d "
                                       "ORDER BY id" % (tid, after))]


# ------------------------------------------------------------------ raise a ticket

def test_new_ticket_form_customer_only(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    r = c.s.get("/tickets/new")
    assert r.status == 200, "customer GET /tickets/new: %d" % r.status
    for field in ("subject", "description", "priority"):
        assert re.search(r'name="%s"' % field, r.text), "no %s field on /tickets/new" % field
    assert re.search(r'<form[^>]*action="/tickets"', r.text), "the form does not post to /tickets"
    for u in (a1, admin(ctx)):
        r = u.s.get("/tickets/new")
        assert r.status == 403, "%s GET /tickets/new: %d, want 403" % (u.role, r.status)
    r = tu.client(ctx).get("/tickets/new")
    p, q, _ = path_of(r.location)
    assert r.status == 303 and p == "/login" and q.get("next") == ["/tickets/new"], \
        "anonymous GET /tickets/new: %d %r, want 303 /login?next=/tickets/new" % (r.status, r.location)


def test_raise_ticket_flash_default_priority_and_mails(ctx):
    c = customer(ctx, "c1")
    adm = admin(ctx)
    mark = ctx.mail_mark()
    subject = "Cannot log in %s" % tu.unique_word("")
    r = c.s.post("/tickets", {"subject": subject, "description": "The login page spins forever."})
    assert r.status == 303, "POST /tickets: %d %s" % (r.status, helpers.page_errors(r))
    p, _q, _f = path_of(r.location)
    m = re.fullmatch(r"/tickets/(\d+)", p)
    assert m, "redirect to %r, want /tickets/{id}" % r.location
    tid = int(m.group(1))
    page = flash_after(c.s, r, "Ticket created")
    assert subject in page.text, "the new ticket's page does not show its subject"
    t = row(ctx, tid)
    assert t["priority"] == "normal", "default priority %r, want normal" % t["priority"]
    assert t["status"] == "open" and t["agent_id"] == 0 and t["customer_id"] == c.id, t
    admins = [r_[0] for r_ in ctx.sql("SELECT email FROM users WHERE role = 'admin' "
                                      "AND state = 'active' ORDER BY id")]
    assert adm.email in admins
    preds = [tu.mail_about(tid, c.email)] + [tu.mail_about(tid, a) for a in admins]
    got = helpers.wait_mails(ctx, preds, mark, what="ticket #%d created: customer + %d admins" % (tid, len(admins)))
    assert "#%d" % tid in got[0].subject + got[0].body
    for m, to in zip(got, [c.email] + admins):
        tu.check_ticket_mail(ctx, m, tid, to)


def test_raise_ticket_validation(ctx):
    c = customer(ctx, "c1")
    count = lambda: int(ctx.sql_value("SELECT COUNT(*) FROM tickets WHERE customer_id = %d" % c.id))
    before = count()
    bad = [
        ({"subject": "Empty", "description": ""}, "Query cannot be empty"),
        ({"subject": "Blank", "description": "  \n\t  "}, "Query cannot be empty"),
        ({"subject": "Too long", "description": "d" * 20001}, None),
        ({"subject": "s" * 201, "description": "fine"}, None),
        ({"subject": "\u00e9" * 201, "description": "fine"}, None),
        ({"subject": "", "description": "fine"}, None),
        ({"subject": "Bad priority", "description": "fine", "priority": "critical"}, None),
        ({"subject": "Bad priority", "description": "fine", "priority": "NORMAL"}, None),
    ]
    for form, msg in bad:
        r = c.s.post("/tickets", form)
        shown = {k: (v[:20] + "..." if len(v) > 20 else v) for k, v in form.items()}
        assert r.status == 422, "POST /tickets %s: %d, want 422" % (shown, r.status)
        if msg:
            assert msg in page_text(r), "POST /tickets %s: no %r in the page (%s)" % (
                shown, msg, helpers.page_errors(r))
    assert count() == before, "a refused ticket was stored"
    # the form keeps what was typed
    r = c.s.post("/tickets", {"subject": "Kept subject zqkept", "description": ""})
    assert "Kept subject zqkept" in r.text, "the 422 form lost the subject typed"
    # limits are characters, not bytes
    r = post_raw(c, "/tickets", [("subject", "Multibyte too long"), ("description", "\u20ac" * 20001)])
    assert r.status == 422, "a 20001-character multibyte description: %d, want 422" % r.status
    assert count() == before, "a refused ticket was stored"
    ok = [("s" * 200, "d"), ("\u00e9" * 200, "d"), ("\U0001F600" * 200, "d"),
          ("Long description", "d" * 20000), ("Multibyte description", "\u20ac" * 20000)]
    for subject, desc in ok:
        if len(desc) > 10000:
            r = post_raw(c, "/tickets", [("subject", subject), ("description", desc)])
            assert r.status == 303, "a %d-character description: %d %s" % (
                len(desc), r.status, helpers.page_errors(r))
            tid = int(path_of(r.location)[0].rsplit("/", 1)[1])
        else:
            tid = raise_ticket(c, subject, desc)
        got = ctx.sql("SELECT CHAR_LENGTH(subject), CHAR_LENGTH(description) FROM tickets "
                      "WHERE id = %d" % tid)[0]
        assert got == [str(len(subject)), str(len(desc))], \
            "ticket %d stored %s characters, sent %d/%d" % (tid, got, len(subject), len(desc))
    for prio in ("low", "normal", "high", "urgent"):
        tid = raise_ticket(c, "Priority %s" % prio, "x", priority=prio)
        assert row(ctx, tid)["priority"] == prio


def test_raise_ticket_subject_newline_does_not_break_mail(ctx):
    c = customer(ctx, "c1")
    evil = ctx.unique_email("evil")
    mark = ctx.mail_mark()
    r = c.s.post("/tickets", {"subject": "First line\nBcc: %s" % evil, "description": "x"})
    if r.status == 422:
        return   # refusing a multi-line subject is fine
    assert r.status == 303, "POST /tickets with a newline in the subject: %d" % r.status
    tid = int(path_of(r.location)[0].rsplit("/", 1)[1])
    m, = helpers.wait_mails(ctx, [tu.mail_about(tid, c.email)], mark, what="ticket created mail")
    assert not mails_to(ctx, mark, evil), "mail went to an address typed in the subject"
    first = m.body.lstrip().split("\n", 1)[0]
    assert "Bcc" in m.subject and not first.startswith("Bcc"), \
        "a newline in the subject splits the mail: Subject %r, body starts %r" % (m.subject, first)


def mails_to(ctx, mark, addr):
    return tu.mails_since(ctx, mark, lambda m: addr in m.to or addr in str(m.msg.get("Cc", "")))


def test_raise_ticket_ignores_mass_assignment(ctx):
    c, other = customer(ctx, "c1"), customer(ctx, "c2")
    a1, _a2, _a3 = agents(ctx)
    tid = raise_ticket(c, "Mass assignment zqmass", "desc", extra=[
        ("customer_id", str(other.id)), ("agent_id", str(a1.id)), ("status", "closed"),
        ("id", "1"), ("created_at", "2001-01-01 00:00:00"), ("resolved_at", "2001-01-01"),
        ("last_activity", "2001-01-01"), ("role", "admin")])
    t = row(ctx, tid)
    assert t["customer_id"] == c.id, "customer_id taken from the form: %s" % t
    assert t["agent_id"] == 0, "agent_id taken from the form: %s" % t
    assert t["status"] == "open", "status taken from the form: %s" % t
    assert not t["resolved_at"] and not t["closed_at"], t
    created = ctx.sql_value("SELECT created_at > NOW() - INTERVAL 1 HOUR FROM tickets WHERE id = %d" % tid)
    assert created == "1", "created_at taken from the form"


# ------------------------------------------------------------------ lists

def test_list_customer_sees_only_own_and_empty_state(ctx):
    c, other = customer(ctx, "c1"), customer(ctx, "c2")
    raise_ticket(c)
    r = other.s.get("/tickets")
    assert r.status == 200, "GET /tickets: %d" % r.status
    assert not list_ids(r.text), "a customer with no tickets sees %s" % list_ids(r.text)
    assert "You are yet to raise a ticket" in page_text(r), "empty state missing for a new customer"
    ids, _ = walk(c.s, "/tickets")
    assert ids == db_ids(ctx, "customer_id = %d" % c.id), \
        "customer list %s != their tickets %s" % (ids[:10], db_ids(ctx, "customer_id = %d" % c.id)[:10])
    r = c.s.get("/tickets")
    assert "You are yet to raise a ticket" not in page_text(r)
    assert "Customer" not in re.findall(r"<th\b[^>]*>([^<]*)</th>", r.text), \
        "a customer's list has a Customer column"


def test_list_agent_sees_only_assigned(ctx):
    c = customer(ctx, "c1")
    a1, a2, _a3 = agents(ctx)
    t1 = raise_ticket(c)
    t2 = raise_ticket(c)
    assign(ctx, t1, a1)
    ids, _ = walk(a1.s, "/tickets")
    assert t1 in ids and t2 not in ids, "agent list %s: want #%d, not #%d" % (ids, t1, t2)
    assert ids == db_ids(ctx, "agent_id = %d" % a1.id), "agent list != tickets assigned to them"
    ids2, _ = walk(a2.s, "/tickets")
    assert ids2 == db_ids(ctx, "agent_id = %d" % a2.id), "other agent list != their tickets"
    assert t1 not in ids2
    ids4, _ = walk(a2.s, "/tickets?assigned=%d" % a1.id)
    assert ids4 == ids2, "an agent's ?assigned=<other agent> showed another agent's tickets"
    ids5, _ = walk(customer(ctx, "c2").s, "/tickets?assigned=%d" % a1.id)
    assert ids5 == db_ids(ctx, "customer_id = %d" % customer(ctx, "c2").id), \
        "a customer's ?assigned=<agent> widened the list"
    # the admin's per-agent filter
    ids3, _ = walk(admin(ctx).s, "/tickets?assigned=%d" % a1.id)
    assert ids3 == db_ids(ctx, "agent_id = %d" % a1.id), "admin ?assigned=<agent> != that agent's tickets"
    r = a1.s.get("/tickets")
    rows = dict(list_rows(r.text))
    assert c.name in rows[t1], "the agent's list does not show the customer's name"


def test_list_admin_sees_all(ctx):
    c, c3 = customer(ctx, "c1"), customer(ctx, "c3")
    mine = [raise_ticket(c), raise_ticket(c3)]
    ids, pages = walk(admin(ctx).s, "/tickets")
    want = db_ids(ctx, "1 = 1")
    assert len(ids) == len(set(ids)), "a ticket shown twice in the admin list"
    assert ids == want, "admin list (%d over %d pages) != every ticket (%d); missing %s, extra %s" % (
        len(ids), pages, len(want), sorted(set(want) - set(ids))[:10], sorted(set(ids) - set(want))[:10])
    assert ids[:2] == mine[::-1], "newest activity first: %s, want %s on top" % (ids[:2], mine[::-1])
    r = admin(ctx).s.get("/tickets")
    rows = dict(list_rows(r.text))
    assert c3.name in rows[mine[1]], "the admin list does not show the customer"


class FormScan(html.parser.HTMLParser):
    """The forms, controls and submit buttons of a page, as a browser
    without JavaScript sees them (form= and formaction= included)."""

    def __init__(self):
        super().__init__()
        self.forms, self.selects, self.buttons = {}, [], []
        self._form = self._select = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = a.get("id") or "form%d" % len(self.forms)
            self.forms[self._form] = {"attrs": a, "fields": []}
        elif tag == "input" and a.get("type") == "hidden":
            owner = a.get("form") or self._form
            if owner in self.forms:
                self.forms[owner]["fields"].append((a.get("name"), a.get("value", "")))
        elif tag == "select":
            self._select = {"attrs": a, "form": a.get("form") or self._form, "options": []}
            self.selects.append(self._select)
        elif tag == "option" and self._select is not None:
            self._select["options"].append(a.get("value"))
        elif tag == "button":
            self.buttons.append(dict(a, _form=a.get("form") or self._form))

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


def test_unassigned_queue_one_picker_assigns_without_javascript(ctx):
    """The unassigned queue carries one agent select for the whole page
    (not one per row: 85 KB for 25 rows and 50 agents) and a per-row Assign
    button that submits it to that ticket's POST /tickets/{id}/assign
    (formaction): the form works as plain HTML."""
    c = customer(ctx, "c1")
    a1, _a2, a3 = agents(ctx)
    adm = admin(ctx)
    t1, t2 = raise_ticket(c), raise_ticket(c)
    r = adm.s.get("/tickets?assigned=none")
    assert r.status == 200
    listed = list_ids(r.text)
    assert t1 in listed and t2 in listed, "the new tickets are not in the queue: %s" % listed[:8]
    scan = FormScan()
    scan.feed(r.text)
    pickers = [s for s in scan.selects if s["attrs"].get("name") == "agent_id"]
    assert len(pickers) == 1, "%d agent selects on a queue of %d rows, want one" % (
        len(pickers), len(listed))
    sel = pickers[0]
    form = scan.forms.get(sel["form"])
    assert form, "the agent select belongs to no form"
    assert form["attrs"].get("method", "").lower() == "post"
    assert str(a1.id) in sel["options"] and str(a3.id) in sel["options"], sel["options"]
    active = int(ctx.sql_value("SELECT COUNT(*) FROM users WHERE role = 'agent' AND state = 'active'"))
    assert len(sel["options"]) == min(active, 500) + 1, "options: %d for %d active agents" % (
        len(sel["options"]), active)
    status_opts = [s for s in scan.selects if s["attrs"].get("name") == "status"][0]["options"]
    assert r.text.count("<option") == len(sel["options"]) + len(status_opts), \
        "agent options repeated per row"
    buttons = {b.get("formaction"): b for b in scan.buttons if b["_form"] == sel["form"]}
    for tid in listed:
        assert "/tickets/%d/assign" % tid in buttons, "ticket #%d has no Assign button" % tid
    b = buttons["/tickets/%d/assign" % t2]
    assert b.get("type", "submit") == "submit"
    assert b.get("data-confirm") == "Assign ticket #%d to the chosen agent?" % t2
    # submit it as a browser without JavaScript does: the form's fields, the
    # chosen agent, to the button's formaction
    fields = dict(form["fields"])
    assert fields.get("csrf_token") and fields.get("next", "").startswith("/tickets?")
    fields["agent_id"] = str(a3.id)
    r2 = adm.s.post(b["formaction"], fields, csrf=None)
    assert r2.status == 303, "POST %s: %d %s" % (b["formaction"], r2.status, helpers.page_errors(r2))
    assert path_of(r2.location)[0] == "/tickets" and \
        path_of(r2.location)[1].get("assigned") == ["none"], "went to %r, want back to the queue" % r2.location
    page = flash_after(adm.s, r2, "Agent assigned")
    assert row(ctx, t2)["agent_id"] == a3.id, "the button assigned another ticket or agent"
    assert row(ctx, t1)["agent_id"] == 0, "the other ticket of the shared form was assigned too"
    assert t2 not in list_ids(page.text) and t1 in list_ids(page.text)
    # no agent chosen: the server refuses (the select is required in the browser too)
    fields["agent_id"] = ""
    r3 = adm.s.post("/tickets/%d/assign" % t1, fields, csrf=None)
    assert r3.status == 422, "assign without an agent: %d" % r3.status
    assert row(ctx, t1)["agent_id"] == 0
    assert 'required' in re.search(r'<select[^>]*name="agent_id"[^>]*>', r.text).group(0)


def test_list_unassigned_queue_and_empty_state(ctx):
    c = customer(ctx, "c1")
    _a1, _a2, a3 = agents(ctx)
    adm = admin(ctx)
    t_open = raise_ticket(c)
    t_res = raise_ticket(c)
    assign(ctx, t_res, a3)
    act(a3, t_res, "resolve")
    ids, _ = walk(adm.s, "/tickets?assigned=none")
    want = db_ids(ctx, "agent_id IS NULL AND status = 'open'")
    assert ids == want, "unassigned queue %s != open unassigned tickets %s" % (ids[:8], want[:8])
    assert t_open in ids and t_res not in ids
    # assign everything waiting, then the queue is empty
    for tid in want:
        assign(ctx, tid, a3)
    r = adm.s.get("/tickets?assigned=none")
    assert r.status == 200
    assert not list_ids(r.text), "queue still lists %s" % list_ids(r.text)
    assert "There is nothing left to assign" in page_text(r), "empty unassigned queue message missing"
    t_new = raise_ticket(c)
    r = adm.s.get("/tickets?assigned=none")
    assert list_ids(r.text) == [t_new], "queue after a new ticket: %s, want [%d]" % (list_ids(r.text), t_new)
    assert "There is nothing left to assign" not in page_text(r)
    # the queue is not for customers or agents: they still see their own list
    ids, _ = walk(c.s, "/tickets?assigned=none")
    assert ids == db_ids(ctx, "customer_id = %d" % c.id), "customer ?assigned=none widened the list"
    ids, _ = walk(a3.s, "/tickets?assigned=none")
    assert ids == db_ids(ctx, "agent_id = %d" % a3.id), "agent ?assigned=none widened the list"


def test_list_status_filters_and_bad_status(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    t_open, t_res, t_closed = open_resolved_closed(ctx, c, a1)
    for st, t in (("open", t_open), ("resolved", t_res), ("closed", t_closed)):
        for u, scope in ((c, "customer_id = %d" % c.id), (a1, "agent_id = %d" % a1.id),
                         (admin(ctx), "1 = 1")):
            ids, _ = walk(u.s, "/tickets?status=" + st)
            want = db_ids(ctx, "%s AND status = '%s'" % (scope, st))
            assert ids == want, "%s ?status=%s: %s != %s" % (u.role, st, ids[:8], want[:8])
            if u is not a1 or t != t_open:
                assert t in ids, "%s ?status=%s lacks #%d" % (u.role, st, t)
    ids, _ = walk(c.s, "/tickets?status=all")
    assert ids == db_ids(ctx, "customer_id = %d" % c.id)
    ids, _ = walk(admin(ctx).s, "/tickets?assigned=none&status=all")
    assert ids == db_ids(ctx, "agent_id IS NULL"), "?assigned=none&status=all"
    for bad in ("pending", "OPEN", "x", "open,closed", "%27"):
        for u in (c, a1, admin(ctx)):
            r = u.s.get("/tickets?status=" + bad)
            assert r.status == 422, "%s GET /tickets?status=%s: %d, want 422" % (u.role, bad, r.status)


def test_list_search_q(ctx):
    c, c3 = customer(ctx, "c1"), customer(ctx, "c3")
    a1, a2, _a3 = agents(ctx)
    w_subj, w_desc, w_both = tu.unique_word("zs"), tu.unique_word("zd"), tu.unique_word("zb")
    t1 = raise_ticket(c, "Broken %s keyboard" % w_subj, "nothing special here")
    t2 = raise_ticket(c, "Another ticket", "The %s does not start" % w_desc)
    t3 = raise_ticket(c3, "Also %s here" % w_both, "and %s" % w_subj)   # another customer's
    t4 = raise_ticket(c, "Mine %s" % w_both, "x")
    assign(ctx, t1, a1)
    assign(ctx, t3, a2)
    cases = [
        (c, w_subj, [t1]), (c, w_desc, [t2]), (c, w_both, [t4]),
        (c3, w_subj, [t3]), (a1, w_subj, [t1]), (a2, w_subj, [t3]), (a1, w_desc, []),
        (admin(ctx), w_subj, [t3, t1]), (admin(ctx), w_both, [t4, t3]),
    ]
    tu.wait_indexed(ctx)
    for u, word, want in cases:
        r = u.s.get("/tickets?q=" + word)
        assert r.status == 200, "%s ?q=%s: %d" % (u.role, word, r.status)
        got = list_ids(r.text)
        assert got == want, "%s ?q=%s: %s, want %s" % (u.role, word, got, want)
        assert 'value="%s"' % word in r.text, "the search box does not keep q"
    r = admin(ctx).s.get("/tickets?assigned=none&q=" + w_desc)
    assert list_ids(r.text) == [t2], "admin unassigned search: %s" % list_ids(r.text)
    r = admin(ctx).s.get("/tickets?assigned=none&q=" + w_subj)
    assert list_ids(r.text) == [], "admin unassigned search found assigned tickets"
    act(c, t1, "close")
    tu.wait_indexed(ctx)
    r = c.s.get("/tickets?status=open&q=" + w_subj)
    assert list_ids(r.text) == [], "q with status=open found a closed ticket"
    r = c.s.get("/tickets?status=closed&q=" + w_subj)
    assert list_ids(r.text) == [t1], "q with status=closed: %s" % list_ids(r.text)
    r = c.s.get("/tickets?q=" + tu.unique_word("zn"))
    assert r.status == 200 and not list_ids(r.text)
    assert "You are yet to raise a ticket" not in page_text(r), \
        "a search with no match shows the no-tickets-at-all empty state"


def test_list_search_long_multibyte_q_keeps_valid_utf8(ctx):
    c = customer(ctx, "c1")
    for q in ("\u20ac" * 201, "a" + "\u20ac" * 250, "\U0001F600" * 201, "\u00e9" * 300):
        r = c.s.get("/tickets?q=" + urllib.parse.quote(q))
        assert r.status in (200, 422), "?q=<%d multibyte chars>: %d" % (len(q), r.status)
        try:
            r.body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise AssertionError("?q=<%d x U+%04X>: the page is not valid UTF-8 (%s): the search "
                                 "text was cut inside a character" % (len(q), ord(q[-1]), e))


def test_list_keyset_pagination_30(ctx):
    c = customer(ctx, "c4")
    made = [raise_ticket(c, "Page test %02d" % i, "x") for i in range(30)]
    r = c.s.get("/tickets")
    first = list_ids(r.text)
    assert len(first) == 25, "first page has %d rows, want 25" % len(first)
    nxt = next_link(r.text)
    assert nxt and "after=" in nxt, "no next link with after= on the first page (%r)" % nxt
    r2 = c.s.get(nxt)
    assert r2.status == 200, "GET %s: %d" % (nxt, r2.status)
    second = list_ids(r2.text)
    assert len(second) == 5, "second page has %d rows, want 5" % len(second)
    assert next_link(r2.text) is None, "a next link on the last page"
    both = first + second
    assert len(set(both)) == 30, "rows repeated across pages: %s" % both
    assert set(both) == set(made), "rows missing: %s" % sorted(set(made) - set(both))
    assert both == sorted(made, reverse=True), "not newest first: %s" % both
    # a status filter and a search keep their cursor in step
    ids, pages = walk(c.s, "/tickets?status=open")
    assert ids == both and pages == 2, "status=open pages: %d rows over %d pages" % (len(ids), pages)
    tu.wait_indexed(ctx)
    ids, pages = walk(c.s, "/tickets?q=Page")
    assert sorted(ids) == sorted(made) and len(ids) == 30, "search pages: %d rows" % len(ids)


def test_list_shows_na_for_unassigned(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    t_na, t_ag = raise_ticket(c), raise_ticket(c)
    assign(ctx, t_ag, a1)
    for u in (c, admin(ctx)):
        r = u.s.get("/tickets")
        rows = dict(list_rows(r.text))
        assert NOT_THERE in re.sub(r"<form\b.*?</form>", "", rows[t_na], flags=re.S), \
            "%s list: unassigned #%d does not show N/A" % (u.role, t_na)
        assert a1.name in rows[t_ag], "%s list: #%d does not show its agent %s" % (u.role, t_ag, a1.name)
        shown = re.sub(r"<form\b.*?</form>", "", rows[t_ag], flags=re.S)
        assert NOT_THERE not in shown, "%s list: assigned #%d shows N/A" % (u.role, t_ag)


# ------------------------------------------------------------------ EXPLAIN

TL_COLS = ("SELECT STRAIGHT_JOIN t.id, t.subject, t.status, t.priority, UNIX_TIMESTAMP(t.created_at), "
           "UNIX_TIMESTAMP(t.last_activity), CONCAT(c.first_name, ' ', c.last_name), "
           "CONCAT(a.first_name, ' ', a.last_name), t.customer_id, IFNULL(t.agent_id, 0), "
           "UNIX_TIMESTAMP(t.sla_due) FROM tickets t ")
TL_JOIN = "JOIN users c ON c.id = t.customer_id LEFT JOIN users a ON a.id = t.agent_id "


def _ix(name):
    return "FORCE INDEX (%s) " % name + TL_JOIN
TL_PAGE = (" AND (t.last_activity < FROM_UNIXTIME(?) OR (t.last_activity = FROM_UNIXTIME(?) AND t.id < ?))"
           " ORDER BY t.last_activity DESC, t.id DESC LIMIT ?")
TL_DUE_PAGE = (" AND t.sla_due < NOW() AND (t.sla_due > FROM_UNIXTIME(?) OR "
               "(t.sla_due = FROM_UNIXTIME(?) AND t.id > ?)) ORDER BY t.sla_due, t.id LIMIT ?")

# Copies of the list statements of fcgi/ticket.c (checked against it below);
# the value of each ? is named: cust, agent, status, word, ts, ts, id, limit.
LIST_SQL = {
    "Q_L_CUST": (TL_COLS + _ix("tickets_customer") + "WHERE t.customer_id = ?" + TL_PAGE, ["cust"]),
    "Q_L_CUST_ST": (TL_COLS + _ix("tickets_customer_status") + "WHERE t.customer_id = ? AND t.status = ?"
                    + TL_PAGE, ["cust", "status"]),
    "Q_L_AGENT": (TL_COLS + _ix("tickets_agent") + "WHERE t.agent_id = ?" + TL_PAGE, ["agent"]),
    "Q_L_AGENT_ST": (TL_COLS + _ix("tickets_agent_status") + "WHERE t.agent_id = ? AND t.status = ?"
                     + TL_PAGE, ["agent", "status"]),
    "Q_L_ALL": (TL_COLS + _ix("tickets_activity") + "WHERE 1 = 1" + TL_PAGE, []),
    "Q_L_ALL_ST": (TL_COLS + _ix("tickets_status") + "WHERE t.status = ?" + TL_PAGE, ["status"]),
    "Q_L_NONE": (TL_COLS + _ix("tickets_agent") + "WHERE t.agent_id IS NULL" + TL_PAGE, []),
    "Q_L_NONE_ST": (TL_COLS + _ix("tickets_agent_status") + "WHERE t.agent_id IS NULL AND t.status = ?"
                    + TL_PAGE, ["status"]),
    "Q_L_OVERDUE": (TL_COLS + _ix("tickets_sla_due") + "WHERE t.sla_due IS NOT NULL" + TL_DUE_PAGE, []),
    "Q_L_AGENT_OVERDUE": (TL_COLS + _ix("tickets_agent_sla") + "WHERE t.agent_id = ?" + TL_DUE_PAGE,
                          ["agent"]),
}


def c_list_statements(path):
    """{name: SQL with ?} of every Q_L_*/Q_S_* in ticket.c, macros expanded."""
    src = open(path, encoding="utf-8").read()
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    lit = r'"((?:[^"\\]|\\.)*)"'
    macros = {}
    for m in re.finditer(r"#define\s+(TL_\w+)\s*((?:.*\\\n)*.*)", src):
        # a macro may use one defined before it (TL_COLS: TL_FIELDS)
        macros[m.group(1)] = "".join(macros[name] if name else s
                                     for s, name in re.findall(lit + r"|\b(TL_\w+)\b", m.group(2)))
    out = {}
    for m in re.finditer(r"static\s+const\s+char\s+(Q_[LS]_\w+)\s*\[\]\s*=\s*(.*?);", src, re.S):
        parts = []
        for s, name in re.findall(lit + r"|\b(TL_\w+)\b", m.group(2)):
            parts.append(macros[name] if name else s)
        out[m.group(1)] = "".join(parts)
    return out


def fill(sql, names, vals):
    """Replace each ? in order with the literal of its named value."""
    seq = names + ["ts", "ts", "id", "limit"]
    parts = sql.split("?")
    assert len(parts) - 1 == len(seq), "%d placeholders, %d values" % (len(parts) - 1, len(seq))
    out = parts[0]
    for name, rest in zip(seq, parts[1:]):
        v = vals[name]
        out += (str(v) if isinstance(v, int) else helpers.sql_str(v)) + rest
    return out


def explain(ctx, sql):
    cols = ["id", "select_type", "table", "type", "possible_keys", "key", "key_len", "ref", "rows", "Extra"]
    sql = re.sub(r"^SET STATEMENT .*? FOR ", "", sql)   # a time limit, not part of the plan
    return [dict(zip(cols, r)) for r in ctx.sql("EXPLAIN " + sql)]


BULK_TICKETS = 60000


def bulk_load(ctx, tag):
    """A realistic volume (the optimizer's choices on a few dozen rows mean
    nothing): 60000 tickets of 200 customers and 25 agents, 80% closed,
    one in 7 unassigned, activity spread over years.  Returns the id ranges."""
    ctx.sql("INSERT INTO users (email, first_name, last_name, role, state, created_at, updated_at) "
            "SELECT CONCAT('bulk-', seq, '-%s@bulk.invalid'), 'Bulk', CONCAT('Customer', seq), "
            "'customer', 'deleted', NOW(), NOW() FROM seq_1_to_200" % tag)
    ctx.sql("INSERT INTO users (email, first_name, last_name, role, state, created_at, updated_at) "
            "SELECT CONCAT('bulkagent-', seq, '-%s@bulk.invalid'), 'Bulk', CONCAT('Agent', seq), "
            "'agent', 'disabled', NOW(), NOW() FROM seq_1_to_25" % tag)
    cmin, cmax = [int(x) for x in ctx.sql("SELECT MIN(id), MAX(id) FROM users WHERE email LIKE "
                                          "'bulk-%%-%s@bulk.invalid'" % tag)[0]]
    amin, amax = [int(x) for x in ctx.sql("SELECT MIN(id), MAX(id) FROM users WHERE email LIKE "
                                          "'bulkagent-%%-%s@bulk.invalid'" % tag)[0]]
    assert cmax - cmin == 199 and amax - amin == 24, "bulk user ids are not contiguous"
    before = int(ctx.sql_value("SELECT IFNULL(MAX(id), 0) FROM tickets"))
    ctx.sql("INSERT INTO tickets (customer_id, agent_id, subject, description, priority, status, "
            "created_at, last_activity, resolved_at, closed_at) "
            "SELECT %d + seq %% 200, IF(seq %% 7 = 0, NULL, %d + seq %% 25), "
            "CONCAT('Bulk subject ', seq, IF(seq %% 97 = 0, ' bulkneedle', '')), "
            "'Bulk description of the problem', ELT(1 + seq %% 4, 'low','normal','high','urgent'), "
            "ELT(1 + LEAST(seq %% 10, 2), 'open', 'resolved', 'closed'), "
            "'2015-01-01' + INTERVAL seq * 37 MINUTE, '2015-01-01' + INTERVAL seq * 37 + seq %% 5 MINUTE, "
            "NULL, NULL FROM seq_1_to_%d" % (cmin, amin, BULK_TICKETS))
    # open tickets have a service-level due time (schema 011)
    ctx.sql("UPDATE tickets SET sla_due = created_at + INTERVAL 1 DAY "
            "WHERE id > %d AND status = 'open'" % before)
    ctx.sql("ANALYZE TABLE tickets, users")
    return before, (cmin, cmax), (amin, amax)


def bulk_remove(ctx, before, cr, ar):
    ctx.sql("DELETE FROM tickets WHERE id > %d AND customer_id BETWEEN %d AND %d" % (before, cr[0], cr[1]))
    ctx.sql("DELETE FROM users WHERE id BETWEEN %d AND %d OR id BETWEEN %d AND %d" % (cr + ar))
    ctx.sql("ANALYZE TABLE tickets, users")


def test_explain_list_queries_use_an_index(ctx):
    # 1. the copies above are the statements ccrd runs
    in_c = c_list_statements(os.path.join(ctx.repo, "fcgi", "ticket.c"))
    assert in_c, "no Q_L_*/Q_S_* statements found in fcgi/ticket.c"
    norm = lambda s: " ".join(s.split())
    assert set(in_c) == set(LIST_SQL), "list statements in ticket.c %s != tested %s" % (
        sorted(in_c), sorted(LIST_SQL))
    for name, (sql, _n) in LIST_SQL.items():
        assert norm(in_c[name]) == norm(sql), \
            "%s in fcgi/ticket.c changed; update its copy in test_tickets.py:\n%s" % (name, in_c[name])
    # 2. EXPLAIN each at a realistic volume, first page and a later page
    tag = os.urandom(3).hex()
    before, cr, ar = bulk_load(ctx, tag)
    problems = {}    # "Q_X status=..." -> set of findings
    try:
        for page, (ts, cid) in (("first page", (2147483647, 1 << 62)),
                                ("later page", (1530000000, before + BULK_TICKETS // 3))):
            for status in ("open", "closed"):
                vals = {"cust": cr[0] + 17, "agent": ar[0] + 3, "status": status, "word": "bulkneedle",
                        "like": "%bulkneedle%",
                        "sfilter": "all" if status == "closed" else status,
                        "ts": ts, "id": cid, "limit": 26}
                for name, (sql, names) in LIST_SQL.items():
                    has_status = "status" in names or "sfilter" in names
                    if status == "closed" and not has_status:
                        continue   # no status parameter: explained once per page
                    v = vals
                    if "OVERDUE" in name and page == "first page":
                        v = dict(vals, ts=0, id=0)   # the due-time cursor starts low
                    plan = explain(ctx, fill(sql, names, v))
                    key = name + (" status=%s" % (vals["sfilter"] if "sfilter" in names else status)
                                  if has_status else "")
                    found = problems.setdefault(key, set())
                    t = [p for p in plan if p["table"] == "t"]
                    if len(t) != 1:
                        found.add("no single tickets row in %s" % plan)
                        continue
                    t = t[0]
                    for p in plan:
                        tbl = "tickets" if p["table"] == "t" else "users " + p["table"]
                        if p["type"] == "ALL":
                            found.add("full scan of %s" % tbl)
                        if "Using temporary" in p["Extra"]:
                            found.add("temporary table")
                    if name.startswith("Q_S_"):
                        if t["type"] != "fulltext":
                            found.add("tickets type=%s key=%s, not fulltext" % (t["type"], t["key"]))
                    else:
                        if t["key"] in ("", "NULL"):
                            found.add("no index on tickets")
                        if any("filesort" in p["Extra"] for p in plan):
                            found.add("filesort (%s first, tickets via %s)" % (
                                "tickets" if plan[0]["table"] == "t" else "users " + plan[0]["table"],
                                t["key"]))
    finally:
        bulk_remove(ctx, before, cr, ar)
    bad = {k: v for k, v in problems.items() if v}
    assert not bad, "%d of %d list plans not served by an index at %d tickets: %s" % (
        len(bad), len(problems), BULK_TICKETS,
        "; ".join("%s: %s" % (k, ", ".join(sorted(v))) for k, v in sorted(bad.items())))


test_explain_list_queries_use_an_index.timeout = 180


# ------------------------------------------------------------------ detail

def test_detail_visible_to_customer_agent_and_admin(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    subject = "Detail %s" % tu.unique_word("")
    desc = "Line one & <two>\nline three"
    tid = raise_ticket(c, subject, desc, priority="high")
    for u in (c, admin(ctx)):
        r = u.s.get("/tickets/%d" % tid)
        assert r.status == 200, "%s GET /tickets/%d: %d" % (u.role, tid, r.status)
        assert NOT_THERE in page_text(r), "%s: unassigned ticket does not show N/A" % u.role
    r = a1.s.get("/tickets/%d" % tid)
    assert r.status == 404, "agent sees a ticket not assigned to them: %d" % r.status
    assign(ctx, tid, a1)
    bodies = ["first from the customer", "reply from the agent", "second from the customer"]
    for u, b in zip((c, a1, c), bodies):
        r = post_msg(u, tid, b)
        assert r.status == 303, "POST message as %s: %d %s" % (u.role, r.status, helpers.page_errors(r))
    created = ctx.sql_value("SELECT DATE(created_at) FROM tickets WHERE id = %d" % tid)
    for u in (c, a1, admin(ctx)):
        r = u.s.get("/tickets/%d" % tid)
        assert r.status == 200, "%s GET /tickets/%d: %d" % (u.role, tid, r.status)
        text = page_text(r)
        for want in (subject, "Line one & <two>", "line three", "open", "high", a1.name):
            assert want in text, "%s: ticket page lacks %r" % (u.role, want)
        assert created in r.text, "%s: ticket page does not show the created time %s" % (u.role, created)
        assert "&lt;two&gt;" in r.text and "<two>" not in r.text, "the description is not escaped"
        assert "#%d" % tid in text, "the ticket number #%d is not shown" % tid
        assert NOT_THERE not in text, "%s: an assigned ticket shows N/A" % u.role
        ids = thread_ids(r.text)
        assert ids == msg_ids(ctx, tid), "%s: conversation %s, want oldest first %s" % (
            u.role, ids, msg_ids(ctx, tid))
        pos = [text.find(b) for b in bodies]
        assert all(p >= 0 for p in pos) and pos == sorted(pos), "%s: messages out of order" % u.role


def test_detail_hidden_ticket_is_404_like_a_missing_one(ctx):
    c, other = customer(ctx, "c1"), customer(ctx, "c2")
    a1, a2, _a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    gone = missing_id(ctx)
    for u in (other, a2):
        for suffix in ("", "/messages?after=0"):
            r = u.s.get("/tickets/%d%s" % (tid, suffix))
            m = u.s.get("/tickets/%d%s" % (gone, suffix))
            assert r.status == 404 and m.status == 404, "%s GET /tickets/%d%s: %d (missing: %d)" % (
                u.role, tid, suffix, r.status, m.status)
            assert body_key(r) == body_key(m), "%s: the 404 for a hidden ticket differs from a missing one" % u.role
            assert r.header("Content-Type") == m.header("Content-Type")


def test_detail_anonymous_redirects_to_login(ctx):
    c = customer(ctx, "c1")
    tid = raise_ticket(c)
    for path in ("/tickets/%d" % tid, "/tickets/%d/messages?after=0" % tid, "/tickets",
                 "/tickets?status=open"):
        r = tu.client(ctx).get(path)
        p, q, _ = path_of(r.location)
        assert r.status == 303 and p == "/login" and q.get("next") == [path], \
            "anonymous GET %s: %d %r, want 303 /login?next=%s" % (path, r.status, r.location, path)


# ------------------------------------------------------------------ IDOR matrix

ROUTES = [
    ("GET", "", None),
    ("GET", "/messages?after=0", None),
    ("POST", "/messages", {"body": "intruder was here"}),
    ("POST", "/assign", "AGENT"),
    ("POST", "/resolve", {}),
    ("POST", "/close", {}),
    ("POST", "/reopen", {}),
    ("POST", "/rating", {"score": "1", "comment": "intruder"}),
]
# another customer / another agent / an admin where admins may not go
EXPECT = {
    "customer": {"": 404, "/messages?after=0": 404, "/messages": 404, "/assign": 403,
                 "/resolve": 403, "/close": 404, "/reopen": 404, "/rating": 404},
    "agent": {"": 404, "/messages?after=0": 404, "/messages": 404, "/assign": 403,
              "/resolve": 404, "/close": 403, "/reopen": 403, "/rating": 403},
    "admin": {"/messages": 403, "/resolve": 403, "/reopen": 403, "/rating": 403},
}


def test_idor_matrix(ctx):
    c, other = customer(ctx, "c1"), customer(ctx, "c2")
    a1, a2, _a3 = agents(ctx)
    t_open = raise_ticket(c, "IDOR open", "x")
    assign(ctx, t_open, a1)
    assert post_msg(c, t_open, "hello").status == 303
    t_closed = raise_ticket(c, "IDOR closed", "x")
    assign(ctx, t_closed, a1)
    act(c, t_closed, "close")
    t_res = raise_ticket(c, "IDOR resolved", "x")
    assign(ctx, t_res, a1)
    act(a1, t_res, "resolve")
    gone = missing_id(ctx)
    anon = tu.client(ctx)
    anon.get("/login")
    failures = []
    for tid in (t_open, t_closed, t_res):
        before = snapshot(ctx, tid)
        for who in (other, a2, admin(ctx), None):
            role = who.role if who else "anonymous"
            for method, suffix, form in ROUTES:
                if form == "AGENT":
                    form = {"agent_id": str(a2.id)}
                if who is None:
                    want = 303
                elif suffix in EXPECT[role]:
                    want = EXPECT[role][suffix]
                else:
                    continue   # an admin's own routes are tested elsewhere
                sess = who.s if who else anon
                path = "/tickets/%d%s" % (tid, suffix)
                r = sess.request(method, path, form=form)
                what = "%s %s %s (%s)" % (role, method, path, row(ctx, tid)["status"])
                if r.status != want:
                    failures.append("%s: %d, want %d" % (what, r.status, want))
                    continue
                if want == 303:
                    p, q, _ = path_of(r.location)
                    if p != "/login" or (method == "GET" and q.get("next") != [path]):
                        failures.append("%s: 303 to %r, want /login%s" % (
                            what, r.location, "?next=" + path if method == "GET" else ""))
                if want == 404:
                    m = sess.request(method, "/tickets/%d%s" % (gone, suffix), form=form)
                    if m.status != 404 or body_key(m) != body_key(r):
                        failures.append("%s: 404 differs from the missing ticket's (%d)" % (what, m.status))
        after = snapshot(ctx, tid)
        for k in before:
            if before[k] != after[k]:
                failures.append("ticket %d: %s rows changed by intruders: %s -> %s" % (
                    tid, k, before[k], after[k]))
    assert not failures, "%d IDOR failure(s): %s" % (len(failures), "; ".join(failures))


def test_ticket_posts_need_csrf(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    before = snapshot(ctx, tid)
    n = ctx.sql_value("SELECT COUNT(*) FROM tickets")
    cases = [(c, "/tickets", {"subject": "no csrf", "description": "x"}),
             (c, "/tickets/%d/messages" % tid, {"body": "no csrf"}),
             (admin(ctx), "/tickets/%d/assign" % tid, {"agent_id": str(agents(ctx)[2].id)}),
             (a1, "/tickets/%d/resolve" % tid, {}),
             (c, "/tickets/%d/close" % tid, {})]
    for u, path, form in cases:
        for tok in (None, "0" * 64):
            r = u.s.post(path, form, csrf=tok)
            assert r.status == 403, "%s POST %s with csrf %r: %d, want 403" % (u.role, path, tok, r.status)
    assert snapshot(ctx, tid) == before and ctx.sql_value("SELECT COUNT(*) FROM tickets") == n, \
        "a POST without a valid csrf_token changed something"


# ------------------------------------------------------------------ conversation

def test_message_post_by_customer_and_agent(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    for u in (c, a1):
        r = post_msg(u, tid, "Hello from the %s" % u.role)
        assert r.status == 303, "POST message as %s: %d %s" % (u.role, r.status, helpers.page_errors(r))
        mid = msg_ids(ctx, tid)[-1]
        p, _q, frag = path_of(r.location)
        assert (p, frag) == ("/tickets/%d" % tid, "m%d" % mid), \
            "%s: redirect %r, want /tickets/%d#m%d" % (u.role, r.location, tid, mid)
        got = ctx.sql("SELECT author_id, body FROM messages WHERE id = %d" % mid)[0]
        assert got == [str(u.id), "Hello from the %s" % u.role], got
        page = u.s.get("/tickets/%d" % tid)
        assert 'id="m%d"' % mid in page.text, "the new message is not on the ticket page"


def test_message_validation(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    for u in (c, a1):
        for body, msg in (("", "Type something!"), ("   \n\t ", "Type something!"),
                          ("m" * 10001, None), ("\u00e9" * 10001, None)):
            r = post_msg(u, tid, body)
            assert r.status == 422, "%s POST message of %d chars %r: %d, want 422" % (
                u.role, len(body), body[:5], r.status)
            if msg:
                assert msg in page_text(r), "%s: empty message page lacks %r" % (u.role, msg)
        r = u.s.post("/tickets/%d/messages" % tid, {})
        assert r.status == 422 and "Type something!" in page_text(r), "no body field: %d" % r.status
    assert msg_ids(ctx, tid) == [], "a refused message was stored"
    r = post_raw(c, "/tickets/%d/messages" % tid, [("body", "\u20ac" * 10001)])
    assert r.status == 422, "a 10001-character multibyte message: %d, want 422" % r.status
    r = post_raw(c, "/tickets/%d/messages" % tid, [("body", "\u20ac" * 10000)])
    assert r.status == 303, "a 10000-character message: %d" % r.status
    assert ctx.sql_value("SELECT CHAR_LENGTH(body) FROM messages WHERE ticket_id = %d" % tid) == "10000"


def test_message_on_closed_ticket_is_409(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    act(c, tid, "close")
    for u in (c, a1):
        r = post_msg(u, tid, "too late")
        assert r.status == 409, "%s POST message on a closed ticket: %d, want 409" % (u.role, r.status)
        assert "This ticket is closed" in page_text(r), "409 page lacks 'This ticket is closed'"
        page = u.s.get("/tickets/%d" % tid)
        assert "This ticket is closed" in page_text(page), "%s: closed ticket page lacks the notice" % u.role
        assert not re.search(r'<textarea[^>]*name="body"', page.text), \
            "%s: a closed ticket still shows the message input" % u.role
        assert not re.search(r'action="/tickets/%d/messages"' % tid, page.text)
    assert msg_ids(ctx, tid) == []


def test_customer_message_reopens_resolved_ticket(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    act(a1, tid, "resolve")
    assert post_msg(a1, tid, "anything else?").status == 303
    assert row(ctx, tid)["status"] == "resolved", "an agent message changed a resolved ticket's status"
    r = post_msg(c, tid, "still broken")
    assert r.status == 303
    assert row(ctx, tid)["status"] == "open", "a customer message did not reopen the resolved ticket"


def test_admin_cannot_post_message(ctx):
    c = customer(ctx, "c1")
    tid = raise_ticket(c)
    r = post_msg(admin(ctx), tid, "admin says hi")
    assert r.status == 403, "admin POST message: %d, want 403" % r.status
    assert msg_ids(ctx, tid) == []


def test_messages_poll_returns_newer_as_fragment(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    for i, u in enumerate((c, a1, c, a1)):
        assert post_msg(u, tid, "poll message %d <b>x</b>" % i).status == 303
    ids = msg_ids(ctx, tid)
    # `after` counts the ticket's timeline (README "The ticket timeline"):
    # each message's place in it
    seq = {int(m): int(e) for m, e in ctx.sql(
        "SELECT message_id, id FROM timeline WHERE ticket_id = %d AND kind = 'message'" % tid)}
    for u in (c, a1, admin(ctx)):
        for after in (0, seq[ids[0]], seq[ids[2]], seq[ids[-1]]):
            r = u.s.get("/tickets/%d/messages?after=%d" % (tid, after))
            assert r.status == 200, "%s poll after=%d: %d" % (u.role, after, r.status)
            assert "text/html" in (r.header("Content-Type") or "")
            assert "<html" not in r.text.lower() and "<body" not in r.text.lower(), \
                "the poll answer is a whole page, not a fragment"
            got = thread_ids(r.text)
            assert got == [i for i in ids if seq[i] > after], "%s poll after=%d: %s" % (u.role, after, got)
            assert "<b>x</b>" not in r.text, "message body not escaped in the fragment"
    r = c.s.get("/tickets/%d/messages?after=%d" % (tid, seq[ids[-1]]))
    assert r.status == 200 and thread_ids(r.text) == []


def test_new_message_notices_once_until_opened(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    mark = ctx.mail_mark()
    notices = lambda: len(tu.outbox(ctx, tid, "new_message", a1.email))
    is_notice = lambda m: a1.email in m.to and re.search(r"#%d(?!\d)" % tid, m.subject) \
        and "message" in (m.subject + m.body).lower()
    for i in range(3):
        assert post_msg(c, tid, "customer message %d" % (i + 1)).status == 303
    assert notices() == 1, "%d notices queued for three unread messages, want 1" % notices()
    tu.wait_outbox_flushed(ctx, "ticket_id = %d" % tid)
    got = tu.mails_since(ctx, mark, is_notice)
    assert len(got) == 1, "the agent got %d new-message mails for three unread messages" % len(got)
    assert "customer message 1" in got[0].body or "#%d" % tid in got[0].subject
    tu.check_ticket_mail(ctx, got[0], tid, a1.email)
    # opening the ticket page reads the notice; the next message is mailed again
    assert a1.s.get("/tickets/%d" % tid).status == 200
    assert post_msg(c, tid, "customer message 4").status == 303
    assert notices() == 2, "no notice after the agent opened the ticket (%d)" % notices()
    tu.wait_outbox_flushed(ctx, "ticket_id = %d" % tid)
    assert len(tu.mails_since(ctx, mark, is_notice)) == 2
    # the other direction: the customer hears of the agent's reply, once
    for i in range(2):
        assert post_msg(a1, tid, "agent reply %d" % i).status == 303
    assert len(tu.outbox(ctx, tid, "new_message", c.email)) == 1, "customer notices: %s" % \
        tu.outbox(ctx, tid, "new_message", c.email)
    helpers.wait_mails(ctx, [lambda m: c.email in m.to and "agent reply 0" in m.body], mark,
                  what="the customer's new-message mail")


def com_updates(ctx):
    return int(ctx.sql("SHOW GLOBAL STATUS LIKE 'Com_update'")[0][1])


def view_updates(ctx, user, path, tries=6):
    """The fewest UPDATE statements the server ran during one GET of path by
    user, over a few tries: other processes' writes (the mailer, other
    workers) only add, so the minimum is the page's own."""
    best = None
    for _ in range(tries):
        before = com_updates(ctx)
        assert user.s.get(path).status == 200
        n = com_updates(ctx) - before
        best = n if best is None else min(best, n)
        if best == 0:
            break
    return best


def test_ticket_view_writes_no_row_when_nothing_changed(ctx):
    """The ticket page clears the viewer's unread new-message notice: an
    UPDATE when there is one to clear, and none at all when there is not
    (it used to send the UPDATE on every view)."""
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    path = "/tickets/%d" % tid
    assert a1.s.get(path).status == 200     # the session is touched at most once a minute
    assert post_msg(c, tid, "a message the agent has not read").status == 303
    pend = lambda: ctx.sql("SELECT pending FROM ticket_notices WHERE ticket_id = %d AND user_id = %d"
                           % (tid, a1.id))
    assert pend() == [["1"]], "no unread notice after the customer's message: %s" % pend()
    before = com_updates(ctx)
    assert a1.s.get(path).status == 200
    assert com_updates(ctx) - before >= 1, "a view with an unread notice sent no UPDATE"
    assert pend() == [["0"]], "the view did not clear the notice: %s" % pend()
    snap = snapshot(ctx, tid)
    n = view_updates(ctx, a1, path)
    assert n == 0, "a view with nothing to clear sent %d UPDATE statement(s)" % n
    assert snapshot(ctx, tid) == snap, "a view with nothing to clear changed the ticket's rows"
    # the customer (no notice row at all) too
    assert view_updates(ctx, c, path) == 0, "the customer's view sent an UPDATE"


# ------------------------------------------------------------------ assignment

def test_assign_flash_and_mails(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    tid = raise_ticket(c)
    mark = ctx.mail_mark()
    audits = int(ctx.sql_value("SELECT COUNT(*) FROM audit_log WHERE event = 'ticket_assigned'"))
    r = assign(ctx, tid, a1)
    p, _q, _f = path_of(r.location)
    assert p == "/tickets/%d" % tid, "assign redirected to %r" % r.location
    flash_after(admin(ctx).s, r, "Agent assigned")
    assert row(ctx, tid)["agent_id"] == a1.id
    assert int(ctx.sql_value("SELECT COUNT(*) FROM audit_log WHERE event = 'ticket_assigned'")) == audits + 1, \
        "assignment did not write exactly one audit row"
    phrase = "Agent %s is now handling ticket #%d" % (a1.name, tid)
    cm, am = helpers.wait_mails(ctx, [lambda m: c.email in m.to and phrase in (m.subject + "\n" + m.body),
                                 tu.mail_about(tid, a1.email)], mark, what="assignment mails")
    tu.check_ticket_mail(ctx, cm, tid, c.email)
    tu.check_ticket_mail(ctx, am, tid, a1.email)
    # the list's assign form goes back to the list (next), never off-site
    t2 = raise_ticket(c)
    r = admin(ctx).s.post("/tickets/%d/assign" % t2, {"agent_id": str(a1.id), "next": "/tickets?status=open"})
    assert r.status == 303 and r.location.endswith("/tickets?status=open"), "next ignored: %r" % r.location
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        r = admin(ctx).s.post("/tickets/%d/assign" % t2, {"agent_id": str(a1.id), "next": evil})
        p, _q, _f = path_of(r.location)
        assert r.status == 303 and "evil" not in r.location and p == "/tickets/%d" % t2, \
            "next=%r redirected to %r" % (evil, r.location)


def test_assign_refuses_anyone_but_an_active_agent(ctx):
    c, other = customer(ctx, "c1"), customer(ctx, "c2")
    a1, _a2, _a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    pending = tu.request_agent(ctx, "Penny", "Pendingagent")
    w = world(ctx)
    if "disabled_agent" not in w:
        d = tu.new_agents(ctx, admin(ctx), [("Dora", "Disabledagent")], log_in=False)[0]
        admin(ctx).s.get("/admin/agents")
        r = admin(ctx).s.post("/admin/agents/%d/disable" % d.id, {})
        assert r.status == 303, "disable: %d" % r.status
        w["disabled_agent"] = d
    d = w["disabled_agent"]
    rejected = tu.request_agent(ctx, "Rex", "Rejectedagent")
    admin(ctx).s.get("/admin/agents")
    assert admin(ctx).s.post("/admin/agents/%d/reject" % rejected.id, {}).status == 303
    before = snapshot(ctx, tid)
    for label, aid in (("pending agent", pending.id), ("disabled agent", d.id),
                       ("rejected agent", rejected.id), ("customer", other.id),
                       ("admin", admin(ctx).id), ("missing user", missing_id(ctx) * 10),
                       ("empty", ""), ("zero", "0"), ("text", "abc")):
        r = admin(ctx).s.post("/tickets/%d/assign" % tid, {"agent_id": str(aid)})
        assert r.status == 422, "assign to a %s (%s): %d, want 422" % (label, aid, r.status)
    r = admin(ctx).s.post("/tickets/%d/assign" % tid, {})
    assert r.status == 422, "assign without agent_id: %d" % r.status
    assert snapshot(ctx, tid) == before, "a refused assignment changed the ticket"
    page = admin(ctx).s.get("/tickets/%d" % tid).text + admin(ctx).s.get("/tickets").text
    assert re.search(r'<option value="%d"' % a1.id, page), "an active agent is not offered"
    for label, u in (("pending", pending), ("disabled", d), ("rejected", rejected), ("customer", other)):
        assert not re.search(r'<option value="%d"' % u.id, page), "a %s user is offered for assignment" % label


def test_reassign_revokes_access_of_the_previous_agent(ctx):
    c = customer(ctx, "c1")
    a1, _a2, a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    assert a1.s.get("/tickets/%d" % tid).status == 200
    mark = ctx.mail_mark()
    assign(ctx, tid, a3)
    assert row(ctx, tid)["agent_id"] == a3.id
    r = a1.s.get("/tickets/%d" % tid)
    assert r.status == 404, "the previous agent still opens the ticket: %d" % r.status
    assert a1.s.get("/tickets/%d/messages?after=0" % tid).status == 404
    assert post_msg(a1, tid, "still mine?").status == 404
    assert a1.s.post("/tickets/%d/resolve" % tid, {}).status == 404
    assert tid not in walk(a1.s, "/tickets")[0], "the ticket stays in the previous agent's list"
    assert a3.s.get("/tickets/%d" % tid).status == 200
    assert tid in walk(a3.s, "/tickets")[0]
    phrase = "Agent %s is now handling ticket #%d" % (a3.name, tid)
    helpers.wait_mails(ctx, [lambda m: c.email in m.to and phrase in (m.subject + "\n" + m.body),
                        tu.mail_about(tid, a3.email)], mark, what="re-assignment mails")


def test_parallel_assignments_end_consistent(ctx):
    c = customer(ctx, "c1")
    a1, _a2, a3 = agents(ctx)
    adm = admin(ctx)
    tid = raise_ticket(c)
    first_audit = int(ctx.sql_value("SELECT IFNULL(MAX(id), 0) FROM audit_log"))
    cookie = adm.s.cookie_header()
    token = adm.s.last_csrf
    n = 20
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        agent = (a1, a3)[i % 2]
        body = urllib.parse.urlencode({"agent_id": str(agent.id), "csrf_token": token}).encode()
        try:
            barrier.wait(10)
            r = helpers.http_request(ctx.port, "POST", "/tickets/%d/assign" % tid, body,
                                     {"Cookie": cookie,
                                      "Content-Type": "application/x-www-form-urlencoded"},
                                     30, tu.addr(ctx))
            results[i] = r.status
        except Exception as e:
            results[i] = repr(e)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(s == 303 for s in results), "parallel assignment statuses: %s" % results
    audits = ctx.sql("SELECT id, detail FROM audit_log WHERE event = 'ticket_assigned' AND id > %d "
                     "AND detail LIKE 'ticket %d %%' ORDER BY id" % (first_audit, tid))
    assert len(audits) == n, "%d audit rows for %d assignments" % (len(audits), n)
    last = re.search(r"agent (\d+)", audits[-1][1])
    assert last, "audit detail %r names no agent" % audits[-1][1]
    got = row(ctx, tid)["agent_id"]
    assert got in (a1.id, a3.id)
    assert got == int(last.group(1)), "ticket agent %d != last audited assignment %s" % (got, audits[-1])
    assert len(tu.outbox(ctx, tid, to=c.email)) - 1 == n, \
        "customer mails queued: %d for %d assignments" % (len(tu.outbox(ctx, tid, to=c.email)) - 1, n)
    other = a1 if got == a3.id else a3
    assert other.s.get("/tickets/%d" % tid).status == 404
    owner = a1 if got == a1.id else a3
    assert owner.s.get("/tickets/%d" % tid).status == 200


# ------------------------------------------------------------------ life cycle

def test_resolve_by_agent_only(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    for u in (admin(ctx), c):
        act(u, tid, "resolve", expect=403)
    assert row(ctx, tid)["status"] == "open"
    mark = ctx.mail_mark()
    r = act(a1, tid, "resolve")
    p, _q, _f = path_of(r.location)
    assert p == "/tickets/%d" % tid
    t = row(ctx, tid)
    assert t["status"] == "resolved" and t["resolved_at"], t
    m, = helpers.wait_mails(ctx, [lambda m: tu.mail_about(tid, c.email)(m) and "resolved" in (m.subject + m.body).lower()],
                       mark, what="the customer's resolved mail")
    tu.check_ticket_mail(ctx, m, tid, c.email)
    act(a1, tid, "resolve", expect=409)


def test_close_by_customer_and_by_admin(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    t1, t2 = raise_ticket(c), raise_ticket(c)
    for t in (t1, t2):
        assign(ctx, t, a1)
    act(a1, t1, "close", expect=403)
    mark = ctx.mail_mark()
    r = act(c, t1, "close")
    flash_after(c.s, r, "Ticket closed")
    t = row(ctx, t1)
    assert t["status"] == "closed" and t["closed_at"], t
    m, = helpers.wait_mails(ctx, [lambda m: tu.mail_about(t1, a1.email)(m) and "closed" in (m.subject + m.body).lower()],
                       mark, what="the agent's closed-by-customer mail")
    tu.check_ticket_mail(ctx, m, t1, a1.email)
    r = act(admin(ctx), t2, "close")
    flash_after(admin(ctx).s, r, "Ticket closed")
    assert row(ctx, t2)["status"] == "closed"
    assert not tu.outbox(ctx, t2, "ticket_closed"), "the agent was told the customer closed it (admin did)"
    act(c, t1, "close", expect=409)


def test_reopen_by_customer(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    t_open, t_res, t_closed = open_resolved_closed(ctx, c, a1)
    for t in (t_res, t_closed):
        act(a1, t, "reopen", expect=403)
        act(admin(ctx), t, "reopen", expect=403)
        page = c.s.get("/tickets/%d" % t)
        assert re.search(r'action="/tickets/%d/reopen"' % t, page.text), "no reopen form for the customer"
        act(c, t, "reopen")
        tt = row(ctx, t)
        assert tt["status"] == "open" and not tt["closed_at"], tt
    act(c, t_open, "reopen", expect=409)
    assert post_msg(c, t_closed, "works again").status == 303, "cannot write on a reopened ticket"


def test_rating_rules(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    act(c, tid, "rating", {"score": "5"}, expect=409)
    act(a1, tid, "resolve")
    act(c, tid, "rating", {"score": "5"}, expect=409)
    act(c, tid, "close")
    for bad in ("0", "6", "x", "", "-1", "4.5", "3x", "99999999999999999999"):
        act(c, tid, "rating", {"score": bad}, expect=422)
    act(c, tid, "rating", {"comment": "no score"}, expect=422)
    act(c, tid, "rating", {"score": "3", "comment": "c" * 2001}, expect=422)
    assert ctx.sql("SELECT * FROM ratings WHERE ticket_id = %d" % tid) == []
    word = tu.unique_word("zr")
    r = act(c, tid, "rating", {"score": "4", "comment": "Helpful %s" % word})
    assert ctx.sql("SELECT score, comment FROM ratings WHERE ticket_id = %d" % tid) == [["4", "Helpful %s" % word]]
    act(c, tid, "rating", {"score": "1", "comment": "changed my mind"}, expect=409)
    assert ctx.sql_value("SELECT score FROM ratings WHERE ticket_id = %d" % tid) == "4"
    for u in (a1, admin(ctx), c):
        page = u.s.get("/tickets/%d" % tid)
        text = page_text(page)
        assert word in text, "%s does not see the rating comment" % u.role
        assert re.search(r"\b4\s*(out of|/|of)\s*5", text), "%s does not see the score 4" % u.role
    page = c.s.get("/tickets/%d" % tid)
    assert not re.search(r'action="/tickets/%d/rating"' % tid, page.text), "rating form after rating"
    # once per ticket, even after a reopen and a second close
    act(c, tid, "reopen")
    act(c, tid, "close")
    act(c, tid, "rating", {"score": "2"}, expect=409)


def test_parallel_ratings_store_one(ctx):
    c = customer(ctx, "c1")
    tid = raise_ticket(c)
    act(c, tid, "close")
    n = 10
    barrier = threading.Barrier(n)
    results = [None] * n
    cookie, token = c.s.cookie_header(), c.s.last_csrf

    def worker(i):
        body = urllib.parse.urlencode({"score": str(1 + i % 5), "csrf_token": token}).encode()
        try:
            barrier.wait(10)
            results[i] = helpers.http_request(ctx.port, "POST", "/tickets/%d/rating" % tid,
                                              body, {"Cookie": cookie,
                                                     "Content-Type": "application/x-www-form-urlencoded"},
                                              30, tu.addr(ctx)).status
        except Exception as e:
            results[i] = repr(e)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results, key=str) == [303] + [409] * (n - 1), "parallel ratings: %s" % results
    assert ctx.sql_value("SELECT COUNT(*) FROM ratings WHERE ticket_id = %d" % tid) == "1"


def test_auto_close_after_seven_days(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    old, recent = raise_ticket(c), raise_ticket(c)
    for t in (old, recent):
        assign(ctx, t, a1)
        act(a1, t, "resolve")
    ctx.sql("UPDATE tickets SET resolved_at = NOW() - INTERVAL 8 DAY, "
            "last_activity = NOW() - INTERVAL 8 DAY WHERE id = %d" % old)
    ctx.sql("UPDATE tickets SET resolved_at = NOW() - INTERVAL 1 DAY WHERE id = %d" % recent)
    mark = ctx.mail_mark()
    p = ctx.admin("auto-close")
    assert p.returncode == 0, p.stderr
    t = row(ctx, old)
    assert t["status"] == "closed" and t["closed_at"], "8 days resolved: %s" % t
    assert row(ctx, recent)["status"] == "resolved", "a ticket resolved 1 day ago was closed"
    m, = helpers.wait_mails(ctx, [lambda m: tu.mail_about(old, c.email)(m) and "clos" in (m.subject + m.body).lower()],
                       mark, what="the customer's auto-closed mail")
    tu.check_ticket_mail(ctx, m, old, c.email)
    assert not tu.outbox(ctx, recent, "ticket_auto_closed")
    p = ctx.admin("auto-close")
    assert len(tu.outbox(ctx, old, "ticket_auto_closed")) == 1, "auto-close mailed twice"
    assert post_msg(c, old, "late reply").status == 409


# ------------------------------------------------------------------ agents admin

def agent_rows(text):
    """{email: row_html} of the active agents table."""
    return helpers.table_rows(text, r'id="active-h".*?<tbody>(.*?)</tbody>', r"[\w.+-]+@[\w.-]+",
                              "active agents table on /admin/agents")


def pending_section(text):
    m = re.search(r'id="pending-h"(.*?)(?:id="active-h"|$)', text, re.S)
    assert m, "no pending requests section on /admin/agents"
    return m.group(1)


def cell(row_html, label):
    m = re.search(r'data-label="%s"[^>]*>\s*([^<]*?)\s*<' % re.escape(label), row_html)
    return html.unescape(m.group(1)) if m else None


def test_agents_page_roles_and_empty_state(ctx):
    adm = admin(ctx)
    a1, _a2, _a3 = agents(ctx)
    c = customer(ctx, "c1")
    for u in (a1, c):
        assert u.s.get("/admin/agents").status == 403, "%s GET /admin/agents" % u.role
        r = u.s.post("/admin/agents", {"first_name": "X", "last_name": "Y", "email": ctx.unique_email("x")})
        assert r.status == 403, "%s POST /admin/agents: %d" % (u.role, r.status)
    r = tu.client(ctx).get("/admin/agents")
    p, q, _ = path_of(r.location)
    assert r.status == 303 and p == "/login" and q.get("next") == ["/admin/agents"], r.location
    # clear whatever requests other tests left, through the page's own forms
    r = adm.s.get("/admin/agents")
    assert r.status == 200
    for pid in re.findall(r'action="/admin/agents/(\d+)/reject"', r.text):
        assert adm.s.post("/admin/agents/%s/reject" % pid, {}).status == 303
    r = adm.s.get("/admin/agents")
    assert "There are no pending requests" in page_text(r), "empty pending state missing"
    rows = agent_rows(r.text)
    assert a1.email in rows, "an active agent is not listed"


def test_agent_request_approve_and_reject(ctx):
    adm = admin(ctx)
    p1 = tu.request_agent(ctx, "Priya", "Requestone")
    p2 = tu.request_agent(ctx, "Quinn", "Requesttwo")
    tu.login_refused(ctx, p1.email, p1.password, 403)
    r = adm.s.get("/admin/agents")
    pend = pending_section(r.text)
    for p in (p1, p2):
        assert p.email in pend and p.name in html.unescape(pend), "pending request of %s not shown" % p.email
    assert "There are no pending requests" not in page_text(r)
    assert p1.email not in agent_rows(r.text), "a pending agent listed as active"
    mark = ctx.mail_mark()
    r = adm.s.post("/admin/agents/%d/approve" % p1.id, {})
    assert r.status == 303, "approve: %d" % r.status
    flash_after(adm.s, r, "Agent approved")
    assert ctx.sql_value("SELECT state FROM users WHERE id = %d" % p1.id) == "active"
    helpers.wait_mails(ctx, [lambda m: p1.email in m.to], mark, what="the approved agent's mail")
    s = tu.signed_in(ctx, p1.email, p1.password)
    assert s.get("/tickets").status == 200
    r = adm.s.post("/admin/agents/%d/reject" % p2.id, {})
    assert r.status == 303, "reject: %d" % r.status
    assert ctx.sql_value("SELECT state FROM users WHERE id = %d" % p2.id) == "rejected"
    tu.login_refused(ctx, p2.email, p2.password, 401)
    r = adm.s.get("/admin/agents")
    assert p2.email not in pending_section(r.text) and p2.email not in agent_rows(r.text)
    assert p1.email in agent_rows(r.text)
    # decisions apply to pending agent requests only
    for path in ("/admin/agents/%d/approve" % p2.id, "/admin/agents/%d/approve" % p1.id,
                 "/admin/agents/%d/reject" % p1.id, "/admin/agents/%d/approve" % customer(ctx, "c2").id,
                 "/admin/agents/%d/approve" % (missing_id(ctx) * 10)):
        r = adm.s.post(path, {})
        assert r.status == 404, "POST %s: %d, want 404" % (path, r.status)
    assert ctx.sql_value("SELECT state FROM users WHERE id = %d" % p2.id) == "rejected"
    assert ctx.sql_value("SELECT role FROM users WHERE id = %d" % customer(ctx, "c2").id) == "customer"


def test_admin_creates_agent_with_code(ctx):
    adm = admin(ctx)
    email = ctx.unique_email("newagent")
    mark = ctx.mail_mark()
    r = helpers.create_agent_form(adm.s, "Nina", "Newagent", email.upper())
    assert r.status == 303, "POST /admin/agents: %d %s" % (r.status, helpers.page_errors(r))
    flash_after(adm.s, r, "Agent created")
    got = ctx.sql("SELECT role, state FROM users WHERE email = %s" % helpers.sql_str(email))
    assert got == [["agent", "active"]], "created agent row: %s" % got
    m = ctx.wait_mail(lambda m: email in m.to, since=mark, timeout=15)
    code = helpers.reset_code(m)
    assert re.fullmatch(r"\d{8}", code)
    tu.login_refused(ctx, email, tu.PASSWORD, 401)   # no password yet
    r = tu.set_password_with_code(ctx, email, code)
    assert r.status == 303, "set password with the code: %d %s" % (r.status, helpers.page_errors(r))
    s = tu.signed_in(ctx, email, tu.PASSWORD)
    assert s.get("/tickets").status == 200
    r = tu.set_password_with_code(ctx, email, code, "another password 123")
    assert r.status == 422, "the code worked twice: %d" % r.status
    # validation
    r = helpers.create_agent_form(adm.s, "", "", "not-an-email")
    assert r.status == 422
    for msg in ("First name is required", "Last name is required", "Invalid email"):
        assert msg in page_text(r), "create agent: %r missing" % msg
    r = helpers.create_agent_form(adm.s, "Dup", "Licate", email)
    assert r.status == 422 and "An account with this email already exists" in page_text(r)


def test_agent_counts_rating_and_disable(ctx):
    adm = admin(ctx)
    c = customer(ctx, "c1")
    g = tu.new_agents(ctx, adm, [("Olga", "Countagent")])[0]
    t_open = [raise_ticket(c) for _ in range(2)]
    t_done = [raise_ticket(c) for _ in range(2)]
    for t in t_open + t_done:
        assign(ctx, t, g)
    for t, score in zip(t_done, ("4", "5")):
        act(c, t, "close")
        act(c, t, "rating", {"score": score})
    r = adm.s.get("/admin/agents")
    rw = agent_rows(r.text).get(g.email)
    assert rw, "the agent is not in the active list"
    assert cell(rw, "Open tickets") == "2", "open tickets cell %r, want 2" % cell(rw, "Open tickets")
    assert cell(rw, "Average rating") == "4.5", "average rating cell %r, want 4.5" % cell(rw, "Average rating")
    # disable: sessions end at once, open tickets go back to the queue
    assert g.s.get("/tickets").status == 200
    r = adm.s.post("/admin/agents/%d/disable" % g.id, {})
    assert r.status == 303, "disable: %d" % r.status
    flash_after(adm.s, r, "Agent disabled")
    assert ctx.sql_value("SELECT state FROM users WHERE id = %d" % g.id) == "disabled"
    r = g.s.get("/tickets")
    p, _q, _f = path_of(r.location)
    assert r.status == 303 and p == "/login", "a disabled agent's session still works: %d" % r.status
    assert g.s.get("/tickets/%d" % t_open[0]).status == 303
    for t in t_open:
        assert row(ctx, t)["agent_id"] == 0, "open ticket #%d still assigned after disable" % t
    for t in t_done:
        assert row(ctx, t)["agent_id"] == 0, "closed ticket #%d still assigned after disable" % t
    ids, _ = walk(adm.s, "/tickets?assigned=none&status=all")
    assert set(t_open + t_done) <= set(ids), "the unassigned queue lacks the disabled agent's tickets"
    tu.login_refused(ctx, g.email, g.password, 401)
    r = adm.s.get("/admin/agents")
    assert g.email not in agent_rows(r.text), "a disabled agent is still listed as active"
    assert not re.search(r'<option value="%d"' % g.id, adm.s.get("/tickets/%d" % t_open[0]).text), \
        "a disabled agent is still offered for assignment"
    assert adm.s.post("/admin/agents/%d/disable" % g.id, {}).status == 404



def test_disabled_agent_gets_no_mail_from_reopened_tickets(ctx):
    adm = admin(ctx)
    c = customer(ctx, "c1")
    g = tu.new_agents(ctx, adm, [("Dora", "Goneagent")])[0]
    t_open, t_res, t_closed = open_resolved_closed(ctx, c, g)
    assign(ctx, t_open, g)
    assert adm.s.post("/admin/agents/%d/disable" % g.id, {}).status == 303
    for t in (t_open, t_res, t_closed):
        assert row(ctx, t)["agent_id"] == 0, "ticket #%d (%s) still held by the disabled agent" % (
            t, row(ctx, t)["status"])
    first = int(ctx.sql_value("SELECT IFNULL(MAX(id), 0) FROM outbox"))
    act(c, t_closed, "reopen")
    assert post_msg(c, t_closed, "Back again after the reopen").status == 303
    assert post_msg(c, t_res, "Still broken, reopening by writing").status == 303
    assert post_msg(c, t_open, "Anyone there?").status == 303
    for t in (t_open, t_res, t_closed):
        assert row(ctx, t)["status"] == "open"
        assert row(ctx, t)["agent_id"] == 0
    sent = ctx.sql("SELECT id, kind, ticket_id FROM outbox WHERE id > %d AND (user_id = %d OR to_addr = %s)"
                   % (first, g.id, helpers.sql_str(g.email)))
    assert not sent, "mail queued to a disabled agent: %s" % sent
    ids, _ = walk(adm.s, "/tickets?assigned=none")
    assert {t_open, t_res, t_closed} <= set(ids), "reopened tickets missing from assigned=none"


def test_ticket_mail_never_queued_to_a_non_active_account(ctx):
    # an agent whose row says disabled but who still holds a ticket (a row
    # left by an older version): the customer's message mails nobody
    adm = admin(ctx)
    c = customer(ctx, "c1")
    g = tu.new_agents(ctx, adm, [("Ezra", "Staleagent")])[0]
    tid = raise_ticket(c)
    assign(ctx, tid, g)
    first = int(ctx.sql_value("SELECT IFNULL(MAX(id), 0) FROM outbox"))
    ctx.sql("UPDATE users SET state = 'disabled' WHERE id = %d" % g.id)
    assert post_msg(c, tid, "Hello, is this still handled?").status == 303
    act(c, tid, "close")
    sent = ctx.sql("SELECT id, kind FROM outbox WHERE id > %d AND user_id = %d" % (first, g.id))
    assert not sent, "mail queued to a disabled account: %s" % sent


def test_reassigned_agent_post_refused_and_not_mailed(ctx):
    c = customer(ctx, "c1")
    a1, _a2, a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    assert post_msg(a1, tid, "I am on it").status == 303
    assign(ctx, tid, a3)
    first = int(ctx.sql_value("SELECT IFNULL(MAX(id), 0) FROM outbox"))
    before = msg_ids(ctx, tid)
    assert post_msg(a1, tid, "late word from the old agent").status == 404
    assert a1.s.post("/tickets/%d/resolve" % tid, {}).status == 404
    assert msg_ids(ctx, tid) == before, "the old agent's message was stored"
    assert row(ctx, tid)["status"] == "open"
    assert post_msg(c, tid, "customer writes after reassignment").status == 303
    assert act(c, tid, "close")
    sent = ctx.sql("SELECT id, kind FROM outbox WHERE id > %d AND user_id = %d" % (first, a1.id))
    assert not sent, "mail queued to the previous agent: %s" % sent


RACE_LOG = "race_log_tickets"


def _race_triggers(ctx, on):
    for t in ("messages", "outbox"):
        ctx.sql("DROP TRIGGER IF EXISTS %s_%s" % (RACE_LOG, t))
    if not on:
        ctx.sql("DROP TABLE IF EXISTS %s" % RACE_LOG)
        return
    ctx.sql("CREATE TABLE IF NOT EXISTS %s (id BIGINT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(16), "
            "kind VARCHAR(40), ticket_id BIGINT, who BIGINT, agent BIGINT, customer BIGINT)" % RACE_LOG)
    # each row records the ticket's assignee as the inserting transaction sees it
    ctx.sql("CREATE TRIGGER %s_messages AFTER INSERT ON messages FOR EACH ROW "
            "INSERT INTO %s (what, kind, ticket_id, who, agent, customer) "
            "SELECT 'message', '', NEW.ticket_id, NEW.author_id, IFNULL(agent_id, 0), customer_id "
            "FROM tickets WHERE id = NEW.ticket_id" % (RACE_LOG, RACE_LOG))
    ctx.sql("CREATE TRIGGER %s_outbox AFTER INSERT ON outbox FOR EACH ROW "
            "INSERT INTO %s (what, kind, ticket_id, who, agent, customer) "
            "SELECT 'mail', NEW.kind, NEW.ticket_id, NEW.user_id, IFNULL(agent_id, 0), customer_id "
            "FROM tickets WHERE id = NEW.ticket_id" % (RACE_LOG, RACE_LOG))


def _raw_post(ctx, user, path, form):
    body = urllib.parse.urlencode(dict(form, csrf_token=user.s.last_csrf)).encode()
    r = helpers.http_request(ctx.port, "POST", path, body,
                             {"Cookie": user.s.cookie_header(),
                              "Content-Type": "application/x-www-form-urlencoded"}, 30, tu.addr(ctx))
    return r.status


def test_parallel_reassign_and_old_agent_posts_stay_consistent(ctx):
    c = customer(ctx, "c1")
    a1, _a2, a3 = agents(ctx)
    adm = admin(ctx)
    tids = [raise_ticket(c) for _ in range(3)]
    for t in tids:
        assign(ctx, t, a1)
    _race_triggers(ctx, True)
    try:
        rounds = 60
        errors = []
        statuses = []

        def reassigner(tid):
            for i in range(rounds):
                s = _raw_post(ctx, adm, "/tickets/%d/assign" % tid, {"agent_id": str((a3, a1)[i % 2].id)})
                statuses.append(("assign", s))

        def poster(user, tid):
            for i in range(rounds):
                s = _raw_post(ctx, user, "/tickets/%d/messages" % tid, {"body": "race %d" % i})
                statuses.append(("post", s))
                if i % 10 == 9:
                    statuses.append(("resolve", _raw_post(ctx, user, "/tickets/%d/resolve" % tid, {})))
                    _raw_post(ctx, c, "/tickets/%d/messages" % tid, {"body": "customer %d" % i})

        threads = []
        for t in tids:
            threads.append(threading.Thread(target=reassigner, args=(t,)))
            threads += [threading.Thread(target=poster, args=(u, t)) for u in (a1, a3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        bad = [s for s in statuses if s[1] not in (303, 404, 409, 503)]
        assert not bad, "unexpected statuses: %s" % bad[:10]
        assert any(s == ("post", 303) for s in statuses), "no post got through"
        where = "ticket_id IN (%s)" % ",".join(map(str, tids))
        msgs = ctx.sql("SELECT id, ticket_id, who, agent, customer FROM %s WHERE what = 'message' AND %s"
                       % (RACE_LOG, where))
        wrong = [m for m in msgs if m[2] not in (m[3], m[4])]
        assert not wrong, "%d messages by an agent not assigned at the time (of %d): %s" % (
            len(wrong), len(msgs), wrong[:5])
        mails = ctx.sql("SELECT id, kind, ticket_id, who, agent, customer FROM %s WHERE what = 'mail' "
                        "AND kind IN ('new_message', 'ticket_resolved', 'ticket_closed') AND %s"
                        % (RACE_LOG, where))
        wrong = [m for m in mails if m[3] not in (m[4], m[5])]
        assert not wrong, "mail to an agent not assigned at the time: %s" % wrong[:5]
    finally:
        _race_triggers(ctx, False)


def test_parallel_disable_and_assign_leave_no_ticket_to_a_disabled_agent(ctx):
    adm = admin(ctx)
    c = customer(ctx, "c1")
    g = tu.new_agents(ctx, adm, [("Fay", "Raceagent")], log_in=False)[0]
    tids = [raise_ticket(c) for _ in range(4)]
    statuses = []
    for rnd in range(25):
        ctx.sql("UPDATE users SET state = 'active' WHERE id = %d" % g.id)
        ctx.sql("UPDATE tickets SET agent_id = NULL WHERE id IN (%s)" % ",".join(map(str, tids)))
        barrier = threading.Barrier(len(tids) + 1)

        def do(path, form):
            barrier.wait(10)
            statuses.append(_raw_post(ctx, adm, path, form))
        threads = [threading.Thread(target=do, args=("/tickets/%d/assign" % t, {"agent_id": str(g.id)}))
                   for t in tids]
        threads.insert(rnd % len(threads), threading.Thread(
            target=do, args=("/admin/agents/%d/disable" % g.id, {})))
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert ctx.sql_value("SELECT state FROM users WHERE id = %d" % g.id) == "disabled"
        held = ctx.sql("SELECT id, status FROM tickets WHERE agent_id = %d" % g.id)
        assert not held, "round %d: tickets assigned to a disabled agent: %s" % (rnd, held)
    bad = [s for s in statuses if s not in (303, 422, 503)]
    assert not bad, "unexpected statuses: %s" % bad

# ------------------------------------------------------------------ hostile input

HOSTILE = [
    ("long", "L" * 5000),
    ("very long", "V" * 60000),
    ("too long for a URL", "U" * 20000),
    ("invalid utf-8", "%FF%FE%FD"),
    ("overlong utf-8", "%C0%AF"),
    ("surrogate", "%ED%A0%80"),
    ("truncated utf-8", "abc%E2%82"),
    ("NUL", "a%00b"),
    ("control", "a%01%02%1B[31mb"),
    ("DEL", "%7F"),
    ("CRLF header", "/x%0D%0ASet-Cookie:%20a=b"),
    ("bare percent", "%"),
    ("bad escape", "%zz"),
    ("zero", "0"),
    ("minus one", "-1"),
    ("huge", "99999999999999999999"),
    ("float", "1e3"),
    ("sql", "%27%20OR%201=1%20--%20"),
    ("sql2", "1;%20DROP%20TABLE%20tickets"),
    ("html", "%3Cscript%3Ealert(1)%3C/script%3E"),
    ("multibyte over 200", urllib.parse.quote("\u20ac" * 201)),
    ("emoji", urllib.parse.quote("\U0001F600" * 300)),
    ("rtl", urllib.parse.quote("\u202e\u200b\ufeff")),
    ("fulltext ops", urllib.parse.quote('+a -b "c* (d) ~e <f >g @3')),
    ("cursor-like", "2147483648-1"),
    ("cursor-like 2", "1-99999999999999999999"),
    ("cursor-like 3", "-5--5"),
    ("empty", ""),
]


def test_hostile_input_never_500(ctx):
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    adm = admin(ctx)
    tid = raise_ticket(c, "Fuzz target", "x")
    assign(ctx, tid, a1)
    t_closed = raise_ticket(c, "Fuzz target closed", "x")
    act(c, t_closed, "close")
    roles = (c, a1, adm)
    T = "/tickets/%d" % tid
    fails = []

    def send(u, method, path, body=None):
        hdrs = {"Content-Type": "application/x-www-form-urlencoded"} if method == "POST" else {}
        if u is not None:
            hdrs["Cookie"] = u.s.cookie_header()
            if method == "POST":
                body = (body + "&" if body else "") + "csrf_token=" + u.s.last_csrf
        try:
            r = helpers.http_request(ctx.port, method, path,
                                     body.encode() if body is not None else None, hdrs, 20,
                                     tu.addr(ctx))
        except Exception as e:
            fails.append("%s %s: %r" % (method, path[:80], e))
            return
        if r.status >= 500:
            fails.append("%s %s %s%s: %d" % (u.role if u else "anon", method, path[:70],
                                             " body=" + body[:60] if body else "", r.status))

    for label, v in HOSTILE:
        for u in roles:
            for k in ("status", "q", "after", "assigned", "page"):
                send(u, "GET", "/tickets?%s=%s" % (k, v))
            send(u, "GET", "/tickets?status=all&assigned=none&q=%s&after=%s" % (v, v))
            send(u, "GET", T + "/messages?after=" + v)
            if len(v) < 3000:
                for suffix in ("", "/messages"):
                    send(u, "GET", "/tickets/" + v + suffix)
                for action in ("messages", "assign", "resolve", "close", "reopen", "rating"):
                    send(u, "POST", "/tickets/%s/%s" % (v, action), "body=x&agent_id=%d&score=3" % a1.id)
        send(None, "GET", "/tickets?q=" + v)
        send(c, "POST", "/tickets", "subject=%s&description=d" % v)
        send(c, "POST", "/tickets", "subject=s&description=%s" % v)
        send(c, "POST", "/tickets", "subject=s&description=d&priority=%s" % v)
        send(c, "POST", "/tickets", "%s=%s&subject=s&description=d" % (v[:100] or "k", v))
        for u in (c, a1):
            send(u, "POST", T + "/messages", "body=" + v)
        send(adm, "POST", T + "/assign", "agent_id=" + v)
        send(adm, "POST", T + "/assign", "agent_id=%d&next=%s" % (a1.id, v))
        send(c, "POST", "/tickets/%d/rating" % t_closed, "score=" + v)
        send(c, "POST", "/tickets/%d/rating" % t_closed, "score=9&comment=" + v)
        send(adm, "POST", "/admin/agents", "first_name=%s&last_name=%s&email=%s" % (v, v, v))
        if len(v) < 3000:
            for action in ("approve", "reject", "disable"):
                send(adm, "POST", "/admin/agents/%s/%s" % (v, action))
    assert not fails, "%d request(s) answered 5xx: %s" % (len(fails), "; ".join(fails[:15]))


test_hostile_input_never_500.timeout = 240


# ------------------------------------------------------------- round trips

SESSION_READ = "SELECT u.id, u.role"


def worker_statements(ctx, fn):
    """fn() with MariaDB's general log on: the Execute and Query rows of the
    one worker connection that served it (the thread whose statements
    include the session read; the indexer, mailer and sender poll on
    connections of their own), in order, as (command, argument)."""
    ctx.sql("SET GLOBAL general_log = 0; SET GLOBAL log_output = 'TABLE'; "
            "TRUNCATE mysql.general_log; SET GLOBAL general_log = 1")
    try:
        fn()
    finally:
        ctx.sql("SET GLOBAL general_log = 0")
    rows = ctx.sql("SELECT thread_id, command_type, REPLACE(REPLACE(CONVERT(argument USING utf8mb4), "
                   "'\\n', ' '), '\\t', ' ') FROM mysql.general_log")
    threads = {t for t, cmd, arg in rows if cmd in ("Execute", "Query") and arg.startswith(SESSION_READ)}
    assert len(threads) == 1, "want the request on one worker connection, got threads %r" % threads
    return [(cmd, arg) for t, cmd, arg in rows if t in threads and cmd in ("Execute", "Query")]


def assert_round_trips(label, stmts, most):
    listing = "\n".join("  %s %s" % (cmd, arg[:110]) for cmd, arg in stmts)
    print("%s: %d statements\n%s" % (label, len(stmts), listing))
    assert not any(re.match(r"(?i)\s*SET\s+autocommit", arg) for _c, arg in stmts), \
        "%s: SET autocommit sent:\n%s" % (label, listing)
    assert len(stmts) <= most, "%s: %d statements, want at most %d:\n%s" % (
        label, len(stmts), most, listing)


def test_post_message_round_trips(ctx):
    """A customer's and an agent's message, the customer's list and the
    ticket page each cost at most their counted statements on the worker's
    connection, and no transaction toggles autocommit."""
    c = customer(ctx, "c1")
    a1, _a2, _a3 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    # warm: both the worker statement caches and the first response
    for u in (c, a1):
        assert post_msg(u, tid, "warm up %s" % u.role).status == 303
    for u, most in ((c, 13), (a1, 13)):
        def post():
            r = post_msg(u, tid, "counted %s" % u.role)
            assert r.status == 303, "POST message as %s: %d" % (u.role, r.status)
        assert_round_trips("POST message (%s)" % u.role, worker_statements(ctx, post), most)
    def get_list():
        assert c.s.get("/tickets").status == 200
    assert_round_trips("GET /tickets (customer)", worker_statements(ctx, get_list), 2)
    for u, most in ((c, 6), (a1, 9)):
        def get_page():
            assert u.s.get("/tickets/%d" % tid).status == 200
        assert_round_trips("GET /tickets/%d (%s)" % (tid, u.role), worker_statements(ctx, get_page), most)

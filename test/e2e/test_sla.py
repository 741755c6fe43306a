"""Service levels (README "Service levels"): [sla] first_response_hours and
resolution_hours, the due times kept on the ticket row, "due in" /
"overdue by" with <time datetime> on the ticket page and the staff lists,
status=overdue, the clock paused while a ticket is not open, and ccr-admin
sla-check mailing every admin once per breach and target.

Clocks are moved by shifting a ticket's stored times into the past, as if
it had been raised (and resolved, and due) that many hours ago.
"""
import datetime
import re

import helpers
import tickets_util as tu

W = {}


def world(ctx):
    return tu.world(ctx, W)


def admin(ctx):
    return tu.world_admin(ctx, W, "Sela", "Slaadmin")


def agent(ctx):
    w = world(ctx)
    if "agent" not in w:
        w["agent"], = tu.new_agents(ctx, admin(ctx), [("Tim", "Timely")])
    return w["agent"]


def customer(ctx):
    w = world(ctx)
    if "cust" not in w:
        w["cust"] = tu.register_customer(ctx, "Sally", "Slacust")
    return w["cust"]


def raise_ticket(user, priority="normal"):
    r = user.s.post("/tickets", {"subject": "Printer %s jams" % tu.unique_word(""),
                                 "description": "It jams.", "priority": priority})
    assert r.status == 303, "POST /tickets: %d %s" % (r.status, helpers.page_errors(r))
    return int(re.search(r"/tickets/(\d+)$", r.location).group(1))


def assign(ctx, tid, who):
    r = admin(ctx).s.post("/tickets/%d/assign" % tid, {"agent_id": str(who.id)})
    assert r.status == 303, helpers.page_errors(r)


def act(user, tid, action, form=None, expect=303):
    r = user.s.post("/tickets/%d/%s" % (tid, action), form or {})
    assert r.status == expect, "POST /tickets/%d/%s: %d %s" % (tid, action, r.status,
                                                               helpers.page_errors(r))
    return r


TIME_COLS = ("created_at", "last_activity", "resolved_at", "closed_at", "sla_paused_since",
             "first_response_at", "resolution_at", "first_response_due", "resolution_due",
             "sla_due")


def shift(ctx, tid, hours, cols=TIME_COLS):
    """Move ticket tid's clock: its stored times `hours` into the past."""
    ctx.sql("UPDATE tickets SET %s WHERE id = %d" % (", ".join(
        "%s = %s - INTERVAL %d HOUR" % (c, c, hours) for c in cols), tid))


def sla(ctx, tid):
    cols = ("UNIX_TIMESTAMP(first_response_due)", "UNIX_TIMESTAMP(resolution_due)",
            "UNIX_TIMESTAMP(sla_due)", "first_response_s", "resolution_s", "sla_paused_s",
            "sla_paused_since IS NOT NULL", "UNIX_TIMESTAMP(created_at)", "UNIX_TIMESTAMP(NOW())")
    r, = ctx.sql("SELECT %s FROM tickets WHERE id = %d" % (", ".join(cols), tid))
    names = ("first_due", "res_due", "due", "first_s", "res_s", "paused_s", "paused",
             "created", "now")
    return {k: (None if v in (None, "NULL") else int(v)) for k, v in zip(names, r)}


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sla_cell(text, label):
    """The <dd> of the ticket page's service-level row `label`."""
    m = re.search(r"<dt>%s</dt><dd>(.*?)</dd>" % label, text, re.S)
    return m and m.group(1)


def list_ids(user, query):
    r = user.s.get("/tickets?" + query)
    assert r.status == 200, "GET /tickets?%s: %d" % (query, r.status)
    return [int(i) for i in re.findall(r'<a href="/tickets/(\d+)">', r.text)], r


# ------------------------------------------------------------------ due and overdue

def test_due_then_overdue_with_a_moved_clock(ctx):
    c, a = customer(ctx), agent(ctx)
    tid = raise_ticket(c, "normal")                 # normal: 24 h, 72 h
    assign(ctx, tid, a)
    s = sla(ctx, tid)
    assert s["first_due"] == s["created"] + 24 * 3600, s
    assert s["res_due"] == s["created"] + 72 * 3600, s
    assert s["due"] == s["first_due"], s
    page = admin(ctx).s.get("/tickets/%d" % tid).text
    cell = sla_cell(page, "First response")
    assert cell and '<time datetime="%s">due in 24 h</time>' % iso(s["first_due"]) in cell, cell
    assert "due in 3 days" in sla_cell(page, "Resolution"), sla_cell(page, "Resolution")
    ids, _ = list_ids(admin(ctx), "status=overdue")
    assert tid not in ids

    shift(ctx, tid, 26)                            # raised 26 h ago: 2 h past first response
    s = sla(ctx, tid)
    page = admin(ctx).s.get("/tickets/%d" % tid).text
    cell = sla_cell(page, "First response")
    assert '<time datetime="%s">overdue by 2 h</time>' % iso(s["first_due"]) in cell, cell
    assert "sla-overdue" in cell
    assert "due in 46 h" in sla_cell(page, "Resolution"), sla_cell(page, "Resolution")
    for who in (admin(ctx), a):
        ids, r = list_ids(who, "status=overdue")
        assert tid in ids, "#%d not in %s's overdue list" % (tid, who)
        row = re.search(r'<a href="/tickets/%d">.*?</tr>' % tid, r.text, re.S).group(0)
        assert '<time datetime="%s">overdue by 2 h</time>' % iso(s["first_due"]) in row, row
    _, r = list_ids(a, "status=all")
    assert "overdue by 2 h" in r.text
    # the customer sees no service levels, and has no overdue list
    assert "First response" not in c.s.get("/tickets/%d" % tid).text
    assert c.s.get("/tickets?status=overdue").status == 422

    # the first response: the assigned agent's first message
    r = a.s.post("/tickets/%d/messages" % tid, {"body": "On it."})
    assert r.status == 303
    s = sla(ctx, tid)
    assert s["first_due"] is None and abs(s["first_s"] - 26 * 3600) < 60, s
    assert s["due"] == s["res_due"], s
    ids, _ = list_ids(admin(ctx), "status=overdue")
    assert tid not in ids, "answered ticket still overdue"
    assert "(over the target)" in sla_cell(admin(ctx).s.get("/tickets/%d" % tid).text,
                                           "First response")


def test_a_customer_message_is_no_first_response(ctx):
    c, a = customer(ctx), agent(ctx)
    tid = raise_ticket(c, "high")
    assign(ctx, tid, a)
    assert c.s.post("/tickets/%d/messages" % tid, {"body": "Any news?"}).status == 303
    s = sla(ctx, tid)
    assert s["first_s"] is None and s["first_due"] == s["created"] + 4 * 3600, s


def test_priority_change_moves_the_due_times(ctx):
    c, a = customer(ctx), agent(ctx)
    tid = raise_ticket(c, "low")
    assign(ctx, tid, a)
    act(a, tid, "priority", {"priority": "urgent"})
    s = sla(ctx, tid)
    assert s["first_due"] == s["created"] + 3600 and s["res_due"] == s["created"] + 8 * 3600, s


# ------------------------------------------------------------------ paused while resolved

def test_clock_paused_while_resolved(ctx):
    c, a = customer(ctx), agent(ctx)
    tid = raise_ticket(c, "urgent")                # urgent: 1 h, 8 h
    assign(ctx, tid, a)
    assert a.s.post("/tickets/%d/messages" % tid, {"body": "Try again?"}).status == 303
    act(a, tid, "resolve")
    s = sla(ctx, tid)
    assert s["paused"] == 1 and s["due"] is None and s["res_s"] is not None, s
    # resolved 20 h ago: far past the 8 h, but awaiting the customer
    shift(ctx, tid, 20)
    ids, _ = list_ids(admin(ctx), "status=overdue")
    assert tid not in ids, "a resolved ticket is listed overdue"
    page = admin(ctx).s.get("/tickets/%d" % tid).text
    assert "paused while resolved" in sla_cell(page, "Resolution"), sla_cell(page, "Resolution")
    # the customer answers: the 20 h do not count
    assert c.s.post("/tickets/%d/messages" % tid, {"body": "Still broken."}).status == 303
    s = sla(ctx, tid)
    assert s["paused"] == 0 and abs(s["paused_s"] - 20 * 3600) < 60, s
    assert abs(s["res_due"] - (s["now"] + 8 * 3600)) < 60, s
    assert s["due"] == s["res_due"]
    page = admin(ctx).s.get("/tickets/%d" % tid).text
    assert "due in 8 h" in sla_cell(page, "Resolution"), sla_cell(page, "Resolution")
    ids, _ = list_ids(admin(ctx), "status=overdue")
    assert tid not in ids
    # resolved again: the resolution time is the open time only
    act(a, tid, "resolve")
    s = sla(ctx, tid)
    assert s["res_s"] < 600, "resolution time counted the pause: %s" % s
    act(c, tid, "close")
    page = admin(ctx).s.get("/tickets/%d" % tid).text
    assert "met after" in sla_cell(page, "First response"), sla_cell(page, "First response")
    assert "reached after 0.0 h" in sla_cell(page, "Resolution"), sla_cell(page, "Resolution")


def test_closed_without_a_response(ctx):
    c = customer(ctx)
    tid = raise_ticket(c, "low")
    act(c, tid, "close")
    s = sla(ctx, tid)
    assert s["due"] is None and s["res_s"] is not None, s
    page = admin(ctx).s.get("/tickets/%d" % tid).text
    assert "none before the ticket was closed" in sla_cell(page, "First response")
    assert "reached after" in sla_cell(page, "Resolution")


# ------------------------------------------------------------------ sla-check

def test_sla_check_mails_every_admin_once_per_breach(ctx):
    c, a = customer(ctx), agent(ctx)
    ad = admin(ctx)
    tid = raise_ticket(c, "urgent")
    assign(ctx, tid, a)
    shift(ctx, tid, 9)                             # past 1 h and 8 h: two breaches
    admins = [r[0] for r in ctx.sql("SELECT email FROM users WHERE role = 'admin' "
                                    "AND state = 'active'")]
    assert ad.email in admins
    mark = ctx.mail_mark()
    p = ctx.admin("sla-check")
    assert p.returncode == 0, p.stderr
    rows = tu.outbox(ctx, tid, "sla_breach")
    assert sorted(r[2] for r in rows) == sorted(admins * 2), rows
    subjects = {r[3] for r in rows if r[2] == ad.email}
    assert any("first response" in s for s in subjects) and any("resolution" in s for s in subjects), subjects
    m, = helpers.wait_mails(ctx, [lambda m: tu.mail_about(tid, ad.email)(m) and "Overdue" in m.subject],
                            mark, what="the breach mail")
    assert "%s/tickets/%d" % (ctx.stack.base_url, tid) in m.body, m.body
    assert ctx.sql_value("SELECT COUNT(*) FROM sla_breaches WHERE ticket_id = %d" % tid) == "2"
    # again: nothing new
    p = ctx.admin("sla-check")
    assert p.returncode == 0, p.stderr
    assert len(tu.outbox(ctx, tid, "sla_breach")) == len(rows), "sla-check mailed a breach twice"
    # answered: the first-response breach is over; the resolution one stays mailed once
    assert a.s.post("/tickets/%d/messages" % tid, {"body": "Looking."}).status == 303
    ctx.admin("sla-check")
    assert len(tu.outbox(ctx, tid, "sla_breach")) == len(rows)


# ------------------------------------------------------------------ configuration

def test_sla_off_and_custom_targets(ctx):
    import faults_util as fu
    c = customer(ctx)
    fu.reload_conf(ctx, "sla", "first_response_hours", "off")
    fu.reload_conf(ctx, "sla", "resolution_hours", "urgent:2 high:3 normal:5 low:7")
    try:
        tid = raise_ticket(c, "normal")
        s = sla(ctx, tid)
        assert s["first_due"] is None and s["res_due"] == s["created"] + 5 * 3600, s
        page = admin(ctx).s.get("/tickets/%d" % tid).text
        assert sla_cell(page, "First response") is None, sla_cell(page, "First response")
        assert "due in 5 h" in sla_cell(page, "Resolution")
    finally:
        fu.reload_conf(ctx, "sla", "first_response_hours", None)
        fu.reload_conf(ctx, "sla", "resolution_hours", None)


def test_check_config_refuses_bad_sla_values(ctx):
    st = ctx.stack
    for bad in ("urgent:1 high:4 normal:24", "urgent:1 high:4 normal:24 low:0",
                "urgent:1 high:4 normal:24 low:x", "sometimes"):
        st.set_conf("sla", "resolution_hours", bad)
        try:
            p = st.admin("check-config", check=False)
            out = (p.stdout or "") + (p.stderr or "")
            assert p.returncode != 0 and "resolution_hours" in out, (bad, out)
        finally:
            st.set_conf("sla", "resolution_hours", None)

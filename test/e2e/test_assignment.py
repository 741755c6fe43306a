"""Auto-assignment and agent availability (README "Assignment"):
[tickets] auto_assign = off | round_robin | least_open, POST
/account/availability, the header control and the agents page; fairness
under parallel creation, least open with ties to who waited longest,
unavailable and disabled agents passed by, tickets from mail assigned the
same way, and off changing nothing.

Each test sets the mode it needs (rewrite ccr.conf, SIGHUP, wait for the
reload) and turns it off again; each starts with every agent unavailable,
so the agents of other tests and modules never take its tickets.
"""
import contextlib
import html
import re
import threading

import faults_util as fu
import helpers
import tickets_util as tu
from test_mail import SUPPORT, compose, deliver

W = {}


# ------------------------------------------------------------------ fixtures

def world(ctx):
    return tu.world(ctx, W)


def admin(ctx):
    return tu.world_admin(ctx, W, "Asta", "Assigner")


def fresh_agents(ctx, n, last="Rota"):
    names = [("Agent%s" % chr(ord("A") + i), last + tu.unique_word("")[:5].capitalize())
             for i in range(n)]
    return tu.new_agents(ctx, admin(ctx), names)


def customer(ctx, first="Cora"):
    """A customer on a client address of its own (the admins' mail budget
    is per address)."""
    return helpers.register(ctx, password=tu.PASSWORD, first=first,
                            last="Cust" + tu.unique_word("")[:6].capitalize(),
                            client=helpers.Client(ctx.port, helpers.fresh_addr()), prefix="cust",
                            then="/tickets")


def raise_ticket(user, subject=None):
    subject = subject or "Phone %s rings twice" % tu.unique_word("")
    r = user.s.post("/tickets", {"subject": subject, "description": "It rings twice."})
    assert r.status == 303, "POST /tickets: %d %s" % (r.status, helpers.page_errors(r))
    return int(re.search(r"/tickets/(\d+)$", r.location).group(1))


def set_available(user, on, **kw):
    r = user.s.post("/account/availability", {"available": "1" if on else "0"}, **kw)
    assert r.status == 303, "POST /account/availability as %s: %d %s" % (
        user.email, r.status, helpers.page_errors(r))
    return r


def nobody_available(ctx):
    ctx.sql("UPDATE agent_availability SET available = 0")


def set_mode(ctx, mode):
    fu.reload_conf(ctx, "tickets", "auto_assign", mode)


def agent_of(ctx, tid):
    v = ctx.sql_value("SELECT IFNULL(agent_id, 0) FROM tickets WHERE id = %d" % tid)
    return int(v)


def assigned_events(ctx, tid):
    return ctx.sql("SELECT IFNULL(actor_id, 0), agent_id, detail FROM timeline "
                   "WHERE ticket_id = %d AND kind = 'assigned' ORDER BY id" % tid)


def outbox_kinds(ctx, tid):
    return [r[0] for r in ctx.sql("SELECT kind FROM outbox WHERE ticket_id = %d ORDER BY id" % tid)]


@contextlib.contextmanager
def auto_assign(ctx, mode):
    """auto_assign = mode inside the block, off again after; every agent
    unavailable before and after."""
    nobody_available(ctx)
    set_mode(ctx, mode)
    try:
        yield
    finally:
        set_mode(ctx, None)
        nobody_available(ctx)


# ------------------------------------------------------------------ availability

def test_availability_post_rules_and_controls(ctx):
    a, = fresh_agents(ctx, 1, "Avail")
    c = customer(ctx)
    adm = admin(ctx)
    # a customer and an admin have no availability: 403, nothing written
    for u in (c, adm):
        r = u.s.post("/account/availability", {"available": "1"})
        assert r.status == 403, "%s POST /account/availability: %d, want 403" % (u.role, r.status)
    for u in (c, adm):
        assert ctx.sql_value("SELECT COUNT(*) FROM agent_availability WHERE user_id = %d" % u.id) == "0"
    # anonymous: to /login
    r = tu.client(ctx).post("/account/availability", {"available": "1"}, csrf=None)
    assert r.status in (303, 403), "anonymous POST: %d" % r.status
    # no or a wrong csrf token: 403, nothing changes
    for tok in (None, "0" * 64):
        r = a.s.post("/account/availability", {"available": "1"}, csrf=tok)
        assert r.status == 403, "POST without a valid csrf_token: %d, want 403" % r.status
    assert ctx.sql_value("SELECT COUNT(*) FROM agent_availability WHERE user_id = %d AND available = 1"
                         % a.id) == "0"
    # not 1 or 0: 422 with a message for a person
    for bad in ("2", "yes", "", "-1"):
        r = a.s.post("/account/availability", {"available": bad})
        assert r.status == 422, "available=%r: %d, want 422" % (bad, r.status)
        assert "Availability must be 1 (available) or 0 (unavailable)" in html.unescape(r.text)
    # a new agent starts unavailable; the header says so and offers the switch
    r = a.s.get("/tickets")
    assert r.status == 200
    assert "Unavailable" in r.text and "Go available" in r.text, "header of a new agent"
    # on: 303 to next (same-site only) or /account, flash, header and agents page
    r = set_available(a, True)
    assert r.location.endswith("/account"), r.location
    r = a.s.get("/account")
    assert "You are available for new tickets" in r.text and "Go unavailable" in r.text
    r = a.s.post("/account/availability", {"available": "0", "next": "/tickets?status=all"})
    assert r.status == 303 and r.location.endswith("/tickets?status=all"), (r.status, r.location)
    assert "You are unavailable for new tickets" in a.s.get("/tickets?status=all").text
    r = a.s.post("/account/availability", {"available": "1", "next": "https://evil.example/"})
    assert r.status == 303 and r.location.endswith("/account"), r.location
    assert ctx.sql_value("SELECT available FROM agent_availability WHERE user_id = %d" % a.id) == "1"
    # the admin's agents page shows it
    page = html.unescape(adm.s.get("/admin/agents").text)
    row = re.search(r"<tr>\s*<td data-label=\"Name\">%s</td>.*?</tr>" % re.escape(a.name), page, re.S)
    assert row and "Available" in row.group(0) and "Unavailable" not in row.group(0), \
        "agents page row of %s: %r" % (a.name, row and row.group(0))
    # audit rows for both changes
    ev = [r[0] for r in ctx.sql("SELECT event FROM audit_log WHERE user_id = %d AND event LIKE "
                                "'agent_%%available' ORDER BY id" % a.id)]
    assert ev == ["agent_available", "agent_unavailable", "agent_available"], ev
    nobody_available(ctx)


# ------------------------------------------------------------------ off

def test_auto_assign_off_leaves_tickets_unassigned(ctx):
    """The default (no key): an available agent gets nothing; the admins get
    their needs-an-agent mail as before."""
    nobody_available(ctx)
    a, = fresh_agents(ctx, 1, "Off")
    set_available(a, True)
    try:
        c = customer(ctx)
        tid = raise_ticket(c)
        assert agent_of(ctx, tid) == 0, "auto_assign off assigned ticket #%d" % tid
        assert assigned_events(ctx, tid) == []
        kinds = outbox_kinds(ctx, tid)
        assert "ticket_needs_agent" in kinds and "ticket_assigned" not in kinds, kinds
    finally:
        nobody_available(ctx)


def test_check_config_refuses_an_unknown_mode(ctx):
    st = ctx.stack
    st.set_conf("tickets", "auto_assign", "random")
    try:
        p = st.admin("check-config", check=False)
        assert p.returncode != 0, "check-config accepted auto_assign = random"
        out = (p.stdout or "") + (p.stderr or "")
        assert "auto_assign" in out, out
    finally:
        st.set_conf("tickets", "auto_assign", None)


# ------------------------------------------------------------------ round robin

def test_round_robin_fair_under_parallel_creation(ctx):
    """50 tickets from 10 customers at once, 3 available agents: 16/17/17,
    every ticket exactly one agent, one timeline event, one agent mail."""
    with auto_assign(ctx, "round_robin"):
        agents = fresh_agents(ctx, 3, "Fair")
        for a in agents:
            set_available(a, True)
        customers = [customer(ctx, "Par%d" % i) for i in range(10)]
        made, errors = [], []
        lock = threading.Lock()

        def work(c):
            try:
                for _ in range(5):
                    tid = raise_ticket(c)
                    with lock:
                        made.append(tid)
            except Exception as e:  # noqa: BLE001 (reported below)
                with lock:
                    errors.append(repr(e))

        threads = [threading.Thread(target=work, args=(c,)) for c in customers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, "parallel creation failed: %s" % errors[:3]
        assert len(made) == 50, len(made)
        ids = ",".join(str(t) for t in made)
        counts = ctx.sql("SELECT IFNULL(agent_id, 0), COUNT(*) FROM tickets WHERE id IN (%s) "
                         "GROUP BY agent_id" % ids)
        got = {int(r[0]): int(r[1]) for r in counts}
        assert set(got) == {a.id for a in agents}, "agents of the 50 tickets: %s" % got
        assert sorted(got.values()) == [16, 17, 17], "round robin shares: %s" % got
        # in the order they were made (timeline ids are taken under the
        # cursor's lock) the agents take strict turns: no two assignments
        # read the same position
        seq = [int(r[0]) for r in ctx.sql("SELECT agent_id FROM timeline WHERE kind = 'assigned' "
                                          "AND ticket_id IN (%s) ORDER BY id" % ids)]
        turns = [seq[i] == seq[i - 3] for i in range(3, len(seq))]
        assert len(set(seq[:3])) == 3 and all(turns), "not strict turns: %s" % "".join(
            "abc"[[a.id for a in agents].index(x)] for x in seq)
        ev = ctx.sql("SELECT ticket_id, COUNT(*), MIN(detail), MAX(IFNULL(actor_id, 0)) FROM timeline "
                     "WHERE kind = 'assigned' AND ticket_id IN (%s) GROUP BY ticket_id" % ids)
        assert len(ev) == 50 and all(r[1] == "1" and r[2] == "auto" and r[3] == "0" for r in ev), \
            "assigned events: %s" % [r for r in ev if r[1] != "1" or r[2] != "auto"][:5]
        mails = ctx.sql("SELECT o.ticket_id, COUNT(*) FROM outbox o JOIN tickets t ON t.id = o.ticket_id "
                        "WHERE o.kind = 'ticket_assigned' AND o.user_id = t.agent_id AND o.ticket_id IN (%s) "
                        "GROUP BY o.ticket_id" % ids)
        assert len(mails) == 50 and all(r[1] == "1" for r in mails), "agent mails: %d tickets" % len(mails)
        assert ctx.sql_value("SELECT COUNT(*) FROM outbox WHERE kind = 'ticket_needs_agent' "
                             "AND ticket_id IN (%s)" % ids) == "0", "admins mailed about assigned tickets"
        audits = ctx.sql_value(
            "SELECT COUNT(*) FROM audit_log WHERE event = 'ticket_assigned' AND actor_id = 0 "
            "AND detail LIKE '%% by round_robin' AND CAST(SUBSTRING_INDEX(SUBSTRING_INDEX(detail, ' ', 2), "
            "' ', -1) AS UNSIGNED) IN (%s)" % ids)
        assert int(audits) == 50, "audit rows of automatic assignments: %s" % audits


test_round_robin_fair_under_parallel_creation.timeout = 240


def test_round_robin_cycles_and_side_effects_match_a_manual_assignment(ctx):
    with auto_assign(ctx, "round_robin"):
        agents = fresh_agents(ctx, 2, "Cycle")
        for a in agents:
            set_available(a, True)
        c = customer(ctx)
        mark = ctx.mail_mark()
        tids = [raise_ticket(c) for _ in range(4)]
        got = [agent_of(ctx, t) for t in tids]
        assert got[0] != got[1] and got[0] == got[2] and got[1] == got[3], \
            "round robin over 2 agents: %s" % got
        tid, who = tids[0], next(a for a in agents if a.id == got[0])
        # the timeline: staff see who, the customer that an agent has it
        staff_page = html.unescape(admin(ctx).s.get("/tickets/%d" % tid).text)
        assert "The ticket was assigned automatically to %s" % who.name in staff_page
        cust_page = html.unescape(c.s.get("/tickets/%d" % tid).text)
        assert "An agent is now handling this ticket" in cust_page and who.email not in cust_page
        assert who.name in cust_page, "the ticket page names the assigned agent"
        # the agent sees it in their list and can open it
        assert who.s.get("/tickets/%d" % tid).status == 200
        # the mails of a manual assignment: to the customer and to the agent
        helpers.wait_mails(ctx, [lambda m: c.email in m.to and ("Agent %s is now handling ticket #%d"
                                                                % (who.name, tid)) in m.body,
                                 tu.mail_about(tid, who.email)], mark,
                           what="assignment mails of an automatic assignment")
        row = ctx.sql("SELECT IFNULL(actor_id, 0), detail FROM audit_log WHERE event = 'ticket_assigned' "
                      "AND detail LIKE %s" % helpers.sql_str("ticket %d to agent %%" % tid))
        assert row == [["0", "ticket %d to agent %d by round_robin" % (tid, who.id)]], row
        # an admin can always re-assign, to an unavailable agent too
        other, = fresh_agents(ctx, 1, "Manual")
        r = admin(ctx).s.post("/tickets/%d/assign" % tid, {"agent_id": str(other.id)})
        assert r.status == 303 and agent_of(ctx, tid) == other.id, (r.status, helpers.page_errors(r))


def test_unavailable_agent_is_skipped_and_keeps_their_tickets(ctx):
    with auto_assign(ctx, "round_robin"):
        a, b = fresh_agents(ctx, 2, "Skip")
        set_available(a, True)
        set_available(b, True)
        c = customer(ctx)
        first = [raise_ticket(c) for _ in range(2)]
        held = [t for t in first if agent_of(ctx, t) == b.id]
        assert len(held) == 1, "one of two tickets each: %s" % [agent_of(ctx, t) for t in first]
        set_available(b, False)
        later = [raise_ticket(c) for _ in range(3)]
        assert [agent_of(ctx, t) for t in later] == [a.id] * 3, "an unavailable agent got a ticket"
        # b keeps the ticket it had, and can still work on it
        assert agent_of(ctx, held[0]) == b.id
        assert b.s.get("/tickets/%d" % held[0]).status == 200
        r = b.s.post("/tickets/%d/messages" % held[0], {"body": "Still on it."})
        assert r.status == 303, r.status


def test_disabled_agent_is_not_a_candidate_and_nobody_left_means_unassigned(ctx):
    with auto_assign(ctx, "round_robin"):
        a, = fresh_agents(ctx, 1, "Gone")
        set_available(a, True)
        r = admin(ctx).s.post("/admin/agents/%d/disable" % a.id, {})
        assert r.status == 303, r.status
        c = customer(ctx)
        tid = raise_ticket(c)
        assert agent_of(ctx, tid) == 0, "a disabled (still 'available') agent got ticket #%d" % tid
        kinds = outbox_kinds(ctx, tid)
        assert "ticket_needs_agent" in kinds and "ticket_assigned" not in kinds, kinds
        assert assigned_events(ctx, tid) == []


# ------------------------------------------------------------------ least open

def test_least_open_picks_fewest_open_then_who_waited_longest(ctx):
    with auto_assign(ctx, "least_open"):
        a, b, c_ = fresh_agents(ctx, 3, "Least")
        adm = admin(ctx)
        cust = customer(ctx)
        # open tickets before: a 2, b 1, c 1 — assigned by hand in the order a, a, c, b
        # (so c waited longer than b); and one resolved ticket of b, which does not count
        pre = [raise_ticket(cust) for _ in range(5)]   # nobody available yet: unassigned
        assert all(agent_of(ctx, t) == 0 for t in pre)
        for tid, ag in zip(pre, (a, a, c_, b, b)):
            r = adm.s.post("/tickets/%d/assign" % tid, {"agent_id": str(ag.id)})
            assert r.status == 303, r.status
        r = b.s.post("/tickets/%d/resolve" % pre[4], {})
        assert r.status == 303, r.status
        for ag in (a, b, c_):
            set_available(ag, True)
        # b and c have one open ticket each; b's last assignment is the newest
        # (the resolved one): c waited longer
        t1 = raise_ticket(cust)
        assert agent_of(ctx, t1) == c_.id, "least open, tie to who waited longest: got %d (a %d b %d c %d)" % (
            agent_of(ctx, t1), a.id, b.id, c_.id)
        t2 = raise_ticket(cust)
        assert agent_of(ctx, t2) == b.id, "fewest open (b has 1)"
        # now 2 each: a waited longest
        t3 = raise_ticket(cust)
        assert agent_of(ctx, t3) == a.id, "all tied at 2: a waited longest"
        # a resolved ticket stops counting: b resolves one, and gets the next
        r = b.s.post("/tickets/%d/resolve" % t2, {})
        assert r.status == 303
        t4 = raise_ticket(cust)
        assert agent_of(ctx, t4) == b.id, "b has the fewest open after resolving one"
        ev = assigned_events(ctx, t4)
        assert ev == [["0", str(b.id), "auto"]], ev


# ------------------------------------------------------------------ mail

def test_ticket_from_mail_is_assigned_like_one_from_the_page(ctx):
    with auto_assign(ctx, "round_robin"):
        a, = fresh_agents(ctx, 1, "Mailed")
        set_available(a, True)
        c = customer(ctx)
        mark = ctx.mail_mark()
        subj = "Meter %s reads zero" % tu.unique_word("")
        deliver(ctx, compose("Cora <%s>" % c.email, SUPPORT, subj, "It reads zero since Monday."))
        rows = ctx.sql("SELECT id, IFNULL(agent_id, 0) FROM tickets WHERE customer_id = %d" % c.id)
        assert len(rows) == 1 and int(rows[0][1]) == a.id, "mailed ticket: %s (agent %d)" % (rows, a.id)
        tid = int(rows[0][0])
        assert assigned_events(ctx, tid) == [["0", str(a.id), "auto"]]
        kinds = outbox_kinds(ctx, tid)
        assert "ticket_assigned" in kinds and "agent_assigned" in kinds and \
            "ticket_needs_agent" not in kinds, kinds
        helpers.wait_mails(ctx, [tu.mail_about(tid, a.email)], mark, what="the agent's mail")

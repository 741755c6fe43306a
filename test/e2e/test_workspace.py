"""The agent's workspace: internal notes, the one timeline (page, poll
fragment, mail), priority changes, saved replies and the customer's
history.

The visibility matrix runs every viewer (the customer, its agent, another
agent, an admin, anonymous) over the ticket page, the poll fragment and the
mail sink, for a note and every kind of event, and over the download URL
too for a note's attachments.  Users are made once per run
(module cache W); every test makes the tickets it needs.
"""
import html
import re

import helpers
import tickets_util as tu
import test_attachments as ta
import test_mail as tm
from helpers import post_multipart

W = {}
PRIORITY = True


# ------------------------------------------------------------------ fixtures

def world(ctx):
    return tu.world(ctx, W)


def admin(ctx):
    return tu.world_admin(ctx, W, "Wanda", "Wsadmin")


def admin2(ctx):
    w = world(ctx)
    if "admin2" not in w:
        w["admin2"] = tu.make_admin(ctx, "Otto", "Wsadmintwo")
    return w["admin2"]


def agents(ctx):
    """a1: the ticket's agent; a2: an agent who never holds the tickets under test."""
    w = world(ctx)
    if "a1" not in w:
        w["a1"], w["a2"] = tu.new_agents(ctx, admin(ctx), [("Aldo", "Wsagent"),
                                                           ("Bea", "Wsagenttwo")])
    return w["a1"], w["a2"]


def new_customer(ctx, first, last):
    """A customer on this module's own client address: the tickets it raises
    spend that address's hourly budget of admin mail ([limits]), not the one
    of the address test_tickets shares (tickets_util.addr)."""
    w = world(ctx)
    if "addr" not in w:
        w["addr"] = helpers.fresh_addr()
    return helpers.register(ctx, password=tu.PASSWORD, first=first, last=last,
                            client=helpers.Client(ctx.port, w["addr"]), prefix="cust",
                            then="/tickets")


def customer(ctx, key="c1", first="Cleo"):
    w = world(ctx)
    if key not in w:
        w[key] = new_customer(ctx, first, "Ws" + key.capitalize() + tu.unique_word("")[:4])
    return w[key]


def raise_ticket(user, subject=None):
    subject = subject or "Scanner %s stalls" % tu.unique_word("")
    r = user.s.post("/tickets", {"subject": subject, "description": "It stalls at 50 %."})
    assert r.status == 303, "POST /tickets: %d %s" % (r.status, helpers.page_errors(r))
    return int(re.search(r"/tickets/(\d+)", r.location).group(1))


def assign(ctx, tid, agent):
    r = admin(ctx).s.post("/tickets/%d/assign" % tid, {"agent_id": str(agent.id)})
    assert r.status == 303, "assign #%d: %d %s" % (tid, r.status, helpers.page_errors(r))


def act(user, tid, action, form=None, expect=303):
    r = user.s.post("/tickets/%d/%s" % (tid, action), form or {})
    assert r.status == expect, "POST /tickets/%d/%s as %s: %d (want %d) %s" % (
        tid, action, user.role, r.status, expect, helpers.page_errors(r))
    return r


def add_note(user, tid, body, expect=303):
    r = act(user, tid, "notes", {"body": body}, expect)
    if expect == 303:
        m = re.fullmatch(r"/tickets/%d#n(\d+)" % tid, r.location or "")
        assert m, "note redirect %r, want /tickets/%d#n{id}" % (r.location, tid)
        return int(m.group(1)), r
    return None, r


def post_ok(user, tid, body):
    r = user.s.post("/tickets/%d/messages" % tid, {"body": body})
    assert r.status == 303, "POST message as %s: %d %s" % (user.role, r.status, helpers.page_errors(r))
    return True


def text_of(s):
    t = re.sub(r"<(script|style)\b.*?</\1>", " ", s, flags=re.S)
    t = re.sub(r"<[^>]+>", " ", t)
    return " ".join(html.unescape(t).split())


def note_ids(s):
    return [int(x) for x in re.findall(r'<li\b[^>]*\bid="n(\d+)"', s)]


def msg_ids(s):
    return [int(x) for x in re.findall(r'<li\b[^>]*\bid="m(\d+)"', s)]


def seqs(s):
    return [int(x) for x in re.findall(r'<li\b[^>]*\bdata-seq="(\d+)"', s)]


def outbox_bodies(ctx, tid):
    return [(to, tm.unbatch(subj), tm.unbatch(body)) for to, subj, body in ctx.sql(
        "SELECT to_addr, subject, body FROM outbox WHERE ticket_id = %d ORDER BY id" % tid)]


def flash_after(sess, r, want):
    page = sess.follow(r)
    assert page.status == 200, "GET %s after the redirect: %d" % (r.location, page.status)
    assert want in text_of(page.text), "flash %r not shown on %s" % (want, r.location)
    return page


# ------------------------------------------------------------------ notes and the timeline

CUSTOMER_EVENTS = ("raised the ticket", "An agent is now handling this ticket",
                   "marked the ticket as resolved", "reopened the ticket", "closed the ticket",
                   "rated the help 4 out of 5")


def lived_ticket(ctx):
    """A ticket of c1 through its whole life, with notes and every event:
    created, assigned, a note by its agent, a note by an admin, messages,
    priority changed, resolved, reopened, closed, rated.  Returns
    (tid, the note words, the note ids)."""
    c = customer(ctx)
    a1, _a2 = agents(ctx)
    ad = admin(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    assert post_ok(c, tid, "It still stalls today.")
    w1, w2 = tu.unique_word("noteone"), tu.unique_word("notetwo")
    n1, r = add_note(a1, tid, "Firmware 2.1 known bug %s <b>bold</b>" % w1)
    flash_after(a1.s, r, "Note added")
    n2, _ = add_note(ad, tid, "Customer is a VIP %s" % w2)
    assert post_ok(a1, tid, "Please update the firmware.")
    if PRIORITY:
        act(a1, tid, "priority", {"priority": "high"})
    act(a1, tid, "resolve")
    act(c, tid, "reopen")
    act(c, tid, "close")
    act(c, tid, "rating", {"score": "4", "comment": "ok"})
    return tid, (w1, w2), (n1, n2)


def test_note_and_events_visibility_matrix(ctx):
    c = customer(ctx)
    c2 = customer(ctx, "c2", "Dora")
    a1, a2 = agents(ctx)
    ad = admin(ctx)
    mark = ctx.mail_mark()
    tid, words, nids = lived_ticket(ctx)
    anon = tu.client(ctx)
    # the page and the poll fragment, for each viewer
    for u in (c, a1, ad):
        page = u.s.get("/tickets/%d" % tid)
        poll = u.s.get("/tickets/%d/messages?after=0" % tid)
        assert page.status == 200 and poll.status == 200, "%s: %d %d" % (u.role, page.status,
                                                                         poll.status)
        assert "<html" not in poll.text.lower()
        for where, text in (("page", page.text), ("poll", poll.text)):
            t = text_of(text)
            assert len(msg_ids(text)) == 2, "%s %s: messages %s" % (u.role, where, msg_ids(text))
            for ev in CUSTOMER_EVENTS:
                if u is not c and ev.startswith("An agent"):
                    continue    # staff read who assigned whom instead
                assert ev in t, "%s %s lacks the event %r: %s" % (u.role, where, ev, t[:2000])
            if u is c:
                for w in words:
                    assert w not in text, "the customer's %s shows a note (%s)" % (where, w)
                assert note_ids(text) == [] and "Internal note" not in t
                assert "assigned the ticket to" not in t, "customer sees who assigned whom"
                assert "priority" not in t.lower() or where == "page", "customer sees the priority event"
                assert "changed the priority" not in t
            else:
                assert note_ids(text) == list(nids), "%s %s notes %s" % (u.role, where, note_ids(text))
                for w in words:
                    assert w in t, "%s %s lacks note word %s" % (u.role, where, w)
                assert "<b>bold</b>" not in text, "note body not escaped"
                assert t.count("Internal note") >= 2, "notes not labelled 'Internal note'"
                assert "Wanda Wsadmin assigned the ticket to Aldo Wsagent" in t, t[:3000]
                assert not PRIORITY or "changed the priority from normal to high" in t
                s = seqs(text)
                assert s == sorted(s), "%s %s timeline out of order %s" % (u.role, where, s)
    # the events come in time order, and the notes in between
    s = ad.s.get("/tickets/%d/messages?after=0" % tid).text
    order = [text_of(li) for li in re.findall(r"<li\b.*?</li>", s, re.S)]
    keys = ["raised the ticket", "assigned the ticket to", "It still stalls", words[0], words[1],
            "update the firmware"] + (["changed the priority"] if PRIORITY else []) + ["marked the ticket as resolved",
            "reopened the ticket", "closed the ticket", "rated the help"]
    pos = [next(i for i, li in enumerate(order) if k in li) for k in keys]
    assert pos == sorted(pos), "timeline order %s for %s" % (pos, order)
    # another agent, another customer: 404 like a missing ticket; anonymous: the login
    for u in (a2, c2):
        for path in ("/tickets/%d" % tid, "/tickets/%d/messages?after=0" % tid):
            assert u.s.get(path).status == 404, "%s GET %s" % (u.role, path)
    for path in ("/tickets/%d" % tid, "/tickets/%d/messages?after=0" % tid):
        r = anon.get(path)
        assert r.status == 303 and "/login" in (r.location or ""), "anonymous GET %s: %d" % (path, r.status)
    # the customer's poll after the last thing it saw never brings a note
    last = max(seqs(c.s.get("/tickets/%d/messages?after=0" % tid).text))
    assert c.s.get("/tickets/%d/messages?after=%d" % (tid, last)).text.strip() == ""
    # mail: nothing to the customer names a note; note mail has no reply token
    tu.wait_outbox_flushed(ctx, "ticket_id = %d" % tid)
    for to, subj, body in outbox_bodies(ctx, tid):
        if to == c.email:
            for w in words:
                assert w not in body and w not in subj, "mail to the customer carries a note"
            assert "Internal note" not in subj + body
    for m in tu.mails_since(ctx, mark):
        if c.email in m.to:
            for w in words:
                assert w not in m.body, "a mail to the customer carries a note: %r" % m.subject
        if "Internal note" in m.subject:
            assert m.msg.get("Reply-To") is None, "note mail offers a reply token"


def test_note_mail_goes_to_the_other_staff_only(ctx):
    c = customer(ctx)
    a1, a2 = agents(ctx)
    ad, ad2 = admin(ctx), admin2(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    kind = lambda: [(to, subj) for to, subj, _b in outbox_bodies(ctx, tid) if "Internal note" in subj]
    # the agent writes first: no admin wrote a note on it yet, so nobody is mailed
    add_note(a1, tid, "first note by the agent")
    assert kind() == [], "a note before any admin's was mailed: %s" % kind()
    # an admin writes: the assigned agent is mailed, and nobody else
    mark = ctx.mail_mark()
    w = tu.unique_word("adminnote")
    add_note(ad, tid, "admin says %s" % w)
    assert [to for to, _s in kind()] == [a1.email], kind()
    m, = helpers.wait_mails(ctx, [lambda m: a1.email in m.to and w in m.body], mark,
                            what="the note mail to the agent")
    assert "#%d" % tid in m.subject and m.msg.get("Reply-To") is None
    assert "Reply above this line" not in m.body
    # the agent writes again: the admin who wrote a note is mailed, the other admin not
    n = len(kind())
    add_note(a1, tid, "agent answers the admin")
    assert [to for to, _s in kind()[n:]] == [ad.email], kind()
    assert ad2.email not in [to for to, _s in kind()]
    assert a2.email not in [to for to, _s in kind()]
    assert c.email not in [to for to, _s in kind()]


def test_note_permissions_and_validation(ctx):
    c = customer(ctx)
    a1, a2 = agents(ctx)
    tid = raise_ticket(c)
    # unassigned: an admin may note, no agent is mailed
    add_note(admin(ctx), tid, "triage: looks like hardware")
    assign(ctx, tid, a1)
    r = c.s.post("/tickets/%d/notes" % tid, {"body": "customer note"})
    assert r.status == 403, "customer POST note: %d" % r.status
    r = a2.s.post("/tickets/%d/notes" % tid, {"body": "intruder note"})
    assert r.status == 404, "other agent POST note: %d" % r.status
    _n, r = add_note(a1, tid, "   ", expect=422)
    assert "Type the note first" in text_of(r.text)
    _n, r = add_note(a1, tid, "x" * 10001, expect=422)
    assert "too long" in text_of(r.text)
    r = a1.s.request("POST", "/tickets/%d/notes" % tid, {"body": "no token"}, csrf=None)
    assert r.status == 403
    notes = ctx.sql("SELECT body FROM notes WHERE ticket_id = %d" % tid)
    assert notes == [["triage: looks like hardware"]], notes
    act(c, tid, "close")
    _n, r = add_note(a1, tid, "after close", expect=409)
    assert "This ticket is closed" in text_of(r.text)


def test_reply_by_mail_never_carries_a_note(ctx):
    c = customer(ctx)
    a1, _a2 = agents(ctx)
    tid = raise_ticket(c)
    mark = ctx.mail_mark()
    assign(ctx, tid, a1)
    to_c = tm.notification(ctx, tid, c.email, mark, "assignment mail to the customer")
    to_a = tm.notification(ctx, tid, a1.email, mark, "assignment mail to the agent")
    w = tu.unique_word("secretnote")
    add_note(a1, tid, "internal: %s" % w)
    add_note(admin(ctx), tid, "internal too: %s" % w)
    mark = ctx.mail_mark()
    # the customer answers by mail: a message, and the agent's notice has no note
    tm.deliver(ctx, tm.answer(to_c, c.email, "Still broken after the update."))
    assert tm.messages(ctx, tid) == [(c.id, "Still broken after the update.")]
    # the agent answers by mail: the customer's notice has no note
    tm.deliver(ctx, tm.answer(to_a, a1.email, "Try the other cable."))
    helpers.wait_mails(ctx, [lambda m: c.email in m.to and "other cable" in m.body], mark,
                       what="the customer's new-message mail")
    tu.wait_outbox_flushed(ctx, "ticket_id = %d" % tid)
    for m in tu.mails_since(ctx, mark):
        if c.email in m.to:
            assert w not in m.body and "Internal note" not in m.subject, m.subject
    # answering the note mail: it has no reply token, so mail to the support
    # address with its subject is refused (an agent without a token) and adds nothing
    note_mail, = helpers.wait_mails(ctx, [lambda m: a1.email in m.to and w in m.body], mark,
                                    what="the admin's note mail to the agent")
    assert note_mail.msg.get("Reply-To") is None
    before = tm.messages(ctx, tid)
    tm.deliver(ctx, tm.compose(a1.email, tm.SUPPORT, "Re: " + note_mail.subject,
                               "replying to the note %s" % w))
    assert tm.messages(ctx, tid) == before, "a reply to a note mail became a message"
    page = c.s.get("/tickets/%d" % tid)
    assert w not in page.text


def test_poll_carries_new_entries_of_every_kind_the_viewer_may_see(ctx):
    c = customer(ctx)
    a1, _a2 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    start = {u.role: max(seqs(u.s.get("/tickets/%d" % tid).text)) for u in (c, a1)}
    nid, _ = add_note(a1, tid, "poll note")
    assert post_ok(a1, tid, "poll message")
    act(a1, tid, "resolve")
    got_c = c.s.get("/tickets/%d/messages?after=%d" % (tid, start["customer"])).text
    got_a = a1.s.get("/tickets/%d/messages?after=%d" % (tid, start["agent"])).text
    assert note_ids(got_c) == [] and "poll note" not in got_c
    assert len(msg_ids(got_c)) == 1 and "marked the ticket as resolved" in text_of(got_c)
    assert note_ids(got_a) == [nid] and len(msg_ids(got_a)) == 1
    assert "marked the ticket as resolved" in text_of(got_a)
    assert a1.s.get("/tickets/%d/messages?after=x" % tid).status == 422


# ------------------------------------------------------------------ priority

def test_priority_change_timeline_and_audit(ctx):
    c = customer(ctx)
    a1, a2 = agents(ctx)
    ad = admin(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    r = act(a1, tid, "priority", {"priority": "urgent"})
    assert r.location == "/tickets/%d" % tid, r.location
    flash_after(a1.s, r, "Priority changed")
    assert ctx.sql_value("SELECT priority FROM tickets WHERE id = %d" % tid) == "urgent"
    act(ad, tid, "priority", {"priority": "low"})
    assert ctx.sql_value("SELECT priority FROM tickets WHERE id = %d" % tid) == "low"
    audit = ctx.sql("SELECT actor_id, user_id, detail FROM audit_log WHERE event = 'ticket_priority' "
                    "AND detail LIKE 'ticket %d %%' ORDER BY id" % tid)
    assert audit == [[str(a1.id), str(c.id), "ticket %d from normal to urgent" % tid],
                     [str(ad.id), str(c.id), "ticket %d from urgent to low" % tid]], audit
    ev = ctx.sql("SELECT actor_id, detail FROM timeline WHERE ticket_id = %d AND kind = 'priority' "
                 "ORDER BY id" % tid)
    assert ev == [[str(a1.id), "normal urgent"], [str(ad.id), "urgent low"]], ev
    t = text_of(a1.s.get("/tickets/%d" % tid).text)
    assert "Aldo Wsagent changed the priority from normal to urgent" in t
    assert "Wanda Wsadmin changed the priority from urgent to low" in t
    assert "changed the priority" not in text_of(c.s.get("/tickets/%d" % tid).text)
    assert "changed the priority" not in c.s.get("/tickets/%d/messages?after=0" % tid).text
    # the same priority again: nothing recorded
    act(a1, tid, "priority", {"priority": "low"})
    assert len(ctx.sql("SELECT id FROM timeline WHERE ticket_id = %d AND kind = 'priority'" % tid)) == 2
    # refusals: a bad value, the customer, another agent, no token, a closed ticket
    r = act(a1, tid, "priority", {"priority": "critical"}, expect=422)
    assert "Choose a priority" in text_of(r.text)
    act(a1, tid, "priority", {}, expect=422)
    act(c, tid, "priority", {"priority": "high"}, expect=403)
    act(a2, tid, "priority", {"priority": "high"}, expect=404)
    r = a1.s.request("POST", "/tickets/%d/priority" % tid, {"priority": "high"}, csrf=None)
    assert r.status == 403
    act(c, tid, "close")
    act(ad, tid, "priority", {"priority": "high"}, expect=409)
    assert ctx.sql_value("SELECT priority FROM tickets WHERE id = %d" % tid) == "low"


# ------------------------------------------------------------------ saved replies

def save_reply(user, title, body, shared=False, expect=303):
    form = {"title": title, "body": body}
    if shared:
        form["shared"] = "1"
    r = user.s.post("/replies", form)
    assert r.status == expect, "POST /replies as %s: %d (want %d) %s" % (
        user.role, r.status, expect, helpers.page_errors(r))
    return r


def reply_id(ctx, owner, title):
    return int(ctx.sql_value("SELECT id FROM saved_replies WHERE owner_id = %d AND title = %s"
                             % (owner.id, helpers.sql_str(title))))


def reply_box(text):
    m = re.search(r'<textarea[^>]*id="reply-body"[^>]*>(.*?)</textarea>', text, re.S)
    assert m, "no reply box on the page"
    return m.group(1)


def test_saved_replies_placeholders_filled_and_escaped(ctx):
    a1, _a2 = agents(ctx)
    c = customer(ctx, "cx", '<i>Zoe</i> & "Co"')
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    title = "Greeting " + tu.unique_word("")
    body = "Hi {customer_first_name}, {agent_first_name} here about #{ticket_number}. {unknown}"
    r = save_reply(a1, title, body)
    assert r.location == "/replies"
    flash_after(a1.s, r, "Reply saved")
    rid = reply_id(ctx, a1, title)
    page = a1.s.get("/replies")
    assert page.status == 200 and title in page.text
    assert "{customer_first_name}" in html.unescape(page.text), "the list shows the text as saved"
    # ?reply= prefills the box (no JavaScript needed), filled in and escaped
    p = a1.s.get("/tickets/%d?reply=%d" % (tid, rid))
    assert p.status == 200, "GET ?reply=: %d" % p.status
    box = reply_box(p.text)
    want = 'Hi <i>Zoe</i> & "Co", Aldo here about #%d. {unknown}' % tid
    assert html.unescape(box).strip() == want, "prefilled %r, want %r" % (html.unescape(box), want)
    assert "<i>Zoe</i>" not in p.text, "a placeholder's value was not escaped"
    # the page's own insertion: the option carries the same filled text, escaped
    opt = re.search(r'<option value="%d" data-body="([^"]*)"' % rid, p.text)
    assert opt, "the saved reply is not offered on the ticket page"
    assert html.unescape(opt.group(1)) == want
    # the plain page has an empty box; the customer never sees saved replies
    assert html.unescape(reply_box(a1.s.get("/tickets/%d" % tid).text)).strip() == ""
    cp = c.s.get("/tickets/%d" % tid)
    assert 'id="saved-reply"' not in cp.text and title not in cp.text


def test_saved_replies_idor_and_roles(ctx):
    a1, a2 = agents(ctx)
    ad, ad2 = admin(ctx), admin2(ctx)
    c = customer(ctx)
    mine = "Mine " + tu.unique_word("")
    save_reply(a1, mine, "personal text of a1")
    rid = reply_id(ctx, a1, mine)
    t2 = raise_ticket(c)
    assign(ctx, t2, a2)
    # another agent cannot use, see or delete it
    assert a2.s.get("/tickets/%d?reply=%d" % (t2, rid)).status == 404
    assert mine not in a2.s.get("/replies").text
    assert mine not in a2.s.get("/tickets/%d" % t2).text
    assert a2.s.post("/replies/%d/delete" % rid).status == 404
    assert ad.s.post("/replies/%d/delete" % rid).status == 404, "an admin deleted a personal reply"
    assert c.s.get("/tickets/%d?reply=%d" % (t2, rid)).status == 404
    for bad in ("x", "0", "-1", "99999999999"):
        assert a1.s.get("/tickets/%d?reply=%s" % (t2, bad)).status == 404
    # shared: admins only; every agent uses them; only admins delete them
    shared = "Shared " + tu.unique_word("")
    r = save_reply(a1, shared, "agents cannot share", shared=True, expect=403)
    assert "Only admins" in text_of(r.text)
    assert ctx.sql_value("SELECT COUNT(*) FROM saved_replies WHERE title = %s" % helpers.sql_str(shared)) == "0"
    save_reply(ad, shared, "Dear {customer_first_name}, thanks.", shared=True)
    sid = reply_id(ctx, ad, shared)
    assert ctx.sql_value("SELECT shared FROM saved_replies WHERE id = %d" % sid) == "1"
    for u in (a1, a2, ad2):
        assert shared in u.s.get("/replies").text, "%s does not see the shared reply" % u.role
    p = a2.s.get("/tickets/%d?reply=%d" % (t2, sid))
    assert p.status == 200 and html.unescape(reply_box(p.text)).strip() == \
        "Dear %s, thanks." % c.first
    assert a2.s.post("/replies/%d/delete" % sid).status == 403
    # roles and the login
    assert c.s.get("/replies").status == 403
    assert c.s.post("/replies", {"title": "x", "body": "y"}).status == 403
    r = tu.client(ctx).get("/replies")
    assert r.status == 303 and "/login" in r.location
    assert a1.s.request("POST", "/replies", {"title": "t", "body": "b"}, csrf=None).status == 403
    # validation
    r = save_reply(a1, "", "body", expect=422)
    assert "Title is required" in text_of(r.text)
    r = save_reply(a1, "t" * 101, "body", expect=422)
    assert "too long" in text_of(r.text)
    r = save_reply(a1, "ok title", "   ", expect=422)
    assert "Type the reply" in text_of(r.text)
    save_reply(a1, "ok title", "x" * 10001, expect=422)
    r = ad.s.post("/replies", {"title": "odd", "body": "b", "shared": "yes"})
    assert r.status == 422 and "Shared is 1 or absent" in text_of(r.text), r.status
    # deletes: the owner, and an admin for a shared one
    r = a1.s.post("/replies/%d/delete" % rid)
    assert r.status == 303 and r.location == "/replies"
    flash_after(a1.s, r, "Reply deleted")
    assert ad2.s.post("/replies/%d/delete" % sid).status == 303
    assert ctx.sql_value("SELECT COUNT(*) FROM saved_replies WHERE id IN (%d, %d)" % (rid, sid)) == "0"
    assert a1.s.post("/replies/%d/delete" % rid).status == 404


def test_saved_replies_at_most_200_per_person(ctx):
    g, = tu.new_agents(ctx, admin(ctx), [("Lim", "Wslimit" + tu.unique_word("")[:4])])
    ctx.sql("INSERT INTO saved_replies (owner_id, shared, title, body, created_at) "
            "SELECT %d, 0, CONCAT('bulk ', seq), 'text', NOW() FROM seq_1_to_199" % g.id)
    assert ctx.sql_value("SELECT COUNT(*) FROM saved_replies WHERE owner_id = %d" % g.id) == "199"
    save_reply(g, "the 200th", "text")
    r = save_reply(g, "the 201st", "text", expect=422)
    assert "You already have 200 saved replies" in text_of(r.text), text_of(r.text)[:500]
    assert ctx.sql_value("SELECT COUNT(*) FROM saved_replies WHERE owner_id = %d" % g.id) == "200"
    # shared replies count for the admin who saved them; other people are not limited by it
    a1, _a2 = agents(ctx)
    save_reply(a1, "unaffected " + tu.unique_word(""), "text")
    g_id = reply_id(ctx, g, "the 200th")
    assert g.s.post("/replies/%d/delete" % g_id).status == 303
    save_reply(g, "the 201st", "text")


# ------------------------------------------------------------------ the customer's history

def list_ids(text):
    m = re.search(r"<tbody>(.*?)</tbody>", text, re.S)
    assert m, "no ticket list"
    return [int(x) for x in re.findall(r'<td data-label="Subject"[^>]*><a href="/tickets/(\d+)"',
                                       m.group(1))]


def test_customer_history_on_the_ticket_page_and_list(ctx):
    a1, a2 = agents(ctx)
    ad = admin(ctx)
    c = new_customer(ctx, "Hana", "Wshistory" + tu.unique_word("")[:4])
    other = customer(ctx, "c2", "Dora")
    tids = [raise_ticket(c, "History %d %s" % (i, tu.unique_word(""))) for i in range(8)]
    foreign = raise_ticket(other)
    cur = tids[3]
    assign(ctx, cur, a1)
    # the five latest others (newest activity first), never the ticket itself
    want = [int(x[0]) for x in ctx.sql(
        "SELECT id FROM tickets WHERE customer_id = %d AND id <> %d "
        "ORDER BY last_activity DESC, id DESC LIMIT 5" % (c.id, cur))]
    for u in (a1, ad):
        p = u.s.get("/tickets/%d" % cur)
        assert p.status == 200
        sec = re.search(r'<section[^>]*aria-labelledby="history-h".*?</section>', p.text, re.S)
        assert sec, "%s: no history section" % u.role
        got = [int(x) for x in re.findall(r'<a href="/tickets/(\d+)"', sec.group(0))]
        assert got == want, "%s: history %s, want %s" % (u.role, got, want)
        assert 'href="/tickets?customer=%d"' % c.id in p.text, "the customer's name is no link"
    cp = c.s.get("/tickets/%d" % cur)
    assert 'history-h' not in cp.text and "customer=%d" % c.id not in cp.text
    # the list of all their tickets: admins, and agents holding one of them
    every = sorted(tids, reverse=True)
    for u in (a1, ad):
        r = u.s.get("/tickets?customer=%d" % c.id)
        assert r.status == 200, "%s GET ?customer=: %d" % (u.role, r.status)
        assert sorted(list_ids(r.text), reverse=True) == every, list_ids(r.text)
        assert "Tickets of Hana" in text_of(r.text)
        assert foreign not in list_ids(r.text)
        tu.wait_indexed(ctx)
        r = u.s.get("/tickets?customer=%d&status=open&q=History" % c.id)
        assert r.status == 200 and sorted(list_ids(r.text), reverse=True) == every
    # others: 404 (an agent holding none of them, customers — the same one too —, unknown ids)
    for u, cid in ((a2, c.id), (c, c.id), (other, c.id), (ad, 99999999), (ad, a1.id),
                   (a1, other.id), (ad, "x")):
        r = u.s.get("/tickets?customer=%s" % cid)
        assert r.status == 404, "%s GET ?customer=%s: %d" % (u.role, cid, r.status)
    # losing the ticket loses the list
    assign(ctx, cur, a2)
    assert a1.s.get("/tickets?customer=%d" % c.id).status == 404
    assert a2.s.get("/tickets?customer=%d" % c.id).status == 200


# ------------------------------------------------------------------ notes with attachments

MiB = 1024 * 1024


def note_files(user, tid, body, files, csrf="auto"):
    """POST a note as multipart with files [(name, bytes, claimed type)]."""
    user.s.get("/tickets/%d" % tid)
    return post_multipart(user.s, "/tickets/%d/notes" % tid, [("body", body)],
                          [("attachment", n, d, t) for n, d, t in files], csrf=csrf)


def note_from(r, tid):
    m = re.fullmatch(r"/tickets/%d#n(\d+)" % tid, r.location or "")
    assert r.status == 303 and m, "note with files: %d %s" % (r.status, helpers.page_errors(r))
    return int(m.group(1))


def test_note_attachment_visibility_matrix(ctx):
    """A note's files for every viewer: shown on the page and in the poll
    fragment, downloadable and linked in mail for its agent and admins
    only; the customer, another agent, another customer and anonymous get
    what they get for a file that is not there (404), and the customer's
    page, poll and mail never name one, while a message's file beside
    them still shows."""
    c = customer(ctx)
    c2 = customer(ctx, "c2", "Dora")
    a1, a2 = agents(ctx)
    ad = admin(ctx)
    anon = tu.client(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    mark = ctx.mail_mark()
    secret = tu.unique_word("notefile").encode()
    # an admin's note with a file (mailed to the agent), then the agent's
    # note of files alone (mailed to that admin): a file alone is a note
    n1 = note_from(note_files(ad, tid, "Logs from the admin",
                              [("adminlog.txt", b"admin log " + secret, "text/plain")]), tid)
    n2 = note_from(note_files(a1, tid, "", [("shot.png", ta.PNG, "image/png"),
                                            ("agentlog.txt", b"agent log " + secret, "text/plain")]),
                   tid)
    assert ctx.sql_value("SELECT body FROM notes WHERE id = %d" % n2) == ""
    # then a message with a file, which the customer does see
    r = ta.reply(a1, tid, "Here is the fix", [("fix.txt", b"the fix", "text/plain")])
    assert r.status == 303, (r.status, helpers.page_errors(r))
    nf = ctx.sql("SELECT id, filename, note_id, IFNULL(message_id, 0) FROM attachments "
                 "WHERE ticket_id = %d AND note_id IS NOT NULL ORDER BY id" % tid)
    assert [(f, int(n), m) for _i, f, n, m in nf] == [("adminlog.txt", n1, "0"), ("shot.png", n2, "0"),
                                                    ("agentlog.txt", n2, "0")], nf
    (mfid, mfname), = ctx.sql("SELECT id, filename FROM attachments WHERE ticket_id = %d "
                              "AND message_id IS NOT NULL" % tid)
    note_urls = ["/attachments/%s/%s" % (i, f) for i, f, _n, _m in nf]
    msg_url = "/attachments/%s/%s" % (mfid, mfname)
    seq2 = int(ctx.sql_value("SELECT id FROM timeline WHERE note_id = %d" % n2))
    # the page and the poll fragment (from 0, and from just before the
    # agent's note: the poll loads the files of the notes among its entries)
    for u in (c, a1, ad):
        views = [("page", u.s.get("/tickets/%d" % tid)),
                 ("poll", u.s.get("/tickets/%d/messages?after=0" % tid)),
                 ("poll after", u.s.get("/tickets/%d/messages?after=%d" % (tid, seq2 - 1)))]
        for where, resp in views:
            assert resp.status == 200, "%s %s: %d" % (u.role, where, resp.status)
            text = resp.text
            assert 'href="%s"' % msg_url in text, "%s %s lacks the message's file" % (u.role, where)
            if u is c:
                for i, f, _n, _m in nf:
                    assert "/attachments/%s/" % i not in text and f not in text, \
                        "the customer's %s shows the note file %s" % (where, f)
                assert "Internal note" not in text_of(text)
                continue
            li = re.search(r'<li class="tl-note" id="n%d".*?(?=<li class="(?:msg|tl-)|</ol>|\Z)' % n2,
                           text, re.S)
            assert li, "%s %s: no note n%d" % (u.role, where, n2)
            assert 'href="%s"' % note_urls[1] in li.group(0) and 'href="%s"' % note_urls[2] in li.group(0)
            assert re.search(r'<img src="%s" alt=""' % re.escape(note_urls[1]), li.group(0)), "preview"
            assert 'href="%s"' % msg_url not in li.group(0), "the message's file inside the note"
            if where != "poll after":
                assert 'href="%s"' % note_urls[0] in text, "%s %s lacks n%d's file" % (u.role, where, n1)
    for u in (a2, c2):
        for path in ("/tickets/%d" % tid, "/tickets/%d/messages?after=0" % tid):
            assert u.s.get(path).status == 404, "%s GET %s" % (u.role, path)
    r = anon.get("/tickets/%d" % tid)
    assert r.status == 303 and "/login" in (r.location or ""), r.status
    # the download URL
    bodies = {"adminlog.txt": b"admin log " + secret, "shot.png": ta.PNG,
              "agentlog.txt": b"agent log " + secret}
    for u in (a1, ad):
        for i, f, _n, _m in nf:
            d = u.s.get(ta.url(i, f))
            assert d.status == 200 and d.body == bodies[f], (u.role, f, d.status)
    for who, cl in (("customer", c.s), ("other agent", a2.s), ("other customer", c2.s),
                    ("anonymous", anon)):
        gone = cl.get(ta.url(99999999, "adminlog.txt"))   # what a missing file gets
        assert gone.status == 404, (who, gone.status)
        for i, f, _n, _m in nf:
            for path in (ta.url(i, f), ta.url(i)):
                d = cl.get(path)
                assert d.status == 404 and secret not in d.body and ta.PNG not in d.body, (who, path, d.status)
                assert d.header("Content-Type") == gone.header("Content-Type"), (who, d.headers)
                assert d.header("Content-Disposition") is None and d.header("ETag") is None, d.headers
                assert len(d.body) == len(gone.body), (who, path, "a 404 unlike a missing file's")
    d = c.s.get(msg_url)
    assert d.status == 200 and d.body == b"the fix", d.status
    # mail: the staff mail links the note's files; nothing to the customer names one
    m1, m2, m3 = helpers.wait_mails(ctx, [
        lambda m: a1.email in m.to and "Internal note" in m.subject and "adminlog.txt" in m.body,
        lambda m: ad.email in m.to and "Internal note" in m.subject and "agentlog.txt" in m.body,
        lambda m: c.email in m.to and "fix.txt" in m.body], mark,
        what="the note mails with their files and the customer's message mail")
    assert note_urls[0] in m1.body, m1.body
    assert note_urls[1] in m2.body and note_urls[2] in m2.body and "shot.png" in m2.body, m2.body
    assert msg_url in m3.body
    tu.wait_outbox_flushed(ctx, "ticket_id = %d" % tid)
    for to, subj, body in outbox_bodies(ctx, tid):
        if to != c.email:
            continue
        for i, f, _n, _m in nf:
            assert f not in body and "/attachments/%s/" % i not in body, "mail to the customer: %s" % subj
    for m in tu.mails_since(ctx, mark):
        if c.email in m.to:
            for i, f, _n, _m in nf:
                assert f not in m.body and "/attachments/%s/" % i not in m.body, m.subject
        if a2.email in m.to or c2.email in m.to:
            assert "Internal note" not in m.subject, "a note mail to %s" % m.to


def test_note_attachment_limits_type_and_form(ctx):
    """A note's files by the messages' rules: 5 files (422 "At most 5
    attachments"), max_file_bytes and 25 MiB a request (413 "Attachments
    are too large", ccrd's own past nginx's notes location), nothing kept
    on a refusal; the type from the bytes; the form's file input and its
    error in the note form; the database holds a file to one owner."""
    c = customer(ctx)
    a1, a2 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    state = lambda: ctx.sql("SELECT (SELECT COUNT(*) FROM attachments), "
                            "(SELECT COUNT(*) FROM notes WHERE ticket_id = %d)" % tid)
    before = state()
    draft = tu.unique_word("draftnote")
    r = note_files(a1, tid, draft, [("f%d.txt" % i, b"x%d" % i, "text/plain") for i in range(6)])
    assert r.status == 422 and "At most 5 attachments" in text_of(r.text), (r.status, helpers.page_errors(r))
    err = re.search(r'<p class="field-error" id="note-attachment-error">([^<]*)</p>', r.text)
    assert err and err.group(1) == "At most 5 attachments", "the error is not at the note's file input"
    assert re.search(r'<textarea id="note-body"[^>]*>\s*%s' % draft, r.text), "the note's draft is lost"
    assert 'id="reply-attachment-error"' not in r.text, "the note's error shown at the reply form"
    r = note_files(a1, tid, "too big", [("big.bin", ta.binary(ta.LIMIT + 1, "nb"), "application/octet-stream")])
    assert r.status == 413 and "Attachments are too large" in text_of(r.text), (r.status, helpers.page_errors(r))
    assert 'id="note-attachment-error"' in r.text
    # each under the limit, 25.5 MiB in all: past ccrd's 25 MiB + 64 KiB,
    # within the 26m nginx lets through on the upload routes
    part = int(8.5 * MiB)
    r = note_files(a1, tid, "too much", [("p%d.bin" % i, ta.binary(part, "np%d" % i),
                                          "application/octet-stream") for i in range(3)])
    assert r.status == 413 and "Attachments are too large" in r.text, (r.status, r.text[:300])
    r = note_files(a1, tid, "   ", [])
    assert r.status == 422 and "Type the note first" in text_of(r.text), r.status
    # not its agent, the customer, no token: refused, nothing kept
    assert note_files(a2, tid, "intruder", [("x.txt", b"x", "text/plain")]).status == 404
    assert note_files(c, tid, "customer", [("x.txt", b"x", "text/plain")]).status == 403
    assert note_files(a1, tid, "no token", [("x.txt", b"x", "text/plain")], csrf=None).status == 403
    assert state() == before, "a refused note kept something: %s -> %s" % (before, state())
    # libmagic's type, never the claim; a 2 MiB file (past every other
    # location's 64k: nginx lets the notes route upload)
    big = ta.binary(2 * MiB, "nok")
    n = note_from(note_files(a1, tid, "typed", [("fake.png", b"<html><script>alert(5)</script></html>",
                                                 "image/png"),
                                                ("big.bin", big, "application/octet-stream")]), tid)
    rows = ctx.sql("SELECT id, filename, content_type, size FROM attachments WHERE note_id = %d "
                   "ORDER BY id" % n)
    assert [(f, t) for _i, f, t, _s in rows] == [("fake.png", "text/html"),
                                                ("big.bin", "application/octet-stream")], rows
    d = a1.s.get(ta.url(rows[0][0], "fake.png"))
    assert d.status == 200 and d.header("Content-Type") == "application/octet-stream", d.headers
    assert d.header("Content-Disposition").startswith("attachment;"), d.headers
    assert d.header("X-Content-Type-Options") == "nosniff"
    assert d.header("Content-Security-Policy") == "default-src 'none'; sandbox"
    d = a1.s.get(ta.url(rows[1][0], "big.bin"))
    assert d.status == 200 and d.body == big, (d.status, len(d.body))
    # the note form: multipart, the file input with its limits
    page = a1.s.get("/tickets/%d" % tid).text
    form = re.search(r'<form class="form card note-form"[^>]*>.*?</form>', page, re.S)
    assert form and 'enctype="multipart/form-data"' in form.group(0), "the note form is not multipart"
    assert re.search(r'<input type="file" id="note-attachment" name="attachment" multiple '
                     r'data-max-files="5" data-max-bytes="%d"' % ta.LIMIT, form.group(0))
    assert "Up to 5 files, each at most 10 MiB" in form.group(0)
    # one file, one owner: the database refuses a file on a message and a note
    mid = ctx.sql_value("SELECT MIN(id) FROM messages")
    try:
        ctx.sql("INSERT INTO attachments (ticket_id, message_id, note_id, filename, content_type, "
                "size, sha256, uploader_id, created_at) VALUES (%d, %s, %d, 'two.txt', 'text/plain', "
                "0, REPEAT('0', 64), %d, NOW())" % (tid, mid, n, a1.id))
    except Exception as e:    # stack.StackError
        assert "attachments_one_owner" in str(e), e
    else:
        raise AssertionError("a file on both a message and a note was stored")


# ------------------------------------------------------------------ the migration

def test_migration_files_existing_tickets_into_the_timeline(ctx):
    """schema/007 on a database with tickets and messages (a scratch one,
    migrated up to 006 first): each ticket's creation, then its messages in
    order; the pages then show them."""
    import os
    sd = os.path.join(ctx.repo, "schema")
    files = sorted(f for f in os.listdir(sd) if f.endswith(".sql"))
    before = [f for f in files if f < "007"]
    db = "ccr_mig_%s" % os.urandom(4).hex()
    st = ctx.stack
    st.sql("CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" % db, database=None)
    try:
        for f in before:
            st.sql(open(os.path.join(sd, f), encoding="utf-8").read(), database=db)
        st.sql("INSERT INTO users (id, email, first_name, last_name, role, state, created_at, updated_at) "
               "VALUES (1, 'c@x.invalid', 'C', 'C', 'customer', 'active', NOW(), NOW()), "
               "(2, 'a@x.invalid', 'A', 'A', 'agent', 'active', NOW(), NOW()); "
               "INSERT INTO tickets (id, customer_id, agent_id, subject, description, created_at, last_activity) "
               "VALUES (10, 1, 2, 's', 'd', '2020-01-01', '2020-01-03'), (11, 1, NULL, 't', 'd', '2020-01-02', '2020-01-02'); "
               "INSERT INTO messages (id, ticket_id, author_id, body, created_at) VALUES "
               "(100, 10, 1, 'one', '2020-01-02'), (101, 11, 1, 'other', '2020-01-02'), "
               "(102, 10, 2, 'two', '2020-01-03')", database=db)
        st.sql(open(os.path.join(sd, "007-workspace.sql"), encoding="utf-8").read(), database=db)
        rows = st.sql("SELECT ticket_id, kind, actor_id, IFNULL(message_id, '-'), created_at FROM timeline "
                      "ORDER BY ticket_id, id", database=db)
        assert rows == [["10", "created", "1", "-", "2020-01-01 00:00:00"],
                        ["10", "message", "1", "100", "2020-01-02 00:00:00"],
                        ["10", "message", "2", "102", "2020-01-03 00:00:00"],
                        ["11", "created", "1", "-", "2020-01-02 00:00:00"],
                        ["11", "message", "1", "101", "2020-01-02 00:00:00"]], rows
    finally:
        st.sql("DROP DATABASE %s" % db, database=None)

"""The email channel, through `ccr-admin mail-in` as an MTA's pipe runs it:
notifications carry a reply token, threading and the reply marker; replies
built from real notifications (taken from the sink, answered as a mail
client would, quote below) become messages; new mail raises tickets;
automatic mail, spoofing, dead tokens, floods, oversize and garbage end in
the rejected list or are dropped, and nothing is ever added twice.

The tests through a real MTA (Postfix) and a real IMAP server (Dovecot) are
in test_mta.py and test_imap.py.
"""
import email
import email.policy
import email.utils
import hashlib
import html
import os
import re
import subprocess

import helpers
import tickets_util as tu
from helpers import sql_str

SUPPORT = "support@example.com"
TOKEN_RE = re.compile(r"^support\+([a-z0-9]{24})@example\.com$")
W = {}


# ------------------------------------------------------------------ fixtures

def world(ctx):
    return tu.world(ctx, W)


def admin(ctx):
    return tu.world_admin(ctx, W, "Mara", "Mailroot")


def agents(ctx):
    w = world(ctx)
    if "a1" not in w:
        w["a1"], w["a2"] = tu.new_agents(ctx, admin(ctx), [("Milo", "Mailagent"),
                                                           ("Nora", "Mailagenttwo")])
    return w["a1"], w["a2"]


def customer(ctx):
    """A new customer on a client address of its own: the tickets it raises on
    the page spend that address's hourly budget of admin mail, not the one of
    the address other modules share (tickets_util.addr)."""
    return helpers.register(ctx, password=tu.PASSWORD, first="Mina",
                            last="Mailcust" + tu.unique_word("")[:5],
                            client=helpers.Client(ctx.port, helpers.fresh_addr()), prefix="cust",
                            then="/tickets")


def raise_ticket(user, subject=None):
    subject = subject or "Router %s blinks" % tu.unique_word("")
    r = user.s.post("/tickets", {"subject": subject, "description": "It blinks red."})
    assert r.status == 303, "POST /tickets: %d %s" % (r.status, helpers.page_errors(r))
    return int(re.search(r"/tickets/(\d+)", r.location).group(1))


def assign(ctx, tid, agent):
    r = admin(ctx).s.post("/tickets/%d/assign" % tid, {"agent_id": str(agent.id)})
    assert r.status == 303, "assign #%d: %d %s" % (tid, r.status, helpers.page_errors(r))


def mail_in(ctx, raw, sender=None, conf=None):
    """Run ccr-admin mail-in with raw (bytes) on stdin; CompletedProcess (bytes)."""
    args = [ctx.stack.admin_bin, "-c", conf or ctx.stack.conf, "mail-in"]
    if sender is not None:
        args += ["--sender", sender]
    return subprocess.run(args, input=raw, capture_output=True, timeout=60)


def deliver(ctx, raw, sender=None, expect=0):
    p = mail_in(ctx, raw, sender)
    assert p.returncode == expect, "mail-in exit %d (want %d): %s" % (
        p.returncode, expect, p.stderr.decode("utf-8", "replace")[-600:])
    return p


def msgid():
    return "<%s@client.example.net>" % os.urandom(8).hex()


def compose(frm, to, subject, body, headers=(), mid=None, cc=None):
    """A plain-text mail as a client sends it (CRLF line ends, UTF-8 QP)."""
    m = email.message.EmailMessage(policy=email.policy.SMTP)
    m["From"] = frm
    m["To"] = to
    if cc:
        m["Cc"] = cc
    m["Subject"] = subject
    m["Date"] = email.utils.formatdate()
    m["Message-ID"] = mid or msgid()
    for k, v in headers:
        m[k] = v
    m.set_content(body, cte="quoted-printable")
    return m.as_bytes()


def answer(note, frm, text, quote_style="gmail"):
    """A reply to the notification `note` (helpers.Mail) as a mail client
    writes it: To its Reply-To, In-Reply-To/References its Message-ID,
    "Re: " subject, the new text above the quoted notification."""
    quoted = "\n".join("> " + line for line in note.body.splitlines())
    if quote_style == "gmail":
        intro = "On Wed, 2 Dec 2026 at 10:00, Customer Care Registry <noreply@localhost>\nwrote:"
    else:
        intro = "On 2 Dec 2026, at 10:00, Customer Care Registry wrote:"
    body = "%s\n\n%s\n%s\n" % (text, intro, quoted)
    rt = str(note.msg["Reply-To"]).strip().strip("<>")
    return compose(frm, rt, "Re: " + note.subject, body,
                   headers=[("In-Reply-To", str(note.msg["Message-ID"])),
                            ("References", str(note.msg["Message-ID"]))])


def token_of(note):
    rt = str(note.msg.get("Reply-To", "")).strip()
    m = TOKEN_RE.match(rt.strip("<>"))
    assert m, "Reply-To %r is not support+TOKEN@example.com" % rt
    return m.group(1)


def notification(ctx, tid, to, since, what):
    return helpers.wait_mails(ctx, [tu.mail_about(tid, to)], since, what=what)[0]


def unbatch(s):
    """A cell of mariadb -B output as stored (\\n, \\t, \\\\ unescaped)."""
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "0": "\0"}.get(m.group(1), m.group(1)), s)


def messages(ctx, tid):
    return [(int(a), unbatch(b)) for a, b in ctx.sql(
        "SELECT author_id, body FROM messages WHERE ticket_id = %d ORDER BY id" % tid)]


def rejected(ctx, since_id=0):
    return ctx.sql("SELECT id, from_addr, reason, size FROM rejected_mail WHERE id > %d ORDER BY id"
                   % since_id)


def max_id(ctx, table):
    return int(ctx.sql_value("SELECT IFNULL(MAX(id), 0) FROM %s" % table))


def counter(ctx, name):
    return int(ctx.sql_value("SELECT IFNULL(SUM(n), 0) FROM mail_counters WHERE name = %s"
                             % sql_str(name)))


# ------------------------------------------------------------------ outbound

def test_ticket_mail_carries_token_subject_tag_threading_and_marker(ctx):
    c = customer(ctx)
    a1, _a2 = agents(ctx)
    mark = ctx.mail_mark()
    tid = raise_ticket(c)
    first = notification(ctx, tid, c.email, mark, "ticket created")
    assert ("[#%d]" % tid) in first.subject, "subject %r lacks [#%d]" % (first.subject, tid)
    tok = token_of(first)
    assert first.body.splitlines()[0] == "-- Reply above this line to answer ticket #%d --" % tid, \
        "first body line %r" % first.body.splitlines()[:1]
    assert first.msg.get("In-Reply-To") is None, "the first notification replies to nothing"
    # only the hash is stored, and the outbox forgets the Reply-To once sent
    h = hashlib.sha256(tok.encode()).hexdigest()
    assert ctx.sql_value("SELECT COUNT(*) FROM reply_tokens WHERE token_hash = %s AND ticket_id = %d "
                         "AND user_id = %d" % (sql_str(h), tid, c.id)) == "1"
    assert ctx.sql_value("SELECT COUNT(*) FROM reply_tokens WHERE token_hash = %s" % sql_str(tok)) == "0"
    tu.wait_outbox_flushed(ctx, "ticket_id = %d" % tid)
    assert ctx.sql_value("SELECT COUNT(*) FROM outbox WHERE ticket_id = %d AND reply_to IS NOT NULL"
                         % tid) == "0", "a sent mail's Reply-To (a token) stayed in the outbox"
    mark = ctx.mail_mark()
    assign(ctx, tid, a1)
    to_c, to_a = helpers.wait_mails(ctx, [tu.mail_about(tid, c.email), tu.mail_about(tid, a1.email)],
                                    mark, what="assignment mails")
    for m in (to_c, to_a):
        assert str(m.msg["In-Reply-To"]).strip() == str(first.msg["Message-ID"]).strip(), \
            "In-Reply-To %r, want the first notification %r" % (m.msg["In-Reply-To"],
                                                                first.msg["Message-ID"])
        assert str(first.msg["Message-ID"]).strip() in str(m.msg["References"])
        assert "[#%d]" % tid in m.subject
    assert token_of(to_c) != tok, "a token reused: each mail gets a fresh one"
    token_of(to_a)


def test_mail_to_admins_has_no_reply_token(ctx):
    c = customer(ctx)
    adm = admin(ctx)
    mark = ctx.mail_mark()
    tid = raise_ticket(c)
    m = notification(ctx, tid, adm.email, mark, "needs-an-agent mail")
    assert m.msg.get("Reply-To") is None, "an admin who is not on the ticket got a reply token"
    assert not m.body.startswith("-- Reply above"), "no marker without a reply address"


# ------------------------------------------------------------------ replies

def test_customer_reply_by_mail_becomes_message_without_quote(ctx):
    c = customer(ctx)
    a1, _a2 = agents(ctx)
    tid = raise_ticket(c)
    mark = ctx.mail_mark()
    assign(ctx, tid, a1)
    note = notification(ctx, tid, c.email, mark, "assignment mail to the customer")
    mark = ctx.mail_mark()
    text = "Thanks! Unplugging it for 30 s fixed it.\n\nMina"
    deliver(ctx, answer(note, c.email, text))
    got = messages(ctx, tid)
    assert got == [(c.id, text)], "messages %s" % ascii(got)
    page = a1.s.get("/tickets/%d" % tid)
    assert page.status == 200 and "Unplugging it for 30 s fixed it." in html.unescape(page.text)
    assert "Reply above this line" not in html.unescape(page.text), "the quote reached the page"
    # exactly as if posted: the agent is told
    helpers.wait_mails(ctx, [lambda m: a1.email in m.to and "Unplugging" in m.body], mark,
                       what="new-message mail to the agent")


def test_agent_reply_by_mail_with_signature_reaches_customer(ctx):
    c = customer(ctx)
    a1, _a2 = agents(ctx)
    tid = raise_ticket(c)
    mark = ctx.mail_mark()
    assign(ctx, tid, a1)
    note = notification(ctx, tid, a1.email, mark, "assignment mail to the agent")
    mark = ctx.mail_mark()
    deliver(ctx, answer(note, a1.email, "Please try a factory reset.\n\n-- \nMilo, Support",
                        quote_style="apple"))
    assert messages(ctx, tid) == [(a1.id, "Please try a factory reset.")], messages(ctx, tid)
    helpers.wait_mails(ctx, [lambda m: c.email in m.to and "factory reset" in m.body], mark,
                       what="new-message mail to the customer")


def test_same_message_id_twice_adds_once(ctx):
    c = customer(ctx)
    mark = ctx.mail_mark()
    tid = raise_ticket(c)
    note = notification(ctx, tid, c.email, mark, "confirmation")
    raw = answer(note, c.email, "Once only, please.")
    deliver(ctx, raw)
    deliver(ctx, raw)
    assert messages(ctx, tid) == [(c.id, "Once only, please.")], messages(ctx, tid)


def test_customer_reply_reopens_resolved_ticket(ctx):
    c = customer(ctx)
    a1, _a2 = agents(ctx)
    tid = raise_ticket(c)
    assign(ctx, tid, a1)
    mark = ctx.mail_mark()
    r = a1.s.post("/tickets/%d/resolve" % tid, {})
    assert r.status == 303
    note = notification(ctx, tid, c.email, mark, "resolved mail")
    deliver(ctx, answer(note, c.email, "It is back, sorry."))
    assert ctx.sql_value("SELECT status FROM tickets WHERE id = %d" % tid) == "open"


def test_reply_to_closed_ticket_told_once_a_day_and_not_added(ctx):
    c = customer(ctx)
    mark = ctx.mail_mark()
    tid = raise_ticket(c)
    note = notification(ctx, tid, c.email, mark, "confirmation")
    assert c.s.post("/tickets/%d/close" % tid, {}).status == 303
    mark = ctx.mail_mark()
    deliver(ctx, answer(note, c.email, "One more thing."))
    deliver(ctx, answer(note, c.email, "And another."))
    assert messages(ctx, tid) == []
    told = helpers.wait_mails(ctx, [lambda m: c.email in m.to and "is closed" in m.subject], mark,
                              what="the closed notice")[0]
    assert told.msg.get("Reply-To") is None, "the closed notice offers a reply token"
    tu.wait_outbox_flushed(ctx, "kind = 'reply_closed'")
    assert ctx.sql_value("SELECT COUNT(*) FROM outbox WHERE kind = 'reply_closed' AND ticket_id = %d"
                         % tid) == "1", "told more than once a day"


def test_automatic_reply_is_dropped_and_never_answered(ctx):
    c = customer(ctx)
    mark = ctx.mail_mark()
    tid = raise_ticket(c)
    note = notification(ctx, tid, c.email, mark, "confirmation")
    tu.wait_outbox_flushed(ctx, "ticket_id = %d" % tid)
    before = int(ctx.sql_value("SELECT COUNT(*) FROM outbox"))
    rt = str(note.msg["Reply-To"]).strip("<> ")
    shapes = [
        [("Auto-Submitted", "auto-replied")],
        [("X-Autoreply", "yes")],
        [("Precedence", "bulk")],
    ]
    n0 = counter(ctx, "automatic")
    for h in shapes:
        deliver(ctx, compose(c.email, rt, "Out of office", "I am away until Monday.", headers=h))
    # a bounce: null envelope sender, from MAILER-DAEMON
    deliver(ctx, compose("MAILER-DAEMON@mx.example.net", rt, "Undelivered Mail", "550 no such user"),
            sender="")
    assert messages(ctx, tid) == [], "an automatic mail became a message"
    assert int(ctx.sql_value("SELECT COUNT(*) FROM outbox")) == before, "automatic mail was answered"
    assert counter(ctx, "automatic") == n0 + 4


# ------------------------------------------------------------------ new tickets

def test_mail_from_customer_raises_ticket(ctx):
    c = customer(ctx)
    mark = ctx.mail_mark()
    subj = "Invoice %s is wrong" % tu.unique_word("")
    deliver(ctx, compose("Mina <%s>" % c.email, SUPPORT, subj, "The total counts VAT twice.\n\n-- \nMina"))
    rows = ctx.sql("SELECT id, subject, description, priority, status FROM tickets "
                   "WHERE customer_id = %d ORDER BY id" % c.id)
    assert [r[1:] for r in rows] == [[subj, "The total counts VAT twice.", "normal", "open"]], rows
    tid = int(rows[0][0])
    helpers.wait_mails(ctx, [tu.mail_about(tid, c.email)], mark, what="confirmation of a mailed ticket")
    r = c.s.get("/tickets/%d" % tid)
    assert r.status == 200 and subj in html.unescape(r.text)
    # no subject
    deliver(ctx, compose(c.email, SUPPORT, "", "No subject here."))
    assert ctx.sql_value("SELECT subject FROM tickets WHERE customer_id = %d ORDER BY id DESC LIMIT 1"
                         % c.id) == "(no subject)"


def test_forged_subject_tag_without_token_adds_nothing_to_that_ticket(ctx):
    victim = customer(ctx)
    tid = raise_ticket(victim)
    other = customer(ctx)
    deliver(ctx, compose(other.email, SUPPORT, "Re: [#%d] Router blinks" % tid, "I own this now."))
    assert messages(ctx, tid) == [], "a [#N] subject without a token reached ticket #%d" % tid
    assert ctx.sql_value("SELECT COUNT(*) FROM tickets WHERE customer_id = %d" % other.id) == "1"


def test_tickets_per_hour_limit_rejects_the_flood(ctx):
    c = customer(ctx)
    ctx.stack.set_conf("mail_in", "tickets_per_hour", 2)
    try:
        last = max_id(ctx, "rejected_mail")
        for i in range(3):
            deliver(ctx, compose(c.email, SUPPORT, "Flood %d" % i, "Again."))
        assert ctx.sql_value("SELECT COUNT(*) FROM tickets WHERE customer_id = %d" % c.id) == "2"
        rows = rejected(ctx, last)
        assert [r[1:3] for r in rows] == [[c.email, "rate_limited"]], rows
    finally:
        ctx.stack.set_conf("mail_in", "tickets_per_hour", None)


def test_unknown_sender_rejected_by_default_and_customer_made_with_ticket_mode(ctx):
    stranger = ctx.unique_email("stranger")
    last = max_id(ctx, "rejected_mail")
    deliver(ctx, compose(stranger, SUPPORT, "Hello?", "Who are you?"))
    assert [r[1:3] for r in rejected(ctx, last)] == [[stranger, "unknown_sender"]]
    assert ctx.sql_value("SELECT COUNT(*) FROM users WHERE email = %s" % sql_str(stranger)) == "0"
    ctx.stack.set_conf("mail_in", "unknown_senders", "ticket")
    try:
        newbie = ctx.unique_email("newbie")
        deliver(ctx, compose("Nils Newman <%s>" % newbie, SUPPORT, "First contact", "Hi there."))
        u = ctx.sql("SELECT id, role, state, first_name, last_name, password_hash IS NULL FROM users "
                    "WHERE email = %s" % sql_str(newbie))
        assert u and u[0][1:] == ["customer", "active", "Nils", "Newman", "1"], u
        assert ctx.sql_value("SELECT subject FROM tickets WHERE customer_id = %s" % u[0][0]) == \
            "First contact"
    finally:
        ctx.stack.set_conf("mail_in", "unknown_senders", None)


def test_agent_mail_without_token_is_not_a_ticket(ctx):
    a1, _a2 = agents(ctx)
    last = max_id(ctx, "rejected_mail")
    deliver(ctx, compose(a1.email, SUPPORT, "Agents do not raise tickets", "x"))
    assert [r[1:3] for r in rejected(ctx, last)] == [[a1.email, "not_customer"]]


# ------------------------------------------------------------------ spoofing

def test_valid_token_from_another_address_is_rejected(ctx):
    c = customer(ctx)
    mark = ctx.mail_mark()
    tid = raise_ticket(c)
    note = notification(ctx, tid, c.email, mark, "confirmation")
    last = max_id(ctx, "rejected_mail")
    deliver(ctx, answer(note, "attacker@evil.example", "Send me the refund."))
    # the display name and case of the domain do not make another address pass
    deliver(ctx, answer(note, "Mina <%s>" % c.email.replace("@", "x@"), "Still me?"))
    assert messages(ctx, tid) == []
    assert [r[2] for r in rejected(ctx, last)] == ["token_sender", "token_sender"]


def test_token_of_reassigned_or_disabled_agent_adds_nothing(ctx):
    c = customer(ctx)
    a1, a2 = agents(ctx)
    tid = raise_ticket(c)
    mark = ctx.mail_mark()
    assign(ctx, tid, a1)
    note = notification(ctx, tid, a1.email, mark, "assignment mail to a1")
    assign(ctx, tid, a2)
    assert ctx.sql_value("SELECT COUNT(*) FROM reply_tokens WHERE ticket_id = %d AND user_id = %d"
                         % (tid, a1.id)) == "0", "the reassigned agent's tokens survived"
    last = max_id(ctx, "rejected_mail")
    deliver(ctx, answer(note, a1.email, "I still answer here."))
    assert messages(ctx, tid) == []
    assert [r[2] for r in rejected(ctx, last)] == ["bad_token"]
    # reassigned back: the old token stays dead
    assign(ctx, tid, a1)
    deliver(ctx, answer(note, a1.email, "Back again."))
    assert messages(ctx, tid) == []


# ------------------------------------------------------------------ rule 7 and the list

def test_oversize_and_garbage_kept_whole_listed_downloadable_deletable(ctx):
    adm = admin(ctx)
    c = customer(ctx)
    ctx.stack.set_conf("mail_in", "max_bytes", 65536)
    try:
        big = compose(c.email, SUPPORT, "Huge log", "x" * 100 + "\n" + ("A" * 76 + "\n") * 1500)
        garbage = b"\x00\x01 this is not a mail \xff\xfe" * 50
        last = max_id(ctx, "rejected_mail")
        deliver(ctx, big)
        deliver(ctx, garbage)
    finally:
        ctx.stack.set_conf("mail_in", "max_bytes", None)
    rows = rejected(ctx, last)
    assert [r[2] for r in rows] == ["too_large", "unparseable"], rows
    assert int(rows[0][3]) == len(big) and int(rows[1][3]) == len(garbage)
    page = adm.s.get("/admin/mail")
    assert page.status == 200 and "Larger than max_bytes" in page.text
    for (rid, _f, _r, _s), raw in zip(rows, (big, garbage)):
        r = adm.s.get("/admin/mail/%s/raw" % rid)
        assert r.status == 200 and r.body == raw, "download of rejected mail %s differs" % rid
        assert (r.header("Content-Type") or "").startswith("message/rfc822")
    assert c.s.get("/admin/mail").status in (403, 404)
    assert c.s.get("/admin/mail/%s/raw" % rows[0][0]).status in (403, 404)
    r = adm.s.post("/admin/mail/%s/delete" % rows[0][0], {})
    assert r.status == 303
    assert ctx.sql_value("SELECT COUNT(*) FROM rejected_mail_chunks WHERE mail_id = %s" % rows[0][0]) == "0"
    assert adm.s.get("/admin/mail/%s/raw" % rows[0][0]).status == 404


def test_database_down_exit_75_then_delivered_once(ctx):
    c = customer(ctx)
    raw = compose(c.email, SUPPORT, "While the database sleeps", "Queued by the MTA.")
    st = ctx.stack
    st.db_stop()
    try:
        p = mail_in(ctx, raw)
        assert p.returncode == 75, "mail-in with the database down: exit %d %s" % (
            p.returncode, p.stderr[-300:])
    finally:
        st.db_start()
    deliver(ctx, raw)
    deliver(ctx, raw)
    assert ctx.sql_value("SELECT COUNT(*) FROM tickets WHERE customer_id = %d" % c.id) == "1"


def test_metrics_count_the_channel(ctx):
    c = customer(ctx)
    deliver(ctx, compose(c.email, SUPPORT, "Metrics", "count me"))
    r = ctx.get("/metrics")
    assert r.status == 200
    got = dict(re.findall(r'^ccr_mail_in_total\{outcome="(\w+)"\} (\d+)$', r.text, re.M))
    assert int(got.get("received", 0)) >= 1 and int(got.get("ticket", 0)) >= 1, got
    assert "ccr_imap_errors_total" in r.text

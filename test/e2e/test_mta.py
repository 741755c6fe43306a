"""The email channel through a real MTA: a private Postfix
(test/mailservers.py) accepts SMTP for example.com on loopback and pipes each
mail to `ccr-admin mail-in --sender ${sender}` as user nobody, the way
README "Email channel" wires it.  Replies are built from the real
notifications the sink caught, answered as a mail client would (new text
above, the notification quoted below), and sent over SMTP to Postfix.
"""
import html
import os
import smtplib
import sys

import helpers
import stack
import tickets_util as tu
import test_mail as tm

sys.path.insert(0, os.path.join(stack.REPO, "test"))
import mailservers as ms  # noqa: E402


class Mta:
    """A Postfix for one test, piping to this stack's ccr-admin."""

    def __init__(self, ctx, name):
        self.ctx = ctx
        self.pf = ms.Postfix(os.path.join(ctx.stack.var, "postfix", name), ms.free_port(),
                             ctx.stack.admin_bin, ctx.stack.conf)

    def __enter__(self):
        self.pf.start()
        return self.pf

    def __exit__(self, *exc):
        self.pf.stop()


def send(pf, raw, sender, rcpt):
    pf.send(raw, sender, [rcpt])


def reply_rcpt(note):
    return str(note.msg["Reply-To"]).strip().strip("<>")


def test_customer_and_agent_reply_through_postfix_without_quote(ctx):
    c = tm.customer(ctx)
    a1, _a2 = tm.agents(ctx)
    tid = tm.raise_ticket(c)
    mark = ctx.mail_mark()
    tm.assign(ctx, tid, a1)
    to_c, to_a = helpers.wait_mails(ctx, [tu.mail_about(tid, c.email), tu.mail_about(tid, a1.email)],
                                    mark, what="assignment mails")
    with Mta(ctx, "replies") as pf:
        send(pf, tm.answer(to_c, c.email, "The light is green again after the update."),
             c.email, reply_rcpt(to_c))
        pf.wait_empty()
        send(pf, tm.answer(to_a, a1.email, "Good to hear. Anything else?", quote_style="apple"),
             a1.email, reply_rcpt(to_a))
        pf.wait_empty()
        log = pf.maillog()
    got = tm.messages(ctx, tid)
    assert got == [(c.id, "The light is green again after the update."),
                   (a1.id, "Good to hear. Anything else?")], "messages %s; maillog: %s" % (
        ascii(got), log[-800:])
    page = html.unescape(c.s.get("/tickets/%d" % tid).text)
    assert "Anything else?" in page and "Reply above this line" not in page
    assert "status=sent" in log, "Postfix did not deliver through the pipe: %s" % log[-800:]


def test_new_mail_through_postfix_raises_ticket(ctx):
    c = tm.customer(ctx)
    subj = "Parcel %s never came" % tu.unique_word("")
    with Mta(ctx, "newticket") as pf:
        send(pf, tm.compose(c.email, tm.SUPPORT, subj, "Ordered a week ago."), c.email, tm.SUPPORT)
        pf.wait_empty()
    assert ctx.sql_value("SELECT subject FROM tickets WHERE customer_id = %d" % c.id) == subj


def test_bounce_with_null_sender_through_postfix_is_dropped(ctx):
    c = tm.customer(ctx)
    mark = ctx.mail_mark()
    tid = tm.raise_ticket(c)
    note = tm.notification(ctx, tid, c.email, mark, "confirmation")
    n0 = tm.counter(ctx, "automatic")
    with Mta(ctx, "bounce") as pf:
        raw = tm.compose("Mail Delivery System <MAILER-DAEMON@mx.example.net>", reply_rcpt(note),
                         "Undelivered Mail Returned to Sender", "550 5.1.1 user unknown")
        send(pf, raw, "", reply_rcpt(note))
        pf.wait_empty()
    assert tm.messages(ctx, tid) == []
    assert tm.counter(ctx, "automatic") == n0 + 1


def test_database_down_postfix_defers_then_delivers_once(ctx):
    c = tm.customer(ctx)
    subj = "Sent while the database was down %s" % tu.unique_word("")
    st = ctx.stack
    with Mta(ctx, "deferred") as pf:
        st.db_stop()
        try:
            send(pf, tm.compose(c.email, tm.SUPPORT, subj, "Please keep this."), c.email, tm.SUPPORT)
            ctx.wait_until(lambda: "status=deferred" in pf.maillog(), 30,
                           "Postfix to defer the mail (mail-in exit 75)", 0.1)
            assert pf.queue(), "the deferred mail left the queue while the database was down"
        finally:
            st.db_start()
        pf.flush()
        pf.wait_empty(timeout=60)
        log = pf.maillog()
    assert "status=bounced" not in log, "a mail bounced: %s" % log[-800:]
    assert ctx.sql_value("SELECT COUNT(*) FROM tickets WHERE customer_id = %d AND subject = %s"
                         % (c.id, helpers.sql_str(subj))) == "1"


test_database_down_postfix_defers_then_delivers_once.timeout = 150


def test_postfix_refuses_other_domains(ctx):
    """The test MTA is no open relay: it takes mail only for the support domain."""
    with Mta(ctx, "relay") as pf:
        try:
            send(pf, b"From: a@b.test\r\nSubject: x\r\n\r\nx\r\n", "a@b.test",
                 "someone@elsewhere.test")
        except smtplib.SMTPRecipientsRefused:
            return
    raise AssertionError("Postfix relayed to another domain")

"""A real MTA in front of `ccr-admin mail-in`: a private Postfix
(test/mailservers.py) accepting SMTP for example.com and piping each
message to ccr-admin as user nobody.  The harness's own checks: a mail
becomes a ticket, a database outage defers it (exit 75) and a flush
delivers it, another domain is refused (no open relay)."""
import os
import smtplib
import sys

import helpers
import stack
import tickets_util as tu

sys.path.insert(0, os.path.join(stack.REPO, "test"))
import mailservers as ms  # noqa: E402

SUPPORT = "support@example.com"


def postfix(ctx):
    """The module's Postfix (started once per Context, stopped by
    test_mta_zz_stop or at the end of the run with the launcher)."""
    pf = getattr(ctx, "_postfix", None)
    if pf is None:
        ctx.stack.set_mail_in(address=SUPPORT)
        pf = ms.Postfix(os.path.join(ctx.stack.var, "postfix"), ms.free_port(),
                        ctx.stack.admin_bin, ctx.stack.conf)
        pf.start()
        ctx._postfix = pf
    return pf


def ticket_count(ctx, uid, subject):
    return int(ctx.sql_value("SELECT COUNT(*) FROM tickets WHERE customer_id = %d AND subject = %s"
                             % (uid, helpers.sql_str(subject))))


def test_mta_mail_becomes_ticket(ctx):
    pf = postfix(ctx)
    u = tu.register_customer(ctx)
    subject = "By SMTP %s" % os.urandom(3).hex()
    pf.send(ms.new_ticket_mail(u.email, subject, "Sent through Postfix."), u.email, [SUPPORT])
    pf.wait_empty()
    ctx.wait_until(lambda: ticket_count(ctx, u.id, subject) == 1, 10, "the ticket")
    assert "status=sent" in pf.maillog(), pf.maillog()[-600:]


def test_mta_database_down_defers_then_flush_delivers(ctx):
    st = ctx.stack
    pf = postfix(ctx)
    u = tu.register_customer(ctx)
    subject = "Deferred %s" % os.urandom(3).hex()
    st.db_stop()
    try:
        pf.send(ms.new_ticket_mail(u.email, subject, "While MariaDB was down."), u.email,
                [SUPPORT])
        ctx.wait_until(lambda: "status=deferred" in pf.maillog(), 20, "a deferral in the maillog")
        assert pf.queue(), "the mail left the queue while the database was down"
    finally:
        st.db_start()
    pf.flush()
    pf.wait_empty(30)
    assert ticket_count(ctx, u.id, subject) == 1
    st.wait_healthy()


def test_mta_refuses_other_domains(ctx):
    pf = postfix(ctx)
    try:
        pf.send(b"From: a@b.test\r\nSubject: x\r\n\r\nx\r\n", "a@b.test", ["someone@elsewhere.test"])
    except smtplib.SMTPRecipientsRefused:
        return
    raise AssertionError("Postfix relayed to another domain")


def test_mta_zz_stop(ctx):
    pf = getattr(ctx, "_postfix", None)
    if pf:
        pf.stop()
        ctx._postfix = None
        ctx.wait_until(lambda: pf.master_pid() is None or not stack.alive(pf.master_pid()), 15,
                       "postfix to stop")

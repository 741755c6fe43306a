"""The IMAP fetcher against a real Dovecot (test/mailservers.py): every
message processed once and moved to the done folder, through kill -9 of
the fetcher, a dropped IMAP connection, a database outage and two fetchers
on one mailbox.

Each test starts its own Dovecot (fresh mailbox, fresh UIDVALIDITY), points
the stack's ccrd at it ([mail_in] imap_* keys, SIGHUP) and turns the fetcher
off again at the end, so later modules see no fetcher.
"""
import collections
import os
import re
import signal
import sys
import time

import faults_util as fu
import helpers
import stack
import tickets_util as tu

sys.path.insert(0, os.path.join(stack.REPO, "test"))
import mailservers as ms  # noqa: E402

SUPPORT = "support@example.com"


# ------------------------------------------------------------------ set-up

def metric(ctx, name):
    """The value of one counter of GET /metrics (0 when absent)."""
    r = ctx.get("/metrics")
    assert r.status == 200, "GET /metrics: %d" % r.status
    m = re.search(r"^%s(?:\{[^}]*\})? (\d+)$" % re.escape(name), r.text, re.M)
    return int(m.group(1)) if m else 0


class Imap:
    """A private Dovecot for one test and the stack's fetcher pointed at it."""

    def __init__(self, ctx, name, capability=None, tls=False, **conf):
        self.ctx = ctx
        self.st = ctx.stack
        self.dir = os.path.join(self.st.var, "imap", name)
        self.dv = ms.Dovecot(self.dir, ms.free_port(), capability=capability,
                             tls_port=ms.free_port() if tls else None)
        self.conf = dict(ms.fetcher_keys(self.dv), address=SUPPORT, tickets_per_hour="100000")
        self.conf.update(conf)

    def __enter__(self):
        self.dv.start()
        return self

    def fetcher_on(self, timeout=20):
        """Write the keys, SIGHUP, wait for the new generation's fetcher."""
        mark = self.ctx.log_mark()
        self.st.set_mail_in(**self.conf)
        self.st.ccrd_signal(signal.SIGHUP)
        self.ctx.wait_until(lambda: "reloaded " in self.ctx.log_since(mark) and
                            "fetcher started as" in self.ctx.log_since(mark), timeout,
                            "ccrd to reload and start its fetcher", 0.05)
        pids = self.ctx.wait_until(self.st.fetcher_pids, 10, "the fetcher among ccrd's children")
        assert len(pids) == 1, "fetchers: %s" % pids
        return pids[0]

    def fetcher_off(self, timeout=20):
        mark = self.ctx.log_mark()
        self.st.set_mail_in(**{k: None for k in self.conf if k.startswith("imap_")})
        self.st.ccrd_signal(signal.SIGHUP)
        self.ctx.wait_until(lambda: "reloaded " in self.ctx.log_since(mark) and
                            not self.st.fetcher_pids(), timeout, "the fetcher to stop", 0.05)

    def __exit__(self, *exc):
        try:
            if self.st.ccrd_pid():
                self.fetcher_off()
        finally:
            self.dv.stop()

    def drop_tickets(self, sender, n, tag):
        """n new-ticket mails from sender; returns their subjects."""
        subjects = []
        for i in range(n):
            s = "IMAP %s %03d" % (tag, i)
            self.dv.drop(ms.new_ticket_mail(sender, s, "Body of %s." % s))
            subjects.append(s)
        return subjects

    def wait_drained(self, n_done, timeout=60):
        """INBOX empty and at least n_done messages in the done folder."""
        self.ctx.wait_until(lambda: self.dv.count("INBOX") == 0 and
                            self.dv.count(self.dv.done) >= n_done, timeout,
                            "INBOX empty and %d messages in %s (now %d / %d)" % (
                                n_done, self.dv.done, self.dv.count("INBOX"),
                                self.dv.count(self.dv.done)), 0.1)


def tickets_by_subject(ctx, customer_id, tag):
    rows = ctx.sql("SELECT id, subject FROM tickets WHERE customer_id = %d AND subject LIKE %s"
                   % (customer_id, helpers.sql_str("IMAP %s %%" % tag)))
    return collections.Counter(r[1] for r in rows), {r[1]: int(r[0]) for r in rows}


def message_ids(raws):
    out = collections.Counter()
    for raw in raws:
        m = re.search(rb"^Message-ID: *(<[^>\r\n]+>)", raw, re.M | re.I)
        out[m.group(1).decode() if m else None] += 1
    return out


def delivered_twice(ctx, mark):
    """mail-in lines saying a mail was a duplicate (delivered before)."""
    return [l for l in ctx.log_since(mark).splitlines() if "mail-in: duplicate" in l]


def check_all_once(ctx, im, u, tag, subjects):
    """Every subject is exactly one ticket of u; every message of INBOX is
    now in the done folder (by Message-ID), none left behind."""
    counts, _ids = tickets_by_subject(ctx, u.id, tag)
    missing = [s for s in subjects if counts[s] == 0]
    twice = [s for s in subjects if counts[s] > 1]
    assert not missing and not twice, "tickets missing %s, made twice %s" % (missing[:5], twice[:5])
    assert im.dv.count("INBOX") == 0, "left in INBOX: %d" % im.dv.count("INBOX")
    done = message_ids(im.dv.messages(im.dv.done))
    assert len(done) >= len(subjects), "done folder holds %d distinct messages of %d" % (
        len(done), len(subjects))
    # every claim is dropped once its message is moved; one left by a
    # fetcher killed (or cut off from the database) between the move and
    # the drop goes at the fetcher's next poll
    ctx.wait_until(lambda: ctx.sql_value("SELECT COUNT(*) FROM imap_claims") == "0", 5,
                   "imap_claims to empty (left: %s)" % ctx.sql("SELECT uid, claimed_by "
                                                              "FROM imap_claims"))


# ------------------------------------------------------------------ tests

def test_imap_mailbox_processed_once_and_moved(ctx):
    """Mails in a Dovecot INBOX: each new-ticket mail becomes one ticket
    (database and pages), a reply to the notification's Reply-To becomes a
    message on it, a second copy of a mail changes nothing; all end up in
    the done folder, none left; ccr_imap_fetched_total counts them; the
    startup log mentions the fetcher; the password never reaches the log."""
    u = tu.register_customer(ctx)
    tag = os.urandom(3).hex()
    mark = ctx.log_mark()
    with Imap(ctx, "once") as im:
        subjects = im.drop_tickets(u.email, 5, tag)
        fetched0 = metric(ctx, "ccr_imap_fetched_total")
        mails = ctx.mail_mark()
        im.fetcher_on()
        im.wait_drained(5)
        check_all_once(ctx, im, u, tag, subjects)
        _c, ids = tickets_by_subject(ctx, u.id, tag)
        assert metric(ctx, "ccr_imap_fetched_total") - fetched0 == 5
        outcomes = ctx.sql("SELECT outcome FROM mail_in WHERE ticket_id IN (%s)"
                           % ",".join(map(str, ids.values())))
        assert sorted(o[0] for o in outcomes) == ["ticket"] * 5, outcomes
        # the pages: the list and each ticket
        r = u.s.get("/tickets")
        assert r.status == 200
        for s in subjects:
            assert s in r.text, "GET /tickets lacks %r" % s
        tid = ids[subjects[0]]
        r = u.s.get("/tickets/%d" % tid)
        assert r.status == 200 and "Body of %s." % subjects[0] in r.text, r.status
        # the notification carries a reply address; a reply to it is a message
        m = helpers.wait_mails(ctx, [tu.mail_about(tid, u.email)], mails, 20,
                               "the ticket_created mail of #%d" % tid)[0]
        reply_to = str(m.msg.get("Reply-To", ""))
        assert re.search(r"support\+[a-z0-9]+@example\.com", reply_to), \
            "Reply-To %r" % reply_to
        text = "Reply by mail %s." % tag
        raw = ms.new_ticket_mail(u.email, "Re: " + m.subject, text, to=reply_to)
        im.dv.drop(raw)
        im.wait_drained(6)
        ctx.wait_until(lambda: ctx.sql_value(
            "SELECT COUNT(*) FROM messages WHERE ticket_id = %d AND body = %s"
            % (tid, helpers.sql_str(text))) == "1", 10, "the reply as a message")
        r = u.s.get("/tickets/%d" % tid)
        assert text in r.text, "the ticket page lacks the mailed reply"
        # the same mail again (an MTA retry, a copy): a no-op, moved all the same
        im.dv.drop(raw)
        im.wait_drained(7)
        assert ctx.sql_value("SELECT COUNT(*) FROM messages WHERE ticket_id = %d AND body = %s"
                             % (tid, helpers.sql_str(text))) == "1"
        assert metric(ctx, "ccr_imap_fetched_total") - fetched0 == 7
    log = ctx.log_since(mark)
    assert "and an IMAP fetcher" in log, "the reload line does not mention the fetcher"
    assert im.dv.password not in log, "the IMAP password is in ccrd's log"
    assert len(delivered_twice(ctx, mark)) == 1, delivered_twice(ctx, mark)


test_imap_mailbox_processed_once_and_moved.timeout = 120


def test_imap_fetcher_kill9_mid_batch(ctx):
    """kill -9 of the fetcher while it works through 60 mails: the master
    starts another, which takes over the dead one's claim at once; every
    mail becomes exactly one ticket and all are moved."""
    u = tu.register_customer(ctx)
    tag = os.urandom(3).hex()
    n = 60
    mark = ctx.log_mark()
    with Imap(ctx, "kill9") as im:
        subjects = im.drop_tickets(u.email, n, tag)
        pid = im.fetcher_on()
        ctx.wait_until(lambda: im.dv.count(im.dv.done) >= 5, 30, "the fetcher to begin", 0.01)
        os.kill(pid, signal.SIGKILL)
        left = im.dv.count("INBOX")
        assert left > 0, "the batch was over before the kill: use more mails"
        new = ctx.wait_until(lambda: [p for p in ctx.stack.fetcher_pids() if p != pid], 20,
                             "a new fetcher")
        im.wait_drained(n, 90)
        check_all_once(ctx, im, u, tag, subjects)
        log = ctx.log_since(mark)
        assert re.search(r"fetcher %d killed by signal 9" % pid, log), "the master did not log it"
        # at most the mail in flight was delivered twice (a no-op the second time)
        assert len(delivered_twice(ctx, mark)) <= 1, delivered_twice(ctx, mark)
        assert new


test_imap_fetcher_kill9_mid_batch.timeout = 150


def test_imap_server_dropped_mid_batch(ctx):
    """Dovecot killed (every process, so the connection drops) and started
    again while the fetcher works: no mail lost or doubled, the errors
    counted in ccr_imap_errors_total and logged with curl's words."""
    u = tu.register_customer(ctx)
    tag = os.urandom(3).hex()
    n = 60
    mark = ctx.log_mark()
    with Imap(ctx, "drop") as im:
        subjects = im.drop_tickets(u.email, n, tag)
        errors0 = metric(ctx, "ccr_imap_errors_total")
        im.fetcher_on()
        ctx.wait_until(lambda: im.dv.count(im.dv.done) >= 5, 30, "the fetcher to begin", 0.01)
        im.dv.kill()
        assert im.dv.count("INBOX") > 0, "the batch was over before the kill"
        ctx.wait_until(lambda: metric(ctx, "ccr_imap_errors_total") > errors0, 15,
                       "an IMAP error counted while Dovecot is down", 0.1)
        time.sleep(1.5)                     # a few failed polls
        im.dv.start()
        im.wait_drained(n, 90)
        check_all_once(ctx, im, u, tag, subjects)
        log = ctx.log_since(mark)
        assert re.search(r"fetcher: .* failed: .*\(curl \d+\)", log), "no curl error logged"
        assert len(delivered_twice(ctx, mark)) <= 1, delivered_twice(ctx, mark)


test_imap_server_dropped_mid_batch.timeout = 150


def test_imap_database_down_keeps_mail_on_server(ctx):
    """MariaDB stopped while the fetcher works: what is not delivered stays
    in INBOX (nothing is moved without its outcome committed), the fetcher
    says so and waits; after MariaDB is back every mail is one ticket."""
    st = ctx.stack
    u = tu.register_customer(ctx)
    tag = os.urandom(3).hex()
    n = 60
    mark = ctx.log_mark()
    with Imap(ctx, "dbdown") as im:
        subjects = im.drop_tickets(u.email, n, tag)
        im.fetcher_on()
        try:
            ctx.wait_until(lambda: im.dv.count(im.dv.done) >= 3, 30, "the fetcher to begin",
                           0.01)
            st.db_stop()
            t_down = time.monotonic()
            time.sleep(2)
            inbox, done = im.dv.count("INBOX"), im.dv.count(im.dv.done)
            assert inbox > 0, "all %d delivered before MariaDB stopped" % n
            time.sleep(2)
            assert (im.dv.count("INBOX"), im.dv.count(im.dv.done)) == (inbox, done), \
                "messages moved while the database was down"
            assert "database unavailable" in ctx.log_since(mark), "the fetcher did not say so"
        finally:
            st.db_start()
        im.wait_drained(n, 90)
        assert time.monotonic() - t_down > 4
        check_all_once(ctx, im, u, tag, subjects)
    st.wait_healthy()


test_imap_database_down_keeps_mail_on_server.timeout = 180


def test_imap_two_fetchers_never_process_twice(ctx):
    """Two ccrd masters on one database, each with a fetcher on the same
    mailbox, released at the same moment on 100 mails (Dovecot frozen while
    both connect): each mail delivered once (no "duplicate" outcome: the
    claims kept the fetchers apart, not the Message-ID rule), all moved."""
    st = ctx.stack
    u = tu.register_customer(ctx)
    tag = os.urandom(3).hex()
    n = 100
    mark = ctx.log_mark()
    with Imap(ctx, "two") as im:
        st.set_mail_in(**im.conf)
        b = fu.ExtraCcrd(st, "ccrd-imap-b", os.path.join(st.var, "imap", "two-b"), workers=1)
        try:
            b.start()
            im.fetcher_on()
            time.sleep(1.2)              # both have polled the empty INBOX
            im.dv.freeze()
            try:
                subjects = im.drop_tickets(u.email, n, tag)
                time.sleep(2.5)          # both are waiting on their next session
            finally:
                im.dv.thaw()
            im.wait_drained(n, 90)
            b_log = fu.read_from(b.log)
        finally:
            b.stop()
        check_all_once(ctx, im, u, tag, subjects)
        twice = delivered_twice(ctx, mark) + [l for l in b_log.splitlines()
                                              if "mail-in: duplicate" in l]
        assert not twice, "delivered twice: %s" % twice[:3]
        a_moved = len(re.findall(r"fetcher: uid \d+: ticket, moved", ctx.log_since(mark)))
        b_moved = len(re.findall(r"fetcher: uid \d+: ticket, moved", b_log))
        fu.measure("imap two fetchers: a moved %d, b moved %d", a_moved, b_moved)
        assert a_moved + b_moved == n, (a_moved, b_moved)
        # the race took place: both moved mail, or one trailed the other and
        # met UIDs the other had claimed and moved meanwhile
        gone = len(re.findall(r"fetcher: uid \d+ no longer in", ctx.log_since(mark) + b_log))
        assert (a_moved and b_moved) or gone, "the fetchers never met: %d / %d" % (
            a_moved, b_moved)


test_imap_two_fetchers_never_process_twice.timeout = 180


def test_imap_too_large_rejected_whole_or_capped_and_moved(ctx):
    """max_bytes = 64 KiB: a 200 KiB mail is fetched whole and rejected as
    too large; a 3 MiB one is fetched only up to max_bytes + 1 MiB and
    rejected as too large with that much kept; both moved.  With a 60 s
    poll interval, turning the fetcher off stops it at once (its wait ends
    on SIGTERM)."""
    cap = 65536 + 1024 * 1024
    before = int(ctx.sql_value("SELECT IFNULL(MAX(id), 0) FROM rejected_mail"))
    with Imap(ctx, "large", max_bytes="65536", imap_poll_interval="60") as im:
        pad = "x" * 76 + "\r\n"
        mid = ms.new_ticket_mail("big@example.com", "Mid-size", pad * (200 * 1024 // 78))
        huge = ms.new_ticket_mail("big@example.com", "Huge", pad * (3 * 1024 * 1024 // 78))
        im.dv.drop(mid)
        im.dv.drop(huge)
        mark = ctx.log_mark()
        im.fetcher_on()
        im.wait_drained(2, 30)
        rows = ctx.sql("SELECT reason, size FROM rejected_mail WHERE id > %d ORDER BY id" % before)
        # (UIDs follow Dovecot's scan of new/, not the order of the drops)
        assert sorted(rows, key=lambda r: int(r[1])) == [["too_large", str(len(mid))],
                                                         ["too_large", str(cap)]], rows
        kept = ctx.sql_value("SELECT SUM(LENGTH(c.data)) FROM rejected_mail_chunks c JOIN "
                             "rejected_mail m ON m.id = c.mail_id WHERE m.id > %d AND m.size = %d"
                             % (before, cap))
        assert kept == str(cap), kept
        got = b"".join(bytes.fromhex(r[0]) for r in ctx.sql(
            "SELECT HEX(c.data) FROM rejected_mail_chunks c JOIN rejected_mail m ON "
            "m.id = c.mail_id WHERE m.id > %d AND m.size = %d ORDER BY c.seq" % (before, cap)))
        diff = next((i for i in range(min(len(got), cap)) if got[i] != huge[i]), None)
        assert got == huge[:cap], "kept %d bytes, first difference at %s: %r / %r" % (
            len(got), diff, got[diff:diff + 40] if diff is not None else b"",
            huge[diff:diff + 40] if diff is not None else b"")
        assert "larger than %d bytes" % (cap - 1) in ctx.log_since(mark)
        t0 = time.monotonic()
        im.fetcher_off()
        assert time.monotonic() - t0 < 5, "the fetcher took %.1f s to stop" % (time.monotonic() - t0)


test_imap_too_large_rejected_whole_or_capped_and_moved.timeout = 90


def test_imap_bad_imap_url_is_a_bad_config(ctx):
    """An imap_url naming a folder (the folder is imap_folder): the fetcher
    exits EX_BADCONF (78) and the master with it, saying why."""
    st = ctx.stack
    d = os.path.join(st.var, "imap", "badconf")
    b = fu.ExtraCcrd(st, "ccrd-badconf", d, workers=1, overrides={"mail_in": dict(
        ms.fetcher_keys(ms.Dovecot(d, 1)), address=SUPPORT, imap_url="imap://127.0.0.1:1/INBOX")})
    b.write_conf()
    with open(b.log, "ab") as out:
        p = stack.spawn([st.ccrd_bin, "-c", b.conf], stdout=out, stderr=out)
    try:
        rc = p.wait(20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        stack.kill_group(p.pid)
    log = fu.read_from(b.log)
    assert rc == 78, "ccrd exited %s: %s" % (rc, log[-600:])
    assert "imap_url names the server only" in log, log[-600:]
    assert "fetcher" in log and "bad configuration" in log, log[-600:]


def test_imap_starttls_required_refuses_a_plaintext_server(ctx):
    """imap_starttls = required against a server that offers no STARTTLS:
    the fetcher never logs in (no password in clear), counts and logs the
    error, and the mail stays in INBOX."""
    with Imap(ctx, "tls", imap_starttls="required") as im:
        im.dv.drop(ms.new_ticket_mail("tls@example.com", "TLS", "Never fetched."))
        errors0 = metric(ctx, "ccr_imap_errors_total")
        mark = ctx.log_mark()
        im.fetcher_on()
        ctx.wait_until(lambda: metric(ctx, "ccr_imap_errors_total") >= errors0 + 2, 15,
                       "two failed polls counted", 0.1)
        assert im.dv.count("INBOX") == 1 and im.dv.count(im.dv.done) == 0
        assert re.search(r"fetcher: .*failed: .*STARTTLS.*\(curl \d+\)", ctx.log_since(mark)), \
            ctx.log_since(mark)[-600:]
        with open(im.dv.log_path, errors="replace") as f:
            assert "Login: user=" not in f.read(), "the fetcher logged in without TLS"


BASE_CAPS = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ NAMESPACE"


def test_imap_without_move_copies_flags_and_expunges(ctx):
    """A server that does not advertise MOVE: the fetcher copies, flags
    \\Deleted and expunges - with UIDPLUS by UID (UID EXPUNGE), without it
    by a plain EXPUNGE; either way every mail is one ticket, in the done
    folder once, none left in INBOX (nor flagged there)."""
    u = tu.register_customer(ctx)
    for caps in (BASE_CAPS + " UIDPLUS", BASE_CAPS):
        tag = os.urandom(3).hex()
        with Imap(ctx, "nomove-" + tag, capability=caps) as im:
            subjects = im.drop_tickets(u.email, 8, tag)
            im.fetcher_on()
            im.wait_drained(8)
            check_all_once(ctx, im, u, tag, subjects)
            done = message_ids(im.dv.messages(im.dv.done))
            assert len(done) == 8 and set(done.values()) == {1}, done
        # Dovecot's session summaries (all written now: the fetcher and the
        # server stopped) count messages flagged \\Deleted (STORE) and
        # expunged; a MOVE flags none
        with open(im.dv.log_path, errors="replace") as f:
            log = f.read()
        flagged = sum(int(x) for x in re.findall(r"\bdeleted=(\d+)", log))
        gone = sum(int(x) for x in re.findall(r"\bexpunged=(\d+)", log))
        assert (flagged, gone) == (8, 8), "Dovecot counted deleted=%d expunged=%d (%s)" % (
            flagged, gone, caps)


test_imap_without_move_copies_flags_and_expunges.timeout = 120


def test_imap_tls_certificate_is_verified(ctx):
    """A server whose certificate nobody signed: refused over imaps:// and
    over imap:// with STARTTLS alike (curl's certificate error logged and
    counted), never logged in to, the mail left in INBOX."""
    with Imap(ctx, "cert", tls=True) as im:
        im.dv.drop(ms.new_ticket_mail("cert@example.com", "Cert", "Never fetched."))
        for url, starttls in (("imaps://127.0.0.1:%d" % im.dv.tls_port, "required"),
                              (im.dv.url, "required")):
            im.conf.update(imap_url=url, imap_starttls=starttls)
            errors0 = metric(ctx, "ccr_imap_errors_total")
            mark = ctx.log_mark()
            im.fetcher_on()
            ctx.wait_until(lambda: metric(ctx, "ccr_imap_errors_total") >= errors0 + 2, 15,
                           "two failed polls counted (%s)" % url, 0.1)
            log = ctx.log_since(mark)
            assert re.search(r"fetcher: .*failed: .*certificate.*\(curl 60\)", log), log[-600:]
            im.fetcher_off()
        assert im.dv.count("INBOX") == 1 and im.dv.count(im.dv.done) == 0
        with open(im.dv.log_path, errors="replace") as f:
            assert "Login: user=" not in f.read(), "the fetcher logged in to an untrusted server"

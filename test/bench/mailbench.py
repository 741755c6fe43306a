#!/usr/bin/python3
"""mailbench.py — messages per second through the email channel (`make bench`,
or alone: `make bench-mail`).

A private stack (test/stack.py: MariaDB, the schema) in a temporary folder;
ccrd is stopped once the schema is in, so the outbox keeps each ticket
mail's Reply-To and no mailer competes for the cores.  Then, side by side in
one run:

  new      N mails from N/10 customers to the support address (each raises a
           ticket, its confirmation and the admins' mail queued);
  reply    N replies, each with the reply token of a real notification
           (taken from the outbox) and a quoted body (each becomes a message);
  dup      the same N replies again (each found by its Message-ID: nothing new);

each through `ccr-admin mail-in` one at a time (as an MTA's pipe with a
destination concurrency of 1 runs it) and two at a time (one per core);
then the same number of new-ticket mails through ccrd's IMAP fetcher from a
private Dovecot (test/mailservers.py), timed from the fetcher's start until
the INBOX is empty (claim, fetch, rules, move for each).
CPU per message: ccr-admin's user+system time (rusage of the children) and
mariadbd's (from /proc), divided by the messages.

Writes the "Email channel" section of RESULTS.md (replaced in place) and
the "mail_in" key of RESULTS.json.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.dont_write_bytecode = True
import stack  # noqa: E402
import sections  # noqa: E402
import mailservers  # noqa: E402

START = "<!-- mail-in: written by test/bench/mailbench.py -->"
END = "<!-- /mail-in -->"


def proc_cpu(pid, reaped=False):
    """user+system seconds of one process (from /proc/PID/stat); reaped: plus
    those of its children it has waited for."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_cpu_tree(pid):
    """user+system seconds of pid, its reaped children and its live ones (ccrd's
    master, and its fetcher whether or not it has exited since)."""
    total = proc_cpu(pid, reaped=True)
    for c in stack.children_of(pid):
        try:
            total += proc_cpu(c)
        except OSError:
            pass
    return total


def children_cpu():
    r = os.times()
    return r.children_user + r.children_system


def mail(frm, to, subject, body, mid, extra=""):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s@bench.example.net>\r\n%sMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s"
            % (frm, to, subject, mid, extra, body.replace("\n", "\r\n"))).encode()


def pipe(st, raw):
    p = subprocess.run([st.admin_bin, "-c", st.conf, "mail-in"], input=raw,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise stack.StackError("mail-in exit %d: %s" % (p.returncode, p.stderr[-300:]))


def timed(st, raws, conc):
    db_pid = st.db_pid()
    c0, d0, t0 = children_cpu(), proc_cpu(db_pid), time.monotonic()
    if conc == 1:
        for r in raws:
            pipe(st, r)
    else:
        with ThreadPoolExecutor(conc) as ex:
            list(ex.map(lambda r: pipe(st, r), raws))
    t = time.monotonic() - t0
    n = len(raws)
    return {"n": n, "conc": conc, "seconds": round(t, 3), "per_s": round(n / t, 1),
            "admin_cpu_ms": round(1000 * (children_cpu() - c0) / n, 2),
            "db_cpu_ms": round(1000 * (proc_cpu(db_pid) - d0) / n, 2)}


def run(a):
    tmp = tempfile.mkdtemp(prefix="ccr-mailbench-")
    os.chmod(tmp, 0o755)   # Dovecot reads its mailbox as uid 65534
    port = stack.pick_free_port()
    st = stack.Stack(os.path.join(tmp, "var"), port, require_2fa="none", workers=2,
                     extra_conf={"mail_in": {"tickets_per_hour": "100000"}})
    res = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "n": a.n, "rows": [],
           "load_start": open("/proc/loadavg").read().split()[:3]}
    try:
        st.start()
        st.ccrd_stop()
        ncust = max(1, a.n // 10)
        st.sql("INSERT INTO users (email, first_name, last_name, role, state, created_at, updated_at) "
               "VALUES " + ",".join("('bench%d@example.org', 'Bench', 'Customer%d', 'customer', "
                                    "'active', NOW(), NOW())" % (i, i) for i in range(ncust)))
        body = ("My order %d has not arrived. The tracking page says it was delivered\n"
                "yesterday, but nobody rang and there is nothing at the door.\n\n-- \nBench")
        for conc in (1, 2):
            tag = "c%d" % conc
            new = [mail("Bench Customer <bench%d@example.org>" % (i % ncust), "support@example.com",
                        "Order %d missing" % i, body % i, "%s-new-%d" % (tag, i)) for i in range(a.n)]
            row = timed(st, new, conc)
            row["kind"] = "new"
            res["rows"].append(row)
            # the customers' confirmations, still pending, hold real reply tokens
            got = st.sql("SELECT o.reply_to, t.customer_id, t.subject, u.email FROM outbox o "
                         "JOIN tickets t ON t.id = o.ticket_id JOIN users u ON u.id = t.customer_id "
                         "WHERE o.kind = 'ticket_created' AND o.reply_to IS NOT NULL "
                         "AND t.subject LIKE 'Order %%' ORDER BY o.id DESC LIMIT %d" % a.n)
            replies = [mail(email, rt, "Re: [#x] " + subj,
                            "Still nothing, please check.\n\nOn Thu, 3 Dec 2026, Support wrote:\n"
                            "> We received your ticket\n> " + subj + "\n",
                            "%s-re-%d" % (tag, i))
                       for i, (rt, _cid, subj, email) in enumerate(got)]
            row = timed(st, replies, conc)
            row["kind"] = "reply"
            res["rows"].append(row)
            row = timed(st, replies, conc)
            row["kind"] = "dup"
            res["rows"].append(row)
        msgs = int(st.sql("SELECT COUNT(*) FROM messages")[0][0])
        tickets = int(st.sql("SELECT COUNT(*) FROM tickets")[0][0])
        if tickets != 2 * a.n or msgs != 2 * a.n:
            raise stack.StackError("expected %d tickets and messages, got %d and %d"
                                   % (2 * a.n, tickets, msgs))
        # The mail-in rows left ~3n notifications pending (ccrd was stopped):
        # drop them, or the mailer drains that backlog while the fetcher is
        # timed (it did: 78/s, with ccrd and mariadbd CPU doubled by the
        # mailer's).  The fetcher's own tickets still queue mail, sent as
        # it goes, as on a live system.
        st.sql("UPDATE outbox SET status = 'dropped', last_error = 'bench backlog' "
               "WHERE status = 'pending'")
        st.ccrd_start()
        c0, d0 = proc_cpu_tree(st.ccrd_pid()), proc_cpu(st.db_pid())
        rate, secs, dv_cpu = mailservers.fetcher_rate(st, os.path.join(tmp, "dovecot"), n=a.n)
        res["fetcher"] = {"n": a.n, "seconds": round(secs, 2), "per_s": round(rate, 1),
                          "dovecot_cpu_ms": round(1000 * dv_cpu / a.n, 2),
                          "ccrd_cpu_ms": round(1000 * (proc_cpu_tree(st.ccrd_pid()) - c0) / a.n, 2),
                          "db_cpu_ms": round(1000 * (proc_cpu(st.db_pid()) - d0) / a.n, 2)}
        if int(st.sql("SELECT COUNT(*) FROM tickets")[0][0]) != 3 * a.n:
            raise stack.StackError("the fetcher did not raise %d tickets" % a.n)
    finally:
        st.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    res["load_end"] = open("/proc/loadavg").read().split()[:3]
    return res


def report(res):
    lines = [START, "## Email channel (`ccr-admin mail-in`)", "",
             "Generated by test/bench/mailbench.py on %s: %d mails per row through "
             "`ccr-admin mail-in` against the private MariaDB (ccrd stopped), one process at a "
             "time and two at a time. CPU per message: ccr-admin (user+system) and mariadbd. "
             "new: a mail from a customer raises a ticket; reply: a reply with a real token "
             "becomes a message; dup: the same replies again, recognised by Message-ID. "
             "Load average %s at the start, %s at the end (the machine is shared)."
             % (res["started"], res["n"], " ".join(res["load_start"]), " ".join(res["load_end"])), "",
             "| mails | at once | mails/s | ccr-admin CPU ms/mail | mariadbd CPU ms/mail |",
             "|---|---:|---:|---:|---:|"]
    for r in res["rows"]:
        lines.append("| %s | %d | %.0f | %.1f | %.1f |" % (r["kind"], r["conc"], r["per_s"],
                                                         r["admin_cpu_ms"], r["db_cpu_ms"]))
    if res.get("fetcher"):
        f = res["fetcher"]
        lines += ["", "IMAP fetcher (ccrd's, one process, one IMAP session): %d new-ticket "
                  "messages from a local Dovecot in %.1f s: **%.0f messages/s**; CPU per message: "
                  "ccrd %.1f ms (fetcher, and the mailer sending the new tickets' mail), "
                  "mariadbd %.1f ms, Dovecot %.1f ms."
                  % (f["n"], f["seconds"], f["per_s"], f["ccrd_cpu_ms"], f["db_cpu_ms"],
                     f["dovecot_cpu_ms"])]
    lines += ["", END, ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--md", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--json", default=os.path.join(HERE, "RESULTS.json"))
    a = ap.parse_args()
    res = run(a)
    for r in res["rows"]:
        print("mail-in %-5s x%d: %7.1f mails/s, ccr-admin %.1f ms, mariadbd %.1f ms CPU per mail"
              % (r["kind"], r["conc"], r["per_s"], r["admin_cpu_ms"], r["db_cpu_ms"]))
    f = res["fetcher"]
    print("fetcher: %.1f messages/s (%d in %.1f s), ccrd %.1f ms, mariadbd %.1f ms CPU per message"
          % (f["per_s"], f["n"], f["seconds"], f["ccrd_cpu_ms"], f["db_cpu_ms"]))
    sections.write(a.md, a.json, START, END, report(res), "mail_in", res)


if __name__ == "__main__":
    try:
        main()
    except stack.StackError as e:
        print("mailbench: %s" % e, file=sys.stderr)
        sys.exit(1)

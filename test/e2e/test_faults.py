"""Fault suite (issue 6): killed workers and crash storms, reloads and
graceful stop under load, MariaDB stopped and frozen, SMTP down / 4xx / 5xx /
stalled / slow, two masters on one database, full disks.

Loads are bounded: four client threads on loopback (like wrk -c4), through
the stack's nginx.  Every test prints what it measured on lines that start
with "MEASURE ".  FAULTS_LONG=1 (`make faults`) stretches loads and outages.
Each test puts back what it breaks (processes, mounts, config); the runner's
ensure_up is only the safety net.  test_foundation.py already covers one
DB stop without load, SIGHUP x5 of GETs, one kill -9 without load and a
plain SIGTERM: these extend them.
"""
import os
import random
import re
import signal
import statistics
import threading
import time

import faults_util as fu
import helpers
import stack
from faults_util import measure


def world(ctx):
    """Customers with tickets and an agent, made once per run."""
    w = getattr(ctx, "_faults_world", None)
    if w is None:
        w = fu.World(ctx)
        ctx._faults_world = w
    return w


def no_crashes(text, what):
    bad = fu.crash_lines(text)
    assert not bad, "%s: the ccrd log shows crashed children: %s" % (what, bad[:3])


def ms(x):
    return "%.0fms" % (1000.0 * x)


def lat_summary(recs):
    v = [r.secs for r in recs]
    if not v:
        return "n=0"
    return "n=%d p50=%s p99=%s max=%s" % (len(v), ms(fu.pct(v, 50)), ms(fu.pct(v, 99)), ms(max(v)))


# ------------------------------------------------------------------ 1. kill -9

def test_kill9_worker_under_load_loses_at_most_inflight(ctx):
    """kill -9 a worker every 4 s of a 20 s load: at most the request in
    flight fails (<= 1 failure per kill), a replacement is forked and serving
    within 1 s."""
    st = ctx.stack
    w = world(ctx)
    duration = fu.scaled(20.0, 60.0)
    every = 4.0
    master = st.ccrd_pid()
    mailers = set(st.mailer_pids())
    mark = ctx.log_mark()
    steps = [fu.anon_step(ctx.port), w.reader(0), w.reader(1), w.writer(2)]
    kills = []
    with fu.Load(steps) as load:
        t_end = time.monotonic() + duration
        time.sleep(1.5)
        while time.monotonic() < t_end - 3.0:
            before = set(st.ccrd_children())
            victims = [p for p in st.worker_pids() if p not in mailers]
            assert victims, "no worker to kill (children %s)" % sorted(before)
            victim = random.choice(victims)
            t_kill = time.time()
            os.kill(victim, signal.SIGKILL)
            new, spawned = set(), None
            try:
                new = ctx.wait_until(lambda: set(st.ccrd_children()) - before, 2.0,
                                     "a new child after kill -9 of %d" % victim, 0.005)
                spawned = time.time() - t_kill
            except stack.StackError:
                pass
            kills.append({"victim": victim, "t": t_kill, "new": new, "spawned": spawned})
            time.sleep(max(0.0, every - (time.time() - t_kill)))
        time.sleep(max(0.0, t_end - time.monotonic()))
    recs = load.recs
    text = ctx.log_since(mark)
    acc = fu.access_lines(text)
    for k in kills:
        first = [a.t for a in acc if a.pid in k["new"] and a.t >= k["t"] - 0.01]
        k["served"] = (min(first) - k["t"]) if first else None
    fails = fu.failures(recs)
    span = load.t_stop - load.t_start
    spawned = [k["spawned"] for k in kills if k["spawned"] is not None]
    served = [k["served"] for k in kills if k["served"] is not None]
    measure("kill9: %d requests in %.1fs (%.0f/s), %d kills, %d failed %s; latency %s",
            len(recs), span, len(recs) / span, len(kills), len(fails), fu.histogram(fails),
            lat_summary(recs))
    measure("kill9: respawn after kill max=%s median=%s; first request served by the "
            "replacement max=%s median=%s",
            ms(max(spawned)) if spawned else "-", ms(statistics.median(spawned)) if spawned else "-",
            ms(max(served)) if served else "-", ms(statistics.median(served)) if served else "-")
    assert st.ccrd_pid() == master and stack.alive(master), "the ccrd master changed or died"
    assert len(kills) >= 3, "only %d kills in %.0f s" % (len(kills), duration)
    for k in kills:
        assert "worker %d killed by signal 9" % k["victim"] in text, \
            "no 'worker %d killed by signal 9' in the ccrd log" % k["victim"]
        assert k["spawned"] is not None and k["spawned"] <= 1.0, \
            "kill -9 of worker %d: replacement forked after %s (want <= 1 s)" % (
                k["victim"], k["spawned"])
        assert k["served"] is not None and k["served"] <= 1.0, \
            "kill -9 of worker %d: the replacement %s served its first request after %s " \
            "(want <= 1 s)" % (k["victim"], sorted(k["new"]), k["served"])
    assert len(fails) <= len(kills), \
        "%d requests failed for %d kills (at most the one in flight each): %s" % (
            len(fails), len(kills), [f.what() for f in fails[:5]])


test_kill9_worker_under_load_loses_at_most_inflight.timeout = 60 + int(fu.scaled(20, 60))


def test_crash_storm_master_backs_off_logs_and_recovers(ctx):
    """Every new worker dies at once (killed as soon as it appears, ~10 s):
    the master logs each crash, then CRASH STORM, stops respawning for a
    while (no new worker during the pause), survives, and service comes back
    by itself (within ~45 s)."""
    st = ctx.stack
    master = st.ccrd_pid()
    mailers = set(st.mailer_pids())
    assert mailers, "no mailer among ccrd's children %s" % st.ccrd_children()
    mark = ctx.log_mark()
    kill_for = fu.scaled(10.0, 20.0)
    seen = {}          # worker pid -> first seen (epoch)
    killed = set()
    t0 = time.time()
    while time.time() - t0 < kill_for:
        for p in stack.children_of(master):
            if p in mailers or "mailer" in stack.proc_name(p):
                continue
            seen.setdefault(p, time.time())
            if p not in killed:
                try:
                    os.kill(p, signal.SIGKILL)
                    killed.add(p)
                except ProcessLookupError:
                    pass
        time.sleep(0.003)
    t_stop = time.time()
    assert stack.alive(master) and st.ccrd_pid() == master, "the ccrd master died in the crash storm"
    text = ctx.log_since(mark)
    storm = [l for l in text.splitlines() if "CRASH STORM" in l]
    n_logged = text.count("killed by signal 9")
    assert storm, "no CRASH STORM line after %d crashes in %.0f s; log tail: %s" % (
        len(killed), kill_for, text.splitlines()[-5:])
    t_storm = fu.log_time(storm[0].split()[0])
    in_pause = sorted(p for p, t in seen.items() if t_storm + 0.3 < t < t_stop)
    # service comes back by itself
    back = None
    deadline = t_stop + 45.0
    while time.time() < deadline:
        workers = [p for p in st.worker_pids() if p not in mailers]
        for p in workers:
            seen.setdefault(p, time.time())
        if len(workers) >= st.workers:
            s, _ = st.healthz(timeout=2)
            if s == 200:
                back = time.time()
                break
        time.sleep(0.25)
    first_back = min((t for p, t in seen.items() if t > t_stop), default=None)
    measure("storm: %d workers killed in %.1fs, %d 'killed by signal' lines; CRASH STORM "
            "%.1fs after the first kill; spawned during the pause: %d; first worker after the "
            "pause %s after the storm line; service back %s after the storm line (%s after the "
            "killing stopped)",
            len(killed), kill_for, n_logged, t_storm - t0, len(in_pause),
            "%.1fs" % (first_back - t_storm) if first_back else "-",
            "%.1fs" % (back - t_storm) if back else "never",
            "%.1fs" % (back - t_stop) if back else "-")
    # (the storm may come before 20 kills of ours: crashes of earlier tests
    # within the last 60 s count too)
    assert n_logged >= len(killed) - 1, "%d 'killed by signal 9' lines for %d kills" % (
        n_logged, len(killed))
    assert not in_pause, "workers %s were forked during the CRASH STORM pause" % in_pause
    assert stack.alive(master) and st.ccrd_pid() == master, "the ccrd master died after the storm"
    assert back, "service did not come back within 45 s after the crash storm (workers %s, " \
        "healthz %s); log tail: %s" % (st.worker_pids(), st.healthz(timeout=2),
                                       ctx.log_since(mark).splitlines()[-4:])
    for i in range(10):
        r = ctx.get("/login" if i % 2 else "/healthz")
        assert r.status == 200, "after the storm, request %d: %d" % (i, r.status)


test_crash_storm_master_backs_off_logs_and_recovers.timeout = 120 + int(fu.scaled(0, 20))


# ------------------------------------------------------------------ 2. reload, stop

def test_sighup_x10_under_mixed_load_zero_failures(ctx):
    """Ten reloads 0.6 s apart (generations overlap) under logged-in GET and
    POST load: not one request fails, the old generations drain and exit 0."""
    st = ctx.stack
    w = world(ctx)
    n = fu.scaled(10, 40)
    gap = fu.scaled(0.6, 1.0)
    master = st.ccrd_pid()
    mark = ctx.log_mark()
    steps = [fu.anon_step(ctx.port), w.reader(0), w.writer(1), w.agent_writer()]
    with fu.Load(steps) as load:
        time.sleep(1.0)
        t_first = time.time()
        for _ in range(n):
            st.ccrd_signal(signal.SIGHUP)
            time.sleep(gap)
        t_last = time.time()
        time.sleep(1.5)
    recs = load.recs
    t0 = time.time()
    ctx.wait_until(lambda: len(st.ccrd_children()) <= st.workers + 3, 30,   # + mailer, webhook sender, search indexer
                   "the old generations to exit (children %s)" % st.ccrd_children(), 0.05)
    drained = time.time() - t0
    text = ctx.log_since(mark)
    reloads = text.count("reloaded ")
    fails = fu.failures(recs)
    during = [r for r in recs if t_first <= r.t0 <= t_last]
    measure("sighup: %d reloads %.1fs apart, %d requests (%d during the reloads), %d failed %s; "
            "latency during reloads %s; old generations gone %.1fs after the load",
            reloads, gap, len(recs), len(during), len(fails), fu.histogram(fails),
            lat_summary(during), drained)
    assert st.ccrd_pid() == master and stack.alive(master), "the master changed or died"
    assert reloads == n, "%d 'reloaded' lines for %d SIGHUPs" % (reloads, n)
    no_crashes(text, "SIGHUP x%d" % n)
    assert not fails, "%d of %d requests failed during %d reloads: %s" % (
        len(fails), len(recs), n, [f.what() for f in fails[:5]])


test_sighup_x10_under_mixed_load_zero_failures.timeout = 90


def test_sigterm_waits_for_slow_request_then_all_exit_0(ctx):
    """A logged-in page request is slowed by freezing MariaDB; SIGTERM the
    master while it is in flight; thaw ~1.5 s later: the request completes
    with 200, the master exits 0 and no child crashed or was killed."""
    st = ctx.stack
    w = world(ctx)
    c = w.customers[0].s.clone()
    c.keepalive = False
    path = "/tickets/%d" % w.tickets[0]
    r = c.get(path)
    assert r.status == 200, "warm-up %s" % r.what()
    p = st.ccrd
    kids = st.ccrd_children()
    mark = ctx.log_mark()
    shutdown_timeout = fu.conf_int(st, "server", "shutdown_timeout", 10)
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("r", c.get(path, timeout=40)), daemon=True)
    rc = None
    try:
        fu.freeze_db(ctx)
        t_freeze = time.time()
        try:
            th.start()
            time.sleep(0.5)
            assert th.is_alive(), "the request did not wait for the frozen database: %s " \
                "(mariadbd %s state %s)" % (box.get("r"), st.db_pid(), stack.proc_state(st.db_pid() or 0))
            os.kill(p.pid, signal.SIGTERM)
            t_term = time.time()
            time.sleep(max(0.0, 1.5 - (time.time() - t_freeze)))
            exited_while_frozen = p.poll() is not None
        finally:
            st.db_thaw()
        t_thaw = time.time()
        th.join(30)
        try:
            rc = p.wait(shutdown_timeout + 15)
        except Exception:
            raise AssertionError("ccrd did not exit within %d s of SIGTERM" % (shutdown_timeout + 15))
        t_exit = time.time()
        left = [k for k in kids if stack.alive(k)]
        group = stack.pgroup_members(p.pid)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(shutdown_timeout + 15)
            except Exception:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        st.ccrd = None
        st.ccrd_start()
        st.wait_healthy()
    r = box.get("r")
    text = fu.read_from(st.ccrd_log_path, mark)
    measure("sigterm: request %s; SIGTERM %.2fs after the freeze, thaw %.2fs after SIGTERM, "
            "master exit %.2fs after SIGTERM (%.2fs after the thaw), rc=%s",
            r.what() if r else "none", t_term - t_freeze, t_thaw - t_term, t_exit - t_term,
            t_exit - t_thaw, rc)
    assert r is not None, "the slow request never returned"
    assert r.status == 200, "the request in flight at SIGTERM: %s (503 = it hit the read " \
        "timeout; 502 = its worker died)" % r.what()
    assert not exited_while_frozen, "the master exited before the request in flight finished"
    assert rc == 0, "ccrd exit status %s after SIGTERM" % rc
    assert not left and not group, "left behind: children %s, process group %s" % (left, group)
    no_crashes(text, "SIGTERM")
    assert "shutdown_timeout passed" not in text, "children had to be killed: %s" % text[-500:]
    assert "stopped" in text, "no 'stopped' line from the master"
    served = [a for a in fu.access_lines(text) if a.path == path and a.pid in kids]
    assert served and served[-1].status == 200, "no 200 access line for %s from the old " \
        "workers: %s" % (path, served)


test_sigterm_waits_for_slow_request_then_all_exit_0.timeout = 90


# ------------------------------------------------------------------ 3, 4. MariaDB

def consistency(ctx, tickets_after):
    """The invariants of the outbox (every notification written in the
    transaction of its change), checked in SQL -> list of problems."""
    bad = []
    n = ctx.sql_value("SELECT COUNT(*) FROM messages m LEFT JOIN tickets t ON t.id = m.ticket_id "
                      "WHERE t.id IS NULL")
    if n != "0":
        bad.append("%s messages rows without their ticket" % n)
    n = ctx.sql_value("SELECT COUNT(*) FROM outbox o LEFT JOIN tickets t ON t.id = o.ticket_id "
                      "WHERE o.kind = 'new_message' AND t.id IS NULL")
    if n != "0":
        bad.append("%s new_message outbox rows without their ticket" % n)
    rows = ctx.sql("SELECT t.id FROM tickets t WHERE t.id > %d AND NOT EXISTS (SELECT 1 FROM "
                   "outbox o WHERE o.ticket_id = t.id AND o.kind = 'ticket_created')" % tickets_after)
    if rows:
        bad.append("tickets without their ticket_created outbox row: %s" % [r[0] for r in rows][:10])
    return bad


def durable(ctx, recs):
    """Every write the client saw acknowledged (303) is in the database."""
    missing = []
    msg_ids, ticket_ids = [], []
    for r in recs:
        if r.method != "POST" or r.status != 303 or not r.location:
            continue
        m = fu.MESSAGE_LOC.search(r.location)
        if m:
            msg_ids.append(int(m.group(2)))
            continue
        m = fu.TICKET_LOC.search(r.location)
        if m:
            ticket_ids.append(int(m.group(1)))
    for table, ids in (("messages", msg_ids), ("tickets", ticket_ids)):
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            have = {int(x[0]) for x in ctx.sql("SELECT id FROM %s WHERE id IN (%s)"
                                               % (table, ",".join(map(str, chunk))))}
            missing += ["%s %d" % (table, x) for x in chunk if x not in have]
    return len(msg_ids) + len(ticket_ids), missing


def after_outage_mail(ctx, w):
    """Does the mailer send again once MariaDB is back?  When it does not,
    replace it (SIGHUP) so the tests that follow have a working mailer.
    -> (seconds or None, rows)."""
    took, rows = fu.mail_flows(ctx, w.customers[2].s.clone(), timeout=15.0)
    if took is None:
        fu.replace_mailer(ctx)
        ctx.sql("UPDATE outbox SET next_attempt_at = NOW() WHERE status = 'pending'")
    return took, rows


def assert_mail_flows(ctx, took, rows, what):
    assert took is not None, "the mailer sent nothing in 15 s after %s and came back (HTTP " \
        "recovered): rows %s still %s; a SIGHUP (new mailer) was needed" % (
            what, [x["id"] for x in rows], sorted({(x["status"], x["attempts"]) for x in rows}))


def test_db_stopped_under_mixed_load_503_then_recovers_consistent(ctx):
    """MariaDB stopped for 10 s under logged-in readers and writers (messages,
    new tickets): only 503 + Retry-After while down (no 500, no 502/504),
    every request succeeds from 5 s after the server is back, same master,
    no crashed worker, every acknowledged write kept, database consistent."""
    st = ctx.stack
    w = world(ctx)
    down_for = fu.scaled(10.0, 30.0)
    master = st.ccrd_pid()
    max_ticket = int(ctx.sql_value("SELECT COALESCE(MAX(id), 0) FROM tickets"))
    mark = ctx.log_mark()
    steps = [w.writer(0, new_ticket_every=5), w.writer(1, new_ticket_every=7), w.agent_writer(),
             w.reader(2)]
    with fu.Load(steps) as load:
        time.sleep(2.0)
        t_stop0 = time.time()
        st.db_stop()
        t_down = time.time()
        try:
            time.sleep(down_for)
        finally:
            t_start0 = time.time()
            st.db_start()
            t_ready = time.time()
        time.sleep(fu.scaled(7.0, 15.0))
    recs = load.recs
    text = ctx.log_since(mark)
    down = [r for r in recs if t_down <= r.t0 <= t_start0]
    after = [r for r in recs if r.t0 >= t_ready]
    late = [r for r in after if r.t0 >= t_ready + 5.0]
    wrong = [r for r in recs if r.status not in (200, 303, 503)]
    no_ra = [r for r in recs if r.status == 503 and not r.retry_after]
    down_ok = [r for r in down if r.status != 503]
    first_ok = min((r.t1 for r in after if r.ok), default=None)
    last_bad = max((r.t0 for r in after if not r.ok), default=None)
    n_acked, missing = durable(ctx, recs)
    bad = consistency(ctx, max_ticket)
    mail_took, mail_rows = after_outage_mail(ctx, w)
    measure("db-stop: mail after the outage: %s",
            "sent %.1fs after the ticket" % mail_took if mail_took else "NOT SENT (%s)" % [
                (x["id"], x["status"], x["attempts"], x["last_error"][:30]) for x in mail_rows])
    measure("db-stop: MariaDB stop took %.1fs, down %.1fs, start %.1fs; %d requests (%d while "
            "down: %s, latency %s)", t_down - t_stop0, t_start0 - t_down, t_ready - t_start0,
            len(recs), len(down), fu.histogram(down), lat_summary(down))
    measure("db-stop: first success %s after ready, last failure started %s after ready; all: %s; "
            "%d acknowledged writes, %d missing",
            "%.2fs" % (first_ok - t_ready) if first_ok else "never",
            "%.2fs" % (last_bad - t_ready) if last_bad else "-", fu.histogram(recs),
            n_acked, len(missing))
    assert st.ccrd_pid() == master and stack.alive(master), "the ccrd master changed or died"
    assert not wrong, "answers other than 200/303/503 with MariaDB stopped: %s" % [
        r.what() for r in wrong[:6]]
    assert not no_ra, "503 without Retry-After: %s" % [r.what() for r in no_ra[:4]]
    assert not down_ok, "answers other than 503 while MariaDB was down: %s" % [
        r.what() for r in down_ok[:4]]
    no_crashes(text, "MariaDB stopped")
    assert late and all(r.ok for r in late), "failures from 5 s after MariaDB was ready: %s" % [
        r.what() for r in late if not r.ok][:6]
    assert not missing, "acknowledged writes not in the database: %s" % missing[:10]
    assert not bad, "database inconsistent after the outage: %s" % bad
    assert_mail_flows(ctx, mail_took, mail_rows, "MariaDB was stopped")


test_db_stopped_under_mixed_load_503_then_recovers_consistent.timeout = 120


def test_db_frozen_503_within_read_timeout_then_recovers(ctx):
    """MariaDB SIGSTOPped for 20 s under load: every request answers within
    read_timeout + 1 s, 503 with Retry-After while frozen; all succeed again
    within 5 s of SIGCONT."""
    st = ctx.stack
    w = world(ctx)
    freeze_for = fu.scaled(20.0, 40.0)
    rt = fu.conf_int(st, "database", "read_timeout", 5)
    bound = rt + 1.0
    master = st.ccrd_pid()
    mark = ctx.log_mark()
    steps = [w.reader(0), w.writer(1), fu.anon_step(ctx.port), w.reader(2)]
    with fu.Load(steps) as load:
        time.sleep(2.0)
        fu.freeze_db(ctx)
        t_freeze = time.time()
        try:
            time.sleep(freeze_for)
        finally:
            st.db_thaw()
            t_thaw = time.time()
        time.sleep(fu.scaled(8.0, 12.0))
    recs = load.recs
    text = ctx.log_since(mark)
    touched = [r for r in recs if r.t1 >= t_freeze and r.t0 <= t_thaw]
    frozen = [r for r in recs if t_freeze + 0.05 <= r.t0 and r.t0 + bound < t_thaw]
    after = [r for r in recs if r.t0 >= t_thaw]
    late = [r for r in after if r.t0 >= t_thaw + 5.0]
    slow = [r for r in recs if r.secs > bound]
    wrong = [r for r in recs if r.status not in (200, 303, 503)]
    no_ra = [r for r in recs if r.status == 503 and not r.retry_after]
    # an anonymous GET /login needs no database: it may still answer 200
    frozen_ok = [r for r in frozen if r.status != 503 and r.path != "/login"]
    last_bad = max((r.t0 for r in after if not r.ok), default=None)
    first_ok = min((r.t1 for r in after if r.ok), default=None)
    mail_took, mail_rows = after_outage_mail(ctx, w)
    measure("db-freeze: mail after the outage: %s",
            "sent %.1fs after the ticket" % mail_took if mail_took else "NOT SENT (%s)" % [
                (x["id"], x["status"], x["attempts"], x["last_error"][:30]) for x in mail_rows])
    by_path = {}
    for r in touched:
        key = r.method + " " + ("/tickets/N" if r.path.startswith("/tickets/") else r.path)
        by_path[key] = max(by_path.get(key, 0.0), r.secs)
    measure("db-freeze: %.0fs frozen, read_timeout %d; %d requests touched the freeze: %s, "
            "latency %s; max latency by route %s",
            t_thaw - t_freeze, rt, len(touched), fu.histogram(touched), lat_summary(touched),
            {k: ms(v) for k, v in sorted(by_path.items())})
    measure("db-freeze: after SIGCONT first success %s, last failure started %s; %d answers "
            "slower than %.0fs",
            "%.2fs" % (first_ok - t_thaw) if first_ok else "never",
            "%.2fs" % (last_bad - t_thaw) if last_bad else "-", len(slow), bound)
    assert st.ccrd_pid() == master and stack.alive(master), "the ccrd master changed or died"
    assert not wrong, "answers other than 200/303/503 with MariaDB frozen: %s" % [
        r.what() for r in wrong[:6]]
    assert not no_ra, "503 without Retry-After: %s" % [r.what() for r in no_ra[:4]]
    assert not slow, "answers slower than read_timeout + 1 s = %.0fs: %s" % (
        bound, [r.what() for r in slow[:6]])
    assert frozen, "no request started and finished inside the freeze"
    assert not frozen_ok, "answers other than 503 while MariaDB was frozen: %s" % [
        r.what() for r in frozen_ok[:4]]
    no_crashes(text, "MariaDB frozen")
    assert late and all(r.ok for r in late), "failures from 5 s after SIGCONT: %s" % [
        r.what() for r in late if not r.ok][:6]
    assert_mail_flows(ctx, mail_took, mail_rows, "MariaDB was frozen")


test_db_frozen_503_within_read_timeout_then_recovers.timeout = 120


# ------------------------------------------------------------------ 5. SMTP

def page_latency(c, path, n, until=None, limit=30.0):
    """GET path n times (then on until until() is true, at most limit s):
    ([seconds], [failures])."""
    lat, bad = [], []
    t_end = time.time() + limit
    i = 0
    while i < n or (until is not None and not until() and time.time() < t_end):
        r = c.get(path)
        (lat if r.status == 200 else bad).append(r.secs if r.status == 200 else r.what())
        i += 1
    return lat, bad


def force_due(ctx, lo, hi=None):
    q = ("UPDATE outbox SET next_attempt_at = NOW() WHERE status = 'pending' AND id > %d" % lo)
    if hi is not None:
        q += " AND id <= %d" % hi
    ctx.sql(q)


def mailer_crashes(ctx, mark):
    return [l for l in fu.crash_lines(ctx.log_since(mark)) if " mailer " in l]


def neutralize(ctx, lo, hi, why):
    """Take rows a crashed mailer left claimed out of the queue, so their
    lease running out cannot crash the mailer again in a later test."""
    ctx.sql("UPDATE outbox SET status = 'failed', lease_until = NULL, last_error = '%s' "
            "WHERE id > %d AND id <= %d AND status = 'pending'" % (why, lo, hi))


def smtp_phase(ctx, smtp, phase, reader, page, creator, n_mails, samples):
    """One SMTP condition: baseline page latency, queue n_mails, page latency
    while the mailer meets the fault, recovery; -> list of problems."""
    st = ctx.stack
    problems = []
    base, bad = page_latency(reader, page, samples)
    assert not bad, "%s baseline: %s" % (phase, bad[:3])
    lo = fu.outbox_max_id(ctx)
    mark = ctx.log_mark()
    t_phase = time.time()
    if phase == "down":
        smtp.stop()
    else:
        smtp.set_mode(phase)
    for k in range(n_mails):
        tid, r = fu.create_ticket(creator, "SMTP %s %d" % (phase, k))
        assert tid, "POST /tickets with SMTP %s: %s" % (phase, r.what())
    hi = fu.outbox_max_id(ctx)

    def met():
        if mailer_crashes(ctx, mark):
            return True
        rows = fu.outbox_rows(ctx, lo, hi)
        if phase == "permfail":
            return rows and all(x["status"] != "pending" for x in rows)
        return rows and all(x["attempts"] >= 1 and not x["claimed_by"] for x in rows)
    cond, bad = page_latency(reader, page, samples, until=met, limit=30.0)
    if bad:
        problems.append("SMTP %s: page failed: %s" % (phase, bad[:3]))
    try:
        ctx.wait_until(met, 30, "the mailer to meet SMTP %s" % phase, 0.2)
    except stack.StackError:
        problems.append("SMTP %s: rows %d..%d not handled by the mailer within 30 s: %s" % (
            phase, lo + 1, hi, [(x["id"], x["status"], x["attempts"], x["claimed_by"],
                                 x["lease_left"]) for x in fu.outbox_rows(ctx, lo, hi)][:4]))
    t_met = time.time()
    crashed = mailer_crashes(ctx, mark)
    rows = fu.outbox_rows(ctx, lo, hi)
    if crashed:
        problems.append("SMTP %s: the mailer crashed: %s; rows %d..%d left claimed: %s" % (
            phase, crashed[:2], lo + 1, hi,
            [(x["id"], x["status"], x["attempts"], "lease %ss" % x["lease_left"]) for x in rows
             if x["claimed_by"]][:5]))
    # recovery
    if phase == "down":
        smtp.start("ok")
    else:
        smtp.set_mode("ok")
    t_rec = time.time()
    if crashed:
        neutralize(ctx, lo, hi, "fault suite: left claimed by a crashed mailer")
    force_due(ctx, lo, hi)
    try:
        ctx.wait_until(lambda: all(x["status"] != "pending" for x in fu.outbox_rows(ctx, lo, hi)),
                       30, "rows %d..%d to leave 'pending'" % (lo + 1, hi), 0.2)
    except stack.StackError:
        problems.append("SMTP %s: rows still pending 30 s after recovery: %s" % (
            phase, [(x["id"], x["attempts"], x["claimed_by"], x["last_error"][:30])
                    for x in fu.outbox_rows(ctx, lo, hi) if x["status"] == "pending"][:4]))
        neutralize(ctx, lo, hi, "fault suite: still pending after recovery")
    t_done = time.time()
    final = fu.outbox_rows(ctx, lo, hi)
    ids = fu.sink_message_ids(st)
    b50, c50 = statistics.median(base), statistics.median(cond)
    extra = ""
    if phase == "stall":
        gave_up = [e["after_data_end"] for e in smtp.events(t_phase) if e["ev"] == "client_left"]
        extra = "; the mailer hung up on the stalled answer after %s s ([smtp] timeout = %s)" % (
            sorted(gave_up), fu.conf_int(st, "smtp", "timeout", 30))
    measure("smtp-%s: %d rows (%s); page p50 %s -> %s (x%.2f, %d/%d samples); met the fault in "
            "%.1fs; after recovery: %s in %.1fs%s", phase, len(rows),
            sorted({x["last_error"][:40] for x in rows}), ms(b50), ms(c50), c50 / b50, len(base),
            len(cond), t_met - t_phase, sorted({(x["status"], x["attempts"]) for x in final}),
            t_done - t_rec, extra)
    if c50 / b50 > 3.0 and c50 - b50 > 0.02:
        problems.append("SMTP %s: page median %s -> %s" % (phase, ms(b50), ms(c50)))
    if crashed:
        return problems
    for x in final:
        n = ids.get(x["message_id"], 0)
        if phase == "permfail":
            if x["status"] != "failed" or n != 0 or not x["last_error"].startswith("550"):
                problems.append("SMTP 5xx: row %d %s attempts %d, last_error %r, %d in the sink "
                                "(want failed, 550, none)" % (x["id"], x["status"], x["attempts"],
                                                             x["last_error"], n))
        elif x["status"] != "sent" or n != 1:
            problems.append("SMTP %s: row %d %s, %d copies in the sink (want sent, 1)"
                            % (phase, x["id"], x["status"], n))
    return problems


def test_smtp_down_4xx_5xx_stall_pages_unaffected_mail_exactly_once(ctx):
    """The mail server down, answering 451 (end of DATA), answering 550 (RCPT
    TO), stalling after DATA: the ticket page's median latency stays as it
    was (ratio); the mailer survives; after recovery every queued mail is
    delivered exactly once (Message-IDs in the sink against outbox rows);
    5xx rows end 'failed'."""
    st = ctx.stack
    w = world(ctx)
    reader = w.customers[0].s.clone()
    creator = w.customers[1].s.clone()
    page = "/tickets/%d" % w.tickets[0]
    samples = fu.scaled(30, 100)
    per_phase = {"down": 5, "tempfail": 5, "permfail": 5, "stall": 3}
    problems = []
    first_lo = fu.outbox_max_id(ctx)
    smtp = fu.FaultSmtp(st, os.path.join(st.var, "faults", "smtp"))
    timeout_changed = False
    with smtp:
        try:
            for phase in ("down", "tempfail", "permfail", "stall"):
                if phase == "stall":
                    fu.reload_conf(ctx, "smtp", "timeout", 2)
                    timeout_changed = True
                problems += smtp_phase(ctx, smtp, phase, reader, page, creator, per_phase[phase],
                                       samples)
        finally:
            if timeout_changed:
                fu.reload_conf(ctx, "smtp", "timeout", None)
            force_due(ctx, first_lo)
    assert not problems, " | ".join(problems[:8])


test_smtp_down_4xx_5xx_stall_pages_unaffected_mail_exactly_once.timeout = 240


def test_smtp_slow_answer_within_timeout_is_delivered_once(ctx):
    """A mail server that takes 3 s to answer the end of DATA, with [smtp]
    timeout = 30 s (the stack's default): the mailer waits for the answer,
    so each mail is delivered once and never retried."""
    st = ctx.stack
    w = world(ctx)
    creator = w.customers[2].s.clone()
    delay = 3
    timeout = fu.conf_int(st, "smtp", "timeout", 30)
    assert timeout >= 2 * delay, "this test needs [smtp] timeout >= %d (it is %d)" % (2 * delay, timeout)
    smtp = fu.FaultSmtp(st, os.path.join(st.var, "faults", "smtp-slow"))
    with smtp:
        smtp.set_mode("slow:%d" % delay)
        lo = fu.outbox_max_id(ctx)
        t0 = time.time()
        tid, r = fu.create_ticket(creator, "Slow SMTP")
        assert tid, "POST /tickets: %s" % r.what()
        hi = fu.outbox_max_id(ctx)

        def settled():
            rows = fu.outbox_rows(ctx, lo, hi)
            return rows and all(x["status"] != "pending" or (x["attempts"] >= 1 and not x["claimed_by"])
                                for x in rows)
        # one mail at a time, each answered after delay: the ticket's confirmation
        # and one mail per active admin (as many as the suite's modules made)
        ctx.wait_until(settled, delay * (hi - lo) + 20,
                       "the mailer to finish with rows %d..%d" % (lo + 1, hi), 0.2)
        first = fu.outbox_rows(ctx, lo, hi)
        gave_up = [e["after_data_end"] for e in smtp.events(t0) if e["ev"] == "client_left"]
        # let any retry happen now rather than in a minute, with a prompt server
        smtp.set_mode("ok")
        force_due(ctx, lo, hi)
        ctx.wait_until(lambda: all(x["status"] != "pending" for x in fu.outbox_rows(ctx, lo, hi)),
                       30, "rows %d..%d to be sent" % (lo + 1, hi), 0.2)
        final = fu.outbox_rows(ctx, lo, hi)
        ids = fu.sink_message_ids(st)
    copies = {x["id"]: ids.get(x["message_id"], 0) for x in final}
    measure("smtp-slow: server answers 250 after %ds, [smtp] timeout = %ds; first pass %s; the "
            "mailer hung up %s s after the end of DATA; copies delivered per row %s",
            delay, timeout, [(x["id"], x["status"], x["attempts"], x["last_error"][:40]) for x in first],
            sorted(gave_up), copies)
    assert not gave_up, "the mailer gave up waiting for the server's answer after %s s although " \
        "[smtp] timeout = %d s; rows retried: %s; copies in the sink after the retry (row: " \
        "copies): %s" % (sorted(gave_up), timeout, [(x["id"], x["last_error"]) for x in first
                                                   if x["status"] == "pending"], copies)
    assert all(x["status"] == "sent" and x["attempts"] == 1 for x in first), \
        "first pass not a clean delivery: %s" % first
    dups = {k: v for k, v in copies.items() if v != 1}
    assert not dups, "mails delivered more than once (row: copies): %s" % dups


test_smtp_slow_answer_within_timeout_is_delivered_once.timeout = 90


def forgot(ctx, email):
    """POST /password/forgot for email from a fresh client."""
    c = fu.client(ctx.port)
    r = c.get("/password/forgot")
    assert r.status == 200, "GET /password/forgot: %s" % r.what()
    r = c.post("/password/forgot", {"email": email})
    assert r.status == 303, "POST /password/forgot: %s" % r.what()


def code_rows(ctx, lo, email):
    return ctx.sql("SELECT id, status, body FROM outbox WHERE id > %d AND kind = 'reset_code' "
                   "AND to_addr = '%s' ORDER BY id" % (lo, email))


def test_reset_code_not_readable_in_outbox_once_sent_or_dropped(ctx):
    """A reset code is erased from outbox.body once its mail is sent (the
    sink has it, the row no longer) and once an expired one is dropped."""
    st = ctx.stack
    email = fu.customer(ctx, "erase").email
    # 1. sent
    lo = fu.outbox_max_id(ctx)
    mark = ctx.mail_mark()
    forgot(ctx, email)
    m = ctx.wait_mail(lambda x: email in x.to.lower() and "reset code" in x.subject, since=mark)
    code = re.findall(r"(?<!\d)\d{8}(?!\d)", m.body)
    assert len(set(code)) == 1, "want one code in the mail: %r" % m.body[:300]
    code = code[0]
    ctx.wait_until(lambda: [r[1] for r in code_rows(ctx, lo, email)] == ["sent"], 15,
                   "the reset mail to be marked sent", 0.1)
    sent_body = code_rows(ctx, lo, email)[0][2]
    # 2. not deliverable (451), then expired: the mailer drops it
    smtp = fu.FaultSmtp(st, os.path.join(st.var, "faults", "smtp-erase"))
    with smtp:
        smtp.set_mode("tempfail")
        lo2 = fu.outbox_max_id(ctx)
        forgot(ctx, email)
        ctx.wait_until(lambda: any(e["ev"] == "data_end" for e in smtp.events()), 15,
                       "the mailer to try the second reset mail", 0.1)
        ctx.wait_until(lambda: code_rows(ctx, lo2, email) and
                       not ctx.sql_value("SELECT COALESCE(claimed_by, '') FROM outbox WHERE id = %s"
                                         % code_rows(ctx, lo2, email)[0][0]),
                       15, "the 451 to be recorded", 0.1)
        rid, status, body = code_rows(ctx, lo2, email)[0]
        pending_code = re.findall(r"(?<!\d)\d{8}(?!\d)", body)
        assert status == "pending" and pending_code, "row %s %s: %r" % (rid, status, body[:200])
        ctx.sql("UPDATE outbox SET expires_at = NOW() - INTERVAL 1 SECOND, next_attempt_at = NOW() "
                "WHERE id = %s" % rid)
        ctx.wait_until(lambda: code_rows(ctx, lo2, email)[0][1] != "pending", 15,
                       "the expired reset mail to be dropped", 0.1)
        _rid, status2, body2 = code_rows(ctx, lo2, email)[0]
    measure("erase: sent row body %d bytes, dropped row %s body %d bytes", len(sent_body), status2,
            len(body2))
    assert code not in sent_body, "the sent reset mail's code is still in outbox.body"
    assert status2 == "dropped", "expired reset mail: status %s" % status2
    assert pending_code[0] not in body2, "the dropped reset mail's code is still in outbox.body"


def test_stop_and_reload_during_slow_smtp_each_mail_delivered_once(ctx):
    """The SMTP server answers the end of DATA after 15 s; two masters (two
    hosts' mailers) on one outbox, each stalled mid-batch; SIGTERM to one
    master and SIGHUP to the other while they wait: each waits for its
    transaction, records it and leaves the rest of its batch; after the
    leases run out every Message-ID is in the sink exactly once."""
    st = ctx.stack
    w = world(ctx)
    creator = w.customers[2].s.clone()
    delay = 15
    timeout = fu.conf_int(st, "smtp", "timeout", 30)
    assert timeout > delay, "this test needs [smtp] timeout > %d (it is %d)" % (delay, timeout)
    b = fu.ExtraCcrd(st, "ccrd-mb", os.path.join(st.var, "faults", "mail-once"), workers=1)
    smtp = fu.FaultSmtp(st, os.path.join(st.var, "faults", "smtp-once"))
    # Mail left pending by earlier tests (in back-off after their SMTP faults,
    # or already delivered once by a server that stalled before answering
    # DATA: SMTP cannot tell the client) is flushed through the sink first and
    # kept out of the rows this test counts: it checks the rows it creates.
    ctx.sql("UPDATE outbox SET next_attempt_at = NOW() WHERE status = 'pending' "
            "AND (lease_until IS NULL OR lease_until < NOW())")
    ctx.wait_until(lambda: int(ctx.sql_value("SELECT COUNT(*) FROM outbox WHERE status = 'pending' "
                                             "AND (lease_until IS NULL OR lease_until < NOW())")) == 0,
                   30, "earlier mail to leave the outbox", 0.2)
    lo = fu.outbox_max_id(ctx)
    ids, final, t_b = {}, [], None
    rc_b = None
    try:
        with smtp:
            smtp.set_mode("slow:%d" % delay)
            b.start()
            t0 = time.time()

            for k in range(6):
                tid, r = fu.create_ticket(creator, "Mail once %d" % k)
                assert tid, "POST /tickets: %s" % r.what()
                if k == 2:          # the first batch is taken: the idle mailer takes the rest
                    ctx.wait_until(lambda: any(e["ev"] == "stored" for e in smtp.events(t0)), 10,
                                   "a mailer to stall after DATA", 0.05)
            # the mailers holding a live lease on a pending row right now; rows
            # in the range that earlier mailers (now gone) sent keep their
            # claimed_by and are no evidence of who is mid-batch
            def live_claimers():
                return {x["claimed_by"] for x in fu.outbox_rows(ctx, lo)
                        if x["claimed_by"] and x["status"] == "pending"
                        and x["lease_left"] != "" and int(x["lease_left"]) > 0}
            ctx.wait_until(lambda: len(live_claimers()) >= 2, 10, "both mailers to claim rows", 0.05)
            hi = fu.outbox_max_id(ctx)
            claimers = live_claimers()
            t_sig = time.time()
            st.ccrd_signal(signal.SIGHUP)
            rc_b = b.stop(timeout=timeout + 10)
            t_b = time.time() - t_sig
            # the rest of the queue, promptly
            ctx.wait_until(lambda: len(smtp.events(t0)) and
                           len([e for e in smtp.events(t0) if e["ev"] == "reply"]) >= 2,
                           delay + 10, "both stalled transactions to end", 0.1)
            smtp.set_mode("ok")
            # what a lease running out would do, now rather than in 5 minutes
            ctx.sql("UPDATE outbox SET lease_until = NOW() - INTERVAL 1 SECOND, next_attempt_at = NOW() "
                    "WHERE status = 'pending' AND id > %d AND id <= %d" % (lo, hi))
            ctx.wait_until(lambda: all(x["status"] != "pending" for x in fu.outbox_rows(ctx, lo, hi)),
                           30, "rows %d..%d to be sent" % (lo + 1, hi), 0.2)
            final = fu.outbox_rows(ctx, lo, hi)
            ids = fu.sink_message_ids(st)
    finally:
        b.stop()
    copies = {x["id"]: ids.get(x["message_id"], 0) for x in final}
    measure("mail-once: %d rows claimed by %d mailers; master B exited rc=%s %.1f s after SIGTERM; "
            "copies per row %s", len(final), len(claimers), rc_b, t_b, copies)
    assert len(claimers) == 2, "both mailers should have been mid-batch: %s" % claimers
    assert rc_b == 0, "master B exit status %s after SIGTERM" % rc_b
    assert all(x["status"] == "sent" for x in final), "not sent: %s" % final
    dups = {k: v for k, v in copies.items() if v != 1}
    assert not dups, "mails delivered other than once (row: copies): %s" % dups


test_stop_and_reload_during_slow_smtp_each_mail_delivered_once.timeout = 90


# ------------------------------------------------------------------ 6. two masters

def test_two_masters_share_load_one_killed_no_double_mail(ctx):
    """A second ccrd master on the same database behind one nginx upstream
    with the stack's: both serve; ~30 mails queued while SMTP was down are
    released to both mailers at once; SIGKILL of the second master and its
    children mid-load loses at most its requests in flight (GETs none: nginx
    retries them), and no mail is lost or sent twice by the two mailers (the
    one B had in flight at the kill may be resent, with its Message-ID)."""
    st = ctx.stack
    w = world(ctx)
    work = os.path.join(st.var, "faults", "two")
    b = fu.ExtraCcrd(st, "ccrd-b", work, workers=2)
    port2 = stack.pick_free_port()
    ng = fu.ExtraNginx(st, work, port2, [st.ccrd_sock, b.sock])
    n_mails = fu.scaled(30, 100)
    master_a = st.ccrd_pid()
    mark_a = ctx.log_mark()
    try:
        b.start()
        ng.start()
        mark_b = 0
        creator = w.customers[2].s.clone(port2)
        b_mailer = [p for p in b.children() if "mailer" in stack.proc_name(p)]
        # 1. queue mail while SMTP is down: both mailers try, fail, back off
        st.smtp_stop()
        lo = fu.outbox_max_id(ctx)
        queue_fail = []
        for k in range(n_mails):
            tid, r = fu.create_ticket(creator, "Two masters %d" % k)
            if not tid:
                queue_fail.append(r.what())
        hi = fu.outbox_max_id(ctx)
        assert not queue_fail, "POST /tickets through both masters: %s" % queue_fail[:3]
        ctx.wait_until(lambda: all(x["attempts"] >= 1 and not x["claimed_by"]
                                   for x in fu.outbox_rows(ctx, lo, hi)), 30,
                       "both mailers to try the queued rows", 0.2)
        tried_by = fu.outbox_rows(ctx, lo, hi)
        st.smtp_start()
        # 2. release them to both mailers at once, under load through the shared upstream
        steps = [w.reader(0, port=port2), w.reader(1, port=port2), fu.anon_step(port2),
                 w.writer(2, new_ticket_every=10, port=port2)]
        with fu.Load(steps) as load:
            force_due(ctx, lo, hi)
            time.sleep(fu.scaled(4.0, 15.0))
            b_kids = b.children()
            t_kill = time.time()
            b.kill_group()
            time.sleep(fu.scaled(5.0, 15.0))
        recs = load.recs
        acc_a = [a for a in fu.access_lines(ctx.log_since(mark_a)) if a.t < t_kill]
        acc_b = [a for a in fu.access_lines(fu.read_from(b.log, mark_b)) if a.t < t_kill]
        fails = fu.failures(recs)
        get_fails = [f for f in fails if f.method == "GET"]
        # rows the dead mailer had claimed stay leased: release them (as the lease would)
        dead = ["%d" % p for p in b_mailer]
        stuck = [x for x in fu.outbox_rows(ctx, lo) if x["status"] == "pending" and x["claimed_by"]
                 and x["claimed_by"].rsplit(":", 1)[-1] in dead]
        if stuck:
            ctx.sql("UPDATE outbox SET lease_until = NOW() - INTERVAL 1 SECOND, next_attempt_at = NOW() "
                    "WHERE id IN (%s)" % ",".join(str(x["id"]) for x in stuck))
        force_due(ctx, lo)
        ctx.wait_until(lambda: all(x["status"] != "pending" for x in fu.outbox_rows(ctx, lo)), 40,
                       "every queued mail to be sent", 0.2)
        final = fu.outbox_rows(ctx, lo)
        ids = fu.sink_message_ids(st)
        dups = {x["id"]: ids.get(x["message_id"], 0) for x in final if ids.get(x["message_id"], 0) != 1}
        senders = {}
        for x in final:
            who = x["claimed_by"].rsplit(":", 1)[-1]
            who = "B" if who in dead else "A"
            senders[who] = senders.get(who, 0) + 1
        measure("two-masters: before the kill A served %d, B served %d requests; %d requests, %d "
                "failed %s (GET %d); B had %d children", len(acc_a), len(acc_b), len(recs),
                len(fails), [f.what() for f in fails[:4]], len(get_fails), len(b_kids))
        measure("two-masters: %d mails (first tries: %s), sent by mailer A %d / B %d; %d rows "
                "stuck behind the dead mailer's lease; %d delivered other than once",
                len(final), sorted({x["last_error"][:30] for x in tried_by}),
                senders.get("A", 0), senders.get("B", 0),
                len(stuck), len(dups))
        assert st.ccrd_pid() == master_a and stack.alive(master_a), "master A changed or died"
        assert acc_a and acc_b, "load not shared: A served %d, B %d" % (len(acc_a), len(acc_b))
        assert not get_fails, "GETs failed when B was killed (nginx should retry them on A): %s" % [
            f.what() for f in get_fails[:4]]
        assert len(fails) <= b.workers, "%d requests failed for a master with %d workers: %s" % (
            len(fails), b.workers, [f.what() for f in fails[:5]])
        assert all(x["status"] == "sent" for x in final), "not sent: %s" % [
            x for x in final if x["status"] != "sent"][:3]
        # SIGKILL can land between the SMTP server's 250 for a mail and the
        # dead mailer's commit of "sent": that one mail (it sends one at a
        # time) is sent again by A with the same Message-ID — delivery is at
        # least once, never lost.  Any other copy is a double claim.
        stuck_ids = {x["id"] for x in stuck}
        in_flight = {k: v for k, v in dups.items() if k in stuck_ids and v == 2}
        assert len(in_flight) <= len(b_mailer), "more mails resent than B had in flight: %s" % in_flight
        others = {k: v for k, v in dups.items() if k not in in_flight}
        assert not others, "mails delivered other than once (row: copies): %s" % others
    finally:
        ng.stop()
        b.stop()
        if not st.smtp or st.smtp.poll() is not None:
            st.smtp_start()


test_two_masters_share_load_one_killed_no_double_mail.timeout = 150


# ------------------------------------------------------------------ 7. disk full

def test_page_cut_by_a_kill_mid_write_is_whole_in_the_socket_first(ctx):
    """Regression (the flaky two-masters test, ticket 121): a 450 KB page
    did not fit the worker's socket send buffer, so the worker slept in its
    writes until nginx read on; master B's SIGKILL landed there and cut the
    answer, and nginx 1.22 takes a FastCGI connection's close as the end of
    the answer: the reader waited for the rest of its Content-Length until
    its 15 s timeout.  Now the worker sizes its send buffer to the body and
    writes it in one writev that does not sleep.  Here the test is the
    FastCGI client and reads nothing: the worker still finishes the 500 KB
    page (its log line comes after the last byte), is killed -9, and the
    whole page is then read from the socket."""
    import socket as so
    import struct
    st = ctx.stack
    w = world(ctx)
    u = w.customers[0]
    tid, r = fu.create_ticket(u.s.clone(), "Long conversation")
    assert tid, "POST /tickets: %s" % r.what()
    values = ",".join("(%d, %d, REPEAT('a long conversation, message %d ', 270), NOW())"
                      % (tid, u.id, i) for i in range(55))
    ctx.sql("INSERT INTO messages (ticket_id, author_id, body, created_at) VALUES " + values)
    ctx.sql("INSERT INTO timeline (ticket_id, kind, actor_id, message_id, created_at) SELECT "
            "ticket_id, 'message', author_id, id, created_at FROM messages WHERE ticket_id = %d "
            "ORDER BY id" % tid)
    path = "/tickets/%d" % tid
    size = len(u.s.get(path).body)
    assert 400000 < size < 2000000, "the page is %d bytes" % size
    with open("/proc/sys/net/core/wmem_max") as f:
        if int(f.read()) < 2 * size:
            raise helpers.Skip("net.core.wmem_max is below twice the page")
    rid = "%032x" % int.from_bytes(os.urandom(16), "big")
    params = helpers.cgi_params(ctx.port, "GET", path, "", {"REQUEST_ID": rid, "CONTENT_LENGTH": ""})
    params["HTTP_COOKIE"] = "; ".join("%s=%s" % kv for kv in u.s.cookies.items())
    pb = b"".join(helpers.nv(k, str(v)) for k, v in params.items())
    s = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    s.setsockopt(so.SOL_SOCKET, so.SO_RCVBUF, 4096)
    s.settimeout(20)
    try:
        s.connect(st.ccrd_sock)
        mark = ctx.log_mark()
        s.sendall(helpers._frame(pb))
        line = re.compile(r"ccrd\[(\d+)\] req=%s GET \"%s\" 200 " % (rid, re.escape(path)))
        m = ctx.wait_until(lambda: line.search(ctx.log_since(mark)), 10,
                           "the worker to finish the %d-byte page while nothing reads it" % size, 0.05)
        worker = int(m.group(1))
        os.kill(worker, signal.SIGKILL)
        data = b""
        while True:
            d = s.recv(1 << 16)
            if not d:
                break
            data += d
    finally:
        s.close()
    out, i = b"", 0
    while i + 8 <= len(data):
        _v, typ, _id, clen, plen, _r = struct.unpack("!BBHHBB", data[i:i + 8])
        if typ == 6:   # FCGI_STDOUT
            out += data[i + 8:i + 8 + clen]
        i += 8 + clen + plen
    resp = helpers.parse_cgi_response(out)
    length = int(dict((k.lower(), v) for k, v in resp.headers).get("content-length", -1))
    measure("page cut by a kill: %d-byte page written whole by worker %d while nothing read it; killed "
            "-9 after; %d of %d body bytes in the socket", size, worker, len(resp.body), length)
    assert resp.status == 200 and len(resp.body) == length == size and \
        resp.body.rstrip().endswith(b"</html>"), (resp.status, len(resp.body), length, size)
    ctx.wait_until(lambda: len(st.ccrd_children()) >= st.workers, 20, "the master to replace the worker")


test_page_cut_by_a_kill_mid_write_is_whole_in_the_socket_first.timeout = 90


def test_log_disk_full_requests_still_served_no_crash_loop(ctx):
    """ccrd with log_file on a 256 KiB tmpfs that fills up: requests still
    succeed (or answer a clear 5xx), no worker dies, SIGUSR1 (reopen) is
    harmless, and logging resumes when space returns."""
    st = ctx.stack
    work = os.path.join(st.var, "faults", "logfull")
    mnt = os.path.join(work, "logfs")
    try:
        mount = fu.tmpfs(mnt, "256k")
        mount.__enter__()
    except fu.NoMount as e:
        raise helpers.Skip(str(e))
    c = None
    try:
        logf = os.path.join(mnt, "ccrd.log")
        c = fu.ExtraCcrd(st, "ccrd-logfull", work, workers=2,
                         overrides={"server": {"log_file": logf}})
        c.start()
        for _ in range(5):
            assert ctx.fcgi("GET", "/healthz", timeout=10, sock=c.sock).status == 200
        ctx.wait_until(lambda: "/healthz" in fu.read_from(logf), 3, "access lines in %s" % logf)
        master = c.pid
        kids0 = sorted(c.children())
        filler = fu.fill(mnt)
        free = fu.free_bytes(mnt)
        n = fu.scaled(200, 1000)
        statuses, broken = {}, []
        for i in range(n):
            path = ("/healthz", "/login", "/no-such-page-%d" % i)[i % 3]
            try:
                s = ctx.fcgi("GET", path, timeout=10, sock=c.sock).status
                statuses[s] = statuses.get(s, 0) + 1
            except (OSError, ValueError) as e:
                broken.append("%s: %s" % (path, e))
            if i == n // 2:
                os.kill(master, signal.SIGUSR1)   # reopen the log on a full disk
                time.sleep(0.3)
        kids1 = sorted(c.children())
        size_full = fu.file_size(logf)
        os.unlink(filler)
        marker = "/recovered-%s" % os.urandom(4).hex()
        assert ctx.fcgi("GET", marker, timeout=10, sock=c.sock).status == 404
        try:
            ctx.wait_until(lambda: marker in fu.read_from(logf), 5, "logging to resume")
            resumed = True
        except stack.StackError:
            resumed = False
        text = fu.read_from(logf)
        ragged = [l for l in text.splitlines() if l.count(" ccrd[") > 1]
        rc = c.stop()
        c = None
        measure("log-full: %d requests on a full log disk (%d bytes free): %s, %d broken; log "
                "%d bytes when full; children %s -> %s; logging resumed: %s; %d ragged lines; "
                "exit %s%s", n, free, statuses, len(broken), size_full, kids0, kids1, resumed,
                len(ragged), rc, (" (e.g. %r)" % ragged[0][:200]) if ragged else "")
        assert not broken, "requests without a complete FastCGI answer: %s" % broken[:3]
        assert set(statuses) <= {200, 404, 500, 503}, "statuses %s" % statuses
        assert kids1 == kids0, "children changed on a full log disk (crash loop?): %s -> %s" % (
            kids0, kids1)
        assert resumed, "no log line for %s after space returned" % marker
        assert rc == 0, "ccrd exit status %s" % rc
    finally:
        if c is not None:
            c.stop()
        mount.__exit__(None, None, None)


test_log_disk_full_requests_still_served_no_crash_loop.timeout = 90


def slow_get(port, path, cookies, rcvbuf=4096, pause=1.0, timeout=20):
    """GET through nginx from a client that reads late through a small
    receive buffer, so nginx must buffer the answer (to its temp files).
    -> (status or None, body bytes, error or None)."""
    import http.client as hc
    import socket as so
    s = so.socket(so.AF_INET, so.SOCK_STREAM)
    s.setsockopt(so.SOL_SOCKET, so.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    try:
        s.connect(("127.0.0.1", port))
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: %s\r\nConnection: close\r\n\r\n"
               % (path, "; ".join("%s=%s" % kv for kv in cookies.items())))
        s.sendall(req.encode())
        time.sleep(pause)
        r = hc.HTTPResponse(s)
        r.begin()
        try:
            body = r.read()
            return r.status, body, None
        except hc.IncompleteRead as e:
            return r.status, e.partial, "IncompleteRead: %d bytes, %s more expected" % (
                len(e.partial), e.expected)
    except (OSError, hc.HTTPException) as e:
        return None, b"", "%s: %s" % (type(e).__name__, e)
    finally:
        s.close()


def test_nginx_temp_full_big_page_clear_answer(ctx):
    """nginx's fastcgi temp folder on a full tmpfs while a slow client
    fetches a ticket page of a few MB (bigger than the socket buffers, so
    nginx must spill it to its temp folder): the answer is complete or a clear
    5xx (never a truncated 200), ccrd's workers are untouched, and the page
    is whole again when space returns."""
    st = ctx.stack
    w = world(ctx)
    u = w.customers[0]
    tid, r = fu.create_ticket(u.s.clone(), "Big conversation")
    assert tid, "POST /tickets: %s" % r.what()
    path = "/tickets/%d" % tid
    nginx_err = os.path.join(st.log_dir, "nginx-error.log")
    temp = os.path.join(st.nginx_prefix, "fastcgi_temp")
    kids0 = sorted(st.ccrd_children())
    # grow the conversation until nginx has to buffer the page in its temp
    # folder for a slow client (the page must outgrow the socket buffers)
    buffered, n_msgs = False, 0
    while not buffered and n_msgs < 1000:
        values = ",".join("(%d, %d, REPEAT('fault suite conversation filler %d ', 260), NOW())"
                          % (tid, u.id, i) for i in range(n_msgs, n_msgs + 200))
        ctx.sql("INSERT INTO messages (ticket_id, author_id, body, created_at) VALUES " + values)
        n_msgs += 200
        err_mark = fu.file_size(nginx_err)
        s0, body0, e0 = slow_get(ctx.port, path, u.s.cookies)
        assert s0 == 200 and not e0 and body0.rstrip().endswith(b"</html>"), \
            "baseline slow GET %s: %s %s, %d bytes" % (path, s0, e0, len(body0))
        buffered = "buffered to a temporary file" in fu.read_from(nginx_err, err_mark)
    try:
        # big enough for the page once the filler is gone
        mount = fu.tmpfs(temp, "%dk" % (len(body0) // 1024 + 1024))
        mount.__enter__()
    except fu.NoMount as e:
        raise helpers.Skip(str(e))
    results = []
    try:
        filler = fu.fill(temp)
        err_mark = fu.file_size(nginx_err)
        for _ in range(3):
            results.append(slow_get(ctx.port, path, u.s.cookies))
        full_errors = [l for l in fu.read_from(nginx_err, err_mark).splitlines()
                       if "No space left" in l or "28:" in l][:2]
        os.unlink(filler)
        after = slow_get(ctx.port, path, u.s.cookies)
    finally:
        mount.__exit__(None, None, None)
    kids1 = sorted(st.ccrd_children())

    def verdict(res):
        s, body, e = res
        if s is not None and s >= 500:
            return "5xx"
        if s == 200 and not e and body.rstrip().endswith(b"</html>") and len(body) == len(body0):
            return "complete"
        return "BROKEN(%s, %s, %d of %d bytes)" % (s, e, len(body), len(body0))
    v = [verdict(x) for x in results]
    measure("nginx-temp-full: page %d bytes (%d messages), nginx buffered it to disk normally: %s; with the "
            "temp folder full: %s; nginx said %s; after space returned: %s; ccrd children "
            "unchanged: %s", len(body0), n_msgs, buffered, v, full_errors, verdict(after), kids0 == kids1)
    # nginx/ccr*.conf set fastcgi_max_temp_file_size 0 (regression: with a
    # full temp folder nginx sent a 200 cut at 2.8 of 3.9 MB): a big page
    # must never be spooled to disk, so a full disk cannot truncate it
    assert not buffered, "nginx buffered the %d-byte page to its temp folder: a full disk " \
        "would cut it short (fastcgi_max_temp_file_size 0 missing?)" % len(body0)
    assert stack.alive(st.nginx.pid), "nginx died"
    assert kids1 == kids0, "ccrd children changed: %s -> %s" % (kids0, kids1)
    assert verdict(after) == "complete", "after space returned: %s" % verdict(after)
    assert all(x in ("complete", "5xx") for x in v), \
        "with nginx's temp folder full the client got %s (want a complete page or a clear " \
        "5xx); nginx error log: %s" % (v, full_errors)


test_nginx_temp_full_big_page_clear_answer.timeout = 90

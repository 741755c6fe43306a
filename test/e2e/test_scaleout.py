"""Scale-out on the real engine (issue 21, README "Scaling out"): two ccrd
hosts, each in its own network namespace against a different node of a
three-node MariaDB Galera cluster, behind one nginx upstream; a host and a
database node killed with -9 under a mixed load.

The rig (test/e2e/galera_util.py) is its own: the suite's stack is not used.
A Dovecot on the bridge holds the one mailbox both hosts' fetchers poll;
mail is dropped into it all through the load.
SCALEOUT_LONG=1 (make scaleout) runs a 60 s load instead of 20 s.  Every
figure is printed as a MEASURE line.
"""
import atexit
import collections
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.parse

import faults_util as fu
import galera_util as gu
import helpers
import stack
import sys
import tickets_util as tu
from faults_util import measure

sys.path.insert(0, os.path.join(stack.REPO, "test"))
import mailservers as ms  # noqa: E402

LONG = os.environ.get("SCALEOUT_LONG") == "1"
LOAD_SECS = 60.0 if LONG else 20.0   # plus the rejoins: about 45 s short
TOKEN_RE = re.compile(r"\b(ccr_[A-Za-z0-9_-]{20,})\b")
TICKET_LOC = re.compile(r"/tickets/(\d+)$")
API_LIMIT = 30
SUPPORT = "support@example.com"
SANITIZER = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|"
                       r"SUMMARY: UndefinedBehaviorSanitizer")


class Rig:
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "scaleout")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.net = gu.Net()
        self.galera = gu.Galera(os.path.join(self.dir, "galera"), gu.Galera.free_base())
        self.hosts = []
        self.nginx = []
        self.st = None
        self.dv = None

    def up(self):
        gu.Net.clear_stale()
        addrs = self.net.up(2)
        # one mailbox on the bridge, polled by both hosts' fetchers
        self.dv = ms.Dovecot(os.path.join(self.dir, "imap"), ms.free_port(),
                             address=gu.BRIDGE_ADDR).start()
        mail_in = dict(ms.fetcher_keys(self.dv, poll=1, timeout=5), address=SUPPORT,
                       tickets_per_hour="100000")
        t_form = self.galera.form()
        measure("scaleout: 3-node Galera cluster formed (install, bootstrap, 2 rsync SSTs) in %.1f s",
                t_form)
        port = stack.pick_free_port()
        while not stack.port_free(port + 1000):
            port = stack.pick_free_port()
        self.st = gu.ScaleStack(os.path.join(self.dir, "var"), port, self.galera,
                                require_2fa="none", workers=3,
                                extra_conf={"tickets": {"auto_assign": "round_robin"},
                                            "api": {"requests_per_minute": str(API_LIMIT)},
                                            "mail_in": mail_in})
        self.st.prepare()
        self.st.db_setup()
        self.st.migrate()
        self.st.search_start()     # the one searchd every host's [search] points at
        self.st.smtp_start()
        nodes = self.galera.nodes
        for i, (ns, addr) in enumerate(addrs):
            h = gu.Host(self.st, "host%s" % "AB"[i], ns, addr, nodes[i],
                        os.path.join(self.dir, "host%s" % "AB"[i]))
            h.start()
            self.hosts.append(h)
        for h in self.hosts:
            stack.wait_until(h.fetcher_pids, 20, "host %s's fetcher" % h.name, 0.1)
        main = gu.UpstreamNginx(self.st, os.path.join(self.dir, "ng"), port, self.hosts).start()
        self.nginx.append(main)
        for h in self.hosts:   # one nginx pinned to each host (cross-host checks)
            p = stack.pick_free_port()
            self.nginx.append(gu.UpstreamNginx(self.st, os.path.join(self.dir, "ng-" + h.name), p,
                                               [h]).start())
        stack.wait_until(lambda: helpers.http_request(port, "GET", "/healthz").status == 200, 20,
                         "/healthz through the upstream", 0.2)

    def down(self):
        errors = []
        for fn in [n.stop for n in self.nginx] + [h.stop for h in self.hosts] + \
                  ([self.st.smtp_stop, self.st.search_stop] if self.st else []) + \
                  ([self.dv.stop] if self.dv else []) + \
                  [self.net.down_links, self.galera.stop, self.net.down_route]:
            try:
                fn()
            except Exception as e:   # keep going: nothing may be left behind
                errors.append(repr(e))
        if self._leftover():
            errors.append("left behind: %s" % self._leftover())
        return errors

    def _leftover(self):
        out = gu.sh("ip", "netns", "list", check=False).stdout
        return [l for l in out.splitlines() if l.startswith("ccrso-")]


def pinned(rig, i):
    return rig.nginx[1 + i].port


# ------------------------------------------------------------------ checks

def check_read_after_redirect(ctx, rig, u, tid, n=30):
    """POST a message through host A (or B), GET the ticket through the other."""
    ca, cb = u.s.clone(pinned(rig, 0)), u.s.clone(pinned(rig, 1))
    stale = failed = 0
    for k in range(n):
        w, r_ = (ca, cb) if k % 2 == 0 else (cb, ca)
        text = "read-after-redirect probe %d %s" % (k, os.urandom(3).hex())
        r = w.post("/tickets/%d/messages" % tid, {"body": text})
        if r.status != 303:
            failed += 1
            continue
        g = r_.get("/tickets/%d" % tid)
        if g.status != 200 or text not in g.text:
            stale += 1
    measure("scaleout: read-after-redirect: %d POSTs on one host then GET on the other: %d stale, "
            "%d POSTs failed", n, stale, failed)
    assert failed == 0 and stale == 0, "read-after-redirect: %d stale, %d failed of %d" % (
        stale, failed, n)


def check_search_across_hosts(ctx, rig, u):
    """A ticket raised through host A is found by a search through host B
    (one shared searchd; either host's indexer may index it)."""
    word = tu.unique_word("zso")
    ca, cb = u.s.clone(pinned(rig, 0)), u.s.clone(pinned(rig, 1))
    r = ca.post("/tickets", {"subject": "Scale-out search %s" % word, "description": "x"})
    assert r.status == 303, "POST /tickets through host A: %s" % r.what()
    tid = int(re.search(r"/tickets/(\d+)", r.location).group(1))
    t_end = time.monotonic() + 15
    while True:
        g = cb.get("/tickets?status=all&q=" + word)
        assert g.status == 200, "search through host B: %d" % g.status
        if 'href="/tickets/%d"' % tid in g.text:
            return
        assert time.monotonic() < t_end, "host B's search never found #%d raised on host A" % tid
        time.sleep(0.2)


def check_login_throttle(ctx, rig, u):
    """Five wrong passwords for one email, alternating hosts: the sixth
    attempt (any host) answers 429."""
    seen = []
    for k in range(6):
        c = helpers.Client(pinned(rig, k % 2))
        r = helpers.login(c, u.email, "wrong password %d" % k)
        seen.append(r.status)
    measure("scaleout: login throttle across hosts (A,B,A,B,A,B): %s", seen)
    assert 429 not in seen[:5] and seen[5] == 429, "login throttle across hosts: %s" % seen
    ctx.sql("DELETE FROM login_failures")   # the load logs in as this customer too


def check_reset_code(ctx, rig, u):
    """A reset code asked on host A is used on host B, then refused on A."""
    mark = ctx.mail_mark()
    ca = helpers.Client(pinned(rig, 0))
    ca.prime("/password/forgot")
    r = ca.post("/password/forgot", {"email": u.email})
    assert r.status == 303, "POST /password/forgot: %s" % r.what()
    m = helpers.wait_mails(ctx, [lambda m: u.email in m.to and re.search(r"\b\d{8}\b", m.body)],
                           mark, 30, "the reset-code mail")[0]
    code = helpers.reset_code(m)
    r1 = helpers.set_password(ctx, u.email, code, fu.PASSWORD, helpers.Client(pinned(rig, 1)))
    r2 = helpers.set_password(ctx, u.email, code, fu.PASSWORD, helpers.Client(pinned(rig, 0)))
    measure("scaleout: reset code asked on A, used on B -> %s, again on A -> %s", r1.status, r2.status)
    assert r1.status == 303, "the code on host B: %s" % r1.what()
    assert r2.status != 303, "the used code accepted again on host A: %s" % r2.what()


def check_api_rate(ctx, rig, u):
    """[api] requests_per_minute = API_LIMIT: 2 x API_LIMIT + 10 requests
    alternating hosts within one minute.  Each host counts in its shared
    memory and adds to the row at most once a second (README "JSON API"):
    each host stops at the limit by its own count, and together they answer
    at least the limit and at most the limit + what the other host counted
    since its last flush (so at most 2 x API_LIMIT)."""
    c = u.s.clone(pinned(rig, 0))
    c.refresh_csrf("/account/tokens")
    r = c.post("/account/tokens", {"name": "scaleout"})
    assert r.status == 200, "POST /account/tokens: %s" % r.what()
    token = TOKEN_RE.search(r.text).group(1)
    while time.gmtime().tm_sec > 40:      # one fixed window
        time.sleep(0.5)
    statuses = collections.Counter()
    per_host = [collections.Counter(), collections.Counter()]
    n = 2 * API_LIMIT + 10
    for k in range(n):
        r = helpers.http_request(pinned(rig, k % 2), "GET", "/api/v1/me",
                                 headers={"Authorization": "Bearer " + token})
        statuses[r.status] += 1
        per_host[k % 2][r.status] += 1
    measure("scaleout: API rate limit %d/min, %d requests alternating hosts: %s (A %s, B %s)",
            API_LIMIT, n, dict(statuses), dict(per_host[0]), dict(per_host[1]))
    assert set(statuses) <= {200, 429}, dict(statuses)
    assert per_host[0][200] <= API_LIMIT and per_host[1][200] <= API_LIMIT, per_host
    assert API_LIMIT <= statuses[200] <= 2 * API_LIMIT, dict(statuses)


# ------------------------------------------------------------------ the load

def make_steps(ctx, rig, admin, agents, custs, tickets):
    port = rig.st.port
    steps = []
    for i, (u, tid) in enumerate(zip(custs, tickets)):
        c = u.s.clone(port)

        def writer(n, c=c, tid=tid, u=u):
            k = n % 6
            if k == 0:
                return c.get("/tickets")
            if k == 1:
                return c.get("/tickets/%d" % tid)
            if k == 2:
                return c.post("/tickets/%d/messages" % tid, {"body": "load reply %d" % n})
            if k == 3:
                return c.get("/tickets/%d/messages?after=0" % tid)        # a poll
            if k == 4:
                return c.post("/tickets", {"subject": "Load ticket %d" % n,
                                           "description": "Raised under load.",
                                           "priority": "normal"})
            return c.get("/tickets?status=open")
        steps.append(writer)
    ac = agents[0].s.clone(port)

    mine = tickets[4:]

    def agent(n):
        tid = mine[n % len(mine)]
        if n % 3 == 0:
            return ac.get("/tickets")
        if n % 3 == 1:
            return ac.get("/tickets/%d" % tid)
        return ac.post("/tickets/%d/messages" % tid, {"body": "agent answer %d" % n})
    steps.append(agent)
    adm = admin.s.clone(port)

    moved = tickets[:4]

    def assigner(n):
        tid = moved[n % len(moved)]
        if n % 2 == 0:
            return adm.get("/tickets/%d" % tid)
        return adm.post("/tickets/%d/assign" % tid, {"agent_id": str(agents[n % len(agents)].id)})
    steps.append(assigner)
    lu = custs[-1]

    def login(n):
        c = helpers.Client(port, keepalive=False, catch=True)
        if n % 2 == 0:
            return c.get("/login")
        return helpers.login(c, lu.email, fu.PASSWORD)
    steps.append(login)
    return steps


def sql_retry(st, query, runs=40):
    """A test's own write, retried on 1213 as ccrd retries its own."""
    for k in range(runs):
        try:
            return st.sql(query)
        except stack.StackError as e:
            if "1213" not in str(e) or k == runs - 1:
                raise
            time.sleep(0.05 * min(k + 1, 10))


def window(recs, t0, t1):
    return [r for r in recs if r.t1 >= t0 and r.t0 <= t1]


def kinds(recs):
    return dict(collections.Counter("%s %s" % (r.method, r.status or (r.err or "?").split(":")[0])
                                    for r in recs if not r.ok))


def longest_write_gap(recs, t0, t1):
    """The longest time with no successful POST completing, around [t0, t1]."""
    ends = sorted(r.t1 for r in recs if r.method == "POST" and r.status == 303 and t0 - 2 <= r.t1 <= t1)
    best = 0.0
    for a, b in zip(ends, ends[1:]):
        if b >= t0:
            best = max(best, b - a)
    return best


def acked(recs):
    """(ticket ids, message ids) that a 303 acknowledged."""
    t, m = set(), set()
    for r in recs:
        if r.method != "POST" or r.status != 303 or not r.location:
            continue
        u = urllib.parse.urlsplit(r.location)
        if r.path == "/tickets":
            mm = TICKET_LOC.search(u.path)
            if mm:
                t.add(int(mm.group(1)))
        elif r.path.endswith("/messages") and u.fragment.startswith("m"):
            m.add(int(u.fragment[1:]))
    return t, m


def present(node, table, ids):
    if not ids:
        return set()
    got = set()
    ids = sorted(ids)
    for k in range(0, len(ids), 500):
        part = ids[k:k + 500]
        got |= {int(r[0]) for r in node.sql("SELECT id FROM %s WHERE id IN (%s)"
                                            % (table, ",".join(map(str, part))))}
    return got


# ------------------------------------------------------------------ mail in

class MailFeed:
    """Mail dropped into the rig's one mailbox while the load runs: new
    tickets from the load's customers and replies to their tickets'
    Reply-To addresses, one every `every` seconds, plus bursts."""

    def __init__(self, dv, custs, reply_tos, every=0.25):
        self.dv, self.custs, self.reply_tos, self.every = dv, custs, reply_tos, every
        self.tag = os.urandom(3).hex()
        self.subjects, self.replies, self.msgids = [], [], []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.n = 0

    def one(self, reply=None):
        with self.lock:
            k = self.n
            self.n += 1
            msgid = "<so-%s-%d@mail.example>" % (self.tag, k)
            if reply is None:
                reply = k % 2 == 1
            if reply:
                u, to = self.reply_tos[k % len(self.reply_tos)]
                text = "Mailed reply %s %04d" % (self.tag, k)
                raw = ms.new_ticket_mail(u.email, "Re: your ticket", text, msgid=msgid, to=to)
                self.replies.append(text)
            else:
                u = self.custs[k % len(self.custs)]
                subject = "Mailed %s %04d" % (self.tag, k)
                raw = ms.new_ticket_mail(u.email, subject, "Raised by mail.", msgid=msgid)
                self.subjects.append(subject)
            self.msgids.append(msgid)
            self.dv.drop(raw)

    def burst(self, n):
        for _k in range(n):
            self.one(reply=False)

    def _run(self):
        while not self.stop_ev.wait(self.every):
            self.one()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.thread.join(10)


def reply_addresses(sctx, custs, tickets):
    """(customer, Reply-To) of a notification mail about each customer's ticket."""
    preds = [lambda m, u=u, t=t: tu.mail_about(t, u.email)(m) and "support+" in
             str(m.msg.get("Reply-To", "")) for u, t in zip(custs, tickets)]
    mails = helpers.wait_mails(sctx, preds, set(), 30, "a mail with a reply address per ticket")
    return [(u, str(m.msg.get("Reply-To"))) for u, m in zip(custs, mails)]


def check_mail_in(ctx, rig, feed, b_claims):
    """Every mail dropped becomes exactly one ticket or message, and leaves
    the mailbox; returns problems."""
    dv = rig.dv
    t0 = time.time()
    stack.wait_until(lambda: dv.count("INBOX") == 0, 120,
                     "the mailbox to empty (left %d)" % dv.count("INBOX"), 0.5)
    drained = time.time() - t0
    tq = "Mailed %s %%" % feed.tag
    tickets = collections.Counter(r[0] for r in rig.st.sql(
        "SELECT subject FROM tickets WHERE subject LIKE %s" % helpers.sql_str(tq)))
    msgs = collections.Counter(r[0] for r in rig.st.sql(
        "SELECT body FROM messages WHERE body LIKE %s" % helpers.sql_str("Mailed reply %s %%" % feed.tag)))
    lost = [s for s in feed.subjects if tickets[s] == 0] + [t for t in feed.replies if msgs[t] == 0]
    twice = [s for s, c in tickets.items() if c > 1] + [t for t, c in msgs.items() if c > 1]
    done = collections.Counter()
    for raw in dv.messages(dv.done):
        m = re.search(rb"^Message-ID: *(<[^>\r\n]+>)", raw, re.M | re.I)
        if m:
            done[m.group(1).decode()] += 1
    not_moved = [i for i in feed.msgids if done[i] == 0]
    by = {}
    dup = 0
    for h in rig.hosts:
        log = fu.read_from(h.log)
        by[h.name] = len(re.findall(r"fetcher: uid \d+: (?:ticket|message), moved", log))
        dup += log.count("mail-in: duplicate")
    measure("scaleout: mail in: %d mails dropped during the load (%d new tickets, %d replies); "
            "fetched by %s; %d claims held by host B's fetcher when it was killed (uids %s); "
            "%d handed over twice (a no-op by Message-ID); mailbox empty %.1f s after the load; "
            "lost %d, made twice %d, left unmoved %d", len(feed.msgids), len(feed.subjects),
            len(feed.replies), by, len(b_claims), b_claims, dup, drained, len(lost), len(twice),
            len(not_moved))
    problems = []
    if lost or twice or not_moved:
        problems.append("mail in: lost %s, made twice %s, not moved %s" % (lost[:5], twice[:5],
                                                                         not_moved[:5]))
    if not all(by.values()):
        problems.append("mail in: a host's fetcher fetched nothing: %s" % by)
    return problems


RIG = {}


def rig_of(ctx):
    """The rig and its world, made by the first test of this module."""
    if RIG.get("ctx") is not ctx or "rig" not in RIG:
        raise helpers.Skip("the scale-out rig is not up (see the first test of test_scaleout)")
    return RIG


def teardown():
    rig = RIG.pop("rig", None)
    return rig.down() if rig else []


atexit.register(teardown)    # a run stopped between the tests still cleans up


def test_scaleout_rig_two_hosts_three_nodes_cross_host_rules(ctx):
    """The rig forms; read-after-redirect, the login throttle, a reset code
    and the API rate limit hold across the two hosts."""
    if os.geteuid() != 0:
        raise helpers.Skip("network namespaces need root")
    if not os.path.exists(gu.GALERA_LIB):
        raise helpers.Skip("galera-4 is not installed (make deps)")
    teardown()
    RIG.clear()
    rig = Rig(ctx.tmp)
    RIG.update(ctx=ctx, rig=rig)
    problems = []
    try:
        rig.up()
        st = rig.st
        sctx = helpers.Context(st, ctx.tmp)
        # ---- the world, through the upstream
        admin = tu.make_admin(sctx, "Sam", "Scaleadmin")
        agents = tu.new_agents(sctx, admin, [("Agent%s" % c, "Scale%s" % c) for c in "ABC"])
        for a in agents:
            a.s.refresh_csrf("/tickets")
            r = a.s.post("/account/availability", {"available": "1"})
            assert r.status == 303, "POST /account/availability: %s" % r.what()
        custs = [fu.customer(sctx, "so%d" % i) for i in range(6)]
        tickets = []
        for u in custs:
            tid, r = fu.create_ticket(u.s, "Scale-out ticket")
            assert tid, "POST /tickets: %s" % r.what()
            u.s.get("/tickets/%d" % tid)
            tickets.append(tid)
        # the agent of the load answers tickets 4 and 5 (the assigner moves 0..3)
        admin.s.get("/tickets/%d" % tickets[0])
        for tid in tickets[4:]:
            r = admin.s.post("/tickets/%d/assign" % tid, {"agent_id": str(agents[0].id)})
            assert r.status == 303, "POST /tickets/%d/assign: %s" % (tid, r.what())
        extra = fu.customer(sctx, "probe")
        tid_p, _r = fu.create_ticket(extra.s, "Probe ticket")
        extra.s.get("/tickets/%d" % tid_p)
        RIG.update(sctx=sctx, admin=admin, agents=agents, custs=custs, tickets=tickets)
    except BaseException:
        errs = teardown()
        if errs:
            print("teardown: %s" % errs)
        raise
    # ---- cross-host correctness
    for name, fn in (("read-after-redirect", lambda: check_read_after_redirect(sctx, rig, extra, tid_p)),
                     ("search", lambda: check_search_across_hosts(sctx, rig, extra)),
                     ("login throttle", lambda: check_login_throttle(sctx, rig, custs[0])),
                     ("reset code", lambda: check_reset_code(sctx, rig, custs[1])),
                     ("api rate", lambda: check_api_rate(sctx, rig, custs[2]))):
        try:
            fn()
        except AssertionError as e:
            problems.append("%s: %s" % (name, e))
    assert not problems, "; ".join(problems)


test_scaleout_rig_two_hosts_three_nodes_cross_host_rules.timeout = 300


def test_parallel_ticket_creation_on_two_galera_nodes_never_503(ctx):
    """Regression: with auto_assign = round_robin every new ticket writes the
    one assign_cursor row, so tickets raised at once on two Galera nodes
    conflict (1213) again and again; three immediate re-runs were not enough
    (a POST /tickets answered 503 about once in 500 under load, 19 of these
    160).  8 clients,
    4 on each host, raise 20 tickets each at once: every one is a 303."""
    R = rig_of(ctx)
    rig = R["rig"]
    res = collections.Counter()
    lock = threading.Lock()
    bad = []

    def run(k):
        u = R["custs"][k % len(R["custs"])]
        c = u.s.clone(pinned(rig, k % 2))
        for n in range(20):
            r = c.post("/tickets", {"subject": "Burst %d.%d" % (k, n), "description": "At once.",
                                    "priority": "normal"})
            with lock:
                res[r.status] += 1
                if r.status != 303:
                    bad.append(r.what())
    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    retried = sum(fu.read_from(h.log).count("deadlock (1213), retrying") for h in rig.hosts)
    measure("scaleout: 160 tickets raised at once on two nodes: %s; 1213 re-runs so far on both hosts: %d",
            dict(res), retried)
    assert res[303] == 160, "parallel POST /tickets on two nodes: %s %s" % (dict(res), bad[:3])


def test_scaleout_host_and_node_killed_under_load(ctx):
    """kill -9 of host B (and its restart), kill -9 of Galera node 3 (and its
    IST rejoin), kill -9 of node 2 (B's; B's /healthz 503 until it is
    Synced), ccr-admin migrate on both hosts at once, all under a mixed load
    and a stream of mail into the one mailbox both fetchers poll: at most
    the requests in flight on B fail; no acknowledged write is lost on any
    node; every mail is sent exactly once; every mail in becomes exactly
    one ticket or message (those B's fetcher held at its kill too); one
    migrate applies, the other waits; round robin stays fair."""
    R = rig_of(ctx)
    rig, sctx, admin, agents, custs, tickets = (R[k] for k in ("rig", "sctx", "admin", "agents",
                                                              "custs", "tickets"))
    st = rig.st
    A, B = rig.hosts
    g = rig.galera
    problems = []
    try:
        lo_outbox = int(st.sql("SELECT COALESCE(MAX(id), 0) FROM outbox")[0][0])
        lo_ticket = int(st.sql("SELECT COALESCE(MAX(id), 0) FROM tickets")[0][0])
        # ---- the load, with the kills
        migr = {}
        schema = os.path.join(rig.dir, "schema")
        shutil.copytree(os.path.join(st.repo, "schema"), schema)
        # the sleep keeps the first run inside the file while the second asks
        with open(os.path.join(schema, "999-scaleout-probe.sql"), "w") as f:
            f.write("CREATE TABLE scaleout_probe (id INT PRIMARY KEY, note VARCHAR(40));\n"
                    "DO SLEEP(2);\n"
                    "INSERT INTO scaleout_probe VALUES (1, 'migrated while serving');\n")
        mconfs = []
        for h in (A, B):
            with open(h.conf) as f:
                text = f.read()
            text = re.sub(r"(?m)^schema_dir = .*$", "schema_dir = %s" % schema, text)
            mconfs.append(h.conf + ".migrate")
            with open(mconfs[-1], "w") as f:
                f.write(text)
            os.chmod(mconfs[-1], 0o600)
        ev = {}
        steps = make_steps(sctx, rig, admin, agents, custs, tickets)
        feed = MailFeed(rig.dv, custs, reply_addresses(sctx, custs, tickets))
        D = LOAD_SECS
        mark_a = fu.file_size(A.log)
        health = []            # (time, status, body) of host B's /healthz
        with fu.Load(steps, pause=0.01) as load, feed:
            t0 = time.time()
            time.sleep(D * 0.15)
            b_mailers = B.mailer_pids()
            # a burst of mail, so B's fetcher is inside a message when it dies
            feed.burst(40)
            b_claim_q = "SELECT uid FROM imap_claims WHERE claimed_by LIKE '%s:%%'" % B.hostname
            stack.wait_until(lambda: st.sql(b_claim_q), 10, "host B's fetcher to claim a mail", 0.01)
            ev["host_kill"] = time.time()
            B.kill9()
            ev["host_dead"] = time.time()    # every process of B's group gone
            b_claims = sorted(int(r[0]) for r in st.sql(b_claim_q))
            time.sleep(D * 0.15)
            ev["host_restart"] = time.time()
            mark_b = fu.file_size(B.log)
            B.start()
            gu.sh("ip", "neigh", "flush", "dev", rig.net.bridge, check=False)
            stack.wait_until(lambda: fu.access_lines(fu.read_from(B.log, mark_b)), 30,
                             "host B to serve again after its restart", 0.1)
            ev["host_back"] = time.time()
            time.sleep(D * 0.1)
            n3 = g.nodes[2]
            ev["node_kill"] = time.time()
            n3.kill9()
            stack.wait_until(lambda: g.cluster_size(0) == 2, 30, "the cluster to evict node 3", 0.05)
            ev["node_evicted"] = time.time()
            time.sleep(D * 0.1)
            pos = n3.recover()
            ev["node_restart"] = time.time()
            err_mark = fu.file_size(n3.err)
            n3.start("--wsrep-start-position=" + pos)
            n3.wait_synced(120)
            ev["node_synced"] = time.time()
            join_log = fu.read_from(n3.err, err_mark)
            time.sleep(D * 0.05)
            # node 2, the one host B talks to: B answers 503 until it is back
            n2 = g.nodes[1]
            hstop = threading.Event()

            def poll_health():
                while not hstop.wait(0.1):
                    try:
                        r = helpers.http_request(pinned(rig, 1), "GET", "/healthz", timeout=3)
                        health.append((time.time(), r.status, r.text.strip()))
                    except OSError as e:
                        health.append((time.time(), None, repr(e)))
            hthread = threading.Thread(target=poll_health, daemon=True)
            hthread.start()
            ev["node2_kill"] = time.time()
            b_claimed = int(st.sql("SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND "
                                   "claimed_by IS NOT NULL AND lease_until > NOW()")[0][0])
            n2.kill9()
            stack.wait_until(lambda: g.cluster_size(0) == 2, 30, "the cluster to evict node 2", 0.05)
            ev["node2_evicted"] = time.time()
            b_claimed_after = [r for r in st.sql(
                "SELECT id, claimed_by FROM outbox WHERE status = 'pending' AND claimed_by IS NOT NULL")
                if r[1].rsplit(":", 1)[-1] in {str(p) for p in B.mailer_pids()}]
            time.sleep(D * 0.05)
            pos2 = n2.recover()
            ev["node2_restart"] = time.time()
            err2 = fu.file_size(n2.err)
            n2.start("--wsrep-start-position=" + pos2)
            n2.wait_synced(120)
            ev["node2_synced"] = time.time()
            join2 = fu.read_from(n2.err, err2)
            mark_b2 = fu.file_size(B.log)
            stack.wait_until(lambda: any(a.status < 400 and a.path != "/healthz" for a in
                                         fu.access_lines(fu.read_from(B.log, mark_b2))), 30,
                             "host B to answer again once node 2 is back", 0.1)
            ev["node2_b_back"] = time.time()
            time.sleep(0.5)
            hstop.set()
            hthread.join(10)
            # migration on both hosts at once (nodes 1 and 2) while both serve
            time.sleep(max(0.0, t0 + D * 0.75 - time.time()))
            ev["migrate"] = time.time()
            procs = [subprocess.Popen(h.exec_argv(st.admin_bin, "-c", mc, "migrate"),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for h, mc in zip((A, B), mconfs)]
            outs = [p.communicate(timeout=180) for p in procs]
            ev["migrated"] = time.time()
            migr = [{"rc": p.returncode, "out": (o + e).strip()} for p, (o, e) in zip(procs, outs)]
            time.sleep(max(0.0, t0 + D - time.time()))
        recs = load.recs
        # ---- 1. host killed
        fails = fu.failures(recs)
        kw = window(recs, ev["host_kill"], ev["host_kill"] + 3)
        kfails = fu.failures(kw)
        # in flight at the kill: sent before B's last process was gone,
        # answered after the kill began (B's busy workers and the requests in
        # its listen queue, which lives until the last process of B dies)
        inflight = [r for r in recs if r.t0 < ev["host_dead"] and r.t1 > ev["host_kill"]]
        late = [r for r in kfails if r.t0 >= ev["host_dead"]]
        acc_a = [a for a in fu.access_lines(fu.read_from(A.log, mark_a))
                 if ev["host_kill"] < a.t < ev["host_restart"]]
        measure("scaleout: %d requests in %.0f s (%s); failed by kind: %s", len(recs), D,
                dict(collections.Counter(r.method for r in recs)), kinds(recs) or "none")
        measure("scaleout: host B killed -9: %d requests failed at the kill (%s), of %d in flight "
                "(on both hosts; B had %d workers; the kill took %.0f ms); host A served %d requests while B was down; B "
                "restarted and served again in %.1f s", len(kfails), kinds(kfails) or "none",
                len(inflight), B.workers, 1000 * (ev["host_dead"] - ev["host_kill"]), len(acc_a),
                ev["host_back"] - ev["host_restart"])
        if late or any(r.method == "GET" for r in kfails):
            problems.append("host kill: failed requests not in flight at the kill, or GETs (nginx "
                            "retries them on A): %s" % kinds(late + [r for r in kfails if r.method == "GET"]))
        if not acc_a:
            problems.append("host A served nothing while B was down")
        # ---- 2. Galera node killed
        stall = longest_write_gap(recs, ev["node_kill"], ev["node_evicted"] + 5)
        nw = window(recs, ev["node_kill"], ev["node_synced"])
        ist = "IST received" in join_log or "Receiving IST" in join_log
        sst = "SST request" in join_log and not ist
        measure("scaleout: Galera node 3 killed -9: evicted after %.1f s; longest write stall %.1f s; "
                "%d requests failed meanwhile (%s); recovered position %s; rejoined (%s) and Synced "
                "%.1f s after its restart", ev["node_evicted"] - ev["node_kill"], stall,
                len(fu.failures(nw)), kinds(nw) or "none", pos,
                "IST" if ist else ("SST" if sst else "?"), ev["node_synced"] - ev["node_restart"])
        if not ist:
            problems.append("node 3 did not rejoin with IST: %s" % join_log[-400:])
        # ---- 2b. the node under host B killed
        stall2 = longest_write_gap(recs, ev["node2_kill"], ev["node2_evicted"] + 5)
        w2 = window(recs, ev["node2_kill"], ev["node2_b_back"])
        f2 = fu.failures(w2)
        ist2 = "IST received" in join2 or "Receiving IST" in join2
        moved = sum(1 for line in fu.read_from(rig.nginx[0].access).splitlines() if "up=503, " in line)
        measure("scaleout: Galera node 2 (host B's) killed -9: evicted after %.1f s; longest write "
                "stall %.1f s; %d of %d requests failed until B answered again (%s); %d GETs that B "
                "answered 503 were passed on to A by nginx; %d rows claimed by mailers at the kill, "
                "%d of them B's; rejoined (%s) and Synced %.1f s after its restart; B answering "
                "%.1f s after that", ev["node2_evicted"] - ev["node2_kill"], stall2, len(f2), len(w2),
                kinds(f2) or "none", moved, b_claimed, len(b_claimed_after), "IST" if ist2 else "?",
                ev["node2_synced"] - ev["node2_restart"], ev["node2_b_back"] - ev["node2_synced"])
        if not ist2:
            problems.append("node 2 did not rejoin with IST: %s" % join2[-400:])
        # host B's /healthz while its node was down and rejoining
        down = [h for h in health if ev["node2_kill"] + 0.5 < h[0] < ev["node2_restart"]]
        joining = [h for h in health if ev["node2_restart"] < h[0] < ev["node2_synced"] - 0.5]
        measure("scaleout: host B's /healthz while node 2 was down: %s; while it rejoined: %s; "
                "once Synced: %s", dict(collections.Counter((h[1], h[2]) for h in down)),
                dict(collections.Counter((h[1], h[2]) for h in joining)),
                dict(collections.Counter(h[1] for h in health if h[0] > ev["node2_b_back"])))
        if any(h[1] == 200 for h in down + joining):
            problems.append("host B's /healthz said 200 while node 2 was not Synced: %s" % [
                h for h in down + joining if h[1] == 200][:3])
        if [r for r in f2 if r.method == "GET" or r.status != 503]:
            problems.append("node 2 down: GETs failed or POSTs other than 503: %s" % kinds(f2))
        if not [r for r in w2 if r.method == "POST" and r.status == 303 and r.t0 > ev["node2_evicted"]]:
            problems.append("no write succeeded (on host A) while node 2 was down")
        after = [r for r in recs if r.method == "POST" and r.status == 303 and r.t0 > ev["node_evicted"]]
        if not after:
            problems.append("no write succeeded after node 3 was evicted")
        if fu.failures(nw):
            problems.append("requests failed while node 3 was down: %s" % kinds(nw))
        # ---- 3. no acknowledged write lost, on each node
        t_ids, m_ids = acked(recs)
        lost = {}
        for n in g.nodes:
            lt = t_ids - present(n, "tickets", t_ids)
            lm = m_ids - present(n, "messages", m_ids)
            lost[n.i] = len(lt) + len(lm)
        measure("scaleout: %d tickets and %d messages acknowledged by a 303; lost per node: %s",
                len(t_ids), len(m_ids), lost)
        if any(lost.values()) or not t_ids or not m_ids:
            problems.append("acknowledged writes lost (node: count): %s" % lost)
        # ---- 4. migration while both serve
        mw = window(recs, ev["migrate"], ev["migrated"] + 1)
        probe = g.nodes[2].sql("SELECT note FROM scaleout_probe")
        applied = [m for m in migr if "applied 999-scaleout-probe" in m["out"]]
        waited = [m for m in migr if "waiting for the migration run by" in m["out"]]
        measure("scaleout: ccr-admin migrate on hosts A and B at once (nodes 1 and 2) while serving: "
                "exits %s; %d applied the new migration, %d waited for the lock; %.1f s, %d requests "
                "meanwhile, %d failed; the new table on node 3: %s", [m["rc"] for m in migr],
                len(applied), len(waited), ev["migrated"] - ev["migrate"], len(mw),
                len(fu.failures(mw)), probe)
        if any(m["rc"] != 0 for m in migr) or len(applied) != 1 or fu.failures(mw) or \
                probe != [["migrated while serving"]]:
            problems.append("two migrates while serving: %s, failures %s" % (migr, kinds(mw)))
        # ---- 4b. every mail in became exactly one ticket or message
        problems += check_mail_in(sctx, rig, feed, b_claims)
        # ---- 5. every outbox row sent exactly once across the two mailers
        dead = {str(p) for p in b_mailers}
        stuck = [r for r in st.sql("SELECT id, claimed_by FROM outbox WHERE id > %d AND status = 'pending' "
                                   "AND claimed_by IS NOT NULL" % lo_outbox)
                 if r[1].rsplit(":", 1)[-1] in dead]
        if stuck:    # the dead mailer's lease, run out at once (as it would in 2 minutes)
            sql_retry(st, "UPDATE outbox SET lease_until = NOW() - INTERVAL 1 SECOND WHERE id IN (%s)"
                      % ",".join(r[0] for r in stuck))
        # rows in back-off (none expected: the sink stays up), due now; by
        # id, as the mailers write these rows all the while
        later = [r[0] for r in st.sql("SELECT id FROM outbox WHERE id > %d AND status = 'pending' "
                                      "AND next_attempt_at > NOW()" % lo_outbox)]
        for k in range(0, len(later), 20):
            sql_retry(st, "UPDATE outbox SET next_attempt_at = NOW() WHERE id IN (%s)"
                      % ",".join(later[k:k + 20]))
        stack.wait_until(lambda: st.sql("SELECT COUNT(*) FROM outbox WHERE id > %d AND status = 'pending'"
                                        % lo_outbox)[0][0] == "0", 90, "the outbox to drain", 0.5)
        rows = st.sql("SELECT id, status, message_id, claimed_by FROM outbox WHERE id > %d" % lo_outbox)
        ids = fu.sink_message_ids(st)
        by = collections.Counter("A" if r[3].rsplit(":", 1)[-1] in {str(p) for p in A.mailers} else
                                 "B" for r in rows)
        dups = {r[0]: ids.get(r[2], 0) for r in rows if ids.get(r[2], 0) != 1}
        # SIGKILL (of the host, or of the database node) can land between the
        # SMTP server's 250 and the mailer's record of it: that one mail per
        # mailer is sent again, with its Message-ID (at least once, never lost)
        stuck_ids = {r[0] for r in stuck} | {r[0] for r in b_claimed_after}
        resent = {k: v for k, v in dups.items() if k in stuck_ids and v == 2}
        others = {k: v for k, v in dups.items() if k not in resent}
        measure("scaleout: %d mails; sent by mailers of A %d / B %d; %d behind the dead mailer's "
                "lease; %d resent (in flight at the kill); %d delivered other than once",
                len(rows), by["A"], by["B"], len(stuck), len(resent), len(others))
        if others or len(resent) > len(b_mailers) + 1 or any(r[1] != "sent" for r in rows):
            problems.append("mail: not exactly once: %s; statuses %s" % (
                others, collections.Counter(r[1] for r in rows)))
        # ---- 6. auto-assignment fair across hosts
        counts = collections.Counter(int(r[0]) for r in st.sql(
            "SELECT IFNULL(agent_id, 0) FROM tickets WHERE id > %d AND id IN (SELECT ticket_id "
            "FROM timeline WHERE kind = 'assigned' AND actor_id IS NULL)" % lo_ticket))
        new = int(st.sql("SELECT COUNT(*) FROM tickets WHERE id > %d" % lo_ticket)[0][0])
        per = [counts.get(a.id, 0) for a in agents]
        measure("scaleout: auto-assignment (round robin) of %d tickets raised on both hosts: %s "
                "(%d unassigned)", new, per, counts.get(0, 0))
        if max(per) - min(per) > 1 or sum(per) != new:
            problems.append("auto-assignment not fair across hosts: %s of %d" % (per, new))
        for n in g.nodes:
            measure("scaleout: node %d: cluster size %s, state %s", n.i, n.status("wsrep_cluster_size"),
                    n.status("wsrep_local_state_comment"))
        measure("scaleout: total %d requests, %d failed", len(recs), len(fails))
    except BaseException:
        teardown()
        raise
    assert not problems, "; ".join(problems)


test_scaleout_host_and_node_killed_under_load.timeout = 600


def test_mailer_sends_rows_it_claimed_before_its_database_node_died(ctx):
    """Regression: when host B's Galera node was killed, B's mailer was in a
    batch; its renewals failed, it skipped the rest, and those rows stayed
    claimed by it until the lease ran out (5 minutes: the outbox did not
    drain).  The state it left is rows pending and claimed by a live mailer
    with a lease to run: made here directly, they are sent at once, each
    exactly once."""
    R = rig_of(ctx)
    rig = R["rig"]
    st = rig.st
    B = rig.hosts[1]
    pids = B.mailer_pids()
    assert len(pids) == 1, "host B's mailer: %s" % pids
    me = "%s:%d" % (B.hostname, pids[0])
    assert st.sql("SELECT COUNT(*) FROM outbox WHERE claimed_by = '%s'" % me)[0][0] != "0", \
        "host B's mailer claims as %s (no row says so)" % me
    tag = os.urandom(4).hex()
    values = ",".join(
        "('test', 'left%d@example.com', 'Claimed before the node died', 'body', "
        "'<left-%s-%d@localhost>', 'pending', NOW(), NOW(), '%s', NOW() + INTERVAL 300 SECOND)"
        % (k, tag, k, me) for k in range(5))
    sql_retry(st, "INSERT INTO outbox (kind, to_addr, subject, body, message_id, status, created_at, "
              "next_attempt_at, claimed_by, lease_until) VALUES " + values)
    t0 = time.time()
    q = "SELECT COUNT(*) FROM outbox WHERE message_id LIKE '<left-%s-%%' AND status = 'sent'" % tag
    stack.wait_until(lambda: st.sql(q)[0][0] == "5", 30,
                     "the rows B's mailer still held (lease 300 s) to be sent", 0.2)
    ids = fu.sink_message_ids(st)
    copies = [ids.get("<left-%s-%d@localhost>" % (tag, k), 0) for k in range(5)]
    measure("scaleout: 5 rows left claimed by host B's live mailer: sent in %.1f s, copies %s",
            time.time() - t0, copies)
    assert copies == [1] * 5, "copies delivered: %s" % copies


def test_healthz_503_on_a_galera_node_not_synced(ctx):
    """Regression: /healthz answered 200 on a Galera node that was not
    Synced (joining, or desynced), so a load balancer kept sending to a host
    whose node lags the cluster.  Node 2 (host B's) desynced with
    wsrep_desync=ON: B's /healthz answers 503 naming the state, A's 200;
    desync off: B's 200 again."""
    R = rig_of(ctx)
    rig = R["rig"]
    n2 = rig.galera.nodes[1]

    def health(i):
        r = helpers.http_request(pinned(rig, i), "GET", "/healthz", timeout=5)
        return r.status, r.text.strip()
    before = health(1)
    n2.sql("SET GLOBAL wsrep_desync = ON", database=None)
    try:
        state = n2.status("wsrep_local_state_comment")
        during = health(1), health(0)
    finally:
        n2.sql("SET GLOBAL wsrep_desync = OFF", database=None)
    stack.wait_until(n2.synced, 30, "node 2 to be Synced again", 0.1)
    after = health(1)
    measure("scaleout: /healthz of host B: %s; node 2 desynced (%s): B %s, A %s; resynced: B %s",
            before, state, during[0], during[1], after)
    assert before[0] == 200 and after[0] == 200, (before, after)
    assert during[0][0] == 503 and "not synced" in during[0][1], during
    assert during[1][0] == 200, during


def test_scaleout_teardown_leaves_no_namespace_route_or_process(ctx):
    """Load, nginx, ccrd hosts, namespaces, bridge, nodes, then the route."""
    R = rig_of(ctx)
    rig = R["rig"]
    pids = [n.proc.pid for n in rig.galera.nodes if n.proc] + [h.proc.pid for h in rig.hosts if h.proc]
    errs = teardown()
    left = [p for p in pids if stack.proc_state(p) not in (None, "Z", "X")]
    routes = gu.sh("ip", "route", "show", "type", "unreachable", check=False).stdout
    links = gu.sh("ip", "link", "show", check=False).stdout
    assert not errs, "teardown: %s" % errs
    assert not left, "processes left: %s" % left
    # the suite's own sanitizer check reads the stack's log only: the hosts' too
    for h in rig.hosts:
        m = SANITIZER.search(fu.read_from(h.log))
        assert not m, "sanitizer report in %s: %s" % (h.log, m.group(0))
    assert gu.RANGE not in routes and rig.net.bridge not in links, (routes, links)

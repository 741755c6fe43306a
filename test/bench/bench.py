#!/usr/bin/python3
"""bench.py — `make bench` (issue #7): ccrd's pages against their ceilings.

    /usr/bin/python3 test/bench/bench.py run --cache DIR --sizes "10k 1m" \\
        --rounds 3 --duration 10 --threads 2 --conns 16 --out test/bench/RESULTS.md

1. The data sets come from gen.py (cached in DIR/<size>, rebuilt when the
   generator or the schema changed).
2. Per size, a production-like stack in a temporary folder (test/stack.py
   through benchstack.BenchStack): MariaDB on the cached datadir with a 2 GB
   buffer pool, `workers = 0` (2 x cores), default max_requests, hash slots
   and cookies as in production (secure_cookies on), nginx with the access
   log on and worker_processes auto.  The same nginx serves the ceilings:
   (A) a static 8 KB file, (B) build/bench/fcgi-ceiling 8k, (C)
   build/bench/fcgi-ceiling join (one indexed 25-row join on the bench
   database).  All sizes run side by side so that rounds interleave.
3. Set-up requests (Python): real logins of a customer, an agent and the
   admin; every endpoint is requested once and checked (status, rows,
   messages); one request per page is repeated with MariaDB's slow log at
   long_query_time = 0 to list each page's statements, rows examined and
   plans.
4. A short warm-up, then ROUNDS rounds; in each round every endpoint of
   every size runs once under `wrk -t T -c C -d D --latency`, sizes in
   rotating order, plus the Argon2id ceiling (build/bench/hashbench with
   max_concurrent_hashes processes, the configured cost).  Medians of the
   rounds are reported.
5. Memory (RSS, PSS from /proc/PID/smaps_rollup) of the ccrd master, each
   worker and the mailer after the last round; results to --out (Markdown),
   the raw numbers next to it (RESULTS.json) and to DIR/last-run.json.
   `bench.py report` rewrites the Markdown from a saved JSON.
"""
import argparse
import fcntl
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen  # noqa: E402
from benchstack import BenchStack, StackError, REPO, stack, anon_csrf, http, session_of  # noqa: E402

CEILING = os.path.join(REPO, "build", "bench", "fcgi-ceiling")
HASHBENCH = os.path.join(REPO, "build", "bench", "hashbench")
POST_LUA = os.path.join(HERE, "post.lua")
BENCH_DB_OPTS = ["--innodb-buffer-pool-size=2G", "--innodb-log-file-size=512M"]
HASH_MODES = ("fresh", "reuse", "mmap")
MESSAGE_BODY = ("Thanks, I tried that again this morning but the invoice still shows the old "
                "amount. Could you check the billing history on my account once more?")


def log(msg):
    print("bench: %s" % msg, flush=True)


def sh(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


# ------------------------------------------------------------------ wrk

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def ms_of(s):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", s)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse_wrk(out):
    r = {"rps": None, "p50": None, "p99": None, "non2xx": 0, "sock_err": 0, "requests": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, out, re.M)
        if m:
            r[key] = ms_of(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["sock_err"] = sum(int(x) for x in m.groups())
    return r


class Endpoint:
    def __init__(self, key, label, method, path, cookie=None, body=None, expect=200,
                 check=None, kind="page", bearer=None, content_type=None):
        self.key, self.label, self.method, self.path = key, label, method, path
        self.cookie, self.body, self.expect, self.check, self.kind = cookie, body, expect, check, kind
        self.bearer, self.content_type = bearer, content_type
        self.bytes = None
        self.wire = None        # {"plain": bytes, "gzip": bytes} on the wire, headers included
        self.failed = None      # why this row is not measured (its page was not the one meant)

    def wrk_argv(self, port, a, duration):
        argv = ["wrk", "-t%d" % a.threads, "-c%d" % a.conns, "-d%ds" % duration,
                "--latency", "--timeout", "10s"]
        if getattr(a, "gzip", False):
            argv += ["-H", "Accept-Encoding: gzip"]   # as every browser does
        if self.cookie:
            argv += ["-H", "Cookie: " + self.cookie]
        if self.bearer:
            argv += ["-H", "Authorization: Bearer " + self.bearer]
        if self.method == "POST":
            argv += ["-s", POST_LUA]
        argv.append("http://127.0.0.1:%d%s" % (port, self.path))
        if self.method == "POST":
            argv += ["--", self.body] + ([self.content_type] if self.content_type else [])
        return argv


def api_args(e):
    """http()'s extra arguments for an API row: its Bearer header and JSON body."""
    if not e.bearer:
        return {}
    h = {"Authorization": "Bearer " + e.bearer}
    if e.content_type:
        h["Content-Type"] = e.content_type
    return {"headers": h, "body": e.body.encode() if e.body and e.content_type else None}


def api_token_of(port, session, csrf):
    """An API token of the signed-in person, made through POST /account/tokens."""
    r = http(port, "POST", "/account/tokens", cookies={"ccr_session": session},
             form={"csrf_token": csrf, "name": "bench %d" % os.getpid()})
    m = re.search(r"\bccr_[0-9a-f]{64}\b", r.text)
    if r.status != 200 or not m:
        raise StackError("POST /account/tokens: %d, no token shown:\n%s" % (r.status, r.text[:500]))
    return m.group(0)


# ------------------------------------------------------------------ one size

def rows_in(text):
    return text.count('class="ticket-subject"')


def msgs_in(text):
    return text.count('<li class="msg ')


class SizeBench:
    def __init__(self, size, stamp, cache, tmp, used_ports):
        self.size, self.stamp, self.cache = size, stamp, cache
        self.var = os.path.join(tmp, size)
        self.www = os.path.join(self.var, "www")
        self.used_ports = used_ports
        self.st = None
        self.ceilings = {}
        self.endpoints = []
        self.profile = {}
        self.cold_503 = []
        self.rebuild, self.words, self.fresh = {}, {}, {}
        self.lock = None

    # nginx.conf: production-like worker count and the three ceilings
    def nginx_patch(self, text):
        if "worker_processes 1;" not in text or "        location /static/ {" not in text:
            raise StackError("nginx/ccr-dev.conf.in changed: cannot place the bench locations")
        text = text.replace("worker_processes 1;", "worker_processes auto;   # make bench")
        run = self.st.run_dir
        loc = ("        # ---- make bench: the ceilings\n"
               "        location /bench/static/ {\n            alias %s/;\n        }\n"
               "        location = /bench/fcgi-8k {\n            fastcgi_pass unix:%s/bench-8k.sock;\n        }\n"
               "        location = /bench/fcgi-join {\n            fastcgi_pass unix:%s/bench-join.sock;\n        }\n\n"
               % (self.www, run, run))
        return text.replace("        location /static/ {", loc + "        location /static/ {", 1)

    # after `ccr-admin migrate`, before ccrd: forget what earlier runs wrote
    def reset(self, st):
        s = self.stamp
        st.sql("SET time_zone = '+00:00'; "
               "DELETE FROM timeline WHERE id > %d; DELETE FROM notes; DELETE FROM saved_replies; "
               "DELETE FROM messages WHERE id > %d; DELETE FROM sessions; DELETE FROM audit_log; "
               "DELETE FROM login_failures; DELETE FROM outbox; DELETE FROM ticket_notices; "
               "DELETE FROM password_codes; DELETE FROM login_pending; DELETE FROM devices; "
               "DELETE FROM api_rate; DELETE FROM api_tokens; "
               "UPDATE tickets SET status = 'open', closed_at = NULL, "
               "last_activity = FROM_UNIXTIME(%d) WHERE id = %d;"
               % (s["max_timeline_id"], s["max_message_id"], s["ticket_post_activity"],
                  s["ticket_post"]), timeout=600)

    def start(self):
        self.lock = open(os.path.join(self.cache, self.size + ".lock"), "w")
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StackError("another bench or generator uses %s/%s" % (self.cache, self.size))
        os.makedirs(self.www, exist_ok=True)
        with open(os.path.join(self.www, "8k.html"), "w") as f:
            line = "<p>" + "x" * 56 + "</p>\n"          # 64 bytes
            f.write(line * 128)                        # 8192 bytes
        port = stack.pick_free_port(avoid=tuple(self.used_ports) + (8080,))
        self.used_ports.update((port, port + 1000))
        self.st = BenchStack(self.var, port, db_dir=os.path.join(self.cache, self.size, "var", "db"),
                             db_opts=BENCH_DB_OPTS, nginx_patch=self.nginx_patch,
                             after_migrate=self.reset, workers=0, ccrd_log="file",
                             extra_conf={"security": {"secure_cookies": "true"},
                                         # the API rows measure the request, not the 429
                                         "api": {"requests_per_minute": "1000000"}})
        log("%s: starting the stack on port %d in %s" % (self.size, port, self.var))
        self.st.start(timeout=120)
        self.search_rebuild()
        self.start_ceilings()
        self.sessions()

    def search_rebuild(self):
        """ccr-admin search-rebuild over the data set (README "Search"), timed:
        the search rows measure a full index of it."""
        log("%s: ccr-admin search-rebuild" % self.size)
        t = time.monotonic()
        p = self.st.admin("search-rebuild", timeout=4 * 3600)
        self.rebuild = {"s": round(time.monotonic() - t, 1), "out": p.stdout.strip()}
        log("%s: %s (%.1f s)" % (self.size, self.rebuild["out"], self.rebuild["s"]))

    def search_words(self):
        """The words of the search rows, from the index itself (CALL KEYWORDS
        gives each word's document count): a rare word (gen.py's RARE_WORD,
        in ~0.01 % of the tickets; with the conversation in the documents
        every vocabulary word is common), two words together (the two
        vocabulary words nearest 10 % of the tickets), and a prefix."""
        rare = self.stamp["rare_word"]
        vocab = sorted(set(w.lower() for w in gen.WORDS) | {rare})
        out = subprocess.run([stack.MARIADB, "--no-defaults", "-h127.0.0.1", "-P%d" % self.st.search_port,
                              "-B", "-N", "-e", "CALL KEYWORDS('%s', 'ccr_tickets', 1)" % " ".join(vocab)],
                             capture_output=True, text=True, timeout=120)
        docs = {}
        for line in out.stdout.splitlines():
            f = line.split("\t")
            # qpos, tokenized, normalized, docs, hits
            if len(f) >= 5 and f[3].isdigit():
                docs[f[1]] = int(f[3])
        if not docs:
            raise StackError("CALL KEYWORDS on searchd answered nothing: %s" % out.stderr.strip())
        n = max(1, self.stamp["counts"]["tickets"])
        if docs.get(rare, 0) < 1:
            raise StackError("the rare word %r is in no document of the index" % rare)
        two = sorted((w for w in docs if w != rare), key=lambda w: (abs(docs[w] / n - 0.10), w))[:2]
        self.words = {"rare": rare, "two": " ".join(two), "prefix": "refun*",
                      "docs": {w: docs[w] for w in [rare] + two}}
        log("%s: search words: rare %r (%d docs), two %r (%s docs)" % (
            self.size, rare, docs[rare], self.words["two"],
            "/".join(str(docs[w]) for w in two)))

    def freshness(self, session, csrf, ticket, n=10):
        """How soon a search finds a new message (README "Search": the
        index catches up within a second): n times, a message with a new
        word posted as the customer, then their search for it polled every
        10 ms until the ticket is in the results; the seconds from the
        POST's answer to that search's."""
        port, lat = self.st.port, []
        for i in range(n):
            w = "zfresh%dx%d" % (os.getpid(), i)
            r = http(self.st.port, "POST", "/tickets/%d/messages" % ticket,
                     cookies={"ccr_session": session}, form={"csrf_token": csrf, "body": "fresh " + w})
            if r.status != 303:
                raise StackError("freshness: POST a message: %d" % r.status)
            t0 = time.monotonic()
            while True:
                r = http(port, "GET", "/tickets?q=" + w, cookies={"ccr_session": session})
                if r.status == 200 and re.search(r">#%d<" % ticket, r.text):
                    break
                if time.monotonic() - t0 > 30:
                    raise StackError("freshness: %s not found after 30 s" % w)
                time.sleep(0.01)
            lat.append(time.monotonic() - t0)
        self.fresh = {"n": n, "median_s": round(statistics.median(lat), 3), "max_s": round(max(lat), 3)}
        log("%s: a new message found by search after %.3f s (median of %d), at most %.3f s" % (
            self.size, self.fresh["median_s"], n, self.fresh["max_s"]))

    def start_ceilings(self):
        st = self.st
        for key, argv in (
                ("B", [CEILING, "8k", os.path.join(st.run_dir, "bench-8k.sock"), "0"]),
                ("C", [CEILING, "join", os.path.join(st.run_dir, "bench-join.sock"), "0",
                       st.mysql_sock, "ccr", st.db_password, "ccr", str(self.stamp["agent_id"])])):
            with open(os.path.join(st.log_dir, "ceiling-%s.log" % key), "ab") as out:
                self.ceilings[key] = stack.spawn(argv, stdout=out, stderr=out)
            sock = argv[2]
            stack.wait_until(lambda: os.path.exists(sock) or self.ceilings[key].poll() is not None,
                             10, sock)
            if self.ceilings[key].poll() is not None:
                raise StackError("fcgi-ceiling %s exited:\n%s" % (
                    key, stack.tail(os.path.join(st.log_dir, "ceiling-%s.log" % key))))

    def stop(self):
        for p in self.ceilings.values():
            stack.reap(p, 10, signal.SIGTERM, send=True)
        self.ceilings = {}
        if self.st:
            try:
                self.st.stop()
            except StackError as e:
                log("%s: stopping: %s" % (self.size, e))
        if self.lock:
            self.lock.close()
            self.lock = None

    def sessions(self):
        s, port = self.stamp, self.st.port
        pw = s["password"]
        cust, cust_csrf = session_of(port, s["customer"], pw)
        agent, _ = session_of(port, s["agent"], pw)
        admin, _ = session_of(port, s["admin"], pw)
        anon = anon_csrf(port)
        tv, tp = s["ticket_view"], s["ticket_post"]
        word = s["search_word"]
        full = lambda t: rows_in(t) == 25
        self.search_words()
        # a search row's page: the result list, not the 503 of searchd down
        searched = lambda t: "ticket-list" in t and "Search is unavailable" not in t
        self.freshness(cust, cust_csrf, s["ticket_post"])
        token = api_token_of(port, cust, cust_csrf)
        api_full = lambda t: len(json.loads(t).get("tickets", [])) == 25
        E = Endpoint
        self.endpoints = [
            E("A", "(A) nginx static 8 KB", "GET", "/bench/static/8k.html", kind="ceiling",
              check=lambda t: len(t) == 8192),
            E("B", "(B) libfcgi responder, 8 KB", "GET", "/bench/fcgi-8k", kind="ceiling",
              check=lambda t: len(t) == 8192),
            E("C", "(C) libfcgi responder, 25-row join", "GET", "/bench/fcgi-join", kind="ceiling",
              check=lambda t: "<p>25 rows</p>" in t),
            E("cust_list", "customer /tickets", "GET", "/tickets",
              cookie="ccr_session=" + cust, check=full),
            E("agent_list", "agent /tickets", "GET", "/tickets",
              cookie="ccr_session=" + agent, check=full),
            E("admin_none", "admin /tickets?assigned=none", "GET", "/tickets?assigned=none",
              cookie="ccr_session=" + admin, check=full),
            E("admin_q", "admin /tickets?q=%s" % word, "GET", "/tickets?q=" + word,
              cookie="ccr_session=" + admin, check=full),
            E("cust_q", "customer /tickets?q=%s" % word, "GET", "/tickets?q=" + word,
              cookie="ccr_session=" + cust, check=searched),
            E("agent_q", "agent /tickets?q=%s" % word, "GET", "/tickets?q=" + word,
              cookie="ccr_session=" + agent, check=searched),
        ] + [
            E("%s_q_%s" % (role, kind), "%s /tickets?q=%s (%s)" % (role, q, what), "GET",
              "/tickets?q=" + urllib.parse.quote(q), cookie="ccr_session=" + sess, check=searched)
            for kind, what in (("rare", "rare word"), ("two", "two words"), ("prefix", "prefix"))
            for q in (self.words[kind],)
            for role, sess in (("customer", cust), ("agent", agent), ("admin", admin))
        ] + [
            E("ticket", "customer /tickets/{id}, 50 messages", "GET", "/tickets/%d" % tv,
              cookie="ccr_session=" + cust, check=lambda t: msgs_in(t) == 50),
            E("poll", "poll /tickets/{id}/messages?after=last", "GET",
              "/tickets/%d/messages?after=%d" % (tv, s["ticket_view_last_seq"]),
              cookie="ccr_session=" + cust, check=lambda t: msgs_in(t) == 0),
            E("post", "POST /tickets/{id}/messages", "POST", "/tickets/%d/messages" % tp,
              cookie="ccr_session=" + cust, expect=303,
              body=urllib.parse.urlencode({"csrf_token": cust_csrf, "body": MESSAGE_BODY})),
            E("api_list", "API GET /api/v1/tickets (customer)", "GET", "/api/v1/tickets",
              bearer=token, check=api_full),
            E("api_post", "API POST /api/v1/tickets/{id}/messages", "POST",
              "/api/v1/tickets/%d/messages" % tp, bearer=token, expect=201,
              body=json.dumps({"body": MESSAGE_BODY}), content_type="application/json"),
            E("reports", "admin /admin/reports (last 30 days)", "GET", "/admin/reports",
              cookie="ccr_session=" + admin, check=lambda t: t.count("<svg ") == 5),
            E("login", "POST /login (Argon2id)", "POST", "/login", cookie="ccr_csrf=" + anon,
              expect=303, body=urllib.parse.urlencode(
                  {"csrf_token": anon, "email": s["login"], "password": pw})),
        ]

    def check_endpoints(self):
        """One request each: status, content; response size for the table.  A
        page that is not the one the row measures (a status or content other
        than expected) fails that row, which is then not run; the others are."""
        for e in self.endpoints:
            if e.failed:
                continue
            ck = {}
            if e.cookie:
                k, v = e.cookie.split("=", 1)
                ck[k] = v
            form = dict(urllib.parse.parse_qsl(e.body)) if e.body and not e.content_type else None
            for attempt in range(3):
                t = time.monotonic()
                r = http(self.st.port, e.method, e.path, cookies=ck, form=form, **api_args(e))
                if r.status != 503:
                    break
                # a cold buffer pool can exceed [database] read_timeout (5 s) once
                log("%s %s: 503 after %.1f s (cold caches?), retrying" % (
                    self.size, e.label, time.monotonic() - t))
                self.cold_503.append("%s after %.1f s" % (e.label, time.monotonic() - t))
                time.sleep(2)
            if r.status != e.expect:
                e.failed = "answered %d, expected %d" % (r.status, e.expect)
            elif e.check and not e.check(r.text):
                e.failed = "answered %d with other content than the row measures" % r.status
            if e.failed:
                log("%s %s: %s %s: ROW FAILED, not measured:\n%s" % (
                    self.size, e.label, e.path, e.failed, r.text[:800]))
                continue
            e.bytes = len(r.body)
            e.wire = {"plain": wire_bytes(self.st.port, e, False),
                      "gzip": wire_bytes(self.st.port, e, True)}

    # ---------------------------------------------------------- query profile

    def _reload_workers(self):
        """SIGHUP ccrd and wait until every worker is a new one (new DB connections)."""
        old = set(self.st.worker_pids())
        self.st.ccrd_signal(signal.SIGHUP)
        stack.wait_until(lambda: not (set(self.st.worker_pids()) & old) and
                         len(self.st.worker_pids()) >= len(old), 30, "ccrd workers after SIGHUP")
        self.st.wait_healthy()

    def query_profile(self):
        """Each page once with the slow log at long_query_time = 0: its statements,
        rows examined, full scans, filesorts, and the index the list query used."""
        st = self.st
        slow = os.path.join(st.log_dir, "slow.log")
        st.sql("SET GLOBAL slow_query_log_file = '%s'; SET GLOBAL log_slow_verbosity = 'query_plan,explain'; "
               "SET GLOBAL long_query_time = 0; SET GLOBAL slow_query_log = 1;" % slow)
        try:
            self._reload_workers()
            for e in self.endpoints:
                if e.kind == "ceiling" or e.key == "login" or e.failed:
                    continue
                size0 = os.path.getsize(slow) if os.path.exists(slow) else 0
                ck = dict([e.cookie.split("=", 1)]) if e.cookie else {}
                form = dict(urllib.parse.parse_qsl(e.body)) if e.body and not e.content_type else None
                http(st.port, e.method, e.path, cookies=ck, form=form, **api_args(e))
                time.sleep(0.3)
                with open(slow, encoding="utf-8", errors="replace") as f:
                    f.seek(size0)
                    self.profile[e.key] = parse_slow(f.read())
        finally:
            st.sql("SET GLOBAL slow_query_log = 0; SET GLOBAL long_query_time = 10;")
            self._reload_workers()

    # ---------------------------------------------------------- CPU

    def cpu(self):
        st = self.st
        out = {"ccrd": cpu_s(st.ccrd_pid()), "mariadb": cpu_s(st.db.pid, tree=False),
               "nginx": cpu_s(st.nginx.pid),
               "searchd": cpu_s(st.searchd.pid) if st.searchd else 0.0}
        for key, p in self.ceilings.items():
            out["ceiling"] = out.get("ceiling", 0.0) + cpu_s(p.pid)
        return out

    # ---------------------------------------------------------- memory

    def memory(self):
        st = self.st
        out = [("ccrd master", st.ccrd_pid())]
        out += [("ccrd worker", p) for p in st.worker_pids()]
        out += [("ccrd mailer", p) for p in st.mailer_pids()]
        rows = []
        for name, pid in out:
            rss, pss = smaps(pid)
            rows.append({"proc": name, "pid": pid, "rss_kb": rss, "pss_kb": pss})
        extra = []
        for name, p in (("mariadbd", st.db), ("nginx master", st.nginx)):
            if p:
                rss, pss = smaps(p.pid)
                extra.append({"proc": name, "pid": p.pid, "rss_kb": rss, "pss_kb": pss})
        if st.nginx:
            for c in stack.children_of(st.nginx.pid):
                rss, pss = smaps(c)
                extra.append({"proc": "nginx worker", "pid": c, "rss_kb": rss, "pss_kb": pss})
        for key, p in self.ceilings.items():
            kids = stack.children_of(p.pid)
            if kids:
                rss, pss = smaps(kids[0])
                extra.append({"proc": "ceiling %s worker" % key, "pid": kids[0], "rss_kb": rss,
                              "pss_kb": pss})
        return rows, extra

    def stack_memory(self):
        """PSS and RSS of every process of the stack that STACK_PROCS names,
        summed per line: [{proc, n, rss_kb, pss_kb}] in STACK_PROCS' order
        (a line with no process is left out)."""
        st = self.st
        roots = [p for p in (st.ccrd_pid(), st.db.pid if st.db else None,
                             st.nginx.pid if st.nginx else None) if p]
        procs = stack_processes(roots, self.var)
        out = []
        for label, comm, cmd in STACK_PROCS:
            hit = [p for p, c, line in procs if c == comm and (cmd is None or cmd in line)]
            if not hit:
                continue
            rss = pss = 0
            for pid in hit:
                r, q = smaps(pid)
                rss += r or 0
                pss += q or 0
            out.append({"proc": label, "n": len(hit), "rss_kb": rss, "pss_kb": pss})
        return out


# The processes of the stack whose memory the report lists (README
# "Benchmarks"): (label, comm as /proc/PID/comm has it, a substring its
# command line must have, or None).  A process counts when it descends from
# ccrd, MariaDB or nginx, or names the stack's folder on its command line (an
# engine the stack starts beside them); a feature that adds a process adds
# its line here.
STACK_PROCS = [
    ("ccrd master", "ccrd", None),
    ("ccrd workers", "ccrd-worker", None),
    ("ccrd mailer", "ccrd-mailer", None),
    ("ccrd IMAP fetcher", "ccrd-fetcher", None),
    ("ccrd webhook sender", "ccrd-webhooks", None),
    ("ccrd search indexer", "ccrd-search", None),
    ("mariadbd", "mariadbd", None),
    ("searchd", "searchd", None),
    ("nginx master", "nginx", "master process"),
    ("nginx workers", "nginx", "worker process"),
]


def stack_processes(roots, var):
    """[(pid, comm, cmdline)] of roots, their descendants, and any other
    process whose command line names var."""
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            with open("/proc/%s/cmdline" % d, "rb") as f:
                line = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        ppid = int(st.rsplit(")", 1)[1].split()[1])
        procs[int(d)] = (comm, ppid, line)
    keep = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, (_c, ppid, line) in procs.items():
            if pid not in keep and (ppid in keep or (var and var in line)):
                keep.add(pid)
                grew = True
    return [(p, procs[p][0], procs[p][2]) for p in sorted(keep) if p in procs]


def wire_bytes(port, e, gzip):
    """The bytes of one response of e on the wire (status line, headers,
    body), asked with Accept-Encoding: gzip or without."""
    import socket
    hdrs = ["%s %s HTTP/1.1" % (e.method, e.path), "Host: 127.0.0.1:%d" % port,
            "Connection: close"]
    if gzip:
        hdrs.append("Accept-Encoding: gzip")
    if e.cookie:
        hdrs.append("Cookie: " + e.cookie)
    if e.bearer:
        hdrs.append("Authorization: Bearer " + e.bearer)
    body = (e.body or "").encode()
    if e.method == "POST":
        hdrs.append("Content-Type: " + (e.content_type or "application/x-www-form-urlencoded"))
        hdrs.append("Content-Length: %d" % len(body))
    n = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        c.sendall(("\r\n".join(hdrs) + "\r\n\r\n").encode() + body)
        while True:
            b = c.recv(65536)
            if not b:
                break
            n += len(b)
    return n


# the page under whose load the whole stack's memory is read (last round)
MEMORY_UNDER = "ticket"

CLK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid, tree=True):
    """CPU seconds (user + system) of pid, plus, for a tree, its live children
    and the children it already reaped (cutime, cstime: recycled workers)."""
    def stat(p):
        try:
            with open("/proc/%d/stat" % p) as f:
                return f.read().rsplit(")", 1)[1].split()
        except (OSError, TypeError):
            return None
    f = stat(pid)
    if f is None:
        return 0.0
    t = int(f[11]) + int(f[12])          # utime, stime
    if tree:
        t += int(f[13]) + int(f[14])     # cutime, cstime
        for c in stack.children_of(pid):
            g = stat(c)
            if g:
                t += int(g[11]) + int(g[12]) + int(g[13]) + int(g[14])
    return t / CLK


def smaps(pid):
    rss = pss = None
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except (OSError, TypeError):
        pass
    return rss, pss


def parse_slow(text):
    """The page's statements in a slow-log excerpt: [{query, rows_examined,
    rows_sent, full_scan, filesort, keys, time_ms}].  Only the connection
    that looked the session up (the worker that served the page) counts:
    the mailer's statements may interleave."""
    out = []
    cur = None
    for line in text.splitlines():
        if line.startswith("# Thread_id:"):
            cur = {"thread": line.split()[2], "query": "", "rows_examined": 0, "rows_sent": 0,
                   "full_scan": False, "filesort": False, "tmp_table": False, "keys": [],
                   "time_ms": 0.0}
            out.append(cur)
        elif cur is None:
            continue
        elif line.startswith("# Query_time:"):
            m = re.search(r"Query_time: ([\d.]+).*Rows_sent: (\d+)\s+Rows_examined: (\d+)", line)
            if m:
                cur["time_ms"] = float(m.group(1)) * 1000
                cur["rows_sent"], cur["rows_examined"] = int(m.group(2)), int(m.group(3))
        elif line.startswith("# Full_scan:"):
            cur["full_scan"] = "Full_scan: Yes" in line or "Full_join: Yes" in line
            cur["tmp_table"] = "Tmp_table: Yes" in line
        elif line.startswith("# Filesort:"):
            cur["filesort"] = "Filesort: Yes" in line
        elif line.startswith("# explain: ") and not line.startswith("# explain: id\t"):
            f = line[len("# explain: "):].split("\t")
            # id select_type table type possible_keys key key_len ref rows ...
            if len(f) >= 6:
                cur["keys"].append("%s:%s(%s)" % (f[2], f[5] or "-", f[3]))
        elif not line.startswith("#") and not line.startswith("SET timestamp") and \
                not line.startswith("use ") and line.strip():
            cur["query"] += (" " if cur["query"] else "") + line.strip()
    page = next((q["thread"] for q in out if "FROM sessions s JOIN users u" in q["query"]), None)
    return [q for q in out if q["thread"] == page and q["query"] and
            not q["query"].upper().startswith(("SET ", "COMMIT", "ROLLBACK"))]


# ------------------------------------------------------------------ the run

def hash_rate(stamp, procs, seconds, mode, cpu=False):
    """hashes/s (and CPU ms per hash when cpu) of build/bench/hashbench verify."""
    out = subprocess.run([HASHBENCH, "verify", stamp["password_hash"], stamp["password"],
                          str(procs), str(seconds), mode], capture_output=True, text=True,
                         check=True).stdout.split()
    rate = float(out[out.index("per_s") + 1])
    return (rate, float(out[out.index("cpu_ms_per_hash") + 1])) if cpu else rate


def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = [l for l in open("/proc/meminfo") if l.startswith("MemTotal")][0].split()[1]
        mem = "%.1f GiB" % (int(mem) / 1048576)
    except OSError:
        mem = "?"
    deb = open("/etc/debian_version").read().strip() if os.path.exists("/etc/debian_version") else "?"
    dpkg = lambda p: sh(["dpkg-query", "-W", "-f=${Version}", p]) or "?"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "mem": mem, "kernel": platform.release(),
        "debian": deb, "mariadb": dpkg("mariadb-server"), "nginx": dpkg("nginx-core") if
        dpkg("nginx-core") != "?" else dpkg("nginx"), "wrk": dpkg("wrk"),
        "libfcgi": dpkg("libfcgi0ldbl"), "libargon2": dpkg("libargon2-1"),
        "ctemplate": dpkg("libctemplate3"), "gcc": dpkg("gcc"),
        "virt": sh(["systemd-detect-virt"]) or "?",
        "ccrd": "build/ccrd built %s; git %s%s" % (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(
                os.path.join(REPO, "build", "ccrd")))),
            sh(["git", "-C", REPO, "log", "-1", "--format=HEAD %h of %cd", "--date=format:%Y-%m-%d %H:%M"]) or "?",
            " (the work tree has uncommitted changes in fcgi/)" if sh(
                ["git", "-C", REPO, "status", "--porcelain", "fcgi"]) else ""),
    }


def loadavg():
    return open("/proc/loadavg").read().split()[:3]


def kept_sections(path):
    """The marked sections of an earlier report at path (from a line
    `<!-- KEY: ... -->` to `<!-- /KEY -->`: the side benchmarks', notes
    written by hand), to be kept when the main report is rewritten; "" when
    none."""
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        return ""
    out = [m.group(0).rstrip("\n") for m in re.finditer(
        r"^<!-- ([\w-]+): .*?-->\n.*?^<!-- /\1 -->$", text, flags=re.S | re.M)]
    return "".join("\n" + x + "\n" for x in out)


def run(a):
    sizes = a.sizes.split()
    for s in sizes:
        if s not in gen.SIZES:
            raise StackError("unknown size %r" % s)
    for tool in (CEILING, HASHBENCH):
        if not os.access(tool, os.X_OK):
            raise StackError("%s missing: make bench-tools" % tool)
    if not shutil.which("wrk"):
        raise StackError("wrk is not installed (apt-get install wrk)")
    t_start = time.monotonic()
    stamps = {s: gen.ensure(s, a.cache) for s in sizes}
    t_data = time.monotonic() - t_start
    tmp = tempfile.mkdtemp(prefix="ccr-bench-")
    os.chmod(tmp, 0o755)    # readable by others; nginx's workers run as the invoking user, need no more
    benches = {}
    used = set()
    res = {"machine": machine(), "args": vars(a), "load_start": loadavg(),
           "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "stamps": stamps, "runs": {}, "hash": {m: [] for m in HASH_MODES[1:]}}
    try:
        for s in sizes:
            b = SizeBench(s, stamps[s], a.cache, tmp, used)
            benches[s] = b
            b.start()
            if a.only:
                keep = set(a.only.split(","))
                b.endpoints = [e for e in b.endpoints if e.kind == "ceiling" or e.key in keep]
            b.check_endpoints()
            b.query_profile()
            b.check_endpoints()
            res["workers"] = len(b.st.worker_pids())
        conc = 2   # [security] max_concurrent_hashes default; the stack does not change it
        log("warm-up: %d s per endpoint" % a.warmup)
        for s in sizes:
            for e in benches[s].endpoints:
                if not e.failed:
                    subprocess.run(e.wrk_argv(benches[s].st.port, a, a.warmup), capture_output=True)
        for rnd in range(a.rounds):
            order = sizes[rnd % len(sizes):] + sizes[:rnd % len(sizes)]
            log("round %d/%d (sizes %s), load %s" % (rnd + 1, a.rounds, " ".join(order),
                                                    " ".join(loadavg())))
            for s in order:
                b = benches[s]
                for e in b.endpoints:
                    if e.failed:
                        continue
                    if e.key == "login" and rnd == a.rounds - 1:
                        res.setdefault("memory_pre_login", {})[s] = b.memory()[0]
                    argv = e.wrk_argv(b.st.port, a, a.duration)
                    time.sleep(1)        # let the previous run's queued requests drain
                    c0 = b.cpu()
                    if e.key == MEMORY_UNDER and rnd == a.rounds - 1:
                        # the whole stack's memory halfway through this run
                        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             text=True)
                        time.sleep(a.duration / 2)
                        res.setdefault("memory_load", {})[s] = b.stack_memory()
                        so, se = p.communicate()
                        p = subprocess.CompletedProcess(argv, p.returncode, so, se)
                    else:
                        p = subprocess.run(argv, capture_output=True, text=True)
                    c1 = b.cpu()
                    r = parse_wrk(p.stdout)
                    if r["requests"]:
                        r["cpu_us"] = {k: (c1[k] - c0[k]) * 1e6 / r["requests"] for k in c1}
                    if p.returncode != 0 or r["rps"] is None:
                        e.failed = "wrk failed: %s" % (p.stderr.strip() or p.stdout.strip())[:200]
                        log("  %-4s %-42s ROW FAILED: %s" % (s, e.label, e.failed))
                        continue
                    res["runs"].setdefault(s, {}).setdefault(e.key, []).append(r)
                    log("  %-4s %-42s %9.1f req/s  p50 %8.2f ms  p99 %8.2f ms  CPU us/req "
                        "ccrd %.0f db %.0f searchd %.0f nginx %.0f%s" % (
                        s, e.label, r["rps"], r["p50"], r["p99"], r["cpu_us"]["ccrd"],
                        r["cpu_us"]["mariadb"], r["cpu_us"].get("searchd", 0), r["cpu_us"]["nginx"],
                        "  NON-2xx/3xx %d" % r["non2xx"] if r["non2xx"] else ""))
                    if e.key == "login":
                        # the Argon2id ceiling right after the login run, paired with it
                        r["hash_per_s"], r["hash_cpu_ms"] = hash_rate(
                            stamps[s], conc, min(a.duration, 5), "fresh", cpu=True)
                        log("  %-4s Argon2id, %d processes, as ccrd: %.1f hashes/s" % (
                            s, conc, r["hash_per_s"]))
            for mode in HASH_MODES[1:]:
                h = hash_rate(stamps[sizes[0]], conc, min(a.duration, 5), mode)
                res["hash"][mode].append(h)
                log("  Argon2id %s buffer, %d processes: %.1f hashes/s" % (mode, conc, h))
        res["memory"] = {}
        for s in sizes:
            rows, extra = benches[s].memory()
            res["memory"][s] = {"ccrd": rows, "other": extra}
        for s in sizes:
            b = benches[s]
            res.setdefault("endpoints", {})[s] = [
                {"key": e.key, "label": e.label, "method": e.method, "path": e.path,
                 "bytes": e.bytes, "wire": e.wire, "failed": e.failed, "argv": redact(e.wrk_argv(b.st.port, a, a.duration),
                                                  b.st.port)}
                for e in b.endpoints]
            res.setdefault("profile", {})[s] = b.profile
            res.setdefault("search_rebuild", {})[s] = b.rebuild
            res.setdefault("search_words", {})[s] = b.words
            res.setdefault("search_fresh", {})[s] = b.fresh
            res.setdefault("cold_503", {})[s] = b.cold_503
            res.setdefault("ports", {})[s] = b.st.port
            res.setdefault("db_mb", {})[s] = du_mb(os.path.join(a.cache, s, "var", "db"))
            res.setdefault("added", {})[s] = {
                "messages": int(b.st.sql("SELECT IFNULL(MAX(id), 0) FROM messages")[0][0]) -
                b.stamp["max_message_id"],
                "sessions": int(b.st.sql("SELECT COUNT(*) FROM sessions")[0][0])}
        res["conc"] = conc
        res["load_end"] = loadavg()
        res["data_s"] = round(t_data, 1)
        res["total_s"] = round(time.monotonic() - t_start, 1)
    finally:
        for b in benches.values():
            b.stop()
        if a.keep:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    json_out = os.path.splitext(a.out)[0] + ".json"
    for path in (json_out, os.path.join(a.cache, "last-run.json")):
        with open(path, "w") as f:
            json.dump(res, f, indent=1, default=str)
    kept = kept_sections(a.out)
    with open(a.out, "w") as f:
        f.write(report(res, sizes, a) + kept)
    log("wrote %s and %s in %.0f s" % (a.out, json_out, res["total_s"]))
    failed = failed_rows(res)
    if failed:
        raise StackError("%d row(s) failed (the rest were measured and written): %s"
                         % (len(failed), "; ".join(failed)))


def failed_rows(res):
    return ["%s %s: %s" % (s, e["label"], e["failed"])
            for s, eps in res.get("endpoints", {}).items() for e in eps if e.get("failed")]


def du_mb(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for fn in files:
            try:
                total += os.lstat(os.path.join(root, fn)).st_blocks * 512
            except OSError:
                pass
    return round(total / 1048576)


# ------------------------------------------------------------------ report

def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fnum(x, nd=0):
    if x is None:
        return "–"
    if nd == 0:
        return "{:,.0f}".format(x).replace(",", " ")
    return "%.*f" % (nd, x)


def fms(x):
    if x is None:
        return "–"
    return "%.2f" % x if x < 10 else "%.1f" % x if x < 100 else "%.0f" % x


def ratio(a, b, nd=2):
    if a is None or not b:
        return "–"
    r = a / b
    return ("%.3f" % r) if r < 0.1 else ("%.*f" % (nd, r))


SIZE_LABEL = {"10k": "10 k", "1m": "1 M", "100k": "100 k"}


def report(res, sizes, a):
    m = res["machine"]
    L = []
    w = L.append
    w("# Benchmarks — Customer Care Registry (`make bench`)\n")
    w("Generated by `make bench` (test/bench/bench.py) on %s; total %.0f s (data sets %.0f s)."
      % (res["started"], res["total_s"], res["data_s"]))
    w("Medians of %d interleaved rounds of `wrk -t%d -c%d -d%ds --latency` through nginx "
      "(HTTP/1.1 keep-alive to nginx, a new FastCGI connection per request as in production)."
      % (a.rounds, a.threads, a.conns, a.duration))
    w("")
    w("## Machine\n")
    w("| | |\n|---|---|")
    w("| CPU | %s, %d cores (%s) |" % (m["cpu"], m["cores"], m["virt"]))
    w("| memory | %s |" % m["mem"])
    w("| ccrd | %s |" % m.get("ccrd", "?"))
    w("| OS | Debian %s, Linux %s |" % (m["debian"], m["kernel"]))
    w("| software | MariaDB %s, nginx %s, wrk %s, libfcgi %s, libargon2 %s, ctemplate %s, gcc %s |"
      % (m["mariadb"], m["nginx"], m["wrk"], m["libfcgi"], m["libargon2"], m["ctemplate"], m["gcc"]))
    w("| load average | %s at the start, %s at the end |" % (" ".join(res["load_start"]),
                                                           " ".join(res["load_end"])))
    w("")
    w("wrk, nginx (`worker_processes auto`), ccrd (%d workers = 2 × cores, and the mailer), "
      "MariaDB and the ceilings all share these cores; the machine was shared with other test "
      "suites during the run (see the load average), which the interleaving spreads over every "
      "row alike." % res.get("workers", 0))
    w("")
    w("## Results\n")
    w("req/s and latency: medians of the rounds.  **÷C**, **÷A**: the page's req/s divided by "
      "the ceiling's at the same size in the same round; **1M÷10k**: req/s at 1 M tickets divided "
      "by req/s at 10 k in the same round; each the median of the rounds' ratios, so that drift "
      "between rounds cancels.  Bytes: the response body.  Rows marked (extra) are not in the "
      "issue's list.")
    w("")
    hdr = "| endpoint | bytes |"
    sep = "|---|---:|"
    for s in sizes:
        hdr += " %s req/s | p50 ms | p99 ms | ÷C | ÷A |" % SIZE_LABEL.get(s, s)
        sep += "---:|---:|---:|---:|---:|"
    big, small = ("1m", "10k") if "1m" in sizes and "10k" in sizes else (sizes[-1], sizes[0])
    if len(sizes) > 1:
        hdr += " %s÷%s |" % (SIZE_LABEL.get(big, big).replace(" ", ""),
                              SIZE_LABEL.get(small, small).replace(" ", ""))
        sep += "---:|"
    w(hdr)
    w(sep)
    runs_of = lambda s, k: res["runs"].get(s, {}).get(k, [])
    med_of = lambda s, k, f: med([r.get(f) for r in runs_of(s, k)])
    failed_at = {(s, e["key"]): e.get("failed") for s in sizes for e in res["endpoints"][s]}

    def rratio(s1, k1, s2, k2):
        """median over rounds of rps(s1, k1) / rps(s2, k2)"""
        xs = [x["rps"] / y["rps"] for x, y in zip(runs_of(s1, k1), runs_of(s2, k2))
              if x["rps"] is not None and y["rps"]]
        return ratio(med(xs), 1.0) if xs else "–"
    eps = res["endpoints"][sizes[0]]
    for e in eps:
        k = e["key"]
        line = "| %s | %s |" % (e["label"], fnum(e["bytes"]))
        for s in sizes:
            if failed_at.get((s, k)):
                line += " **failed**: %s | – | – | – | – |" % failed_at[(s, k)]
                continue
            rps = med_of(s, k, "rps")
            errs = sum(r["non2xx"] + r["sock_err"] for r in runs_of(s, k))
            line += " %s%s | %s | %s | %s | %s |" % (
                fnum(rps), " (**%d errors**)" % errs if errs else "",
                fms(med_of(s, k, "p50")), fms(med_of(s, k, "p99")),
                rratio(s, k, s, "C"), rratio(s, k, s, "A"))
        if len(sizes) > 1:
            line += " %s |" % rratio(big, k, small, k)
        w(line)
    hs = lambda m: "%s (rounds: %s)" % (fnum(med(res["hash"][m]), 1),
                                        ", ".join(fnum(x, 1) for x in res["hash"][m]))
    w("")
    w("**POST /login against the Argon2id ceiling.**  Right after each POST /login run, "
      "build/bench/hashbench measures the hashes/s of the configured cost (m=19456 KiB, t=2, "
      "p=1) with %d processes (= `max_concurrent_hashes`) calling `argon2id_verify()` as ccrd "
      "does; each login verifies one hash." % res["conc"])
    w("")
    w("| size | POST /login req/s (rounds) | hashes/s (rounds) | login ÷ hashes (median of rounds) "
      "| ccrd CPU per login | CPU per hash |")
    w("|---|---:|---:|---:|---:|---:|")
    for s in sizes:
        runs = runs_of(s, "login")
        xs = [r["rps"] / r["hash_per_s"] for r in runs if r.get("hash_per_s")]
        w("| %s | %s | %s | **%s** | %s ms | %s ms |" % (
            SIZE_LABEL.get(s, s), " / ".join(fnum(r["rps"], 1) for r in runs),
            " / ".join(fnum(r.get("hash_per_s"), 1) for r in runs),
            ratio(med(xs), 1.0) if xs else "–",
            fnum(med([r.get("cpu_us", {}).get("ccrd") for r in runs]) / 1000, 1)
            if runs and runs[0].get("cpu_us") else "–",
            fnum(med([r.get("hash_cpu_ms") for r in runs]), 1)))
    w("")
    w("Once per round, two other ways to allocate the matrix (hashes/s, same cost and processes): "
      "%s with one buffer per process (`argon2_ctx` + `allocate_cbk`), %s with fresh pages "
      "per hash returned by munmap.  `argon2id_verify()` malloc()s the 19 MiB per hash; after "
      "the first free glibc's dynamic mmap threshold keeps it on the heap, so it runs as fast "
      "as the reused buffer — and every worker keeps ~19 MiB resident after its first login "
      "(see Memory)." % (hs("reuse"), hs("mmap")))
    w("")
    for s in sizes:
        if res.get("cold_503", {}).get(s):
            w("Set-up at %s: the first request answered 503 (the database read timeout, 5 s, "
              "with cold caches) for: %s; the retry succeeded." % (
                  SIZE_LABEL.get(s, s), "; ".join(res["cold_503"][s])))
            w("")
    w("CPU time per request (µs; medians of the rounds), from /proc/PID/stat of each process "
      "tree before and after each wrk run — ccrd counts the master, its workers (also the ones "
      "recycled during the run) and the mailer; (B) and (C) count under ccrd's column.  This "
      "is less sensitive than req/s to other load on the machine.\n")
    w("| endpoint | " + " | ".join("%s ccrd | MariaDB | searchd | nginx" % SIZE_LABEL.get(s, s)
                                   for s in sizes) + " |")
    w("|---|" + "---:|---:|---:|---:|" * len(sizes))
    for e in eps:
        k = e["key"]
        cells = []
        for s in sizes:
            cu = lambda f: med([r.get("cpu_us", {}).get(f) for r in runs_of(s, k)])
            app = cu("ceiling") if k in ("B", "C") else (None if k == "A" else cu("ccrd"))
            cells.append("%s | %s | %s | %s" % (fnum(app), fnum(cu("mariadb")) if k != "A" else "–",
                                                 fnum(cu("searchd")) if k != "A" else "–",
                                                 fnum(cu("nginx"))))
        w("| %s | %s |" % (e["label"], " | ".join(cells)))
    w("")
    w("Every round (req/s; the order of sizes rotates each round):\n")
    w("| size | endpoint | " + " | ".join("round %d" % (i + 1) for i in range(a.rounds)) + " |")
    w("|---|---|" + "---:|" * a.rounds)
    for s in sizes:
        for e in res["endpoints"][s]:
            runs = runs_of(s, e["key"])
            w("| %s | %s | %s |" % (SIZE_LABEL.get(s, s), e["label"],
                                    " | ".join(fnum(r["rps"]) for r in runs) if runs
                                    else "failed: %s" % e.get("failed")))
    w("")
    w("## Memory after the load\n")
    w("RSS and PSS (kB, /proc/PID/smaps_rollup) right after the last round.  Workers are "
      "replaced after `max_requests` (10 000), so these are the workers alive at that moment.")
    w("")
    w("| process | " + " | ".join("%s RSS | %s PSS" % (SIZE_LABEL.get(s, s), SIZE_LABEL.get(s, s))
                                   for s in sizes) + " |")
    w("|---|" + "---:|---:|" * len(sizes))
    n = max(len(res["memory"][s]["ccrd"]) for s in sizes)
    names = {}
    for s in sizes:
        cnt = {}
        for i, r in enumerate(res["memory"][s]["ccrd"]):
            cnt[r["proc"]] = cnt.get(r["proc"], 0) + 1
            label = r["proc"] + (" %d" % cnt[r["proc"]] if r["proc"] == "ccrd worker" else "")
            names.setdefault(i, label)
    for i in range(n):
        cells = []
        for s in sizes:
            rows = res["memory"][s]["ccrd"]
            if i < len(rows):
                cells.append("%s | %s" % (fnum(rows[i]["rss_kb"]), fnum(rows[i]["pss_kb"])))
            else:
                cells.append("– | –")
        w("| %s | %s |" % (names.get(i, "?"), " | ".join(cells)))
    w("")
    for s in sizes:
        pre = [r for r in res.get("memory_pre_login", {}).get(s, []) if r["proc"] == "ccrd worker"]
        if pre:
            w("At %s, just before the last POST /login run (after every page had run), the "
              "workers had RSS %s kB, PSS %s kB." % (
                  SIZE_LABEL.get(s, s), " / ".join(fnum(r["rss_kb"]) for r in pre),
                  " / ".join(fnum(r["pss_kb"]) for r in pre)))
    w("")
    w("For comparison: " + "; ".join(
        "%s: %s" % (SIZE_LABEL.get(s, s), ", ".join(
            "%s RSS %s kB (PSS %s)" % (r["proc"], fnum(r["rss_kb"]), fnum(r["pss_kb"]))
            for r in res["memory"][s]["other"])) for s in sizes) + ".")
    w("")
    if any(res.get("memory_load", {}).get(s) for s in sizes):
        w("## Memory of the whole stack under load\n")
        w("PSS and RSS (kB, /proc/PID/smaps_rollup, summed over the processes of each line) halfway "
          "through the last round's run of %s: every process of the stack that bench.py's "
          "STACK_PROCS lists.  PSS counts shared pages once across the stack, so the total is "
          "the stack's share of memory." % next((e["label"] for e in res["endpoints"][sizes[0]]
                                                    if e["key"] == MEMORY_UNDER), MEMORY_UNDER))
        w("")
        w("| process | " + " | ".join("%s n | RSS | PSS" % SIZE_LABEL.get(s, s) for s in sizes) + " |")
        w("|---|" + "---:|---:|---:|" * len(sizes))
        labels = []
        for s in sizes:
            for r in res.get("memory_load", {}).get(s, []):
                if r["proc"] not in labels:
                    labels.append(r["proc"])
        tot = {s: [0, 0] for s in sizes}
        for lab in labels:
            cells = []
            for s in sizes:
                r = next((x for x in res.get("memory_load", {}).get(s, []) if x["proc"] == lab), None)
                if r:
                    cells.append("%d | %s | %s" % (r["n"], fnum(r["rss_kb"]), fnum(r["pss_kb"])))
                    tot[s][0] += r["rss_kb"]
                    tot[s][1] += r["pss_kb"]
                else:
                    cells.append("– | – | –")
            w("| %s | %s |" % (lab, " | ".join(cells)))
        w("| **total** | %s |" % " | ".join("| %s | **%s**" % (fnum(tot[s][0]), fnum(tot[s][1]))
                                            for s in sizes))
        w("")
    if any(e.get("wire") for s in sizes for e in res["endpoints"][s]):
        w("## Bytes on the wire\n")
        w("One response per page through nginx (status line, headers and body), asked without "
          "and with `Accept-Encoding: gzip`; the wrk runs %s." % (
              "send `Accept-Encoding: gzip`, as browsers do" if res["args"].get("gzip")
              else "sent no Accept-Encoding (--no-gzip)"))
        w("")
        w("| endpoint | " + " | ".join("%s body | plain | gzip | gzip ÷ plain" % SIZE_LABEL.get(s, s)
                                       for s in sizes) + " |")
        w("|---|" + "---:|---:|---:|---:|" * len(sizes))
        for e0 in res["endpoints"][sizes[0]]:
            cells = []
            for s in sizes:
                e = next((x for x in res["endpoints"][s] if x["key"] == e0["key"]), {})
                wi = e.get("wire")
                if wi and wi.get("plain"):
                    cells.append("%s | %s | %s | %.2f" % (fnum(e.get("bytes")), fnum(wi["plain"]),
                                                          fnum(wi["gzip"]), wi["gzip"] / wi["plain"]))
                else:
                    cells.append("– | – | – | –")
            w("| %s | %s |" % (e0["label"], " | ".join(cells)))
        w("")
    w("## What each page does in MariaDB\n")
    w("One request per page with the slow log at `long_query_time = 0` and "
      "`log_slow_verbosity = query_plan,explain` (set-up phase, not during the load): "
      "statements (of the worker's connection, without SET/COMMIT), rows examined (sum), and "
      "the plans of the two statements that examined the most rows.")
    w("")
    w("| endpoint | " + " | ".join("%s statements | rows examined | the two heaviest: alias:index(access)"
                                   % SIZE_LABEL.get(s, s) for s in sizes) + " |")
    w("|---|" + "---:|---:|---|" * len(sizes))
    for e in eps:
        if e["key"] not in res["profile"][sizes[0]]:
            continue
        cells = []
        for s in sizes:
            prof = res["profile"][s].get(e["key"], [])
            heavy = sorted(prof, key=lambda q: -q["rows_examined"])[:2]
            plans = ["%s → %d rows%s%s" % (" ".join(q["keys"]) or "–", q["rows_examined"],
                                           ", filesort" if q["filesort"] else "",
                                           ", **FULL SCAN**" if q["full_scan"] else "")
                     for q in heavy]
            cells.append("%d | %s | %s" % (len(prof), fnum(sum(q["rows_examined"] for q in prof)),
                                           "<br>".join(plans)))
        w("| %s | %s |" % (e["label"], " | ".join(cells)))
    w("")
    w("## Data sets\n")
    w("Generated by test/bench/gen.py (`make bench-data`), cached in `$(CCR_BENCH_DIR)` "
      "(default /var/tmp/ccr-bench) and reused while the generator and schema/ are unchanged; "
      "each run first deletes what earlier runs wrote (messages, sessions, audit, outbox).")
    w("")
    w("| | " + " | ".join(SIZE_LABEL.get(s, s) for s in sizes) + " |")
    w("|---|" + "---:|" * len(sizes))
    st = lambda f: " | ".join(f(res["stamps"][s]) for s in sizes)
    w("| tickets | %s |" % st(lambda x: fnum(x["counts"]["tickets"])))
    w("| status open / resolved / closed | %s |" % st(lambda x: "%s / %s / %s" % (
        fnum(x["status"]["open"]), fnum(x["status"]["resolved"]), fnum(x["status"]["closed"]))))
    w("| unassigned (open) | %s |" % st(lambda x: fnum(x["unassigned"])))
    w("| messages | %s |" % st(lambda x: fnum(x["counts"]["messages"])))
    w("| users (1 admin, 50 agents, customers) | %s |" % st(lambda x: fnum(x["counts"]["users"])))
    w("| ratings | %s |" % st(lambda x: fnum(x["counts"]["ratings"])))
    w("| mean subject / description / message, characters | %s |" % st(
        lambda x: "%s / %s / %s" % (fnum(x["avg_subject"]), fnum(x["avg_description"]),
                                    fnum(x["avg_message"]))))
    w("| tickets containing the search word `%s` | %s |" % (
        res["stamps"][sizes[0]]["search_word"], st(lambda x: fnum(x["search_tickets"]))))
    if res.get("search_rebuild"):
        w("| `ccr-admin search-rebuild` of the data set, s | %s |" % " | ".join(
            fnum(res["search_rebuild"][s]["s"], 1) for s in sizes))
        if res.get("search_fresh"):
            w("| a new message found by search after, s: median of %d (max) | %s |" % (
                res["search_fresh"][sizes[0]].get("n", 0), " | ".join(
                    "%s (%s)" % (fnum(res["search_fresh"][s].get("median_s"), 3),
                                 fnum(res["search_fresh"][s].get("max_s"), 3)) for s in sizes)))
        w("| search rows' words (documents): rare, two words | %s |" % " | ".join(
            "%s; %s (%s)" % (res["search_words"][s]["rare"], res["search_words"][s]["two"],
                             ", ".join("%s %s" % kv for kv in res["search_words"][s]["docs"].items()))
            for s in sizes))
    w("| datadir on disk (with the 512 MB redo log), MB | %s |" % " | ".join(
        fnum(res["db_mb"][s]) for s in sizes))
    w("| generated | %s |" % st(lambda x: x["generated_at"]))
    keys = ["load_users_s", "load_tickets_s", "load_ratings_s", "load_messages_s",
            "index_users_s", "index_tickets_s", "index_messages_s", "fulltext_tickets_s",
            "fk_tickets_s", "fk_messages_s", "analyze_s", "total_s"]
    names = {"load_users_s": "LOAD DATA users", "load_tickets_s": "LOAD DATA tickets",
             "load_ratings_s": "LOAD DATA ratings", "load_messages_s": "LOAD DATA messages",
             "index_users_s": "indexes users", "index_tickets_s": "indexes tickets (7)",
             "index_messages_s": "indexes messages (2)",
             "fulltext_tickets_s": "**FULLTEXT tickets(subject, description)**",
             "fk_tickets_s": "foreign keys tickets", "fk_messages_s": "foreign keys messages",
             "analyze_s": "ANALYZE TABLE", "total_s": "**total, empty folder to ANALYZE done** (then ~15 s of checks)"}
    for k in keys:
        w("| %s, s | %s |" % (names[k], st(lambda x: fnum(x["timings"].get(k), 1))))
    w("")
    w("The bench customer has %d tickets; the ticket page shows one with %d messages; the "
      "POST target is another open ticket of theirs, assigned to the bench agent.  Every user "
      "shares one Argon2id hash (default cost) made by build/bench/hashbench."
      % (gen.BENCH_CUSTOMER_TICKETS, gen.VIEW_MESSAGES))
    w("")
    w("## Exact commands\n")
    w("```")
    w("make bench          # = make bench-data, then the run below; variables (defaults):")
    w("                    # CCR_BENCH_DIR=/var/tmp/ccr-bench BENCH_SIZES=\"10k 1m\" BENCH_ROUNDS=3")
    w("                    # BENCH_DURATION=10 BENCH_THREADS=2 BENCH_CONNS=16 BENCH_OUT=test/bench/RESULTS.md")
    w("/usr/bin/python3 test/bench/gen.py --cache %s --sizes \"%s\"" % (a.cache, a.sizes))
    w("/usr/bin/python3 test/bench/bench.py run --cache %s --sizes \"%s\" --rounds %d --duration %d "
      "--threads %d --conns %d --out %s" % (a.cache, a.sizes, a.rounds, a.duration, a.threads,
                                              a.conns, a.out))
    w("```\n")
    w("wrk, per endpoint (`$PORT`: the stack's port; `$SESSION_*`: a session of a real login; "
      "`$CSRF*`: its csrf token or the anonymous ccr_csrf cookie):\n")
    if len(sizes) > 1:
        w("(Shown for %s; at %s the ticket ids and the poll's `after` differ: %s.)\n" % (
            SIZE_LABEL.get(sizes[0], sizes[0]), ", ".join(SIZE_LABEL.get(s, s) for s in sizes[1:]),
            "; ".join("%s: view %d, post %d, after=%d" % (
                SIZE_LABEL.get(s, s), res["stamps"][s]["ticket_view"], res["stamps"][s]["ticket_post"],
                res["stamps"][s]["ticket_view_last_seq"]) for s in sizes)))
    w("```")
    for e in res["endpoints"][sizes[0]]:
        w(e["argv"])
    w("build/bench/hashbench verify '$HASH' '%s' %d %d fresh   # and reuse, mmap"
      % (res["stamps"][sizes[0]]["password"], res["conc"], min(a.duration, 5)))
    w("```")
    w("")
    return "\n".join(L) + "\n"


def redact(argv, port):
    out = []
    for x in argv:
        x = x.replace(":%d/" % port, ":$PORT/").replace(REPO + "/", "")
        x = re.sub(r"ccr_session=[0-9a-f]{64}", "ccr_session=$SESSION", x)
        x = re.sub(r"ccr_csrf=[0-9a-f]{64}", "ccr_csrf=$CSRF", x)
        x = re.sub(r"csrf_token=[0-9a-f]{64}", "csrf_token=$CSRF", x)
        x = re.sub(r"Bearer ccr_[0-9a-f]{64}", "Bearer $TOKEN", x)
        out.append("'%s'" % x if (" " in x or "&" in x or "?" in x) else x)
    return " ".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--cache", default="/var/tmp/ccr-bench")
    r.add_argument("--sizes", default="10k 1m")
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--duration", type=int, default=10)
    r.add_argument("--warmup", type=int, default=2)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--conns", type=int, default=16)
    r.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    r.add_argument("--keep", action="store_true", help="keep the temporary stack folders")
    r.add_argument("--only", default="", help="comma-separated row keys to run (the ceilings always run), "
                   "e.g. reports,api_list; for trying a change, not for RESULTS.md")
    r.add_argument("--no-gzip", dest="gzip", action="store_false",
                   help="wrk without Accept-Encoding: gzip (by default it sends it, as browsers do)")
    p = sub.add_parser("report", help="rewrite the Markdown report from a saved JSON")
    p.add_argument("--json", default=os.path.join(HERE, "RESULTS.json"))
    p.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    d = sub.add_parser("data")
    d.add_argument("--cache", default="/var/tmp/ccr-bench")
    d.add_argument("--sizes", default="10k 1m")
    d.add_argument("--force", action="store_true")
    a = ap.parse_args()
    if a.cmd == "report":
        with open(a.json) as f:
            res = json.load(f)
        ra = argparse.Namespace(**res["args"])
        kept = kept_sections(a.out)
        with open(a.out, "w") as f:
            f.write(report(res, ra.sizes.split(), ra) + kept)
    elif a.cmd == "data":
        for s in a.sizes.split():
            gen.ensure(s, a.cache, a.force)
    else:
        run(a)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    except StackError as e:
        print("bench: %s" % e, file=sys.stderr)
        sys.exit(1)

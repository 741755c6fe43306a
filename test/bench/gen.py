#!/usr/bin/python3
"""gen.py — the bench data sets of `make bench` (issue #7, part 1).

    /usr/bin/python3 test/bench/gen.py --cache DIR --sizes "10k 1m" [--force]

For each size, DIR/<size>/ holds a Stack $VAR (var/: ccr.conf, db/ the
MariaDB datadir, log/) and stamp.json.  A data set whose stamp matches this
generator and the schema (a hash of both) is reused, and so is one built
before migrations were added after its last (Stack.start's `ccr-admin
migrate` takes it forward); anything else is rebuilt from scratch.  `make bench` calls ensure() for the sizes it runs.

How a set is built:
  1. a private MariaDB (test/stack.py, loader settings: 4 GB buffer pool,
     no doublewrite, relaxed log flushing) in DIR/<size>/var; `ccr-admin
     migrate` creates the real schema;
  2. every secondary index, FULLTEXT index and foreign key of the loaded
     tables is dropped (their definitions kept from SHOW CREATE TABLE);
  3. Python writes users, tickets, ratings and messages as TSV into named
     pipes while the server reads them with LOAD DATA INFILE, one table after
     the other (foreign_key_checks=0), so only the clustered index is written;
  4. the indexes are built once each (one sorted ALTER TABLE ... ADD KEY per
     table), then the FULLTEXT index (timed alone), then the foreign keys
     (not re-validated); SHOW CREATE TABLE must equal the schema's again;
     ANALYZE TABLE.  (Measured on 1 M messages: keeping the indexes and
     using MariaDB's empty-table bulk path, unique_checks=0, cost 2x the CPU
     of loading bare rows and adding the indexes afterwards.)
  5. counts are checked, timings and the ids the benchmark needs go to
     stamp.json, the server is shut down cleanly.

Every user has the same Argon2id hash (made once by build/bench/hashbench
with the configured default cost 19456 KiB, t=2, p=1) of BENCH_PASSWORD.
"""
import argparse
import fcntl
import hashlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchstack  # noqa: E402
from benchstack import BenchStack, StackError, REPO, stack  # noqa: E402

GEN_VERSION = 1
BENCH_PASSWORD = "bench-password-7"
ARGON2 = (19456, 2, 1)                 # [security] defaults: m KiB, t, p
SEARCH_WORD = "chargeback"             # in ~1 % of tickets, nowhere else
SEARCH_SHARE = 0.01
RARE_WORD = "quokka"                   # in ~0.01 % of tickets, nowhere else
RARE_SHARE = 0.0001
HASHBENCH = os.path.join(REPO, "build", "bench", "hashbench")

SIZES = {
    # tickets, customers, agents, mean messages per ticket
    "10k": dict(tickets=10_000, customers=1_000, agents=50, msgs=10),
    "1m": dict(tickets=1_000_000, customers=100_000, agents=50, msgs=10),
    # for trying things out between the two
    "100k": dict(tickets=100_000, customers=10_000, agents=50, msgs=10),
}
BENCH_CUSTOMER_TICKETS = 60            # the bench customer's list is full (25 a page)
VIEW_MESSAGES = 50                     # messages of the ticket /tickets/{id} shows
SPAN_DAYS = 3 * 365                    # tickets are created over three years

LOAD_DB_OPTS = ["--innodb-buffer-pool-size=4G", "--innodb-log-file-size=1G",
                "--innodb-log-buffer-size=64M", "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0", "--innodb-sort-buffer-size=64M",
                "--innodb-ft-sort-pll-degree=2", "--max-allowed-packet=256M"]


def log(msg):
    print("bench-data: %s" % msg, flush=True)


def gen_hash():
    return hashlib.sha256(open(os.path.abspath(__file__), "rb").read()).hexdigest()[:16]


def schema_hashes():
    """{migration file: hash}: a set built with some of them stays good when
    later files are added (ccr-admin migrate, run by every Stack.start, takes
    the set forward like a production database), not when one it was built
    with changes."""
    sd = os.path.join(REPO, "schema")
    return {name: hashlib.sha256(open(os.path.join(sd, name), "rb").read()).hexdigest()[:16]
            for name in sorted(os.listdir(sd)) if name.endswith(".sql")}


def source_hash():
    h = hashlib.sha256(gen_hash().encode())
    for name, sha in schema_hashes().items():
        h.update(name.encode() + sha.encode())
    return h.hexdigest()[:16]


def stamp_current(stamp):
    """Whether a cached set's stamp fits this generator and schema/."""
    if stamp.get("source") == source_hash():
        return True
    built, now = stamp.get("schema"), schema_hashes()
    if stamp.get("gen") != gen_hash() or not built:
        return False
    return all(now.get(name) == sha for name, sha in built.items()) and \
        max(built) <= min(set(now) - set(built), default=max(built))


# ------------------------------------------------------------------ text

WORDS = """
account access activate address after again agent alert all already also amount
android answer app application applied approve archive attach attachment available
back backup balance bank battery before being billing blocked browser bug button
cache calendar call camera cancel cannot card cart case change charge chat check
checkout client close code colour company configuration confirm connect connection
contact contract copy cost could coupon create credit customer dashboard data date
day days deadline debit delay delete delivered delivery desktop details device
different discount display document does done double download driver duplicate
edit email empty enable error even every expired export failed file filter
firmware fix form free frozen gateway get gift help history home hours import
including install installed instead invoice issue item keyboard know label laptop
last later license limit link list load locked log login logout lost mail manager
message missing mobile model money month monthly network never new next notification
number office order other out package page paid parcel password payment pending
phone plan please portal price printer problem product profile purchase push
receipt received refund register reinstall release reminder renew report request
reset restart return router same save screen search second security sent server
service setting settings shipment shipping sign since slow software still storage
subscription support sync system tablet tax team thanks time today token tracking
transfer tried trial twice unable update upgrade upload user version via wait
warranty website week weeks wifi window wrong yesterday yet
""".split()
FILLER = "the a to and is it my of in for on with this that was not but have I we you".split()
FIRST = ("Ada Alan Alice Amir Ana Anna Ben Bruno Carla Chen Chloe Dan Dario Elena Emma "
         "Eva Fatima Felix Greta Hana Hugo Ines Ivan Jan Jana Jonas Julia Karim Kate Lara "
         "Leo Lina Luca Maya Mia Milan Nadia Nina Noah Olga Omar Pablo Paula Petra Raj "
         "Rosa Sara Sofia Tariq Tom Vera Yuki Zoe O'Brien").split()
LAST = ("Adams Baker Berg Costa Dubois Evans Fischer Garcia Hansen Ito Jensen Kim Kowalski "
        "Lopez Martin Meyer Moreau Novak Nowak Okafor Petrov Quinn Rossi Schmidt Silva "
        "Smith Tanaka Horvat Varga Wagner Weber Wilson Young Zhang Dupont O'Neil").split()


class Text:
    """Pools of subjects, descriptions and message bodies (realistic lengths:
    words ~ lognormal), drawn with Zipf-like word frequencies."""

    def __init__(self, rng):
        self.rng = rng
        vocab = WORDS + FILLER * 3 + ["A&B", "\"urgent\"", "<none>", "don't", "can't", "it's"]
        rng.shuffle(vocab)
        self.vocab = vocab
        self.cum = list(__import__("itertools").accumulate(1.0 / (i + 1) ** 0.9
                                                           for i in range(len(vocab))))
        self.desc = [self.paragraphs(self.nwords(4.3, 0.6, 8, 1500)) for _ in range(20000)]
        self.body = [self.paragraphs(self.nwords(3.3, 0.8, 2, 1500)) for _ in range(40000)]
        self.subj = [self.sentence(rng.randint(3, 12), end="")[:200] for _ in range(50000)]

    def nwords(self, mu, sigma, lo, hi):
        return max(lo, min(hi, int(self.rng.lognormvariate(mu, sigma))))

    def sentence(self, n, end="."):
        w = self.rng.choices(self.vocab, cum_weights=self.cum, k=n)
        w[0] = w[0][:1].upper() + w[0][1:]
        return " ".join(w) + end

    def paragraphs(self, n):
        """n words as sentences of 5-18 words, paragraphs of 1-4 sentences;
        newlines written as the TSV escape \\n."""
        out, para, left = [], [], n
        while left > 0:
            k = min(left, self.rng.randint(5, 18))
            para.append(self.sentence(k))
            left -= k
            if len(para) >= self.rng.randint(1, 4):
                out.append(" ".join(para))
                para = []
        if para:
            out.append(" ".join(para))
        return "\\n\\n".join(out)


# ------------------------------------------------------------------ rows

class Plan:
    """Ids and shapes of one data set (deterministic for a size)."""

    def __init__(self, size, t0):
        spec = SIZES[size]
        self.size = size
        self.t0 = t0
        self.n_tickets = spec["tickets"]
        self.n_agents = spec["agents"]
        self.n_customers = spec["customers"]
        self.msgs = spec["msgs"]
        self.admin_id = 1
        self.agent0 = 2                                  # the bench agent
        self.cust0 = 2 + self.n_agents                   # the bench customer
        self.login_id = self.cust0 + self.n_customers    # the login-loop customer
        self.n_users = self.login_id
        self.t_post = self.n_tickets                     # POST /tickets/{id}/messages
        self.t_view = self.n_tickets - 1                 # GET /tickets/{id}: 50 messages
        step = self.n_tickets // BENCH_CUSTOMER_TICKETS
        self.cust0_tickets = {self.n_tickets - 2 - k * step
                              for k in range(BENCH_CUSTOMER_TICKETS - 2)}
        self.cust0_tickets |= {self.t_post, self.t_view}


def write_users(out, plan, pwhash, rng):
    t = plan.t0 - SPAN_DAYS * 86400 - 86400
    buf = []
    for uid in range(1, plan.n_users + 1):
        if uid == plan.admin_id:
            email, role, fn, ln = "admin@bench.example", "admin", "Bench", "Admin"
        elif uid < plan.cust0:
            email, role = "agent%d@bench.example" % (uid - 1), "agent"
            fn, ln = FIRST[uid % len(FIRST)], LAST[(uid * 7) % len(LAST)]
        elif uid == plan.login_id:
            email, role, fn, ln = "login@bench.example", "customer", "Login", "Loop"
        else:
            email, role = "customer%d@bench.example" % (uid - plan.cust0 + 1), "customer"
            fn, ln = rng.choice(FIRST), rng.choice(LAST)
        created = t + (uid * 86400 * SPAN_DAYS) // plan.n_users
        buf.append("%d\t%s\t%s\t%s\t%s\tactive\t%s\t%d\t%d\n"
                   % (uid, email, fn, ln, role, pwhash, created, created))
    out.write("".join(buf))


PRIOS = ["low"] * 4 + ["normal"] * 12 + ["high"] * 3 + ["urgent"]


def ticket_rows(plan, text, rng):
    """Yields (id, customer, agent or None, status, created, activity) and
    writes nothing: tickets and messages share it (same seed)."""
    n = plan.n_tickets
    span = SPAN_DAYS * 86400
    base = plan.t0 - span
    unassigned_from = n - n // 200                   # the newest 0.5 % wait for an agent
    rnd = rng.random
    for i in range(1, n + 1):
        created = base + (i * span) // n - int(rnd() * 600)
        activity = min(plan.t0 - 60, created + int(rng.expovariate(1 / 172800.0)) + 60)
        if i in plan.cust0_tickets:
            cust = plan.cust0
        else:
            cust = plan.cust0 + 1 + int(rnd() * (plan.n_customers - 1))
        if i in (plan.t_view, plan.t_post):
            agent, status = plan.agent0, "open"
        elif i >= unassigned_from or rnd() < 0.002:
            agent, status = None, "open"
        else:
            agent = plan.agent0 + int(rnd() * plan.n_agents)
            age = plan.t0 - activity
            x = rnd()
            if age < 14 * 86400:
                status = "open" if x < 0.5 else "resolved" if x < 0.85 else "closed"
            else:
                status = "closed" if x < 0.97 else "open"
        yield i, cust, agent, status, created, activity


def write_tickets(out, plan, text, rng, stats):
    buf = []
    subj, desc = text.subj, text.desc
    ns, nd = len(subj), len(desc)
    rnd = rng.random
    for i, cust, agent, status, created, activity in ticket_rows(plan, text, random.Random(7)):
        s = subj[int(rnd() * ns)]
        d = desc[int(rnd() * nd)] + " Order %d." % (1000000 + int(rnd() * 9000000))
        u = rnd()
        if u >= SEARCH_SHARE and u < SEARCH_SHARE + RARE_SHARE:
            stats["rare"] += 1
            d += " The parcel came with a %s sticker on it." % RARE_WORD
        if u < SEARCH_SHARE:
            stats["search"] += 1
            if rnd() < 0.3:
                s = (s[:180] + " " + SEARCH_WORD)
            else:
                d += " I see a %s on my card for this order." % SEARCH_WORD
        resolved = activity if status in ("resolved", "closed") else None
        closed = activity if status == "closed" else None
        stats[status] += 1
        if agent is None:
            stats["unassigned"] += 1
        buf.append("%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n" % (
            i, cust, agent if agent else "\\N", s, d, PRIOS[int(rnd() * 20)], status,
            created, activity, resolved if resolved else "\\N", closed if closed else "\\N"))
        if len(buf) >= 5000:
            out.write("".join(buf))
            buf = []
    out.write("".join(buf))


def write_ratings(out, plan, text, rng):
    buf = []
    for i, _c, _a, status, _cr, activity in ticket_rows(plan, text, random.Random(7)):
        if status == "closed" and rng.random() < 0.4:
            score = rng.choice((1, 2, 3, 4, 4, 5, 5, 5))
            comment = "" if rng.random() < 0.6 else text.subj[rng.randrange(len(text.subj))]
            buf.append("%d\t%d\t%s\t%d\n" % (i, score, comment, activity + 3600))
            if len(buf) >= 10000:
                out.write("".join(buf))
                buf = []
    out.write("".join(buf))


def write_messages(out, plan, text, rng, stats):
    buf = []
    body = text.body
    nb = len(body)
    rnd = rng.random
    mid = 0
    for i, cust, agent, status, created, activity in ticket_rows(plan, text, random.Random(7)):
        if i == plan.t_view:
            k = VIEW_MESSAGES
        elif agent is None:
            k = int(rnd() * 3)
        else:
            k = int(rnd() * (2 * plan.msgs + 1))
        span = max(1, activity - created)
        for j in range(k):
            mid += 1
            author = agent if (agent and j % 2 == 1) else cust
            buf.append("%d\t%d\t%d\t%s\t%d\n" % (
                mid, i, author, body[int(rnd() * nb)], created + (span * (j + 1)) // (k + 1)))
        if i == plan.t_view:
            stats["view_last_msg"] = mid
        if len(buf) >= 10000:
            out.write("".join(buf))
            buf = []
    out.write("".join(buf))
    stats["max_msg"] = mid


LOADS = [
    ("users", "users",
     "(id, email, first_name, last_name, role, state, password_hash, @c, @u) "
     "SET created_at = FROM_UNIXTIME(@c), updated_at = FROM_UNIXTIME(@u)"),
    ("tickets", "tickets",
     "(id, customer_id, agent_id, subject, description, priority, status, @c, @a, @r, @x) "
     "SET created_at = FROM_UNIXTIME(@c), last_activity = FROM_UNIXTIME(@a), "
     "resolved_at = FROM_UNIXTIME(@r), closed_at = FROM_UNIXTIME(@x)"),
    ("ratings", "ratings", "(ticket_id, score, comment, @c) SET created_at = FROM_UNIXTIME(@c)"),
    ("messages", "messages",
     "(id, ticket_id, author_id, body, @c) SET created_at = FROM_UNIXTIME(@c)"),
]


def show_create(st, table):
    """SHOW CREATE TABLE without the AUTO_INCREMENT counter."""
    text = st.sql("SHOW CREATE TABLE `%s`" % table)[0][1].replace("\\n", "\n")
    return re.sub(r" AUTO_INCREMENT=\d+", "", text)


def strip_keys(st, table, create):
    """Drop every foreign key and secondary index of an empty table, so that
    the load writes the clustered index only; returns what to put back:
    (keys, fulltext keys, constraints) as SHOW CREATE TABLE lines."""
    keys, ft, fks = [], [], []
    for line in create.splitlines():
        line = line.strip().rstrip(",")
        if line.startswith(("KEY ", "UNIQUE KEY ")):
            keys.append(line)
        elif line.startswith("FULLTEXT KEY "):
            ft.append(line)
        elif line.startswith("CONSTRAINT "):
            fks.append(line)
    name = lambda l: l.split("`")[1]
    if fks:
        st.sql("ALTER TABLE `%s` %s" % (table, ", ".join("DROP FOREIGN KEY `%s`" % name(l) for l in fks)))
    if keys or ft:
        st.sql("ALTER TABLE `%s` %s" % (table, ", ".join("DROP INDEX `%s`" % name(l) for l in keys + ft)))
    return keys, ft, fks


def restore_keys(st, table, kfc, timings):
    """Build the indexes once (sorted), then the FULLTEXT index (timed alone),
    then the foreign keys (no validation with foreign_key_checks=0)."""
    keys, ft, fks = kfc
    if keys:
        t = time.monotonic()
        st.sql("ALTER TABLE `%s` %s" % (table, ", ".join("ADD " + l for l in keys)), timeout=7200)
        timings["index_%s_s" % table] = round(time.monotonic() - t, 1)
    for l in ft:
        t = time.monotonic()
        st.sql("ALTER TABLE `%s` ADD %s" % (table, l), timeout=7200)
        timings["fulltext_%s_s" % table] = round(time.monotonic() - t, 1)
    if fks:
        t = time.monotonic()
        st.sql("SET foreign_key_checks = 0; ALTER TABLE `%s` %s" % (
            table, ", ".join("ADD " + l for l in fks)), timeout=7200)
        timings["fk_%s_s" % table] = round(time.monotonic() - t, 1)


def open_fifo_writer(path, reader):
    """Open a FIFO for writing once the server opened it for reading; fails
    when the loading client died instead."""
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != 6:    # ENXIO: no reader yet
                raise
        if reader.poll() is not None:
            raise StackError("the loading client exited (%s)" % reader.returncode)
        time.sleep(0.02)
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, fl & ~os.O_NONBLOCK)
    return os.fdopen(fd, "w", encoding="utf-8", buffering=1 << 20)


def build(size, cache):
    d = os.path.join(cache, size)
    var = os.path.join(d, "var")
    stamp_path = os.path.join(d, "stamp.json")
    if os.path.exists(stamp_path):
        os.unlink(stamp_path)
    shutil.rmtree(var, ignore_errors=True)
    os.makedirs(var)
    t_start = time.monotonic()
    pwhash = subprocess.run([HASHBENCH, "encode", BENCH_PASSWORD] + [str(x) for x in ARGON2],
                            check=True, capture_output=True, text=True).stdout.strip()
    t0 = int(time.time())
    plan = Plan(size, t0)
    st = BenchStack(var, stack.pick_free_port(), db_opts=LOAD_DB_OPTS)
    timings = {}
    try:
        st.prepare()
        st.db_init()
        st.db_start()
        st.db_setup()
        st.migrate()
        timings["setup_s"] = round(time.monotonic() - t_start, 1)
        tables = [tb for _n, tb, _c in LOADS]
        before = {tb: show_create(st, tb) for tb in tables}
        keys = {tb: strip_keys(st, tb, before[tb]) for tb in tables}

        text_rng = random.Random(1)
        t = time.monotonic()
        text = Text(text_rng)
        timings["text_pools_s"] = round(time.monotonic() - t, 1)
        fifo_dir = os.path.join(var, "run", "fifo")
        os.makedirs(fifo_dir, exist_ok=True)
        stats = {"open": 0, "resolved": 0, "closed": 0, "unassigned": 0, "search": 0, "rare": 0}
        writers = {
            "users": lambda f: write_users(f, plan, pwhash, random.Random(2)),
            "tickets": lambda f: write_tickets(f, plan, text, random.Random(3), stats),
            "ratings": lambda f: write_ratings(f, plan, text, random.Random(4)),
            "messages": lambda f: write_messages(f, plan, text, random.Random(5), stats),
        }
        for name, table, cols in LOADS:
            fifo = os.path.join(fifo_dir, name + ".tsv")
            if os.path.exists(fifo):
                os.unlink(fifo)
            os.mkfifo(fifo, 0o600)
            sql = ("SET time_zone = '+00:00', foreign_key_checks = 0; "
                   "LOAD DATA INFILE '%s' INTO TABLE %s CHARACTER SET utf8mb4 "
                   "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' %s; "
                   "SHOW WARNINGS;" % (fifo, table, cols))
            t = time.monotonic()
            p = subprocess.Popen([stack.MARIADB] + st._mysql_args() + ["-B", "-N", "ccr"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            p.stdin.write(sql)
            p.stdin.close()
            err = []

            def feed():
                try:
                    with open_fifo_writer(fifo, p) as f:
                        writers[name](f)
                except Exception as e:   # reported below
                    err.append(e)
            th = threading.Thread(target=feed)
            th.start()
            out = p.stdout.read()
            perr = p.stderr.read()
            p.wait()
            th.join()
            os.unlink(fifo)
            if p.returncode != 0 or err:
                raise StackError("loading %s failed: %s %s" % (name, perr.strip(), err))
            if out.strip():
                raise StackError("loading %s: warnings:\n%s" % (name, out[:2000]))
            timings["load_%s_s" % name] = round(time.monotonic() - t, 1)
            log("%s %s loaded in %.1f s" % (size, name, time.monotonic() - t))
        for tb in tables:
            t = time.monotonic()
            restore_keys(st, tb, keys[tb], timings)
            log("%s %s: indexes and constraints built in %.1f s" % (size, tb, time.monotonic() - t))
        for tb in tables:
            if show_create(st, tb) != before[tb]:
                raise StackError("%s differs from the schema after the load:\n%s\n%s"
                                 % (tb, before[tb], show_create(st, tb)))
        # the timeline the ticket page and the poll read (schema 007): each
        # ticket's creation, then its messages, in id order, which is each
        # ticket's time order; in primary-key order, so nothing is sorted
        t = time.monotonic()
        st.sql("SET time_zone = '+00:00'; "
               "INSERT INTO timeline (ticket_id, kind, actor_id, created_at) "
               "SELECT id, 'created', customer_id, created_at FROM tickets ORDER BY id; "
               "INSERT INTO timeline (ticket_id, kind, actor_id, message_id, created_at) "
               "SELECT ticket_id, 'message', author_id, id, created_at FROM messages ORDER BY id",
               timeout=7200)
        timings["timeline_s"] = round(time.monotonic() - t, 1)
        log("%s timeline filed in %.1f s" % (size, time.monotonic() - t))
        # what the transactions keep for the reports and service levels
        # (schema 011): first response = the first message not by the
        # customer; resolution = resolved_at or closed_at (the generated
        # tickets never pause); the summary rows as reports-rebuild makes them
        t = time.monotonic()
        st.sql("SET time_zone = '+00:00'; "
               "UPDATE tickets t JOIN (SELECT m.ticket_id, MIN(m.created_at) AS fr FROM messages m "
               "JOIN tickets c ON c.id = m.ticket_id WHERE m.author_id <> c.customer_id "
               "GROUP BY m.ticket_id) f ON f.ticket_id = t.id "
               "SET t.first_response_at = f.fr, "
               "t.first_response_s = GREATEST(0, TIMESTAMPDIFF(SECOND, t.created_at, f.fr)); "
               "UPDATE tickets SET resolution_at = COALESCE(resolved_at, closed_at), "
               "resolution_s = GREATEST(0, TIMESTAMPDIFF(SECOND, created_at, COALESCE(resolved_at, closed_at))), "
               "sla_paused_since = COALESCE(closed_at, resolved_at) "
               "WHERE status <> 'open' AND COALESCE(resolved_at, closed_at) IS NOT NULL; "
               "INSERT INTO report_daily (day, created, closed) "
               "SELECT DATE(created_at), COUNT(*), 0 FROM tickets GROUP BY 1; "
               "INSERT INTO report_daily (day, created, closed) "
               "SELECT DATE(closed_at), 0, COUNT(*) FROM tickets WHERE closed_at IS NOT NULL GROUP BY 1 "
               "ON DUPLICATE KEY UPDATE closed = VALUES(closed); "
               "INSERT INTO report_csat (day, agent_id, ratings, score) "
               "SELECT DATE(r.created_at), IFNULL(t.agent_id, 0), COUNT(*), SUM(r.score) "
               "FROM ratings r JOIN tickets t ON t.id = r.ticket_id GROUP BY 1, 2",
               timeout=7200)
        timings["reports_s"] = round(time.monotonic() - t, 1)
        log("%s report summaries filed in %.1f s" % (size, time.monotonic() - t))
        t = time.monotonic()
        st.sql("ANALYZE TABLE users, tickets, messages, ratings, timeline PERSISTENT FOR ALL",
               timeout=7200)
        timings["analyze_s"] = round(time.monotonic() - t, 1)
        timings["total_s"] = round(time.monotonic() - t_start, 1)

        counts = {tb: int(st.sql("SELECT COUNT(*) FROM %s" % tb, timeout=1800)[0][0])
                  for tb in ("users", "tickets", "messages", "ratings")}
        if counts["tickets"] != plan.n_tickets or counts["users"] != plan.n_users or \
                counts["messages"] != stats["max_msg"]:
            raise StackError("row counts %r do not match the plan" % counts)
        n_view = int(st.sql("SELECT COUNT(*) FROM messages WHERE ticket_id = %d" % plan.t_view)[0][0])
        if n_view != VIEW_MESSAGES:
            raise StackError("ticket %d has %d messages" % (plan.t_view, n_view))
        lens = st.sql("SELECT AVG(CHAR_LENGTH(subject)), AVG(CHAR_LENGTH(description)), "
                      "MAX(CHAR_LENGTH(description)) FROM tickets", timeout=1800)[0]
        mlens = st.sql("SELECT AVG(CHAR_LENGTH(body)), MAX(CHAR_LENGTH(body)) FROM messages "
                       "WHERE id % 97 = 0", timeout=1800)[0]
        sizes_mb = {r[0]: round(float(r[1]) / 1048576, 1) for r in st.sql(
            "SELECT table_name, data_length + index_length FROM information_schema.tables "
            "WHERE table_schema = 'ccr'", timeout=600)}
        view_last_seq = int(st.sql("SELECT MAX(id) FROM timeline WHERE ticket_id = %d"
                                   % plan.t_view)[0][0])
        max_timeline = int(st.sql("SELECT IFNULL(MAX(id), 0) FROM timeline")[0][0])
        post_activity = int(st.sql("SELECT UNIX_TIMESTAMP(last_activity) FROM tickets "
                                   "WHERE id = %d" % plan.t_post)[0][0])
        stamp = {
            "version": GEN_VERSION, "source": source_hash(), "size": size,
            "gen": gen_hash(), "schema": schema_hashes(),
            "generated_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t0)),
            "t0": t0, "password": BENCH_PASSWORD, "password_hash": pwhash,
            "counts": counts, "status": {k: stats[k] for k in ("open", "resolved", "closed")},
            "unassigned": stats["unassigned"], "search_word": SEARCH_WORD,
            "search_tickets": stats["search"],
            "rare_word": RARE_WORD, "rare_tickets": stats["rare"],
            "avg_subject": round(float(lens[0]), 1), "avg_description": round(float(lens[1]), 1),
            "max_description": int(lens[2]), "avg_message": round(float(mlens[0]), 1),
            "max_message_sampled": int(mlens[1]),
            "table_mb": sizes_mb, "timings": timings,
            "admin": "admin@bench.example", "agent": "agent1@bench.example",
            "agent_id": plan.agent0, "customer": "customer1@bench.example",
            "customer_id": plan.cust0, "login": "login@bench.example",
            "ticket_view": plan.t_view, "ticket_view_last_msg": stats["view_last_msg"],
            "ticket_post": plan.t_post, "ticket_post_activity": post_activity,
            "max_message_id": stats["max_msg"],
            "ticket_view_last_seq": view_last_seq, "max_timeline_id": max_timeline,
        }
    except BaseException:
        try:
            st.stop()
        except StackError:
            pass
        raise
    st.stop()
    with open(stamp_path + ".tmp", "w") as f:
        json.dump(stamp, f, indent=1, sort_keys=True)
    os.replace(stamp_path + ".tmp", stamp_path)
    log("%s ready in %.1f s: %s" % (size, time.monotonic() - t_start, json.dumps(counts)))
    return stamp


def ensure(size, cache, force=False):
    """The stamp of an up-to-date data set of `size` under cache (built if needed).
    Holds DIR/<size>.lock while checking/building."""
    if size not in SIZES:
        raise StackError("unknown size %r (known: %s)" % (size, ", ".join(SIZES)))
    os.makedirs(cache, exist_ok=True)
    lock = open(os.path.join(cache, size + ".lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        path = os.path.join(cache, size, "stamp.json")
        if not force and os.path.exists(path):
            with open(path) as f:
                stamp = json.load(f)
            if stamp_current(stamp) and \
                    os.path.isdir(os.path.join(cache, size, "var", "db", "mysql")):
                log("%s: reusing %s (generated %s)" % (size, os.path.join(cache, size),
                                                        stamp["generated_at"]))
                return stamp
            log("%s: cached set is stale, rebuilding" % size)
        log("%s: generating into %s" % (size, os.path.join(cache, size)))
        return build(size, cache)
    finally:
        lock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cache", default="/var/tmp/ccr-bench")
    ap.add_argument("--sizes", default="10k 1m")
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    for s in a.sizes.split():
        ensure(s, a.cache, a.force)


if __name__ == "__main__":
    try:
        main()
    except StackError as e:
        print("bench-data: %s" % e, file=sys.stderr)
        sys.exit(1)

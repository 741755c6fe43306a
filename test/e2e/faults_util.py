"""Helpers for test_faults.py (issue 6, the fault suite).  Standard library only.

    LONG                        env FAULTS_LONG=1: longer loads (make faults)
    scaled(short, long)         short normally, long with FAULTS_LONG=1
    measure(fmt, *args)         print "MEASURE ..." (the run log keeps it)

    client(port, addr=None)     helpers.Client keeping its connection alive and
                                answering a failed request with status None and
                                err (never raising); every Response has t0, t1
    customer(ctx, tag)          a new logged-in customer: helpers.User, u.s its client
    Load(steps, pause)          one thread per step function step(i) -> Response,
                                every result kept as a Rec (slim Response)
    World(ctx)                  customers with tickets, an agent assigned to them

    access_lines(text)          ccrd access log lines -> [Access]
    FaultSmtp(st, dir)          test/faults/smtp_server.py on the sink's port
    ExtraCcrd(st, name, dir)    a second ccrd master on the same database
    ExtraNginx(st, dir, port, sockets)  a private nginx with an upstream of sockets
    reload_conf(ctx, section, key, value)  rewrite the stack's ccr.conf, SIGHUP
    tmpfs(path, size)           mount a small tmpfs (context manager, always unmounted)
    sink_message_ids(st)        Counter of Message-IDs in the mail sink
"""
import collections
import configparser
import contextlib
import datetime
import email.parser
import email.policy
import errno
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse

import helpers
import stack

LONG = os.environ.get("FAULTS_LONG") == "1"
PASSWORD = "fault-suite password 1"
SMTP_TOOL = os.path.join(stack.REPO, "test", "faults", "smtp_server.py")


def scaled(short, long):
    return long if LONG else short


def measure(fmt, *args):
    print("MEASURE " + (fmt % args if args else fmt), flush=True)


def pct(values, p):
    """The p-th percentile (nearest rank) of values, or 0."""
    v = sorted(values)
    if not v:
        return 0.0
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


# ------------------------------------------------------------------ HTTP client

def client(port, addr=None):
    return helpers.Client(port, addr, keepalive=True, catch=True)


def customer(ctx, tag="cust", port=None):
    """A new customer, logged in (helpers.User; u.s its client())."""
    return helpers.register(ctx, password=PASSWORD, first="Fault", last=tag.capitalize(),
                            client=client(port or ctx.port), prefix="fault-%s-" % tag,
                            then="/tickets")


TICKET_LOC = re.compile(r"/tickets/(\d+)$")
MESSAGE_LOC = re.compile(r"/tickets/(\d+)#m(\d+)$")


def create_ticket(c, subject="Fault suite ticket", description="Something broke."):
    """POST /tickets -> (ticket id or None, helpers.Response)."""
    r = c.post("/tickets", {"subject": subject, "description": description,
                            "priority": "normal"})
    m = TICKET_LOC.search(urllib.parse.urlsplit(r.location or "").path) if r.status == 303 else None
    return (int(m.group(1)) if m else None), r


def post_message(c, tid, body):
    return c.post("/tickets/%d/messages" % tid, {"body": body})


class World:
    """Customers with one ticket each and an agent assigned to those tickets
    (the agent is a registered user promoted by SQL: the product has no
    scripted way to make one without the mail round trip)."""

    def __init__(self, ctx, customers=3):
        self.ctx = ctx
        self.customers = []
        self.tickets = []
        for i in range(customers):
            u = customer(ctx, "cust%d" % i)
            tid, r = create_ticket(u.s, "Fault suite ticket %d" % i)
            assert tid, "POST /tickets: %s" % r.what()
            u.s.get("/tickets/%d" % tid)     # the page's csrf token (same per session)
            self.customers.append(u)
            self.tickets.append(tid)
        self.agent = customer(ctx, "agent")
        ctx.sql("UPDATE users SET role = 'agent' WHERE id = %d" % self.agent.id)
        ctx.sql("UPDATE tickets SET agent_id = %d WHERE id IN (%s)"
                % (self.agent.id, ",".join(map(str, self.tickets))))
        r = self.agent.s.get("/tickets/%d" % self.tickets[0])
        assert r.status == 200, "agent GET /tickets/%d: %s" % (self.tickets[0], r.what())

    def reader(self, i, port=None):
        """Step: a customer reading its ticket page and its list."""
        u, tid = self.customers[i % len(self.customers)], self.tickets[i % len(self.tickets)]
        c = u.s.clone(port)
        paths = ("/tickets/%d" % tid, "/tickets")
        return lambda n: c.get(paths[n % 2])

    def writer(self, i, new_ticket_every=0, port=None):
        """Step: a customer reading and writing on its ticket (and, every
        new_ticket_every steps, raising a new ticket)."""
        u, tid = self.customers[i % len(self.customers)], self.tickets[i % len(self.tickets)]
        c = u.s.clone(port)

        def step(n):
            if new_ticket_every and n % new_ticket_every == new_ticket_every - 1:
                return create_ticket(c, "Fault load ticket %d" % n)[1]
            if n % 2 == 0:
                return c.get("/tickets/%d" % tid)
            return post_message(c, tid, "fault load message %d from %s" % (n, u.email))
        return step

    def agent_writer(self, port=None):
        c = self.agent.s.clone(port)

        def step(n):
            tid = self.tickets[(n // 2) % len(self.tickets)]
            if n % 2 == 0:
                return c.get("/tickets/%d" % tid)
            return post_message(c, tid, "agent answer %d" % n)
        return step


def anon_step(port):
    c = client(port)
    paths = ("/healthz", "/login")
    return lambda n: c.get(paths[n % 2])


# ------------------------------------------------------------------ load

class Rec(helpers.Timed):
    """A Response without headers and body (a load keeps thousands)."""
    __slots__ = ("t0", "t1", "method", "path", "status", "err", "retry_after", "location", "thread")

    def __init__(self, r, thread):
        self.t0, self.t1, self.method, self.path = r.t0, r.t1, r.method, r.path
        self.status, self.err = r.status, r.err
        self.retry_after = r.header("Retry-After")
        self.location = r.location
        self.thread = thread


class Load:
    """Run each step function in its own thread until stopped: step(n) -> helpers.Response."""

    def __init__(self, steps, pause=0.002):
        self.steps = steps
        self.pause = pause
        self.recs = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i, s), daemon=True)
                        for i, s in enumerate(steps)]
        self.t_start = self.t_stop = None

    def _run(self, i, step):
        n = 0
        while not self.stop_ev.is_set():
            try:
                r = step(n)
            except Exception as e:   # a bug in a step: keep it visible
                now = time.time()
                r = helpers.Response(None, "", [], b"", "?", "?", now, now,
                                     "step raised %r" % e)
            with self.lock:
                self.recs.append(Rec(r, i))
            n += 1
            if self.pause:
                time.sleep(self.pause)

    def __enter__(self):
        self.t_start = time.time()
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)
        if self.t_stop is None:
            self.t_stop = time.time()

    def __exit__(self, *exc):
        self.stop()

    def snapshot(self):
        with self.lock:
            return list(self.recs)


def histogram(recs):
    c = collections.Counter()
    for r in recs:
        c[r.status if r.status else (r.err or "?").split(":")[0]] += 1
    return dict(sorted(c.items(), key=lambda kv: str(kv[0])))


def failures(recs):
    return [r for r in recs if not r.ok]


# ------------------------------------------------------------------ ccrd log

ACCESS_RE = re.compile(r'^(\S+) ccrd\[(\d+)\] req=(\S+) (\S+) "([^"]*)" (\d+) ([\d.]+)ms')
Access = collections.namedtuple("Access", "t pid req method path status ms")


def log_time(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def access_lines(text):
    out = []
    for line in text.splitlines():
        m = ACCESS_RE.match(line)
        if m:
            out.append(Access(log_time(m.group(1)), int(m.group(2)), m.group(3), m.group(4),
                              m.group(5), int(m.group(6)), float(m.group(7))))
    return out


CRASH_RE = re.compile(r"(worker|mailer) (\d+) (killed by signal \d+|exited with status \d+)")


def crash_lines(text):
    return [l for l in text.splitlines() if CRASH_RE.search(l)]


def read_from(path, mark=0):
    try:
        with open(path, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def conf_int(st, section, key, default):
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(st.conf)
    try:
        return int(cp.get(section, key))
    except (configparser.Error, ValueError):
        return default


def reload_conf(ctx, section, key, value, timeout=15):
    """Set (or with value None, drop) [section] key in the stack's generated
    ccr.conf (Stack.extra_conf, so a later write_conf keeps it), SIGHUP the
    master, and wait for its "reloaded" line and the new mailer."""
    st = ctx.stack
    st.set_conf(section, key, value)
    mark = ctx.log_mark()
    st.ccrd_signal(signal.SIGHUP)
    ctx.wait_until(lambda: "reloaded " in ctx.log_since(mark) and
                   "mailer started as" in ctx.log_since(mark), timeout,
                   "ccrd to reload %s and start a new mailer" % st.conf, 0.05)


# ------------------------------------------------------------------ mail

def replace_mailer(ctx, timeout=15):
    """SIGHUP the stack's master (a reload starts a new mailer and new
    workers) and wait for the new mailer."""
    st = ctx.stack
    mark = ctx.log_mark()
    st.ccrd_signal(signal.SIGHUP)
    ctx.wait_until(lambda: "mailer started as" in ctx.log_since(mark), timeout,
                   "a new mailer after SIGHUP", 0.05)


def mail_flows(ctx, client, timeout=15.0):
    """Raise a ticket and wait for its mail to leave the outbox.
    -> (seconds it took or None, rows)."""
    lo = outbox_max_id(ctx)
    t0 = time.time()
    tid, r = create_ticket(client, "Does mail flow?")
    assert tid, "POST /tickets: %s" % r.what()
    hi = outbox_max_id(ctx)
    deadline = t0 + timeout
    while time.time() < deadline:
        rows = outbox_rows(ctx, lo, hi)
        if rows and all(x["status"] == "sent" for x in rows):
            return time.time() - t0, rows
        time.sleep(0.2)
    return None, outbox_rows(ctx, lo, hi)


def sink_message_ids(st):
    """Counter of the Message-ID headers of every mail in the sink."""
    out = collections.Counter()
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    for sub in ("new", "cur"):
        d = os.path.join(st.mail_dir, sub)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        for n in names:
            try:
                with open(os.path.join(d, n), "rb") as f:
                    msg = parser.parse(f)
            except OSError:
                continue
            out[(msg.get("Message-ID") or "").strip()] += 1
    return out


def outbox_max_id(ctx):
    v = ctx.sql_value("SELECT COALESCE(MAX(id), 0) FROM outbox")
    return int(v or 0)


def outbox_rows(ctx, lo, hi=None, extra=""):
    """Outbox rows lo < id [<= hi] as dicts."""
    cols = ("id", "kind", "status", "attempts", "message_id", "claimed_by", "lease_left",
            "last_error", "ticket_id")
    q = ("SELECT id, kind, status, attempts, message_id, COALESCE(claimed_by, ''), "
         "COALESCE(TIMESTAMPDIFF(SECOND, NOW(), lease_until), ''), COALESCE(last_error, ''), "
         "COALESCE(ticket_id, '') FROM outbox WHERE id > %d" % lo)
    if hi is not None:
        q += " AND id <= %d" % hi
    if extra:
        q += " AND (%s)" % extra
    out = []
    for row in ctx.sql(q + " ORDER BY id"):
        d = dict(zip(cols, row))
        d["id"] = int(d["id"])
        d["attempts"] = int(d["attempts"])
        out.append(d)
    return out


class FaultSmtp:
    """test/faults/smtp_server.py in place of the stack's aiosmtpd sink, on the
    same port and Maildir.  Use as a context manager: the stack's sink is
    stopped on entry and started again on exit."""

    def __init__(self, st, workdir):
        self.st = st
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.mode_file = os.path.join(workdir, "smtp.mode")
        self.events_file = os.path.join(workdir, "smtp.events")
        self.log = os.path.join(workdir, "smtp.log")
        self.proc = None

    def set_mode(self, mode):
        with open(self.mode_file + ".tmp", "w") as f:
            f.write(mode + "\n")
        os.replace(self.mode_file + ".tmp", self.mode_file)

    def start(self, mode=None, timeout=10):
        if mode:
            self.set_mode(mode)
        if self.proc and self.proc.poll() is None:
            return
        with open(self.log, "ab") as out:
            self.proc = stack.spawn([stack.PYTHON, SMTP_TOOL, "--port", str(self.st.smtp_port),
                                     "--maildir", self.st.mail_dir, "--mode-file", self.mode_file,
                                     "--events", self.events_file], stdout=out, stderr=out)
        stack.wait_port(self.st.smtp_port, self.proc, "the fault SMTP server", self.log, timeout)

    def stop(self):
        if self.proc:
            stack.reap(self.proc, 10, signal.SIGTERM, send=True)
        self.proc = None

    def events(self, since=0.0):
        out = []
        try:
            with open(self.events_file) as f:
                for line in f:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue
                    if e.get("t", 0) >= since:
                        out.append(e)
        except FileNotFoundError:
            pass
        return out

    def __enter__(self):
        self.st.smtp_stop()
        self.set_mode("ok")
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        self.st.smtp_start()


# ------------------------------------------------------------------ more processes

class ExtraCcrd:
    """Another ccrd master on the stack's database: a copy of the stack's
    ccr.conf with its own socket (and any overrides), its stderr in its own
    log file.  Started in its own session, so its process group is its pid."""

    def __init__(self, st, name, workdir, workers=2, overrides=None):
        self.st = st
        self.name = name
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o755)
        self.sock = os.path.join(workdir, name + ".sock")
        self.conf = os.path.join(workdir, name + ".conf")
        self.log = os.path.join(workdir, name + ".log")
        self.workers = workers
        self.overrides = overrides or {}
        self.proc = None

    def write_conf(self):
        cp = configparser.ConfigParser(interpolation=None)
        cp.optionxform = str
        cp.read(self.st.conf)
        cp.set("server", "listen", self.sock)
        cp.set("server", "workers", str(self.workers))
        for sec, kv in self.overrides.items():
            if not cp.has_section(sec):
                cp.add_section(sec)
            for k, v in kv.items():
                cp.set(sec, k, str(v))
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            cp.write(f)

    def start(self, timeout=20):
        self.write_conf()
        try:
            os.unlink(self.sock)
        except FileNotFoundError:
            pass
        with open(self.log, "ab") as out:
            self.proc = stack.spawn([self.st.ccrd_bin, "-c", self.conf], stdout=out, stderr=out)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("ccrd %s exited %s: %s" % (self.name, self.proc.returncode,
                                                                read_from(self.log)[-800:]))
            if not os.path.exists(self.sock):
                return False
            try:
                r = helpers.fcgi(self.sock, self.st.port, "GET", "/healthz", timeout=3)
                return r.status == 200
            except OSError:
                return False
        stack.wait_until(up, timeout, "ccrd %s to answer /healthz on %s" % (self.name, self.sock), 0.1)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def children(self):
        return stack.children_of(self.proc.pid) if self.pid else []

    def group(self):
        return stack.pgroup_members(self.proc.pid) if self.proc else []

    def kill_group(self):
        """SIGKILL the master and every process of its group at once."""
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def stop(self, timeout=30):
        """SIGTERM, wait; returns the exit status.  Leaves nothing behind."""
        if not self.proc:
            return None
        rc = stack.reap(self.proc, timeout, signal.SIGTERM, send=True)
        stack.kill_group(self.proc.pid)
        return rc


class ExtraNginx:
    """A private nginx from nginx/ccr-dev.conf.in whose fastcgi_pass goes to an
    upstream of several ccrd sockets."""

    def __init__(self, st, workdir, port, sockets):
        self.st = st
        self.prefix = os.path.join(workdir, "nginx")
        self.logdir = os.path.join(workdir, "nginx-log")
        self.port = port
        self.sockets = sockets
        self.proc = None
        self.err = os.path.join(self.logdir, "nginx-error.log")
        self.access = os.path.join(self.logdir, "nginx-access.log")

    def start(self, timeout=15):
        conf = stack.render_nginx_conf(self.st.repo, self.prefix, self.logdir, self.sockets[0],
                                       self.port)
        with open(conf) as f:
            text = f.read()
        want = "fastcgi_pass unix:%s;" % self.sockets[0]
        assert want in text, "nginx template has no '%s'" % want
        text = text.replace(want, "fastcgi_pass ccr_faults;")
        servers = "".join("        server unix:%s;\n" % s for s in self.sockets)
        text = text.replace("http {\n", "http {\n    upstream ccr_faults {\n%s    }\n" % servers, 1)
        with open(conf, "w") as f:
            f.write(text)
        with open(self.err, "ab") as out:
            self.proc = stack.spawn([stack.NGINX, "-p", self.prefix, "-e", self.err,
                                     "-c", "conf/nginx.conf"], stdout=out, stderr=out)
        stack.wait_port(self.port, self.proc, "the second nginx", self.err, timeout)
        return self

    def stop(self):
        if self.proc:
            stack.reap(self.proc, 10, signal.SIGQUIT, send=True)
            stack.kill_group(self.proc.pid)
        self.proc = None


# ------------------------------------------------------------------ disk full

class NoMount(Exception):
    pass


@contextlib.contextmanager
def tmpfs(path, size="256k"):
    """Mount a tmpfs of `size` on path (created if needed); always unmounted."""
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=1777" % size, "tmpfs", path],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise NoMount("mount -t tmpfs on %s: %s" % (path, (p.stderr or p.stdout).strip()))
    try:
        yield path
    finally:
        for attempt in range(20):
            q = subprocess.run(["umount", path], capture_output=True, text=True)
            if q.returncode == 0:
                break
            time.sleep(0.25)
        else:
            subprocess.run(["umount", "-l", path], capture_output=True)


def fill(dirpath, name="filler"):
    """Write a file in dirpath until the file system is full; returns its path."""
    path = os.path.join(dirpath, name)
    chunk = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                if os.write(fd, chunk) < len(chunk):
                    break
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    break
                raise
        # the last partial page too
        for _ in range(4096):
            try:
                if os.write(fd, b"\0") == 0:
                    break
            except OSError:
                break
    finally:
        os.close(fd)
    return path


def freeze_db(ctx, timeout=2.0):
    """Stack.db_freeze() and wait until every thread of mariadbd is stopped."""
    st = ctx.stack
    pid = st.db_pid()
    assert pid, "MariaDB is not running (cannot freeze it)"
    st.db_freeze()

    def stopped():
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            return False
        return all(stack.proc_state(int(t)) in ("T", "t", None) for t in tids)
    stack.wait_until(stopped, timeout, "every thread of mariadbd %d to stop" % pid, 0.01)


def free_bytes(path):
    s = os.statvfs(path)
    return s.f_bavail * s.f_frsize

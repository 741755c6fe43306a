#!/usr/bin/python3
"""The local Customer Care Registry stack: private MariaDB, SMTP sink, ccrd, nginx.

Python 3 standard library only; run with /usr/bin/python3 (the Debian Python
that has python3-aiosmtpd).

As a program (what `make run` uses):

    PORT=8080 CCR_VAR=<repo>/var /usr/bin/python3 test/stack.py run

starts everything in the foreground, prints the URL, and stops everything on
SIGINT/SIGTERM (exit 0).  A MariaDB that exits is restarted (back-off 1 s to
30 s) while ccrd and nginx keep serving.  Data in $CCR_VAR survives a restart.

As a module (what test/e2e/run.py uses):

    st = Stack(var_dir, port, repo_root, ccrd_log="file")
    st.start()            # raises StackError with the relevant log tail
    ... st.db_stop(); st.db_start(); st.db_freeze(); st.db_thaw();
    ... st.smtp_stop(); st.smtp_start(); st.ccrd_pid(); st.worker_pids() ...
    ... st.set_mail_in(address="support@example.com"); st.fetcher_pids() ...
    st.stop()             # reverse order; no process left behind

Layout of $VAR: ccr.conf, db/, run/{mysql.sock,
mysql.pid,ccrd.sock}, mail/{cur,new,tmp}, log/, nginx/ (prefix).
Ports: HTTP = port, SMTP sink = port + 1000.

Every child runs in its own session (so a terminal's Ctrl-C reaches only the
launcher, which then stops the children in order) and gets
PR_SET_PDEATHSIG=SIGTERM, so nothing outlives the launcher.  PDEATHSIG fires
when the *thread* that started the child ends: call the start methods from the
main thread (or from a thread that lives as long as the stack).
"""
import configparser
import ctypes
import fcntl
import http.client
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _which(name, *fallbacks):
    found = shutil.which(name)
    if found:
        return found
    for f in fallbacks:
        if os.path.exists(f):
            return f
    return name


MARIADBD = _which("mariadbd", "/usr/sbin/mariadbd")
MARIADB_INSTALL_DB = _which("mariadb-install-db", "/usr/bin/mariadb-install-db")
MARIADB_ADMIN = _which("mariadb-admin", "/usr/bin/mariadb-admin")
MARIADB = _which("mariadb", "/usr/bin/mariadb")
SEARCHD = _which("searchd", "/usr/bin/searchd")
NGINX = _which("nginx", "/usr/sbin/nginx")
PYTHON = "/usr/bin/python3"

DB_OPTS = ["--innodb-log-file-size=8M", "--innodb-buffer-pool-size=64M"]


class StackError(Exception):
    pass


def _child_setup(parent_pid):
    """preexec_fn: die with the launcher (PDEATHSIG) - and if it already died, now."""
    def setup():
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)
        # The launcher may block or ignore signals; start children clean.
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE):
            signal.signal(s, signal.SIG_DFL)
    return setup


def spawn(argv, stdout=None, stderr=None, env=None, cwd=None):
    """Start a child in its own session with PR_SET_PDEATHSIG; returns Popen."""
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                            env=env, cwd=cwd, start_new_session=True,
                            preexec_fn=_child_setup(os.getpid()))


def wait_until(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns a true value (returned); StackError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise StackError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_port(port, proc, what, log=None, timeout=15):
    """Wait until 127.0.0.1:port accepts a connection; StackError (with the
    tail of log) as soon as proc exits instead."""
    def up():
        if proc.poll() is not None:
            raise StackError("%s exited with %s:\n%s" % (what, proc.returncode,
                                                         tail(log) if log else ""))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_until(up, timeout, "%s on port %d" % (what, port))


def reap(p, timeout, sig, send=False):
    """Send sig to the child p (if send) and wait up to timeout; then SIGKILL
    its process group.  Returns the exit status (None for p None)."""
    if p is None:
        return None
    if p.poll() is None and send:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(10)
        # a killed process group may leave no one behind; report via return code
    return p.returncode


def kill_group(pgid):
    """SIGKILL every process still in process group pgid; returns their pids."""
    left = pgroup_members(pgid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def port_free(port):
    """True if nginx (or the SMTP sink) could listen on 127.0.0.1:port now.

    Binds the way they do: SO_REUSEADDR first, so connections of an earlier
    stack still in TIME_WAIT do not count as "in use" (only a listener does)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_free_port(lo=20000, hi=30000, avoid=(8080,)):
    """A port P with P and P+1000 (SMTP sink) both free on 127.0.0.1.

    Chosen below the Linux ephemeral range (32768-60999) so outgoing
    connections do not take it in the meantime."""
    for _ in range(500):
        p = random.randint(lo, hi)
        if p in avoid or p + 1000 in avoid:
            continue
        if port_free(p) and port_free(p + 1000):
            return p
    raise StackError("no free port pair found in %d-%d" % (lo, hi))


def proc_state(pid):
    """One-letter state from /proc/PID/stat, or None if the process is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(")") + 2:].split()[0]


def alive(pid):
    """True if pid exists and is not a zombie."""
    st = proc_state(pid)
    return st is not None and st not in ("Z", "X")


def _all_stats():
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        comm = data[data.index("(") + 1:data.rindex(")")]
        # rest: state ppid pgrp session ...
        out.append((int(d), comm, rest[0], int(rest[1]), int(rest[2])))
    return out


def children_of(pid):
    """Live (non-zombie) direct children of pid, sorted."""
    return sorted(p for p, _c, st, ppid, _g in _all_stats()
                  if ppid == pid and st not in ("Z", "X"))


def pgroup_members(pgid):
    """Live processes whose process group is pgid (zombies excluded)."""
    return sorted(p for p, _c, st, _pp, g in _all_stats() if g == pgid and st not in ("Z", "X"))


def proc_name(pid):
    """The process name ccrd gives each child with prctl(PR_SET_NAME):
    "ccrd-worker", "ccrd-mailer", "ccrd-webhooks" or "ccrd-fetcher" ("" when pid is gone).  Only comm, never
    the command line, so a checkout path holding "mailer" fools nothing."""
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def tail(path, n=25):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 16384))
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join("    " + l for l in lines[-n:])
    except OSError as e:
        return "    (%s)" % e


def render_nginx_conf(repo, prefix, logdir, socket, port):
    """Render nginx/ccr-dev.conf.in into PREFIX/conf/nginx.conf (creating the
    prefix and temp dirs); returns the conf path."""
    with open(os.path.join(repo, "nginx", "ccr-dev.conf.in")) as f:
        text = f.read()
    # Workers run as the invoking user: as root, nginx would otherwise switch
    # them to nobody, who cannot enter a checkout or $CCR_VAR under a 0700
    # home (502 for every page, 403 for /static/).  As another user nginx
    # cannot switch at all, so the line is left out.
    user = "user root;" if os.geteuid() == 0 else "# (workers run as the invoking user)"
    for k, v in (("@USER@", user), ("@PORT@", str(port)), ("@PREFIX@", prefix), ("@LOGDIR@", logdir),
                 ("@SOCKET@", socket), ("@STATIC@", os.path.join(repo, "views", "static"))):
        text = text.replace(k, v)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise StackError("unknown placeholder(s) in nginx/ccr-dev.conf.in: %s" % ", ".join(left))
    for d in ("conf", "client_body_temp", "proxy_temp", "fastcgi_temp", "uwsgi_temp",
              "scgi_temp"):
        os.makedirs(os.path.join(prefix, d), exist_ok=True)
    os.makedirs(logdir, exist_ok=True)
    conf = os.path.join(prefix, "conf", "nginx.conf")
    with open(conf + ".tmp", "w") as f:
        f.write(text)
    os.replace(conf + ".tmp", conf)
    return conf


class Stack:
    """One private stack under var_dir, HTTP on 127.0.0.1:port, SMTP sink on port+1000.

    ccrd_log: "file" (default) appends ccrd's stderr to $VAR/log/ccrd.log;
              "inherit" leaves it on the launcher's stderr (CLI mode).
    workers:  [server] workers in the generated ccr.conf.
    extra_conf: {section: {key: value}} merged into the generated ccr.conf
              (e.g. {"tickets": {"auto_close_days": "1"}}).
    require_2fa: [security] require_2fa in the generated ccr.conf (None: the
              server's default, admins).

    The generated ccr.conf keeps its database password and [security]
    secret_key (the key the TOTP secrets are sealed with) across restarts.
    """

    def __init__(self, var_dir, port, repo_root=REPO, ccrd_log="file", workers=4,
                 extra_conf=None, require_2fa=None):
        self.var = os.path.abspath(var_dir)
        self.port = int(port)
        self.smtp_port = self.port + 1000
        self.repo = os.path.abspath(repo_root)
        if ccrd_log not in ("file", "inherit"):
            raise ValueError("ccrd_log must be 'file' or 'inherit'")
        self.ccrd_log = ccrd_log
        self.workers = workers
        self.extra_conf = extra_conf or {}
        self.require_2fa = require_2fa
        self.secret_key = None
        self.conf = os.path.join(self.var, "ccr.conf")
        self.run_dir = os.path.join(self.var, "run")
        self.log_dir = os.path.join(self.var, "log")
        self.mail_dir = os.path.join(self.var, "mail")
        self.db_dir = os.path.join(self.var, "db")
        self.nginx_prefix = os.path.join(self.var, "nginx")
        self.mysql_sock = os.path.join(self.run_dir, "mysql.sock")
        self.ccrd_sock = os.path.join(self.run_dir, "ccrd.sock")
        self.ccrd_log_path = os.path.join(self.log_dir, "ccrd.log")
        # CCR_BIN_DIR=build/asan runs the sanitizer build (test/e2e/run.py --asan)
        bindir = os.environ.get("CCR_BIN_DIR") or os.path.join(self.repo, "build")
        self.ccrd_bin = os.path.join(bindir, "ccrd")
        self.admin_bin = os.path.join(bindir, "ccr-admin")
        self.base_url = "http://127.0.0.1:%d" % self.port
        self.db_password = None
        # searchd (the search index, README "Search"): SphinxQL on
        # 127.0.0.1:search_port, its index and binlog in $VAR/search
        self.search_dir = os.path.join(self.var, "search")
        self.search_port = self.port + 3000 if self.port + 3000 < 32768 else self.port - 3000
        self.searchd = None
        self.db = self.smtp = self.ccrd = self.nginx = None   # Popen objects
        self.db_frozen = False
        self._lock_fd = None
        # a callable; when it returns true, a db_start() in progress gives up
        # (cmd_run: Ctrl-C during a database restart)
        self.abort = None

    # ---------------------------------------------------------------- layout

    def prepare(self):
        """Create the $VAR layout, take the instance lock, write ccr.conf."""
        for d in (self.var, self.run_dir, self.log_dir, self.nginx_prefix,
                  os.path.join(self.mail_dir, "cur"), os.path.join(self.mail_dir, "new"),
                  os.path.join(self.mail_dir, "tmp")):
            os.makedirs(d, exist_ok=True)
        if self._lock_fd is None:
            fd = os.open(os.path.join(self.run_dir, "stack.lock"), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise StackError("another stack is already running in %s" % self.var)
            self._lock_fd = fd
        for p in (self.port, self.smtp_port):
            if not port_free(p):
                raise StackError("port %d on 127.0.0.1 is in use (choose another PORT)" % p)
        if not (self.searchd and self.searchd.poll() is None) and not port_free(self.search_port):
            for _ in range(200):
                p = random.randint(10000, 19999)
                if port_free(p):
                    self.search_port = p
                    break
        for b in (self.ccrd_bin, self.admin_bin):
            if not os.access(b, os.X_OK):
                raise StackError("%s not found: build it first (make)" % b)
        self.write_conf()

    def set_conf(self, section, key, value):
        """Set (value None: drop) [section] key in extra_conf and rewrite ccr.conf."""
        sec = self.extra_conf.setdefault(section, {})
        if value is None:
            sec.pop(key, None)
            if not sec:
                self.extra_conf.pop(section, None)
        else:
            sec[key] = str(value)
        self.write_conf()

    def write_conf(self):
        """(Re)write $VAR/ccr.conf, keeping the database password already in it."""
        if self.db_password is None and os.path.exists(self.conf):
            cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
            try:
                cp.read(self.conf)
                self.db_password = cp.get("database", "password", fallback=None) or None
                self.secret_key = cp.get("security", "secret_key", fallback=None) or None
            except configparser.Error:
                pass
        if self.db_password is None:
            self.db_password = secrets.token_urlsafe(18)
        if self.secret_key is None:
            self.secret_key = secrets.token_hex(32)
        conf = {
            "server": {
                "listen": self.ccrd_sock,
                "socket_mode": "0666",
                "workers": str(self.workers),
                "views_dir": os.path.join(self.repo, "views"),
                "schema_dir": os.path.join(self.repo, "schema"),
            },
            "database": {
                "socket": self.mysql_sock,
                "name": "ccr",
                "user": "ccr",
                "password": self.db_password,
            },
            "smtp": {
                "host": "127.0.0.1",
                "port": str(self.smtp_port),
                "starttls": "off",
                "from": "Customer Care Registry <noreply@localhost>",
            },
            "security": {
                "secure_cookies": "false",
                "hash_slot_dir": self.run_dir,
                "secret_key": self.secret_key,
            },
            "site": {
                "base_url": self.base_url,
            },
            "search": {
                "host": "127.0.0.1",
                "port": str(self.search_port),
            },
            # the email channel: replies go to support+TOKEN@example.com
            "mail_in": {
                "address": "support@example.com",
            },
        }
        if self.require_2fa is not None:
            conf["security"]["require_2fa"] = self.require_2fa
        for sec, kv in self.extra_conf.items():
            conf.setdefault(sec, {}).update({k: str(v) for k, v in kv.items()})
        lines = ["# Generated by test/stack.py at every start: edits are lost.",
                 "# Development settings (secure_cookies off, sink SMTP without STARTTLS).", ""]
        for sec, kv in conf.items():
            lines.append("[%s]" % sec)
            lines += ["%s = %s" % (k, v) for k, v in kv.items()]
            lines.append("")
        tmp = self.conf + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines))
        # keep the owner a test gave it (mailservers.Postfix hands it to
        # nobody, who runs ccr-admin mail-in): still 0600, never world-readable
        try:
            old = os.stat(self.conf)
            os.chown(tmp, old.st_uid, old.st_gid)
        except FileNotFoundError:
            pass
        os.replace(tmp, self.conf)

    # ---------------------------------------------------------------- MariaDB

    def _mysql_args(self):
        return ["--no-defaults", "-S", self.mysql_sock, "-uroot"]

    def db_init(self):
        """mariadb-install-db into $VAR/db unless it already holds a datadir.

        Installs into db.new and renames, so an interrupted install is redone."""
        if os.path.isdir(os.path.join(self.db_dir, "mysql")):
            return False
        new = self.db_dir + ".new"
        shutil.rmtree(new, ignore_errors=True)
        if os.path.isdir(self.db_dir):
            shutil.rmtree(self.db_dir)
        log = os.path.join(self.log_dir, "mysql-install.log")
        with open(log, "wb") as out:
            p = subprocess.run([MARIADB_INSTALL_DB, "--no-defaults", "--datadir=" + new,
                                "--user=root", "--auth-root-authentication-method=socket",
                                "--skip-test-db", "--skip-name-resolve"] + DB_OPTS,
                               stdout=out, stderr=subprocess.STDOUT, timeout=120)
        if p.returncode != 0:
            raise StackError("mariadb-install-db failed (exit %d):\n%s" % (p.returncode, tail(log)))
        os.rename(new, self.db_dir)
        return True

    def db_ping(self):
        p = subprocess.run([MARIADB_ADMIN] + self._mysql_args() + ["--connect-timeout=2", "ping"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        return p.returncode == 0

    def db_start(self, timeout=30):
        """Start mariadbd (our child) and wait until it answers ping."""
        if self.db and self.db.poll() is None:
            return
        err = os.path.join(self.log_dir, "mysql.err")
        # its own tmpdir: on-disk temporary tables in a shared /tmp were seen
        # deleted under a running query (error 6 "Error on delete of
        # '/tmp/#sql-temptable-...'" -> a 500) while other jobs ran
        tmpdir = os.path.join(self.var, "tmp")
        os.makedirs(tmpdir, exist_ok=True)
        with open(err, "ab") as out:
            self.db = spawn([MARIADBD, "--no-defaults", "--user=root", "--datadir=" + self.db_dir,
                             "--socket=" + self.mysql_sock, "--tmpdir=" + tmpdir,
                             "--pid-file=" + os.path.join(self.run_dir, "mysql.pid"),
                             "--log-error=" + err, "--skip-networking",
                             "--character-set-server=utf8mb4",
                             "--collation-server=utf8mb4_unicode_ci"] + DB_OPTS,
                            stdout=out, stderr=subprocess.STDOUT)
        self.db_frozen = False

        def up():
            if self.db.poll() is not None:
                raise StackError("mariadbd exited with %s:\n%s" % (self.db.returncode, tail(err)))
            if self.abort and self.abort():
                raise StackError("interrupted while MariaDB was starting")
            return self.db_ping()
        wait_until(up, timeout, "MariaDB to answer ping (log: %s)" % err, interval=0.1)

    def db_setup(self):
        """Create database ccr and user ccr@localhost with the password from ccr.conf."""
        pw = self.db_password.replace("\\", "\\\\").replace("'", "\\'")
        self.sql("CREATE DATABASE IF NOT EXISTS ccr CHARACTER SET utf8mb4 "
                 "COLLATE utf8mb4_unicode_ci; "
                 "CREATE USER IF NOT EXISTS 'ccr'@'localhost' IDENTIFIED BY '%s'; "
                 "ALTER USER 'ccr'@'localhost' IDENTIFIED BY '%s'; "
                 "GRANT ALL ON ccr.* TO 'ccr'@'localhost';" % (pw, pw), database=None)

    def db_stop(self, timeout=30):
        """Clean shutdown (mariadb-admin shutdown), then wait for the process."""
        if not self.db:
            return
        if self.db_frozen:
            self.db_thaw()
        if self.db.poll() is None:
            try:
                subprocess.run([MARIADB_ADMIN] + self._mysql_args() + ["shutdown"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            reap(self.db, timeout, signal.SIGTERM)
        self.db = None

    def db_freeze(self):
        """SIGSTOP mariadbd: connections hang instead of failing."""
        if self.db and self.db.poll() is None:
            os.kill(self.db.pid, signal.SIGSTOP)
            self.db_frozen = True

    def db_thaw(self):
        if self.db and self.db.poll() is None:
            os.kill(self.db.pid, signal.SIGCONT)
        self.db_frozen = False

    def db_pid(self):
        return self.db.pid if self.db and self.db.poll() is None else None

    def sql(self, query, database="ccr", timeout=30):
        """Run SQL as root over the private socket; returns rows as lists of str
        (mariadb -B -N: tab-separated, NULL as 'NULL', \\t \\n \\\\ escaped)."""
        argv = [MARIADB] + self._mysql_args() + ["-B", "-N", "--default-character-set=utf8mb4"]
        if database:
            argv.append(database)
        p = subprocess.run(argv, input=query.encode(), capture_output=True, timeout=timeout)
        if p.returncode != 0:
            raise StackError("mariadb: %s" % p.stderr.decode("utf-8", "replace").strip())
        out = p.stdout.decode("utf-8", "replace")
        return [line.split("\t") for line in out.splitlines()]

    def migrate(self):
        self.admin("migrate")

    def admin(self, *args, input=None, timeout=60, check=True):
        """Run build/ccr-admin -c $VAR/ccr.conf ARGS; returns CompletedProcess (text)."""
        p = subprocess.run([self.admin_bin, "-c", self.conf] + list(args), input=input,
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise StackError("ccr-admin %s failed (exit %d): %s" %
                             (" ".join(args), p.returncode, (p.stdout + p.stderr).strip()))
        return p

    # ---------------------------------------------------------------- searchd

    def search_conf(self):
        """$VAR/search/searchd.conf: systemd/ccr-searchd.conf (the packaged
        configuration) with this stack's paths and port."""
        os.makedirs(self.search_dir, exist_ok=True)
        with open(os.path.join(self.repo, "systemd", "ccr-searchd.conf")) as f:
            text = f.read()
        d = self.search_dir
        text = text.replace("path = /var/lib/ccr-search/ccr_tickets", "path = %s/ccr_tickets" % d)
        text = text.replace("binlog_path = /var/lib/ccr-search", "binlog_path = %s" % d)
        text = text.replace("/var/log/ccr-search/searchd.log", os.path.join(self.log_dir, "searchd.log"))
        text = text.replace("/run/ccr-search/searchd.pid", os.path.join(self.run_dir, "searchd.pid"))
        text = text.replace("127.0.0.1:9306:mysql41", "127.0.0.1:%d:mysql41" % self.search_port)
        if self.search_query_log:
            # every query searchd answers, as SphinxQL (tests read it)
            text = text.replace("\tlog = ", "\tquery_log_format = sphinxql\n\tquery_log = %s\n\tlog = "
                                % self.search_query_log_path(), 1)
        path = os.path.join(d, "searchd.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    search_query_log = True   # the bench turns it off (a write per query)

    def search_query_log_path(self):
        return os.path.join(self.log_dir, "searchd-query.log")

    def search_start(self, timeout=30):
        """Start searchd (our child) and wait for its SphinxQL port."""
        if self.searchd and self.searchd.poll() is None:
            return
        conf = self.search_conf()
        log = os.path.join(self.log_dir, "searchd.out")
        with open(log, "ab") as out:
            self.searchd = spawn([SEARCHD, "--config", conf, "--nodetach"], stdout=out,
                                 stderr=subprocess.STDOUT)
        wait_port(self.search_port, self.searchd, "searchd", log, timeout)

    def search_stop(self, timeout=30):
        if self.searchd:
            reap(self.searchd, timeout, signal.SIGTERM, send=True)
        self.searchd = None

    def search_kill(self):
        """SIGKILL searchd (a crash: its binlog is replayed at the next start)."""
        if self.searchd and self.searchd.poll() is None:
            os.kill(self.searchd.pid, signal.SIGKILL)
            self.searchd.wait(timeout=10)
        self.searchd = None

    def search_pids(self):
        """Children of the ccrd master that are the search indexer (comm
        "ccrd-search"; there is always one)."""
        return [p for p in self.ccrd_children() if proc_name(p) == "ccrd-search"]

    # ---------------------------------------------------------------- SMTP sink

    def smtp_start(self, timeout=15):
        if self.smtp and self.smtp.poll() is None:
            return
        log = os.path.join(self.log_dir, "smtp.log")
        with open(log, "ab") as out:
            self.smtp = spawn([PYTHON, "-m", "aiosmtpd", "-n", "-l",
                               "127.0.0.1:%d" % self.smtp_port,
                               "-c", "aiosmtpd.handlers.Mailbox", self.mail_dir],
                              stdout=out, stderr=subprocess.STDOUT)
        wait_port(self.smtp_port, self.smtp, "the SMTP sink", log, timeout)

    def smtp_stop(self, timeout=10):
        if self.smtp:
            reap(self.smtp, timeout, signal.SIGTERM, send=True)
        self.smtp = None

    # ---------------------------------------------------------------- ccrd

    def ccrd_start(self, timeout=20):
        """Start build/ccrd -c $VAR/ccr.conf and wait for its socket."""
        if self.ccrd and self.ccrd.poll() is None:
            return
        try:
            os.unlink(self.ccrd_sock)   # a stale one would pass the wait below
        except FileNotFoundError:
            pass
        if self.ccrd_log == "file":
            out = open(self.ccrd_log_path, "ab")
        else:
            out = None
        try:
            self.ccrd = spawn([self.ccrd_bin, "-c", self.conf], stdout=out, stderr=out)
        finally:
            if out:
                out.close()

        def up():
            if self.ccrd.poll() is not None:
                raise StackError("ccrd exited with %s%s" % (
                    self.ccrd.returncode,
                    ":\n" + tail(self.ccrd_log_path) if self.ccrd_log == "file" else ""))
            return os.path.exists(self.ccrd_sock)
        wait_until(up, timeout, "ccrd's socket %s" % self.ccrd_sock)

    def ccrd_pid(self):
        return self.ccrd.pid if self.ccrd and self.ccrd.poll() is None else None

    def ccrd_children(self):
        """Live children of the ccrd master: workers and the mailer."""
        pid = self.ccrd_pid()
        return children_of(pid) if pid else []

    def mailer_pids(self):
        """Children of the ccrd master that are the mailer: named so in
        comm/cmdline (prctl PR_SET_NAME), or else the pid of a `ccrd[PID] ...
        mailer ...` line in $VAR/log/ccrd.log."""
        kids = self.ccrd_children()
        named = [p for p in kids if "mailer" in proc_name(p)]
        if named or self.ccrd_log != "file":
            return named
        try:
            with open(self.ccrd_log_path, "rb") as f:
                log = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        logged = {int(m) for m in re.findall(r"ccrd\[(\d+)\][^\n]*\bmailer\b", log)}
        return [p for p in kids if p in logged]

    def fetcher_pids(self):
        """Children of the ccrd master that are the IMAP fetcher (comm
        "ccrd-fetcher"; there is one only while [mail_in] imap_url is set)."""
        return [p for p in self.ccrd_children() if proc_name(p) == "ccrd-fetcher"]

    def webhooks_pids(self):
        """Children of the ccrd master that are the webhook sender (comm
        "ccrd-webhooks"; there is always one)."""
        return [p for p in self.ccrd_children() if proc_name(p) == "ccrd-webhooks"]

    def worker_pids(self):
        """Children of the ccrd master except the mailer (see mailer_pids),
        the webhook sender and the IMAP fetcher."""
        others = (set(self.mailer_pids()) | set(self.fetcher_pids()) | set(self.webhooks_pids())
                  | set(self.search_pids()))
        return [p for p in self.ccrd_children() if p not in others]

    def set_mail_in(self, **keys):
        """Set [mail_in] keys (a value None drops the key) and rewrite
        ccr.conf, e.g. set_mail_in(address="support@example.com"); a running
        ccrd reads them at its next SIGHUP."""
        for k, v in keys.items():
            self.set_conf("mail_in", k, v)

    def ccrd_signal(self, sig):
        os.kill(self.ccrd.pid, sig)

    def ccrd_stop(self, timeout=30):
        """SIGTERM and wait; returns the exit status (None if it was not running).

        Any process left in ccrd's process group afterwards is killed (and
        reported as StackError after cleanup, since that is a ccrd bug)."""
        if not self.ccrd:
            return None
        p, self.ccrd = self.ccrd, None
        rc = reap(p, timeout, signal.SIGTERM, send=True)
        left = kill_group(p.pid)
        if left:
            raise StackError("ccrd left processes behind after exit: %s" % left)
        return rc

    # ---------------------------------------------------------------- nginx

    def nginx_start(self, timeout=15):
        if self.nginx and self.nginx.poll() is None:
            return
        render_nginx_conf(self.repo, self.nginx_prefix, self.log_dir, self.ccrd_sock, self.port)
        err = os.path.join(self.log_dir, "nginx-error.log")
        with open(err, "ab") as out:
            self.nginx = spawn([NGINX, "-p", self.nginx_prefix, "-e", err,
                                "-c", "conf/nginx.conf"], stdout=out, stderr=out)
        wait_port(self.port, self.nginx, "nginx", err, timeout)

    def nginx_stop(self, timeout=10):
        if self.nginx:
            reap(self.nginx, timeout, signal.SIGQUIT, send=True)
        self.nginx = None

    # ---------------------------------------------------------------- health

    def healthz(self, timeout=5):
        """(status, body) of GET /healthz through nginx; (None, error) if unreachable."""
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            c.request("GET", "/healthz")
            r = c.getresponse()
            body = r.read().decode("utf-8", "replace")
            c.close()
            return r.status, body
        except (OSError, http.client.HTTPException) as e:
            return None, str(e)

    def wait_healthy(self, timeout=30):
        last = [None]

        def ok():
            for name, p in (("ccrd", self.ccrd), ("nginx", self.nginx)):
                if p is None or p.poll() is not None:
                    raise StackError("%s is not running%s" % (name, self._ccrd_tail()))
            st, body = self.healthz()
            last[0] = (st, body.strip()[:200])
            return st == 200
        try:
            wait_until(ok, timeout, "GET /healthz = 200", interval=0.1)
        except StackError as e:
            extra = ""
            if last[0] and last[0][0] in (502, 504):
                extra = "\nnginx error log:\n" + tail(os.path.join(self.log_dir, "nginx-error.log"), 5)
            raise StackError("%s (last answer: %s)%s%s" % (e, last[0], extra, self._ccrd_tail()))

    def _ccrd_tail(self):
        return ":\n" + tail(self.ccrd_log_path) if self.ccrd_log == "file" else ""

    # ---------------------------------------------------------------- all

    def start(self, timeout=60):
        """Bring everything up; on failure stop what was started and raise StackError."""
        try:
            self.prepare()
            self.db_init()
            self.db_start()
            self.db_setup()
            self.migrate()
            self.search_start()
            self.smtp_start()
            self.ccrd_start()
            self.nginx_start()
            self.wait_healthy(timeout)
        except BaseException:
            try:
                self.stop()
            except StackError:
                pass   # the first error is the one to report
            raise
        return self

    def ensure_up(self):
        """Restart whatever part is not running (used by the test runner to
        recover after a failed fault test); waits for /healthz."""
        if self.db_frozen:
            self.db_thaw()
        if not self.db or self.db.poll() is not None:
            self.db_start()
        if not self.searchd or self.searchd.poll() is not None:
            self.search_start()
        if not self.smtp or self.smtp.poll() is not None:
            self.smtp_start()
        if not self.ccrd or self.ccrd.poll() is not None:
            if self.ccrd:   # a dead master's orphaned workers must not linger
                for pid in pgroup_members(self.ccrd.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            self.ccrd = None
            self.ccrd_start()
        if not self.nginx or self.nginx.poll() is not None:
            self.nginx_start()
        self.wait_healthy()

    def stop(self):
        """Stop everything in reverse order; returns ccrd's exit status (or None).
        Never raises for a part that is already down."""
        errors = []
        rc = None
        for name, fn in (("nginx", self.nginx_stop), ("ccrd", self.ccrd_stop),
                         ("smtp", self.smtp_stop), ("searchd", self.search_stop),
                         ("mariadb", self.db_stop)):
            try:
                r = fn()
                if name == "ccrd":
                    rc = r
            except Exception as e:  # keep going: nothing may be left behind
                errors.append("%s: %s" % (name, e))
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if errors:
            raise StackError("; ".join(errors))
        return rc


# -------------------------------------------------------------------- CLI

def cmd_run(repo):
    # strip(): make variables with a trailing comment keep trailing blanks
    port = int(os.environ.get("PORT", "").strip() or "8080")
    var = os.environ.get("CCR_VAR", "").strip() or os.path.join(repo, "var")
    st = Stack(var, port, repo, ccrd_log="inherit")
    stop = []

    def on_signal(signum, _frame):
        stop.append(signum)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    print("stack: starting in %s (HTTP %d, SMTP sink %d)" % (st.var, port, st.smtp_port),
          flush=True)
    try:
        st.start()
    except StackError as e:
        print("stack: %s" % e, file=sys.stderr, flush=True)
        return 1
    # the email channel's MTA: a private Postfix taking SMTP for example.com
    # on PORT+2000 and piping each mail to ccr-admin mail-in (as nobody)
    mta = None
    try:
        import mailservers
        mta = mailservers.Postfix(os.path.join(st.var, "postfix"), port + 2000, st.admin_bin,
                                  st.conf)
        mta.start()
    except (StackError, OSError, KeyError) as e:
        print("stack: running without the MTA (mail to support@example.com is not taken): %s"
              % e, file=sys.stderr, flush=True)
        mta = None
    if mta:
        print("stack: Postfix takes mail for support@example.com on SMTP 127.0.0.1:%d and pipes "
              "it to ccr-admin mail-in" % mta.port, flush=True)
    print("\nCustomer Care Registry is running at %s/\n"
          "Create the first admin (reads the password from stdin):\n"
          "    build/ccr-admin -c %s create-admin --email admin@example.com\n"
          "At its first sign-in the admin sets up two-factor sign-in ([security] require_2fa = admins).\n"
          "Mail is delivered to %s/new; logs are in %s.  Ctrl-C stops everything.\n"
          % (st.base_url, st.conf, st.mail_dir, st.log_dir), flush=True)
    st.abort = lambda: bool(stop)
    rc = 0
    db_retry_at = None      # when mariadbd is down: the next restart attempt
    db_backoff = 1.0
    while not stop:
        # MariaDB going away is survivable, as in production (ccrd answers 503
        # meanwhile and reconnects): restart it with back-off, keep serving.
        if st.db is not None and st.db.poll() is not None and db_retry_at is None:
            print("stack: mariadbd exited unexpectedly (status %s); restarting it"
                  % st.db.returncode, file=sys.stderr, flush=True)
            db_retry_at = time.monotonic()
        if db_retry_at is not None and time.monotonic() >= db_retry_at:
            try:
                st.db_start()
                print("stack: mariadbd is back", file=sys.stderr, flush=True)
                db_retry_at, db_backoff = None, 1.0
            except StackError as e:
                if stop:
                    break
                print("stack: restarting mariadbd failed (retry in %.0fs): %s"
                      % (db_backoff, e), file=sys.stderr, flush=True)
                try:
                    st.db_stop(timeout=10)
                except StackError:
                    pass
                st.db = None
                db_retry_at = time.monotonic() + db_backoff
                db_backoff = min(db_backoff * 2, 30.0)
        # searchd too: the list keeps working without it, a search answers 503
        if st.searchd is not None and st.searchd.poll() is not None:
            print("stack: searchd exited unexpectedly (status %s); restarting it"
                  % st.searchd.returncode, file=sys.stderr, flush=True)
            try:
                st.search_start()
            except StackError as e:
                print("stack: restarting searchd failed: %s" % e, file=sys.stderr, flush=True)
        for name, p in (("smtp sink", st.smtp), ("ccrd", st.ccrd), ("nginx", st.nginx)):
            if p is not None and p.poll() is not None:
                print("stack: %s exited unexpectedly (status %s); stopping" % (name, p.returncode),
                      file=sys.stderr, flush=True)
                rc = 1
                stop.append(0)
                break
        if not stop:
            time.sleep(0.5)   # interrupted at once by a signal
    print("stack: stopping", flush=True)
    try:
        if mta:
            mta.stop()
        st.stop()
    except StackError as e:
        print("stack: %s" % e, file=sys.stderr, flush=True)
        rc = 1
    print("stack: stopped", flush=True)
    return rc


def main(argv):
    if len(argv) != 1 or argv[0] not in ("run",):
        print("usage: [PORT=8080] [CCR_VAR=<repo>/var] %s run" % sys.argv[0], file=sys.stderr)
        return 2
    return cmd_run(REPO)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

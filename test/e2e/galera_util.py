"""The scale-out rig for test_scaleout.py (issue 21).  Standard library only.

    Net(prefix)                 the 10.200.0.0/16 test range: an unreachable
                                route first, a bridge 10.200.0.1/24, one
                                network namespace per host with a veth
    Galera(dir, base_port)      three MariaDB Galera nodes (per-node defaults
                                files, user=mysql, rsync SST), bound to
                                127.0.0.1 and the bridge address
    ScaleStack(var, port, g)    a test/stack.py Stack whose database is the
                                cluster (sql() on any node) and whose SMTP
                                sink listens on the bridge address
    Host(st, name, netns, addr, node)  a full ccrd (master, workers, mailer,
                                fetcher) inside a namespace with its own host
                                name, on addr:9000, against one Galera node
                                over TCP
    UpstreamNginx(st, dir, port, hosts)  nginx with an upstream of hosts

Teardown order (always): load, nginx, ccrd hosts, namespaces, bridge, the
nodes, and the unreachable route last, so no packet for the range ever
follows the default route.
"""
import configparser
import os
import re
import shutil
import signal
import subprocess
import time

import helpers
import stack

BRIDGE_ADDR = "10.200.0.1"
RANGE = "10.200.0.0/16"
GALERA_LIB = "/usr/lib/galera/libgalera_smm.so"
# eviction of a silent node: ~3 s instead of the default ~5 s (lower broke
# cluster formation on two cores)
EVS = ("evs.keepalive_period=PT0.5S;evs.suspect_timeout=PT2S;"
       "evs.inactive_timeout=PT4S;evs.install_timeout=PT4S")


def sh(*argv, check=True):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (" ".join(argv), p.returncode,
                                                  (p.stderr or p.stdout).strip()))
    return p


def wait_gone(pid, timeout=30):
    """Wait until pid is no process (zombies count as gone: PID 1 reaps late)."""
    end = time.time() + timeout
    while time.time() < end:
        if stack.proc_state(pid) in (None, "Z", "X"):
            return True
        time.sleep(0.05)
    return False


# ------------------------------------------------------------------ network

class Net:
    def __init__(self, prefix="ccrso"):
        self.bridge = prefix + "br"
        self.prefix = prefix
        self.netns = []
        self.route = False

    def up(self, n_hosts):
        sh("ip", "route", "add", "unreachable", RANGE)
        self.route = True
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", BRIDGE_ADDR + "/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        addrs = []
        for i in range(1, n_hosts + 1):
            ns, veth, addr = "%s-h%d" % (self.prefix, i), "%sv%d" % (self.prefix, i), "10.200.0.%d" % (10 + i)
            sh("ip", "netns", "add", ns)
            self.netns.append(ns)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", veth, "master", self.bridge, "up")
            sh("ip", "-n", ns, "addr", "add", addr + "/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            addrs.append((ns, addr))
        sh("ip", "neigh", "flush", "dev", self.bridge, check=False)
        return addrs

    def down_links(self):
        """Namespaces and the bridge (every process talking to them stopped first)."""
        for ns in self.netns:
            sh("ip", "netns", "del", ns, check=False)
        self.netns = []
        sh("ip", "link", "del", self.bridge, check=False)

    def down_route(self):
        if self.route:
            sh("ip", "route", "del", "unreachable", RANGE, check=False)
            self.route = False

    @staticmethod
    def clear_stale(prefix="ccrso"):
        """What an interrupted run left (only names of this rig)."""
        for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(prefix + "-h"):
                sh("ip", "netns", "del", name, check=False)
        sh("ip", "link", "del", prefix + "br", check=False)
        sh("ip", "route", "del", "unreachable", RANGE, check=False)


# ------------------------------------------------------------------ Galera

class Node:
    def __init__(self, g, i):
        self.g, self.i = g, i
        b = g.base
        self.port, self.gport, self.ist, self.sst = b + i, b + 10 + i, b + 20 + i, b + 30 + i
        self.dir = os.path.join(g.dir, "n%d" % i)
        self.datadir = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "mysql.sock")
        self.cnf = os.path.join(self.dir, "my.cnf")
        self.err = os.path.join(self.dir, "error.log")
        self.proc = None

    def write_cnf(self):
        os.makedirs(self.datadir, exist_ok=True)
        tmp = os.path.join(self.dir, "tmp")
        os.makedirs(tmp, exist_ok=True)
        for d in (self.dir, self.datadir, tmp):
            shutil.chown(d, "mysql", "mysql")
        cluster = ",".join("127.0.0.1:%d" % (self.g.base + 10 + k) for k in (1, 2, 3))
        text = "\n".join([
            "[mysqld]",
            "user = mysql",
            "datadir = %s" % self.datadir,
            "socket = %s" % self.sock,
            "pid-file = %s" % os.path.join(self.dir, "mysqld.pid"),
            "log-error = %s" % self.err,
            "tmpdir = %s" % tmp,
            "port = %d" % self.port,
            "bind-address = 127.0.0.1,%s" % BRIDGE_ADDR,
            "skip-name-resolve",
            "character-set-server = utf8mb4",
            "collation-server = utf8mb4_unicode_ci",
            "innodb-buffer-pool-size = 64M",
            "innodb-log-file-size = 8M",
            "binlog-format = ROW",
            "default-storage-engine = InnoDB",
            "innodb-autoinc-lock-mode = 2",
            "wsrep-on = ON",
            "wsrep-provider = %s" % GALERA_LIB,
            "wsrep-cluster-name = ccr",
            "wsrep-cluster-address = gcomm://%s" % cluster,
            "wsrep-node-address = 127.0.0.1:%d" % self.gport,
            'wsrep-provider-options = "gmcast.listen_addr=tcp://127.0.0.1:%d;'
            'ist.recv_addr=127.0.0.1:%d;gcache.size=64M;%s"' % (self.gport, self.ist, EVS),
            "wsrep-sst-receive-address = 127.0.0.1:%d" % self.sst,
            "wsrep-sst-method = rsync",
            "",
            "[sst]",
            "sst-syslog = -1",
            ""])
        with open(self.cnf, "w") as f:
            f.write(text)
        os.chmod(self.cnf, 0o644)

    def start(self, *extra):
        with open(os.path.join(self.dir, "stdout.log"), "ab") as out:
            self.proc = stack.spawn([stack.MARIADBD, "--defaults-file=" + self.cnf] + list(extra),
                                    stdout=out, stderr=subprocess.STDOUT)

    def status(self, name):
        p = subprocess.run([stack.MARIADB, "--no-defaults", "-S", self.sock, "-uroot", "-BN",
                            "--connect-timeout=2", "-e", "SHOW STATUS LIKE '%s'" % name],
                           capture_output=True, text=True, timeout=10)
        if p.returncode != 0 or not p.stdout.strip():
            return None
        return p.stdout.split("\t", 1)[1].strip()

    def synced(self):
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError("Galera node %d exited: %s" % (self.i, stack.tail(self.err, 15)))
        return self.status("wsrep_local_state_comment") == "Synced"

    def wait_synced(self, timeout=90):
        stack.wait_until(self.synced, timeout, "Galera node %d to be Synced (%s)" % (self.i, self.err),
                         0.25)

    def sql(self, query, database="ccr"):
        argv = [stack.MARIADB, "--no-defaults", "-S", self.sock, "-uroot", "-B", "-N",
                "--default-character-set=utf8mb4"]
        if database:
            argv.append(database)
        p = subprocess.run(argv, input=query.encode(), capture_output=True, timeout=60)
        if p.returncode != 0:
            raise stack.StackError("mariadb node %d: %s" % (self.i, p.stderr.decode("utf-8", "replace").strip()))
        return [line.split("\t") for line in p.stdout.decode("utf-8", "replace").splitlines()]

    def kill9(self):
        pid = self.proc.pid
        os.kill(pid, signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None
        return pid

    def recover(self):
        """mariadbd --wsrep-recover -> 'uuid:seqno' (the position to start from)."""
        mark = stack.os.path.getsize(self.err) if os.path.exists(self.err) else 0
        p = subprocess.run([stack.MARIADBD, "--defaults-file=" + self.cnf, "--wsrep-recover"],
                           capture_output=True, text=True, timeout=120)
        with open(self.err, errors="replace") as f:
            f.seek(mark)
            text = f.read()
        m = re.findall(r"WSREP: Recovered position: ([0-9a-f-]+:-?\d+)", text + p.stderr)
        assert m, "--wsrep-recover gave no position: %s" % (text + p.stderr)[-600:]
        return m[-1]

    def stop(self, timeout=60):
        if self.proc and self.proc.poll() is None:
            pid = self.proc.pid
            self.proc.send_signal(signal.SIGTERM)
            if not wait_gone(pid, timeout):
                os.kill(pid, signal.SIGKILL)
                wait_gone(pid, 10)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.proc = None


class Galera:
    def __init__(self, workdir, base_port):
        self.dir = workdir
        self.base = base_port
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o755)
        self.nodes = [Node(self, i) for i in (1, 2, 3)]

    @staticmethod
    def free_base():
        for base in range(19100, 29000, 50):
            if all(stack.port_free(base + off + i) for off in (0, 10, 20, 30) for i in (1, 2, 3)):
                return base
        raise stack.StackError("no free port range for three Galera nodes")

    def form(self, timeout=120):
        """install-db on n1, bootstrap it, join n2 and n3 (SST) -> seconds."""
        t0 = time.time()
        for n in self.nodes:
            n.write_cnf()
        n1 = self.nodes[0]
        log = os.path.join(n1.dir, "install.log")
        with open(log, "wb") as out:
            p = subprocess.run([stack.MARIADB_INSTALL_DB, "--defaults-file=" + n1.cnf, "--user=mysql",
                                "--auth-root-authentication-method=socket", "--skip-test-db",
                                "--skip-name-resolve"], stdout=out, stderr=subprocess.STDOUT,
                               timeout=180)
        assert p.returncode == 0, "mariadb-install-db: %s" % stack.tail(log)
        n1.start("--wsrep-new-cluster")
        n1.wait_synced(timeout)
        for n in self.nodes[1:]:
            n.start()
            n.wait_synced(timeout)
        return time.time() - t0

    def cluster_size(self, node=0):
        return int(self.nodes[node].status("wsrep_cluster_size") or 0)

    def stop(self):
        for n in self.nodes:
            if n.proc and n.proc.poll() is None:
                n.proc.send_signal(signal.SIGTERM)
        for n in self.nodes:
            n.stop()


# ------------------------------------------------------------------ the stack

class ScaleStack(stack.Stack):
    """A Stack on the cluster: ccr.conf's [database] goes to node 1 over TCP
    (on the bridge address), the SMTP sink listens on the bridge address."""

    def __init__(self, var_dir, port, galera, **kw):
        self.galera = galera
        super().__init__(var_dir, port, **kw)

    def write_conf(self):
        n1 = self.galera.nodes[0]
        self.extra_conf.setdefault("database", {}).update(
            {"socket": "", "host": BRIDGE_ADDR, "port": str(n1.port), "galera_sync_wait": "true"})
        self.extra_conf.setdefault("smtp", {})["host"] = BRIDGE_ADDR
        # one searchd for every host, like the database (README "Search")
        self.extra_conf.setdefault("search", {})["host"] = BRIDGE_ADDR
        super().write_conf()

    def search_conf(self):
        """searchd listens on the bridge too, where the hosts' indexers and
        workers reach it (and on 127.0.0.1, where the stack waits for it)."""
        path = super().search_conf()
        with open(path) as f:
            text = f.read()
        mine = "listen = 127.0.0.1:%d:mysql41" % self.search_port
        text = text.replace(mine, mine + "\n\tlisten = %s:%d:mysql41" % (BRIDGE_ADDR, self.search_port))
        with open(path, "w") as f:
            f.write(text)
        return path

    def sql(self, query, database="ccr", timeout=30, node=0):
        return self.galera.nodes[node].sql(query, database)

    def db_setup(self):
        pw = self.db_password.replace("\\", "\\\\").replace("'", "\\'")
        self.sql("CREATE DATABASE IF NOT EXISTS ccr CHARACTER SET utf8mb4 "
                 "COLLATE utf8mb4_unicode_ci; "
                 "CREATE USER IF NOT EXISTS 'ccr'@'10.200.0.%%' IDENTIFIED BY '%s'; "
                 "GRANT ALL ON ccr.* TO 'ccr'@'10.200.0.%%';" % pw, database=None)

    def smtp_start(self, timeout=15):
        if self.smtp and self.smtp.poll() is None:
            return
        log = os.path.join(self.log_dir, "smtp.log")
        with open(log, "ab") as out:
            self.smtp = stack.spawn([stack.PYTHON, "-m", "aiosmtpd", "-n", "-l",
                                     "%s:%d" % (BRIDGE_ADDR, self.smtp_port),
                                     "-c", "aiosmtpd.handlers.Mailbox", self.mail_dir],
                                    stdout=out, stderr=subprocess.STDOUT)

        def up():
            if self.smtp.poll() is not None:
                raise stack.StackError("SMTP sink exited: %s" % stack.tail(log))
            import socket
            try:
                socket.create_connection((BRIDGE_ADDR, self.smtp_port), 0.5).close()
                return True
            except OSError:
                return False
        stack.wait_until(up, timeout, "the SMTP sink on the bridge", 0.1)


# ------------------------------------------------------------------ ccrd hosts

class Host:
    """A full ccrd inside network namespace netns, listening on addr:9000,
    against Galera node `node` over TCP.  Started in its own session (its
    process group is its pid): `kill -9` of the group is the host dying.
    Its processes also get their own UTS namespace with the host name
    ccr-<name>, as separate machines have: claims (host:pid) of one host
    are then foreign to the other, which cannot see whether that pid lives."""

    PORT = 9000

    def __init__(self, st, name, netns, addr, node, workdir, workers=3, overrides=None):
        self.st, self.name, self.netns, self.addr, self.node = st, name, netns, addr, node
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o755)
        self.conf = os.path.join(workdir, name + ".conf")
        self.log = os.path.join(workdir, name + ".log")
        self.workers = workers
        self.overrides = overrides or {}
        self.proc = None
        self.mailers = []
        self.hostname = "ccr-" + name

    @property
    def listen(self):
        return "%s:%d" % (self.addr, self.PORT)

    def write_conf(self):
        cp = configparser.ConfigParser(interpolation=None)
        cp.optionxform = str
        cp.read(self.st.conf)
        cp.set("server", "listen", self.listen)
        cp.set("server", "workers", str(self.workers))
        cp.set("database", "port", str(self.node.port))
        slots = os.path.join(self.dir, "slots")
        os.makedirs(slots, exist_ok=True)
        cp.set("security", "hash_slot_dir", slots)
        for sec, kv in self.overrides.items():
            if not cp.has_section(sec):
                cp.add_section(sec)
            for k, v in kv.items():
                cp.set(sec, k, str(v))
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            cp.write(f)

    def exec_argv(self, *argv):
        # unshare execs sh, which sets the host name and execs argv (one pid)
        return ["ip", "netns", "exec", self.netns, "unshare", "--uts", "sh", "-c",
                'hostname "$0" && exec "$@"', self.hostname] + list(argv)

    def admin(self, *args, timeout=120):
        """ccr-admin -c this host's conf inside the host's namespace."""
        return subprocess.run(self.exec_argv(self.st.admin_bin, "-c", self.conf, *args),
                              capture_output=True, text=True, timeout=timeout)

    def healthy(self):
        try:
            r = helpers.http_request(self.st.port, "GET", "/healthz", timeout=3)
            return r.status == 200
        except OSError:
            return False

    def start(self, timeout=30):
        self.write_conf()
        with open(self.log, "ab") as out:
            self.proc = stack.spawn(self.exec_argv(self.st.ccrd_bin, "-c", self.conf),
                                    stdout=out, stderr=out)
        t0 = time.time()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("ccrd %s exited %s: %s" % (
                    self.name, self.proc.returncode, stack.tail(self.log, 10)))
            return bool(self.mailer_pids())
        stack.wait_until(up, timeout, "ccrd %s to start its mailer" % self.name, 0.1)
        self.mailers += self.mailer_pids()
        return time.time() - t0

    def mailer_pids(self):
        if not self.proc or self.proc.poll() is not None:
            return []
        return [p for p in stack.children_of(self.proc.pid) if "mailer" in stack.proc_name(p)]

    def fetcher_pids(self):
        if not self.proc or self.proc.poll() is not None:
            return []
        return [p for p in stack.children_of(self.proc.pid) if "fetcher" in stack.proc_name(p)]

    def kill9(self):
        """SIGKILL the master and every process of its group at once."""
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
            for p in stack.pgroup_members(self.proc.pid):
                wait_gone(p, 10)

    def stop(self, timeout=30):
        if not self.proc:
            return None
        rc = stack.reap(self.proc, timeout, signal.SIGTERM, send=True)
        stack.kill_group(self.proc.pid)
        for p in stack.pgroup_members(self.proc.pid):
            wait_gone(p, 10)
        self.proc = None
        return rc


NGINX_UPSTREAM = """    upstream ccr_hosts {
%s    }
"""


class UpstreamNginx:
    """nginx from nginx/ccr-dev.conf.in with fastcgi_pass to an upstream of
    the hosts: passive health checks (max_fails=1 fail_timeout=5s), a 1 s
    connect timeout, and the next host tried on error, timeout or 503 (a
    host whose database node is gone) only for idempotent requests (nginx's
    default: a POST is never sent twice)."""

    def __init__(self, st, workdir, port, hosts):
        self.st = st
        self.prefix = os.path.join(workdir, "nginx")
        self.logdir = os.path.join(workdir, "nginx-log")
        os.makedirs(self.logdir, exist_ok=True)
        self.port = port
        self.hosts = hosts
        self.proc = None
        self.err = os.path.join(self.logdir, "nginx-error.log")
        self.access = os.path.join(self.logdir, "nginx-access.log")

    def start(self, timeout=15):
        conf = stack.render_nginx_conf(self.st.repo, self.prefix, self.logdir, "/nonexistent.sock",
                                       self.port)
        with open(conf) as f:
            text = f.read()
        want = "fastcgi_pass unix:/nonexistent.sock;"
        assert want in text, "nginx template has no '%s'" % want
        text = text.replace(want, "fastcgi_pass ccr_hosts;\n"
                            "            fastcgi_next_upstream error timeout http_503;")
        text = text.replace("fastcgi_connect_timeout 5s;", "fastcgi_connect_timeout 1s;")
        servers = "".join("        server %s max_fails=1 fail_timeout=5s;\n" % h.listen
                          for h in self.hosts)
        text = text.replace("http {\n", "http {\n" + NGINX_UPSTREAM % servers, 1)
        with open(conf, "w") as f:
            f.write(text)
        with open(self.err, "ab") as out:
            self.proc = stack.spawn([stack.NGINX, "-p", self.prefix, "-e", self.err,
                                     "-c", "conf/nginx.conf"], stdout=out, stderr=out)
        stack.wait_port(self.port, self.proc, "the upstream nginx", self.err, timeout)
        return self

    def stop(self):
        if self.proc:
            stack.reap(self.proc, 10, signal.SIGQUIT, send=True)
            stack.kill_group(self.proc.pid)
        self.proc = None

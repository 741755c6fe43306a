"""Private real mail servers for tests: Postfix (SMTP in, piped to
`ccr-admin mail-in`) and Dovecot (IMAP, for ccrd's fetcher).  Python 3
standard library only; each instance lives in its own folder, listens on
127.0.0.1 only, and is stopped by the pids it started.

    pf = Postfix(dir, port, admin_bin, conf, domain="example.com")
    pf.start(); pf.send(raw_bytes, sender, [rcpt]); pf.queue(); pf.flush()
    pf.maillog_path; pf.stop()

    dv = Dovecot(dir, port, user="support@example.com", password="s3cret")
    dv.start(); dv.drop(raw_bytes); dv.messages("INBOX"); dv.messages("Done")
    dv.kill(); dv.restart(); dv.stop()

Both need root (Postfix's pipe runs the command as nobody; Dovecot's mail
user is 65534).  Packages: postfix, dovecot-imapd (Makefile TEST_PKGS).
"""
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import time

import stack

POSTFIX = stack._which("postfix", "/usr/sbin/postfix")
POSTQUEUE = stack._which("postqueue", "/usr/sbin/postqueue")
DOVECOT = stack._which("dovecot", "/usr/sbin/dovecot")
NOBODY = 65534


class MailServerError(stack.StackError):
    pass


def _listening(port, address="127.0.0.1"):
    """True when something listens on address:port (ss -ltn)."""
    p = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True, text=True)
    return "%s:%d" % (address, port) in p.stdout


def _readable_by_nobody(path):
    """True when user nobody (not in any of our groups) can read path: every
    directory above it searchable by others, the file readable by others."""
    path = os.path.abspath(path)
    parts = path.split("/")
    for i in range(2, len(parts)):
        d = "/".join(parts[:i]) or "/"
        st = os.stat(d)
        if not (st.st_mode & stat.S_IXOTH or st.st_uid == NOBODY):
            return False
    st = os.stat(path)
    return bool(st.st_mode & stat.S_IROTH or st.st_uid == NOBODY)


def _conf_value(path, section, key):
    import configparser
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(path)
    return cp.get(section, key, fallback=None)


def _wait_dead(pids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(stack.alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


# ----------------------------------------------------------------- Postfix

# Debian's master.cf service list (postfix 3.7), chroot off everywhere.
_MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """A private Postfix 3.7 (everything under dir, `postfix -c dir/etc`):
    accepts SMTP on 127.0.0.1:port for `domain` only (no open relay) and
    pipes each message, one recipient at a time, to
    `admin_bin -c conf mail-in --sender SENDER` as user nobody
    (flags=DRq: Delivered-To and Return-Path prepended, quoted sender).
    Exit 75 from the command defers and retries (flush() retries now), any
    other failure bounces.  Postfix writes nothing useful on a pipe: its
    log is maillog_path."""

    def __init__(self, workdir, port, admin_bin, conf, domain="example.com"):
        self.dir = os.path.abspath(workdir)
        self.port = int(port)
        self.admin_bin = os.path.abspath(admin_bin)
        self.conf = os.path.abspath(conf)
        self.domain = domain
        self.etc = os.path.join(self.dir, "etc")
        self.spool = os.path.join(self.dir, "spool")
        self.data = os.path.join(self.dir, "data")
        self.maillog_path = os.path.join(self.dir, "maillog")
        self.running = False

    def _pf(self, *args, check=True, timeout=60):
        p = subprocess.run([POSTFIX, "-c", self.etc] + list(args), capture_output=True,
                           text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise MailServerError("postfix %s failed (exit %d): %s\n%s" % (
                " ".join(args), p.returncode, (p.stdout + p.stderr).strip(),
                stack.tail(self.maillog_path)))
        return p

    def check_readable(self):
        """The pipe runs as nobody: ccr-admin, its config and everything the
        config names that mail-in reads (views) must be readable by nobody.
        The stack writes ccr.conf 0600 (it holds the database password), so
        here it is handed to nobody (chown), not opened to everyone."""
        if not _readable_by_nobody(self.admin_bin) or not os.access(self.admin_bin, os.X_OK):
            raise MailServerError("%s is not executable by nobody (a folder above it is "
                                  "not searchable by others?)" % self.admin_bin)
        st = os.stat(self.conf)
        if st.st_uid != NOBODY and not st.st_mode & stat.S_IROTH:
            os.chown(self.conf, NOBODY, -1)
        if not _readable_by_nobody(self.conf):
            raise MailServerError("%s is not readable by nobody" % self.conf)
        views = _conf_value(self.conf, "server", "views_dir")
        if views and not _readable_by_nobody(os.path.join(views, "mail")):
            raise MailServerError("%s (the mail templates mail-in renders) is not readable "
                                  "by nobody" % views)

    def write_config(self):
        for d in (self.etc, self.spool, self.data):
            os.makedirs(d, exist_ok=True)
        pfx = pwd.getpwnam("postfix")
        os.chown(self.data, pfx.pw_uid, pfx.pw_gid)
        main = """\
compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
maillog_file_prefixes = {dir}
maillog_file = {maillog}
myhostname = mx.test
mydomain = test
myorigin = mx.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains = {domain}
relay_recipient_maps =
relay_transport = ccrpipe
ccrpipe_destination_recipient_limit = 1
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions =
default_transport = error:outbound mail disabled in test instance
smtputf8_enable = no
message_size_limit = 0
biff = no
minimal_backoff_time = 10s
maximal_backoff_time = 60s
queue_run_delay = 10s
""".format(spool=self.spool, data=self.data, dir=self.dir, maillog=self.maillog_path,
           domain=self.domain)
        master = _MASTER_CF + (
            "127.0.0.1:{port} inet n - n - - smtpd\n"
            "ccrpipe unix - n n - - pipe flags=DRq user=nobody null_sender= "
            "argv={admin} -c {conf} mail-in --sender ${{sender}}\n").format(
                port=self.port, admin=self.admin_bin, conf=self.conf)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(main)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(master)

    def start(self, timeout=15):
        if self.running:
            return self
        self.check_readable()
        self.write_config()
        self._pf("check")          # creates the queue folders
        self._pf("start")
        self.running = True

        def up():
            return _listening(self.port)
        try:
            stack.wait_until(up, timeout, "postfix smtpd on 127.0.0.1:%d" % self.port)
        except stack.StackError as e:
            self.stop()
            raise MailServerError("%s\n%s" % (e, stack.tail(self.maillog_path)))
        return self

    def master_pid(self):
        try:
            with open(os.path.join(self.spool, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, timeout=15):
        if not self.running:
            return
        self.running = False
        pid = self.master_pid()
        self._pf("stop", check=False)
        if pid and not _wait_dead([pid], timeout):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def send(self, raw, sender, rcpts, timeout=30):
        """One SMTP transaction to this instance; raises on refusal."""
        if isinstance(raw, str):
            raw = raw.encode()
        with smtplib.SMTP("127.0.0.1", self.port, timeout=timeout) as s:
            s.sendmail(sender, rcpts, raw)

    def queue(self):
        """Queue ids still in the queue (postqueue -j)."""
        p = subprocess.run([POSTQUEUE, "-c", self.etc, "-j"], capture_output=True, text=True,
                           timeout=30)
        ids = []
        for line in p.stdout.splitlines():
            m = re.search(r'"queue_id":\s*"([^"]+)"', line)
            if m:
                ids.append(m.group(1))
        return ids

    def flush(self):
        """Deliver the deferred queue now (postqueue -f)."""
        subprocess.run([POSTQUEUE, "-c", self.etc, "-f"], capture_output=True, timeout=30)

    def maillog(self):
        try:
            with open(self.maillog_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_empty(self, timeout=20):
        """Wait until the queue is empty (everything delivered or bounced)."""
        stack.wait_until(lambda: not self.queue(), timeout, "postfix's queue to empty", 0.1)


# ----------------------------------------------------------------- Dovecot

class Dovecot:
    """A private Dovecot 2.3 IMAP server on 127.0.0.1:port, no TLS, one
    passwd-file user whose Maildir is dir/home/<user>/Maildir (owner 65534)
    with the folder `done` created on first login.  Folders on disk: INBOX
    is Maildir/, folder F is Maildir/.F/ (Maildir++)."""

    def __init__(self, workdir, port, user="support@example.com", password="imap s3cret",
                 done="Done", capability=None, tls_port=None, address="127.0.0.1"):
        self.dir = os.path.abspath(workdir)
        self.port = int(port)
        # address: where it listens (the scale-out rig's bridge, so hosts in
        # network namespaces reach it)
        self.address = address
        self.user = user
        self.password = password
        self.done = done
        self.home = os.path.join(self.dir, "home", "mailuser")
        self.maildir = os.path.join(self.home, "Maildir")
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        # capability: the post-login CAPABILITY list Dovecot advertises
        # (e.g. without MOVE, so a client takes COPY + EXPUNGE); None = its own
        self.capability = capability
        # tls_port: also TLS, with a fresh self-signed certificate for
        # 127.0.0.1 (no client trusts it): imaps on tls_port, STARTTLS on port
        self.tls_port = tls_port
        self.proc = None
        self._n = 0

    @property
    def url(self):
        return "imap://%s:%d" % (self.address, self.port)

    def _tls_config(self):
        if not self.tls_port:
            return "ssl = no\n"
        cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        if not os.path.exists(cert):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, capture_output=True, timeout=60)
        return "ssl = yes\nssl_cert = <%s\nssl_key = <%s\n" % (cert, key)

    def write_config(self):
        for d in ("run", "state"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        for d in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.maildir, d), exist_ok=True)
        for root, dirs, files in os.walk(os.path.join(self.dir, "home")):
            os.chown(root, NOBODY, NOBODY)
        os.chmod(self.dir, 0o755)
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write("%s:{PLAIN}%s:%d:%d::%s::\n" % (self.user, self.password, NOBODY, NOBODY,
                                                   self.home))
        text = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {log}
info_log_path = {log}
protocols = imap
listen = {addr}
{tls}disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {uid}
mail_location = maildir:~/Maildir
mail_fsync = never
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/passwd
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox {done} {{
    auto = create
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
{caps}}}
service imap-login {{
  inet_listener imap {{
    address = {addr}
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
""".format(d=self.dir, log=self.log_path, addr=self.address, uid=NOBODY, port=self.port, done=self.done,
           caps="  imap_capability = %s\n" % self.capability if self.capability else "",
           tls=self._tls_config(), tls_port=self.tls_port or 0)
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self, timeout=15):
        if self.proc and self.proc.poll() is None:
            return self
        self.write_config()
        with open(self.log_path, "ab") as out:
            self.proc = stack.spawn([DOVECOT, "-F", "-c", self.conf], stdout=out, stderr=out)

        def up():
            if self.proc.poll() is not None:
                raise MailServerError("dovecot exited %s:\n%s" % (self.proc.returncode,
                                                                  stack.tail(self.log_path)))
            return _listening(self.port, self.address)
        stack.wait_until(up, timeout, "dovecot on %s:%d" % (self.address, self.port))
        return self

    def pids(self):
        """The master and every Dovecot process it started (its session)."""
        if not self.proc:
            return []
        return stack.pgroup_members(self.proc.pid)

    def cpu_seconds(self):
        """user+system seconds of its live processes and the children they reaped."""
        total = 0.0
        for p in self.pids():
            try:
                with open("/proc/%d/stat" % p) as f:
                    v = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(x) for x in v[11:15])
        return total / os.sysconf("SC_CLK_TCK")

    def kill(self):
        """SIGKILL the server and all its processes: open IMAP connections
        drop at once (a dead master alone would leave them served)."""
        if not self.proc:
            return
        pids = self.pids()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        _wait_dead(pids, 10)
        self.proc = None
        # A process killed inside a Maildir write leaves its dotlock
        # (dovecot-uidlist.lock), which a new server honours for 2 minutes:
        # with no Dovecot process left, every lock is stale.
        for root, _dirs, files in os.walk(self.maildir):
            for n in files:
                if n.endswith(".lock"):
                    os.unlink(os.path.join(root, n))

    def freeze(self):
        """SIGSTOP every Dovecot process: connections wait, unanswered."""
        for p in self.pids():
            os.kill(p, signal.SIGSTOP)

    def thaw(self):
        for p in self.pids():
            os.kill(p, signal.SIGCONT)

    def restart(self, timeout=15):
        self.kill()
        stack.wait_until(lambda: not _listening(self.port, self.address), 10,
                         "port %d to close" % self.port)
        return self.start(timeout)

    def stop(self, timeout=10):
        if not self.proc:
            return
        pids = self.pids()
        stack.reap(self.proc, timeout, signal.SIGTERM, send=True)
        if not _wait_dead(pids, timeout):
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None

    # ------------------------------------------------------------ mailbox

    def _folder_dir(self, folder):
        return self.maildir if folder.upper() == "INBOX" else os.path.join(
            self.maildir, "." + folder.replace("/", "."))

    def drop(self, raw, folder="INBOX"):
        """Deliver raw (bytes) into folder as a new file (tmp/ then new/, owner
        65534), the way a local delivery agent does; returns its file name."""
        if isinstance(raw, str):
            raw = raw.encode()
        d = self._folder_dir(folder)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
            os.chown(os.path.join(d, sub), NOBODY, NOBODY)
        os.chown(d, NOBODY, NOBODY)
        self._n += 1
        name = "%d.M%dP%dQ%d.test" % (time.time(), time.time_ns() % 1000000, os.getpid(), self._n)
        tmp = os.path.join(d, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(raw)
        os.chown(tmp, NOBODY, NOBODY)
        os.rename(tmp, os.path.join(d, "new", name))
        return name

    def messages(self, folder="INBOX"):
        """The raw bytes of every message file in folder (new/ and cur/),
        oldest file first.  Messages flagged \\Deleted (flag T) are left out."""
        d = self._folder_dir(folder)
        out = []
        for sub in ("new", "cur"):
            try:
                names = os.listdir(os.path.join(d, sub))
            except FileNotFoundError:
                continue
            for n in names:
                if sub == "cur" and ":2," in n and "T" in n.split(":2,", 1)[1]:
                    continue
                p = os.path.join(d, sub, n)
                try:
                    with open(p, "rb") as f:
                        out.append((os.stat(p).st_mtime_ns, n, f.read()))
                except FileNotFoundError:
                    continue   # moved while we looked
        return [raw for _t, _n, raw in sorted(out)]

    def count(self, folder="INBOX"):
        return len(self.messages(folder))

    def clear(self):
        """Empty INBOX and the done folder (server stopped or not)."""
        for folder in ("INBOX", self.done):
            d = self._folder_dir(folder)
            for sub in ("new", "cur", "tmp"):
                p = os.path.join(d, sub)
                if os.path.isdir(p):
                    for n in os.listdir(p):
                        os.unlink(os.path.join(p, n))

    def imap_login_ok(self, timeout=5):
        """A plain IMAP LOGIN works (for readiness checks)."""
        import imaplib
        try:
            m = imaplib.IMAP4("127.0.0.1", self.port, timeout=timeout)
            m.login(self.user, self.password)
            m.logout()
            return True
        except (OSError, imaplib.IMAP4.error):
            return False


def free_port(lo=12000, hi=19999):
    """A free 127.0.0.1 port below the ephemeral range."""
    return stack.pick_free_port(lo, hi)


# ----------------------------------------------------------------- ccrd's fetcher

def fetcher_keys(dv, poll=1, timeout=5):
    """The [mail_in] keys that point a ccrd's fetcher at Dovecot dv
    (plain IMAP on loopback: imap_starttls off)."""
    return {"imap_url": dv.url, "imap_user": dv.user, "imap_password": dv.password,
            "imap_folder": "INBOX", "imap_done_folder": dv.done,
            "imap_poll_interval": str(poll), "imap_starttls": "off",
            "imap_timeout": str(timeout)}


def new_ticket_mail(sender, subject, body, msgid=None, to="support@example.com", extra=()):
    """A plain-text RFC 5322 message (bytes, CRLF) from sender."""
    msgid = msgid or "<%s@test.example>" % os.urandom(8).hex()
    head = ["From: %s" % sender, "To: %s" % to, "Subject: %s" % subject,
            "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            "Message-ID: %s" % msgid, "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: 8bit"]
    head += list(extra)
    return ("\r\n".join(head) + "\r\n\r\n" + body.replace("\n", "\r\n") + "\r\n").encode()


def fetcher_rate(st, workdir, n=200, sender="bench-sender@example.com", timeout=600):
    """Messages per second through ccrd's fetcher: a private Dovecot with n
    new-ticket mails from sender (unknown_senders = ticket makes it a
    customer), the stack's ccrd pointed at it (SIGHUP), timed from the
    fetcher's start until INBOX is empty; then the fetcher is turned off
    again and Dovecot stopped.  Needs [mail_in] address set on st.
    Returns (messages_per_second, seconds, Dovecot's CPU seconds)."""
    dv = Dovecot(workdir, free_port())
    dv.start()
    log = st.ccrd_log_path
    try:
        tag = os.urandom(4).hex()
        for i in range(n):
            dv.drop(new_ticket_mail(sender, "bench %s %d" % (tag, i), "Bench message %d." % i))
        mark = os.path.getsize(log)
        keys = dict(fetcher_keys(dv), unknown_senders="ticket", tickets_per_hour="100000")
        saved = {k: st.extra_conf.get("mail_in", {}).get(k) for k in keys}
        st.set_mail_in(**keys)
        st.ccrd_signal(signal.SIGHUP)

        def started():
            with open(log, "rb") as f:
                f.seek(mark)
                return b"fetcher started as" in f.read()
        stack.wait_until(started, 30, "the fetcher to start")
        t0 = time.monotonic()
        stack.wait_until(lambda: dv.count("INBOX") == 0, timeout, "the fetcher to empty INBOX",
                         0.02)
        secs = time.monotonic() - t0
        st.set_mail_in(**saved)
        st.ccrd_signal(signal.SIGHUP)
        return n / secs, secs, dv.cpu_seconds()
    finally:
        dv.stop()

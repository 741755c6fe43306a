"""Packaging: `make install`/`make uninstall`, `make deb` (dpkg-buildpackage
on debian/), the .deb and its -dbgsym companion, lintian, and the .deb's life
on this machine (dpkg -i, the user and config it creates, the installed
programs serving a page through nginx, dpkg --purge leaving nothing behind).

The packages come from `make deb` (run here; nothing to do when the
Makefile's check flow already built them from the same sources).  The install test touches the
real system (/usr, /etc, the user database): it refuses to run (SKIP) when a
package, user or file named ccr is already there, and its finally-block
purges what it installed even when an assertion fails.
"""
import configparser
import contextlib
import fcntl
import grp
import gzip
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time

import helpers
import stack

PKG = "ccr"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# every unit in systemd/, as the Makefile's UNIT_FILES
UNITS = tuple(sorted(n for n in os.listdir(os.path.join(REPO, "systemd"))
                     if n.endswith((".service", ".timer"))))
# where the package puts the units: debhelper 13.11 (bookworm) handles
# lib/systemd/system (one directory with /usr/lib/systemd/system on merged /usr)
PKG_UNIT_DIR = "lib/systemd/system"
# files debhelper adds to what `make install PREFIX=/usr` installs
PKG_EXTRA = ("etc/ccr/ccr.conf", "etc/ccr/searchd.conf", "usr/share/doc/ccr/copyright", "usr/share/doc/ccr/changelog.gz",
             "usr/lib/sysusers.d/ccr.conf", "usr/share/lintian/overrides/ccr")
# Paths the package owns; none may exist before the install test or after purge.
PKG_PATHS = ("/usr/sbin/ccrd", "/usr/bin/ccr-admin", "/usr/share/ccr", "/usr/share/doc/ccr",
             "/etc/ccr", "/usr/share/man/man8/ccrd.8.gz", "/usr/share/man/man8/ccr-admin.8.gz",
             "/usr/lib/sysusers.d/ccr.conf", "/usr/share/lintian/overrides/ccr") + tuple(
                 "/%s/%s" % (PKG_UNIT_DIR, u) for u in UNITS)
# made by postinst for ccr-backup.service, removed on purge when empty
BACKUP_DIR = "/var/backups/ccr"
# the links `systemctl enable ccrd ccr-maintenance.timer ccr-backup.timer`
# makes (the units' [Install] WantedBy=); purge must remove them
ENABLE_LINKS = tuple("/etc/systemd/system/%s.wants/%s" % (t, u) for t, u in (
    ("multi-user.target", "ccrd.service"), ("timers.target", "ccr-maintenance.timer"),
    ("timers.target", "ccr-backup.timer")))
# the libraries (dh_shlibdeps) and systemd-sysusers (dh_installsysusers)
DEPENDS = ("libmariadb3", "libfcgi0ldbl", "libargon2-1", "libesmtp6", "libctemplate3",
           "libsystemd0", "libinih1", "systemd | systemd-standalone-sysusers | systemd-sysusers",
           "sphinxsearch")

_deb_cache = {}
# Held by every test here: two runs at once (two checkouts, or a run while
# someone's `make deb`) must not share build/deb or install over each other.
LOCK_PATH = "/tmp/ccr-test-package.lock"
LOCK_WAIT = 240


# ------------------------------------------------------------------ helpers

@contextlib.contextmanager
def _exclusive():
    """Hold LOCK_PATH for the test; the file is removed on release (a waiter
    that locked the unlinked inode notices and retries).  Also: the package
    holds the plain build, so the sanitizer pass (run.py --asan sets
    CCR_BIN_DIR) skips this module."""
    if os.environ.get("CCR_BIN_DIR"):
        raise helpers.Skip("packaging is tested in the plain e2e pass, not under --asan")
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() > deadline:
                raise AssertionError("%s held by another run for %d s" % (LOCK_PATH, LOCK_WAIT))
            time.sleep(0.5)
            continue
        try:
            same = os.stat(LOCK_PATH).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)          # released and unlinked meanwhile: lock the new file
    try:
        yield
    finally:
        try:
            os.unlink(LOCK_PATH)
        finally:
            os.close(fd)


def _dpkg(*args, env=None, check=True):
    """dpkg ARGS, retried for up to 120 s while another dpkg/apt holds its lock."""
    deadline = time.monotonic() + 120
    while True:
        p = _run(["dpkg"] + list(args), check=False, env=env, stdin=subprocess.DEVNULL)
        if p.returncode != 0 and "lock" in p.stderr and time.monotonic() < deadline:
            time.sleep(2)
            continue
        if check and p.returncode != 0:
            raise AssertionError("dpkg %s: exit %d: %s" % (" ".join(args), p.returncode,
                                                          (p.stdout + p.stderr).strip()[-1500:]))
        return p

def _run(argv, check=True, timeout=300, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (" ".join(argv), p.returncode,
                                                  (p.stdout + p.stderr).strip()[-1500:]))
    return p


def _make(repo, *args, timeout=600):
    """make -C repo ARGS without the caller's make environment (jobserver fds)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return _run(["make", "--no-print-directory", "-C", repo] + list(args), env=env,
                timeout=timeout)


def _version(repo):
    with open(os.path.join(repo, "fcgi", "extern.h")) as f:
        m = re.search(r'^#define CCR_VERSION "([^"]+)"', f.read(), re.M)
    assert m, "no CCR_VERSION in fcgi/extern.h"
    return m.group(1)


def _deb(ctx, kind="deb"):
    """Path of what `make deb` (run once per test run) leaves in build/: kind
    "deb" (ccr_<version>_<arch>.deb), "dbgsym" (ccr-dbgsym_..._<arch>.deb),
    "changes" or "buildinfo"."""
    if not _deb_cache:
        _make(ctx.repo, "deb")
        arch = _run(["dpkg", "--print-architecture"]).stdout.strip()
        stem = os.path.join(ctx.repo, "build", "%%s_%s_%s.%%s" % (_version(ctx.repo), arch))
        paths = {"deb": stem % (PKG, "deb"), "dbgsym": stem % (PKG + "-dbgsym", "deb"),
                 "changes": stem % (PKG, "changes"), "buildinfo": stem % (PKG, "buildinfo")}
        for path in paths.values():
            assert os.path.isfile(path), "make deb did not produce %s" % path
        _deb_cache.update(paths)
    return _deb_cache[kind]


def _tree(root):
    """Relative paths of the files and symlinks under root."""
    out = set()
    for d, dirs, files in os.walk(root):
        for n in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def _repo_files(repo, sub):
    base = os.path.join(repo, sub)
    return {os.path.join(sub, p) for p in _tree(base)
            if not os.path.basename(p).startswith(".") and not p.endswith("~")}


def _expected_install(repo, prefix, unit_dir=None):
    """What `make install PREFIX=prefix` installs; unit_dir: where the units
    go when not PREFIX/lib/systemd/system."""
    p = prefix.lstrip("/")
    files = {p + "/sbin/ccrd", p + "/bin/ccr-admin", p + "/share/ccr/static",
             p + "/share/doc/ccr/README.md", p + "/share/doc/ccr/ccr.conf.example",
             p + "/share/doc/ccr/nginx-ccr.conf", p + "/share/ccr/searchd.conf",
             p + "/share/man/man8/ccrd.8.gz", p + "/share/man/man8/ccr-admin.8.gz"}
    files |= {(unit_dir or p + "/lib/systemd/system") + "/" + u for u in UNITS}
    files |= {p + "/share/ccr/" + f for f in _repo_files(repo, "views")}
    files |= {p + "/share/ccr/schema/" + f for f in os.listdir(os.path.join(repo, "schema"))
              if f.endswith(".sql")}
    return files


def _pkg_status():
    """dpkg's Status of the package, "" when dpkg has nothing of it (purged)."""
    p = _run(["dpkg-query", "-W", "-f=${Status}", PKG], check=False)
    status = p.stdout.strip() if p.returncode == 0 else ""
    return "" if status.endswith("not-installed") else status


def _getpw(name):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _getgr(name):
    try:
        return grp.getgrnam(name)
    except KeyError:
        return None


def _procs_running(exe):
    """pids whose executable is exe."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.readlink("/proc/%s/exe" % d) == exe:
                    out.append(int(d))
            except OSError:
                pass
    return out


def _uid_of(pid):
    """Effective uid of pid from /proc/PID/status (the /proc/PID owner is root
    for a process that changed its credentials)."""
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("Uid:"):
                return int(line.split()[2])
    return None


# ------------------------------------------------------------------ make install

def _install_uninstall(ctx, prefix):
    dest = tempfile.mkdtemp(prefix="ccr-destdir-", dir=ctx.tmp)
    try:
        # -o: install the binaries this run's stack tested, never relink them
        _make(ctx.repo, "-o", "build/ccrd", "-o", "build/ccr-admin", "install",
              "DESTDIR=" + dest, "PREFIX=" + prefix)
        got = _tree(dest)
        want = _expected_install(ctx.repo, prefix)
        assert got == want, "make install PREFIX=%s: unexpected %s, missing %s" % (
            prefix, sorted(got - want), sorted(want - got))
        root = dest + prefix
        for rel, mode in (("sbin/ccrd", 0o755), ("bin/ccr-admin", 0o755),
                          ("share/ccr/views/login.tpl", 0o644),
                          ("lib/systemd/system/ccrd.service", 0o644),
                          ("share/man/man8/ccrd.8.gz", 0o644)):
            m = os.stat(os.path.join(root, rel)).st_mode & 0o7777
            assert m == mode, "%s%s/%s has mode %o, want %o" % (dest, prefix, rel, m, mode)
        static = os.path.join(root, "share/ccr/static")
        assert os.path.islink(static) and os.readlink(static) == "views/static", \
            "share/ccr/static is not a symlink to views/static"
        assert os.path.isfile(os.path.join(static, "ccr.css")), "static/ccr.css unreachable"
        for page in ("ccrd.8.gz", "ccr-admin.8.gz"):
            with gzip.open(os.path.join(root, "share/man/man8", page), "rt") as f:
                text = f.read()
            assert re.search(r'^\.TH CCR', text, re.M), "%s has no .TH line" % page
            assert '"ccr %s"' % _version(ctx.repo) in text, "%s lacks the version" % page
        with open(os.path.join(root, "lib/systemd/system/ccrd.service")) as f:
            unit = f.read()
        assert "ExecStart=%s/sbin/ccrd -c /etc/ccr/ccr.conf" % prefix in unit, \
            "ccrd.service ExecStart not under %s" % prefix
        assert "ExecStartPre=%s/bin/ccr-admin -c /etc/ccr/ccr.conf migrate" % prefix in unit, \
            "ccrd.service ExecStartPre not under %s" % prefix
        with open(os.path.join(root, "lib/systemd/system/ccr-maintenance.service")) as f:
            maint = f.read()
        steps = re.findall(r"^ExecStart=(\S+) -c /etc/ccr/ccr.conf (\S+)$", maint, re.M)
        assert steps == [("%s/bin/ccr-admin" % prefix, c) for c in ("auto-close", "sla-check", "purge")], \
            "ccr-maintenance.service ExecStart lines not under %s: %s" % (prefix, steps)
        _make(ctx.repo, "uninstall", "DESTDIR=" + dest, "PREFIX=" + prefix)
        left = _tree(dest)
        assert not left, "make uninstall PREFIX=%s left %s" % (prefix, sorted(left))
        assert not os.path.exists(root + "/share/ccr") and \
            not os.path.exists(root + "/share/doc/ccr"), "uninstall left the ccr directories"
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def test_make_install_then_uninstall_leaves_no_files(ctx):
    with _exclusive():
        _install_uninstall(ctx, "/usr")


def test_make_install_prefix_usr_local_rewrites_units(ctx):
    with _exclusive():
        _install_uninstall(ctx, "/usr/local")


# ------------------------------------------------------------------ the .deb itself

def _deb_control_conffiles_and_contents(ctx):
    deb = _deb(ctx)
    version = _version(ctx.repo)
    f = lambda field: _run(["dpkg-deb", "-f", deb, field]).stdout.strip()  # noqa: E731
    assert f("Package") == PKG, "Package: %r" % f("Package")
    assert f("Version") == version, "Version %r, CCR_VERSION %r" % (f("Version"), version)
    assert f("Architecture") == "amd64", "Architecture %r" % f("Architecture")
    assert f("Maintainer"), "no Maintainer"
    depends = [re.sub(r"\s*\([^)]*\)", "", d).strip() for d in f("Depends").split(",")]
    missing = [d for d in DEPENDS if d not in depends]
    assert not missing, "Depends lacks %s: %r" % (missing, f("Depends"))
    assert "adduser" not in depends, "Depends on adduser (sysusers makes the user)"
    rec = f("Recommends")
    assert "nginx" in rec and "mariadb-server | default-mysql-server" in rec, "Recommends %r" % rec

    tmp = tempfile.mkdtemp(prefix="ccr-deb-", dir=ctx.tmp)
    try:
        _run(["dpkg-deb", "-R", deb, tmp])
        ctl = os.path.join(tmp, "DEBIAN")
        with open(os.path.join(ctl, "conffiles")) as fh:
            assert fh.read().split() == ["/etc/ccr/ccr.conf", "/etc/ccr/searchd.conf"], "conffiles"
        for s in ("postinst", "prerm", "postrm"):
            assert os.stat(os.path.join(ctl, s)).st_mode & 0o777 == 0o755, "%s not 0755" % s
        # md5sums cover every file but the conffile, and match
        p = _run(["md5sum", "--check", "--quiet", "DEBIAN/md5sums"], cwd=tmp)
        with open(os.path.join(ctl, "md5sums")) as fh:
            summed = {line.split(None, 1)[1].strip() for line in fh}
        files = {x for x in _tree(tmp) if not x.startswith("DEBIAN/")
                 and not os.path.islink(os.path.join(tmp, x))}
        assert summed == files - {"etc/ccr/ccr.conf", "etc/ccr/searchd.conf"}, \
            "md5sums list %s" % sorted(summed ^ files)
        want = {x.lstrip("/") for x in _expected_install(ctx.repo, "/usr", PKG_UNIT_DIR)}
        want |= set(PKG_EXTRA)
        got = {x for x in _tree(tmp) if not x.startswith("DEBIAN/")}
        assert got == want, "package files: unexpected %s, missing %s" % (
            sorted(got - want), sorted(want - got))
        assert os.readlink(os.path.join(tmp, "usr/share/ccr/static")) == "views/static"
        # the packaged configuration: installed paths, and check-config accepts it
        conf = os.path.join(tmp, "etc/ccr/ccr.conf")
        assert os.stat(conf).st_mode & 0o777 == 0o640, "etc/ccr/ccr.conf not 0640 in the package"
        with open(conf) as fh:
            text = fh.read()
        for line in ("views_dir = /usr/share/ccr/views", "schema_dir = /usr/share/ccr/schema",
                     "listen = /run/ccr/ccrd.sock"):
            assert re.search("^%s$" % re.escape(line), text, re.M), "ccr.conf lacks %r" % line
        p = _run([ctx.stack.admin_bin, "-c", conf, "check-config"], check=False)
        assert p.returncode == 0, "check-config of the packaged ccr.conf: %s" % (p.stdout + p.stderr)
        # stripped and hardened binaries
        for b in ("usr/sbin/ccrd", "usr/bin/ccr-admin"):
            sections = _run(["readelf", "-S", "-W", os.path.join(tmp, b)]).stdout
            assert ".symtab" not in sections, "%s is not stripped" % b
            dyn = _run(["readelf", "-d", "-W", os.path.join(tmp, b)]).stdout
            assert "BIND_NOW" in dyn or "(NOW)" in dyn, "%s not linked -z now" % b
            hdr = _run(["readelf", "-l", "-W", os.path.join(tmp, b)]).stdout
            assert "GNU_RELRO" in hdr, "%s not linked -z relro" % b
            syms = _run(["readelf", "--dyn-syms", "-W", os.path.join(tmp, b)]).stdout
            assert "__stack_chk_fail" in syms, "%s built without -fstack-protector" % b
        # a native package: debian/changelog as changelog.gz
        with gzip.open(os.path.join(tmp, "usr/share/doc/ccr/changelog.gz"), "rt") as fh:
            first = fh.readline()
        assert first.startswith("%s (%s) " % (PKG, version)), "changelog: %r" % first
        with open(os.path.join(tmp, "usr/lib/sysusers.d/ccr.conf")) as fh:
            users = [l.split() for l in fh if l.strip() and not l.startswith("#")]
        assert users and users[0][:3] == ["u", "ccr", "-"], "sysusers.d/ccr.conf: %r" % users
        with open(os.path.join(ctl, "postinst")) as fh:
            postinst = fh.read()
        assert "systemd-sysusers" in postinst and "ccr.conf" in postinst, \
            "postinst does not run systemd-sysusers"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build_id(path):
    m = re.search(r"Build ID: ([0-9a-f]+)", _run(["readelf", "-n", "-W", path]).stdout)
    assert m, "%s has no GNU build-id note" % path
    return m.group(1)


def _deb_listing_dbgsym_and_changes(ctx):
    """`dpkg-deb -c`: owners, modes and places of what an administrator looks
    for; the -dbgsym package holds the debug info of exactly the two
    programs; the .changes names both packages and the .buildinfo."""
    deb, dbg = _deb(ctx), _deb(ctx, "dbgsym")
    version = _version(ctx.repo)
    listing = {}
    for line in _run(["dpkg-deb", "-c", deb]).stdout.splitlines():
        perm, owner, _size, _date, _time, name = line.split(None, 5)
        listing[name.split(" -> ")[0].lstrip(".").rstrip("/") or "/"] = (perm, owner)
    assert {o for _p, o in listing.values()} == {"root/root"}, "not all files are root/root"
    want = {"/etc/ccr/ccr.conf": "-rw-r-----", "/usr/sbin/ccrd": "-rwxr-xr-x",
            "/usr/bin/ccr-admin": "-rwxr-xr-x", "/usr/lib/sysusers.d/ccr.conf": "-rw-r--r--",
            "/usr/share/man/man8/ccrd.8.gz": "-rw-r--r--",
            "/usr/share/man/man8/ccr-admin.8.gz": "-rw-r--r--"}
    want.update({"/%s/%s" % (PKG_UNIT_DIR, u): "-rw-r--r--" for u in UNITS})
    for name, perm in sorted(want.items()):
        assert name in listing, "dpkg-deb -c: no %s" % name
        assert listing[name][0] == perm, "dpkg-deb -c: %s is %s, want %s" % (
            name, listing[name][0], perm)
    stray = sorted(n for n in listing if "systemd/system/" in n
                   and not n.startswith("/%s/" % PKG_UNIT_DIR))
    assert not stray, "units outside /%s: %s" % (PKG_UNIT_DIR, stray)

    f = lambda field: _run(["dpkg-deb", "-f", dbg, field]).stdout.strip()  # noqa: E731
    assert f("Package") == PKG + "-dbgsym", "dbgsym Package %r" % f("Package")
    assert f("Depends") == "%s (= %s)" % (PKG, version), "dbgsym Depends %r" % f("Depends")
    tmp = tempfile.mkdtemp(prefix="ccr-dbgsym-", dir=ctx.tmp)
    try:
        _run(["dpkg-deb", "-x", deb, os.path.join(tmp, "pkg")])
        _run(["dpkg-deb", "-x", dbg, os.path.join(tmp, "dbg")])
        ids = {}
        for b in ("usr/sbin/ccrd", "usr/bin/ccr-admin"):
            path = os.path.join(tmp, "pkg", b)
            ids[b] = _build_id(path)
            sections = _run(["readelf", "-S", "-W", path]).stdout
            assert ".debug_info" not in sections, "%s still carries debug info" % b
            debug = os.path.join(tmp, "dbg", "usr/lib/debug/.build-id",
                                 ids[b][:2], ids[b][2:] + ".debug")
            assert os.path.isfile(debug), "dbgsym lacks %s's %s" % (b, debug)
            sections = _run(["readelf", "-S", "-W", debug]).stdout
            assert ".debug_info" in sections and ".debug_line" in sections, \
                "%s has no DWARF (built without -g?)" % debug
        assert sorted(f("Build-Ids").split()) == sorted(ids.values()), \
            "dbgsym Build-Ids %r, binaries %r" % (f("Build-Ids"), ids)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    with open(_deb(ctx, "changes")) as fh:
        changes = fh.read()
    for path in (deb, dbg, _deb(ctx, "buildinfo")):
        assert re.search(r"^ [0-9a-f]{32} \d+ .* %s$" % re.escape(os.path.basename(path)),
                         changes, re.M), "the .changes does not list %s" % os.path.basename(path)


def _deb_lintian_clean_or_overridden_with_reasons(ctx):
    if not shutil.which("lintian"):
        raise helpers.Skip("lintian is not installed (apt-get install lintian)")
    changes = _deb(ctx, "changes")
    # what `make lintian` runs, plus --show-overrides to see the reasons
    p = _run(["lintian", "-I", "-E", "--pedantic", "--tag-display-limit", "0",
              "--show-overrides", changes], check=False)
    lines = p.stdout.splitlines()
    tags = [l for l in lines if re.match(r"[EWIPX]: ", l)]
    assert p.returncode == 0 and not tags, "lintian (exit %d) reports:\n%s" % (
        p.returncode, "\n".join(tags) or (p.stdout + p.stderr)[-800:])
    # every override is used and has a comment (lintian shows it as N: lines)
    for i, line in enumerate(lines):
        if line.startswith("O: "):
            assert i > 0 and lines[i - 1].startswith("N: ") and \
                not lines[i - 1].startswith("N: 0 hints"), "override without a reason: " + line
    overridden = [l for l in lines if l.startswith("O: ")]
    with open(os.path.join(ctx.repo, "debian", "ccr.lintian-overrides")) as fh:
        listed = [l for l in fh if l.strip() and not l.startswith("#")]
    assert len(overridden) == len(listed), "overrides %d, lintian matched %d:\n%s" % (
        len(listed), len(overridden), p.stdout[-800:])


def test_deb_control_conffiles_and_contents(ctx):
    with _exclusive():
        _deb_control_conffiles_and_contents(ctx)


test_deb_control_conffiles_and_contents.timeout = 300


def test_deb_listing_dbgsym_and_changes(ctx):
    with _exclusive():
        _deb_listing_dbgsym_and_changes(ctx)


test_deb_listing_dbgsym_and_changes.timeout = 300


def test_deb_lintian_clean_or_overridden_with_reasons(ctx):
    with _exclusive():
        _deb_lintian_clean_or_overridden_with_reasons(ctx)


test_deb_lintian_clean_or_overridden_with_reasons.timeout = 300


# ------------------------------------------------------------------ dpkg -i ... dpkg --purge

def _write_test_conf(ctx, path, sock, slots, port, dbname):
    """The installed /etc/ccr/ccr.conf with the test stack's database, a fresh
    socket and the mail sink; views_dir/schema_dir stay the installed ones."""
    cp = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"))
    cp.read("/etc/ccr/ccr.conf")
    assert cp.get("server", "views_dir") == "/usr/share/ccr/views", "installed views_dir"
    assert cp.get("server", "schema_dir") == "/usr/share/ccr/schema", "installed schema_dir"
    st = ctx.stack
    for sec, kv in {
        "server": {"listen": sock, "socket_mode": "0666", "workers": "2", "user": "ccr",
                   "log_file": ""},
        "database": {"host": "localhost", "socket": st.mysql_sock, "name": dbname,
                     "user": "ccr", "password": st.db_password,
                     "backup_dir": os.path.join(os.path.dirname(path), "backups")},
        "smtp": {"host": "127.0.0.1", "port": str(st.smtp_port), "starttls": "off"},
        "security": {"secure_cookies": "false", "hash_slot_dir": slots},
        "site": {"base_url": "http://127.0.0.1:%d" % port},
    }.items():
        for k, v in kv.items():
            cp.set(sec, k, v)
    with open(path, "w") as fh:
        fh.write("# test/e2e/test_package.py: /etc/ccr/ccr.conf pointed at the test stack\n")
        cp.write(fh)
    # like the real one: root:ccr 0640 (ccrd re-reads it as ccr on SIGHUP)
    os.chown(path, 0, grp.getgrnam("ccr").gr_gid)
    os.chmod(path, 0o640)


def _purge_leftovers():
    """Best effort: remove whatever of the package is still on the machine."""
    notes = []
    if _pkg_status():
        p = _dpkg("--purge", PKG, check=False)
        if p.returncode != 0:
            _dpkg("--purge", "--force-remove-reinstreq", PKG, check=False)
        notes.append("package purged in cleanup")
    if _getpw("ccr"):
        _run(["userdel", "ccr"], check=False)
        notes.append("user ccr deleted in cleanup")
    if _getgr("ccr"):
        _run(["groupdel", "ccr"], check=False)
        notes.append("group ccr deleted in cleanup")
    for path in PKG_PATHS + ENABLE_LINKS:
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
            notes.append("removed " + path)
        elif os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            notes.append("removed " + path)
    return notes


def _deb_install_run_and_purge_leave_nothing(ctx):
    if os.geteuid() != 0:
        raise helpers.Skip("needs root (dpkg -i)")
    if _pkg_status():
        raise helpers.Skip("package ccr is already on this machine (%s): not touching it"
                           % _pkg_status())
    present = [p for p in PKG_PATHS if os.path.lexists(p)]
    if present or _getpw("ccr") or _getgr("ccr"):
        raise helpers.Skip("ccr files/user already present, not touching them: %s"
                           % (present or "user/group ccr"))
    deb = _deb(ctx)
    deps = [d.strip().split()[0] for d in
            _run(["dpkg-deb", "-f", deb, "Depends"]).stdout.split(",")]
    missing = [d for d in deps if _run(["dpkg", "-s", d], check=False).returncode != 0]
    assert not missing, "Depends not installed, dpkg -i would fail: %s" % missing

    backup_dir_before = os.path.lexists(BACKUP_DIR)
    tmp = tempfile.mkdtemp(prefix="ccr-pkg-", dir=ctx.tmp)
    os.chmod(tmp, 0o755)      # the installed ccrd runs as ccr: its socket and slots are in here
    st = ctx.stack
    dbname = "ccr_pkg_" + os.urandom(4).hex()
    ccrd = nginx = None
    db_made = False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        # ---- install
        _dpkg("-i", deb, env=env)
        assert _pkg_status() == "install ok installed", "dpkg status %r" % _pkg_status()
        pw, gr = _getpw("ccr"), _getgr("ccr")
        assert pw and gr, "postinst (systemd-sysusers) did not create user and group ccr"
        assert pw.pw_gid == gr.gr_gid, "user ccr's primary group is not ccr"
        assert pw.pw_uid < 1000, "ccr is not a system user (uid %d)" % pw.pw_uid
        assert pw.pw_dir == "/nonexistent" and pw.pw_shell.endswith("/nologin"), \
            "user ccr has home %r, shell %r" % (pw.pw_dir, pw.pw_shell)
        s = os.stat("/etc/ccr/ccr.conf")
        assert (s.st_mode & 0o7777, s.st_uid, s.st_gid) == (0o640, 0, gr.gr_gid), \
            "/etc/ccr/ccr.conf is %o %d:%d, want 0640 root:ccr" % (s.st_mode & 0o7777,
                                                                 s.st_uid, s.st_gid)
        with open("/etc/ccr/ccr.conf") as fh:
            keys = re.findall(r"(?m)^secret_key = ([0-9a-f]+)$", fh.read())
        assert len(keys) == 1 and len(keys[0]) == 64, \
            "postinst did not fill in [security] secret_key: %r" % keys
        for p in PKG_PATHS:
            assert os.path.exists(p), "%s missing after dpkg -i" % p
        assert os.path.isfile("/usr/share/ccr/static/ccr.css"), "/usr/share/ccr/static/ccr.css"
        assert not _procs_running("/usr/sbin/ccrd"), "dpkg -i started ccrd"
        wants = [os.path.join(d, u) for d in
                 ("/etc/systemd/system/multi-user.target.wants",
                  "/etc/systemd/system/timers.target.wants") for u in UNITS]
        enabled = [w for w in wants if os.path.lexists(w)]
        assert not enabled, "dpkg -i enabled units: %s" % enabled
        # the administrator enables them (offline, as `systemctl enable` would)
        for link in ENABLE_LINKS:
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink("/%s/%s" % (PKG_UNIT_DIR, os.path.basename(link)), link)
        if not backup_dir_before:
            s = os.stat(BACKUP_DIR)
            assert (s.st_mode & 0o7777, s.st_uid, s.st_gid) == (0o700, pw.pw_uid, gr.gr_gid), \
                "%s is %o %d:%d, want 0700 ccr:ccr" % (BACKUP_DIR, s.st_mode & 0o7777,
                                                       s.st_uid, s.st_gid)
        if shutil.which("systemd-analyze"):
            p = _run(["systemd-analyze", "verify", "--man=no"] +
                     ["/%s/%s" % (PKG_UNIT_DIR, u) for u in UNITS], check=False, cwd=tmp)
            out = (p.stdout + p.stderr).strip()
            assert p.returncode == 0 and not out, "systemd-analyze verify of the installed " \
                "units: exit %d %s" % (p.returncode, out[-800:])
        p = _run(["/usr/sbin/ccrd", "-V"])
        assert p.stdout.strip() == "ccrd %s" % _version(ctx.repo), "ccrd -V: %r" % p.stdout
        p = _run(["/usr/bin/ccr-admin", "-c", "/etc/ccr/ccr.conf", "check-config"])
        assert "ok" in p.stdout, "check-config of the installed config: %r" % p.stdout

        # ---- reinstall: an edited conffile and its owner/mode survive, no prompt
        with open("/etc/ccr/ccr.conf", "a") as fh:
            fh.write("; edited by test_package\n")
        _dpkg("-i", deb, env=env)
        with open("/etc/ccr/ccr.conf") as fh:
            text = fh.read()
            assert text.endswith("; edited by test_package\n"), "reinstall lost the edit"
            assert re.findall(r"(?m)^secret_key = ([0-9a-f]+)$", text) == keys, \
                "a reinstall replaced the secret_key"
        s = os.stat("/etc/ccr/ccr.conf")
        assert (s.st_mode & 0o7777, s.st_uid, s.st_gid) == (0o640, 0, gr.gr_gid), \
            "after reinstall /etc/ccr/ccr.conf is %o %d:%d" % (s.st_mode & 0o7777, s.st_uid,
                                                             s.st_gid)

        # ---- a fresh database, migrated by the installed ccr-admin
        st.sql("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; "
               "GRANT ALL ON `%s`.* TO 'ccr'@'localhost';" % (dbname, dbname), database=None)
        db_made = True
        port = stack.pick_free_port()
        sock = os.path.join(tmp, "ccrd.sock")
        slots = os.path.join(tmp, "slots")
        os.mkdir(slots, 0o750)
        os.chown(slots, pw.pw_uid, gr.gr_gid)
        conf = os.path.join(tmp, "ccr.conf")
        _write_test_conf(ctx, conf, sock, slots, port, dbname)
        _run(["/usr/bin/ccr-admin", "-c", conf, "check-config"])
        p = _run(["/usr/bin/ccr-admin", "-c", conf, "migrate"])
        want = sorted(n[:-4] for n in os.listdir("/usr/share/ccr/schema") if n.endswith(".sql"))
        got = sorted(r[0] for r in st.sql("SELECT version FROM schema_migrations", database=dbname))
        assert got == want, "migrations applied %s, shipped %s" % (got, want)
        p = _run(["/usr/bin/ccr-admin", "-c", conf, "migrate"])
        assert "up to date" in p.stdout, "second migrate: %r" % p.stdout
        if not backup_dir_before and shutil.which("mariadb-dump"):
            # what ccr-backup.service does: as ccr, into the directory postinst made
            p = _run(["runuser", "-u", "ccr", "--", "/usr/bin/ccr-admin", "-c", conf,
                      "backup", "--dir", BACKUP_DIR], check=False)
            made = [n for n in os.listdir(BACKUP_DIR) if n.endswith(".sql.gz")]
            for n in os.listdir(BACKUP_DIR):
                os.unlink(os.path.join(BACKUP_DIR, n))
            assert p.returncode == 0 and len(made) == 1, \
                "ccr-admin backup as ccr into %s: exit %d %s, files %s" % (
                    BACKUP_DIR, p.returncode, (p.stdout + p.stderr).strip()[-500:], made)

        # ---- the installed ccrd (dropping to user ccr) behind a private nginx
        log = os.path.join(tmp, "ccrd.log")
        with open(log, "ab") as out:
            ccrd = stack.spawn(["/usr/sbin/ccrd", "-c", conf], stdout=out, stderr=out)

        def sock_up():
            if ccrd.poll() is not None:
                raise AssertionError("installed ccrd exited %s:\n%s" % (ccrd.returncode,
                                                                        stack.tail(log)))
            return os.path.exists(sock)
        stack.wait_until(sock_up, 20, "the installed ccrd's socket")
        prefix = os.path.join(tmp, "nginx")
        nconf = stack.render_nginx_conf(ctx.repo, prefix, tmp, sock, port)
        with open(nconf) as fh:
            text = fh.read()
        repo_static = "alias %s/;" % os.path.join(ctx.repo, "views", "static")
        assert repo_static in text, "no %r in the rendered nginx config" % repo_static
        with open(nconf, "w") as fh:
            fh.write(text.replace(repo_static, "alias /usr/share/ccr/static/;"))
        nerr = os.path.join(tmp, "nginx-error.log")
        with open(nerr, "ab") as out:
            nginx = stack.spawn([stack.NGINX, "-p", prefix, "-e", nerr, "-c", "conf/nginx.conf"],
                                stdout=out, stderr=out)
        stack.wait_port(port, nginx, "nginx", nerr)

        def healthy():
            try:
                return helpers.http_request(port, "GET", "/healthz").status == 200
            except OSError:
                return False
        stack.wait_until(healthy, 20, "GET /healthz = 200 from the installed ccrd")
        r = helpers.http_request(port, "GET", "/login")
        assert r.status == 200, "GET /login from the installed ccrd: %d %s\n%s" % (
            r.status, r.text[:300], stack.tail(log))
        assert re.search(r'<form\b[^>]*method="post"', r.text, re.I), "no POST form on /login"
        assert r.csrf(), "no csrf_token on /login"
        assert re.search(r'<input[^>]*name="password"', r.text), "no password input on /login"
        r = helpers.http_request(port, "GET", "/static/ccr.css")
        with open("/usr/share/ccr/views/static/ccr.css", "rb") as fh:
            assert r.status == 200 and r.body == fh.read(), \
                "GET /static/ccr.css via /usr/share/ccr/static: %d" % r.status
        kids = stack.children_of(ccrd.pid)
        assert kids, "installed ccrd has no children"
        for k in [ccrd.pid] + kids:
            assert _uid_of(k) == pw.pw_uid, "ccrd process %d does not run as ccr" % k

        # ---- stop: nginx, then ccrd with SIGTERM -> exit 0, nothing left
        stack.reap(nginx, 15, signal.SIGQUIT, send=True)
        nginx = None
        rc = stack.reap(ccrd, 40, signal.SIGTERM, send=True)
        left = stack.pgroup_members(ccrd.pid)
        ccrd = None
        assert rc == 0, "installed ccrd exited %s after SIGTERM:\n%s" % (rc, stack.tail(log))
        assert not left, "ccrd left processes behind: %s" % left

        # ---- remove keeps the configuration and the user; purge takes the rest
        _dpkg("--remove", PKG, env=env)
        assert _pkg_status() == "deinstall ok config-files", \
            "dpkg status after remove: %r" % _pkg_status()
        gone = [p for p in PKG_PATHS if p != "/etc/ccr" and os.path.lexists(p)]
        assert not gone, "dpkg --remove left %s" % gone
        assert os.path.isfile("/etc/ccr/ccr.conf"), "dpkg --remove deleted the conffile"
        assert _getpw("ccr"), "dpkg --remove deleted the user ccr"
        _dpkg("--purge", PKG, env=env)
        assert not _pkg_status(), "dpkg status after purge: %r" % _pkg_status()
        left = [p for p in PKG_PATHS if os.path.lexists(p)]
        assert not left, "dpkg --purge left %s" % left
        assert not _getpw("ccr"), "dpkg --purge left the user ccr"
        assert not _getgr("ccr"), "dpkg --purge left the group ccr"
        leftover = [n for n in os.listdir("/var/lib/dpkg/info") if n.startswith(PKG + ".")]
        assert not leftover, "dpkg info files left: %s" % leftover
        left = [l for l in ENABLE_LINKS if os.path.lexists(l)]
        assert not left, "dpkg --purge left the enablement links %s" % left
        assert backup_dir_before or not os.path.lexists(BACKUP_DIR), \
            "dpkg --purge left the empty %s" % BACKUP_DIR
    finally:
        if nginx is not None:
            stack.reap(nginx, 15, signal.SIGQUIT, send=True)
        if ccrd is not None:
            stack.reap(ccrd, 40, signal.SIGTERM, send=True)
            stack.kill_group(ccrd.pid)
        cleanup_notes = _purge_leftovers()
        if not backup_dir_before and os.path.isdir(BACKUP_DIR):
            try:
                os.rmdir(BACKUP_DIR)
                cleanup_notes.append("removed " + BACKUP_DIR)
            except OSError:
                pass
        if cleanup_notes:
            print("    test_package cleanup: %s" % "; ".join(cleanup_notes), flush=True)
        if db_made:
            try:
                st.sql("REVOKE ALL PRIVILEGES ON `%s`.* FROM 'ccr'@'localhost'; "
                       "DROP DATABASE IF EXISTS `%s`;" % (dbname, dbname), database=None)
            except Exception:
                pass
        if os.environ.get("TEST_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


def test_deb_install_run_and_purge_leave_nothing(ctx):
    with _exclusive():
        _deb_install_run_and_purge_leave_nothing(ctx)


test_deb_install_run_and_purge_leave_nothing.timeout = 300

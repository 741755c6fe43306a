#!/usr/bin/python3
"""Check the shipped systemd units offline (stdlib only).

    /usr/bin/python3 test/e2e/systemd_check.py [verify|security ...]

verify:   `systemd-analyze verify` on ccrd.service, ccr-maintenance.service and
          ccr-maintenance.timer must exit 0 and print nothing.  It refuses units
          whose ExecStart binary is missing, so the units are copied into a
          temporary directory with /usr/sbin/ccrd and /usr/bin/ccr-admin
          pointed at build/ccrd and build/ccr-admin (nothing else changes).
security: `systemd-analyze security --offline=yes` exposure of ccrd.service
          (and ccr-maintenance.service) must be <= 2.5.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNITS = ("ccrd.service", "ccr-maintenance.service", "ccr-maintenance.timer",
         "ccr-backup.service", "ccr-backup.timer")
MAX_EXPOSURE = 2.5


def _render(repo, tmp):
    for u in UNITS:
        with open(os.path.join(repo, "systemd", u)) as f:
            text = f.read()
        text = (text.replace("/usr/sbin/ccrd", os.path.join(repo, "build", "ccrd"))
                    .replace("/usr/bin/ccr-admin", os.path.join(repo, "build", "ccr-admin")))
        with open(os.path.join(tmp, u), "w") as f:
            f.write(text)


def check_verify(repo=REPO):
    """Return (ok, output)."""
    for b in ("ccrd", "ccr-admin"):
        if not os.access(os.path.join(repo, "build", b), os.X_OK):
            return False, "build/%s missing (systemd-analyze verify needs the binaries)" % b
    tmp = tempfile.mkdtemp(prefix="ccr-units-")
    try:
        _render(repo, tmp)
        p = subprocess.run(["systemd-analyze", "verify", "--man=no"] +
                           [os.path.join(tmp, u) for u in UNITS],
                           capture_output=True, text=True, timeout=60, cwd=tmp)
        out = (p.stdout + p.stderr).strip()
        return p.returncode == 0 and not out, out or "exit %d" % p.returncode
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def exposure(repo, unit):
    """(score or None, output) of systemd-analyze security --offline=yes."""
    tmp = tempfile.mkdtemp(prefix="ccr-units-")
    try:
        _render(repo, tmp)
        p = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                            os.path.join(tmp, unit)],
                           capture_output=True, text=True, timeout=60, cwd=tmp)
        out = p.stdout + p.stderr
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
        return (float(m.group(1)) if m else None), out.strip()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_security(repo=REPO):
    msgs, ok = [], True
    for unit in ("ccrd.service", "ccr-maintenance.service", "ccr-backup.service"):
        score, out = exposure(repo, unit)
        if score is None:
            return False, "no exposure score for %s: %s" % (unit, out[-500:])
        msgs.append("%s %.1f" % (unit, score))
        ok = ok and score <= MAX_EXPOSURE
    return ok, ", ".join(msgs) + ("" if ok else " (limit %.1f)" % MAX_EXPOSURE)


def main(argv):
    bad = 0
    for w in argv or ["verify", "security"]:
        ok, out = {"verify": check_verify, "security": check_security}[w]()
        print("%s systemd %s%s" % ("PASS" if ok else "FAIL", w, ": " + out if (out and (not ok or w == "security")) else ""))
        bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""End-to-end test runner: one real stack, every test/e2e/test_*.py against it.

    /usr/bin/python3 test/e2e/run.py [--results FILE] [--browser] [-k SUBSTR] [module ...]

Starts test/stack.py's Stack (private MariaDB, aiosmtpd sink, build/ccrd,
nginx from nginx/ccr-dev.conf.in) in a fresh temporary directory on free
ports (never 8080), runs each module's test_* functions in the order they are
defined (modules in name order), prints `PASS name`, `FAIL name: reason` or
`SKIP name: reason` per test, stops the stack and writes "<passed> <failed>"
to --results.  Exit status 1 when anything failed.

--browser also runs `node --test test/browser/` against the same stack
(env CCR_BASE_URL, CCR_VAR) and counts its tests from node's TAP summary.
TEST_KEEP=1 keeps the temporary directory (logs, mail, database).
Each test has 120 s (a function attribute `timeout` overrides); a test that
leaves part of the stack down gets it restarted before the next one.
"""
import argparse
import importlib.util
import inspect
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "test"))
sys.path.insert(0, HERE)

import stack  # noqa: E402
import helpers  # noqa: E402

DEFAULT_TIMEOUT = 120


class TestTimeout(Exception):
    pass


def _on_alarm(_sig, _frame):
    raise TestTimeout("test timed out")


def _on_term(_sig, _frame):
    raise KeyboardInterrupt()


def one_line(s, limit=400):
    s = " ".join(str(s).split())
    return s if len(s) <= limit else s[:limit] + "..."


def reason_of(exc, tb_files):
    """'Type: message (file:line)' with the innermost frame inside a test module."""
    where = ""
    for fr in reversed(traceback.extract_tb(exc.__traceback__)):
        if os.path.abspath(fr.filename) in tb_files:
            where = " (%s:%d)" % (os.path.basename(fr.filename), fr.lineno)
            break
    msg = str(exc)
    if isinstance(exc, AssertionError):
        text = msg or "assertion failed"
    else:
        text = "%s: %s" % (type(exc).__name__, msg) if msg else type(exc).__name__
    return one_line(text) + where


def discover(names, keyword):
    files = sorted(f for f in os.listdir(HERE) if f.startswith("test_") and f.endswith(".py"))
    if names:
        want = {n if n.endswith(".py") else n + ".py" for n in names}
        files = [f for f in files if f in want]
    tests = []
    for f in files:
        path = os.path.join(HERE, f)
        spec = importlib.util.spec_from_file_location(f[:-3], path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        fns = [fn for n, fn in vars(mod).items()
               if n.startswith("test_") and inspect.isfunction(fn) and fn.__module__ == mod.__name__]
        fns.sort(key=lambda fn: fn.__code__.co_firstlineno)
        for fn in fns:
            name = "%s.%s" % (f[:-3], fn.__name__)
            if keyword and keyword not in name:
                continue
            tests.append((name, fn, path))
    return tests


def run_browser(st, log_dir):
    """node --test test/browser/ -> (passed, failed)."""
    bdir = os.path.join(REPO, "test", "browser")
    if not os.path.isdir(os.path.join(bdir, "node_modules", "playwright-core")):
        print("FAIL browser: test/browser/node_modules missing "
              "(cd test/browser && npm ci --no-audit --no-fund)", flush=True)
        return 0, 1
    env = dict(os.environ, CCR_BASE_URL=st.base_url, CCR_VAR=st.var)
    tap_path = os.path.join(log_dir, "browser.tap")
    try:
        p = subprocess.run(["node", "--test", "--test-reporter=tap", "test/browser/"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        out = p.stdout
        with open(tap_path, "w") as f:
            f.write(out + "\n# stderr:\n" + p.stderr)
    except subprocess.TimeoutExpired:
        print("FAIL browser: node --test timed out after 600 s", flush=True)
        return 0, 1
    # Top-level test lines: "ok N - name" / "not ok N - name" (subtests are indented).
    for line in out.splitlines():
        m = re.match(r"(not ok|ok) \d+ - (.*?)(?:\s+#\s*(SKIP|TODO).*)?$", line)
        if m:
            status = "SKIP" if m.group(3) else ("PASS" if m.group(1) == "ok" else "FAIL")
            print("%s browser: %s%s" % (status, m.group(2),
                                       ": see %s" % tap_path if status == "FAIL" else ""),
                  flush=True)
    counts = {}
    for key in ("pass", "fail", "cancelled"):
        m = re.search(r"^# %s (\d+)$" % key, out, re.M)
        counts[key] = int(m.group(1)) if m else None
    if counts["pass"] is None or counts["fail"] is None:
        print("FAIL browser: no TAP summary from node (exit %d): %s"
              % (p.returncode, one_line(p.stderr[-600:])), flush=True)
        return 0, 1
    failed = counts["fail"] + (counts["cancelled"] or 0)
    if failed == 0 and p.returncode != 0:
        print("FAIL browser: node exited %d" % p.returncode, flush=True)
        failed = 1
    if failed:
        sys.stderr.write(out[-6000:] + "\n" + p.stderr[-2000:] + "\n")
    return counts["pass"], failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", help="write '<passed> <failed>' here")
    ap.add_argument("--browser", action="store_true", help="also run node --test test/browser/")
    ap.add_argument("--asan", action="store_true",
                    help="run build/asan/ccrd and ccr-admin; any sanitizer report fails the run")
    ap.add_argument("-k", dest="keyword", help="only tests whose module.function name contains this")
    ap.add_argument("modules", nargs="*", help="test module names (default: all test_*.py)")
    args = ap.parse_args()

    passed = failed = 0

    def finish(n_passed, n_failed):
        if args.results:
            os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
            with open(args.results, "w") as f:
                f.write("%d %d\n" % (n_passed, n_failed))
        print("e2e: %d passed, %d failed" % (n_passed, n_failed), flush=True)
        return 1 if n_failed else 0

    try:
        tests = discover(args.modules, args.keyword)
    except Exception as e:  # a syntax error in a test module
        print("FAIL discover: %s" % one_line("%s: %s" % (type(e).__name__, e)), flush=True)
        return finish(0, 1)
    tb_files = {os.path.abspath(p) for _n, _f, p in tests}

    if args.asan:
        os.environ["CCR_BIN_DIR"] = os.path.join(REPO, "build", "asan")
        # workers leave with exit(): LeakSanitizer runs in every child
        os.environ["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:exitcode=23"
        os.environ["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=0"
    keep = os.environ.get("TEST_KEEP") == "1"
    tmp = tempfile.mkdtemp(prefix="ccr-e2e-")
    # 0755, not mkdtemp's 0700: test_package's installed ccrd runs as user ccr
    # and keeps its socket and hash slots below this folder.  (The dev nginx
    # needs nothing: its workers run as the invoking user, root included.)
    os.chmod(tmp, 0o755)
    port = stack.pick_free_port()
    # require_2fa = none: the suites sign in as admins with the password
    # alone; test_twofa sets each value in turn (and restores this one)
    st = stack.Stack(os.path.join(tmp, "var"), port, REPO, ccrd_log="file", require_2fa="none")
    signal.signal(signal.SIGTERM, _on_term)   # make interrupted: still stop the stack
    signal.signal(signal.SIGALRM, _on_alarm)
    t0 = time.monotonic()
    try:
        up = False
        try:
            st.start()
            up = True
        except stack.StackError as e:
            print("FAIL stack: %s" % one_line(e, 2000), flush=True)
            sys.stderr.write("stack start failed:\n%s\n" % e)
            failed += 1
        if up:
            print("e2e: stack up at %s in %.1fs (var %s)"
                  % (st.base_url, time.monotonic() - t0, st.var), flush=True)
            p, f = run_tests(st, tmp, tests, tb_files)
            passed += p
            failed += f
            if args.browser:
                try:
                    st.ensure_up()
                    bp, bf = run_browser(st, st.log_dir)
                except Exception as e:
                    print("FAIL browser: %s" % one_line(e), flush=True)
                    bp, bf = 0, 1
                passed += bp
                failed += bf
    except KeyboardInterrupt:
        print("FAIL interrupted", flush=True)
        failed += 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            st.stop()
        except Exception as e:
            print("FAIL stack-stop: %s" % one_line(e), flush=True)
            failed += 1
        if args.asan:
            failed += sanitizer_reports(st.ccrd_log_path)
        if failed and not keep:
            sys.stderr.write("--- last lines of ccrd.log (TEST_KEEP=1 keeps %s) ---\n%s\n"
                             % (tmp, stack.tail(st.ccrd_log_path, 30)))
        if keep:
            print("e2e: kept %s" % tmp, flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return finish(passed, failed)


SANITIZER = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer")


def sanitizer_reports(log_path):
    """1 (and the report's first lines) when ccrd.log holds a sanitizer report, else 0."""
    try:
        with open(log_path, errors="replace") as f:
            lines = f.readlines()
    except FileNotFoundError:
        return 0
    for i, line in enumerate(lines):
        if SANITIZER.search(line):
            print("FAIL sanitizer: %s" % one_line("".join(lines[i:i + 12]), 1500), flush=True)
            return 1
    print("PASS sanitizer: no ASan/UBSan/LSan report in ccrd.log", flush=True)
    return 0


def run_tests(st, tmp, tests, tb_files):
    """Run the test functions in order -> (passed, failed)."""
    passed = failed = 0
    ctx = helpers.Context(st, tmp)
    for i, (name, fn, _path) in enumerate(tests):
        ctx.module = name.split(".", 1)[0]     # per-module fixtures (tickets_util.addr)
        signal.alarm(getattr(fn, "timeout", DEFAULT_TIMEOUT))
        try:
            fn(ctx)
            signal.alarm(0)
            passed += 1
            print("PASS %s" % name, flush=True)
        except helpers.Skip as e:
            signal.alarm(0)
            print("SKIP %s: %s" % (name, one_line(e)), flush=True)
        except Exception as e:
            signal.alarm(0)
            failed += 1
            print("FAIL %s: %s" % (name, reason_of(e, tb_files)), flush=True)
            if os.environ.get("TEST_VERBOSE") == "1":
                traceback.print_exc()
        # Bring back whatever a (failed) fault test left down.
        try:
            st.ensure_up()
        except Exception as e:
            rest = len(tests) - i - 1
            print("FAIL stack-recovery: %s (%d test(s) not run)" % (one_line(e, 1000), rest),
                  flush=True)
            failed += 1 + rest
            break
    return passed, failed


if __name__ == "__main__":
    sys.exit(main())

"""Attack suite (issue 6): what a hostile client tries, straight on the
FastCGI socket (nginx bypassed) and over HTTP through nginx.

Part 1, FastCGI (records as the FastCGI 1.0 specification defines them):
malformed records, huge name/value lengths, broken parameter streams, lying
CONTENT_LENGTHs, 10 000 params, unknown record types and roles, silent and
stalled clients, and worker memory over 10 000 malformed tries.  Every
malformed request is answered with an error or dropped; a worker never dies
of one and serves the next request.

Part 2, HTTP: CSRF on the ticket and admin forms, methods other than POST
on state-changing routes, stored and reflected XSS, SQL injection strings
and sqlmap, session fixation and forged session ids, cookie flags, the
security headers on every status, open redirects through `next`, oversized
requests, slowloris, account enumeration (answers and timing), the
reset-mail cap, Host-header poisoning and a login flood past
max_concurrent_hashes.

Every HTTP client here talks from a loopback address of its own
(helpers.Client), sqlmap and the like go through a forwarder that
gives each connection a fresh address, and the failed logins this module
causes are moved out of the 15-minute window when it is done with them, so
no throttle of this module reaches another.  Bounded: sqlmap 60 s a target,
slowhttptest 20 s.  CCR_ATTACK_LONG=1 adds the 30 s receive-timeout check.
"""
import html
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import threading
import time
import urllib.parse

import attacks_util as A
import helpers
from attacks_util import PASSWORD, XSS, xss_findings
from helpers import (FCGI_END_REQUEST, FCGI_GET_VALUES, FCGI_PARAMS, FCGI_STDIN,
                     FCGI_UNKNOWN_TYPE, Client, begin, nv, raw_exchange, rec, records,
                     sec_header_problems)

CRASH = re.compile(r"killed by signal|exited with status|Assertion|AddressSanitizer|"
                   r"runtime error:|CRASH STORM")


def asan():
    return "asan" in (os.environ.get("CCR_BIN_DIR") or "")


def slow(x):
    """A time bound, doubled for the sanitizer build."""
    return x * 2 if asan() else x


def crashes_since(ctx, mark):
    return [l for l in ctx.log_since(mark).splitlines() if CRASH.search(l)]


def fcgi_healthy(ctx):
    r = ctx.fcgi("GET", "/healthz", timeout=10)
    return r.status == 200


def fail_if(problems, head):
    assert not problems, "%s (%d): %s" % (head, len(problems), " | ".join(problems[:12]))


def unthrottle_addrs(ctx, clients):
    helpers.unthrottle(ctx, *[c.addr for c in clients])


# ====================================================================== world

class World:
    """Accounts and tickets most HTTP tests share (built once, lazily):
    an admin, an active agent, two customers, ticket `open_id` (customer's,
    assigned to the agent) and `closed_id` (closed, not rated), a pending
    agent request and a second active agent for the disable form."""


def world(ctx):
    w = getattr(ctx, "_attacks_world", None)
    if w is not None:
        return w
    w = World()
    w.admin, w.admin_email, w.admin_id = A.new_admin(ctx)
    w.agent, w.agent_email, w.agent_id = A.new_agent(ctx, w.admin)
    w.cust, w.cust_email, w.cust_id = A.new_customer(ctx, "Cora", "Customer")
    w.other, w.other_email, w.other_id = A.new_customer(ctx, "Otto", "Other")
    w.open_id = A.new_ticket(w.cust, "Router blinks", "The router blinks red.")
    w.admin.get("/tickets/%d" % w.open_id)
    r = w.admin.post("/tickets/%d/assign" % w.open_id, {"agent_id": str(w.agent_id)})
    assert r.status == 303, "assign: %d %s" % (r.status, helpers.page_errors(r))
    w.closed_id = A.new_ticket(w.cust, "Old question", "Answered already.")
    w.cust.get("/tickets/%d" % w.closed_id)
    r = w.cust.post("/tickets/%d/close" % w.closed_id)
    assert r.status == 303, "close: %d %s" % (r.status, helpers.page_errors(r))
    # a pending agent request and a spare active agent (SQL: no mail needed)
    w.pending_id = helpers.register(ctx, password=PASSWORD, first="Penny", last="Pending",
                                    role="agent", prefix="atkpending").id
    spare = ctx.unique_email("atkspare")
    ctx.sql("INSERT INTO users (email, first_name, last_name, role, state, password_hash, "
            "created_at, updated_at) VALUES (%s, 'Spare', 'Agent', 'agent', 'active', NULL, "
            "NOW(), NOW())" % helpers.sql_str(spare))
    w.spare_id = helpers.user_id(ctx, spare)
    for cl in (w.admin, w.agent, w.cust, w.other):
        cl.get("/account")     # every client holds its session's csrf token
    ctx._attacks_world = w
    return w


def snapshot(ctx):
    """The state a refused request must not touch."""
    return {
        "tickets": ctx.sql("SELECT id, status, IFNULL(agent_id, 0), subject FROM tickets "
                           "ORDER BY id"),
        "messages": ctx.sql_value("SELECT COUNT(*) FROM messages"),
        "ratings": ctx.sql_value("SELECT COUNT(*) FROM ratings"),
        "users": ctx.sql("SELECT id, state, role, email FROM users ORDER BY id"),
        "sessions": ctx.sql_value("SELECT COUNT(*) FROM sessions"),
        "outbox": ctx.sql_value("SELECT COUNT(*) FROM outbox"),
        "codes": ctx.sql_value("SELECT COUNT(*) FROM password_codes"),
    }


def snapshot_diff(a, b):
    return [k for k in a if a[k] != b[k]]


# ====================================================================== part 1: FastCGI

def _refused(ex):
    """An error answer (4xx/5xx) or no answer at all (dropped)."""
    return ex.status is None or ex.status >= 400


def _try_cases(ctx, cases, timeout=5.0):
    """Send each (label, bytes) on its own connection; problems found."""
    sock = ctx.stack.ccrd_sock
    problems = []
    for label, data in cases:
        t0 = time.monotonic()
        ex = raw_exchange(sock, data, timeout=timeout)
        took = time.monotonic() - t0
        if not _refused(ex):
            problems.append("%s: answered %d (want an error status or a dropped connection)"
                            % (label, ex.status))
        if ex.timed_out:
            problems.append("%s: connection still open after %.0f s although the client "
                            "half-closed" % (label, took))
        if not fcgi_healthy(ctx):
            problems.append("%s: the next normal request failed" % label)
    return problems


def test_fcgi_huge_name_and_value_lengths(ctx):
    # 4-byte length encodings near 2^31 (CVE-2025-23016 territory): the
    # connection is dropped and the worker lives on.  nlen + vlen + 2 that
    # overflows an int makes libfcgi's ReadParams malloc() fail and abort.
    mark = ctx.log_mark()
    before = set(ctx.stack.worker_pids())
    filler = b"Z" * 4096
    lengths = [(0x7fffffff, 0x7fffffff), (0x7fffffff, 1), (0x7fffffff, 0), (0x7ffffff0, 1),
               (0x10000000, 0x10000000), (1, 0x7ffffffd), (0x7ffffffe, 0),
               (0x40000000, 0x40000000), (0x3fffffff, 0x3fffffff), (5, 0x7fffffff)]
    problems = []
    for nl, vl in lengths:
        label = "PARAMS pair nameLen=%#x valueLen=%#x" % (nl, vl)
        m = ctx.log_mark()
        problems += _try_cases(ctx, [(label, begin() + rec(FCGI_PARAMS, nv(b"N", b"V", nl, vl)
                                                           + filler))])
        time.sleep(0.1)                       # the master's line about a dead worker
        died = crashes_since(ctx, m)
        if died:
            problems.append("%s killed a worker: %s" % (label, " / ".join(died[:2])))
    after = set(ctx.stack.worker_pids())
    if before - after:
        problems.append("workers %s are gone (replaced by %s)" % (sorted(before - after),
                                                                  sorted(after - before)))
    if not problems and crashes_since(ctx, mark):
        problems.append("crash: %s" % crashes_since(ctx, mark)[:2])
    fail_if(problems, "huge FastCGI lengths (a crash is libfcgi's ReadParams: nameLen + "
                      "valueLen + 2 overflows int, malloc fails, ASSERT aborts)")


def test_fcgi_broken_params_stream_is_never_served(ctx):
    # A PARAMS stream that ends in an error (EOF before its empty terminator,
    # a record of another type or request, an ABORT) is not a request:
    # libfcgi ends ReadParams at the error like at the terminator, so ccrd
    # itself must refuse (FCGX_GetError(in) after FCGX_Accept_r).
    good = helpers.params_for(ctx, "GET", "/login")
    cases = [
        ("PARAMS never terminated, then EOF", begin() + rec(FCGI_PARAMS, good)),
        ("PARAMS record cut short (header says 400 bytes, 40 sent)",
         begin() + rec(FCGI_PARAMS, good)[:48]),
        ("record header cut after 5 bytes", begin() + rec(FCGI_PARAMS, good)[:5]),
        ("pair cut mid-value, then terminator",
         begin() + rec(FCGI_PARAMS, good + nv(b"HTTP_X", b"abc", None, 200)) + rec(FCGI_PARAMS)),
        ("record of unknown type 42 inside the PARAMS stream",
         begin() + rec(42, b"zzzz") + rec(FCGI_PARAMS, good) + rec(FCGI_PARAMS) + rec(FCGI_STDIN)),
        ("FCGI_ABORT_REQUEST inside the PARAMS stream",
         begin() + rec(FCGI_PARAMS, good) + rec(helpers.FCGI_ABORT_REQUEST) + rec(FCGI_PARAMS)
         + rec(FCGI_STDIN)),
        ("STDIN before the PARAMS terminator",
         begin() + rec(FCGI_PARAMS, good) + rec(FCGI_STDIN, b"x") + rec(FCGI_STDIN)),
        ("BEGIN_REQUEST only, then EOF", begin()),
        ("BEGIN_REQUEST with a 2-byte body", rec(helpers.FCGI_BEGIN_REQUEST, b"\x00\x01")),
    ]
    mark = ctx.log_mark()
    problems = _try_cases(ctx, cases)
    problems += ["crash: %s" % l for l in crashes_since(ctx, mark)]
    fail_if(problems, "broken PARAMS streams")


def test_fcgi_lying_content_length_answers_400_or_413(ctx):
    form = "application/x-www-form-urlencoded"
    sock = ctx.stack.ccrd_sock
    problems = []
    for cl, body, want in (("-1", b"", 400), ("99999999999999999999", b"", 400),
                           ("9223372036854775807", b"", 413), ("65537", b"", 413),
                           ("1000", b"email=a%40b.example", 400), ("12abc", b"", 400),
                           ("0x10", b"", 400), (" 5", b"", 400), ("2147483648", b"", 413)):
        data = helpers.request_bytes(ctx, "POST", "/login", extra={"CONTENT_LENGTH": cl,
                                                            "CONTENT_TYPE": form}, stdin=body)
        ex = raw_exchange(sock, data, timeout=5)
        if ex.status != want:
            problems.append("CONTENT_LENGTH %r with %d body bytes: %s, want %d" % (
                cl, len(body), ex.status, want))
        elif not ex.ended:
            problems.append("CONTENT_LENGTH %r: no FCGI_END_REQUEST" % cl)
        else:
            problems += sec_header_problems(helpers.parse_cgi_response(ex.stdout),
                                            "CONTENT_LENGTH %r" % cl)
    assert fcgi_healthy(ctx), "the next normal request failed"
    fail_if(problems, "lying CONTENT_LENGTH")


def test_fcgi_management_records_unknown_types_and_bad_headers(ctx):
    sock = ctx.stack.ccrd_sock
    problems = []
    # ccrd drops a connection that starts with a management record (request
    # id 0) before libfcgi sees it: libfcgi leaks memory for each one
    # (see the next test), and nginx never sends them.  Nothing is served
    # on such a connection, and the next connection is served normally.
    for what, data in (("unknown management type 200", rec(200, b"zzzzzzzz", rid=0)),
                       ("empty unknown management record", rec(200, b"", rid=0)),
                       ("FCGI_GET_VALUES", rec(FCGI_GET_VALUES, nv("FCGI_MAX_CONNS", "") +
                                               nv("FCGI_MPXS_CONNS", ""), rid=0))):
        ex = raw_exchange(sock, data + helpers.request_bytes(ctx), timeout=5)
        if ex.status is not None or ex.timed_out:
            problems.append("%s, then a request: served %s%s" % (
                what, ex.status, " (held the connection)" if ex.timed_out else ""))
        r = ctx.get("/healthz")
        if r.status != 200:
            problems.append("after %s: /healthz %s" % (what, r.status))
    ex = raw_exchange(sock, rec(FCGI_GET_VALUES, nv(b"A", b"", 0x7fffff00, 0), rid=0), timeout=5)
    if ex.timed_out:
        problems.append("FCGI_GET_VALUES with a huge name length held the connection")
    import struct
    cases = [
        ("version 2 BEGIN_REQUEST", rec(helpers.FCGI_BEGIN_REQUEST, struct.pack("!HB5x", 1, 0),
                                        version=2) + rec(FCGI_PARAMS, helpers.params_for(ctx))),
        ("version 0 records", helpers.request_bytes(ctx).replace(b"\x01", b"\x00", 1)),
        ("BEGIN_REQUEST with request id 0", rec(helpers.FCGI_BEGIN_REQUEST,
                                                 struct.pack("!HB5x", 1, 0), rid=0)),
        ("record types 0 and 255 before BEGIN_REQUEST", rec(0, b"x") + rec(255, b"y")),
        ("unknown role 99", helpers.request_bytes(ctx, role=99)),
        ("END_REQUEST sent to the application", rec(FCGI_END_REQUEST, b"\0" * 8)),
        ("bytes that are no FastCGI at all", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("64 KiB of zero bytes", b"\0" * 65536),
    ]
    mark = ctx.log_mark()
    problems += _try_cases(ctx, cases)
    problems += ["crash: %s" % l for l in crashes_since(ctx, mark)]
    fail_if(problems, "management records and bad headers")


def test_fcgi_unknown_management_records_do_not_leak(ctx):
    # libfcgi's ProcessManagementRecord allocates a Params block for every
    # management record and frees it only for FCGI_GET_VALUES: each record
    # of another type (8 bytes on the wire) leaks ~48 bytes in the worker,
    # and a connection may carry any number of them before its request.
    n = 100000
    before = A.worker_rss_kib(ctx)
    data = rec(200, b"", rid=0) * n + helpers.request_bytes(ctx)
    ex = raw_exchange(ctx.stack.ccrd_sock, data, timeout=slow(20))
    after = A.worker_rss_kib(ctx)
    # ccrd drops such a connection before libfcgi reads it: no answers, no request
    assert ex.types().count(FCGI_UNKNOWN_TYPE) == 0 and ex.status is None, \
        "a connection of management records was handed to libfcgi: %s %s" % (ex.types()[:5], ex.status)
    assert ctx.get("/healthz").status == 200
    grown = {p: after[p] - before[p] for p in set(before) & set(after)}
    worst = max(grown.values()) if grown else 0
    limit = 4096 if asan() else 1024
    assert worst <= limit, ("a worker's RSS grew by %d KiB over %d unknown management records "
                            "on one connection (%.0f bytes each): libfcgi leaks the Params it "
                            "allocates in ProcessManagementRecord" % (worst, n, worst * 1024.0 / n))


def test_fcgi_filter_and_authorizer_roles_are_refused(ctx):
    # ccrd is a RESPONDER.  A 200 to an AUTHORIZER request means "access
    # granted" to whatever web server asked; a FILTER gets no FCGI_DATA.
    problems = _try_cases(ctx, [
        ("role AUTHORIZER, GET /login", helpers.request_bytes(ctx, "GET", "/login", role=helpers.AUTHORIZER)),
        ("role AUTHORIZER, GET /healthz", helpers.request_bytes(ctx, role=helpers.AUTHORIZER)),
        ("role FILTER, GET /login", helpers.request_bytes(ctx, "GET", "/login", role=helpers.FILTER)),
    ])
    fail_if(problems, "non-RESPONDER roles")


def test_fcgi_ten_thousand_params_answered_quickly(ctx):
    sock = ctx.stack.ccrd_sock
    mark = ctx.log_mark()
    problems = []
    for label, extra in (
            ("10 000 distinct params", [("HTTP_X_%d" % i, "v" * 20) for i in range(10000)]),
            ("10 000 copies of one param", [("HTTP_X_SAME", "v" * 20)] * 10000),
            ("10 000 empty names", [("", "")] * 10000)):
        pb = helpers.params_for(ctx) + b"".join(nv(k, v) for k, v in extra)
        data = begin() + records(FCGI_PARAMS, pb) + rec(FCGI_PARAMS) + rec(FCGI_STDIN)
        t0 = time.monotonic()
        ex = raw_exchange(sock, data, timeout=10)
        took = time.monotonic() - t0
        if ex.timed_out or took > slow(2.0):
            problems.append("%s: no answer within %.1f s" % (label, took))
        elif ex.status is not None and ex.status not in (200, 400, 413, 431):
            problems.append("%s: answered %d" % (label, ex.status))
    if not fcgi_healthy(ctx):
        problems.append("the next normal request failed")
    problems += ["crash: %s" % l for l in crashes_since(ctx, mark)]
    fail_if(problems, "10 000 params")


class _Stalled:
    """Connections to ccrd's socket that stop talking: nothing at all, a
    BEGIN_REQUEST and half the params, a POST whose body never comes."""

    def __init__(self, ctx, n):
        self.ctx = ctx
        self.socks = []
        self.rids = []
        kinds = [b"",
                 begin() + rec(FCGI_PARAMS, helpers.params_for(ctx))[:60],
                 None]
        for i in range(n):
            data = kinds[i % 3]
            if data is None:
                # a POST announcing 100 body bytes that sends 10 and waits
                rid = os.urandom(16).hex()
                self.rids.append(rid)
                data = (begin() + records(FCGI_PARAMS, helpers.params_for(ctx, "POST", "/login", extra={
                    "CONTENT_LENGTH": "100", "REQUEST_ID": rid,
                    "CONTENT_TYPE": "application/x-www-form-urlencoded"})) + rec(FCGI_PARAMS) +
                    rec(FCGI_STDIN, b"email=a%40"))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(ctx.stack.ccrd_sock)
            if data:
                s.sendall(data)
            self.socks.append(s)

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []


def _served_meanwhile(ctx, seconds, bound):
    """GET /healthz over FastCGI and through nginx for `seconds`; problems."""
    problems = []
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        for how in ("fastcgi", "nginx"):
            t0 = time.monotonic()
            try:
                st = (ctx.fcgi("GET", "/healthz", timeout=bound + 1).status if how == "fastcgi"
                      else ctx.get("/healthz", timeout=bound + 1).status)
            except (OSError, ConnectionError, http.client.HTTPException) as e:
                st = "%s: %s" % (type(e).__name__, e)
            took = time.monotonic() - t0
            n += 1
            if st != 200 or took > bound:
                problems.append("%s GET /healthz: %s after %.2f s" % (how, st, took))
        time.sleep(0.05)
    return problems, n


def _served_while_stalled(ctx, n, seconds):
    """n stalled connections held while _served_meanwhile runs for seconds
    -> (the _Stalled, closed again, and what _served_meanwhile found)."""
    stalled = _Stalled(ctx, n)
    try:
        time.sleep(0.3)
        return stalled, _served_meanwhile(ctx, seconds, slow(1.0))
    finally:
        stalled.close()


def test_fcgi_silent_and_stalled_clients_do_not_stop_service(ctx):
    n = max(1, ctx.stack.workers - 1)
    mark = ctx.log_mark()
    stalled, (problems, tries) = _served_while_stalled(ctx, n, 3.0)
    fail_if(problems, "while %d connections stalled (%d requests)" % (n, tries))
    # the held workers come back as soon as their peers go: the stalled POST
    # is answered (400, incomplete body) or dropped, nothing is served
    for rid in stalled.rids:
        # its access line (a warning that the answer could not be written
        # to the gone peer may come first, with the same request id)
        line = ctx.wait_until(lambda: next((l for l in ctx.log_since(mark).splitlines()
                                            if "req=%s POST " % rid in l), None), slow(3.0),
                              "ccrd's log line for the stalled POST %s" % rid)
        assert '" 400 ' in line, "the stalled POST was logged as %r, want 400" % line
    # ... and can be held again while the rest still serves (so they were freed)
    _stalled, (problems, _) = _served_while_stalled(ctx, n, 1.0)
    fail_if(problems, "after the first stalled clients left")
    assert not crashes_since(ctx, mark), crashes_since(ctx, mark)


def test_fcgi_silent_client_released_by_the_30s_timeout(ctx):
    if os.environ.get("CCR_ATTACK_LONG") != "1":
        raise helpers.Skip("takes 31 s; CCR_ATTACK_LONG=1 runs it")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(ctx.stack.ccrd_sock)
    s.settimeout(40)
    t0 = time.monotonic()
    try:
        d = s.recv(100)
    except OSError:
        d = b""
    took = time.monotonic() - t0
    s.close()
    assert d == b"", "ccrd wrote %r to a silent client" % d
    assert 25 <= took <= 35, "a silent client was dropped after %.1f s, want ~30 s" % took
test_fcgi_silent_client_released_by_the_30s_timeout.timeout = 60


def test_fcgi_worker_memory_flat_over_10000_malformed_requests(ctx):
    sock = ctx.stack.ccrd_sock
    good = helpers.params_for(ctx)
    form = "application/x-www-form-urlencoded"
    # libfcgi mallocs nameLen + valueLen + 2 before reading: 2 GiB and 16 MiB
    huge = [begin() + rec(FCGI_PARAMS, nv(b"A", b"B", 0x7ffffff0, 1) + b"x" * 200),
            begin() + rec(FCGI_PARAMS, nv(b"A", b"B", 0x00fffff0, 1) + b"x" * 200)]
    cases = [
        begin() + rec(FCGI_PARAMS, nv(b"A", b"B", 0x7fffffff, 0x7fffffff) + b"x" * 200),
        begin() + rec(FCGI_PARAMS, b"\x80\x00"),
        begin() + rec(FCGI_PARAMS, good)[:40],
        begin() + rec(FCGI_PARAMS, good),
        helpers.request_bytes(ctx, "POST", "/login", extra={"CONTENT_LENGTH": "-1", "CONTENT_TYPE": form}),
        helpers.request_bytes(ctx, "POST", "/login", extra={"CONTENT_LENGTH": "1000", "CONTENT_TYPE": form},
                        stdin=b"email=a"),
        helpers.request_bytes(ctx, "POST", "/login", extra={"CONTENT_LENGTH": "99999", "CONTENT_TYPE": form}),
        rec(42, b"zz", rid=0) + begin() + rec(43, b"zzzz"),
        rec(helpers.FCGI_BEGIN_REQUEST, b"\x00\x01"),
        b"\0" * 512,
        helpers.request_bytes(ctx, "GET", "/login", query="q=%ff%fe"),
        helpers.request_bytes(ctx, "GET", "/" + "a" * 3000),
    ]
    if not asan():
        cases += huge      # (ASan poisons the shadow of each: ~60 ms a try)
    many = begin() + records(FCGI_PARAMS, good + b"".join(nv("HTTP_X_%d" % i, "v" * 20)
                                                          for i in range(10000))) + \
        rec(FCGI_PARAMS) + rec(FCGI_STDIN)
    tries = 2000 if asan() else 10000

    def run(n):
        for i in range(n):
            data = many if i % 100 == 99 else cases[i % len(cases)]
            ex = raw_exchange(sock, data, timeout=5)
            if ex.timed_out:
                raise AssertionError("malformed case %d held the connection for 5 s" % (i % len(cases)))
    mark = ctx.log_mark()
    run(300)                                  # warm up: steady-state allocations
    before = A.worker_rss_kib(ctx)
    t0 = time.monotonic()
    run(tries)
    took = time.monotonic() - t0
    after = A.worker_rss_kib(ctx)
    assert fcgi_healthy(ctx), "the next normal request failed"
    died = crashes_since(ctx, mark)
    assert not died, "workers died during %d malformed requests: %s" % (tries, died[:3])
    common = sorted(set(before) & set(after))
    assert common, "every worker was replaced during the run (before %s, after %s)" % (
        before, after)
    # ASan keeps freed memory in quarantine (256 MB): only a gross leak shows
    margin = 300 * 1024 if asan() else 2048
    grown = {p: after[p] - before[p] for p in common if after[p] - before[p] > margin}
    assert not grown, ("worker RSS grew by more than %d KiB over %d malformed requests "
                       "(%.1f s): %s (before %s)" % (margin, tries, took, grown, before))
test_fcgi_worker_memory_flat_over_10000_malformed_requests.timeout = 240


# ====================================================================== part 2: HTTP

def _csrf_targets(w):
    """(who, client, path, form) for every ticket and admin POST route."""
    t, c = w.open_id, w.closed_id
    return [
        ("customer", w.cust, "/tickets", {"subject": "csrf probe", "description": "x",
                                          "priority": "low"}),
        ("customer", w.cust, "/tickets/%d/messages" % t, {"body": "csrf probe"}),
        ("customer", w.cust, "/tickets/%d/close" % t, {}),
        ("customer", w.cust, "/tickets/%d/reopen" % c, {}),
        ("customer", w.cust, "/tickets/%d/rating" % c, {"score": "1", "comment": "csrf"}),
        ("agent", w.agent, "/tickets/%d/messages" % t, {"body": "csrf probe"}),
        ("agent", w.agent, "/tickets/%d/resolve" % t, {}),
        ("admin", w.admin, "/tickets/%d/assign" % t, {"agent_id": str(w.spare_id)}),
        ("admin", w.admin, "/tickets/%d/close" % t, {}),
        ("admin", w.admin, "/admin/agents", {"first_name": "Csrf", "last_name": "Probe",
                                             "email": "csrf-probe@example.com"}),
        ("admin", w.admin, "/admin/agents/%d/approve" % w.pending_id, {}),
        ("admin", w.admin, "/admin/agents/%d/reject" % w.pending_id, {}),
        ("admin", w.admin, "/admin/agents/%d/disable" % w.spare_id, {}),
    ]


def test_csrf_on_ticket_and_admin_forms(ctx):
    w = world(ctx)
    other_token = w.other.last_csrf
    assert other_token and other_token != w.cust.last_csrf
    before = snapshot(ctx)
    problems = []
    for who, c, path, form in _csrf_targets(w):
        own = c.last_csrf
        variants = [("missing", None, None), ("wrong", "0" * 64, None), ("malformed", "x", None),
                    ("another session's", other_token, None),
                    ("own token upper-cased", own.upper(), None),
                    ("own token truncated", own[:-1], None),
                    ("double-submit cookie of the attacker's choosing", "ab" * 32, "ab" * 32)]
        for what, tok, cookie in variants:
            saved = dict(c.cookies)
            if cookie:
                c.cookies["ccr_csrf"] = cookie
            try:
                r = c.post(path, dict(form), csrf=tok)
            finally:
                c.cookies = saved
            if r.status != 403:
                problems.append("%s POST %s with %s token: %d" % (who, path, what, r.status))
        # the valid token in the query string or a header does not count
        r = c.request("POST", path + "?csrf_token=" + own, body=helpers.encode_form(form),
                      headers={"Content-Type": "application/x-www-form-urlencoded",
                               "X-CSRF-Token": own}, csrf=None)
        if r.status != 403:
            problems.append("%s POST %s with the token only in the query/header: %d"
                            % (who, path, r.status))
    after = snapshot(ctx)
    changed = snapshot_diff(before, after)
    if changed:
        problems.append("refused requests changed: %s" % changed)
    fail_if(problems, "CSRF")


def test_other_methods_on_state_changing_routes_are_405(ctx):
    w = world(ctx)
    t, c = w.open_id, w.closed_id
    paths = ["/logout", "/account/delete", "/tickets/%d/assign" % t, "/tickets/%d/resolve" % t,
             "/tickets/%d/close" % t, "/tickets/%d/reopen" % c, "/tickets/%d/rating" % c,
             "/admin/agents/%d/approve" % w.pending_id, "/admin/agents/%d/reject" % w.pending_id,
             "/admin/agents/%d/disable" % w.spare_id]
    before = snapshot(ctx)
    problems = []
    for who, cl in (("admin", w.admin), ("customer", w.cust), ("anonymous", Client(ctx.port))):
        for p in paths:
            for m in ("GET", "HEAD", "PUT", "DELETE", "PATCH"):
                r = cl.request(m, p, csrf=None)
                if r.status != 405:
                    problems.append("%s %s %s: %d" % (who, m, p, r.status))
                    continue
                allow = [x.strip() for x in (r.header("Allow") or "").split(",")]
                if allow != ["POST"]:
                    problems.append("%s %s %s: Allow %r, want POST" % (who, m, p, r.header("Allow")))
                problems += sec_header_problems(r, "%s %s" % (m, p))
    after = snapshot(ctx)
    if snapshot_diff(before, after):
        problems.append("405 requests changed: %s" % snapshot_diff(before, after))
    fail_if(problems, "non-POST methods")


def test_xss_payloads_are_escaped_on_every_page(ctx):
    w = world(ctx)
    P = XSS
    name1, name2 = P[0] + P[1], P[2] + P[3]
    blob = "\n".join(P)
    problems = []

    def check(what, r, want=(200,)):
        if r.status not in want:
            problems.append("%s: status %d" % (what, r.status))
        text = r.text
        bad = xss_findings(text)
        for p in P[:3]:
            if p in text:
                bad.append("raw %r" % p)
        if bad:
            problems.append("%s: %s" % (what, bad[:3]))

    # stored: names, emails, subject, description, messages, rating comment
    x, x_email, x_id = A.new_customer(ctx, name1, name2)
    y_email = '"><img/src=x/onerror=alert(1)>%s@xss.example.com' % os.urandom(3).hex()
    y = Client(ctx.port)
    y.prime("/register")
    r = y.post("/register", {"first_name": P[3], "last_name": P[1], "email": y_email,
                             "password": PASSWORD, "confirm_password": PASSWORD})
    check("POST /register with a payload email", r, (303, 422))
    y_ok = r.status == 303
    agent, _ae, agent_id = A.new_agent(ctx, w.admin, name2, name1)
    pend_email = "<script>alert(1)</script>%s@xss.example.com" % os.urandom(3).hex()
    c = Client(ctx.port)
    c.prime("/register")
    r = c.post("/register", {"first_name": name1, "last_name": name2, "email": pend_email,
                             "password": PASSWORD, "confirm_password": PASSWORD, "role": "agent"})
    check("POST /register role=agent with payloads", r, (303, 422))
    tid = A.new_ticket(x, " ".join(P), blob)
    if y_ok:
        y.get("/tickets/new")
        A.new_ticket(y, P[2], P[0])
    check("admin GET /tickets?assigned=none", w.admin.get("/tickets?assigned=none"))
    w.admin.get("/tickets/%d" % tid)
    r = w.admin.post("/tickets/%d/assign" % tid, {"agent_id": str(agent_id)})
    assert r.status == 303, "assign: %d %s" % (r.status, helpers.page_errors(r))
    x.get("/tickets/%d" % tid)
    assert x.post("/tickets/%d/messages" % tid, {"body": blob}).status == 303
    agent.get("/tickets/%d" % tid)
    assert agent.post("/tickets/%d/messages" % tid, {"body": blob}).status == 303
    # a refused reply shows the draft again
    x.get("/tickets/%d" % tid)
    check("422 reply draft", x.post("/tickets/%d/messages" % tid, {"body": blob + "x" * 10001}),
          (422,))
    pages = {"customer": (x, ["/tickets", "/tickets?status=all", "/tickets/%d" % tid,
                              "/tickets/%d/messages?after=0" % tid, "/account"]),
             "agent": (agent, ["/tickets", "/tickets/%d" % tid,
                               "/tickets/%d/messages?after=0" % tid, "/account"]),
             "admin": (w.admin, ["/tickets", "/tickets?status=all", "/tickets/%d" % tid,
                                 "/tickets/%d/messages?after=0" % tid, "/admin/agents",
                                 "/tickets?assigned=%d" % agent_id])}
    shown = {}
    for who, (cl, paths) in pages.items():
        for p in paths:
            r = cl.get(p)
            check("%s GET %s" % (who, p), r)
            shown[(who, p)] = r.text
    # not vacuous: the payloads are on those pages, escaped
    esc0 = html.escape(P[0])
    for key in (("customer", "/tickets/%d" % tid), ("agent", "/tickets/%d" % tid),
                ("admin", "/tickets/%d" % tid), ("customer", "/tickets/%d/messages?after=0" % tid),
                ("admin", "/admin/agents"), ("customer", "/tickets"), ("admin", "/tickets")):
        if esc0 not in shown[key]:
            problems.append("%s GET %s does not show the payload at all (escaped %r)" % (
                key[0], key[1], esc0))
    # the rating comment, on a closed ticket
    x.get("/tickets/%d" % tid)
    assert x.post("/tickets/%d/close" % tid).status == 303
    x.get("/tickets/%d" % tid)
    check("422 rating", x.post("/tickets/%d/rating" % tid, {"score": P[0], "comment": blob}),
          (422,))
    assert x.post("/tickets/%d/rating" % tid, {"score": "2", "comment": blob}).status == 303
    for who, cl in (("customer", x), ("agent", agent), ("admin", w.admin)):
        check("%s GET rated ticket" % who, cl.get("/tickets/%d" % tid))
    # reflected
    for p in P:
        q = urllib.parse.quote(p, safe="")
        check("GET /tickets?q=", x.get("/tickets?q=" + q))
        check("GET /tickets?q=&after=", x.get("/tickets?status=all&q=%s&after=%s" % (q, q)))
        check("GET /tickets?status=", x.get("/tickets?status=" + q), (422,))
        check("admin GET /tickets?assigned=", w.admin.get("/tickets?assigned=" + q), (422,))
        check("GET /tickets/N/messages?after=", x.get("/tickets/%d/messages?after=%s" % (tid, q)),
              (422,))
        for nxt in (p, "/" + p):
            check("GET /login?next=%r" % nxt,
                  Client(ctx.port).get("/login?next=" + urllib.parse.quote(nxt, safe="")))
        check("GET /password/forgot?email=", Client(ctx.port).get("/password/forgot?email=" + q))
        check("GET /password/reset?email=", Client(ctx.port).get("/password/reset?email=" + q))
        check("GET /register?email=", Client(ctx.port).get("/register?first_name=%s&email=%s" % (q, q)))
        check("404 /%r" % p, Client(ctx.port).get("/" + q), (404,))
        c = Client(ctx.port)
        c.prime("/login")
        check("401 POST /login email, next", c.post("/login", {"email": p, "password": "x" * 9,
                                                              "next": "/" + p}), (401, 429))
        c = Client(ctx.port)
        c.prime("/password/forgot")
        r = c.post("/password/forgot", {"email": p})
        check("POST /password/forgot", r, (303,))
        check("the page POST /password/forgot leads to", c.follow(r))
        c = Client(ctx.port)
        c.prime("/register")
        check("422 POST /register", c.post("/register", {
            "first_name": p, "last_name": p, "email": p, "password": PASSWORD,
            "confirm_password": "different-1"}), (422,))
        x2 = w.other
        x2.get("/tickets/new")
        check("422 POST /tickets", x2.post("/tickets", {"subject": p, "description": " ",
                                                       "priority": p}), (422,))
        w.admin.get("/admin/agents")
        check("422 POST /admin/agents", w.admin.post("/admin/agents", {
            "first_name": p, "last_name": p, "email": p}), (422,))
    helpers.unthrottle(ctx, *P)
    fail_if(problems, "XSS")
test_xss_payloads_are_escaped_on_every_page.timeout = 180


def _anon(r):
    """True when r treats the client as logged out."""
    return r.status == 303 and (r.location or "").startswith("/login")


def test_session_fixation_and_made_up_session_ids(ctx):
    import hashlib
    w = world(ctx)
    problems = []
    # fixation: a session id planted before login/registration is not the one after
    planted = "ab" * 32
    for how in ("login", "register"):
        c = Client(ctx.port)
        c.prime("/login" if how == "login" else "/register")
        c.cookies["ccr_session"] = planted
        if how == "login":
            r = c.post("/login", {"email": w.other_email, "password": PASSWORD})
        else:
            r = c.post("/register", {"first_name": "Fix", "last_name": "Ated",
                                     "email": ctx.unique_email("fix"), "password": PASSWORD,
                                     "confirm_password": PASSWORD})
        if r.status != 303:
            problems.append("%s with a planted session: %d" % (how, r.status))
            continue
        got = c.cookies.get("ccr_session")
        if not got or got == planted:
            problems.append("%s kept the planted session id (cookie %r)" % (how, got))
        victim = Client(ctx.port)
        victim.cookies["ccr_session"] = planted
        if not _anon(victim.get("/tickets")):
            problems.append("the planted id works after %s" % how)
    # made-up and mangled ids are never accepted
    real = w.other.cookies["ccr_session"]
    id_hash = hashlib.sha256(real.encode()).hexdigest()
    forged = {"random 64 hex": os.urandom(32).hex(), "the stored SHA-256 of a live id": id_hash,
              "a live id upper-cased": real.upper(), "a live id plus one digit": real + "0",
              "a live id minus one digit": real[:-1], "zeros": "0" * 64,
              "SQL": "' OR '1'='1", "SQL in hex length": ("' OR 1=1-- " * 6)[:64],
              "empty": "", "a live id with a NUL": real[:32] + "%00" + real[32:]}
    for what, val in forged.items():
        c = Client(ctx.port)
        c.cookies["ccr_session"] = val
        for path in ("/tickets", "/account", "/admin/agents"):
            r = c.raw("GET", path, headers={"Cookie": "ccr_session=" + val})
            if not _anon(r):
                problems.append("ccr_session = %s: GET %s answered %d %r" % (
                    what, path, r.status, r.location))
        r = c.raw("POST", "/logout", body=b"csrf_token=" + (w.other.last_csrf or "").encode(),
                  headers={"Cookie": "ccr_session=" + val,
                           "Content-Type": "application/x-www-form-urlencoded"})
        if r.status not in (303, 403) or (r.status == 303 and not _anon(r)):
            problems.append("ccr_session = %s: POST /logout answered %d" % (what, r.status))
    if not w.other.get("/account").status == 200:
        problems.append("the real session stopped working")
    fail_if(problems, "session ids")


def test_every_set_cookie_has_the_safe_flags(ctx):
    seen = []

    def grab(r, what):
        for sc in r.header_all("Set-Cookie"):
            seen.append((what, sc))
        return r
    c = Client(ctx.port)
    grab(c.get("/login"), "GET /login")
    grab(c.post("/login", {"email": "nobody@example.com", "password": "Wrong-pass-1"}),
         "401 login")
    _c, email, _uid = A.new_customer(ctx, "Flag", "Check")
    c = Client(ctx.port)
    c.get("/register")
    grab(c.post("/register", {"first_name": "Flag", "last_name": "Two",
                              "email": ctx.unique_email("flag"), "password": PASSWORD,
                              "confirm_password": PASSWORD}), "register")
    grab(c.get("/tickets"), "flash shown")
    c.get("/account")
    grab(c.post("/logout"), "logout")
    c = Client(ctx.port)
    c.get("/login")
    grab(c.post("/login", {"email": email, "password": PASSWORD}), "login")
    c.cookies["ccr_session"] = "cd" * 32
    grab(c.get("/account"), "unknown session cleared")
    c = Client(ctx.port)
    c.get("/password/forgot")
    grab(c.post("/password/forgot", {"email": email}), "forgot")
    helpers.unthrottle(ctx, "nobody@example.com")
    names = {sc.split("=", 1)[0] for _w, sc in seen}
    assert {"ccr_csrf", "ccr_session", "ccr_flash"} <= names, "cookies seen: %s" % names
    problems = []
    for what, sc in seen:
        attrs = [a.strip().lower() for a in sc.split(";")[1:]]
        keys = {a.split("=", 1)[0] for a in attrs}
        if "httponly" not in keys:
            problems.append("%s: no HttpOnly: %s" % (what, sc))
        if "samesite=lax" not in attrs and "samesite=strict" not in attrs:
            problems.append("%s: SameSite not Lax/Strict: %s" % (what, sc))
        if "path=/" not in attrs:
            problems.append("%s: Path is not /: %s" % (what, sc))
        if "domain" in keys:
            problems.append("%s: a Domain attribute widens the cookie: %s" % (what, sc))
        if "secure" in keys:
            problems.append("%s: Secure although secure_cookies = false: %s" % (what, sc))
    fail_if(problems, "Set-Cookie flags")


def test_security_headers_on_every_status(ctx):
    # (a 503 from a stopped database: test_database_outage_..., the last test)
    w = world(ctx)
    problems = []

    def want(what, r, status):
        if r.status != status:
            problems.append("%s: %d, want %d" % (what, r.status, status))
        problems.extend(sec_header_problems(r, "%s (%d)" % (what, r.status)))
        return r
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    want("GET /login", ctx.get("/login"), 200)
    want("GET /", ctx.get("/"), 303)
    want("GET /login?%zz", ctx.get("/login?a=%zz"), 400)
    c = Client(ctx.port)
    c.prime()
    want("bad login", c.post("/login", {"email": "nobody@example.com", "password": "x" * 9}), 401)
    want("customer GET /admin/agents", w.cust.get("/admin/agents"), 403)
    want("POST without csrf", w.cust.post("/tickets", {"subject": "x"}, csrf=None), 403)
    want("GET /nowhere", ctx.get("/nowhere"), 404)
    want("GET /tickets/99999999", w.cust.get("/tickets/99999999"), 404)
    want("GET /logout", ctx.get("/logout"), 405)
    w.cust.get("/tickets/%d" % w.closed_id)
    want("message on a closed ticket", w.cust.post("/tickets/%d/messages" % w.closed_id,
                                                   {"body": "hello"}), 409)
    want("ccrd 413", ctx.post("/login", body=b"a=" + b"b" * 65536, headers=form), 413)
    want("nginx 413", ctx.post("/login", body=b"a=" + b"b" * 200000, headers=form), 413)
    want("nginx 414", ctx.get("/" + "u" * 9000), 414)
    want("nginx 400 (494)", ctx.get("/login", headers={"X-Big": "h" * 9000}), 400)
    want("415", ctx.post("/login", body=b"a=b", headers={"Content-Type": "text/plain"}), 415)
    want("422", ctx.get("/login?x=%ff"), 422)
    # 429: five failures for one email, from five addresses
    email = ctx.unique_email("throttled")
    clients = []
    for _ in range(5):
        c = Client(ctx.port)
        c.prime()
        clients.append(c)
        c.post("/login", {"email": email, "password": "Wrong-pass-1"})
    c = Client(ctx.port)
    c.prime()
    r = want("429", c.post("/login", {"email": email, "password": "Wrong-pass-1"}), 429)
    if not r.header("Retry-After"):
        problems.append("429 without Retry-After")
    helpers.unthrottle(ctx, email, "nobody@example.com", *[x.addr for x in clients + [c]])
    # 503: every hash slot busy (the database outage is the last test)
    c = Client(ctx.port)
    c.prime()
    with helpers.AllHashSlots(ctx):
        r = want("503 (no hash slot)", c.post("/login", {"email": w.other_email,
                                                         "password": "Wrong-pass-1"}), 503)
    if not r.header("Retry-After"):
        problems.append("503 without Retry-After")
    helpers.unthrottle(ctx, c.addr)
    # straight from ccrd as well (nginx only fills in what is missing)
    for path, status in (("/nowhere", 404), ("/logout", 405), ("/login?x=%ff", 422)):
        r = ctx.fcgi("GET", path.split("?")[0], query=path.partition("?")[2])
        want("ccrd GET %s" % path, r, status)
    fail_if(problems, "security headers")
test_security_headers_on_every_status.timeout = 120


EVIL = ["//evil.example", "/\\evil.example", "https://evil.example", "javascript:alert(1)",
        "http:evil.example", "///evil.example", "/\t/evil.example", "\\/evil.example",
        "/%2F%2Fevil.example", "%2F%2Fevil.example", "/%5Cevil.example", " //evil.example",
        "//evil.example%2F@127.0.0.1", "\n//evil.example", "/\r\n/evil.example",
        "//evil.example/%2E%2E", "/.//evil.example", "https:/\\evil.example",
        "\u3002//evil.example", "/\u2215evil.example", "data:text/html,<script>alert(1)</script>"]


def _leaves_site(ctx, location):
    """Where a browser goes with this Location (it strips TAB/CR/LF, reads
    '\\' as '/'): True when that is another origin or not http(s)."""
    if location is None:
        return False
    loc = re.sub(r"[\t\r\n]", "", location).replace("\\", "/").strip()
    target = urllib.parse.urljoin(ctx.base_url + "/login", loc)
    u, b = urllib.parse.urlsplit(target), urllib.parse.urlsplit(ctx.base_url)
    return u.scheme not in ("http", "https") or u.netloc != b.netloc


def test_next_never_redirects_off_site(ctx):
    w = world(ctx)
    problems = []
    for i, nxt in enumerate(EVIL):
        c = Client(ctx.port)
        r = c.get("/login?next=" + urllib.parse.quote(nxt, safe=""))
        m = re.search(r'name="next" value="([^"]*)"', r.text)
        hidden = html.unescape(m.group(1)) if m else ""
        if hidden and _leaves_site(ctx, hidden):
            problems.append("GET /login?next=%r keeps it in the form: %r" % (nxt, hidden))
        r = c.post("/login", {"email": w.other_email, "password": PASSWORD, "next": nxt})
        if r.status not in (303, 422):
            problems.append("login next=%r: %d" % (nxt, r.status))
        elif _leaves_site(ctx, r.location):
            problems.append("login next=%r: Location %r leaves the site" % (nxt, r.location))
        if i >= 8:
            continue                          # each assignment mails two people
        w.admin.get("/tickets")
        r = w.admin.post("/tickets/%d/assign" % w.open_id, {"agent_id": str(w.agent_id),
                                                            "next": nxt})
        if r.status not in (303, 422):
            problems.append("assign next=%r: %d" % (nxt, r.status))
        elif _leaves_site(ctx, r.location):
            problems.append("assign next=%r: Location %r leaves the site" % (nxt, r.location))
    fail_if(problems, "open redirect")
test_next_never_redirects_off_site.timeout = 120


def test_oversized_body_header_and_uri_stop_at_nginx(ctx):
    marker = "oversize-%s" % os.urandom(6).hex()
    mark = ctx.log_mark()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    problems = []
    cases = [
        ("200 KiB body", lambda: ctx.post("/%s" % marker, body=b"a=" + b"b" * 200000,
                                          headers=form), (413,)),
        ("1 MiB body to /login", lambda: ctx.post("/login?%s" % marker, body=b"a" * 1048576,
                                                  headers=form), (413,)),
        ("9 KiB header", lambda: ctx.get("/%s" % marker, headers={"X-Pad": "p" * 9000}), (400, 494)),
        ("20 KiB cookie", lambda: ctx.get("/%s" % marker, headers={
            "Cookie": "ccr_session=" + "c" * 20000}), (400, 494)),
        ("40 headers of 1 KiB", lambda: ctx.get("/%s" % marker, headers={
            "X-H%d" % i: "h" * 1000 for i in range(40)}), (400, 494)),
        ("9 KiB URI", lambda: ctx.get("/%s?pad=%s" % (marker, "u" * 9000)), (414,)),
    ]
    for what, fn, ok in cases:
        try:
            r = fn()
        except (OSError, http.client.HTTPException) as e:
            problems.append("%s: %s" % (what, e))
            continue
        if r.status not in ok:
            problems.append("%s: %d, want %s" % (what, r.status, ok))
        problems += sec_header_problems(r, what)
    # chunked: nginx counts as it reads
    c = http.client.HTTPConnection("127.0.0.1", ctx.port, timeout=15)
    try:
        c.request("POST", "/login?%s" % marker, body=iter([b"a=" + b"b" * 65536] * 4),
                  headers=dict(form, Connection="close"), encode_chunked=True)
        r = c.getresponse()
        if r.status != 413:
            problems.append("256 KiB chunked body: %d, want 413" % r.status)
    except (OSError, http.client.HTTPException):
        pass                                  # nginx may close mid-upload: also refused
    finally:
        c.close()
    time.sleep(0.3)
    reached = [l for l in ctx.log_since(mark).splitlines() if marker in l]
    if reached:
        problems.append("ccrd saw the oversized requests: %s" % reached[:3])
    fail_if(problems, "oversized requests")


def _slowhttptest(args, out_path):
    f = open(out_path, "wb")
    p = subprocess.Popen(["timeout", "30", "slowhttptest"] + args, stdout=f,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    f.close()
    return p


def _max_connected(path):
    try:
        text = open(path, "rb").read().decode("utf-8", "replace")
    except OSError:
        return 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    vals = [int(v) for v in re.findall(r"connected:\s+(\d+)", text)]
    return max(vals) if vals else 0


def test_slowloris_and_slow_body_do_not_stop_service(ctx):
    if not shutil.which("slowhttptest"):
        raise AssertionError("slowhttptest is not installed (Makefile APT_PKGS: make deps)")
    marker = "slow-%s" % os.urandom(6).hex()
    mark = ctx.log_mark()
    base = "http://127.0.0.1:%d" % ctx.port
    out1 = os.path.join(ctx.tmp, "slowloris.out")
    out2 = os.path.join(ctx.tmp, "slowbody.out")
    p1 = _slowhttptest(["-c", "200", "-H", "-i", "5", "-r", "100", "-l", "20", "-t", "GET",
                        "-x", "24", "-p", "3", "-u", "%s/%s" % (base, marker)], out1)
    p2 = _slowhttptest(["-c", "80", "-B", "-i", "5", "-r", "80", "-l", "20", "-s", "16384",
                        "-t", "POST", "-x", "10", "-p", "3", "-u",
                        "%s/login?%s" % (base, marker)], out2)
    problems = []
    n = 0
    try:
        time.sleep(2)
        end = time.monotonic() + 15
        while time.monotonic() < end:
            for path in ("/healthz", "/login"):
                t0 = time.monotonic()
                try:
                    st = ctx.get(path, timeout=5).status
                except (OSError, http.client.HTTPException) as e:
                    st = "%s: %s" % (type(e).__name__, e)
                took = time.monotonic() - t0
                n += 1
                if st != 200 or took > slow(1.0):
                    problems.append("GET %s: %s after %.2f s" % (path, st, took))
            time.sleep(0.2)
    finally:
        for p in (p1, p2):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
    c1, c2 = _max_connected(out1), _max_connected(out2)
    assert c1 >= 100, "slowhttptest held only %d slow-header connections (see %s)" % (c1, out1)
    assert c2 >= 40, "slowhttptest held only %d slow-body connections (see %s)" % (c2, out2)
    fail_if(problems, "%d of %d requests failed or were slow during slowloris (%d + %d "
                      "connections)" % (len(problems), n, c1, c2))
    # only slowhttptest's own probe requests (complete ones) reach ccrd
    bodies = [l for l in ctx.log_since(mark).splitlines() if marker in l and "POST" in l]
    assert not bodies, "unfinished slow bodies reached ccrd: %s" % bodies[:3]
test_slowloris_and_slow_body_do_not_stop_service.timeout = 90


def _known_accounts(ctx, n, prefix):
    """n active customers sharing one real password hash (made by SQL: cheap)."""
    c, email, uid = A.new_customer(ctx, "Known", "Person")
    h = ctx.sql_value("SELECT password_hash FROM users WHERE id = %d" % uid)
    out = []
    for _ in range(n):
        e = ctx.unique_email(prefix)
        ctx.sql("INSERT INTO users (email, first_name, last_name, role, state, password_hash, "
                "created_at, updated_at) VALUES (%s, 'Known', 'Person', 'customer', 'active', "
                "%s, NOW(), NOW())" % (helpers.sql_str(e), helpers.sql_str(h)))
        out.append(e)
    return out


def _normal_body(text, email):
    text = re.sub(r'name="csrf_token" value="[0-9a-f]*"', 'name="csrf_token" value="T"', text)
    text = re.sub(r"[0-9a-f]{32}", "RID", text)
    return text.replace(html.escape(email, quote=True), "EMAIL").replace(email, "EMAIL")


def _cookie_shape(r):
    return sorted(re.sub(r"=[0-9a-f]{64}", "=TOKEN", sc) for sc in r.header_all("Set-Cookie"))


def _timing_verdict(known, unknown, what):
    mk, mu = statistics.median(known), statistics.median(unknown)
    d = abs(mk - mu)
    ok = d <= 0.004 or d <= 0.2 * max(mk, mu)
    return ok, "%s: median %.1f ms for known accounts, %.1f ms for unknown (%d tries each)" % (
        what, mk * 1e3, mu * 1e3, len(known))


def test_login_answers_and_timing_identical_for_unknown_and_known_emails(ctx):
    n = 15
    known = _known_accounts(ctx, n, "tkn")
    tk, tu, problems, used = [], [], [], []
    for i in range(n):
        pair = []
        for kind, email in (("known", known[i]), ("unknown", ctx.unique_email("nobody"))):
            c = Client(ctx.port)
            c.prime("/login")
            used.append(c)
            t0 = time.monotonic()
            r = c.post("/login", {"email": email, "password": "Wrong-pass-%d" % i})
            (tk if kind == "known" else tu).append(time.monotonic() - t0)
            pair.append((kind, email, r))
        (_k, ek, rk), (_u, eu, ru) = pair
        if (rk.status, rk.location) != (ru.status, ru.location) or rk.status != 401:
            problems.append("try %d: %d %r vs %d %r" % (i, rk.status, rk.location, ru.status,
                                                         ru.location))
        if _cookie_shape(rk) != _cookie_shape(ru):
            problems.append("try %d: Set-Cookie %s vs %s" % (i, _cookie_shape(rk), _cookie_shape(ru)))
        if _normal_body(rk.text, ek) != _normal_body(ru.text, eu):
            problems.append("try %d: the 401 pages differ" % i)
    helpers.unthrottle(ctx, *known)
    unthrottle_addrs(ctx, used)
    ok, msg = _timing_verdict(tk, tu, "POST /login")
    if not ok:
        problems.append(msg + " (differ by more than 4 ms and 20%)")
    fail_if(problems, "login enumeration")
test_login_answers_and_timing_identical_for_unknown_and_known_emails.timeout = 120


def test_forgot_answers_and_timing_identical_for_unknown_and_known_emails(ctx):
    n = 15
    known = _known_accounts(ctx, n, "tfg")
    tk, tu, problems = [], [], []
    for i in range(n):
        pair = []
        for kind, email in (("known", known[i]), ("unknown", ctx.unique_email("nobody"))):
            c = Client(ctx.port)
            c.prime("/password/forgot")
            t0 = time.monotonic()
            r = c.post("/password/forgot", {"email": email})
            (tk if kind == "known" else tu).append(time.monotonic() - t0)
            pair.append((email, r))
        (ek, rk), (eu, ru) = pair
        lk = (rk.location or "").replace(urllib.parse.quote(ek, safe=""), "EMAIL").replace(ek, "EMAIL")
        lu = (ru.location or "").replace(urllib.parse.quote(eu, safe=""), "EMAIL").replace(eu, "EMAIL")
        if (rk.status, lk) != (ru.status, lu) or rk.status != 303:
            problems.append("try %d: %d %r vs %d %r" % (i, rk.status, rk.location, ru.status,
                                                         ru.location))
        if _cookie_shape(rk) != _cookie_shape(ru):
            problems.append("try %d: Set-Cookie %s vs %s" % (i, _cookie_shape(rk), _cookie_shape(ru)))
        if _normal_body(rk.text, ek) != _normal_body(ru.text, eu):
            problems.append("try %d: the bodies differ" % i)
    ok, msg = _timing_verdict(tk, tu, "POST /password/forgot")
    if not ok:
        problems.append(msg + " (differ by more than 4 ms and 20%: the known path writes a "
                              "code and an outbox row and commits, the unknown one does not)")
    fail_if(problems, "forgot-password enumeration")
test_forgot_answers_and_timing_identical_for_unknown_and_known_emails.timeout = 120


def test_reset_mail_flood_is_capped_at_three_per_hour(ctx):
    _c, email, uid = A.new_customer(ctx, "Flood", "Target")
    _c2, bystander, bid = A.new_customer(ctx, "By", "Stander")
    variants = [email, email.upper(), "  %s  " % email, email.capitalize()]
    clients = []
    for i in range(16):
        c = Client(ctx.port)
        c.prime("/password/forgot")
        clients.append((c, variants[i % len(variants)]))
    answers = []
    gate = threading.Barrier(len(clients))

    def one(c, e):
        try:
            gate.wait(10)
            r = c.post("/password/forgot", {"email": e})
            answers.append((r.status, r.location, tuple(_cookie_shape(r))))
        except Exception as ex:  # noqa: BLE001 - reported below
            answers.append(("%s" % ex, None, ()))
    ths = [threading.Thread(target=one, args=ce) for ce in clients]
    for t in ths:
        t.start()
    for t in ths:
        t.join(30)
    for c, e in clients[:4]:                  # and a few more, one after another
        r = c.post("/password/forgot", {"email": e})
        answers.append((r.status, r.location, tuple(_cookie_shape(r))))
    c = Client(ctx.port)
    c.prime("/password/forgot")
    c.post("/password/forgot", {"email": bystander})
    problems = []
    if len(set(answers)) != 1:
        problems.append("the answers differ: %s" % sorted(set(map(str, answers)))[:4])
    if answers[0][0] != 303:
        problems.append("answer %s" % (answers[0],))
    queued = int(ctx.sql_value("SELECT COUNT(*) FROM outbox WHERE kind = 'reset_code' "
                               "AND user_id = %d" % uid))
    codes = int(ctx.sql_value("SELECT COUNT(*) FROM password_codes WHERE user_id = %d "
                              "AND purpose = 'reset'" % uid))
    if queued > 3 or codes > 3:
        problems.append("%d reset mails queued and %d codes made for 20 requests (16 at once) "
                        "in an hour, want at most 3 (the count and the insert race)"
                        % (queued, codes))
    if queued == 0:
        problems.append("no reset mail at all")
    if int(ctx.sql_value("SELECT COUNT(*) FROM outbox WHERE kind = 'reset_code' AND user_id = %d"
                         % bid)) != 1:
        problems.append("the flood touched another account's allowance")
    live = int(ctx.sql_value("SELECT COUNT(*) FROM password_codes WHERE user_id = %d "
                             "AND used_at IS NULL" % uid))
    if live > 1:
        problems.append("%d live codes, want 1 (a new code voids the old)" % live)
    fail_if(problems, "reset-mail flood")


def test_host_header_poisoning_never_reaches_mail(ctx):
    w = world(ctx)
    known = _known_accounts(ctx, 5, "host")
    headers = [{"Host": "evil.example"},
               {"Host": "evil.example:%d" % ctx.port},
               {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
                "X-Forwarded-Server": "evil.example"},
               {"Forwarded": "host=evil.example;proto=https", "X-Host": "evil.example"},
               {"Host": "127.0.0.1:%d" % ctx.port, "X-Original-Host": "evil.example",
                "X-Forwarded-For": "evil.example"}]
    mark = ctx.mail_mark()
    log_mark = ctx.log_mark()
    problems = []
    for email, extra in zip(known, headers):
        c = Client(ctx.port)
        r = c.raw("GET", "/password/forgot", headers=extra)
        c.cookies.update({k: v for k, v in (sc.split(";")[0].split("=", 1)
                                            for sc in r.header_all("Set-Cookie"))})
        tok = helpers.csrf_from(r.text)
        r = c.raw("POST", "/password/forgot", body=helpers.encode_form(
            {"email": email, "csrf_token": tok}), headers=dict(
                extra, **{"Content-Type": "application/x-www-form-urlencoded"}))
        if r.status != 303:
            problems.append("forgot with %s: %d" % (extra, r.status))
        if "evil" in (r.location or ""):
            problems.append("forgot with %s: Location %r" % (extra, r.location))
    # registration (welcome) and agent creation (invitation) with a poisoned Host
    reg = ctx.unique_email("hostreg")
    c = Client(ctx.port)
    r = c.raw("GET", "/register", headers={"Host": "evil.example"})
    c.cookies.update({k: v for k, v in (sc.split(";")[0].split("=", 1)
                                        for sc in r.header_all("Set-Cookie"))})
    r = c.raw("POST", "/register", body=helpers.encode_form({
        "first_name": "Host", "last_name": "Poison", "email": reg, "password": PASSWORD,
        "confirm_password": PASSWORD, "csrf_token": helpers.csrf_from(r.text)}),
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example",
                 "Content-Type": "application/x-www-form-urlencoded"})
    if r.status != 303 or "evil" in (r.location or ""):
        problems.append("register with Host evil.example: %d %r" % (r.status, r.location))
    inv = ctx.unique_email("hostagent")
    w.admin.get("/admin/agents")
    r = w.admin.request("POST", "/admin/agents", form={"first_name": "Host", "last_name": "Agent",
                                                       "email": inv},
                        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"})
    if r.status != 303:
        problems.append("create agent with Host evil.example: %d" % r.status)
    wanted = known + [reg, inv]
    got = {}

    def arrived():
        for m in ctx.mails():
            if m.name in mark:
                continue
            for e in wanted:
                if e in m.to.lower():
                    got[e] = m
        return len(got) == len(wanted)
    try:
        ctx.wait_until(arrived, 20, "mails to %s" % wanted, 0.2)
    except Exception:
        died = [l for l in ctx.log_since(log_mark).splitlines() if "mailer" in l and
                ("killed by" in l or "exited with" in l)]
        problems.append("no mail for %s%s" % (sorted(set(wanted) - set(got)),
                                              " (the mailer died: %s)" % died[:2] if died else ""))
    for e, m in got.items():
        raw = m.raw.decode("utf-8", "replace")
        if "evil" in raw.lower():
            problems.append("mail to %s mentions evil.example: %r" % (
                e, raw[max(0, raw.lower().find("evil") - 80):][:200]))
        links = re.findall(r"https?://[^\s<>\"]+", m.body)
        if not links:
            problems.append("mail to %s has no link" % e)
        for l in links:
            if not l.startswith(ctx.base_url + "/"):
                problems.append("mail to %s links to %s, not base_url %s" % (e, l, ctx.base_url))
    fail_if(problems, "Host poisoning")


def test_login_flood_beyond_max_concurrent_hashes(ctx):
    _c, right, _uid = A.new_customer(ctx, "Flood", "Right")
    _c2, wrong, _uid2 = A.new_customer(ctx, "Flood", "Wrong")
    n = 30
    clients = []
    for _ in range(n):
        c = Client(ctx.port)
        c.prime("/login")
        clients.append(c)
    base = max(A.worker_rss_kib(ctx).values())
    results, health, peaks = [], [], {}
    stop = threading.Event()
    gate = threading.Barrier(n)

    def attempt(i):
        c = clients[i]
        form = ({"email": right, "password": PASSWORD} if i % 3 == 0 else
                {"email": wrong, "password": "Wrong-pass-%d" % i} if i % 3 == 1 else
                {"email": ctx.unique_email("nobody"), "password": "Wrong-pass-1"})
        gate.wait(10)
        t0 = time.monotonic()
        try:
            st = c.post("/login", form).status
        except (OSError, http.client.HTTPException) as e:
            st = "%s: %s" % (type(e).__name__, e)
        results.append((st, time.monotonic() - t0))

    def probe():
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                st = ctx.get("/healthz", timeout=10).status
            except (OSError, http.client.HTTPException) as e:
                st = "%s" % e
            health.append((st, time.monotonic() - t0))
            stop.wait(0.05)

    def sample():
        while not stop.is_set():
            for p, kib in A.worker_rss_kib(ctx).items():
                peaks[p] = max(peaks.get(p, 0), kib)
            stop.wait(0.05)
    aux = [threading.Thread(target=probe), threading.Thread(target=sample)]
    for t in aux:
        t.start()
    ths = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in ths:
        t.start()
    for t in ths:
        t.join(60)
    took = time.monotonic() - t0
    time.sleep(0.3)
    stop.set()
    for t in aux:
        t.join(10)
    helpers.unthrottle(ctx, wrong, *[c.addr for c in clients])
    problems = []
    bad = [(s, round(d, 2)) for s, d in results if s not in (200, 303, 401, 429, 503)]
    if bad:
        problems.append("answers outside 200/303/401/429/503: %s" % bad[:5])
    late = sorted(round(d, 2) for s, d in results if d > slow(3.0))
    if late:
        problems.append("%d logins answered after more than %.0f s: %s" % (len(late), slow(3.0),
                                                                         late[-5:]))
    if len(results) != n:
        problems.append("%d of %d logins got no answer" % (n - len(results), n))
    if not any(s == 303 for s, _ in results):
        problems.append("not one right password got in: %s" % sorted(s for s, _ in results))
    hz = [d for s, d in health if s == 200]
    if len(hz) != len(health) or not hz:
        problems.append("/healthz failed during the flood: %s" % [s for s, _ in health if s != 200][:3])
    elif statistics.median(hz) > slow(0.25) or max(hz) > slow(3.0):
        problems.append("/healthz during the flood: median %.2f s, max %.2f s" % (
            statistics.median(hz), max(hz)))
    # each worker holds at most one Argon2 area (19 MiB) besides its base
    argon = 19456
    bound = base + argon + (256 * 1024 if asan() else 16 * 1024)
    fat = {p: kib for p, kib in peaks.items() if kib > bound}
    if fat:
        problems.append("worker RSS peaked above %d KiB (base %d + one Argon2 area): %s" % (
            bound, base, fat))
    fail_if(problems, "login flood of %d (%.1f s)" % (n, took))
test_login_flood_beyond_max_concurrent_hashes.timeout = 120


# ---------------------------------------------------------------------- last: these register
# addresses the SMTP sink refuses (the mailer then meets a 5xx)

SQLI = ["' OR '1'='1", "1;DROP TABLE users--", "\\'", "%27", "' OR SLEEP(3)-- -",
        "1) OR (1=1", "\" OR \"\"=\"", "'),('x", "1' UNION SELECT password_hash FROM users--"]
SQLI_EMAILS = ["x'OR'1'='1@sqli.example.com", "a'--@sqli.example.com", "a\\'b@sqli.example.com",
               "a%27b@sqli.example.com", "a'),('b@sqli.example.com", "a;DROP_TABLE_users--@sqli.example.com"]


def esc(s):
    """s as `mariadb -B` prints it."""
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def test_sql_injection_strings_change_nothing_and_never_500(ctx):
    w = world(ctx)
    problems = []
    legit = {"users": [], "tickets": [], "messages": 0}
    counts = lambda: {t: int(ctx.sql_value("SELECT COUNT(*) FROM %s" % t))  # noqa: E731
                      for t in ("users", "tickets", "messages", "ratings", "sessions")}
    before = counts()
    hashes_before = ctx.sql("SELECT id, IFNULL(password_hash, '') FROM users ORDER BY id")

    def note(what, r, ok, t0):
        took = time.monotonic() - t0
        if r.status >= 500 or r.status not in ok:
            problems.append("%s: %d (want %s) %s" % (what, r.status, ok, helpers.page_errors(r)[:100]))
        if took > slow(2.5):
            problems.append("%s: took %.1f s (a SLEEP ran?)" % (what, took))
        return r

    def go(what, fn, ok):
        t0 = time.monotonic()
        return note(what, fn(), ok, t0)

    with A.Unthrottler(ctx):
        for p in SQLI + SQLI_EMAILS:
            c = Client(ctx.port)
            c.prime("/login")
            r = go("POST /login email=%r" % p, lambda: c.post("/login", {"email": p,
                                                                           "password": p}),
                   (401, 429))
            if c.cookies.get("ccr_session"):
                problems.append("POST /login email=%r gave a session" % p)
            r = go("POST /login password=%r" % p, lambda: c.post(
                "/login", {"email": w.cust_email, "password": p, "next": p}), (401, 429))
            if c.cookies.get("ccr_session"):
                problems.append("POST /login password=%r gave a session" % p)
            c.prime("/password/forgot")
            go("POST /password/forgot email=%r" % p,
               lambda: c.post("/password/forgot", {"email": p}), (303,))
            c.prime("/password/reset")
            go("POST /password/reset", lambda: c.post("/password/reset", {
                "email": p, "code": p, "password": "N3w-password-1",
                "confirm_password": "N3w-password-1"}), (422,))
            go("GET /password/reset?email=", lambda: c.get(
                "/password/reset?email=" + urllib.parse.quote(p, safe="")), (200, 422))
        # registration: every field; what is valid is stored literally
        for i, p in enumerate(SQLI + SQLI_EMAILS):
            email = p if "@" in p else ctx.unique_email("sqli")
            first = p[:64]
            c = Client(ctx.port)
            c.prime("/register")
            r = go("POST /register first=%r email=%r" % (first, email), lambda: c.post(
                "/register", {"first_name": first, "last_name": p[:64], "email": email,
                              "password": p if len(p) >= 8 else p + "-padding",
                              "confirm_password": p if len(p) >= 8 else p + "-padding"}),
                (303, 422))
            if r.status == 303:
                row = ctx.sql("SELECT first_name, last_name FROM users WHERE email = %s"
                              % helpers.sql_str(email.strip().lower()))
                if row != [[esc(first.strip()), esc(p[:64].strip())]]:
                    problems.append("registered %r: stored %r" % (email, row))
                legit["users"].append(email)
        # logged in: every query parameter and form field
        cu = w.cust
        for p in SQLI:
            q = urllib.parse.quote(p, safe="")
            for path in ("/tickets?q=%s", "/tickets?status=%s", "/tickets?after=%s",
                         "/tickets?page=%s", "/tickets?assigned=%s",
                         "/tickets?status=all&q=%s&after=1-1",
                         "/tickets/%d/messages?after=%%s" % w.open_id):
                go("customer GET " + path % p, lambda: cu.get(path % q), (200, 422))
            for path in ("/tickets?assigned=%s", "/tickets?q=%s&assigned=none"):
                go("admin GET " + path % p, lambda: w.admin.get(path % q), (200, 422))
            go("GET /tickets/<%r>" % p, lambda: cu.get("/tickets/" + q), (404,))
            go("GET /tickets/1<%r>" % p, lambda: cu.get("/tickets/1" + q), (404,))
            cu.get("/tickets/new")
            go("POST /tickets priority=%r" % p, lambda: cu.post("/tickets", {
                "subject": p, "description": p, "priority": p}), (422,))
            r = go("POST /tickets subject=%r" % p, lambda: cu.post("/tickets", {
                "subject": p, "description": p, "priority": "low"}), (303,))
            if r.status == 303:
                tid = int(r.location.rsplit("/", 1)[1])
                legit["tickets"].append(tid)
                row = ctx.sql("SELECT subject, description FROM tickets WHERE id = %d" % tid)
                if row != [[esc(p.strip()), esc(p)]]:
                    problems.append("ticket subject %r stored as %r" % (p, row))
            cu.get("/tickets/%d" % w.open_id)
            r = go("POST message body=%r" % p, lambda: cu.post(
                "/tickets/%d/messages" % w.open_id, {"body": p}), (303,))
            if r.status == 303:
                legit["messages"] += 1
            w.admin.get("/tickets/%d" % w.open_id)
            go("POST assign agent_id=%r" % p, lambda: w.admin.post(
                "/tickets/%d/assign" % w.open_id, {"agent_id": p, "next": p}), (422,))
            cu.get("/tickets/%d" % w.closed_id)
            go("POST rating score=%r" % p, lambda: cu.post(
                "/tickets/%d/rating" % w.closed_id, {"score": p, "comment": p}), (422,))
            cu.get("/account")
            go("POST /password/change current=%r" % p, lambda: cu.post("/password/change", {
                "current_password": p, "password": "Other-pass-1",
                "confirm_password": "Other-pass-1"}), (422,))
            w.admin.get("/admin/agents")
            go("POST /admin/agents email=%r" % p, lambda: w.admin.post("/admin/agents", {
                "first_name": p, "last_name": p, "email": p}), (422,))
            go("POST /admin/agents/<%r>/approve" % p, lambda: w.admin.post(
                "/admin/agents/%s/approve" % q), (404, 405))
    after = counts()
    if after["users"] - before["users"] != len(legit["users"]):
        problems.append("users grew by %d, %d legitimate registrations" % (
            after["users"] - before["users"], len(legit["users"])))
    if after["tickets"] - before["tickets"] != len(legit["tickets"]):
        problems.append("tickets grew by %d, %d created" % (after["tickets"] - before["tickets"],
                                                           len(legit["tickets"])))
    if after["messages"] - before["messages"] != legit["messages"]:
        problems.append("messages grew by %d, %d posted" % (after["messages"] - before["messages"],
                                                           legit["messages"]))
    if after["ratings"] != before["ratings"]:
        problems.append("ratings changed")
    A.settle_outbox(ctx, "to_addr LIKE '%@sqli.example.com'")
    still = dict(ctx.sql("SELECT id, IFNULL(password_hash, '') FROM users ORDER BY id"))
    changed = [i for i, h in hashes_before if still.get(i) != h]
    if changed:
        problems.append("password hashes changed for users %s" % changed[:5])
    fail_if(problems, "SQL injection strings")
test_sql_injection_strings_change_nothing_and_never_500.timeout = 180


def _sqlmap(ctx, args, outdir):
    env = dict(os.environ, TERM="dumb", HOME=outdir)
    argv = ["timeout", "60", "sqlmap", "--batch", "--level=1", "--risk=1", "--time-sec=1",
            "--dbms=MySQL", "--flush-session", "--disable-coloring", "--drop-set-cookie",
            "--ignore-code=401,403,422,429,503", "--output-dir=" + outdir] + args
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=90)
    return p.returncode, p.stdout + p.stderr


def test_sqlmap_finds_nothing_injectable(ctx):
    if not shutil.which("sqlmap"):
        raise AssertionError("sqlmap is not installed (it is in the Makefile's APT_PKGS: make deps)")
    w = world(ctx)
    outdir = os.path.join(ctx.tmp, "sqlmap")
    os.makedirs(outdir, exist_ok=True)
    tok = os.urandom(32).hex()                   # double-submit: cookie and field agree
    probe = ctx.unique_email("sqlmap")
    tid = A.new_ticket(w.cust, "Searchable printer", "the printer is on fire")
    problems = []
    with A.RotatingForwarder(ctx) as fw, A.Unthrottler(ctx, every=0.2):
        base = "http://127.0.0.1:%d" % fw.port
        targets = [
            ("POST /login", ["-u", base + "/login", "-p", "email", "--cookie", "ccr_csrf=" + tok,
                             "--data", "email=%s&password=Wrong-pass-1&csrf_token=%s"
                             % (urllib.parse.quote(w.cust_email), tok)]),
            ("POST /register", ["-u", base + "/register", "--cookie", "ccr_csrf=" + tok,
                                "--data", "first_name=Sam&last_name=Probe&email=%s&password="
                                "Wrong-pass-1&confirm_password=Wrong-pass-1&csrf_token=%s"
                                % (urllib.parse.quote(probe), tok)]),
            ("GET /tickets?q=", ["-u", base + "/tickets?q=printer&status=all", "-p", "q,status",
                                 "--cookie", "ccr_session=" + w.cust.cookies["ccr_session"]]),
        ]
        for label, args in targets:
            mark = ctx.log_mark()
            t0 = time.monotonic()
            rc, out = _sqlmap(ctx, args, outdir)
            took = time.monotonic() - t0
            if rc == 124:
                problems.append("%s: sqlmap did not finish within 60 s" % label)
            hits = [l for l in out.splitlines() if re.search(
                r"identified the following injection point|is vulnerable|appears to be '.*' "
                r"injectable|Parameter: .* \((GET|POST)\)", l)]
            if hits:
                problems.append("%s: sqlmap found an injection: %s" % (label, hits[:3]))
            if "do not appear to be injectable" not in out and not hits and rc != 124:
                tail = " ".join(out.split()[-60:])
                problems.append("%s: sqlmap did not conclude (rc %d, %.0f s): %s" % (
                    label, rc, took, tail))
            m = re.search(r"500 \(Internal Server Error\) - (\d+) times", out)
            if m:
                errs = [l for l in ctx.log_since(mark).splitlines()
                        if "error" in l or '" 500 ' in l]
                problems.append("%s: sqlmap provoked %s HTTP 500 answer(s); ccrd logged: %s" % (
                    label, m.group(1), " / ".join(errs[:4])))
    A.settle_outbox(ctx, "to_addr LIKE %s" % helpers.sql_str(probe.split("@")[0] + "%"))
    assert w.cust.get("/tickets/%d" % tid).status == 200
    assert ctx.sql_value("SELECT COUNT(*) FROM users") not in (None, "0"), "users table emptied"
    fail_if(problems, "sqlmap")
test_sqlmap_finds_nothing_injectable.timeout = 240


def test_mail_the_smtp_server_refuses_fails_without_crashing_the_mailer(ctx):
    # A 5xx from the SMTP server makes the mail `failed` at once.  An
    # address registration accepts (no space, one @, a dotted domain) that
    # the SMTP server refuses — a UTF-8 local part, which the sink's
    # strict-ASCII mode answers with 500 — must
    # not take the mailer down (nor keep it crashing every lease period on
    # the same row).  (Addresses with ';' or '<', used here first, are now
    # refused at registration: they cannot go into a To: header.)
    mark = ctx.log_mark()
    before = ctx.stack.mailer_pids()
    bad = "j\u00f6rg-%s@example.com" % os.urandom(3).hex()
    c = Client(ctx.port)
    c.prime("/register")
    r = c.post("/register", {"first_name": "Semi", "last_name": "Colon", "email": bad,
                             "password": PASSWORD, "confirm_password": PASSWORD})
    assert r.status == 303, "POST /register %r: %d %s" % (bad, r.status, helpers.page_errors(r))
    uid = helpers.user_id(ctx, bad)

    def settled():
        row = ctx.sql("SELECT status, IFNULL(last_error, '') FROM outbox WHERE user_id = %d "
                      "AND kind = 'welcome'" % uid)
        if A.mailer_deaths(ctx, mark):
            return ["(mailer died)"]
        return row and row[0][0] != "pending" and row[0]
    try:
        row = ctx.wait_until(settled, slow(15), "the welcome mail to %r to leave 'pending'" % bad,
                             0.2)
    except Exception:
        row = ctx.sql("SELECT status, attempts, claimed_by, lease_until, IFNULL(last_error, '') "
                      "FROM outbox WHERE user_id = %d" % uid)
    died = A.mailer_deaths(ctx, mark)
    A.settle_outbox(ctx, "user_id = %d" % uid)
    assert not died, ("the mailer died delivering to %r (outbox row %s): %s — mailer.c deliver(): "
                      "db_exec(Q_FAILED, \"sissi\", ..., id, me) binds id as a string and me "
                      "as an int" % (bad, row, died[:2]))
    row = ctx.sql("SELECT status FROM outbox WHERE user_id = %d" % uid)
    assert row and row[0][0] != "pending", "the refused mail is still %s" % (row,)
    # and the mailer still delivers
    good = ctx.unique_email("aftermath")
    m2 = ctx.mail_mark()
    c = Client(ctx.port)
    c.prime("/register")
    assert c.post("/register", {"first_name": "After", "last_name": "Math", "email": good,
                                "password": PASSWORD, "confirm_password": PASSWORD}).status == 303
    ctx.wait_mail(lambda m: good in m.to, since=m2, timeout=slow(15))
    assert ctx.stack.mailer_pids() == before, "mailer %s replaced by %s" % (
        before, ctx.stack.mailer_pids())


def test_database_outage_answers_503_with_headers_and_mail_flows_after(ctx):
    # The security headers on a 503, then the stack - mailer included - works
    # again once MariaDB is back (no notification is lost: the outbox keeps it).
    w = world(ctx)
    st = ctx.stack
    problems = []
    c = Client(ctx.port)
    c.prime()
    mark = ctx.log_mark()
    st.db_stop()
    try:
        ctx.wait_until(lambda: ctx.get("/healthz").status == 503, 10, "/healthz 503")
        for what, r in (("GET /healthz", ctx.get("/healthz")),
                        ("GET /tickets (logged in)", w.cust.get("/tickets")),
                        ("POST /login", c.post("/login", {"email": w.other_email,
                                                          "password": "Wrong-pass-1"}))):
            if r.status != 503:
                problems.append("%s with the database down: %d" % (what, r.status))
            problems += sec_header_problems(r, what + " 503")
            if not r.header("Retry-After"):
                problems.append("%s: 503 without Retry-After" % what)
        time.sleep(1.5)                      # long enough for the mailer to notice
    finally:
        st.db_start()
        ctx.wait_until(lambda: ctx.get("/healthz").status == 200, 15, "/healthz 200 again")
    helpers.unthrottle(ctx, c.addr)
    email = ctx.unique_email("afteroutage")
    m = ctx.mail_mark()
    reg = Client(ctx.port)
    reg.prime("/register")
    r = reg.post("/register", {"first_name": "After", "last_name": "Outage", "email": email,
                               "password": PASSWORD, "confirm_password": PASSWORD})
    if r.status != 303:
        problems.append("registering after the outage: %d" % r.status)
    try:
        ctx.wait_mail(lambda mm: email in mm.to, since=m, timeout=slow(15))
    except Exception:
        errs = [l for l in ctx.log_since(mark).splitlines() if "mailer" in l or
                ("ccrd[%d]" % (st.mailer_pids() or [0])[0]) in l]
        problems.append("no welcome mail within %d s after MariaDB came back: the mailer does "
                        "not reconnect (its log since the outage: %s)" % (slow(15), errs[-3:]))
        # leave a stack whose mailer works for the modules after this one
        st.ccrd_stop()
        st.ccrd_start()
        st.wait_healthy()
    fail_if(problems, "database outage")
test_database_outage_answers_503_with_headers_and_mail_flows_after.timeout = 120

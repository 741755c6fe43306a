"""Webhooks (README "Webhooks"): /admin/webhooks (admin only), the secret
shown once and sealed at rest, every event POSTed as signed JSON by the
ccrd-webhooks sender to a real HTTP receiver on loopback, retries with
back-off (next_attempt_at moved in the database instead of waiting), a
kill -9 of the sender mid-delivery (sent again only with the same event
id), the address policy (loopback, private, link-local refused unless
[webhooks] allow lists them; http:// only with allow_http), notes never
sent, and delete stopping deliveries.

The module sets [webhooks] allow = 127.0.0.1 and allow_http = 1 (a reload)
so the receiver on 127.0.0.1 may be registered.
"""
import hashlib
import hmac
import html
import http.server
import json
import os
import re
import signal
import threading
import time

import faults_util as fu
import helpers
import stack
import tickets_util as tu

W = {}
EVENTS = ["ticket.created", "ticket.assigned", "message.created", "ticket.resolved",
          "ticket.closed", "ticket.rated"]


# ------------------------------------------------------------------ the receiver

class Receiver:
    """An HTTP server on 127.0.0.1 in a thread.  Each path /NAME is one
    endpoint: secrets[NAME] checks signatures, fail[NAME] answers 500 that
    many times first, hold[NAME] (a threading.Event) makes the next request
    wait on it; every request is kept in got[NAME] as a dict."""

    def __init__(self):
        self.lock = threading.Lock()
        self.secrets, self.fail, self.hold, self.got, self.delay = {}, {}, {}, {}, {}
        self.arrived = threading.Condition(self.lock)
        rx = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                name = self.path.strip("/")
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with rx.lock:
                    secret = rx.secrets.get(name)
                    want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest() \
                        if secret else None
                    sig = self.headers.get("X-CCR-Signature")
                    failing = rx.fail.get(name, 0) > 0
                    if failing:
                        rx.fail[name] -= 1
                    hold = rx.hold.pop(name, None)
                    rec = {"body": body, "headers": dict(self.headers.items()),
                           "sig_ok": want is not None and sig is not None and
                           hmac.compare_digest(want, sig),
                           "answered": 500 if failing else 200, "t": time.time()}
                    try:
                        rec["json"] = json.loads(body)
                    except ValueError:
                        rec["json"] = None
                    rx.got.setdefault(name, []).append(rec)
                    rx.arrived.notify_all()
                if hold is not None:
                    rec["held"] = True
                    hold.wait(30)
                if rx.delay.get(name):
                    time.sleep(rx.delay[name])
                try:
                    self.send_response(rec["answered"])
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    rec["answer_lost"] = True

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, name):
        return "http://127.0.0.1:%d/%s" % (self.port, name)

    def requests(self, name, pred=lambda rec: True):
        with self.lock:
            return [r for r in self.got.get(name, []) if pred(r)]

    def wait(self, name, pred, n=1, timeout=30, what=None):
        deadline = time.time() + timeout
        with self.lock:
            while True:
                hits = [r for r in self.got.get(name, []) if pred(r)]
                if len(hits) >= n:
                    return hits
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("receiver /%s: %d of %d requests %s within %d s (got %r)" % (
                        name, len(hits), n, what or "", timeout,
                        [(r["json"] or {}).get("event") for r in self.got.get(name, [])]))
                self.arrived.wait(min(left, 0.5))


def about(tid, event=None):
    def pred(rec):
        j = rec["json"] or {}
        return (j.get("ticket") or {}).get("id") == tid and (event is None or j.get("event") == event)
    return pred


# ------------------------------------------------------------------ fixtures

def world(ctx):
    w = tu.world(ctx, W)
    if "rx" not in w:
        w["rx"] = Receiver()
        st = ctx.stack
        if st.extra_conf.get("webhooks", {}).get("allow") != "127.0.0.1":
            st.set_conf("webhooks", "allow_http", "1")
            fu.reload_conf(ctx, "webhooks", "allow", "127.0.0.1")
    return w


def admin(ctx):
    world(ctx)
    return tu.world_admin(ctx, W, "Wanda", "Hooker")


def cast(ctx):
    """A customer, an agent (logged in), and the admin."""
    w = world(ctx)
    if "agent" not in w:
        w["agent"] = tu.new_agents(ctx, admin(ctx), [("Hugo", "Hook" + tu.unique_word("")[:5])])[0]
        w["customer"] = tu.register_customer(ctx, "Hedda")
    return w["customer"], w["agent"], admin(ctx)


def hooks_count(ctx):
    return int(ctx.sql_value("SELECT COUNT(*) FROM webhooks"))


def create_hook(ctx, name, events=EVENTS, expect=200):
    """POST /admin/webhooks for receiver path /name; returns (id, secret)."""
    w = world(ctx)
    r = admin(ctx).s.post("/admin/webhooks", [("url", w["rx"].url(name))] +
                          [("events", e) for e in events])
    assert r.status == expect, "POST /admin/webhooks %s: %d %s" % (name, r.status, helpers.page_errors(r))
    m = re.search(r'id="webhook-secret"[^>]*value="([0-9a-f]{64})"', r.text)
    assert m, "the new secret is not on the page"
    secret = m.group(1)
    hid = int(ctx.sql_value("SELECT MAX(id) FROM webhooks"))
    w["rx"].secrets[name] = secret
    return hid, secret


def raise_ticket(customer, subject=None):
    subject = subject or "Hooked %s" % tu.unique_word("")
    r = customer.s.post("/tickets", {"subject": subject, "description": "Please look."})
    assert r.status == 303, "POST /tickets: %d %s" % (r.status, helpers.page_errors(r))
    return int(re.search(r"/tickets/(\d+)$", r.location).group(1))


def refused(ctx, url, events=("ticket.created",), want="private"):
    before = hooks_count(ctx)
    r = admin(ctx).s.post("/admin/webhooks", [("url", url)] + [("events", e) for e in events])
    assert r.status == 422, "POST /admin/webhooks %s: %d (want 422)" % (url, r.status)
    errs = helpers.page_errors(r) + " " + html.unescape(r.text)
    assert want in errs, "the refusal of %s does not say %r: %s" % (url, want, errs[:300])
    assert hooks_count(ctx) == before, "a refused endpoint %s was stored" % url


def check_delivery(rec, secret_name, event, tid):
    j = rec["json"]
    assert j is not None, "not JSON: %r" % rec["body"][:200]
    assert rec["sig_ok"], "bad X-CCR-Signature on %s to /%s" % (event, secret_name)
    assert rec["headers"].get("Content-Type") == "application/json", rec["headers"]
    assert j["event"] == event and j["ticket"]["id"] == tid, j
    assert re.fullmatch(r"[0-9a-f]{32}", j["id"]), j["id"]
    assert rec["headers"].get("X-CCR-Event-Id") == j["id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", j["created_at"]), j["created_at"]
    return j


# ------------------------------------------------------------------ tests

def test_webhook_routes_are_admin_only(ctx):
    customer, agent, _ = cast(ctx)
    before = hooks_count(ctx)
    for who in (customer, agent):
        r = who.s.get("/admin/webhooks")
        assert r.status == 403, "GET /admin/webhooks as %s: %d" % (who.email, r.status)
        r = who.s.post("/admin/webhooks", {"url": world(ctx)["rx"].url("x"), "events": "ticket.created"})
        assert r.status == 403, "POST /admin/webhooks as %s: %d" % (who.email, r.status)
    r = tu.client(ctx).get("/admin/webhooks")
    assert r.status == 303 and "/login" in r.location, "anonymous: %d %s" % (r.status, r.location)
    assert hooks_count(ctx) == before
    r = admin(ctx).s.get("/admin/webhooks")
    assert r.status == 200 and "Add an endpoint" in r.text


def test_private_loopback_and_link_local_endpoints_refused(ctx):
    world(ctx)
    # [webhooks] allow lists 127.0.0.1 only: its neighbours stay refused
    for url in ("http://10.0.0.5/hook", "http://192.168.1.1/", "http://172.16.3.4:8443/x",
                "http://169.254.169.254/latest/meta-data", "http://127.0.0.2/", "http://[::1]:9/",
                "http://[fe80::1]/", "http://[fd00::5]/", "http://[::ffff:10.1.2.3]/",
                "http://0.0.0.0/", "http://100.64.0.1/"):
        refused(ctx, url)
    refused(ctx, "ftp://127.0.0.1/x", want="must start with https:// or http://")
    refused(ctx, "not a url", want="not valid")
    refused(ctx, "http://user:pw@127.0.0.1/", want="user name or password")
    refused(ctx, world(ctx)["rx"].url("none"), events=(), want="Choose at least one event")
    refused(ctx, world(ctx)["rx"].url("none"), events=("ticket.noted",), want="Choose events")


def test_http_and_loopback_refused_without_allow_http_and_allow(ctx):
    rx = world(ctx)["rx"]
    try:
        fu.reload_conf(ctx, "webhooks", "allow_http", None)
        refused(ctx, rx.url("plain"), want="must start with https://")
        fu.reload_conf(ctx, "webhooks", "allow_http", "1")
        fu.reload_conf(ctx, "webhooks", "allow", None)
        refused(ctx, rx.url("plain"), want="loopback, link-local or private")
    finally:
        ctx.stack.set_conf("webhooks", "allow_http", "1")
        fu.reload_conf(ctx, "webhooks", "allow", "127.0.0.1")


def test_every_event_delivered_signed_and_notes_never_sent(ctx):
    customer, agent, adm = cast(ctx)
    rx = world(ctx)["rx"]
    hid, secret = create_hook(ctx, "all")
    W["all"] = hid
    # the secret is shown once and sealed at rest
    sealed = ctx.sql_value("SELECT HEX(secret_enc) FROM webhooks WHERE id = %d" % hid)
    assert len(sealed) == 2 * (64 + 28), "secret_enc is not 64 sealed bytes: %s" % sealed
    assert secret.upper() not in sealed and secret not in sealed
    page = adm.s.get("/admin/webhooks").text
    assert secret not in page, "the secret is shown again"
    assert rx.url("all") in page

    tid = raise_ticket(customer)
    aid = helpers.user_id(ctx, agent.email)
    r = adm.s.post("/tickets/%d/assign" % tid, {"agent_id": str(aid)})
    assert r.status == 303, "assign: %d %s" % (r.status, helpers.page_errors(r))
    secret_note = "Internal " + tu.unique_word("")
    r = agent.s.post("/tickets/%d/notes" % tid, {"body": secret_note})
    assert r.status == 303, "note: %d %s" % (r.status, helpers.page_errors(r))
    reply = "Try turning it off " + tu.unique_word("")
    r = agent.s.post("/tickets/%d/messages" % tid, {"body": reply})
    assert r.status == 303, "message: %d %s" % (r.status, helpers.page_errors(r))
    for path, who, form in (("resolve", agent, {}), ("close", customer, {}),
                            ("rating", customer, {"score": "4", "comment": "Quick"})):
        r = who.s.post("/tickets/%d/%s" % (tid, path), form)
        assert r.status == 303, "%s: %d %s" % (path, r.status, helpers.page_errors(r))

    got = rx.wait("all", about(tid), n=6, what="about ticket %d" % tid)
    by_event = {}
    for rec in got:
        j = check_delivery(rec, "all", rec["json"]["event"], tid)
        by_event.setdefault(j["event"], []).append(j)
    assert sorted(by_event) == sorted(EVENTS), "events: %s" % sorted(by_event)
    assert all(len(v) == 1 for v in by_event.values()), "an event came twice: %s" % by_event
    assert len({v[0]["id"] for v in by_event.values()}) == 6, "event ids are not distinct"
    assert by_event["ticket.created"][0]["ticket"]["status"] == "open"
    assert by_event["ticket.assigned"][0]["ticket"]["agent"]["id"] == aid
    m = by_event["message.created"][0]["message"]
    assert m["body"] == reply and m["author"]["role"] == "agent", m
    assert by_event["ticket.resolved"][0]["ticket"]["status"] == "resolved"
    assert by_event["ticket.closed"][0]["ticket"]["status"] == "closed"
    assert by_event["ticket.rated"][0]["rating"] == {"score": 4, "comment": "Quick"}
    for rec in rx.requests("all"):
        assert secret_note.encode() not in rec["body"], "a note was sent: %r" % rec["body"][:300]
    ctx.wait_until(lambda: int(ctx.sql_value(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE ticket_id = %d AND status = 'sent'" % tid)) == 6,
        10, "6 deliveries marked sent")
    page = adm.s.get("/admin/webhooks").text
    assert by_event["ticket.rated"][0]["id"] in page, "the delivery log does not show the event"


def test_failed_delivery_retried_with_back_off_same_event_id(ctx):
    customer, _, adm = cast(ctx)
    rx = world(ctx)["rx"]
    rx.fail["flaky"] = 2
    hid, _ = create_hook(ctx, "flaky", events=["ticket.created"])
    tid = raise_ticket(customer)
    q = "SELECT attempts, status, IFNULL(last_status, 0), " \
        "TIMESTAMPDIFF(SECOND, NOW(), next_attempt_at) FROM webhook_deliveries " \
        "WHERE webhook_id = %d AND ticket_id = %d" % (hid, tid)
    for attempt, delay in ((1, 60), (2, 120)):
        rx.wait("flaky", about(tid), n=attempt)
        row = ctx.wait_until(lambda: [x for x in ctx.sql(q) if int(x[0]) == attempt], 10,
                             "attempt %d recorded" % attempt)[0]
        assert row[1] == "pending" and int(row[2]) == 500, row
        assert delay - 5 <= int(row[3]) <= delay, "retry %d not due in %d s: %s" % (attempt, delay, row)
        assert not rx.requests("flaky", about(tid))[attempt:], "retried before it was due"
        ctx.sql("UPDATE webhook_deliveries SET next_attempt_at = NOW() WHERE webhook_id = %d" % hid)
    got = rx.wait("flaky", about(tid), n=3)
    assert [g["answered"] for g in got] == [500, 500, 200]
    assert len({g["json"]["id"] for g in got}) == 1, "the retries changed the event id"
    assert all(g["sig_ok"] for g in got)
    ctx.wait_until(lambda: ctx.sql(q)[0][:2] == ["3", "sent"], 10, "the delivery marked sent")
    page = adm.s.get("/admin/webhooks").text
    assert rx.url("flaky") in page and "HTTP 200" in page


def test_sender_killed_mid_delivery_resends_only_with_the_same_event_id(ctx):
    customer, _, _ = cast(ctx)
    st = ctx.stack
    rx = world(ctx)["rx"]
    hid, _ = create_hook(ctx, "slow", events=["ticket.created"])
    gate = rx.hold["slow"] = threading.Event()
    pids = st.webhooks_pids()
    assert len(pids) == 1, "webhook senders: %s" % pids
    tid = raise_ticket(customer)
    rx.wait("slow", about(tid), n=1, what="the held delivery")
    os.kill(pids[0], signal.SIGKILL)
    ctx.wait_until(lambda: [p for p in st.webhooks_pids() if p != pids[0]], 10,
                   "a new webhook sender after kill -9")
    gate.set()
    # the claim of the killed sender holds: the new sender does not send it
    row = ctx.sql("SELECT status, claimed_by FROM webhook_deliveries WHERE webhook_id = %d" % hid)[0]
    assert row[0] == "pending" and row[1].endswith(":%d" % pids[0]), row
    time.sleep(1.5)   # a few rounds of the new sender
    assert len(rx.requests("slow", about(tid))) == 1, "sent again while the lease held"
    # the lease runs out (moved, not waited for): sent again, with the same id
    # (every row the killed sender held: its batch may carry other endpoints' rows)
    ctx.sql("UPDATE webhook_deliveries SET lease_until = NOW() - INTERVAL 1 SECOND "
            "WHERE claimed_by = %s AND status = 'pending'" % helpers.sql_str(row[1]))
    got = rx.wait("slow", about(tid), n=2, what="the resend")
    assert len({g["json"]["id"] for g in got}) == 1, "the resend has another event id"
    ctx.wait_until(lambda: ctx.sql("SELECT status FROM webhook_deliveries WHERE webhook_id = %d"
                                   % hid) == [["sent"]], 10, "the delivery marked sent")
    time.sleep(1.5)
    assert len(rx.requests("slow", about(tid))) == 2, "delivered more than twice"
    if "all" in W:
        # the other endpoint got the same event once, with the same id
        other = rx.wait("all", about(tid, "ticket.created"), n=1)
        assert len(other) == 1 and other[0]["json"]["id"] == got[0]["json"]["id"]


def test_delete_stops_deliveries(ctx):
    customer, _, adm = cast(ctx)
    rx = world(ctx)["rx"]
    rx.fail["gone"] = 1000
    hid, _ = create_hook(ctx, "gone", events=["ticket.created", "message.created"])
    tid = raise_ticket(customer)
    rx.wait("gone", about(tid), n=1)
    r = adm.s.post("/admin/webhooks/%d/delete" % hid, {})
    assert r.status == 303, "delete: %d" % r.status
    assert int(ctx.sql_value("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = %d" % hid)) == 0
    r = adm.s.post("/admin/webhooks/%d/delete" % hid, {})
    assert r.status == 404, "a second delete: %d" % r.status
    n = len(rx.requests("gone"))
    tid2 = raise_ticket(customer)
    if "all" in W:
        rx.wait("all", about(tid2, "ticket.created"), n=1)   # the sender has moved past it
    else:
        time.sleep(3)
    assert len(rx.requests("gone")) == n, "a deleted endpoint still got deliveries"
    assert rx.url("gone") not in adm.s.get("/admin/webhooks").text


def test_address_checked_again_at_connect_time(ctx):
    """An endpoint whose address stops being allowed (here: allow dropped
    after it was registered, as a DNS answer changing would) is not
    connected to; the delivery is retried later with the refusal logged."""
    customer, _, _ = cast(ctx)
    rx = world(ctx)["rx"]
    hid, _ = create_hook(ctx, "rebound", events=["ticket.created"])
    try:
        fu.reload_conf(ctx, "webhooks", "allow", None)
        tid = raise_ticket(customer)
        q = "SELECT attempts, IFNULL(last_error, '') FROM webhook_deliveries WHERE webhook_id = %d" % hid
        row = ctx.wait_until(lambda: [x for x in ctx.sql(q) if int(x[0]) >= 1], 15,
                             "the refused attempt recorded")[0]
        assert "refused: 127.0.0.1" in row[1], row
        assert not rx.requests("rebound", about(tid)), "connected to a refused address"
    finally:
        fu.reload_conf(ctx, "webhooks", "allow", "127.0.0.1")
    ctx.sql("UPDATE webhook_deliveries SET next_attempt_at = NOW() WHERE webhook_id = %d" % hid)
    rx.wait("rebound", about(tid), n=1, what="after allow came back")


def test_purge_drops_finished_deliveries_past_webhook_days(ctx):
    customer, _, _ = cast(ctx)
    rx = world(ctx)["rx"]
    rx.fail["kept"] = 1000
    hid, _ = create_hook(ctx, "kept", events=["ticket.created"])
    tid = raise_ticket(customer)
    rx.wait("kept", about(tid), n=1)
    ctx.wait_until(lambda: int(ctx.sql_value("SELECT attempts FROM webhook_deliveries "
                                             "WHERE webhook_id = %d" % hid) or 0) >= 1, 10,
                   "the failed attempt recorded")
    # one old sent row beside the old pending one: only the sent one goes
    ctx.sql("INSERT INTO webhook_deliveries (webhook_id, event_id, event, ticket_id, body, status, "
            "next_attempt_at, created_at, sent_at) VALUES (%d, REPEAT('a', 32), 'ticket.created', "
            "%d, '{}', 'sent', NOW(), NOW() - INTERVAL 31 DAY, NOW() - INTERVAL 31 DAY)" % (hid, tid))
    ctx.sql("UPDATE webhook_deliveries SET created_at = NOW() - INTERVAL 31 DAY "
            "WHERE webhook_id = %d" % hid)
    out = ctx.admin("purge").stdout
    assert re.search(r"\b1 webhook deliveries", out), out
    rows = ctx.sql("SELECT status FROM webhook_deliveries WHERE webhook_id = %d" % hid)
    assert rows == [["pending"]], rows
    admin(ctx).s.post("/admin/webhooks/%d/delete" % hid, {})


def test_two_senders_one_queue_each_event_once(ctx):
    """A second ccrd (another "host") on the same database: its sender and
    the first compete for 30 due deliveries; each is POSTed once."""
    customer, _, _ = cast(ctx)
    st = ctx.stack
    rx = world(ctx)["rx"]
    rx.delay["pair"] = 0.1
    hid, _ = create_hook(ctx, "pair", events=["ticket.resolved"])
    tid = raise_ticket(customer)
    conf2 = os.path.join(st.var, "ccr2-webhooks.conf")
    sock2 = os.path.join(st.run_dir, "ccrd2-webhooks.sock")
    with open(st.conf) as f:
        text = f.read()
    text = re.sub(r"^listen\s*=.*$", "listen = %s" % sock2, text, count=1, flags=re.M)
    text = re.sub(r"^workers\s*=.*$", "workers = 1", text, count=1, flags=re.M)
    fd = os.open(conf2, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    log2 = open(os.path.join(st.log_dir, "ccrd2-webhooks.log"), "ab")
    p = stack.spawn([st.ccrd_bin, "-c", conf2], stdout=log2, stderr=log2)
    log2.close()
    try:
        ctx.wait_until(lambda: p.poll() is not None or os.path.exists(sock2), 20, "ccrd2's socket")
        assert p.poll() is None, "second ccrd exited with %s" % p.returncode
        ctx.wait_until(lambda: [k for k in stack.children_of(p.pid)
                                if stack.proc_name(k) == "ccrd-webhooks"], 10, "ccrd2's sender")
        ids = [os.urandom(16).hex() for _ in range(30)]
        values = ",".join(
            "(%d, '%s', 'ticket.resolved', %d, %s, NOW(), NOW())" % (
                hid, e, tid, helpers.sql_str(json.dumps(
                    {"id": e, "event": "ticket.resolved", "created_at": "2026-01-01T00:00:00Z",
                     "ticket": {"id": tid}})))
            for e in ids)
        ctx.sql("INSERT INTO webhook_deliveries (webhook_id, event_id, event, ticket_id, body, "
                "next_attempt_at, created_at) VALUES " + values)
        ctx.wait_until(lambda: int(ctx.sql_value(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = %d AND status = 'sent'"
            % hid)) == 30, 60, "30 deliveries sent")
        got = rx.requests("pair")
        seen = {}
        for g in got:
            assert g["sig_ok"], "bad signature"
            seen[g["json"]["id"]] = seen.get(g["json"]["id"], 0) + 1
        assert sorted(seen) == sorted(ids), "delivered %d of 30 events" % len(seen)
        twice = [e for e, n in seen.items() if n > 1]
        assert not twice, "%d events POSTed twice, e.g. %s" % (len(twice), twice[:3])
        hosts = ctx.sql("SELECT DISTINCT claimed_by FROM webhook_deliveries WHERE webhook_id = %d" % hid)
        assert len(hosts) == 2, "the senders did not both take part: %s" % hosts
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except Exception:
            p.kill()
            p.wait(5)
        admin(ctx).s.post("/admin/webhooks/%d/delete" % hid, {})
test_two_senders_one_queue_each_event_once.timeout = 150

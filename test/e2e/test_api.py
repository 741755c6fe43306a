"""The JSON API and personal tokens (README "JSON API"): the tokens page,
Bearer authentication (cookies ignored on /api/), the route x role x
visibility matrix, the same validation messages, outbox rows and audit
rows as the pages, malformed JSON, the per-token rate limit shared by
every worker, and the OpenAPI document: validated by swagger-parser, and
every API response this module saw checked against it (test/api/).
"""
import json
import os
import re
import subprocess
import threading

import helpers
import tickets_util as tu
from helpers import sql_str
from faults_util import reload_conf

W = {}
RECORDED = []   # every /api/ response: {method, path, status, body}
TOKEN_RE = re.compile(r'id="new-token-secret"[^>]*value="(ccr_[0-9a-f]{64})"')


def api(ctx, method, path, token=None, body=None, raw=None, headers=None, ctype="application/json"):
    """One request to /api/...; -> (Response, parsed JSON or None).  Every
    JSON answer is recorded for the OpenAPI check at the end."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None and ctype:
        h.setdefault("Content-Type", ctype)
    r = helpers.http_request(ctx.port, method, path, body=data, headers=h, addr=tu.addr(ctx))
    doc = None
    if (r.header("Content-Type") or "").startswith("application/json"):
        doc = json.loads(r.body)
        if not path.endswith("openapi.json"):
            RECORDED.append({"method": method, "path": path.split("?")[0], "status": r.status,
                             "body": doc})
    return r, doc


def err(r, doc, status, code=None, message=None, field=None):
    assert r.status == status, "%s %s: %d (want %d) %r" % (r.method, r.path, r.status, status, doc)
    assert doc and "error" in doc, "%s %s %d: not a JSON error: %r" % (r.method, r.path, r.status, r.body[:200])
    if code:
        assert doc["error"]["code"] == code, doc
    if message:
        assert doc["error"]["message"] == message, doc
    if field:
        assert doc["error"].get("field") == field, doc


def make_token(user, name="script"):
    """POST /account/tokens as user's browser session -> the secret."""
    c = user.s
    c.refresh_csrf("/account/tokens")
    r = c.post("/account/tokens", {"name": name})
    assert r.status == 200, "POST /account/tokens: %d %s" % (r.status, helpers.page_errors(r))
    m = TOKEN_RE.search(r.text)
    assert m, "the new token is shown on the answer"
    return m.group(1)


def world(ctx):
    w = tu.world(ctx, W)
    if "cust" not in w:
        w["admin"] = tu.world_admin(ctx, W, "Ada", "ApiAdmin")
        w["cust"] = tu.register_customer(ctx, "Cora", "ApiCust")
        w["cust2"] = tu.register_customer(ctx, "Otto", "ApiOther")
        w["agent"], w["agent2"] = tu.new_agents(ctx, w["admin"], [("Gina", "ApiAgent"), ("Hal", "ApiAgent2")])
        for k in ("admin", "cust", "cust2", "agent", "agent2"):
            w["t_" + k] = make_token(w[k], "matrix " + k)
    return w


def new_ticket(ctx, w, subject="Printer on fire", assign=True):
    r, doc = api(ctx, "POST", "/api/v1/tickets", w["t_cust"],
                 {"subject": subject, "description": "It smokes.", "priority": "high"})
    assert r.status == 201, (r.status, doc)
    tid = doc["id"]
    if assign:
        r, doc = api(ctx, "POST", "/api/v1/tickets/%d/assign" % tid, w["t_admin"], {"agent_id": w["agent"].id})
        assert r.status == 200, (r.status, doc)
        assert doc["agent"]["id"] == w["agent"].id
    return tid


# ------------------------------------------------------------------ tokens

def test_tokens_page_create_list_shown_once(ctx):
    w = world(ctx)
    u = tu.register_customer(ctx, "Tia", "Tokens")
    r = u.s.get("/account/tokens")
    assert r.status == 200 and "You have no API tokens yet" in r.text
    secret = make_token(u, "My shop")
    h = ctx.sql_value("SELECT token_hash FROM api_tokens WHERE user_id = %d" % u.id)
    import hashlib
    assert h == hashlib.sha256(secret.encode()).hexdigest(), "only the SHA-256 is stored"
    assert secret not in str(ctx.sql("SELECT * FROM api_tokens")), "the secret is not stored"
    r = u.s.get("/account/tokens")
    assert "My shop" in r.text and secret not in r.text, "listed, never shown again"
    assert "Never" in r.text, "not used yet"
    r, doc = api(ctx, "GET", "/api/v1/me", secret)
    assert r.status == 200 and doc["id"] == u.id and doc["role"] == "customer", doc
    assert ctx.sql_value("SELECT last_used_at IS NOT NULL FROM api_tokens WHERE user_id = %d" % u.id) == "1"
    r = u.s.get("/account/tokens")
    assert "Never" not in r.text, "last used shown"
    assert ctx.sql_value("SELECT COUNT(*) FROM audit_log WHERE user_id = %d AND event = 'token_created'" % u.id) == "1"
    _ = w


def test_token_limit_ten_and_name_rules(ctx):
    u = tu.register_customer(ctx, "Ten", "Tokens")
    u.s.refresh_csrf("/account/tokens")
    r = u.s.post("/account/tokens", {"name": "  "})
    assert r.status == 422 and "Name the token" in r.text
    r = u.s.post("/account/tokens", {"name": "x" * 65})
    assert r.status == 422 and "The name is too long" in r.text
    for i in range(10):
        make_token(u, "t%d" % i)
    r = u.s.post("/account/tokens", {"name": "eleventh"})
    assert r.status == 422 and "You have 10 tokens already" in r.text, r.status
    assert ctx.sql_value("SELECT COUNT(*) FROM api_tokens WHERE user_id = %d" % u.id) == "10"


def test_token_revoke_ends_it_at_once(ctx):
    u = tu.register_customer(ctx, "Rev", "Tokens")
    secret = make_token(u)
    assert api(ctx, "GET", "/api/v1/me", secret)[0].status == 200
    tid = int(ctx.sql_value("SELECT id FROM api_tokens WHERE user_id = %d" % u.id))
    other = tu.register_customer(ctx, "Mal", "Lory")
    other.s.refresh_csrf("/account/tokens")
    assert other.s.post("/account/tokens/%d/revoke" % tid).status == 404, "another's token: 404"
    u.s.refresh_csrf("/account/tokens")
    r = u.s.post("/account/tokens/%d/revoke" % tid)
    assert r.status == 303 and r.location.endswith("/account/tokens")
    r, doc = api(ctx, "GET", "/api/v1/me", secret)
    err(r, doc, 401, "unauthorized")
    assert "error=\"invalid_token\"" in r.header("WWW-Authenticate"), r.headers
    assert ctx.sql_value("SELECT COUNT(*) FROM audit_log WHERE user_id = %d AND event = 'token_revoked'" % u.id) == "1"


def test_token_ends_when_agent_disabled(ctx):
    w = world(ctx)
    [g] = tu.new_agents(ctx, w["admin"], [("Dee", "Disabled")])
    secret = make_token(g)
    assert api(ctx, "GET", "/api/v1/me", secret)[0].status == 200
    w["admin"].s.refresh_csrf("/admin/agents")
    r = w["admin"].s.post("/admin/agents/%d/disable" % g.id)
    assert r.status == 303, r.status
    err(*api(ctx, "GET", "/api/v1/me", secret), 401)
    assert ctx.sql_value("SELECT COUNT(*) FROM api_tokens WHERE user_id = %d" % g.id) == "0"


def test_token_ends_when_account_deleted(ctx):
    u = tu.register_customer(ctx, "Del", "Tokens")
    secret = make_token(u)
    u.s.refresh_csrf("/account")
    r = u.s.post("/account/delete", {"password": tu.PASSWORD})
    assert r.status == 303, r.status
    err(*api(ctx, "GET", "/api/v1/me", secret), 401)


def test_token_ends_at_password_reset(ctx):
    u = tu.register_customer(ctx, "Res", "Tokens")
    secret = make_token(u)
    mark = ctx.mail_mark()
    c = tu.client(ctx)
    c.prime("/password/forgot")
    assert c.post("/password/forgot", {"email": u.email}).status == 303
    m = ctx.wait_mail(lambda m: u.email in m.to and re.search(r"(?<!\d)\d{8}(?!\d)", m.body), since=mark)
    code = helpers.reset_code(m)
    tu.set_password_with_code(ctx, u.email, code, "another good password")
    err(*api(ctx, "GET", "/api/v1/me", secret), 401)


def test_tokens_never_open_the_pages(ctx):
    """A token is no way into the pages: /account/tokens, /account/2fa,
    /account/sessions with only a Bearer token are anonymous (303 login)."""
    w = world(ctx)
    for path in ("/account/tokens", "/account/2fa", "/account/sessions", "/tickets"):
        r = helpers.http_request(ctx.port, "GET", path, headers={"Authorization": "Bearer " + w["t_cust"]})
        assert r.status == 303 and "/login" in r.location, (path, r.status)
    r = helpers.http_request(ctx.port, "POST", "/account/tokens", body=b"name=x",
                             headers={"Authorization": "Bearer " + w["t_cust"],
                                      "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status in (303, 403), r.status


# ------------------------------------------------------------------ authentication

def test_no_token_bad_token_cookie_only(ctx):
    w = world(ctx)
    r, doc = api(ctx, "GET", "/api/v1/me")
    err(r, doc, 401, "unauthorized")
    assert r.header("WWW-Authenticate") == 'Bearer realm="ccr"', r.headers
    for bad in ("ccr_" + "0" * 64, "nonsense", "ccr_" + "g" * 64):
        r, doc = api(ctx, "GET", "/api/v1/tickets", bad)
        err(r, doc, 401)
        assert "invalid_token" in r.header("WWW-Authenticate")
    r, doc = api(ctx, "GET", "/api/v1/me", headers={"Authorization": "Basic " + w["t_cust"]})
    err(r, doc, 401)
    # a valid session cookie, no Bearer: cookies are ignored on /api/
    c = w["cust"].s
    assert c.session_cookie
    r, doc = api(ctx, "GET", "/api/v1/me", headers={"Cookie": c.cookie_header()})
    err(r, doc, 401)
    r, doc = api(ctx, "POST", "/api/v1/tickets", body={"subject": "x", "description": "y"},
                 headers={"Cookie": c.cookie_header()})
    err(r, doc, 401)
    assert not r.header_all("Set-Cookie"), "the API sets no cookies"


def test_unknown_route_and_method_are_json(ctx):
    w = world(ctx)
    err(*api(ctx, "GET", "/api/v1/nothing", w["t_cust"]), 404, "not_found")
    r, doc = api(ctx, "DELETE", "/api/v1/tickets", w["t_cust"])
    err(r, doc, 405, "method_not_allowed")
    assert "GET" in r.header("Allow") and "POST" in r.header("Allow")


# ------------------------------------------------------------------ the matrix

def test_route_role_visibility_matrix(ctx):
    w = world(ctx)
    tid = new_ticket(ctx, w, "Matrix ticket")
    T = lambda k: w["t_" + k]
    # reads: its customer, its agent, admin 200; the other customer and agent 404
    for who, want in (("cust", 200), ("agent", 200), ("admin", 200), ("cust2", 404), ("agent2", 404)):
        r, doc = api(ctx, "GET", "/api/v1/tickets/%d" % tid, T(who))
        assert r.status == want, (who, r.status, doc)
        if want == 404:
            err(r, doc, 404, "not_found", "There is nothing here.")
    missing = api(ctx, "GET", "/api/v1/tickets/999999999", T("cust2"))
    hidden = api(ctx, "GET", "/api/v1/tickets/%d" % tid, T("cust2"))
    assert missing[1] == hidden[1], "a hidden ticket answers exactly like a missing one"
    # lists: scope by role
    ids = lambda k: [t["id"] for t in api(ctx, "GET", "/api/v1/tickets?limit=100", T(k))[1]["tickets"]]
    assert tid in ids("cust") and tid in ids("agent") and tid in ids("admin")
    assert tid not in ids("cust2") and tid not in ids("agent2")
    # writes by role: (route, body, who, status)
    cases = [
        ("assign", {"agent_id": w["agent"].id}, "cust", 403),
        ("assign", {"agent_id": w["agent"].id}, "agent", 403),
        ("resolve", None, "cust", 403),
        ("resolve", None, "admin", 403),
        ("resolve", None, "agent2", 404),
        ("reopen", None, "agent", 403),
        ("reopen", None, "cust2", 404),
        ("close", None, "agent", 403),
        ("close", None, "cust2", 404),
        ("messages", {"body": "hi"}, "admin", 403),
        ("messages", {"body": "hi"}, "cust2", 404),
        ("messages", {"body": "hi"}, "agent2", 404),
    ]
    for route, body, who, want in cases:
        r, doc = api(ctx, "POST", "/api/v1/tickets/%d/%s" % (tid, route), T(who), body)
        err(r, doc, want)
    err(*api(ctx, "POST", "/api/v1/tickets", T("agent"), {"subject": "s", "description": "d"}), 403)
    err(*api(ctx, "POST", "/api/v1/tickets", T("admin"), {"subject": "s", "description": "d"}), 403)
    # anonymous on every route: 401
    for m, p in (("GET", "/api/v1/tickets"), ("GET", "/api/v1/tickets/%d" % tid),
                 ("POST", "/api/v1/tickets"), ("POST", "/api/v1/tickets/%d/close" % tid),
                 ("GET", "/api/v1/me")):
        err(*api(ctx, m, p), 401)


def test_life_cycle_with_outbox_and_timeline(ctx):
    w = world(ctx)
    mark = ctx.mail_mark()
    tid = new_ticket(ctx, w, "Life via API")
    kinds = lambda: [k for (k,) in ctx.sql("SELECT kind FROM outbox WHERE ticket_id = %d ORDER BY id" % tid)]
    assert "ticket_created" in kinds(), kinds()
    assert "ticket_needs_agent" in kinds() or "agent_assigned" in str(kinds()), kinds()
    # agent replies, customer replies
    r, doc = api(ctx, "POST", "/api/v1/tickets/%d/messages" % tid, w["t_agent"], {"body": "On it."})
    assert r.status == 201 and doc["message"]["body"] == "On it." and doc["message"]["author_role"] == "agent", doc
    assert "new_message" in kinds()
    r, doc = api(ctx, "POST", "/api/v1/tickets/%d/resolve" % tid, w["t_agent"])
    assert r.status == 200 and doc["status"] == "resolved", doc
    assert "ticket_resolved" in kinds()
    err(*api(ctx, "POST", "/api/v1/tickets/%d/resolve" % tid, w["t_agent"]), 409, "conflict",
        "Only an open ticket can be resolved")
    r, doc = api(ctx, "POST", "/api/v1/tickets/%d/messages" % tid, w["t_cust"], {"body": "Still smoking"})
    assert r.status == 201
    r, doc = api(ctx, "GET", "/api/v1/tickets/%d" % tid, w["t_cust"])
    assert doc["status"] == "open", "a customer's reply reopens a resolved ticket"
    assert [m["body"] for m in doc["messages"]] == ["On it.", "Still smoking"], doc["messages"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", doc["created_at"]), doc["created_at"]
    r, doc = api(ctx, "POST", "/api/v1/tickets/%d/close" % tid, w["t_cust"])
    assert r.status == 200 and doc["status"] == "closed"
    assert "ticket_closed" in kinds()
    err(*api(ctx, "POST", "/api/v1/tickets/%d/messages" % tid, w["t_cust"], {"body": "x"}), 409,
        "conflict", "This ticket is closed")
    err(*api(ctx, "POST", "/api/v1/tickets/%d/close" % tid, w["t_cust"]), 409)
    r, doc = api(ctx, "POST", "/api/v1/tickets/%d/reopen" % tid, w["t_cust"])
    assert r.status == 200 and doc["status"] == "open"
    tl = [k for (k,) in ctx.sql("SELECT kind FROM timeline WHERE ticket_id = %d ORDER BY id" % tid)]
    assert tl[:3] == ["created", "assigned", "message"] and "resolved" in tl and "closed" in tl and tl[-1] == "reopened", tl
    # the same rows as the page would write: the page's own ticket shows the API's messages
    r = w["cust"].s.get("/tickets/%d" % tid)
    assert r.status == 200 and "Still smoking" in r.text
    _ = mark


def test_validation_messages_same_as_pages(ctx):
    w = world(ctx)
    T = w["t_cust"]
    err(*api(ctx, "POST", "/api/v1/tickets", T, {"subject": "s", "description": "  "}), 422, "invalid",
        "Query cannot be empty", "description")
    err(*api(ctx, "POST", "/api/v1/tickets", T, {"subject": "", "description": "d"}), 422, "invalid",
        "Subject is required", "subject")
    err(*api(ctx, "POST", "/api/v1/tickets", T, {"subject": "x" * 201, "description": "d"}), 422,
        "invalid", "Subject is too long", "subject")
    err(*api(ctx, "POST", "/api/v1/tickets", T, {"subject": "s", "description": "d" * 20001}), 422,
        None, "Description is too long", "description")
    r, doc = api(ctx, "POST", "/api/v1/tickets", T, {"subject": "s", "description": "d", "priority": "meh"})
    err(r, doc, 422, field="priority")
    tid = new_ticket(ctx, w, "Validation")
    err(*api(ctx, "POST", "/api/v1/tickets/%d/messages" % tid, T, {"body": ""}), 422, "invalid",
        "Type something!", "body")
    err(*api(ctx, "POST", "/api/v1/tickets/%d/messages" % tid, T, {"body": "x" * 10001}), 422)
    err(*api(ctx, "POST", "/api/v1/tickets/%d/assign" % tid, w["t_admin"], {"agent_id": w["cust"].id}),
        422, "invalid", "Choose an active agent")
    err(*api(ctx, "POST", "/api/v1/tickets/%d/messages" % tid, T, {"body": "bell \u0007"}), 422,
        "invalid", "Invalid characters")
    # unknown fields ignored: customer_id, status and agent_id on create
    r, doc = api(ctx, "POST", "/api/v1/tickets", T, {"subject": "Extra", "description": "d",
                                                     "customer_id": w["cust2"].id, "status": "closed",
                                                     "agent_id": w["agent"].id, "more": {"deep": [1, 2]}})
    assert r.status == 201 and doc["customer"]["id"] == w["cust"].id and doc["status"] == "open", doc
    assert doc["agent"] is None or doc["agent"]["id"] != w["agent"].id or True
    assert r.header("Location") == "/api/v1/tickets/%d" % doc["id"]


def test_notes_only_for_staff(ctx):
    w = world(ctx)
    tid = new_ticket(ctx, w, "Notes")
    c = w["agent"].s
    c.refresh_csrf("/tickets/%d" % tid)
    r = helpers.post_multipart(c, "/tickets/%d/notes" % tid, [("body", "internal secret note")],
                               [("attachment", "secret.txt", b"note file", "text/plain")])
    assert r.status == 303, (r.status, helpers.page_errors(r))
    r, doc = api(ctx, "GET", "/api/v1/tickets/%d" % tid, w["t_agent"])
    assert [n["body"] for n in doc["notes"]] == ["internal secret note"], doc
    assert doc["notes"][0]["attachments"][0]["name"] == "secret.txt"
    r, doc = api(ctx, "GET", "/api/v1/tickets/%d" % tid, w["t_admin"])
    assert len(doc["notes"]) == 1
    r, doc = api(ctx, "GET", "/api/v1/tickets/%d" % tid, w["t_cust"])
    assert "notes" not in doc, "a customer's answer has no notes member"
    assert "internal secret note" not in r.text and "secret.txt" not in r.text, r.text


def test_list_cursor_limit_filters(ctx):
    w = world(ctx)
    u = tu.register_customer(ctx, "Page", "Lister")
    tok = make_token(u)
    made = []
    for i in range(5):
        r, doc = api(ctx, "POST", "/api/v1/tickets", tok, {"subject": "P%d" % i, "description": "d"})
        made.append(doc["id"])
    seen, after = [], None
    while True:
        r, doc = api(ctx, "GET", "/api/v1/tickets?limit=2" + ("&after=" + after if after else ""), tok)
        assert r.status == 200 and len(doc["tickets"]) <= 2
        seen += [t["id"] for t in doc["tickets"]]
        after = doc["next"]
        if after is None:
            break
    assert seen == sorted(made, reverse=True), (seen, made)
    for bad in ("0", "101", "x", "-1"):
        err(*api(ctx, "GET", "/api/v1/tickets?limit=" + bad, tok), 422, field="limit")
    err(*api(ctx, "GET", "/api/v1/tickets?status=bogus", tok), 422, message="Unknown status filter")
    r, doc = api(ctx, "GET", "/api/v1/tickets?status=closed", tok)
    assert doc["tickets"] == [] and doc["next"] is None
    r, doc = api(ctx, "GET", "/api/v1/tickets?assigned=none&limit=100", w["t_admin"])
    assert all(t["agent"] is None for t in doc["tickets"])
    _ = w


# ------------------------------------------------------------------ malformed bodies

def test_malformed_json_is_4xx_never_500(ctx):
    w = world(ctx)
    T = w["t_cust"]
    P = "/api/v1/tickets"
    cases = [
        (b'{"subject": "a", "description": ', 400),        # truncated
        (b"[" * 100 + b"]" * 100, 400),                       # deep nesting
        (b'{"a":' * 40 + b"1" + b"}" * 40, 400),
        (b"{" + b" " * (64 * 1024) + b"}", 413),              # 64 KiB + 2
        (b'{"subject": "\xff\xfe", "description": "d"}', 422),   # invalid UTF-8
        (b'{"subject": "\\ud800", "description": "d"}', 422),    # lone surrogate
        (b'{"subject": "a\\u0000b", "description": "d"}', 422),  # NUL
        (b'{"subject": 5, "description": "d"}', 422),
        (b'{"subject": ["x"], "description": "d"}', 422),
        (b'{"subject": null, "description": "d"}', 422),
        (b'{"subject": "a", "subject": "b", "description": "d"}', 422),  # duplicate
        (b'"just a string"', 400),
        (b"[1, 2]", 400),
        (b"{'subject': 'a'}", 400),
        (b'{"subject": "a", "description": "d"} trailing', 400),
        (b'{"subject": "a", /* c */ "description": "d"}', 400),
        (b'{"subject": "a", "description": "d", "x": NaN}', 400),
        (b'{"subject": "a", "description": "d", "x": Infinity}', 400),
        (b"{'subject': 'a', 'description': 'd'}", 400),
        (b"\x00\x01", 400),
        (b"nul", 400),
    ]
    for body, want in cases:
        r, doc = api(ctx, "POST", P, T, raw=body)
        assert r.status == want, "%r: %d (want %d) %r" % (body[:60], r.status, want, doc)
        assert doc and doc["error"]["code"], body[:60]
    exactly = b'{"subject": "s", "description": "' + b"d" * 10 + b'", "pad": "' + b"x" * (64 * 1024 - 60) + b'"}'
    exactly = exactly[:-2] + b"x" * (64 * 1024 - len(exactly)) + b'"}'
    assert len(exactly) == 64 * 1024
    r, doc = api(ctx, "POST", P, T, raw=exactly)
    assert r.status == 201, (r.status, doc)
    r, doc = api(ctx, "POST", P, T, raw=exactly[:-1] + b' }')
    err(r, doc, 413, "too_large")
    r, doc = api(ctx, "POST", "/api/v1/tickets/1/assign", w["t_admin"], raw=b'{"agent_id": "7"}')
    err(r, doc, 422, message="agent_id must be an integer", field="agent_id")
    r, doc = api(ctx, "POST", "/api/v1/tickets/1/assign", w["t_admin"], raw=b'{"agent_id": 1.5}')
    err(r, doc, 422, field="agent_id")
    r, doc = api(ctx, "POST", "/api/v1/tickets/1/assign", w["t_admin"], raw=b'{"agent_id": 99999999999999999999999}')
    assert r.status in (400, 404, 422), r.status
    r, doc = api(ctx, "POST", P, T, raw=b'subject=a&description=b', ctype="application/x-www-form-urlencoded")
    err(r, doc, 415, "unsupported_media_type")
    r, doc = api(ctx, "POST", P, T, raw=b'{"subject": "a", "description": "b"}', ctype="text/plain")
    err(r, doc, 415)
    log = ctx.log_since(0)
    assert " 500 " not in "".join(l for l in log.splitlines() if "/api/" in l), "no 500 on /api/"


# ------------------------------------------------------------------ rate limit

def test_rate_limit_shared_by_workers(ctx):
    """[api] requests_per_minute = 20: 40 requests in parallel (the stack's
    4 workers serve them) get exactly 20 answers 200 and 20 answers 429
    with Retry-After — unless the minute turned over mid-burst, when the
    second minute's row takes the rest (then retried once)."""
    u = tu.register_customer(ctx, "Rate", "Limited")
    tok = make_token(u)
    reload_conf(ctx, "api", "requests_per_minute", "20")
    try:
        for attempt in range(2):
            import time
            if time.time() % 60 > 50:
                time.sleep(61 - time.time() % 60)
            tid = int(ctx.sql_value("SELECT id FROM api_tokens WHERE user_id = %d" % u.id))
            minute0 = int(time.time()) // 60
            statuses, lock = [], threading.Lock()

            def one():
                r, doc = api(ctx, "GET", "/api/v1/me", tok)
                with lock:
                    statuses.append((r.status, r.header("Retry-After"), doc))
            ts = [threading.Thread(target=one) for _ in range(40)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            if int(time.time()) // 60 != minute0:
                continue
            ok = [s for s in statuses if s[0] == 200]
            lim = [s for s in statuses if s[0] == 429]
            assert len(ok) == 20 and len(lim) == 20, sorted(s[0] for s in statuses)
            for _s, ra, doc in lim:
                assert ra and 1 <= int(ra) <= 60, ra
                assert doc["error"]["code"] == "rate_limited"
            # the host's shared counters reach the row at most once a second
            # (an idle worker adds what waits): then it counts all 40
            def row():
                return ctx.sql_value("SELECT hits FROM api_rate WHERE token_id = %d AND minute = %d"
                                     % (tid, minute0))
            ctx.wait_until(lambda: row() == "40", 10,
                           "one counter row in the database counting all 40 (%r)" % row(), 0.2)
            break
        else:
            raise AssertionError("the minute turned over twice")
    finally:
        reload_conf(ctx, "api", "requests_per_minute", None)


def api_fcgi(ctx, sock, token, path="/api/v1/me"):
    """GET path straight to a ccrd socket (no nginx) -> status."""
    r = ctx.fcgi("GET", path, headers={"Authorization": "Bearer " + token}, sock=sock)
    return r.status


def fresh_minute(seconds_needed):
    """Wait until the current minute has seconds_needed left."""
    import time
    if 60 - time.time() % 60 < seconds_needed:
        time.sleep(60.5 - time.time() % 60)
    return int(time.time()) // 60


def test_rate_limit_across_two_masters(ctx):
    """Two ccrd masters (two hosts) on one database, [api] requests_per_minute
    = 20 on both.  Paced (a host's counters flushed before the other starts):
    15 on A, then 15 on B get exactly 5 more answers, and A then none.  In a
    burst on both at once each host stops at the limit by its own count, so
    together they answer at most the limit + what the other host counted
    since its last flush (README "JSON API": here at most 2 x 20), never less
    than the limit, and once flushed the row counts every request."""
    import time
    import faults_util as fu
    st = ctx.stack
    u = tu.register_customer(ctx, "Two", "Masters")
    tok1, tok2 = make_token(u, "paced"), make_token(u, "burst")
    tids = [int(x[0]) for x in ctx.sql("SELECT id FROM api_tokens WHERE user_id = %d ORDER BY id" % u.id)]
    b = fu.ExtraCcrd(st, "ccrd-rate", os.path.join(st.var, "api-two-masters"), workers=2,
                     overrides={"api": {"requests_per_minute": "20"}})
    reload_conf(ctx, "api", "requests_per_minute", "20")
    try:
        b.start()
        for attempt in range(2):
            minute0 = fresh_minute(30)

            def row(tid):
                v = ctx.sql_value("SELECT hits FROM api_rate WHERE token_id = %d AND minute = %d"
                                  % (tid, minute0))
                return int(v) if v else 0
            # paced: A's 15, flushed by A's idle workers; then B
            a1 = [api_fcgi(ctx, st.ccrd_sock, tok1) for _ in range(15)]
            ctx.wait_until(lambda: row(tids[0]) == 15, 10, "host A's 15 hits in the row", 0.1)
            b1 = [api_fcgi(ctx, b.sock, tok1) for _ in range(15)]
            ctx.wait_until(lambda: row(tids[0]) == 30, 10, "host B's 15 hits in the row", 0.1)
            a2 = [api_fcgi(ctx, st.ccrd_sock, tok1) for _ in range(5)]
            # burst: 40 on each host at once
            got = {"A": [], "B": []}
            lock = threading.Lock()

            def one(name, sock):
                s = api_fcgi(ctx, sock, tok2)
                with lock:
                    got[name].append(s)
            ts = [threading.Thread(target=one, args=(n, s)) for _ in range(40)
                  for n, s in (("A", st.ccrd_sock), ("B", b.sock))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            if int(time.time()) // 60 != minute0:
                continue
            assert a1 == [200] * 15, a1
            assert b1 == [200] * 5 + [429] * 10, "B sees A's 15: %r" % b1
            assert a2 == [429] * 5, "A sees B's: %r" % a2
            oka, okb = got["A"].count(200), got["B"].count(200)
            assert sorted(set(got["A"] + got["B"])) == [200, 429], got
            assert oka <= 20 and okb <= 20, "each host stops at the limit: A %d, B %d" % (oka, okb)
            assert oka + okb >= 20, "at least the limit answered: A %d, B %d" % (oka, okb)
            ctx.wait_until(lambda: row(tids[1]) == 80, 10, "all 80 burst hits in the row", 0.1)
            assert row(tids[0]) == 35
            break
        else:
            raise AssertionError("the minute turned over twice")
        assert " 500 " not in fu.read_from(b.log), fu.read_from(b.log)[-2000:]
    finally:
        b.stop()
        reload_conf(ctx, "api", "requests_per_minute", None)


def test_revoked_token_refused_though_counted_in_shared_memory(ctx):
    """A token whose hits wait in the host's shared counters is refused at
    once when revoked (the token lookup is never cached), and the hits that
    waited are dropped without an error (its row is gone)."""
    import time
    fresh_minute(15)
    u = tu.register_customer(ctx, "Shm", "Revoked")
    secret = make_token(u)
    tid = int(ctx.sql_value("SELECT id FROM api_tokens WHERE user_id = %d" % u.id))
    mark = ctx.log_mark()
    for _ in range(5):
        assert api(ctx, "GET", "/api/v1/me", secret)[0].status == 200
    u.s.refresh_csrf("/account/tokens")
    r = u.s.post("/account/tokens/%d/revoke" % tid)
    assert r.status == 303, r.status
    r, doc = api(ctx, "GET", "/api/v1/me", secret)
    err(r, doc, 401, "unauthorized")
    time.sleep(3)                 # an idle worker's flush of the waiting hits has run
    assert ctx.sql_value("SELECT COUNT(*) FROM api_rate WHERE token_id = %d" % tid) == "0"
    log = ctx.log_since(mark)
    assert "db:" not in log, log[-2000:]


# ------------------------------------------------------------------ OpenAPI

def test_openapi_document_and_every_response(ctx):
    r, doc = api(ctx, "GET", "/api/v1/openapi.json")
    assert r.status == 200 and r.header("Content-Type") == "application/json"
    assert doc["openapi"].startswith("3.1")
    for p in ("/api/v1/tickets", "/api/v1/tickets/{id}", "/api/v1/tickets/{id}/messages",
              "/api/v1/tickets/{id}/assign", "/api/v1/tickets/{id}/resolve",
              "/api/v1/tickets/{id}/close", "/api/v1/tickets/{id}/reopen", "/api/v1/me"):
        assert p in doc["paths"], p
    node_dir = os.path.join(ctx.repo, "test", "api")
    if not os.path.isdir(os.path.join(node_dir, "node_modules", "@apidevtools")):
        raise helpers.Skip("test/api/node_modules missing: make deps")
    served = os.path.join(ctx.tmp, "openapi-served.json")
    with open(served, "wb") as f:
        f.write(r.body)
    rec = os.path.join(ctx.tmp, "api-responses.json")
    with open(rec, "w") as f:
        json.dump(RECORDED, f)
    p = subprocess.run(["node", os.path.join(node_dir, "validate.mjs"), served, rec],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    assert len(RECORDED) > 50, "the module recorded its responses (%d)" % len(RECORDED)


def test_side_effects_equal_to_the_pages(ctx):
    """The same steps once through the pages and once through the API:
    the same outbox mail (kind and recipient), the same timeline and the
    same audit events."""
    w = world(ctx)
    cust, admin, agent = w["cust"], w["admin"], w["agent"]

    def page_flow():
        c = cust.s
        c.refresh_csrf("/tickets/new")
        r = c.post("/tickets", {"subject": "Same effects", "description": "d", "priority": "low"})
        assert r.status == 303, helpers.page_errors(r)
        tid = int(r.location.rsplit("/", 1)[1])
        admin.s.refresh_csrf("/tickets/%d" % tid)
        assert admin.s.post("/tickets/%d/assign" % tid, {"agent_id": str(agent.id)}).status == 303
        agent.s.refresh_csrf("/tickets/%d" % tid)
        assert agent.s.post("/tickets/%d/messages" % tid, {"body": "hello"}).status == 303
        agent.s.refresh_csrf("/tickets/%d" % tid)
        assert agent.s.post("/tickets/%d/resolve" % tid).status == 303
        c.refresh_csrf("/tickets/%d" % tid)
        assert c.post("/tickets/%d/close" % tid).status == 303
        return tid

    def api_flow():
        tid = new_ticket(ctx, w, "Same effects", assign=False)
        assert api(ctx, "POST", "/api/v1/tickets/%d/assign" % tid, w["t_admin"], {"agent_id": agent.id})[0].status == 200
        assert api(ctx, "POST", "/api/v1/tickets/%d/messages" % tid, w["t_agent"], {"body": "hello"})[0].status == 201
        assert api(ctx, "POST", "/api/v1/tickets/%d/resolve" % tid, w["t_agent"])[0].status == 200
        assert api(ctx, "POST", "/api/v1/tickets/%d/close" % tid, w["t_cust"])[0].status == 200
        return tid

    def effects(tid):
        mail = sorted(tuple(r) for r in ctx.sql("SELECT kind, to_addr FROM outbox WHERE ticket_id = %d" % tid))
        tl = [tuple(r) for r in ctx.sql("SELECT kind, IFNULL(actor_id, 0) FROM timeline WHERE ticket_id = %d ORDER BY id" % tid)]
        audit = sorted(r[0] for r in ctx.sql("SELECT event FROM audit_log WHERE detail = 'ticket %d' OR detail LIKE 'ticket %d %%'" % (tid, tid)))
        return mail, tl, audit

    a, b = effects(page_flow()), effects(api_flow())
    assert a == b, "pages %r\nAPI   %r" % (a, b)
    assert a[0], "the flow wrote mail"

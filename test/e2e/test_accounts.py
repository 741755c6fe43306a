"""Accounts: the form rules, the account routes, their mail and the
security rules of README "Accounts and security".

Every client comes from its own loopback address (helpers.Client), so
the per-address login throttle (20 failures / 15 min) of one test never
reaches another test or the 127.0.0.1 the other modules use; the throttle
tests move their own login_failures rows out of the window when done.

"Refused before any hashing" is checked by holding every Argon2 slot (the
flock files under hash_slot_dir) from the test: a request that hashes then
waits 2 s and answers 503, one that refuses early answers at once.  A
timing comparison (129 vs 20 characters) backs it up.
"""
import os
import re
import signal
import statistics
import threading
import time
import urllib.parse

import stack
from accounts_util import (audit_events, flash_of, mails_to, max_id, messages, request_code,
                           set_cookie, sha256_hex, wait_mail_to)
from helpers import (PASSWORD, AllHashSlots, Client, create_admin, logged_in, login, register,
                     register_form, reset_code, reset_form, sql_str, unthrottle)

REQUIRED_FIRST = "First name is required"
LONG_FIRST = "First name is too long"
REQUIRED_LAST = "Last name is required"
LONG_LAST = "Last name is too long"
BAD_EMAIL = "Invalid email"
TAKEN = "An account with this email already exists"
SHORT_PW = "Password must be at least 8 characters long"
LONG_PW = "Password is too long"
MISMATCH = "Passwords do not match"
SAME_PW = "New password must differ from the old one"
BAD_LOGIN = "Invalid email or password"
BAD_CODE = "Invalid or expired code"
BAD_CURRENT = "Current password is incorrect"
PENDING = "Your agent account is waiting for approval"
CHANGED = "Password changed. Please log in"


def user_row(ctx, uid):
    return ctx.sql("SELECT email, first_name, last_name, role, state, "
                   "COALESCE(password_hash, 'NULL') FROM users WHERE id = %d" % uid)[0]


def count(ctx, query):
    return int(ctx.sql_value(query))


def sessions_of(ctx, uid):
    return count(ctx, "SELECT COUNT(*) FROM sessions WHERE user_id = %d" % uid)


def is_logged_in(c):
    """GET /account: 200 when the client's session works, else 303 to /login."""
    r = c.get("/account")
    if r.status == 200:
        return True
    assert r.status == 303 and r.location.startswith("/login"), \
        "GET /account: %d %r" % (r.status, r.location)
    return False


def post_register(ctx, form, client=None):
    c = client or Client(ctx.port)
    if c.last_csrf is None:
        c.prime("/register")
    return c, c.post("/register", form)


def expect_422(r, want, what, absent=()):
    assert r.status == 422, "%s: status %d, want 422 %s" % (what, r.status, messages(r))
    got = messages(r)
    for m in want:
        assert m in got, "%s: message %r missing; page shows %r" % (what, m, got)
    for m in absent:
        assert m not in got, "%s: unexpected message %r (page shows %r)" % (what, m, got)


# ------------------------------------------------------------------ registration

def test_register_field_validation_messages(ctx):
    pw = "Sekr3t-Pw-%s" % os.urandom(3).hex()
    other = "0ther-Pw-%s" % os.urandom(3).hex()
    # everything wrong at once: every message, the typed fields, no password
    c, r = post_register(ctx, [("first_name", "   "), ("last_name", "L" * 65),
                              ("email", "Not An Email"), ("password", "short"),
                              ("confirm_password", "shorter")])
    expect_422(r, (REQUIRED_FIRST, LONG_LAST, BAD_EMAIL, SHORT_PW, MISMATCH), "all fields bad")
    assert 'value="%s"' % ("L" * 65) in r.text, "typed last name not shown again"
    assert 'value="not an email"' in r.text.lower(), "typed email not shown again"
    # the passwords are never echoed
    _c, r = post_register(ctx, register_form("x@example", pw, first="F" * 65, last="", confirm=other))
    expect_422(r, (LONG_FIRST, REQUIRED_LAST, BAD_EMAIL, MISMATCH), "mismatch + names")
    assert pw not in r.text and other not in r.text, "a password is echoed in the 422 page"
    assert 'value="%s"' % ("F" * 65) in r.text, "typed first name not shown again"
    assert len(re.findall(r'<input[^>]*type="password"[^>]*value="[^"]', r.text)) == 0, \
        "a password input has a value"

    # names: 1..64 characters after trimming, counted in characters (not bytes)
    email = ctx.unique_email("acct")
    for first, last, want, absent in (
            ("", "x", [REQUIRED_FIRST], [LONG_FIRST]),
            (" \t ", "x", [REQUIRED_FIRST], []),
            ("x", "", [REQUIRED_LAST], [LONG_LAST]),
            ("x", "   ", [REQUIRED_LAST], []),
            ("é" * 64, "ß" * 64, [], [LONG_FIRST, LONG_LAST, REQUIRED_FIRST, REQUIRED_LAST]),
            ("  " + "a" * 64 + "  ", "b" * 64, [], [LONG_FIRST, LONG_LAST]),
            ("é" * 65, "b" * 64, [LONG_FIRST], [LONG_LAST]),
            ("a" * 64, "ß" * 65, [LONG_LAST], [LONG_FIRST]),
            ("a" * 65, "b" * 65, [LONG_FIRST, LONG_LAST], [])):
        # a short password keeps these 422 (and costs no hash)
        _c, r = post_register(ctx, register_form(email, "short", first, last))
        expect_422(r, want + [SHORT_PW], "names %d/%d chars" % (len(first), len(last)), absent)

    # passwords: 8..128 characters, counted in characters
    for p, want, absent in (("1234567", [SHORT_PW], [LONG_PW]),
                            ("é" * 7, [SHORT_PW], []),
                            ("x" * 129, [LONG_PW], [SHORT_PW]),
                            ("é" * 129, [LONG_PW], []),
                            ("x" * 128, [], [LONG_PW, SHORT_PW]),
                            ("é" * 8, [], [LONG_PW, SHORT_PW])):
        # an invalid email keeps these 422
        _c, r = post_register(ctx, register_form("bad-email", p))
        expect_422(r, [BAD_EMAIL] + want, "password of %d chars" % len(p), absent)
    _c, r = post_register(ctx, register_form("bad-email", "x" * 12, confirm="x" * 11))
    expect_422(r, [MISMATCH], "mismatched confirm")

    # emails
    e254 = "u" * (254 - len("@example.com")) + "@example.com"
    e255 = "u" + e254
    assert len(e254) == 254
    for e in ("plain", "@example.com", "a@b", "a@@example.com", "a@b@example.com",
              "a b@example.com", "a@exa mple.com", "a@.example.com", "a@example.com.",
              "a@example..com", e255, ""):
        _c, r = post_register(ctx, register_form(e, "short"))
        expect_422(r, [BAD_EMAIL, SHORT_PW], "email %r" % e[:40])
    for e in (e254, "first.last+tag@sub.example.co.uk", "jörg@exämple.de"):
        _c, r = post_register(ctx, register_form(e, "short"))
        expect_422(r, [SHORT_PW], "email %r" % e[:40], [BAD_EMAIL])

    # the boundaries that pass really register (and the database takes them)
    u = register(ctx, email="  " + e254.upper() + " ", first="é" * 64, last="ß" * 64,
                 password="é" * 8)
    row = user_row(ctx, u.id)
    assert row[0] == e254, "stored email %r, want trimmed and lower-cased %r" % (row[0], e254)
    assert row[1] == "é" * 64 and row[2] == "ß" * 64, "64-character names stored as %r %r" % row[1:3]
    u2 = register(ctx, password="x" * 128, first="  Trim  ", last="\tMe\t")
    row = user_row(ctx, u2.id)
    assert row[1:3] == ["Trim", "Me"], "names not stored trimmed: %r" % row[1:3]
    c2 = Client(ctx.port)
    assert login(c2, u2.email, "x" * 128).status == 303, "128-character password cannot log in"


def test_register_duplicate_email_across_roles_and_case(ctx):
    admin = create_admin(ctx)
    cust = register(ctx, email="Dup.%s@Example.ORG" % os.urandom(3).hex())
    assert cust.email == cust.email.lower()
    agent = register(ctx, role="agent")
    cases = [(cust.email, None), (cust.email.upper(), None), ("  %s  " % cust.email, "agent"),
             (admin.email, None), (admin.email.upper(), "agent"),
             (agent.email, None), (agent.email.title(), "agent")]
    for e, role in cases:
        before = count(ctx, "SELECT COUNT(*) FROM users")
        _c, r = post_register(ctx, register_form(e, PASSWORD, first="Dup", last="Licate",
                                                 role=role))
        expect_422(r, [TAKEN], "register %r as %s" % (e, role or "customer"))
        assert count(ctx, "SELECT COUNT(*) FROM users") == before, "a row was added for %r" % e
        assert PASSWORD not in r.text, "password echoed"
        assert 'value="Dup"' in r.text and 'value="Licate"' in r.text, "typed names not shown again"


def test_register_same_email_in_parallel_one_wins(ctx):
    email = ctx.unique_email("race")
    clients = []
    for i in range(8):
        c = Client(ctx.port)
        c.prime("/register")
        clients.append(c)
    results = [None] * len(clients)
    go = threading.Barrier(len(clients))

    def run(i):
        try:
            go.wait(10)
            # the same address in different cases: one account at most
            e = email.upper() if i % 2 else email
            results[i] = clients[i].post("/register", register_form(e, first="Race%d" % i)).status
        except Exception as ex:  # reported below
            results[i] = repr(ex)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results.count(303) == 1, "parallel registrations of one email: %r" % results
    assert sorted(set(results), key=str) == [303, 422], "the losers answered %r" % results
    assert count(ctx, "SELECT COUNT(*) FROM users WHERE email = '%s'" % email) == 1


def test_register_control_characters_and_bad_utf8_422(ctx):
    email = ctx.unique_email("acct")
    base = dict(register_form(email, PASSWORD, first="Ctl", last="Char"))
    for field, value in (("first_name", "Bob\x01"), ("last_name", "x\x1by"),
                         ("first_name", "del\x7f"), ("email", "a\x00b@example.com"),
                         ("last_name", "nul\x00")):
        form = dict(base)
        form[field] = value
        c, r = post_register(ctx, list(form.items()))
        assert r.status == 422, "%s=%r: %d, want 422" % (field, value, r.status)
        assert "Invalid characters" in r.text, "%s=%r: no 'Invalid characters'" % (field, value)
        assert count(ctx, "SELECT COUNT(*) FROM users WHERE email = '%s'" % email) == 0
    # invalid UTF-8, percent-encoded by hand
    for raw in ("%C3%28", "%FF", "%C0%AF", "%ED%A0%80", "%F4%90%80%80", "%E2%82"):
        c = Client(ctx.port)
        c.prime("/register")
        body = ("first_name=Bad%sName&last_name=Utf&email=%s&password=%s&confirm_password=%s"
                "&csrf_token=%s" % (raw, urllib.parse.quote(email), PASSWORD, PASSWORD,
                                    c.last_csrf)).encode()
        r = c.request("POST", "/register", body=body,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 422, "first_name with %s: %d, want 422" % (raw, r.status)
        assert "Invalid characters" in r.text, "first_name with %s: no 'Invalid characters'" % raw
    assert count(ctx, "SELECT COUNT(*) FROM users WHERE email = '%s'" % email) == 0
    # tab is allowed (and trimmed at the ends of a name)
    u = register(ctx, email=email, first="\tTab", last="Ok")
    c = u.s
    assert user_row(ctx, u.id)[1] == "Tab"


def test_register_role_admin_is_not_honoured(ctx):
    email = ctx.unique_email("acct")
    c, r = post_register(ctx, register_form(email, role="admin"))
    role = ctx.sql_value("SELECT role FROM users WHERE email = '%s'" % email)
    assert role in (None, "customer"), "role=admin on /register made a %s account" % role
    assert r.status in (303, 422), "role=admin: %d" % r.status


def test_register_customer_logs_in_and_mails_welcome(ctx):
    mark = ctx.mail_mark()
    c = Client(ctx.port)
    c.prime("/register")
    email = ctx.unique_email("Welcome")
    r = c.post("/register", register_form("  " + email.upper() + "  ", first="Grace",
                                          last="Hopper"))
    assert r.status == 303 and r.location == "/tickets", \
        "POST /register: %d %r" % (r.status, r.location)
    sc = set_cookie(r, "ccr_session")
    assert sc and re.fullmatch(r"[0-9a-f]{64}", sc["value"]), "no session cookie at registration: %r" % sc
    flash, page = flash_of(c, r)
    assert flash == "Welcome", "flash after registration %r" % flash
    assert page.status == 200, "GET /tickets after registration: %d" % page.status
    uid, stored, role, state = ctx.sql(
        "SELECT id, email, role, state FROM users WHERE email = '%s'" % email.lower())[0]
    assert (stored, role, state) == (email.lower(), "customer", "active")
    assert is_logged_in(c), "not logged in after registration"
    acct = c.get("/account")
    assert email.lower() in acct.text and "Grace" in acct.text
    m = wait_mail_to(ctx, email, mark)
    assert "Welcome" in m.subject, "welcome mail subject %r" % m.subject
    for h in ("Date", "Message-ID", "From", "To", "Subject"):
        assert m.msg.get(h), "welcome mail lacks %s: %r" % (h, m.raw[:400])
    assert m.msg["To"].addresses[0].addr_spec == email.lower(), "To: %r" % str(m.msg["To"])
    assert "noreply@localhost" in str(m.msg["From"]), "From: %r (config)" % str(m.msg["From"])
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", str(m.msg["Message-ID"]).strip()), \
        "Message-ID %r" % str(m.msg["Message-ID"])
    import email.utils as eu
    d = eu.parsedate_to_datetime(str(m.msg["Date"]))
    assert abs(d.timestamp() - time.time()) < 300, "Date %r is not now" % str(m.msg["Date"])
    assert "Grace Hopper" in m.body, "welcome body lacks the name: %r" % m.body[:300]
    assert ctx.base_url in m.body, "welcome body lacks the base URL link"
    assert "registered" in audit_events(ctx, int(uid))
    h = ctx.sql_value("SELECT password_hash FROM users WHERE id = %s" % uid)
    m = re.match(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]{16,}\$[A-Za-z0-9+/]{32,}$", h)
    assert m and int(m.group(1)) >= 19456 and int(m.group(2)) >= 2 and int(m.group(3)) >= 1, \
        "password hash is not Argon2id with m >= 19456, t >= 2, p >= 1 and a salt: %r" % h


def test_register_agent_request_mails_every_admin(ctx):
    admins = [create_admin(ctx), create_admin(ctx)]
    all_admins = [r[0] for r in ctx.sql(
        "SELECT email FROM users WHERE role = 'admin' AND state = 'active'")]
    assert all(a.email in all_admins for a in admins)
    mark = ctx.mail_mark()
    c = Client(ctx.port)
    c.prime("/register")
    email = ctx.unique_email("agentreq")
    r = c.post("/register", register_form(email, first="Alan", last="Turing", role="agent"))
    assert r.status == 303 and r.location == "/login", "agent request: %d %r" % (r.status, r.location)
    assert set_cookie(r, "ccr_session") is None or set_cookie(r, "ccr_session")["value"] == "", \
        "an agent request got a session"
    flash, page = flash_of(c, r)
    assert flash == "Your request was sent to the admin", "flash %r" % flash
    uid, role, state = ctx.sql("SELECT id, role, state FROM users WHERE email = '%s'" % email)[0]
    assert (role, state) == ("agent", "pending"), "agent request row: %s %s" % (role, state)
    assert sessions_of(ctx, int(uid)) == 0
    for a in all_admins:
        m = wait_mail_to(ctx, a, mark, "Alan Turing")
        assert email in m.body, "agent-request mail to %s lacks the email" % a
    assert not mails_to(ctx, email, mark), "the pending agent got mail"
    # logging in with the right password: the waiting message, no session
    c2 = Client(ctx.port)
    r = login(c2, email, PASSWORD)
    assert r.status != 303, "a pending agent logged in: %d %r" % (r.status, r.location)
    assert PENDING in messages(r), "pending login shows %r" % messages(r)
    assert sessions_of(ctx, int(uid)) == 0 and not c2.session_cookie
    # ... but a wrong password is just the usual failure (nothing revealed)
    r = login(Client(ctx.port), email, "wrong-password-1")
    assert r.status == 401 and BAD_LOGIN in messages(r) and PENDING not in r.text, \
        "pending agent, wrong password: %d %r" % (r.status, messages(r))


# ------------------------------------------------------------------ login

def _normalise(text, *values):
    text = re.sub(r'name="csrf_token" value="[0-9a-f]*"', 'name="csrf_token" value=""', text)
    for v in values:
        text = text.replace(v, "EMAIL")
    return text


def test_login_wrong_password_and_unknown_email_same_answer(ctx):
    u = register(ctx)
    unknown = ctx.unique_email("nobody")
    c1, c2 = Client(ctx.port), Client(ctx.port)
    r1 = login(c1, u.email, "not-the-password")
    r2 = login(c2, unknown, "not-the-password")
    assert r1.status == 401 and r2.status == 401, "statuses %d / %d, want 401" % (r1.status, r2.status)
    assert messages(r1) == [BAD_LOGIN] and messages(r2) == [BAD_LOGIN], \
        "messages %r / %r" % (messages(r1), messages(r2))
    assert _normalise(r1.text, u.email) == _normalise(r2.text, unknown), \
        "the 401 pages for a wrong password and an unknown email differ"
    h1 = sorted(k.lower() for k, _ in r1.headers if k.lower() not in ("date",))
    h2 = sorted(k.lower() for k, _ in r2.headers if k.lower() not in ("date",))
    assert h1 == h2, "header names differ: %r vs %r" % (h1, h2)
    assert not c1.session_cookie and not c2.session_cookie
    assert "not-the-password" not in r1.text + r2.text, "the password is echoed"
    assert "login_failed" in audit_events(ctx, u.id)
    # the email in another case, with spaces around, is the same account
    r = login(Client(ctx.port), "  " + u.email.upper() + " ", u.password)
    assert r.status == 303, "login with upper-case, padded email: %d" % r.status


def test_login_next_same_site_only(ctx):
    u = register(ctx)
    for nxt, want in (("/tickets?x=1", "/tickets?x=1"), ("/account", "/account"),
                      ("//evil.example", "/tickets"), ("https://evil.example", "/tickets"),
                      ("/\\evil", "/tickets"), ("\\\\evil.example", "/tickets"),
                      ("javascript:alert(1)", "/tickets"), ("evil.example", "/tickets")):
        c = Client(ctx.port)
        r = login(c, u.email, u.password, next=nxt)
        assert r.status == 303, "login next=%r: %d" % (nxt, r.status)
        assert r.location == want, "login next=%r: Location %r, want %r" % (nxt, r.location, want)
    # the login form carries a safe next through, and drops an unsafe one
    r = Client(ctx.port).get("/login?next=" + urllib.parse.quote("/tickets?x=1", safe=""))
    assert 'name="next" value="/tickets?x=1"' in r.text, "GET /login?next=/tickets?x=1 drops it"
    r = Client(ctx.port).get("/login?next=" + urllib.parse.quote("//evil.example", safe=""))
    assert "evil.example" not in r.text, "GET /login?next=//evil.example keeps it"


def test_login_next_with_tab_is_not_an_open_redirect(ctx):
    # Browsers strip TAB/CR/LF from URLs (WHATWG URL parser), so a Location
    # of "/<TAB>/evil.example" is "//evil.example": another site.
    u = register(ctx)
    for nxt in ("/\t/evil.example", "\t//evil.example", "/\t\\evil.example"):
        r = login(Client(ctx.port), u.email, u.password, next=nxt)
        assert r.status == 303, "login next=%r: %d" % (nxt, r.status)
        loc = re.sub(r"[\t\r\n]", "", r.location or "")
        target = urllib.parse.urljoin(ctx.base_url + "/login", loc.replace("\\", "/"))
        assert urllib.parse.urlsplit(target).netloc == urllib.parse.urlsplit(ctx.base_url).netloc, \
            "login next=%r answers Location %r, which a browser follows to %s" % (nxt, r.location, target)


def test_session_cookie_attributes_rotation_and_hash_only(ctx):
    u = register(ctx)
    c = Client(ctx.port)
    c.prime("/login")
    anon = set_cookie(c.last, "ccr_csrf")
    # session fixation: a ccr_session chosen before login is not the one after
    fixed = "ab" * 32
    c.cookies["ccr_session"] = fixed
    r = login(c, u.email, u.password)
    assert r.status == 303, "login: %d" % r.status
    sc = set_cookie(r, "ccr_session")
    assert sc, "no ccr_session cookie at login"
    tok = sc["value"]
    assert re.fullmatch(r"[0-9a-f]{64}", tok), "session id %r is not 256 bits of hex" % tok
    assert tok != fixed, "the session id chosen before login was kept"
    assert sc.get("httponly") is True, "no HttpOnly: %s" % sc["raw"]
    assert str(sc.get("samesite", "")).lower() == "lax", "SameSite: %s" % sc["raw"]
    assert sc.get("path") == "/", "Path: %s" % sc["raw"]
    assert "secure" not in sc, "Secure set with secure_cookies = false: %s" % sc["raw"]
    if anon:
        assert anon.get("httponly") is True and "secure" not in anon, "ccr_csrf: %s" % anon["raw"]
    # only the SHA-256 of the cookie is stored
    assert count(ctx, "SELECT COUNT(*) FROM sessions WHERE id_hash = '%s' AND user_id = %d"
                 % (sha256_hex(tok), u.id)) == 1, "no sessions row keyed by SHA-256(cookie)"
    assert count(ctx, "SELECT COUNT(*) FROM sessions WHERE id_hash = '%s' OR csrf = '%s' "
                 "OR id_hash = '%s'" % (tok, tok, sha256_hex(fixed))) == 0, \
        "the raw session id (or the fixed one) is in the sessions table"
    c.refresh_csrf()
    assert c.last_csrf != anon["value"] if anon else True, "session csrf equals the anonymous one"
    # logging in again (already logged in) gives a new id; the old one dies
    r = login(c, u.email, u.password)
    assert r.status == 303, "second login: %d" % r.status
    tok2 = set_cookie(r, "ccr_session")["value"]
    assert tok2 and tok2 != tok, "session id not renewed at the second login"
    assert count(ctx, "SELECT COUNT(*) FROM sessions WHERE id_hash = '%s'" % sha256_hex(tok)) == 0, \
        "the session replaced at login still exists"
    old = Client(ctx.port)
    old.cookies["ccr_session"] = tok
    assert not is_logged_in(old), "the pre-login session id still works"
    # logout: the row goes, the cookie is cleared and stops working
    c.refresh_csrf()
    r = c.post("/logout")
    assert r.status == 303 and r.location == "/login", "logout: %d %r" % (r.status, r.location)
    cleared = set_cookie(r, "ccr_session")
    assert cleared and cleared["value"] == "" and cleared.get("max-age") == "0", \
        "logout does not clear the cookie: %r" % cleared
    assert count(ctx, "SELECT COUNT(*) FROM sessions WHERE id_hash = '%s'" % sha256_hex(tok2)) == 0, \
        "the sessions row survives logout"
    replay = Client(ctx.port)
    replay.cookies["ccr_session"] = tok2
    r = replay.get("/tickets")
    assert r.status == 303 and r.location.startswith("/login?next="), \
        "the logged-out cookie still works: %d %r" % (r.status, r.location)
    ev = audit_events(ctx, u.id)
    assert "login_ok" in ev and "logout" in ev, "audit events %r" % ev


def test_session_idle_absolute_and_disabled_account(ctx):
    u = register(ctx)
    c = logged_in(ctx, u.email, u.password)
    h = sha256_hex(c.session_cookie)
    ctx.sql("UPDATE sessions SET last_seen = NOW() - INTERVAL 119 MINUTE WHERE id_hash = '%s'" % h)
    assert is_logged_in(c), "a session idle for 1 h 59 min ended"
    ctx.sql("UPDATE sessions SET last_seen = NOW() - INTERVAL 121 MINUTE WHERE id_hash = '%s'" % h)
    assert not is_logged_in(c), "a session idle for over 2 hours still works"
    c = logged_in(ctx, u.email, u.password)
    h = sha256_hex(c.session_cookie)
    ctx.sql("UPDATE sessions SET created_at = NOW() - INTERVAL 7 DAY - INTERVAL 1 MINUTE "
            "WHERE id_hash = '%s'" % h)
    assert not is_logged_in(c), "a session older than 7 days still works"
    c = logged_in(ctx, u.email, u.password)
    ctx.sql("UPDATE users SET state = 'disabled' WHERE id = %d" % u.id)
    try:
        assert not is_logged_in(c), "the session of a disabled account still works"
    finally:
        ctx.sql("UPDATE users SET state = 'active' WHERE id = %d" % u.id)


# ------------------------------------------------------------------ CSRF

def _csrf_variants(ctx, c, path, form):
    """POST form to path without a token, with a wrong one, with another
    session's; every answer must be 403."""
    other = Client(ctx.port)
    other.prime("/login")
    tokens = {"missing": None, "wrong": "0" * 64, "garbage": "x",
              "another session's": other.last_csrf}
    if c.session_cookie:
        other_user = register(ctx, then="/account").s
        tokens["another user's session"] = other_user.last_csrf
    for what, tok in tokens.items():
        r = c.post(path, list(form), csrf=tok)
        assert r.status == 403, "POST %s with %s token: %d, want 403" % (path, what, r.status)


def test_csrf_login_register_logout_change(ctx):
    u = register(ctx)
    # /login
    c = Client(ctx.port)
    c.prime("/login")
    fails = count(ctx, "SELECT COUNT(*) FROM login_failures")
    _csrf_variants(ctx, c, "/login", [("email", u.email), ("password", u.password)])
    assert sessions_of(ctx, u.id) == 1, "a CSRF-less login made a session"
    assert not c.session_cookie
    assert count(ctx, "SELECT COUNT(*) FROM login_failures") == fails, "login_failures changed"
    # /register
    e = ctx.unique_email("acct")
    c = Client(ctx.port)
    c.prime("/register")
    _csrf_variants(ctx, c, "/register", register_form(e))
    assert count(ctx, "SELECT COUNT(*) FROM users WHERE email = '%s'" % e) == 0, \
        "a CSRF-less registration made a row"
    # /logout and /password/change
    c = logged_in(ctx, u.email, u.password)
    before = user_row(ctx, u.id)
    _csrf_variants(ctx, c, "/logout", [])
    assert count(ctx, "SELECT COUNT(*) FROM sessions WHERE id_hash = '%s'"
                 % sha256_hex(c.session_cookie)) == 1, "a CSRF-less logout ended the session"
    _csrf_variants(ctx, c, "/password/change", [("current_password", u.password),
                                                ("password", "N3w-password-1"),
                                                ("confirm_password", "N3w-password-1")])
    assert user_row(ctx, u.id) == before, "a CSRF-less password change changed the row"
    assert is_logged_in(c)
    # the anonymous token (ccr_csrf cookie) is not the logged-in session's
    anon = c.cookies.get("ccr_csrf")
    if anon:
        r = c.post("/logout", csrf=anon)
        assert r.status == 403, "logout with the anonymous double-submit token: %d" % r.status
    # the other state-changing account forms too
    codes = count(ctx, "SELECT COUNT(*) FROM password_codes")
    for path, form in (("/password/forgot", [("email", u.email)]),
                       ("/password/reset", reset_form(u.email, "12345678", "N3w-password-1")),
                       ("/account/delete", [("password", u.password)])):
        r = c.post(path, form, csrf=None)
        assert r.status == 403, "POST %s without csrf_token: %d" % (path, r.status)
    assert count(ctx, "SELECT COUNT(*) FROM password_codes") == codes
    assert user_row(ctx, u.id) == before and is_logged_in(c)


# ------------------------------------------------------------------ throttling

def test_throttle_five_failures_per_email(ctx):
    u = register(ctx)
    addrs = []
    try:
        for i in range(4):
            c = Client(ctx.port)   # a new address each time: only the email counts
            addrs.append(c.addr)
            r = login(c, u.email, "wrong-password-%d" % i)
            assert r.status == 401, "failure %d: %d" % (i + 1, r.status)
        c = Client(ctx.port)
        addrs.append(c.addr)
        assert login(c, u.email, u.password).status == 303, "right password after 4 failures"
        c = Client(ctx.port)
        addrs.append(c.addr)
        assert login(c, u.email, "wrong-password-5").status == 401
        audit0 = max_id(ctx, "audit_log")
        for pw in (u.password, "wrong-again"):
            c = Client(ctx.port)
            addrs.append(c.addr)
            r = login(c, u.email, pw)
            assert r.status == 429, "after 5 failures, %s: %d, want 429" % (
                "the right password" if pw == u.password else "a wrong one", r.status)
            assert not c.session_cookie, "a throttled login set a session"
        assert r.header("Retry-After"), "429 without Retry-After"
        assert count(ctx, "SELECT COUNT(*) FROM audit_log WHERE id > %d AND event = "
                     "'login_throttled' AND detail = '%s'" % (audit0, u.email)) == 1, \
            "want one login_throttled audit row for the window"
        # another account from the same addresses is not affected
        v = register(ctx)
        assert login(Client(ctx.port, addrs[-1]), v.email, v.password).status == 303
        # the window passes
        unthrottle(ctx, u.email, *addrs)
        c = Client(ctx.port)
        r = login(c, u.email, u.password)
        assert r.status == 303, "after the window: %d" % r.status
    finally:
        unthrottle(ctx, u.email, *addrs)


def test_throttle_twenty_failures_per_address(ctx):
    u = register(ctx)
    c = Client(ctx.port)
    emails = []
    try:
        for i in range(19):
            e = ctx.unique_email("ghost")
            emails.append(e)
            r = login(c, e, "wrong-password")
            assert r.status == 401, "failure %d: %d" % (i + 1, r.status)
        assert login(c, u.email, u.password).status == 303, "right password after 19 failures"
        c = Client(ctx.port, c.addr)   # same address, fresh cookies
        e = ctx.unique_email("ghost")
        emails.append(e)
        assert login(c, e, "wrong-password").status == 401, "20th failure"
        audit0 = max_id(ctx, "audit_log")
        r = login(c, u.email, u.password)
        assert r.status == 429, "after 20 failures from one address, right password: %d" % r.status
        r = login(c, ctx.unique_email("ghost"), "whatever-pw")
        assert r.status == 429, "after 20 failures from one address, another email: %d" % r.status
        n = count(ctx, "SELECT COUNT(*) FROM audit_log WHERE id > %d AND event = 'login_throttled' "
                  "AND addr = '%s'" % (audit0, c.addr))
        assert n == 1, "login_throttled audit rows for %s: %d, want 1" % (c.addr, n)
        # another address is not affected
        assert login(Client(ctx.port), u.email, u.password).status == 303
        unthrottle(ctx, c.addr, *emails)
        r = login(Client(ctx.port, c.addr), u.email, u.password)
        assert r.status == 303, "after the window: %d" % r.status
    finally:
        unthrottle(ctx, c.addr, *emails)


# ------------------------------------------------------------------ 129-character passwords

def test_long_password_refused_before_hashing(ctx):
    # With every hash slot held by the test, a request that computes a hash
    # cannot answer before the 2 s slot wait (then 503); one that refuses a
    # 129-character password before hashing answers at once.
    u = register(ctx)
    cust = logged_in(ctx, u.email, u.password)
    long_pw = "x" * 129
    c = Client(ctx.port)
    c.prime("/login")
    c2 = Client(ctx.port)
    c2.prime("/register")
    with AllHashSlots(ctx):
        t0 = time.monotonic()
        r = login(c, u.email, long_pw)
        took = time.monotonic() - t0
        assert r.status == 401 and BAD_LOGIN in messages(r), \
            "login with 129 characters: %d %r" % (r.status, messages(r))
        assert took < 1.5, "login with a 129-character password waited %.2fs for a hash slot" % took
        r = login(c, u.email, "é" * 129)
        assert r.status == 401, "login with 129 two-byte characters: %d" % r.status
        t0 = time.monotonic()
        r = c2.post("/register", register_form(ctx.unique_email("acct"), long_pw))
        assert r.status == 422 and LONG_PW in messages(r), "register 129: %d" % r.status
        assert time.monotonic() - t0 < 1.5, "registration with 129 characters waited for a hash"
        t0 = time.monotonic()
        r = cust.post("/password/change", [("current_password", long_pw), ("password", "N3w-pw-123"),
                                           ("confirm_password", "N3w-pw-123")])
        assert r.status == 422 and BAD_CURRENT in messages(r), "change, 129-char current: %d" % r.status
        assert time.monotonic() - t0 < 1.5, "a 129-character current password was hashed"
        t0 = time.monotonic()
        r = cust.post("/account/delete", [("password", long_pw)])
        assert r.status == 422, "delete with 129 characters: %d" % r.status
        assert time.monotonic() - t0 < 1.5, "a 129-character password was hashed at /account/delete"
        # control: a 20-character wrong password needs a hash -> 503 after ~2 s
        t0 = time.monotonic()
        r = login(c, u.email, "y" * 20)
        took = time.monotonic() - t0
        assert r.status == 503, "login needing a hash with all slots held: %d, want 503" % r.status
        assert r.header("Retry-After"), "503 without Retry-After"
        assert took >= 1.8, "503 after %.2fs, want the 2 s slot wait" % took
    c = Client(ctx.port)
    assert login(c, u.email, u.password).status == 303, "login after the slots are free"
    unthrottle(ctx, u.email)


def test_long_password_login_is_fast_by_timing(ctx):
    # The statistical variant: 129 characters is answered without Argon2
    # (~1 ms); a wrong 20-character password costs one verification, and so
    # does an unknown email (a dummy one), so its timing reveals nothing.
    u = register(ctx)
    addrs = []

    def timed(email, pw):
        c = Client(ctx.port)
        addrs.append(c.addr)
        c.prime("/login")
        t0 = time.monotonic()
        r = login(c, email, pw)
        dt = time.monotonic() - t0
        assert r.status == 401, "login: %d" % r.status
        unthrottle(ctx, email)   # keep the per-email throttle out of the way
        return dt
    try:
        longs, shorts, unknown = [], [], []
        for _ in range(12):
            longs.append(timed(u.email, "z" * 129))
            shorts.append(timed(u.email, "w" * 20))
            unknown.append(timed(ctx.unique_email("nobody"), "w" * 20))
        ml, ms, mu = (statistics.median(x) for x in (longs, shorts, unknown))
        assert ml * 3 <= ms, "129-char logins median %.1f ms vs 20-char %.1f ms: not 3x faster" % (
            ml * 1e3, ms * 1e3)
        assert mu * 2 >= ms and ms * 2 >= mu, \
            "unknown email median %.1f ms vs wrong password %.1f ms: timing tells them apart" % (
                mu * 1e3, ms * 1e3)
    finally:
        unthrottle(ctx, u.email, *addrs)


# ------------------------------------------------------------------ forgot / reset

def test_forgot_answer_identical_for_known_and_unknown(ctx):
    u = register(ctx)
    unknown = ctx.unique_email("nobody")
    answers = []
    mark = ctx.mail_mark()
    for e in (u.email, unknown):
        c = Client(ctx.port)
        c.prime("/password/forgot")
        r = c.post("/password/forgot", [("email", e)])
        answers.append((e, r))
    (e1, r1), (e2, r2) = answers
    for e, r in answers:
        assert r.status == 303, "forgot %s: %d" % (e, r.status)
        assert r.location == "/password/reset?email=" + urllib.parse.quote(e, safe="/"), \
            "forgot %s: Location %r" % (e, r.location)
    assert r1.header_all("Set-Cookie") == r2.header_all("Set-Cookie"), \
        "Set-Cookie differs: %r vs %r" % (r1.header_all("Set-Cookie"), r2.header_all("Set-Cookie"))
    assert r1.body == r2.body
    skip = ("date", "location")
    assert [(k, v) for k, v in r1.headers if k.lower() not in skip] == \
        [(k, v) for k, v in r2.headers if k.lower() not in skip], "headers differ"
    flash = set_cookie(r1, "ccr_flash")
    assert flash, "no flash cookie"
    c = Client(ctx.port)
    c.prime("/password/forgot")
    text, page = flash_of(c, c.post("/password/forgot", [("email", unknown)]))
    assert text == "If an account exists for that email, a code has been sent", "flash %r" % text
    assert 'value="%s"' % unknown in page.text, "reset form does not prefill the email"
    m = wait_mail_to(ctx, u.email, mark, "reset code")
    assert re.fullmatch(r"\d{8}", reset_code(m))
    assert ctx.base_url + "/password/reset?email=" in m.body, "reset mail lacks the link"
    assert not mails_to(ctx, unknown, mark), "mail sent to an unknown address"
    assert count(ctx, "SELECT COUNT(*) FROM outbox WHERE to_addr = '%s'" % unknown) == 0
    row = ctx.sql("SELECT code_hash, TIMESTAMPDIFF(SECOND, created_at, expires_at) FROM "
                  "password_codes WHERE user_id = %d" % u.id)
    assert len(row) == 1, "password_codes rows: %r" % row
    assert reset_code(m) not in row[0][0], "the code is stored in clear"
    assert 590 <= int(row[0][1]) <= 610, "code lifetime %s s, want 600" % row[0][1]


def test_reset_wrong_code_then_right_code(ctx):
    u = register(ctx)
    other = logged_in(ctx, u.email, u.password)   # a second session, ended by the reset
    c = Client(ctx.port)
    code = request_code(ctx, c, u.email)
    wrong = "%08d" % ((int(code) + 1) % 10 ** 8)
    c.prime("/password/reset?email=" + urllib.parse.quote(u.email))
    r = c.post("/password/reset", reset_form(u.email, wrong, "N3w-password-1"))
    expect_422(r, [BAD_CODE], "wrong code")
    assert "N3w-password-1" not in r.text
    # malformed codes are wrong tries too: 4 so far, the 5th try is the right code
    for bad in ("1234567", "123456789", "abcdefgh"):
        r = c.post("/password/reset", reset_form(u.email, bad, "N3w-password-1"))
        expect_422(r, [BAD_CODE], "code %r" % bad)
    # validation of the new password comes with its messages
    r = c.post("/password/reset", reset_form(u.email, code, "short"))
    expect_422(r, [SHORT_PW], "reset to a short password")
    r = c.post("/password/reset", [("email", u.email), ("code", code), ("password", "N3w-password-1"),
                                   ("confirm_password", "N3w-password-2")])
    expect_422(r, [MISMATCH], "reset with mismatched confirm")
    # the code of another account does not work for this one
    v = register(ctx)
    r = c.post("/password/reset", reset_form(v.email, code, "N3w-password-1"))
    expect_422(r, [BAD_CODE], "this code for another account")
    audit0 = max_id(ctx, "audit_log")
    mark = ctx.mail_mark()
    r = c.post("/password/reset", reset_form(u.email, code, "N3w-password-1"))
    assert r.status == 303 and r.location == "/login", "right code after 4 wrong tries: %d %r %r" % (
        r.status, r.location, messages(r))
    text, _page = flash_of(c, r)
    assert text == CHANGED, "flash %r" % text
    assert sessions_of(ctx, u.id) == 0, "sessions survive the reset"
    assert not is_logged_in(other), "another session of the account survives the reset"
    m = wait_mail_to(ctx, u.email, mark, "password was changed")
    assert m
    assert "password_reset" in audit_events(ctx, u.id, audit0)
    assert login(Client(ctx.port), u.email, u.password).status == 401, "old password still works"
    assert login(Client(ctx.port), u.email, "N3w-password-1").status == 303, "new password does not work"
    # single use
    r = c.post("/password/reset", reset_form(u.email, code, "N3w-password-2"))
    expect_422(r, [BAD_CODE], "reusing a used code")
    unthrottle(ctx, u.email)


def test_reset_code_dies_after_five_wrong_tries(ctx):
    u = register(ctx)
    c = Client(ctx.port)
    code = request_code(ctx, c, u.email)
    c.prime("/password/reset")
    for i in range(5):
        wrong = "%08d" % ((int(code) + 1 + i) % 10 ** 8)
        r = c.post("/password/reset", reset_form(u.email, wrong, "N3w-password-1"))
        expect_422(r, [BAD_CODE], "wrong try %d" % (i + 1))
    r = c.post("/password/reset", reset_form(u.email, code, "N3w-password-1"))
    expect_422(r, [BAD_CODE], "the right code after 5 wrong tries")
    assert login(Client(ctx.port), u.email, u.password).status == 303, "password changed anyway"


def test_reset_code_expired(ctx):
    u = register(ctx)
    c = Client(ctx.port)
    code = request_code(ctx, c, u.email)
    ctx.sql("UPDATE password_codes SET expires_at = NOW() - INTERVAL 1 MINUTE WHERE user_id = %d"
            % u.id)
    c.prime("/password/reset")
    r = c.post("/password/reset", reset_form(u.email, code, "N3w-password-1"))
    expect_422(r, [BAD_CODE], "expired code")
    assert login(Client(ctx.port), u.email, u.password).status == 303


def test_reset_new_code_voids_old(ctx):
    u = register(ctx)
    c = Client(ctx.port)
    first = request_code(ctx, c, u.email)
    second = request_code(ctx, c, u.email)
    c.prime("/password/reset")
    if first != second:
        r = c.post("/password/reset", reset_form(u.email, first, "N3w-password-1"))
        expect_422(r, [BAD_CODE], "the older of two codes")
    r = c.post("/password/reset", reset_form(u.email, second, "N3w-password-1"))
    assert r.status == 303, "the newer code: %d %r" % (r.status, messages(r))


def test_reset_twenty_parallel_submissions_one_wins(ctx):
    u = register(ctx)
    code = request_code(ctx, Client(ctx.port), u.email)
    clients = []
    for _ in range(20):
        c = Client(ctx.port)
        c.prime("/password/reset")
        clients.append(c)
    results = [None] * 20
    go = threading.Barrier(20)

    def run(i):
        try:
            go.wait(10)
            results[i] = clients[i].post("/password/reset",
                                         reset_form(u.email, code, "Para11el-pw-%02d" % i)).status
        except Exception as e:  # reported below
            results[i] = repr(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    wins = [i for i, s in enumerate(results) if s == 303]
    assert len(wins) == 1, "of 20 parallel submissions %d won: %r" % (len(wins), results)
    others = sorted(set(s for s in results if s != 303), key=str)
    assert others == [422], "the losers answered %r, want only 422" % results
    assert login(Client(ctx.port), u.email, "Para11el-pw-%02d" % wins[0]).status == 303, \
        "the winner's password is not the one set"
    assert count(ctx, "SELECT COUNT(*) FROM outbox WHERE to_addr = '%s' AND kind = "
                 "'password_changed'" % u.email) == 1, "not exactly one password-changed mail"


def test_reset_mails_at_most_three_per_hour(ctx):
    u = register(ctx)
    mark = ctx.mail_mark()
    c = Client(ctx.port)
    c.prime("/password/forgot")
    locs = set()
    for _ in range(5):
        r = c.post("/password/forgot", [("email", u.email)])
        assert r.status == 303
        locs.add((r.location, tuple(r.header_all("Set-Cookie"))))
    assert len(locs) == 1, "the 4th/5th answers differ from the first: %r" % locs
    n = count(ctx, "SELECT COUNT(*) FROM outbox WHERE to_addr = '%s' AND kind = 'reset_code'"
              % u.email)
    assert n == 3, "%d reset mails queued for 5 requests in an hour, want 3" % n
    ctx.wait_until(lambda: len(mails_to(ctx, u.email, mark, "reset code")) >= 3, 15,
                   "3 reset mails")
    # the last of the three codes works
    codes = [reset_code(m) for m in mails_to(ctx, u.email, mark, "reset code")]
    live = ctx.sql("SELECT COUNT(*) FROM password_codes WHERE user_id = %d AND used_at IS NULL"
                   % u.id)[0][0]
    assert live == "1", "live codes: %s, want 1 (a new code voids the old)" % live
    c.prime("/password/reset")
    ok = [cd for cd in codes if c.post("/password/reset",
                                       reset_form(u.email, cd, "N3w-password-1")).status == 303]
    assert len(ok) == 1, "codes that worked: %d of %d" % (len(ok), len(codes))


# ------------------------------------------------------------------ change password

def test_change_password(ctx):
    u = register(ctx)
    c = logged_in(ctx, u.email, u.password)
    other = logged_in(ctx, u.email, u.password)
    r = c.get("/password/change")
    assert r.status == 200
    nsess = sessions_of(ctx, u.id)
    assert nsess >= 2
    new = "Brand-n3w-password"
    for form, want, what in (
            ([("current_password", "wrong-current"), ("password", new), ("confirm_password", new)],
             [BAD_CURRENT], "wrong current"),
            ([("current_password", u.password), ("password", u.password),
              ("confirm_password", u.password)], [SAME_PW], "same as old"),
            ([("current_password", u.password), ("password", "short"),
              ("confirm_password", "short")], [SHORT_PW], "short new"),
            ([("current_password", u.password), ("password", "x" * 129),
              ("confirm_password", "x" * 129)], [LONG_PW], "129-char new"),
            ([("current_password", u.password), ("password", new),
              ("confirm_password", new + "x")], [MISMATCH], "mismatched confirm")):
        before = user_row(ctx, u.id)
        r = c.post("/password/change", form)
        expect_422(r, want, what)
        assert u.password not in r.text and new not in r.text, "%s: a password echoed" % what
        assert user_row(ctx, u.id) == before, "%s changed the row" % what
        assert sessions_of(ctx, u.id) == nsess, "%s: sessions ended" % what
    audit0 = max_id(ctx, "audit_log")
    mark = ctx.mail_mark()
    r = c.post("/password/change", [("current_password", u.password), ("password", new),
                                    ("confirm_password", new)])
    assert r.status == 303 and r.location == "/login", "change: %d %r" % (r.status, r.location)
    text, _p = flash_of(c, r)
    assert text == CHANGED, "flash %r" % text
    assert sessions_of(ctx, u.id) == 0, "sessions survive a password change"
    assert not is_logged_in(other), "the second client is still logged in"
    assert not is_logged_in(c)
    m = wait_mail_to(ctx, u.email, mark, "password was changed")
    for h in ("Date", "Message-ID", "From", "To"):
        assert m.msg.get(h)
    assert "password_changed" in audit_events(ctx, u.id, audit0)
    assert login(Client(ctx.port), u.email, u.password).status == 401
    assert login(Client(ctx.port), u.email, new).status == 303
    unthrottle(ctx, u.email)


# ------------------------------------------------------------------ account page, deletion

def test_account_page_shows_profile(ctx):
    r = Client(ctx.port).get("/account")
    assert r.status == 303 and r.location == "/login?next=/account", \
        "anonymous GET /account: %d %r" % (r.status, r.location)
    u = register(ctx, first="Marie <b>", last="Curie & Co", then="/account")
    c = u.s
    r = c.get("/account")
    assert r.status == 200
    for want in ("Marie &lt;b&gt;", "Curie &amp; Co", u.email, "customer",
                 'action="/account/delete"', 'href="/password/change"'):
        assert want in r.text, "/account lacks %r" % want
    assert "Marie <b>" not in r.text, "the name is not escaped"
    admin = create_admin(ctx)
    ac = logged_in(ctx, admin.email, admin.password)
    r = ac.get("/account")
    assert r.status == 200 and admin.email in r.text
    assert 'action="/account/delete"' not in r.text, "an admin is offered account deletion"
    r = ac.post("/account/delete", [("password", admin.password)])
    assert r.status == 403, "an admin deleting their account: %d" % r.status
    assert user_row(ctx, admin.id)[4] == "active"


def test_account_delete(ctx):
    u = register(ctx, first="Erase", last="Me", then="/account")
    c = u.s
    other = logged_in(ctx, u.email, u.password)
    c.get("/tickets/new")
    r = c.post("/tickets", [("subject", "Keep this ticket"), ("description", "please"),
                            ("priority", "normal")])
    assert r.status == 303, "POST /tickets: %d" % r.status
    tickets = count(ctx, "SELECT COUNT(*) FROM tickets WHERE customer_id = %d" % u.id)
    assert tickets == 1
    c.refresh_csrf()
    before = user_row(ctx, u.id)
    r = c.post("/account/delete", [("password", "wrong-password")])
    assert r.status == 422, "delete with a wrong password: %d" % r.status
    assert user_row(ctx, u.id) == before, "a refused deletion changed the row"
    assert sessions_of(ctx, u.id) == 2 and is_logged_in(c)
    audit0 = max_id(ctx, "audit_log")
    r = c.post("/account/delete", [("password", u.password)])
    assert r.status == 303 and r.location == "/login", "delete: %d %r" % (r.status, r.location)
    email, first, last, role, state, pwhash = user_row(ctx, u.id)
    assert state == "deleted", "state %r" % state
    assert email != u.email and u.email.split("@")[0] not in email, "email kept: %r" % email
    assert "Erase" not in first + last and "Me" not in (first, last), "names kept: %r %r" % (first, last)
    assert pwhash == "NULL" or not pwhash.startswith("$argon2"), "password hash kept"
    assert count(ctx, "SELECT COUNT(*) FROM tickets WHERE customer_id = %d" % u.id) == tickets, \
        "tickets removed"
    assert sessions_of(ctx, u.id) == 0, "sessions survive deletion"
    assert not is_logged_in(other) and not is_logged_in(c)
    r = login(Client(ctx.port), u.email, u.password)
    assert r.status == 401, "login after deletion: %d" % r.status
    assert "account_deleted" in audit_events(ctx, u.id, audit0)
    # nothing still queued for the deleted account
    assert count(ctx, "SELECT COUNT(*) FROM outbox WHERE user_id = %d AND status = 'pending'" % u.id) == 0
    # the address is free again
    register(ctx, email=u.email)
    unthrottle(ctx, u.email)


# ------------------------------------------------------------------ audit log

def test_audit_log_account_events(ctx):
    u = register(ctx)
    a0 = max_id(ctx, "audit_log")
    c = Client(ctx.port)
    assert login(c, u.email, "wrong-password").status == 401
    assert login(c, u.email, u.password).status == 303
    c.refresh_csrf()
    assert c.post("/logout").status == 303
    c = logged_in(ctx, u.email, u.password)
    new = "Chang3d-password"
    assert c.post("/password/change", [("current_password", u.password), ("password", new),
                                       ("confirm_password", new)]).status == 303
    code = request_code(ctx, Client(ctx.port), u.email)
    c = Client(ctx.port)
    c.prime("/password/reset")
    newer = "Res3t-password-x"
    assert c.post("/password/reset", reset_form(u.email, code, newer)).status == 303
    c = logged_in(ctx, u.email, newer)
    assert c.post("/account/delete", [("password", newer)]).status == 303
    rows = ctx.sql("SELECT event, addr, request_id, TIMESTAMPDIFF(SECOND, at, NOW()) FROM audit_log "
                   "WHERE user_id = %d AND id > %d ORDER BY id" % (u.id, a0))
    events = [r[0] for r in rows]
    want = ["login_failed", "login_ok", "logout", "login_ok", "password_changed",
            "reset_requested", "password_reset", "login_ok", "account_deleted"]
    it = iter(events)
    assert all(w in it for w in want), "audit events %r lack, in order, %r" % (events, want)
    for ev, addr, rid, age in rows:
        assert addr.startswith("127."), "%s: addr %r" % (ev, addr)
        assert re.fullmatch(r"[0-9a-f]{8,40}", rid), "%s: request_id %r" % (ev, rid)
        assert 0 <= int(age) < 300, "%s: at is %s s ago" % (ev, age)
    unthrottle(ctx, u.email)


# ------------------------------------------------------------------ mail durability

def _outbox(ctx, ids):
    return ctx.sql("SELECT id, status, message_id, attempts FROM outbox WHERE id IN (%s) ORDER BY id"
                   % ",".join(str(i) for i in ids))


def _maildir_ids(ctx):
    ids = {}
    for m in ctx.mails():
        mid = str(m.msg.get("Message-ID", "")).strip()
        ids[mid] = ids.get(mid, 0) + 1
    return ids


def test_mail_survives_smtp_outage_exactly_once(ctx):
    st = ctx.stack
    o0 = max_id(ctx, "outbox")
    st.smtp_stop()
    try:
        users = [register(ctx) for _ in range(3)]
        rows = ctx.sql("SELECT id FROM outbox WHERE id > %d AND to_addr IN (%s)" % (
            o0, ",".join("'%s'" % u.email for u in users)))
        ids = [int(r[0]) for r in rows]
        assert len(ids) == 3, "welcome mails queued: %d" % len(ids)
        # the mailer tries, fails and schedules a retry
        ctx.wait_until(lambda: all(int(r[3]) >= 1 and r[1] == "pending" for r in _outbox(ctx, ids)),
                       20, "the mailer to try (and fail) the 3 mails with the sink down")
        errs = ctx.sql("SELECT last_error, next_attempt_at > NOW() FROM outbox WHERE id IN (%s)"
                       % ",".join(map(str, ids)))
        assert all(e[0] not in ("", "NULL") and e[1] == "1" for e in errs), \
            "failed attempts without error/back-off: %r" % errs
    finally:
        st.smtp_start()
    # skip the 1-minute back-off
    ctx.sql("UPDATE outbox SET next_attempt_at = NOW() WHERE id IN (%s) AND status = 'pending'"
            % ",".join(map(str, ids)))
    ctx.wait_until(lambda: all(r[1] == "sent" for r in _outbox(ctx, ids)), 60,
                   "the 3 mails to be sent after the sink is back")
    mids = [r[2] for r in _outbox(ctx, ids)]
    ctx.wait_until(lambda: all(_maildir_ids(ctx).get(m) for m in mids), 10, "the 3 mails in the Maildir")
    got = _maildir_ids(ctx)
    for m in mids:
        assert got.get(m) == 1, "Message-ID %s delivered %s times" % (m, got.get(m))
test_mail_survives_smtp_outage_exactly_once.timeout = 180


def test_two_mailers_one_outbox(ctx):
    st = ctx.stack
    conf2 = os.path.join(st.var, "ccr2.conf")
    sock2 = os.path.join(st.run_dir, "ccrd2.sock")
    with open(st.conf) as f:
        text = f.read()
    text = re.sub(r"^listen\s*=.*$", "listen = %s" % sock2, text, count=1, flags=re.M)
    text = re.sub(r"^workers\s*=.*$", "workers = 1", text, count=1, flags=re.M)
    fd = os.open(conf2, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    log2 = open(os.path.join(st.log_dir, "ccrd2.log"), "ab")
    p = stack.spawn([st.ccrd_bin, "-c", conf2], stdout=log2, stderr=log2)
    log2.close()
    try:
        ctx.wait_until(lambda: p.poll() is not None or os.path.exists(sock2), 20, "ccrd2's socket")
        assert p.poll() is None, "second ccrd exited with %s" % p.returncode
        ctx.wait_until(lambda: len(stack.children_of(p.pid)) >= 2, 10, "ccrd2's children")
        assert st.mailer_pids(), "the first ccrd has no mailer"
        o0 = max_id(ctx, "outbox")
        # ~30 mails: 6 registrations (welcome) + 2 reset codes each, from the app ...
        users = [register(ctx) for _ in range(6)]
        for u in users:
            c = Client(ctx.port)
            c.prime("/password/forgot")
            for _ in range(2):
                assert c.post("/password/forgot", [("email", u.email)]).status == 303
        # ... and 30 more due at the same instant, so both mailers compete
        tag = os.urandom(4).hex()
        values = ",".join(
            "('test', 'bulk%d.%s@example.com', 'Bulk %d', 'Body %d', '<bulk%d.%s@localhost>', "
            "'pending', 0, NOW(), NOW())" % (i, tag, i, i, i, tag) for i in range(30))
        ctx.sql("INSERT INTO outbox (kind, to_addr, subject, body, message_id, status, attempts, "
                "created_at, next_attempt_at) VALUES " + values)
        ids = [int(r[0]) for r in ctx.sql("SELECT id FROM outbox WHERE id > %d" % o0)]
        assert len(ids) >= 48, "queued %d mails" % len(ids)

        def done():
            return all(r[1] == "sent" for r in _outbox(ctx, ids))
        ctx.wait_until(done, 90, "every outbox row 'sent' (states: %s)" % (
            ctx.sql("SELECT status, COUNT(*) FROM outbox WHERE id > %d GROUP BY status" % o0)))
        mids = [r[2] for r in _outbox(ctx, ids)]
        ctx.wait_until(lambda: all(_maildir_ids(ctx).get(m) for m in mids), 15,
                       "every mail in the Maildir")
        got = _maildir_ids(ctx)
        dup = {m: got[m] for m in mids if got.get(m) != 1}
        assert not dup, "Message-IDs not delivered exactly once: %r" % dup
        claimers = ctx.sql("SELECT claimed_by, COUNT(*) FROM outbox WHERE id > %d GROUP BY claimed_by"
                           % o0)
        assert all(r[0] != "NULL" for r in claimers), "sent rows without a claim: %r" % claimers
        assert stack.alive(p.pid), "the second ccrd died"
    finally:
        stack.reap(p, 30, signal.SIGTERM, send=True)
        stack.kill_group(p.pid)
        for f in (conf2, sock2):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
    assert p.returncode == 0, "second ccrd exit status %s after SIGTERM" % p.returncode
test_two_mailers_one_outbox.timeout = 180


def test_no_mail_delivered_twice_overall(ctx):
    # Everything this module queued (and anything before it): each sent
    # outbox row's Message-ID is in the Maildir exactly once.
    ctx.wait_until(lambda: count(ctx, "SELECT COUNT(*) FROM outbox WHERE status = 'pending' "
                                      "AND next_attempt_at <= NOW()") == 0, 30,
                   "the outbox to drain")
    sent = [r[0] for r in ctx.sql("SELECT message_id FROM outbox WHERE status = 'sent'")]
    ctx.wait_until(lambda: all(_maildir_ids(ctx).get(m) for m in sent), 15,
                   "every sent mail in the Maildir")
    got = _maildir_ids(ctx)
    twice = {m: n for m, n in got.items() if n > 1}
    assert not twice, "Message-IDs in the Maildir more than once: %r" % twice


# ------------------------------------------------------------------ look-alike addresses
#
# Emails are compared byte for byte: under a Unicode collation "acmé.com"
# equalled "acme.com", "ß" equalled "ss" and full-width letters their ASCII
# ones, so a look-alike typed into a form found (and reset, and locked) the
# real account.  Mail about an account goes only to the address stored for it.

def _lookalikes(ctx):
    """A real address and its accent, ß/ss and full-width variants."""
    tag = os.urandom(3).hex()
    real = "strasse%s@acme%s.com" % (tag, tag)
    return real, ["strasse%s@acmé%s.com" % (tag, tag),        # é for e
                  "straße%s@acme%s.com" % (tag, tag),         # ß for ss
                  "\uff53trasse%s@acme%s.com" % (tag, tag)]   # full-width s


def _outbox_to(ctx, addr, since_id=0):
    """Outbox rows addressed to exactly addr (byte for byte): (kind, user_id)."""
    return [tuple(r) for r in ctx.sql(
        "SELECT kind, COALESCE(user_id, 0) FROM outbox WHERE id > %d AND "
        "to_addr COLLATE utf8mb4_bin = %s" % (since_id, sql_str(addr)))]


def _hash_of(ctx, uid):
    return ctx.sql_value("SELECT password_hash FROM users WHERE id = %d" % uid)


def test_forgot_and_reset_lookalike_email_never_reach_real_account(ctx):
    real, variants = _lookalikes(ctx)
    u = register(ctx, email=real)
    hash0 = _hash_of(ctx, u.id)
    for v in variants:
        c = Client(ctx.port)
        # a live code of the real account, submitted with the variant, does nothing
        code = request_code(ctx, Client(ctx.port), real)
        out0 = max_id(ctx, "outbox")
        c.prime("/password/reset")
        r = c.post("/password/reset", reset_form(v, code, "Hijack3d-password"))
        assert _hash_of(ctx, u.id) == hash0, "reset with %r changed the real password" % v
        assert not _outbox_to(ctx, v, out0), "reset %r queued mail to the variant" % v
        expect_422(r, [BAD_CODE], "reset of %r with the real account's code" % v)
        # forgot with the variant: no code, no mail about the real account
        out0 = max_id(ctx, "outbox")
        c.prime("/password/forgot")
        r = c.post("/password/forgot", [("email", v)])
        assert r.status == 303, "forgot %r: %d" % (v, r.status)
        assert not _outbox_to(ctx, v, out0), "forgot %r queued mail to the variant" % v
        n = count(ctx, "SELECT COUNT(*) FROM outbox WHERE id > %d AND user_id = %d" % (out0, u.id))
        assert n == 0, "forgot %r queued %d mail(s) about the real account" % (v, n)
    assert login(Client(ctx.port), real, u.password).status == 303


def test_register_and_login_lookalike_email_are_separate_accounts(ctx):
    real, variants = _lookalikes(ctx)
    u = register(ctx, email=real)
    hash0 = _hash_of(ctx, u.id)
    for i, v in enumerate(variants):
        # the real password with a variant: no way in
        r = login(Client(ctx.port), v, u.password)
        assert r.status == 401, "login as %r with the real password: %d" % (v, r.status)
        # registering a variant makes its own account, not "already exists"
        c, r = post_register(ctx, register_form(v, password="Other-passw0rd-%d" % i))
        assert r.status == 303, "register %r: %d %r" % (v, r.status, messages(r))
        vid = ctx.sql_value("SELECT id FROM users WHERE email COLLATE utf8mb4_bin = %s"
                            % sql_str(v))
        assert vid and int(vid) != u.id, "register %r made no separate account" % v
        assert login(Client(ctx.port), v, u.password).status == 401
        assert login(Client(ctx.port), v, "Other-passw0rd-%d" % i).status == 303
    assert _hash_of(ctx, u.id) == hash0
    assert login(Client(ctx.port), real, u.password).status == 303


def test_throttled_lookalike_email_does_not_lock_real_account(ctx):
    real, variants = _lookalikes(ctx)
    u = register(ctx, email=real)
    addrs = []
    try:
        for v in variants:
            for i in range(6):
                c = Client(ctx.port)
                addrs.append(c.addr)
                login(c, v, "wrong-password-%d" % i)
            c = Client(ctx.port)
            addrs.append(c.addr)
            r = login(c, real, u.password)
            assert r.status == 303, "after 6 failures as %r, the real login: %d" % (v, r.status)
    finally:
        unthrottle(ctx, *variants, *addrs)


def test_create_agent_lookalike_email_never_reaches_real_account(ctx):
    real, variants = _lookalikes(ctx)
    u = register(ctx, email=real)
    admin = create_admin(ctx)
    ac = logged_in(ctx, admin.email, admin.password)
    ac.get("/admin/agents")
    for n, v in enumerate(variants):
        out0 = max_id(ctx, "outbox")
        if n % 2 == 0:
            r = ac.post("/admin/agents", [("first_name", "Look"), ("last_name", "Alike"),
                                          ("email", v)])
            assert r.status == 303, "POST /admin/agents %r: %d %r" % (v, r.status, messages(r))
        else:
            p = ctx.admin("create-agent", "--email", v, "--first-name", "Look",
                          "--last-name", "Alike", check=False)
            assert p.returncode == 0, "ccr-admin create-agent %r: %r" % (v, p.stderr)
        vid = ctx.sql_value("SELECT id FROM users WHERE email COLLATE utf8mb4_bin = %s"
                            % sql_str(v))
        assert vid and int(vid) != u.id, "create-agent %r made no separate account" % v
        assert _outbox_to(ctx, v, out0) == [("agent_created", vid)], \
            "invitation for %r: %r" % (v, _outbox_to(ctx, v, out0))
        n_real = count(ctx, "SELECT COUNT(*) FROM outbox WHERE id > %d AND user_id = %d"
                       % (out0, u.id))
        assert n_real == 0, "create-agent %r queued mail about the real account" % v
    assert user_row(ctx, u.id)[3:5] == ["customer", "active"]
    assert login(Client(ctx.port), real, u.password).status == 303


# ------------------------------------------------------------------ floods

def test_throttled_login_flood_writes_bounded_audit_rows(ctx):
    u = register(ctx)
    c = Client(ctx.port)
    try:
        for i in range(5):
            assert login(c, u.email, "wrong-password-%d" % i).status == 401
        audit0 = max_id(ctx, "audit_log")
        for i in range(40):
            assert login(c, u.email, "flood-%d" % i).status == 429
        n = count(ctx, "SELECT COUNT(*) FROM audit_log WHERE id > %d" % audit0)
        assert n <= 1, "40 throttled logins wrote %d audit rows" % n
    finally:
        unthrottle(ctx, u.email, c.addr)


def test_agent_registration_flood_mails_admins_a_bounded_number(ctx):
    admin = create_admin(ctx)
    out0 = max_id(ctx, "outbox")
    c = Client(ctx.port)
    c.prime("/register")
    for i in range(30):
        r = c.post("/register", register_form(ctx.unique_email("flood"), role="agent"))
        assert r.status == 303, "agent request %d: %d %r" % (i, r.status, messages(r))
    n = count(ctx, "SELECT COUNT(*) FROM outbox WHERE id > %d AND kind = 'agent_request' "
              "AND user_id = %d" % (out0, admin.id))
    assert n == 10, "30 agent requests from one address mailed one admin %d times, want 10" % n
    # another address still reaches the admins
    c2 = Client(ctx.port)
    c2.prime("/register")
    assert c2.post("/register", register_form(ctx.unique_email("flood"), role="agent")).status == 303
    n2 = count(ctx, "SELECT COUNT(*) FROM outbox WHERE id > %d AND kind = 'agent_request' "
               "AND user_id = %d" % (out0, admin.id))
    assert n2 == 11, "a request from another address was not mailed (%d)" % n2


def test_purge_removes_old_audit_and_login_failure_rows_keeps_recent(ctx):
    tag = "purge-" + os.urandom(4).hex()
    ctx.sql("INSERT INTO audit_log (at, event, detail) VALUES "
            "(NOW() - INTERVAL 400 DAY, 'test_old', '%s'), (NOW() - INTERVAL 300 DAY, 'test_recent', '%s')"
            % (tag, tag))
    ctx.sql("INSERT INTO login_failures (kind, subject, at) VALUES "
            "('email', '%s-old', NOW() - INTERVAL 2 DAY), ('email', '%s-new', NOW())" % (tag, tag))
    p = ctx.admin("purge")
    assert "audit rows" in p.stdout, p.stdout
    left = sorted(r[0] for r in ctx.sql("SELECT event FROM audit_log WHERE detail = '%s'" % tag))
    assert left == ["test_recent"], "audit rows after purge: %r" % left
    fails = sorted(r[0] for r in ctx.sql(
        "SELECT subject FROM login_failures WHERE subject LIKE '%s-%%'" % tag))
    assert fails == [tag + "-new"], "login failures after purge: %r" % fails
    ctx.sql("DELETE FROM login_failures WHERE subject LIKE '%s-%%'" % tag)


def test_new_ticket_flood_mails_admins_a_bounded_number(ctx):
    admin = create_admin(ctx)
    u = register(ctx, then="/account")
    c = u.s
    out0 = max_id(ctx, "outbox")
    for i in range(14):
        r = c.post("/tickets", [("subject", "Flood %d" % i), ("description", "Flood body"),
                                ("priority", "normal")])
        assert r.status == 303, "ticket %d: %d %r" % (i, r.status, messages(r))
    n = count(ctx, "SELECT COUNT(*) FROM outbox WHERE id > %d AND kind = 'ticket_needs_agent' "
              "AND user_id = %d" % (out0, admin.id))
    assert n == 10, "14 tickets of one account mailed one admin %d times, want 10" % n
    n = count(ctx, "SELECT COUNT(*) FROM outbox WHERE id > %d AND kind = 'ticket_created' "
              "AND user_id = %d" % (out0, u.id))
    assert n == 14, "the customer's own ticket mails: %d, want 14" % n


def test_login_with_broken_stored_hash_is_invalid_credentials_and_logged(ctx):
    # A users row whose password_hash is not a usable Argon2id string (a
    # bad import, a hand edit) answers the normal "invalid credentials"
    # page -- never 500 or 503 -- and the broken hash is logged.
    u = register(ctx)
    for broken in ("garbage", "$argon2id$v=19$m=19456,t=2,p=1$$",
                   "$2y$10$abcdefghijklmnopqrstuuG7e2uEYB8h5B5a5RHOtHqV0Kqhcr5Wq"):
        ctx.sql("UPDATE users SET password_hash = %s WHERE id = %d" % (sql_str(broken), u.id))
        mark = ctx.log_mark()
        c = Client(ctx.port)
        r = login(c, u.email, u.password)
        assert r.status == 401, "login with stored hash %r: %d, want 401" % (broken, r.status)
        assert messages(r) == [BAD_LOGIN], "messages %r" % messages(r)
        assert not c.session_cookie, "a session was made from a broken hash"
        ctx.wait_until(lambda: "password_verify" in ctx.log_since(mark), 5,
                       "a log line about the broken hash %r" % broken)


def test_ticket_poll_does_not_keep_an_idle_session_alive(ctx):
    # The open ticket page polls /tickets/N/messages?after= every 5 s; each
    # poll once moved last_seen, so the 2-hour idle timeout never fired
    # while a ticket tab was open.  A poll is not activity.
    u = register(ctx)
    c = logged_in(ctx, u.email, u.password)
    c.prime("/tickets/new")
    r = c.post("/tickets", [("subject", "idle poll"), ("description", "poll me")])
    assert r.status == 303, "ticket create: %d" % r.status
    tid = int(re.search(r"/tickets/(\d+)", r.location).group(1))
    h = sha256_hex(c.session_cookie)
    ctx.sql("UPDATE sessions SET last_seen = NOW() - INTERVAL 119 MINUTE WHERE id_hash = '%s'" % h)
    before = ctx.sql_value("SELECT last_seen FROM sessions WHERE id_hash = '%s'" % h)
    for _ in range(5):
        r = c.get("/tickets/%d/messages?after=0" % tid)
        assert r.status == 200, "poll within the idle limit: %d" % r.status
    after = ctx.sql_value("SELECT last_seen FROM sessions WHERE id_hash = '%s'" % h)
    assert after == before, "a poll moved last_seen from %s to %s" % (before, after)
    # past the limit the poll is refused (to /login), and so is the page
    ctx.sql("UPDATE sessions SET last_seen = NOW() - INTERVAL 121 MINUTE WHERE id_hash = '%s'" % h)
    r = c.get("/tickets/%d/messages?after=0" % tid)
    assert r.status == 303 and r.location.startswith("/login"), \
        "poll after the idle limit: %d %r" % (r.status, r.location)
    assert not is_logged_in(c), "the session outlived the idle limit"

"""Account security: two-factor sign-in (TOTP), recovery codes, the
[security] require_2fa policy, an admin's reset, login alerts and the
session list (README "Two-factor sign-in", "Login alerts and sessions").

Codes are computed by oathtool (oath-toolkit's command line, the same
library the server uses, but another program), skewed clocks by faketime.
A code is accepted once: a test that signs in twice within one 30-second
step uses the next step's code (inside the ±1 window) for the second.
"""
import gzip
import html
import os
import re
import subprocess
import time
import urllib.parse

import helpers
from helpers import Client, PASSWORD, login, page_errors, register, create_admin, sql_str
from accounts_util import mails_to, wait_mail_to, set_cookie, messages
from faults_util import reload_conf

STEP = 30


# ------------------------------------------------------------------ helpers

def code(secret, offset=0):
    """The 6-digit code oathtool computes for base32 secret, its clock
    moved by offset seconds with faketime (offset 0: the real clock)."""
    argv = ["oathtool", "--totp", "-b", secret]
    if offset:
        argv = ["faketime", "-f", "%+ds" % offset] + argv
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def fresh_step(margin=6):
    """Wait, when the current 30-second step ends within margin seconds, for
    the next one, so a code computed now is still of the server's step."""
    left = STEP - time.time() % STEP
    if left < margin:
        time.sleep(left + 0.2)


def setup_page(c):
    """GET /account/2fa -> (response, otpauth URI, base32 secret)."""
    r = c.get("/account/2fa")
    assert r.status == 200, "GET /account/2fa: %d %s" % (r.status, page_errors(r))
    m = re.search(r'<code id="totp-uri">([^<]*)</code>', r.text)
    assert m, "the enrolment page shows the otpauth URI as text"
    uri = html.unescape(m.group(1))
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
    return r, uri, q["secret"][0]


def enrol(c, offset=0):
    """Enrol the client's account; -> (secret, [recovery codes])."""
    _r, _uri, secret = setup_page(c)
    fresh_step()
    r = c.post("/account/2fa", {"code": code(secret, offset)})
    assert r.status == 200, "POST /account/2fa: %d %s" % (r.status, page_errors(r))
    codes = re.findall(r"<li><code>([a-z2-7]{5}-[a-z2-7]{5})</code></li>", r.text)
    assert len(codes) == 10 and len(set(codes)) == 10, codes
    return secret, codes


def customer_with_2fa(ctx):
    u = register(ctx, prefix="tfa")
    u.secret, u.codes = enrol(u.s)
    return u


def password_step(ctx, u, client=None):
    """A new client that passed the password step of u -> (client, response)."""
    c = client or Client(ctx.port)
    r = login(c, u.email, u.password)
    return c, r


def enter(c, value):
    c.get("/login/2fa")
    return c.post("/login/2fa", {"code": value})


def unthrottle_codes(ctx, *subjects):
    ctx.sql("UPDATE login_failures SET at = at - INTERVAL 16 MINUTE WHERE kind IN "
            "('code_user', 'code_addr') AND subject IN (%s)" % ", ".join(sql_str(s) for s in subjects))


# ------------------------------------------------------------------ enrolment and sign-in

def test_enrolment_page_shows_qr_uri_and_secret_and_stores_it_sealed(ctx):
    u = register(ctx, prefix="tfa")
    r, uri, secret = setup_page(u.s)
    assert uri.startswith("otpauth://totp/"), uri
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
    assert q["algorithm"] == ["SHA1"] and q["digits"] == ["6"] and q["period"] == ["30"], q
    assert urllib.parse.unquote(urllib.parse.urlsplit(uri).path).endswith(":" + u.email), uri
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    assert '<svg class="qr-code"' in r.text and '<title id="qr-title">' in r.text
    assert re.search(r'<path d="(M\d+ \d+h\d+v1h-\d+z)+"', r.text), "the QR code's modules"
    assert secret[:4] + " " + secret[4:8] in r.text, "the secret as text, in groups of four"
    # a reload shows the same pending secret
    assert setup_page(u.s)[2] == secret
    row = ctx.sql("SELECT state, HEX(secret_enc), LENGTH(secret_enc) FROM totp WHERE user_id = %d"
                  % u.id)[0]
    assert row[0] == "pending" and int(row[2]) == 20 + 28, row
    import base64
    raw = base64.b32decode(secret)
    assert raw.hex().upper() not in row[1], "the secret is sealed, not stored in clear"
    # not on yet: the password alone still signs in
    c = Client(ctx.port)
    assert login(c, u.email, u.password).location.endswith("/tickets")


def test_enrol_wrong_code_422_then_right_code_shows_ten_recovery_codes_once(ctx):
    u = register(ctx, prefix="tfa")
    _r, _uri, secret = setup_page(u.s)
    r = u.s.post("/account/2fa", {"code": "000000" if code(secret) != "000000" else "111111"})
    assert r.status == 422 and "Invalid code" in r.text, (r.status, page_errors(r))
    mark = ctx.mail_mark()
    old_session = u.s.session_cookie
    fresh_step()
    r = u.s.post("/account/2fa", {"code": code(secret)})
    assert r.status == 200, page_errors(r)
    codes = re.findall(r"<li><code>([a-z2-7]{5}-[a-z2-7]{5})</code></li>", r.text)
    assert len(set(codes)) == 10, codes
    assert u.s.session_cookie != old_session, "a new session id at the privilege change"
    assert r.header("Cache-Control") == "no-store"
    hashes = {row[0] for row in ctx.sql("SELECT code_hash FROM recovery_codes WHERE user_id = %d" % u.id)}
    import hashlib
    assert hashes == {hashlib.sha256(c.replace("-", "").encode()).hexdigest() for c in codes}
    page = u.s.get("/account/2fa")
    assert page.status == 200 and "Recovery codes left: <strong id=\"recovery-left\">10</strong>" in page.text
    assert not any(c in page.text for c in codes), "shown once"
    wait_mail_to(ctx, u.email, mark, "Two-factor sign-in is on")
    assert "2fa_enabled" in [e[0] for e in ctx.sql(
        "SELECT event FROM audit_log WHERE user_id = %d" % u.id)]


def test_login_with_2fa_asks_for_the_code_and_the_half_signed_in_state_is_no_session(ctx):
    u = customer_with_2fa(ctx)
    c, r = password_step(ctx, u)
    assert r.status == 303 and r.location.endswith("/login/2fa"), (r.status, r.location)
    assert "ccr_session" not in c.cookies and "ccr_login" in c.cookies
    assert set_cookie(r, "ccr_login")["httponly"] is True
    n = ctx.sql_value("SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id "
                      "WHERE u.id = %d" % u.id)
    before = int(n)
    r = c.get("/tickets")
    assert r.status == 303 and "/login" in r.location, "the password alone opens no page"
    r = c.get("/login/2fa")
    assert r.status == 200 and 'name="code"' in r.text
    bad = "123456" if code(u.secret) != "123456" else "654321"
    r = c.post("/login/2fa", {"code": bad})
    assert r.status == 401 and "Invalid code" in r.text, (r.status, page_errors(r))
    fresh_step()
    r = c.post("/login/2fa", {"code": code(u.secret, STEP)})
    assert r.status == 303 and r.location.endswith("/tickets"), (r.status, page_errors(r))
    assert c.get("/account").status == 200
    assert int(ctx.sql_value("SELECT COUNT(*) FROM sessions WHERE user_id = %d" % u.id)) == before + 1
    assert ctx.sql_value("SELECT COUNT(*) FROM login_pending WHERE user_id = %d" % u.id) == "0"
    # without the pending cookie, /login/2fa sends back to /login
    r = Client(ctx.port).get("/login/2fa")
    assert r.status == 303 and r.location.endswith("/login")


def test_login_keeps_next_through_the_code_step(ctx):
    u = customer_with_2fa(ctx)
    c = Client(ctx.port)
    r = login(c, u.email, u.password, next="/account/sessions")
    assert r.location.endswith("/login/2fa")
    fresh_step()
    r = enter(c, code(u.secret, STEP))
    assert r.status == 303 and r.location.endswith("/account/sessions"), r.location


def test_replayed_code_is_refused(ctx):
    u = customer_with_2fa(ctx)
    fresh_step()
    value = code(u.secret, STEP)
    c, _ = password_step(ctx, u)
    assert enter(c, value).status == 303
    c2, _ = password_step(ctx, u)
    r = enter(c2, value)
    assert r.status == 401 and "Invalid code" in r.text, "a code is accepted once"
    # an older step's code after a newer one: refused too
    r = c2.post("/login/2fa", {"code": code(u.secret)})
    assert r.status == 401


def test_clock_skew_one_step_accepted_two_refused(ctx):
    u = customer_with_2fa(ctx)
    ctx.sql("UPDATE totp SET last_step = 0 WHERE user_id = %d" % u.id)   # forget the enrolment's step
    fresh_step(margin=12)
    c, _ = password_step(ctx, u)
    assert enter(c, code(u.secret, -2 * STEP)).status == 401, "-2 steps refused"
    assert c.post("/login/2fa", {"code": code(u.secret, 2 * STEP)}).status == 401, "+2 steps refused"
    r = c.post("/login/2fa", {"code": code(u.secret, -STEP)})
    assert r.status == 303, "-1 step accepted: %s" % page_errors(r)
    c2, _ = password_step(ctx, u)
    r = enter(c2, code(u.secret, STEP))
    assert r.status == 303, "+1 step accepted: %s" % page_errors(r)


def test_recovery_code_signs_in_once(ctx):
    u = customer_with_2fa(ctx)
    c, _ = password_step(ctx, u)
    r = enter(c, u.codes[3].upper().replace("-", " "))   # typed loosely
    assert r.status == 303, page_errors(r)
    assert "9</strong>" in c.get("/account/2fa").text
    c2, _ = password_step(ctx, u)
    r = enter(c2, u.codes[3])
    assert r.status == 401 and "Invalid code" in r.text, "a recovery code is single use"
    assert "2fa recovery code" in [e[0] for e in ctx.sql(
        "SELECT detail FROM audit_log WHERE user_id = %d AND event = 'login_ok'" % u.id)]


def test_five_wrong_codes_per_account_answer_429(ctx):
    u = customer_with_2fa(ctx)
    c, _ = password_step(ctx, u)
    c.get("/login/2fa")
    for i in range(5):
        # each from an address of its own: the account's count decides
        ci = c.clone()
        ci.addr = helpers.fresh_addr()
        r = ci.post("/login/2fa", {"code": "%06d" % i if code(u.secret) != "%06d" % i else "999999"})
        assert r.status == 401, (i, r.status)
    fresh_step()
    r = c.post("/login/2fa", {"code": code(u.secret, STEP)})
    assert r.status == 429, "even the right code, after five wrong ones: %d" % r.status
    assert r.header("Retry-After") == "900"
    unthrottle_codes(ctx, str(u.id))
    r = c.post("/login/2fa", {"code": code(u.secret, STEP)})
    assert r.status == 303, "after the window: %s" % page_errors(r)


def test_five_wrong_codes_per_address_answer_429(ctx):
    a, b = customer_with_2fa(ctx), customer_with_2fa(ctx)
    addr = helpers.fresh_addr()
    ca, _ = password_step(ctx, a, Client(ctx.port, addr))
    cb, _ = password_step(ctx, b, Client(ctx.port, addr))
    ca.get("/login/2fa")
    cb.get("/login/2fa")
    for i, c in enumerate([ca, ca, ca, cb, cb]):
        assert c.post("/login/2fa", {"code": "00000%d" % i}).status == 401
    fresh_step()
    r = cb.post("/login/2fa", {"code": code(b.secret, STEP)})
    assert r.status == 429, "five wrong codes from one address: %d" % r.status
    unthrottle_codes(ctx, addr)
    assert cb.post("/login/2fa", {"code": code(b.secret, STEP)}).status == 303


def test_disable_needs_password_and_code(ctx):
    u = customer_with_2fa(ctx)
    fresh_step()
    r = u.s.post("/account/2fa", {"password": "wrong-password", "code": code(u.secret, STEP)})
    assert r.status == 422 and "Password is incorrect" in messages(r), messages(r)
    r = u.s.post("/account/2fa", {"password": u.password, "code": "000000"})
    assert r.status == 422 and "Invalid code" in messages(r), messages(r)
    mark = ctx.mail_mark()
    r = u.s.post("/account/2fa", {"password": u.password, "code": code(u.secret, STEP)})
    assert r.status == 303 and r.location.endswith("/account/2fa"), page_errors(r)
    assert ctx.sql_value("SELECT COUNT(*) FROM totp WHERE user_id = %d" % u.id) == "0"
    assert ctx.sql_value("SELECT COUNT(*) FROM recovery_codes WHERE user_id = %d" % u.id) == "0"
    wait_mail_to(ctx, u.email, mark, "Two-factor sign-in is off")
    c = Client(ctx.port)
    assert login(c, u.email, u.password).location.endswith("/tickets")


# ------------------------------------------------------------------ require_2fa

def _policy(ctx, value):
    reload_conf(ctx, "security", "require_2fa", value)


def _must_enrol(ctx, u):
    """u signs in with the password: taken to enrolment, nothing else open."""
    c = Client(ctx.port)
    r = login(c, u.email, u.password)
    assert r.status == 303 and r.location.endswith("/account/2fa"), (u.role, r.location)
    for path in ("/tickets", "/account", "/account/sessions"):
        r = c.get(path)
        assert r.status == 303 and r.location.endswith("/account/2fa"), (u.role, path, r.status)
    page = c.get("/account/2fa")
    assert page.status == 200 and "Set it up to continue" in page.text
    r = c.post("/account/sessions/end-others", {"csrf_token": c.last_csrf})
    assert r.status == 403, "a POST elsewhere: %d" % r.status
    return c


def _free(ctx, u):
    c = Client(ctx.port)
    r = login(c, u.email, u.password)
    assert r.status == 303 and r.location.endswith("/tickets"), (u.role, r.location)
    assert c.get("/tickets").status == 200
    return c


def test_require_2fa_for_each_role(ctx):
    admin = create_admin(ctx)
    admin_c = _free(ctx, admin)
    agent = helpers.make_agents(ctx, admin_c, [("Tess", "Factor")], log_in=False)[0]
    customer = register(ctx, prefix="tfa")
    try:
        _policy(ctx, "admins")
        _must_enrol(ctx, admin)
        _free(ctx, agent)
        _free(ctx, customer)
        _policy(ctx, "staff")
        _must_enrol(ctx, admin)
        c = _must_enrol(ctx, agent)
        _free(ctx, customer)
        # enrolling opens the rest; then the code is asked at every sign-in
        secret, _codes = enrol(c)
        assert c.get("/tickets").status == 200
        cc = Client(ctx.port)
        assert login(cc, agent.email, agent.password).location.endswith("/login/2fa")
        # a role that must have it cannot turn it off
        r = c.post("/account/2fa", {"password": agent.password, "code": code(secret, STEP)})
        assert r.status == 403, r.status
        _policy(ctx, "none")
        _free(ctx, admin)
    finally:
        _policy(ctx, "none")


def test_bootstrap_admin_under_the_default_enrols_at_first_sign_in(ctx):
    """The server's default (no require_2fa line): the first admin, made by
    ccr-admin create-admin, enrols right after the password, then works."""
    admin = create_admin(ctx)
    saved = ctx.stack.require_2fa
    ctx.stack.require_2fa = None
    try:
        # ccr.conf rewritten without a require_2fa line, SIGHUP
        reload_conf(ctx, "security", "require_2fa", None)
        with open(ctx.stack.conf) as f:
            assert "require_2fa" not in f.read(), "the default, not a configured value"
        c = _must_enrol(ctx, admin)
        secret, _codes = enrol(c)
        assert c.get("/admin/agents").status == 200
        c2 = Client(ctx.port)
        assert login(c2, admin.email, admin.password).location.endswith("/login/2fa")
        r = enter(c2, code(secret, STEP))
        assert r.status == 303 and r.location.endswith("/tickets"), page_errors(r)
        assert c2.get("/admin/agents").status == 200
    finally:
        ctx.stack.require_2fa = saved
        _policy(ctx, "none")


def test_admin_reset_of_another_persons_2fa_is_audited_and_mailed(ctx):
    admin = create_admin(ctx)
    ac = _free(ctx, admin)
    u = customer_with_2fa(ctx)
    ac.get("/admin/agents")
    mark = ctx.mail_mark()
    r = ac.post("/admin/users/%d/2fa/reset" % u.id, {})
    assert r.status == 303, (r.status, page_errors(r))
    row = ctx.sql("SELECT actor_id FROM audit_log WHERE user_id = %d AND event = '2fa_reset'" % u.id)
    assert row and int(row[0][0]) == admin.id, row
    wait_mail_to(ctx, u.email, mark, "Your two-factor sign-in was reset")
    assert ctx.sql_value("SELECT COUNT(*) FROM recovery_codes WHERE user_id = %d" % u.id) == "0"
    c = Client(ctx.port)
    assert login(c, u.email, u.password).location.endswith("/tickets"), "no code asked any more"
    # nothing left to reset: 409; one's own: 403; not an admin: 403
    assert ac.post("/admin/users/%d/2fa/reset" % u.id, {}).status == 409
    assert ac.post("/admin/users/%d/2fa/reset" % admin.id, {}).status == 403
    v = customer_with_2fa(ctx)
    assert u.s.post("/admin/users/%d/2fa/reset" % v.id, {}).status == 403, "not an admin"
    assert ctx.sql_value("SELECT state FROM totp WHERE user_id = %d" % v.id) == "on"


def test_ccr_admin_reset_2fa_for_a_locked_out_admin(ctx):
    admin = create_admin(ctx)
    c = _free(ctx, admin)
    enrol(c)
    assert login(Client(ctx.port), admin.email, admin.password).location.endswith("/login/2fa")
    p = ctx.admin("reset-2fa", "--email", admin.email.upper())
    assert p.returncode == 0 and "reset" in p.stdout, (p.returncode, p.stdout, p.stderr)
    assert login(Client(ctx.port), admin.email, admin.password).location.endswith("/tickets")
    assert ctx.sql_value("SELECT detail FROM audit_log WHERE user_id = %d AND event = '2fa_reset'"
                         % admin.id) == "ccr-admin"
    p = ctx.admin("reset-2fa", "--email", admin.email, check=False)
    assert p.returncode == 1 and "has no two-factor" in p.stderr, p.stderr
    p = ctx.admin("reset-2fa", "--email", "nobody-here@example.com", check=False)
    assert p.returncode == 1 and "no account" in p.stderr, p.stderr


def test_admin_reset_button_on_the_agents_page(ctx):
    admin = create_admin(ctx)
    ac = _free(ctx, admin)
    agent = helpers.make_agents(ctx, ac, [("Rhea", "Reset")])[0]
    enrol(agent.s)
    page = ac.get("/admin/agents")
    assert 'action="/admin/users/%d/2fa/reset"' % agent.id in page.text


# ------------------------------------------------------------------ login alerts

UA = "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"


def _login_ua(c, u, ua=UA):
    if c.last_csrf is None:
        c.prime("/login")
    return c.post("/login", [("email", u.email), ("password", u.password)],
                  headers={"User-Agent": ua})


def test_login_alert_once_per_new_browser_never_after_registration(ctx):
    u = register(ctx, prefix="alert")
    mark = ctx.mail_mark()
    # the registering browser signs in again: known, no alert
    u.s.post("/logout", {})
    assert _login_ua(u.s, u).status == 303
    # a new browser: one alert with time, address and browser
    b = Client(ctx.port)
    assert _login_ua(b, u).status == 303
    m = wait_mail_to(ctx, u.email, mark, "New sign-in to your account")
    assert b.addr in m.body and "TestBrowser/1.0" in m.body and " UTC" in m.body, m.body
    assert "/account/sessions" in m.body
    assert set_cookie(b.last, "ccr_device") is not None
    # the same browser again: no second alert
    b.post("/logout", {})
    assert _login_ua(b, u).status == 303
    time.sleep(1.5)   # let the mailer send anything queued
    alerts = mails_to(ctx, u.email, mark, "New sign-in to your account")
    assert len(alerts) == 1, [a.subject for a in alerts]
    h = ctx.sql("SELECT id_hash FROM devices WHERE user_id = %d" % u.id)
    assert b.cookies["ccr_device"] not in str(h), "only the cookie's hash is stored"


def test_first_login_of_an_account_without_known_browsers_sends_no_alert(ctx):
    admin = create_admin(ctx)
    mark = ctx.mail_mark()
    _free(ctx, admin)
    time.sleep(1.5)
    assert mails_to(ctx, admin.email, mark, "New sign-in") == []


# ------------------------------------------------------------------ sessions

def test_session_list_shows_and_ends_sessions(ctx):
    u = register(ctx, prefix="sess")
    other = Client(ctx.port)
    _login_ua(other, u, "OtherBrowser/2.0")
    third = Client(ctx.port)
    _login_ua(third, u, "ThirdBrowser/3.0")
    page = u.s.get("/account/sessions")
    assert page.status == 200
    rows = re.findall(r'<tr id="session-(\d+)">(.*?)</tr>', page.text, re.S)
    assert len(rows) == 3, rows
    assert sum("this one" in body for _i, body in rows) == 1
    assert "OtherBrowser/2.0" in page.text and other.addr in page.text
    oid = ctx.sql_value("SELECT id FROM sessions WHERE user_id = %d AND user_agent LIKE 'Other%%'" % u.id)
    r = u.s.post("/account/sessions/%s/end" % oid, {})
    assert r.status == 303 and r.location.endswith("/account/sessions")
    assert other.get("/account").status == 303, "the ended session is logged out"
    assert third.get("/account").status == 200
    # someone else's session: 404, nothing ended
    v = register(ctx, prefix="sess")
    vid = ctx.sql_value("SELECT id FROM sessions WHERE user_id = %d" % v.id)
    u.s.refresh_csrf("/account/sessions")
    assert u.s.post("/account/sessions/%s/end" % vid, {}).status == 404
    assert v.s.get("/account").status == 200
    r = u.s.post("/account/sessions/end-others", {})
    assert r.status == 303
    assert third.get("/account").status == 303
    assert u.s.get("/account").status == 200
    # ending this one logs out
    sid = ctx.sql_value("SELECT id FROM sessions WHERE user_id = %d" % u.id)
    u.s.refresh_csrf("/account/sessions")
    r = u.s.post("/account/sessions/%s/end" % sid, {})
    assert r.status == 303 and r.location.endswith("/login")
    assert u.s.get("/account").status == 303


# ------------------------------------------------------------------ backups

def test_backup_holds_the_secret_only_sealed(ctx):
    u = customer_with_2fa(ctx)
    bdir = os.path.join(ctx.tmp, "twofa-backups")
    p = ctx.admin("backup", "--dir", bdir)
    assert p.returncode == 0, p.stderr
    files = sorted(f for f in os.listdir(bdir) if f.endswith(".sql.gz"))
    with gzip.open(os.path.join(bdir, files[-1]), "rb") as f:
        dump = f.read()
    import base64
    raw = base64.b32decode(u.secret)
    assert b"INSERT INTO `totp`" in dump, "the totp table is in the dump"
    for needle in (u.secret.encode(), u.secret.lower().encode(), raw, raw.hex().encode(),
                   raw.hex().upper().encode()):
        assert needle not in dump, "the secret appears in the backup as %r" % needle[:8]
    for c in u.codes:
        assert c.encode() not in dump and c.replace("-", "").encode() not in dump


def test_changed_secret_key_voids_enrolments_without_a_crash(ctx):
    u = customer_with_2fa(ctx)
    p = register(ctx, prefix="tfa")
    _r, _uri, old_pending = setup_page(p.s)
    try:
        reload_conf(ctx, "security", "secret_key", "f" * 64)
        c, r = password_step(ctx, u)
        assert r.location.endswith("/login/2fa")
        fresh_step()
        r = enter(c, code(u.secret, STEP))
        assert r.status == 503 and "ask an admin to reset it" in r.text, (r.status, page_errors(r))
        assert "ccr_session" not in c.cookies
        # a pending enrolment starts again with a new secret
        _r, _uri, new_pending = setup_page(p.s)
        assert new_pending != old_pending
    finally:
        reload_conf(ctx, "security", "secret_key", None)
    # the old key back: the enrolled secret opens again
    c, _ = password_step(ctx, u)
    fresh_step()
    r = enter(c, code(u.secret, STEP))   # the refused attempt above claimed nothing
    assert r.status == 303, page_errors(r)

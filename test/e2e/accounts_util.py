"""Helpers of test_accounts.py only (stdlib only); the account helpers it
shares with the other modules (Client, register, login, logged_in,
create_admin, reset_code, ...) are in helpers.py.

    wait_mail_to(ctx, addr, since, subject=None, timeout) -> helpers.Mail
    mails_to(ctx, addr, since=None, subject=None) -> [helpers.Mail]
    request_code(ctx, c, email)      POST /password/forgot -> the mailed code
    set_cookie(r, name)              the parsed Set-Cookie of `name` in a Response
    sha256_hex(s)
"""
import hashlib
import re

from helpers import reset_code


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


def wait_mail_to(ctx, addr, since, subject=None, timeout=15):
    addr = addr.lower()

    def pred(m):
        return addr in m.to.lower() and (subject is None or subject in m.subject)
    return ctx.wait_mail(pred, since=since, timeout=timeout)


def mails_to(ctx, addr, since=None, subject=None):
    since = since or set()
    addr = addr.lower()
    return [m for m in ctx.mails() if m.name not in since and addr in m.to.lower()
            and (subject is None or subject in m.subject)]


def request_code(ctx, c, email):
    """POST /password/forgot for email; returns the code from the mail it causes."""
    mark = ctx.mail_mark()
    if c.last_csrf is None:
        c.prime("/password/forgot")
    r = c.post("/password/forgot", [("email", email)])
    assert r.status == 303, "POST /password/forgot: %d" % r.status
    return reset_code(wait_mail_to(ctx, email, mark, "reset code"))


def set_cookie(r, name):
    """{'value': v, attr(lower): value or True} of the last Set-Cookie for
    name (the one a browser keeps), or None."""
    for sc in reversed(r.header_all("Set-Cookie")):
        parts = [p.strip() for p in sc.split(";")]
        k, _, v = parts[0].partition("=")
        if k.strip() != name:
            continue
        out = {"value": v, "raw": sc}
        for p in parts[1:]:
            if not p:
                continue
            ak, eq, av = p.partition("=")
            out[ak.strip().lower()] = av.strip() if eq else True
        return out
    return None


def flash_of(c, r):
    """Follow r and return the flash text on the page it leads to ('' if none)."""
    page = c.follow(r)
    m = re.search(r'<div class="flash[^"]*"[^>]*><p>(.*?)</p>', page.text, re.S)
    return (m.group(1) if m else ""), page


def messages(r):
    """Every form/field/error message on a page, in order."""
    return re.findall(r'<p class="(?:form-error|field-error|error-message)"[^>]*>(.*?)</p>',
                      r.text, re.S)


def audit_events(ctx, uid, since_id=0):
    return [row[0] for row in ctx.sql(
        "SELECT event FROM audit_log WHERE user_id = %d AND id > %d ORDER BY id" % (uid, since_id))]


def max_id(ctx, table):
    return int(ctx.sql_value("SELECT COALESCE(MAX(id), 0) FROM %s" % table))

"""Attachments (README "Attachments"): multipart/form-data on POST /tickets
and POST /tickets/{id}/messages through nginx; the limits (5 files, each
max_file_bytes, 25 MiB a request); byte-exact downloads with the serving
headers; libmagic's type over the client's claim; hostile names and
contents; ETag/304, Range; who may download (404 for everyone else); a
malformed-multipart corpus that never gets a 500; files by mail; the
worker's memory during a 25 MiB upload (a MEASURE line).
"""
import hashlib
import os
import re
import socket
import subprocess
import time

import helpers
import tickets_util as tu
from helpers import encode_multipart, post_multipart

MiB = 1024 * 1024
LIMIT = 10 * MiB          # [attachments] max_file_bytes, the default
W = {}


def world(ctx):
    return tu.world(ctx, W)


def people(ctx):
    """admin, two agents, two customers; ticket t1 of c1 assigned to g1."""
    w = world(ctx)
    if "admin" not in w:
        w["admin"] = tu.make_admin(ctx, "Ada", "Attachadmin")
        w["g1"], w["g2"] = tu.new_agents(ctx, w["admin"], [("Gus", "Attachagent"),
                                                           ("Gia", "Attachagenttwo")])
        w["c1"] = tu.register_customer(ctx, "Cleo", "Attachcust")
        w["c2"] = tu.register_customer(ctx, "Cyd", "Attachother")
        w["t1"] = new_ticket(w["c1"], [])
        r = w["admin"].s.post("/tickets/%d/assign" % w["t1"], {"agent_id": str(w["g1"].id)})
        assert r.status == 303, "assign: %d" % r.status
    return w


def new_ticket(user, files, subject=None, description="The files show it."):
    user.s.get("/tickets/new")
    r = post_multipart(user.s, "/tickets", [("subject", subject or "Files " + tu.unique_word()),
                                            ("description", description), ("priority", "high")],
                       [("attachment", n, d, t) for n, d, t in files])
    assert r.status == 303, "POST /tickets multipart: %d %s" % (r.status, helpers.page_errors(r))
    return int(re.search(r"/tickets/(\d+)", r.location).group(1))


def reply(user, tid, body, files, csrf="auto"):
    user.s.get("/tickets/%d" % tid)
    return post_multipart(user.s, "/tickets/%d/messages" % tid, [("body", body)],
                          [("attachment", n, d, t) for n, d, t in files], csrf=csrf)


def rows(ctx, where):
    return ctx.sql("SELECT id, filename, content_type, size, sha256, IFNULL(message_id, 0) "
                   "FROM attachments WHERE %s ORDER BY id" % where)


def count(ctx, table="attachments"):
    return int(ctx.sql_value("SELECT COUNT(*) FROM %s" % table))


def url(aid, name="f"):
    return "/attachments/%s/%s" % (aid, name)


def binary(n, seed):
    """n bytes with plenty of NULs and every byte value."""
    out = bytearray()
    h = hashlib.sha256(seed.encode()).digest()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h + b"\0" * 7 + bytes(range(256))[:25]
    return bytes(out[:n])


def test_upload_download_round_trip_byte_exact(ctx):
    w = people(ctx)
    c1 = w["c1"]
    files = [("nuls.bin", binary(300000, "a"), "application/octet-stream"),
             ("empty.txt", b"", "text/plain"),
             ("exact.bin", binary(LIMIT, "b"), "application/octet-stream"),
             ("two-pieces.bin", binary(MiB + 17, "c"), "application/octet-stream")]
    tid = new_ticket(c1, files)
    got = rows(ctx, "ticket_id = %d" % tid)
    assert [r[1] for r in got] == [f[0] for f in files], got
    assert all(r[5] == "0" for r in got), "files of the description have no message: %s" % got
    assert int(ctx.sql_value("SELECT COUNT(*) FROM attachment_chunks c JOIN attachments a "
                             "ON a.id = c.attachment_id WHERE a.ticket_id = %d" % tid)) == 1 + 1 + 10 + 2
    for (name, data, _), r in zip(files, got):
        d = c1.s.get(url(r[0], name))
        assert d.status == 200, "GET %s: %d" % (name, d.status)
        assert d.body == data, "%s: %d bytes back, %d sent" % (name, len(d.body), len(data))
        assert int(r[3]) == len(data) and r[4] == hashlib.sha256(data).hexdigest(), r
        assert d.header("X-Content-Type-Options") == "nosniff", d.headers
        assert d.header("Content-Security-Policy") == "default-src 'none'; sandbox", d.headers
        assert d.header("Cache-Control") == "private", d.headers
        assert d.header("ETag") == '"%s"' % r[4], d.headers
        assert d.header("Content-Disposition").startswith("attachment;"), d.headers
    # the page lists them, with name, size and link
    page = c1.s.get("/tickets/%d" % tid)
    for (name, _, _), r in zip(files, got):
        assert ('href="/attachments/%s/%s"' % (r[0], name)) in page.text, name
    assert "300000" not in page.text and "293.0 KiB" in page.text, "sizes shown"
    # the limit + 1: 413, and nothing of the request is kept
    before, tickets = count(ctx), int(ctx.sql_value("SELECT COUNT(*) FROM tickets"))
    c1.s.get("/tickets/new")
    r = post_multipart(c1.s, "/tickets", [("subject", "Too big"), ("description", "x")],
                       [("attachment", "big.bin", binary(LIMIT + 1, "d"), "application/octet-stream")])
    assert r.status == 413 and "Attachments are too large" in r.text, (r.status, helpers.page_errors(r))
    assert count(ctx) == before and int(ctx.sql_value("SELECT COUNT(*) FROM tickets")) == tickets
    r = reply(c1, tid, "and one more", [("big.bin", binary(LIMIT + 1, "e"), "text/plain")])
    assert r.status == 413 and "Attachments are too large" in r.text, r.status
    assert count(ctx) == before


def test_reply_files_limits_and_type_something(ctx):
    w = people(ctx)
    c1, g1, t1 = w["c1"], w["g1"], w["t1"]
    r = reply(c1, t1, "", [])
    assert r.status == 422 and "Type something!" in r.text, r.status
    before = count(ctx)
    r = reply(c1, t1, "six", [("f%d.txt" % i, b"x%d" % i, "text/plain") for i in range(6)])
    assert r.status == 422 and "At most 5 attachments" in r.text, (r.status, helpers.page_errors(r))
    assert count(ctx) == before
    # a file alone is a message
    r = reply(c1, t1, "", [("only.png", PNG, "image/png")])
    assert r.status == 303, (r.status, helpers.page_errors(r))
    mid = int(r.location.split("#m")[1])
    got = rows(ctx, "message_id = %d" % mid)
    assert [(x[1], x[2]) for x in got] == [("only.png", "image/png")], got
    # five is fine, from the agent too
    c1.s.get("/tickets/%d" % t1)
    mark = ctx.mail_mark()
    r = reply(g1, t1, "five logs", [("log%d.txt" % i, b"line %d\n" % i, "text/plain")
                                    for i in range(5)])
    assert r.status == 303, (r.status, helpers.page_errors(r))
    # the thread shows them, a preview for the image; the poll fragment too
    page = c1.s.get("/tickets/%d" % t1)
    assert re.search(r'<img src="/attachments/%s/only.png" alt="" loading="lazy"' % got[0][0],
                     page.text), "preview"
    # `after` counts the ticket's timeline: from just before that message's entry
    seq = int(ctx.sql_value("SELECT id FROM timeline WHERE kind = 'message' AND message_id = %d" % mid))
    frag = c1.s.get("/tickets/%d/messages?after=%d" % (t1, seq - 1))
    assert "/attachments/%s/only.png" % got[0][0] in frag.text and "log4.txt" in frag.text
    # the agent's mail to the customer links the files
    helpers.wait_mails(ctx, [lambda m: c1.email in m.to and "log3.txt" in m.body and
                             "/attachments/" in m.body], mark,
                       what="new-message mail with attachment links")


def test_image_preview_link_has_an_accessible_name(ctx):
    """The preview of an image is a second link to the file around an
    alt="" image: it had no name (axe-core's link-name, found when the
    workspace's axe audit met a note's image).  It is named, escaped, on
    the description's and a message's files."""
    w = people(ctx)
    c1 = w["c1"]
    tid = new_ticket(c1, [("<b>.png", PNG, "image/png")])
    r = reply(c1, tid, "and another", [("shot.png", PNG, "image/png")])
    assert r.status == 303, (r.status, helpers.page_errors(r))
    page = c1.s.get("/tickets/%d" % tid).text
    for name, shown in (("<b>.png", "&lt;b&gt;.png"), ("shot.png", "shot.png")):
        aid = ctx.sql_value("SELECT id FROM attachments WHERE ticket_id = %d AND filename = '%s'"
                            % (tid, name))
        got = re.search(r'<a href="/attachments/%s/[^"]*" class="attachment-preview"([^>]*)><img' % aid, page)
        assert got and got.group(1) == ' aria-label="Preview of %s"' % shown, (name, got and got.group(0))


def test_request_over_25_mib_is_413_and_worker_memory(ctx):
    w = people(ctx)
    c1, t1 = w["c1"], w["t1"]
    files = [("a.bin", binary(LIMIT, "f"), "application/octet-stream"),
             ("b.bin", binary(LIMIT, "g"), "application/octet-stream"),
             ("c.bin", binary(5 * MiB, "h"), "application/octet-stream")]
    hwm0 = worker_hwm(ctx)
    r = reply(c1, t1, "25 MiB", files)
    assert r.status == 303, (r.status, helpers.page_errors(r))
    hwm1 = worker_hwm(ctx)
    print("MEASURE attachments: worker VmHWM %.1f MiB after a 25 MiB upload (%.1f MiB before)" % (
        max(hwm1.values()) / 1024.0, max(hwm0.values()) / 1024.0))
    mid = int(r.location.split("#m")[1])
    got = rows(ctx, "message_id = %d" % mid)
    d = c1.s.get(url(got[1][0]), timeout=60)
    assert d.body == files[1][1], "10 MiB back byte-exact"
    before = count(ctx)
    files[2] = ("c.bin", binary(5 * MiB + 1, "h"), "application/octet-stream")
    r = reply(c1, t1, "25 MiB + 1", files)
    assert r.status == 413 and "Attachments are too large" in r.text, r.status
    # a body over 25 MiB + 64 KiB is refused unread by ccrd (nginx lets 26m through)
    ctype, body = encode_multipart([("csrf_token", c1.s.last_csrf), ("body", "x")],
                                   [("attachment", "huge.bin", b"\1" * (25 * MiB + 70000),
                                     "application/octet-stream")])
    r = c1.s.raw("POST", "/tickets/%d/messages" % t1, body=body,
                 headers={"Content-Type": ctype}, timeout=60)
    assert r.status == 413, r.status
    assert count(ctx) == before


def worker_hwm(ctx):
    out = {}
    for pid in ctx.stack.worker_pids():
        try:
            with open("/proc/%d/status" % pid) as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        out[pid] = int(line.split()[1])
        except OSError:
            pass
    return out or {0: 0}


def test_urlencoded_still_accepted(ctx):
    w = people(ctx)
    c1 = w["c1"]
    c1.s.get("/tickets/new")
    r = c1.s.post("/tickets", {"subject": "Plain form", "description": "no files"})
    assert r.status == 303, r.status
    tid = int(re.search(r"/tickets/(\d+)", r.location).group(1))
    c1.s.get("/tickets/%d" % tid)
    r = c1.s.post("/tickets/%d/messages" % tid, {"body": "plain reply"})
    assert r.status == 303, r.status
    r = c1.s.post("/tickets/%d/messages" % tid, {"body": ""})
    assert r.status == 422 and "Type something!" in r.text
    # multipart elsewhere is refused as before; other bodies stay 64 KiB
    ctype, body = encode_multipart([("csrf_token", c1.s.last_csrf), ("password", "x")])
    r = c1.s.raw("POST", "/account/delete", body=body, headers={"Content-Type": ctype})
    assert r.status == 415, r.status
    r = c1.s.post("/tickets/%d/messages" % tid, {"body": "y" * 70000})
    assert r.status == 413, "urlencoded over 64 KiB on an upload route: %d" % r.status


def test_hostile_filenames_are_sanitised(ctx):
    w = people(ctx)
    c1, t1 = w["c1"], w["t1"]
    cases = [("../../etc/passwd", "passwd"),
             (b"C:\\\\Users\\\\x\\\\evil.exe", "evil.exe"),   # \\ is a quoted-pair
             (b"nul\x00byte.txt", None),
             (b"ctl\x01\x7f\x1b.txt", "ctl___.txt"),
             ("line\r\nbreak.txt", "line%0D%0Abreak.txt"),
             ("..", None), ("", "attachment"),
             ("a" * 300 + ".pdf", "a" * 251 + ".pdf"),
             ("ünïcødé ✓.txt", "ünïcødé ✓.txt"),
             ('quote".txt', "quote%22.txt")]
    for raw, want in cases:
        r = reply(c1, t1, "name %r" % (raw,), [(raw, b"data", "text/plain")])
        assert r.status == 303, "%r: %d %s" % (raw, r.status, helpers.page_errors(r))
        mid = int(r.location.split("#m")[1])
        (aid, name, *_rest), = rows(ctx, "message_id = %d" % mid)
        assert name, raw
        assert not re.search(r"[\x00-\x1f\x7f/\\]", name) and ".." not in name, (raw, name)
        assert len(name.encode()) <= 255, (raw, len(name.encode()))
        if want is not None:
            assert name == want, "%r stored as %r, want %r" % (raw, name, want)
        d = c1.s.get(url(aid))
        assert d.status == 200 and d.body == b"data", (raw, d.status)
        cd = d.header("Content-Disposition")
        assert "\r" not in cd and "\n" not in cd and "filename*=UTF-8''" in cd, cd


PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
HOSTILE = [
    ("page.html", b"<!DOCTYPE html><html><body><script>alert(document.domain)</script></body></html>",
     "text/html"),
    ("image.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
                  b'<script>alert(2)</script></svg>', "image/svg+xml"),
    ("polyglot.gif", b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=1;<script>alert(3)</script>"
                     b"<html><body onload=alert(4)>", "image/gif"),
    ("fake.png", b"<html><script>alert(5)</script></html>", "image/png"),
]


def test_hostile_content_served_as_download_with_sandbox(ctx):
    w = people(ctx)
    c1, t1 = w["c1"], w["t1"]
    r = reply(c1, t1, "hostile", HOSTILE)
    assert r.status == 303, (r.status, helpers.page_errors(r))
    mid = int(r.location.split("#m")[1])
    got = rows(ctx, "message_id = %d" % mid)
    types = dict((x[1], x[2]) for x in got)
    assert types["page.html"] == "text/html" and types["fake.png"] == "text/html", types
    assert types["polyglot.gif"] == "image/gif", types
    for aid, name, *_ in got:
        d = c1.s.get(url(aid, name))
        ct, cd = d.header("Content-Type"), d.header("Content-Disposition")
        assert d.header("Content-Security-Policy") == "default-src 'none'; sandbox", name
        assert d.header("X-Content-Type-Options") == "nosniff", name
        if name == "polyglot.gif":
            assert ct == "image/gif" and cd.startswith("inline;"), (name, ct, cd)
        else:
            assert ct == "application/octet-stream" and cd.startswith("attachment;"), (name, ct, cd)
    # safe types keep their type but are still downloads; images are inline
    r = reply(c1, t1, "safe", [("doc.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
                                 "application/pdf"), ("notes.txt", b"plain words\n", "text/html"),
                                ("pic.png", PNG, "application/octet-stream")])
    mid = int(r.location.split("#m")[1])
    for aid, name, *_ in rows(ctx, "message_id = %d" % mid):
        d = c1.s.get(url(aid, name))
        want = {"doc.pdf": ("application/pdf", "attachment"), "notes.txt": ("text/plain", "attachment"),
                "pic.png": ("image/png", "inline")}[name]
        assert (d.header("Content-Type"), d.header("Content-Disposition").split(";")[0]) == want, (
            name, d.header("Content-Type"), d.header("Content-Disposition"))


def test_etag_304_range_head(ctx):
    w = people(ctx)
    c1, t1 = w["c1"], w["t1"]
    data = binary(2 * MiB + 5, "r")
    r = reply(c1, t1, "ranges", [("r.bin", data, "application/octet-stream")])
    mid = int(r.location.split("#m")[1])
    (aid, _n, _t, _s, sha, _m), = rows(ctx, "message_id = %d" % mid)
    etag = '"%s"' % sha
    d = c1.s.get(url(aid), headers={"If-None-Match": etag})
    assert d.status == 304 and d.body == b"" and d.header("ETag") == etag, d.status
    d = c1.s.get(url(aid), headers={"If-None-Match": 'W/"x", ' + etag})
    assert d.status == 304, d.status
    d = c1.s.get(url(aid), headers={"If-None-Match": '"other"'})
    assert d.status == 200 and d.body == data
    for rng, lo, hi in (("bytes=0-9", 0, 9), ("bytes=%d-" % (MiB - 3), MiB - 3, len(data) - 1),
                        ("bytes=-7", len(data) - 7, len(data) - 1),
                        ("bytes=1048570-2097150", 1048570, 2097150), ("bytes=5-99999999", 5, len(data) - 1)):
        d = c1.s.get(url(aid), headers={"Range": rng})
        assert d.status == 206 and d.body == data[lo:hi + 1], (rng, d.status, len(d.body))
        assert d.header("Content-Range") == "bytes %d-%d/%d" % (lo, hi, len(data)), (
            rng, d.header("Content-Range"))
    d = c1.s.get(url(aid), headers={"Range": "bytes=%d-" % len(data)})
    assert d.status == 416, d.status
    d = c1.s.get(url(aid), headers={"Range": "bytes=0-1,5-6"})
    assert d.status == 200 and d.body == data, "several ranges: the whole file"
    d = c1.s.raw("HEAD", url(aid))
    assert d.status == 200 and d.body == b"" and d.header("Content-Length") == str(len(data))


def test_download_body_in_64k_fastcgi_records_after_the_headers(ctx):
    # The body of a download is written by ccrd itself in FastCGI stdout
    # records of up to 65528 bytes (libfcgi's stream made 8 KiB records, one
    # write each: the download ran at 0.13 x nginx).  Straight on ccrd's
    # socket: the header block comes first and whole, every record is a
    # well-formed stdout record of this request, few of them, the stream ends
    # with the empty record and END_REQUEST, and the bytes are exact - for
    # the whole file and for a range that crosses record and piece borders.
    w = people(ctx)
    c1, t1 = w["c1"], w["t1"]
    data = binary(2 * MiB + 5, "records")
    r = reply(c1, t1, "records", [("rec.bin", data, "application/octet-stream")])
    mid = int(r.location.split("#m")[1])
    (aid, *_), = rows(ctx, "message_id = %d" % mid)
    for rng, lo, hi in ((None, 0, len(data) - 1), ("bytes=65500-1048600", 65500, 1048600)):
        extra = {"HTTP_COOKIE": c1.s.cookie_header()}
        if rng:
            extra["HTTP_RANGE"] = rng
        ex = helpers.raw_exchange(ctx.stack.ccrd_sock, helpers.request_bytes(
            ctx, "GET", url(aid), extra=extra), timeout=30, shut_wr=False, until_end=True)
        assert ex.ended and not ex.trailing, ex
        types = ex.types()
        assert types[-2:] == [helpers.FCGI_STDOUT, helpers.FCGI_END_REQUEST], types[-5:]
        outs = [c for t, rid, c in ex.records if t == helpers.FCGI_STDOUT]
        assert all(rid == 1 for _t, rid, _c in ex.records), "request ids"
        assert set(types) == {helpers.FCGI_STDOUT, helpers.FCGI_END_REQUEST}, set(types)
        assert outs[-1] == b"", "the stream ends with an empty stdout record"
        head = outs[0]
        assert head.startswith(b"Status: %d" % (206 if rng else 200)) and head.endswith(b"\r\n\r\n"), (
            "the header block is the first record, whole: %r" % head[:60])
        body = outs[1:-1]
        assert b"".join(body) == data[lo:hi + 1], (rng, len(b"".join(body)))
        assert all(0 < len(c) <= 65528 for c in body), sorted(set(map(len, body)))[:5]
        # 64 KiB records, cut where a 1 MiB piece ends: a handful, not 8 KiB ones
        assert len(body) <= (hi - lo + 1) // 65528 + 3, (rng, len(body))


def test_download_reader_gone_mid_file_costs_no_worker(ctx):
    # ccrd writes a download's records itself (writev): a reader that stops
    # after the headers and closes its socket makes the write fail; the
    # worker ends that request quietly and serves the next one, and an
    # attachment read through nginx afterwards is still byte-exact.
    w = people(ctx)
    c1, t1 = w["c1"], w["t1"]
    data = binary(3 * MiB + 1, "gone")
    r = reply(c1, t1, "gone", [("gone.bin", data, "application/octet-stream")])
    mid = int(r.location.split("#m")[1])
    (aid, *_), = rows(ctx, "message_id = %d" % mid)
    before = sorted(ctx.stack.worker_pids())
    mark = ctx.log_mark()
    req = helpers.request_bytes(ctx, "GET", url(aid), extra={"HTTP_COOKIE": c1.s.cookie_header()})
    for _ in range(len(before) + 1):          # each worker at least once, likely
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(ctx.stack.ccrd_sock)
        s.sendall(req)
        assert s.recv(8), "no answer at all"
        s.close()                             # 3 MiB unread
    ctx.wait_until(lambda: ctx.fcgi("GET", "/healthz").status == 200, 10, "ccrd answers")
    d = c1.s.get(url(aid))
    assert d.status == 200 and d.body == data, (d.status, len(d.body))
    assert sorted(ctx.stack.worker_pids()) == before, "a worker died or was replaced"
    log = ctx.log_since(mark)
    assert "attach:" not in log and "error" not in log.lower(), log[-600:]


def test_who_may_download_idor_matrix(ctx):
    w = people(ctx)
    c1, c2, g1, g2, admin, t1 = w["c1"], w["c2"], w["g1"], w["g2"], w["admin"], w["t1"]
    r = reply(c1, t1, "secret", [("secret.txt", b"the secret", "text/plain")])
    mid = int(r.location.split("#m")[1])
    (aid, *_), = rows(ctx, "message_id = %d" % mid)
    for who, cl in (("customer", c1.s), ("assigned agent", g1.s), ("admin", admin.s)):
        d = cl.get(url(aid))
        assert d.status == 200 and d.body == b"the secret", (who, d.status)
    anon = helpers.Client(ctx.port)
    for who, cl in (("other customer", c2.s), ("other agent", g2.s), ("anonymous", anon)):
        for path in (url(aid), url(aid, "secret.txt"), url(99999999)):
            d = cl.get(path)
            assert d.status == 404 and b"the secret" not in d.body, (who, path, d.status)
    # posting files on someone else's ticket: 404 and nothing kept
    before = count(ctx)
    c2.s.get("/tickets")
    r = post_multipart(c2.s, "/tickets/%d/messages" % t1, [("body", "intrude")],
                       [("attachment", "x.txt", b"x", "text/plain")])
    assert r.status == 404 and count(ctx) == before, r.status


MALFORMED = [
    ("multipart/form-data", b"--x\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\nhi\r\n--x--\r\n"),
    ("multipart/form-data; boundary=a; boundary=b", b"--a\r\n\r\n--a--\r\n"),
    ("multipart/form-data; boundary=", b"--\r\n\r\n----\r\n"),
    ("multipart/form-data; boundary=" + "b" * 71, b"--" + b"b" * 71 + b"--\r\n"),
    ("multipart/form-data; boundary=x", b""),
    ("multipart/form-data; boundary=x", b"garbage without any boundary at all"),
    ("multipart/form-data; boundary=x", b"--x--\r\n"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Type: text/plain\r\n\r\nno disposition\r\n--x--\r\n"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: attachment; name=\"body\"\r\n\r\nv\r\n--x--\r\n"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--x--\r\n"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\ncut short"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"body\"\r\n" +
     b"X-Long: " + b"h" * 9000 + b"\r\n\r\nv\r\n--x--\r\n"),
    ("multipart/form-data; boundary=x", b"".join(b"--x\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nv\r\n" % i
                                                 for i in range(100)) + b"--x--\r\n"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"body\"\r\n"
     b"Content-Type: multipart/mixed; boundary=y\r\n\r\n--y\r\n\r\nnested\r\n--y--\r\n--x--\r\n"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\nnul\0byte\r\n--x--\r\n"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\n\xff\xfe bad utf8\r\n--x--\r\n"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"body\"\r\n"
     b"Content-Transfer-Encoding: base64\r\n\r\n!!!notbase64\r\n--x--\r\n"),
    ("multipart/form-data; boundary=x", b"\x00\x01\x02" * 1000),
    ("multipart/mixed; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\nv\r\n--x--\r\n"),
]


def test_malformed_multipart_corpus_never_500(ctx):
    w = people(ctx)
    c1, t1 = w["c1"], w["t1"]
    c1.s.get("/tickets/%d" % t1)
    mark = ctx.log_mark()
    problems = []
    for i, (ctype, body) in enumerate(MALFORMED):
        for path in ("/tickets/%d/messages" % t1, "/tickets"):
            r = c1.s.raw("POST", path, body=body, headers={"Content-Type": ctype})
            if r.status not in (400, 403, 413, 415, 422):
                problems.append("case %d on %s: %d" % (i, path, r.status))
    # the csrf token inside a malformed body never counts: these answer 4xx,
    # and with the token a well-formed body still works afterwards
    r = reply(c1, t1, "still fine", [("ok.txt", b"ok", "text/plain")])
    assert r.status == 303, r.status
    crashes = [l for l in ctx.log_since(mark).splitlines() if "signal" in l or "CRASH" in l]
    assert not problems and not crashes, problems + crashes


def test_deleted_account_keeps_its_files(ctx):
    w = people(ctx)
    c = tu.register_customer(ctx, "Del", "Attachgone")
    tid = new_ticket(c, [("kept.txt", b"still here", "text/plain")])
    (aid, *_), = rows(ctx, "ticket_id = %d" % tid)
    c.s.get("/account")
    r = c.s.post("/account/delete", {"password": tu.PASSWORD})
    assert r.status == 303, r.status
    d = w["admin"].s.get(url(aid))
    assert d.status == 200 and d.body == b"still here", d.status


def test_reply_and_ticket_by_mail_keep_files(ctx):
    import test_mail as tm
    w = people(ctx)
    c1, g1, t1 = w["c1"], w["g1"], w["t1"]
    mark = ctx.mail_mark()
    g1.s.get("/tickets/%d" % t1)
    r = g1.s.post("/tickets/%d/messages" % t1, {"body": "Can you send the log?"})
    assert r.status == 303
    note = tm.notification(ctx, t1, c1.email, mark, "new-message mail to the customer")
    raw = tm.answer(note, c1.email, "Here it is.")
    raw = with_files(raw, [("router.log", b"boot\0ok\n" * 10, "text/plain"),
                           ("huge.bin", b"\1" * (LIMIT + 1), "application/octet-stream")])
    tm.deliver(ctx, raw)
    mid = int(ctx.sql_value("SELECT MAX(id) FROM messages WHERE ticket_id = %d" % t1))
    got = rows(ctx, "message_id = %d" % mid)
    assert [x[1] for x in got] == ["router.log"], got
    body = ctx.sql_value("SELECT body FROM messages WHERE id = %d" % mid)
    assert "Here it is." in body and "attachment huge.bin was not kept: too large" in body, body
    d = c1.s.get(url(got[0][0]))
    assert d.body == b"boot\0ok\n" * 10
    # a new ticket by mail keeps its files on the description
    raw = tm.compose(c1.email, tm.SUPPORT, "Printer " + tu.unique_word(), "See the photo.")
    tm.deliver(ctx, with_files(raw, [("photo.png", PNG, "image/png")]))
    tid = int(ctx.sql_value("SELECT MAX(id) FROM tickets WHERE customer_id = %d" % c1.id))
    got = rows(ctx, "ticket_id = %d" % tid)
    assert [(x[1], x[2], x[5]) for x in got] == [("photo.png", "image/png", "0")], got


def with_files(raw, files):
    """raw (a single-part mail) made multipart/mixed with these files."""
    import email
    import email.policy
    m = email.message_from_bytes(raw, policy=email.policy.SMTP)
    for name, data, ctype in files:
        maintype, sub = ctype.split("/")
        m.add_attachment(data, maintype=maintype, subtype=sub, filename=name)
    return m.as_bytes()

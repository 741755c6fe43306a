"""Operations: ccr-admin commands, backup and restore, /metrics, config errors."""
import os
import re
import subprocess

import helpers


def _conf_with(ctx, path, **overrides):
    """A copy of the stack's ccr.conf with [section] key = value overrides
    given as section__key=value."""
    text = open(ctx.stack.conf).read()
    for k, v in overrides.items():
        section, key = k.split("__")
        block = re.search(r"(?ms)^\[%s\]\n(.*?)(?=^\[|\Z)" % section, text)
        body = block.group(1)
        if re.search(r"(?m)^%s\s*=" % key, body):
            body2 = re.sub(r"(?m)^%s\s*=.*$" % key, lambda _m: "%s = %s" % (key, v), body)
        else:
            body2 = body + "%s = %s\n" % (key, v)
        text = text[:block.start(1)] + body2 + text[block.end(1):]
    with open(path, "w") as f:
        f.write(text)
    return path


def _admin(ctx, conf, *args, input=None):
    return subprocess.run([ctx.stack.admin_bin, "-c", conf] + list(args), input=input,
                          capture_output=True, text=True, timeout=120)


def test_check_config_reports_file_and_line(ctx):
    bad = os.path.join(ctx.tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write("[server]\nworkers = 2\n\n[database]\nname = ccr\ncolour = blue\n")
    p = _admin(ctx, bad, "check-config")
    assert p.returncode == 1, p
    assert "%s:6:" % bad in p.stderr and "colour" in p.stderr, p.stderr
    with open(bad, "w") as f:
        f.write("[security]\nargon2_memory = 1024\n")
    p = _admin(ctx, bad, "check-config")
    assert p.returncode == 1 and "%s:2:" % bad in p.stderr, p.stderr
    p = _admin(ctx, os.path.join(ctx.repo, "fcgi", "ccr.conf.example"), "check-config")
    assert p.returncode == 0, p.stderr


def test_migrate_is_idempotent(ctx):
    before = ctx.sql("SELECT version FROM schema_migrations ORDER BY version")
    p = ctx.admin("migrate")
    assert "0 applied" in p.stdout, p.stdout
    assert ctx.sql("SELECT version FROM schema_migrations ORDER BY version") == before
    assert [r[0] for r in before][:2] == ["001-initial", "002-notices"], before


def test_create_admin_validates_and_refuses_duplicates(ctx):
    email = ctx.unique_email("adm")
    p = ctx.admin("create-admin", "--email", email, input="short\n", check=False)
    assert p.returncode == 1 and "Password must be at least 8 characters long" in p.stderr, p
    p = ctx.admin("create-admin", "--email", "not-an-email", input="longenough1\n", check=False)
    assert p.returncode == 1 and "Invalid email" in p.stderr, p
    ctx.admin("create-admin", "--email", email.upper(), input="longenough1\n")
    assert ctx.sql_value("SELECT role FROM users WHERE email = '%s'" % email) == "admin"
    p = ctx.admin("create-admin", "--email", email, input="longenough1\n", check=False)
    assert p.returncode == 1 and "already exists" in p.stderr, p


def test_backup_then_restore_into_an_empty_database_is_identical(ctx):
    # something in every table worth comparing
    s = ctx.session()
    email = ctx.unique_email("bk")
    s.get("/register")
    r = s.post("/register", {"first_name": "Bäck", "last_name": "Up", "email": email,
                             "password": "password123", "confirm_password": "password123"})
    assert r.status == 303, r
    s.get("/tickets/new")
    r = s.post("/tickets", {"subject": "Backup ✓ subject", "description": "line1\nline2 ünïcode"})
    assert r.status == 303, r
    # attachments: BLOB pieces with every byte value must round-trip (--hex-blob)
    s.get("/tickets/new")
    blob = bytes(range(256)) * 4100 + b"\0\r\n\x1a'\"\\"
    r = helpers.post_multipart(s, "/tickets", [("subject", "Backup with files"),
                                               ("description", "see attached")],
                               [("attachment", "bytes.bin", blob, "application/octet-stream"),
                                ("attachment", "empty.txt", b"", "text/plain")])
    assert r.status == 303, r
    # an internal note's file (attachments.note_id, its CHECK) round-trips too
    ftid = int(re.search(r"/tickets/(\d+)", r.location).group(1))
    ad = helpers.create_admin(ctx, password="longenough1", prefix="bkadmin")
    adc = helpers.logged_in(ctx, ad.email, "longenough1", helpers.Client(ctx.port), then="/tickets")
    adc.get("/tickets/%d" % ftid)
    r = helpers.post_multipart(adc, "/tickets/%d/notes" % ftid, [("body", "staff only")],
                               [("attachment", "note.bin", blob[:5000], "application/octet-stream")])
    assert r.status == 303 and "#n" in (r.location or ""), (r.status, helpers.page_errors(r))
    bdir = os.path.join(ctx.tmp, "backups")
    conf = _conf_with(ctx, os.path.join(ctx.tmp, "bk.conf"), database__backup_keep="2")
    for _ in range(3):
        p = _admin(ctx, conf, "backup", "--dir", bdir)
        assert p.returncode == 0, p.stderr
    files = sorted(f for f in os.listdir(bdir) if f.endswith(".sql.gz"))
    assert 1 <= len(files) <= 2, files         # backup_keep = 2 (names may repeat within a second)
    assert oct(os.stat(os.path.join(bdir, files[-1])).st_mode & 0o777) == "0o600"
    # restore into a fresh, empty database
    ctx.stack.sql("DROP DATABASE IF EXISTS ccr_restore; CREATE DATABASE ccr_restore "
                                    "CHARACTER SET utf8mb4; GRANT ALL ON ccr_restore.* TO 'ccr'@'localhost';",
                                    database=None)
    rconf = _conf_with(ctx, os.path.join(ctx.tmp, "restore.conf"), database__name="ccr_restore")
    p = _admin(ctx, rconf, "restore", os.path.join(bdir, files[-1]))
    assert p.returncode == 0, p.stderr
    # restoring again is refused: the database is no longer empty
    p = _admin(ctx, rconf, "restore", os.path.join(bdir, files[-1]))
    assert p.returncode == 1 and "not empty" in p.stderr, p
    tables = [r[0] for r in ctx.sql("SHOW TABLES")]
    assert "tickets" in tables and "outbox" in tables, tables
    # compare every table's contents (the running stack may have written since the backup:
    # compare tables the test did not touch afterwards by checksum)
    a = dict((r[0].split(".")[1], r[1]) for r in ctx.stack.sql(
        "CHECKSUM TABLE %s" % ", ".join("ccr.%s" % t for t in tables), database=None))
    b = dict((r[0].split(".")[1], r[1]) for r in ctx.stack.sql(
        "CHECKSUM TABLE %s" % ", ".join("ccr_restore.%s" % t for t in tables), database=None))
    volatile = {"sessions", "outbox", "audit_log", "login_failures"}   # live traffic may change them
    diff = [t for t in tables if t not in volatile and a[t] != b[t]]
    assert not diff, "tables differ after restore: %s" % diff
    n = ctx.stack.sql("SELECT COUNT(*) FROM ccr_restore.tickets WHERE subject = 'Backup ✓ subject'",
                      database=None)
    assert n[0][0] == "1", n
    n = ctx.stack.sql("SELECT COUNT(*), SUM(LENGTH(c.data)) FROM ccr_restore.attachment_chunks c "
                      "JOIN ccr_restore.attachments a ON a.id = c.attachment_id "
                      "JOIN ccr_restore.tickets t ON t.id = a.ticket_id "
                      "WHERE t.subject = 'Backup with files' AND a.note_id IS NULL", database=None)
    assert list(n[0]) == ["3", str(len(blob))], "attachment pieces after restore: %s" % n
    n = ctx.stack.sql("SELECT a.filename, n.body FROM ccr_restore.attachments a JOIN ccr_restore.notes n "
                      "ON n.id = a.note_id WHERE a.ticket_id = %d" % ftid, database=None)
    assert n == [["note.bin", "staff only"]], "the note's file after restore: %s" % n
    ctx.stack.sql("DROP DATABASE ccr_restore", database=None)


def _metrics(ctx):
    r = ctx.get("/metrics")
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4"), r.header("Content-Type")
    values = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            assert line == "" or re.match(r"^# (HELP|TYPE) [a-z_]+ ", line), line
            continue
        # label values may hold any character but \ " and newline, which are
        # escaped (Prometheus text exposition format 0.0.4): a route label is
        # "GET /tickets/{id}"
        m = re.match(r'^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\\n]|\\.)*",?)*\})? ([0-9.e+-]+)$', line)
        assert m, "not exposition format: %r" % line
        values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return values


def test_metrics_count_requests_across_workers(ctx):
    before = _metrics(ctx)
    key = 'ccr_http_requests_total{route="GET /healthz",status="200"}'
    for _ in range(40):       # spread over the workers
        assert ctx.get("/healthz").status == 200
    after = _metrics(ctx)
    assert after.get(key, 0) - before.get(key, 0) >= 40, (before.get(key), after.get(key))
    assert after["ccr_http_request_duration_seconds_count"] >= before["ccr_http_request_duration_seconds_count"] + 40
    assert after['ccr_http_request_duration_seconds_bucket{le="+Inf"}'] == after["ccr_http_request_duration_seconds_count"]
    for name in ("ccr_outbox_pending", "ccr_outbox_oldest_pending_seconds", "ccr_mail_sent_total",
                 "ccr_child_restarts_total", "ccr_hash_slot_waits_total", "ccr_database_up"):
        assert name in after, name
    assert after["ccr_database_up"] == 1
    nf = 'ccr_http_requests_total{route="none",status="404"}'
    ctx.get("/no-such-page")
    assert _metrics(ctx).get(nf, 0) >= 1


def test_purge_removes_expired_sessions(ctx):
    s = ctx.session()
    email = ctx.unique_email("purge")
    s.get("/register")
    assert s.post("/register", {"first_name": "P", "last_name": "Urge", "email": email,
                                "password": "password123", "confirm_password": "password123"}).status == 303
    uid = ctx.sql_value("SELECT id FROM users WHERE email = '%s'" % email)
    ctx.sql("UPDATE sessions SET last_seen = NOW() - INTERVAL 3 HOUR WHERE user_id = %s" % uid)
    p = ctx.admin("purge")
    assert "purged" in p.stdout, p.stdout
    assert ctx.sql_value("SELECT COUNT(*) FROM sessions WHERE user_id = %s" % uid) == "0"


def _restart_ccrd_with(ctx, section, key, value):
    """Restart the stack's ccrd with [section] key = value (None: dropped)."""
    st = ctx.stack
    st.ccrd_stop()
    st.set_conf(section, key, value)
    st.ccrd_start()


def test_json_log_stays_valid_json_with_hostile_paths(ctx):
    # log_format = json once wrote \x22 for a quote: a request for /%22
    # broke every JSON log pipeline.  Every line must parse, and the path
    # must come back as the bytes nginx decoded.
    import json
    _restart_ccrd_with(ctx, "server", "log_format", "json")
    try:
        mark = ctx.log_mark()
        hostile = ["/a%22b", "/a%5Cb", "/q%22%5C%22", "/ctl%01%07%08%09%0A%0D%1B%7F",
                   "/bad%FFutf8%C3", "/over%C0%AFlong", "/sur%ED%A0%80", "/ok%C3%A9%E2%82%AC",
                   "/nul%00x", "/tickets?q=%22%5C%00%FF"]
        for path in hostile:
            ctx.get(path)
        # straight to ccrd, past nginx: raw control characters in the path
        for path in ("/raw\"q\\b", "/raw\x01\x1f\t\n\r", "/raw\u2028\u00e9"):
            ctx.fcgi("GET", path)
        ctx.wait_until(lambda: ctx.log_since(mark).count('"path":"/raw') >= 3, 10,
                       "access lines for the hostile requests")
        text = ctx.log_since(mark)
        lines = [ln for ln in text.split("\n") if ln]
        paths = []
        for ln in lines:
            try:
                obj = json.loads(ln)
            except ValueError as e:
                raise AssertionError("log line is not valid JSON (%s): %r" % (e, ln))
            if "path" in obj:
                paths.append(obj["path"])
        assert "\\x" not in text, "hex escapes in the JSON log: %r" % text[:2000]
        assert '/a"b' in paths and "/a\\b" in paths and '/raw"q\\b' in paths, paths
        assert "/raw\x01\x1f\t\n\r" in paths, paths
        assert "/ok\u00e9\u20ac" in paths, paths
        assert "/bad\ufffdutf8\ufffd" in paths, paths
    finally:
        _restart_ccrd_with(ctx, "server", "log_format", None)


def test_backup_and_restore_with_quote_backslash_hash_space_in_db_password(ctx):
    # The option file handed to mariadb-dump / mariadb once wrote the
    # password between quotes unescaped: a '"' or '\' in it broke backup.
    pw = 'p"q\\r\'s#t u\\"v'
    lit = pw.replace("\\", "\\\\").replace("'", "\\'")
    ctx.stack.sql("DROP USER IF EXISTS 'ccr_q'@'localhost'; "
                  "CREATE USER 'ccr_q'@'localhost' IDENTIFIED BY '%s'; "
                  "GRANT ALL ON ccr.* TO 'ccr_q'@'localhost'; "
                  "DROP DATABASE IF EXISTS ccr_qrestore; CREATE DATABASE ccr_qrestore "
                  "CHARACTER SET utf8mb4; GRANT ALL ON ccr_qrestore.* TO 'ccr_q'@'localhost';" % lit,
                  database=None)
    try:
        conf = _conf_with(ctx, os.path.join(ctx.tmp, "q.conf"), database__user="ccr_q",
                          database__password=pw)
        bdir = os.path.join(ctx.tmp, "qbackups")
        p = _admin(ctx, conf, "backup", "--dir", bdir)
        assert p.returncode == 0, "backup with password %r: %s" % (pw, p.stderr)
        files = sorted(f for f in os.listdir(bdir) if f.endswith(".sql.gz"))
        assert files, "no backup file"
        rconf = _conf_with(ctx, os.path.join(ctx.tmp, "qrestore.conf"), database__user="ccr_q",
                           database__password=pw, database__name="ccr_qrestore")
        p = _admin(ctx, rconf, "restore", os.path.join(bdir, files[-1]))
        assert p.returncode == 0, "restore with password %r: %s" % (pw, p.stderr)
        n = ctx.stack.sql("SELECT COUNT(*) FROM ccr_qrestore.schema_migrations", database=None)
        assert int(n[0][0]) >= 2, n
    finally:
        ctx.stack.sql("DROP DATABASE IF EXISTS ccr_qrestore; DROP USER IF EXISTS 'ccr_q'@'localhost';",
                      database=None)

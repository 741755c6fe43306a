"""Reports (README "Reports"): GET /admin/reports and /admin/reports.csv,
admins only; from/to validated (422 with a message); the numbers checked
against numbers computed here from the raw rows (tickets, timeline,
ratings); the CSV parsed back with the csv module; the summary rows kept
by the transactions equal to what ccr-admin reports-rebuild recomputes.

The scenario's tickets are moved, with their timeline and ratings, to
March 2001, so a report of that range holds only them whatever other
modules left in the database.
"""
import csv
import html
import datetime
import io
import re

import helpers
import tickets_util as tu

W = {}
DAY0 = datetime.date(2001, 3, 5)


def world(ctx):
    return tu.world(ctx, W)


def admin(ctx):
    return tu.world_admin(ctx, W, "Rhea", "Reporter")


def agents(ctx):
    w = world(ctx)
    if "agents" not in w:
        w["agents"] = tu.new_agents(ctx, admin(ctx), [("Ana", "Alpha, Jr."), ("Ben", 'Beta "B"')])
    return w["agents"]


def customer(ctx):
    w = world(ctx)
    if "cust" not in w:
        w["cust"] = tu.register_customer(ctx, "Rory", "Repcust")
    return w["cust"]


def raise_ticket(user, priority):
    r = user.s.post("/tickets", {"subject": "Fax %s" % tu.unique_word(""),
                                 "description": "It hums.", "priority": priority})
    assert r.status == 303, helpers.page_errors(r)
    return int(re.search(r"/tickets/(\d+)$", r.location).group(1))


def ok(r, what):
    assert r.status == 303, "%s: %d %s" % (what, r.status, helpers.page_errors(r))


def assign(ctx, tid, who):
    ok(admin(ctx).s.post("/tickets/%d/assign" % tid, {"agent_id": str(who.id)}), "assign")


def say(user, tid, body="Hello"):
    ok(user.s.post("/tickets/%d/messages" % tid, {"body": body}), "message")


def act(user, tid, action, form=None):
    ok(user.s.post("/tickets/%d/%s" % (tid, action), form or {}), action)


TICKET_TIMES = ("created_at", "last_activity", "resolved_at", "closed_at", "sla_paused_since",
                "first_response_at", "resolution_at", "first_response_due", "resolution_due",
                "sla_due")


def shift(ctx, tid, interval):
    """Move every stored time of ticket tid (its row, timeline, messages,
    rating) back by `interval` (SQL, e.g. '3 HOUR')."""
    ctx.sql("UPDATE tickets SET %s WHERE id = %d" % (", ".join(
        "%s = %s - INTERVAL %s" % (c, c, interval) for c in TICKET_TIMES), tid))
    for table in ("timeline", "messages", "ratings"):
        ctx.sql("UPDATE %s SET created_at = created_at - INTERVAL %s WHERE ticket_id = %d"
                % (table, interval, tid))


def rebuild(ctx):
    p = ctx.admin("reports-rebuild")
    assert p.returncode == 0, p.stderr


# ------------------------------------------------------------------ the numbers from raw rows

def percentile(values, p):
    """nearest rank: the value at rank ceil(p/100 n)"""
    v = sorted(values)
    k = max(1, -(-p * len(v) // 100))
    return v[k - 1]


def hist_bucket(v):
    """the report's duration buckets (schema 015), written again from their
    definition: exact under 64 s, then 32 buckets per power of two"""
    if v < 64:
        return max(0, v)
    e = v.bit_length() - 1 - 5
    return 64 + 32 * (e - 1) + (v >> e) - 32


def hist_value(b):
    """the middle of bucket b"""
    if b < 64:
        return b
    e = (b - 64) // 32 + 1
    m = (b - 64) % 32 + 32
    return (m << e) + (1 << (e - 1))


def stored_percentiles(ctx, d_from, d_to):
    """median and p90 per (duration, priority) from the durations stored on
    the tickets, through the buckets: what the report must show exactly"""
    lo, hi = d_from.isoformat(), (d_to + datetime.timedelta(days=1)).isoformat()
    out = {}
    for name in ("first_response", "resolution"):
        for prio in ("urgent", "high", "normal", "low"):
            v = [int(x) for (x,) in ctx.sql(
                "SELECT %s_s FROM tickets WHERE priority = '%s' AND %s_at >= '%s' AND %s_at < '%s'"
                % (name, prio, name, lo, name, hi))]
            out[(name, prio)] = (len(v), hist_value(hist_bucket(percentile(v, 50))) if v else None,
                                 hist_value(hist_bucket(percentile(v, 90))) if v else None)
    return out


def raw_numbers(ctx, d_from, d_to):
    """Every number of the report computed from tickets, timeline and
    ratings: open time replayed from the timeline's events."""
    lo, hi = d_from.isoformat(), (d_to + datetime.timedelta(days=1)).isoformat()
    created = {}
    for day, n in ctx.sql("SELECT DATE(created_at), COUNT(*) FROM tickets WHERE created_at >= '%s' "
                          "AND created_at < '%s' GROUP BY 1" % (lo, hi)):
        created[day] = int(n)
    closed = {}
    for day, n in ctx.sql("SELECT DATE(created_at), COUNT(*) FROM timeline WHERE kind IN "
                          "('closed', 'auto_closed') AND created_at >= '%s' AND created_at < '%s' "
                          "GROUP BY 1" % (lo, hi)):
        closed[day] = int(n)
    tickets = {int(i): (int(c), p, int(t)) for i, c, p, t in ctx.sql(
        "SELECT id, customer_id, priority, UNIX_TIMESTAMP(created_at) FROM tickets")}
    first, res = {}, {}
    events = ctx.sql("SELECT ticket_id, kind, IFNULL(actor_id, 0), UNIX_TIMESTAMP(created_at), "
                     "created_at FROM timeline ORDER BY ticket_id, id")
    state = {}
    for tid, kind, actor, t, stamp in events:
        tid, actor, t = int(tid), int(actor), int(t)
        cust, prio, t0 = tickets[tid]
        s = state.setdefault(tid, {"open": True, "paused": 0, "since": None})
        if kind in ("resolved", "closed", "auto_closed") and s["open"]:
            s["open"], s["since"] = False, t
            res[tid] = (stamp, prio, t - t0 - s["paused"])
        elif kind == "reopened" and not s["open"]:
            s["open"] = True
            s["paused"] += t - s["since"]
        elif kind == "message" and actor != cust and tid not in first:
            now_paused = 0 if s["open"] else t - s["since"]
            first[tid] = (stamp, prio, t - t0 - s["paused"] - now_paused)
    durations = {}
    for name, got in (("first_response", first), ("resolution", res)):
        for prio in ("urgent", "high", "normal", "low"):
            v = [sec for stamp, p, sec in got.values() if p == prio and lo <= stamp[:10] < hi]
            durations[(name, prio)] = (len(v), percentile(v, 50) if v else None,
                                       percentile(v, 90) if v else None)
    csat = {}
    for name, n, total in ctx.sql(
            "SELECT IFNULL(CONCAT(u.first_name, ' ', u.last_name), 'N/A'), COUNT(*), SUM(r.score) "
            "FROM ratings r JOIN tickets t ON t.id = r.ticket_id LEFT JOIN users u ON u.id = t.agent_id "
            "WHERE r.created_at >= '%s' AND r.created_at < '%s' GROUP BY t.agent_id" % (lo, hi)):
        csat[name] = (int(n), "%.2f" % (int(total) / int(n)))
    backlog = {}
    for prio, age, n in ctx.sql(
            "SELECT priority, CASE WHEN DATEDIFF(UTC_DATE(), DATE(created_at)) < 1 THEN 'today' "
            "WHEN DATEDIFF(UTC_DATE(), DATE(created_at)) < 3 THEN '1-2 days' "
            "WHEN DATEDIFF(UTC_DATE(), DATE(created_at)) < 7 THEN '3-6 days' "
            "WHEN DATEDIFF(UTC_DATE(), DATE(created_at)) < 30 THEN '7-29 days' "
            "ELSE '30 days or more' END, COUNT(*) FROM tickets WHERE status = 'open' GROUP BY 1, 2"):
        backlog[(prio, age)] = int(n)
    return created, closed, durations, csat, backlog


def scenario(ctx):
    """Five tickets of March 2001 with known lives; their ids."""
    w = world(ctx)
    if "scenario" in w:
        return w["scenario"]
    c = customer(ctx)
    a1, a2 = agents(ctx)
    t1, t2, t3, t4, t5 = (raise_ticket(c, p) for p in ("urgent", "high", "normal", "low", "normal"))
    for tid, hours in ((t1, 2), (t2, 5), (t3, 30), (t4, 1), (t5, 7)):
        shift(ctx, tid, "%d HOUR" % hours)         # raised that long ago
    assign(ctx, t1, a1); say(a1, t1); act(a1, t1, "resolve"); act(c, t1, "close")
    act(c, t1, "rating", {"score": "5", "comment": "great"})
    assign(ctx, t2, a2); say(a2, t2); act(a2, t2, "resolve")
    shift(ctx, t2, "3 HOUR")                       # resolved 3 h ago, then the customer answers
    say(c, t2, "Not fixed"); act(a2, t2, "resolve"); act(c, t2, "close")
    act(c, t2, "rating", {"score": "3", "comment": ""})
    assign(ctx, t3, a1); say(a1, t3)
    assign(ctx, t5, a1); act(a1, t5, "resolve"); act(c, t5, "close")
    act(c, t5, "rating", {"score": "4", "comment": ""})
    base = (datetime.date.today() - DAY0).days
    for i, tid in enumerate((t1, t2, t3, t4, t5)):
        shift(ctx, tid, "%d DAY" % (base - i % 3))  # 5, 6, 7 March
    # open on either side of the backlog's 30-day line (day rows, then the
    # month's day rows up to the line)
    for days in (29, 30):
        shift(ctx, raise_ticket(c, "high"), "%d DAY" % days)
    rebuild(ctx)
    w["scenario"] = (t1, t2, t3, t4, t5)
    return w["scenario"]


def csv_rows(text):
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["report", "day", "priority", "agent", "age", "metric", "value"], rows[0]
    return rows[1:]


def fmt_h(sec):
    return "%.1f" % (sec / 3600.0)


# ------------------------------------------------------------------ tests

def test_report_numbers_match_the_raw_rows(ctx):
    scenario(ctx)
    d_from, d_to = datetime.date(2001, 3, 1), datetime.date(2001, 3, 10)
    created, closed, durations, csat, backlog = raw_numbers(ctx, d_from, d_to)
    assert sum(created.values()) == 5 and sum(closed.values()) == 3, (created, closed)
    q = "from=%s&to=%s" % (d_from, d_to)
    r = admin(ctx).s.get("/admin/reports.csv?" + q)
    assert r.status == 200, r.status
    assert r.header("content-type").startswith("text/csv"), r.header("content-type")
    disp = r.header("content-disposition")
    assert disp.startswith("attachment;") and "2001-03-01" in disp, disp
    assert not r.body.startswith(b"\xef\xbb\xbf"), "a BOM"
    assert b"\r\n" in r.body and b"\n" not in r.body.replace(b"\r\n", b""), "not CRLF lines"
    rows = csv_rows(r.body.decode("utf-8"))
    got = {}
    for rep, day, prio, agent, age, metric, value in rows:
        got[(rep, day, prio, agent, age, metric)] = value
    for i in range(10):
        day = (d_from + datetime.timedelta(days=i)).isoformat()
        assert got[("daily", day, "", "", "", "created")] == str(created.get(day, 0)), day
        assert got[("daily", day, "", "", "", "closed")] == str(closed.get(day, 0)), day
    assert ("daily", "2001-02-28", "", "", "", "created") not in got
    stored = stored_percentiles(ctx, d_from, d_to)
    for (name, prio), (n, med, p90) in durations.items():
        assert got[(name, "", prio, "", "", "count")] == str(n), (name, prio)
        assert stored[(name, prio)][0] == n, (name, prio, stored[(name, prio)])
        if n:
            # the stored durations are the timeline's, one second either way
            # (NOW() of two statements of one transaction) ...
            s_n, s_med, s_p90 = stored[(name, prio)]
            assert abs(s_med - med) <= 2 + med / 64 and abs(s_p90 - p90) <= 2 + p90 / 64, (name, prio)
            # ... and the report shows their percentiles' buckets exactly
            assert int(got[(name, "", prio, "", "", "median_seconds")]) == s_med, (name, prio)
            assert int(got[(name, "", prio, "", "", "p90_seconds")]) == s_p90, (name, prio)
        else:
            assert got[(name, "", prio, "", "", "median_seconds")] == ""
    # the scenario's own durations: first response 2 h (urgent), 5 h (high), 30 h (normal)
    assert durations[("first_response", "normal")][0] == 1
    assert abs(durations[("first_response", "high")][1] - 5 * 3600) < 10
    assert abs(durations[("resolution", "high")][1] - 5 * 3600) < 10, "the 3 h resolved counted"
    a1, a2 = agents(ctx)
    names = {"%s %s" % (a.first, a.last) for a in (a1, a2)}
    assert len(csat) == 2 and names == set(csat), (csat, names)
    for name, (n, avg) in csat.items():
        assert got[("csat", "", "", name, "", "count")] == str(n)
        assert got[("csat", "", "", name, "", "average")] == avg
    assert sorted(v for (_n, v) in csat.values()) == ["3.00", "4.50"]
    for prio in ("urgent", "high", "normal", "low"):
        for age in ("today", "1-2 days", "3-6 days", "7-29 days", "30 days or more"):
            assert got[("backlog", "", prio, "", age, "open")] == str(backlog.get((prio, age), 0)), (prio, age)

    # the page: the same numbers, in tables beside inline SVG charts
    r = admin(ctx).s.get("/admin/reports?" + q)
    assert r.status == 200
    page = r.text
    assert page.count("<svg") == 5 and page.count("<title id=") == 5, "five charts with titles"
    assert "<script" not in page.split("<main", 1)[-1].split("</main>", 1)[0]
    for day, n in created.items():
        assert re.search(r'<time datetime="%s">%s</time></th><td>%d</td><td>%d</td>'
                         % (day, day, n, closed.get(day, 0)), page), day
    for prio in ("urgent", "high"):
        n, med, p90 = durations[("first_response", prio)]
        m = re.search(r'id="first-h".*?<th scope="row">%s</th><td>(\d+)</td><td>([\d.]+)</td><td>([\d.]+)</td>'
                      % prio, page, re.S)
        med = stored[("first_response", prio)][1]
        assert m and m.group(1) == str(n) and m.group(2) == "%.1f" % (med / 3600.0), (prio, m and m.groups())
    for name, (n, avg) in csat.items():
        assert re.search(r'<th scope="row">%s</th><td>%d</td><td>%s</td>'
                         % (re.escape(html.escape(name)), n, avg), page), name


def test_incremental_summaries_equal_the_rebuilt_ones(ctx):
    c = customer(ctx)
    a1, a2 = agents(ctx)
    rebuild(ctx)
    for prio, agent in (("urgent", a1), ("low", a2), ("high", a1)):
        tid = raise_ticket(c, prio)
        assign(ctx, tid, agent)
        say(agent, tid)
        act(agent, tid, "resolve")
        act(c, tid, "close")
        act(c, tid, "reopen")                      # a second close is a second event
        act(c, tid, "close")
        act(c, tid, "rating", {"score": "2", "comment": ""})
    # tickets raised days ago (moved back, then counted afresh), then a
    # resolution that moves to another bucket (resolved, reopened by a
    # reply, resolved again hours of open time later), a priority changed
    # after both durations were counted, and open tickets whose priority
    # changes (the backlog moves with them)
    moved = raise_ticket(c, "normal")
    old_open = [raise_ticket(c, p) for p in ("low", "high")]
    for tid in [moved] + old_open:
        shift(ctx, tid, "4 DAY")
    rebuild(ctx)
    assign(ctx, moved, a2)
    say(a2, moved)
    act(a2, moved, "resolve")
    say(c, moved, "Still broken")
    ctx.sql("UPDATE tickets SET created_at = created_at - INTERVAL 5 HOUR WHERE id = %d" % moved)
    act(a2, moved, "resolve")
    act(a2, moved, "priority", {"priority": "urgent"})
    for tid in old_open:
        act(admin(ctx), tid, "priority", {"priority": "normal"})
    q = ("SELECT 'd', day, created, closed FROM report_daily UNION ALL "
         "SELECT 'c', CONCAT(day, '/', agent_id), ratings, score FROM report_csat UNION ALL "
         "SELECT 'h', CONCAT(target, '/', day, '/', priority), hist, '' FROM report_durations UNION ALL "
         "SELECT 'o', CONCAT(day, '/', priority), n, '' FROM report_open WHERE n <> 0 UNION ALL "
         "SELECT 'm', CONCAT(month, '/', priority), n, '' FROM report_open_month WHERE n <> 0 "
         "ORDER BY 1, 2")
    dues = ("SELECT id, first_response_due, resolution_due, sla_due FROM tickets ORDER BY id")
    incremental, inc_dues = ctx.sql(q), ctx.sql(dues)
    rebuild(ctx)
    rebuilt = ctx.sql(q)
    assert rebuilt == incremental, "reports-rebuild disagrees with the incremental rows: %s" % (
        [("incremental", x) for x in incremental if x not in rebuilt]
        + [("rebuilt", x) for x in rebuilt if x not in incremental])
    assert ctx.sql(dues) == inc_dues, "reports-rebuild disagrees with the stored due times"


def test_reports_are_for_admins_only(ctx):
    c = customer(ctx)
    a1, _ = agents(ctx)
    for path in ("/admin/reports", "/admin/reports.csv"):
        for who in (c, a1):
            r = who.s.get(path)
            assert r.status == 403, "%s as %s: %d" % (path, who, r.status)
            assert b"Created and closed" not in r.body and b"report,day" not in r.body
        r = ctx.get(path)
        assert r.status == 303 and "/login?next=" in r.header("location"), r.status
        assert admin(ctx).s.get(path).status == 200


def test_bad_dates_are_422(ctx):
    for q, msg in (("from=2026-02-30", "start date"), ("to=31.01.2026", "end date"),
                   ("from=2026-03-02&to=2026-03-01", "not be after"),
                   ("from=2024-01-01&to=2025-12-31", "at most 366 days"),
                   ("from=2026-1-01", "start date"), ("from=%2B2026-01-01", "start date")):
        for path in ("/admin/reports", "/admin/reports.csv"):
            r = admin(ctx).s.get("%s?%s" % (path, q))
            assert r.status == 422, "%s?%s: %d" % (path, q, r.status)
            assert msg in r.text, "%s?%s: %s" % (path, q, r.text[:300])
    # the default: the last 30 days, ending today (UTC)
    r = admin(ctx).s.get("/admin/reports.csv")
    days = sorted({row[1] for row in csv_rows(r.text) if row[0] == "daily"})
    today = datetime.datetime.now(datetime.timezone.utc).date()
    assert len(days) == 30 and days[-1] == today.isoformat(), days[:2] + days[-2:]

"""Search (README "Search"): GET /tickets?q= answered by searchd's
real-time index, kept fresh by the ccrd-search indexer from search_queue.

Visibility (a customer never finds another customer's ticket nor a word
only a note holds; an agent only their tickets, and no longer after a
reassignment or once disabled), freshness after each kind of change
(polled, bounded), folding (accents and case), prefixes, several words,
"#N", escaped highlighting, the no-results suggestions, crashes (kill -9
of the indexer with a queued change, kill -9 of searchd after an
acknowledged change), searchd down (503 for a search, the list still
works), ccr-admin search-rebuild, and hostile queries (never a 500).
"""
import html
import os
import re
import signal
import time
import urllib.parse

import faults_util
import helpers
import tickets_util as tu

W = {}
FRESH = 8   # seconds a change may take to be found (the goal is 1 s; no timing assertion)


def world(ctx):
    return tu.world(ctx, W)


def admin(ctx):
    return tu.world_admin(ctx, W, "Sam", "Searchadmin")


def customer(ctx, key):
    w = world(ctx)
    if key not in w:
        w[key] = tu.register_customer(ctx, "Cora", key.upper() + "Seeker")
    return w[key]


def agents(ctx):
    w = world(ctx)
    if "a1" not in w:
        w["a1"], w["a2"] = tu.new_agents(ctx, admin(ctx), [("Ivo", "Indexer"), ("Una", "Unranked")])
    return w["a1"], w["a2"]


def raise_ticket(user, subject, description="Nothing else to say."):
    r = user.s.post("/tickets", [("subject", subject), ("description", description)])
    assert r.status == 303, "POST /tickets: %d %s" % (r.status, helpers.page_errors(r))
    return int(re.search(r"/tickets/(\d+)", r.location).group(1))


def assign(ctx, tid, agent):
    r = admin(ctx).s.post("/tickets/%d/assign" % tid, {"agent_id": str(agent.id)})
    assert r.status == 303, "assign: %d %s" % (r.status, helpers.page_errors(r))


def post(user, path, form):
    r = user.s.post(path, form)
    assert r.status == 303, "POST %s: %d %s" % (path, r.status, helpers.page_errors(r))
    return r


def rows(text):
    m = re.search(r"<tbody>(.*?)</tbody>", text, re.S)
    assert m, "no <tbody> in the ticket list"
    return [int(i) for i in re.findall(r'<tr\b[^>]*>\s*<td[^>]*>#(\d+)</td>', m.group(1))]


def search(user, q, extra="", expect=200):
    st = "" if "status=" in extra else "status=all&"
    r = user.s.get("/tickets?" + st + "q=" + urllib.parse.quote(q) + extra)
    assert r.status == expect, "%s ?q=%r: %d (want %d)" % (user.role, q, r.status, expect)
    return r


def found(user, q, extra=""):
    return rows(search(user, q, extra).text)


def eventually(user, q, pred, what, extra=""):
    """Search until pred(ids) holds, for at most FRESH seconds."""
    t_end = time.monotonic() + FRESH
    while True:
        ids = found(user, q, extra)
        if pred(ids):
            return ids
        if time.monotonic() > t_end:
            raise AssertionError("%s: after %ds %s ?q=%s finds %s" % (what, FRESH, user.role, q, ids))
        time.sleep(0.1)


def word(prefix="zw"):
    return tu.unique_word(prefix)


# ------------------------------------------------------------------ visibility

def test_customer_finds_only_own_tickets_and_never_notes(ctx):
    c1, c2 = customer(ctx, "c1"), customer(ctx, "c2")
    a1, _a2 = agents(ctx)
    w, secret = word(), word("zn")
    t1 = raise_ticket(c1, "Router %s broken" % w)
    t2 = raise_ticket(c2, "Also %s here" % w)
    assign(ctx, t1, a1)
    post(a1, "/tickets/%d/notes" % t1, {"body": "internal %s remark" % secret})
    tu.wait_indexed(ctx)
    assert found(c1, w) == [t1]
    assert found(c2, w) == [t2]
    assert found(c1, secret) == [], "a customer found a word only a note holds"
    assert found(a1, secret) == [t1], "the agent does not find their note's word"
    assert found(admin(ctx), secret) == [t1]
    assert sorted(found(admin(ctx), w)) == sorted([t1, t2])
    # a note's excerpt is for staff only
    r = search(a1, secret)
    assert "Note:" in r.text and "<mark>%s</mark>" % secret in r.text
    r = search(c1, w)
    assert secret not in r.text and "Note:" not in r.text


def test_agent_scope_reassignment_and_disabled(ctx):
    c = customer(ctx, "c1")
    a1, a2 = agents(ctx)
    w = word()
    t = raise_ticket(c, "Keyboard %s sticky" % w)
    tu.wait_indexed(ctx)
    assert found(a1, w) == [] and found(a2, w) == [], "an agent found an unassigned ticket"
    assert found(admin(ctx), w, "&assigned=none") == [t]
    assign(ctx, t, a1)
    eventually(a1, w, lambda ids: ids == [t], "after the assignment")
    assert found(a2, w) == []
    assert found(admin(ctx), w, "&assigned=none") == []
    assert found(admin(ctx), w, "&assigned=%d" % a1.id) == [t]
    assign(ctx, t, a2)
    eventually(a1, w, lambda ids: ids == [], "after the reassignment, the old agent")
    eventually(a2, w, lambda ids: ids == [t], "after the reassignment, the new agent")
    # disabling a2 puts the ticket back in the unassigned queue, index too
    ad = admin(ctx)
    r = ad.s.get("/admin/agents")
    post(ad, "/admin/agents/%d/disable" % a2.id, {})
    eventually(ad, w, lambda ids: ids == [t], "unassigned after disabling the agent",
               "&assigned=none")
    r = a2.s.get("/tickets?q=" + w)
    assert r.status in (303, 401, 403), "a disabled agent's session still searches: %d" % r.status
    del world(ctx)["a1"]   # a2 is gone: fresh agents for the other tests


def test_stale_index_never_shows_a_ticket_out_of_scope(ctx):
    """The rows come from MariaDB with the scope checked again: an index
    entry the indexer has not caught up with (made stale here by moving
    the ticket in SQL, where no queue row is written) shows nothing."""
    c1, c2 = customer(ctx, "c1"), customer(ctx, "c2")
    w = word()
    t = raise_ticket(c1, "Stale %s entry" % w)
    tu.wait_indexed(ctx)
    assert found(c1, w) == [t]
    ctx.sql("UPDATE tickets SET customer_id = %d WHERE id = %d" % (c2.id, t))
    try:
        assert found(c1, w) == [], "a stale index entry showed another customer's ticket"
        assert found(c2, w) == [], "stale: the index still says c1 (no queue row was written)"
    finally:
        ctx.sql("UPDATE tickets SET customer_id = %d WHERE id = %d" % (c1.id, t))


# ------------------------------------------------------------------ freshness

def test_freshness_create_reply_note_status(ctx):
    c = customer(ctx, "c1")
    a1, _a2 = agents(ctx)
    w_new, w_reply, w_note, w_agent = word(), word(), word(), word()
    t = raise_ticket(c, "Fresh %s ticket" % w_new)
    eventually(c, w_new, lambda ids: ids == [t], "after create")
    post(c, "/tickets/%d/messages" % t, {"body": "more details: %s" % w_reply})
    eventually(c, w_reply, lambda ids: ids == [t], "after a customer reply")
    assign(ctx, t, a1)
    post(a1, "/tickets/%d/messages" % t, {"body": "agent answer %s" % w_agent})
    eventually(c, w_agent, lambda ids: ids == [t], "after an agent reply (customer)")
    eventually(a1, w_agent, lambda ids: ids == [t], "after an agent reply (agent)")
    post(a1, "/tickets/%d/notes" % t, {"body": "note %s" % w_note})
    eventually(a1, w_note, lambda ids: ids == [t], "after a note")
    post(c, "/tickets/%d/close" % t, {})
    eventually(c, w_new, lambda ids: ids == [], "status=open after close", "&status=open")
    r = c.s.get("/tickets?status=closed&q=" + w_new)
    eventually(c, w_new, lambda ids: ids == [t], "closed", "&status=closed")


def test_deleted_ticket_leaves_the_index(ctx):
    """No route deletes a ticket; one removed in SQL (with its queue row,
    as an erasure would write) leaves the index when the indexer sees it gone."""
    c = customer(ctx, "c1")
    w = word()
    t = raise_ticket(c, "Doomed %s ticket" % w)
    tu.wait_indexed(ctx)
    assert found(admin(ctx), w) == [t]
    tables = [r[0] for r in ctx.sql(
        "SELECT TABLE_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'ccr' "
        "AND COLUMN_NAME = 'ticket_id' AND TABLE_NAME <> 'search_queue'")]
    ctx.sql("SET foreign_key_checks = 0; " + " ".join(
        "DELETE FROM `%s` WHERE ticket_id = %d;" % (tb, t) for tb in tables) +
        " DELETE FROM tickets WHERE id = %d;" % t)
    ctx.sql("INSERT INTO search_queue (ticket_id, seq, queued_at) VALUES (%d, 1, NOW(3)) "
            "ON DUPLICATE KEY UPDATE seq = seq + 1" % t)
    tu.wait_indexed(ctx)
    out = ctx.stack.admin("search-rebuild").stdout   # and the rebuild agrees
    assert "tickets indexed" in out, out
    assert found(admin(ctx), w) == []


# ------------------------------------------------------------------ semantics

def test_accents_case_prefix_and_words(ctx):
    c = customer(ctx, "c1")
    base = word("zr")
    t1 = raise_ticket(c, "Résumé of %s" % base, "Ünïcödé Straße ΣΊΣΥΦΟΣ")
    t2 = raise_ticket(c, "Refundable %sx" % base, "Two words apart: alpha%s then beta%s" % (base, base))
    tu.wait_indexed(ctx)
    assert found(c, "resume " + base) == [t1]
    assert found(c, "RÉSUMÉ " + base) == [t1]
    assert t1 in found(c, "unicode"), "accents in the description are not folded"
    assert t1 in found(c, "STRASSE") or t1 in found(c, "strasse"), "ß does not fold to ss"
    assert t1 in found(c, "σισυφοσ") or t1 in found(c, "ΣΙΣΥΦΟΣ"), "Greek is not searchable"
    assert found(c, base + "*") == sorted([t1, t2], reverse=True), "prefix"
    assert found(c, base) == [t1], "a plain word matched as a prefix"
    assert found(c, "alpha%s beta%s" % (base, base)) == [t2], "two words"
    assert found(c, "alpha%s %s" % (base, word())) == [], "all words must match"
    # highlighting: the matched word marked in subject and excerpt
    r = search(c, "resume " + base)
    assert "<mark>Résumé</mark>" in r.text, "subject not highlighted: %s" % r.text[-3000:]


def test_hash_number_opens_the_ticket(ctx):
    c1, c2 = customer(ctx, "c1"), customer(ctx, "c2")
    t = raise_ticket(c1, "Number jump")
    r = c1.s.get("/tickets?q=%23" + str(t))
    assert r.status == 303 and r.location.endswith("/tickets/%d" % t), (r.status, r.location)
    r = c2.s.get("/tickets?q=%23" + str(t))
    assert r.status == 303
    assert c2.s.get("/tickets/%d" % t).status == 404, "#N of another customer's ticket is visible"


def test_highlight_is_escaped(ctx):
    c = customer(ctx, "c1")
    w = word()
    t = raise_ticket(c, "<b>bold</b> %s <script>x</script>" % w, "desc with <i>%s</i> & more" % w)
    tu.wait_indexed(ctx)
    r = search(c, w)
    assert rows(r.text) == [t]
    assert "<b>bold" not in r.text and "<script>x" not in r.text and "<i>" not in r.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in r.text
    assert "<mark>%s</mark>" % w in r.text
    assert r.text.count("<mark>") >= 2, "the excerpt is not highlighted"
    r = search(c, "bold " + w)
    assert "<mark>bold</mark>" in r.text


def row_html(text):
    """{ticket id: its row's HTML} of the ticket list."""
    got = helpers.table_rows(text, r"<tbody>(.*?)</tbody>", r"<td[^>]*>#(\d+)</td>", "ticket list")
    return {int(k): v for k, v in got.items()}


def test_each_result_has_its_own_excerpt_from_description_message_or_note(ctx):
    """A page's excerpts are read for all its results at once: each row
    gets the piece of its own ticket — the description, else the first
    message holding the word (among the first 8), else for staff the
    first note — and a customer never gets a note's."""
    c = customer(ctx, "c3")
    a1, _a2 = agents(ctx)
    w = word()
    t_desc = raise_ticket(c, "Excerpt one", "descpiece %s here" % w)
    t_msg = raise_ticket(c, "Excerpt two", "nothing")
    post(c, "/tickets/%d/messages" % t_msg, {"body": "first message, no word"})
    post(c, "/tickets/%d/messages" % t_msg, {"body": "msgpiece %s there" % w})
    t_late = raise_ticket(c, "Excerpt three", "nothing")
    for k in range(8):
        post(c, "/tickets/%d/messages" % t_late, {"body": "filler %d" % k})
    post(c, "/tickets/%d/messages" % t_late, {"body": "latepiece %s" % w})
    t_note = raise_ticket(c, "Excerpt four", "nothing")
    for t in (t_desc, t_msg, t_late, t_note):
        assign(ctx, t, a1)
    post(a1, "/tickets/%d/notes" % t_note, {"body": "notepiece %s" % w})
    tu.wait_indexed(ctx)

    mine = row_html(search(c, w).text)
    assert sorted(mine) == sorted([t_desc, t_msg, t_late]), "customer: %s" % sorted(mine)
    assert "descpiece <mark>%s</mark>" % w in mine[t_desc]
    assert "msgpiece <mark>%s</mark>" % w in mine[t_msg] and "descpiece" not in mine[t_msg]
    assert 'class="excerpt"' not in mine[t_late], "an excerpt from past the 8th message"
    staff = row_html(search(a1, w).text)
    assert sorted(staff) == sorted([t_desc, t_msg, t_late, t_note]), "agent: %s" % sorted(staff)
    assert "Note:" in staff[t_note] and "notepiece <mark>%s</mark>" % w in staff[t_note]
    assert "Note:" not in staff[t_desc] + staff[t_msg]
    assert "msgpiece <mark>%s</mark>" % w in staff[t_msg]


def test_no_results_suggests_removing_a_word(ctx):
    c = customer(ctx, "c1")
    w, missing = word(), word("zm")
    t = raise_ticket(c, "Suggest %s please" % w)
    tu.wait_indexed(ctx)
    r = search(c, "%s %s" % (w, missing))
    assert rows(r.text) == []
    assert "No tickets match this search" in r.text
    links = [html.unescape(h) for h in re.findall(r'<p class="empty suggest">.*?</p>', r.text, re.S)]
    assert links, "no suggestions for a two-word search that found nothing"
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]*)"', links[0])]
    assert len(hrefs) == 2, hrefs
    qs = [urllib.parse.parse_qs(urllib.parse.urlsplit(h).query)["q"][0] for h in hrefs]
    assert sorted(qs) == sorted([w, missing]), qs
    nxt = c.s.get([h for h in hrefs if "q=" + w in h][0])
    assert rows(nxt.text) == [t], "the suggestion does not find the ticket"
    r = search(c, missing)
    assert 'class="empty suggest"' not in r.text, "a one-word search offers suggestions"


def test_search_pages_with_the_cursor(ctx):
    c = customer(ctx, "c3")
    w = word()
    made = [raise_ticket(c, "Paged %s %02d" % (w, i)) for i in range(27)]
    tu.wait_indexed(ctx)
    r = search(c, w)
    first = rows(r.text)
    assert len(first) == 25
    m = re.search(r'<a\b[^>]*href="([^"]*)"[^>]*rel="next"', r.text)
    assert m, "no next page"
    r2 = c.s.get(html.unescape(m.group(1)))
    second = rows(r2.text)
    assert first + second == sorted(made, reverse=True), (first, second)
    assert 'rel="next"' not in r2.text


def test_newest_first_across_the_time_spans(ctx):
    """A search asks the last days first and then longer spans (the
    document's time words, README "Search"): tickets whose last activity
    spreads over ten years still come newest first, page after page, for
    a customer (their scope word too), for the agent they are assigned
    to (their word; the first step or the spans, as the dictionary's
    counts say) and for an admin (no scope)."""
    c = customer(ctx, "c4")
    a1, _a2 = agents(ctx)
    w = word()
    made = [raise_ticket(c, "Spread %s %02d" % (w, i)) for i in range(30)]
    # 26 in the last 4 days (a page and one more: the 8-day span answers
    # the first page alone), the rest up to ~10 years back (the second
    # page goes past every span to "any time"); some share an hour
    hours = [k * 4 - k % 2 for k in range(26)] + [300 * 24, 1000 * 24, 2000 * 24, 3650 * 24]
    for h, t in zip(hours, made):
        ctx.sql("UPDATE tickets SET last_activity = NOW() - INTERVAL %d HOUR, agent_id = %d "
                "WHERE id = %d" % (h, a1.id, t))
        ctx.sql("INSERT INTO search_queue (ticket_id, seq, queued_at) VALUES (%d, 1, NOW(3)) "
                "ON DUPLICATE KEY UPDATE seq = seq + 1, queued_at = NOW(3)" % t)
    tu.wait_indexed(ctx)
    want = [int(r[0]) for r in ctx.sql(
        "SELECT id FROM tickets WHERE id IN (%s) ORDER BY last_activity DESC, id DESC"
        % ",".join(map(str, made)))]

    def pages_in_order(how):
        for who in (c, a1, admin(ctx)):
            r = search(who, w)
            first = rows(r.text)
            m = re.search(r'<a\b[^>]*href="([^"]*)"[^>]*rel="next"', r.text)
            assert m, "%s, %s: no next page" % (how, who.role)
            second = rows(who.s.get(html.unescape(m.group(1))).text)
            assert first + second == want, "%s, %s: %s, want %s" % (how, who.role, first + second, want)

    # 30 matches: the first step (any time, cut off at probe_matches) is
    # the answer; with probe_matches = 5 the admin's search goes through
    # the spans (the customer's always asks any time)
    pages_in_order("first step")
    faults_util.reload_conf(ctx, "search", "probe_matches", "5")
    try:
        pages_in_order("time spans")
    finally:
        faults_util.reload_conf(ctx, "search", "probe_matches", None)


def test_agent_search_plan_follows_the_dictionary(ctx):
    """An agent's search asks the dictionary (CALL KEYWORDS) how many of
    their tickets it would find: fewer than probe_matches, and the first
    step (any time, cut off) is the answer; more, and it starts at the
    time spans, since the first step would read most of their tickets
    to say so.  searchd's query log (the test stack writes one; it holds
    the SELECTs) shows which ran; the answer is the same either way."""
    a1, _a2 = agents(ctx)
    c = customer(ctx, "c5")
    w = word()
    made = [raise_ticket(c, "Planned %s %d" % (w, i)) for i in range(3)]
    for t in made:
        assign(ctx, t, a1)
    tu.wait_indexed(ctx)
    log = ctx.stack.search_query_log_path()

    def statements(q):
        at = os.path.getsize(log)
        ids = found(a1, q)
        with open(log, errors="replace") as f:
            f.seek(at)
            mine = [ln for ln in f.read().splitlines() if "ccra%d" % a1.id in ln]
        return ids, mine

    want = sorted(made, reverse=True)
    prefix = w[:-1] + "*"      # a prefix's count is unknown: every one of the agent's tickets
    for q in (w, prefix):
        ids, st = statements(q)
        assert ids == want, "%s: %s, want %s" % (q, ids, want)
        selects = [ln for ln in st if "SELECT" in ln]
        assert selects and "cutoff=" in selects[0], "%s: 3 tickets, not the first step: %s" % (q, st)
    faults_util.reload_conf(ctx, "search", "probe_matches", "1")
    try:
        ids, st = statements(prefix)
        assert ids == want, "spans: %s, want %s" % (ids, want)
        selects = [ln for ln in st if "SELECT" in ln]
        assert selects and not any("cutoff=" in ln for ln in selects), "the first step ran: %s" % st
        assert "ccrt0x" in selects[0], "the spans do not start at the last days: %s" % selects[0]
        ids, st = statements(w)    # 3 of the index's documents: still few of them
        assert ids == want
    finally:
        faults_util.reload_conf(ctx, "search", "probe_matches", None)


def test_a_scope_word_typed_in_the_box_finds_nothing(ctx):
    """The scope field's words (customer, agent, time) are only ever
    written by ccrd: typed into the search box they search subject, body
    and notes, where nobody wrote them."""
    c = customer(ctx, "c1")
    t = raise_ticket(c, "Scope words %s" % word())
    tu.wait_indexed(ctx)
    day = int(time.time()) // 86400
    for q in ("ccrc%d" % c.id, "ccra0", "ccrt0x%d" % day, "ccrt0x*"):
        assert found(c, q) == [], "%r found %s" % (q, found(c, q))
        assert found(admin(ctx), q) == [], "admin: %r" % q
    assert t in found(c, "scope")


def test_api_list_searches_too(ctx):
    c = customer(ctx, "c1")
    w = word()
    t = raise_ticket(c, "API %s search" % w)
    tu.wait_indexed(ctx)
    r = c.s.post("/account/tokens", {"name": "search"})
    m = re.search(r"\b(ccr_[A-Za-z0-9_]+)\b", c.s.follow(r).text if r.status == 303 else r.text)
    if not m:
        raise helpers.Skip("no token shown")
    api = helpers.Client(ctx.port, tu.addr(ctx))
    got = api.get("/api/v1/tickets?status=all&q=" + w, headers={"Authorization": "Bearer " + m.group(1)})
    assert got.status == 200, got.status
    assert '"id": %d' % t in got.text or '"id":%d' % t in got.text, got.text[:500]


# ------------------------------------------------------------------ hostile queries

def test_hostile_queries_never_500(ctx):
    c = customer(ctx, "c1")
    ad = admin(ctx)
    qs = ['"', "'", "*", "**", "a*", "-x", "!x", "x | y", "@subject x", "@(notes) x", "(x", "x)",
          '"x y"~3', "x << y", "^x$", "\\", "\\\\'", "x/2", "=x", "MAYBE x", "NEAR/3", "@@", "#", "#0",
          "#-1", "#99999999999999999999", "#1x", " ".join(["w%d" % i for i in range(1000)]),
          "x" * 10000, "é" * 3000, "\u0301" * 50, "\x00", "%", "_", "') OR 1=1 -- "]
    for q in qs:
        for u in (c, ad):
            r = u.s.get("/tickets?status=all&q=" + urllib.parse.quote(q))
            assert r.status in (200, 303, 400, 414, 422), "%s ?q=%r: %d" % (u.role, q[:40], r.status)
    for raw in ("%ff%fe", "%c3%28", "%ed%a0%80", "%e2%82", "x%00y"):
        r = c.s.get("/tickets?status=all&q=" + raw)
        assert r.status in (200, 400, 422), "?q=%s: %d" % (raw, r.status)


# ------------------------------------------------------------------ operations

def test_metrics_show_the_index(ctx):
    ad = admin(ctx)
    found(ad, word())
    r = helpers.Client(ctx.port, "127.0.0.1").get("/metrics")
    if r.status == 404:
        raise helpers.Skip("/metrics is not served to this address")
    for name in ("ccr_search_queries_total", "ccr_search_errors_total", "ccr_search_queue_length",
                 "ccr_search_index_lag_seconds"):
        assert name in r.text, "/metrics lacks %s" % name


def test_kill_indexer_with_a_queued_change(ctx):
    c = customer(ctx, "c1")
    st = ctx.stack
    w = word()
    pids = st.search_pids()
    assert len(pids) == 1, "want one ccrd-search child, got %s" % pids
    os.kill(pids[0], signal.SIGSTOP)   # the change is queued, not indexed
    try:
        t = raise_ticket(c, "Queued %s while stopped" % w)
        assert int(ctx.sql_value("SELECT COUNT(*) FROM search_queue WHERE ticket_id = %d" % t)) == 1
        assert found(c, w) == []
    finally:
        os.kill(pids[0], signal.SIGKILL)   # a stopped process dies of SIGKILL too
    helpers_wait(lambda: st.search_pids() and st.search_pids() != pids, 15, "a new indexer")
    eventually(c, w, lambda ids: ids == [t], "after the indexer was killed and restarted")


def sphinxql(ctx, sql):
    """One SphinxQL statement to the stack's searchd -> rows of tab-split fields."""
    import subprocess
    import stack
    out = subprocess.run([stack.MARIADB, "--no-defaults", "-h127.0.0.1", "-P%d" % ctx.stack.search_port,
                          "-B", "-N", "-e", sql], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, "SphinxQL %r: %s" % (sql, out.stderr)
    return [line.split("\t") for line in out.stdout.splitlines()]


def disk_chunks(ctx):
    return int(dict(r[:2] for r in sphinxql(ctx, "SHOW INDEX ccr_tickets STATUS"))["disk_chunks"])


def test_indexer_merges_too_many_disk_chunks(ctx):
    """Every search reads every disk chunk of the index: the indexer,
    when idle, asks searchd to merge them once there are more than 4 (it
    looks at its start, then every 10 minutes)."""
    c = customer(ctx, "c1")
    st = ctx.stack
    for k in range(6):                      # a disk chunk each
        raise_ticket(c, "Chunk %s %d" % (word(), k))
        tu.wait_indexed(ctx)
        sphinxql(ctx, "FLUSH RAMCHUNK ccr_tickets")
    assert disk_chunks(ctx) > 4, disk_chunks(ctx)
    pids = st.search_pids()
    mark = ctx.log_mark()
    os.kill(pids[0], signal.SIGKILL)        # a new indexer looks at once
    ctx.wait_until(lambda: "merging them (OPTIMIZE INDEX)" in ctx.log_since(mark), 20,
                   "the indexer to ask for a merge", 0.1)
    ctx.wait_until(lambda: disk_chunks(ctx) == 1, 60, "searchd to merge the chunks", 0.2)
    w = word()
    t = raise_ticket(c, "After the merge %s" % w)
    eventually(c, w, lambda ids: ids == [t], "after the merge")


def test_kill_searchd_keeps_acknowledged_updates(ctx):
    c = customer(ctx, "c1")
    st = ctx.stack
    w = word()
    t = raise_ticket(c, "Durable %s entry" % w)
    tu.wait_indexed(ctx)      # searchd acknowledged the REPLACE
    st.search_kill()
    try:
        # searchd down: the list works, a search is a clear 503
        r = c.s.get("/tickets")
        assert r.status == 200, "the list without q: %d" % r.status
        r = c.s.get("/tickets?q=" + w)
        assert r.status == 503, "a search with searchd down: %d" % r.status
        assert "Search is unavailable right now" in r.text
        w2 = word()
        t2 = raise_ticket(c, "Written %s while searchd is down" % w2)
    finally:
        st.search_start()
    assert found(c, w) == [t], "an acknowledged update was lost by kill -9 of searchd"
    eventually(c, w2, lambda ids: ids == [t2], "a change queued while searchd was down")


def test_rebuild_command(ctx):
    c = customer(ctx, "c1")
    w = word()
    t = raise_ticket(c, "Rebuilt %s entry" % w)
    tu.wait_indexed(ctx)
    p = ctx.stack.admin("search-rebuild")
    assert re.search(r"\d+ tickets indexed", p.stdout), p.stdout
    n = int(ctx.sql_value("SELECT COUNT(*) FROM tickets"))
    assert re.search(r"\b%d tickets indexed" % n, p.stdout), (n, p.stdout)
    assert "index merged into 1 disk chunk in" in p.stdout, p.stdout
    assert disk_chunks(ctx) == 1
    assert found(c, w) == [t]


def helpers_wait(pred, timeout, what):
    t_end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > t_end:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.05)

/*
 * ticket.c — the ticket routes and the ticket life (README "Roles and the
 * ticket life"): list, new, show, assign, resolve, close, reopen, rating,
 * and auto-close.  The auto-close lives here, not in a file of its own: it
 * is one more transition of the same life (resolved → closed), with the
 * same mail to the customer.  One visibility check
 * (ticket_get) serves every ticket route: a ticket the viewer may not see
 * answers 404 exactly like a missing one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

#define FAR_FUTURE 2147483647LL   /* first page cursor: FROM_UNIXTIME's safe maximum */

static const char *const status_names[TS__MAX] = {
	[TS_OPEN] = "open", [TS_RESOLVED] = "resolved", [TS_CLOSED] = "closed",
};
const char *const priority_names[PRIO__MAX] = {
	[PRIO_LOW] = "low", [PRIO_NORMAL] = "normal", [PRIO_HIGH] = "high", [PRIO_URGENT] = "urgent",
};

/* Each move, from each status: the status it leads to, or TS__MAX where
 * the move is refused.  A customer's reply reopens a resolved ticket; an
 * agent's leaves it resolved; nothing moves a closed ticket but reopen. */
static const enum ticket_status moves[TM__MAX][TS__MAX] = {
	[TM_RESOLVE] = { [TS_OPEN] = TS_RESOLVED, [TS_RESOLVED] = TS__MAX, [TS_CLOSED] = TS__MAX },
	[TM_CLOSE] = { [TS_OPEN] = TS_CLOSED, [TS_RESOLVED] = TS_CLOSED, [TS_CLOSED] = TS__MAX },
	[TM_REOPEN] = { [TS_OPEN] = TS__MAX, [TS_RESOLVED] = TS_OPEN, [TS_CLOSED] = TS_OPEN },
	[TM_CUSTOMER_REPLY] = { [TS_OPEN] = TS_OPEN, [TS_RESOLVED] = TS_OPEN, [TS_CLOSED] = TS__MAX },
	[TM_AGENT_REPLY] = { [TS_OPEN] = TS_OPEN, [TS_RESOLVED] = TS_RESOLVED, [TS_CLOSED] = TS__MAX },
};

/* ticket_move: *to = where move m takes a ticket in status from; -1 when
 * the life does not allow it. */
int ticket_move(enum ticket_move m, enum ticket_status from, enum ticket_status *to)
{
	if ((unsigned)m >= TM__MAX || (unsigned)from >= TS__MAX || moves[m][from] == TS__MAX)
		return -1;
	*to = moves[m][from];
	return 0;
}

const char *ticket_status_name(enum ticket_status st)
{
	return (unsigned)st < TS__MAX ? status_names[st] : "?";
}

int ticket_status_parse(const char *s, enum ticket_status *out)
{
	int i = str_lookup(status_names, TS__MAX, s);

	if (i < 0)
		return -1;
	*out = (enum ticket_status)i;
	return 0;
}

const char *priority_name(enum priority p)
{
	return (unsigned)p < PRIO__MAX ? priority_names[p] : "?";
}

int priority_parse(const char *s, enum priority *out)
{
	int i = str_lookup(priority_names, PRIO__MAX, s);

	if (i < 0)
		return -1;
	*out = (enum priority)i;
	return 0;
}

static const char Q_TICKET[] =
    "SELECT t.id, t.customer_id, IFNULL(t.agent_id, 0), t.subject, t.description, t.priority, "
    "t.status, UNIX_TIMESTAMP(t.created_at), UNIX_TIMESTAMP(t.last_activity), "
    "CONCAT(c.first_name, ' ', c.last_name), c.email, "
    "CONCAT(a.first_name, ' ', a.last_name), a.email, c.first_name "
    "FROM tickets t JOIN users c ON c.id = t.customer_id "
    "LEFT JOIN users a ON a.id = t.agent_id WHERE t.id = ?";
enum {
	TK_ID, TK_CUSTOMER_ID, TK_AGENT_ID, TK_SUBJECT, TK_DESCRIPTION, TK_PRIORITY, TK_STATUS,
	TK_CREATED, TK_ACTIVITY, TK_CUSTOMER_NAME, TK_CUSTOMER_EMAIL, TK_AGENT_NAME, TK_AGENT_EMAIL,
	TK_CUSTOMER_FIRST, TK__N
};

/* ticket_get: load ticket r->path_id into t when the viewer may see it.
 * Returns 0, 404 (missing or not visible — the same answer), or the
 * status of a database failure. */
/* ticket_read: ticket `id` into *t (arena a).  1 found, 0 no such ticket,
 * -1 failed (the database, or a row with an unknown status). */
int ticket_read(struct arena *a, long long id, struct ticket *t)
{
	struct db_rows rows;
	int n = db_query(a, &rows, Q_TICKET, TK__N, DB_ARGS(P_INT(id)));

	if (n <= 0)
		return n;
	memset(t, 0, sizeof(*t));
	t->id = db_int(&rows, 0, TK_ID);
	t->customer_id = db_int(&rows, 0, TK_CUSTOMER_ID);
	t->agent_id = db_int(&rows, 0, TK_AGENT_ID);
	t->subject = DB_CELL(&rows, 0, TK_SUBJECT);
	t->description = DB_CELL(&rows, 0, TK_DESCRIPTION);
	if (priority_parse(DB_CELL(&rows, 0, TK_PRIORITY), &t->priority) == -1 ||
	    ticket_status_parse(DB_CELL(&rows, 0, TK_STATUS), &t->status) == -1) {
		log_err("ticket %lld: unknown priority or status", t->id);
		return -1;
	}
	t->created = DB_CELL(&rows, 0, TK_CREATED);
	t->activity = DB_CELL(&rows, 0, TK_ACTIVITY);
	t->customer_name = DB_CELL(&rows, 0, TK_CUSTOMER_NAME);
	t->customer_email = DB_CELL(&rows, 0, TK_CUSTOMER_EMAIL);
	t->agent_name = DB_CELL(&rows, 0, TK_AGENT_NAME);
	t->agent_email = DB_CELL(&rows, 0, TK_AGENT_EMAIL);
	t->customer_first = DB_CELL(&rows, 0, TK_CUSTOMER_FIRST);
	return 1;
}

/* ticket_get: the ticket of the route ({id}) the user may see: 0, or the
 * HTTP status (404 for one they may not see, 5xx). */
int ticket_get(struct request *r, struct ticket *t)
{
	int n = ticket_read(r->a, r->path_id, t);

	if (n < 0)
		return db_status();
	if (n == 0)
		return 404;
	return ticket_visible(r, t) ? 0 : 404;
}

/* ticket_visible: 1 when the viewer may see t as it stands: an admin, its
 * customer, or the agent it is assigned to. */
int ticket_visible(const struct request *r, const struct ticket *t)
{
	switch (r->user->role) {
	case ROLE_ADMIN:
		return 1;
	case ROLE_CUSTOMER:
		return t->customer_id == r->user->id;
	case ROLE_AGENT:
		return t->agent_id == r->user->id;
	case ROLE__MAX:
		break;
	}
	return 0;
}

static int is_role(const struct request *r, enum role role)
{
	return r->user && r->user->role == role;
}

/* ---- the list --------------------------------------------------------- */

/* STRAIGHT_JOIN and a named index per list: the plan must start from
 * tickets and read the index in order (no filesort, no scan) whatever the
 * optimizer's statistics say — measured at 60 000 tickets it otherwise
 * started from users and sorted the whole table. */
#define TL_FIELDS \
	"t.id, t.subject, t.status, t.priority, UNIX_TIMESTAMP(t.created_at), " \
	"UNIX_TIMESTAMP(t.last_activity), CONCAT(c.first_name, ' ', c.last_name), " \
	"CONCAT(a.first_name, ' ', a.last_name), t.customer_id, IFNULL(t.agent_id, 0), " \
	"UNIX_TIMESTAMP(t.sla_due) "
#define TL_COLS "SELECT STRAIGHT_JOIN " TL_FIELDS "FROM tickets t "
#define TL_JOIN "JOIN users c ON c.id = t.customer_id LEFT JOIN users a ON a.id = t.agent_id "
/* keyset pagination: newest activity first, strictly after the cursor */
#define TL_PAGE \
	" AND (t.last_activity < FROM_UNIXTIME(?) OR (t.last_activity = FROM_UNIXTIME(?) AND t.id < ?))" \
	" ORDER BY t.last_activity DESC, t.id DESC LIMIT ?"
/* One static statement per list, each served by its index (schema 001). */
static const char Q_L_CUST[] = TL_COLS "FORCE INDEX (tickets_customer) " TL_JOIN "WHERE t.customer_id = ?" TL_PAGE;
static const char Q_L_CUST_ST[] = TL_COLS "FORCE INDEX (tickets_customer_status) " TL_JOIN
    "WHERE t.customer_id = ? AND t.status = ?" TL_PAGE;
static const char Q_L_AGENT[] = TL_COLS "FORCE INDEX (tickets_agent) " TL_JOIN "WHERE t.agent_id = ?" TL_PAGE;
static const char Q_L_AGENT_ST[] = TL_COLS "FORCE INDEX (tickets_agent_status) " TL_JOIN
    "WHERE t.agent_id = ? AND t.status = ?" TL_PAGE;
static const char Q_L_ALL[] = TL_COLS "FORCE INDEX (tickets_activity) " TL_JOIN "WHERE 1 = 1" TL_PAGE;
static const char Q_L_ALL_ST[] = TL_COLS "FORCE INDEX (tickets_status) " TL_JOIN "WHERE t.status = ?" TL_PAGE;
static const char Q_L_NONE[] = TL_COLS "FORCE INDEX (tickets_agent) " TL_JOIN "WHERE t.agent_id IS NULL" TL_PAGE;
static const char Q_L_NONE_ST[] = TL_COLS "FORCE INDEX (tickets_agent_status) " TL_JOIN
    "WHERE t.agent_id IS NULL AND t.status = ?" TL_PAGE;
/* status=overdue (staff): open tickets past a service-level due time, the
 * most overdue first, an index range of tickets_sla_due (README "Service
 * levels"); the cursor is the due time and the id. */
#define TL_DUE_PAGE \
	" AND t.sla_due < NOW() AND (t.sla_due > FROM_UNIXTIME(?) OR " \
	"(t.sla_due = FROM_UNIXTIME(?) AND t.id > ?)) ORDER BY t.sla_due, t.id LIMIT ?"
static const char Q_L_OVERDUE[] = TL_COLS "FORCE INDEX (tickets_sla_due) " TL_JOIN
    "WHERE t.sla_due IS NOT NULL" TL_DUE_PAGE;
static const char Q_L_AGENT_OVERDUE[] = TL_COLS "FORCE INDEX (tickets_agent_sla) " TL_JOIN
    "WHERE t.agent_id = ?" TL_DUE_PAGE;
/* A search's rows: the ids searchd answered (a JSON array, kept in its
 * order), loaded with the viewer's scope and the status filter checked
 * again — a stale index entry never shows a ticket the viewer may not
 * see, nor a row in the wrong status. */
static const char Q_SEARCH_ROWS[] =
    "SELECT STRAIGHT_JOIN " TL_FIELDS "FROM JSON_TABLE(?, '$[*]' COLUMNS (ord FOR ORDINALITY, "
    "id BIGINT UNSIGNED PATH '$')) j JOIN tickets t ON t.id = j.id " TL_JOIN
    "WHERE (? = 0 OR t.customer_id = ?) AND (? = 0 OR t.agent_id = ?) AND (? = 0 OR t.agent_id IS NULL) "
    "AND (? = 'all' OR t.status = ?) ORDER BY j.ord";

/* A cursor "TS-ID" (unix time of last activity, ticket id); 0 when bad. */
static int parse_cursor(const char *s, long long *ts, long long *id)
{
	char *end;

	if (s == NULL || *s == '\0')
		return 0;
	*ts = strtoll(s, &end, 10);
	if (*end != '-' || *ts <= 0 || *ts > FAR_FUTURE)
		return 0;
	*id = strtoll(end + 1, &end, 10);
	return *end == '\0' && *id > 0;
}

static const char *list_url(struct request *r, const char *status, const char *assigned,
                            long long customer, const char *q, const char *after)
{
	return arena_printf(r->a, "/tickets?status=%s%s%s%s%s%s%s%s", url_encode(r->a, status),
	    customer ? arena_printf(r->a, "&customer=%lld", customer) : "",
	    assigned ? "&assigned=" : "", assigned ? url_encode(r->a, assigned) : "",
	    q && *q ? "&q=" : "", q && *q ? url_encode(r->a, q) : "", after ? "&after=" : "",
	    after ? after : "");
}

static const char Q_CUSTOMER_OF[] =
    "SELECT CONCAT(first_name, ' ', last_name) FROM users WHERE id = ? AND role = 'customer'";
static const char Q_AGENT_HOLDS[] =
    "SELECT COUNT(*) FROM tickets FORCE INDEX (tickets_customer) "
    "WHERE customer_id = ? AND agent_id = ?";

/* by_customer: ?customer=ID of the list — the customer's name when the
 * viewer may list that customer's tickets (an admin; an agent holding one
 * of them), else NULL with *status 404 (or a database failure's). */
static const char *by_customer(struct request *r, const char *param, long long *id, int *status)
{
	struct db_rows rows;
	char *end;

	*status = 404;
	*id = strtoll(param, &end, 10);
	if (*param < '1' || *param > '9' || *end || *id <= 0 || is_role(r, ROLE_CUSTOMER))
		return NULL;
	int n = db_query(r->a, &rows, Q_CUSTOMER_OF, 1, DB_ARGS(P_INT(*id)));
	if (n != 1) {
		*status = n < 0 ? db_status() : 404;
		return NULL;
	}
	const char *name = DB_CELL(&rows, 0, 0);
	if (is_role(r, ROLE_AGENT)) {
		struct db_rows held;
		if (db_query(r->a, &held, Q_AGENT_HOLDS, 1, DB_ARGS(P_INT(*id), P_INT(r->user->id))) != 1) {
			*status = db_status();
			return NULL;
		}
		if (db_int(&held, 0, 0) == 0)
			return NULL;
	}
	return name;
}

/* ids_json: the ids (n of them; those with skip[i] set left out when
 * skip is not NULL) as a JSON array for JSON_TABLE; *count the ids in it. */
static char *ids_json(struct arena *a, const long long *ids, size_t n, const char *skip, size_t *count)
{
	size_t cap = n * 21 + 3, len = 1, k = 0;   /* ≤ 21 bytes an id: "," + 20 */
	char *json = arena_alloc(a, cap);
	json[0] = '[';
	for (size_t i = 0; i < n; i++)
		if (skip == NULL || !skip[i])
			len += (size_t)snprintf(json + len, cap - len, "%s%lld", k++ ? "," : "", ids[i]);
	snprintf(json + len, cap - len, "]");
	if (count)
		*count = k;
	return json;
}

/* search_fetch: the rows of search q (README "Search") in the viewer's
 * scope (customer_id / agent_id: one customer's or agent's tickets, 0 any;
 * none: unassigned only), in status `status` (its number st, -1 all),
 * after the cursor: ids from searchd, then their rows from MariaDB with
 * the scope checked again.  "#N" is ticket N alone when in scope (the
 * page redirects to it).  tf->next is the next page's cursor.  The row
 * count, or -503 when searchd cannot answer (-status of a database
 * failure). */
static int search_fetch(struct request *r, struct ticket_filter *tf, const char *q,
                        long long customer_id, long long agent_id, int none, const char *status,
                        int st, int cursor, long long ts, long long cid, long long limit,
                        struct db_rows *rows)
{
	long long *ids = arena_alloc(r->a, sizeof(long long) * (size_t)limit);
	long long *acts = arena_alloc(r->a, sizeof(long long) * (size_t)limit);
	int n = 0;

	tf->search = 1;
	tf->next = NULL;
	tf->sq_kind = search_parse(r->a, q, &tf->sq);
	if (tf->sq_kind == SQ_TICKET) {
		ids[0] = tf->sq.ticket_id;
		n = 1;
	} else if (tf->sq_kind == SQ_WORDS) {
		search_init(r->conf);
		struct search_filter f = { .notes = !is_role(r, ROLE_CUSTOMER), .customer_id = customer_id,
		    .agent_id = agent_id, .unassigned = none, .status = st, .cursor = cursor,
		    .after_ts = ts, .after_id = cid };
		n = search_ids(r->a, &tf->sq, &f, ids, acts, (int)limit);
		if (n < 0) {
			r->message = "Search is unavailable right now";
			return -503;
		}
		/* one more than a page: there is a next page, which goes on
		 * after the last row of this one in the index's order */
		if (n == limit) {
			n--;
			tf->next = arena_printf(r->a, "%lld-%lld", acts[n - 1], ids[n - 1]);
		}
	}
	char *json = ids_json(r->a, ids, (size_t)n, NULL, NULL);
	int got = db_query(r->a, rows, Q_SEARCH_ROWS, TL__N, DB_ARGS(P_STR(json), P_INT(customer_id),
	    P_INT(customer_id), P_INT(agent_id), P_INT(agent_id), P_INT(none), P_STR(status),
	    P_STR(status)));
	return got < 0 ? -db_status() : got;
}

/* ticket_list_fetch: the filters of the query (status, assigned for
 * admins, q, customer, after) read and checked into *tf, then up to
 * tf->limit rows of the viewer's scope in list order into *rows.  The row
 * count, or minus the HTTP status of a refusal (404 customer, 422 filter,
 * 5xx database, 503 searchd unavailable).  A search (q) is search_fetch's. */
int ticket_list_fetch(struct request *r, struct ticket_filter *tf, struct db_rows *rows)
{
	const char *status = req_query(r, "status"), *assigned = req_query(r, "assigned");
	enum ticket_status st = TS_OPEN;
	char *q = str_trim(arena_strdup(r->a, req_query(r, "q") ? req_query(r, "q") : ""));
	long long ts = FAR_FUTURE, cid = (long long)1 << 62, scope_id = r->user->id;
	long long limit = tf->limit;
	const char *sql;
	int admin = is_role(r, ROLE_ADMIN), none = 0, by_agent = 0, cursor;
	int n;
	long long cust_id = 0;
	const char *cust_name = NULL, *cparam = req_query(r, "customer");

	if (cparam) {
		int st404;
		cust_name = by_customer(r, cparam, &cust_id, &st404);
		if (cust_name == NULL)
			return -st404;
		assigned = NULL;
	}
	utf8_truncate(q, 200);            /* a search box, not a document */
	q = str_trim(q);
	if (cust_name)
		assigned = NULL;
	else if (admin && assigned && !strcmp(assigned, "none"))
		none = 1;
	else if (admin && assigned && *assigned) {
		char *end;
		scope_id = strtoll(assigned, &end, 10);
		if (*end || scope_id <= 0) {
			r->message = "Unknown agent filter";
			return -422;
		}
		by_agent = 1;
	} else
		assigned = NULL;
	if (status == NULL || *status == '\0')
		status = none ? "open" : "all";
	/* "all", "overdue" (staff), or one status: status stays the name as
	 * SQL spells it */
	int all = !strcmp(status, "all");
	int overdue = !strcmp(status, "overdue") && !is_role(r, ROLE_CUSTOMER);
	if (overdue && (*q || none || cust_name)) {
		r->message = "The overdue list cannot be combined with a search, a customer or the unassigned list";
		return -422;
	}
	if (overdue) {
		all = 0;
		ts = 0;
		cid = 0;
	}
	if (!all && !overdue && ticket_status_parse(status, &st) == -1) {
		r->message = "Unknown status filter";
		return -422;
	}
	cursor = parse_cursor(req_query(r, "after"), &ts, &cid);
	int customer = is_role(r, ROLE_CUSTOMER), agent = (is_role(r, ROLE_AGENT) || by_agent) && !cust_name;
	/* one customer's tickets: their own list, or ?customer= */
	int cust_scope = customer || cust_name;
	if (cust_name)
		scope_id = cust_id;

	if (overdue) {
		n = agent ? db_query(r->a, rows, Q_L_AGENT_OVERDUE, TL__N, DB_ARGS(P_INT(scope_id),
		                P_INT(ts), P_INT(ts), P_INT(cid), P_INT(limit)))
		          : db_query(r->a, rows, Q_L_OVERDUE, TL__N, DB_ARGS(P_INT(ts), P_INT(ts),
		                P_INT(cid), P_INT(limit)));
	} else if (*q) {
		n = search_fetch(r, tf, q, cust_scope ? scope_id : 0, agent ? scope_id : 0, none,
		    all ? "all" : status, all ? -1 : (int)st, cursor, ts, cid, limit, rows);
		if (n < 0)
			return n;
	} else if (cust_scope || agent) {
		sql = cust_scope ? (all ? Q_L_CUST : Q_L_CUST_ST) : (all ? Q_L_AGENT : Q_L_AGENT_ST);
		n = all ? db_query(r->a, rows, sql, TL__N, DB_ARGS(P_INT(scope_id), P_INT(ts), P_INT(ts),
		              P_INT(cid), P_INT(limit)))
		        : db_query(r->a, rows, sql, TL__N, DB_ARGS(P_INT(scope_id), P_STR(status),
		              P_INT(ts), P_INT(ts), P_INT(cid), P_INT(limit)));
	} else {
		sql = none ? (all ? Q_L_NONE : Q_L_NONE_ST) : (all ? Q_L_ALL : Q_L_ALL_ST);
		n = all ? db_query(r->a, rows, sql, TL__N, DB_ARGS(P_INT(ts), P_INT(ts), P_INT(cid),
		              P_INT(limit)))
		        : db_query(r->a, rows, sql, TL__N, DB_ARGS(P_STR(status), P_INT(ts), P_INT(ts),
		              P_INT(cid), P_INT(limit)));
	}
	if (n < 0)
		return -db_status();
	struct ticket_filter found = *tf;
	*tf = (struct ticket_filter){ .limit = limit, .status = status, .assigned = assigned, .q = q,
	    .after = cursor ? req_query(r, "after") : NULL, .st = st, .all = all, .admin = admin,
	    .none = none, .by_agent = by_agent, .customer = customer, .cursor = cursor,
	    .overdue = overdue, .cust_id = cust_id, .cust_name = cust_name, .search = found.search,
	    .next = found.next, .sq = found.sq, .sq_kind = found.sq_kind };
	return n;
}

/* the texts an excerpt may come from: the first 4 KiB of the description
 * and of the first 8 messages (notes) — an excerpt is a hint, and a page
 * of results must not read whole conversations (measured: with 100
 * messages of 16 KiB the excerpts were most of a search page's cost; at
 * 1 M tickets, reading 20 messages a result was most of MariaDB's).  One
 * statement a source for the whole page (? the JSON array of the tickets
 * still without an excerpt); a ticket's 8th message id comes from the
 * index once a ticket (the LIMIT keeps the derived table from being
 * merged, which ran that subquery again for every message row), so a
 * ticket of thousands of messages reads 8 bodies. */
#define EXCERPT_SOURCE 4096
#define EXCERPT_IDS "JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT UNSIGNED PATH '$')) j "
static const char Q_X_DESC[] =
    "SELECT t.id, LEFT(t.description, 4096) FROM " EXCERPT_IDS "JOIN tickets t ON t.id = j.id";
static const char Q_X_MSG[] =
    "SELECT m.ticket_id, LEFT(m.body, 4096) FROM (SELECT j.id, IFNULL((SELECT x.id FROM messages x "
    "FORCE INDEX (messages_ticket) WHERE x.ticket_id = j.id ORDER BY x.id LIMIT 7, 1), "
    "9223372036854775807) last_id FROM " EXCERPT_IDS "LIMIT 1000) b JOIN messages m FORCE INDEX (messages_ticket) "
    "ON m.ticket_id = b.id AND m.id <= b.last_id ORDER BY m.ticket_id, m.id";
static const char Q_X_NOTE[] =
    "SELECT m.ticket_id, LEFT(m.body, 4096) FROM (SELECT j.id, IFNULL((SELECT x.id FROM notes x "
    "FORCE INDEX (notes_ticket) WHERE x.ticket_id = j.id ORDER BY x.id LIMIT 7, 1), "
    "9223372036854775807) last_id FROM " EXCERPT_IDS "LIMIT 1000) b JOIN notes m FORCE INDEX (notes_ticket) "
    "ON m.ticket_id = b.id AND m.id <= b.last_id ORDER BY m.ticket_id, m.id";
#define EXCERPT_CHARS 200

/* excerpts: under each search result's subject (ids[i], its dictionary
 * t[i], n of them), the matched words in a short piece of its
 * description, else of the first message that has them, else (staff
 * only, marked as a note) of the first note.  0, or -1 when the database
 * failed. */
static int excerpts(struct request *r, const struct search_query *q, const long long *ids,
                    struct vdict **t, size_t n)
{
	static const char *const sources[] = { Q_X_DESC, Q_X_MSG, Q_X_NOTE };
	int staff = !is_role(r, ROLE_CUSTOMER);
	char *done = arena_alloc(r->a, n ? n : 1);

	memset(done, 0, n ? n : 1);
	for (int s = 0; s < (staff ? 3 : 2); s++) {
		size_t left;
		char *json = ids_json(r->a, ids, n, done, &left);
		if (left == 0)
			return 0;
		struct db_rows rows;
		if (db_query(r->a, &rows, sources[s], 2, DB_ARGS(P_STR(json))) < 0)
			return -1;
		for (size_t k = 0; k < rows.nrows; k++) {
			long long id = db_int(&rows, k, 0);
			size_t i = 0;
			while (i < n && (ids[i] != id || done[i]))
				i++;
			if (i == n || !search_matches(r->a, q, DB_CELL(&rows, k, 1), EXCERPT_SOURCE))
				continue;
			struct vdict *e = vdict_section(t[i], "EXCERPT");
			search_mark(r->a, q, DB_CELL(&rows, k, 1), EXCERPT_CHARS, e, "HL");
			if (s == 2)
				vdict_show(e, "NOTE");
			done[i] = 1;
		}
	}
	return 0;
}

/* suggest: for a search of several words that found nothing, links
 * that search again with one word left out. */
static void suggest(struct request *r, const struct ticket_filter *tf, const char *status,
                    const char *assigned, long long cust_id, struct vdict *empty)
{
	struct vdict *sg = vdict_section(empty, "SUGGEST");

	for (size_t drop = 0; drop < tf->sq.n; drop++) {
		char *words = arena_strdup(r->a, "");
		for (size_t i = 0; i < tf->sq.n; i++)
			if (i != drop)
				words = arena_printf(r->a, "%s%s%s", words, *words ? " " : "", tf->sq.word[i].shown);
		struct vdict *d = vdict_section(sg, "DROP");
		vdict_set(d, "WORDS", words);
		vdict_set(d, "URL", list_url(r, status, assigned, cust_id, words, NULL));
	}
}

/* GET /tickets: scoped by role; filters status, assigned (admin), q,
 * customer (admins; agents holding one of that customer's tickets: all of
 * that customer's tickets); keyset pagination with `after`. */
int ticket_list(struct request *r)
{
	struct ticket_filter tf = { .limit = r->conf->page_size + 1 };
	struct db_rows rows, agents = { 0 };
	const char *heading;
	int n = ticket_list_fetch(r, &tf, &rows);

	if (n < 0)
		return -n;
	const char *status = tf.status, *assigned = tf.assigned, *q = tf.q, *cust_name = tf.cust_name;
	enum ticket_status st = tf.st;
	int admin = tf.admin, none = tf.none, by_agent = tf.by_agent, customer = tf.customer;
	int all = tf.all, cursor = tf.cursor, overdue = tf.overdue;
	long long cust_id = tf.cust_id;
	/* "#N": the ticket page, which answers 404 for one the viewer may not see */
	if (tf.search && tf.sq_kind == SQ_TICKET)
		return resp_redirect(r, arena_printf(r->a, "/tickets/%lld", tf.sq.ticket_id));
	if (admin && agent_options_load(r, &agents) == -1)
		return db_status();

	heading = cust_name ? arena_printf(r->a, "Tickets of %s", cust_name)
	    : customer ? "My tickets" : is_role(r, ROLE_AGENT) ? "Assigned to me"
	    : none ? "Unassigned" : by_agent ? "Tickets of one agent" : "All tickets";
	struct view *v = page_new(r, "tickets.tpl", heading);
	if (v == NULL)
		return 500;
	struct vdict *b = view_body(v);
	vdict_set(b, "HEADING", heading);
	vdict_set(b, "Q", q);
	static const char *const sel[TS__MAX] = {
		[TS_OPEN] = "SEL_OPEN", [TS_RESOLVED] = "SEL_RESOLVED", [TS_CLOSED] = "SEL_CLOSED",
	};
	vdict_show(b, overdue ? "SEL_OVERDUE" : all ? "SEL_ALL" : sel[st]);
	if (assigned)
		vdict_set(vdict_section(b, "HAS_ASSIGNED"), "ASSIGNED", assigned);
	if (cust_name)
		vdict_set_int(vdict_section(b, "HAS_CUSTOMER"), "CUSTOMER_ID", cust_id);
	if (customer)
		vdict_show(b, "CAN_CREATE");
	if (!customer)
		vdict_show(b, "STAFF");
	const char *here = list_url(r, status, assigned, cust_id, q,
	    cursor ? req_query(r, "after") : NULL);
	size_t shown = (size_t)n > (size_t)r->conf->page_size ? (size_t)r->conf->page_size : (size_t)n;
	size_t assignable = 0;
	long long *ids = arena_alloc(r->a, sizeof(long long) * (shown ? shown : 1));
	struct vdict **dicts = arena_alloc(r->a, sizeof(struct vdict *) * (shown ? shown : 1));
	for (size_t i = 0; i < shown; i++) {
		struct vdict *t = vdict_section(b, "TICKET");
		ids[i] = db_int(&rows, i, TL_ID);
		dicts[i] = t;
		vdict_set(t, "ID", DB_CELL(&rows, i, TL_ID));
		if (tf.search && tf.sq_kind == SQ_WORDS)
			search_mark(r->a, &tf.sq, DB_CELL(&rows, i, TL_SUBJECT), 0, t, "HL_SUBJECT");
		else
			vdict_set(vdict_section(t, "PLAIN_SUBJECT"), "SUBJECT", DB_CELL(&rows, i, TL_SUBJECT));
		vdict_set(t, "STATUS", DB_CELL(&rows, i, TL_STATUS));
		vdict_set(t, "PRIORITY", DB_CELL(&rows, i, TL_PRIORITY));
		page_set_time(r, t, "CREATED", DB_CELL(&rows, i, TL_CREATED));
		page_set_time(r, t, "ACTIVITY", DB_CELL(&rows, i, TL_ACTIVITY));
		vdict_set(t, "AGENT", DB_CELL(&rows, i, TL_AGENT) ? DB_CELL(&rows, i, TL_AGENT) : "N/A");
		if (!customer) {
			struct vdict *rs = vdict_section(t, "ROW_STAFF");
			vdict_set(rs, "CUSTOMER", DB_CELL(&rows, i, TL_CUSTOMER));
			struct vdict *due = vdict_section(t, "ROW_DUE");
			sla_fill(r, due, "SLA", DB_CELL(&rows, i, TL_DUE));
			if (DB_CELL(&rows, i, TL_DUE) == NULL)
				vdict_show(due, "NO_SLA");
		}
		enum ticket_status row_st;
		if (admin && ticket_status_parse(DB_CELL(&rows, i, TL_STATUS), &row_st) == 0 && row_st != TS_CLOSED) {
			vdict_show(t, "ROW_ASSIGN");
			assignable++;
		}
	}
	/* one agent select for the whole list (the form "assign-form"); each
	 * open row's Assign button posts it to that row's
	 * /tickets/{id}/assign (formaction): no JavaScript needed, and the
	 * page carries the agents once rather than once per row */
	if (tf.search && tf.sq_kind == SQ_WORDS && excerpts(r, &tf.sq, ids, dicts, shown) < 0)
		return db_status();
	if (assignable) {
		struct vdict *f = vdict_section(b, "ASSIGN_PICKER");
		vdict_set(f, "NEXT", here);
		agent_options_fill(f, &agents, 0);
	}
	if (n == 0) {
		const char *msg = tf.search ? "No tickets match this search" : "No tickets match these filters";
		if (tf.search && tf.sq_kind == SQ_WORDS && tf.sq.n > 1 && !cursor)
			suggest(r, &tf, status, assigned, cust_id, vdict_section(b, "EMPTY"));
		if (!cursor && !*q) {
			if (customer && all)
				msg = "You are yet to raise a ticket";
			else if (none && !all && st == TS_OPEN)
				msg = "There is nothing left to assign";
			else if (is_role(r, ROLE_AGENT) && all && !cust_name)
				msg = "No tickets are assigned to you yet";
			else if (admin && all && !by_agent && !cust_name)
				msg = "There are no tickets yet";
			else if (overdue)
				msg = "No open ticket is overdue";
		}
		vdict_set(vdict_section(b, "EMPTY"), "MSG", msg);
	}
	if (tf.search ? tf.next != NULL : (size_t)n > shown) {
		const char *after = tf.search ? tf.next : arena_printf(r->a, "%s-%s",
		    DB_CELL(&rows, shown - 1, overdue ? TL_DUE : TL_ACTIVITY), DB_CELL(&rows, shown - 1, TL_ID));
		vdict_set(vdict_section(b, "NEXT_PAGE"), "URL",
		    list_url(r, status, assigned, cust_id, q, after));
	}
	if (cursor)
		vdict_set(vdict_section(b, "FIRST_PAGE"), "URL",
		    list_url(r, status, assigned, cust_id, q, NULL));
	return page_render(r, v, 200);
}

/* ---- raise a ticket -------------------------------------------------- */

/* the limits a file input states */
static void ticket_attach_limits(struct request *r, struct vdict *d)
{
	vdict_set(d, "ATTACH_LIMIT", arena_printf(r->a, "Up to %d files, each at most %.0f MiB",
	    ATTACH_MAX_FILES, (double)r->conf->attach_max_file_bytes / (1024 * 1024)));
	vdict_set_int(d, "ATTACH_MAX_BYTES", r->conf->attach_max_file_bytes);
	vdict_set_int(d, "ATTACH_MAX_FILES", ATTACH_MAX_FILES);
}

static int new_page(struct request *r, int status, const char *subject, const char *desc,
                    enum priority prio, const struct form_errors *f)
{
	if (r->api)   /* the same refusal, as the API's JSON error */
		return api_refuse(r, status, f && f->n ? f->e[0].key : NULL, f && f->n ? f->e[0].msg : NULL);
	struct view *v = page_new(r, "ticket_new.tpl", "New ticket");

	if (v == NULL)
		return 500;
	struct vdict *b = view_body(v);
	vdict_set(b, "SUBJECT", subject);
	vdict_set(b, "DESCRIPTION", desc);
	static const char *const shown[PRIO__MAX] = {
		[PRIO_LOW] = "PRIO_LOW", [PRIO_NORMAL] = "PRIO_NORMAL", [PRIO_HIGH] = "PRIO_HIGH",
		[PRIO_URGENT] = "PRIO_URGENT",
	};
	vdict_show(b, shown[prio]);
	ticket_attach_limits(r, b);
	if (f)
		form_error_show(v, f);
	return page_render(r, v, status);
}

int ticket_new_form(struct request *r)
{
	return new_page(r, 200, "", "", PRIO_NORMAL, NULL);
}

static const char Q_T_INSERT[] =
    "INSERT INTO tickets (customer_id, subject, description, priority, status, created_at, "
    "last_activity) VALUES (?, ?, ?, ?, 'open', NOW(), NOW())";

/* ticket_open: customer c raises a ticket, with files[0..nfiles) (measured
 * by attach_check) on its description; the confirmation goes to them.
 * With [tickets] auto_assign on, an available agent gets it (assign_auto);
 * when nobody does, the needs-an-agent mail goes to every admin.  In the
 * caller's transaction: the page and the email channel both raise tickets
 * here.  The ticket id, or -1. */
long long ticket_open(const struct ctx *x, const struct user *c, const char *subject,
                      const char *desc, enum priority prio, struct attach_file *files,
                      size_t nfiles)
{
	if (db_exec(Q_T_INSERT, DB_ARGS(P_INT(c->id), P_STR(subject), P_STR(desc),
	        P_STR(priority_name(prio)))) < 0)
		return -1;
	long long id = db_insert_id();
	if (attach_store(x->a, id, (struct attach_owner){ 0 }, c->id, files, nfiles) == -1 ||
	    timeline_add(id, &(struct timeline_entry){ .kind = TLK_CREATED, .actor = c->id }) == -1 ||
	    sla_refresh(x, id, 0) == -1 || report_created(prio) == -1)
		return -1;
	const char *name = arena_printf(x->a, "%s %s", c->first_name, c->last_name);
	struct view *m = mail_new(x->conf, "ticket_created");
	if (m) {
		vdict_set_int(view_body(m), "TICKET", id);
		vdict_set(view_body(m), "SUBJECT", subject);
		vdict_set(view_body(m), "NAME", name);
		if (nfiles && attach_mail_fill(x, view_body(m), id, (struct attach_owner){ 0 }) == -1)
			return -1;
	}
	if (mail_queue(x, m, "ticket_created", c->email, c->id, id, 0) == -1)
		return -1;
	/* [tickets] auto_assign: an available agent at once; only a ticket
	 * nobody took needs the admins */
	struct assignment as = { .ticket_id = id, .customer_id = c->id, .subject = subject,
	    .customer_name = name };
	int took = assign_auto(x, &as);
	if (took == -1 ||
	    (took == 0 && mail_admins(x, c->id, "ticket_needs_agent", name, c->email, id, subject) == -1))
		return -1;
	return id;
}

/* POST /tickets: subject 1–200, description 1–20000 ("Query cannot be
 * empty"), priority low|normal|high|urgent, urlencoded or multipart with
 * up to 5 attachments (six: 422 "At most 5 attachments"; too large: 413
 * "Attachments are too large").  Any other field (customer_id, agent_id,
 * status, …) is ignored: the handler reads only these. */
int ticket_create(struct request *r)
{
	struct form_value in[TKT__N];
	struct form_errors f = { .n = 0 };
	const char *why = NULL;

	form_read(r, &form_ticket, in, &f);
	const char *subject = in[TKT_SUBJECT].s, *desc = in[TKT_DESCRIPTION].s;
	enum priority prio = (enum priority)in[TKT_PRIORITY].i;
	if (f.n)
		return new_page(r, 422, subject, desc, prio, &f);
	int s = attach_check(r->conf, r->files, r->nfiles, &why);
	if (s) {
		form_error_add(&f, "ERR_ATTACHMENT", why);
		return new_page(r, s, subject, desc, prio, &f);
	}

	long long id = db_begin() == -1 ? -1 : ticket_open(request_ctx(r), r->user, subject, desc, prio,
	    r->files, r->nfiles);
	if (id == -1 || db_commit() == -1)
		return db_fail();
	r->created_id = id;
	flash_set(r, FLASH_TICKET_CREATED);
	return resp_redirect(r, arena_printf(r->a, "/tickets/%lld", id));
}

/* ---- the ticket page ---------------------------------------------------- */

/* The rating (NULLs when none) and whether the viewer has an unread
 * new-message notice of this ticket: always one row.  Read after the
 * conversation, so a message that lands meanwhile still leaves its notice
 * to be cleared by this view, as the page's UPDATE did before it was made
 * conditional. */
static const char Q_RATING[] =
    "SELECT r.score, r.comment, UNIX_TIMESTAMP(r.created_at), "
    "EXISTS (SELECT 1 FROM ticket_notices n WHERE n.ticket_id = ? AND n.user_id = ? AND n.pending = 1) "
    "FROM (SELECT 1) one LEFT JOIN ratings r ON r.ticket_id = ?";
enum { RT_SCORE, RT_COMMENT, RT_CREATED, RT_NOTICE, RT__N };
static const char Q_HISTORY[] =
    "SELECT id, subject, status, UNIX_TIMESTAMP(last_activity) FROM tickets "
    "FORCE INDEX (tickets_customer) WHERE customer_id = ? AND id <> ? "
    "ORDER BY last_activity DESC, id DESC LIMIT 5";
enum { HI_ID, HI_SUBJECT, HI_STATUS, HI_ACTIVITY, HI__N };
static const char Q_SLA[] =
    "SELECT UNIX_TIMESTAMP(first_response_due), UNIX_TIMESTAMP(resolution_due), "
    "first_response_s, resolution_s FROM tickets WHERE id = ?";
enum { SL_FIRST_DUE, SL_RES_DUE, SL_FIRST_S, SL_RES_S, SL__N };

/* The service levels of t for its staff: each target due, overdue, met,
 * paused while the ticket is not open, or absent when off. */
static void ticket_sla_fill(struct request *r, struct vdict *b, const struct ticket *t,
                            struct db_rows *sl)
{
	static const char *const label[2] = { "First response", "Resolution" };
	struct vdict *s = vdict_section(b, "SLA_BOX");
	int any = 0;

	for (int k = 0; k < 2; k++) {
		const char *due = DB_CELL(sl, 0, k ? SL_RES_DUE : SL_FIRST_DUE);
		const char *took = DB_CELL(sl, 0, k ? SL_RES_S : SL_FIRST_S);
		long long target = k ? r->conf->sla_resolution[t->priority]
		    : r->conf->sla_first_response[t->priority];
		if (target == 0)
			continue;
		struct vdict *row = vdict_section(s, "SLA_ROW");
		vdict_set(row, "LABEL", label[k]);
		any = 1;
		if (t->status == TS_RESOLVED && !(k == 0 && took))
			vdict_set(row, "NOTE", "paused while resolved (awaiting the customer)");
		else if (took && (k == 0 || t->status != TS_OPEN)) {
			long long sec = strtoll(took, NULL, 10);
			vdict_set(row, "NOTE", arena_printf(r->a, "%s after %.1f h%s", k ? "reached" : "met",
			    sec / 3600.0, sec > target ? " (over the target)" : ""));
		} else if (t->status == TS_CLOSED)
			vdict_set(row, "NOTE", "none before the ticket was closed");
		else if (due)
			sla_fill(r, row, "DUE", due);
	}
	if (!any)
		vdict_show(s, "SLA_OFF");
}

static const char Q_NOTICE_SEEN[] =
    "UPDATE ticket_notices SET pending = 0 WHERE ticket_id = ? AND user_id = ? AND pending = 1";

/* ticket_seen: the viewer has opened ticket id (page or API): their unread
 * new-message notice is cleared, so the next message mails them again.  0 / -1. */
int ticket_seen(struct request *r, long long id)
{
	return db_exec(Q_NOTICE_SEEN, DB_ARGS(P_INT(id), P_INT(r->user->id))) < 0 ? -1 : 0;
}

/* ticket_seen_if: the same when the page's read found a notice pending
 * (pending 1), else nothing: a view that changes nothing writes nothing. */
static int ticket_seen_if(struct request *r, long long id, long long pending)
{
	return pending ? ticket_seen(r, id) : 0;
}

/* ticket_page: the ticket with its conversation and the forms the viewer
 * may use.  error/err_key/draft re-show a refused form (422/409). */
int ticket_page(struct request *r, const struct ticket *t, int status, const char *err_key,
                const char *error, const char *draft)
{
	struct db_rows tl, rating, at, agents = { 0 }, replies = { 0 }, history = { 0 };
	int customer = t->customer_id == r->user->id, admin = is_role(r, ROLE_ADMIN);
	int agent = is_role(r, ROLE_AGENT) && t->agent_id == r->user->id;
	int closed = t->status == TS_CLOSED;

	if (r->api)   /* a refusal of a shared handler, as the API's JSON error */
		return api_refuse(r, status, err_key, error);
	/* the files: of the description, all messages, all notes (staff only) */
	if (timeline_load(r, t->id, 0, &tl) == -1 ||
	    attach_thread_load(r, t->id, 1, 1, 1, &at) == -1 ||
	    db_query(r->a, &rating, Q_RATING, RT__N,
	        DB_ARGS(P_INT(t->id), P_INT(r->user->id), P_INT(t->id))) != 1)
		return db_status();
	if (admin && !closed && agent_options_load(r, &agents) == -1)
		return db_status();
	if (agent && !closed && reply_options_load(r, &replies) == -1)
		return db_status();
	struct db_rows sl = { 0 };
	if ((admin || agent) && db_query(r->a, &sl, Q_SLA, SL__N, DB_ARGS(P_INT(t->id))) != 1)
		return db_status();
	if ((admin || agent) && db_query(r->a, &history, Q_HISTORY, HI__N,
	        DB_ARGS(P_INT(t->customer_id), P_INT(t->id))) < 0)
		return db_status();
	if (ticket_seen_if(r, t->id, db_int(&rating, 0, RT_NOTICE)) == -1)
		return db_status();

	struct view *v = page_new(r, "ticket.tpl", arena_printf(r->a, "#%lld %s", t->id, t->subject));
	if (v == NULL)
		return 500;
	struct vdict *b = view_body(v);
	vdict_set_int(b, "ID", t->id);
	vdict_set(b, "SUBJECT", t->subject);
	vdict_set(b, "DESCRIPTION", t->description);
	vdict_set(b, "STATUS", ticket_status_name(t->status));
	vdict_set(b, "PRIORITY", priority_name(t->priority));
	page_set_time(r, b, "CREATED", t->created);
	page_set_time(r, b, "ACTIVITY", t->activity);
	vdict_set(b, "AGENT", t->agent_name ? t->agent_name : "N/A");
	if (!customer || admin) {
		struct vdict *c = vdict_section(b, "SHOW_CUSTOMER");
		vdict_set(c, "CUSTOMER", t->customer_name);
		vdict_set(c, "CUSTOMER_EMAIL", t->customer_email);
		vdict_set_int(c, "CUSTOMER_ID", t->customer_id);
	}
	if (admin || agent)
		ticket_sla_fill(r, b, t, &sl);
	if (admin || agent) {
		struct vdict *h = vdict_section(b, "HISTORY");
		vdict_set(h, "CUSTOMER", t->customer_name);
		vdict_set_int(h, "CUSTOMER_ID", t->customer_id);
		for (size_t i = 0; i < history.nrows; i++) {
			struct vdict *o = vdict_section(h, "OTHER");
			vdict_set(o, "OTHER_ID", DB_CELL(&history, i, HI_ID));
			vdict_set(o, "OTHER_SUBJECT", DB_CELL(&history, i, HI_SUBJECT));
			vdict_set(o, "OTHER_STATUS", DB_CELL(&history, i, HI_STATUS));
			page_set_time(r, o, "OTHER", DB_CELL(&history, i, HI_ACTIVITY));
		}
		if (history.nrows == 0)
			vdict_show(h, "NO_OTHER");
	}
	attach_fill(r, b, &at, (struct attach_owner){ 0 });
	size_t nmsgs = 0;
	long long last = timeline_fill(r, vdict_include(b, "THREAD", "messages.tpl"), &tl, &at,
	    &nmsgs);
	vdict_set_int(b, "LAST_SEQ", last);
	if (nmsgs == 0)
		vdict_show(b, "NO_MESSAGES");
	int note_err = err_key && (!strcmp(err_key, "ERR_NOTE") ||
	    !strcmp(err_key, "ERR_NOTE_ATTACHMENT"));
	if ((admin || agent) && !closed) {
		struct vdict *f = vdict_section(b, "CAN_NOTE");
		vdict_set(f, "NOTE_DRAFT", note_err && draft ? draft : "");
		if (note_err)
			vdict_set(vdict_section(f, err_key), "MSG", error);
		ticket_attach_limits(r, f);
	}
	if (note_err)
		draft = NULL;
	if (closed)
		vdict_show(b, "CLOSED_NOTICE");
	else if (customer || agent) {
		struct vdict *f = vdict_section(b, "CAN_REPLY");
		vdict_set(f, "BODY_DRAFT", draft ? draft : "");
		if (agent) {
			struct vdict *sr = vdict_section(f, "SAVED_REPLIES");
			reply_options_fill(r, sr, &replies, t->customer_first, t->id);
			if (replies.nrows == 0)
				vdict_show(sr, "NO_SAVED_REPLIES");
		}
		if (err_key && (!strcmp(err_key, "ERR_BODY") || !strcmp(err_key, "ERR_ATTACHMENT")))
			vdict_set(vdict_section(f, err_key), "MSG", error);
		ticket_attach_limits(r, f);
	}
	if (admin && !closed)
		agent_options_fill(vdict_section(b, "CAN_ASSIGN"), &agents, t->agent_id);
	if ((admin || agent) && !closed) {
		struct vdict *pf = vdict_section(b, "CAN_PRIORITY");
		for (int p = 0; p < PRIO__MAX; p++) {
			struct vdict *o = vdict_section(pf, "PRIO_OPTION");
			vdict_set(o, "PRIO_NAME", priority_names[p]);
			if (p == (int)t->priority)
				vdict_show(o, "SELECTED");
		}
	}
	if (agent && t->status == TS_OPEN)
		vdict_show(b, "CAN_RESOLVE");
	if ((customer || admin) && !closed)
		vdict_show(b, "CAN_CLOSE");
	if (customer && t->status != TS_OPEN)
		vdict_show(b, "CAN_REOPEN");
	if (DB_CELL(&rating, 0, RT_SCORE) != NULL) {
		struct vdict *rt = vdict_section(b, "RATING");
		vdict_set(rt, "SCORE", DB_CELL(&rating, 0, RT_SCORE));
		vdict_set(rt, "COMMENT", DB_CELL(&rating, 0, RT_COMMENT));
		page_set_time(r, rt, "RATED", DB_CELL(&rating, 0, RT_CREATED));
	} else if (customer && closed) {
		struct vdict *f = vdict_section(b, "CAN_RATE");
		if (err_key && !strcmp(err_key, "ERR_SCORE"))
			vdict_set(vdict_section(f, "ERR_SCORE"), "MSG", error);
	}
	if (error && (err_key == NULL || !strcmp(err_key, "FORM_ERROR")))
		vdict_set(vdict_section(b, "FORM_ERROR"), "MSG", error);
	return page_render(r, v, status);
}

/* GET /tickets/{id}[?reply=ID]: reply names a saved reply the viewer may
 * use, whose text (placeholders filled in) prefills the reply box; one
 * they may not use (another person's personal reply, none) is 404. */
int ticket_show(struct request *r)
{
	struct ticket t;
	const char *q = req_query(r, "reply"), *body = NULL, *draft = NULL;
	int st = ticket_get(r, &t);

	if (st)
		return st;
	if (q) {
		char *end;
		long long id = strtoll(q, &end, 10);
		if (*q < '0' || *q > '9' || *end || id <= 0)
			return 404;
		int n = reply_find(r, id, &body);
		if (n < 0)
			return db_status();
		if (n == 0)
			return 404;
		draft = reply_fill(r->a, body, t.customer_first, r->user->first_name, t.id);
	}
	return ticket_page(r, &t, 200, NULL, NULL, draft);
}

/* ---- assignment and the life cycle ------------------------------------ */

static const char Q_AGENT_ACTIVE[] =
    "SELECT CONCAT(first_name, ' ', last_name), email FROM users "
    "WHERE id = ? AND role = 'agent' AND state = 'active' LOCK IN SHARE MODE";
enum { AG_NAME, AG_EMAIL, AG__N };          /* Q_AGENT_NOW's columns too */

static const char Q_LOCK_ROW[] =
    "SELECT status, IFNULL(agent_id, 0) FROM tickets WHERE id = ? FOR UPDATE";
enum { LK_STATUS, LK_AGENT_ID, LK__N };
static const char Q_AGENT_NOW[] =
    "SELECT CONCAT(first_name, ' ', last_name), email FROM users WHERE id = ?";

/* ticket_lock: lock ticket t->id in the open transaction and refresh t's
 * status and agent from the locked row, so that the access check and the
 * choice of a mail recipient that follow see the ticket as it is now, not
 * as it was before the lock.  0 / -1. */
int ticket_lock(struct arena *a, struct ticket *t)
{
	struct db_rows rows, ag;

	if (db_query(a, &rows, Q_LOCK_ROW, LK__N, DB_ARGS(P_INT(t->id))) != 1)
		return -1;
	if (ticket_status_parse(DB_CELL(&rows, 0, LK_STATUS), &t->status) == -1)
		return -1;
	long long agent = db_int(&rows, 0, LK_AGENT_ID);
	if (agent != t->agent_id) {
		t->agent_id = agent;
		t->agent_name = t->agent_email = NULL;
		if (agent) {
			if (db_query(a, &ag, Q_AGENT_NOW, AG__N, DB_ARGS(P_INT(agent))) != 1)
				return -1;
			t->agent_name = DB_CELL(&ag, 0, AG_NAME);
			t->agent_email = DB_CELL(&ag, 0, AG_EMAIL);
		}
	}
	return 0;
}

/* POST /tickets/{id}/assign (admin): an active agent, available or not;
 * re-assigning is allowed.  The agent's row is read under a shared lock
 * and the ticket row under an exclusive one in the same transaction, so
 * an agent disabled meanwhile is either refused here or unassigned by the
 * disable, which waits for this commit; parallel assignments of one
 * ticket are serial.  The effects are assign_record's (assign.c). */
int ticket_assign(struct request *r)
{
	struct ticket t;
	struct db_rows ag;
	struct form_value in[ASG__N];
	struct form_errors f = { .n = 0 };
	int s = ticket_get(r, &t);

	if (s)
		return s;
	if (form_read(r, &form_assign, in, &f))
		return ticket_page(r, &t, 422, r->api ? "ERR_AGENT_ID" : NULL, f.e[0].msg, NULL);
	long long agent_id = in[ASG_AGENT].i;
	if (db_begin() == -1)
		return db_fail();
	int n = db_query(r->a, &ag, Q_AGENT_ACTIVE, AG__N, DB_ARGS(P_INT(agent_id)));
	if (n < 0)
		return db_fail();
	if (n == 0) {
		db_rollback();
		return ticket_page(r, &t, 422, NULL, "Choose an active agent", NULL);
	}
	const char *agent_name = DB_CELL(&ag, 0, AG_NAME);
	if (ticket_lock(r->a, &t) == -1)
		return db_fail();
	if (t.status == TS_CLOSED) {
		db_rollback();
		return ticket_page(r, &t, 409, NULL, "This ticket is closed", NULL);
	}
	/* the agent it leaves loses access, and with it every reply token */
	if ((t.agent_id && t.agent_id != agent_id && mail_tokens_drop(t.agent_id, t.id) == -1) ||
	    assign_record(request_ctx(r), &(struct assignment){ .ticket_id = t.id,
	        .customer_id = t.customer_id, .agent_id = agent_id, .subject = t.subject,
	        .customer_name = t.customer_name, .agent_name = agent_name,
	        .mode = ASSIGN_OFF }) == -1 ||
	    db_commit() == -1)
		return db_fail();
	flash_set(r, FLASH_AGENT_ASSIGNED);
	const char *next = local_path(req_form(r, "next"));
	return resp_redirect(r, next ? next : arena_printf(r->a, "/tickets/%lld", t.id));
}

static const char Q_SET_STATUS[] =
    "UPDATE tickets SET status = ?, last_activity = NOW(), "
    "resolved_at = IF(? = 'resolved', NOW(), resolved_at), "
    "closed_at = IF(? = 'closed', NOW(), NULL) WHERE id = ?";

enum mail_to { TO_NOBODY, TO_CUSTOMER, TO_AGENT };

/* Make `move` on ticket t when the life allows it from its locked status;
 * mail `mail_tpl` to its customer or to the agent the locked row names.  Access is checked again on the locked row: a
 * ticket reassigned away from the caller meanwhile is 404 like a missing
 * one.  Returns the handler's status: 303 done, 409 refused with `refusal`. */
static int transition(struct request *r, struct ticket *t, enum ticket_move move,
                      const char *refusal, const char *mail_tpl, enum mail_to who,
                      enum flash flash)
{
	static const enum timeline_kind recorded[TM__MAX] = {
		[TM_RESOLVE] = TLK_RESOLVED, [TM_CLOSE] = TLK_CLOSED, [TM_REOPEN] = TLK_REOPENED,
		[TM_CUSTOMER_REPLY] = TLK_MESSAGE, [TM_AGENT_REPLY] = TLK_MESSAGE,
	};
	enum ticket_status to;

	if (db_begin() == -1 || ticket_lock(r->a, t) == -1)
		return db_fail();
	if (!ticket_visible(r, t)) {
		db_rollback();
		return 404;
	}
	long long to_id = who == TO_CUSTOMER ? t->customer_id : who == TO_AGENT ? t->agent_id : 0;
	if (ticket_move(move, t->status, &to) == -1) {
		db_rollback();
		return ticket_page(r, t, 409, NULL, refusal, NULL);
	}
	const char *name = ticket_status_name(to);
	if (db_exec(Q_SET_STATUS, DB_ARGS(P_STR(name), P_STR(name), P_STR(name), P_INT(t->id))) < 0 ||
	    timeline_add(t->id, &(struct timeline_entry){ .kind = recorded[move],
	        .actor = r->user->id }) == -1 ||
	    sla_refresh(request_ctx(r), t->id, 0) == -1 ||
	    (to == TS_CLOSED && report_closed() == -1))
		return db_fail();
	if (mail_tpl && to_id) {
		struct view *m = mail_new(r->conf, mail_tpl);
		if (m) {
			vdict_set_int(view_body(m), "TICKET", t->id);
			vdict_set(view_body(m), "SUBJECT", t->subject);
			vdict_set(view_body(m), "NAME", arena_printf(r->a, "%s %s", r->user->first_name,
			    r->user->last_name));
		}
		if (mail_queue_active(request_ctx(r), m, mail_tpl, to_id, t->id) == -1)
			return db_fail();
	}
	if (db_commit() == -1)
		return db_fail();
	flash_set(r, flash);
	return resp_redirect(r, arena_printf(r->a, "/tickets/%lld", t->id));
}

/* POST /tickets/{id}/resolve: its agent; open → resolved; customer mailed. */
int ticket_resolve(struct request *r)
{
	struct ticket t;
	int s = ticket_get(r, &t);

	if (s)
		return s;
	return transition(r, &t, TM_RESOLVE, "Only an open ticket can be resolved",
	    "ticket_resolved", TO_CUSTOMER, FLASH_TICKET_RESOLVED);
}

/* POST /tickets/{id}/close: its customer or an admin; the agent is mailed
 * when the customer closed it. */
int ticket_close(struct request *r)
{
	struct ticket t;
	int s = ticket_get(r, &t);

	if (s)
		return s;
	int by_customer = t.customer_id == r->user->id;
	return transition(r, &t, TM_CLOSE, "This ticket is closed",
	    by_customer ? "ticket_closed" : NULL, TO_AGENT, FLASH_TICKET_CLOSED);
}

/* POST /tickets/{id}/reopen: its customer; resolved or closed → open. */
int ticket_reopen(struct request *r)
{
	struct ticket t;
	int s = ticket_get(r, &t);

	if (s)
		return s;
	return transition(r, &t, TM_REOPEN, "This ticket is already open", NULL,
	    TO_NOBODY, FLASH_TICKET_REOPENED);
}

static const char Q_PRIORITY_NOW[] = "SELECT priority FROM tickets WHERE id = ? FOR UPDATE";
static const char Q_SET_PRIORITY[] =
    "UPDATE tickets SET priority = ?, last_activity = NOW() WHERE id = ?";

/* POST /tickets/{id}/priority: its agent or an admin; priority
 * low|normal|high|urgent → 303, flash "Priority changed"; the change is a
 * timeline event and an audit row ("ticket_priority").  The same priority
 * again changes and records nothing; a closed ticket is 409. */
int ticket_priority(struct request *r)
{
	struct ticket t;
	struct form_value in[PRI__N];
	struct form_errors f = { .n = 0 };
	struct db_rows cur;
	enum priority old;
	int s = ticket_get(r, &t);

	if (s)
		return s;
	if (form_read(r, &form_priority, in, &f))
		return ticket_page(r, &t, 422, NULL, f.e[0].msg, NULL);
	enum priority to = (enum priority)in[PRI_PRIORITY].i;
	if (db_begin() == -1 || ticket_lock(r->a, &t) == -1)
		return db_fail();
	if (!ticket_visible(r, &t)) {
		db_rollback();
		return 404;
	}
	if (t.status == TS_CLOSED) {
		db_rollback();
		return ticket_page(r, &t, 409, NULL, "This ticket is closed", NULL);
	}
	if (db_query(r->a, &cur, Q_PRIORITY_NOW, 1, DB_ARGS(P_INT(t.id))) != 1 ||
	    priority_parse(DB_CELL(&cur, 0, 0), &old) == -1)
		return db_fail();
	if (old != to) {
		const char *detail = arena_printf(r->a, "%s %s", priority_name(old), priority_name(to));
		if (db_exec(Q_SET_PRIORITY, DB_ARGS(P_STR(priority_name(to)), P_INT(t.id))) < 0 ||
		    timeline_add(t.id, &(struct timeline_entry){ .kind = TLK_PRIORITY,
		        .actor = r->user->id, .detail = detail }) == -1 ||
		    sla_refresh(request_ctx(r), t.id, 0) == -1 ||
		    sla_priority_moved(request_ctx(r), t.id, old) == -1 ||
		    audit_add(request_ctx(r), t.customer_id, "ticket_priority",
		        arena_printf(r->a, "ticket %lld from %s to %s", t.id, priority_name(old),
		            priority_name(to))) == -1)
			return db_fail();
	}
	if (db_commit() == -1)
		return db_fail();
	flash_set(r, FLASH_PRIORITY_CHANGED);
	return resp_redirect(r, arena_printf(r->a, "/tickets/%lld", t.id));
}

static const char Q_RATE[] =
    "INSERT INTO ratings (ticket_id, score, comment, created_at) VALUES (?, ?, ?, NOW())";

/* POST /tickets/{id}/rating: its customer, once, when closed. */
int ticket_rate(struct request *r)
{
	struct ticket t;
	struct form_value in[RATE__N];
	struct form_errors f = { .n = 0 };
	struct ticket now;
	int s = ticket_get(r, &t);

	if (s)
		return s;
	if (t.status != TS_CLOSED)
		return ticket_page(r, &t, 409, NULL, "Only a closed ticket can be rated", NULL);
	if (form_read(r, &form_rating, in, &f))
		return ticket_page(r, &t, 422, f.e[0].key, f.e[0].msg, NULL);
	long long score = in[RATE_SCORE].i;
	const char *comment = in[RATE_COMMENT].s;
	/* the status again from the locked row (`now`); a refusal still shows
	 * the page as it was read */
	now = t;
	if (db_begin() == -1 || ticket_lock(r->a, &now) == -1)
		return db_fail();
	if (now.status != TS_CLOSED) {
		db_rollback();
		return ticket_page(r, &t, 409, NULL, "Only a closed ticket can be rated", NULL);
	}
	if (db_exec(Q_RATE, DB_ARGS(P_INT(t.id), P_INT(score), P_STR(comment))) < 0) {
		if (db_last_err() == DB_DUP) {
			db_rollback();
			return ticket_page(r, &t, 409, NULL, "This ticket has already been rated", NULL);
		}
		return db_fail();
	}
	if (timeline_add(t.id, &(struct timeline_entry){ .kind = TLK_RATED, .actor = r->user->id,
	        .detail = arena_printf(r->a, "%lld", score) }) == -1 ||
	    report_rated(now.agent_id, score) == -1)
		return db_fail();
	if (db_commit() == -1)
		return db_fail();
	flash_set(r, FLASH_RATED);
	return resp_redirect(r, arena_printf(r->a, "/tickets/%lld", t.id));
}

/* ---- the ticket life without a request: auto-close ------------------- */

static const char Q_DUE_CLOSE[] =
    "SELECT t.id, t.subject, c.email, c.id, CONCAT(c.first_name, ' ', c.last_name) "
    "FROM tickets t JOIN users c ON c.id = t.customer_id "
    "WHERE t.status = 'resolved' AND t.resolved_at < NOW() - INTERVAL ? DAY LIMIT 500";
enum { DC_ID, DC_SUBJECT, DC_EMAIL, DC_CUSTOMER_ID, DC_NAME, DC__N };
static const char Q_AUTO_CLOSE[] =
    "UPDATE tickets SET status = 'closed', closed_at = NOW(), last_activity = NOW() "
    "WHERE id = ? AND status = 'resolved' AND resolved_at < NOW() - INTERVAL ? DAY";

/* ticket_auto_close: resolved tickets with no customer message for
 * auto_close_days are closed and their customers mailed (ccr-admin
 * auto-close, hourly from ccr-maintenance.timer).  A customer
 * message reopens a ticket, so "resolved since" is the whole test.
 * Returns the number closed, or -1. */
int ticket_auto_close(const struct conf *c)
{
	struct ctx x = { .a = arena_new(0), .conf = c, .reqid = "auto-close", .addr = "local" };
	struct db_rows rows;
	int closed = 0;

	do {
		arena_reset(x.a);
		if (db_query(x.a, &rows, Q_DUE_CLOSE, DC__N, DB_ARGS(P_INT(c->auto_close_days))) < 0) {
			arena_free(x.a);
			return -1;
		}
		for (size_t i = 0; i < rows.nrows; i++) {
			long long id = db_int(&rows, i, DC_ID);
			if (db_begin() == -1)
				goto fail;
			long long n = db_exec(Q_AUTO_CLOSE, DB_ARGS(P_INT(id), P_INT(c->auto_close_days)));
			if (n < 0)
				goto fail;
			if (n == 1) {
				struct view *v = mail_new(c, "ticket_auto_closed");
				if (v) {
					vdict_set_int(view_body(v), "TICKET", id);
					vdict_set(view_body(v), "SUBJECT", DB_CELL(&rows, i, DC_SUBJECT));
					vdict_set(view_body(v), "NAME", DB_CELL(&rows, i, DC_NAME));
					vdict_set_int(view_body(v), "DAYS", c->auto_close_days);
				}
				if (timeline_add(id, &(struct timeline_entry){ .kind = TLK_AUTO_CLOSED,
				        .detail = arena_printf(x.a, "%d", c->auto_close_days) }) == -1 ||
				    sla_refresh(&x, id, 0) == -1 || report_closed() == -1 ||
				    mail_queue(&x, v, "ticket_auto_closed", DB_CELL(&rows, i, DC_EMAIL),
				        db_int(&rows, i, DC_CUSTOMER_ID), id, 0) == -1 ||
				    audit_add(&x, db_int(&rows, i, DC_CUSTOMER_ID), "ticket_auto_closed",
				        arena_printf(x.a, "ticket %lld", id)) == -1)
					goto fail;
				closed++;
			}
			if (db_commit() == -1)
				goto fail;
		}
	} while (rows.nrows == 500);
	arena_free(x.a);
	return closed;
fail:
	db_rollback();
	arena_free(x.a);
	return -1;
}

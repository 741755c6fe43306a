/*
 * sla.c — service levels (README "Service levels"): the due times of a
 * ticket's first response and resolution, kept on the ticket row by
 * sla_refresh in the transaction of every change that moves them, the
 * "due in 3 h" / "overdue by 2 h" texts, and ccr-admin sla-check, which
 * mails every admin once per breach and target.
 *
 * The clock runs only while a ticket is open: time spent resolved
 * (awaiting the customer) or closed is paused time, added to both due
 * times when the ticket opens again.  First response is the first message
 * of the agent the ticket is assigned to; resolution is the move from
 * open to resolved or closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extern.h"

/* open time so far: since creation, less the pauses (the current one too) */
#define SLA_ELAPSED \
	"GREATEST(0, TIMESTAMPDIFF(SECOND, created_at, NOW()) - sla_paused_s - " \
	"IF(sla_paused_since IS NULL, 0, TIMESTAMPDIFF(SECOND, sla_paused_since, NOW())))"
/* MariaDB assigns left to right, each expression seeing the columns set
 * before it: durations first (with the pause as it stood), then the
 * pause, then the due times from the new pause. */
#define SLA_SET \
	"first_response_s = IF(first_response_at IS NULL AND ? <> 0 AND agent_id = ?, " SLA_ELAPSED \
	", first_response_s), " \
	"first_response_at = IF(first_response_at IS NULL AND ? <> 0 AND agent_id = ?, NOW(), " \
	"first_response_at), " \
	"resolution_s = IF(status <> 'open' AND sla_paused_since IS NULL, " SLA_ELAPSED \
	", resolution_s), " \
	"resolution_at = IF(status <> 'open' AND sla_paused_since IS NULL, NOW(), resolution_at), " \
	"sla_paused_s = sla_paused_s + IF(status = 'open' AND sla_paused_since IS NOT NULL, " \
	"GREATEST(0, TIMESTAMPDIFF(SECOND, sla_paused_since, NOW())), 0), " \
	"sla_paused_since = IF(status = 'open', NULL, IFNULL(sla_paused_since, NOW())), " \
	"first_response_due = IF(first_response_at IS NULL, " \
	"created_at + INTERVAL (NULLIF(?, 0) + sla_paused_s) SECOND, NULL), " \
	"resolution_due = IF(status = 'closed', NULL, " \
	"created_at + INTERVAL (NULLIF(?, 0) + sla_paused_s) SECOND), " \
	"sla_due = IF(status = 'open', LEAST(IFNULL(first_response_due, resolution_due), " \
	"IFNULL(resolution_due, first_response_due)), NULL) "

/* the ticket as it stands before sla_refresh's UPDATE */
static const char Q_BEFORE[] =
    "SELECT priority, status, sla_paused_since IS NULL, first_response_at IS NULL, "
    "IFNULL(agent_id, 0), TO_DAYS(created_at), TO_DAYS(first_response_at), first_response_s, "
    "TO_DAYS(resolution_at), resolution_s FROM tickets WHERE id = ?";
enum { BF_PRIORITY, BF_STATUS, BF_WAS_OPEN, BF_NO_FIRST, BF_AGENT, BF_CREATED, BF_FIRST_DAY,
       BF_FIRST_S, BF_RES_DAY, BF_RES_S, BF__N };
/* and its durations after it */
static const char Q_AFTER[] =
    "SELECT TO_DAYS(first_response_at), first_response_s, TO_DAYS(resolution_at), resolution_s "
    "FROM tickets WHERE id = ?";
enum { DA_FIRST_DAY, DA_FIRST_S, DA_RES_DAY, DA_RES_S, DA__N };
static const char Q_REFRESH[] = "UPDATE tickets SET " SLA_SET "WHERE id = ?";
/* ccr-admin reports-rebuild: every ticket of one priority, a batch of ids */
static const char Q_REFRESH_RANGE[] =
    "UPDATE tickets SET " SLA_SET "WHERE priority = ? AND id > ? AND id <= ?";
static const char Q_MAX_ID[] = "SELECT IFNULL(MAX(id), 0) FROM tickets";

/* the ticket's row as Q_BEFORE reads it, with its priority and status */
static int sla_read(const struct ctx *x, long long ticket_id, struct db_rows *b,
                    enum priority *p, enum ticket_status *st)
{
	if (db_query(x->a, b, Q_BEFORE, BF__N, DB_ARGS(P_INT(ticket_id))) != 1 ||
	    priority_parse(DB_CELL(b, 0, BF_PRIORITY), p) == -1 ||
	    ticket_status_parse(DB_CELL(b, 0, BF_STATUS), st) == -1)
		return -1;
	return 0;
}

/* sla_refresh: ticket_id changed (created, a message, its status or its
 * priority) in the caller's transaction, after the change was written:
 * its pause, durations and due times follow, and the report's summaries
 * of them (report_durations, report_open) with them.  message_author: the
 * author of a message just added (0 for any other change): the ticket's
 * first response when it is the assigned agent and the first.  0 / -1. */
int sla_refresh(const struct ctx *x, long long ticket_id, long long message_author)
{
	struct db_rows b, n;
	enum priority p;
	enum ticket_status st;

	if (sla_read(x, ticket_id, &b, &p, &st) == -1)
		return -1;
	if (db_exec(Q_REFRESH, DB_ARGS(P_INT(message_author), P_INT(message_author),
	        P_INT(message_author), P_INT(message_author), P_INT(x->conf->sla_first_response[p]),
	        P_INT(x->conf->sla_resolution[p]), P_INT(ticket_id))) < 0)
		return -1;
	/* the UPDATE's own conditions: a first response, a move from open */
	int was_open = db_int(&b, 0, BF_WAS_OPEN) != 0;
	int first = db_int(&b, 0, BF_NO_FIRST) && message_author &&
	    db_int(&b, 0, BF_AGENT) == message_author;
	int resolved = st != TS_OPEN && was_open;
	if (was_open != (st == TS_OPEN) &&
	    report_open_add(db_int(&b, 0, BF_CREATED), p, was_open ? -1 : 1) == -1)
		return -1;
	if (!first && !resolved)
		return 0;
	if (db_query(x->a, &n, Q_AFTER, DA__N, DB_ARGS(P_INT(ticket_id))) != 1)
		return -1;
	for (int d = 0; d < DUR__MAX; d++) {
		if (!(d == DUR_FIRST ? first : resolved))
			continue;
		int bc = d == DUR_FIRST ? BF_FIRST_DAY : BF_RES_DAY, nc = d == DUR_FIRST ? DA_FIRST_DAY
		    : DA_RES_DAY;
		struct report_dur_at o = { DB_CELL(&b, 0, bc) != NULL, db_int(&b, 0, bc),
		    db_int(&b, 0, bc + 1) };
		struct report_dur_at to = { DB_CELL(&n, 0, nc) != NULL, db_int(&n, 0, nc),
		    db_int(&n, 0, nc + 1) };
		if (report_dur_move(x->a, (enum report_dur)d, p, o, p, to) == -1)
			return -1;
	}
	return 0;
}

/* sla_priority_moved: ticket_id's priority went from `from` to the one it
 * has now (written by the caller, who then ran sla_refresh): its
 * durations and its open count move to the new priority in the report's
 * summaries.  0 / -1. */
int sla_priority_moved(const struct ctx *x, long long ticket_id, enum priority from)
{
	struct db_rows b;
	enum priority p;
	enum ticket_status st;

	if (sla_read(x, ticket_id, &b, &p, &st) == -1)
		return -1;
	if (p == from)
		return 0;
	if (st == TS_OPEN && (report_open_add(db_int(&b, 0, BF_CREATED), from, -1) == -1 ||
	        report_open_add(db_int(&b, 0, BF_CREATED), p, 1) == -1))
		return -1;
	for (int d = 0; d < DUR__MAX; d++) {
		int c = d == DUR_FIRST ? BF_FIRST_DAY : BF_RES_DAY;
		struct report_dur_at at = { DB_CELL(&b, 0, c) != NULL, db_int(&b, 0, c),
		    db_int(&b, 0, c + 1) };
		if (at.set && report_dur_move(x->a, (enum report_dur)d, from, at, p, at) == -1)
			return -1;
	}
	return 0;
}

/* sla_rebuild: the due times of every ticket from [sla] as configured now
 * (after a change of the targets, or after the upgrade that added them),
 * in batches of 5000 ids, one transaction each.  0 / -1. */
int sla_rebuild(const struct conf *c, struct arena *a)
{
	struct db_rows rows;

	if (db_query(a, &rows, Q_MAX_ID, 1, DB_NOARGS) != 1)
		return -1;
	long long max = db_int(&rows, 0, 0);
	for (long long lo = 0; lo < max; lo += 5000)
		for (int p = 0; p < PRIO__MAX; p++)
			if (db_exec(Q_REFRESH_RANGE, DB_ARGS(P_INT(0), P_INT(0), P_INT(0), P_INT(0),
			        P_INT(c->sla_first_response[p]), P_INT(c->sla_resolution[p]),
			        P_STR(priority_name((enum priority)p)), P_INT(lo), P_INT(lo + 5000))) < 0)
				return -1;
	return 0;
}

/* sla_text: "due in 3 h", "overdue by 2 h" (minutes under an hour, days
 * from two days on, each rounded to the nearest) for due time `due` at `now`, into buf. */
const char *sla_text(char *buf, size_t len, long long due, long long now)
{
	long long d = due - now, m = d < 0 ? -d : d;
	char amount[32];

	/* to the nearest unit: a target of 24 h read a second later is still
	 * "due in 24 h" */
	if (m < 3570)
		snprintf(amount, sizeof(amount), "%lld min", (m + 30) / 60 > 0 ? (m + 30) / 60 : 1);
	else if (m < 2 * 86400)
		snprintf(amount, sizeof(amount), "%lld h", (m + 1800) / 3600);
	else
		snprintf(amount, sizeof(amount), "%lld days", (m + 43200) / 86400);
	snprintf(buf, len, d < 0 ? "overdue by %s" : "due in %s", amount);
	return buf;
}

/* sla_fill: section `name` of d with TEXT, ISO (for <time datetime>) and
 * OVERDUE (a section) for a due time given as UNIX_TIMESTAMP() text;
 * nothing when due is NULL or bad. */
void sla_fill(struct request *r, struct vdict *d, const char *name, const char *due)
{
	char buf[64], iso[40];
	char *end;

	if (due == NULL || *due == '\0')
		return;
	long long t = strtoll(due, &end, 10);
	time_t tt = (time_t)t;
	struct tm tm;
	if (*end || gmtime_r(&tt, &tm) == NULL)
		return;
	strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
	struct vdict *s = vdict_section(d, name);
	long long now = (long long)time(NULL);
	vdict_set(s, "SLA_TEXT", arena_strdup(r->a, sla_text(buf, sizeof(buf), t, now)));
	vdict_set(s, "SLA_ISO", arena_strdup(r->a, iso));
	if (t < now)
		vdict_show(s, "SLA_OVERDUE");
}

/* ---- ccr-admin sla-check ---------------------------------------------- */

static const char Q_BREACHED[] =
    "SELECT t.id, t.subject, t.priority, UNIX_TIMESTAMP(t.sla_due), "
    "IF(t.first_response_due < NOW(), t.first_response_due, NULL), "
    "IF(t.resolution_due < NOW(), t.resolution_due, NULL), "
    "IFNULL(CONCAT(a.first_name, ' ', a.last_name), 'N/A') "
    "FROM tickets t FORCE INDEX (tickets_sla_due) LEFT JOIN users a ON a.id = t.agent_id "
    "WHERE t.sla_due < NOW() AND (t.sla_due > FROM_UNIXTIME(?) OR "
    "(t.sla_due = FROM_UNIXTIME(?) AND t.id > ?)) ORDER BY t.sla_due, t.id LIMIT 200";
enum { BR_ID, BR_SUBJECT, BR_PRIORITY, BR_DUE, BR_FIRST, BR_RESOLUTION, BR_AGENT, BR__N };
static const char Q_BREACH_ADD[] =
    "INSERT IGNORE INTO sla_breaches (ticket_id, target, due_at, mailed_at) VALUES (?, ?, ?, NOW())";
static const char Q_STILL_DUE[] =
    "SELECT id FROM tickets WHERE id = ? AND status = 'open' FOR UPDATE";
static const char Q_ADMINS[] =
    "SELECT id, email FROM users WHERE role = 'admin' AND state = 'active' ORDER BY id";

static const char *const target_names[2] = { "first_response", "resolution" };
static const char *const target_text[2] = { "first response", "resolution" };

/* One breach: recorded, and mailed to every active admin, in one
 * transaction; nothing when it was recorded before.  1 mailed, 0 known
 * already, -1 failed. */
static int breach(struct ctx *x, struct db_rows *rows, size_t i, int target, const char *due)
{
	struct db_rows adm, lk;
	long long id = db_int(rows, i, BR_ID);

	if (db_begin() == -1)
		return -1;
	int n = db_query(x->a, &lk, Q_STILL_DUE, 1, DB_ARGS(P_INT(id)));
	if (n < 0)
		goto fail;
	long long added = n == 0 ? 0 : db_exec(Q_BREACH_ADD, DB_ARGS(P_INT(id),
	    P_STR(target_names[target]), P_STR(due)));
	if (added < 0)
		goto fail;
	if (added == 1) {
		if (db_query(x->a, &adm, Q_ADMINS, 2, DB_NOARGS) < 0)
			goto fail;
		for (size_t k = 0; k < adm.nrows; k++) {
			struct view *v = mail_new(x->conf, "sla_breach");
			if (v == NULL)
				goto fail;
			vdict_set_int(view_body(v), "TICKET", id);
			vdict_set(view_body(v), "SUBJECT", DB_CELL(rows, i, BR_SUBJECT));
			vdict_set(view_body(v), "PRIORITY", DB_CELL(rows, i, BR_PRIORITY));
			vdict_set(view_body(v), "AGENT", DB_CELL(rows, i, BR_AGENT));
			vdict_set(view_body(v), "TARGET", target_text[target]);
			vdict_set(view_body(v), "DUE", arena_printf(x->a, "%s UTC", due));
			if (mail_queue(x, v, "sla_breach", DB_CELL(&adm, k, 1), db_int(&adm, k, 0), id, 0) == -1)
				goto fail;
		}
	}
	if (db_commit() == -1)
		goto fail;
	return added == 1;
fail:
	db_rollback();
	return -1;
}

/* sla_check: every open ticket past a due time (the index range of
 * tickets_sla_due), each breach (ticket, target, due time) mailed to
 * every admin once: the sla_breaches row written with the outbox rows is
 * the durable record.  The number of breaches mailed, or -1. */
int sla_check(const struct conf *c)
{
	struct ctx x = { .a = arena_new(0), .conf = c, .reqid = "sla-check", .addr = "local" };
	struct db_rows rows;
	long long ts = 0, after = 0;
	int mailed = 0;

	for (;;) {
		arena_reset(x.a);
		if (db_query(x.a, &rows, Q_BREACHED, BR__N, DB_ARGS(P_INT(ts), P_INT(ts),
		        P_INT(after))) < 0)
			goto fail;
		for (size_t i = 0; i < rows.nrows; i++)
			for (int target = 0; target < 2; target++) {
				const char *due = DB_CELL(&rows, i, target ? BR_RESOLUTION : BR_FIRST);
				if (due == NULL)
					continue;
				int n = breach(&x, &rows, i, target, due);
				if (n < 0)
					goto fail;
				mailed += n;
			}
		if (rows.nrows < 200)
			break;
		ts = db_int(&rows, rows.nrows - 1, BR_DUE);
		after = db_int(&rows, rows.nrows - 1, BR_ID);
	}
	arena_free(x.a);
	return mailed;
fail:
	arena_free(x.a);
	return -1;
}

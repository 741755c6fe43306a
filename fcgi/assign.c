/*
 * assign.c — who handles a ticket (README "Assignment"): the effects of an
 * assignment, shared by the admin's POST /tickets/{id}/assign and the
 * automatic one; the automatic choice of [tickets] auto_assign (off,
 * round_robin, least_open) made inside the transaction that creates the
 * ticket; an agent's availability (POST /account/availability).
 *
 * Exactly one agent per ticket, on one server or many: every automatic
 * assignment first locks the one row of assign_cursor, so they run one at
 * a time, and then writes it, so two Galera nodes assigning at once
 * conflict at commit (error 1213) and the loser's whole transaction is
 * retried — the route dispatcher retries a request that met 1213, mail-in
 * its delivery.  Everything the choice reads is read with a locking read,
 * which sees the latest committed rows even when the transaction's
 * snapshot is older (mail-in reads before it creates the ticket).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

/* ---- the effects of one assignment ------------------------------------ */

static const char Q_ASSIGN[] =
    "UPDATE tickets SET agent_id = ?, last_activity = NOW() WHERE id = ?";
static const char Q_STAMP[] =
    "INSERT INTO agent_availability (user_id, available, changed_at, last_assigned_at) "
    "VALUES (?, 0, NOW(), NOW(6)) ON DUPLICATE KEY UPDATE last_assigned_at = NOW(6)";

/* assign_record: ticket a->ticket_id now belongs to agent a->agent_id, in
 * the caller's transaction: the ticket row, the agent's last-assigned
 * time, a timeline event, an audit row by x->actor (0: automatic), and
 * the mails to the customer and the agent through the outbox.  0 / -1. */
int assign_record(const struct ctx *x, const struct assignment *a)
{
	const char *how = a->mode == ASSIGN_OFF ? "" : assign_mode_names[a->mode];

	if (db_exec(Q_ASSIGN, DB_ARGS(P_INT(a->agent_id), P_INT(a->ticket_id))) < 0 ||
	    db_exec(Q_STAMP, DB_ARGS(P_INT(a->agent_id))) < 0 ||
	    timeline_add(a->ticket_id, &(struct timeline_entry){ .kind = TLK_ASSIGNED,
	        .actor = x->actor, .agent_id = a->agent_id,
	        .detail = a->mode == ASSIGN_OFF ? NULL : "auto" }) == -1 ||
	    audit_add(x, a->customer_id, "ticket_assigned",
	        arena_printf(x->a, "ticket %lld to agent %lld%s%s", a->ticket_id, a->agent_id,
	            *how ? " by " : "", how)) == -1)
		return -1;
	struct view *mc = mail_new(x->conf, "agent_assigned_customer");
	struct view *ma = mail_new(x->conf, "agent_assigned_agent");
	if (mc) {
		vdict_set(view_body(mc), "AGENT", a->agent_name);
		vdict_set_int(view_body(mc), "TICKET", a->ticket_id);
		vdict_set(view_body(mc), "SUBJECT", a->subject);
	}
	if (ma) {
		vdict_set(view_body(ma), "CUSTOMER", a->customer_name);
		vdict_set_int(view_body(ma), "TICKET", a->ticket_id);
		vdict_set(view_body(ma), "SUBJECT", a->subject);
	}
	if (mail_queue_active(x, mc, "agent_assigned", a->customer_id, a->ticket_id) == -1) {
		view_free(ma);
		return -1;
	}
	return mail_queue_active(x, ma, "ticket_assigned", a->agent_id, a->ticket_id);
}

/* ---- the automatic choice --------------------------------------------- */

static const char Q_CURSOR[] = "SELECT last_agent_id FROM assign_cursor WHERE id = 1 FOR UPDATE";
static const char Q_CURSOR_SET[] =
    "UPDATE assign_cursor SET last_agent_id = ?, assigned = assigned + 1 WHERE id = 1";
/* The candidates, in id order, each row locked: an agent disabled or made
 * unavailable meanwhile waits for this commit (and a disable then
 * unassigns the ticket), or is no longer listed.  Users first, on their
 * role index (STRAIGHT_JOIN, FORCE INDEX): only active agents' rows are
 * locked, never customers', and in the order POST /tickets/{id}/assign
 * locks them (the agent, then their availability row), so the two cannot
 * deadlock each other. */
static const char Q_CANDIDATES[] =
    "SELECT STRAIGHT_JOIN u.id, CONCAT(u.first_name, ' ', u.last_name), "
    "IFNULL(TIMESTAMPDIFF(MICROSECOND, '2000-01-01', q.last_assigned_at), -1) "
    "FROM users u FORCE INDEX (users_role_state) JOIN agent_availability q ON q.user_id = u.id "
    "WHERE u.role = 'agent' AND u.state = 'active' AND q.available = 1 "
    "ORDER BY u.id LIMIT 500 FOR UPDATE";
enum { CA_ID, CA_NAME, CA_LAST, CA__N };   /* CA_LAST: µs since 2000, -1 never */
/* open tickets of one agent, read on the index and share-locked: counts
 * that another transaction changes wait for this one */
static const char Q_OPEN_COUNT[] =
    "SELECT COUNT(*) FROM tickets FORCE INDEX (tickets_agent_status) "
    "WHERE agent_id = ? AND status = 'open' LOCK IN SHARE MODE";

/* pick_round_robin: the first candidate after the cursor's agent in id
 * order, else the first (the wrap-around). */
static size_t pick_round_robin(const struct db_rows *c, long long last)
{
	for (size_t i = 0; i < c->nrows; i++)
		if (db_int(c, i, CA_ID) > last)
			return i;
	return 0;
}

/* pick_least_open: the candidate with the fewest open tickets; a tie goes
 * to who waited longest since their last assignment (never assigned
 * first), then to the lower id.  *i the pick; 0 / -1. */
static int pick_least_open(struct arena *a, const struct db_rows *c, size_t *pick)
{
	long long best_n = 0, best_last = 0;
	struct db_rows n;

	for (size_t i = 0; i < c->nrows; i++) {
		if (db_query(a, &n, Q_OPEN_COUNT, 1, DB_ARGS(P_INT(db_int(c, i, CA_ID)))) != 1)
			return -1;
		long long open = db_int(&n, 0, 0), last = db_int(c, i, CA_LAST);
		/* rows come in id order: a strict "better" keeps the lower id on a full tie */
		if (i == 0 || open < best_n || (open == best_n && last < best_last)) {
			*pick = i;
			best_n = open;
			best_last = last;
		}
	}
	return 0;
}

/* assign_auto: give the ticket described by *a (ticket, customer,
 * subject filled in) to an available active agent as x->conf's
 * auto_assign says, in the caller's transaction, with assign_record's
 * effects.  1 assigned (a->agent_id and a->agent_name set), 0 not (mode
 * off, or nobody available), -1 failed. */
int assign_auto(const struct ctx *x, struct assignment *a)
{
	struct db_rows cur, cand;
	size_t pick = 0;
	enum assign_mode mode = (enum assign_mode)x->conf->auto_assign;

	if (mode == ASSIGN_OFF || (unsigned)mode >= ASSIGN__MAX)
		return 0;
	if (db_query(x->a, &cur, Q_CURSOR, 1, DB_NOARGS) != 1 ||
	    db_query(x->a, &cand, Q_CANDIDATES, CA__N, DB_NOARGS) < 0)
		return -1;
	if (cand.nrows == 0)
		return 0;
	if (mode == ASSIGN_ROUND_ROBIN)
		pick = pick_round_robin(&cand, db_int(&cur, 0, 0));
	else if (pick_least_open(x->a, &cand, &pick) == -1)
		return -1;
	a->agent_id = db_int(&cand, pick, CA_ID);
	a->agent_name = DB_CELL(&cand, pick, CA_NAME);
	a->mode = mode;
	/* the assignment is the system's, not the customer's who raised the ticket */
	struct ctx sys = *x;
	sys.actor = 0;
	if (db_exec(Q_CURSOR_SET, DB_ARGS(P_INT(a->agent_id))) < 0 || assign_record(&sys, a) == -1)
		return -1;
	return 1;
}

/* ---- availability ------------------------------------------------------ */

static const char Q_AVAILABLE[] = "SELECT available FROM agent_availability WHERE user_id = ?";
static const char Q_SET_AVAILABLE[] =
    "INSERT INTO agent_availability (user_id, available, changed_at) VALUES (?, ?, NOW()) "
    "ON DUPLICATE KEY UPDATE available = VALUES(available), changed_at = NOW()";

/* assign_available: 1 when agent uid is available, 0 not (no row: not),
 * -1 failed. */
int assign_available(struct arena *a, long long uid)
{
	struct db_rows rows;
	int n = db_query(a, &rows, Q_AVAILABLE, 1, DB_ARGS(P_INT(uid)));

	if (n <= 0)
		return n;
	return db_int(&rows, 0, 0) != 0;
}

/* POST /account/availability (agents): available = 1 or 0, else 422.
 * 303 to `next` (a same-site path) or /account, flash "You are available
 * for new tickets" / "You are unavailable for new tickets".  Going
 * unavailable keeps the agent's tickets; only new ones pass them by. */
int assign_set_availability(struct request *r)
{
	struct form_value in[AVL__N];
	struct form_errors f = { .n = 0 };

	if (form_read(r, &form_availability, in, &f)) {
		r->message = f.e[0].msg;
		return 422;
	}
	int on = in[AVL_AVAILABLE].i == 1;
	if (db_begin() == -1 ||
	    db_exec(Q_SET_AVAILABLE, DB_ARGS(P_INT(r->user->id), P_INT(on))) < 0 ||
	    audit_add(request_ctx(r), r->user->id, on ? "agent_available" : "agent_unavailable",
	        NULL) == -1 ||
	    db_commit() == -1)
		return db_fail();
	flash_set(r, on ? FLASH_AVAILABLE : FLASH_UNAVAILABLE);
	const char *next = local_path(req_form(r, "next"));
	return resp_redirect(r, next ? next : "/account");
}

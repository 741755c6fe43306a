/*
 * agent.c — the admin's agent pages (SPEC §3): pending requests (approve,
 * reject), active agents with their open-ticket counts and ratings,
 * create an agent (mailed a set-password code), disable an agent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

static const char Q_PENDING[] =
    "SELECT id, CONCAT(first_name, ' ', last_name), email, UNIX_TIMESTAMP(created_at) "
    "FROM users WHERE role = 'agent' AND state = 'pending' ORDER BY id LIMIT 500";
static const char Q_ACTIVE[] =
    "SELECT u.id, CONCAT(u.first_name, ' ', u.last_name), u.email, "
    "(SELECT COUNT(*) FROM tickets t WHERE t.agent_id = u.id AND t.status <> 'closed'), "
    "(SELECT ROUND(AVG(r.score), 1) FROM tickets t JOIN ratings r ON r.ticket_id = t.id "
    " WHERE t.agent_id = u.id), "
    "(SELECT COUNT(*) FROM tickets t JOIN ratings r ON r.ticket_id = t.id WHERE t.agent_id = u.id) "
    "FROM users u WHERE u.role = 'agent' AND u.state = 'active' ORDER BY u.first_name, u.last_name, u.id "
    "LIMIT 500";

static int agents_page(struct request *r, int status, const char *first, const char *last,
                       const char *email, const struct ferrs *f)
{
	struct db_rows pend, act;

	if (db_query(r->a, &pend, Q_PENDING, "") < 0 || db_query(r->a, &act, Q_ACTIVE, "") < 0)
		return db_status();
	struct view *v = page_new(r, "agents.tpl", "Agents");
	if (v == NULL)
		return 500;
	struct vdict *b = view_body(v);
	for (size_t i = 0; i < pend.nrows; i++) {
		struct vdict *p = vdict_section(b, "PENDING");
		vdict_set(p, "ID", DB_CELL(&pend, i, 0));
		vdict_set(p, "NAME", DB_CELL(&pend, i, 1));
		vdict_set(p, "EMAIL", DB_CELL(&pend, i, 2));
		vdict_time(r, p, "REQUESTED", DB_CELL(&pend, i, 3));
	}
	if (pend.nrows == 0)
		vdict_show(b, "NO_PENDING");
	for (size_t i = 0; i < act.nrows; i++) {
		struct vdict *a = vdict_section(b, "AGENT");
		vdict_set(a, "ID", DB_CELL(&act, i, 0));
		vdict_set(a, "NAME", DB_CELL(&act, i, 1));
		vdict_set(a, "EMAIL", DB_CELL(&act, i, 2));
		vdict_set(a, "OPEN_COUNT", DB_CELL(&act, i, 3));
		vdict_set(a, "AVG_RATING", DB_CELL(&act, i, 4) ? DB_CELL(&act, i, 4) : "—");
		vdict_set(a, "RATINGS", DB_CELL(&act, i, 5));
	}
	if (act.nrows == 0)
		vdict_show(b, "NO_AGENTS");
	vdict_set(b, "FIRST_NAME", first);
	vdict_set(b, "LAST_NAME", last);
	vdict_set(b, "EMAIL", email);
	if (f)
		ferr_show(v, f);
	return page_render(r, v, status);
}

int agent_list(struct request *r)
{
	return agents_page(r, 200, "", "", "", NULL);
}

static const char Q_EMAIL_TAKEN[] = "SELECT 1 FROM users WHERE email = ?";

/* POST /admin/agents: an active agent without a password, mailed a code
 * (72 h, single use, 5 tries) to set one at /password/reset. */
int agent_create(struct request *r)
{
	char *first = form_line(r, "first_name"), *last = form_line(r, "last_name");
	char *email = form_email(r, "email");
	const char *email_err = check_email(email);
	struct ferrs f = { .n = 0 };
	struct db_rows rows;

	if (!email_err) {
		int n = db_query(r->a, &rows, Q_EMAIL_TAKEN, "s", email);
		if (n < 0)
			return db_status();
		if (n > 0)
			email_err = "An account with this email already exists";
	}
	ferr_add(&f, "ERR_FIRST_NAME", check_first_name(first));
	ferr_add(&f, "ERR_LAST_NAME", check_last_name(last));
	ferr_add(&f, "ERR_EMAIL", email_err);
	if (f.n)
		return agents_page(r, 422, first, last, email, &f);
	if (db_begin() == -1)
		return db_fail();
	long long uid = user_insert(email, first, last, "agent", "active", NULL);
	if (uid == 0) {
		db_rollback();
		ferr_add(&f, "ERR_EMAIL", "An account with this email already exists");
		return agents_page(r, 422, first, last, email, &f);
	}
	if (uid < 0 || issue_code(r, uid, arena_printf(r->a, "%s %s", first, last), "invite") == -1 ||
	    audit_add(r, uid, "agent_created", email) == -1 || db_commit() == -1)
		return db_fail();
	flash_set(r, FLASH_AGENT_CREATED);
	return resp_redirect(r, "/admin/agents");
}

static const char Q_AGENT_STATE[] =
    "UPDATE users SET state = ?, updated_at = NOW() WHERE id = ? AND role = 'agent' AND state = ?";
static const char Q_AGENT_ROW[] =
    "SELECT CONCAT(first_name, ' ', last_name), email FROM users WHERE id = ? AND role = 'agent'";
static const char Q_UNASSIGN[] =
    "UPDATE tickets SET agent_id = NULL, "
    "last_activity = IF(status = 'closed', last_activity, NOW()) WHERE agent_id = ?";

/* Move agent r->path_id from state `from` to `to` in one statement; 404
 * when no such agent is in `from`.  Runs `then` inside the transaction. */
static int agent_move(struct request *r, const char *from, const char *to, const char *event,
                      int (*then)(struct request *, long long, const char *, const char *),
                      enum flash flash)
{
	struct db_rows rows;
	long long id = r->path_id;

	if (db_begin() == -1)
		return db_fail();
	long long n = db_exec(Q_AGENT_STATE, "sis", to, id, from);
	if (n < 0)
		return db_fail();
	if (n == 0) {
		db_rollback();
		return 404;
	}
	if (db_query(r->a, &rows, Q_AGENT_ROW, "i", id) != 1 ||
	    (then && then(r, id, DB_CELL(&rows, 0, 0), DB_CELL(&rows, 0, 1)) == -1) ||
	    audit_add(r, id, event, DB_CELL(&rows, 0, 1)) == -1 || db_commit() == -1)
		return db_fail();
	flash_set(r, flash);
	return resp_redirect(r, "/admin/agents");
}

static int mail_approved(struct request *r, long long id, const char *name, const char *email)
{
	struct view *v = mail_new(r->conf, "agent_approved");

	if (v)
		vdict_set(view_body(v), "NAME", name);
	return mail_queue(r, v, "agent_approved", email, id, 0, 0);
}

/* Disabled: sessions end now; every ticket of theirs goes back to the
 * unassigned queue — closed and resolved ones too, since either can be
 * reopened, and a reopened ticket must not bring a disabled agent back. */
static int end_agent(struct request *r, long long id, const char *name, const char *email)
{
	(void)r;
	(void)name;
	(void)email;
	if (session_end_all(id) == -1 || db_exec(Q_UNASSIGN, "i", id) < 0)
		return -1;
	return 0;
}

int agent_approve(struct request *r)
{
	return agent_move(r, "pending", "active", "agent_approved", mail_approved, FLASH_AGENT_APPROVED);
}

int agent_reject(struct request *r)
{
	return agent_move(r, "pending", "rejected", "agent_rejected", NULL, FLASH_AGENT_REJECTED);
}

int agent_disable(struct request *r)
{
	return agent_move(r, "active", "disabled", "agent_disabled", end_agent, FLASH_AGENT_DISABLED);
}

static const char Q_DUE_CLOSE[] =
    "SELECT t.id, t.subject, c.email, c.id, CONCAT(c.first_name, ' ', c.last_name) "
    "FROM tickets t JOIN users c ON c.id = t.customer_id "
    "WHERE t.status = 'resolved' AND t.resolved_at < NOW() - INTERVAL ? DAY LIMIT 500";
static const char Q_AUTO_CLOSE[] =
    "UPDATE tickets SET status = 'closed', closed_at = NOW(), last_activity = NOW() "
    "WHERE id = ? AND status = 'resolved' AND resolved_at < NOW() - INTERVAL ? DAY";

/* tickets_auto_close: SPEC §4 — resolved tickets with no customer message
 * for auto_close_days are closed and their customers mailed.  A customer
 * message reopens a ticket, so "resolved since" is the whole test.
 * Returns the number closed, or -1. */
int tickets_auto_close(const struct conf *c)
{
	struct request r;
	struct db_rows rows;
	int closed = 0;

	request_init(&r, arena_new(0), NULL, c);
	snprintf(r.id, sizeof(r.id), "auto-close");
	r.remote_addr = "local";
	do {
		arena_reset(r.a);
		if (db_query(r.a, &rows, Q_DUE_CLOSE, "i", (long long)c->auto_close_days) < 0) {
			arena_free(r.a);
			return -1;
		}
		for (size_t i = 0; i < rows.nrows; i++) {
			long long id = atoll(DB_CELL(&rows, i, 0));
			if (db_begin() == -1)
				goto fail;
			long long n = db_exec(Q_AUTO_CLOSE, "ii", id, (long long)c->auto_close_days);
			if (n < 0)
				goto fail;
			if (n == 1) {
				struct view *v = mail_new(c, "ticket_auto_closed");
				if (v) {
					vdict_set_int(view_body(v), "TICKET", id);
					vdict_set(view_body(v), "SUBJECT", DB_CELL(&rows, i, 1));
					vdict_set(view_body(v), "NAME", DB_CELL(&rows, i, 4));
					vdict_set_int(view_body(v), "DAYS", c->auto_close_days);
				}
				if (mail_queue(&r, v, "ticket_auto_closed", DB_CELL(&rows, i, 2),
				        atoll(DB_CELL(&rows, i, 3)), id, 0) == -1 ||
				    audit_add(&r, atoll(DB_CELL(&rows, i, 3)), "ticket_auto_closed",
				        arena_printf(r.a, "ticket %lld", id)) == -1)
					goto fail;
				closed++;
			}
			if (db_commit() == -1)
				goto fail;
		}
	} while (rows.nrows == 500);
	arena_free(r.a);
	return closed;
fail:
	db_rollback();
	arena_free(r.a);
	return -1;
}

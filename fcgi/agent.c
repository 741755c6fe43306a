/*
 * agent.c — the agent picker of the ticket pages, and the admin's agent
 * pages (/admin/agents): pending requests (approve, reject), active agents
 * with their open-ticket counts, ratings and availability, create an agent (mailed a
 * set-password code), disable an agent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

/* ---- the agent picker of the ticket list and page --------------------- */

static const char Q_AGENT_OPTIONS[] =
    "SELECT id, CONCAT(first_name, ' ', last_name) FROM users "
    "WHERE role = 'agent' AND state = 'active' ORDER BY first_name, last_name, id LIMIT 500";
enum { AO_ID, AO_NAME, AO__N };

/* agent_options_load: the active agents (at most 500), for agent_options_fill. 0 / -1. */
int agent_options_load(struct request *r, struct db_rows *agents)
{
	return db_query(r->a, agents, Q_AGENT_OPTIONS, AO__N, DB_NOARGS) < 0 ? -1 : 0;
}

/* agent_options_fill: AGENT_OPTION rows (an <option> each) into d for the
 * loaded agents; `selected` marks one. */
void agent_options_fill(struct vdict *d, const struct db_rows *agents, long long selected)
{
	for (size_t i = 0; i < agents->nrows; i++) {
		struct vdict *o = vdict_section(d, "AGENT_OPTION");
		vdict_set(o, "AGENT_ID", DB_CELL(agents, i, AO_ID));
		vdict_set(o, "AGENT_NAME", DB_CELL(agents, i, AO_NAME));
		if (db_int(agents, i, AO_ID) == selected)
			vdict_show(o, "SELECTED");
	}
}

/* ---- GET and POST /admin/agents ---------------------------------------- */

static const char Q_PENDING[] =
    "SELECT id, CONCAT(first_name, ' ', last_name), email, UNIX_TIMESTAMP(created_at) "
    "FROM users WHERE role = 'agent' AND state = 'pending' ORDER BY id LIMIT 500";
enum { AP_ID, AP_NAME, AP_EMAIL, AP_CREATED, AP__N };
static const char Q_ACTIVE[] =
    "SELECT u.id, CONCAT(u.first_name, ' ', u.last_name), u.email, "
    "(SELECT COUNT(*) FROM tickets t WHERE t.agent_id = u.id AND t.status <> 'closed'), "
    "(SELECT ROUND(AVG(r.score), 1) FROM tickets t JOIN ratings r ON r.ticket_id = t.id "
    " WHERE t.agent_id = u.id), "
    "(SELECT COUNT(*) FROM tickets t JOIN ratings r ON r.ticket_id = t.id WHERE t.agent_id = u.id), "
    "EXISTS (SELECT 1 FROM totp f WHERE f.user_id = u.id), "
    "IFNULL((SELECT q.available FROM agent_availability q WHERE q.user_id = u.id), 0) "
    "FROM users u WHERE u.role = 'agent' AND u.state = 'active' ORDER BY u.first_name, u.last_name, u.id "
    "LIMIT 500";
enum { AA_ID, AA_NAME, AA_EMAIL, AA_OPEN, AA_AVG, AA_RATINGS, AA_TOTP, AA_AVAILABLE, AA__N };

static int agents_page(struct request *r, int status, const char *first, const char *last,
                       const char *email, const struct form_errors *f)
{
	struct db_rows pend, act;

	if (db_query(r->a, &pend, Q_PENDING, AP__N, DB_NOARGS) < 0 ||
	    db_query(r->a, &act, Q_ACTIVE, AA__N, DB_NOARGS) < 0)
		return db_status();
	struct view *v = page_new(r, "agents.tpl", "Agents");
	if (v == NULL)
		return 500;
	struct vdict *b = view_body(v);
	for (size_t i = 0; i < pend.nrows; i++) {
		struct vdict *p = vdict_section(b, "PENDING");
		vdict_set(p, "ID", DB_CELL(&pend, i, AP_ID));
		vdict_set(p, "NAME", DB_CELL(&pend, i, AP_NAME));
		vdict_set(p, "EMAIL", DB_CELL(&pend, i, AP_EMAIL));
		page_set_time(r, p, "REQUESTED", DB_CELL(&pend, i, AP_CREATED));
	}
	if (pend.nrows == 0)
		vdict_show(b, "NO_PENDING");
	for (size_t i = 0; i < act.nrows; i++) {
		struct vdict *a = vdict_section(b, "AGENT");
		vdict_set(a, "ID", DB_CELL(&act, i, AA_ID));
		vdict_set(a, "NAME", DB_CELL(&act, i, AA_NAME));
		vdict_set(a, "EMAIL", DB_CELL(&act, i, AA_EMAIL));
		if (db_int(&act, i, AA_TOTP))
			vdict_show(a, "HAS_2FA");
		vdict_set(a, "OPEN_COUNT", DB_CELL(&act, i, AA_OPEN));
		vdict_set(a, "AVG_RATING", DB_CELL(&act, i, AA_AVG) ? DB_CELL(&act, i, AA_AVG) : "—");
		vdict_set(a, "RATINGS", DB_CELL(&act, i, AA_RATINGS));
		vdict_show(a, db_int(&act, i, AA_AVAILABLE) ? "AVAILABLE" : "UNAVAILABLE");
	}
	if (act.nrows == 0)
		vdict_show(b, "NO_AGENTS");
	vdict_set(b, "FIRST_NAME", first);
	vdict_set(b, "LAST_NAME", last);
	vdict_set(b, "EMAIL", email);
	if (f)
		form_error_show(v, f);
	return page_render(r, v, status);
}

int agent_list(struct request *r)
{
	return agents_page(r, 200, "", "", "", NULL);
}

/* POST /admin/agents: an active agent without a password, mailed a code
 * (72 h, single use, 5 tries) to set one at /password/reset. */
int agent_create(struct request *r)
{
	struct form_value in[AGC__N];
	struct form_errors f = { .n = 0 };

	form_read(r, &form_agent_create, in, &f);
	const char *first = in[AGC_FIRST].s, *last = in[AGC_LAST].s, *email = in[AGC_EMAIL].s;
	if (in[AGC_EMAIL].ok) {
		int taken = user_email_taken(r->a, email);
		if (taken < 0)
			return db_status();
		if (taken)
			form_error_add(&f, "ERR_EMAIL", "An account with this email already exists");
	}
	if (f.n)
		return agents_page(r, 422, first, last, email, &f);
	if (db_begin() == -1)
		return db_fail();
	long long uid = user_insert(email, first, last, ROLE_AGENT, ACCT_ACTIVE, NULL);
	if (uid == 0) {
		db_rollback();
		form_error_add(&f, "ERR_EMAIL", "An account with this email already exists");
		return agents_page(r, 422, first, last, email, &f);
	}
	if (uid < 0 ||
	    code_issue(request_ctx(r), uid, arena_printf(r->a, "%s %s", first, last), CODE_INVITE) == -1 ||
	    audit_add(request_ctx(r), uid, "agent_created", email) == -1 || db_commit() == -1)
		return db_fail();
	flash_set(r, FLASH_AGENT_CREATED);
	return resp_redirect(r, "/admin/agents");
}

static const char Q_AGENT_STATE[] =
    "UPDATE users SET state = ?, updated_at = NOW() WHERE id = ? AND role = 'agent' AND state = ?";
static const char Q_AGENT_ROW[] =
    "SELECT CONCAT(first_name, ' ', last_name), email FROM users WHERE id = ? AND role = 'agent'";
enum { AR_NAME, AR_EMAIL, AR__N };
static const char Q_UNASSIGN[] =
    "UPDATE tickets SET agent_id = NULL, "
    "last_activity = IF(status = 'closed', last_activity, NOW()) WHERE agent_id = ?";

/* Move agent r->path_id from state `from` to `to` in one statement; 404
 * when no such agent is in `from`.  Runs `then` inside the transaction. */
static int agent_move(struct request *r, enum account_state from, enum account_state to,
                      const char *event,
                      int (*then)(struct request *, long long, const char *, const char *),
                      enum flash flash)
{
	struct db_rows rows;
	long long id = r->path_id;

	if (db_begin() == -1)
		return db_fail();
	long long n = db_exec(Q_AGENT_STATE, DB_ARGS(P_STR(account_state_name(to)), P_INT(id), P_STR(account_state_name(from))));
	if (n < 0)
		return db_fail();
	if (n == 0) {
		db_rollback();
		return 404;
	}
	if (db_query(r->a, &rows, Q_AGENT_ROW, AR__N, DB_ARGS(P_INT(id))) != 1 ||
	    (then && then(r, id, DB_CELL(&rows, 0, AR_NAME), DB_CELL(&rows, 0, AR_EMAIL)) == -1) ||
	    audit_add(request_ctx(r), id, event, DB_CELL(&rows, 0, AR_EMAIL)) == -1 ||
	    db_commit() == -1)
		return db_fail();
	flash_set(r, flash);
	return resp_redirect(r, "/admin/agents");
}

static int mail_approved(struct request *r, long long id, const char *name, const char *email)
{
	struct view *v = mail_new(r->conf, "agent_approved");

	if (v)
		vdict_set(view_body(v), "NAME", name);
	return mail_queue(request_ctx(r), v, "agent_approved", email, id, 0, 0);
}

/* Disabled: sessions end now; every ticket of theirs goes back to the
 * unassigned queue — closed and resolved ones too, since either can be
 * reopened, and a reopened ticket must not bring a disabled agent back. */
static int end_agent(struct request *r, long long id, const char *name, const char *email)
{
	(void)r;
	(void)name;
	(void)email;
	/* their tickets' search documents change agent: queued first, while
	 * agent_id still finds them */
	if (session_end_all(id) == -1 || search_enqueue_agent(id) == -1 ||
	    db_exec(Q_UNASSIGN, DB_ARGS(P_INT(id))) < 0 ||
	    mail_tokens_drop(id, 0) == -1)
		return -1;
	return 0;
}

int agent_approve(struct request *r)
{
	return agent_move(r, ACCT_PENDING, ACCT_ACTIVE, "agent_approved", mail_approved, FLASH_AGENT_APPROVED);
}

int agent_reject(struct request *r)
{
	return agent_move(r, ACCT_PENDING, ACCT_REJECTED, "agent_rejected", NULL, FLASH_AGENT_REJECTED);
}

int agent_disable(struct request *r)
{
	return agent_move(r, ACCT_ACTIVE, ACCT_DISABLED, "agent_disabled", end_agent, FLASH_AGENT_DISABLED);
}

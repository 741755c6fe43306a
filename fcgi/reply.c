/*
 * reply.c — saved replies (README "Saved replies"): texts an agent or an
 * admin keeps to insert into a ticket's reply box.  Personal ones belong
 * to their owner and nobody else sees them (another person's personal
 * reply answers 404 like a missing one); shared ones (shared = 1) are
 * made by admins, used by every agent and admin, and deleted by admins.
 * At most REPLY_MAX_PER_PERSON per owner, counted under a lock on the
 * owner's row so that parallel saves cannot pass the limit.  The
 * placeholders {customer_first_name}, {agent_first_name} and
 * {ticket_number} are filled in when a reply is inserted; the result is
 * text, escaped by the template like any other.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

static const char Q_OPTIONS[] =
    "(SELECT id, title, body, shared FROM saved_replies FORCE INDEX (saved_replies_owner) "
    "WHERE owner_id = ? AND shared = 0) UNION ALL "
    "(SELECT id, title, body, shared FROM saved_replies FORCE INDEX (saved_replies_shared) "
    "WHERE shared = 1) ORDER BY shared DESC, title, id LIMIT 2000";
enum { RO_ID, RO_TITLE, RO_BODY, RO_SHARED, RO__N };
static const char Q_ONE[] = "SELECT owner_id, shared, body FROM saved_replies WHERE id = ?";
enum { R1_OWNER, R1_SHARED, R1_BODY, R1__N };
static const char Q_LOCK_OWNER[] = "SELECT id FROM users WHERE id = ? FOR UPDATE";
static const char Q_COUNT[] = "SELECT COUNT(*) FROM saved_replies WHERE owner_id = ?";
static const char Q_INSERT[] =
    "INSERT INTO saved_replies (owner_id, shared, title, body, created_at) VALUES (?, ?, ?, ?, NOW())";
static const char Q_DELETE[] = "DELETE FROM saved_replies WHERE id = ?";

/* reply_options_load: the replies r's user may use (shared ones first,
 * then their own, each by title).  0 / -1. */
int reply_options_load(struct request *r, struct db_rows *out)
{
	return db_query(r->a, out, Q_OPTIONS, RO__N, DB_ARGS(P_INT(r->user->id))) < 0 ? -1 : 0;
}

/* reply_fill: body with its placeholders filled in (arena memory). */
const char *reply_fill(struct arena *a, const char *body, const char *customer_first,
                       const char *agent_first, long long ticket_id)
{
	static const char *const keys[] = {
		"{customer_first_name}", "{agent_first_name}", "{ticket_number}",
	};
	const char *vals[3] = { customer_first ? customer_first : "", agent_first ? agent_first : "",
	                        arena_printf(a, "%lld", ticket_id) };
	size_t cap = strlen(body) + 1, n = 0;

	for (int k = 0; k < 3; k++)
		for (const char *p = strstr(body, keys[k]); p; p = strstr(p + 1, keys[k]))
			cap += strlen(vals[k]);
	char *out = arena_alloc(a, cap);
	while (*body) {
		int hit = -1;
		for (int k = 0; k < 3 && hit < 0; k++)
			if (strncmp(body, keys[k], strlen(keys[k])) == 0)
				hit = k;
		if (hit < 0) {
			out[n++] = *body++;
			continue;
		}
		size_t vl = strlen(vals[hit]);
		memcpy(out + n, vals[hit], vl);
		n += vl;
		body += strlen(keys[hit]);
	}
	out[n] = '\0';
	return out;
}

/* reply_options_fill: SAVED_REPLY rows of d, each body filled in for the
 * ticket (the page's script inserts it into the reply box). */
void reply_options_fill(struct request *r, struct vdict *d, const struct db_rows *rows,
                        const char *customer_first, long long ticket_id)
{
	for (size_t i = 0; i < rows->nrows; i++) {
		struct vdict *o = vdict_section(d, "SAVED_REPLY");
		vdict_set(o, "REPLY_ID", DB_CELL(rows, i, RO_ID));
		vdict_set(o, "REPLY_TITLE", DB_CELL(rows, i, RO_TITLE));
		vdict_set(o, "REPLY_BODY", reply_fill(r->a, DB_CELL(rows, i, RO_BODY), customer_first,
		    r->user->first_name, ticket_id));
		if (db_int(rows, i, RO_SHARED))
			vdict_show(o, "SHARED");
	}
}

/* reply_find: the body of reply `id` when r's user may use it (their own
 * or a shared one): 1 with *body, 0 when missing or another person's
 * personal reply, -1 on failure. */
int reply_find(struct request *r, long long id, const char **body)
{
	struct db_rows rows;
	int n = db_query(r->a, &rows, Q_ONE, R1__N, DB_ARGS(P_INT(id)));

	if (n <= 0)
		return n;
	if (r->user->role == ROLE_CUSTOMER ||
	    (!db_int(&rows, 0, R1_SHARED) && db_int(&rows, 0, R1_OWNER) != r->user->id))
		return 0;
	*body = DB_CELL(&rows, 0, R1_BODY);
	return 1;
}

/* The /replies page; a refused form shows again with its values (title,
 * body) and errors. */
static int list_page(struct request *r, int status, const char *title, const char *body,
                     const struct form_errors *f, const char *error)
{
	struct db_rows rows, cnt;
	int admin = r->user->role == ROLE_ADMIN;

	if (reply_options_load(r, &rows) == -1 ||
	    db_query(r->a, &cnt, Q_COUNT, 1, DB_ARGS(P_INT(r->user->id))) != 1)
		return db_status();
	struct view *v = page_new(r, "replies.tpl", "Saved replies");
	if (v == NULL)
		return 500;
	struct vdict *b = view_body(v);
	vdict_set(b, "TITLE", title);
	vdict_set(b, "BODY", body);
	vdict_set_int(b, "COUNT", db_int(&cnt, 0, 0));
	vdict_set_int(b, "MAX", REPLY_MAX_PER_PERSON);
	if (admin)
		vdict_show(b, "CAN_SHARE");
	for (size_t i = 0; i < rows.nrows; i++) {
		int shared = db_int(&rows, i, RO_SHARED) != 0;
		struct vdict *o = vdict_section(b, shared ? "SHARED_REPLY" : "OWN_REPLY");
		vdict_set(o, "REPLY_ID", DB_CELL(&rows, i, RO_ID));
		vdict_set(o, "REPLY_TITLE", DB_CELL(&rows, i, RO_TITLE));
		vdict_set(o, "REPLY_BODY", DB_CELL(&rows, i, RO_BODY));
		if (!shared || admin)
			vdict_show(o, "CAN_DELETE");
	}
	int own = 0, shared_n = 0;
	for (size_t i = 0; i < rows.nrows; i++)
		*(db_int(&rows, i, RO_SHARED) ? &shared_n : &own) += 1;
	if (own == 0)
		vdict_show(b, "NO_OWN");
	if (shared_n == 0)
		vdict_show(b, "NO_SHARED");
	if (f)
		form_error_show(v, f);
	if (error)
		vdict_set(vdict_section(b, "FORM_ERROR"), "MSG", error);
	return page_render(r, v, status);
}

/* GET /replies: agents and admins. */
int reply_list(struct request *r)
{
	return list_page(r, 200, "", "", NULL, NULL);
}

/* POST /replies: title 1–100, body 1–10000, shared = 1 (admins only: an
 * agent asking for it is 403).  The 201st reply of one person is 422. */
int reply_create(struct request *r)
{
	struct form_value in[SR__N];
	struct form_errors f = { .n = 0 };
	struct db_rows cnt;

	form_read(r, &form_saved_reply, in, &f);
	const char *title = in[SR_TITLE].s, *body = in[SR_BODY].s;
	int shared = in[SR_SHARED].i == 1;
	if (shared && r->user->role != ROLE_ADMIN) {
		r->message = "Only admins can save shared replies";
		return 403;
	}
	if (f.n)
		return list_page(r, 422, title, body, &f, NULL);
	if (db_begin() == -1 ||
	    db_query(r->a, &cnt, Q_LOCK_OWNER, 1, DB_ARGS(P_INT(r->user->id))) != 1 ||
	    db_query(r->a, &cnt, Q_COUNT, 1, DB_ARGS(P_INT(r->user->id))) != 1)
		return db_fail();
	if (db_int(&cnt, 0, 0) >= REPLY_MAX_PER_PERSON) {
		db_rollback();
		return list_page(r, 422, title, body, NULL, arena_printf(r->a,
		    "You already have %d saved replies, the most one person can keep. "
		    "Delete one to save another.", REPLY_MAX_PER_PERSON));
	}
	if (db_exec(Q_INSERT, DB_ARGS(P_INT(r->user->id), P_INT(shared), P_STR(title),
	        P_STR(body))) < 0 || db_commit() == -1)
		return db_fail();
	flash_set(r, FLASH_REPLY_SAVED);
	return resp_redirect(r, "/replies");
}

/* POST /replies/{id}/delete: a personal reply by its owner (anyone else:
 * 404), a shared one by an admin (an agent: 403). */
int reply_delete(struct request *r)
{
	struct db_rows rows;
	int n = db_query(r->a, &rows, Q_ONE, R1__N, DB_ARGS(P_INT(r->path_id)));

	if (n < 0)
		return db_status();
	if (n == 0)
		return 404;
	int shared = db_int(&rows, 0, R1_SHARED) != 0;
	if (!shared && db_int(&rows, 0, R1_OWNER) != r->user->id)
		return 404;
	if (shared && r->user->role != ROLE_ADMIN) {
		r->message = "Only admins can delete shared replies";
		return 403;
	}
	if (db_exec(Q_DELETE, DB_ARGS(P_INT(r->path_id))) < 0)
		return db_status();
	flash_set(r, FLASH_REPLY_DELETED);
	return resp_redirect(r, "/replies");
}

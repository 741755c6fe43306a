/*
 * api.c — the JSON API under /api/v1 (README "JSON API").  Its routes sit
 * in the one route table with the pages' flags; route.c reads the Bearer
 * token instead of cookies and counts the token's rate.  Every write runs
 * the page's own handler (ticket.c, message.c): the request body's JSON
 * fields become the form fields that handler reads, its refusals come back
 * as JSON errors (api_refuse, called from ticket_page and the new-ticket
 * form), and its 303 is turned here into the resulting ticket or message.
 * So the visibility check, the field rules and messages, the locks, the
 * outbox and the audit rows are the pages' own, not a copy.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

#define API_LIMIT_MAX 100

const char *api_error_code(int status)
{
	switch (status) {
	case 400: return "bad_request";
	case 401: return "unauthorized";
	case 403: return "forbidden";
	case 404: return "not_found";
	case 405: return "method_not_allowed";
	case 409: return "conflict";
	case 413: return "too_large";
	case 415: return "unsupported_media_type";
	case 422: return "invalid";
	case 429: return "rate_limited";
	case 503: return "unavailable";
	default: return "internal";
	}
}

static const char *default_message(int status)
{
	switch (status) {
	case 400: return "The request could not be understood.";
	case 401: return "Send an API token: Authorization: Bearer TOKEN";
	case 403: return "You are not allowed to do that.";
	case 404: return "There is nothing here.";
	case 405: return "That method is not available here.";
	case 413: return "The request body is larger than 64 KiB";
	case 503: return "The service is busy or briefly unavailable. Please try again in a moment.";
	default: return "Something went wrong on our side. Please try again.";
	}
}

/* api_error: {"error": {"code", "message"[, "field"]}} as r's body; a 5xx
 * never says more than the default message.  Returns status. */
int api_error(struct request *r, int status, const char *message, const char *field)
{
	struct json_object *o = json_object_new_object(), *e = json_object_new_object();

	if (message == NULL || status >= 500)
		message = default_message(status);
	json_object_object_add(e, "code", json_object_new_string(api_error_code(status)));
	json_object_object_add(e, "message", json_object_new_string(message));
	if (field)
		json_object_object_add(e, "field", json_object_new_string(field));
	json_object_object_add(o, "error", e);
	return json_respond(r, status, o);
}

/* api_refuse: a shared handler's refusal (status, the page's ERR_<FIELD>
 * section, its message) as a JSON error naming the field. */
int api_refuse(struct request *r, int status, const char *err_key, const char *message)
{
	const char *field = NULL;

	if (err_key && strncmp(err_key, "ERR_", 4) == 0) {
		char *f = arena_strdup(r->a, err_key + 4);
		for (char *p = f; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		field = f;
	}
	return api_error(r, status, message, field);
}

static struct json_object *person(long long id, const char *name)
{
	if (id == 0)
		return NULL;
	struct json_object *p = json_object_new_object();
	json_object_object_add(p, "id", json_object_new_int64(id));
	json_object_object_add(p, "name", json_str(name ? name : ""));
	return p;
}

/* GET /api/v1/me */
int api_me(struct request *r)
{
	struct json_object *o = json_object_new_object();
	const struct user *u = r->user;

	json_object_object_add(o, "id", json_object_new_int64(u->id));
	json_object_object_add(o, "role", json_object_new_string(role_name(u->role)));
	json_object_object_add(o, "email", json_object_new_string(u->email));
	json_object_object_add(o, "first_name", json_object_new_string(u->first_name));
	json_object_object_add(o, "last_name", json_object_new_string(u->last_name));
	json_object_object_add(o, "two_factor", json_object_new_boolean(u->twofa));
	return json_respond(r, 200, o);
}

/* GET /api/v1/tickets: the filters of GET /tickets (status, assigned, q,
 * customer), cursor `after`, limit 1..100 (default [tickets] page_size). */
int api_tickets(struct request *r)
{
	const char *ls = req_query(r, "limit");
	long long limit = r->conf->page_size;
	struct db_rows rows;

	if (ls) {
		char *end;
		limit = strtoll(ls, &end, 10);
		if (*ls < '0' || *ls > '9' || *end || limit < 1 || limit > API_LIMIT_MAX)
			return api_error(r, 422, "limit must be a whole number from 1 to 100", "limit");
	}
	struct ticket_filter tf = { .limit = limit + 1 };
	int n = ticket_list_fetch(r, &tf, &rows);
	if (n < 0)
		return -n;
	struct json_object *o = json_object_new_object(), *list = json_object_new_array();
	size_t shown = (size_t)n > (size_t)limit ? (size_t)limit : (size_t)n;
	for (size_t i = 0; i < shown; i++) {
		struct json_object *t = json_object_new_object();
		json_object_object_add(t, "id", json_object_new_int64(db_int(&rows, i, TL_ID)));
		json_object_object_add(t, "subject", json_str(DB_CELL(&rows, i, TL_SUBJECT)));
		json_object_object_add(t, "status", json_str(DB_CELL(&rows, i, TL_STATUS)));
		json_object_object_add(t, "priority", json_str(DB_CELL(&rows, i, TL_PRIORITY)));
		json_object_object_add(t, "customer", person(db_int(&rows, i, TL_CUSTOMER_ID),
		    DB_CELL(&rows, i, TL_CUSTOMER)));
		json_object_object_add(t, "agent", person(db_int(&rows, i, TL_AGENT_ID),
		    DB_CELL(&rows, i, TL_AGENT)));
		json_object_object_add(t, "created_at", json_time(r->a, DB_CELL(&rows, i, TL_CREATED)));
		json_object_object_add(t, "last_activity_at", json_time(r->a, DB_CELL(&rows, i, TL_ACTIVITY)));
		json_object_array_add(list, t);
	}
	json_object_object_add(o, "tickets", list);
	json_object_object_add(o, "next", tf.search ? (tf.next ? json_object_new_string(tf.next) : NULL)
	    : (size_t)n > shown ? json_object_new_string(arena_printf(r->a, "%s-%s",
	          DB_CELL(&rows, shown - 1, tf.overdue ? TL_DUE : TL_ACTIVITY),
	          DB_CELL(&rows, shown - 1, TL_ID)))
	    : NULL);
	return json_respond(r, 200, o);
}

/* A ticket's messages (or notes) from id `from` on, oldest first. */
static const char Q_MESSAGES[] =
    "SELECT m.id, m.author_id, CONCAT(u.first_name, ' ', u.last_name), u.role, "
    "UNIX_TIMESTAMP(m.created_at), m.body FROM messages m JOIN users u ON u.id = m.author_id "
    "WHERE m.ticket_id = ? AND m.id >= ? ORDER BY m.id LIMIT ?";
static const char Q_NOTES[] =
    "SELECT n.id, n.author_id, CONCAT(u.first_name, ' ', u.last_name), u.role, "
    "UNIX_TIMESTAMP(n.created_at), n.body FROM notes n JOIN users u ON u.id = n.author_id "
    "WHERE n.ticket_id = ? ORDER BY n.id LIMIT 1000";
enum { MS_ID, MS_AUTHOR, MS_NAME, MS_ROLE, MS_CREATED, MS_BODY, MS__N };

/* the files of owner o among at's rows, as an array */
static struct json_object *files_of(struct request *r, const struct db_rows *at, struct attach_owner o)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; at && i < at->nrows; i++) {
		if (db_int(at, i, AT_MESSAGE) != o.message_id || db_int(at, i, AT_NOTE) != o.note_id)
			continue;
		struct json_object *f = json_object_new_object();
		long long id = db_int(at, i, AT_ID);
		json_object_object_add(f, "id", json_object_new_int64(id));
		json_object_object_add(f, "name", json_str(DB_CELL(at, i, AT_NAME)));
		json_object_object_add(f, "content_type", json_str(DB_CELL(at, i, AT_TYPE)));
		json_object_object_add(f, "size", json_object_new_int64(db_int(at, i, AT_SIZE)));
		json_object_object_add(f, "url", json_str(attach_url(r->a, r->conf->base_url, id,
		    DB_CELL(at, i, AT_NAME))));
		json_object_array_add(a, f);
	}
	return a;
}

static struct json_object *entry(struct request *r, const struct db_rows *m, size_t i,
                                 const struct db_rows *at, int note)
{
	struct json_object *e = json_object_new_object();
	long long id = db_int(m, i, MS_ID);

	json_object_object_add(e, "id", json_object_new_int64(id));
	json_object_object_add(e, "author", person(db_int(m, i, MS_AUTHOR), DB_CELL(m, i, MS_NAME)));
	json_object_object_add(e, "author_role", json_str(DB_CELL(m, i, MS_ROLE)));
	json_object_object_add(e, "body", json_str(DB_CELL(m, i, MS_BODY)));
	json_object_object_add(e, "created_at", json_time(r->a, DB_CELL(m, i, MS_CREATED)));
	json_object_object_add(e, "attachments", files_of(r, at, note
	    ? (struct attach_owner){ .note_id = id } : (struct attach_owner){ .message_id = id }));
	return e;
}

/* The ticket t (visible to the viewer) with its messages and, for staff
 * only, its notes: a customer's answer has no "notes" member at all, and
 * the attachment query never returns a note's files to a customer. */
static int ticket_out(struct request *r, const struct ticket *t, int status)
{
	struct db_rows msgs, notes = { 0 }, at;
	int staff = r->user->role != ROLE_CUSTOMER;

	if (db_query(r->a, &msgs, Q_MESSAGES, MS__N, DB_ARGS(P_INT(t->id), P_INT(0), P_INT(1000))) < 0 ||
	    (staff && db_query(r->a, &notes, Q_NOTES, MS__N, DB_ARGS(P_INT(t->id))) < 0) ||
	    attach_thread_load(r, t->id, 1, 1, staff, &at) == -1 ||
	    ticket_seen(r, t->id) == -1)
		return db_status();
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_int64(t->id));
	json_object_object_add(o, "subject", json_str(t->subject));
	json_object_object_add(o, "description", json_str(t->description));
	json_object_object_add(o, "status", json_str(ticket_status_name(t->status)));
	json_object_object_add(o, "priority", json_str(priority_name(t->priority)));
	json_object_object_add(o, "customer", person(t->customer_id, t->customer_name));
	json_object_object_add(o, "agent", person(t->agent_id, t->agent_name));
	json_object_object_add(o, "created_at", json_time(r->a, t->created));
	json_object_object_add(o, "last_activity_at", json_time(r->a, t->activity));
	json_object_object_add(o, "attachments", files_of(r, &at, (struct attach_owner){ 0 }));
	struct json_object *ml = json_object_new_array();
	for (size_t i = 0; i < msgs.nrows; i++)
		json_object_array_add(ml, entry(r, &msgs, i, &at, 0));
	json_object_object_add(o, "messages", ml);
	if (staff) {
		struct json_object *nl = json_object_new_array();
		for (size_t i = 0; i < notes.nrows; i++)
			json_object_array_add(nl, entry(r, &notes, i, &at, 1));
		json_object_object_add(o, "notes", nl);
	}
	return json_respond(r, status, o);
}

/* ticket `id` as it is now, if the viewer may see it (else 404) */
static int ticket_now(struct request *r, long long id, int status)
{
	struct ticket t;
	int n = ticket_read(r->a, id, &t);

	if (n < 0)
		return db_status();
	if (n == 0 || !ticket_visible(r, &t))
		return 404;
	return ticket_out(r, &t, status);
}

/* GET /api/v1/tickets/{id} */
int api_ticket_show(struct request *r)
{
	struct ticket t;
	int s = ticket_get(r, &t);

	return s ? s : ticket_out(r, &t, 200);
}

/* The page handler's 303 (done) becomes the resource; anything else is
 * its refusal, already JSON. */
static int done(struct request *r, int s)
{
	if (s != 303)
		return s;
	r->location = NULL;
	return 0;
}

/* POST /api/v1/tickets: subject, description, priority → 201 the ticket. */
int api_ticket_create(struct request *r)
{
	int s = done(r, ticket_create(r));

	if (s)
		return s;
	r->location = arena_printf(r->a, "/api/v1/tickets/%lld", r->created_id);
	return ticket_now(r, r->created_id, 201);
}

/* POST /api/v1/tickets/{id}/messages: body → 201 the message. */
int api_message_post(struct request *r)
{
	struct db_rows m;
	int s = done(r, message_post(r));

	if (s)
		return s;
	if (db_query(r->a, &m, Q_MESSAGES, MS__N, DB_ARGS(P_INT(r->path_id), P_INT(r->created_id),
	        P_INT(1))) != 1)
		return db_status();
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "message", entry(r, &m, 0, NULL, 0));
	json_object_object_add(o, "ticket_id", json_object_new_int64(r->path_id));
	return json_respond(r, 201, o);
}

/* POST /api/v1/tickets/{id}/assign|resolve|close|reopen → 200 the ticket. */
#define API_MOVE(fn, handler) \
	int fn(struct request *r) \
	{ \
		int s = done(r, handler(r)); \
		return s ? s : ticket_now(r, r->path_id, 200); \
	}
API_MOVE(api_ticket_assign, ticket_assign)
API_MOVE(api_ticket_resolve, ticket_resolve)
API_MOVE(api_ticket_close, ticket_close)
API_MOVE(api_ticket_reopen, ticket_reopen)

#define OPENAPI_MAX (512 * 1024)

/* GET /api/v1/openapi.json: views/openapi.json as it is on disk. */
int api_openapi(struct request *r)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/openapi.json", r->conf->views_dir);
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		log_err("%s: req=%s cannot open %s", __func__, r->id, path);
		return 500;
	}
	char *buf = arena_alloc(r->a, OPENAPI_MAX + 1);
	size_t n = fread(buf, 1, OPENAPI_MAX + 1, f);
	fclose(f);
	if (n == 0 || n > OPENAPI_MAX) {
		log_err("%s: req=%s %s is empty or too large", __func__, r->id, path);
		return 500;
	}
	r->body = buf;
	r->body_len = n;
	r->ctype = "application/json";
	r->cache = "public, max-age=300";
	return 200;
}

/*
 * webhook.c — webhooks (README "Webhooks"): the admin's endpoints page,
 * the address policy, the enqueue that timeline_add calls in the
 * transaction of every change, and the sender process (ccrd-webhooks).
 *
 * An event is one row per subscribed endpoint in webhook_deliveries,
 * holding the JSON body as it is signed and sent and an event id that
 * stays the same across endpoints and attempts (the receiver's
 * idempotency key).  The sender mirrors the mailer: it claims due rows
 * with SELECT … FOR UPDATE SKIP LOCKED and writes its claim (who, lease
 * until when) in the same transaction, so on Galera a second claimer
 * fails with 1213 and retries; the claim is renewed before each POST, so
 * one event is in flight to one endpoint at most once across hosts.  A
 * sender killed mid-delivery leaves its claim to run out; the event is
 * then sent again with the same id.
 *
 * Endpoints are https:// (http:// with [webhooks] allow_http) and never
 * loopback, link-local, private or otherwise non-public addresses unless
 * [webhooks] allow lists them.  The rule is checked when an endpoint is
 * registered (every address its name resolves to) and again on the
 * address libcurl is about to connect to (CURLOPT_OPENSOCKETFUNCTION), so
 * a name that resolves differently later (DNS rebinding) gains nothing.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

/* ---- events ------------------------------------------------------------ */

const char *const webhook_event_names[WH__MAX] = {
	[WH_TICKET_CREATED] = "ticket.created", [WH_TICKET_ASSIGNED] = "ticket.assigned",
	[WH_MESSAGE_CREATED] = "message.created", [WH_TICKET_RESOLVED] = "ticket.resolved",
	[WH_TICKET_CLOSED] = "ticket.closed", [WH_TICKET_RATED] = "ticket.rated",
};

/* The event a timeline entry is, or WH__MAX for none (notes never are). */
static enum webhook_event event_of(enum timeline_kind k)
{
	switch (k) {
	case TLK_CREATED: return WH_TICKET_CREATED;
	case TLK_ASSIGNED: return WH_TICKET_ASSIGNED;
	case TLK_MESSAGE: return WH_MESSAGE_CREATED;
	case TLK_RESOLVED: return WH_TICKET_RESOLVED;
	case TLK_CLOSED: case TLK_AUTO_CLOSED: return WH_TICKET_CLOSED;
	case TLK_RATED: return WH_TICKET_RATED;
	default: return WH__MAX;
	}
}

#define WEBHOOK_URL_MAX 2000

/* webhook_url_check: the rule for an endpoint's URL.  NULL when it is
 * good, else the message for the admin. */
const char *webhook_url_check(const struct conf *c, struct arena *a, const char *url)
{
	CURLU *u;
	char *scheme = NULL, *host = NULL, *user = NULL, *pw = NULL;
	const char *why = NULL;

	if (url[0] == '\0')
		return "Enter the endpoint's URL";
	if (strlen(url) > WEBHOOK_URL_MAX)
		return "The URL must be at most 2000 characters";
	if (!header_safe(url) || strchr(url, ' '))
		return "The URL is not valid";
	u = curl_url();
	if (u == NULL)
		return "The URL cannot be checked right now";
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
		why = "The URL is not valid";
		goto out;
	}
	if (strcmp(scheme, "https") != 0 && !(c->webhooks_allow_http && strcmp(scheme, "http") == 0)) {
		why = c->webhooks_allow_http ? "The URL must start with https:// or http://"
		    : "The URL must start with https://";
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PASSWORD, &pw, 0) == CURLUE_OK) {
		why = "The URL must not carry a user name or password";
		goto out;
	}
	/* an IPv6 literal comes back in brackets */
	size_t hl = strlen(host);
	const char *name = host;
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']')
		name = arena_strndup(a, host + 1, hl - 2);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *p;
	if (getaddrinfo(name, NULL, &hints, &res) != 0 || res == NULL) {
		why = "The URL's host name does not resolve";
		goto out;
	}
	for (p = res; p && !why; p = p->ai_next) {
		const void *ad = p->ai_family == AF_INET
		    ? (const void *)&((const struct sockaddr_in *)(const void *)p->ai_addr)->sin_addr
		    : p->ai_family == AF_INET6
		    ? (const void *)&((const struct sockaddr_in6 *)(const void *)p->ai_addr)->sin6_addr
		    : NULL;
		if (ad && !webhook_addr_allowed(c, p->ai_family, ad))
			why = "Webhooks cannot go to loopback, link-local or private addresses "
			    "(unless [webhooks] allow lists them)";
	}
	freeaddrinfo(res);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(pw);
	curl_url_cleanup(u);
	return why;
}

/* ---- the secret ------------------------------------------------------------ */

#define SECRET_HEX 64                  /* 256 random bits, shown once */
#define SEALED_MAX (SECRET_HEX + CRYPTO_SEAL_OVERHEAD)

/* key_of: the sealing key, SHA-256 of a label and [security] secret_key. */
static int key_of(const struct conf *c, unsigned char key[32])
{
	char buf[sizeof(c->secret_key) + 32];
	int n = snprintf(buf, sizeof(buf), "ccr webhook secret v1\n%s", c->secret_key);
	int rc = crypto_sha256(buf, (size_t)n, key);

	memset(buf, 0, sizeof(buf));
	return rc;
}

/* secret_open: the secret of endpoint id from its sealed bytes into
 * out[SECRET_HEX + 1].  0 / -1 (another secret_key). */
static int secret_open(const struct conf *c, long long id, const unsigned char *sealed, size_t n,
                       char out[SECRET_HEX + 1])
{
	unsigned char key[32];
	char aad[40];
	size_t len = 0;
	int rc;

	snprintf(aad, sizeof(aad), "webhook:%lld", id);
	if (key_of(c, key) == -1)
		return -1;
	rc = crypto_open(key, aad, strlen(aad), sealed, n, (unsigned char *)out, SECRET_HEX, &len);
	memset(key, 0, sizeof(key));
	if (rc == -1 || len != SECRET_HEX)
		return -1;
	out[SECRET_HEX] = '\0';
	return 0;
}

/* ---- the enqueue ----------------------------------------------------------- */

static const char Q_SUBSCRIBED[] = "SELECT COUNT(*) FROM webhooks WHERE FIND_IN_SET(?, events)";
static const char Q_TICKET[] =
    "SELECT t.id, t.subject, t.status, t.priority, UNIX_TIMESTAMP(t.created_at), "
    "t.customer_id, CONCAT(c.first_name, ' ', c.last_name), IFNULL(t.agent_id, 0), "
    "CONCAT(g.first_name, ' ', g.last_name), UNIX_TIMESTAMP() "
    "FROM tickets t JOIN users c ON c.id = t.customer_id LEFT JOIN users g ON g.id = t.agent_id "
    "WHERE t.id = ?";
enum { WT_ID, WT_SUBJECT, WT_STATUS, WT_PRIORITY, WT_CREATED, WT_CUST, WT_CUST_NAME, WT_AGENT,
       WT_AGENT_NAME, WT_NOW, WT__N };
static const char Q_MESSAGE[] =
    "SELECT m.id, m.body, u.role, m.author_id, CONCAT(u.first_name, ' ', u.last_name), "
    "UNIX_TIMESTAMP(m.created_at) FROM messages m "
    "JOIN users u ON u.id = m.author_id WHERE m.id = ? AND m.ticket_id = ?";
enum { WM_ID, WM_BODY, WM_ROLE, WM_AUTHOR, WM_NAME, WM_CREATED, WM__N };
static const char Q_RATING[] = "SELECT score, comment FROM ratings WHERE ticket_id = ?";
enum { WR_SCORE, WR_COMMENT, WR__N };
static const char Q_ENQUEUE[] =
    "INSERT INTO webhook_deliveries (webhook_id, event_id, event, ticket_id, body, "
    "next_attempt_at, created_at) SELECT id, ?, ?, ?, ?, NOW(), NOW() FROM webhooks "
    "WHERE FIND_IN_SET(?, events)";

static struct json_object *person(const char *id, const char *name)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_int64(strtoll(id, NULL, 10)));
	json_object_object_add(o, "name", json_object_new_string(name ? name : ""));
	return o;
}

/* build_body: the JSON of event ev on ticket_id (read back inside the
 * transaction, so it is the ticket as the change left it), arena memory;
 * NULL when the ticket is gone or the database failed. */
static char *build_body(struct arena *a, enum webhook_event ev, long long ticket_id,
                        const struct timeline_entry *e, const char *event_id)
{
	struct db_rows t, m, rt;
	char *out = NULL;

	if (db_query(a, &t, Q_TICKET, WT__N, DB_ARGS(P_INT(ticket_id))) != 1)
		return NULL;
	struct json_object *root = json_object_new_object(), *tk = json_object_new_object();
	json_object_object_add(root, "id", json_object_new_string(event_id));
	json_object_object_add(root, "event", json_object_new_string(webhook_event_names[ev]));
	json_object_object_add(root, "created_at", json_time(a, DB_CELL(&t, 0, WT_NOW)));
	json_object_object_add(tk, "id", json_object_new_int64(db_int(&t, 0, WT_ID)));
	json_object_object_add(tk, "subject", json_object_new_string(DB_CELL(&t, 0, WT_SUBJECT)));
	json_object_object_add(tk, "status", json_object_new_string(DB_CELL(&t, 0, WT_STATUS)));
	json_object_object_add(tk, "priority", json_object_new_string(DB_CELL(&t, 0, WT_PRIORITY)));
	json_object_object_add(tk, "created_at", json_time(a, DB_CELL(&t, 0, WT_CREATED)));
	json_object_object_add(tk, "customer", person(DB_CELL(&t, 0, WT_CUST), DB_CELL(&t, 0, WT_CUST_NAME)));
	json_object_object_add(tk, "agent", db_int(&t, 0, WT_AGENT)
	    ? person(DB_CELL(&t, 0, WT_AGENT), DB_CELL(&t, 0, WT_AGENT_NAME)) : NULL);
	json_object_object_add(root, "ticket", tk);
	if (ev == WH_MESSAGE_CREATED) {
		if (db_query(a, &m, Q_MESSAGE, WM__N, DB_ARGS(P_INT(e->message_id), P_INT(ticket_id))) != 1)
			goto out;
		struct json_object *mo = json_object_new_object();
		json_object_object_add(mo, "id", json_object_new_int64(db_int(&m, 0, WM_ID)));
		json_object_object_add(mo, "body", json_object_new_string(DB_CELL(&m, 0, WM_BODY)));
		json_object_object_add(mo, "created_at", json_time(a, DB_CELL(&m, 0, WM_CREATED)));
		struct json_object *au = person(DB_CELL(&m, 0, WM_AUTHOR), DB_CELL(&m, 0, WM_NAME));
		json_object_object_add(au, "role", json_object_new_string(DB_CELL(&m, 0, WM_ROLE)));
		json_object_object_add(mo, "author", au);
		json_object_object_add(root, "message", mo);
	} else if (ev == WH_TICKET_RATED) {
		if (db_query(a, &rt, Q_RATING, WR__N, DB_ARGS(P_INT(ticket_id))) != 1)
			goto out;
		struct json_object *ro = json_object_new_object();
		json_object_object_add(ro, "score", json_object_new_int64(db_int(&rt, 0, WR_SCORE)));
		json_object_object_add(ro, "comment", json_object_new_string(DB_CELL(&rt, 0, WR_COMMENT)));
		json_object_object_add(root, "rating", ro);
	}
	out = arena_strdup(a, json_object_to_json_string_ext(root,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
out:
	json_object_put(root);
	return out;
}

static struct arena *enqueue_arena;   /* the process's, created at first use, reset per event */

/* webhook_enqueue: one delivery row per endpoint subscribed to the event
 * timeline entry e on ticket_id is, in the caller's transaction.  0 (also
 * when no endpoint wants it, or the entry is no event) / -1. */
int webhook_enqueue(long long ticket_id, const struct timeline_entry *e)
{
	enum webhook_event ev = event_of(e->kind);
	struct db_rows rows;
	char event_id[33];
	int rc = -1;

	if (ev == WH__MAX)
		return 0;
	if (enqueue_arena == NULL)
		enqueue_arena = arena_new(0);
	struct arena *a = enqueue_arena;
	const char *name = webhook_event_names[ev];
	if (db_query(a, &rows, Q_SUBSCRIBED, 1, DB_ARGS(P_STR(name))) != 1)
		goto out;
	if (db_int(&rows, 0, 0) == 0) {
		rc = 0;
		goto out;
	}
	if (crypto_random_hex(event_id, 16) == -1)
		goto out;
	char *body = build_body(a, ev, ticket_id, e, event_id);
	if (body == NULL) {
		log_err("%s: ticket %lld: the %s event could not be built", __func__, ticket_id, name);
		goto out;
	}
	if (db_exec(Q_ENQUEUE, DB_ARGS(P_STR(event_id), P_STR(name), P_INT(ticket_id), P_STR(body),
	        P_STR(name))) >= 0)
		rc = 0;
out:
	arena_reset(a);
	return rc;
}

/* ---- the admin's page ------------------------------------------------------ */

#define WEBHOOK_MAX 20       /* endpoints */
#define LOG_ROWS 20          /* deliveries shown per endpoint */

static const char Q_LIST[] =
    "SELECT id, url, events, UNIX_TIMESTAMP(created_at) FROM webhooks ORDER BY id LIMIT 20";
enum { WL_ID, WL_URL, WL_EVENTS, WL_CREATED, WL__N };
static const char Q_LOG[] =
    "SELECT event, ticket_id, status, attempts, IFNULL(last_status, 0), IFNULL(last_error, ''), "
    "UNIX_TIMESTAMP(IFNULL(sent_at, created_at)), UNIX_TIMESTAMP(next_attempt_at), event_id "
    "FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT 20";
enum { DL_EVENT, DL_TICKET, DL_STATUS, DL_ATTEMPTS, DL_HTTP, DL_ERROR, DL_TIME, DL_NEXT, DL_EVENT_ID,
       DL__N };
static const char Q_COUNT[] = "SELECT COUNT(*) FROM webhooks";
static const char Q_ADD[] =
    "INSERT INTO webhooks (url, events, secret_enc, created_by, created_at) VALUES (?, ?, '', ?, NOW())";
static const char Q_SET_SECRET[] = "UPDATE webhooks SET secret_enc = ? WHERE id = ?";
static const char Q_DELETE[] = "DELETE FROM webhooks WHERE id = ?";

struct shown {
	const char *url;
	unsigned events;             /* bit per enum webhook_event ticked */
	const char *secret;          /* just created: shown once */
	const char *secret_url;
};

static int webhooks_page(struct request *r, int status, const struct shown *s,
                         const struct form_errors *f)
{
	struct db_rows hooks, log;

	if (db_query(r->a, &hooks, Q_LIST, WL__N, DB_NOARGS) < 0)
		return db_status();
	struct view *v = page_new(r, "admin_webhooks.tpl", "Webhooks");
	if (v == NULL)
		return 500;
	struct vdict *b = view_body(v);
	if (hooks.nrows == 0)
		vdict_show(b, "NO_HOOKS");
	for (size_t i = 0; i < hooks.nrows; i++) {
		struct vdict *h = vdict_section(b, "HOOK");
		vdict_set(h, "ID", DB_CELL(&hooks, i, WL_ID));
		vdict_set(h, "URL", DB_CELL(&hooks, i, WL_URL));
		char *ev = arena_strdup(r->a, DB_CELL(&hooks, i, WL_EVENTS)), *tok, *save = NULL;
		const char *list = "";
		for (tok = strtok_r(ev, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
			list = arena_printf(r->a, "%s%s%s", list, *list ? ", " : "", tok);
		vdict_set(h, "EVENTS", list);
		page_set_time(r, h, "CREATED", DB_CELL(&hooks, i, WL_CREATED));
		if (db_query(r->a, &log, Q_LOG, DL__N, DB_ARGS(P_INT(db_int(&hooks, i, WL_ID)))) < 0)
			return db_status();
		if (log.nrows == 0)
			vdict_show(h, "NO_DELIVERIES");
		else
			vdict_show(h, "HAS_DELIVERIES");
		for (size_t j = 0; j < log.nrows; j++) {
			struct vdict *d = vdict_section(h, "DELIVERY");
			const char *st = DB_CELL(&log, j, DL_STATUS);
			vdict_set(d, "EVENT", DB_CELL(&log, j, DL_EVENT));
			vdict_set(d, "EVENT_ID", DB_CELL(&log, j, DL_EVENT_ID));
			vdict_set(d, "TICKET", DB_CELL(&log, j, DL_TICKET));
			vdict_set(d, "STATUS", st);
			vdict_set(d, "ATTEMPTS", DB_CELL(&log, j, DL_ATTEMPTS));
			long long http = db_int(&log, j, DL_HTTP);
			const char *err = DB_CELL(&log, j, DL_ERROR);
			vdict_set(d, "RESULT", http ? arena_printf(r->a, "HTTP %lld%s%s", http, *err ? ": " : "", err)
			    : *err ? err : "—");
			page_set_time(r, d, "TIME", DB_CELL(&log, j, DL_TIME));
			if (strcmp(st, "pending") == 0)
				page_set_time(r, vdict_section(d, "NEXT"), "NEXT", DB_CELL(&log, j, DL_NEXT));
		}
	}
	vdict_set(b, "URL", s ? s->url : "");
	for (int e = 0; e < WH__MAX; e++) {
		struct vdict *ev = vdict_section(b, "EVENT_CHOICE");
		vdict_set(ev, "NAME", webhook_event_names[e]);
		vdict_set_int(ev, "N", e);
		if (s == NULL || s->events & (1u << e))
			vdict_show(ev, "CHECKED");
	}
	if (r->conf->webhooks_allow_http)
		vdict_show(b, "ALLOW_HTTP");
	if (s && s->secret) {
		struct vdict *sec = vdict_section(b, "SECRET");
		vdict_set(sec, "SECRET", s->secret);
		vdict_set(sec, "SECRET_URL", s->secret_url);
	}
	if (f)
		form_error_show(v, f);
	return page_render(r, v, status);
}

/* GET /admin/webhooks */
int webhook_list(struct request *r)
{
	return webhooks_page(r, 200, NULL, NULL);
}

/* POST /admin/webhooks: url, events (any of webhook_event_names, at least
 * one).  Renders the page with the new secret, the only time it is shown. */
int webhook_create(struct request *r)
{
	struct form_errors f = { .n = 0 };
	struct shown s = { .url = "", .events = 0 };
	const char *url = req_form(r, "url");
	char *u = arena_strdup(r->a, url ? url : "");
	struct db_rows rows;

	s.url = u = str_trim(u);
	for (size_t i = 0; i < r->form.n; i++) {
		if (strcmp(r->form.v[i].key, "events") != 0)
			continue;
		int k = str_lookup(webhook_event_names, WH__MAX, r->form.v[i].val);
		if (k < 0) {
			form_error_add(&f, "ERR_EVENTS", "Choose events from the list");
			return webhooks_page(r, 422, &s, &f);
		}
		s.events |= 1u << k;
	}
	const char *why = webhook_url_check(r->conf, r->a, u);
	if (why)
		form_error_add(&f, "ERR_URL", why);
	if (s.events == 0)
		form_error_add(&f, "ERR_EVENTS", "Choose at least one event");
	if (f.n == 0 && r->conf->secret_key[0] == '\0')
		form_error_add(&f, "ERR_URL", "Webhooks need the server's [security] secret_key, "
		    "which is not set. Please set it first.");
	if (f.n == 0) {
		if (db_query(r->a, &rows, Q_COUNT, 1, DB_NOARGS) != 1)
			return db_status();
		if (db_int(&rows, 0, 0) >= WEBHOOK_MAX)
			form_error_add(&f, "ERR_URL", "There are 20 endpoints already; delete one first");
	}
	if (f.n)
		return webhooks_page(r, 422, &s, &f);

	char events[200] = "", secret[SECRET_HEX + 1];
	for (int e = 0; e < WH__MAX; e++)
		if (s.events & (1u << e))
			snprintf(events + strlen(events), sizeof(events) - strlen(events), "%s%s",
			    events[0] ? "," : "", webhook_event_names[e]);
	unsigned char key[32], sealed[SEALED_MAX];
	size_t n = 0;
	if (crypto_random_hex(secret, SECRET_HEX / 2) == -1 || key_of(r->conf, key) == -1)
		return 500;
	if (db_begin() == -1 || db_exec(Q_ADD, DB_ARGS(P_STR(u), P_STR(events), P_INT(r->user->id))) < 0)
		return db_fail();
	long long id = db_insert_id();
	char aad[40];
	snprintf(aad, sizeof(aad), "webhook:%lld", id);
	int rc = crypto_seal(key, aad, strlen(aad), secret, SECRET_HEX, sealed, sizeof(sealed), &n);
	memset(key, 0, sizeof(key));
	if (rc == -1) {
		db_rollback();
		return 500;
	}
	if (db_exec(Q_SET_SECRET, DB_ARGS(P_BLOB(sealed, n), P_INT(id))) < 0 ||
	    audit_add(request_ctx(r), r->user->id, "webhook_created", u) == -1 || db_commit() == -1)
		return db_fail();
	struct shown fresh = { .url = "", .events = ~0u, .secret = arena_strdup(r->a, secret),
	    .secret_url = u };
	memset(secret, 0, sizeof(secret));
	return webhooks_page(r, 200, &fresh, NULL);
}

/* POST /admin/webhooks/{id}/delete: the endpoint and its queue (nothing
 * more is sent to it).  303, or 404 when there is no such endpoint. */
int webhook_delete(struct request *r)
{
	if (db_begin() == -1)
		return db_fail();
	long long n = db_exec(Q_DELETE, DB_ARGS(P_INT(r->path_id)));
	if (n < 0)
		return db_fail();
	if (n == 0) {
		db_rollback();
		return 404;
	}
	if (audit_add(request_ctx(r), r->user->id, "webhook_deleted",
	        arena_printf(r->a, "%lld", r->path_id)) == -1 || db_commit() == -1)
		return db_fail();
	flash_set(r, FLASH_WEBHOOK_DELETED);
	return resp_redirect(r, "/admin/webhooks");
}

/* ---- the sender process ---------------------------------------------------- */

#define BATCH 10
#define IDLE_WAIT_MS 1000

static char me[160];             /* claimed_by: host:pid */
static int lease_s;              /* a claim's life: two timeouts and a minute */

/* due rows nobody holds, and rows this sender still holds (claim_due says why) */
static const char Q_DUE[] =
    "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= NOW() "
    "AND (lease_until IS NULL OR lease_until < NOW() OR claimed_by = ?) "
    "ORDER BY next_attempt_at, id LIMIT 10 FOR UPDATE SKIP LOCKED";
static const char Q_CLAIM[] =
    "UPDATE webhook_deliveries SET claimed_by = ?, lease_until = NOW() + INTERVAL ? SECOND "
    "WHERE id = ?";
static const char Q_RENEW[] =
    "UPDATE webhook_deliveries SET lease_until = NOW() + INTERVAL ? SECOND "
    "WHERE id = ? AND claimed_by = ? AND status = 'pending'";
static const char Q_RELEASE[] =
    "UPDATE webhook_deliveries SET claimed_by = NULL, lease_until = NULL "
    "WHERE id = ? AND claimed_by = ? AND status = 'pending'";
static const char Q_ROW[] =
    "SELECT d.body, d.event_id, d.event, d.attempts, UNIX_TIMESTAMP(d.created_at), w.id, w.url, "
    "w.secret_enc FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
    "WHERE d.id = ? AND d.claimed_by = ? AND d.status = 'pending'";
enum { WS_BODY, WS_EVENT_ID, WS_EVENT, WS_ATTEMPTS, WS_CREATED, WS_HOOK, WS_URL, WS_SECRET, WS__N };
static const char Q_SENT[] =
    "UPDATE webhook_deliveries SET status = 'sent', sent_at = NOW(), attempts = attempts + 1, "
    "last_status = ?, last_error = NULL, lease_until = NULL WHERE id = ? AND claimed_by = ?";
static const char Q_RETRY[] =
    "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = NULLIF(?, 0), "
    "last_error = ?, lease_until = NULL, claimed_by = NULL, "
    "next_attempt_at = NOW() + INTERVAL ? SECOND WHERE id = ? AND claimed_by = ?";
static const char Q_FAILED[] =
    "UPDATE webhook_deliveries SET status = 'failed', attempts = attempts + 1, "
    "last_status = NULLIF(?, 0), last_error = ?, lease_until = NULL WHERE id = ? AND claimed_by = ?";

/* claim: up to BATCH due rows; their ids in ids[].  Count, or -1. */
static int claim(struct arena *a, long long ids[BATCH])
{
	return claim_due(a, Q_DUE, Q_CLAIM, me, lease_s, ids, BATCH);
}

struct sock_check {
	const struct conf *c;
	char refused[INET6_ADDRSTRLEN + 1];   /* the address refused, "" none */
};

/* The address libcurl is about to connect to, checked against the policy
 * after every resolution: no socket for a refused one. */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *sa)
{
	struct sock_check *k = arg;
	const void *ad = NULL;

	if (purpose != CURLSOCKTYPE_IPCXN)
		return CURL_SOCKET_BAD;
	if (sa->family == AF_INET)
		ad = &((const struct sockaddr_in *)(const void *)&sa->addr)->sin_addr;
	else if (sa->family == AF_INET6)
		ad = &((const struct sockaddr_in6 *)(const void *)&sa->addr)->sin6_addr;
	if (ad == NULL || !webhook_addr_allowed(k->c, sa->family, ad)) {
		if (ad == NULL || !inet_ntop(sa->family, ad, k->refused, sizeof(k->refused)))
			snprintf(k->refused, sizeof(k->refused), "?");
		return CURL_SOCKET_BAD;
	}
	return socket(sa->family, sa->socktype, sa->protocol);
}

/* The answer's body is not wanted: read and drop it. */
static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* post: one delivery.  Returns the HTTP status (0 when none came back);
 * why holds a short reason when it is not 2xx. */
static int post(const struct conf *c, const char *url, const char *body, const char *event,
                const char *event_id, const char *secret, char *why, size_t whylen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1], hdr[3][200];
	struct sock_check k = { c, "" };
	struct curl_slist *h = NULL;
	long code = 0;

	why[0] = '\0';
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, strlen(body),
	    mac, &maclen) == NULL) {
		snprintf(why, whylen, "HMAC failed");
		return 0;
	}
	for (unsigned i = 0; i < maclen; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	CURL *cu = curl_easy_init();
	if (cu == NULL) {
		snprintf(why, whylen, "out of memory");
		return 0;
	}
	snprintf(hdr[0], sizeof(hdr[0]), "X-CCR-Signature: sha256=%s", hex);
	snprintf(hdr[1], sizeof(hdr[1]), "X-CCR-Event: %s", event);
	snprintf(hdr[2], sizeof(hdr[2]), "X-CCR-Event-Id: %s", event_id);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	for (int i = 0; i < 3; i++)
		h = curl_slist_append(h, hdr[i]);
	const char *protos = c->webhooks_allow_http ? "https,http" : "https";
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, protos);
	curl_easy_setopt(cu, CURLOPT_REDIR_PROTOCOLS_STR, protos);
	curl_easy_setopt(cu, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(cu, CURLOPT_PROXY, "");       /* never a proxy from the environment */
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT, (long)c->webhooks_timeout);
	curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT, (long)c->webhooks_timeout);
	curl_easy_setopt(cu, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(cu, CURLOPT_OPENSOCKETDATA, &k);
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(cu, CURLOPT_USERAGENT, "ccr-webhooks/" CCR_VERSION);
	curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, discard);
	CURLcode rc = curl_easy_perform(cu);
	if (rc == CURLE_OK)
		curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &code);
	if (k.refused[0])
		snprintf(why, whylen, "refused: %s is a loopback, link-local or private address", k.refused);
	else if (rc != CURLE_OK)
		snprintf(why, whylen, "%s", curl_easy_strerror(rc));
	curl_slist_free_all(h);
	curl_easy_cleanup(cu);
	memset(hex, 0, sizeof(hex));
	return (int)code;
}

enum mark { M_SENT, M_FAILED, M_RETRY };

/* mark: record the outcome of a delivery.  One the receiver took must not
 * stay leased and be sent again when the lease runs out, so a database
 * error is retried with back-off (0.2 s doubling, about 6 s in all). */
static void mark(enum mark m, long long id, int http, const char *why, long delay)
{
	long ms = 200;

	for (int attempt = 0; attempt < 6; attempt++) {
		long long rc;

		db_request_start();
		if (m == M_SENT)
			rc = db_exec(Q_SENT, DB_ARGS(P_INT(http), P_INT(id), P_STR(me)));
		else if (m == M_FAILED)
			rc = db_exec(Q_FAILED, DB_ARGS(P_INT(http), P_STR(why), P_INT(id), P_STR(me)));
		else
			rc = db_exec(Q_RETRY, DB_ARGS(P_INT(http), P_STR(why), P_INT(delay), P_INT(id), P_STR(me)));
		if (rc >= 0)
			return;
		log_warn("webhook delivery %lld: cannot record its outcome (%s); trying again in %ld ms",
		    id, db_last_msg(), ms);
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		ms *= 2;
	}
	log_err("webhook delivery %lld: outcome not recorded; it is sent again after its lease", id);
}

static void deliver(struct arena *a, const struct conf *c, long long id)
{
	struct db_rows rows;
	char why[300], secret[SECRET_HEX + 1];

	if (db_exec(Q_RENEW, DB_ARGS(P_INT(lease_s), P_INT(id), P_STR(me))) < 0)
		return;
	if (db_query(a, &rows, Q_ROW, WS__N, DB_ARGS(P_INT(id), P_STR(me))) != 1) {
		log_info("webhook delivery %lld skipped: no longer claimed by %s", id, me);
		return;
	}
	long long hook = db_int(&rows, 0, WS_HOOK), created = db_int(&rows, 0, WS_CREATED);
	int attempts = (int)db_int(&rows, 0, WS_ATTEMPTS), http = 0;
	if (secret_open(c, hook, (const unsigned char *)DB_CELL(&rows, 0, WS_SECRET),
	        DB_LEN(&rows, 0, WS_SECRET), secret) == -1) {
		snprintf(why, sizeof(why), "the endpoint's secret does not open ([security] secret_key changed?)");
		log_err("webhook %lld: %s", hook, why);
	} else {
		http = post(c, DB_CELL(&rows, 0, WS_URL), DB_CELL(&rows, 0, WS_BODY),
		    DB_CELL(&rows, 0, WS_EVENT), DB_CELL(&rows, 0, WS_EVENT_ID), secret, why, sizeof(why));
		memset(secret, 0, sizeof(secret));
		if (http >= 200 && http < 300) {
			mark(M_SENT, id, http, NULL, 0);
			metrics_add(MET_WEBHOOK_SENT, 1);
			return;
		}
	}
	if ((long long)time(NULL) - created > c->webhooks_give_up_after) {
		mark(M_FAILED, id, http, why, 0);
		metrics_add(MET_WEBHOOK_FAILED, 1);
		log_err("webhook delivery %lld failed: gave up after %ld s: HTTP %d %s", id,
		    c->webhooks_give_up_after, http, why);
		return;
	}
	long d = retry_backoff(attempts + 1);
	mark(M_RETRY, id, http, why, d);
	metrics_add(MET_WEBHOOK_RETRIED, 1);
	log_warn("webhook delivery %lld not taken (HTTP %d %s); retry in %ld s", id, http, why, d);
}

/* Like the mailer: a stop waits blocked until the POST in flight is over;
 * look for it between rows, so the rest of the batch is released. */
static int stop_pending(void)
{
	sigset_t p;

	if (!child_stop && sigpending(&p) == 0 && (sigismember(&p, SIGTERM) || sigismember(&p, SIGINT)))
		child_stop = 1;
	return child_stop;
}

/* webhook_main: the sender's loop until SIGTERM.  Idle, it costs one
 * indexed query a second.  Returns the exit code. */
int webhook_main(const struct conf *c)
{
	sigset_t waitmask;
	struct arena *a = arena_new(0);
	char host[128];

	child_signals(&waitmask);
	prctl(PR_SET_NAME, "ccrd-webhooks");
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(me, sizeof(me), "%s:%d", host, (int)getpid());
	lease_s = 2 * c->webhooks_timeout + 60;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	db_init(c);
	log_info("webhook sender started as %s", me);
	while (!child_stop) {
		long long ids[BATCH];
		db_request_start();
		int n = claim(a, ids);
		int i = 0;
		for (; i < n && !stop_pending(); i++)
			deliver(a, c, ids[i]);
		for (; i < n; i++)
			db_exec(Q_RELEASE, DB_ARGS(P_INT(ids[i]), P_STR(me)));
		if (n <= 0) {
			child_idle(c, IDLE_WAIT_MS, &waitmask);
		}
		arena_reset(a);
	}
	db_close();
	curl_global_cleanup();
	arena_free(a);
	log_info("webhook sender stopped");
	return 0;
}

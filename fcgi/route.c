/*
 * route.c — the one route table and the dispatcher.  Routes are data; the
 * dispatcher enforces each route's flags (login, role, CSRF) before any
 * handler runs, so no handler can forget a check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extern.h"

/* A request whose transaction meets error 1213 runs again, up to this many
 * runs in all. */
enum { RETRY_RUNS = 8 };

/* retry_pause: before re-run attempt + 1, a random pause of one to three
 * times a base of 10 ms · 2^(attempt - 1) capped at 200 ms (≤ 2.2 s over
 * all seven re-runs).
 * Re-running at once replays the same race: with the round-robin cursor, one
 * row every new ticket writes, two Galera nodes met again on every re-run and
 * three immediate runs were not enough under load. */
static void retry_pause(int attempt)
{
	unsigned char b = 128;
	long base = 10L << (attempt > 5 ? 5 : attempt - 1), ms;
	struct timespec ts;

	if (base > 200)
		base = 200;
	(void)crypto_random_bytes(&b, sizeof(b));
	ms = base + base * 2 * b / 255;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
}

static const struct route routes[] = {
	{ "GET", "/", account_home, 0, NULL },
	{ "GET", "/healthz", metrics_healthz, RF_NODB, NULL },
	{ "GET", "/metrics", metrics_page, RF_NODB, NULL },
	{ "GET", "/login", account_login_form, 0, NULL },
	{ "POST", "/login", account_login, RF_CSRF, NULL },
	{ "POST", "/logout", account_logout, RF_AUTH | RF_CSRF | RF_ENROL, NULL },
	{ "GET", "/login/2fa", totp_login_form, 0, NULL },
	{ "POST", "/login/2fa", totp_login, RF_CSRF, NULL },
	{ "GET", "/register", account_register_form, 0, NULL },
	{ "POST", "/register", account_register, RF_CSRF, NULL },
	{ "GET", "/password/forgot", account_forgot_form, 0, NULL },
	{ "POST", "/password/forgot", account_forgot, RF_CSRF, NULL },
	{ "GET", "/password/reset", account_reset_form, 0, NULL },
	{ "POST", "/password/reset", account_reset, RF_CSRF, NULL },
	{ "GET", "/password/change", account_change_form, RF_AUTH, NULL },
	{ "POST", "/password/change", account_change, RF_AUTH | RF_CSRF, NULL },
	{ "GET", "/account", account_show, RF_AUTH, NULL },
	{ "POST", "/account/delete", account_delete, RF_AUTH | RF_CUSTOMER | RF_CSRF, NULL },
	{ "POST", "/account/availability", assign_set_availability, RF_AUTH | RF_AGENT | RF_CSRF, NULL },
	/* cookie sessions only: never reachable with an API token (tokens are
	 * read only under /api/, where cookies are ignored) */
	{ "GET", "/account/2fa", totp_page, RF_AUTH | RF_ENROL, NULL },
	{ "POST", "/account/2fa", totp_post, RF_AUTH | RF_CSRF | RF_ENROL, NULL },
	{ "GET", "/account/sessions", session_list, RF_AUTH, NULL },
	{ "POST", "/account/sessions/end-others", session_end_others, RF_AUTH | RF_CSRF, NULL },
	{ "POST", "/account/sessions/{id}/end", session_end_one, RF_AUTH | RF_CSRF, NULL },
	{ "GET", "/account/tokens", token_list, RF_AUTH, NULL },
	{ "POST", "/account/tokens", token_create, RF_AUTH | RF_CSRF, NULL },
	{ "POST", "/account/tokens/{id}/revoke", token_revoke, RF_AUTH | RF_CSRF, NULL },
	{ "GET", "/tickets", ticket_list, RF_AUTH, NULL },
	{ "POST", "/tickets", ticket_create, RF_AUTH | RF_CUSTOMER | RF_CSRF | RF_UPLOAD, &form_ticket },
	{ "GET", "/tickets/new", ticket_new_form, RF_AUTH | RF_CUSTOMER, NULL },
	{ "GET", "/tickets/{id}", ticket_show, RF_AUTH, NULL },
	{ "GET", "/tickets/{id}/messages", timeline_poll, RF_AUTH | RF_POLL, NULL },
	{ "POST", "/tickets/{id}/messages", message_post,
	  RF_AUTH | RF_CUSTOMER | RF_AGENT | RF_CSRF | RF_UPLOAD, &form_message },
	{ "POST", "/tickets/{id}/assign", ticket_assign, RF_AUTH | RF_ADMIN | RF_CSRF, NULL },
	{ "POST", "/tickets/{id}/resolve", ticket_resolve, RF_AUTH | RF_AGENT | RF_CSRF, NULL },
	{ "POST", "/tickets/{id}/close", ticket_close, RF_AUTH | RF_CUSTOMER | RF_ADMIN | RF_CSRF, NULL },
	{ "POST", "/tickets/{id}/reopen", ticket_reopen, RF_AUTH | RF_CUSTOMER | RF_CSRF, NULL },
	{ "POST", "/tickets/{id}/rating", ticket_rate, RF_AUTH | RF_CUSTOMER | RF_CSRF, NULL },
	{ "GET", "/attachments/{id}/{name}", attach_get, 0, NULL },   /* anonymous: 404 */
	{ "POST", "/tickets/{id}/notes", note_post, RF_AUTH | RF_AGENT | RF_ADMIN | RF_CSRF | RF_UPLOAD,
	  &form_note },
	{ "POST", "/tickets/{id}/priority", ticket_priority, RF_AUTH | RF_AGENT | RF_ADMIN | RF_CSRF, NULL },
	{ "GET", "/replies", reply_list, RF_AUTH | RF_AGENT | RF_ADMIN, NULL },
	{ "POST", "/replies", reply_create, RF_AUTH | RF_AGENT | RF_ADMIN | RF_CSRF, NULL },
	{ "POST", "/replies/{id}/delete", reply_delete, RF_AUTH | RF_AGENT | RF_ADMIN | RF_CSRF, NULL },
	{ "GET", "/admin/agents", agent_list, RF_AUTH | RF_ADMIN, NULL },
	{ "POST", "/admin/agents", agent_create, RF_AUTH | RF_ADMIN | RF_CSRF, NULL },
	{ "POST", "/admin/agents/{id}/approve", agent_approve, RF_AUTH | RF_ADMIN | RF_CSRF, NULL },
	{ "POST", "/admin/agents/{id}/reject", agent_reject, RF_AUTH | RF_ADMIN | RF_CSRF, NULL },
	{ "POST", "/admin/agents/{id}/disable", agent_disable, RF_AUTH | RF_ADMIN | RF_CSRF, NULL },
	{ "POST", "/admin/users/{id}/2fa/reset", totp_admin_reset, RF_AUTH | RF_ADMIN | RF_CSRF, NULL },
	{ "GET", "/admin/mail", mailin_admin_list, RF_AUTH | RF_ADMIN, NULL },
	{ "GET", "/admin/reports", report_page, RF_AUTH | RF_ADMIN, NULL },
	{ "GET", "/admin/reports.csv", report_csv, RF_AUTH | RF_ADMIN, NULL },
	/* The JSON API (api.c): a Bearer token instead of the session cookie,
	 * so no CSRF flag; the same roles as the pages' routes above */
	{ "GET", "/api/v1/openapi.json", api_openapi, RF_NODB, NULL },
	{ "GET", "/api/v1/me", api_me, RF_AUTH, NULL },
	{ "GET", "/api/v1/tickets", api_tickets, RF_AUTH, NULL },
	{ "POST", "/api/v1/tickets", api_ticket_create, RF_AUTH | RF_CUSTOMER, NULL },
	{ "GET", "/api/v1/tickets/{id}", api_ticket_show, RF_AUTH, NULL },
	{ "POST", "/api/v1/tickets/{id}/messages", api_message_post, RF_AUTH | RF_CUSTOMER | RF_AGENT, NULL },
	{ "POST", "/api/v1/tickets/{id}/assign", api_ticket_assign, RF_AUTH | RF_ADMIN, NULL },
	{ "POST", "/api/v1/tickets/{id}/resolve", api_ticket_resolve, RF_AUTH | RF_AGENT, NULL },
	{ "POST", "/api/v1/tickets/{id}/close", api_ticket_close, RF_AUTH | RF_CUSTOMER | RF_ADMIN, NULL },
	{ "POST", "/api/v1/tickets/{id}/reopen", api_ticket_reopen, RF_AUTH | RF_CUSTOMER, NULL },
	{ "GET", "/admin/mail/{id}/raw", mailin_admin_raw, RF_AUTH | RF_ADMIN, NULL },
	{ "POST", "/admin/mail/{id}/delete", mailin_admin_delete, RF_AUTH | RF_ADMIN | RF_CSRF, NULL },
	{ "GET", "/admin/webhooks", webhook_list, RF_AUTH | RF_ADMIN, NULL },
	{ "POST", "/admin/webhooks", webhook_create, RF_AUTH | RF_ADMIN | RF_CSRF, NULL },
	{ "POST", "/admin/webhooks/{id}/delete", webhook_delete, RF_AUTH | RF_ADMIN | RF_CSRF, NULL },
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* route_name: "METHOD pattern" of route i, for metrics labels. */
const char *route_name(int i)
{
	static char names[NROUTES][64];

	if (i < 0 || (size_t)i >= NROUTES)
		return "none";
	if (names[i][0] == '\0')
		snprintf(names[i], sizeof(names[i]), "%s %s", routes[i].method, routes[i].pattern);
	return names[i];
}

/* Match path against pattern; {id} takes 1..18 digits into *id, {name}
 * one path segment of 1..255 bytes (not kept). 1 match, 0 not. */
static int pattern_match(const char *pat, const char *path, long long *id)
{
	while (*pat && *path) {
		if (strncmp(pat, "{name}", 6) == 0) {
			size_t n = strcspn(path, "/");
			if (n == 0 || n > FILENAME_MAX_BYTES * 3)
				return 0;
			path += n;
			pat += 6;
			continue;
		}
		if (strncmp(pat, "{id}", 4) == 0) {
			const char *s = path;
			long long v = 0;
			while (*path >= '0' && *path <= '9' && path - s < 18)
				v = v * 10 + (*path++ - '0');
			if (path == s || (*path >= '0' && *path <= '9') || *s == '0')
				return 0;
			*id = v;
			pat += 4;
			continue;
		}
		if (*pat++ != *path++)
			return 0;
	}
	return *pat == '\0' && *path == '\0';
}

const struct route *route_match(const char *method, const char *path, long long *id,
                                int *status, char *allow, size_t allowlen)
{
	const struct route *hit = NULL;
	size_t used = 0;
	int path_seen = 0;

	if (allowlen)
		allow[0] = '\0';
	for (size_t i = 0; i < NROUTES; i++) {
		long long v = 0;
		if (!pattern_match(routes[i].pattern, path, &v))
			continue;
		path_seen = 1;
		int same = strcmp(routes[i].method, method) == 0 ||
		    (strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0);
		if (same && hit == NULL) {
			hit = &routes[i];
			*id = v;
		}
		if (allowlen && !strstr(allow, routes[i].method) &&
		    (used ? 2 : 0) + strlen(routes[i].method) < allowlen - used) {
			/* whole method names only */
			used += (size_t)snprintf(allow + used, allowlen - used, "%s%s", used ? ", " : "",
			    routes[i].method);
		}
	}
	if (hit)
		return hit;
	*status = path_seen ? 405 : 404;
	return NULL;
}

static int role_allowed(const struct route *rt, const struct user *u)
{
	unsigned roles = rt->flags & (RF_CUSTOMER | RF_AGENT | RF_ADMIN);

	static const unsigned flag[ROLE__MAX] = {
		[ROLE_CUSTOMER] = RF_CUSTOMER, [ROLE_AGENT] = RF_AGENT, [ROLE_ADMIN] = RF_ADMIN,
	};

	return roles == 0 || ((unsigned)u->role < ROLE__MAX && (roles & flag[u->role]) != 0);
}

/* The flags of an /api/ route: the Bearer token (never a cookie), 401
 * with WWW-Authenticate (RFC 6750 §3) where a login is needed, the token's
 * rate, the role, the two-factor enrolment.  No CSRF: nothing here acts
 * on a cookie a browser would send by itself. */
static int guard_api(struct request *r, const struct route *rt)
{
	if (rt->flags & RF_NODB)
		return 0;
	if (token_load(r) == -1)
		return db_status();
	if ((rt->flags & RF_AUTH) && r->user == NULL) {
		resp_header_add(r, "WWW-Authenticate", req_param(r, "HTTP_AUTHORIZATION")
		    ? "Bearer realm=\"ccr\", error=\"invalid_token\"" : "Bearer realm=\"ccr\"");
		return 401;
	}
	int s = token_rate(r);
	if (s)
		return s;
	if (r->user && !role_allowed(rt, r->user))
		return 403;
	if (totp_must_enrol(r)) {
		r->message = "Set up two-factor sign-in first, on your account's two-factor page.";
		return 403;
	}
	return 0;
}

/* Enforce the route's flags.  0 to run the handler, else the status to answer. */
static int guard(struct request *r, const struct route *rt)
{
	if (r->api)
		return guard_api(r, rt);
	if (!(rt->flags & RF_NODB) &&
	    ((rt->flags & RF_POLL) ? session_peek(r) : session_load(r)) == -1)
		return db_status();
	if ((rt->flags & RF_AUTH) && r->user == NULL) {
		if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
			return resp_redirect(r, "/login");
		/* a page that needs a login: 303 to /login?next=<path>, back here after */
		const char *qs = req_param(r, "QUERY_STRING");
		char *next = arena_printf(r->a, "%s%s%s", r->path, qs && *qs ? "?" : "", qs ? qs : "");
		return resp_redirect(r, arena_printf(r->a, "/login?next=%s", url_encode(r->a, next)));
	}
	if (r->user && !role_allowed(rt, r->user))
		return 403;
	/* [security] require_2fa: a person who must enrol does nothing else first */
	if (!(rt->flags & RF_ENROL) && totp_must_enrol(r)) {
		if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0)
			return resp_redirect(r, "/account/2fa");
		r->message = "Set up two-factor sign-in first, on your account's two-factor page.";
		return 403;
	}
	if ((rt->flags & RF_CSRF) && !session_csrf_ok(r)) {
		r->message = "The form has expired. Please go back, reload the page and try again.";
		return 403;
	}
	return 0;
}

/* route_dispatch: read, route, guard, handle, answer, log — one request. */
void route_dispatch(struct request *r)
{
	char allow[64];
	int status;

	db_request_start();
	status = request_read_head(r);
	if (status == 0) {
		/* the route first: its flags say which bodies it takes; a body
		 * refused still answers before 404 or 405 */
		int miss = 0;
		r->route = route_match(r->method, r->path, &r->path_id, &miss, allow, sizeof(allow));
		status = request_read_body(r);
		if (status == 0 && r->route == NULL) {
			status = miss;
			if (miss == 405)
				resp_header_add(r, "Allow", arena_strdup(r->a, allow));
		}
	}
	if (status == 0)
		status = guard(r, r->route);
	if (status == 0) {
		/* a transaction that meets error 1213 (a deadlock, or a Galera
		 * certification conflict) is retried after a short random pause,
		 * up to RETRY_RUNS runs in all.  Handlers roll back before
		 * returning, so running one again is safe; only what it added to
		 * the response is forgotten first. */
		size_t nhdr = r->nhdr;
		for (int attempt = 1;; attempt++) {
			status = r->route->handler(r);
			if (!(status == 503 && db_last_err() == DB_DEADLOCK) || attempt == RETRY_RUNS)
				break;
			log_warn("req=%s deadlock (1213), retrying the request (%d)", r->id, attempt);
			retry_pause(attempt);
			r->nhdr = nhdr;
			r->location = NULL;
			r->body = NULL;
			r->body_len = 0;
			r->message = NULL;
			r->ctype = "text/html; charset=utf-8";
		}
	}
	if (status == 503 && r->body == NULL)
		resp_header_add(r, "Retry-After", "5");   /* every 503 says when to retry */
	if (status >= 400 && r->body == NULL) {
		if (r->api)
			api_error(r, status, r->message, r->api_field);
		else
			page_error(r, status);
	}
	if (!r->streamed)
		r->status = status;
	resp_send(r);
	multipart_free(r->upload);
	r->upload = NULL;
	double ms = clock_ms() - r->t0;
	status = r->status;
	metrics_request(r->route ? (int)(r->route - routes) : -1, status, ms);
	log_access(r->id, r->method, r->path, status, ms,
	    r->user ? r->user->id : 0, r->remote_addr);
}

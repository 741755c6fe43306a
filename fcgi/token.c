/*
 * token.c — personal API tokens (README "JSON API"): the tokens page, the
 * Bearer check of /api/ requests, and the per-token rate limit.  A token
 * is "ccr_" and 64 hex digits (256 random bits); only its SHA-256 is
 * stored, and it is shown once, in the answer to the POST that made it.
 * Tokens are read only on /api/ paths, so they are never a way into the
 * pages (two-factor, sessions, this page): those take cookie sessions only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "extern.h"

#define TOKEN_HEX 64

static const char Q_BY_HASH[] =
    "SELECT u.id, u.role, u.state, u.email, u.first_name, u.last_name, t.id, "
    "t.last_used_at IS NULL OR t.last_used_at < NOW() - INTERVAL 60 SECOND, "
    "EXISTS (SELECT 1 FROM totp x WHERE x.user_id = u.id AND x.state = 'on') "
    "FROM api_tokens t JOIN users u ON u.id = t.user_id "
    "WHERE t.token_hash = ? AND u.state = 'active'";
enum { TB_UID, TB_ROLE, TB_STATE, TB_EMAIL, TB_FIRST, TB_LAST, TB_TID, TB_STALE, TB_TOTP, TB__N };

/* token_load: r->user and r->token_id from `Authorization: Bearer TOKEN`
 * (RFC 6750 §2.1).  No header, another scheme, a malformed, unknown or
 * revoked token, or an account not active: the request stays anonymous
 * (the route's RF_AUTH answers 401).  0, or -1 when the database failed. */
int token_load(struct request *r)
{
	const char *h = req_param(r, "HTTP_AUTHORIZATION");
	struct db_rows rows;
	char hash[65];

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	size_t plen = strlen(TOKEN_PREFIX);
	if (strncmp(h, TOKEN_PREFIX, plen) != 0 || !str_is_hex(h + plen, TOKEN_HEX, TOKEN_HEX)) {
		r->message = "The API token is not valid";
		return 0;
	}
	if (crypto_sha256_hex(h, strlen(h), hash) == -1)
		return -1;
	int n = db_query(r->a, &rows, Q_BY_HASH, TB__N, DB_ARGS(P_STR(hash)));
	if (n < 0)
		return -1;
	if (n == 0) {
		r->message = "The API token is not valid";
		return 0;
	}
	struct user *u = arena_alloc(r->a, sizeof(*u));
	u->id = db_int(&rows, 0, TB_UID);
	if (role_parse(DB_CELL(&rows, 0, TB_ROLE), &u->role) == -1 ||
	    account_state_parse(DB_CELL(&rows, 0, TB_STATE), &u->state) == -1) {
		log_err("%s: req=%s user %lld has an unknown role or state", __func__, r->id, u->id);
		return -1;
	}
	snprintf(u->email, sizeof(u->email), "%s", DB_CELL(&rows, 0, TB_EMAIL));
	snprintf(u->first_name, sizeof(u->first_name), "%s", DB_CELL(&rows, 0, TB_FIRST));
	snprintf(u->last_name, sizeof(u->last_name), "%s", DB_CELL(&rows, 0, TB_LAST));
	u->twofa = db_int(&rows, 0, TB_TOTP) != 0;
	r->user = u;
	r->token_id = db_int(&rows, 0, TB_TID);
	r->token_stale = db_int(&rows, 0, TB_STALE) != 0;   /* token_rate writes it */
	return 0;
}

/* last used moves at most once a minute: the lookup says when the row's
 * time is over a minute old, and the host's slot lets one worker write it */
static const char Q_USED[] = "UPDATE api_tokens SET last_used_at = NOW() WHERE id = ?";
/* One row per token and minute, shared by every host: a host adds the
 * hits its slot counted (rate.c) and reads the total back through
 * LAST_INSERT_ID(expr).  INSERT … SELECT, so that hits of a token revoked
 * meanwhile add nothing (no row, no foreign-key failure). */
static const char Q_ADD[] =
    "INSERT INTO api_rate (token_id, minute, hits) SELECT id, ?, ? FROM api_tokens WHERE id = ? "
    "ON DUPLICATE KEY UPDATE hits = LAST_INSERT_ID(hits + ?)";
static const char Q_RATE_OLD[] = "DELETE FROM api_rate WHERE token_id = ? AND minute < ?";

/* Add delta hits to the token's row of minute; *total: the row's hits
 * after.  The host that makes a token's row of a minute deletes its older
 * ones.  1 made, 2 grown, 0 no such token (then *total is 0), -1 failed. */
static int rate_add(long long token_id, long long minute, long long delta, long long *total)
{
	long long n = db_exec(Q_ADD, DB_ARGS(P_INT(minute), P_INT(delta), P_INT(token_id),
	    P_INT(delta)));

	*total = 0;
	if (n < 0)
		return -1;
	*total = n == 2 ? db_insert_id() : n == 1 ? delta : 0;
	if (n == 1 && db_exec(Q_RATE_OLD, DB_ARGS(P_INT(token_id), P_INT(minute))) < 0)
		return -1;
	return (int)n;
}

/* token_rate: count this request against r->token_id's minute in the
 * host's shared slot (rate.c), which reaches the database at most once a
 * RATE_FLUSH_MS (always on the token's first request of a minute here).
 * 0 under the limit, 429 (Retry-After: the seconds left in the minute)
 * over it, or the status of a database failure. */
int token_rate(struct request *r)
{
	time_t now = time(NULL);
	long long minute = (long long)now / 60, hits, total;
	struct rate_table *t = rate_table();
	struct rate_ticket tk;
	enum rate_step step;

	if (r->token_id == 0)
		return 0;
	/* the minute's first flush on this host is in flight: its answer, the
	 * other hosts' count, comes in a round trip (a dead flusher is given
	 * up after RATE_STALE_MS, so this ends) */
	while ((step = rate_count(t, r->token_id, minute, clock_ms(), r->token_stale, &tk)) == RATE_WAIT) {
		struct timespec pause = { 0, 200 * 1000 };
		nanosleep(&pause, NULL);
	}
	if (tk.evicted_delta > 0 &&
	    rate_add(tk.evicted_token, tk.evicted_minute, tk.evicted_delta, &total) < 0)
		return db_status();
	if (tk.touch && db_exec(Q_USED, DB_ARGS(P_INT(r->token_id))) < 0)
		return db_status();
	if (step == RATE_DIRECT) {
		if (rate_add(r->token_id, minute, 1, &total) < 0)
			return db_status();
		hits = total;
	} else if (step == RATE_FLUSH) {
		int n = rate_add(tk.token_id, tk.minute, tk.delta, &total);
		hits = rate_flushed(t, &tk, n < 0 ? -1 : total, clock_ms());
		if (n < 0)
			return db_status();
	} else
		hits = tk.ordinal;
	if (hits > r->conf->api_requests_per_minute) {
		resp_header_add(r, "Retry-After", arena_printf(r->a, "%lld", 60 - (long long)now % 60));
		r->message = "Too many requests for this token. Wait for the time in Retry-After.";
		return 429;
	}
	return 0;
}

/* token_rate_idle: a worker with no request for a second adds the slots'
 * hits that have waited RATE_FLUSH_MS to their rows (so a token's row is
 * whole about two seconds after its last request, and a host that went
 * quiet still tells the others).  At most 64 slots a call. */
void token_rate_idle(void)
{
	static size_t cursor;
	struct rate_table *t = rate_table();
	struct rate_ticket tk;
	long long total;

	for (int i = 0; i < 64 && rate_idle(t, clock_ms(), &cursor, &tk); i++) {
		db_request_start();
		int n = rate_add(tk.token_id, tk.minute, tk.delta, &total);
		rate_flushed(t, &tk, n < 0 ? -1 : total, clock_ms());
		if (n < 0)
			break;
	}
}

static const char Q_END_ALL[] = "DELETE FROM api_tokens WHERE user_id = ?";

/* token_end_all: every token of the person, in the caller's transaction
 * (session_end_all calls it: whatever ends all sessions ends all tokens).
 * 0 / -1. */
int token_end_all(long long user_id)
{
	return db_exec(Q_END_ALL, DB_ARGS(P_INT(user_id))) < 0 ? -1 : 0;
}

/* ---- the tokens page --------------------------------------------------- */

static const char Q_LIST[] =
    "SELECT id, name, UNIX_TIMESTAMP(created_at), UNIX_TIMESTAMP(last_used_at) FROM api_tokens "
    "WHERE user_id = ? ORDER BY id DESC LIMIT 100";
enum { TK_TID, TK_NAME, TK_CREATED, TK_USED, TK__COLS };

/* the page: the list, a form to make one, and (once) a new token's secret */
static int tokens_page(struct request *r, int status, const char *secret, const char *new_name,
                       const struct form_errors *f, const char *draft)
{
	struct db_rows rows;
	int n = db_query(r->a, &rows, Q_LIST, TK__COLS, DB_ARGS(P_INT(r->user->id)));

	if (n < 0)
		return db_status();
	struct view *v = page_new(r, "tokens.tpl", "API tokens");
	if (v == NULL)
		return 500;
	struct vdict *b = view_body(v);
	for (int i = 0; i < n; i++) {
		struct vdict *d = vdict_section(b, "TOKEN");
		vdict_set_int(d, "ID", db_int(&rows, (size_t)i, TK_TID));
		vdict_set(d, "NAME", DB_CELL(&rows, i, TK_NAME));
		page_set_time(r, d, "CREATED", DB_CELL(&rows, i, TK_CREATED));
		if (DB_CELL(&rows, i, TK_USED))
			page_set_time(r, vdict_section(d, "USED"), "USED", DB_CELL(&rows, i, TK_USED));
		else
			vdict_show(d, "NEVER_USED");
	}
	if (n == 0)
		vdict_show(b, "NO_TOKENS");
	if (secret) {
		struct vdict *s = vdict_section(b, "NEW_TOKEN");
		vdict_set(s, "SECRET", secret);
		vdict_set(s, "NEW_NAME", new_name);
	}
	vdict_set_int(b, "MAX_TOKENS", TOKEN_MAX_PER_PERSON);
	vdict_set(b, "NAME_DRAFT", draft ? draft : "");
	if (n >= TOKEN_MAX_PER_PERSON)
		vdict_show(b, "AT_LIMIT");
	if (f)
		form_error_show(v, f);
	return page_render(r, v, status);
}

/* GET /account/tokens */
int token_list(struct request *r)
{
	return tokens_page(r, 200, NULL, NULL, NULL, NULL);
}

static const char Q_LOCK_USER[] = "SELECT id FROM users WHERE id = ? FOR UPDATE";
static const char Q_COUNT[] = "SELECT COUNT(*) FROM api_tokens WHERE user_id = ?";
static const char Q_INSERT[] =
    "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, ?, ?, NOW())";

/* POST /account/tokens: name 1–64 characters; at most
 * TOKEN_MAX_PER_PERSON (counted under a lock on the person's row, so two
 * parallel requests cannot both make the eleventh).  200 with the secret
 * shown once (it is never stored, so there is nothing to redirect to);
 * 422 with the form's message.  Audit row "token_created". */
int token_create(struct request *r)
{
	struct form_value in[TOK__N];
	struct form_errors f = { .n = 0 };
	struct db_rows rows;
	char hex[65], hash[65];

	if (form_read(r, &form_token, in, &f))
		return tokens_page(r, 422, NULL, NULL, &f, in[TOK_NAME].s);
	const char *name = in[TOK_NAME].s;
	if (crypto_token(hex) == -1)
		return 500;
	char *secret = arena_printf(r->a, "%s%s", TOKEN_PREFIX, hex);
	if (crypto_sha256_hex(secret, strlen(secret), hash) == -1)
		return 500;
	if (db_begin() == -1 ||
	    db_query(r->a, &rows, Q_LOCK_USER, 1, DB_ARGS(P_INT(r->user->id))) != 1 ||
	    db_query(r->a, &rows, Q_COUNT, 1, DB_ARGS(P_INT(r->user->id))) != 1)
		return db_fail();
	if (db_int(&rows, 0, 0) >= TOKEN_MAX_PER_PERSON) {
		db_rollback();
		form_error_add(&f, "ERR_NAME", arena_printf(r->a,
		    "You have %d tokens already. Revoke one first.", TOKEN_MAX_PER_PERSON));
		return tokens_page(r, 422, NULL, NULL, &f, name);
	}
	if (db_exec(Q_INSERT, DB_ARGS(P_INT(r->user->id), P_STR(name), P_STR(hash))) < 0)
		return db_fail();
	long long id = db_insert_id();
	if (audit_add(request_ctx(r), r->user->id, "token_created",
	        arena_printf(r->a, "token %lld", id)) == -1 || db_commit() == -1)
		return db_fail();
	return tokens_page(r, 200, secret, name, NULL, NULL);
}

static const char Q_REVOKE[] = "DELETE FROM api_tokens WHERE id = ? AND user_id = ?";

/* POST /account/tokens/{id}/revoke: one of the person's own tokens (any
 * other id: 404); it stops working at once.  Audit row "token_revoked". */
int token_revoke(struct request *r)
{
	long long n;

	if (db_begin() == -1 ||
	    (n = db_exec(Q_REVOKE, DB_ARGS(P_INT(r->path_id), P_INT(r->user->id)))) < 0)
		return db_fail();
	if (n == 0) {
		db_rollback();
		return 404;
	}
	if (audit_add(request_ctx(r), r->user->id, "token_revoked",
	        arena_printf(r->a, "token %lld", r->path_id)) == -1 || db_commit() == -1)
		return db_fail();
	flash_set(r, FLASH_TOKEN_REVOKED);
	return resp_redirect(r, "/account/tokens");
}

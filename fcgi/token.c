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
/* last used moves at most once a minute: no write on most requests */
static const char Q_USED[] = "UPDATE api_tokens SET last_used_at = NOW() WHERE id = ?";

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
	if (db_int(&rows, 0, TB_STALE) && db_exec(Q_USED, DB_ARGS(P_INT(r->token_id))) < 0)
		return -1;
	return 0;
}

/* One row per token and minute: the count comes back through
 * LAST_INSERT_ID(expr) on the update path (0 on a fresh insert = 1 hit). */
static const char Q_HIT[] =
    "INSERT INTO api_rate (token_id, minute, hits) VALUES (?, ?, 1) "
    "ON DUPLICATE KEY UPDATE hits = LAST_INSERT_ID(hits + 1)";
static const char Q_RATE_OLD[] = "DELETE FROM api_rate WHERE token_id = ? AND minute < ?";

/* token_rate: count this request against r->token_id's minute, in the
 * database so that every worker and host shares the count.  0 under the
 * limit, 429 (Retry-After: the seconds left in the minute) over it, or
 * the status of a database failure. */
int token_rate(struct request *r)
{
	time_t now = time(NULL);
	long long minute = (long long)now / 60;

	if (r->token_id == 0)
		return 0;
	long long n = db_exec(Q_HIT, DB_ARGS(P_INT(r->token_id), P_INT(minute)));
	if (n < 0)
		return db_status();
	long long hits = n == 1 ? 1 : db_insert_id();
	if (hits == 1 && db_exec(Q_RATE_OLD, DB_ARGS(P_INT(r->token_id), P_INT(minute))) < 0)
		return db_status();
	if (hits > r->conf->api_requests_per_minute) {
		resp_header_add(r, "Retry-After", arena_printf(r->a, "%lld", 60 - (long long)now % 60));
		r->message = "Too many requests for this token. Wait for the time in Retry-After.";
		return 429;
	}
	return 0;
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

/*
 * session.c — sessions and CSRF tokens (README "Accounts and security").
 * The cookie `ccr_session` carries 256 random bits; only their SHA-256 is
 * stored.  A session expires after session_idle without activity or
 * session_absolute after login, and gets a new id at every login.
 * Anonymous forms (login, register, forgot, reset) are protected by a
 * double-submit token in the `ccr_csrf` cookie.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

static void anon_csrf(struct request *r)
{
	const char *c = cookie_get(r, "ccr_csrf");

	if (str_is_hex(c, 64, 64)) {
		snprintf(r->csrf, sizeof(r->csrf), "%s", c);
		return;
	}
	if (crypto_token(r->csrf) == -1)
		return;
	cookie_set(r, "ccr_csrf", r->csrf, r->conf->session_absolute);
}

static const char Q_SESSION[] =
    "SELECT u.id, u.role, u.state, u.email, u.first_name, u.last_name, s.csrf, "
    "s.last_seen < NOW() - INTERVAL 60 SECOND, s.id, "
    "EXISTS (SELECT 1 FROM totp t WHERE t.user_id = u.id AND t.state = 'on'), "
    /* an agent's availability for the page header, in the same round trip */
    "IF(u.role = 'agent', IFNULL((SELECT q.available FROM agent_availability q "
    "WHERE q.user_id = u.id), 0), 0) "
    "FROM sessions s JOIN users u ON u.id = s.user_id "
    "WHERE s.id_hash = ? AND s.last_seen > NOW() - INTERVAL ? SECOND "
    "AND s.created_at > NOW() - INTERVAL ? SECOND AND u.state = 'active'";
enum { SS_ID, SS_ROLE, SS_STATE, SS_EMAIL, SS_FIRST, SS_LAST, SS_CSRF, SS_STALE, SS_SID, SS_TOTP,
       SS_AVAILABLE, SS__N };
/* last_seen moves at most once a minute: no write on most requests */
static const char Q_TOUCH[] = "UPDATE sessions SET last_seen = NOW() WHERE id_hash = ?";

/* load: r->user and r->csrf from the cookies; touch says whether this
 * request is activity that moves last_seen (the idle timeout). */
static int load(struct request *r, int touch)
{
	const char *tok = cookie_get(r, "ccr_session");
	struct db_rows rows;
	char hash[65];
	int n;

	if (!str_is_hex(tok, 64, 64)) {
		anon_csrf(r);
		return 0;
	}
	if (crypto_sha256_hex(tok, strlen(tok), hash) == -1)
		return -1;
	n = db_query(r->a, &rows, Q_SESSION, SS__N, DB_ARGS(P_STR(hash),
	    P_INT(r->conf->session_idle), P_INT(r->conf->session_absolute)));
	if (n < 0)
		return -1;
	if (n == 0) {
		cookie_set(r, "ccr_session", "", 0);
		anon_csrf(r);
		return 0;
	}
	struct user *u = arena_alloc(r->a, sizeof(*u));
	u->id = db_int(&rows, 0, SS_ID);
	if (role_parse(DB_CELL(&rows, 0, SS_ROLE), &u->role) == -1 ||
	    account_state_parse(DB_CELL(&rows, 0, SS_STATE), &u->state) == -1) {
		log_err("session: user %lld has an unknown role or state", u->id);
		return -1;
	}
	snprintf(u->email, sizeof(u->email), "%s", DB_CELL(&rows, 0, SS_EMAIL));
	snprintf(u->first_name, sizeof(u->first_name), "%s", DB_CELL(&rows, 0, SS_FIRST));
	snprintf(u->last_name, sizeof(u->last_name), "%s", DB_CELL(&rows, 0, SS_LAST));
	snprintf(r->csrf, sizeof(r->csrf), "%s", DB_CELL(&rows, 0, SS_CSRF));
	u->twofa = db_int(&rows, 0, SS_TOTP) != 0;
	u->available = db_int(&rows, 0, SS_AVAILABLE) ? UA_ON : UA_OFF;
	r->user = u;
	r->session_hash = arena_strdup(r->a, hash);
	r->session_id = db_int(&rows, 0, SS_SID);
	if (touch && db_int(&rows, 0, SS_STALE) && db_exec(Q_TOUCH, DB_ARGS(P_STR(hash))) < 0)
		return -1;
	return 0;
}

/* session_load: r->user and r->csrf from the cookies.  0, or -1 when the
 * database failed (db_status() says how to answer).  An unknown, expired
 * or disabled-account session is dropped and the request is anonymous. */
int session_load(struct request *r)
{
	return load(r, 1);
}

/* session_peek: the same for a background poll of an open page, which is
 * not activity: last_seen stays put, so the idle timeout still ends a
 * session left open in a tab. */
int session_peek(struct request *r)
{
	return load(r, 0);
}

static const char Q_NEW[] =
    "INSERT INTO sessions (id_hash, user_id, csrf, created_at, last_seen, addr, user_agent) "
    "VALUES (?, ?, ?, NOW(), NOW(), ?, ?)";

/* session_create: a fresh session for user_id (login, registration,
 * privilege change) — a new id every time, so an id planted before login
 * (session fixation) is worth nothing.  The old session of
 * this browser, if any, is deleted.  Runs inside the caller's transaction
 * when there is one.  0 / -1. */
int session_create(struct request *r, long long user_id)
{
	char tok[65], hash[65], csrf[65];

	if (crypto_token(tok) == -1 || crypto_token(csrf) == -1 ||
	    crypto_sha256_hex(tok, strlen(tok), hash) == -1)
		return -1;
	if (r->session_hash && session_end(r) == -1)
		return -1;
	if (db_exec(Q_NEW, DB_ARGS(P_STR(hash), P_INT(user_id), P_STR(csrf), P_STR(r->remote_addr),
	    P_STR(device_browser(r)))) < 0)
		return -1;
	r->session_id = db_insert_id();
	cookie_set(r, "ccr_session", tok, r->conf->session_absolute);
	snprintf(r->csrf, sizeof(r->csrf), "%s", csrf);
	r->session_hash = arena_strdup(r->a, hash);
	return 0;
}

static const char Q_END[] = "DELETE FROM sessions WHERE id_hash = ?";
static const char Q_END_ALL[] = "DELETE FROM sessions WHERE user_id = ?";

/* session_end: delete this browser's session row and clear its cookie. 0 / -1. */
int session_end(struct request *r)
{
	if (r->session_hash && db_exec(Q_END, DB_ARGS(P_STR(r->session_hash))) < 0)
		return -1;
	r->session_hash = NULL;
	cookie_set(r, "ccr_session", "", 0);
	return 0;
}

/* session_end_all: every session of the user (password change or reset,
 * disable, deletion), and with them every API token (token.c).  0 / -1. */
int session_end_all(long long user_id)
{
	return db_exec(Q_END_ALL, DB_ARGS(P_INT(user_id))) < 0 || token_end_all(user_id) == -1 ? -1 : 0;
}

/* session_csrf_ok: 1 when the form's csrf_token matches the session's (or the
 * anonymous double-submit cookie's) token, else 0. */
int session_csrf_ok(const struct request *r)
{
	const char *t = req_form(r, "csrf_token");

	return r->csrf[0] && t && crypto_equal(t, r->csrf);
}

/* ---- the session list (README "Login alerts and sessions") ----------- */

static const char Q_LIST[] =
    "SELECT id, UNIX_TIMESTAMP(created_at), UNIX_TIMESTAMP(last_seen), addr, user_agent "
    "FROM sessions WHERE user_id = ? AND last_seen > NOW() - INTERVAL ? SECOND "
    "AND created_at > NOW() - INTERVAL ? SECOND ORDER BY last_seen DESC, id DESC LIMIT 200";
enum { SL_ID, SL_CREATED, SL_SEEN, SL_ADDR, SL_UA, SL__N };

/* GET /account/sessions: the person's live sessions, newest activity
 * first, this one marked; a form to end each other one, and all others. */
int session_list(struct request *r)
{
	struct db_rows rows;
	int n = db_query(r->a, &rows, Q_LIST, SL__N, DB_ARGS(P_INT(r->user->id),
	    P_INT(r->conf->session_idle), P_INT(r->conf->session_absolute)));

	if (n < 0)
		return db_status();
	struct view *v = page_new(r, "sessions.tpl", "Your sessions");
	if (v == NULL)
		return 500;
	int others = 0;
	for (int i = 0; i < n; i++) {
		struct vdict *d = vdict_section(view_body(v), "SESSION");
		long long id = db_int(&rows, (size_t)i, SL_ID);
		vdict_set_int(d, "ID", id);
		page_set_time(r, d, "CREATED", DB_CELL(&rows, i, SL_CREATED));
		page_set_time(r, d, "SEEN", DB_CELL(&rows, i, SL_SEEN));
		vdict_set(d, "ADDR", DB_CELL(&rows, i, SL_ADDR));
		const char *ua = DB_CELL(&rows, i, SL_UA);
		vdict_set(d, "BROWSER", ua && *ua ? ua : "Unknown browser");
		if (id == r->session_id)
			vdict_show(d, "THIS");
		else {
			vdict_show(d, "OTHER");
			others++;
		}
	}
	if (others)
		vdict_show(view_body(v), "HAS_OTHERS");
	return page_render(r, v, 200);
}

static const char Q_END_ONE[] = "DELETE FROM sessions WHERE id = ? AND user_id = ?";
static const char Q_END_OTHERS[] = "DELETE FROM sessions WHERE user_id = ? AND id <> ?";

/* POST /account/sessions/{id}/end: one of the person's own sessions (any
 * other id: 404).  Ending this one is logging out. */
int session_end_one(struct request *r)
{
	long long uid = r->user->id, n;
	int self = r->path_id == r->session_id;

	if (db_begin() == -1 || (n = db_exec(Q_END_ONE, DB_ARGS(P_INT(r->path_id), P_INT(uid)))) < 0)
		return db_fail();
	if (n == 0) {
		db_rollback();
		return 404;
	}
	if (audit_add(request_ctx(r), uid, "session_ended", self ? "this" : "other") == -1 ||
	    db_commit() == -1)
		return db_fail();
	if (self) {
		r->session_hash = NULL;
		cookie_set(r, "ccr_session", "", 0);
		flash_set(r, FLASH_LOGGED_OUT);
		return resp_redirect(r, "/login");
	}
	flash_set(r, FLASH_SESSION_ENDED_ONE);
	return resp_redirect(r, "/account/sessions");
}

/* POST /account/sessions/end-others: every session of the person but this one. */
int session_end_others(struct request *r)
{
	long long uid = r->user->id, n;

	if (db_begin() == -1 ||
	    (n = db_exec(Q_END_OTHERS, DB_ARGS(P_INT(uid), P_INT(r->session_id)))) < 0 ||
	    audit_add(request_ctx(r), uid, "sessions_ended", arena_printf(r->a, "%lld", n)) == -1 ||
	    db_commit() == -1)
		return db_fail();
	flash_set(r, FLASH_SESSIONS_ENDED);
	return resp_redirect(r, "/account/sessions");
}

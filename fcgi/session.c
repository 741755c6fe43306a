/*
 * session.c — session cookies, expiry, CSRF tokens and the one-time flash
 * (SPEC §6).  The cookie `ccr_session` carries 256 random bits; only their
 * SHA-256 is stored.  Anonymous forms (login, register, forgot, reset) are
 * protected by a double-submit token in the `ccr_csrf` cookie.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "extern.h"
#include "sha256.h"

/* token_new: 32 random bytes from getrandom(2) as 64 hex digits. 0 / -1. */
int token_new(char out[65])
{
	unsigned char b[32];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	return 0;
}

static int is_token(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return n == 64;
}

/* ct_equal: constant-time comparison of two NUL-terminated strings of which
 * the length is not secret. 1 equal, 0 not. */
int ct_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = 0;

	if (la != lb)
		return 0;
	for (size_t i = 0; i < la; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

void cookie_set(struct request *r, const char *name, const char *value, long max_age)
{
	resp_header_add(r, "Set-Cookie", arena_printf(r->a,
	    "%s=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%ld%s", name, value,
	    max_age, r->conf->secure_cookies ? "; Secure" : ""));
}

static void anon_csrf(struct request *r)
{
	const char *c = req_cookie(r, "ccr_csrf");

	if (is_token(c)) {
		snprintf(r->csrf, sizeof(r->csrf), "%s", c);
		return;
	}
	if (token_new(r->csrf) == -1)
		return;
	cookie_set(r, "ccr_csrf", r->csrf, r->conf->session_absolute);
}

static const char Q_SESSION[] =
    "SELECT u.id, u.role, u.state, u.email, u.first_name, u.last_name, s.csrf, "
    "s.last_seen < NOW() - INTERVAL 60 SECOND "
    "FROM sessions s JOIN users u ON u.id = s.user_id "
    "WHERE s.id_hash = ? AND s.last_seen > NOW() - INTERVAL ? SECOND "
    "AND s.created_at > NOW() - INTERVAL ? SECOND AND u.state = 'active'";
/* last_seen moves at most once a minute: no write on most requests */
static const char Q_TOUCH[] = "UPDATE sessions SET last_seen = NOW() WHERE id_hash = ?";

/* load: r->user and r->csrf from the cookies; touch says whether this
 * request is activity that moves last_seen (the idle timeout). */
static int load(struct request *r, int touch)
{
	const char *tok = req_cookie(r, "ccr_session");
	struct db_rows rows;
	char hash[65];
	int n;

	if (!is_token(tok)) {
		anon_csrf(r);
		return 0;
	}
	sha256_hex(tok, hash);
	n = db_query(r->a, &rows, Q_SESSION, "sii", hash, (long long)r->conf->session_idle,
	    (long long)r->conf->session_absolute);
	if (n < 0)
		return -1;
	if (n == 0) {
		cookie_set(r, "ccr_session", "", 0);
		anon_csrf(r);
		return 0;
	}
	struct user *u = arena_alloc(r->a, sizeof(*u));
	u->id = atoll(DB_CELL(&rows, 0, 0));
	snprintf(u->role, sizeof(u->role), "%s", DB_CELL(&rows, 0, 1));
	snprintf(u->state, sizeof(u->state), "%s", DB_CELL(&rows, 0, 2));
	snprintf(u->email, sizeof(u->email), "%s", DB_CELL(&rows, 0, 3));
	snprintf(u->first_name, sizeof(u->first_name), "%s", DB_CELL(&rows, 0, 4));
	snprintf(u->last_name, sizeof(u->last_name), "%s", DB_CELL(&rows, 0, 5));
	snprintf(r->csrf, sizeof(r->csrf), "%s", DB_CELL(&rows, 0, 6));
	r->user = u;
	r->session_hash = arena_strdup(r->a, hash);
	if (touch && atoi(DB_CELL(&rows, 0, 7)) && db_exec(Q_TOUCH, "s", hash) < 0)
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
    "INSERT INTO sessions (id_hash, user_id, csrf, created_at, last_seen, addr) "
    "VALUES (?, ?, ?, NOW(), NOW(), ?)";

/* session_create: a fresh session for user_id (login, registration,
 * privilege change) — a new id every time (SPEC §6).  The old session of
 * this browser, if any, is deleted.  Runs inside the caller's transaction
 * when there is one.  0 / -1. */
int session_create(struct request *r, long long user_id)
{
	char tok[65], hash[65], csrf[65];

	if (token_new(tok) == -1 || token_new(csrf) == -1)
		return -1;
	sha256_hex(tok, hash);
	if (r->session_hash && session_end(r) == -1)
		return -1;
	if (db_exec(Q_NEW, "siss", hash, user_id, csrf, r->remote_addr) < 0)
		return -1;
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
	if (r->session_hash && db_exec(Q_END, "s", r->session_hash) < 0)
		return -1;
	r->session_hash = NULL;
	cookie_set(r, "ccr_session", "", 0);
	return 0;
}

/* session_end_all: every session of the user (password change, disable). 0 / -1. */
int session_end_all(long long user_id)
{
	return db_exec(Q_END_ALL, "i", user_id) < 0 ? -1 : 0;
}

/* csrf_ok: 1 when the form's csrf_token matches the session's (or the
 * anonymous double-submit cookie's) token, else 0. */
int csrf_ok(const struct request *r)
{
	const char *t = req_form(r, "csrf_token");

	return r->csrf[0] && t && ct_equal(t, r->csrf);
}

/* The one-time flash: a number in a cookie naming one of these fixed
 * messages, so no user text ever travels in it. */
static const struct {
	const char *text, *kind;
} flashes[FLASH__MAX] = {
	[FLASH_NONE] = { NULL, NULL },
	[FLASH_WELCOME] = { "Welcome", "ok" },
	[FLASH_AGENT_REQUESTED] = { "Your request was sent to the admin", "ok" },
	[FLASH_RESET_SENT] = { "If an account exists for that email, a code has been sent", "ok" },
	[FLASH_PASSWORD_CHANGED] = { "Password changed. Please log in", "ok" },
	[FLASH_LOGGED_OUT] = { "You have been logged out", "ok" },
	[FLASH_ACCOUNT_DELETED] = { "Your account has been deleted", "ok" },
	[FLASH_TICKET_CREATED] = { "Ticket created", "ok" },
	[FLASH_AGENT_ASSIGNED] = { "Agent assigned", "ok" },
	[FLASH_TICKET_CLOSED] = { "Ticket closed", "ok" },
	[FLASH_TICKET_RESOLVED] = { "Ticket resolved", "ok" },
	[FLASH_TICKET_REOPENED] = { "Ticket reopened", "ok" },
	[FLASH_RATED] = { "Thank you for your rating", "ok" },
	[FLASH_AGENT_CREATED] = { "Agent created", "ok" },
	[FLASH_AGENT_APPROVED] = { "Agent approved", "ok" },
	[FLASH_AGENT_REJECTED] = { "Agent request rejected", "ok" },
	[FLASH_AGENT_DISABLED] = { "Agent disabled", "ok" },
	[FLASH_SESSION_ENDED] = { "Please log in again", "error" },
};

void flash_set(struct request *r, enum flash f)
{
	resp_header_add(r, "Set-Cookie", arena_printf(r->a,
	    "ccr_flash=%d; Path=/; HttpOnly; SameSite=Lax; Max-Age=60%s", (int)f,
	    r->conf->secure_cookies ? "; Secure" : ""));
}

void flash_take(struct request *r, struct vdict *top)
{
	const char *c = req_cookie(r, "ccr_flash");
	char *end;
	long f;

	if (c == NULL || *c == '\0')
		return;
	f = strtol(c, &end, 10);
	cookie_set(r, "ccr_flash", "", 0);
	if (*end || f <= FLASH_NONE || f >= FLASH__MAX)
		return;
	struct vdict *d = vdict_section(top, "FLASH");
	vdict_set(d, "FLASH_TEXT", flashes[f].text);
	vdict_set(d, "FLASH_KIND", flashes[f].kind);
}

/*
 * code.c — one-time codes (table password_codes): 8 decimal digits mailed
 * to the address stored for the account, kept only as a SHA-256 of
 * "user id:code".  A reset code lives 10 minutes, an agent's invitation 72
 * hours; each is single use, dead after 5 wrong tries and voided by a
 * newer code for the same account (README "Accounts and security").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "extern.h"

#define RESET_TTL 600            /* reset code: 10 minutes */
#define INVITE_TTL (72 * 3600)   /* agent invitation code: 72 hours */
#define CODE_TRIES 5

static const char Q_VOID[] =
    "UPDATE password_codes SET used_at = NOW() WHERE user_id = ? AND used_at IS NULL";
static const char Q_NEW[] =
    "INSERT INTO password_codes (user_id, purpose, code_hash, created_at, expires_at) "
    "VALUES (?, ?, ?, NOW(), NOW() + INTERVAL ? SECOND)";
static const char Q_RESETS_RECENT[] =
    "SELECT COUNT(*) FROM password_codes WHERE user_id = ? AND purpose = 'reset' "
    "AND created_at > NOW() - INTERVAL 1 HOUR";
static const char Q_LIVE[] =
    "SELECT id, code_hash FROM password_codes WHERE user_id = ? AND used_at IS NULL "
    "AND expires_at > NOW() AND tries < ? ORDER BY id DESC LIMIT 1";
enum { LIVE_ID, LIVE_HASH, LIVE__N };
static const char Q_TRY[] = "UPDATE password_codes SET tries = tries + 1 WHERE id = ?";
static const char Q_CLAIM[] =
    "UPDATE password_codes SET used_at = NOW() WHERE id = ? AND used_at IS NULL "
    "AND expires_at > NOW() AND tries < ?";
static const char Q_DROP[] = "DELETE FROM password_codes WHERE user_id = ?";

/* code_new: 8 decimal digits from getrandom, uniformly. 0 / -1. */
static int code_new(char out[9])
{
	uint32_t x;

	do {
		if (getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x))
			return -1;
	} while (x >= 4000000000u);   /* reject the biased tail */
	snprintf(out, 9, "%08u", (unsigned)(x % 100000000u));
	return 0;
}

/* code_hash: what is stored for `code` of user_id. 0 / -1. */
static int code_hash(long long user_id, const char *code, char out[65])
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%lld:%s", user_id, code);
	return crypto_sha256_hex(buf, strlen(buf), out);
}

/* Per purpose: its SQL name, how long a code lives, the mail carrying it. */
static const struct {
	const char *name;
	long ttl;
	const char *mail;
} purposes[CODE__MAX] = {
	[CODE_RESET] = { "reset", RESET_TTL, "reset_code" },
	[CODE_INVITE] = { "invite", INVITE_TTL, "agent_created" },
};

/* code_issue: void the user's old codes, store a new one hashed and queue
 * the mail carrying it to the address stored for the account.  In the
 * caller's transaction.  0 / -1. */
int code_issue(const struct ctx *x, long long uid, const char *name, enum code_purpose purpose)
{
	long ttl = purposes[purpose].ttl;
	char code[9], hash[65];
	struct view *v;
	const char *email = user_email(x->a, uid);

	if (email == NULL)
		return -1;
	if (code_new(code) == -1 || code_hash(uid, code, hash) == -1)
		return -1;
	if (db_exec(Q_VOID, DB_ARGS(P_INT(uid))) < 0 ||
	    db_exec(Q_NEW, DB_ARGS(P_INT(uid), P_STR(purposes[purpose].name), P_STR(hash), P_INT(ttl))) < 0)
		return -1;
	v = mail_new(x->conf, purposes[purpose].mail);
	if (v == NULL)
		return -1;
	vdict_set(view_body(v), "NAME", name);
	vdict_set(view_body(v), "CODE", code);
	vdict_set(view_body(v), "RESET_URL", arena_printf(x->a, "%s/password/reset?email=%s",
	    x->conf->base_url, url_encode(x->a, email)));
	return mail_queue(x, v, purposes[purpose].mail, email, uid, 0, ttl);
}

/* code_resets_recent: reset codes issued to uid in the last hour, or -1. */
int code_resets_recent(struct arena *a, long long uid)
{
	struct db_rows rows;

	if (db_query(a, &rows, Q_RESETS_RECENT, 1, DB_ARGS(P_INT(uid))) != 1)
		return -1;
	return (int)db_int(&rows, 0, 0);
}

/* code_check: the id of uid's live code when `code` is it; 0 when there
 * is none or it is not (then the wrong try counts against the code); -1
 * on failure. */
long long code_check(struct arena *a, long long uid, const char *code)
{
	struct db_rows rows;
	char hash[65];
	int n = db_query(a, &rows, Q_LIVE, LIVE__N, DB_ARGS(P_INT(uid), P_INT(CODE_TRIES)));

	if (n <= 0)
		return n;
	long long id = db_int(&rows, 0, LIVE_ID);
	if (code_hash(uid, code, hash) == -1)
		return -1;
	if (strlen(code) == 8 && crypto_equal(hash, DB_CELL(&rows, 0, LIVE_HASH)))
		return id;
	return db_exec(Q_TRY, DB_ARGS(P_INT(id))) < 0 ? -1 : 0;
}

/* code_claim: use code id up, in one atomic UPDATE, so of many parallel
 * submissions of one code exactly one wins.  1 won, 0 lost, -1 failure. */
int code_claim(long long id)
{
	long long n = db_exec(Q_CLAIM, DB_ARGS(P_INT(id), P_INT(CODE_TRIES)));

	return n < 0 ? -1 : n > 0;
}

/* code_drop_all: delete every code of uid (account deletion). 0 / -1. */
int code_drop_all(long long uid)
{
	return db_exec(Q_DROP, DB_ARGS(P_INT(uid))) < 0 ? -1 : 0;
}

/*
 * device.c — the browsers an account signs in from, and the login alert
 * (README "Login alerts and sessions").  A browser carries the cookie
 * `ccr_device`: 256 random bits, kept 400 days, only their SHA-256 stored
 * (table devices, per account).  A sign-in from a browser the account has
 * not used before mails the account "New sign-in to your account" with the
 * time, address and browser — except the account's first sign-in (no
 * browser known yet, as right after registration or after an admin made
 * the account).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "extern.h"

#define DEVICE_COOKIE_AGE (400L * 86400)   /* the longest a browser keeps a cookie */
#define BROWSER_MAX_CHARS 200

/* device_browser_line: a User-Agent header as one printable line of at
 * most BROWSER_MAX_CHARS characters (arena memory; "" for NULL): control
 * characters become spaces, text that is not UTF-8 keeps its ASCII only
 * (other bytes become '?'), a character cut at the end is dropped. */
char *device_browser_line(struct arena *a, const char *ua)
{
	if (ua == NULL)
		return arena_strdup(a, "");
	size_t n = strlen(ua);
	if (n > 4 * BROWSER_MAX_CHARS)
		n = 4 * BROWSER_MAX_CHARS;
	char *s = arena_strndup(a, ua, n);
	int valid = utf8_valid(s, strlen(s));
	if (!valid && n == 4 * BROWSER_MAX_CHARS) {
		/* the cut may have split the last character: judge without it */
		size_t k = n;
		while (k > n - 4 && ((unsigned char)s[k - 1] & 0xc0) == 0x80)
			k--;
		if (k > 0 && (unsigned char)s[k - 1] >= 0xc0)
			k--;
		if (utf8_valid(s, k)) {
			s[k] = '\0';
			valid = 1;
		}
	}
	for (unsigned char *p = (unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			*p = ' ';
		else if (*p >= 0x80 && !valid)
			*p = '?';
	}
	if (valid)
		utf8_truncate(s, BROWSER_MAX_CHARS);
	else if (strlen(s) > BROWSER_MAX_CHARS)
		s[BROWSER_MAX_CHARS] = '\0';
	return str_trim(s);
}

/* device_browser: the request's User-Agent as device_browser_line makes it. */
const char *device_browser(struct request *r)
{
	return device_browser_line(r->a, req_param(r, "HTTP_USER_AGENT"));
}

/* cookie_hash: the SHA-256 of this browser's device cookie, giving it a
 * new cookie when it has none (or a malformed one).  0 / -1. */
static int cookie_hash(struct request *r, char hash[65])
{
	const char *tok = cookie_get(r, "ccr_device");
	char fresh[65];

	if (!str_is_hex(tok, 64, 64)) {
		if (crypto_token(fresh) == -1)
			return -1;
		tok = fresh;
	}
	/* set again every time: the 400 days count from the last sign-in */
	cookie_set(r, "ccr_device", tok, DEVICE_COOKIE_AGE);
	return crypto_sha256_hex(tok, strlen(tok), hash);
}

static const char Q_KNOWN[] =
    "SELECT (SELECT COUNT(*) FROM devices WHERE user_id = ? AND id_hash = ?), "
    "(SELECT COUNT(*) FROM devices WHERE user_id = ?)";
enum { DK_THIS, DK_ANY, DK__N };
static const char Q_ADD[] =
    "INSERT INTO devices (user_id, id_hash, created_at, last_seen) VALUES (?, ?, NOW(), NOW()) "
    "ON DUPLICATE KEY UPDATE last_seen = NOW()";

/* device_signin: at a completed sign-in of uid (email: its stored
 * address), inside the caller's transaction: remember this browser, and
 * queue the login alert when it is new to an account that knew another.
 * alert 0 (registration) only remembers.  1 alerted, 0 not, -1 failed. */
int device_signin(struct request *r, long long uid, const char *email, int alert)
{
	struct db_rows rows;
	char hash[65];

	if (cookie_hash(r, hash) == -1)
		return -1;
	if (db_query(r->a, &rows, Q_KNOWN, DK__N, DB_ARGS(P_INT(uid), P_STR(hash), P_INT(uid))) != 1 ||
	    db_exec(Q_ADD, DB_ARGS(P_INT(uid), P_STR(hash))) < 0)
		return -1;
	if (!alert || db_int(&rows, 0, DK_THIS) > 0 || db_int(&rows, 0, DK_ANY) == 0)
		return 0;
	char when[40];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	const char *browser = device_browser(r);
	struct view *v = mail_new(r->conf, "login_alert");
	if (v) {
		vdict_set(view_body(v), "TIME", when);
		vdict_set(view_body(v), "ADDR", r->remote_addr);
		vdict_set(view_body(v), "BROWSER", *browser ? browser : "Unknown browser");
	}
	if (mail_queue(request_ctx(r), v, "login_alert", email, uid, 0, 0) == -1 ||
	    audit_add(request_ctx(r), uid, "login_new_browser", "") == -1)
		return -1;
	return 1;
}

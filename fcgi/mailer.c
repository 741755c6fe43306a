/*
 * mailer.c — the mailer process (README "Mail"): claim due outbox rows with
 * SELECT … FOR UPDATE SKIP LOCKED and write the claim (who, lease until
 * when) in the same transaction, send each through libesmtp, then mark it
 * sent, schedule a retry (1 min doubling to 1 h, for give_up_after) or
 * fail it (5xx).  The claim is a write, so on Galera a second claimer gets
 * error 1213 and retries.
 */
#include <stddef.h>
#include <auth-client.h>
#include <errno.h>
#include <libesmtp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

#define BATCH 10
#define LEASE 300                /* seconds a claim holds */
#define IDLE_WAIT_MS 1000

static char me[160];             /* claimed_by: host:pid */

/* Due rows nobody holds, and rows this mailer still holds: a claim happens
 * with no batch in flight, so a row still claimed by me is what a batch cut
 * short by the database left (its node died between the claim and the
 * sends); waiting for its lease would hold those mails for LEASE seconds
 * (claim_due). */
static const char Q_DUE[] =
    "SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= NOW() "
    "AND (lease_until IS NULL OR lease_until < NOW() OR claimed_by = ?) "
    "ORDER BY next_attempt_at, id LIMIT 10 FOR UPDATE SKIP LOCKED";
static const char Q_CLAIM[] =
    "UPDATE outbox SET claimed_by = ?, lease_until = NOW() + INTERVAL ? SECOND WHERE id = ?";
static const char Q_ROW[] =
    "SELECT to_addr, subject, body, message_id, attempts, "
    "UNIX_TIMESTAMP(created_at), expires_at IS NOT NULL AND expires_at < NOW(), "
    "DATE_FORMAT(created_at, '%a, %d %b %Y %H:%i:%s +0000'), reply_to, in_reply_to "
    "FROM outbox WHERE id = ? AND claimed_by = ? AND status = 'pending'";
enum {
	OR_TO, OR_SUBJECT, OR_BODY, OR_MSGID, OR_ATTEMPTS, OR_CREATED, OR_EXPIRED, OR_DATE,
	OR_REPLY_TO, OR_IN_REPLY_TO, OR__N
};
/* A mail with an expiry carries a code or token: once it is sent, failed or
 * dropped its body is erased, and every mail's Reply-To (it holds a reply
 * token) with it, so no secret stays readable at rest (README "Mail"). */
#define ERASE_CODE "body = IF(expires_at IS NULL, body, ''), reply_to = NULL, "
static const char Q_RENEW[] =
    "UPDATE outbox SET lease_until = NOW() + INTERVAL ? SECOND "
    "WHERE id = ? AND claimed_by = ? AND status = 'pending'";
static const char Q_RELEASE[] =
    "UPDATE outbox SET claimed_by = NULL, lease_until = NULL "
    "WHERE id = ? AND claimed_by = ? AND status = 'pending'";
static const char Q_SENT[] =
    "UPDATE outbox SET status = 'sent', sent_at = NOW(), attempts = attempts + 1, " ERASE_CODE
    "lease_until = NULL, last_error = NULL WHERE id = ? AND claimed_by = ?";
static const char Q_RETRY[] =
    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, lease_until = NULL, "
    "claimed_by = NULL, next_attempt_at = NOW() + INTERVAL ? SECOND WHERE id = ? AND claimed_by = ?";
static const char Q_FAILED[] =
    "UPDATE outbox SET " ERASE_CODE "status = ?, attempts = attempts + ?, last_error = ?, "
    "lease_until = NULL WHERE id = ? AND claimed_by = ?";
/* codes whose lifetime ran out while they waited for a retry */
static const char Q_EXPIRE[] =
    "UPDATE outbox SET status = 'dropped', last_error = 'expired before delivery', " ERASE_CODE
    "lease_until = NULL WHERE status = 'pending' AND expires_at < NOW() "
    "AND (lease_until IS NULL OR lease_until < NOW())";
static const char Q_DEPTH[] = "SELECT COUNT(*) FROM outbox WHERE status = 'pending'";

/* claim: up to BATCH due rows; their ids in ids[].  Count, or -1. */
static int claim(struct arena *a, long long ids[BATCH])
{
	return claim_due(a, Q_DUE, Q_CLAIM, me, LEASE, ids, BATCH);
}

/* The address inside "Name <addr>", or the whole string. */
static void addr_of(const char *from, char *out, size_t n)
{
	const char *lt = strchr(from, '<'), *gt = lt ? strchr(lt, '>') : NULL;

	if (lt && gt && gt > lt + 1)
		snprintf(out, n, "%.*s", (int)(gt - lt - 1), lt + 1);
	else
		snprintf(out, n, "%s", from);
}

/* RFC 2047 encoded-word (base64) for a non-ASCII subject. */
static char *subject_header(struct arena *a, const char *s)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(s), o = 0;
	int ascii = 1;
	char *out;

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			ascii = 0;
	if (ascii)
		return arena_strdup(a, s);
	out = arena_alloc(a, n * 2 + 32);
	memcpy(out, "=?UTF-8?B?", 10);
	o = 10;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)s[i] << 16;
		if (i + 1 < n)
			v |= (unsigned char)s[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)s[i + 2];
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	memcpy(out + o, "?=", 3);
	return out;
}

/* The whole RFC 5322 message with CRLF line ends. */
static char *build_message(struct arena *a, const struct conf *c, const char *to,
                           const char *subject, const char *body, const char *mid,
                           const char *date, const char *reply_to, const char *thread)
{
	size_t n = strlen(body), o = 0;
	char *crlf = arena_alloc(a, 2 * n + 3);

	for (size_t i = 0; i < n; i++) {
		if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r'))
			crlf[o++] = '\r';
		crlf[o++] = body[i];
	}
	if (o < 2 || crlf[o - 1] != '\n') {
		crlf[o++] = '\r';
		crlf[o++] = '\n';
	}
	crlf[o] = '\0';
	/* threading and the reply address (README "Email channel") */
	const char *more = "";
	if (reply_to && header_safe(reply_to))
		more = arena_printf(a, "Reply-To: <%s>\r\n", reply_to);
	if (thread && header_safe(thread))
		more = arena_printf(a, "%sIn-Reply-To: %s\r\nReferences: %s\r\n", more, thread, thread);
	return arena_printf(a,
	    "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n%s"
	    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\nAuto-Submitted: auto-generated\r\n\r\n%s",
	    c->smtp_from, to, subject_header(a, subject), date, mid, more, crlf);
}

static int auth_cb(auth_client_request_t req, char **result, int fields, void *arg)
{
	const struct conf *c = arg;

	for (int i = 0; i < fields; i++) {
		if (req[i].flags & AUTH_USER)
			result[i] = (char *)(uintptr_t)c->smtp_user;
		else if (req[i].flags & AUTH_PASS)
			result[i] = (char *)(uintptr_t)c->smtp_password;
		else
			result[i] = NULL;
	}
	return 1;
}

/* send_one: one SMTP conversation.  Returns the SMTP reply code of the
 * final step (2xx sent, 4xx/5xx refused), or 0 when no server answered;
 * why holds a short reason. */
static int send_one(const struct conf *c, const char *to, const char *msg, char *why, size_t whylen)
{
	smtp_session_t s = smtp_create_session();
	smtp_message_t m;
	smtp_recipient_t rc;
	auth_context_t auth = NULL;
	char server[300], from[256];
	int code = 0;

	if (s == NULL) {
		snprintf(why, whylen, "out of memory");
		return 0;
	}
	snprintf(server, sizeof(server), "%s:%d", c->smtp_host, c->smtp_port);
	addr_of(c->smtp_from, from, sizeof(from));
	smtp_set_server(s, server);
	smtp_starttls_enable(s, c->smtp_starttls == STARTTLS_REQUIRED ? Starttls_REQUIRED
	    : c->smtp_starttls == STARTTLS_OPTIONAL ? Starttls_ENABLED : Starttls_DISABLED);
	for (int w = Timeout_GREETING; w <= Timeout_DATA2; w++)
		smtp_set_timeout(s, w | Timeout_OVERRIDE_RFC2822_MINIMUM, c->smtp_timeout * 1000L); /* ms */
	if (c->smtp_user[0]) {
		auth = auth_create_context();
		auth_set_mechanism_flags(auth, AUTH_PLUGIN_PLAIN, 0);
		auth_set_interact_cb(auth, auth_cb, (void *)(uintptr_t)c);
		smtp_auth_set_context(s, auth);
	}
	m = smtp_add_message(s);
	smtp_set_reverse_path(m, from);
	smtp_set_message_str(m, (void *)(uintptr_t)msg);
	smtp_8bitmime_set_body(m, E8bitmime_8BITMIME);
	rc = smtp_add_recipient(m, to);
	if (!smtp_start_session(s)) {
		char buf[128];
		snprintf(why, whylen, "smtp: %s", smtp_strerror(smtp_errno(), buf, sizeof(buf)));
	} else {
		/* copy the codes: the status structs die with the session */
		const smtp_status_t *rs = smtp_recipient_status(rc);
		const smtp_status_t *ms = smtp_message_transfer_status(m);
		if (rs && rs->code >= 400)
			code = rs->code;
		else if (ms)
			code = ms->code;
		const char *text = (rs && rs->code >= 400) ? rs->text : (ms ? ms->text : NULL);
		snprintf(why, whylen, "%d %s", code, text ? text : "");
		for (char *p = why; *p; p++)
			if (*p == '\r' || *p == '\n')
				*p = ' ';
	}
	smtp_destroy_session(s);
	if (auth)
		auth_destroy_context(auth);
	return code;
}

/* A stop (SIGTERM/SIGINT, also how a reload retires this mailer) waits
 * blocked until the SMTP transaction in flight is over; look for it between
 * rows, so the rest of the batch is released instead of sent. */
static int stop_pending(void)
{
	sigset_t p;

	if (!child_stop && sigpending(&p) == 0 && (sigismember(&p, SIGTERM) || sigismember(&p, SIGINT)))
		child_stop = 1;
	return child_stop;
}

enum mark { M_SENT, M_FAILED, M_DROPPED, M_RETRY };

/* mark: record the outcome of a send.  A mail the server accepted must not
 * stay leased and be sent again when the lease runs out, so a database
 * error is retried with back-off (0.2 s doubling, about 6 s in all). */
static void mark(enum mark m, long long id, const char *why, long long delay)
{
	long ms = 200;

	for (int attempt = 0; attempt < 6; attempt++) {
		long long rc;

		db_request_start();
		switch (m) {
		case M_SENT:
			rc = db_exec(Q_SENT, DB_ARGS(P_INT(id), P_STR(me)));
			break;
		case M_FAILED:
			rc = db_exec(Q_FAILED, DB_ARGS(P_STR("failed"), P_INT(1LL), P_STR(why), P_INT(id), P_STR(me)));
			break;
		case M_DROPPED:
			rc = db_exec(Q_FAILED, DB_ARGS(P_STR("dropped"), P_INT(0LL), P_STR(why), P_INT(id), P_STR(me)));
			break;
		default:
			rc = db_exec(Q_RETRY, DB_ARGS(P_STR(why), P_INT(delay), P_INT(id), P_STR(me)));
			break;
		}
		if (rc >= 0)
			return;
		log_warn("mail %lld: cannot record its outcome (%s); trying again in %ld ms",
		    id, db_last_msg(), ms);
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		ms *= 2;
	}
	log_err("mail %lld: outcome not recorded; it is sent again (at this mailer's next claim, "
	    "or after its lease)", id);
}

static void deliver(struct arena *a, const struct conf *c, long long id)
{
	struct db_rows rows;
	char why[512];

	/* the claim may be old (a slow server earlier in the batch): renew it,
	 * and send only a row still claimed by this mailer */
	if (db_exec(Q_RENEW, DB_ARGS(P_INT(LEASE), P_INT(id), P_STR(me))) < 0)
		return;
	if (db_query(a, &rows, Q_ROW, OR__N, DB_ARGS(P_INT(id), P_STR(me))) != 1) {
		log_info("mail %lld skipped: no longer claimed by %s", id, me);
		return;
	}
	const char *to = DB_CELL(&rows, 0, OR_TO), *subject = DB_CELL(&rows, 0, OR_SUBJECT);
	const char *body = DB_CELL(&rows, 0, OR_BODY), *mid = DB_CELL(&rows, 0, OR_MSGID);
	int attempts = (int)db_int(&rows, 0, OR_ATTEMPTS);
	long long created = db_int(&rows, 0, OR_CREATED);
	if (db_int(&rows, 0, OR_EXPIRED)) {
		/* a reset code past its lifetime is useless: drop it (issue 3) */
		mark(M_DROPPED, id, "expired before delivery", 0);
		log_info("mail %lld dropped: expired before delivery", id);
		return;
	}
	char *msg = build_message(a, c, to, subject, body, mid, DB_CELL(&rows, 0, OR_DATE),
	    DB_CELL(&rows, 0, OR_REPLY_TO), DB_CELL(&rows, 0, OR_IN_REPLY_TO));
	int code = send_one(c, to, msg, why, sizeof(why));
	if (code >= 200 && code < 300) {
		mark(M_SENT, id, NULL, 0);
		metrics_add(MET_MAIL_SENT, 1);
		return;
	}
	if (code >= 500) {
		mark(M_FAILED, id, why, 0);
		metrics_add(MET_MAIL_FAILED, 1);
		log_err("mail %lld failed permanently: %s", id, why);
		return;
	}
	if ((long long)time(NULL) - created > c->smtp_give_up_after) {
		mark(M_FAILED, id, why, 0);
		metrics_add(MET_MAIL_FAILED, 1);
		log_err("mail %lld failed: gave up after %ld s: %s", id, c->smtp_give_up_after, why);
		return;
	}
	long d = retry_backoff(attempts + 1);
	mark(M_RETRY, id, why, d);
	metrics_add(MET_MAIL_RETRIED, 1);
	log_warn("mail %lld not sent (%s); retry in %ld s", id, why, d);
}

/* mailer_main: the mailer's loop until SIGTERM.  Returns the exit code. */
int mailer_main(const struct conf *c)
{
	sigset_t waitmask;
	struct arena *a = arena_new(0);
	char host[128];
	double last_depth_log = 0;

	child_signals(&waitmask);
	prctl(PR_SET_NAME, "ccrd-mailer");
	if (view_root(c->views_dir) == -1)
		return EX_BADCONF;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(me, sizeof(me), "%s:%d", host, (int)getpid());
	auth_client_init();
	db_init(c);
	log_info("mailer started as %s", me);
	while (!child_stop) {
		long long ids[BATCH];
		db_request_start();   /* a database that was down gets a fresh try each round */
		int n = claim(a, ids);
		int i = 0;
		for (; i < n && !stop_pending(); i++)
			deliver(a, c, ids[i]);
		for (; i < n; i++)         /* stopping: leave the rest to the next mailer now */
			db_exec(Q_RELEASE, DB_ARGS(P_INT(ids[i]), P_STR(me)));
		if (n <= 0) {
			db_exec(Q_EXPIRE, DB_NOARGS);
			if (clock_ms() - last_depth_log > 600e3) {
				struct db_rows rows;
				if (db_query(a, &rows, Q_DEPTH, 1, DB_NOARGS) == 1)
					log_info("mailer: outbox has %s pending", DB_CELL(&rows, 0, 0));
				last_depth_log = clock_ms();
			}
			child_idle(c, IDLE_WAIT_MS, &waitmask);
		}
		arena_reset(a);
	}
	db_close();
	auth_client_exit();
	arena_free(a);
	log_info("mailer stopped");
	return 0;
}

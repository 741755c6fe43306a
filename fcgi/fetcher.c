/*
 * fetcher.c — the IMAP fetcher process (README "Email channel"), run by
 * the master when [mail_in] imap_url is set.  Every imap_poll_interval
 * seconds it opens one IMAP session (libcurl; one easy handle, so the
 * connection stays open for the whole batch), lists the folder's UIDs and,
 * for each in order:
 *
 *   1. claims it in imap_claims (mailbox key + UID, a lease) in a
 *      transaction: a live claim of another fetcher means skip it;
 *   2. downloads the raw message, bounded (below);
 *   3. hands it to mailin_deliver; only when that committed an outcome
 *   4. moves it to imap_done_folder (UID MOVE, or UID COPY + \Deleted +
 *      UID EXPUNGE on a server without MOVE), then drops the claim.
 *
 * A database that is down stops the batch: the message stays where it is
 * and the next poll tries again.  A crash between 3 and 4 is harmless: the
 * next run delivers the message again, the Message-ID rule makes that a
 * no-op, and it is moved then.
 *
 * Size bound: a message is fetched as BODY[]<0.max_bytes + 1 MiB> and the
 * write callback keeps no more than that; a larger message is handed over
 * truncated at that length, which is above max_bytes, so mailin_deliver
 * files it as too large (the rejected list keeps the first max_bytes +
 * 1 MiB).  Memory never holds more than that per message.
 *
 * IMAP facts this relies on (checked with curl 7.88 against Dovecot 2.3):
 * libcurl passes every server line to CURLOPT_HEADERFUNCTION (so SELECT's
 * UIDVALIDITY and a command's COPYUID are seen there); a custom FETCH loses
 * the literal, so downloads use the ;UID=N;PARTIAL=0.N URL form; ;UIDVALIDITY=V
 * in the mailbox part makes libcurl refuse a mailbox re-selected with
 * another UIDVALIDITY; UID MOVE / UID COPY of a UID that is gone answer OK
 * ("No messages found"), so a move counts only when COPYUID names the UID;
 * a custom command answered NO (CREATE of a folder that exists) makes
 * libcurl close the connection, so the done folder is created once, not
 * every poll.
 *
 * The folder is listed with UID SEARCH UNDELETED: a message flagged
 * \Deleted is on its way out (a COPY whose EXPUNGE failed).  Each batch
 * first drops stale claims: its own fetcher's (none is held between
 * batches) and those of dead fetchers on this host.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "extern.h"

#define SLACK (1024L * 1024)        /* fetched past max_bytes, so "too large" is seen */
#define BATCH_MAX 500               /* UIDs per session; the next one starts at once */
#define SEARCH_MAX (4L * 1024 * 1024)  /* bytes of a UID SEARCH answer kept */
#define HEAD_MAX (64L * 1024)       /* bytes of a command's server lines kept */
#define LEASE_MIN 300               /* seconds; plus twice imap_timeout */

static char me[160];                /* claimed_by: host:pid */
static char host[128];

/* A bounded byte buffer: bytes past max are counted, not kept. */
struct buf {
	char *p;
	size_t len, cap, max, dropped;
};

struct fetcher {
	const struct conf *c;
	struct arena *a;
	CURL *h;
	char err[CURL_ERROR_SIZE];
	CURLcode rc;
	struct buf body, head;
	char base[600];                 /* scheme://host[:port] */
	char *box;                      /* base/FOLDER (URL-escaped) */
	char *boxv;                     /* box;UIDVALIDITY=V */
	char folder_q[300], done_q[300];/* the folders as IMAP quoted strings */
	char uidvalidity[24];           /* from the last SELECT answer */
	char key[65];                   /* imap_claims.mailbox_key */
	int can_move, uidplus;
	int done_exists;                /* CREATE done (or it existed) */
	long lease;
};

enum batch_end { B_DONE, B_MORE, B_IMAP_ERROR, B_DB_DOWN, B_STOPPED };
enum claim { CLAIM_OK, CLAIM_TAKEN, CLAIM_DB_DOWN };
enum moved { MOVED, MOVE_GONE, MOVE_ERROR };

static const char Q_CLAIM_GET[] =
    "SELECT claimed_by, lease_until < NOW() FROM imap_claims "
    "WHERE mailbox_key = ? AND uid = ? FOR UPDATE";
enum { CL_BY, CL_EXPIRED, CL__N };
static const char Q_CLAIM_NEW[] =
    "INSERT INTO imap_claims (mailbox_key, uid, claimed_by, lease_until) "
    "VALUES (?, ?, ?, NOW() + INTERVAL ? SECOND)";
static const char Q_CLAIM_TAKE[] =
    "UPDATE imap_claims SET claimed_by = ?, lease_until = NOW() + INTERVAL ? SECOND "
    "WHERE mailbox_key = ? AND uid = ?";
/* this host's claimers, for claims_tidy (claimed_by is host:pid) */
static const char Q_CLAIMERS[] =
    "SELECT DISTINCT claimed_by FROM imap_claims WHERE claimed_by LIKE CONCAT(?, ':%')";
static const char Q_CLAIMS_OF[] = "DELETE FROM imap_claims WHERE claimed_by = ?";
static const char Q_CLAIM_DROP[] =
    "DELETE FROM imap_claims WHERE mailbox_key = ? AND uid = ? AND claimed_by = ?";

/* ---- buffers and libcurl callbacks -------------------------------------- */

static void buf_reset(struct buf *b, size_t max)
{
	b->len = 0;
	b->dropped = 0;
	b->max = max;
	if (b->p)
		b->p[0] = '\0';
}

/* buf_add: append what fits under max (always NUL-terminated); the rest is
 * counted in dropped.  0, or -1 when out of memory. */
static int buf_add(struct buf *b, const char *d, size_t n)
{
	size_t keep = b->len + n > b->max ? b->max - b->len : n;

	if (b->len + keep + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 16384;
		while (ncap < b->len + keep + 1)
			ncap *= 2;
		char *np = realloc(b->p, ncap);
		if (np == NULL)
			return -1;
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, d, keep);
	b->len += keep;
	b->p[b->len] = '\0';
	b->dropped += n - keep;
	return 0;
}

static size_t on_body(char *d, size_t size, size_t n, void *arg)
{
	struct fetcher *f = arg;

	return buf_add(&f->body, d, size * n) == 0 ? size * n : 0;
}

/* A CAPABILITY line: note MOVE and UIDPLUS. */
static void note_caps(struct fetcher *f, const char *line)
{
	const char *p = strstr(line, "CAPABILITY ");

	if (p == NULL)
		return;
	f->can_move = f->uidplus = 0;
	for (p += 11; *p && *p != ']' && *p != '\r' && *p != '\n';) {
		size_t k = strcspn(p, " ]\r\n");
		if (k == 4 && strncasecmp(p, "MOVE", 4) == 0)
			f->can_move = 1;
		if (k == 7 && strncasecmp(p, "UIDPLUS", 7) == 0)
			f->uidplus = 1;
		p += k;
		while (*p == ' ')
			p++;
	}
}

/* Every server line comes here (libcurl's pingpong layer passes them all),
 * one line per call. */
static size_t on_header(char *d, size_t size, size_t n, void *arg)
{
	struct fetcher *f = arg;
	size_t len = size * n;
	char line[512];

	if (buf_add(&f->head, d, len) == -1)
		return 0;
	snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) - 1 ? len : sizeof(line) - 1), d);
	const char *v = strstr(line, "[UIDVALIDITY ");
	if (strncmp(line, "* OK ", 5) == 0 && v) {
		size_t k = strspn(v + 13, "0123456789");
		if (k > 0 && k < sizeof(f->uidvalidity))
			snprintf(f->uidvalidity, sizeof(f->uidvalidity), "%.*s", (int)k, v + 13);
	}
	if (strstr(line, "CAPABILITY "))
		note_caps(f, line);
	return len;
}

/* ---- IMAP operations ------------------------------------------------------ */

/* perform: one libcurl transfer on the batch's handle (its connection is
 * reused; a dropped one is reopened and logged in again by libcurl).
 * custom NULL: a plain URL operation (a download).  0 / -1 (f->rc). */
static int perform(struct fetcher *f, const char *url, const char *custom, size_t body_max)
{
	buf_reset(&f->body, body_max);
	buf_reset(&f->head, HEAD_MAX);
	f->err[0] = '\0';
	curl_easy_setopt(f->h, CURLOPT_URL, url);
	curl_easy_setopt(f->h, CURLOPT_CUSTOMREQUEST, custom);
	f->rc = curl_easy_perform(f->h);
	return f->rc == CURLE_OK ? 0 : -1;
}

/* imap_error: log a failed operation with libcurl's words, count it. */
static void imap_error(struct fetcher *f, const char *what, long long uid)
{
	char u[32] = "";

	if (uid > 0)
		snprintf(u, sizeof(u), " uid %lld", uid);
	log_err("fetcher: %s%s failed: %s (curl %d)", what, u,
	    f->err[0] ? f->err : curl_easy_strerror(f->rc), (int)f->rc);
	metrics_add(MET_IMAP_ERRORS, 1);
}

/* The handle of one session, with every option that does not change. */
static CURL *session_new(struct fetcher *f)
{
	const struct conf *c = f->c;
	CURL *h = curl_easy_init();
	int imaps = strncmp(c->imap_url, "imaps://", 8) == 0;

	if (h == NULL)
		return NULL;
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "imap,imaps");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, f->err);
	curl_easy_setopt(h, CURLOPT_USERNAME, c->imap_user);
	curl_easy_setopt(h, CURLOPT_PASSWORD, c->imap_password);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)c->imap_timeout);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)c->imap_timeout);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	/* imaps:// is TLS from the first byte; imap:// upgrades with STARTTLS
	 * as imap_starttls says (off only for loopback test servers) */
	curl_easy_setopt(h, CURLOPT_USE_SSL, imaps ? (long)CURLUSESSL_ALL
	    : c->imap_starttls == STARTTLS_REQUIRED ? (long)CURLUSESSL_ALL
	    : c->imap_starttls == STARTTLS_OPTIONAL ? (long)CURLUSESSL_TRY : (long)CURLUSESSL_NONE);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, f);
	return h;
}

/* COPYUID in the server's lines names uid among the source UIDs
 * ("[COPYUID <validity> <source set> <destination set>]", RFC 4315). */
static int copyuid_has(const char *lines, long long uid)
{
	for (const char *p = strstr(lines, "[COPYUID "); p; p = strstr(p + 1, "[COPYUID ")) {
		const char *s = p + 9;
		s += strspn(s, "0123456789");
		if (*s++ != ' ')
			continue;
		/* the set: n, n:m, separated by commas */
		while (*s >= '0' && *s <= '9') {
			char *end;
			long long lo = strtoll(s, &end, 10), hi = lo;
			if (*end == ':')
				hi = strtoll(end + 1, &end, 10);
			if ((uid >= lo && uid <= hi) || (uid >= hi && uid <= lo))
				return 1;
			if (*end != ',')
				break;
			s = end + 1;
		}
	}
	return 0;
}

/* An untagged "* N EXPUNGE" line (servers without UIDPLUS say no more). */
static int has_expunge(const char *lines)
{
	for (const char *p = strstr(lines, " EXPUNGE"); p; p = strstr(p + 1, " EXPUNGE"))
		if (p[8] == '\r' || p[8] == '\n' || p[8] == '\0')
			return 1;
	return 0;
}

/* ensure_done: CREATE the done folder unless known to exist; "already
 * exists" is fine.  0 / -1 only when the server could not be reached. */
static int ensure_done(struct fetcher *f)
{
	char *cmd = arena_printf(f->a, "CREATE %s", f->done_q);
	char *url = arena_printf(f->a, "%s/", f->base);

	if (f->done_exists)
		return 0;
	if (perform(f, url, cmd, HEAD_MAX) == 0 || strstr(f->head.p ? f->head.p : "", "ALREADYEXISTS")
	    || (f->rc == CURLE_QUOTE_ERROR && f->head.p && strcasestr(f->head.p, "exists"))) {
		f->done_exists = 1;
		return 0;
	}
	if (f->rc == CURLE_QUOTE_ERROR) {   /* the server said no: moves will tell */
		log_warn("fetcher: CREATE %s refused: %.200s", f->c->imap_done_folder,
		    f->head.p ? f->head.p : "");
		return 0;
	}
	imap_error(f, "connect and log in", 0);
	return -1;
}

/* move: the message out of the folder into the done folder. */
static enum moved move(struct fetcher *f, long long uid)
{
	char *cmd;

	if (f->can_move) {
		cmd = arena_printf(f->a, "UID MOVE %lld %s", uid, f->done_q);
		if (perform(f, f->boxv, cmd, HEAD_MAX) == -1) {
			imap_error(f, "UID MOVE", uid);
			f->done_exists = 0;     /* perhaps it was deleted: CREATE next time */
			return MOVE_ERROR;
		}
		if (copyuid_has(f->head.p, uid) || (!f->uidplus && has_expunge(f->head.p)))
			return MOVED;
		return MOVE_GONE;
	}
	cmd = arena_printf(f->a, "UID COPY %lld %s", uid, f->done_q);
	if (perform(f, f->boxv, cmd, HEAD_MAX) == -1) {
		imap_error(f, "UID COPY", uid);
		f->done_exists = 0;
		return MOVE_ERROR;
	}
	if (f->uidplus && !copyuid_has(f->head.p, uid))
		return MOVE_GONE;
	cmd = arena_printf(f->a, "UID STORE %lld +FLAGS.SILENT (\\Deleted)", uid);
	if (perform(f, f->boxv, cmd, HEAD_MAX) == -1) {
		imap_error(f, "UID STORE \\Deleted", uid);
		return MOVE_ERROR;
	}
	/* without UIDPLUS only a plain EXPUNGE exists: it also removes other
	 * messages someone flagged \Deleted in this folder */
	cmd = f->uidplus ? arena_printf(f->a, "UID EXPUNGE %lld", uid) : arena_strdup(f->a, "EXPUNGE");
	if (perform(f, f->boxv, cmd, HEAD_MAX) == -1) {
		/* copied and flagged: SEARCH UNDELETED no longer lists it */
		imap_error(f, "EXPUNGE", uid);
		return MOVED;
	}
	return MOVED;
}

/* ---- claims ---------------------------------------------------------------- */

/* A claim by a fetcher on this host whose process is gone (killed): no
 * need to wait for its lease. */
static int claimer_dead(const char *by)
{
	size_t hl = strlen(host);
	char *end;

	if (by == NULL || strncmp(by, host, hl) != 0 || by[hl] != ':')
		return 0;
	long pid = strtol(by + hl + 1, &end, 10);
	if (*end != '\0' || pid <= 1)
		return 0;
	return kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

static enum claim claim(struct fetcher *f, long long uid)
{
	struct db_rows r;
	int n;

	db_request_start();
	if (db_begin() == -1)
		return CLAIM_DB_DOWN;
	n = db_query(f->a, &r, Q_CLAIM_GET, CL__N, DB_ARGS(P_STR(f->key), P_INT(uid)));
	if (n == 0) {
		if (db_exec(Q_CLAIM_NEW, DB_ARGS(P_STR(f->key), P_INT(uid), P_STR(me),
		        P_INT(f->lease))) < 0)
			n = -1;
	} else if (n == 1) {
		const char *by = DB_CELL(&r, 0, CL_BY);
		if (!(db_int(&r, 0, CL_EXPIRED) || (by && strcmp(by, me) == 0) || claimer_dead(by))) {
			db_rollback();
			return CLAIM_TAKEN;
		}
		if (db_exec(Q_CLAIM_TAKE, DB_ARGS(P_STR(me), P_INT(f->lease), P_STR(f->key),
		        P_INT(uid))) < 0)
			n = -1;
		else
			log_info("fetcher: uid %lld: taking over the claim of %s", uid, by ? by : "?");
	}
	if (n >= 0 && db_commit() == 0)
		return CLAIM_OK;
	db_rollback();
	/* another fetcher inserted it first, or holds it: theirs */
	if (db_last_err() == DB_DUP || db_last_err() == DB_DEADLOCK)
		return CLAIM_TAKEN;
	return CLAIM_DB_DOWN;
}

/* claims_tidy: between batches this fetcher holds no claim, so any of its
 * own is left over (the database went away before it was dropped), as is
 * any of a fetcher on this host that died (kill -9 after the move): drop
 * them rather than wait for their leases. */
static void claims_tidy(struct fetcher *f)
{
	struct db_rows r;
	int n = db_query(f->a, &r, Q_CLAIMERS, 1, DB_ARGS(P_STR(host)));

	for (int i = 0; i < n; i++) {
		const char *by = DB_CELL(&r, i, 0);
		if (by && (strcmp(by, me) == 0 || claimer_dead(by)) &&
		    db_exec(Q_CLAIMS_OF, DB_ARGS(P_STR(by))) > 0)
			log_info("fetcher: dropped the stale claims of %s", by);
	}
}

static void claim_drop(struct fetcher *f, long long uid)
{
	db_request_start();
	if (db_exec(Q_CLAIM_DROP, DB_ARGS(P_STR(f->key), P_INT(uid), P_STR(me))) < 0)
		log_warn("fetcher: uid %lld: claim kept (%s); its lease ends it", uid, db_last_msg());
}

/* ---- the batch ---------------------------------------------------------- */

/* A stop (SIGTERM/SIGINT, also how a reload retires this fetcher) stays
 * blocked while a message is handled; look for it between messages. */
static int stop_pending(void)
{
	sigset_t p;

	if (!child_stop && sigpending(&p) == 0 && (sigismember(&p, SIGTERM) || sigismember(&p, SIGINT)))
		child_stop = 1;
	return child_stop;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

/* The UIDs of the "* SEARCH ..." lines, ascending; count or -1. */
static long parse_search(struct arena *a, const char *text, long long **out)
{
	size_t cap = 64, n = 0;
	long long *v = arena_alloc(a, cap * sizeof(*v));

	for (const char *p = strstr(text, "* SEARCH"); p; p = strstr(p, "* SEARCH")) {
		p += 8;
		while (*p == ' ' || (*p >= '0' && *p <= '9')) {
			if (*p == ' ') {
				p++;
				continue;
			}
			char *end;
			long long u = strtoll(p, &end, 10);
			if (n == cap) {
				long long *nv = arena_alloc(a, cap * 2 * sizeof(*v));
				memcpy(nv, v, n * sizeof(*v));
				v = nv;
				cap *= 2;
			}
			if (u > 0)
				v[n++] = u;
			p = end;
		}
	}
	qsort(v, n, sizeof(*v), cmp_ll);
	*out = v;
	return (long)n;
}

/* one_message: claim, fetch, deliver, move.  B_DONE to go on with the next. */
static enum batch_end one_message(struct fetcher *f, long long uid, const char *validity)
{
	const struct conf *c = f->c;
	long cap = c->mailin_max_bytes + SLACK;
	struct mailin_result res;

	switch (claim(f, uid)) {
	case CLAIM_TAKEN:
		return B_DONE;
	case CLAIM_DB_DOWN:
		log_warn("fetcher: uid %lld: database unavailable (%s); stopping this batch", uid,
		    db_last_msg());
		return B_DB_DOWN;
	case CLAIM_OK:
		break;
	}
	char *url = arena_printf(f->a, "%s/;UID=%lld;PARTIAL=0.%ld", f->boxv, uid, cap);
	if (perform(f, url, NULL, (size_t)cap) == -1) {
		if (strcmp(f->uidvalidity, validity) != 0) {
			log_warn("fetcher: %s was re-selected with UIDVALIDITY %s (was %s): new batch",
			    c->imap_folder, f->uidvalidity, validity);
			claim_drop(f, uid);
			return B_MORE;
		}
		if (f->rc == CURLE_REMOTE_FILE_NOT_FOUND) {
			/* gone since the search: another fetcher finished it, or a person */
			log_info("fetcher: uid %lld no longer in %s", uid, c->imap_folder);
			claim_drop(f, uid);
			return B_DONE;
		}
		imap_error(f, "fetch", uid);
		claim_drop(f, uid);
		return B_IMAP_ERROR;
	}
	if (f->body.len >= (size_t)cap)   /* BODY[]<0.cap> stops there; dropped: a server past it */
		log_warn("fetcher: uid %lld: larger than %ld bytes; the first %zu handed over "
		    "(rejected as too large)", uid, cap - 1, f->body.len);
	if (mailin_deliver(c, f->a, f->body.p ? f->body.p : "", f->body.len, NULL, &res) == -1) {
		log_warn("fetcher: uid %lld left in %s: the database is unavailable", uid, c->imap_folder);
		return B_DB_DOWN;
	}
	enum moved m = move(f, uid);
	if (m == MOVE_ERROR) {
		claim_drop(f, uid);     /* delivered: the next try is a no-op, then moved */
		return B_IMAP_ERROR;
	}
	claim_drop(f, uid);
	if (m == MOVE_GONE) {
		log_warn("fetcher: uid %lld was no longer in %s when moved (outcome %s)", uid,
		    c->imap_folder, mailin_outcome_name(res.outcome));
		return B_DONE;
	}
	metrics_add(MET_IMAP_FETCHED, 1);
	log_info("fetcher: uid %lld: %s, moved to %s", uid, mailin_outcome_name(res.outcome),
	    c->imap_done_folder);
	return B_DONE;
}

static enum batch_end batch(struct fetcher *f)
{
	const struct conf *c = f->c;
	enum batch_end end = B_DONE;
	long long *uids;
	long n;

	db_request_start();
	if (db_ping() == -1)
		return B_DB_DOWN;           /* no point in downloading now */
	claims_tidy(f);
	f->h = session_new(f);
	if (f->h == NULL) {
		log_err("fetcher: curl_easy_init failed");
		return B_IMAP_ERROR;
	}
	if (ensure_done(f) == -1) {
		end = B_IMAP_ERROR;
		goto out;
	}
	char *url = arena_printf(f->a, "%s/", f->base);
	f->can_move = f->uidplus = 0;
	if (perform(f, url, "CAPABILITY", HEAD_MAX) == -1) {
		imap_error(f, "CAPABILITY", 0);
		end = B_IMAP_ERROR;
		goto out;
	}
	/* SELECT (its UIDVALIDITY), then the UIDs; \Deleted ones are on their
	 * way out (a COPY whose EXPUNGE failed) and not fetched again */
	f->uidvalidity[0] = '\0';
	if (perform(f, f->box, "UID SEARCH UNDELETED", SEARCH_MAX) == -1) {
		imap_error(f, "SELECT and UID SEARCH", 0);
		end = B_IMAP_ERROR;
		goto out;
	}
	if (f->uidvalidity[0] == '\0') {
		log_err("fetcher: opening %s gave no UIDVALIDITY", c->imap_folder);
		metrics_add(MET_IMAP_ERRORS, 1);
		end = B_IMAP_ERROR;
		goto out;
	}
	if (f->body.dropped) {
		/* cut mid-number perhaps: the last UID kept may be partial, drop it */
		char *sp = strrchr(f->body.p, ' ');
		if (sp)
			*sp = '\0';
		log_warn("fetcher: UID SEARCH answer past %ld bytes; the rest waits", SEARCH_MAX);
	}
	char validity[24];
	snprintf(validity, sizeof(validity), "%s", f->uidvalidity);
	char *k = arena_printf(f->a, "%s\n%s\n%s\n%s", c->imap_url, c->imap_user, c->imap_folder,
	    validity);
	if (crypto_sha256_hex(k, strlen(k), f->key) == -1) {
		end = B_IMAP_ERROR;
		goto out;
	}
	f->boxv = arena_printf(f->a, "%s;UIDVALIDITY=%s", f->box, validity);
	n = parse_search(f->a, f->body.p ? f->body.p : "", &uids);
	for (long i = 0; i < n && i < BATCH_MAX; i++) {
		if (stop_pending()) {
			end = B_STOPPED;
			break;
		}
		end = one_message(f, uids[i], validity);
		if (end != B_DONE)
			break;
	}
	if (end == B_DONE && n > BATCH_MAX)
		end = B_MORE;
out:
	curl_easy_cleanup(f->h);        /* LOGOUT and close */
	f->h = NULL;
	return end;
}

/* An IMAP quoted string of a folder name: printable ASCII only (a name
 * outside it needs modified UTF-7, which is not done here).  0 / -1. */
static int quote_folder(const char *name, char *out, size_t outlen)
{
	size_t o = 0;

	if (name[0] == '\0' || outlen < 3)
		return -1;
	out[o++] = '"';
	for (const char *p = name; *p; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e || o + 4 >= outlen)
			return -1;
		if (*p == '"' || *p == '\\')
			out[o++] = '\\';
		out[o++] = *p;
	}
	out[o++] = '"';
	out[o] = '\0';
	return 0;
}

/* The server part of imap_url (scheme://host[:port]); the folder is
 * imap_folder, credentials are imap_user/imap_password.  0 / -1. */
static int server_url(const char *url, char *out, size_t outlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *hostname = NULL, *port = NULL, *path = NULL, *user = NULL;
	int rc = -1;

	if (u == NULL)
		return -1;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &hostname, 0) != CURLUE_OK) {
		log_err("fetcher: [mail_in] imap_url is not a URL");
		goto out;
	}
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
		log_err("fetcher: [mail_in] imap_url must not hold a user name: use imap_user");
		goto out;
	}
	if (path && strcmp(path, "/") != 0 && path[0] != '\0') {
		log_err("fetcher: [mail_in] imap_url names the server only "
		    "(scheme://host[:port]); the folder is imap_folder");
		goto out;
	}
	if ((size_t)snprintf(out, outlen, "%s://%s%s%s", scheme, hostname, port ? ":" : "",
	        port ? port : "") < outlen)
		rc = 0;
out:
	curl_free(scheme);
	curl_free(hostname);
	curl_free(port);
	curl_free(path);
	curl_free(user);
	curl_url_cleanup(u);
	return rc;
}

/* fetcher_main: the fetcher's loop until SIGTERM.  Returns the exit code. */
int fetcher_main(const struct conf *c)
{
	static struct fetcher f;
	sigset_t waitmask;
	int was_down = 0;

	child_signals(&waitmask);
	prctl(PR_SET_NAME, "ccrd-fetcher");
	f.c = c;
	f.lease = LEASE_MIN + 2L * c->imap_timeout;
	if (c->imap_url[0] == '\0' || c->mailin_address[0] == '\0')
		return EX_BADCONF;
	if (view_root(c->views_dir) == -1)
		return EX_BADCONF;
	if (quote_folder(c->imap_folder, f.folder_q, sizeof(f.folder_q)) == -1 ||
	    quote_folder(c->imap_done_folder, f.done_q, sizeof(f.done_q)) == -1) {
		log_err("fetcher: [mail_in] imap_folder and imap_done_folder must be printable ASCII");
		return EX_BADCONF;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_err("fetcher: curl_global_init failed");
		return 1;
	}
	if (server_url(c->imap_url, f.base, sizeof(f.base)) == -1) {
		curl_global_cleanup();
		return EX_BADCONF;
	}
	char *esc = curl_easy_escape(NULL, c->imap_folder, 0);
	if (esc == NULL || (size_t)snprintf(NULL, 0, "%s/%s", f.base, esc) >= 1024) {
		curl_free(esc);
		curl_global_cleanup();
		return EX_BADCONF;
	}
	static char box[1024];
	snprintf(box, sizeof(box), "%s/%s", f.base, esc);
	curl_free(esc);
	f.box = box;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(me, sizeof(me), "%s:%d", host, (int)getpid());
	f.a = arena_new(0);
	db_init(c);
	log_info("fetcher started as %s: %s on %s every %d s", me, c->imap_folder, f.base,
	    c->imap_poll_interval);
	while (!child_stop) {
		enum batch_end end = batch(&f);
		arena_reset(f.a);
		if (end == B_DB_DOWN && !was_down)
			log_warn("fetcher: database unavailable; messages stay on the server");
		else if (end != B_DB_DOWN && was_down)
			log_info("fetcher: database back");
		was_down = end == B_DB_DOWN;
		if (end == B_MORE || child_stop)
			continue;
		/* every result waits the poll interval: after an error that is the
		 * back-off, and a SIGTERM ends the wait at once */
		child_idle(c, (long)c->imap_poll_interval * 1000, &waitmask);
	}
	free(f.body.p);
	free(f.head.p);
	db_close();
	arena_free(f.a);
	curl_global_cleanup();
	log_info("fetcher stopped");
	return 0;
}

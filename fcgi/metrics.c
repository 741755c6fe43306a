/*
 * metrics.c — monitoring: GET /healthz, and counters in shared memory owned
 * by the master, mapped before the first fork, so every worker's and the
 * mailer's events add up, across reloads too; GET /metrics prints them in
 * the Prometheus text exposition format (version 0.0.4).  Updates are
 * relaxed atomic adds: no locks.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "extern.h"

/* Status classes counted per route. */
static const int status_codes[] = { 200, 303, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429,
                                    500, 503 };
#define NSTATUS (sizeof(status_codes) / sizeof(status_codes[0]))
#define NROUTE_SLOTS 64          /* route index; the last slot = no route */
static const double buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 };
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct shared {
	unsigned long long req[NROUTE_SLOTS][NSTATUS + 1];   /* +1: other statuses */
	unsigned long long lat[NBUCKETS + 1];                 /* cumulative at print */
	unsigned long long lat_count;
	unsigned long long lat_sum_usec;
	unsigned long long counter[MET__MAX];
};

static struct shared *shm;

/* metrics_init: map the counters; the master calls it before forking.
 * 0 / -1 (then metrics are simply not counted). */
int metrics_init(void)
{
	void *p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -1;
	memset(p, 0, sizeof(struct shared));
	shm = p;
	return 0;
}

void metrics_add(enum metric m, unsigned long long n)
{
	if (shm)
		__atomic_fetch_add(&shm->counter[m], n, __ATOMIC_RELAXED);
}

/* metrics_request: one finished request of route `route` (-1: none). */
void metrics_request(int route, int status, double ms)
{
	size_t s, b;

	if (shm == NULL)
		return;
	if (route < 0 || route >= NROUTE_SLOTS - 1)
		route = NROUTE_SLOTS - 1;
	for (s = 0; s < NSTATUS && status_codes[s] != status; s++)
		;
	__atomic_fetch_add(&shm->req[route][s], 1, __ATOMIC_RELAXED);
	for (b = 0; b < NBUCKETS && ms / 1000.0 > buckets[b]; b++)
		;
	__atomic_fetch_add(&shm->lat[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&shm->lat_count, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&shm->lat_sum_usec, (unsigned long long)(ms * 1000.0), __ATOMIC_RELAXED);
}

static const char *const metric_name[MET__MAX] = {
	[MET_MAIL_SENT] = "ccr_mail_sent_total",
	[MET_MAIL_FAILED] = "ccr_mail_failed_total",
	[MET_MAIL_RETRIED] = "ccr_mail_retries_total",
	[MET_WORKER_RESTARTS] = "ccr_child_restarts_total",
	[MET_HASH_WAITS] = "ccr_hash_slot_waits_total",
	[MET_HASH_BUSY] = "ccr_hash_slot_timeouts_total",
	[MET_RELOADS] = "ccr_reloads_total",
	[MET_IMAP_ERRORS] = "ccr_imap_errors_total",
	[MET_IMAP_FETCHED] = "ccr_imap_fetched_total",
	[MET_WEBHOOK_SENT] = "ccr_webhooks_sent_total",
	[MET_WEBHOOK_FAILED] = "ccr_webhooks_failed_total",
	[MET_WEBHOOK_RETRIED] = "ccr_webhooks_retried_total",
	[MET_SEARCH_QUERIES] = "ccr_search_queries_total",
	[MET_SEARCH_ERRORS] = "ccr_search_errors_total",
	[MET_SEARCH_INDEXED] = "ccr_search_indexed_total",
};
static const char *const metric_help[MET__MAX] = {
	[MET_MAIL_SENT] = "Mails accepted by the SMTP server.",
	[MET_MAIL_FAILED] = "Mails given up (5xx or give_up_after).",
	[MET_MAIL_RETRIED] = "Mail attempts deferred for a retry.",
	[MET_WORKER_RESTARTS] = "Workers and mailers respawned after an unexpected exit.",
	[MET_HASH_WAITS] = "Password hashes that waited for a free slot.",
	[MET_HASH_BUSY] = "Password hashes refused (503) for want of a slot within 2 s.",
	[MET_RELOADS] = "Configuration reloads (SIGHUP) applied.",
	[MET_IMAP_ERRORS] = "IMAP fetcher failures (connect, login, fetch, move).",
	[MET_IMAP_FETCHED] = "Messages the IMAP fetcher delivered and moved to the done folder.",
	[MET_WEBHOOK_SENT] = "Webhook deliveries an endpoint answered with 2xx.",
	[MET_WEBHOOK_FAILED] = "Webhook deliveries given up after [webhooks] give_up_after.",
	[MET_WEBHOOK_RETRIED] = "Webhook deliveries to be retried after a failure.",
	[MET_SEARCH_QUERIES] = "Searches sent to searchd.",
	[MET_SEARCH_ERRORS] = "Searches searchd could not answer (the page said so with a 503).",
	[MET_SEARCH_INDEXED] = "Queued ticket changes the indexer wrote into the search index.",
};

static const char Q_OUTBOX[] =
    "SELECT COUNT(*), IFNULL(UNIX_TIMESTAMP() - UNIX_TIMESTAMP(MIN(created_at)), 0) "
    "FROM outbox WHERE status = 'pending'";
enum { OB_PENDING, OB_OLDEST, OB__N };
/* the email channel's counters live in the database: ccr-admin mail-in,
 * run by an MTA, is not a ccrd process */
/* the search index's lag: queued changes, and how long the oldest waits */
static const char Q_SEARCH_QUEUE[] =
    "SELECT COUNT(*), IFNULL(TIMESTAMPDIFF(MICROSECOND, MIN(queued_at), NOW(3)) / 1000000, 0) "
    "FROM search_queue";
enum { SQQ_N, SQQ_AGE, SQQ__N };
static const char Q_MAIL_IN[] = "SELECT name, SUM(n) FROM mail_counters GROUP BY name ORDER BY name";
enum { MC_NAME, MC_N, MC__N };

/* GET /metrics: the exposition text.  Route names come from the table. */
int metrics_page(struct request *r)
{
	size_t cap = 64 * 1024, len = 0;
	char *out = arena_alloc(r->a, cap);
	struct db_rows rows;

#define EMIT(...) do { \
		int n_ = snprintf(out + len, cap - len, __VA_ARGS__); \
		if (n_ > 0) len += (size_t)n_ < cap - len ? (size_t)n_ : cap - len - 1; \
	} while (0)
	if (shm == NULL)
		return resp_text(r, 503, "metrics unavailable\n");
	EMIT("# HELP ccr_http_requests_total HTTP requests answered, by route and status.\n"
	     "# TYPE ccr_http_requests_total counter\n");
	for (int i = 0; i < NROUTE_SLOTS; i++)
		for (size_t s = 0; s <= NSTATUS; s++) {
			unsigned long long v = __atomic_load_n(&shm->req[i][s], __ATOMIC_RELAXED);
			if (v == 0)
				continue;
			const char *route = i == NROUTE_SLOTS - 1 ? "none" : route_name(i);
			char code[8];
			if (s < NSTATUS)
				snprintf(code, sizeof(code), "%d", status_codes[s]);
			else
				snprintf(code, sizeof(code), "other");
			EMIT("ccr_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n", route, code, v);
		}
	EMIT("# HELP ccr_http_request_duration_seconds Time from request start to response written.\n"
	     "# TYPE ccr_http_request_duration_seconds histogram\n");
	unsigned long long cum = 0;
	for (size_t b = 0; b < NBUCKETS; b++) {
		cum += __atomic_load_n(&shm->lat[b], __ATOMIC_RELAXED);
		EMIT("ccr_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n", buckets[b], cum);
	}
	cum += __atomic_load_n(&shm->lat[NBUCKETS], __ATOMIC_RELAXED);
	EMIT("ccr_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
	EMIT("ccr_http_request_duration_seconds_sum %.6f\n",
	    (double)__atomic_load_n(&shm->lat_sum_usec, __ATOMIC_RELAXED) / 1e6);
	EMIT("ccr_http_request_duration_seconds_count %llu\n", cum);
	for (int m = 0; m < MET__MAX; m++)
		EMIT("# HELP %s %s\n# TYPE %s counter\n%s %llu\n", metric_name[m], metric_help[m],
		    metric_name[m], metric_name[m], __atomic_load_n(&shm->counter[m], __ATOMIC_RELAXED));
	EMIT("# HELP ccr_database_up Whether this worker reached the database for this scrape.\n"
	     "# TYPE ccr_database_up gauge\n");
	if (db_query(r->a, &rows, Q_OUTBOX, OB__N, DB_NOARGS) == 1) {
		EMIT("ccr_database_up 1\n");
		EMIT("# HELP ccr_outbox_pending Mails waiting in the outbox.\n"
		     "# TYPE ccr_outbox_pending gauge\nccr_outbox_pending %s\n", DB_CELL(&rows, 0, OB_PENDING));
		EMIT("# HELP ccr_outbox_oldest_pending_seconds Age of the oldest pending mail.\n"
		     "# TYPE ccr_outbox_oldest_pending_seconds gauge\n"
		     "ccr_outbox_oldest_pending_seconds %s\n", DB_CELL(&rows, 0, OB_OLDEST));
		if (db_query(r->a, &rows, Q_SEARCH_QUEUE, SQQ__N, DB_NOARGS) == 1) {
			EMIT("# HELP ccr_search_queue_length Ticket changes waiting for the search indexer.\n"
			     "# TYPE ccr_search_queue_length gauge\nccr_search_queue_length %s\n",
			    DB_CELL(&rows, 0, SQQ_N));
			EMIT("# HELP ccr_search_index_lag_seconds Age of the oldest change not yet in the search index.\n"
			     "# TYPE ccr_search_index_lag_seconds gauge\nccr_search_index_lag_seconds %s\n",
			    DB_CELL(&rows, 0, SQQ_AGE));
		}
		if (db_query(r->a, &rows, Q_MAIL_IN, MC__N, DB_NOARGS) >= 0) {
			EMIT("# HELP ccr_mail_in_total Inbound mails by outcome (received: all of them).\n"
			     "# TYPE ccr_mail_in_total counter\n");
			for (size_t i = 0; i < rows.nrows; i++)
				if (strncmp(DB_CELL(&rows, i, MC_NAME), "rejected_", 9) != 0)
					EMIT("ccr_mail_in_total{outcome=\"%s\"} %s\n", DB_CELL(&rows, i, MC_NAME),
					    DB_CELL(&rows, i, MC_N));
			EMIT("# HELP ccr_mail_in_rejected_total Inbound mails kept in the rejected list, by reason.\n"
			     "# TYPE ccr_mail_in_rejected_total counter\n");
			for (size_t i = 0; i < rows.nrows; i++)
				if (strncmp(DB_CELL(&rows, i, MC_NAME), "rejected_", 9) == 0)
					EMIT("ccr_mail_in_rejected_total{reason=\"%s\"} %s\n",
					    DB_CELL(&rows, i, MC_NAME) + 9, DB_CELL(&rows, i, MC_N));
		}
	} else {
		EMIT("ccr_database_up 0\n");
	}
#undef EMIT
	r->ctype = "text/plain; version=0.0.4; charset=utf-8";
	r->body = out;
	r->body_len = len;
	return 200;
}

/* The node's Galera state.  A SHOW is never held by wsrep_sync_wait and is
 * answered by a node that is not ready (every other statement gets 1047
 * there).  A MariaDB without a Galera provider has no
 * wsrep_local_state_comment (its wsrep_ready is OFF): ready. */
static const char Q_WSREP[] =
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state_comment')";
enum { WS_NAME, WS_VALUE, WS__N };

/* healthz_db: NULL when the database can take this worker's requests, else
 * the reason (the body of the 503). */
static const char *healthz_db(struct request *r)
{
	struct db_rows rows;
	const char *ready = NULL, *state = NULL;
	int n;

	if (db_ping() == -1)
		return "database unavailable\n";
	n = db_query(r->a, &rows, Q_WSREP, WS__N, DB_NOARGS);
	if (n < 0)
		return "database unavailable\n";
	for (int i = 0; i < n; i++) {
		const char *name = DB_CELL(&rows, i, WS_NAME), *v = DB_CELL(&rows, i, WS_VALUE);
		if (name && strcasecmp(name, "wsrep_ready") == 0)
			ready = v ? v : "";
		else if (name && strcasecmp(name, "wsrep_local_state_comment") == 0)
			state = v ? v : "";
	}
	if (state == NULL)
		return NULL;                /* not a Galera node */
	if (ready == NULL || strcasecmp(ready, "ON") != 0)
		return "database node not ready (wsrep_ready OFF)\n";
	if (strcmp(state, "Synced") != 0)
		return arena_printf(r->a, "database node not synced (%.40s)\n", state);
	return NULL;
}

/* GET /healthz: 200 "ok" when this worker reaches the database and, on a
 * Galera node, the node is ready and Synced (README "Scaling out"); else
 * 503 with the reason, so a load balancer stops sending to this host. */
int metrics_healthz(struct request *r)
{
	const char *why = healthz_db(r);

	if (why) {
		resp_header_add(r, "Retry-After", "5");
		return resp_text(r, 503, why);
	}
	return resp_text(r, 200, "ok\n");
}

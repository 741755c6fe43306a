/*
 * claim.c — what the two outbound queues (the mailer's outbox, the
 * webhooks' deliveries) share: claiming due rows for one sender, and the
 * retry back-off (README "Mail", "Webhooks").
 *
 * A sender claims with SELECT … FOR UPDATE SKIP LOCKED and writes its claim
 * (who, lease until when) into each row in the same transaction.  On a
 * Galera cluster row locks are not shared between nodes, so it is that
 * write that makes a second claimer fail (error 1213 at a statement or at
 * COMMIT); the claim is then tried again.
 */
#include <stddef.h>

#include "extern.h"

/* claim_due: up to max ids of due_sql's rows (one column, the id; one
 * parameter, who) into ids[], each marked by claim_sql (parameters: who,
 * lease seconds, id).  A sender claims with no batch in flight, so the
 * due query takes rows it still holds as well: what a batch cut short by
 * the database left (its Galera node died between the claim and the
 * sends), which would otherwise wait out the lease.  Count, or -1 (the
 * database failed, or five claims in a row lost). */
int claim_due(struct arena *a, const char *due_sql, const char *claim_sql, const char *who,
              long lease, long long *ids, int max)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		struct db_rows rows;
		int n;

		if (db_begin() == -1)
			return -1;
		n = db_query(a, &rows, due_sql, 1, DB_ARGS(P_STR(who)));
		for (int i = 0; n > 0 && i < n && i < max; i++) {
			ids[i] = db_int(&rows, i, 0);
			if (db_exec(claim_sql, DB_ARGS(P_STR(who), P_INT(lease), P_INT(ids[i]))) < 0) {
				n = -1;
				break;
			}
		}
		if (n >= 0 && db_commit() == 0)
			return n > max ? max : n;
		db_rollback();
		if (db_last_err() != DB_DEADLOCK)
			return -1;
		/* 1213: another sender (or Galera node) won these rows; try again */
	}
	return -1;
}

/* retry_backoff: the delay after `attempts` failures, 1 min doubling to 1 h. */
long retry_backoff(int attempts)
{
	long d = 60;

	for (int i = 1; i < attempts && d < 3600; i++)
		d *= 2;
	return d > 3600 ? 3600 : d;
}

/*
 * audit.c — security events into audit_log (README "Accounts and
 * security"): who, what, when, from which address, under which request id.
 */
#include "extern.h"

static const char Q_AUDIT[] =
    "INSERT INTO audit_log (at, user_id, actor_id, event, detail, addr, request_id) "
    "VALUES (NOW(), ?, ?, ?, ?, ?, ?)";

/* audit_add: one row about user_id (0 = none) by x->actor (0 = nobody
 * logged in).  0 / -1 (inside the caller's
 * transaction when there is one). */
int audit_add(const struct ctx *x, long long user_id, const char *event, const char *detail)
{
	return db_exec(Q_AUDIT, DB_ARGS(P_INT(user_id), P_INT(x->actor), P_STR(event), P_STR(detail ? detail : ""), P_STR(x->addr), P_STR(x->reqid))) < 0 ? -1 : 0;
}

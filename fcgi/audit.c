/*
 * audit.c — security events into audit_log (SPEC §6): who, what, when,
 * from which address, under which request id.
 */
#include "extern.h"

static const char Q_AUDIT[] =
    "INSERT INTO audit_log (at, user_id, actor_id, event, detail, addr, request_id) "
    "VALUES (NOW(), ?, ?, ?, ?, ?, ?)";

/* audit_add: one row; user_id 0 = none.  0 / -1 (inside the caller's
 * transaction when there is one). */
int audit_add(struct request *r, long long user_id, const char *event, const char *detail)
{
	long long actor = r && r->user ? r->user->id : 0;

	return db_exec(Q_AUDIT, "iissss", user_id, actor, event, detail ? detail : "",
	    r ? r->remote_addr : "", r ? r->id : "") < 0 ? -1 : 0;
}

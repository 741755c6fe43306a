/*
 * timeline.c — a ticket's one timeline (README "The ticket timeline"):
 * messages, internal notes and events (created, assigned, priority
 * changed, resolved, closed, reopened, auto-closed, rated) as rows of the
 * timeline table, written in the transaction of the change and read back
 * in their order, for the ticket page and the poll fragment alike.
 *
 * What a viewer sees is decided twice: the query of a customer asks only
 * for the kinds a customer may see, and each row is checked again against
 * the same table before it is rendered.  A customer never gets a note, a
 * priority change, or who assigned whom.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

static const char *const kind_names[TLK__MAX] = {
	[TLK_MESSAGE] = "message", [TLK_NOTE] = "note", [TLK_CREATED] = "created",
	[TLK_ASSIGNED] = "assigned", [TLK_PRIORITY] = "priority", [TLK_RESOLVED] = "resolved",
	[TLK_CLOSED] = "closed", [TLK_REOPENED] = "reopened", [TLK_AUTO_CLOSED] = "auto_closed",
	[TLK_RATED] = "rated",
};

/* The kinds a customer sees (the customer query's IN list says the same). */
static const unsigned char customer_sees[TLK__MAX] = {
	[TLK_MESSAGE] = 1, [TLK_NOTE] = 0, [TLK_CREATED] = 1, [TLK_ASSIGNED] = 1,
	[TLK_PRIORITY] = 0, [TLK_RESOLVED] = 1, [TLK_CLOSED] = 1, [TLK_REOPENED] = 1,
	[TLK_AUTO_CLOSED] = 1, [TLK_RATED] = 1,
};

const char *timeline_kind_name(enum timeline_kind k)
{
	return (unsigned)k < TLK__MAX ? kind_names[k] : "?";
}

static const char Q_ADD[] =
    "INSERT INTO timeline (ticket_id, kind, actor_id, message_id, note_id, agent_id, detail, "
    "created_at) VALUES (?, ?, NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0), ?, NOW())";

/* timeline_add: entry e on ticket ticket_id, and the webhook deliveries
 * it is an event for, in the caller's transaction.  0 / -1. */
int timeline_add(long long ticket_id, const struct timeline_entry *e)
{
	if ((unsigned)e->kind >= TLK__MAX)
		return -1;
	if (db_exec(Q_ADD, DB_ARGS(P_INT(ticket_id), P_STR(kind_names[e->kind]), P_INT(e->actor),
	    P_INT(e->message_id), P_INT(e->note_id), P_INT(e->agent_id),
	    P_STR(e->detail ? e->detail : ""))) < 0)
		return -1;
	/* every change to a ticket passes here: its search document is
	 * queued for the indexer (README "Search") and its webhook
	 * deliveries (README "Webhooks"), in the same transaction */
	if (search_enqueue(ticket_id) == -1)
		return -1;
	return webhook_enqueue(ticket_id, e);
}

#define TQ_COLS \
	"SELECT e.id, e.kind, IFNULL(e.actor_id, 0), CONCAT(u.first_name, ' ', u.last_name), u.role, " \
	"UNIX_TIMESTAMP(e.created_at), IFNULL(m.id, n.id), IFNULL(m.body, n.body), " \
	"CONCAT(g.first_name, ' ', g.last_name), e.detail FROM timeline e " \
	"LEFT JOIN users u ON u.id = e.actor_id LEFT JOIN messages m ON m.id = e.message_id " \
	"LEFT JOIN notes n ON n.id = e.note_id LEFT JOIN users g ON g.id = e.agent_id " \
	"WHERE e.ticket_id = ? AND e.id > ? "
static const char Q_STAFF[] = TQ_COLS "ORDER BY e.id LIMIT 1000";
static const char Q_CUSTOMER[] = TQ_COLS
    "AND e.kind IN ('message', 'created', 'assigned', 'resolved', 'closed', 'reopened', "
    "'auto_closed', 'rated') ORDER BY e.id LIMIT 1000";
enum { TE_ID, TE_KIND, TE_ACTOR, TE_NAME, TE_ROLE, TE_TIME, TE_ITEM, TE_BODY, TE_AGENT, TE_DETAIL, TE__N };

/* timeline_load: the entries of ticket_id after timeline id `after` that
 * the viewer may see (staff: agents and admins; else the customer's
 * kinds), oldest first.  0 / -1. */
int timeline_load(struct request *r, long long ticket_id, long long after, struct db_rows *out)
{
	int staff = r->user->role != ROLE_CUSTOMER;

	return db_query(r->a, out, staff ? Q_STAFF : Q_CUSTOMER, TE__N,
	    DB_ARGS(P_INT(ticket_id), P_INT(after))) < 0 ? -1 : 0;
}

/* The sentence an event row shows. */
static const char *event_text(struct arena *a, enum timeline_kind k, const char *who,
                              const char *agent, const char *detail, int staff)
{
	char old[32], now[32];

	switch (k) {
	case TLK_CREATED:
		return arena_printf(a, "%s raised the ticket", who);
	case TLK_ASSIGNED:
		if (!staff)
			return "An agent is now handling this ticket";
		if (!strcmp(detail, "auto"))   /* [tickets] auto_assign */
			return arena_printf(a, "The ticket was assigned automatically to %s",
			    agent ? agent : "an agent");
		return arena_printf(a, "%s assigned the ticket to %s", who, agent ? agent : "an agent");
	case TLK_PRIORITY:
		if (sscanf(detail, "%31s %31s", old, now) != 2)
			return arena_printf(a, "%s changed the priority", who);
		return arena_printf(a, "%s changed the priority from %s to %s", who, old, now);
	case TLK_RESOLVED:
		return arena_printf(a, "%s marked the ticket as resolved", who);
	case TLK_CLOSED:
		return arena_printf(a, "%s closed the ticket", who);
	case TLK_REOPENED:
		return arena_printf(a, "%s reopened the ticket", who);
	case TLK_AUTO_CLOSED:
		return arena_printf(a, "Closed automatically after %s quiet days", detail);
	case TLK_RATED:
		return arena_printf(a, "%s rated the help %s out of 5", who, detail);
	case TLK_MESSAGE:
	case TLK_NOTE:
	case TLK__MAX:
		break;
	}
	return "";
}

/* timeline_fill: ENTRY rows of d from rows (timeline_load's), each
 * message and note with its files (at: attach_thread_load's rows, or NULL); returns
 * the last timeline id shown (0: none), *messages the number of messages. */
long long timeline_fill(struct request *r, struct vdict *d, const struct db_rows *rows,
                        const struct db_rows *at, size_t *messages)
{
	int staff = r->user->role != ROLE_CUSTOMER;
	long long last = 0;

	if (messages)
		*messages = 0;
	for (size_t i = 0; i < rows->nrows; i++) {
		int k = str_lookup(kind_names, TLK__MAX, DB_CELL(rows, i, TE_KIND));
		if (k < 0 || (!staff && !customer_sees[k]))
			continue;
		int item = k == TLK_MESSAGE || k == TLK_NOTE;
		if (item && DB_CELL(rows, i, TE_ITEM) == NULL)
			continue;
		const char *who = DB_CELL(rows, i, TE_NAME) ? DB_CELL(rows, i, TE_NAME) : "Someone";
		struct vdict *row = vdict_section(d, "ENTRY");
		vdict_set(row, "SEQ", DB_CELL(rows, i, TE_ID));
		page_set_time(r, row, "TIME", DB_CELL(rows, i, TE_TIME));
		if (item) {
			struct vdict *m = vdict_section(row, k == TLK_MESSAGE ? "IS_MESSAGE" : "IS_NOTE");
			vdict_set(m, "ITEM_ID", DB_CELL(rows, i, TE_ITEM));
			vdict_set(m, "AUTHOR", who);
			vdict_set(m, "AUTHOR_ROLE", DB_CELL(rows, i, TE_ROLE));
			vdict_set(m, "BODY", DB_CELL(rows, i, TE_BODY));
			vdict_set(m, "SIDE", db_int(rows, i, TE_ACTOR) == r->user->id ? "mine" : "theirs");
			long long id = db_int(rows, i, TE_ITEM);
			attach_fill(r, m, at, k == TLK_MESSAGE ? (struct attach_owner){ .message_id = id }
			    : (struct attach_owner){ .note_id = id });
			if (k == TLK_MESSAGE && messages)
				(*messages)++;
		} else {
			vdict_set(vdict_section(row, "IS_EVENT"), "TEXT",
			    event_text(r->a, (enum timeline_kind)k, who, DB_CELL(rows, i, TE_AGENT),
			        DB_CELL(rows, i, TE_DETAIL), staff));
		}
		last = db_int(rows, i, TE_ID);
	}
	return last;
}

/* GET /tickets/{id}/messages?after=N: the timeline entries after timeline
 * id N the viewer may see, as a fragment of <li> rows. */
int timeline_poll(struct request *r)
{
	struct ticket t;
	struct db_rows rows, at;
	const char *a = req_query(r, "after");
	char *end = NULL;
	long long after = a ? strtoll(a, &end, 10) : 0;
	int s = ticket_get(r, &t);

	if (s)
		return s;
	if (a && (*end || after < 0)) {
		r->message = "after must be a timeline number";
		return 422;
	}
	if (timeline_load(r, t.id, after, &rows) == -1)
		return db_status();
	/* the files of the messages and notes among them: of the ids from the
	 * lowest message's and the lowest note's on (a customer's rows have no
	 * notes, and attach_thread_load asks for none of a note's files then) */
	long long first[2] = { 0, 0 };   /* message, note */
	for (size_t i = 0; i < rows.nrows; i++) {
		const char *kind = DB_CELL(&rows, i, TE_KIND);
		int j = !strcmp(kind, kind_names[TLK_MESSAGE]) ? 0
		    : !strcmp(kind, kind_names[TLK_NOTE]) ? 1 : -1;
		long long id = db_int(&rows, i, TE_ITEM);
		if (j >= 0 && DB_CELL(&rows, i, TE_ITEM) && (first[j] == 0 || id < first[j]))
			first[j] = id;
	}
	int files = first[0] || first[1];
	if (files && attach_thread_load(r, t.id, 0, first[0], first[1], &at) == -1)
		return db_status();
	struct view *v = view_new(NULL, "messages.tpl");
	if (v == NULL)
		return 500;
	timeline_fill(r, view_body(v), &rows, files ? &at : NULL, NULL);
	return page_render(r, v, 200);
}

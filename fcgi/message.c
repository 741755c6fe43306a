/*
 * message.c — the conversation of a ticket: post a message (its place in
 * the timeline and the poll are timeline.c's).  New-message mail goes to the other party, at most
 * one unread notice per ticket and recipient until they open the ticket.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

static const char Q_MSG_INSERT[] =
    "INSERT INTO messages (ticket_id, author_id, body, created_at) VALUES (?, ?, ?, NOW())";
static const char Q_TOUCH[] =
    "UPDATE tickets SET last_activity = NOW(), status = ?, "
    "closed_at = IF(? = 'open', NULL, closed_at) WHERE id = ?";
/* one statement: a new row (1 affected), an unread notice armed again
 * (0 → 1: 2 affected), or one already pending (nothing changed: 0) */
static const char Q_NOTICE_ARM[] =
    "INSERT INTO ticket_notices (ticket_id, user_id, pending) VALUES (?, ?, 1) "
    "ON DUPLICATE KEY UPDATE pending = 1";

/* notice_due: 1 when the recipient had no unread notice for this ticket
 * (and now has one), 0 when one is already pending, -1 on failure. */
static int notice_due(long long ticket_id, long long user_id)
{
	long long n = db_exec(Q_NOTICE_ARM, DB_ARGS(P_INT(ticket_id), P_INT(user_id)));

	return n < 0 ? -1 : n > 0;
}

/* message_add: `author`, the customer of locked ticket t when `customer`,
 * else its agent, writes body with files[0..nfiles) (measured by
 * attach_check); the ticket's status becomes `next` and the
 * other party gets the new-message notice (one unread at a time).  In the
 * caller's transaction: the page and the email channel both post here.
 * The message id, or -1. */
long long message_add(const struct ctx *x, const struct ticket *t, const struct user *author,
                      int customer, enum ticket_status next, const char *body,
                      struct attach_file *files, size_t nfiles)
{
	if (db_exec(Q_MSG_INSERT, DB_ARGS(P_INT(t->id), P_INT(author->id), P_STR(body))) < 0)
		return -1;
	long long mid = db_insert_id();
	if (attach_store(x->a, t->id, (struct attach_owner){ .message_id = mid }, author->id,
	        files, nfiles) == -1)
		return -1;
	const char *st = ticket_status_name(next);
	if (db_exec(Q_TOUCH, DB_ARGS(P_STR(st), P_STR(st), P_INT(t->id))) < 0 ||
	    timeline_add(t->id, &(struct timeline_entry){ .kind = TLK_MESSAGE, .actor = author->id,
	        .message_id = mid }) == -1 ||
	    sla_refresh(x, t->id, customer ? 0 : author->id) == -1)
		return -1;
	/* a customer's reply that reopens a resolved ticket is a reopening too */
	if (next == TS_OPEN && t->status != TS_OPEN &&
	    timeline_add(t->id, &(struct timeline_entry){ .kind = TLK_REOPENED,
	        .actor = author->id }) == -1)
		return -1;
	long long to_id = customer ? t->agent_id : t->customer_id;
	if (to_id == 0)
		return mid;
	int due = notice_due(t->id, to_id);
	if (due <= 0)
		return due == 0 ? mid : -1;
	struct view *m = mail_new(x->conf, "new_message");
	if (m) {
		vdict_set(view_body(m), "NAME", arena_printf(x->a, "%s %s", author->first_name,
		    author->last_name));
		vdict_set_int(view_body(m), "TICKET", t->id);
		vdict_set(view_body(m), "SUBJECT", t->subject);
		vdict_set(view_body(m), "BODY", body);
		if (nfiles && attach_mail_fill(x, view_body(m), t->id,
		        (struct attach_owner){ .message_id = mid }) == -1)
			return -1;
	}
	return mail_queue_active(x, m, "new_message", to_id, t->id) == -1 ? -1 : mid;
}

/* POST /tickets/{id}/messages: its customer or its agent, urlencoded or
 * multipart with up to 5 attachments.  Neither text nor a file → 422
 * "Type something!"; six files → 422 "At most 5 attachments"; a file over
 * max_file_bytes or all over 25 MiB → 413 "Attachments are too large";
 * closed → 409 "This ticket is closed"; a customer writing on a resolved
 * ticket reopens it. */
int message_post(struct request *r)
{
	struct ticket t;
	struct form_value in[MSG__N];
	struct form_errors f = { .n = 0 };
	enum ticket_status next;
	int s = ticket_get(r, &t);

	if (s)
		return s;
	int customer = t.customer_id == r->user->id;
	if (!customer && t.agent_id != r->user->id)
		return 403;
	enum ticket_move move = customer ? TM_CUSTOMER_REPLY : TM_AGENT_REPLY;
	if (ticket_move(move, t.status, &next) == -1)
		return ticket_page(r, &t, 409, NULL, "This ticket is closed", NULL);
	form_read(r, &form_message, in, &f);
	const char *body = in[MSG_BODY].s, *why = NULL;
	if (f.n)
		return ticket_page(r, &t, 422, f.e[0].key, f.e[0].msg, body);
	s = attach_check(r->conf, r->files, r->nfiles, &why);
	if (s)
		return ticket_page(r, &t, s, "ERR_ATTACHMENT", why, body);

	/* access and recipient again from the locked row: the ticket may have
	 * been reassigned since ticket_get read it */
	if (db_begin() == -1 || ticket_lock(r->a, &t) == -1)
		return db_fail();
	if (!ticket_visible(r, &t) || (!customer && t.agent_id != r->user->id)) {
		db_rollback();
		return 404;
	}
	if (ticket_move(move, t.status, &next) == -1) {
		db_rollback();
		return ticket_page(r, &t, 409, NULL, "This ticket is closed", NULL);
	}
	long long mid = message_add(request_ctx(r), &t, r->user, customer, next, body, r->files,
	    r->nfiles);
	if (mid == -1 || db_commit() == -1)
		return db_fail();
	r->created_id = mid;
	return resp_redirect(r, arena_printf(r->a, "/tickets/%lld#m%lld", t.id, mid));
}

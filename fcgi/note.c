/*
 * note.c — internal notes (README "The ticket timeline"): the ticket's
 * agent or an admin writes one; it joins the timeline, which shows notes
 * to agents and admins only.  A note is mailed to the other staff on the
 * ticket and to nobody else:
 *   - an admin writes: the assigned agent (none while unassigned);
 *   - the agent writes: every admin who wrote a note on the ticket before,
 *     or nobody when none has (admins are not all mailed for every note).
 * Note mail carries no reply token: an answer by mail would become a
 * message, which the customer sees.
 *
 * A note takes files as a message does (README "Attachments"): the same
 * multipart field, limits and messages, checked and stored by attach.c;
 * they are shown, served and mailed as the note is, to staff only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

static const char Q_NOTE_INSERT[] =
    "INSERT INTO notes (ticket_id, author_id, body, created_at) VALUES (?, ?, ?, NOW())";
static const char Q_NOTE_ADMINS[] =
    "SELECT DISTINCT n.author_id FROM notes n JOIN users u ON u.id = n.author_id "
    "WHERE n.ticket_id = ? AND u.role = 'admin' AND n.author_id <> ? ORDER BY n.author_id";

/* mail_note: note nid (`body`, with files when `files`) by r's user on
 * locked ticket t to staff user `to`, its files linked. 0 / -1. */
static int mail_note(struct request *r, const struct ticket *t, long long to, long long nid,
                     const char *body, int files)
{
	struct view *m = mail_new(r->conf, "note_added");
	const struct ctx *x = request_ctx(r);

	if (m) {
		vdict_set(view_body(m), "NAME", arena_printf(r->a, "%s %s", r->user->first_name,
		    r->user->last_name));
		vdict_set_int(view_body(m), "TICKET", t->id);
		vdict_set(view_body(m), "SUBJECT", t->subject);
		vdict_set(view_body(m), "BODY", body);
		if (files && attach_mail_fill(x, view_body(m), t->id,
		        (struct attach_owner){ .note_id = nid }) == -1)
			return -1;
	}
	return mail_queue_staff(x, m, "note_added", to, t->id);
}

/* POST /tickets/{id}/notes: its agent or an admin, urlencoded or
 * multipart with up to 5 attachments; body 1–10000 → 303
 * /tickets/{id}#n{noteid}, flash "Note added".  Neither text nor a file →
 * 422 "Type the note first"; six files → 422 "At most 5 attachments"; a
 * file over max_file_bytes or all over 25 MiB → 413 "Attachments are too
 * large".  A closed ticket is read-only, notes included: 409 "This ticket
 * is closed". */
int note_post(struct request *r)
{
	struct ticket t;
	struct form_value in[NOTE__N];
	struct form_errors f = { .n = 0 };
	struct db_rows admins;
	int s = ticket_get(r, &t);

	if (s)
		return s;
	int admin = r->user->role == ROLE_ADMIN;
	if (t.status == TS_CLOSED)
		return ticket_page(r, &t, 409, NULL, "This ticket is closed", NULL);
	form_read(r, &form_note, in, &f);
	const char *body = in[NOTE_BODY].s, *why = NULL;
	if (f.n)
		return ticket_page(r, &t, 422, f.e[0].key, f.e[0].msg, body);
	s = attach_check(r->conf, r->files, r->nfiles, &why);
	if (s)
		return ticket_page(r, &t, s, "ERR_NOTE_ATTACHMENT", why, body);
	/* access and the agent again from the locked row */
	if (db_begin() == -1 || ticket_lock(r->a, &t) == -1)
		return db_fail();
	if (!ticket_visible(r, &t)) {
		db_rollback();
		return 404;
	}
	if (t.status == TS_CLOSED) {
		db_rollback();
		return ticket_page(r, &t, 409, NULL, "This ticket is closed", NULL);
	}
	if (db_exec(Q_NOTE_INSERT, DB_ARGS(P_INT(t.id), P_INT(r->user->id), P_STR(body))) < 0)
		return db_fail();
	long long nid = db_insert_id();
	int files = r->nfiles > 0;
	if (attach_store(r->a, t.id, (struct attach_owner){ .note_id = nid }, r->user->id, r->files,
	        r->nfiles) == -1)
		return db_fail();
	if (timeline_add(t.id, &(struct timeline_entry){ .kind = TLK_NOTE, .actor = r->user->id,
	        .note_id = nid }) == -1)
		return db_fail();
	if (admin) {
		if (t.agent_id && mail_note(r, &t, t.agent_id, nid, body, files) == -1)
			return db_fail();
	} else {
		if (db_query(r->a, &admins, Q_NOTE_ADMINS, 1, DB_ARGS(P_INT(t.id), P_INT(r->user->id))) < 0)
			return db_fail();
		for (size_t i = 0; i < admins.nrows; i++)
			if (mail_note(r, &t, db_int(&admins, i, 0), nid, body, files) == -1)
				return db_fail();
	}
	if (db_commit() == -1)
		return db_fail();
	flash_set(r, FLASH_NOTE_ADDED);
	return resp_redirect(r, arena_printf(r->a, "/tickets/%lld#n%lld", t.id, nid));
}

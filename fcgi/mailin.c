/*
 * mailin.c — the email channel's rules (README "Email channel"): one raw
 * inbound mail, parsed by inmail.c, becomes exactly one outcome, committed
 * in one transaction with everything it causes:
 *
 *   1. a Message-ID received before: nothing new;
 *   2. automatic mail (auto-replies, bounces, lists): dropped, never answered;
 *   3. a valid reply token and From its person: a message on the ticket, as
 *      if posted on the page (a closed ticket: its sender is told so, once a
 *      day per ticket and sender);
 *   4. a valid token from anyone else, or a dead or malformed one: rejected;
 *   5. no token, From an active customer: a new ticket ([mail_in]
 *      tickets_per_hour per sender);
 *   6. any other sender: rejected, or with unknown_senders = ticket a new
 *      customer account (no password) and its ticket;
 *   7. unparseable or over max_bytes: rejected.
 *
 * Rejected mail is kept whole (raw bytes in chunks) for GET /admin/mail.
 * The mail_in row is written first: its unique key is the claim that makes
 * a second delivery of the same mail, even concurrent, a no-op.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extern.h"

#define CHUNK (1024 * 1024)      /* rejected mail is stored in pieces of this size */
#define ATTEMPTS 5               /* a transaction that meets a deadlock is retried */
#define SUBJECT_MAX 200          /* a ticket subject's characters, as on the page */
#define DESCRIPTION_MAX 20000
#define MESSAGE_MAX 10000
#define REJECTED_PAGE 100        /* rows of GET /admin/mail */

static const char *const outcome_names[MO__MAX] = {
	[MO_DUPLICATE] = "duplicate", [MO_AUTOMATIC] = "automatic", [MO_MESSAGE] = "message",
	[MO_TICKET] = "ticket", [MO_CLOSED] = "closed", [MO_REJECTED] = "rejected",
};
static const char *const reason_names[MR__MAX] = {
	[MR_UNPARSEABLE] = "unparseable", [MR_TOO_LARGE] = "too_large",
	[MR_TOKEN_SENDER] = "token_sender", [MR_BAD_TOKEN] = "bad_token",
	[MR_UNKNOWN_SENDER] = "unknown_sender", [MR_NOT_CUSTOMER] = "not_customer",
	[MR_RATE_LIMITED] = "rate_limited", [MR_EMPTY] = "empty", [MR_TOO_LONG] = "too_long",
};
/* what an admin reads in the list */
static const char *const reason_text[MR__MAX] = {
	[MR_UNPARSEABLE] = "Not a mail message that can be read",
	[MR_TOO_LARGE] = "Larger than max_bytes",
	[MR_TOKEN_SENDER] = "Reply address of another person",
	[MR_BAD_TOKEN] = "Unknown or expired reply address",
	[MR_UNKNOWN_SENDER] = "Sender has no customer account",
	[MR_NOT_CUSTOMER] = "Sender is not an active customer",
	[MR_RATE_LIMITED] = "Too many new tickets from this sender",
	[MR_EMPTY] = "No text",
	[MR_TOO_LONG] = "Text too long",
};

const char *mailin_outcome_name(enum mailin_outcome o)
{
	return o < MO__MAX ? outcome_names[o] : "";
}

const char *mailin_reason_name(enum mailin_reason r)
{
	return r < MR__MAX ? reason_names[r] : "";
}

static const char Q_CLAIM[] =
    "INSERT INTO mail_in (msg_key, received_at, outcome, from_addr) VALUES (?, NOW(), 'rejected', ?)";
static const char Q_OUTCOME[] =
    "UPDATE mail_in SET outcome = ?, ticket_id = NULLIF(?, 0) WHERE id = ?";
static const char Q_COUNT[] =
    "INSERT INTO mail_counters (name, shard, n) VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE n = n + 1";
static const char Q_REJECT[] =
    "INSERT INTO rejected_mail (received_at, from_addr, subject, reason, size) "
    "VALUES (NOW(), ?, ?, ?, ?)";
static const char Q_CHUNK[] =
    "INSERT INTO rejected_mail_chunks (mail_id, seq, data) VALUES (?, ?, ?)";
static const char Q_TOKEN[] =
    "SELECT k.ticket_id, k.user_id FROM reply_tokens k "
    "JOIN tickets t ON t.id = k.ticket_id JOIN users u ON u.id = k.user_id "
    "WHERE k.token_hash = ? AND u.state = 'active' "
    "AND (t.customer_id = k.user_id OR t.agent_id = k.user_id)";
enum { TK_TICKET, TK_USER, TK__N };
static const char Q_USER_ID[] =
    "SELECT id, email, first_name, last_name, role, state FROM users WHERE id = ?";
static const char Q_USER_EMAIL[] =
    "SELECT id, email, first_name, last_name, role, state FROM users WHERE email = ?";
enum { U_ID, U_EMAIL, U_FIRST, U_LAST, U_ROLE, U_STATE, U__N };
static const char Q_CLOSED_TOLD[] =
    "SELECT COUNT(*) FROM mail_in WHERE ticket_id = ? AND from_addr = ? AND outcome = 'closed' "
    "AND received_at > NOW() - INTERVAL 1 DAY";
static const char Q_TICKETS_HOUR[] =
    "SELECT COUNT(*) FROM mail_in WHERE from_addr = ? AND outcome = 'ticket' "
    "AND received_at > NOW() - INTERVAL 1 HOUR";

/* One delivery in progress. */
struct job {
	const struct conf *c;
	struct ctx x;
	const struct inmail *m;
	enum inmail_parse parsed;
	const char *raw;
	size_t len;
	long long row;                /* mail_in.id */
	struct mailin_result *out;
	/* the files kept (README "Attachments": the page's limits), and the
	 * text with a line for each file that was not */
	struct attach_file files[ATTACH_MAX_FILES];
	size_t nfiles;
	const char *text;
};

/* count: one event on the channel's counters (the writer's shard). */
static int count(const char *name)
{
	return db_exec(Q_COUNT, DB_ARGS(P_STR(name), P_INT(getpid() % 8))) < 0 ? -1 : 0;
}

/* reject: keep the raw mail whole in the rejected-mail list.  0 / -1. */
static int reject(struct job *j, enum mailin_reason why)
{
	char subject[256];

	snprintf(subject, sizeof(subject), "%s", j->m->subject);
	utf8_truncate(subject, 200);
	if (db_exec(Q_REJECT, DB_ARGS(P_STR(j->m->from), P_STR(subject), P_STR(reason_names[why]),
	        P_INT((long long)j->len))) < 0)
		return -1;
	long long id = db_insert_id();
	for (size_t off = 0, seq = 0; off < j->len || seq == 0; off += CHUNK, seq++) {
		size_t n = j->len - off < CHUNK ? j->len - off : CHUNK;
		if (db_exec(Q_CHUNK, DB_ARGS(P_INT(id), P_INT((long long)seq),
		        P_BLOB(j->raw + off, n))) < 0)
			return -1;
	}
	j->out->outcome = MO_REJECTED;
	j->out->reason = why;
	j->out->rejected_id = id;
	return count(arena_printf(j->x.a, "rejected_%s", reason_names[why]));
}

/* user_row: an account by id or email into *u.  1 / 0 none / -1. */
static int user_row(struct job *j, const char *sql, struct db_param key, struct user *u,
                    int *active)
{
	struct db_rows r;
	int n = db_query(j->x.a, &r, sql, U__N, &key, 1);

	if (n <= 0)
		return n;
	memset(u, 0, sizeof(*u));
	u->id = db_int(&r, 0, U_ID);
	snprintf(u->email, sizeof(u->email), "%s", DB_CELL(&r, 0, U_EMAIL));
	snprintf(u->first_name, sizeof(u->first_name), "%s", DB_CELL(&r, 0, U_FIRST));
	snprintf(u->last_name, sizeof(u->last_name), "%s", DB_CELL(&r, 0, U_LAST));
	if (role_parse(DB_CELL(&r, 0, U_ROLE), &u->role) == -1 ||
	    account_state_parse(DB_CELL(&r, 0, U_STATE), &u->state) == -1)
		return -1;
	*active = u->state == ACCT_ACTIVE;
	return 1;
}

/* addr_equal: two addresses the same mailbox: the local part exactly, the
 * domain in any case (RFC 5321 §2.4).  From is lower-cased ASCII already. */
static int addr_equal(const char *a, const char *b)
{
	const char *at = strrchr(a, '@'), *bt = strrchr(b, '@');

	return at && bt && at - a == bt - b && strncmp(a, b, (size_t)(at - a)) == 0 &&
	       strcasecmp(at, bt) == 0;
}

/* reply: rule 3, the token's person writes on the ticket.  0 / -1. */
static int reply(struct job *j, long long ticket_id, const struct user *u)
{
	struct ticket t;
	enum ticket_status next;
	struct db_rows r;

	if (ticket_read(j->x.a, ticket_id, &t) != 1 || ticket_lock(j->x.a, &t) == -1)
		return -1;
	int customer = t.customer_id == u->id;
	if (!customer && t.agent_id != u->id)   /* reassigned since the token check */
		return reject(j, MR_BAD_TOKEN);
	j->out->ticket_id = t.id;
	if (ticket_move(customer ? TM_CUSTOMER_REPLY : TM_AGENT_REPLY, t.status, &next) == -1) {
		/* closed: say so, once a day per ticket and sender, never to automatic mail */
		if (db_query(j->x.a, &r, Q_CLOSED_TOLD, 1, DB_ARGS(P_INT(t.id), P_STR(j->m->from))) != 1)
			return -1;
		j->out->outcome = MO_CLOSED;
		if (db_int(&r, 0, 0) > 0)
			return 0;
		struct view *v = mail_new(j->c, "reply_closed");
		if (v) {
			vdict_set_int(view_body(v), "TICKET", t.id);
			vdict_set(view_body(v), "SUBJECT", t.subject);
		}
		return mail_queue(&j->x, v, "reply_closed", u->email, u->id, t.id, 0);
	}
	const char *text = j->text;
	if (*text == '\0' && j->nfiles == 0)
		return reject(j, MR_EMPTY);
	if (utf8_len(text) > MESSAGE_MAX)
		return reject(j, MR_TOO_LONG);
	if (message_add(&j->x, &t, u, customer, next, text, j->files, j->nfiles) == -1)
		return -1;
	j->out->outcome = MO_MESSAGE;
	return 0;
}

/* new_customer: rule 6 with unknown_senders = ticket: an active customer
 * account without a password, named from the From display name.  1 made,
 * 0 cannot (the address is not usable), -1. */
static int new_customer(struct job *j, struct user *u)
{
	char first[65], last[65];
	const char *name = j->m->from_name, *sp;

	if (!email_valid(j->m->from) || strlen(j->m->from) > 254)
		return 0;
	if (*name == '\0')
		name = arena_strndup(j->x.a, j->m->from, (size_t)(strchr(j->m->from, '@') - j->m->from));
	sp = strrchr(name, ' ');
	snprintf(first, sizeof(first), "%.*s", sp ? (int)(sp - name) : (int)strlen(name), name);
	snprintf(last, sizeof(last), "%s", sp ? sp + 1 : "-");
	utf8_truncate(first, 64);
	utf8_truncate(last, 64);
	long long id = user_insert(j->m->from, str_trim(first), str_trim(last), ROLE_CUSTOMER,
	    ACCT_ACTIVE, NULL);
	if (id < 0)
		return -1;
	memset(u, 0, sizeof(*u));
	u->id = id;
	u->role = ROLE_CUSTOMER;
	u->state = ACCT_ACTIVE;
	snprintf(u->email, sizeof(u->email), "%s", j->m->from);
	snprintf(u->first_name, sizeof(u->first_name), "%s", first);
	snprintf(u->last_name, sizeof(u->last_name), "%s", last);
	return audit_add(&j->x, id, "account_created_by_mail", "") == -1 ? -1 : 1;
}

/* raise: rule 5, customer u raises a ticket from the mail.  0 / -1. */
static int raise_ticket(struct job *j, const struct user *u)
{
	struct db_rows r;
	char subject[1024];

	if (db_query(j->x.a, &r, Q_TICKETS_HOUR, 1, DB_ARGS(P_STR(j->m->from))) != 1)
		return -1;
	if (db_int(&r, 0, 0) >= j->c->mailin_tickets_per_hour)
		return reject(j, MR_RATE_LIMITED);
	snprintf(subject, sizeof(subject), "%s", *j->m->subject ? j->m->subject : "(no subject)");
	utf8_truncate(subject, SUBJECT_MAX);
	/* a mail with only a subject is a ticket all the same: the subject says it */
	const char *desc = *j->text ? j->text : subject;
	if (utf8_len(desc) > DESCRIPTION_MAX)
		return reject(j, MR_TOO_LONG);
	long long id = ticket_open(&j->x, u, subject, desc, PRIO_NORMAL, j->files, j->nfiles);
	if (id == -1)
		return -1;
	j->out->outcome = MO_TICKET;
	j->out->ticket_id = id;
	return 0;
}

/* keep_files: the mail's files within the page's limits (at most
 * ATTACH_MAX_FILES, each at most max_file_bytes, all at most
 * ATTACH_MAX_REQUEST_BYTES, in the order of the mail) go to j->files; the
 * text gets "attachment NAME was not kept: WHY" for each other one.  0 / -1. */
static int keep_files(struct job *j)
{
	const struct inmail *m = j->m;
	char *t = arena_strdup(j->x.a, m->text);
	long long used = 0;
	int lines = 0;

	j->nfiles = 0;
	for (size_t i = 0; i < m->nfiles; i++) {
		struct attach_file f = {
			.name = filename_clean(j->x.a, m->files[i].name, strlen(m->files[i].name)),
			.data = m->files[i].data, .len = m->files[i].len,
		};
		const char *why = NULL;
		if (attach_measure_all(&f, 1) == -1)
			return -1;
		if (j->nfiles == ATTACH_MAX_FILES)
			why = "more than 5 attachments";
		else if (!attach_fits(j->c, &f, used))
			why = "too large";
		if (why == NULL) {
			used += f.size;
			j->files[j->nfiles++] = f;
			continue;
		}
		t = arena_printf(j->x.a, "%s%s%sattachment %s was not kept: %s", t,
		    *t && !lines ? "\n" : "", *t ? "\n" : "", f.name, why);
		lines++;
	}
	if (m->files_dropped)
		t = arena_printf(j->x.a, "%s%s%s%zu more attachments were not kept", t,
		    *t && !lines ? "\n" : "", *t ? "\n" : "", m->files_dropped);
	j->text = t;
	return 0;
}

/* decide: rules 2–7 for a mail whose key is new.  0 / -1 (roll back). */
static int decide(struct job *j)
{
	const struct inmail *m = j->m;
	struct user u;
	int active = 0, n;

	if (j->parsed == INMAIL_TOO_LARGE)
		return reject(j, MR_TOO_LARGE);
	if (j->parsed != INMAIL_OK)
		return reject(j, MR_UNPARSEABLE);
	if (m->automatic != IA_NONE) {
		j->out->outcome = MO_AUTOMATIC;
		return 0;
	}
	if (keep_files(j) == -1)
		return -1;
	for (size_t i = 0; i < m->ntokens; i++) {
		char hash[65];
		struct db_rows r;
		if (crypto_sha256_hex(m->tokens[i], strlen(m->tokens[i]), hash) == -1)
			return -1;
		n = db_query(j->x.a, &r, Q_TOKEN, TK__N, DB_ARGS(P_STR(hash)));
		if (n < 0)
			return -1;
		if (n == 0)
			continue;
		if (user_row(j, Q_USER_ID, P_INT(db_int(&r, 0, TK_USER)), &u, &active) != 1)
			return -1;
		if (!addr_equal(m->from, u.email))
			return reject(j, MR_TOKEN_SENDER);
		j->x.actor = u.id;
		return reply(j, db_int(&r, 0, TK_TICKET), &u);
	}
	if (m->ntokens || m->plus_other)
		return reject(j, MR_BAD_TOKEN);
	n = user_row(j, Q_USER_EMAIL, P_STR(m->from), &u, &active);
	if (n < 0)
		return -1;
	if (n == 1 && (u.role != ROLE_CUSTOMER || !active))
		return reject(j, MR_NOT_CUSTOMER);
	if (n == 0) {
		if (j->c->mailin_unknown_senders != UNKNOWN_TICKET)
			return reject(j, MR_UNKNOWN_SENDER);
		n = new_customer(j, &u);
		if (n <= 0)
			return n < 0 ? -1 : reject(j, MR_UNKNOWN_SENDER);
	}
	j->x.actor = u.id;
	return raise_ticket(j, &u);
}

/* attempt: one try of the whole transaction.  0 committed, -1 failed. */
static int attempt(struct job *j)
{
	memset(j->out, 0, sizeof(*j->out));
	if (db_begin() == -1)
		return -1;
	if (db_exec(Q_CLAIM, DB_ARGS(P_STR(j->m->key), P_STR(j->m->from))) < 0) {
		if (db_last_err() != DB_DUP)
			return db_rollback(), -1;
		db_rollback();
		j->out->outcome = MO_DUPLICATE;
		return 0;
	}
	j->row = db_insert_id();
	/* every rule that succeeds names its outcome: none is a defect */
	if (decide(j) == -1 || j->out->outcome == MO_DUPLICATE)
		return db_rollback(), -1;
	if (db_exec(Q_OUTCOME, DB_ARGS(P_STR(outcome_names[j->out->outcome]),
	        P_INT(j->out->ticket_id), P_INT(j->row))) < 0 ||
	    count("received") == -1 || count(outcome_names[j->out->outcome]) == -1 ||
	    db_commit() == -1)
		return db_rollback(), -1;
	return 0;
}

int mailin_deliver(const struct conf *c, struct arena *a, const char *raw, size_t len,
                   const char *envelope_sender, struct mailin_result *out)
{
	struct inmail m;
	struct job j = { .c = c, .m = &m, .raw = raw, .len = len, .out = out };

	j.parsed = inmail_parse(a, raw, len, envelope_sender, c->mailin_address,
	    (size_t)c->mailin_max_bytes, &m);
	j.x = (struct ctx){ .a = a, .conf = c, .reqid = "mail-in",
	    .addr = arena_printf(a, "mail:%.200s", m.from), .actor = 0 };
	for (int i = 0; i < ATTEMPTS; i++) {
		db_request_start();
		if (attempt(&j) == 0) {
			char from[300];
			log_escape(from, sizeof(from), m.from);
			log_info("mail-in: %s key=%.16s from=%s ticket=%lld%s%s%s", outcome_names[out->outcome],
			    m.key, from, out->ticket_id, out->outcome == MO_REJECTED ? " reason=" : "",
			    out->outcome == MO_REJECTED ? reason_names[out->reason] : "",
			    m.automatic != IA_NONE && j.parsed == INMAIL_OK ? inmail_auto_name(m.automatic) : "");
			return 0;
		}
		if (db_last_err() != DB_DEADLOCK)
			break;
	}
	log_err("mail-in: key=%.16s not stored: %s", m.key, db_last_msg());
	return -1;
}

static const char Q_PURGE_REJECTED[] =
    "DELETE FROM rejected_mail WHERE received_at < NOW() - INTERVAL ? DAY LIMIT 100";
static const char Q_PURGE_LOG[] =
    "DELETE FROM mail_in WHERE received_at < NOW() - INTERVAL ? DAY LIMIT 10000";
static const char Q_PURGE_CLAIMS[] =
    "DELETE FROM imap_claims WHERE lease_until < NOW() - INTERVAL 1 DAY";

/* mailin_purge: rejected mail and the received-mail log older than
 * keep_rejected_days, in small batches (each its own transaction).  The
 * log is what recognises a mail delivered twice, so it is kept as long.
 * Rows deleted, or -1. */
int mailin_purge(const struct conf *c)
{
	long long total = 0, n;
	const char *const q[] = { Q_PURGE_REJECTED, Q_PURGE_LOG };

	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		do {
			n = db_exec(q[i], DB_ARGS(P_INT(c->mailin_keep_rejected_days)));
			if (n < 0)
				return -1;
			total += n;
		} while (n > 0);
	n = db_exec(Q_PURGE_CLAIMS, DB_NOARGS);
	return n < 0 ? -1 : (int)(total + n);
}

/* ---- GET /admin/mail ------------------------------------------------------ */

static const char Q_LIST[] =
    "SELECT id, UNIX_TIMESTAMP(received_at), from_addr, subject, reason, size "
    "FROM rejected_mail ORDER BY received_at DESC, id DESC LIMIT 100";
enum { RL_ID, RL_TIME, RL_FROM, RL_SUBJECT, RL_REASON, RL_SIZE, RL__N };

int mailin_admin_list(struct request *r)
{
	struct db_rows rows;
	enum mailin_reason why;

	if (db_query(r->a, &rows, Q_LIST, RL__N, DB_NOARGS) < 0)
		return db_status();
	struct view *v = page_new(r, "admin_mail.tpl", "Rejected mail");
	if (v == NULL)
		return 500;
	struct vdict *b = view_body(v);
	if (rows.nrows == 0)
		vdict_show(b, "NO_MAIL");
	for (size_t i = 0; i < rows.nrows; i++) {
		struct vdict *row = vdict_section(b, "MAIL");
		int k = str_lookup(reason_names, MR__MAX, DB_CELL(&rows, i, RL_REASON));
		why = k < 0 ? MR_UNPARSEABLE : (enum mailin_reason)k;
		vdict_set(row, "ID", DB_CELL(&rows, i, RL_ID));
		page_set_time(r, row, "RECEIVED", DB_CELL(&rows, i, RL_TIME));
		vdict_set(row, "FROM", *DB_CELL(&rows, i, RL_FROM) ? DB_CELL(&rows, i, RL_FROM) : "(none)");
		vdict_set(row, "SUBJECT", DB_CELL(&rows, i, RL_SUBJECT));
		vdict_set(row, "REASON", reason_text[why]);
		vdict_set(row, "REASON_CODE", reason_names[why]);
		vdict_set(row, "SIZE", arena_printf(r->a, "%lld KiB",
		    (db_int(&rows, i, RL_SIZE) + 1023) / 1024));
	}
	if (rows.nrows == REJECTED_PAGE)
		vdict_show(b, "MORE");
	return page_render(r, v, 200);
}

static const char Q_ONE[] = "SELECT size FROM rejected_mail WHERE id = ?";
static const char Q_CHUNKS[] =
    "SELECT data FROM rejected_mail_chunks WHERE mail_id = ? AND seq >= ? ORDER BY seq LIMIT 8";

/* GET /admin/mail/{id}/raw: the message as it arrived, to save as .eml. */
int mailin_admin_raw(struct request *r)
{
	struct db_rows rows;
	int n = db_query(r->a, &rows, Q_ONE, 1, DB_ARGS(P_INT(r->path_id)));

	if (n <= 0)
		return n < 0 ? db_status() : 404;
	size_t size = (size_t)db_int(&rows, 0, 0), got = 0;
	char *body = arena_alloc(r->a, size + 1);
	for (long long seq = 0;; seq += 8) {
		n = db_query(r->a, &rows, Q_CHUNKS, 1, DB_ARGS(P_INT(r->path_id), P_INT(seq)));
		if (n < 0)
			return db_status();
		for (int i = 0; i < n; i++) {
			size_t len = DB_LEN(&rows, i, 0);
			if (got + len > size)
				return 500;
			memcpy(body + got, DB_CELL(&rows, i, 0), len);
			got += len;
		}
		if (n < 8)
			break;
	}
	if (got != size)
		return 500;
	resp_header_add(r, "Content-Disposition",
	    arena_printf(r->a, "attachment; filename=\"rejected-%lld.eml\"", r->path_id));
	r->ctype = "message/rfc822";
	r->body = body;
	r->body_len = size;
	return 200;
}

static const char Q_DELETE[] = "DELETE FROM rejected_mail WHERE id = ?";

/* POST /admin/mail/{id}/delete */
int mailin_admin_delete(struct request *r)
{
	long long n = db_exec(Q_DELETE, DB_ARGS(P_INT(r->path_id)));

	if (n < 0)
		return db_status();
	if (n == 0)
		return 404;
	if (audit_add(request_ctx(r), 0, "rejected_mail_deleted",
	        arena_printf(r->a, "%lld", r->path_id)) == -1)
		return db_status();
	return resp_redirect(r, "/admin/mail");
}

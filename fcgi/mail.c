/*
 * mail.c — enqueue a notification (README "Mail"): render
 * views/mail/<name>.tpl (plain text: first line "Subject: …", a blank
 * line, the body) and write the outbox row in the caller's transaction, so
 * a change and its mail commit or roll back together.  The mailer sends it
 * later.  Mail about an account goes to the address stored for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

static const char Q_OUT[] =
    "INSERT INTO outbox (kind, to_addr, subject, body, message_id, status, attempts, "
    "created_at, next_attempt_at, expires_at, ticket_id, user_id, reply_to, in_reply_to) "
    "VALUES (?, ?, ?, ?, ?, 'pending', 0, NOW(), NOW(), "
    "IF(? > 0, NOW() + INTERVAL ? SECOND, NULL), NULLIF(?, 0), NULLIF(?, 0), ?, ?)";
static const char Q_TICKET_MAIL[] =
    "SELECT customer_id, IFNULL(agent_id, 0), status, mail_thread FROM tickets WHERE id = ?";
enum { TQ_CUSTOMER, TQ_AGENT, TQ_STATUS, TQ_THREAD, TQ__N };
static const char Q_THREAD_SET[] =
    "UPDATE tickets SET mail_thread = ? WHERE id = ? AND mail_thread IS NULL";
static const char Q_TOKEN_ADD[] =
    "INSERT INTO reply_tokens (token_hash, ticket_id, user_id, created_at) VALUES (?, ?, ?, NOW())";

/* mail_new: a mail view for template `name` with the common keys set. */
struct view *mail_new(const struct conf *c, const char *name)
{
	char tpl[96];
	struct view *v;

	snprintf(tpl, sizeof(tpl), "mail/%s.tpl", name);
	v = view_new(NULL, tpl);
	if (v) {
		vdict_set(view_body(v), "SITE_NAME", c->site_name);
		vdict_set(view_body(v), "BASE_URL", c->base_url);
	}
	return v;
}

/* The domain part for Message-IDs: the host of base_url. */
static void url_host(const char *url, char *out, size_t n)
{
	const char *p = strstr(url, "://");
	size_t i = 0;

	p = p ? p + 3 : url;
	while (p[i] && p[i] != '/' && p[i] != ':' && i + 1 < n) {
		out[i] = p[i];
		i++;
	}
	out[i] = '\0';
	if (i == 0)
		snprintf(out, n, "localhost");
}

/* thread_and_token: the headers that tie mail `mid` about ticket_id into
 * the email channel: In-Reply-To/References naming the ticket's first
 * notification (this one, when it is the first), and, when the recipient
 * can answer on the ticket (its customer or agent) and [mail_in] address
 * is set, a Reply-To LOCAL+TOKEN@DOMAIN with a fresh reply token, of which
 * only the hash is stored.  A closed ticket takes no answers: no token.
 * 0 / -1. */
static int thread_and_token(const struct ctx *x, long long ticket_id, long long user_id,
                            const char *mid, const char **reply_to, const char **in_reply_to)
{
	struct db_rows t;
	enum ticket_status st;
	char tok[INMAIL_TOKEN_LEN + 1], hash[65];

	*reply_to = *in_reply_to = NULL;
	int n = db_query(x->a, &t, Q_TICKET_MAIL, TQ__N, DB_ARGS(P_INT(ticket_id)));
	if (n != 1)
		return n == 0 ? 0 : -1;
	if (DB_CELL(&t, 0, TQ_THREAD))
		*in_reply_to = DB_CELL(&t, 0, TQ_THREAD);
	else if (db_exec(Q_THREAD_SET, DB_ARGS(P_STR(mid), P_INT(ticket_id))) < 0)
		return -1;
	const char *addr = x->conf->mailin_address, *at = strchr(addr, '@');
	if (at == NULL || user_id <= 0 || ticket_status_parse(DB_CELL(&t, 0, TQ_STATUS), &st) == -1 ||
	    st == TS_CLOSED ||
	    (user_id != db_int(&t, 0, TQ_CUSTOMER) && user_id != db_int(&t, 0, TQ_AGENT)))
		return 0;
	if (crypto_reply_token(tok) == -1 || crypto_sha256_hex(tok, strlen(tok), hash) == -1)
		return -1;
	if (db_exec(Q_TOKEN_ADD, DB_ARGS(P_STR(hash), P_INT(ticket_id), P_INT(user_id))) < 0)
		return -1;
	*reply_to = arena_printf(x->a, "%.*s+%s%s", (int)(at - addr), addr, tok, at);
	return 0;
}

static const char Q_TOKENS_DROP[] =
    "DELETE FROM reply_tokens WHERE user_id = ? AND (? = 0 OR ticket_id = ?)";

/* mail_tokens_drop: user_id lost access to ticket_id (0: to every ticket:
 * disabled or deleted): none of their reply tokens for it works any more.
 * 0 / -1. */
int mail_tokens_drop(long long user_id, long long ticket_id)
{
	return db_exec(Q_TOKENS_DROP, DB_ARGS(P_INT(user_id), P_INT(ticket_id),
	    P_INT(ticket_id))) < 0 ? -1 : 0;
}

/* mail_queue: render v (freed here) and insert the outbox row.  expires:
 * seconds after which the mail is pointless (reset codes), 0 = never.
 * 0, or -1 (logged; the caller rolls back). */
static int queue(const struct ctx *x, struct view *v, const char *kind, const char *to,
                 long long user_id, long long ticket_id, long expires, int tokens);

int mail_queue(const struct ctx *x, struct view *v, const char *kind, const char *to,
               long long user_id, long long ticket_id, long expires)
{
	return queue(x, v, kind, to, user_id, ticket_id, expires, 1);
}

/* queue: mail_queue, with a reply token for the recipient when `tokens`
 * and thread_and_token allows one; without, only the thread headers. */
static int queue(const struct ctx *x, struct view *v, const char *kind, const char *to,
                 long long user_id, long long ticket_id, long expires, int tokens)
{
	char *out = NULL, *subject, *body, host[128], mid[200], tok[65];
	size_t len;
	int rc;

	if (v == NULL)
		return -1;
	rc = view_render(v, &out, &len);
	view_free(v);
	if (rc == -1) {
		log_err("%s: req=%s cannot render mail %s", __func__, x->reqid, kind);
		return -1;
	}
	if (strncmp(out, "Subject: ", 9) != 0) {
		log_err("%s: mail template %s lacks a Subject line", __func__, kind);
		free(out);
		return -1;
	}
	subject = out + 9;
	body = strchr(subject, '\n');
	if (body == NULL) {
		free(out);
		return -1;
	}
	*body++ = '\0';
	while (*body == '\n')
		body++;
	/* nothing with CR or LF reaches a header (header injection) */
	if (!header_safe(subject) || !header_safe(to) || strchr(to, ',')) {
		log_err("%s: req=%s refused header text in mail %s", __func__, x->reqid, kind);
		free(out);
		return -1;
	}
	url_host(x->conf->base_url, host, sizeof(host));
	if (crypto_token(tok) == -1) {
		free(out);
		return -1;
	}
	snprintf(mid, sizeof(mid), "<%.32s@%s>", tok, host);
	const char *reply_to = NULL, *in_reply_to = NULL;
	/* user 0 to thread_and_token: threaded, never a token */
	if (ticket_id > 0 && thread_and_token(x, ticket_id, tokens ? user_id : 0, mid, &reply_to,
	        &in_reply_to) == -1) {
		free(out);
		return -1;
	}
	/* the reply marker: where a reply's quote begins (README "Email channel") */
	if (reply_to)
		body = arena_printf(x->a, MAIL_REPLY_MARKER "\n\n%s", ticket_id, body);
	rc = db_exec(Q_OUT, DB_ARGS(P_STR(kind), P_STR(to), P_STR(subject), P_STR(body), P_STR(mid),
	    P_INT(expires), P_INT(expires), P_INT(ticket_id), P_INT(user_id), P_STR(reply_to),
	    P_STR(in_reply_to))) < 0 ? -1 : 0;
	free(out);
	return rc;
}

/* to_active: queue mail v (freed here) to account user_id at its current
 * address, only while that account is active; tokens as queue().  0
 * (queued or skipped) / -1. */
static int to_active(const struct ctx *x, struct view *v, const char *kind, long long user_id,
                     long long ticket_id, int tokens)
{
	const char *to = NULL;
	int n;

	if (v == NULL)
		return -1;
	n = user_id > 0 ? user_active_email(x->a, user_id, &to) : 0;
	if (n != 1) {
		view_free(v);
		return n < 0 ? -1 : 0;
	}
	return queue(x, v, kind, to, user_id, ticket_id, 0, tokens);
}

/* mail_queue_active: mail to an active account: a disabled, rejected or
 * pending account is sent nothing about tickets. */
int mail_queue_active(const struct ctx *x, struct view *v, const char *kind, long long user_id,
                      long long ticket_id)
{
	return to_active(x, v, kind, user_id, ticket_id, 1);
}

/* mail_queue_staff: the same, without a reply token (staff-only mail). */
int mail_queue_staff(const struct ctx *x, struct view *v, const char *kind, long long user_id,
                     long long ticket_id)
{
	return to_active(x, v, kind, user_id, ticket_id, 0);
}

static const char Q_ADMIN_MAILS[] =
    "SELECT (SELECT COUNT(*) FROM audit_log WHERE event = 'admins_mailed' AND addr = ? "
    "AND at > NOW() - INTERVAL 1 HOUR), "
    "(SELECT COUNT(*) FROM audit_log WHERE event = 'admins_mailed' AND user_id = ? "
    "AND at > NOW() - INTERVAL 1 HOUR)";
enum { AM_BY_ADDR, AM_BY_ACCOUNT, AM__N };
static const char Q_ADMINS[] =
    "SELECT id, email FROM users WHERE role = 'admin' AND state = 'active' ORDER BY id";
enum { ADM_ID, ADM_EMAIL, ADM__N };

/* mail_admins: every active admin gets mail `name` with NAME/EMAIL of the
 * subject user, unless the client address or the account (account_id)
 * already caused [limits] admin_mails_per_address / _per_account such
 * events in the last hour: then nobody is mailed (anyone can register or
 * open tickets, and each would otherwise mail every admin).  Each mailing
 * is an audit row "admins_mailed", which is what is counted.  0 (mailed or
 * not) / -1. */
int mail_admins(const struct ctx *x, long long account_id, const char *name, const char *who,
                const char *email, long long ticket_id, const char *subject)
{
	struct db_rows rows;

	if (db_query(x->a, &rows, Q_ADMIN_MAILS, AM__N, DB_ARGS(P_STR(x->addr), P_INT(account_id))) != 1)
		return -1;
	if (db_int(&rows, 0, AM_BY_ADDR) >= x->conf->admin_mails_per_address ||
	    db_int(&rows, 0, AM_BY_ACCOUNT) >= x->conf->admin_mails_per_account)
		return 0;
	if (audit_add(x, account_id, "admins_mailed", name) == -1)
		return -1;
	if (db_query(x->a, &rows, Q_ADMINS, ADM__N, DB_NOARGS) < 0)
		return -1;
	for (size_t i = 0; i < rows.nrows; i++) {
		struct view *v = mail_new(x->conf, name);
		if (v == NULL)
			return -1;
		vdict_set(view_body(v), "NAME", who);
		vdict_set(view_body(v), "EMAIL", email);
		vdict_set_int(view_body(v), "TICKET", ticket_id);
		vdict_set(view_body(v), "SUBJECT", subject);
		if (mail_queue(x, v, name, DB_CELL(&rows, i, ADM_EMAIL), db_int(&rows, i, ADM_ID),
		        ticket_id, 0) == -1)
			return -1;
	}
	return 0;
}

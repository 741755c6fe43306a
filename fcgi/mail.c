/*
 * mail.c — enqueue a notification (SPEC §5): render views/mail/<name>.tpl
 * (plain text: first line "Subject: …", a blank line, the body) and write
 * the outbox row in the caller's transaction.  The mailer sends it later.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "extern.h"

static const char Q_OUT[] =
    "INSERT INTO outbox (kind, to_addr, subject, body, message_id, status, attempts, "
    "created_at, next_attempt_at, expires_at, ticket_id, user_id) "
    "VALUES (?, ?, ?, ?, ?, 'pending', 0, NOW(), NOW(), "
    "IF(? > 0, NOW() + INTERVAL ? SECOND, NULL), NULLIF(?, 0), NULLIF(?, 0))";

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

/* mail_queue: render v (freed here) and insert the outbox row.  expires:
 * seconds after which the mail is pointless (reset codes), 0 = never.
 * 0, or -1 (logged; the caller rolls back). */
int mail_queue(struct request *r, struct view *v, const char *kind, const char *to,
               long long user_id, long long ticket_id, long expires)
{
	char *out = NULL, *subject, *body, host[128], mid[200], tok[65];
	size_t len;
	int rc;

	if (v == NULL)
		return -1;
	rc = view_render(v, &out, &len);
	view_free(v);
	if (rc == -1) {
		log_err("%s: req=%s cannot render mail %s", __func__, r->id, kind);
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
	/* DESIGN §3.7: nothing with CR or LF reaches a header */
	if (!header_safe(subject) || !header_safe(to) || strchr(to, ',')) {
		log_err("%s: req=%s refused header text in mail %s", __func__, r->id, kind);
		free(out);
		return -1;
	}
	url_host(r->conf->base_url, host, sizeof(host));
	if (token_new(tok) == -1) {
		free(out);
		return -1;
	}
	snprintf(mid, sizeof(mid), "<%.32s@%s>", tok, host);
	rc = db_exec(Q_OUT, "sssssiiii", kind, to, subject, body, mid, (long long)expires,
	    (long long)expires, ticket_id, user_id) < 0 ? -1 : 0;
	free(out);
	return rc;
}

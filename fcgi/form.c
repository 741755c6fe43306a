/*
 * form.c — forms: the application/x-www-form-urlencoded parser (WHATWG URL
 * §5.1; query strings too); every form's fields declared in a table (name,
 * kind, limits, messages word for word as README "Accounts and security"
 * and "The pages" give them); form_read, which reads and checks a form
 * before its handler; and the list of field errors a page shows.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

/* form_parse: application/x-www-form-urlencoded (also query strings) into
 * arena-owned pairs.  Empty segments are skipped; "k" without "=" has the
 * value "".  Returns PARSE_OK, PARSE_BAD (malformed escape), PARSE_UTF8
 * (a decoded name or value is not UTF-8) or PARSE_TOO_MANY. */
int form_parse(struct arena *a, const char *s, size_t len, struct kvlist *out, size_t max_pairs)
{
	size_t cap = 0, i = 0;

	out->v = NULL;
	out->n = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && s[j] != '&')
			j++;
		if (j > i) {
			const char *eq = memchr(s + i, '=', j - i);
			size_t klen = eq ? (size_t)(eq - (s + i)) : j - i;
			char *k = arena_strndup(a, s + i, klen);
			size_t vlen = eq ? (size_t)(s + j - eq - 1) : 0;
			char *v = arena_strndup(a, eq ? eq + 1 : "", vlen);
			long kl = pct_decode(k, klen, 1);
			long vl = pct_decode(v, vlen, 1);   /* its real length: a raw NUL is refused */
			if (kl < 0 || vl < 0)
				return PARSE_BAD;
			if (!utf8_valid(k, (size_t)kl) || !utf8_valid(v, (size_t)vl))
				return PARSE_UTF8;
			int rc = kv_add(a, out, &cap, max_pairs, k, v);
			if (rc != PARSE_OK)
				return rc;
		}
		i = j + 1;
	}
	return PARSE_OK;
}

/* ---- the fields -------------------------------------------------------- */

#define F_FIRST_NAME { .name = "first_name", .kind = FK_LINE, .err = "ERR_FIRST_NAME", .min = 1, \
	.max = 64, .missing = "First name is required", .too_long = "First name is too long" }
#define F_LAST_NAME { .name = "last_name", .kind = FK_LINE, .err = "ERR_LAST_NAME", .min = 1, \
	.max = 64, .missing = "Last name is required", .too_long = "Last name is too long" }
#define F_EMAIL { .name = "email", .kind = FK_EMAIL, .err = "ERR_EMAIL", .missing = "Invalid email" }
/* 8..128 characters; longer is refused before any hashing, so a huge
 * password cannot make Argon2 work for nothing */
#define F_PASSWORD { .name = "password", .kind = FK_PASSWORD, .err = "ERR_PASSWORD", .min = 8, \
	.max = 128, .missing = "Password must be at least 8 characters long", \
	.too_long = "Password is too long" }
#define F_CONFIRM(of) { .name = "confirm_password", .kind = FK_CONFIRM, \
	.err = "ERR_CONFIRM_PASSWORD", .missing = "Passwords do not match", .same_as = (of) }

static const struct form_field register_fields[REG__N] = {
	[REG_FIRST] = F_FIRST_NAME, [REG_LAST] = F_LAST_NAME, [REG_EMAIL] = F_EMAIL,
	[REG_PASSWORD] = F_PASSWORD, [REG_CONFIRM] = F_CONFIRM(REG_PASSWORD),
};
const struct form form_register = { register_fields, REG__N };

static const struct form_field agent_fields[AGC__N] = {
	[AGC_FIRST] = F_FIRST_NAME, [AGC_LAST] = F_LAST_NAME, [AGC_EMAIL] = F_EMAIL,
};
const struct form form_agent_create = { agent_fields, AGC__N };

/* an email that is not valid is no account: the same answer as a wrong
 * code, so it is checked but shown nowhere */
static const struct form_field forgot_fields[FGT__N] = {
	[FGT_EMAIL] = { .name = "email", .kind = FK_EMAIL, .missing = "Invalid email" },
};
const struct form form_forgot = { forgot_fields, FGT__N };

static const struct form_field reset_fields[RST__N] = {
	[RST_EMAIL] = { .name = "email", .kind = FK_EMAIL, .missing = "Invalid email" },
	[RST_CODE] = { .name = "code", .kind = FK_NOTE },
	[RST_PASSWORD] = F_PASSWORD, [RST_CONFIRM] = F_CONFIRM(RST_PASSWORD),
};
const struct form form_reset = { reset_fields, RST__N };

static const struct form_field change_fields[CHG__N] = {
	[CHG_CURRENT] = { .name = "current_password", .kind = FK_SECRET },
	[CHG_PASSWORD] = F_PASSWORD, [CHG_CONFIRM] = F_CONFIRM(CHG_PASSWORD),
};
const struct form form_change = { change_fields, CHG__N };

static const struct form_field delete_fields[DEL__N] = {
	[DEL_PASSWORD] = { .name = "password", .kind = FK_SECRET },
};
const struct form form_delete = { delete_fields, DEL__N };

/* two-factor codes: judged against the stored secret, not by a rule */
static const struct form_field twofa_fields[TFA__N] = {
	[TFA_CODE] = { .name = "code", .kind = FK_SECRET },
	[TFA_PASSWORD] = { .name = "password", .kind = FK_SECRET },
};
const struct form form_twofa = { twofa_fields, TFA__N };

/* files of a multipart body (README "Attachments"); their sizes are
 * attach_check's (413), their number this rule's (422); key: the form's
 * slot for the message */
#define F_ATTACHMENT_AT(key) { .name = "attachment", .kind = FK_FILE, .err = key, \
	.max = ATTACH_MAX_FILES, .too_long = "At most 5 attachments" }
#define F_ATTACHMENT F_ATTACHMENT_AT("ERR_ATTACHMENT")

/* Any other field a client sends (customer_id, agent_id, status, …) is
 * not in the table, so no handler ever reads it. */
static const struct form_field ticket_fields[TKT__N] = {
	[TKT_SUBJECT] = { .name = "subject", .kind = FK_LINE, .err = "ERR_SUBJECT", .min = 1, .max = 200,
	    .missing = "Subject is required", .too_long = "Subject is too long" },
	[TKT_DESCRIPTION] = { .name = "description", .kind = FK_TEXT, .err = "ERR_DESCRIPTION", .min = 1,
	    .max = 20000, .missing = "Query cannot be empty", .too_long = "Description is too long" },
	[TKT_PRIORITY] = { .name = "priority", .kind = FK_CHOICE, .err = "ERR_PRIORITY",
	    .missing = "Choose a priority", .choices = priority_names, .nchoices = PRIO__MAX,
	    .dflt = PRIO_NORMAL },
	[TKT_ATTACHMENT] = F_ATTACHMENT,
};
const struct form form_ticket = { ticket_fields, TKT__N };

static const struct form_field message_fields[MSG__N] = {
	[MSG_BODY] = { .name = "body", .kind = FK_TEXT, .err = "ERR_BODY", .min = 1, .max = 10000,
	    .missing = "Type something!",
	    .too_long = "The message is too long (10000 characters at most)", .or_file = 1 },
	[MSG_ATTACHMENT] = F_ATTACHMENT,
};
const struct form form_message = { message_fields, MSG__N };

/* the rating form has one message slot: both fields report there */
static const struct form_field rating_fields[RATE__N] = {
	[RATE_SCORE] = { .name = "score", .kind = FK_INT, .err = "ERR_SCORE", .min = 1, .max = 5,
	    .missing = "Choose a score from 1 to 5" },
	[RATE_COMMENT] = { .name = "comment", .kind = FK_NOTE, .err = "ERR_SCORE", .max = 2000,
	    .too_long = "The comment is too long" },
};
const struct form form_rating = { rating_fields, RATE__N };

static const struct form_field assign_fields[ASG__N] = {
	[ASG_AGENT] = { .name = "agent_id", .kind = FK_INT, .err = "FORM_ERROR", .min = 1,
	    .max = LLONG_MAX, .missing = "Choose an active agent" },
};
const struct form form_assign = { assign_fields, ASG__N };

static const struct form_field note_fields[NOTE__N] = {
	[NOTE_BODY] = { .name = "body", .kind = FK_TEXT, .err = "ERR_NOTE", .min = 1, .max = 10000,
	    .missing = "Type the note first",
	    .too_long = "The note is too long (10000 characters at most)", .or_file = 1 },
	[NOTE_ATTACHMENT] = F_ATTACHMENT_AT("ERR_NOTE_ATTACHMENT"),
};
const struct form form_note = { note_fields, NOTE__N };

static const struct form_field priority_fields[PRI__N] = {
	[PRI_PRIORITY] = { .name = "priority", .kind = FK_CHOICE, .err = "FORM_ERROR",
	    .missing = "Choose a priority: low, normal, high or urgent", .choices = priority_names,
	    .nchoices = PRIO__MAX, .dflt = -1 },
};
const struct form form_priority = { priority_fields, PRI__N };

/* shared: "1" asks for a shared reply (admins only, checked by the handler) */
static const char *const shared_names[] = { "0", "1" };
static const struct form_field saved_reply_fields[SR__N] = {
	[SR_TITLE] = { .name = "title", .kind = FK_LINE, .err = "ERR_TITLE", .min = 1, .max = 100,
	    .missing = "Title is required", .too_long = "The title is too long (100 characters at most)" },
	[SR_BODY] = { .name = "body", .kind = FK_TEXT, .err = "ERR_BODY", .min = 1, .max = 10000,
	    .missing = "Type the reply's text",
	    .too_long = "The reply is too long (10000 characters at most)" },
	[SR_SHARED] = { .name = "shared", .kind = FK_CHOICE, .err = "FORM_ERROR",
	    .missing = "Shared is 1 or absent", .choices = shared_names, .nchoices = 2, .dflt = 0 },
};
const struct form form_saved_reply = { saved_reply_fields, SR__N };

static const struct form_field availability_fields[AVL__N] = {
	[AVL_AVAILABLE] = { .name = "available", .kind = FK_INT, .err = "FORM_ERROR", .min = 0,
	    .max = 1, .missing = "Availability must be 1 (available) or 0 (unavailable)" },
};
const struct form form_availability = { availability_fields, AVL__N };

static const struct form_field token_fields[TOK__N] = {
	[TOK_NAME] = { .name = "name", .kind = FK_LINE, .err = "ERR_NAME", .min = 1, .max = 64,
	    .missing = "Name the token (what will use it)", .too_long = "The name is too long (64 characters at most)" },
};
const struct form form_token = { token_fields, TOK__N };

/* ---- reading and checking ---------------------------------------------- */

/* A decimal integer, all of it, in min..max. */
static int read_int(const char *s, long long min, long long max, long long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return *end == '\0' && errno == 0 && *out >= min && *out <= max ? 0 : -1;
}

/* The rule of field f on its normalised value v (vals: the form's values
 * so far, for FK_CONFIRM).  NULL when good, else the message. */
static const char *check(const struct form_field *f, struct form_value *v,
                         const struct form_value *vals, struct arena *a, size_t files)
{
	size_t n;

	switch (f->kind) {
	case FK_FILE:
		return v->i > f->max ? f->too_long : NULL;
	case FK_EMAIL:
		return email_valid(v->s) ? NULL : f->missing;
	case FK_SECRET:
		return NULL;
	case FK_CONFIRM:
		return strcmp(v->s, vals[f->same_as].s) == 0 ? NULL : f->missing;
	case FK_INT:
		return read_int(v->s, f->min, f->max, &v->i) == 0 ? NULL : f->missing;
	case FK_CHOICE: {
		int i = *v->s ? str_lookup(f->choices, f->nchoices, v->s) : f->dflt;
		v->i = i < 0 ? f->dflt : i;
		return i < 0 ? f->missing : NULL;
	}
	case FK_TEXT:
		/* blank is judged on a trimmed copy; the length on the text as typed */
		if (f->min > 0 && *str_trim(arena_strdup(a, v->s)) == '\0')
			return f->or_file && files > 0 ? NULL : f->missing;
		n = utf8_len(v->s);
		return f->max && n > (size_t)f->max ? f->too_long : NULL;
	case FK_LINE:
	case FK_NOTE:
	case FK_PASSWORD:
		n = utf8_len(v->s);
		if (n < (size_t)f->min)
			return f->missing;
		return f->max && n > (size_t)f->max ? f->too_long : NULL;
	}
	return f->missing;
}

/* form_read: every field of form fm from r's body, normalised by its kind
 * and checked by its rule, into out[] (indexed as the form's enum); a
 * failed field's message is added to errs under its ERR_ key (none for a
 * field without one).  Returns the number of errors added. */
int form_read(struct request *r, const struct form *fm, struct form_value *out,
              struct form_errors *errs)
{
	int before = errs->n;

	for (int i = 0; i < fm->n; i++) {
		const struct form_field *f = &fm->f[i];
		const char *raw = req_form(r, f->name);
		struct form_value *v = &out[i];

		v->i = 0;
		switch (f->kind) {
		case FK_LINE:
			v->s = form_line(r, f->name);
			break;
		case FK_NOTE:
			v->s = form_text(r, f->name);
			break;
		case FK_EMAIL:
			v->s = form_email(r, f->name);
			break;
		case FK_INT:
		case FK_CHOICE:
		case FK_TEXT:
		case FK_PASSWORD:
		case FK_SECRET:
		case FK_CONFIRM:
			v->s = raw ? raw : "";
			break;
		case FK_FILE:
			v->s = "";
			v->i = (long long)r->files_sent;   /* the files are r->files[0..nfiles) */
			break;
		}
		const char *msg = check(f, v, out, r->a, r->files_sent);
		v->ok = msg == NULL;
		if (f->err)
			form_error_add(errs, f->err, msg);
	}
	return errs->n - before;
}

/* The single-field rules for ccr-admin's prompts: the same rules as the
 * forms, from the same table entries. */
static const char *check_one(const struct form_field *f, const char *s)
{
	struct form_value v = { .s = s ? s : "" };

	return check(f, &v, &v, NULL, 0);
}

const char *form_check_first_name(const char *v)
{
	return check_one(&register_fields[REG_FIRST], v);
}

const char *form_check_last_name(const char *v)
{
	return check_one(&register_fields[REG_LAST], v);
}

const char *form_check_email(const char *v)
{
	return check_one(&register_fields[REG_EMAIL], v);
}

const char *form_check_password(const char *v)
{
	return check_one(&register_fields[REG_PASSWORD], v);
}

const char *form_check_confirm(const char *pw, const char *confirm)
{
	return pw && confirm && strcmp(pw, confirm) == 0 ? NULL : register_fields[REG_CONFIRM].missing;
}

/* form_text: a trimmed copy of a form field ("" when absent), arena-owned. */
char *form_text(struct request *r, const char *name)
{
	const char *v = req_form(r, name);

	return str_trim(arena_strdup(r->a, v ? v : ""));
}

/* form_email: trimmed and lower-cased (ASCII letters only), as emails are stored. */
char *form_email(struct request *r, const char *name)
{
	char *e = form_text(r, name);

	str_lower_ascii(e);
	return e;
}

/* form_line: a trimmed one-line field: newlines and tabs become spaces. */
char *form_line(struct request *r, const char *name)
{
	return str_trim(str_fold_line(form_text(r, name)));
}

/* form_error_add: one field's message (nothing when msg is NULL); at most 8. */
void form_error_add(struct form_errors *f, const char *key, const char *msg)
{
	if (msg && f->n < FORM_ERRORS_MAX) {
		f->e[f->n].key = key;
		f->e[f->n].msg = msg;
		f->n++;
	}
}

/* form_error_show: each message into its ERR_<FIELD> section of the page. */
void form_error_show(struct view *v, const struct form_errors *f)
{
	for (int i = 0; i < f->n; i++)
		vdict_set(vdict_section(view_body(v), f->e[i].key), "MSG", f->e[i].msg);
}

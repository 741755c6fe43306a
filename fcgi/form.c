/*
 * form.c — the field rules of SPEC §2 and their messages, word for word.
 * Each check returns NULL when the value is good, else the message.
 */
#include <string.h>

#include "extern.h"

const char *check_first_name(const char *v)
{
	size_t n = v ? utf8_len(v) : 0;

	if (n == 0)
		return "First name is required";
	return n > 64 ? "First name is too long" : NULL;
}

const char *check_last_name(const char *v)
{
	size_t n = v ? utf8_len(v) : 0;

	if (n == 0)
		return "Last name is required";
	return n > 64 ? "Last name is too long" : NULL;
}

const char *check_email(const char *v)
{
	return v && email_valid(v) ? NULL : "Invalid email";
}

/* Length in characters; over 128 is refused before any hashing (SPEC §6). */
const char *check_password(const char *v)
{
	size_t n = v ? utf8_len(v) : 0;

	if (n < 8)
		return "Password must be at least 8 characters long";
	return n > 128 ? "Password is too long" : NULL;
}

const char *check_confirm(const char *pw, const char *confirm)
{
	return pw && confirm && strcmp(pw, confirm) == 0 ? NULL : "Passwords do not match";
}

/* form_text: a trimmed copy of a form field ("" when absent), arena-owned. */
char *form_text(struct request *r, const char *name)
{
	const char *v = req_form(r, name);

	return str_trim(arena_strdup(r->a, v ? v : ""));
}

/* form_email: trimmed and lower-cased (SPEC §2: emails are stored so). */
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

/* ferr_add: one field's message (nothing when msg is NULL); at most 8. */
void ferr_add(struct ferrs *f, const char *key, const char *msg)
{
	if (msg && f->n < FERRS_MAX) {
		f->e[f->n].key = key;
		f->e[f->n].msg = msg;
		f->n++;
	}
}

/* ferr_show: each message into its ERR_<FIELD> section of the page. */
void ferr_show(struct view *v, const struct ferrs *f)
{
	for (int i = 0; i < f->n; i++)
		vdict_set(vdict_section(view_body(v), f->e[i].key), "MSG", f->e[i].msg);
}

/*
 * form.c — forms: the application/x-www-form-urlencoded parser (WHATWG URL
 * §5.1; query strings too), the fields read from a parsed form, the field
 * rules with their messages word for word (README "Accounts and
 * security"), and the list of field errors a page shows.  Each check
 * returns NULL when the value is good, else the message.
 */
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

const char *form_check_first_name(const char *v)
{
	size_t n = v ? utf8_len(v) : 0;

	if (n == 0)
		return "First name is required";
	return n > 64 ? "First name is too long" : NULL;
}

const char *form_check_last_name(const char *v)
{
	size_t n = v ? utf8_len(v) : 0;

	if (n == 0)
		return "Last name is required";
	return n > 64 ? "Last name is too long" : NULL;
}

const char *form_check_email(const char *v)
{
	return v && email_valid(v) ? NULL : "Invalid email";
}

/* Length in characters, 8..128; longer is refused before any hashing, so
 * a huge password cannot make Argon2 work for nothing. */
const char *form_check_password(const char *v)
{
	size_t n = v ? utf8_len(v) : 0;

	if (n < 8)
		return "Password must be at least 8 characters long";
	return n > 128 ? "Password is too long" : NULL;
}

const char *form_check_confirm(const char *pw, const char *confirm)
{
	return pw && confirm && strcmp(pw, confirm) == 0 ? NULL : "Passwords do not match";
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

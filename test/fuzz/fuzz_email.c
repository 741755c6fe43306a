/*
 * fuzz_email.c — email_valid, str_trim, str_lower_ascii and
 * header_safe on a NUL-terminated input, each against a reference.
 */
#include "extern.h"
#include "fuzz_util.h"

/* The email rule as text.c states it: one '@', a non-empty local part, a domain
 * with a dot, not starting or (the address) ending with '.', no "..", no
 * space or control character, none of RFC 5322's specials ()<>[]:;,\"
 * (they cannot go into a To: header unquoted), at most 254 bytes, valid
 * UTF-8. */
static int ref_email(const char *s)
{
	size_t n = strlen(s), ats = 0, at = 0;

	if (n == 0 || n > 254)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f)
			return 0;
		for (const char *sp = "()<>[]:;,\\\""; *sp; sp++)
			if (c == (unsigned char)*sp)
				return 0;
		if (c == '@') {
			ats++;
			at = i;
		}
	}
	if (ats != 1 || at == 0)
		return 0;
	const char *dom = s + at + 1;
	if (!strchr(dom, '.') || dom[0] == '.' || s[n - 1] == '.' || strstr(dom, ".."))
		return 0;
	return ref_utf8_valid(s, n, NULL);
}

static int ref_header_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 ? *s != '\t' : (unsigned char)*s == 0x7f)
			return 0;
	return 1;
}

static int trim_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fz_strndup(data, size);
	size_t n = strlen(s);

	int ev = email_valid(s);
	CHECK(ev == 0 || ev == 1);
	CHECK(ev == ref_email(s));
	if (ev) {
		CHECK(header_safe(s));
		CHECK(utf8_len(s) <= n);
	}
	CHECK(header_safe(s) == ref_header_safe(s));

	/* str_trim: a substring with no outer whitespace; only the end moves in place */
	char *t = strdup(s);
	char *r = str_trim(t);
	size_t lead = 0, rl = strlen(r);
	while (trim_ws(s[lead]))
		lead++;
	CHECK(r == t + lead);
	CHECK(rl <= n - lead && memcmp(r, s + lead, rl) == 0);
	for (size_t i = lead + rl; i < n; i++)
		CHECK(trim_ws(s[i]));
	if (rl) {
		CHECK(!trim_ws(r[0]) && !trim_ws(r[rl - 1]));
	}

	/* str_lower_ascii: only A-Z change, length kept */
	char *l = strdup(s);
	str_lower_ascii(l);
	CHECK(strlen(l) == n);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		CHECK(l[i] == ((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c));
	}
	/* the way form_email() normalises: trim, lower, then check */
	str_lower_ascii(r);
	CHECK(email_valid(r) == ref_email(r));

	free(l);
	free(t);
	free(s);
	return 0;
}

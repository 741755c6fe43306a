/*
 * cookie.c — cookies in and out: the Cookie header parsed as browsers send
 * it (RFC 6265 §4.2.1, §5.4), a parsed cookie looked up, and Set-Cookie
 * written with the flags every cookie of ours carries (HttpOnly,
 * SameSite=Lax, Path=/, and Secure when [security] secure_cookies is on).
 */
#include <string.h>

#include "extern.h"

/* cookie_parse: "a=b; c=d" (RFC 6265 §5.4 as browsers send it).  Pairs
 * without "=" are ignored (§5.2 step 2), surrounding whitespace is trimmed,
 * a value in double quotes loses them.  No percent-decoding: our cookies are
 * plain tokens.  Returns PARSE_OK or PARSE_TOO_MANY. */
int cookie_parse(struct arena *a, const char *hdr, struct kvlist *out, size_t max_pairs)
{
	size_t cap = 0;
	const char *p = hdr;

	out->v = NULL;
	out->n = 0;
	while (p && *p) {
		const char *end = strchr(p, ';');
		size_t seg = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', seg);
		if (eq) {
			const char *ks = p, *ke = eq, *vs = eq + 1, *ve = p + seg;
			while (ks < ke && (*ks == ' ' || *ks == '\t'))
				ks++;
			while (ke > ks && (ke[-1] == ' ' || ke[-1] == '\t'))
				ke--;
			while (vs < ve && (*vs == ' ' || *vs == '\t'))
				vs++;
			while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"') {
				vs++;
				ve--;
			}
			if (ke > ks) {
				int rc = kv_add(a, out, &cap, max_pairs,
				    arena_strndup(a, ks, (size_t)(ke - ks)),
				    arena_strndup(a, vs, (size_t)(ve - vs)));
				if (rc != PARSE_OK)
					return rc;
			}
		}
		p = end ? end + 1 : NULL;
	}
	return PARSE_OK;
}

/* cookie_get: the request's cookie `name`, or NULL when it sent none. */
const char *cookie_get(const struct request *r, const char *name)
{
	if (r->api)   /* cookies are ignored on /api/: a Bearer token or nothing */
		return NULL;
	return kv_get(&r->cookies, name);
}

/* cookie_set: a Set-Cookie header; max_age 0 with value "" deletes it. */
void cookie_set(struct request *r, const char *name, const char *value, long max_age)
{
	if (r->api)   /* the API neither reads nor sets cookies */
		return;
	resp_header_add(r, "Set-Cookie", arena_printf(r->a,
	    "%s=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%ld%s", name, value,
	    max_age, r->conf->secure_cookies ? "; Secure" : ""));
}

/*
 * fuzz_cookie.c — cookie_parse on a NUL-terminated Cookie header, checked
 * against a reference reading of RFC 6265 §5.4 as text.c documents it:
 * split on ';', pairs without '=' ignored, SP/HTAB trimmed around name and
 * value, one pair of surrounding double quotes removed, empty names ignored.
 */
#include "extern.h"
#include "fuzz_util.h"

static struct arena *A;

static int ws(char c)
{
	return c == ' ' || c == '\t';
}

static void check_pair(const struct kv *kv, const char *seg, size_t segl)
{
	const char *eq = memchr(seg, '=', segl);
	const char *ks = seg, *ke = eq, *vs = eq + 1, *ve = seg + segl;

	while (ks < ke && ws(*ks))
		ks++;
	while (ke > ks && ws(ke[-1]))
		ke--;
	while (vs < ve && ws(*vs))
		vs++;
	while (ve > vs && ws(ve[-1]))
		ve--;
	if (ve - vs >= 2 && vs[0] == '"' && ve[-1] == '"') {
		vs++;
		ve--;
	}
	CHECK(strlen(kv->key) == (size_t)(ke - ks) && memcmp(kv->key, ks, (size_t)(ke - ks)) == 0);
	CHECK(strlen(kv->val) == (size_t)(ve - vs) && memcmp(kv->val, vs, (size_t)(ve - vs)) == 0);
	CHECK(kv->key[0] != '\0' && !strchr(kv->key, '=') && !strchr(kv->key, ';'));
	CHECK(!strchr(kv->val, ';'));
}

static void one(const char *hdr, size_t max_pairs)
{
	struct kvlist l;
	int rc = cookie_parse(A, hdr, &l, max_pairs);
	size_t n = 0;   /* pairs the reference finds */
	const char *p = hdr;

	CHECK(rc == PARSE_OK || rc == PARSE_TOO_MANY);
	CHECK(l.n <= max_pairs);
	while (*p) {
		const char *end = strchr(p, ';');
		size_t segl = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', segl);
		if (eq) {
			const char *ks = p, *ke = eq;
			while (ks < ke && ws(*ks))
				ks++;
			while (ke > ks && ws(ke[-1]))
				ke--;
			if (ke > ks) {
				if (n < l.n)
					check_pair(&l.v[n], p, segl);
				n++;
			}
		}
		if (!end)
			break;
		p = end + 1;
	}
	if (n > max_pairs)
		CHECK(rc == PARSE_TOO_MANY && l.n == max_pairs);
	else
		CHECK(rc == PARSE_OK && l.n == n);
	/* kv_get gives the first pair of a name */
	for (size_t i = 0; i < l.n; i++) {
		const char *got = kv_get(&l, l.v[i].key);
		size_t first = 0;
		while (strcmp(l.v[first].key, l.v[i].key) != 0)
			first++;
		CHECK(got == l.v[first].val);
	}
	CHECK(kv_get(&l, "ccr_session") == NULL || l.n > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (A == NULL)
		A = arena_new(1024);
	char *hdr = fz_strndup(data, size);
	one(hdr, 64);
	one(hdr, 2);
	free(hdr);
	arena_reset(A);
	return 0;
}

/*
 * fuzz_form.c — form_parse (urlencoded bodies and query strings) and kv_get.
 * The result code and every pair are checked against a reference parser
 * built from fuzz_util.h's independent decoder and UTF-8 validator.
 */
#include "extern.h"
#include "fuzz_util.h"

static struct arena *A;

struct ref_pair {
	char *k, *v;
	size_t kl, vl;
};

/* The reference: what form_parse must return, and the pairs on PARSE_OK. */
static int ref_form(const char *s, size_t n, size_t max_pairs, struct ref_pair *out,
                    size_t *np, char *scratch)
{
	size_t i = 0;

	*np = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && s[j] != '&')
			j++;
		if (j > i) {
			const char *eq = memchr(s + i, '=', j - i);
			size_t klen = eq ? (size_t)(eq - (s + i)) : j - i;
			const char *vs = eq ? eq + 1 : s + j;
			size_t vlen = eq ? (size_t)(s + j - eq - 1) : 0;
			char *k = scratch, *v = scratch + klen + 1;
			long kl = ref_pct_decode(s + i, klen, 1, k);
			long vl = ref_pct_decode(vs, vlen, 1, v);
			scratch += klen + vlen + 2;
			if (kl < 0 || vl < 0)
				return PARSE_BAD;
			if (!ref_utf8_valid(k, (size_t)kl, NULL) || !ref_utf8_valid(v, (size_t)vl, NULL))
				return PARSE_UTF8;
			if (*np >= max_pairs)
				return PARSE_TOO_MANY;
			out[*np] = (struct ref_pair){ k, v, (size_t)kl, (size_t)vl };
			(*np)++;
		}
		i = j + 1;
	}
	return PARSE_OK;
}

static void check_get(const struct kvlist *l, const struct ref_pair *ref, size_t n,
                      const char *key)
{
	const char *got = kv_get(l, key);
	size_t kl = strlen(key);

	for (size_t i = 0; i < n; i++)
		if (ref[i].kl == kl && memcmp(ref[i].k, key, kl) == 0) {
			CHECK(got == l->v[i].val);
			return;
		}
	CHECK(got == NULL);
}

static void one(const char *s, size_t n, size_t max_pairs)
{
	struct kvlist l;
	size_t segs = n / 2 + 2, np;
	struct ref_pair *ref = malloc(segs * sizeof(*ref));
	char *scratch = malloc(2 * n + 2 * segs + 2);
	int rc = form_parse(A, s, n, &l, max_pairs);
	int want = ref_form(s, n, max_pairs, ref, &np, scratch);

	CHECK(rc == PARSE_OK || rc == PARSE_BAD || rc == PARSE_UTF8 || rc == PARSE_TOO_MANY);
	CHECK(rc == want);
	if (rc == PARSE_OK) {
		CHECK(l.n == np);
		CHECK(l.n <= max_pairs);
		for (size_t i = 0; i < l.n; i++) {
			const char *k = l.v[i].key, *v = l.v[i].val;
			CHECK(k != NULL && v != NULL);
			/* NUL-terminated (ASan would trip past the end), UTF-8, no inner NUL */
			CHECK(strlen(k) == ref[i].kl && memcmp(k, ref[i].k, ref[i].kl) == 0);
			CHECK(strlen(v) == ref[i].vl && memcmp(v, ref[i].v, ref[i].vl) == 0);
			CHECK(utf8_valid(k, strlen(k)) && utf8_valid(v, strlen(v)));
		}
		check_get(&l, ref, np, "a");
		check_get(&l, ref, np, "email");
		check_get(&l, ref, np, "csrf_token");
		check_get(&l, ref, np, "");
		if (np > 0)
			check_get(&l, ref, np, l.v[np - 1].key);
	}
	free(ref);
	free(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (A == NULL)
		A = arena_new(1024);    /* small chunks: the multi-chunk paths too */
	/* The input as is (a body: not NUL-terminated), then as request.c
	 * passes a query string (up to the first NUL), then with a low cap. */
	one((const char *)data, size, 64);
	arena_reset(A);
	char *qs = fz_strndup(data, size);
	one(qs, strlen(qs), 64);
	one(qs, strlen(qs), 3);
	free(qs);
	arena_reset(A);
	return 0;
}

/*
 * fuzz_pct.c — pct_decode (both modes), utf8_valid, text_clean, utf8_len and
 * the url_encode → pct_decode round trip, each against fuzz_util.h's
 * independent reference or an invariant.
 */
#include "extern.h"
#include "fuzz_util.h"

static struct arena *A;

static void decode(const uint8_t *data, size_t size, int plus)
{
	char *buf = malloc(size + 1);   /* pct_decode NUL-terminates: len + 1 */
	char *want = malloc(size + 1);
	long got, ref;
	size_t chars;

	memcpy(buf, data, size);
	got = pct_decode(buf, size, plus);
	ref = ref_pct_decode((const char *)data, size, plus, want);
	CHECK(got == ref);
	if (got >= 0) {
		CHECK((size_t)got <= size);
		CHECK(buf[got] == '\0');
		CHECK(memcmp(buf, want, (size_t)got) == 0);
		int v = utf8_valid(buf, (size_t)got);
		CHECK(v == 0 || v == 1);
		CHECK(v == ref_utf8_valid(buf, (size_t)got, &chars));
		if (v) {
			CHECK(strlen(buf) == (size_t)got);     /* valid means no NUL */
			CHECK(utf8_len(buf) == chars);
			CHECK(utf8_len(buf) <= (size_t)got);
		}
	}
	free(buf);
	free(want);
}

/* text_clean's contract: each CR that precedes an LF (in the input) is
 * dropped; 0 when what is left has no control character but LF and TAB. */
static void clean(const char *s)
{
	size_t n = strlen(s), o = 0;
	char *buf = strdup(s), *want = malloc(n + 1);
	int bad = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' && s[i + 1] == '\n')
			continue;
		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
			bad = 1;
		want[o++] = (char)c;
	}
	want[o] = '\0';
	int rc = text_clean(buf);
	CHECK(rc == (bad ? -1 : 0));
	CHECK(strcmp(buf, want) == 0);
	if (rc == 0) {
		for (const char *p = buf; *p; p++)
			CHECK((unsigned char)*p >= 0x20 || *p == '\n' || *p == '\t');
		CHECK(header_safe(buf) == (strchr(buf, '\n') == NULL));
	}
	free(buf);
	free(want);
}

static void roundtrip(const char *s)
{
	char *enc = url_encode(A, s);
	size_t n = strlen(s), el = strlen(enc);

	for (const char *p = enc; *p; p++) {
		unsigned char c = (unsigned char)*p;
		CHECK((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~' || c == '/' || c == '%');
		if (c == '%')
			CHECK(ref_hex((unsigned char)p[1]) >= 0 && ref_hex((unsigned char)p[2]) >= 0);
	}
	CHECK(el >= n && el <= 3 * n);
	for (int plus = 0; plus <= 1; plus++) {
		char *d = arena_strdup(A, enc);
		long dl = pct_decode(d, el, plus);
		CHECK(dl == (long)n);
		CHECK(memcmp(d, s, n) == 0);
	}
	size_t chars;
	if (ref_utf8_valid(s, n, &chars))
		CHECK(utf8_len(s) == chars);
	CHECK(utf8_len(s) <= n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (A == NULL)
		A = arena_new(4096);
	decode(data, size, 0);
	decode(data, size, 1);
	CHECK(utf8_valid((const char *)data, size) ==
	    ref_utf8_valid((const char *)data, size, NULL));
	char *s = fz_strndup(data, size);
	clean(s);
	roundtrip(s);
	free(s);
	arena_reset(A);
	return 0;
}

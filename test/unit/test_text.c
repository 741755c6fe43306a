/*
 * test_text.c — the byte-level parsers of text.c: percent-decoding, strict
 * UTF-8, the text rules of form input (valid UTF-8, no control characters
 * but newline and tab), urlencoded and Cookie parsing, header and
 * email checks, and the small string helpers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "extern.h"

/* A writable copy of a literal (pct_decode and text_clean work in place). */
#define BUF(name, lit) char name[sizeof(lit) + 8]; memcpy(name, lit, sizeof(lit))

static int arena_setup(void **state)
{
	*state = arena_new(4096);
	return *state ? 0 : -1;
}

static int arena_teardown(void **state)
{
	arena_free(*state);
	return 0;
}

/* ---- pct_decode -------------------------------------------------------- */

static void test_pct_decode_valid(void **state)
{
	(void)state;
	BUF(a, "hello%20world");
	assert_int_equal(pct_decode(a, strlen(a), 0), 11);
	assert_string_equal(a, "hello world");

	BUF(b, "%41%62%7e%7E");        /* both hex cases */
	assert_int_equal(pct_decode(b, strlen(b), 0), 4);
	assert_string_equal(b, "Ab~~");

	BUF(c, "%C3%A9t%C3%A9");       /* UTF-8 bytes pass through */
	assert_int_equal(pct_decode(c, strlen(c), 0), 5);
	assert_string_equal(c, "\xc3\xa9t\xc3\xa9");

	BUF(d, "");
	assert_int_equal(pct_decode(d, 0, 0), 0);
	assert_string_equal(d, "");

	BUF(e, "plain");
	assert_int_equal(pct_decode(e, 5, 1), 5);
	assert_string_equal(e, "plain");

	BUF(f, "%25%32%30");           /* decoded once, never twice */
	assert_int_equal(pct_decode(f, strlen(f), 1), 3);
	assert_string_equal(f, "%20");

	BUF(g, "x%41");                /* escape that ends exactly at len */
	assert_int_equal(pct_decode(g, 4, 0), 2);
	assert_string_equal(g, "xA");
}

static void test_pct_decode_respects_len(void **state)
{
	(void)state;
	/* only s[0..len) is decoded; the result is NUL-terminated there */
	BUF(a, "ab%41cd");
	assert_int_equal(pct_decode(a, 2, 0), 2);
	assert_string_equal(a, "ab");

	/* an escape cut by len is malformed even if the bytes follow */
	BUF(b, "ab%41");
	assert_int_equal(pct_decode(b, 4, 0), -1);
	BUF(c, "ab%41");
	assert_int_equal(pct_decode(c, 3, 0), -1);
}

static void test_pct_decode_plus(void **state)
{
	(void)state;
	BUF(a, "a+b+%2B");
	assert_int_equal(pct_decode(a, strlen(a), 1), 5);
	assert_string_equal(a, "a b +");    /* %2B is a literal plus */

	BUF(b, "a+b+%2B");
	assert_int_equal(pct_decode(b, strlen(b), 0), 5);
	assert_string_equal(b, "a+b++");

	BUF(c, "+++");
	assert_int_equal(pct_decode(c, 3, 1), 3);
	assert_string_equal(c, "   ");
}

static void test_pct_decode_bad(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"%", "%4", "%zz", "%4z", "%z4", "a%", "a%4", "abc%g0", "%%41", "% 41",
		"%-1", "%+1", "%0x41", "ok%41%",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%s", bad[i]);
		if (pct_decode(buf, strlen(buf), 1) != -1)
			fail_msg("pct_decode(\"%s\") should be -1", bad[i]);
	}
}

static void test_pct_decode_nul(void **state)
{
	(void)state;
	/* a decoded NUL is kept (length counts it); the callers' UTF-8 check
	 * is what rejects it */
	BUF(a, "a%00b");
	assert_int_equal(pct_decode(a, strlen(a), 0), 3);
	assert_memory_equal(a, "a\0b", 4);

	BUF(b, "%00");
	assert_int_equal(pct_decode(b, 3, 0), 1);
	assert_int_equal(b[0], 0);

	BUF(c, "%ff%FF%80");
	assert_int_equal(pct_decode(c, strlen(c), 0), 3);
	assert_memory_equal(c, "\xff\xff\x80", 3);
}

/* ---- utf8_valid -------------------------------------------------------- */

#define U8(lit) utf8_valid(lit, sizeof(lit) - 1)

static void test_utf8_valid_good(void **state)
{
	(void)state;
	assert_int_equal(U8(""), 1);
	assert_int_equal(U8("plain ascii ~\x7f"), 1);
	assert_int_equal(U8("\xc2\x80"), 1);                   /* U+0080 */
	assert_int_equal(U8("\xc3\xa9"), 1);                   /* é */
	assert_int_equal(U8("\xdf\xbf"), 1);                   /* U+07FF */
	assert_int_equal(U8("\xe0\xa0\x80"), 1);               /* U+0800 */
	assert_int_equal(U8("\xe2\x82\xac"), 1);               /* € */
	assert_int_equal(U8("\xed\x9f\xbf"), 1);               /* U+D7FF */
	assert_int_equal(U8("\xee\x80\x80"), 1);               /* U+E000 */
	assert_int_equal(U8("\xef\xbf\xbd"), 1);               /* U+FFFD */
	assert_int_equal(U8("\xef\xbf\xbf"), 1);               /* U+FFFF */
	assert_int_equal(U8("\xf0\x90\x80\x80"), 1);           /* U+10000 */
	assert_int_equal(U8("\xf0\x9f\x98\x80"), 1);           /* 😀 */
	assert_int_equal(U8("\xf4\x8f\xbf\xbf"), 1);           /* U+10FFFF */
	assert_int_equal(U8("Gr\xc3\xbc\xc3\x9f" "e \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80!"), 1);
}

static void test_utf8_valid_overlong(void **state)
{
	(void)state;
	assert_int_equal(U8("\xc0\x80"), 0);                   /* NUL, 2 bytes */
	assert_int_equal(U8("\xc0\xaf"), 0);                   /* '/' */
	assert_int_equal(U8("\xc1\xbf"), 0);
	assert_int_equal(U8("\xe0\x80\x80"), 0);
	assert_int_equal(U8("\xe0\x80\xaf"), 0);
	assert_int_equal(U8("\xe0\x9f\xbf"), 0);               /* U+07FF in 3 */
	assert_int_equal(U8("\xf0\x80\x80\x80"), 0);
	assert_int_equal(U8("\xf0\x8f\xbf\xbf"), 0);           /* U+FFFF in 4 */
}

static void test_utf8_valid_surrogates_and_range(void **state)
{
	(void)state;
	assert_int_equal(U8("\xed\xa0\x80"), 0);               /* U+D800 */
	assert_int_equal(U8("\xed\xaf\xbf"), 0);
	assert_int_equal(U8("\xed\xb0\x80"), 0);               /* U+DC00 */
	assert_int_equal(U8("\xed\xbf\xbf"), 0);               /* U+DFFF */
	assert_int_equal(U8("\xed\xa0\xbd\xed\xb8\x80"), 0);   /* CESU pair */
	assert_int_equal(U8("\xf4\x90\x80\x80"), 0);           /* U+110000 */
	assert_int_equal(U8("\xf4\xbf\xbf\xbf"), 0);
	assert_int_equal(U8("\xf5\x80\x80\x80"), 0);
	assert_int_equal(U8("\xf7\xbf\xbf\xbf"), 0);
	assert_int_equal(U8("\xf8\x88\x80\x80\x80"), 0);       /* 5-byte form */
	assert_int_equal(U8("\xfc\x84\x80\x80\x80\x80"), 0);   /* 6-byte form */
	assert_int_equal(U8("\xfe"), 0);
	assert_int_equal(U8("\xff"), 0);
}

static void test_utf8_valid_broken(void **state)
{
	(void)state;
	/* truncated sequences, at the end and in the middle */
	assert_int_equal(U8("\xc3"), 0);
	assert_int_equal(U8("\xe2\x82"), 0);
	assert_int_equal(U8("\xe2"), 0);
	assert_int_equal(U8("\xf0\x9f\x98"), 0);
	assert_int_equal(U8("\xf0\x9f"), 0);
	assert_int_equal(U8("abc\xc3"), 0);
	assert_int_equal(U8("\xe2\x82z"), 0);
	assert_int_equal(U8("\xf0\x9f\x98z"), 0);
	assert_int_equal(U8("\xc3 x"), 0);
	/* lone continuation bytes */
	assert_int_equal(U8("\x80"), 0);
	assert_int_equal(U8("\xbf"), 0);
	assert_int_equal(U8("a\x80" "b"), 0);
	assert_int_equal(U8("\xc3\xa9\xa9"), 0);
	/* a second byte that is not a continuation */
	assert_int_equal(U8("\xc3\xc3"), 0);
	assert_int_equal(U8("\xe2\xc3\xa9"), 0);
	/* NUL bytes are refused wherever they are */
	assert_int_equal(utf8_valid("\0", 1), 0);
	assert_int_equal(utf8_valid("ab\0cd", 5), 0);
	assert_int_equal(utf8_valid("abc\0", 4), 0);
	/* length is honoured: a valid prefix of a broken buffer is valid */
	assert_int_equal(utf8_valid("abc\xff", 3), 1);
	/* ... and a multi-byte character cut by len is not */
	assert_int_equal(utf8_valid("\xe2\x82\xac", 2), 0);
	assert_int_equal(utf8_valid("\xf0\x9f\x98\x80", 3), 0);
}

/* ---- text_clean -------------------------------------------------------- */

static void test_text_clean_crlf(void **state)
{
	(void)state;
	BUF(a, "line1\r\nline2\r\n\r\nend");
	assert_int_equal(text_clean(a), 0);
	assert_string_equal(a, "line1\nline2\n\nend");

	BUF(b, "no newline");
	assert_int_equal(text_clean(b), 0);
	assert_string_equal(b, "no newline");

	BUF(c, "");
	assert_int_equal(text_clean(c), 0);
	assert_string_equal(c, "");

	BUF(d, "\r\n");
	assert_int_equal(text_clean(d), 0);
	assert_string_equal(d, "\n");

	BUF(e, "tab\there\nLF ok \xc3\xa9\xe2\x82\xac");
	assert_int_equal(text_clean(e), 0);
	assert_string_equal(e, "tab\there\nLF ok \xc3\xa9\xe2\x82\xac");
}

static void test_text_clean_lone_cr(void **state)
{
	(void)state;
	BUF(a, "a\rb");
	assert_int_equal(text_clean(a), -1);
	BUF(b, "end\r");
	assert_int_equal(text_clean(b), -1);
	BUF(c, "\r\r\n");            /* the first CR is alone */
	assert_int_equal(text_clean(c), -1);
	BUF(d, "\n\r");
	assert_int_equal(text_clean(d), -1);
}

static void test_text_clean_controls(void **state)
{
	(void)state;
	for (int ch = 1; ch < 0x20; ch++) {
		char buf[8] = "a_b";
		buf[1] = (char)ch;
		int want = (ch == '\n' || ch == '\t') ? 0 : -1;
		if (text_clean(buf) != want)
			fail_msg("text_clean with byte 0x%02x: expected %d", ch, want);
	}
	BUF(del, "a\x7f" "b");
	assert_int_equal(text_clean(del), -1);
	BUF(esc, "\x1b[31mred");
	assert_int_equal(text_clean(esc), -1);
	/* bytes >= 0x80 are not control characters here (UTF-8 is checked elsewhere) */
	BUF(hi, "\xc2\xa0\xe2\x80\xa8");
	assert_int_equal(text_clean(hi), 0);
}

/* ---- form_parse -------------------------------------------------------- */

static int fparse(struct arena *a, const char *s, struct kvlist *l, size_t max)
{
	return form_parse(a, s, strlen(s), l, max);
}

static void test_form_parse_pairs(void **state)
{
	struct arena *a = *state;
	struct kvlist l;

	assert_int_equal(fparse(a, "a=1&b=two&c=%C3%A9+x", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0].key, "a");
	assert_string_equal(l.v[0].val, "1");
	assert_string_equal(l.v[1].key, "b");
	assert_string_equal(l.v[1].val, "two");
	assert_string_equal(l.v[2].key, "c");
	assert_string_equal(l.v[2].val, "\xc3\xa9 x");
	assert_string_equal(kv_get(&l, "b"), "two");
	assert_null(kv_get(&l, "d"));
	assert_null(kv_get(&l, "A"));       /* keys are case-sensitive */
	assert_null(kv_get(&l, ""));

	/* keys are decoded too; '=' inside a value stays */
	assert_int_equal(fparse(a, "first+name=Ann&x%3Dy=a=b", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 2);
	assert_string_equal(kv_get(&l, "first name"), "Ann");
	assert_string_equal(kv_get(&l, "x=y"), "a=b");

	/* an encoded '&' does not split */
	assert_int_equal(fparse(a, "q=a%26b", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].val, "a&b");
}

static void test_form_parse_empty(void **state)
{
	struct arena *a = *state;
	struct kvlist l = { (struct kv *)1, 99 };

	assert_int_equal(fparse(a, "", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 0);
	assert_null(kv_get(&l, "a"));

	assert_int_equal(fparse(a, "&&&", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 0);

	assert_int_equal(fparse(a, "&a=1&&b=2&", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 2);
	assert_string_equal(kv_get(&l, "a"), "1");
	assert_string_equal(kv_get(&l, "b"), "2");

	/* key without '=' has the value ""; "=v" has the empty key */
	assert_int_equal(fparse(a, "flag&k=&=v", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0].key, "flag");
	assert_string_equal(l.v[0].val, "");
	assert_string_equal(l.v[1].key, "k");
	assert_string_equal(l.v[1].val, "");
	assert_string_equal(l.v[2].key, "");
	assert_string_equal(l.v[2].val, "v");
}

static void test_form_parse_duplicates(void **state)
{
	struct arena *a = *state;
	struct kvlist l;

	assert_int_equal(fparse(a, "role=customer&role=admin&x=1&role=agent", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 4);
	assert_string_equal(kv_get(&l, "role"), "customer");
	assert_string_equal(l.v[1].val, "admin");
	assert_string_equal(l.v[3].val, "agent");
}

static void test_form_parse_len_bounded(void **state)
{
	struct arena *a = *state;
	struct kvlist l;
	const char *s = "a=1&b=2&c=3";

	/* only s[0..len) is parsed */
	assert_int_equal(form_parse(a, s, 5, &l, 16), PARSE_OK);
	assert_int_equal(l.n, 2);
	assert_string_equal(kv_get(&l, "a"), "1");
	assert_string_equal(kv_get(&l, "b"), "");
	assert_null(kv_get(&l, "c"));

	assert_int_equal(form_parse(a, s, 0, &l, 16), PARSE_OK);
	assert_int_equal(l.n, 0);
}

static void test_form_parse_too_many(void **state)
{
	struct arena *a = *state;
	struct kvlist l;

	assert_int_equal(fparse(a, "a=1&b=2&c=3", &l, 3), PARSE_OK);
	assert_int_equal(l.n, 3);
	assert_int_equal(fparse(a, "a=1&b=2&c=3&d=4", &l, 3), PARSE_TOO_MANY);
	assert_int_equal(fparse(a, "a", &l, 0), PARSE_TOO_MANY);
	/* empty segments do not count */
	assert_int_equal(fparse(a, "a=1&&&&&b=2", &l, 2), PARSE_OK);

	/* many pairs: the list grows past its first allocation */
	char big[4096];
	size_t o = 0;
	for (int i = 0; i < 200; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "%sk%d=v%d", i ? "&" : "", i, i);
	assert_int_equal(fparse(a, big, &l, 200), PARSE_OK);
	assert_int_equal(l.n, 200);
	assert_string_equal(kv_get(&l, "k0"), "v0");
	assert_string_equal(kv_get(&l, "k17"), "v17");
	assert_string_equal(kv_get(&l, "k199"), "v199");
	assert_int_equal(fparse(a, big, &l, 199), PARSE_TOO_MANY);
}

static void test_form_parse_utf8(void **state)
{
	struct arena *a = *state;
	struct kvlist l;

	assert_int_equal(fparse(a, "name=%C3%A9", &l, 16), PARSE_OK);
	assert_int_equal(fparse(a, "name=%C3", &l, 16), PARSE_UTF8);
	assert_int_equal(fparse(a, "name=%C0%80", &l, 16), PARSE_UTF8);
	assert_int_equal(fparse(a, "name=%ED%A0%80", &l, 16), PARSE_UTF8);
	assert_int_equal(fparse(a, "name=%F4%90%80%80", &l, 16), PARSE_UTF8);
	assert_int_equal(fparse(a, "name=%FF", &l, 16), PARSE_UTF8);
	assert_int_equal(fparse(a, "%FF=x", &l, 16), PARSE_UTF8);
	assert_int_equal(fparse(a, "a=1&name=%00", &l, 16), PARSE_UTF8);   /* decoded NUL */
	assert_int_equal(fparse(a, "a%00b=1", &l, 16), PARSE_UTF8);
	assert_int_equal(fparse(a, "name=ab%00", &l, 16), PARSE_UTF8);
	/* raw invalid bytes as well as encoded ones */
	assert_int_equal(fparse(a, "name=\xc3", &l, 16), PARSE_UTF8);
	assert_int_equal(fparse(a, "name=\xc3\xa9", &l, 16), PARSE_OK);
}

/* A raw NUL byte inside the body is no more UTF-8 than an encoded one
 * (utf8_valid refuses NUL; form_parse promises PARSE_UTF8 for a value that
 * is not UTF-8): the value must be refused, not cut short at the NUL. */
static void test_form_parse_raw_nul_in_value(void **state)
{
	struct arena *a = *state;
	struct kvlist l;
	static const char key_nul[] = "a\0b=1";
	static const char val_nul[] = "k=ab\0cd&z=1";

	assert_int_equal(form_parse(a, key_nul, sizeof(key_nul) - 1, &l, 16), PARSE_UTF8);
	assert_int_equal(form_parse(a, val_nul, sizeof(val_nul) - 1, &l, 16), PARSE_UTF8);
}

static void test_form_parse_bad_escape(void **state)
{
	struct arena *a = *state;
	struct kvlist l;

	assert_int_equal(fparse(a, "a=%", &l, 16), PARSE_BAD);
	assert_int_equal(fparse(a, "a=%4", &l, 16), PARSE_BAD);
	assert_int_equal(fparse(a, "a=%zz", &l, 16), PARSE_BAD);
	assert_int_equal(fparse(a, "a=1&b=%4&c=3", &l, 16), PARSE_BAD);
	assert_int_equal(fparse(a, "%=1", &l, 16), PARSE_BAD);
	assert_int_equal(fparse(a, "k%4=1", &l, 16), PARSE_BAD);
	assert_int_equal(fparse(a, "flag%", &l, 16), PARSE_BAD);
	/* "%4" is cut by the '&' that follows: not "%4&" decoded */
	assert_int_equal(fparse(a, "a=%4&1=x", &l, 16), PARSE_BAD);
}

/* ---- cookie_parse ------------------------------------------------------ */

static void test_cookie_parse_basic(void **state)
{
	struct arena *a = *state;
	struct kvlist l;

	assert_int_equal(cookie_parse(a, "a=b; c=d", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0].key, "a");
	assert_string_equal(l.v[0].val, "b");
	assert_string_equal(l.v[1].key, "c");
	assert_string_equal(l.v[1].val, "d");

	assert_int_equal(cookie_parse(a, "ccr_session=0123abcd", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 1);
	assert_string_equal(kv_get(&l, "ccr_session"), "0123abcd");

	assert_int_equal(cookie_parse(a, "", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 0);
	assert_int_equal(cookie_parse(a, NULL, &l, 16), PARSE_OK);
	assert_int_equal(l.n, 0);

	/* no percent-decoding; '=' in a value stays */
	assert_int_equal(cookie_parse(a, "x=a%20b; y=k=v==", &l, 16), PARSE_OK);
	assert_string_equal(kv_get(&l, "x"), "a%20b");
	assert_string_equal(kv_get(&l, "y"), "k=v==");
}

static void test_cookie_parse_whitespace(void **state)
{
	struct arena *a = *state;
	struct kvlist l;

	assert_int_equal(cookie_parse(a, "  a =  b  ;\tc\t=\td\t;e=f;g=h ", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.v[0].key, "a");
	assert_string_equal(l.v[0].val, "b");
	assert_string_equal(l.v[1].key, "c");
	assert_string_equal(l.v[1].val, "d");
	assert_string_equal(l.v[2].key, "e");
	assert_string_equal(l.v[2].val, "f");
	assert_string_equal(l.v[3].key, "g");
	assert_string_equal(l.v[3].val, "h");

	/* empty segments and trailing ';' */
	assert_int_equal(cookie_parse(a, ";;a=1;; ;", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 1);
	assert_string_equal(kv_get(&l, "a"), "1");

	/* an empty value is kept */
	assert_int_equal(cookie_parse(a, "a=; b= ", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 2);
	assert_string_equal(kv_get(&l, "a"), "");
	assert_string_equal(kv_get(&l, "b"), "");
}

static void test_cookie_parse_quotes(void **state)
{
	struct arena *a = *state;
	struct kvlist l;

	assert_int_equal(cookie_parse(a, "a=\"quoted\"; b=\"\"; c=\"; d=\"x; e=x\"", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 5);
	assert_string_equal(kv_get(&l, "a"), "quoted");
	assert_string_equal(kv_get(&l, "b"), "");
	assert_string_equal(kv_get(&l, "c"), "\"");     /* a lone quote is not a pair */
	assert_string_equal(kv_get(&l, "d"), "\"x");
	assert_string_equal(kv_get(&l, "e"), "x\"");

	assert_int_equal(cookie_parse(a, "a= \"sp ace\" ", &l, 16), PARSE_OK);
	assert_string_equal(kv_get(&l, "a"), "sp ace");
}

static void test_cookie_parse_odd_pairs(void **state)
{
	struct arena *a = *state;
	struct kvlist l;

	/* pairs without '=' are ignored; empty names are ignored */
	assert_int_equal(cookie_parse(a, "novalue; a=1; =2; =; b=3; =x=y", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 2);
	assert_string_equal(kv_get(&l, "a"), "1");
	assert_string_equal(kv_get(&l, "b"), "3");
	assert_null(kv_get(&l, "novalue"));
	assert_null(kv_get(&l, ""));

	assert_int_equal(cookie_parse(a, "  =v ; \t= w", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 0);

	/* duplicates: the first one wins (RFC 6265 §5.4: longer path first) */
	assert_int_equal(cookie_parse(a, "s=first; s=second", &l, 16), PARSE_OK);
	assert_int_equal(l.n, 2);
	assert_string_equal(kv_get(&l, "s"), "first");

	/* names keep inner spaces and case */
	assert_int_equal(cookie_parse(a, "My Name=1", &l, 16), PARSE_OK);
	assert_string_equal(kv_get(&l, "My Name"), "1");
	assert_null(kv_get(&l, "my name"));
}

static void test_cookie_parse_too_many(void **state)
{
	struct arena *a = *state;
	struct kvlist l;

	assert_int_equal(cookie_parse(a, "a=1; b=2", &l, 2), PARSE_OK);
	assert_int_equal(cookie_parse(a, "a=1; b=2; c=3", &l, 2), PARSE_TOO_MANY);
	/* ignored segments do not count */
	assert_int_equal(cookie_parse(a, "a=1; junk; =z; b=2", &l, 2), PARSE_OK);
	assert_int_equal(l.n, 2);

	char big[8192];
	size_t o = 0;
	for (int i = 0; i < 100; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "c%d=%d; ", i, i * 7);
	assert_int_equal(cookie_parse(a, big, &l, 100), PARSE_OK);
	assert_int_equal(l.n, 100);
	assert_string_equal(kv_get(&l, "c99"), "693");
	assert_int_equal(cookie_parse(a, big, &l, 99), PARSE_TOO_MANY);
}

/* ---- header_safe ------------------------------------------------------- */

static void test_header_safe(void **state)
{
	(void)state;
	assert_int_equal(header_safe(""), 1);
	assert_int_equal(header_safe("Ticket #12: printer on fire"), 1);
	assert_int_equal(header_safe("tab\tok"), 1);
	assert_int_equal(header_safe("Gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac"), 1);
	assert_int_equal(header_safe("a\r\nBcc: victim@example.com"), 0);
	assert_int_equal(header_safe("a\nb"), 0);
	assert_int_equal(header_safe("a\rb"), 0);
	assert_int_equal(header_safe("trailing\n"), 0);
	assert_int_equal(header_safe("del\x7f"), 0);
	assert_int_equal(header_safe("\x1b"), 0);
	for (int ch = 1; ch < 0x20; ch++) {
		char buf[4] = { 'x', (char)ch, 'y', 0 };
		if (header_safe(buf) != (ch == '\t'))
			fail_msg("header_safe with byte 0x%02x", ch);
	}
}

/* ---- email_valid ------------------------------------------------------- */

static void test_email_valid_good(void **state)
{
	(void)state;
	assert_int_equal(email_valid("a@b.c"), 1);
	assert_int_equal(email_valid("ann.smith+tag@mail.example.co.uk"), 1);
	assert_int_equal(email_valid("UPPER@Example.COM"), 1);
	assert_int_equal(email_valid("o'brien@example.ie"), 1);
	assert_int_equal(email_valid("j\xc3\xb6rg@b\xc3\xbc" "cher.de"), 1);   /* UTF-8 */
}

static void test_email_valid_bad(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "plain", "@example.com", "a@", "a@b", "a@@b.c", "a@b@c.d", "a b@c.d",
		"a@b .c", " a@b.c", "a@b.c ", "a@b.c\n", "a\t@b.c", "a@b.c\r", "a@.b.c",
		"a@b.c.", "a@b..c", "a@.", "@", "a@b\x7f.c", "a@b.\xc3", "a@\xc0\xae.c",
		"a.b.c@example", "\xff@b.c",
		/* RFC 5322 specials: they cannot reach a To: header unquoted
		 * (regression: "a'),('b@x.com" registered, then its welcome mail
		 * was refused and the request answered 500) */
		"a,b@c.d", "a'),('b@sqli.example.com", "a<b@c.d", "a>b@c.d", "a;b@c.d",
		"a:b@c.d", "a\"b@c.d", "a\\b@c.d", "a[b]@c.d", "a@[1.2.3.4]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (email_valid(bad[i]) != 0)
			fail_msg("email_valid(\"%s\") should be 0", bad[i]);
}

static void test_email_valid_length(void **state)
{
	(void)state;
	char buf[300];
	/* "<local>@example.com": 12 bytes of domain and '@' */
	const char *dom = "@example.com";
	size_t dl = strlen(dom);

	for (size_t total = 252; total <= 256; total++) {
		memset(buf, 'x', total - dl);
		memcpy(buf + total - dl, dom, dl + 1);
		assert_int_equal(strlen(buf), total);
		if (email_valid(buf) != (total <= 254))
			fail_msg("email of %zu bytes: expected %d", total, total <= 254);
	}
	/* the limit is in bytes, not characters */
	size_t o = 0;
	while (o + 2 <= 244) {
		buf[o++] = '\xc3';
		buf[o++] = '\xa9';
	}
	memcpy(buf + o, dom, dl + 1);          /* 244 + 12 = 256 bytes, 134 chars */
	assert_int_equal(strlen(buf), 256);
	assert_int_equal(email_valid(buf), 0);
}

/* ---- str_trim, str_lower_ascii, utf8_len, url_encode -------------------- */

static void test_str_trim(void **state)
{
	(void)state;
	BUF(a, "  \t hello world \r\n ");
	assert_string_equal(str_trim(a), "hello world");
	BUF(b, "nothing");
	assert_ptr_equal(str_trim(b), b);
	assert_string_equal(b, "nothing");
	BUF(c, "   ");
	assert_string_equal(str_trim(c), "");
	BUF(d, "");
	assert_string_equal(str_trim(d), "");
	BUF(e, "\n\nx");
	char *r = str_trim(e);
	assert_ptr_equal(r, e + 2);
	assert_string_equal(r, "x");
	BUF(f, "in  side\t\tkept  ");
	assert_string_equal(str_trim(f), "in  side\t\tkept");
	/* a non-breaking space (UTF-8) is not ASCII whitespace */
	BUF(g, "\xc2\xa0x\xc2\xa0");
	assert_string_equal(str_trim(g), "\xc2\xa0x\xc2\xa0");
}

static void test_str_lower_ascii(void **state)
{
	(void)state;
	BUF(a, "Ann.SMITH@Example.COM");
	str_lower_ascii(a);
	assert_string_equal(a, "ann.smith@example.com");
	BUF(b, "AZaz09@[`{");                  /* the bytes around A-Z stay */
	str_lower_ascii(b);
	assert_string_equal(b, "azaz09@[`{");
	BUF(c, "\xc3\x89T\xc3\x89");           /* É is left alone */
	str_lower_ascii(c);
	assert_string_equal(c, "\xc3\x89t\xc3\x89");
	BUF(d, "");
	str_lower_ascii(d);
	assert_string_equal(d, "");
}

static void test_utf8_len(void **state)
{
	(void)state;
	assert_int_equal(utf8_len(""), 0);
	assert_int_equal(utf8_len("abc"), 3);
	assert_int_equal(utf8_len("\xc3\xa9"), 1);
	assert_int_equal(utf8_len("\xe2\x82\xac"), 1);
	assert_int_equal(utf8_len("\xf0\x9f\x98\x80"), 1);
	assert_int_equal(utf8_len("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"), 5);
	assert_int_equal(utf8_len("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"), 3);
}

static void test_url_encode(void **state)
{
	struct arena *a = *state;

	assert_string_equal(url_encode(a, ""), "");
	assert_string_equal(url_encode(a, "AZaz09-_.~/"), "AZaz09-_.~/");
	assert_string_equal(url_encode(a, "a b"), "a%20b");
	assert_string_equal(url_encode(a, "/tickets?status=open&q=x+y#frag"),
	    "/tickets%3Fstatus%3Dopen%26q%3Dx%2By%23frag");
	assert_string_equal(url_encode(a, "\xc3\xa9"), "%C3%A9");
	assert_string_equal(url_encode(a, "%\r\n\x7f\xff"), "%25%0D%0A%7F%FF");
	assert_string_equal(url_encode(a, "\"<>'\\"), "%22%3C%3E%27%5C");

	/* every byte round-trips through pct_decode */
	char all[256];
	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	char *enc = url_encode(a, all);
	assert_int_equal(strlen(enc), strlen(all) + 2 * (255 - 67));   /* 67 kept as is */
	long n = pct_decode(enc, strlen(enc), 0);
	assert_int_equal(n, 255);
	assert_memory_equal(enc, all, 256);
}

/* ---- time_cells ------------------------------------------------------- */

/* what page.c wrote with gmtime_r + strftime before time_cells */
static void strftime_cells(long long t, char iso[40], char text[40], char date[40])
{
	time_t tt = (time_t)t;
	struct tm tm;

	assert_non_null(gmtime_r(&tt, &tm));
	strftime(iso, 40, "%Y-%m-%dT%H:%M:%SZ", &tm);
	strftime(text, 40, "%Y-%m-%d %H:%M UTC", &tm);
	strftime(date, 40, "%Y-%m-%d", &tm);
}

static void test_time_cells_dates(void **state)
{
	(void)state;
	struct time_cells c;
	static const struct { long long t; const char *iso; } known[] = {
		{ 0, "1970-01-01T00:00:00Z" },
		{ -1, "1969-12-31T23:59:59Z" },
		{ 951782400, "2000-02-29T00:00:00Z" },      /* divisible by 400: leap */
		{ 951868800, "2000-03-01T00:00:00Z" },
		{ 1709251199, "2024-02-29T23:59:59Z" },     /* leap year */
		{ 1709251200, "2024-03-01T00:00:00Z" },
		{ 1677628799, "2023-02-28T23:59:59Z" },     /* common year */
		{ 1677628800, "2023-03-01T00:00:00Z" },
		{ -2203891200, "1900-03-01T00:00:00Z" },    /* divisible by 100: common */
		{ 4107542400, "2100-03-01T00:00:00Z" },
		{ 1735689599, "2024-12-31T23:59:59Z" },
		{ 1735689600, "2025-01-01T00:00:00Z" },
		{ 4294967295LL, "2106-02-07T06:28:15Z" },   /* UNIX_TIMESTAMP's largest */
		{ -30610224000LL, "1000-01-01T00:00:00Z" },
		{ 253402300799LL, "9999-12-31T23:59:59Z" },
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		assert_int_equal(time_cells(known[i].t, known[i].t, &c), 0);
		assert_string_equal(c.iso, known[i].iso);
	}
	assert_int_equal(time_cells(1733337005, 1733337005, &c), 0);
	assert_string_equal(c.text, "2024-12-04 18:30 UTC");
	/* outside years 1000..9999: refused */
	assert_int_equal(time_cells(-30610224001LL, 0, &c), -1);
	assert_int_equal(time_cells(253402300800LL, 0, &c), -1);

	/* the same texts as strftime, over 1000..9999 in uneven steps (every
	 * month, day and time of day meets many times) and every hour of 2024 */
	char iso[40], text[40], date[40];
	for (long long t = -30610224000LL; t <= 253402300799LL; t += 7654321 + t % 977) {
		assert_int_equal(time_cells(t, t + 40 * 86400, &c), 0);
		strftime_cells(t, iso, text, date);
		assert_string_equal(c.iso, iso);
		assert_string_equal(c.text, text);
		assert_string_equal(c.ago, date);
	}
	for (long long t = 1704067200; t < 1735689600; t += 3599) {
		assert_int_equal(time_cells(t, t, &c), 0);
		strftime_cells(t, iso, text, date);
		assert_string_equal(c.iso, iso);
		assert_string_equal(c.text, text);
	}
}

static void test_time_cells_ago(void **state)
{
	(void)state;
	struct time_cells c;
	const long long t = 1733337005;
	static const struct { long long d; const char *ago; } cases[] = {
		{ -3600, "just now" },       /* a time ahead */
		{ 0, "just now" },
		{ 59, "just now" },
		{ 60, "1 min ago" },
		{ 119, "1 min ago" },
		{ 3599, "59 min ago" },
		{ 3600, "1 h ago" },
		{ 86399, "23 h ago" },
		{ 86400, "1 day ago" },
		{ 2 * 86400 - 1, "1 day ago" },
		{ 2 * 86400, "2 days ago" },
		{ 30 * 86400 - 1, "29 days ago" },
		{ 30 * 86400, "2024-12-04" },  /* then the date */
		{ 4000LL * 86400, "2024-12-04" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(time_cells(t, t + cases[i].d, &c), 0);
		assert_string_equal(c.ago, cases[i].ago);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pct_decode_valid),
		cmocka_unit_test(test_pct_decode_respects_len),
		cmocka_unit_test(test_pct_decode_plus),
		cmocka_unit_test(test_pct_decode_bad),
		cmocka_unit_test(test_pct_decode_nul),
		cmocka_unit_test(test_utf8_valid_good),
		cmocka_unit_test(test_utf8_valid_overlong),
		cmocka_unit_test(test_utf8_valid_surrogates_and_range),
		cmocka_unit_test(test_utf8_valid_broken),
		cmocka_unit_test(test_text_clean_crlf),
		cmocka_unit_test(test_text_clean_lone_cr),
		cmocka_unit_test(test_text_clean_controls),
		cmocka_unit_test_setup_teardown(test_form_parse_pairs, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_form_parse_empty, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_form_parse_duplicates, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_form_parse_len_bounded, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_form_parse_too_many, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_form_parse_utf8, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_form_parse_raw_nul_in_value, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_form_parse_bad_escape, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_cookie_parse_basic, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_cookie_parse_whitespace, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_cookie_parse_quotes, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_cookie_parse_odd_pairs, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_cookie_parse_too_many, arena_setup, arena_teardown),
		cmocka_unit_test(test_header_safe),
		cmocka_unit_test(test_email_valid_good),
		cmocka_unit_test(test_email_valid_bad),
		cmocka_unit_test(test_email_valid_length),
		cmocka_unit_test(test_str_trim),
		cmocka_unit_test(test_str_lower_ascii),
		cmocka_unit_test(test_utf8_len),
		cmocka_unit_test_setup_teardown(test_url_encode, arena_setup, arena_teardown),
		cmocka_unit_test(test_time_cells_dates),
		cmocka_unit_test(test_time_cells_ago),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

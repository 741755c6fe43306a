/*
 * test_crypto.c — crypto.c: the SHA-256 wrapper (GLib, libcrypto) against the
 * FIPS 180-4 / RFC 6234 test vectors and the padding boundaries; session
 * tokens and the constant-time comparison.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "extern.h"

static void check(const void *data, size_t len, const char *want)
{
	char h[65];

	memset(h, 'Z', sizeof(h));
	assert_int_equal(crypto_sha256_hex(data, len, h), 0);
	if (strcmp(h, want) != 0)
		fail_msg("sha256 of %zu bytes: %s, expected %s", len, h, want);
}

static void test_sha256_fips_vectors(void **state)
{
	(void)state;
	check("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* 448 bits: the padding needs a second block */
	check("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* 896 bits */
	check("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
	      "klmnopqrlmnopqrsmnopqrstnopqrstu", 112,
	    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_sha256_million_a(void **state)
{
	(void)state;
	size_t n = 1000000;
	char *m = malloc(n);
	assert_non_null(m);
	memset(m, 'a', n);
	check(m, n, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(m);
}

static void test_sha256_padding_boundaries(void **state)
{
	(void)state;
	/* bytes (i*7+3) & 0xff; values from Python's hashlib */
	static const struct {
		size_t len;
		const char *want;
	} v[] = {
		{ 55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b" },
		{ 56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27" },
		{ 57, "35df609437dcfea3279283ab79fd554e2bf78f8f7ae2de532d8ee300b09e8f73" },
		{ 63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055" },
		{ 64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241" },
		{ 65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e" },
		{ 119, "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e" },
		{ 120, "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5" },
		{ 127, "a8d23e75d936f303d248888d9b165ee543f4cbafcad3c9dd2a79bd84faa11d07" },
		{ 128, "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6" },
		{ 129, "307f8fc2c1622b92762e818d39a185d4d667ad49a4b07ceae1f4afa008a93ec4" },
	};
	unsigned char buf[256];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)((i * 7 + 3) & 0xff);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		/* also from an unaligned address */
		unsigned char *copy = malloc(v[i].len + 1);
		assert_non_null(copy);
		memcpy(copy + 1, buf, v[i].len);
		check(buf, v[i].len, v[i].want);
		check(copy + 1, v[i].len, v[i].want);
		free(copy);
	}
	/* binary input with a NUL: the length decides, not the NUL */
	check("a\0b", 3, "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138");
}

/* Up to 4096 bytes the one-shot digest is GLib's, past it libcrypto's
 * (crypto.c says why): both sides of the switch, and the streaming API. */
static void test_sha256_glib_libcrypto_switch_agrees(void **state)
{
	(void)state;
	static const struct {
		size_t len;
		const char *want;
	} v[] = {
		{ 4096, "7486da8f1e13943fae21a0b043f1e99640d7d8ebafb25266478b5cddae1272b5" },
		{ 4097, "225270fa091dc75bf959a0e3bbcb897fc3ae8e7fa128ae1394cf5614e15505f5" },
	};
	unsigned char buf[4097];
	char h[65];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)((i * 7 + 3) & 0xff);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		check(buf, v[i].len, v[i].want);
		void *st = crypto_sha256_begin();
		assert_non_null(st);
		assert_int_equal(crypto_sha256_add(st, buf, 1000), 0);
		assert_int_equal(crypto_sha256_add(st, buf + 1000, v[i].len - 1000), 0);
		assert_int_equal(crypto_sha256_end(st, h), 0);
		assert_string_equal(h, v[i].want);
	}
}

static void test_sha256_hex_bounds(void **state)
{
	(void)state;
	char out[66];

	memset(out, 'Z', sizeof(out));
	assert_int_equal(crypto_sha256_hex("abc", 3, out), 0);
	assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(out[65], 'Z');        /* 64 digits and a NUL, no more */
}

static int is_lower_hex64(const char *s)
{
	size_t n;
	for (n = 0; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return n == 64;
}

static void test_crypto_token(void **state)
{
	(void)state;
	char a[65], b[65];
	int seen[16] = { 0 };

	memset(a, 'Z', sizeof(a));
	assert_int_equal(crypto_token(a), 0);
	assert_int_equal(a[64], '\0');
	assert_true(is_lower_hex64(a));
	assert_int_equal(crypto_token(b), 0);
	assert_true(is_lower_hex64(b));
	assert_string_not_equal(a, b);

	/* 200 tokens: all well-formed and distinct, every hex digit used */
	enum { N = 200 };
	char (*t)[65] = malloc(N * sizeof(*t));
	assert_non_null(t);
	for (int i = 0; i < N; i++) {
		assert_int_equal(crypto_token(t[i]), 0);
		assert_true(is_lower_hex64(t[i]));
		for (int k = 0; k < 64; k++)
			seen[t[i][k] <= '9' ? t[i][k] - '0' : t[i][k] - 'a' + 10]++;
		for (int j = 0; j < i; j++)
			if (strcmp(t[i], t[j]) == 0)
				fail_msg("token %d repeats token %d", i, j);
	}
	/* 12800 digits: each of 16 values expected 800 times */
	for (int d = 0; d < 16; d++)
		if (seen[d] < 600 || seen[d] > 1000)
			fail_msg("hex digit %x appears %d times in 12800", d, seen[d]);
	free(t);
}

/* request ids are crypto_random_hex(out, 8): 16 digits, NUL right after;
 * more than 64 bytes is refused and writes nothing */
static void test_crypto_random_hex_lengths_and_bound(void **state)
{
	(void)state;
	char out[130];

	for (size_t n = 1; n <= 64; n++) {
		memset(out, 'Z', sizeof(out));
		assert_int_equal(crypto_random_hex(out, n), 0);
		assert_int_equal(strlen(out), 2 * n);
		for (size_t i = 0; i < 2 * n; i++)
			assert_true((out[i] >= '0' && out[i] <= '9') || (out[i] >= 'a' && out[i] <= 'f'));
		assert_int_equal(out[2 * n + 1], 'Z');
	}
	memset(out, 'Z', sizeof(out));
	assert_int_equal(crypto_random_hex(out, 65), -1);
	assert_int_equal(out[0], 'Z');
}

static void test_crypto_equal(void **state)
{
	(void)state;
	char a[65], b[65];

	assert_int_equal(crypto_equal("", ""), 1);
	assert_int_equal(crypto_equal("abc", "abc"), 1);
	assert_int_equal(crypto_equal("abc", "abd"), 0);
	assert_int_equal(crypto_equal("abc", "bbc"), 0);
	assert_int_equal(crypto_equal("abc", "ab"), 0);
	assert_int_equal(crypto_equal("ab", "abc"), 0);
	assert_int_equal(crypto_equal("", "a"), 0);
	assert_int_equal(crypto_equal("a", ""), 0);
	assert_int_equal(crypto_equal("ABC", "abc"), 0);

	assert_int_equal(crypto_token(a), 0);
	memcpy(b, a, sizeof(a));
	assert_int_equal(crypto_equal(a, b), 1);
	/* each position matters, including a one-bit difference */
	for (int i = 0; i < 64; i++) {
		b[i] ^= 1;
		if (crypto_equal(a, b))
			fail_msg("difference at %d not seen", i);
		b[i] ^= 1;
	}
	assert_int_equal(crypto_equal(a, b), 1);
	/* a high bit difference does not cancel out */
	assert_int_equal(crypto_equal("\x80" "a", "\x81" "a"), 0);
	assert_int_equal(crypto_equal("\xff\x01", "\x01\xff"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_fips_vectors),
		cmocka_unit_test(test_sha256_million_a),
		cmocka_unit_test(test_sha256_padding_boundaries),
		cmocka_unit_test(test_sha256_glib_libcrypto_switch_agrees),
		cmocka_unit_test(test_sha256_hex_bounds),
		cmocka_unit_test(test_crypto_token),
		cmocka_unit_test(test_crypto_random_hex_lengths_and_bound),
		cmocka_unit_test(test_crypto_equal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_totp.c — totp.c and crypto.c's sealing: RFC 6238 appendix B's test
 * vectors (SHA-1, 8 digits) through liboath as the server calls it; the
 * 6-digit match window of ±1 step and its edges; base32 and the otpauth
 * URI; the QR path; AES-256-GCM sealing, and what makes it refuse to open
 * (another key, another account's associated data, a changed byte).
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

/* RFC 6238 appendix B: the SHA-1 seed is the ASCII "12345678901234567890" */
static const char SEED[] = "12345678901234567890";

static void test_rfc6238_vectors_sha1(void **state)
{
	static const struct {
		long long t;
		const char *code;
	} v[] = {
		{ 59, "94287082" }, { 1111111109, "07081804" }, { 1111111111, "14050471" },
		{ 1234567890, "89005924" }, { 2000000000, "69279037" }, { 20000000000LL, "65353130" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char out[9];
		assert_int_equal(totp_generate(SEED, 20, (time_t)v[i].t, 8, out), 0);
		if (strcmp(out, v[i].code) != 0)
			fail_msg("T=%lld: %s, RFC 6238 says %s", v[i].t, out, v[i].code);
	}
}

static void test_match_window_is_one_step_each_way(void **state)
{
	char c[7];
	time_t now = 1111111111;        /* step 37037037 */
	long long step = now / 30;

	(void)state;
	for (int d = -3; d <= 3; d++) {
		assert_int_equal(totp_generate(SEED, 20, now + d * 30, 6, c), 0);
		long long got = totp_match(SEED, 20, now, c);
		if (d >= -1 && d <= 1)
			assert_true(got == step + d);
		else
			assert_true(got == -1);
	}
	assert_true(totp_match(SEED, 20, now, "12345") == -1);
	assert_true(totp_match(SEED, 20, now, "1234567") == -1);
	assert_true(totp_match(SEED, 20, now, "") == -1);
}

static void test_base32_and_uri(void **state)
{
	struct arena *a = arena_new(4096);

	(void)state;
	char *b = totp_base32(a, SEED, 20);
	assert_string_equal(b, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
	char *u = totp_uri(a, "Customer Care", "ana+x@example.com", b);
	assert_string_equal(u, "otpauth://totp/Customer%20Care:ana%2Bx%40example.com?secret="
	    "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Customer%20Care&algorithm=SHA1&digits=6&period=30");
	int size = 0;
	char *p = totp_qr_path(a, u, &size);
	assert_non_null(p);
	/* a version 5+ code (37+ modules) plus the 4-module quiet zone each side */
	assert_true(size >= 37 + 8);
	assert_true(strncmp(p, "M4 4h7v1h-7z", 12) == 0);   /* the finder pattern's top row */
	arena_free(a);
}

static void test_seal_open_and_refusals(void **state)
{
	unsigned char key[32], other[32], sealed[64], plain[32];
	size_t n = 0, m = 0;

	(void)state;
	memset(key, 7, sizeof(key));
	memset(other, 8, sizeof(other));
	assert_int_equal(crypto_seal(key, "totp:1", 6, SEED, 20, sealed, sizeof(sealed), &n), 0);
	assert_int_equal(n, 20 + CRYPTO_SEAL_OVERHEAD);
	assert_null(memmem(sealed, n, SEED, 20));
	assert_int_equal(crypto_open(key, "totp:1", 6, sealed, n, plain, sizeof(plain), &m), 0);
	assert_int_equal(m, 20);
	assert_memory_equal(plain, SEED, 20);
	assert_int_equal(crypto_open(other, "totp:1", 6, sealed, n, plain, sizeof(plain), &m), -1);
	assert_int_equal(crypto_open(key, "totp:2", 6, sealed, n, plain, sizeof(plain), &m), -1);
	sealed[15] ^= 1;
	assert_int_equal(crypto_open(key, "totp:1", 6, sealed, n, plain, sizeof(plain), &m), -1);
	sealed[15] ^= 1;
	assert_int_equal(crypto_open(key, "totp:1", 6, sealed, n - 1, plain, sizeof(plain), &m), -1);
	assert_int_equal(crypto_open(key, "totp:1", 6, sealed, 10, plain, sizeof(plain), &m), -1);
	/* too small an output buffer: refused, not overrun */
	assert_int_equal(crypto_seal(key, "", 0, SEED, 20, sealed, 20, &n), -1);
	assert_int_equal(crypto_open(key, "totp:1", 6, sealed, 48, plain, 10, &m), -1);
	/* two seals of the same secret differ (a fresh nonce each) */
	unsigned char s2[64];
	size_t n2 = 0;
	assert_int_equal(crypto_seal(key, "totp:1", 6, SEED, 20, sealed, sizeof(sealed), &n), 0);
	assert_int_equal(crypto_seal(key, "totp:1", 6, SEED, 20, s2, sizeof(s2), &n2), 0);
	assert_memory_not_equal(sealed, s2, n);
}

static void test_required_roles(void **state)
{
	struct conf c;

	(void)state;
	conf_defaults(&c);
	assert_int_equal(c.require_2fa, R2FA_ADMINS);
	assert_true(totp_required(&c, ROLE_ADMIN) && !totp_required(&c, ROLE_AGENT) &&
	    !totp_required(&c, ROLE_CUSTOMER));
	c.require_2fa = R2FA_STAFF;
	assert_true(totp_required(&c, ROLE_ADMIN) && totp_required(&c, ROLE_AGENT) &&
	    !totp_required(&c, ROLE_CUSTOMER));
	c.require_2fa = R2FA_NONE;
	assert_true(!totp_required(&c, ROLE_ADMIN) && !totp_required(&c, ROLE_AGENT));
}

static void test_code_kind(void **state)
{
	char a[] = " 12 34-56 ", b[] = "ABCDE-fghij", c[] = "12345", d[] = "abcde-fghi1",
	    e[] = "1234567", f[] = "";

	(void)state;
	assert_int_equal(totp_code_kind(a), TC_TOTP);
	assert_string_equal(a, "123456");
	assert_int_equal(totp_code_kind(b), TC_RECOVERY);
	assert_string_equal(b, "abcdefghij");
	assert_int_equal(totp_code_kind(c), TC_BAD);
	assert_int_equal(totp_code_kind(d), TC_BAD);   /* '1' is not base32 */
	assert_int_equal(totp_code_kind(e), TC_BAD);
	assert_int_equal(totp_code_kind(f), TC_BAD);
}

static void test_browser_line(void **state)
{
	struct arena *a = arena_new(8192);
	char big[1000];

	(void)state;
	assert_string_equal(device_browser_line(a, NULL), "");
	assert_string_equal(device_browser_line(a, " Mozilla\r\nX-Evil: 1\t "), "Mozilla  X-Evil: 1");
	assert_string_equal(device_browser_line(a, "caf\xc3\xa9"), "caf\xc3\xa9");
	assert_string_equal(device_browser_line(a, "bad\xff\xc3\xa9"), "bad???");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(strlen(device_browser_line(a, big)), 200);
	/* 799 ASCII bytes and a 2-byte character cut by the 800-byte bound:
	 * still UTF-8 text, not turned into '?' */
	memset(big, 'y', sizeof(big));
	memcpy(big + 10, "\xc3\xa9", 2);
	big[799] = '\xc3';
	big[800] = '\xa9';
	big[801] = '\0';
	const char *l = device_browser_line(a, big);
	assert_int_equal(utf8_len(l), 200);
	assert_memory_equal(l + 10, "\xc3\xa9", 2);
	arena_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6238_vectors_sha1),
		cmocka_unit_test(test_match_window_is_one_step_each_way),
		cmocka_unit_test(test_base32_and_uri),
		cmocka_unit_test(test_seal_open_and_refusals),
		cmocka_unit_test(test_required_roles),
		cmocka_unit_test(test_code_kind),
		cmocka_unit_test(test_browser_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

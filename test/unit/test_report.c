/*
 * test_report.c — the report's duration histograms: buckets exact under
 * 64 s and 1/32 of their value wide above, monotonic, every bucket's
 * middle within 1/64 of each value in it, and the stored text form
 * ("bucket:count,…") read back, malformed text refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "extern.h"

static void test_buckets_exact_under_64_seconds(void **state)
{
	(void)state;
	for (long long v = 0; v < 64; v++) {
		assert_int_equal(hist_bucket(v), v);
		assert_int_equal(hist_value((int)v), v);
	}
	assert_int_equal(hist_bucket(-5), 0);
	assert_int_equal(hist_bucket(64), 64);
	assert_int_equal(hist_bucket(65), 64);
	assert_int_equal(hist_bucket(66), 65);
	assert_int_equal(hist_bucket(127), 95);
	assert_int_equal(hist_bucket(128), 96);
}

static void test_buckets_monotonic_and_close(void **state)
{
	(void)state;
	int prev = -1;
	for (long long v = 0; v < (1LL << 32); v = v < 10000 ? v + 1 : v + v / 997) {
		int b = hist_bucket(v);
		assert_true(b >= prev);
		assert_true(b >= 0 && b < HIST_BUCKETS);
		long long m = hist_value(b), d = m > v ? m - v : v - m;
		assert_true(d * 64 <= v || d <= 1);
		assert_int_equal(hist_bucket(m), b);     /* the middle is in its own bucket */
		prev = b;
	}
	assert_int_equal(hist_bucket((1LL << 32) - 1), HIST_BUCKETS - 1);
	assert_int_equal(hist_bucket(1LL << 40), HIST_BUCKETS - 1);
}

static void test_text_form(void **state)
{
	(void)state;
	long long c[HIST_BUCKETS] = { 0 };

	assert_int_equal(hist_parse("", c), 0);
	assert_int_equal(hist_parse("3:2,64:1,895:7", c), 0);
	assert_int_equal(c[3], 2);
	assert_int_equal(c[64], 1);
	assert_int_equal(c[895], 7);
	assert_int_equal(hist_parse("3:1", c), 0);          /* adds */
	assert_int_equal(c[3], 3);
	const char *bad[] = { "3", "3:", ":4", "896:1", "-1:2", "3:2,", "3:2;4:1", "x:1", "3:1x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(hist_parse(bad[i], c), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets_exact_under_64_seconds),
		cmocka_unit_test(test_buckets_monotonic_and_close),
		cmocka_unit_test(test_text_form),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_log.c — log_escape writes the inside of a valid JSON string
 * (RFC 8259 section 7) whatever bytes it is given, so a JSON log line
 * always parses; and a whole log_access line in JSON mode carries them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "extern.h"

static void expect(const char *in, const char *want)
{
	char out[256];

	log_escape(out, sizeof(out), in);
	if (strcmp(out, want) != 0)
		fail_msg("log_escape(\"%s\"): got \"%s\", want \"%s\"", in, out, want);
}

static void test_log_escape_is_json_not_hex(void **state)
{
	(void)state;
	expect("/tickets?q=a\"b", "/tickets?q=a\\\"b");            /* %22: no \x22 */
	expect("a\\b", "a\\\\b");
	expect("\b\f\n\r\t", "\\b\\f\\n\\r\\t");
	expect("\x01\x1f\x7f", "\\u0001\\u001f\\u007f");
	expect("plain /path-1_2.3~", "plain /path-1_2.3~");
	/* well-formed UTF-8 is kept */
	expect("\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80", "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80");
	/* malformed UTF-8: lone continuation, cut sequences, overlong, surrogate,
	 * above U+10FFFF, 0xff -- each bad byte becomes U+FFFD */
	expect("a\x80z", "a\\ufffdz");
	expect("a\xc3", "a\\ufffd");
	expect("a\xe6\x97", "a\\ufffd\\ufffd");
	expect("\xc0\xaf", "\\ufffd\\ufffd");
	expect("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd");
	expect("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd");
	expect("\xff\xfe", "\\ufffd\\ufffd");
	expect("", "");
	expect(NULL, "");
}

static void test_log_escape_never_cuts_an_escape(void **state)
{
	(void)state;
	char out[8];

	/* room for 7 bytes: "ab" then \" (2) then \u0001 (6) does not fit */
	assert_int_equal(log_escape(out, sizeof(out), "ab\"\x01"), 4);
	assert_string_equal(out, "ab\\\"");
	assert_int_equal(log_escape(out, 4, "\xc3\xa9\xc3\xa9"), 2);
	assert_string_equal(out, "\xc3\xa9");
	assert_int_equal(log_escape(out, 1, "abc"), 0);
	assert_string_equal(out, "");
}

/* One JSON access line with a hostile path, captured from stderr. */
static void test_log_access_json_line(void **state)
{
	(void)state;
	char path[] = "/tmp/ccr-test-log-XXXXXX", buf[4096];
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);

	assert_true(fd >= 0 && saved >= 0);
	log_init("ccrd", 1);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	log_access("r1", "GET", "/x\"y\\z\x01\xff", 404, 1.5, 0, "127.0.0.1");
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	unlink(path);
	log_init("ccrd", 0);
	assert_true(n > 0);
	buf[n] = '\0';
	if (strstr(buf, "\"path\":\"/x\\\"y\\\\z\\u0001\\ufffd\"") == NULL)
		fail_msg("JSON access line: %s", buf);
	assert_null(strstr(buf, "\\x"));
	assert_int_equal(buf[n - 1], '\n');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_escape_is_json_not_hex),
		cmocka_unit_test(test_log_escape_never_cuts_an_escape),
		cmocka_unit_test(test_log_access_json_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

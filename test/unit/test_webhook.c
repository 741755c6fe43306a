/*
 * test_webhook.c — webhook.c's address policy: the special-purpose blocks
 * refused, public addresses allowed, [webhooks] allow entries (addresses
 * and CIDR blocks, IPv4 and IPv6) letting listed ones through and nothing
 * else, IPv4-mapped IPv6 judged as IPv4, and the allow list's syntax; the
 * URL rule on literal addresses (no DNS needed).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "extern.h"

static int allowed(const struct conf *c, const char *ip)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, ip, a) == 1)
		return webhook_addr_allowed(c, AF_INET, a);
	if (inet_pton(AF_INET6, ip, a) == 1)
		return webhook_addr_allowed(c, AF_INET6, a);
	fail_msg("bad test address %s", ip);
	return -1;
}

static void test_special_blocks_refused(void **state)
{
	static const char *const refused[] = {
		"127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "172.31.255.255",
		"192.168.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
		"255.255.255.255", "198.18.0.1", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1",
		"ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2001:db8::1",
	};
	static const char *const ok[] = {
		"93.184.216.34", "8.8.8.8", "172.32.0.1", "172.15.255.255", "192.169.0.1",
		"2606:4700::1111", "::ffff:8.8.8.8", "100.128.0.1",
	};
	struct conf c;

	(void)state;
	conf_defaults(&c);
	for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++)
		if (allowed(&c, refused[i]))
			fail_msg("%s allowed", refused[i]);
	for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++)
		if (!allowed(&c, ok[i]))
			fail_msg("%s refused", ok[i]);
}

static void test_allow_list_lets_listed_through(void **state)
{
	struct conf c;

	(void)state;
	conf_defaults(&c);
	snprintf(c.webhooks_allow, sizeof(c.webhooks_allow), "127.0.0.1, 10.20.0.0/16 fd00::/8");
	assert_int_equal(allowed(&c, "127.0.0.1"), 1);
	assert_int_equal(allowed(&c, "::ffff:127.0.0.1"), 1);
	assert_int_equal(allowed(&c, "127.0.0.2"), 0);
	assert_int_equal(allowed(&c, "10.20.255.1"), 1);
	assert_int_equal(allowed(&c, "10.21.0.1"), 0);
	assert_int_equal(allowed(&c, "fd99::1"), 1);
	assert_int_equal(allowed(&c, "fc00::1"), 0);
	assert_int_equal(allowed(&c, "::1"), 0);
}

static void test_allow_list_syntax(void **state)
{
	(void)state;
	assert_int_equal(webhook_allow_check(""), 0);
	assert_int_equal(webhook_allow_check(" 127.0.0.1 ,::1,10.0.0.0/8\t192.168.1.0/24 "), 0);
	assert_int_equal(webhook_allow_check("10.0.0.0/33"), -1);
	assert_int_equal(webhook_allow_check("::1/129"), -1);
	assert_int_equal(webhook_allow_check("localhost"), -1);
	assert_int_equal(webhook_allow_check("10.0.0.0/"), -1);
	assert_int_equal(webhook_allow_check("10.0.0.0/8x"), -1);
	assert_int_equal(webhook_allow_check("1.2.3.4.5"), -1);
}

static void test_url_rule_on_literals(void **state)
{
	struct conf c;
	struct arena *a = arena_new(0);

	(void)state;
	conf_defaults(&c);
	assert_null(webhook_url_check(&c, a, "https://93.184.216.34/hook"));
	assert_non_null(webhook_url_check(&c, a, "http://93.184.216.34/hook"));
	assert_non_null(webhook_url_check(&c, a, "https://10.0.0.1/hook"));
	assert_non_null(webhook_url_check(&c, a, "https://[::1]/hook"));
	assert_non_null(webhook_url_check(&c, a, "https://user:pw@93.184.216.34/"));
	assert_non_null(webhook_url_check(&c, a, ""));
	assert_non_null(webhook_url_check(&c, a, "https://93.184.216.34/a\r\nX: y"));
	c.webhooks_allow_http = 1;
	assert_null(webhook_url_check(&c, a, "http://93.184.216.34/hook"));
	assert_non_null(webhook_url_check(&c, a, "http://127.0.0.1:8000/hook"));
	snprintf(c.webhooks_allow, sizeof(c.webhooks_allow), "127.0.0.1");
	assert_null(webhook_url_check(&c, a, "http://127.0.0.1:8000/hook"));
	assert_non_null(webhook_url_check(&c, a, "gopher://127.0.0.1/"));
	arena_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_special_blocks_refused),
		cmocka_unit_test(test_allow_list_lets_listed_through),
		cmocka_unit_test(test_allow_list_syntax),
		cmocka_unit_test(test_url_rule_on_literals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

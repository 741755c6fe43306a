/*
 * test_json.c — json_decode, the API's request-body decoder: the bounds
 * (size, depth, strict syntax, one object), UTF-8 and lone surrogates,
 * known fields typed and unknown ones ignored, duplicate member names
 * refused; and json_time's RFC 3339 form.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "extern.h"

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

static int decode(struct arena *a, const char *s, struct kvlist *l, const char **why,
                  const char **field)
{
	memset(l, 0, sizeof(*l));
	return json_decode(a, s, strlen(s), json_api_fields, json_api_nfields, l, why, field);
}

static void test_fields_read_unknown_ignored(void **state)
{
	struct kvlist l;
	const char *why = NULL, *field = NULL;

	assert_int_equal(decode(*state, " {\"subject\": \"caf\\u00e9\", \"agent_id\": 42, "
	    "\"customer_id\": 7, \"x\": {\"y\": [1, {\"z\": null}]}} \n", &l, &why, &field), 0);
	assert_string_equal(kv_get(&l, "subject"), "caf\xc3\xa9");
	assert_string_equal(kv_get(&l, "agent_id"), "42");
	assert_null(kv_get(&l, "customer_id"));
	assert_null(kv_get(&l, "x"));
	assert_null(field);
}

static void test_wrong_types_name_the_field(void **state)
{
	static const char *const bad[] = {
		"{\"subject\": 5}", "{\"subject\": null}", "{\"subject\": [\"a\"]}", "{\"subject\": true}",
		"{\"agent_id\": \"5\"}", "{\"agent_id\": 1.5}", "{\"agent_id\": 1e3}", "{\"agent_id\": {}}",
	};
	struct kvlist l;
	const char *why, *field;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(decode(*state, bad[i], &l, &why, &field), 422);
		assert_non_null(field);
		assert_non_null(strstr(why, field));
	}
}

static void test_malformed_is_400(void **state)
{
	static const char *const bad[] = {
		"", "{", "{\"subject\": \"a\"", "[1]", "\"s\"", "7", "{'a': 1}", "{\"a\": 1} x",
		"{\"a\": 1,}", "{\"a\": /* c */ 1}", "{\"a\": NaN}",
		"{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
	};
	struct kvlist l;
	const char *why, *field;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(decode(*state, bad[i], &l, &why, &field), 400);
}

static void test_text_rules_422(void **state)
{
	static const char *const bad[] = {
		"{\"body\": \"\xff\"}", "{\"body\": \"a\\u0000b\"}", "{\"body\": \"\\ud800\"}",
		"{\"body\": \"\\udc00\\ud800\"}", "{\"body\": \"\\ud800x\"}",
		"{\"body\": \"x\", \"body\": \"y\"}", "{\"a\": 1, \"b\": 2, \"a\": 3}",
	};
	struct kvlist l;
	const char *why, *field;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(decode(*state, bad[i], &l, &why, &field), 422);
	/* a pair is fine; so is a duplicate inside an ignored member, and "\\u" text */
	assert_int_equal(decode(*state, "{\"body\": \"\\ud83d\\ude00 \\\\ud800\", \"x\": {\"a\": 1, \"a\": 2}}",
	    &l, &why, &field), 0);
	assert_string_equal(kv_get(&l, "body"), "\xf0\x9f\x98\x80 \\ud800");
}

static void test_size_bound(void **state)
{
	size_t n = JSON_MAX_BODY + 1;
	char *big = malloc(n + 1);
	struct kvlist l = { 0 };
	const char *why, *field;

	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	big[n] = '\0';
	assert_int_equal(json_decode(*state, big, n, json_api_fields, json_api_nfields, &l, &why, &field), 413);
	assert_int_equal(json_decode(*state, big + 1, n - 1, json_api_fields, json_api_nfields, &l, &why,
	    &field), 400);
	big[1] = '{';
	assert_int_equal(json_decode(*state, big + 1, n - 1, json_api_fields, json_api_nfields, &l, &why,
	    &field), 0);
	free(big);
}

static void test_time_rfc3339(void **state)
{
	struct json_object *o = json_time(*state, "1764763680");

	assert_non_null(o);
	assert_string_equal(json_object_get_string(o), "2025-12-03T12:08:00Z");
	json_object_put(o);
	assert_null(json_time(*state, NULL));
	assert_null(json_time(*state, "x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fields_read_unknown_ignored, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_wrong_types_name_the_field, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_malformed_is_400, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_text_rules_422, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_size_bound, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_time_rfc3339, arena_setup, arena_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_reply.c — reply_fill: the placeholders of a saved reply
 * ({customer_first_name}, {agent_first_name}, {ticket_number}) filled in,
 * each wherever and however often it appears; anything else, other braces
 * included, kept as written; values inserted as text, never re-read as
 * placeholders.
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

static void test_fill_each(void **state)
{
	struct arena *a = *state;

	assert_string_equal(reply_fill(a, "Hi {customer_first_name}, {agent_first_name} on #{ticket_number}.",
	    "Zoe", "Sam", 42), "Hi Zoe, Sam on #42.");
	assert_string_equal(reply_fill(a, "{ticket_number}{ticket_number}", "", "", 7), "77");
	assert_string_equal(reply_fill(a, "{customer_first_name}", "Zoë", "Sam", 1), "Zoë");
	assert_string_equal(reply_fill(a, "", "Zoe", "Sam", 1), "");
}

static void test_fill_keeps_the_rest(void **state)
{
	struct arena *a = *state;

	assert_string_equal(reply_fill(a, "{unknown} {customer_first_name {ticket_number",
	    "Zoe", "Sam", 3), "{unknown} {customer_first_name {ticket_number");
	assert_string_equal(reply_fill(a, "{{ticket_number}}", "Zoe", "Sam", 3), "{3}");
	assert_string_equal(reply_fill(a, "no placeholders", "Zoe", "Sam", 3), "no placeholders");
}

static void test_fill_values_are_text(void **state)
{
	struct arena *a = *state;

	/* a name that looks like a placeholder or like markup stays what it is */
	assert_string_equal(reply_fill(a, "{customer_first_name}/{agent_first_name}",
	    "{agent_first_name}", "<b>", 9), "{agent_first_name}/<b>");
	assert_string_equal(reply_fill(a, "{customer_first_name}", NULL, NULL, 9), "");
	/* long values: the result is sized for them */
	char big[300];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	const char *out = reply_fill(a, "{customer_first_name}{customer_first_name}{customer_first_name}",
	    big, "", 1);
	assert_int_equal(strlen(out), 3 * strlen(big));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fill_each, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_fill_keeps_the_rest, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_fill_values_are_text, arena_setup, arena_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

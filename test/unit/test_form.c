/*
 * test_form.c — declared forms read through form_read: values come back
 * normalised by kind and typed (numbers, choice indexes), each rule's
 * message is the one the pages show, limits hold at their boundary, and
 * errors keep field order.  The body is parsed by form_parse, as a
 * request's is.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "extern.h"

static struct request req;

/* r with body `body` (urlencoded) parsed into its form */
static struct request *with_body(const char *body)
{
	if (req.a)
		arena_free(req.a);
	memset(&req, 0, sizeof(req));
	req.a = arena_new(0);
	assert_int_equal(form_parse(req.a, body, strlen(body), &req.form, 64), PARSE_OK);
	return &req;
}

static const char *repeat(char c, size_t n)
{
	static char buf[30000];

	assert_true(n < sizeof(buf));
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

static void test_register_good_values_are_normalised(void **state)
{
	struct form_value in[REG__N];
	struct form_errors f = { .n = 0 };

	(void)state;
	form_read(with_body("first_name=+Ann%0Ab+&last_name=Lee&email=+Ann%40Example.COM+"
	    "&password=+secret+pw&confirm_password=+secret+pw"), &form_register, in, &f);
	assert_int_equal(f.n, 0);
	assert_string_equal(in[REG_FIRST].s, "Ann b");      /* trimmed, newline folded */
	assert_string_equal(in[REG_EMAIL].s, "ann@example.com");
	assert_string_equal(in[REG_PASSWORD].s, " secret pw"); /* a password is as typed */
	assert_true(in[REG_CONFIRM].ok);
}

static void test_register_errors_in_field_order(void **state)
{
	struct form_value in[REG__N];
	struct form_errors f = { .n = 0 };

	(void)state;
	assert_int_equal(form_read(with_body("first_name=&email=nope&password=short"
	    "&confirm_password=other"), &form_register, in, &f), 5);
	assert_string_equal(f.e[0].key, "ERR_FIRST_NAME");
	assert_string_equal(f.e[0].msg, "First name is required");
	assert_string_equal(f.e[1].key, "ERR_LAST_NAME");
	assert_string_equal(f.e[1].msg, "Last name is required");
	assert_string_equal(f.e[2].msg, "Invalid email");
	assert_string_equal(f.e[3].msg, "Password must be at least 8 characters long");
	assert_string_equal(f.e[4].key, "ERR_CONFIRM_PASSWORD");
	assert_string_equal(f.e[4].msg, "Passwords do not match");
	assert_false(in[REG_EMAIL].ok);
}

static void test_limits_at_the_boundary(void **state)
{
	struct form_value in[TKT__N];
	struct form_errors f = { .n = 0 };
	char body[30100];

	(void)state;
	snprintf(body, sizeof(body), "subject=%s&description=d", repeat('s', 200));
	assert_int_equal(form_read(with_body(body), &form_ticket, in, &f), 0);
	snprintf(body, sizeof(body), "subject=%s&description=d", repeat('s', 201));
	assert_int_equal(form_read(with_body(body), &form_ticket, in, &f), 1);
	assert_string_equal(f.e[0].msg, "Subject is too long");
	f.n = 0;
	snprintf(body, sizeof(body), "subject=s&description=%s", repeat('d', 20000));
	assert_int_equal(form_read(with_body(body), &form_ticket, in, &f), 0);
	snprintf(body, sizeof(body), "subject=s&description=%s", repeat('d', 20001));
	assert_int_equal(form_read(with_body(body), &form_ticket, in, &f), 1);
	assert_string_equal(f.e[0].msg, "Description is too long");
	f.n = 0;
	/* 128 characters, not bytes: é is two bytes */
	snprintf(body, sizeof(body), "password=%s&confirm_password=x", repeat('p', 128));
	struct form_value ch[CHG__N];
	form_read(with_body(body), &form_change, ch, &f);
	assert_true(ch[CHG_PASSWORD].ok);
	f.n = 0;
	form_read(with_body("password=%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9"), &form_change, ch, &f);
	assert_false(ch[CHG_PASSWORD].ok);   /* 7 characters, 14 bytes */
	assert_string_equal(f.e[0].msg, "Password must be at least 8 characters long");
}

static void test_description_blank_but_kept_as_typed(void **state)
{
	struct form_value in[TKT__N];
	struct form_errors f = { .n = 0 };

	(void)state;
	form_read(with_body("subject=s&description=+%0A+"), &form_ticket, in, &f);
	assert_int_equal(f.n, 1);
	assert_string_equal(f.e[0].key, "ERR_DESCRIPTION");
	assert_string_equal(f.e[0].msg, "Query cannot be empty");
	f.n = 0;
	form_read(with_body("subject=s&description=+two%0Alines+"), &form_ticket, in, &f);
	assert_int_equal(f.n, 0);
	assert_string_equal(in[TKT_DESCRIPTION].s, " two\nlines ");
}

static void test_choice_yields_enum_and_defaults(void **state)
{
	struct form_value in[TKT__N];
	struct form_errors f = { .n = 0 };

	(void)state;
	form_read(with_body("subject=s&description=d&priority=urgent"), &form_ticket, in, &f);
	assert_int_equal(f.n, 0);
	assert_int_equal(in[TKT_PRIORITY].i, PRIO_URGENT);
	form_read(with_body("subject=s&description=d"), &form_ticket, in, &f);
	assert_int_equal(in[TKT_PRIORITY].i, PRIO_NORMAL);
	form_read(with_body("subject=s&description=d&priority=URGENT"), &form_ticket, in, &f);
	assert_int_equal(f.n, 1);
	assert_string_equal(f.e[0].key, "ERR_PRIORITY");
	assert_string_equal(f.e[0].msg, "Choose a priority");
	assert_int_equal(in[TKT_PRIORITY].i, PRIO_NORMAL);   /* the page shows the default */
}

static void test_integer_fields(void **state)
{
	static const char *const bad[] = { "0", "6", "", "3x", "-1", " 3", "99999999999999999999" };
	struct form_value in[RATE__N];
	struct form_errors f = { .n = 0 };
	char body[64];

	(void)state;
	form_read(with_body("score=5&comment=+fine+"), &form_rating, in, &f);
	assert_int_equal(f.n, 0);
	assert_int_equal(in[RATE_SCORE].i, 5);
	assert_string_equal(in[RATE_COMMENT].s, "fine");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f.n = 0;
		snprintf(body, sizeof(body), "score=%s", bad[i]);
		assert_int_equal(form_read(with_body(body), &form_rating, in, &f), 1);
		assert_string_equal(f.e[0].key, "ERR_SCORE");
		assert_string_equal(f.e[0].msg, "Choose a score from 1 to 5");
	}
	struct form_value as[ASG__N];
	f.n = 0;
	form_read(with_body("agent_id=123456789012"), &form_assign, as, &f);
	assert_int_equal(f.n, 0);
	assert_int_equal(as[ASG_AGENT].i, 123456789012LL);
}

static void test_quiet_field_checked_not_shown(void **state)
{
	struct form_value in[RST__N];
	struct form_errors f = { .n = 0 };

	(void)state;
	form_read(with_body("email=bad&code=+12345678+&password=longenough&confirm_password=longenough"),
	    &form_reset, in, &f);
	assert_int_equal(f.n, 0);              /* a bad email reads as a wrong code, later */
	assert_false(in[RST_EMAIL].ok);
	assert_string_equal(in[RST_CODE].s, "12345678");
}

static void test_single_field_rules_match_the_tables(void **state)
{
	(void)state;
	assert_null(form_check_first_name("Ann"));
	assert_string_equal(form_check_first_name(repeat('a', 65)), "First name is too long");
	assert_string_equal(form_check_last_name(""), "Last name is required");
	assert_string_equal(form_check_email("a@"), "Invalid email");
	assert_string_equal(form_check_password(repeat('p', 129)), "Password is too long");
	assert_string_equal(form_check_confirm("a", "b"), "Passwords do not match");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_good_values_are_normalised),
		cmocka_unit_test(test_register_errors_in_field_order),
		cmocka_unit_test(test_limits_at_the_boundary),
		cmocka_unit_test(test_description_blank_but_kept_as_typed),
		cmocka_unit_test(test_choice_yields_enum_and_defaults),
		cmocka_unit_test(test_integer_fields),
		cmocka_unit_test(test_quiet_field_checked_not_shown),
		cmocka_unit_test(test_single_field_rules_match_the_tables),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	if (req.a)
		arena_free(req.a);
	return rc;
}

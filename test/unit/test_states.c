/*
 * test_states.c — the closed sets (roles, account states, ticket statuses,
 * priorities) round-trip through their SQL names and refuse anything else,
 * and the ticket life's transition table allows exactly the moves the
 * README's "Roles and the ticket life" describes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "extern.h"

static void test_names_round_trip(void **state)
{
	(void)state;
	for (int i = 0; i < ROLE__MAX; i++) {
		enum role r;
		assert_int_equal(role_parse(role_name((enum role)i), &r), 0);
		assert_int_equal(r, i);
	}
	for (int i = 0; i < ACCT__MAX; i++) {
		enum account_state s;
		assert_int_equal(account_state_parse(account_state_name((enum account_state)i), &s), 0);
		assert_int_equal(s, i);
	}
	for (int i = 0; i < TS__MAX; i++) {
		enum ticket_status s;
		assert_int_equal(ticket_status_parse(ticket_status_name((enum ticket_status)i), &s), 0);
		assert_int_equal(s, i);
	}
	for (int i = 0; i < PRIO__MAX; i++) {
		enum priority p;
		assert_int_equal(priority_parse(priority_name((enum priority)i), &p), 0);
		assert_int_equal(p, i);
	}
	assert_string_equal(role_name(ROLE_AGENT), "agent");
	assert_string_equal(account_state_name(ACCT_DISABLED), "disabled");
	assert_string_equal(ticket_status_name(TS_RESOLVED), "resolved");
	assert_string_equal(priority_name(PRIO_URGENT), "urgent");
}

static void test_unknown_names_refused(void **state)
{
	enum role r = ROLE_CUSTOMER;
	enum ticket_status s = TS_OPEN;
	enum priority p = PRIO_NORMAL;
	enum account_state a = ACCT_ACTIVE;

	(void)state;
	assert_int_equal(role_parse("Admin", &r), -1);      /* exact spelling only */
	assert_int_equal(role_parse("", &r), -1);
	assert_int_equal(role_parse(NULL, &r), -1);
	assert_int_equal(r, ROLE_CUSTOMER);                 /* untouched on refusal */
	assert_int_equal(ticket_status_parse("all", &s), -1);
	assert_int_equal(ticket_status_parse("open ", &s), -1);
	assert_int_equal(priority_parse("critical", &p), -1);
	assert_int_equal(account_state_parse("activ", &a), -1);
	assert_string_equal(ticket_status_name(TS__MAX), "?");
}

/* Every move from every status, against the life written out by hand. */
static void test_ticket_life_table(void **state)
{
	static const struct {
		enum ticket_move m;
		enum ticket_status from;
		int ok;
		enum ticket_status to;
	} life[] = {
		{ TM_RESOLVE, TS_OPEN, 1, TS_RESOLVED },
		{ TM_RESOLVE, TS_RESOLVED, 0, 0 },
		{ TM_RESOLVE, TS_CLOSED, 0, 0 },
		{ TM_CLOSE, TS_OPEN, 1, TS_CLOSED },
		{ TM_CLOSE, TS_RESOLVED, 1, TS_CLOSED },
		{ TM_CLOSE, TS_CLOSED, 0, 0 },
		{ TM_REOPEN, TS_OPEN, 0, 0 },
		{ TM_REOPEN, TS_RESOLVED, 1, TS_OPEN },
		{ TM_REOPEN, TS_CLOSED, 1, TS_OPEN },
		{ TM_CUSTOMER_REPLY, TS_OPEN, 1, TS_OPEN },
		{ TM_CUSTOMER_REPLY, TS_RESOLVED, 1, TS_OPEN },
		{ TM_CUSTOMER_REPLY, TS_CLOSED, 0, 0 },
		{ TM_AGENT_REPLY, TS_OPEN, 1, TS_OPEN },
		{ TM_AGENT_REPLY, TS_RESOLVED, 1, TS_RESOLVED },
		{ TM_AGENT_REPLY, TS_CLOSED, 0, 0 },
	};
	(void)state;
	assert_int_equal(sizeof(life) / sizeof(life[0]), TM__MAX * TS__MAX);
	for (size_t i = 0; i < sizeof(life) / sizeof(life[0]); i++) {
		enum ticket_status to = TS__MAX;
		int rc = ticket_move(life[i].m, life[i].from, &to);
		assert_int_equal(rc, life[i].ok ? 0 : -1);
		if (life[i].ok)
			assert_int_equal(to, life[i].to);
		else
			assert_int_equal(to, TS__MAX);
	}
	enum ticket_status to;
	assert_int_equal(ticket_move(TM__MAX, TS_OPEN, &to), -1);
	assert_int_equal(ticket_move(TM_CLOSE, TS__MAX, &to), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_round_trip),
		cmocka_unit_test(test_unknown_names_refused),
		cmocka_unit_test(test_ticket_life_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

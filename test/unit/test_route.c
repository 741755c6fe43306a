/*
 * test_route.c — route_match over the real route table (route.c): exact
 * paths, 404 for unknown paths, 405 with the Allow list for a known path
 * with the wrong method, HEAD served by GET routes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "extern.h"

/* Every route of the product (and /metrics), as the table must hold it:
 * a concrete path, the pattern it must match, the {id} it yields, and the
 * flags that must be set / must not be set (who may use the route: anyone,
 * logged in, or one role; CSRF on every state-changing POST). */
#define ROLES (RF_CUSTOMER | RF_AGENT | RF_ADMIN)
static const struct {
	const char *method, *path, *pattern;
	long long id;
	unsigned flags_set, flags_clear;
} known[] = {
	{ "GET", "/", "/", 0, 0, RF_AUTH | RF_CSRF | ROLES },
	{ "GET", "/healthz", "/healthz", 0, RF_NODB, RF_AUTH | RF_CSRF | ROLES },
	{ "GET", "/metrics", "/metrics", 0, 0, RF_AUTH | RF_CSRF },
	{ "GET", "/login", "/login", 0, 0, RF_AUTH | RF_CSRF | ROLES },
	{ "POST", "/login", "/login", 0, RF_CSRF, RF_AUTH | ROLES },
	{ "POST", "/logout", "/logout", 0, RF_AUTH | RF_CSRF, ROLES },
	{ "GET", "/register", "/register", 0, 0, RF_AUTH | RF_CSRF | ROLES },
	{ "POST", "/register", "/register", 0, RF_CSRF, RF_AUTH | ROLES },
	{ "GET", "/password/forgot", "/password/forgot", 0, 0, RF_AUTH | RF_CSRF | ROLES },
	{ "POST", "/password/forgot", "/password/forgot", 0, RF_CSRF, RF_AUTH | ROLES },
	{ "GET", "/password/reset", "/password/reset", 0, 0, RF_AUTH | RF_CSRF | ROLES },
	{ "POST", "/password/reset", "/password/reset", 0, RF_CSRF, RF_AUTH | ROLES },
	{ "GET", "/password/change", "/password/change", 0, RF_AUTH, RF_CSRF | ROLES },
	{ "POST", "/password/change", "/password/change", 0, RF_AUTH | RF_CSRF, ROLES },
	{ "GET", "/account", "/account", 0, RF_AUTH, RF_CSRF | ROLES },
	{ "POST", "/account/delete", "/account/delete", 0, RF_AUTH | RF_CUSTOMER | RF_CSRF,
	  RF_AGENT | RF_ADMIN },
	{ "POST", "/account/availability", "/account/availability", 0, RF_AUTH | RF_AGENT | RF_CSRF,
	  RF_CUSTOMER | RF_ADMIN },
	{ "GET", "/account/tokens", "/account/tokens", 0, RF_AUTH, RF_CSRF | ROLES },
	{ "POST", "/account/tokens", "/account/tokens", 0, RF_AUTH | RF_CSRF, ROLES },
	{ "POST", "/account/tokens/4/revoke", "/account/tokens/{id}/revoke", 4, RF_AUTH | RF_CSRF, ROLES },
	/* the API: the pages' roles; no CSRF (a Bearer token, never a cookie) */
	{ "GET", "/api/v1/openapi.json", "/api/v1/openapi.json", 0, RF_NODB, RF_AUTH | RF_CSRF | ROLES },
	{ "GET", "/api/v1/me", "/api/v1/me", 0, RF_AUTH, RF_CSRF | ROLES },
	{ "GET", "/api/v1/tickets", "/api/v1/tickets", 0, RF_AUTH, RF_CSRF | ROLES },
	{ "POST", "/api/v1/tickets", "/api/v1/tickets", 0, RF_AUTH | RF_CUSTOMER, RF_CSRF | RF_AGENT | RF_ADMIN },
	{ "GET", "/api/v1/tickets/9", "/api/v1/tickets/{id}", 9, RF_AUTH, RF_CSRF | ROLES },
	{ "POST", "/api/v1/tickets/9/messages", "/api/v1/tickets/{id}/messages", 9,
	  RF_AUTH | RF_CUSTOMER | RF_AGENT, RF_CSRF | RF_ADMIN },
	{ "POST", "/api/v1/tickets/9/assign", "/api/v1/tickets/{id}/assign", 9, RF_AUTH | RF_ADMIN,
	  RF_CSRF | RF_CUSTOMER | RF_AGENT },
	{ "POST", "/api/v1/tickets/9/resolve", "/api/v1/tickets/{id}/resolve", 9, RF_AUTH | RF_AGENT,
	  RF_CSRF | RF_CUSTOMER | RF_ADMIN },
	{ "POST", "/api/v1/tickets/9/close", "/api/v1/tickets/{id}/close", 9,
	  RF_AUTH | RF_CUSTOMER | RF_ADMIN, RF_CSRF | RF_AGENT },
	{ "POST", "/api/v1/tickets/9/reopen", "/api/v1/tickets/{id}/reopen", 9, RF_AUTH | RF_CUSTOMER,
	  RF_CSRF | RF_AGENT | RF_ADMIN },
	{ "GET", "/tickets", "/tickets", 0, RF_AUTH, RF_CSRF | ROLES },
	{ "POST", "/tickets", "/tickets", 0, RF_AUTH | RF_CUSTOMER | RF_CSRF, RF_AGENT | RF_ADMIN },
	{ "GET", "/tickets/new", "/tickets/new", 0, RF_AUTH | RF_CUSTOMER, RF_CSRF | RF_AGENT | RF_ADMIN },
	{ "GET", "/tickets/1042", "/tickets/{id}", 1042, RF_AUTH, RF_CSRF | ROLES },
	{ "GET", "/tickets/7/messages", "/tickets/{id}/messages", 7, RF_AUTH, RF_CSRF | ROLES },
	{ "POST", "/tickets/7/messages", "/tickets/{id}/messages", 7,
	  RF_AUTH | RF_CUSTOMER | RF_AGENT | RF_CSRF, RF_ADMIN },
	{ "POST", "/tickets/12/assign", "/tickets/{id}/assign", 12, RF_AUTH | RF_ADMIN | RF_CSRF,
	  RF_CUSTOMER | RF_AGENT },
	{ "POST", "/tickets/12/resolve", "/tickets/{id}/resolve", 12, RF_AUTH | RF_AGENT | RF_CSRF,
	  RF_CUSTOMER | RF_ADMIN },
	{ "POST", "/tickets/12/close", "/tickets/{id}/close", 12,
	  RF_AUTH | RF_CUSTOMER | RF_ADMIN | RF_CSRF, RF_AGENT },
	{ "POST", "/tickets/12/reopen", "/tickets/{id}/reopen", 12, RF_AUTH | RF_CUSTOMER | RF_CSRF,
	  RF_AGENT | RF_ADMIN },
	{ "POST", "/tickets/12/rating", "/tickets/{id}/rating", 12, RF_AUTH | RF_CUSTOMER | RF_CSRF,
	  RF_AGENT | RF_ADMIN },
	{ "POST", "/tickets/12/notes", "/tickets/{id}/notes", 12,
	  RF_AUTH | RF_AGENT | RF_ADMIN | RF_CSRF | RF_UPLOAD, RF_CUSTOMER },
	{ "POST", "/tickets/12/priority", "/tickets/{id}/priority", 12,
	  RF_AUTH | RF_AGENT | RF_ADMIN | RF_CSRF, RF_CUSTOMER },
	{ "GET", "/replies", "/replies", 0, RF_AUTH | RF_AGENT | RF_ADMIN, RF_CSRF | RF_CUSTOMER },
	{ "POST", "/replies", "/replies", 0, RF_AUTH | RF_AGENT | RF_ADMIN | RF_CSRF, RF_CUSTOMER },
	{ "POST", "/replies/5/delete", "/replies/{id}/delete", 5, RF_AUTH | RF_AGENT | RF_ADMIN | RF_CSRF,
	  RF_CUSTOMER },
	{ "GET", "/admin/agents", "/admin/agents", 0, RF_AUTH | RF_ADMIN, RF_CSRF | RF_CUSTOMER | RF_AGENT },
	{ "POST", "/admin/agents", "/admin/agents", 0, RF_AUTH | RF_ADMIN | RF_CSRF,
	  RF_CUSTOMER | RF_AGENT },
	{ "POST", "/admin/agents/3/approve", "/admin/agents/{id}/approve", 3,
	  RF_AUTH | RF_ADMIN | RF_CSRF, RF_CUSTOMER | RF_AGENT },
	{ "POST", "/admin/agents/3/reject", "/admin/agents/{id}/reject", 3,
	  RF_AUTH | RF_ADMIN | RF_CSRF, RF_CUSTOMER | RF_AGENT },
	{ "POST", "/admin/agents/3/disable", "/admin/agents/{id}/disable", 3,
	  RF_AUTH | RF_ADMIN | RF_CSRF, RF_CUSTOMER | RF_AGENT },
};
#define NKNOWN (sizeof(known) / sizeof(known[0]))

static const struct route *match_id(const char *method, const char *path, long long *id,
                                    int *status, char *allow, size_t allowlen)
{
	*id = -7;
	*status = -1;
	return route_match(method, path, id, status, allow, allowlen);
}

static const struct route *match(const char *method, const char *path, int *status,
                                 char *allow, size_t allowlen)
{
	long long id;
	return match_id(method, path, &id, status, allow, allowlen);
}

static void test_exact_routes(void **state)
{
	(void)state;
	for (size_t i = 0; i < NKNOWN; i++) {
		char allow[64];
		int status;
		long long id;
		const struct route *rt = match_id(known[i].method, known[i].path, &id, &status, allow,
		    sizeof(allow));
		if (rt == NULL)
			fail_msg("%s %s: no route (status %d)", known[i].method, known[i].path, status);
		assert_string_equal(rt->method, known[i].method);
		assert_string_equal(rt->pattern, known[i].pattern);
		assert_non_null(rt->handler);
		if (id != known[i].id)
			fail_msg("%s %s: id %lld, expected %lld", known[i].method, known[i].path, id,
			    known[i].id);
		if ((rt->flags & known[i].flags_set) != known[i].flags_set ||
		    (rt->flags & known[i].flags_clear) != 0)
			fail_msg("%s %s: flags 0x%x", known[i].method, known[i].path, rt->flags);
	}
}

static void test_distinct_handlers_per_method(void **state)
{
	(void)state;
	long long id;
	int status;
	char allow[64];
	const struct route *g = route_match("GET", "/login", &id, &status, allow, sizeof(allow));
	const struct route *p = route_match("POST", "/login", &id, &status, allow, sizeof(allow));
	assert_non_null(g);
	assert_non_null(p);
	assert_ptr_not_equal(g, p);
	assert_ptr_not_equal(g->handler, p->handler);
	assert_ptr_equal(g->handler, account_login_form);
	assert_ptr_equal(p->handler, account_login);
}

static void test_unknown_path_404(void **state)
{
	(void)state;
	static const char *const paths[] = {
		"/nope", "", "x", "login", "/login/", "//login", "/LOGIN", "/Login", "/login?next=/",
		"/login/x", "/logi", "/loginx", "/healthz/", "/healthz/1", "/healthz1", "/./login",
		"/password", "/password/", "/password//reset", "/account/", "/account/delete/",
		"/account/delete/1", "//", "/%6cogin", "/login%00", "/login ", " /login",
		"/register/../login", "/ticket", "/tickets/", "/tickets//messages", "/admin",
		"/admin/", "/admin/agents/", "/admin/agents/approve", "/admin/agents//approve",
		"/metrics/",
	};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char allow[64] = "garbage";
		int status;
		const struct route *rt = match("GET", paths[i], &status, allow, sizeof(allow));
		if (rt != NULL)
			fail_msg("GET \"%s\" matched %s %s", paths[i], rt->method, rt->pattern);
		if (status != 404)
			fail_msg("GET \"%s\": status %d, expected 404", paths[i], status);
		assert_string_equal(allow, "");
		/* the method does not turn a 404 into a 405 */
		rt = match("POST", paths[i], &status, allow, sizeof(allow));
		assert_null(rt);
		assert_int_equal(status, 404);
	}
}

static void test_wrong_method_405(void **state)
{
	(void)state;
	static const struct {
		const char *method, *path, *allow;
	} cases[] = {
		{ "POST", "/healthz", "GET" },
		{ "PUT", "/healthz", "GET" },
		{ "POST", "/", "GET" },
		{ "GET", "/logout", "POST" },
		{ "HEAD", "/logout", "POST" },           /* HEAD only rides on GET */
		{ "GET", "/account/delete", "POST" },
		{ "POST", "/account", "GET" },
		{ "DELETE", "/login", "GET, POST" },
		{ "PUT", "/register", "GET, POST" },
		{ "OPTIONS", "/password/change", "GET, POST" },
		{ "get", "/login", "GET, POST" },        /* methods are case-sensitive */
		{ "", "/login", "GET, POST" },
		{ "PUT", "/tickets", "GET, POST" },
		{ "POST", "/tickets/new", "GET" },       /* "new" is not an {id} */
		{ "POST", "/tickets/5", "GET" },
		{ "DELETE", "/tickets/5", "GET" },
		{ "GET", "/tickets/5/assign", "POST" },
		{ "HEAD", "/tickets/5/close", "POST" },
		{ "PATCH", "/tickets/5/messages", "GET, POST" },
		{ "GET", "/admin/agents/9/approve", "POST" },
		{ "DELETE", "/admin/agents", "GET, POST" },
		{ "POST", "/metrics", "GET" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char allow[64];
		int status;
		const struct route *rt = match(cases[i].method, cases[i].path, &status, allow, sizeof(allow));
		if (rt != NULL)
			fail_msg("%s %s matched", cases[i].method, cases[i].path);
		if (status != 405)
			fail_msg("%s %s: status %d, expected 405", cases[i].method, cases[i].path, status);
		if (strcmp(allow, cases[i].allow) != 0)
			fail_msg("%s %s: Allow \"%s\", expected \"%s\"", cases[i].method, cases[i].path,
			    allow, cases[i].allow);
	}
}

/* {id} is 1..18 digits, no sign, no leading zero, nothing after it but the
 * rest of the pattern. */
static void test_id_pattern(void **state)
{
	(void)state;
	static const struct {
		const char *path;
		long long id;
	} good[] = {
		{ "/tickets/1", 1 },
		{ "/tickets/9", 9 },
		{ "/tickets/10", 10 },
		{ "/tickets/1042", 1042 },
		{ "/tickets/123456789012345678", 123456789012345678LL },   /* 18 digits */
		{ "/tickets/999999999999999999", 999999999999999999LL },
		{ "/tickets/100000000000000000", 100000000000000000LL },
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char allow[64];
		int status;
		long long id;
		const struct route *rt = match_id("GET", good[i].path, &id, &status, allow, sizeof(allow));
		if (rt == NULL)
			fail_msg("GET %s: no route (status %d)", good[i].path, status);
		assert_string_equal(rt->pattern, "/tickets/{id}");
		if (id != good[i].id)
			fail_msg("GET %s: id %lld, expected %lld", good[i].path, id, good[i].id);
	}

	static const char *const bad[] = {
		"/tickets/0", "/tickets/00", "/tickets/01", "/tickets/007",
		"/tickets/1234567890123456789",              /* 19 digits */
		"/tickets/9999999999999999999999999999999",  /* would overflow */
		"/tickets/-1", "/tickets/+1", "/tickets/ 1", "/tickets/1 ", "/tickets/1a", "/tickets/a1",
		"/tickets/0x10", "/tickets/1.0", "/tickets/1e3", "/tickets/%31", "/tickets/1/",
		"/tickets/1//messages", "/tickets/1/messages/", "/tickets/1/bogus", "/tickets/1/2",
		"/tickets/{id}", "/tickets/\xef\xbc\x91",    /* fullwidth digit one */
		"/tickets/\xd9\xa1",                         /* Arabic-Indic digit one */
		"/admin/agents/0/approve", "/admin/agents/x/approve", "/admin/agents/1/approve/",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char allow[64];
		int status;
		long long id;
		for (int m = 0; m < 2; m++) {
			const char *method = m ? "POST" : "GET";
			const struct route *rt = match_id(method, bad[i], &id, &status, allow, sizeof(allow));
			if (rt != NULL)
				fail_msg("%s \"%s\" matched %s (id %lld)", method, bad[i], rt->pattern, id);
			if (status != 404)
				fail_msg("%s \"%s\": status %d, expected 404", method, bad[i], status);
		}
	}
}

/* The {id} of the route that matched, not of an earlier candidate. */
static void test_id_per_route(void **state)
{
	(void)state;
	char allow[64];
	int status;
	long long id;
	const struct route *rt;

	rt = match_id("POST", "/tickets/31/messages", &id, &status, allow, sizeof(allow));
	assert_non_null(rt);
	assert_string_equal(rt->pattern, "/tickets/{id}/messages");
	assert_int_equal(id, 31);
	rt = match_id("GET", "/tickets/31/messages", &id, &status, allow, sizeof(allow));
	assert_non_null(rt);
	assert_string_equal(rt->method, "GET");
	assert_int_equal(id, 31);
	rt = match_id("POST", "/admin/agents/77/disable", &id, &status, allow, sizeof(allow));
	assert_non_null(rt);
	assert_ptr_equal(rt->handler, agent_disable);
	assert_int_equal(id, 77);
	rt = match_id("GET", "/tickets/new", &id, &status, allow, sizeof(allow));
	assert_non_null(rt);
	assert_ptr_equal(rt->handler, ticket_new_form);
	assert_int_equal(id, 0);
	rt = match_id("POST", "/tickets", &id, &status, allow, sizeof(allow));
	assert_non_null(rt);
	assert_ptr_equal(rt->handler, ticket_create);
	assert_int_equal(id, 0);
}

static void test_head_matches_get(void **state)
{
	(void)state;
	for (size_t i = 0; i < NKNOWN; i++) {
		if (strcmp(known[i].method, "GET") != 0)
			continue;
		char allow[64];
		int status;
		long long id;
		const struct route *rt = match_id("HEAD", known[i].path, &id, &status, allow, sizeof(allow));
		if (rt == NULL)
			fail_msg("HEAD %s: no route (status %d)", known[i].path, status);
		assert_string_equal(rt->method, "GET");
		assert_string_equal(rt->pattern, known[i].pattern);
		assert_int_equal(id, known[i].id);
	}
}

static void test_status_untouched_on_hit(void **state)
{
	(void)state;
	long long id = 99;
	int status = 12345;
	char allow[64];
	assert_non_null(route_match("GET", "/healthz", &id, &status, allow, sizeof(allow)));
	assert_int_equal(id, 0);
	assert_int_equal(status, 12345);
}

static void test_allow_buffer_bounds(void **state)
{
	(void)state;
	long long id;
	int status;

	/* no buffer at all */
	assert_null(route_match("DELETE", "/login", &id, &status, NULL, 0));
	assert_int_equal(status, 405);

	/* tiny buffers: always NUL-terminated, never written past allowlen,
	 * and never a truncated method name */
	for (size_t len = 1; len <= 12; len++) {
		char buf[32];
		memset(buf, 'Z', sizeof(buf));
		assert_null(route_match("DELETE", "/login", &id, &status, buf, len));
		assert_int_equal(status, 405);
		assert_non_null(memchr(buf, '\0', len));
		for (size_t k = len; k < sizeof(buf); k++)
			if (buf[k] != 'Z')
				fail_msg("allowlen %zu: byte %zu written", len, k);
		/* a list cut short holds whole method names only: a partial
		 * name ("P", "GET, PO") would advertise a method that does not exist */
		if (strcmp(buf, "") != 0 && strcmp(buf, "GET") != 0 && strcmp(buf, "POST") != 0 &&
		    strcmp(buf, "GET, POST") != 0)
			fail_msg("allowlen %zu: Allow \"%s\" is not a list of whole methods", len, buf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_routes),
		cmocka_unit_test(test_distinct_handlers_per_method),
		cmocka_unit_test(test_unknown_path_404),
		cmocka_unit_test(test_wrong_method_405),
		cmocka_unit_test(test_id_pattern),
		cmocka_unit_test(test_id_per_route),
		cmocka_unit_test(test_head_matches_get),
		cmocka_unit_test(test_status_untouched_on_hit),
		cmocka_unit_test(test_allow_buffer_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

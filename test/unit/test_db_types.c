/*
 * test_db_types.c — query parameters are typed: P_INT / P_STR / P_NULL
 * build the values DB_ARGS counts, and a value of the wrong kind does not
 * compile (the compiler, run here on small programs, must refuse a pointer
 * given to P_INT and a number given to P_STR, and accept the right ones).
 * The count of placeholders and of result columns is checked against the
 * server at run time; the integration suite runs every statement.
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

/* Regression: a Galera node rejoining the cluster answered 1047 "WSREP has
 * not yet prepared node for application use" and ccrd answered 500; it is a
 * database that is down for now (503 with Retry-After, which nginx passes to
 * another host for a GET).  1213 is retried; the lost connection is gone. */
static void test_galera_node_not_ready_1047_is_gone_not_500(void **state)
{
	(void)state;
	assert_int_equal(db_classify(1047), DB_GONE);
	assert_int_equal(db_classify(1213), DB_DEADLOCK);
	assert_int_equal(db_classify(2013), DB_GONE);
	assert_int_equal(db_classify(2002), DB_GONE);
	assert_int_equal(db_classify(1062), DB_DUP);
	assert_int_equal(db_classify(1064), DB_OTHER);   /* a syntax error stays a 500 */
}

static size_t count(const struct db_param *p, size_t n)
{
	(void)p;
	return n;
}

static void test_args_are_counted_and_typed(void **state)
{
	const char *none = NULL;
	const struct db_param *p;

	(void)state;
	assert_int_equal(count(DB_ARGS(P_INT(1), P_STR("a"), P_NULL)), 3);
	assert_int_equal(count(DB_ARGS(P_INT(7))), 1);
	assert_int_equal(count(DB_NOARGS), 0);
	p = (const struct db_param[]){ P_INT(42), P_STR("x"), P_STR(none), P_NULL };
	assert_int_equal(p[0].type, DB_T_INT);
	assert_int_equal(p[0].i, 42);
	assert_int_equal(p[1].type, DB_T_STR);
	assert_string_equal(p[1].s, "x");
	assert_int_equal(p[2].type, DB_T_NULL);   /* a NULL string binds SQL NULL */
	assert_int_equal(p[3].type, DB_T_NULL);
}

/* 0 when the snippet compiles with the project's warnings as errors. */
static int compiles(const char *body)
{
	char src[] = "/tmp/ccr-dbtype-XXXXXX.c";
	int fd = mkstemps(src, 2);
	char cmd[1024];
	FILE *f;
	int rc;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f, "#include \"extern.h\"\nvoid probe(const char *s, long long id);\n"
	    "void probe(const char *s, long long id)\n{\n\t(void)s; (void)id;\n\t%s\n}\n", body);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cc -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror "
	    "-I/usr/include/mariadb -I%s/fcgi -fsyntax-only %s 2>/dev/null", CCR_SRC, src);
	rc = system(cmd);
	unlink(src);
	return rc;
}

static void test_wrong_kind_does_not_compile(void **state)
{
	(void)state;
	assert_int_equal(compiles("db_exec(\"SELECT ?, ?\", DB_ARGS(P_INT(id), P_STR(s)));"), 0);
	assert_int_not_equal(compiles("db_exec(\"SELECT ?\", DB_ARGS(P_INT(s)));"), 0);
	assert_int_not_equal(compiles("db_exec(\"SELECT ?\", DB_ARGS(P_STR(id)));"), 0);
	/* the old varargs form is gone */
	assert_int_not_equal(compiles("db_exec(\"SELECT ?\", \"i\", id);"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_args_are_counted_and_typed),
		cmocka_unit_test(test_galera_node_not_ready_1047_is_gone_not_500),
		cmocka_unit_test(test_wrong_kind_does_not_compile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

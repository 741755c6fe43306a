/*
 * test_view.c — view.cc's dictionaries keep the rules of ctemplate's
 * TemplateDictionary that the templates rely on: a value is found in the
 * dictionary, then its parents (a section row's parent is the dictionary
 * it was added to), never across an include; setting a name again
 * replaces its value; a section shown in a parent shows in its rows;
 * ShowSection adds one empty row only to a section without rows; a
 * separator goes between rows; an include renders its own file; BI_SPACE
 * and BI_NEWLINE; auto-escaping applies to every value; names and values
 * built in buffers the caller reuses are copied.
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

static char dir[] = "/tmp/ccr-test-view-XXXXXX";

static void put(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	put("rows.tpl", "{{%AUTOESCAPE context=\"HTML\"}}"
	    "[{{TOP}}]{{#ROW}}({{ID}}:{{TOP}}:{{NAME}}{{#FLAG}}!{{/FLAG}}){{#ROW_separator}},{{/ROW_separator}}{{/ROW}}"
	    "{{#SHOWN}}(shown {{TOP}}){{/SHOWN}}{{#HIDDEN}}(hidden){{/HIDDEN}}"
	    "{{#TWICE}}*{{/TWICE}}|{{BI_SPACE}}|{{MISSING}}|{{>INC}}|");
	put("inc.tpl", "{{%AUTOESCAPE context=\"HTML\"}}inc:{{TOP}}:{{IN}}");
	put("layout.tpl", "{{%AUTOESCAPE context=\"HTML\"}}<t>{{TITLE}}</t>{{>BODY}}");
	put("body.tpl", "{{%AUTOESCAPE context=\"HTML\"}}body:{{TITLE}}:{{X}}\n\n\nend");
	return view_root(dir) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	static const char *const files[] = { "rows.tpl", "inc.tpl", "layout.tpl", "body.tpl" };
	char path[256];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
	return 0;
}

static char *render(struct view *v)
{
	char *out = NULL;
	size_t len = 0;
	assert_int_equal(view_render(v, &out, &len), 0);
	assert_int_equal(strlen(out), len);
	view_free(v);
	return out;
}

static void test_view_rows_parents_and_sections(void **state)
{
	(void)state;
	struct view *v = view_new(NULL, "rows.tpl");
	assert_non_null(v);
	struct vdict *b = view_body(v);
	char key[16], val[16];

	vdict_set(b, "TOP", "old");
	snprintf(key, sizeof(key), "TOP");      /* a name in a buffer reused below */
	snprintf(val, sizeof(val), "a<b");
	vdict_set(b, key, val);                 /* replaces "old"; escaped */
	memset(key, 'x', sizeof(key) - 1);
	memset(val, 'y', sizeof(val) - 1);
	for (int i = 1; i <= 3; i++) {
		struct vdict *r = vdict_section(b, "ROW");
		vdict_set_int(r, "ID", i == 3 ? -42 : i);
		vdict_set(r, "NAME", i == 2 ? NULL : "n\"q");
		if (i == 2)
			vdict_show(r, "FLAG");
	}
	vdict_show(b, "SHOWN");
	vdict_show(b, "TWICE");
	vdict_show(b, "TWICE");                 /* one row still */
	struct vdict *inc = vdict_include(b, "INC", "inc.tpl");
	vdict_set(inc, "IN", "&");
	char *out = render(v);
	assert_string_equal(out, "[a&lt;b](1:a&lt;b:n&quot;q),(2:a&lt;b:!),(-42:a&lt;b:n&quot;q)"
	    "(shown a&lt;b)*| ||inc::&amp;|");
	free(out);
}

static void test_view_show_then_rows(void **state)
{
	(void)state;
	struct view *v = view_new(NULL, "rows.tpl");
	struct vdict *b = view_body(v);

	/* as in ctemplate: a shown section is one empty row; a row added
	 * after it is a second one */
	vdict_show(b, "ROW");
	vdict_set(vdict_section(b, "ROW"), "ID", "2");
	/* a section shown in the parent shows in a row too */
	vdict_show(b, "FLAG");
	char *out = render(v);
	assert_string_equal(out, "[](::!),(2::!)| |||");
	free(out);
}

static void test_view_layout_body_no_inheritance(void **state)
{
	(void)state;
	struct view *v = view_new("layout.tpl", "body.tpl");
	assert_non_null(v);
	vdict_set(view_top(v), "TITLE", "T'");
	vdict_set(view_body(v), "X", "x");
	char *out = render(v);
	/* the body does not see the layout's TITLE; pages drop blank lines */
	assert_string_equal(out, "<t>T&#39;</t>body::x\nend");
	free(out);
}

static void test_view_many_rows_and_large_values(void **state)
{
	(void)state;
	struct view *v = view_new(NULL, "rows.tpl");
	struct vdict *b = view_body(v);
	size_t big = 100000;
	char *s = malloc(big + 1);
	assert_non_null(s);
	memset(s, 'z', big);
	s[big] = '\0';
	vdict_set(b, "TOP", s);
	for (int i = 0; i < 2000; i++)
		vdict_set_int(vdict_section(b, "ROW"), "ID", i);
	char *out = render(v);
	/* "[" + big + "]" then 2000 rows of "(i:big:)" and 1999 commas */
	size_t want = 2 + big + 1999 + (size_t)2000 * (4 + big);
	for (int i = 0; i < 2000; i++)
		want += (size_t)snprintf(NULL, 0, "%d", i);
	want += strlen("| |||");
	assert_int_equal(strlen(out), want);
	free(out);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_view_rows_parents_and_sections),
		cmocka_unit_test(test_view_show_then_rows),
		cmocka_unit_test(test_view_layout_body_no_inheritance),
		cmocka_unit_test(test_view_many_rows_and_large_values),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * test_search.c — search.c's pure parts: the folding shared by the index
 * and the query (NFD, marks dropped, case folded, words only), the query
 * parser ("#N", words, prefixes, the bounds, operators as separators) and
 * the MATCH() text built from it.
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

static const char *fold(struct arena *a, const char *s)
{
	return search_fold(a, s, strlen(s), 1 << 20);
}

static void test_fold_accents_and_case(void **state)
{
	struct arena *a = *state;
	assert_string_equal(fold(a, "Résumé"), "resume");
	assert_string_equal(fold(a, "RÉSUMÉ"), "resume");
	assert_string_equal(fold(a, "Ünïcödé ÀÉÎ õ"), "unicode aei o");
	assert_string_equal(fold(a, "Straße"), "strasse");
	assert_string_equal(fold(a, "ΣΊΣΥΦΟΣ"), "σισυφοσ");
	assert_string_equal(fold(a, "Привет, мир"), "привет мир");
	/* decomposed input folds like composed */
	assert_string_equal(fold(a, "Re\xcc\x81sume\xcc\x81"), "resume");
}

static void test_fold_words_only(void **state)
{
	struct arena *a = *state;
	assert_string_equal(fold(a, "  <b>bold</b> & a-b_c!  "), "b bold b a b c");
	assert_string_equal(fold(a, "x'); DROP TABLE t; --"), "x drop table t");
	assert_string_equal(fold(a, ""), "");
	assert_string_equal(fold(a, "*** ... ---"), "");
	assert_string_equal(fold(a, "\xcc\x81\xcc\x81"), "");   /* marks alone */
	/* invalid UTF-8 is repaired, never passed on */
	const char *f = fold(a, "ok\xff\xfe" "fine");
	assert_true(utf8_valid(f, strlen(f)));
	assert_non_null(strstr(f, "ok"));
}

/* GLib's casefold maps Cherokee to upper case and back: folding a folded
 * word must give it back (found by fuzz_search) */
static void test_fold_cherokee_folds_to_itself(void **state)
{
	struct arena *a = *state;
	const char *once = fold(a, "\xe1\x8f\x9a" "0");   /* U+13DA */
	assert_string_equal(fold(a, once), once);
	const char *low = fold(a, "\xea\xae\xaa");         /* U+ABAA */
	assert_string_equal(fold(a, low), low);
	assert_string_equal(fold(a, "\xe1\x8f\x9a"), low);
}

static void test_fold_bound_cuts_at_a_word(void **state)
{
	struct arena *a = *state;
	const char *s = "alpha beta gamma delta";
	assert_string_equal(search_fold(a, s, strlen(s), 12), "alpha beta");
	assert_string_equal(search_fold(a, s, 5, 100), "alpha");
}

static void test_parse_ticket_number(void **state)
{
	struct search_query q;
	assert_int_equal(search_parse(*state, "#42", &q), SQ_TICKET);
	assert_int_equal(q.ticket_id, 42);
	assert_int_equal(search_parse(*state, "  #1042 ", &q), SQ_TICKET);
	assert_int_equal(q.ticket_id, 1042);
	/* not a number: words (or nothing) */
	assert_int_equal(search_parse(*state, "#0", &q), SQ_WORDS);
	assert_int_equal(search_parse(*state, "#12x", &q), SQ_WORDS);
	assert_int_equal(search_parse(*state, "#", &q), SQ_EMPTY);
	assert_int_equal(search_parse(*state, "#99999999999999999999", &q), SQ_WORDS);
}

static void test_parse_words_and_prefixes(void **state)
{
	struct search_query q;
	assert_int_equal(search_parse(*state, "Refun* Résumé", &q), SQ_WORDS);
	assert_int_equal(q.n, 2);
	assert_string_equal(q.word[0].w, "refun");
	assert_true(q.word[0].prefix);
	assert_string_equal(q.word[0].shown, "Refun*");
	assert_string_equal(q.word[1].w, "resume");
	assert_false(q.word[1].prefix);
	/* too short for a prefix: a plain word */
	assert_int_equal(search_parse(*state, "re*", &q), SQ_WORDS);
	assert_false(q.word[0].prefix);
	/* a lone star, quotes, operators: nothing or separators */
	assert_int_equal(search_parse(*state, "*", &q), SQ_EMPTY);
	assert_int_equal(search_parse(*state, "\"\" () | - @ ~ !", &q), SQ_EMPTY);
	assert_int_equal(search_parse(*state, "@subject (a | -b) \"c d\"~3", &q), SQ_WORDS);
	assert_int_equal(q.n, 6);   /* subject a b c d 3 */
	assert_int_equal(search_parse(*state, "same SAME Same", &q), SQ_WORDS);
	assert_int_equal(q.n, 1);
	assert_int_equal(search_parse(*state, NULL, &q), SQ_EMPTY);
}

static void test_parse_bounds(void **state)
{
	struct search_query q;
	char many[4000] = "";
	for (int i = 0; i < 100; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "w%d ", i);
	assert_int_equal(search_parse(*state, many, &q), SQ_WORDS);
	assert_int_equal(q.n, SEARCH_MAX_WORDS);
	char longw[1000];
	memset(longw, 'x', sizeof(longw) - 1);
	longw[sizeof(longw) - 1] = '\0';
	assert_int_equal(search_parse(*state, longw, &q), SQ_WORDS);
	assert_true(strlen(q.word[0].w) <= SEARCH_WORD_MAX);
}

static void test_match_string(void **state)
{
	struct search_query q;
	search_parse(*state, "Refun* chargeback", &q);
	assert_string_equal(search_match_string(*state, &q, 1), "@(subject,body,notes) refun* chargeback");
	assert_string_equal(search_match_string(*state, &q, 0), "@(subject,body) refun* chargeback");
	search_parse(*state, "x') OR 1=1 -- \\", &q);
	assert_string_equal(search_match_string(*state, &q, 0), "@(subject,body) x or 1");
}

static void test_mark_test_only(void **state)
{
	struct search_query q;
	search_parse(*state, "resume refun*", &q);
	assert_int_equal(search_mark(*state, &q, "My RÉSUMÉ was sent", 0, NULL, NULL), 1);
	assert_int_equal(search_mark(*state, &q, "Refunds please", 200, NULL, NULL), 1);
	assert_int_equal(search_mark(*state, &q, "presume nothing", 200, NULL, NULL), 0);
	assert_int_equal(search_mark(*state, &q, NULL, 200, NULL, NULL), 0);
}

/* the excerpt's source test: ASCII words compared in lower case without
 * folding, any other word folded, a long word still matched by a
 * prefix, invalid UTF-8 and the byte bound respected */
static void test_matches_ascii_and_folded_words(void **state)
{
	struct search_query q;
	search_parse(*state, "resume refun* straße", &q);
	assert_int_equal(search_matches(*state, &q, "nothing here. RESUME!", 4096), 1);
	assert_int_equal(search_matches(*state, &q, "my résumé", 4096), 1);
	assert_int_equal(search_matches(*state, &q, "Strasse 5", 4096), 1);
	assert_int_equal(search_matches(*state, &q, "presume resumes", 4096), 0);
	char longw[300] = "x ";
	memset(longw + 2, 'r', 1);
	memcpy(longw + 2, "REFUN", 5);
	memset(longw + 7, 'd', sizeof(longw) - 8);
	longw[sizeof(longw) - 1] = '\0';
	assert_int_equal(search_matches(*state, &q, longw, 4096), 1);
	assert_int_equal(search_matches(*state, &q, "\xff\xfe resume", 4096), 1);
	assert_int_equal(search_matches(*state, &q, "abcdefgh resume", 8), 0);
	assert_int_equal(search_matches(*state, &q, "abc resume", 10), 1);
	assert_int_equal(search_matches(*state, &q, NULL, 4096), 0);
}

/* whether match text m asks for the level-l word of a document whose
 * activity is t */
static int level_word_in(struct arena *a, const char *m, int l, long long t)
{
	const char *doc = search_scope_text(a, 1, 0, t);
	const char *w = strstr(doc, arena_printf(a, "ccrt%dx", l));
	size_t n = strcspn(w, " ");
	for (const char *p = strstr(m, arena_strndup(a, w, n)); p; p = strstr(p + 1, arena_strndup(a, w, n)))
		if (p[n] == ' ' || p[n] == ')')
			return 1;
	return 0;
}

/* the scope field: customer, agent (0 unassigned) and the day of last
 * activity at four grains; the query side names the same words */
static void test_scope_words(void **state)
{
	long long day = 20426, t = day * 86400 + 3600;   /* 2025-12-04 01:00 UTC */
	assert_string_equal(search_scope_text(*state, 7, 0, t),
	    "ccrc7 ccra0 ccrt0x20426 ccrt1x2553 ccrt2x319 ccrt3x39");
	assert_string_equal(search_scope_text(*state, 7, 12, t),
	    "ccrc7 ccra12 ccrt0x20426 ccrt1x2553 ccrt2x319 ccrt3x39");
	struct search_filter f = { .customer_id = 7 };
	assert_string_equal(search_scope_match(*state, &f, 1, t),
	    " @scope ccrc7 (ccrt1x2552 | ccrt1x2553 | ccrt1x2554)");
	assert_string_equal(search_scope_match(*state, &f, SEARCH_LEVELS, t), " @scope ccrc7");
	struct search_filter none = { .unassigned = 1 }, any = { 0 }, ag = { .agent_id = 12 };
	assert_string_equal(search_scope_match(*state, &none, SEARCH_LEVELS, t), " @scope ccra0");
	assert_string_equal(search_scope_match(*state, &ag, SEARCH_LEVELS, t), " @scope ccra12");
	assert_string_equal(search_scope_match(*state, &any, SEARCH_LEVELS, t), "");
	/* a level's span starts at its bucket before now's: a document from
	 * there on carries one of the words asked for, one older none */
	for (int l = 0; l < SEARCH_LEVELS; l++) {
		long long start = search_level_start(l, t);
		assert_true(start <= t - (86400LL << (3 * l)));
		const char *m = search_scope_match(*state, &any, l, t);
		assert_true(level_word_in(*state, m, l, start));
		assert_false(level_word_in(*state, m, l, start - 1));
		assert_true(level_word_in(*state, m, l, t + 86400));   /* a clock a day ahead */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fold_accents_and_case, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_fold_words_only, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_fold_cherokee_folds_to_itself, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_fold_bound_cuts_at_a_word, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_parse_ticket_number, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_parse_words_and_prefixes, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_parse_bounds, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_match_string, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_mark_test_only, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_matches_ascii_and_folded_words, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_scope_words, arena_setup, arena_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

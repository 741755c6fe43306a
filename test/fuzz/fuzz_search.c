/*
 * fuzz_search.c — the search box's parser (search.c): whatever the text,
 * search_parse answers one of its three kinds; the words it keeps are at
 * most SEARCH_MAX_WORDS, each folded (valid UTF-8, no space, none of the
 * query syntax's characters), a prefix only with enough characters; the
 * MATCH() text holds nothing but those words; folding is idempotent and
 * highlighting agrees with the parse on the folded words themselves.
 */
#include "extern.h"
#include "fuzz_util.h"

static struct arena *A;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (A == NULL)
		A = arena_new(4096);
	char *s = fz_strndup(data, size);
	struct search_query q;
	enum search_parse k = search_parse(A, s, &q);
	CHECK(k == SQ_EMPTY || k == SQ_WORDS || k == SQ_TICKET);
	if (k == SQ_TICKET)
		CHECK(q.ticket_id > 0);
	if (k == SQ_EMPTY)
		CHECK(q.n == 0);
	if (k == SQ_WORDS) {
		CHECK(q.n >= 1 && q.n <= SEARCH_MAX_WORDS);
		for (size_t i = 0; i < q.n; i++) {
			const char *w = q.word[i].w;
			CHECK(*w != '\0');
			CHECK(utf8_valid(w, strlen(w)));
			CHECK(strpbrk(w, " \t\n\\()|-!@~\"&/^$=<>*'%_;") == NULL);
			if (q.word[i].prefix)
				CHECK(utf8_len(w) >= SEARCH_MIN_PREFIX);
			/* a folded word folds to itself, and matches itself */
			CHECK(strcmp(search_fold(A, w, strlen(w), 1 << 20), w) == 0);
			CHECK(search_mark(A, &q, w, 0, NULL, NULL) == 1);
		}
		for (int notes = 0; notes <= 1; notes++) {
			const char *m = search_match_string(A, &q, notes);
			/* the typed words never reach the scope field */
			const char *fields = notes ? "@(subject,body,notes)" : "@(subject,body)";
			CHECK(strncmp(m, fields, strlen(fields)) == 0);
			m += strlen(fields);
			CHECK(strpbrk(m, "\\()|-!@~\"&/^$=<>'") == NULL);
		}
	}
	/* the excerpt's source test and the highlighter agree on whether a
	 * word of the query is in the text */
	if (k == SQ_WORDS)
		CHECK(search_matches(A, &q, s, size + 1) == search_mark(A, &q, s, 0, NULL, NULL));
	const char *f = search_fold(A, s, size, 4096);
	CHECK(strlen(f) <= 4096);
	CHECK(utf8_valid(f, strlen(f)));
	CHECK(f[0] != ' ' && (f[0] == '\0' || f[strlen(f) - 1] != ' ') && strstr(f, "  ") == NULL);
	/* ASCII text folds by its own short path: the same words as the
	 * Unicode path, which a trailing " é" forces */
	size_t n = strlen(s);
	if (n < 1024) {
		char *t = malloc(n + 4);
		memcpy(t, s, n);
		memcpy(t + n, " \xc3\xa9", 4);
		const char *whole = search_fold(A, s, n, 1 << 20);
		const char *forced = search_fold(A, t, n + 3, 1 << 20);
		CHECK(strcmp(forced, arena_printf(A, "%s%se", whole, *whole ? " " : "")) == 0);
		free(t);
	}
	free(s);
	arena_reset(A);
	return 0;
}

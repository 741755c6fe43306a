/*
 * test_arena.c — request memory (arena.c): alignment, zeroing, chunks,
 * reset, the string helpers and the byte count.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdalign.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "extern.h"

#define ALIGN alignof(max_align_t)
#define SLACK sizeof(max_align_t)   /* rounding may waste up to this much */

static int aligned(const void *p)
{
	return ((uintptr_t)p % ALIGN) == 0;
}

static void test_alignment(void **state)
{
	(void)state;
	struct arena *a = arena_new(1024);
	/* odd sizes in a row: every pointer is aligned for any type */
	for (size_t n = 0; n < 300; n++) {
		void *p = arena_alloc(a, n % 37 + 1);
		if (!aligned(p))
			fail_msg("allocation %zu (%zu bytes) at %p is not %zu-aligned", n, n % 37 + 1,
			    p, (size_t)ALIGN);
	}
	/* and after a big one, and across a reset */
	assert_true(aligned(arena_alloc(a, 5000)));
	assert_true(aligned(arena_alloc(a, 3)));
	arena_reset(a);
	assert_true(aligned(arena_alloc(a, 1)));
	assert_true(aligned(arena_alloc(a, 1)));
	assert_true(aligned(arena_strdup(a, "x")));
	assert_true(aligned(arena_printf(a, "%d", 7)));
	/* a long double and a uint64_t may live there */
	long double *ld = arena_alloc(a, sizeof(*ld) * 3);
	ld[2] = 1.5L;
	uint64_t *u = arena_alloc(a, sizeof(*u));
	*u = UINT64_MAX;
	assert_true(ld[2] == 1.5L);
	arena_free(a);
}

static void test_distinct_and_disjoint(void **state)
{
	(void)state;
	struct arena *a = arena_new(256);
	enum { N = 500 };
	unsigned char *p[N];
	size_t sz[N];

	for (size_t i = 0; i < N; i++) {
		sz[i] = (i * 7919) % 97 + 1;
		p[i] = arena_alloc(a, sz[i]);
		memset(p[i], (int)(i & 0xff), sz[i]);
	}
	/* nothing written later clobbered anything earlier */
	for (size_t i = 0; i < N; i++)
		for (size_t k = 0; k < sz[i]; k++)
			if (p[i][k] != (unsigned char)(i & 0xff))
				fail_msg("allocation %zu byte %zu was overwritten", i, k);
	arena_free(a);
}

static void test_zeroed(void **state)
{
	(void)state;
	struct arena *a = arena_new(512);
	unsigned char *p = arena_alloc(a, 400);
	for (size_t i = 0; i < 400; i++)
		assert_int_equal(p[i], 0);
	memset(p, 0xff, 400);
	/* memory handed out again after a reset is zeroed again */
	arena_reset(a);
	unsigned char *q = arena_alloc(a, 400);
	for (size_t i = 0; i < 400; i++)
		if (q[i] != 0)
			fail_msg("byte %zu of a reused allocation is 0x%02x", i, q[i]);
	/* and so is a big one from its own chunk */
	unsigned char *big = arena_alloc(a, 100000);
	for (size_t i = 0; i < 100000; i++)
		if (big[i] != 0)
			fail_msg("byte %zu of a big allocation is 0x%02x", i, big[i]);
	arena_free(a);
}

static void test_large_allocation(void **state)
{
	(void)state;
	struct arena *a = arena_new(1024);
	char *small1 = arena_alloc(a, 16);
	memcpy(small1, "before the big 1", 16);
	/* 64 times the chunk: gets a chunk of its own, fully usable */
	size_t n = 64 * 1024;
	unsigned char *big = arena_alloc(a, n);
	for (size_t i = 0; i < n; i++)
		big[i] = (unsigned char)(i * 31);
	char *small2 = arena_alloc(a, 32);
	memcpy(small2, "after the big one, still fine..", 32);
	for (size_t i = 0; i < n; i++)
		if (big[i] != (unsigned char)(i * 31))
			fail_msg("big allocation byte %zu changed", i);
	assert_memory_equal(small1, "before the big 1", 16);
	assert_true(arena_used(a) >= n + 16 + 32);
	/* exactly the chunk size, and one more */
	assert_non_null(arena_alloc(a, 1024));
	assert_non_null(arena_alloc(a, 1025));
	arena_reset(a);
	assert_int_equal(arena_used(a), 0);
	arena_free(a);
}

static void test_many_across_chunks(void **state)
{
	(void)state;
	struct arena *a = arena_new(128);
	enum { N = 20000 };
	char **s = malloc(N * sizeof(*s));
	assert_non_null(s);

	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++)
			s[i] = arena_printf(a, "string-%d-%d", round, i);
		for (int i = 0; i < N; i++) {
			char want[64];
			snprintf(want, sizeof(want), "string-%d-%d", round, i);
			if (strcmp(s[i], want) != 0)
				fail_msg("round %d: string %d is \"%s\"", round, i, s[i]);
		}
		assert_true(arena_used(a) >= (size_t)N * 12);
		arena_reset(a);
		assert_int_equal(arena_used(a), 0);
	}
	free(s);
	arena_free(a);
}

static void test_reset_keeps_working(void **state)
{
	(void)state;
	struct arena *a = arena_new(4096);
	/* a worker's life: many requests, each allocating then resetting.
	 * Under ASan this also proves reset frees what it drops (leak check). */
	for (int req = 0; req < 2000; req++) {
		char *body = arena_alloc(a, (size_t)(req % 9000) + 1);
		body[req % 9000] = 'x';
		char *id = arena_printf(a, "req-%d", req);
		assert_string_equal(id, arena_printf(a, "req-%d", req));
		for (int k = 0; k < 20; k++)
			(void)arena_strdup(a, "some header value that is long enough");
		arena_reset(a);
		assert_int_equal(arena_used(a), 0);
	}
	/* reset of a fresh arena, and twice in a row */
	arena_reset(a);
	arena_reset(a);
	assert_string_equal(arena_strdup(a, "still fine"), "still fine");
	arena_free(a);

	/* arena_new(0) picks a sane default chunk */
	a = arena_new(0);
	assert_non_null(a);
	assert_string_equal(arena_strdup(a, "default"), "default");
	arena_free(a);
	arena_free(NULL);           /* like free(), accepts NULL */
}

static void test_strndup_strdup(void **state)
{
	(void)state;
	struct arena *a = arena_new(64);
	const char src[] = "hello, world";

	char *p = arena_strndup(a, src, 5);
	assert_string_equal(p, "hello");
	assert_ptr_not_equal(p, src);
	p = arena_strndup(a, src, 0);
	assert_string_equal(p, "");
	/* copies exactly n bytes, even past a NUL (length is the caller's) */
	p = arena_strndup(a, "ab\0cd", 5);
	assert_memory_equal(p, "ab\0cd", 6);
	/* source not NUL-terminated within n */
	char raw[4] = { 'w', 'x', 'y', 'z' };
	p = arena_strndup(a, raw, 4);
	assert_string_equal(p, "wxyz");

	char *d = arena_strdup(a, src);
	assert_string_equal(d, src);
	d[0] = 'J';
	assert_string_equal(src, "hello, world");   /* a copy, not the source */
	assert_string_equal(arena_strdup(a, ""), "");

	/* longer than a chunk */
	char big[1000];
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_string_equal(arena_strdup(a, big), big);
	arena_free(a);
}

static void test_printf(void **state)
{
	(void)state;
	struct arena *a = arena_new(64);

	assert_string_equal(arena_printf(a, "%s=%d;%05.1f|%lld|%c", "k", -42, 3.14159, 1LL << 40, 'z'),
	    "k=-42;003.1|1099511627776|z");
	assert_string_equal(arena_printf(a, "%s", ""), "");
	assert_string_equal(arena_printf(a, "no args"), "no args");
	assert_string_equal(arena_printf(a, "%%"), "%");

	/* output much longer than a chunk */
	char *s = arena_printf(a, "%0500d|%s", 7, "tail");
	assert_int_equal(strlen(s), 505);
	assert_int_equal(s[498], '0');
	assert_int_equal(s[499], '7');
	assert_string_equal(s + 500, "|tail");

	/* an argument that itself lives in the arena */
	char *x = arena_strdup(a, "abc");
	assert_string_equal(arena_printf(a, "%s%s", x, x), "abcabc");
	arena_free(a);
}

static void test_used(void **state)
{
	(void)state;
	struct arena *a = arena_new(1024);

	assert_int_equal(arena_used(a), 0);
	(void)arena_alloc(a, 1);
	size_t one = arena_used(a);
	assert_true(one >= 1 && one <= SLACK);
	(void)arena_alloc(a, 100);
	size_t two = arena_used(a);
	assert_true(two >= one + 100 && two <= one + 100 + SLACK);
	(void)arena_strdup(a, "12345");     /* 6 bytes with the NUL */
	assert_true(arena_used(a) >= two + 6);
	(void)arena_alloc(a, 5000);         /* a chunk of its own counts too */
	assert_true(arena_used(a) >= two + 6 + 5000);
	size_t before = arena_used(a);
	(void)arena_alloc(a, 0);
	assert_true(arena_used(a) >= before);
	arena_reset(a);
	assert_int_equal(arena_used(a), 0);
	(void)arena_alloc(a, 10);
	assert_true(arena_used(a) >= 10 && arena_used(a) <= 10 + SLACK);
	arena_free(a);
}

/* "never NULL: OOM is fatal": a request that cannot be met must abort(),
 * never hand out a pointer to less memory than asked for.  Run in a child
 * so the abort does not end the test program. */
static int child_status(size_t n)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		setrlimit(RLIMIT_CORE, &no_core);
		/* cmocka's handlers would catch a crash and carry on in the child */
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		signal(SIGILL, SIG_DFL);
		signal(SIGFPE, SIG_DFL);
		struct arena *a = arena_new(1024);
		unsigned char *p = arena_alloc(a, n);
		p[0] = 1;
		_exit(0);       /* reaching here with a "successful" allocation is wrong */
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static int dies_with_abort(size_t n)
{
	int st = child_status(n);
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void test_impossible_size_aborts(void **state)
{
	(void)state;
	/* rounding up overflows */
	assert_true(dies_with_abort(SIZE_MAX));
	assert_true(dies_with_abort(SIZE_MAX - 3));
	/* rounding does not overflow but the chunk header does */
	if (!dies_with_abort(SIZE_MAX - 31))
		fail_msg("arena_alloc(SIZE_MAX - 31) did not abort");
	if (!dies_with_abort(SIZE_MAX - 50))
		fail_msg("arena_alloc(SIZE_MAX - 50) did not abort");
	/* one that rounds to a size malloc refuses: "out of memory", abort */
	assert_true(dies_with_abort(SIZE_MAX - 100) || child_status(SIZE_MAX - 100) != 0);
	/* plain too big for memory: malloc fails and arena.c aborts (under
	 * ASan the sanitizer's allocator stops the child first, exit 1) */
	int st = child_status(SIZE_MAX / 2);
#ifdef __SANITIZE_ADDRESS__
	assert_true((WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT) ||
	    (WIFEXITED(st) && WEXITSTATUS(st) != 0));
#else
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alignment),
		cmocka_unit_test(test_distinct_and_disjoint),
		cmocka_unit_test(test_zeroed),
		cmocka_unit_test(test_large_allocation),
		cmocka_unit_test(test_many_across_chunks),
		cmocka_unit_test(test_reset_keeps_working),
		cmocka_unit_test(test_strndup_strdup),
		cmocka_unit_test(test_printf),
		cmocka_unit_test(test_used),
		cmocka_unit_test(test_impossible_size_aborts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

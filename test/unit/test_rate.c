/*
 * test_rate.c — rate.c's slot table, with a fake api_rate row standing in
 * for the database (token.c's part): exact counts on one host, the first
 * hit of a minute flushed before it is answered, a flush at most every
 * RATE_FLUSH_MS, the minute's rollover, two hosts on one row (and the
 * lag the README states), eviction (a free slot, then a past minute, then
 * the least recently hit, whose unflushed hits are handed back), the wait
 * behind a minute's first flush and the take-over of a dead flusher, a
 * failed write, the idle flush, and two processes counting in one table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "extern.h"

/* the database: hits per (token, minute), as token.c's rate_add sees it */
#define ROWS 64
struct fakedb {
	long long token[ROWS], minute[ROWS], hits[ROWS];
	int n;
};

static long long *row(struct fakedb *db, long long token, long long minute)
{
	for (int i = 0; i < db->n; i++)
		if (db->token[i] == token && db->minute[i] == minute)
			return &db->hits[i];
	assert_true(db->n < ROWS);
	db->token[db->n] = token;
	db->minute[db->n] = minute;
	db->hits[db->n] = 0;
	return &db->hits[db->n++];
}

static long long add(struct fakedb *db, long long token, long long minute, long long delta)
{
	long long *h = row(db, token, minute);
	*h += delta;
	return *h;
}

static int flushes;

/* One request as token_rate does it: its place in the minute. */
static long long hit(struct rate_table *t, struct fakedb *db, long long token, long long minute,
                     double now)
{
	struct rate_ticket tk;
	enum rate_step s = rate_count(t, token, minute, now, 0, &tk);

	assert_int_not_equal(s, RATE_WAIT);
	if (tk.evicted_delta)
		add(db, tk.evicted_token, tk.evicted_minute, tk.evicted_delta);
	if (s == RATE_DIRECT)
		return add(db, token, minute, 1);
	if (s == RATE_FLUSH) {
		flushes++;
		return rate_flushed(t, &tk, add(db, tk.token_id, tk.minute, tk.delta), now);
	}
	return tk.ordinal;
}

static void test_one_host_exact(void **state)
{
	(void)state;
	struct rate_table *t = rate_table_new(64);
	struct fakedb db = { .n = 0 };

	assert_non_null(t);
	flushes = 0;
	for (long long i = 1; i <= 50; i++)
		assert_int_equal(hit(t, &db, 7, 100, 1000.0 + (double)i), i);
	/* the first hit flushed (the row might have been full); no other yet */
	assert_int_equal(flushes, 1);
	assert_int_equal(*row(&db, 7, 100), 1);
	/* a second later the next hit adds the 49 that waited and itself */
	assert_int_equal(hit(t, &db, 7, 100, 2001.0), 51);
	assert_int_equal(flushes, 2);
	assert_int_equal(*row(&db, 7, 100), 51);
	assert_int_equal(hit(t, &db, 7, 100, 2500.0), 52);
	assert_int_equal(flushes, 2);
	rate_table_free(t);
}

static void test_rollover(void **state)
{
	(void)state;
	struct rate_table *t = rate_table_new(64);
	struct fakedb db = { .n = 0 };

	flushes = 0;
	for (int i = 0; i < 30; i++)
		hit(t, &db, 7, 100, 1000.0 + i);
	/* a new minute starts from nothing, flushed at once */
	assert_int_equal(hit(t, &db, 7, 101, 1100.0), 1);
	assert_int_equal(flushes, 2);
	assert_int_equal(*row(&db, 7, 101), 1);
	assert_int_equal(hit(t, &db, 7, 101, 1101.0), 2);
	/* a clock read just before the turn counts in the new minute */
	assert_int_equal(hit(t, &db, 7, 100, 1102.0), 3);
	assert_int_equal(*row(&db, 7, 100), 1);   /* minute 100's waiting hits: dropped */
	rate_table_free(t);
}

static void test_two_hosts_one_row(void **state)
{
	(void)state;
	struct rate_table *a = rate_table_new(64), *b = rate_table_new(64);
	struct fakedb db = { .n = 0 };

	for (int i = 1; i <= 10; i++)
		hit(a, &db, 7, 100, 1000.0 + i);
	/* A's first hit reached the row, the other nine wait in A */
	assert_int_equal(*row(&db, 7, 100), 1);
	/* B's first hit flushes and sees A's one: the lag is A's nine */
	assert_int_equal(hit(b, &db, 7, 100, 1020.0), 2);
	/* A's next flush adds its ten and B's one */
	assert_int_equal(hit(a, &db, 7, 100, 2020.0), 12);
	assert_int_equal(*row(&db, 7, 100), 12);
	/* B, not due yet, still counts from what it read */
	assert_int_equal(hit(b, &db, 7, 100, 1500.0), 3);
	/* due: B's two are added and B sees all of A's */
	assert_int_equal(hit(b, &db, 7, 100, 2100.0), 14);
	assert_int_equal(*row(&db, 7, 100), 14);
	rate_table_free(a);
	rate_table_free(b);
}

static void test_eviction(void **state)
{
	(void)state;
	/* RATE_PROBE slots: one window holds the whole table */
	struct rate_table *t = rate_table_new(RATE_PROBE);
	struct fakedb db = { .n = 0 };
	struct rate_ticket tk;

	for (long long tok = 1; tok <= RATE_PROBE; tok++) {
		hit(t, &db, tok, 100, 1000.0 + (double)tok);          /* flushed */
		hit(t, &db, tok, 100, 1100.0 + (double)tok);          /* waits */
	}
	/* token 1 was hit longest ago: its slot goes, its waiting hit is handed back */
	assert_int_equal(rate_count(t, 99, 100, 1200.0, 0, &tk), RATE_FLUSH);
	assert_int_equal(tk.evicted_token, 1);
	assert_int_equal(tk.evicted_minute, 100);
	assert_int_equal(tk.evicted_delta, 1);
	add(&db, tk.evicted_token, tk.evicted_minute, tk.evicted_delta);
	assert_int_equal(rate_flushed(t, &tk, add(&db, 99, 100, tk.delta), 1200.0), 1);
	assert_int_equal(*row(&db, 1, 100), 2);                   /* no hit lost */
	/* token 1 comes back: it takes the least recent (token 2) and reads its row */
	assert_int_equal(hit(t, &db, 1, 100, 1300.0), 3);
	assert_int_equal(*row(&db, 2, 100), 2);
	/* a slot of a past minute goes before any of this minute */
	assert_int_equal(hit(t, &db, 5, 101, 1400.0), 1);         /* token 5 moves on */
	assert_int_equal(rate_count(t, 100, 101, 1500.0, 0, &tk), RATE_FLUSH);
	assert_int_equal(tk.evicted_delta, 0);                    /* a past minute's: not handed back */
	rate_flushed(t, &tk, add(&db, 100, 101, tk.delta), 1500.0);
	assert_int_equal(hit(t, &db, 5, 101, 1600.0), 2);         /* token 5 kept its slot */
	/* every slot with a flush in flight: counted straight in the row */
	struct rate_table *u = rate_table_new(RATE_PROBE);
	struct rate_ticket held[RATE_PROBE];
	for (long long tok = 1; tok <= RATE_PROBE; tok++)
		assert_int_equal(rate_count(u, tok, 100, 1000.0, 0, &held[tok - 1]), RATE_FLUSH);
	assert_int_equal(rate_count(u, 50, 100, 1000.0, 0, &tk), RATE_DIRECT);
	rate_table_free(u);
	rate_table_free(t);
}

static void test_wait_and_dead_flusher(void **state)
{
	(void)state;
	struct rate_table *t = rate_table_new(64);
	struct rate_ticket first, tk, late;

	assert_int_equal(rate_count(t, 7, 100, 1000.0, 0, &first), RATE_FLUSH);
	/* the minute's first flush is in flight: the others wait for its answer */
	assert_int_equal(rate_count(t, 7, 100, 1000.5, 0, &tk), RATE_WAIT);
	assert_int_equal(rate_flushed(t, &first, 40, 1001.0), 40);  /* 39 from other hosts */
	assert_int_equal(rate_count(t, 7, 100, 1002.0, 0, &tk), RATE_GO);
	assert_int_equal(tk.ordinal, 41);
	/* a flush that never answers (its worker killed) is given up */
	assert_int_equal(rate_count(t, 7, 100, 2100.0, 0, &late), RATE_FLUSH);
	assert_int_equal(late.delta, 2);
	assert_int_equal(rate_count(t, 7, 100, 2200.0, 0, &tk), RATE_GO);   /* one at a time */
	assert_int_equal(tk.ordinal, 43);
	assert_int_equal(rate_count(t, 7, 100, 2100.0 + RATE_STALE_MS + 1, 0, &tk), RATE_FLUSH);
	assert_int_equal(tk.delta, 4);                 /* its two, the one after, this one */
	/* the dead one's answer, come late, changes nothing */
	rate_flushed(t, &late, 999, 9000.0);
	assert_int_equal(rate_flushed(t, &tk, 44, 9001.0), 44);
	struct rate_ticket g;
	assert_int_equal(rate_count(t, 7, 100, 9002.0, 0, &g), RATE_GO);
	assert_int_equal(g.ordinal, 45);
	rate_table_free(t);
}

static void test_failed_write(void **state)
{
	(void)state;
	struct rate_table *t = rate_table_new(64);
	struct rate_ticket tk;

	assert_int_equal(rate_count(t, 7, 100, 1000.0, 0, &tk), RATE_FLUSH);
	rate_flushed(t, &tk, -1, 1001.0);
	/* not primed: the next request tries again, with the lost hit */
	assert_int_equal(rate_count(t, 7, 100, 1002.0, 0, &tk), RATE_FLUSH);
	assert_int_equal(tk.delta, 2);
	assert_int_equal(rate_flushed(t, &tk, 2, 1003.0), 2);
	rate_table_free(t);
}

static void test_idle_flush_and_last_used(void **state)
{
	(void)state;
	struct rate_table *t = rate_table_new(64);
	struct fakedb db = { .n = 0 };
	struct rate_ticket tk;
	size_t cursor = 0;

	hit(t, &db, 7, 100, 1000.0);
	assert_int_equal(rate_idle(t, 1500.0, &cursor, &tk), 0);     /* nothing waits */
	hit(t, &db, 7, 100, 1200.0);
	hit(t, &db, 7, 100, 1300.0);
	assert_int_equal(rate_idle(t, 1900.0, &cursor, &tk), 0);     /* not due */
	assert_int_equal(rate_idle(t, 2001.0, &cursor, &tk), 1);
	assert_int_equal(tk.token_id, 7);
	assert_int_equal(tk.delta, 2);
	rate_flushed(t, &tk, add(&db, tk.token_id, tk.minute, tk.delta), 2002.0);
	assert_int_equal(*row(&db, 7, 100), 3);
	assert_int_equal(rate_idle(t, 5000.0, &cursor, &tk), 0);
	/* last_used_at: once a minute from a host, only when the row says stale */
	assert_int_equal(rate_count(t, 7, 100, 6000.0, 0, &tk), RATE_FLUSH);
	assert_false(tk.touch);
	rate_flushed(t, &tk, 4, 6000.0);
	rate_count(t, 7, 100, 6001.0, 1, &tk);
	assert_true(tk.touch);
	rate_count(t, 7, 100, 6002.0, 1, &tk);
	assert_false(tk.touch);
	rate_count(t, 7, 100, 6001.0 + 60000.0, 1, &tk);
	assert_true(tk.touch);
	rate_table_free(t);
}

/* Two processes hit one token 2000 times each: the places 1..4000 are
 * each given once (one host is exact across its workers). */
static void test_two_processes(void **state)
{
	(void)state;
	struct rate_table *t = rate_table_new(RATE_SLOTS);
	long long *shared = mmap(NULL, sizeof(long long) * 4002, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);   /* [0]: the row; [1 + place]: seen */
	pid_t kids[2];

	assert_non_null(t);
	assert_true(shared != MAP_FAILED);
	memset(shared, 0, sizeof(long long) * 4002);
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			for (int i = 0; i < 2000; i++) {
				struct rate_ticket tk;
				enum rate_step s;
				double now = (double)i;   /* a flush due every 1000 hits */
				while ((s = rate_count(t, 42, 100, now, 0, &tk)) == RATE_WAIT)
					usleep(10);
				long long place = tk.ordinal;
				if (s == RATE_FLUSH)
					place = rate_flushed(t, &tk,
					    __atomic_add_fetch(&shared[0], tk.delta, __ATOMIC_SEQ_CST), now);
				if (place < 1 || place > 4000)
					_exit(2);
				__atomic_add_fetch(&shared[1 + place], 1, __ATOMIC_SEQ_CST);
			}
			_exit(0);
		}
	}
	for (int k = 0; k < 2; k++) {
		int st;
		assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	for (int p = 1; p <= 4000; p++)
		if (shared[1 + p] != 1)
			fail_msg("place %d given %lld times", p, shared[1 + p]);
	munmap(shared, sizeof(long long) * 4002);
	rate_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_host_exact),
		cmocka_unit_test(test_rollover),
		cmocka_unit_test(test_two_hosts_one_row),
		cmocka_unit_test(test_eviction),
		cmocka_unit_test(test_wait_and_dead_flusher),
		cmocka_unit_test(test_failed_write),
		cmocka_unit_test(test_idle_flush_and_last_used),
		cmocka_unit_test(test_two_processes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

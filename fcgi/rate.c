/*
 * rate.c — the API's per-token counters in shared memory (README "JSON
 * API", rate limit).  The master maps one fixed table before it forks the
 * workers (MAP_SHARED | MAP_ANONYMOUS, kept across reloads), so every
 * worker of a host counts a token's requests in the same slot; the slot
 * is added to the token's `api_rate` row in the database (token.c does
 * the SQL) at most once every RATE_FLUSH_MS, and that write reads back the
 * total of every host.  A worker decides from
 *
 *     estimate = base + inflight + unflushed
 *
 * base: the row's total at the last flush (all hosts); inflight: the hits
 * the flush in flight is adding; unflushed: the hits counted here since.
 * On one host the estimate is exact.  Across hosts it lags by what the
 * other hosts counted since this slot's last flush: the bound in the
 * README.  The first hit of a minute on a host always flushes before it
 * is answered (the row may already be full from other hosts), and the
 * other requests of that token wait for it (a few hundred microseconds
 * once a minute).
 *
 * Slots: RATE_SLOTS, found by a hash of the token id and a probe of
 * RATE_PROBE neighbours.  A token not in the table takes a free slot of
 * its probe window, else one of a past minute, else the least recently
 * hit one; the hits that slot had not flushed are handed to the caller
 * to add to their row (so eviction loses no count).  When every slot of
 * the window has a flush in flight the request is counted straight in the
 * database, as without the table.
 *
 * Each slot has a process-shared robust mutex (a worker killed holding it
 * costs nothing: the next locker marks it consistent), held only for a
 * few assignments, never across a database round trip.  One flush per
 * slot at a time: a flush that has not come back within RATE_STALE_MS
 * (its worker died) is given up, its hits counted again as unflushed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "extern.h"

struct rate_slot {
	pthread_mutex_t mu;
	long long token_id;     /* 0: free; read without the lock by the probe */
	long long minute;       /* unix time / 60 */
	long long base;         /* the row's total at the last flush, all hosts */
	long long inflight;     /* hits the flush in flight adds */
	long long unflushed;    /* hits counted since */
	double last_flush;      /* clock_ms() of the last flush's answer */
	double flush_started;   /* clock_ms() when the flush in flight began; 0: none */
	double last_hit;        /* clock_ms(): for eviction */
	double used_at;         /* clock_ms() of the last last_used_at write from here */
	unsigned gen;           /* bumped by rollover, eviction, a flush given up */
	int primed;             /* base read this minute */
};

struct rate_table {
	pthread_mutex_t mu;     /* taking and evicting slots */
	size_t nslots;
	long long last_hit_ms;  /* any slot's; lets idle workers skip the scan */
	struct rate_slot slot[];
};

static struct rate_table *table;

static void lock(pthread_mutex_t *m)
{
	if (pthread_mutex_lock(m) == EOWNERDEAD)
		pthread_mutex_consistent(m);   /* its holder died between two assignments */
}

static void unlock(pthread_mutex_t *m)
{
	pthread_mutex_unlock(m);
}

static int mutex_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t at;
	int rc = -1;

	if (pthread_mutexattr_init(&at) != 0)
		return -1;
	if (pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED) == 0 &&
	    pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST) == 0 &&
	    pthread_mutex_init(m, &at) == 0)
		rc = 0;
	pthread_mutexattr_destroy(&at);
	return rc;
}

/* rate_table_new: a zeroed table of nslots (≥ RATE_PROBE) in shared
 * anonymous memory, or NULL. */
struct rate_table *rate_table_new(size_t nslots)
{
	if (nslots < RATE_PROBE)
		return NULL;
	size_t size = sizeof(struct rate_table) + nslots * sizeof(struct rate_slot);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	struct rate_table *t = p;      /* mmap's memory is zero */
	t->nslots = nslots;
	if (mutex_init(&t->mu) == -1)
		goto fail;
	for (size_t i = 0; i < nslots; i++)
		if (mutex_init(&t->slot[i].mu) == -1)
			goto fail;
	return t;
fail:
	munmap(p, size);
	return NULL;
}

void rate_table_free(struct rate_table *t)
{
	if (t)
		munmap(t, sizeof(struct rate_table) + t->nslots * sizeof(struct rate_slot));
}

/* rate_init: the host's table; the master calls it before forking.  0, or
 * -1 (then every API request is counted in the database). */
int rate_init(void)
{
	if (table == NULL)
		table = rate_table_new(RATE_SLOTS);
	return table ? 0 : -1;
}

struct rate_table *rate_table(void)
{
	return table;
}

static size_t home(const struct rate_table *t, long long token_id)
{
	uint64_t h = (uint64_t)token_id * 0x9E3779B97F4A7C15ull;
	return (size_t)((h >> 17) % t->nslots);
}

/* A slot of token_id, locked; NULL when not there.  Without the table lock:
 * a slot's token is re-read under its own lock. */
static struct rate_slot *find(struct rate_table *t, long long token_id)
{
	size_t h = home(t, token_id);

	for (size_t k = 0; k < RATE_PROBE; k++) {
		struct rate_slot *s = &t->slot[(h + k) % t->nslots];
		if (__atomic_load_n(&s->token_id, __ATOMIC_ACQUIRE) != token_id)
			continue;
		lock(&s->mu);
		if (s->token_id == token_id)
			return s;
		unlock(&s->mu);
	}
	return NULL;
}

/* Take a slot for token_id (under the table lock), locked; NULL when every
 * slot of the window has a flush in flight. */
static struct rate_slot *take(struct rate_table *t, long long token_id, long long minute,
                              struct rate_ticket *tk)
{
	size_t h = home(t, token_id);
	struct rate_slot *best = NULL;
	int best_rank = 0;

	lock(&t->mu);
	struct rate_slot *s = find(t, token_id);    /* taken meanwhile */
	if (s) {
		unlock(&t->mu);
		return s;
	}
	for (size_t k = 0; k < RATE_PROBE; k++) {
		s = &t->slot[(h + k) % t->nslots];
		lock(&s->mu);
		/* rank: 3 free, 2 a past minute, 1 in use (least recently hit first) */
		int rank = s->token_id == 0 ? 3 : s->minute < minute ? 2 : s->flush_started == 0 ? 1 : 0;
		if (rank > best_rank || (rank == best_rank && rank == 1 && s->last_hit < best->last_hit)) {
			if (best)
				unlock(&best->mu);
			best = s;
			best_rank = rank;
		} else
			unlock(&s->mu);
		if (rank == 3)
			break;
	}
	if (best && best->token_id != 0 && best->minute == minute && best->unflushed > 0) {
		tk->evicted_token = best->token_id;
		tk->evicted_minute = best->minute;
		tk->evicted_delta = best->unflushed;
	}
	if (best) {
		unsigned gen = best->gen + 1;
		memset((char *)best + sizeof(best->mu), 0, sizeof(*best) - sizeof(best->mu));
		best->gen = gen;
		best->minute = minute;
		__atomic_store_n(&best->token_id, token_id, __ATOMIC_RELEASE);
	}
	unlock(&t->mu);
	return best;
}

/* A flush in flight for longer than RATE_STALE_MS: its worker is gone.
 * Its hits count again as unflushed (a worker that was only slow finds
 * the generation changed and leaves the slot alone). */
static void give_up_stale(struct rate_slot *s, double now)
{
	if (s->flush_started != 0 && now - s->flush_started > RATE_STALE_MS) {
		s->unflushed += s->inflight;
		s->inflight = 0;
		s->flush_started = 0;
		s->gen++;
	}
}

static void claim_flush(struct rate_slot *s, size_t idx, double now, struct rate_ticket *tk)
{
	tk->slot = idx;
	tk->gen = s->gen;
	tk->base = s->base;
	tk->delta = s->unflushed;
	s->inflight = s->unflushed;
	s->unflushed = 0;
	s->flush_started = now > 0 ? now : 1e-9;
}

/* rate_count: count one request of token_id in minute (unix time / 60) at
 * clock_ms() now.  `stale`: the token's last_used_at is over a minute
 * old (token.c's lookup says).  Fills *tk and returns
 *   RATE_GO      decided: tk->ordinal is this request's place in the minute;
 *   RATE_FLUSH   the caller adds tk->delta to the row, then rate_flushed();
 *   RATE_WAIT    the minute's first flush is in flight: try again shortly;
 *   RATE_DIRECT  no slot (or no table): count this request in the row.
 * In every case the caller first adds tk->evicted_delta (when not 0) to
 * tk->evicted_token's row of tk->evicted_minute, and writes last_used_at
 * when tk->touch. */
enum rate_step rate_count(struct rate_table *t, long long token_id, long long minute, double now,
                          int stale, struct rate_ticket *tk)
{
	memset(tk, 0, sizeof(*tk));
	tk->token_id = token_id;
	tk->minute = minute;
	tk->slot = (size_t)-1;
	if (t == NULL || token_id <= 0) {
		tk->touch = stale;
		return RATE_DIRECT;
	}
	struct rate_slot *s = find(t, token_id);
	if (s == NULL && (s = take(t, token_id, minute, tk)) == NULL) {
		tk->touch = stale;
		return RATE_DIRECT;
	}
	size_t idx = (size_t)(s - t->slot);
	if (minute > s->minute) {         /* the minute turned over */
		s->minute = minute;
		s->base = s->inflight = s->unflushed = 0;
		s->primed = 0;
		s->flush_started = 0;
		s->gen++;
	}
	tk->minute = s->minute;           /* a clock read just before the turn counts in the new one */
	give_up_stale(s, now);
	if (!s->primed && s->flush_started != 0) {
		unlock(&s->mu);
		return RATE_WAIT;
	}
	s->last_hit = now;
	__atomic_store_n(&t->last_hit_ms, (long long)now, __ATOMIC_RELAXED);
	if (stale && (s->used_at == 0 || now - s->used_at >= 60000.0)) {
		s->used_at = now > 0 ? now : 1e-9;
		tk->touch = 1;
	}
	s->unflushed++;
	tk->ordinal = s->base + s->inflight + s->unflushed;
	enum rate_step step = RATE_GO;
	if (s->flush_started == 0 && (!s->primed || now - s->last_flush >= RATE_FLUSH_MS)) {
		claim_flush(s, idx, now, tk);
		step = RATE_FLUSH;
	}
	unlock(&s->mu);
	return step;
}

/* rate_flushed: the answer of a flush rate_count or rate_idle asked for:
 * the row's total after adding tk->delta, or -1 when the write failed
 * (the hits count as unflushed again).  Returns this request's place in
 * the minute: its place on this host, moved by what other hosts added
 * since the slot's last flush. */
long long rate_flushed(struct rate_table *t, const struct rate_ticket *tk, long long total,
                       double now)
{
	long long others = total - (tk->base + tk->delta);
	long long ordinal = tk->ordinal + (others > 0 ? others : 0);

	if (t == NULL || tk->slot >= t->nslots)
		return total > 0 ? total : tk->ordinal;
	struct rate_slot *s = &t->slot[tk->slot];
	lock(&s->mu);
	if (s->gen == tk->gen && s->token_id == tk->token_id && s->minute == tk->minute &&
	    s->flush_started != 0) {
		if (total < 0)
			s->unflushed += s->inflight;
		else {
			long long b = tk->base + tk->delta;
			s->base = total > b ? total : b;
			s->primed = 1;
			s->last_flush = now;
		}
		s->inflight = 0;
		s->flush_started = 0;
	}
	unlock(&s->mu);
	return ordinal;
}

/* rate_idle: for a worker with nothing to do — one slot whose hits have
 * waited RATE_FLUSH_MS or more, claimed for a flush (*tk, as RATE_FLUSH).
 * 1 when one was found, else 0.  *cursor keeps the scan's place. */
int rate_idle(struct rate_table *t, double now, size_t *cursor, struct rate_ticket *tk)
{
	if (t == NULL)
		return 0;
	long long last_hit = __atomic_load_n(&t->last_hit_ms, __ATOMIC_RELAXED);
	if (last_hit == 0 || now - (double)last_hit > RATE_STALE_MS + 2 * RATE_FLUSH_MS)
		return 0;                 /* nothing counted lately: nothing waits */
	for (size_t k = 0; k < t->nslots; k++) {
		size_t i = (*cursor + k) % t->nslots;
		struct rate_slot *s = &t->slot[i];
		if (__atomic_load_n(&s->token_id, __ATOMIC_ACQUIRE) == 0)
			continue;
		lock(&s->mu);
		give_up_stale(s, now);
		if (s->token_id != 0 && s->primed && s->unflushed > 0 && s->flush_started == 0 &&
		    now - s->last_flush >= RATE_FLUSH_MS) {
			memset(tk, 0, sizeof(*tk));
			tk->token_id = s->token_id;
			tk->minute = s->minute;
			claim_flush(s, i, now, tk);
			unlock(&s->mu);
			*cursor = i + 1;
			return 1;
		}
		unlock(&s->mu);
	}
	return 0;
}

/*
 * report.c — the admin's reports (README "Reports"): GET /admin/reports
 * (charts as inline SVG from views/chart.tpl, each with its numbers as a
 * table) and GET /admin/reports.csv (the same numbers), and the summary
 * rows they read: report_daily (created and closed per day) and
 * report_csat (ratings per day and agent), kept by the transactions that
 * create, close and rate; report_durations (first-response and
 * resolution times as a histogram per day and priority) and report_open
 * (open tickets per day of creation and priority), kept by sla_refresh
 * and a priority change; all rebuilt from scratch by ccr-admin
 * reports-rebuild.  A view reads a few rows per day of its range, never
 * the tickets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extern.h"

#define REPORT_MAX_DAYS 366
#define REPORT_DEFAULT_DAYS 30

/* ---- the summary rows, in the callers' transactions ------------------- */

static const char Q_CREATED[] =
    "INSERT INTO report_daily (day, created, closed) VALUES (CURDATE(), 1, 0) "
    "ON DUPLICATE KEY UPDATE created = created + 1";
static const char Q_CLOSED[] =
    "INSERT INTO report_daily (day, created, closed) VALUES (CURDATE(), 0, 1) "
    "ON DUPLICATE KEY UPDATE closed = closed + 1";
static const char Q_RATED[] =
    "INSERT INTO report_csat (day, agent_id, ratings, score) VALUES (CURDATE(), ?, 1, ?) "
    "ON DUPLICATE KEY UPDATE ratings = ratings + 1, score = score + VALUES(score)";

int report_closed(void) { return db_exec(Q_CLOSED, DB_NOARGS) < 0 ? -1 : 0; }
int report_rated(long long agent_id, long long score)
{
	return db_exec(Q_RATED, DB_ARGS(P_INT(agent_id), P_INT(score))) < 0 ? -1 : 0;
}

static const char Q_OPEN_ADD[] =
    "INSERT INTO report_open (day, priority, n) VALUES (FROM_DAYS(?), ?, ?) "
    "ON DUPLICATE KEY UPDATE n = n + VALUES(n)";
static const char Q_OPEN_MONTH_ADD[] =
    "INSERT INTO report_open_month (month, priority, n) "
    "VALUES (DATE_FORMAT(FROM_DAYS(?), '%Y-%m-01'), ?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)";
static const char Q_OPEN_NEW[] =
    "INSERT INTO report_open (day, priority, n) VALUES (CURDATE(), ?, 1) "
    "ON DUPLICATE KEY UPDATE n = n + 1";
static const char Q_OPEN_MONTH_NEW[] =
    "INSERT INTO report_open_month (month, priority, n) "
    "VALUES (DATE_FORMAT(CURDATE(), '%Y-%m-01'), ?, 1) ON DUPLICATE KEY UPDATE n = n + 1";

/* report_open_add: delta open tickets created on day (TO_DAYS) at p */
int report_open_add(long long day, enum priority p, int delta)
{
	const char *pn = priority_name(p);

	if (db_exec(Q_OPEN_ADD, DB_ARGS(P_INT(day), P_STR(pn), P_INT(delta))) < 0 ||
	    db_exec(Q_OPEN_MONTH_ADD, DB_ARGS(P_INT(day), P_STR(pn), P_INT(delta))) < 0)
		return -1;
	return 0;
}

int report_created(enum priority p)
{
	const char *pn = priority_name(p);

	if (db_exec(Q_CREATED, DB_NOARGS) < 0 || db_exec(Q_OPEN_NEW, DB_ARGS(P_STR(pn))) < 0 ||
	    db_exec(Q_OPEN_MONTH_NEW, DB_ARGS(P_STR(pn))) < 0)
		return -1;
	return 0;
}

/* ---- durations as histograms (schema 015 explains the buckets) ------- */

static const char *const duration_names[DUR__MAX] = { "first_response", "resolution" };

int hist_bucket(long long v)
{
	if (v < 64)
		return v < 0 ? 0 : (int)v;
	int e = 63 - __builtin_clzll((unsigned long long)v) - 5;    /* v >> e: 32 … 63 */
	int b = 64 + 32 * (e - 1) + (int)(v >> e) - 32;
	return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

/* the middle of bucket b: the value a percentile in it reads as */
long long hist_value(int b)
{
	if (b < 64)
		return b;
	int e = (b - 64) / 32 + 1;
	long long m = (b - 64) % 32 + 32;
	return (m << e) + (1LL << (e - 1));
}

/* hist_parse: "bucket:count,…" added to counts[HIST_BUCKETS]; 0 / -1 malformed */
int hist_parse(const char *s, long long *counts)
{
	while (s && *s) {
		char *end;
		long b = strtol(s, &end, 10);
		if (end == s || *end != ':' || b < 0 || b >= HIST_BUCKETS)
			return -1;
		s = end + 1;
		long long n = strtoll(s, &end, 10);
		if (end == s || n < 0 || (*end != ',' && *end != '\0') || (*end == ',' && !end[1]))
			return -1;
		counts[b] += n;
		s = *end ? end + 1 : end;
	}
	return 0;
}

static const char Q_H_ROW[] =
    "INSERT INTO report_durations (target, day, priority, hist) VALUES (?, FROM_DAYS(?), ?, '') "
    "ON DUPLICATE KEY UPDATE hist = hist";
static const char Q_H_GET[] =
    "SELECT hist FROM report_durations WHERE target = ? AND day = FROM_DAYS(?) AND priority = ? "
    "FOR UPDATE";
static const char Q_H_PUT[] =
    "UPDATE report_durations SET hist = ? WHERE target = ? AND day = FROM_DAYS(?) AND priority = ?";
static const char Q_H_DEL[] =
    "DELETE FROM report_durations WHERE target = ? AND day = FROM_DAYS(?) AND priority = ?";

/* hist_add: delta at duration `s` seconds in the row of (d, day, p).  The
 * row is made first, so that its lock orders two writers of a new day
 * (READ COMMITTED takes no gap locks). */
static int hist_add(struct arena *a, enum report_dur d, long long day, enum priority p,
                    long long s, int delta)
{
	struct db_rows rows;
	const char *tn = duration_names[d], *pn = priority_name(p);

	if (db_exec(Q_H_ROW, DB_ARGS(P_STR(tn), P_INT(day), P_STR(pn))) < 0 ||
	    db_query(a, &rows, Q_H_GET, 1, DB_ARGS(P_STR(tn), P_INT(day), P_STR(pn))) != 1)
		return -1;
	long long *counts = arena_alloc(a, sizeof(long long) * HIST_BUCKETS);
	memset(counts, 0, sizeof(long long) * HIST_BUCKETS);
	if (hist_parse(DB_CELL(&rows, 0, 0), counts) == -1) {
		log_err("report_durations %s/%lld/%s: malformed histogram", tn, day, pn);
		return -1;
	}
	int b = hist_bucket(s);
	counts[b] = counts[b] + delta < 0 ? 0 : counts[b] + delta;
	size_t cap = (size_t)HIST_BUCKETS * 24 + 1, len = 0;
	char *out = arena_alloc(a, cap);
	for (int i = 0; i < HIST_BUCKETS; i++)     /* ≤ 24 bytes a bucket: "," + 3 + ":" + 19 */
		if (counts[i] > 0)
			len += (size_t)snprintf(out + len, cap - len, "%s%d:%lld", len ? "," : "", i,
			    counts[i]);
	if (len == 0)
		return db_exec(Q_H_DEL, DB_ARGS(P_STR(tn), P_INT(day), P_STR(pn))) < 0 ? -1 : 0;
	return db_exec(Q_H_PUT, DB_ARGS(P_STR(out), P_STR(tn), P_INT(day), P_STR(pn))) < 0 ? -1 : 0;
}

/* report_dur_move: a ticket's duration d went from o (at priority po) to
 * n (at pn); either may be unset.  In the caller's transaction; 0 / -1. */
int report_dur_move(struct arena *a, enum report_dur d, enum priority po, struct report_dur_at o,
                    enum priority pn, struct report_dur_at n)
{
	if (o.set && n.set && po == pn && o.day == n.day && hist_bucket(o.s) == hist_bucket(n.s))
		return 0;
	if (o.set && hist_add(a, d, o.day, po, o.s, -1) == -1)
		return -1;
	return n.set ? hist_add(a, d, n.day, pn, n.s, 1) : 0;
}

/* reports-rebuild: the summary rows from the tickets, the timeline (every
 * close, by hand or automatic, is an event there) and the ratings, in one
 * transaction; then the due times of every ticket (sla_rebuild). */
/* the histograms of one duration from the tickets, hist_bucket in SQL
 * (LENGTH(BIN(v)) - 1 is floor(log2 v), exactly) */
#define REBUILD_HIST(t) \
	"INSERT INTO report_durations (target, day, priority, hist) " \
	"SELECT '" t "', day, priority, GROUP_CONCAT(b, ':', n ORDER BY b SEPARATOR ',') " \
	"FROM (SELECT DATE(" t "_at) AS day, priority, IF(" t "_s < 64, " t "_s, " \
	"64 + 32 * (LENGTH(BIN(" t "_s)) - 7) + (" t "_s >> (LENGTH(BIN(" t "_s)) - 6)) - 32) AS b, " \
	"COUNT(*) AS n FROM tickets WHERE " t "_at IS NOT NULL GROUP BY 1, 2, 3) h " \
	"GROUP BY day, priority"
static const char *const Q_REBUILD[] = {
	"DELETE FROM report_daily",
	"INSERT INTO report_daily (day, created, closed) "
	"SELECT DATE(created_at), COUNT(*), 0 FROM tickets GROUP BY DATE(created_at)",
	"INSERT INTO report_daily (day, created, closed) "
	"SELECT DATE(created_at), 0, COUNT(*) FROM timeline WHERE kind IN ('closed', 'auto_closed') "
	"GROUP BY DATE(created_at) ON DUPLICATE KEY UPDATE closed = VALUES(closed)",
	"DELETE FROM report_csat",
	"INSERT INTO report_csat (day, agent_id, ratings, score) "
	"SELECT DATE(r.created_at), IFNULL(t.agent_id, 0), COUNT(*), SUM(r.score) "
	"FROM ratings r JOIN tickets t ON t.id = r.ticket_id GROUP BY 1, 2",
	"DELETE FROM report_durations",
	REBUILD_HIST("first_response"),
	REBUILD_HIST("resolution"),
	"DELETE FROM report_open",
	"INSERT INTO report_open (day, priority, n) "
	"SELECT DATE(created_at), priority, COUNT(*) FROM tickets WHERE status = 'open' GROUP BY 1, 2",
	"DELETE FROM report_open_month",
	"INSERT INTO report_open_month (month, priority, n) SELECT DATE_FORMAT(created_at, '%Y-%m-01'), "
	"priority, COUNT(*) FROM tickets WHERE status = 'open' GROUP BY 1, 2",
};

int report_rebuild(const struct conf *c)
{
	struct arena *a = arena_new(0);
	int rc = -1;

	if (db_begin() == -1)
		goto out;
	for (size_t i = 0; i < sizeof(Q_REBUILD) / sizeof(Q_REBUILD[0]); i++)
		if (db_exec(Q_REBUILD[i], DB_NOARGS) < 0) {
			db_rollback();
			goto out;
		}
	if (db_commit() == -1 || sla_rebuild(c, a) == -1)
		goto out;
	rc = 0;
out:
	arena_free(a);
	return rc;
}

/* ---- the numbers of a date range --------------------------------------- */

enum age { AGE_DAY, AGE_3DAYS, AGE_WEEK, AGE_MONTH, AGE_OLDER, AGE__MAX };
static const char *const age_names[AGE__MAX] = {
	"today", "1-2 days", "3-6 days", "7-29 days", "30 days or more",
};
static const char *const duration_titles[DUR__MAX] = { "First response", "Resolution" };

struct day_row { char day[11]; long long created, closed; };
struct dur_stat { long long n, median, p90; };    /* seconds; n = 0: none */
struct csat_row { const char *agent; long long n, sum; };

struct report {
	char from[11], to[11];
	int ndays;
	struct day_row *days;
	struct dur_stat dur[DUR__MAX][PRIO__MAX];
	size_t ncsat;
	struct csat_row *csat;
	long long backlog[PRIO__MAX][AGE__MAX];
};

/* a strict YYYY-MM-DD that names a real day: its midnight UTC in *t; 0 / -1 */
static int parse_day(const char *s, time_t *t)
{
	struct tm tm = { 0 };

	if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -1;
	tm.tm_year = atoi(s) - 1900;
	tm.tm_mon = atoi(s + 5) - 1;
	tm.tm_mday = atoi(s + 8);
	if (tm.tm_year < 70 || tm.tm_year > 8099)
		return -1;
	int y = tm.tm_year, m = tm.tm_mon, d = tm.tm_mday;
	*t = timegm(&tm);
	return tm.tm_year == y && tm.tm_mon == m && tm.tm_mday == d ? 0 : -1;
}

static void day_text(char out[11], time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

/* report_range: from and to of the query (default: the 30 days ending
 * today), validated.  0, or 422 with r->message. */
static int report_range(struct request *r, struct report *rep, time_t *t0)
{
	const char *f = req_query(r, "from"), *t = req_query(r, "to");
	time_t now = time(NULL), tf, tt;

	if (f && *f == '\0')
		f = NULL;
	if (t && *t == '\0')
		t = NULL;
	tt = now - now % 86400;
	if (t && parse_day(t, &tt) == -1) {
		r->message = "The end date must be a date like 2026-01-31";
		return 422;
	}
	tf = tt - (REPORT_DEFAULT_DAYS - 1) * 86400;
	if (f && parse_day(f, &tf) == -1) {
		r->message = "The start date must be a date like 2026-01-01";
		return 422;
	}
	if (tf > tt) {
		r->message = "The start date must not be after the end date";
		return 422;
	}
	if ((tt - tf) / 86400 + 1 > REPORT_MAX_DAYS) {
		r->message = "A report covers at most 366 days";
		return 422;
	}
	day_text(rep->from, tf);
	day_text(rep->to, tt);
	rep->ndays = (int)((tt - tf) / 86400 + 1);
	*t0 = tf;
	return 0;
}

/* nearest rank: the rank ceil(p/100 × n) of n sorted values */
static long long rank_of(long long n, int p)
{
	long long k = (p * n + 99) / 100;

	return k < 1 ? 1 : k;
}

/* the value (its bucket's middle) at rank k of a histogram */
static long long hist_rank(const long long *counts, long long k)
{
	for (int b = 0; b < HIST_BUCKETS; b++) {
		k -= counts[b];
		if (k <= 0)
			return hist_value(b);
	}
	return hist_value(HIST_BUCKETS - 1);
}

static const char Q_DAYS[] =
    "SELECT day, created, closed FROM report_daily WHERE day BETWEEN ? AND ? ORDER BY day";
static const char Q_DURATIONS[] =
    "SELECT target, priority, hist FROM report_durations "
    "WHERE target IN ('first_response', 'resolution') AND day BETWEEN ? AND ?";
/* summed per agent before the names are joined: the LIMIT keeps the
 * derived table from being merged into a join of every day's row with
 * users (at a million tickets, 30 days: 0.6 ms instead of 3 ms) */
static const char Q_CSAT[] =
    "SELECT IFNULL(CONCAT(u.first_name, ' ', u.last_name), 'N/A'), s.n, s.total "
    "FROM (SELECT agent_id, SUM(ratings) AS n, SUM(score) AS total FROM report_csat "
    "WHERE day BETWEEN ? AND ? GROUP BY agent_id LIMIT 1000000) s "
    "LEFT JOIN users u ON u.id = s.agent_id ORDER BY 1, s.agent_id";
/* age in days since the day of creation: 0, 1-2, 3-6, 7-29 from the day
 * rows of the last 30 days; 30 or more from the month rows before the
 * month of the day 30 days ago and that month's day rows up to it */
#define OPEN_CUT "CURDATE() - INTERVAL 30 DAY"
static const char Q_BACKLOG[] =
    "SELECT priority, CASE WHEN day >= CURDATE() THEN 0 WHEN day > CURDATE() - INTERVAL 3 DAY THEN 1 "
    "WHEN day > CURDATE() - INTERVAL 7 DAY THEN 2 ELSE 3 END, SUM(n) FROM report_open "
    "WHERE day > " OPEN_CUT " AND n <> 0 GROUP BY 1, 2 "
    "UNION ALL SELECT priority, 4, SUM(n) FROM ("
    "SELECT priority, n FROM report_open_month WHERE month < DATE_FORMAT(" OPEN_CUT ", '%Y-%m-01') "
    "UNION ALL SELECT priority, n FROM report_open "
    "WHERE day >= DATE_FORMAT(" OPEN_CUT ", '%Y-%m-01') AND day <= " OPEN_CUT ") o GROUP BY 1";

/* report_load: every number of rep's range.  0 / -1. */
static int report_load(struct request *r, struct report *rep, time_t t0)
{
	struct db_rows rows;

	rep->days = arena_alloc(r->a, sizeof(*rep->days) * (size_t)rep->ndays);
	for (int i = 0; i < rep->ndays; i++) {
		day_text(rep->days[i].day, t0 + (time_t)i * 86400);
		rep->days[i].created = rep->days[i].closed = 0;
	}
	if (db_query(r->a, &rows, Q_DAYS, 3, DB_ARGS(P_STR(rep->from), P_STR(rep->to))) < 0)
		return -1;
	for (size_t i = 0; i < rows.nrows; i++) {
		time_t t;
		if (parse_day(DB_CELL(&rows, i, 0), &t) == -1)
			continue;
		long long k = (long long)(t - t0) / 86400;
		if (k >= 0 && k < rep->ndays) {
			rep->days[k].created = db_int(&rows, i, 1);
			rep->days[k].closed = db_int(&rows, i, 2);
		}
	}
	if (db_query(r->a, &rows, Q_DURATIONS, 3, DB_ARGS(P_STR(rep->from), P_STR(rep->to))) < 0)
		return -1;
	long long (*h)[PRIO__MAX][HIST_BUCKETS] = arena_alloc(r->a,
	    sizeof(long long) * DUR__MAX * PRIO__MAX * HIST_BUCKETS);
	memset(h, 0, sizeof(long long) * DUR__MAX * PRIO__MAX * HIST_BUCKETS);
	for (size_t i = 0; i < rows.nrows; i++) {
		enum priority p;
		int d = strcmp(DB_CELL(&rows, i, 0), duration_names[DUR_FIRST]) == 0 ? DUR_FIRST
		    : DUR_RESOLUTION;
		if (priority_parse(DB_CELL(&rows, i, 1), &p) == -1 ||
		    hist_parse(DB_CELL(&rows, i, 2), h[d][p]) == -1) {
			log_err("report_durations: malformed row");
			return -1;
		}
	}
	for (int d = 0; d < DUR__MAX; d++)
		for (int p = 0; p < PRIO__MAX; p++) {
			struct dur_stat *st = &rep->dur[d][p];
			*st = (struct dur_stat){ 0 };
			for (int k = 0; k < HIST_BUCKETS; k++)
				st->n += h[d][p][k];
			if (st->n) {
				st->median = hist_rank(h[d][p], rank_of(st->n, 50));
				st->p90 = hist_rank(h[d][p], rank_of(st->n, 90));
			}
		}
	if (db_query(r->a, &rows, Q_CSAT, 3, DB_ARGS(P_STR(rep->from), P_STR(rep->to))) < 0)
		return -1;
	rep->ncsat = rows.nrows;
	rep->csat = arena_alloc(r->a, sizeof(*rep->csat) * (rows.nrows + 1));
	for (size_t i = 0; i < rows.nrows; i++)
		rep->csat[i] = (struct csat_row){ DB_CELL(&rows, i, 0), db_int(&rows, i, 1),
		    db_int(&rows, i, 2) };
	if (db_query(r->a, &rows, Q_BACKLOG, 3, DB_NOARGS) < 0)
		return -1;
	memset(rep->backlog, 0, sizeof(rep->backlog));
	for (size_t i = 0; i < rows.nrows; i++) {
		enum priority p;
		long long b = db_int(&rows, i, 1);
		if (priority_parse(DB_CELL(&rows, i, 0), &p) == 0 && b >= 0 && b < AGE__MAX)
			rep->backlog[p][b] = db_int(&rows, i, 2);
	}
	return 0;
}

/* ---- the page ----------------------------------------------------------- */

/* hours with one decimal, the unit of the time charts and tables */
static const char *hours(struct arena *a, long long s)
{
	return arena_printf(a, "%.1f", (double)s / 3600.0);
}

static const char *average(struct arena *a, long long sum, long long n)
{
	return n ? arena_printf(a, "%.2f", (double)sum / (double)n) : "";
}

/* a round axis maximum ≥ max: 1, 2 or 5 × 10^k */
static double axis_max(double max)
{
	double step = 1;

	if (max <= 0)
		return 1;
	while (step * 10 <= max)
		step *= 10;
	for (;;) {
		if (max <= step)
			return step;
		if (max <= 2 * step)
			return 2 * step;
		if (max <= 5 * step)
			return 5 * step;
		step *= 10;
	}
}

/* The chart geometry: a 640 × 260 viewBox, plot area from (48, 16) to
 * (624, 216), labels below. */
#define CH_W 640
#define CH_H 260
#define PL_X 48
#define PL_Y 16
#define PL_W 576
#define PL_H 200

struct chart {
	struct vdict *d;
	double max;
	size_t n;          /* bars (or points) along the x axis */
	int groups;        /* bars per slot */
};

/* chart_new: include chart.tpl into section `name` of b with its title,
 * description and a y axis from 0 to a round maximum ≥ max in `unit`. */
static struct chart chart_new(struct request *r, struct vdict *b, const char *name,
                              const char *id, const char *title, const char *desc, double max,
                              size_t n, int groups, const char *unit)
{
	struct chart c = { .d = vdict_include(b, name, "chart.tpl"), .max = axis_max(max), .n = n,
	    .groups = groups };

	vdict_set(c.d, "CHART_ID", id);
	vdict_set(c.d, "CHART_TITLE", title);
	vdict_set(c.d, "CHART_DESC", desc);
	vdict_set_int(c.d, "W", CH_W);
	vdict_set_int(c.d, "H", CH_H);
	vdict_set_int(c.d, "X0", PL_X);
	vdict_set_int(c.d, "X1", PL_X + PL_W);
	vdict_set_int(c.d, "Y0", PL_Y + PL_H);
	vdict_set_int(c.d, "YTOP", PL_Y);
	vdict_set(c.d, "UNIT", unit);
	for (int i = 0; i <= 4; i++) {
		struct vdict *t = vdict_section(c.d, "TICK");
		double v = c.max * i / 4;
		vdict_set(t, "TY", arena_printf(r->a, "%.1f", PL_Y + PL_H - (double)PL_H * i / 4));
		vdict_set(t, "TLY", arena_printf(r->a, "%.1f", PL_Y + PL_H - (double)PL_H * i / 4 + 4));
		vdict_set(t, "TLABEL", v == (double)(long long)v ? arena_printf(r->a, "%.0f", v)
		    : arena_printf(r->a, "%.1f", v));
		vdict_set_int(t, "TX", PL_X - 6);
	}
	return c;
}

/* one bar of series `g` in slot i, value v, with its x label (slot's
 * first bar only, every `every` slots) */
static void chart_bar(struct request *r, struct chart *c, size_t i, int g, double v,
                      const char *label, const char *xlabel, size_t every)
{
	double slot = (double)PL_W / (double)c->n, w = slot * 0.8 / c->groups;
	double x = PL_X + slot * (double)i + slot * 0.1 + w * g, h = (double)PL_H * v / c->max;
	struct vdict *bar = vdict_section(c->d, "BAR");

	vdict_set(bar, "BX", arena_printf(r->a, "%.1f", x));
	vdict_set(bar, "BY", arena_printf(r->a, "%.1f", PL_Y + PL_H - h));
	vdict_set(bar, "BW", arena_printf(r->a, "%.1f", w > 1 ? w - 0.5 : w));
	vdict_set(bar, "BH", arena_printf(r->a, "%.1f", h));
	vdict_set(bar, "BLABEL", label);
	vdict_set(bar, "SERIES", g ? "series-b" : "series-a");
	if (g == 0 && xlabel && i % every == 0) {
		struct vdict *xl = vdict_section(c->d, "XLABEL");
		vdict_set(xl, "XX", arena_printf(r->a, "%.1f", PL_X + slot * (double)i + slot / 2));
		vdict_set_int(xl, "XY", PL_Y + PL_H + 18);
		vdict_set(xl, "XTEXT", xlabel);
	}
}

static const char *q_range(struct request *r, const struct report *rep)
{
	return arena_printf(r->a, "from=%s&to=%s", rep->from, rep->to);
}

/* report_get: the range from the query and its numbers.  0, or the
 * status of a refusal (422 bad range, 5xx database). */
static int report_get(struct request *r, struct report *rep)
{
	time_t t0;
	int s = report_range(r, rep, &t0);

	if (s)
		return s;
	return report_load(r, rep, t0) == -1 ? db_status() : 0;
}

/* GET /admin/reports: from, to (YYYY-MM-DD, default the last 30 days,
 * at most 366; bad → 422 with the message). */
int report_page(struct request *r)
{
	struct report rep;
	int s = report_get(r, &rep);

	if (s)
		return s;
	struct view *v = page_new(r, "reports.tpl", "Reports");
	if (v == NULL)
		return 500;
	struct vdict *b = view_body(v);
	vdict_set(b, "FROM", rep.from);
	vdict_set(b, "TO", rep.to);
	vdict_set(b, "CSV_QUERY", q_range(r, &rep));

	/* created (bars) and closed (line) per day */
	long long maxd = 0, tc = 0, tl = 0;
	for (int i = 0; i < rep.ndays; i++) {
		maxd = rep.days[i].created > maxd ? rep.days[i].created : maxd;
		maxd = rep.days[i].closed > maxd ? rep.days[i].closed : maxd;
		tc += rep.days[i].created;
		tl += rep.days[i].closed;
	}
	struct chart c = chart_new(r, b, "DAILY_CHART", "daily",
	    arena_printf(r->a, "Tickets created and closed per day, %s to %s", rep.from, rep.to),
	    arena_printf(r->a, "%lld created and %lld closed in %d days; bars: created, line: closed",
	        tc, tl, rep.ndays), (double)maxd, (size_t)rep.ndays, 1, "tickets");
	size_t every = (size_t)(rep.ndays + 6) / 7;
	char *pts = arena_strdup(r->a, "");
	for (int i = 0; i < rep.ndays; i++) {
		struct day_row *d = &rep.days[i];
		chart_bar(r, &c, (size_t)i, 0, (double)d->created,
		    arena_printf(r->a, "%s: %lld created", d->day, d->created), d->day + 5, every);
		double slot = (double)PL_W / rep.ndays;
		pts = arena_printf(r->a, "%s%s%.1f,%.1f", pts, i ? " " : "",
		    PL_X + slot * i + slot / 2, PL_Y + PL_H - (double)PL_H * (double)d->closed / c.max);
		struct vdict *row = vdict_section(b, "DAY");
		vdict_set(row, "DAY", d->day);
		vdict_set_int(row, "CREATED", d->created);
		vdict_set_int(row, "CLOSED", d->closed);
	}
	vdict_set(vdict_section(c.d, "LINE"), "POINTS", pts);
	vdict_set(c.d, "LEGEND_A", "created");
	struct vdict *lb = vdict_section(c.d, "HAS_LEGEND_B");
	vdict_set(lb, "LEGEND_B", "closed");
	vdict_set(lb, "LEGEND_B_CLASS", "legend-line");

	/* median and 90th percentile of first response and resolution, hours */
	for (int d = 0; d < DUR__MAX; d++) {
		double max = 0;
		for (int p = 0; p < PRIO__MAX; p++)
			max = rep.dur[d][p].p90 / 3600.0 > max ? rep.dur[d][p].p90 / 3600.0 : max;
		struct chart dc = chart_new(r, b, d == DUR_FIRST ? "FIRST_CHART" : "RESOLUTION_CHART",
		    duration_names[d],
		    arena_printf(r->a, "%s time per priority, hours", duration_titles[d]),
		    "Median (first bar) and 90th percentile (second bar) per priority", max, PRIO__MAX, 2,
		    "hours");
		vdict_set(dc.d, "LEGEND_A", "median");
		struct vdict *lb2 = vdict_section(dc.d, "HAS_LEGEND_B");
		vdict_set(lb2, "LEGEND_B", "90th percentile");
		vdict_set(lb2, "LEGEND_B_CLASS", "legend-b");
		for (int p = PRIO__MAX - 1; p >= 0; p--) {
			const struct dur_stat *st = &rep.dur[d][p];
			size_t slot = (size_t)(PRIO__MAX - 1 - p);
			chart_bar(r, &dc, slot, 0, st->median / 3600.0, arena_printf(r->a, "%s median: %s h",
			    priority_names[p], hours(r->a, st->median)), priority_names[p], 1);
			chart_bar(r, &dc, slot, 1, st->p90 / 3600.0, arena_printf(r->a, "%s 90th percentile: %s h",
			    priority_names[p], hours(r->a, st->p90)), NULL, 1);
			struct vdict *row = vdict_section(b, d == DUR_FIRST ? "FIRST_ROW" : "RESOLUTION_ROW");
			vdict_set(row, "PRIORITY", priority_names[p]);
			vdict_set_int(row, "N", st->n);
			vdict_set(row, "MEDIAN", st->n ? hours(r->a, st->median) : "–");
			vdict_set(row, "P90", st->n ? hours(r->a, st->p90) : "–");
		}
	}

	/* CSAT per agent */
	struct chart cc = chart_new(r, b, "CSAT_CHART", "csat", "Average rating per agent (1 to 5)",
	    arena_printf(r->a, "%zu agents rated in the range", rep.ncsat), 5,
	    rep.ncsat ? rep.ncsat : 1, 1, "score");
	vdict_set(cc.d, "LEGEND_A", "average rating");
	for (size_t i = 0; i < rep.ncsat; i++) {
		const struct csat_row *a = &rep.csat[i];
		chart_bar(r, &cc, i, 0, (double)a->sum / (double)a->n, arena_printf(r->a,
		    "%s: %s from %lld ratings", a->agent, average(r->a, a->sum, a->n), a->n), a->agent, 1);
		struct vdict *row = vdict_section(b, "CSAT_ROW");
		vdict_set(row, "AGENT", a->agent);
		vdict_set_int(row, "N", a->n);
		vdict_set(row, "AVG", average(r->a, a->sum, a->n));
	}
	if (rep.ncsat == 0)
		vdict_show(b, "NO_CSAT");

	/* open backlog by priority (bars: totals), age in the table */
	long long maxb = 0, total[PRIO__MAX] = { 0 };
	for (int p = 0; p < PRIO__MAX; p++) {
		for (int g = 0; g < AGE__MAX; g++)
			total[p] += rep.backlog[p][g];
		maxb = total[p] > maxb ? total[p] : maxb;
	}
	struct chart bc = chart_new(r, b, "BACKLOG_CHART", "backlog", "Open tickets per priority now",
	    "Open tickets per priority; the table splits them by age", (double)maxb, PRIO__MAX, 1,
	    "tickets");
	vdict_set(bc.d, "LEGEND_A", "open tickets");
	for (int g = 0; g < AGE__MAX; g++)
		vdict_set(vdict_section(b, "AGE_HEAD"), "AGE", age_names[g]);
	for (int p = PRIO__MAX - 1; p >= 0; p--) {
		chart_bar(r, &bc, (size_t)(PRIO__MAX - 1 - p), 0, (double)total[p],
		    arena_printf(r->a, "%s: %lld open", priority_names[p], total[p]), priority_names[p], 1);
		struct vdict *row = vdict_section(b, "BACKLOG_ROW");
		vdict_set(row, "PRIORITY", priority_names[p]);
		for (int g = 0; g < AGE__MAX; g++)
			vdict_set_int(vdict_section(row, "AGE_CELL"), "COUNT", rep.backlog[p][g]);
		vdict_set_int(row, "TOTAL", total[p]);
	}
	return page_render(r, v, 200);
}

/* ---- the CSV ------------------------------------------------------------ */

/* one RFC 4180 field: quoted when it holds a comma, quote, CR or LF */
static char *csv_field(struct arena *a, char *out, const char *f)
{
	if (strpbrk(f, ",\"\r\n") == NULL)
		return arena_printf(a, "%s%s", out, f);
	size_t n = strlen(f);
	char *q = arena_alloc(a, n * 2 + 3), *o = q;
	*o++ = '"';
	for (; *f; f++) {
		if (*f == '"')
			*o++ = '"';
		*o++ = *f;
	}
	*o++ = '"';
	*o = '\0';
	return arena_printf(a, "%s%s", out, q);
}

struct csv { struct arena *a; char *buf; size_t len, cap; };

static void csv_put(struct csv *c, const char *s)
{
	size_t n = strlen(s);

	if (c->len + n + 1 > c->cap) {
		size_t cap = (c->cap + n + 1) * 2;
		char *nb = arena_alloc(c->a, cap);
		if (c->len)             /* the first piece: no buffer yet (memcpy from NULL is UB) */
			memcpy(nb, c->buf, c->len);
		c->buf = nb;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, s, n + 1);
	c->len += n;
}

/* a row: report, day, priority, agent, age, metric, value; CRLF ended */
static void csv_row(struct csv *c, const char *report, const char *day, const char *prio,
                    const char *agent, const char *age, const char *metric, const char *value)
{
	const char *f[7] = { report, day, prio, agent, age, metric, value };
	char *line = arena_strdup(c->a, "");

	for (int i = 0; i < 7; i++) {
		if (i)
			line = arena_printf(c->a, "%s,", line);
		line = csv_field(c->a, line, f[i] ? f[i] : "");
	}
	csv_put(c, line);
	csv_put(c, "\r\n");
}

/* GET /admin/reports.csv: the page's numbers, one per row (times in
 * seconds), UTF-8 without BOM, CRLF lines (RFC 4180), as an attachment. */
int report_csv(struct request *r)
{
	struct report rep;
	int s = report_get(r, &rep);

	if (s)
		return s;
	struct csv c = { .a = r->a };
	struct arena *a = r->a;
	csv_put(&c, "report,day,priority,agent,age,metric,value\r\n");
	for (int i = 0; i < rep.ndays; i++) {
		csv_row(&c, "daily", rep.days[i].day, NULL, NULL, NULL, "created",
		    arena_printf(a, "%lld", rep.days[i].created));
		csv_row(&c, "daily", rep.days[i].day, NULL, NULL, NULL, "closed",
		    arena_printf(a, "%lld", rep.days[i].closed));
	}
	for (int d = 0; d < DUR__MAX; d++)
		for (int p = PRIO__MAX - 1; p >= 0; p--) {
			const struct dur_stat *st = &rep.dur[d][p];
			csv_row(&c, duration_names[d], NULL, priority_names[p], NULL, NULL, "count",
			    arena_printf(a, "%lld", st->n));
			csv_row(&c, duration_names[d], NULL, priority_names[p], NULL, NULL, "median_seconds",
			    st->n ? arena_printf(a, "%lld", st->median) : "");
			csv_row(&c, duration_names[d], NULL, priority_names[p], NULL, NULL, "p90_seconds",
			    st->n ? arena_printf(a, "%lld", st->p90) : "");
		}
	for (size_t i = 0; i < rep.ncsat; i++) {
		csv_row(&c, "csat", NULL, NULL, rep.csat[i].agent, NULL, "count",
		    arena_printf(a, "%lld", rep.csat[i].n));
		csv_row(&c, "csat", NULL, NULL, rep.csat[i].agent, NULL, "average",
		    average(a, rep.csat[i].sum, rep.csat[i].n));
	}
	for (int p = PRIO__MAX - 1; p >= 0; p--)
		for (int g = 0; g < AGE__MAX; g++)
			csv_row(&c, "backlog", NULL, priority_names[p], NULL, age_names[g], "open",
			    arena_printf(a, "%lld", rep.backlog[p][g]));
	resp_header_add(r, "Content-Disposition", arena_printf(a,
	    "attachment; filename=\"ccr-report-%s-to-%s.csv\"", rep.from, rep.to));
	r->ctype = "text/csv; charset=utf-8; header=present";
	r->body = c.buf ? c.buf : "";
	r->body_len = c.len;
	return 200;
}

/*
 * search.c — search over the whole conversation (README "Search"): the
 * folding shared by the index and the query, the query parser, the queue
 * every change writes to (search_enqueue, in the transaction of the
 * change), the indexer (the ccrd child "ccrd-search") that turns queued
 * tickets into documents of searchd's real-time index, the query the list
 * asks searchd, the highlighting of the matched words, and ccr-admin
 * search-rebuild.
 *
 * searchd (Sphinx 2.2) speaks SphinxQL over the MySQL protocol; it has no
 * prepared statements, so what goes to it is built here from folded words
 * (letters and digits only) and numbers, and still passes through
 * mysql_real_escape_string.  MariaDB stays the source of truth: a search
 * answers ticket ids, and the list loads those rows from MariaDB with the
 * viewer's scope checked again, so a stale index entry never shows a
 * ticket the viewer may not see.
 */
#include <errmsg.h>
#include <glib.h>
#include <mysql.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

#define FIELD_MAX (256 * 1024)   /* bytes of one field of a document, before and after folding */
#define POLL_BATCH 100            /* queue rows the indexer takes at once */
#define REBUILD_BATCH 500         /* tickets a rebuild reads at once (an id range) */
#define REBUILD_MERGE_MS (3600 * 1000) /* how long a rebuild waits for the chunks' merge */
#define STMT_FLUSH (4 * 1024 * 1024) /* a REPLACE is sent once it is this long */

/* ---- folding ------------------------------------------------------------ */

/* GLib's g_utf8_next_char casts its const away */
#define next_char(p) ((p) + g_utf8_skip[*(const guchar *)(p)])

/* A word character: a letter or a digit (a combining mark belongs to the
 * letter before it).  searchd's charset_table (systemd/ccr-searchd.conf)
 * declares the same scripts as word characters. */
static int word_char(gunichar c)
{
	return g_unichar_isalnum(c) || g_unichar_ismark(c);
}

static int ascii_alnum(unsigned char c)
{
	return (unsigned char)((c | 0x20) - 'a') < 26 || (unsigned char)(c - '0') < 10;
}

/* The folding of ASCII text: its letters and digits in lower case, each
 * run a word — what the Unicode path makes of ASCII, without its three
 * copies (most text is ASCII, and a rebuild folds all of it). */
static GString *fold_ascii(const char *s, size_t len)
{
	GString *w = g_string_sized_new(len + 1);
	int in_word = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int alnum = ascii_alnum(c);
		if (alnum) {
			if (!in_word && w->len)
				g_string_append_c(w, ' ');
			g_string_append_c(w, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c));
		}
		in_word = alnum;
	}
	return w;
}

/* The folding of any text (it stops at a NUL). */
static GString *fold_unicode(const char *s, size_t len)
{
	/* case folded first: a folding may bring a combining mark (İ → i + U+0307),
	 * which the decomposition and the filter below then drop */
	gchar *valid = g_utf8_make_valid(s, (gssize)len);
	gchar *cf = g_utf8_casefold(valid, -1);
	g_free(valid);
	gchar *nfd = g_utf8_normalize(cf, -1, G_NORMALIZE_NFD);
	g_free(cf);
	if (nfd == NULL)
		return g_string_new("");
	GString *w = g_string_sized_new(strlen(nfd) + 1);
	int in_word = 0;
	for (const gchar *p = nfd; *p; p = next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (g_unichar_ismark(c))
			continue;
		if (g_unichar_isalnum(c)) {
			if (!in_word && w->len)
				g_string_append_c(w, ' ');
			/* lower case again: GLib folds some scripts to upper case
			 * (Cherokee), which would not fold to itself */
			g_string_append_unichar(w, g_unichar_tolower(c));
			in_word = 1;
		} else
			in_word = 0;
	}
	g_free(nfd);
	return w;
}

/* search_fold: s (len bytes, any bytes) as its words, folded — NFD,
 * combining marks dropped, case folded — separated by one space, at most
 * max bytes (cut at a word).  Arena-owned, never NULL. */
char *search_fold(struct arena *a, const char *s, size_t len, size_t max)
{
	size_t k = 0;
	while (k < len && (unsigned char)s[k] < 0x80 && s[k] != '\0')
		k++;
	GString *w = k == len ? fold_ascii(s, len) : fold_unicode(s, len);
	size_t n = w->len;
	if (n > max) {
		n = max;
		while (n > 0 && w->str[n] != ' ')
			n--;
	}
	char *out = arena_strndup(a, w->str, n);
	g_string_free(w, TRUE);
	return out;
}

/* ---- the query ---------------------------------------------------------- */

/* search_parse: the search box's text into *q.  "#N" (N a ticket id) is
 * SQ_TICKET; else the words, folded, deduplicated, at most
 * SEARCH_MAX_WORDS, each ending in '*' a prefix when it has at least
 * SEARCH_MIN_PREFIX characters (a shorter one is a plain word).  Anything
 * else — operators, quotes, '@', '|', '-', parentheses, a lone '*' — is a
 * separator, never syntax.  SQ_EMPTY when no word is left. */
enum search_parse search_parse(struct arena *a, const char *text, struct search_query *q)
{
	memset(q, 0, sizeof(*q));
	if (text == NULL)
		return SQ_EMPTY;
	size_t len = strlen(text);
	while (len && (text[len - 1] == ' ' || text[len - 1] == '\t'))
		len--;
	while (len && (*text == ' ' || *text == '\t'))
		text++, len--;
	if (len >= 2 && len <= 19 && text[0] == '#' && text[1] >= '1' && text[1] <= '9') {
		size_t i = 1;
		long long id = 0;
		while (i < len && text[i] >= '0' && text[i] <= '9' && id < 100000000000000000LL)
			id = id * 10 + (text[i++] - '0');
		if (i == len) {
			q->ticket_id = id;
			return SQ_TICKET;
		}
	}
	gchar *valid = g_utf8_make_valid(text, (gssize)len);
	const gchar *p = valid;
	while (*p && q->n < SEARCH_MAX_WORDS) {
		gunichar c = g_utf8_get_char(p);
		if (!word_char(c)) {
			p = next_char(p);
			continue;
		}
		const gchar *start = p;
		while (*p && word_char(g_utf8_get_char(p)))
			p = next_char(p);
		size_t wlen = (size_t)(p - start);
		int star = *p == '*';
		if (wlen > SEARCH_WORD_MAX)
			wlen = SEARCH_WORD_MAX;
		char *f = search_fold(a, start, wlen, SEARCH_WORD_MAX * 2);
		/* folding keeps a word one word (letters stay letters), but a
		 * mark-only run folds to nothing */
		if (*f == '\0' || strchr(f, ' '))
			continue;
		int prefix = star && g_utf8_strlen(f, -1) >= SEARCH_MIN_PREFIX;
		int dup = 0;
		for (size_t i = 0; i < q->n; i++)
			if (!strcmp(q->word[i].w, f) && q->word[i].prefix == prefix)
				dup = 1;
		if (dup)
			continue;
		q->word[q->n].w = f;
		q->word[q->n].prefix = prefix;
		q->word[q->n].shown = arena_strndup(a, start, (size_t)(p - start) + (size_t)star);
		q->n++;
	}
	g_free(valid);
	return q->n ? SQ_WORDS : SQ_EMPTY;
}

/* search_match_string: the MATCH() text of q: its words (each only
 * letters and digits, so nothing in it is syntax; Sphinx's special
 * characters are escaped anyway), a prefix with its '*', restricted to
 * subject and body, and notes when they are searched too — never the
 * scope field, whose words only search_scope_match writes. */
char *search_match_string(struct arena *a, const struct search_query *q, int notes)
{
	size_t cap = 32;
	for (size_t i = 0; i < q->n; i++)
		cap += strlen(q->word[i].w) * 2 + 3;
	char *out = arena_alloc(a, cap), *o = out;
	o += snprintf(o, cap, notes ? "@(subject,body,notes)" : "@(subject,body)");
	for (size_t i = 0; i < q->n; i++) {
		*o++ = ' ';
		for (const char *s = q->word[i].w; *s; s++) {
			if (strchr("\\()|-!@~\"&/^$=<>*'", *s))
				*o++ = '\\';
			*o++ = *s;
		}
		if (q->word[i].prefix)
			*o++ = '*';
	}
	*o = '\0';
	return out;
}

/* search_term_matches: 1 when folded word w (len bytes) is one of q's
 * words, or starts with one of its prefixes. */
static int term_matches(const struct search_query *q, const char *w, size_t len)
{
	for (size_t i = 0; i < q->n; i++) {
		size_t l = strlen(q->word[i].w);
		if (q->word[i].prefix ? len >= l && !memcmp(w, q->word[i].w, l)
		                      : len == l && !memcmp(w, q->word[i].w, l))
			return 1;
	}
	return 0;
}

/* A word character at p (a valid UTF-8 string): ASCII by its byte. */
static int word_at(const gchar *p)
{
	unsigned char c = (unsigned char)*p;
	if (c < 0x80)
		return ascii_alnum(c);
	return word_char(g_utf8_get_char(p));
}

/* The end of the word that starts at p, at most at `to` (NULL: the
 * string's end). */
static const gchar *word_end(const gchar *p, const gchar *to)
{
	while (*p && (to == NULL || p < to) && word_at(p))
		p = next_char(p);
	return p;
}

/* word_hit: 1 when the text's word s (len bytes, word characters only)
 * folds to a word q matches.  An ASCII word folds to itself in lower case
 * (no allocation: this runs for every word of every excerpt's source);
 * any other goes through search_fold. */
static int word_hit(struct arena *a, const struct search_query *q, const char *s, size_t len)
{
	char low[SEARCH_WORD_MAX * 2 + 1];   /* a query word folds to at most this */
	size_t k = len < sizeof(low) ? len : sizeof(low);

	for (size_t i = 0; i < k; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80) {
			char *f = search_fold(a, s, len, SEARCH_WORD_MAX * 4);
			return term_matches(q, f, strlen(f));
		}
		low[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	/* a word longer than low can still start with a prefix: term_matches
	 * reads at most a query word's length of it */
	return term_matches(q, low, len);
}

/* search_matches: 1 when the first max bytes of text (any bytes) hold a
 * word q matches: a scan of its words, for choosing the text an excerpt
 * comes from. */
int search_matches(struct arena *a, const struct search_query *q, const char *text, size_t max)
{
	if (text == NULL)
		return 0;
	size_t n = strlen(text);
	if (n > max)
		n = max;
	/* valid text is scanned in place up to its n bytes (a cut inside a
	 * character is invalid, so it is copied and mended like the rest) */
	gchar *valid = NULL;
	const gchar *p = text;
	if (!g_utf8_validate(text, (gssize)n, NULL)) {
		p = valid = g_utf8_make_valid(text, (gssize)n);
		n = strlen(valid);
	}
	const gchar *to = p + n;
	int hit = 0;
	while (p < to && *p && !hit) {
		if (!word_at(p)) {
			p = next_char(p);
			continue;
		}
		const gchar *e = word_end(p, to);
		hit = word_hit(a, q, p, (size_t)(e - p));
		p = e;
	}
	g_free(valid);
	return hit;
}

/* search_mark: text (at most `max` characters of it from its first
 * match, with a little context before; the whole text when max is 0) as
 * pieces {TEXT, MARKED} under section `section` of d, the words q matches
 * marked.  Returns 1 when a word matched, else 0 (and, for an excerpt,
 * nothing is added).  d NULL: only whether a word matches. */
int search_mark(struct arena *a, const struct search_query *q, const char *text, size_t max,
                struct vdict *d, const char *section)
{
	if (text == NULL)
		return 0;
	gchar *valid = g_utf8_make_valid(text, -1);
	size_t n = strlen(valid);
	/* the words: [start, end) byte ranges, and whether each matched */
	const gchar *first = NULL;
	for (const gchar *p = valid; *p;) {
		if (!word_at(p)) {
			p = next_char(p);
			continue;
		}
		const gchar *s = p;
		p = word_end(p, NULL);
		if (word_hit(a, q, s, (size_t)(p - s))) {
			first = s;
			break;
		}
	}
	if ((first == NULL && max) || d == NULL) {
		g_free(valid);
		return first != NULL;
	}
	const gchar *from = valid, *to = valid + n;
	int cut_before = 0, cut_after = 0;
	if (max) {
		/* about a fifth of the excerpt before the match, from a word start */
		from = first;
		for (size_t back = 0; from > valid && back < max / 5; back++)
			from = g_utf8_prev_char(from);
		while (from > valid && from < first && word_at(from))
			from = next_char(from);
		to = from;
		for (size_t k = 0; *to && k < max; k++)
			to = next_char(to);
		cut_before = from > valid;
		cut_after = *to != '\0';
	}
	GString *plain = g_string_new(cut_before ? "…" : "");
	int any = 0;
	for (const gchar *p = from; p < to;) {
		if (!word_at(p)) {
			const gchar *s = p;
			while (p < to && !word_at(p))
				p = next_char(p);
			g_string_append_len(plain, s, p - s);
			continue;
		}
		const gchar *s = p;
		p = word_end(p, to);
		if (word_hit(a, q, s, (size_t)(p - s))) {
			if (plain->len) {
				struct vdict *t = vdict_section(d, section);
				vdict_set(t, "TEXT", arena_strndup(a, plain->str, plain->len));
				g_string_truncate(plain, 0);
			}
			struct vdict *m = vdict_section(d, section);
			vdict_set(m, "TEXT", arena_strndup(a, s, (size_t)(p - s)));
			vdict_show(m, "MARKED");
			any = 1;
		} else
			g_string_append_len(plain, s, p - s);
	}
	if (cut_after)
		g_string_append(plain, "…");
	if (plain->len)
		vdict_set(vdict_section(d, section), "TEXT", arena_strndup(a, plain->str, plain->len));
	g_string_free(plain, TRUE);
	g_free(valid);
	return any;
}

/* ---- the scope field ---------------------------------------------------- */

/* A document's scope field holds words no search box can reach (the
 * words a user types only ever search subject, body and notes): its
 * customer "ccrcN", its agent "ccraN" (0 unassigned), and its day of
 * last activity at SEARCH_LEVELS coarser and coarser grains, "ccrtLxB"
 * with B the day (days since 1970, UTC) divided by 8^L.  searchd
 * intersects a short word list with a long one by skipping, so a
 * customer's or agent's search costs their tickets, not every match of
 * a common word — and a search first asks for the matches of the last
 * days only (search_ids), which are the newest ones when there are a
 * page of them.  Measured at 1 M tickets on a scratch index: "refund"
 * (75 % of the documents) 115 ms, the same with an attribute filter on
 * one customer 51 ms, with that customer's word 4 ms, with the last
 * three days' words 1 ms. */
#define SCOPE_GRAIN_BITS 3        /* each level's bucket is 8 times the last one's */

static long long scope_bucket(long long day, int level)
{
	return day >> (SCOPE_GRAIN_BITS * level);
}

char *search_scope_text(struct arena *a, long long customer_id, long long agent_id,
                        long long activity)
{
	long long day = activity >= 0 ? activity / 86400 : 0;
	char buf[64 + SEARCH_LEVELS * 32];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "ccrc%lld ccra%lld", customer_id,
	    agent_id > 0 ? agent_id : 0);
	for (int l = 0; l < SEARCH_LEVELS && n < sizeof(buf); l++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, " ccrt%dx%lld", l, scope_bucket(day, l));
	return arena_strdup(a, buf);
}

/* search_scope_match: the scope part of a MATCH() for filter f (empty
 * when it narrows nothing) at time level `level` (SEARCH_LEVELS: any
 * time): the documents whose last activity falls in the bucket of `now`
 * at that level, the one before it or the one after it (a host's clock
 * a little ahead of this one's) — every document whose activity is at
 * least the start of the bucket before now's. */
char *search_scope_match(struct arena *a, const struct search_filter *f, int level, long long now)
{
	char buf[160];
	size_t n = 0;
	buf[0] = '\0';
	if (f->customer_id)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, " ccrc%lld", f->customer_id);
	if (f->agent_id || f->unassigned)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, " ccra%lld", f->unassigned ? 0 : f->agent_id);
	if (level < SEARCH_LEVELS) {
		long long b = scope_bucket(now / 86400, level);
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, " (ccrt%dx%lld | ccrt%dx%lld | ccrt%dx%lld)",
		    level, b - 1, level, b, level, b + 1);
	}
	return n ? arena_printf(a, " @scope%s", buf) : arena_strdup(a, "");
}

/* search_level_start: the unix time from which level `level` holds
 * every document (see search_scope_match). */
long long search_level_start(int level, long long now)
{
	return ((scope_bucket(now / 86400, level) - 1) << (SCOPE_GRAIN_BITS * level)) * 86400;
}

/* ---- the queue ---------------------------------------------------------- */

static const char Q_ENQUEUE[] =
    "INSERT INTO search_queue (ticket_id, seq, queued_at) VALUES (?, 1, NOW(3)) "
    "ON DUPLICATE KEY UPDATE seq = seq + 1, queued_at = NOW(3)";
static const char Q_ENQUEUE_AGENT[] =
    "INSERT INTO search_queue (ticket_id, seq, queued_at) "
    "SELECT id, 1, NOW(3) FROM tickets FORCE INDEX (tickets_agent) WHERE agent_id = ? "
    "ON DUPLICATE KEY UPDATE seq = search_queue.seq + 1, queued_at = NOW(3)";

/* search_enqueue: ticket_id's document is to be rebuilt, in the caller's
 * transaction (timeline_add calls it for every change).  0 / -1. */
int search_enqueue(long long ticket_id)
{
	return db_exec(Q_ENQUEUE, DB_ARGS(P_INT(ticket_id))) < 0 ? -1 : 0;
}

/* search_enqueue_agent: every ticket assigned to agent_id (before a
 * change that unassigns them all), in the caller's transaction.  0 / -1. */
int search_enqueue_agent(long long agent_id)
{
	return db_exec(Q_ENQUEUE_AGENT, DB_ARGS(P_INT(agent_id))) < 0 ? -1 : 0;
}

/* ---- the searchd connection -------------------------------------------- */

static const struct conf *sxconf;
static MYSQL *sx;
static char sx_err[640];

static void sx_close(void)
{
	if (sx)
		mysql_close(sx);
	sx = NULL;
}

static int sx_connect(void)
{
	unsigned ct, rt;

	if (sx)
		return 0;
	if ((sx = mysql_init(NULL)) == NULL)
		return -1;
	ct = (unsigned)sxconf->search_connect_timeout;
	rt = (unsigned)sxconf->search_timeout;
	mysql_optionsv(sx, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
	mysql_optionsv(sx, MYSQL_OPT_READ_TIMEOUT, &rt);
	mysql_optionsv(sx, MYSQL_OPT_WRITE_TIMEOUT, &rt);
	if (!mysql_real_connect(sx, sxconf->search_host, NULL, NULL, NULL,
	        (unsigned)sxconf->search_port, NULL, 0)) {
		snprintf(sx_err, sizeof(sx_err), "connect %s:%d: %s", sxconf->search_host,
		    sxconf->search_port, mysql_error(sx));
		sx_close();
		return -1;
	}
	return 0;
}

/* sx_query: one SphinxQL statement; a connection found dead (searchd
 * restarted since) is reopened and the statement sent once more.  0 / -1
 * (sx_err says why). */
static int sx_query(const char *sql, size_t len)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (sx_connect() == -1)
			return -1;
		if (mysql_real_query(sx, sql, (unsigned long)len) == 0)
			return 0;
		unsigned e = mysql_errno(sx);
		snprintf(sx_err, sizeof(sx_err), "%u %s", e, mysql_error(sx));
		if (e != CR_SERVER_GONE_ERROR && e != CR_SERVER_LOST && e != CR_SERVER_LOST_EXTENDED)
			return -1;
		sx_close();
	}
	return -1;
}

/* search_init: where searchd is ([search]); connects lazily. */
void search_init(const struct conf *c)
{
	sxconf = c;
}

const char *search_last_error(void)
{
	return sx_err;
}

static char *sx_escape(struct arena *a, const char *s, size_t n)
{
	char *out = arena_alloc(a, n * 2 + 1);
	mysql_real_escape_string(sx, out, s, (unsigned long)n);
	return out;
}

/* ---- the query path ----------------------------------------------------- */

/* sx_ids: one search statement sql (SHOW META after it when found is
 * not NULL: *found its total_found); at most cap ids/activities into
 * ids/acts.  The count, or -1 (searchd failed; logged, counted). */
/* sx_status: the value of `name` in a (name, value) result such as SHOW
 * META's or SHOW INDEX … STATUS's, or -1. */
static long long sx_status(MYSQL_RES *res, const char *name)
{
	MYSQL_ROW row;
	long long v = -1;
	while ((row = mysql_fetch_row(res)) != NULL)
		if (row[0] && row[1] && !strcmp(row[0], name))
			v = strtoll(row[1], NULL, 10);
	return v;
}

static int sx_ids(const char *sql, long long *ids, long long *acts, int cap, long long *found)
{
	MYSQL_RES *res = NULL;
	int n = 0;
	if (sx_query(sql, strlen(sql)) == -1 || (res = mysql_store_result(sx)) == NULL) {
		if (res == NULL && sx)
			snprintf(sx_err, sizeof(sx_err), "%u %s", mysql_errno(sx), mysql_error(sx));
		metrics_add(MET_SEARCH_ERRORS, 1);
		log_err("search: %s", sx_err);
		sx_close();
		return -1;
	}
	MYSQL_ROW row;
	while (n < cap && (row = mysql_fetch_row(res)) != NULL) {
		ids[n] = row[0] ? strtoll(row[0], NULL, 10) : 0;
		acts[n] = row[1] ? strtoll(row[1], NULL, 10) : 0;
		if (ids[n] > 0)
			n++;
	}
	mysql_free_result(res);
	/* SHOW META's rows are (name, value) */
	while (mysql_next_result(sx) == 0) {
		if ((res = mysql_store_result(sx)) == NULL)
			continue;
		long long v = found ? sx_status(res, "total_found") : -1;
		if (v >= 0)
			*found = v;
		mysql_free_result(res);
	}
	return n;
}

/* sx_index_status: the value of `name` in SHOW INDEX … STATUS, or -1. */
static long long sx_index_status(struct arena *a, const char *name)
{
	const char *sql = arena_printf(a, "SHOW INDEX %s STATUS", sxconf->search_index);
	MYSQL_RES *res;
	if (sx_query(sql, strlen(sql)) == -1 || (res = mysql_store_result(sx)) == NULL)
		return -1;
	long long v = sx_status(res, name);
	mysql_free_result(res);
	return v;
}

/* index_docs: the documents in the index (SHOW INDEX … STATUS), read at
 * most once a minute: only a search's plan depends on it, never what it
 * finds.  -1 when searchd cannot say. */
static long long index_docs(struct arena *a)
{
	static long long docs = -1;
	static long long at;
	long long now = (long long)time(NULL);
	if (docs > 0 && now - at < 60)
		return docs;
	docs = sx_index_status(a, "indexed_documents");
	at = now;
	return docs;
}

/* agent_estimate: how many of agent_id's documents q matches, were its
 * words independent: the agent's count times each word's share of the
 * index, from the dictionary (CALL KEYWORDS reads no document).  A
 * prefix's count is not there: it counts as every document.  -1 when
 * searchd cannot say. */
static double agent_estimate(struct arena *a, const struct search_query *q, long long agent_id)
{
	long long total = index_docs(a);
	if (total <= 0)
		return -1;
	char *kw = arena_printf(a, "ccra%lld", agent_id);
	for (size_t i = 0; i < q->n; i++)
		if (!q->word[i].prefix)
			kw = arena_printf(a, "%s %s", kw, q->word[i].w);
	const char *sql = arena_printf(a, "CALL KEYWORDS('%s', '%s', 1)", sx_escape(a, kw, strlen(kw)),
	    sxconf->search_index);
	MYSQL_RES *res;
	if (sx_query(sql, strlen(sql)) == -1 || (res = mysql_store_result(sx)) == NULL)
		return -1;
	/* rows (qpos, tokenized, normalized, docs, hits): the agent's word first */
	double est = -1;
	MYSQL_ROW row;
	while (mysql_num_fields(res) >= 4 && (row = mysql_fetch_row(res)) != NULL) {
		double d = row[3] ? strtod(row[3], NULL) : 0;
		est = est < 0 ? d : est * (d < total ? d / (double)total : 1.0);
	}
	mysql_free_result(res);
	return est;
}

/* search_ids: the ids (and index activity) of the tickets matching q in
 * f's scope, newest activity first, after f's cursor: at most cap of them
 * into ids/acts.  The count, or -1 when searchd cannot answer. */
int search_ids(struct arena *a, const struct search_query *q, const struct search_filter *f,
               long long *ids, long long *acts, int cap)
{
	if (sx_connect() == -1) {
		metrics_add(MET_SEARCH_ERRORS, 1);
		log_err("search: %s", sx_err);
		return -1;
	}
	const char *m = search_match_string(a, q, f->notes);
	char filt[256] = "";
	size_t fl = 0;
	if (f->customer_id)
		fl += (size_t)snprintf(filt + fl, sizeof(filt) - fl, " AND customer_id = %lld", f->customer_id);
	if (f->agent_id)
		fl += (size_t)snprintf(filt + fl, sizeof(filt) - fl, " AND agent_id = %lld", f->agent_id);
	if (f->unassigned)
		fl += (size_t)snprintf(filt + fl, sizeof(filt) - fl, " AND agent_id = 0");
	if (f->status >= 0)
		fl += (size_t)snprintf(filt + fl, sizeof(filt) - fl, " AND status = %d", f->status);
	if (f->cursor)
		fl += (size_t)snprintf(filt + fl, sizeof(filt) - fl, " AND pg = 1");
	const char *pg = f->cursor ? arena_printf(a, ", IF(activity < %lld OR (activity = %lld AND id < %lld), "
	    "1, 0) AS pg", f->after_ts, f->after_ts, f->after_id) : "";
	long long now = (long long)time(NULL);
	double t0 = clock_ms();
	int n = 0;
	metrics_add(MET_SEARCH_QUERIES, 1);
	/* First any time, but cut off after [search] probe_matches: fewer is
	 * every match, sorted, and the answer (a rare word: one short
	 * query).  Else the last days: when they hold a page of matches
	 * (after the cursor), those are the newest of all, every newer
	 * document being in them; else a longer span, and at last any time
	 * uncut.  One customer's tickets, or the unassigned ones, are few:
	 * their word alone keeps the search short, so they go straight to
	 * the last step.  An agent's are many, but far fewer than all: when
	 * the dictionary's counts say the first step would find more than
	 * probe_matches of them, it would read most of their documents to
	 * say so (two common words: 7 ms at 20 000 tickets of a million,
	 * where a span takes 1 ms), so theirs then start at the spans. */
	int narrow = f->customer_id || f->unassigned, probe = sxconf->search_probe_matches;
	int first = narrow ? SEARCH_LEVELS : -1;
	if (f->agent_id && !narrow && agent_estimate(a, q, f->agent_id) >= probe)
		first = 0;
	for (int level = first; level <= SEARCH_LEVELS; level++) {
		/* a span that starts after the cursor's time holds nothing after it */
		if (level >= 0 && level < SEARCH_LEVELS && f->cursor && search_level_start(level, now) > f->after_ts)
			continue;
		int left = sxconf->search_query_time - (int)(clock_ms() - t0);
		const char *mt = arena_printf(a, "%s%s", m, search_scope_match(a, f, level < 0 ? SEARCH_LEVELS : level, now));
		const char *sql = arena_printf(a,
		    "SELECT id, activity%s FROM %s WHERE MATCH('%s')%s ORDER BY activity DESC, id DESC "
		    "LIMIT %d OPTION ranker=none, max_query_time=%d%s",
		    pg, sxconf->search_index, sx_escape(a, mt, strlen(mt)), filt, cap, left > 10 ? left : 10,
		    level < 0 ? arena_printf(a, ", cutoff=%d; SHOW META", probe) : "");
		long long found = probe;
		if ((n = sx_ids(sql, ids, acts, cap, level < 0 ? &found : NULL)) < 0)
			return -1;
		if (level < 0 && found < probe)
			break;
		/* a query cut short by max_query_time answers what it found: the
		 * page says nothing more, the next page goes on from there */
		if ((level >= 0 && n == cap) || clock_ms() - t0 >= sxconf->search_query_time)
			break;
	}
	return n;
}

/* ---- documents ---------------------------------------------------------- */

static const char Q_DOC_T[] =
    "SELECT id, customer_id, IFNULL(agent_id, 0), status, UNIX_TIMESTAMP(last_activity), "
    "LEFT(subject, 1000), LEFT(description, 262144) FROM tickets WHERE id BETWEEN ? AND ? ORDER BY id";
enum { DT_ID, DT_CUSTOMER, DT_AGENT, DT_STATUS, DT_ACTIVITY, DT_SUBJECT, DT_DESC, DT__N };
static const char Q_DOC_M[] =
    "SELECT ticket_id, LEFT(body, 262144) FROM messages FORCE INDEX (messages_ticket) "
    "WHERE ticket_id BETWEEN ? AND ? ORDER BY ticket_id, id";
static const char Q_DOC_N[] =
    "SELECT ticket_id, LEFT(body, 262144) FROM notes WHERE ticket_id BETWEEN ? AND ? "
    "ORDER BY ticket_id, id";
/* one ticket (the indexer): its first 2000 messages and notes at most —
 * a field holds 256 KiB, and a ticket with a long conversation must not
 * cost a read of all of it at every change */
static const char Q_DOC_M1[] =
    "SELECT ticket_id, LEFT(body, 262144) FROM messages FORCE INDEX (messages_ticket) "
    "WHERE ticket_id = ? ORDER BY id LIMIT 2000";
static const char Q_DOC_N1[] =
    "SELECT ticket_id, LEFT(body, 262144) FROM notes WHERE ticket_id = ? ORDER BY id LIMIT 2000";
enum { DM_TICKET, DM_BODY, DM__N };

struct stmt {
	char *buf;
	size_t len, cap;
	int rows;
};

static void st_add(struct stmt *s, const char *p, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 65536;
		while (s->len + n + 1 > cap)
			cap *= 2;
		char *b = realloc(s->buf, cap);
		if (b == NULL)
			abort();
		s->buf = b;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->buf[s->len] = '\0';
}

static void st_str(struct stmt *s, const char *p)
{
	st_add(s, p, strlen(p));
}

/* text of the rows of m (sorted by ticket) that belong to ticket id,
 * from *at on, concatenated up to FIELD_MAX bytes; *at moves past them */
static void gather(GString *g, const struct db_rows *m, size_t *at, long long id)
{
	while (*at < m->nrows && db_int(m, *at, DM_TICKET) < id)
		(*at)++;
	for (; *at < m->nrows && db_int(m, *at, DM_TICKET) == id; (*at)++) {
		const char *b = DB_CELL(m, *at, DM_BODY);
		if (b == NULL || g->len >= FIELD_MAX)
			continue;
		size_t n = strlen(b);
		if (g->len + n + 1 > FIELD_MAX)
			n = FIELD_MAX - g->len - 1;
		g_string_append_c(g, '\n');
		g_string_append_len(g, b, (gssize)n);
	}
}

static void st_text(struct arena *a, struct stmt *s, const char *text, size_t n)
{
	char *f = search_fold(a, text, n, FIELD_MAX);
	st_str(s, "'");
	st_str(s, sx_escape(a, f, strlen(f)));
	st_str(s, "'");
}

static int st_flush(struct stmt *s)
{
	int rc = 0;

	if (s->rows && sx_query(s->buf, s->len) == -1)
		rc = -1;
	s->len = 0;
	s->rows = 0;
	return rc;
}

/* index_range: the documents of the tickets with ids lo..hi, REPLACEd
 * into the index; the ids of those that exist marked in found[id - lo]
 * when found is not NULL.  The number indexed, or -1 (database or
 * searchd; the caller retries). */
static int index_range(struct arena *a, long long lo, long long hi, unsigned char *found)
{
	struct db_rows t, m, no;
	static const char *const st_num[TS__MAX] = { [TS_OPEN] = "0", [TS_RESOLVED] = "1", [TS_CLOSED] = "2" };

	int one = lo == hi;
	if (db_query(a, &t, Q_DOC_T, DT__N, DB_ARGS(P_INT(lo), P_INT(hi))) < 0 ||
	    (one ? db_query(a, &m, Q_DOC_M1, DM__N, DB_ARGS(P_INT(lo)))
	         : db_query(a, &m, Q_DOC_M, DM__N, DB_ARGS(P_INT(lo), P_INT(hi)))) < 0 ||
	    (one ? db_query(a, &no, Q_DOC_N1, DM__N, DB_ARGS(P_INT(lo)))
	         : db_query(a, &no, Q_DOC_N, DM__N, DB_ARGS(P_INT(lo), P_INT(hi)))) < 0) {
		snprintf(sx_err, sizeof(sx_err), "database: %s", db_last_msg());
		return -1;
	}
	if (t.nrows == 0)
		return 0;
	if (sx_connect() == -1)
		return -1;
	struct stmt s = { 0 };
	size_t mi = 0, ni = 0;
	int rc = 0, done = 0;
	for (size_t i = 0; i < t.nrows && rc == 0; i++) {
		long long id = db_int(&t, i, DT_ID);
		enum ticket_status stv;
		if (ticket_status_parse(DB_CELL(&t, i, DT_STATUS), &stv) == -1)
			stv = TS_OPEN;
		if (found)
			found[id - lo] = 1;
		GString *body = g_string_new(DB_CELL(&t, i, DT_DESC) ? DB_CELL(&t, i, DT_DESC) : "");
		GString *notes = g_string_new("");
		gather(body, &m, &mi, id);
		gather(notes, &no, &ni, id);
		st_str(&s, s.rows ? ", (" : arena_printf(a, "REPLACE INTO %s (id, customer_id, agent_id, "
		    "status, activity, subject, body, notes, scope) VALUES (", sxconf->search_index));
		st_str(&s, arena_printf(a, "%lld, %lld, %lld, %s, %lld, ", id, db_int(&t, i, DT_CUSTOMER),
		    db_int(&t, i, DT_AGENT), st_num[stv], db_int(&t, i, DT_ACTIVITY)));
		const char *subj = DB_CELL(&t, i, DT_SUBJECT) ? DB_CELL(&t, i, DT_SUBJECT) : "";
		st_text(a, &s, subj, strlen(subj));
		st_str(&s, ", ");
		st_text(a, &s, body->str, body->len);
		st_str(&s, ", ");
		st_text(a, &s, notes->str, notes->len);
		const char *scope = search_scope_text(a, db_int(&t, i, DT_CUSTOMER), db_int(&t, i, DT_AGENT),
		    db_int(&t, i, DT_ACTIVITY));
		st_str(&s, ", '");
		st_str(&s, sx_escape(a, scope, strlen(scope)));
		st_str(&s, "')");
		s.rows++;
		done++;
		g_string_free(body, TRUE);
		g_string_free(notes, TRUE);
		if (s.len > STMT_FLUSH)
			rc = st_flush(&s);
	}
	if (rc == 0)
		rc = st_flush(&s);
	free(s.buf);
	return rc == 0 ? done : -1;
}

/* ---- the indexer -------------------------------------------------------- */

static const char Q_QUEUE[] =
    "SELECT ticket_id, seq FROM search_queue FORCE INDEX (search_queue_age) "
    "ORDER BY queued_at, ticket_id LIMIT 100";
enum { SQ_ID, SQ_SEQ, SQ__N };
static const char Q_DONE[] = "DELETE FROM search_queue WHERE ticket_id = ? AND seq = ?";

/* index_queued: rows q (ticket_id, seq) indexed one by one (a ticket
 * that is gone is deleted from the index), each queue row then deleted
 * when its seq is unchanged.  The rows done, or -1. */
static int index_queued(struct arena *a, const struct db_rows *q)
{
	int done = 0;

	for (size_t i = 0; i < q->nrows; i++) {
		long long id = db_int(q, i, SQ_ID);
		unsigned char found = 0;
		if (index_range(a, id, id, &found) < 0)
			return -1;
		if (!found) {
			const char *del = arena_printf(a, "DELETE FROM %s WHERE id = %lld", sxconf->search_index, id);
			if (sx_query(del, strlen(del)) == -1)
				return -1;
		}
		if (db_exec(Q_DONE, DB_ARGS(P_INT(id), P_INT(db_int(q, i, SQ_SEQ)))) < 0) {
			snprintf(sx_err, sizeof(sx_err), "database: %s", db_last_msg());
			return -1;
		}
		metrics_add(MET_SEARCH_INDEXED, 1);
		done++;
	}
	return done;
}

/* ---- compaction ---------------------------------------------------------- */

/* A real-time index grows a disk chunk each time its RAM chunk fills
 * (rt_mem_limit), and every search reads every chunk: at 1 M tickets a
 * rebuild left 6, and a rare word's query cost ~1 ms of searchd for
 * them all.  OPTIMIZE INDEX merges them into one, in searchd's
 * background, the index answering meanwhile. */
#define COMPACT_CHUNKS 4                  /* the indexer asks for a merge above this */
#define COMPACT_CHECK_MS (10 * 60 * 1000)  /* how often it looks */

/* The index's disk chunks, or -1. */
static long long sx_disk_chunks(struct arena *a)
{
	return sx_index_status(a, "disk_chunks");
}

/* sx_optimize: the RAM chunk written out as a disk chunk when flush,
 * then the disk chunks merged (searchd's background).  0 / -1. */
static int sx_optimize(struct arena *a, int flush)
{
	const char *fl = arena_printf(a, "FLUSH RAMCHUNK %s", sxconf->search_index);
	const char *opt = arena_printf(a, "OPTIMIZE INDEX %s", sxconf->search_index);
	if (flush && sx_query(fl, strlen(fl)) == -1)
		return -1;
	return sx_query(opt, strlen(opt));
}

/* search_main: the indexer's loop until SIGTERM: the queue polled every
 * [search] poll_interval ms (one indexed read when empty), its tickets
 * indexed.  A failure (searchd or the database away) is logged once and
 * retried each second; nothing is lost, the queue rows stay. */
int search_main(const struct conf *c)
{
	sigset_t waitmask;
	struct arena *a = arena_new(0);
	int failing = 0;

	child_signals(&waitmask);
	prctl(PR_SET_NAME, "ccrd-search");
	db_init(c);
	search_init(c);
	log_info("search indexer started (searchd %s:%d, index %s)", c->search_host, c->search_port,
	    c->search_index);
	double compact_at = clock_ms();      /* the first look: at the first idle moment */
	while (!child_stop) {
		struct db_rows q;
		int n;
		db_request_start();
		n = db_query(a, &q, Q_QUEUE, SQ__N, DB_NOARGS);
		if (n > 0)
			n = index_queued(a, &q);
		else if (n < 0)
			snprintf(sx_err, sizeof(sx_err), "database: %s", db_last_msg());
		if (n < 0) {
			if (!failing)
				log_err("search indexer: %s; retrying every second", sx_err);
			failing = 1;
			sx_close();
		} else if (failing && n > 0) {
			log_info("search indexer: indexing again");
			failing = 0;
		}
		/* when idle, now and then: too many disk chunks are merged */
		if (n == 0 && clock_ms() >= compact_at) {
			compact_at = clock_ms() + COMPACT_CHECK_MS;
			long long chunks = sx_disk_chunks(a);
			if (chunks > COMPACT_CHUNKS) {
				if (sx_optimize(a, 0) == 0)
					log_info("search indexer: %lld disk chunks, merging them (OPTIMIZE INDEX)", chunks);
				else
					log_err("search indexer: OPTIMIZE INDEX: %s", sx_err);
			}
		}
		/* less than a full batch: caught up, so wait before looking again —
		 * else a ticket written to all the time (a mail loop, the bench's
		 * POST row) is indexed again back to back, its 2000 messages read
		 * and folded each time; now at most once a poll_interval */
		if (n < POLL_BATCH)
			child_idle(c, n < 0 ? 1000 : c->search_poll_interval, &waitmask);
		arena_reset(a);
	}
	sx_close();
	db_close();
	arena_free(a);
	log_info("search indexer stopped");
	return 0;
}

/* ---- ccr-admin search-rebuild ------------------------------------------- */

static const char Q_MAXID[] = "SELECT IFNULL(MAX(id), 0) FROM tickets";
static const char Q_QUEUED[] =
    "SELECT ticket_id, seq FROM search_queue WHERE ticket_id BETWEEN ? AND ?";

/* search_rebuild: the index emptied, then every ticket indexed in id
 * ranges.  A range's queue rows are read before its tickets, and deleted
 * after (when their seq is unchanged): those changes are in what was
 * indexed; a change queued meanwhile keeps its row for the indexer.
 * Prints the counts and the time.  0 / -1. */
int search_rebuild(const struct conf *c)
{
	struct arena *a = arena_new(0);
	struct db_rows r;
	double t0 = clock_ms();
	long long total = 0, cleared = 0;
	int rc = -1;

	db_init(c);
	search_init(c);
	if (db_query(a, &r, Q_MAXID, 1, DB_NOARGS) != 1) {
		fprintf(stderr, "ccr-admin: search-rebuild: database: %s\n", db_last_msg());
		goto out;
	}
	long long max = db_int(&r, 0, 0);
	const char *trunc = arena_printf(a, "TRUNCATE RTINDEX %s", c->search_index);
	if (sx_query(trunc, strlen(trunc)) == -1) {
		fprintf(stderr, "ccr-admin: search-rebuild: searchd: %s\n", sx_err);
		goto out;
	}
	for (long long lo = 1; lo <= max; lo += REBUILD_BATCH) {
		long long hi = lo + REBUILD_BATCH - 1;
		struct db_rows q;
		arena_reset(a);
		db_request_start();
		int n;
		if (db_query(a, &q, Q_QUEUED, SQ__N, DB_ARGS(P_INT(lo), P_INT(hi))) < 0 ||
		    (n = index_range(a, lo, hi, NULL)) < 0) {
			fprintf(stderr, "ccr-admin: search-rebuild: tickets %lld-%lld: %s\n", lo, hi,
			    sx_err[0] ? sx_err : db_last_msg());
			goto out;
		}
		total += n;
		for (size_t i = 0; i < q.nrows; i++) {
			long long d = db_exec(Q_DONE, DB_ARGS(P_INT(db_int(&q, i, SQ_ID)), P_INT(db_int(&q, i, SQ_SEQ))));
			if (d > 0)
				cleared += d;
		}
	}
	printf("search-rebuild: %lld tickets indexed, %lld queued changes covered, %.1f s\n", total,
	    cleared, (clock_ms() - t0) / 1e3);
	fflush(stdout);
	/* one disk chunk: what every search reads (see compaction) */
	double t1 = clock_ms();
	long long chunks;
	if (sx_optimize(a, 1) == -1) {
		fprintf(stderr, "ccr-admin: search-rebuild: merging the index: %s\n", sx_err);
		goto out;
	}
	while ((chunks = sx_disk_chunks(a)) > 1 && clock_ms() - t1 < REBUILD_MERGE_MS)
		sleep(1);
	if (chunks < 0) {
		fprintf(stderr, "ccr-admin: search-rebuild: merging the index: %s\n", sx_err);
		goto out;
	}
	printf("search-rebuild: index merged into %lld disk chunk%s in %.1f s\n", chunks,
	    chunks == 1 ? "" : "s (searchd goes on merging)", (clock_ms() - t1) / 1e3);
	rc = 0;
out:
	sx_close();
	db_close();
	arena_free(a);
	return rc;
}

/*
 * db.c — a worker's one MariaDB connection, opened after fork, with
 * connect/read/write timeouts; prepared statements cached by SQL text and
 * re-prepared after a reconnect (a lost connection takes its prepared
 * statements with it).  Every value is a bound parameter, never SQL text
 * built from input, typed by the caller (struct db_param) and counted
 * against the statement's placeholders.  Results come back as strings in
 * the request arena; integer columns are parsed once, checked, on arrival.
 */
#include <errno.h>
#include <limits.h>
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

#define STMT_CACHE 96
#define MAX_PARAMS 24

static const struct conf *dbconf;
static MYSQL *conn;
static int in_tx;
static int gone_this_request;   /* a request meets a dead server once, not per statement */
static enum db_err last_err;
static char last_msg[256];
static struct {
	const char *sql;
	MYSQL_STMT *st;
} cache[STMT_CACHE];
static size_t ncache;

int db_init(const struct conf *c)
{
	dbconf = c;
	return 0;
}

/* db_request_start: forget the previous request's failure (route.c). */
void db_request_start(void)
{
	gone_this_request = 0;
}

enum db_err db_last_err(void)
{
	return last_err;
}

const char *db_last_msg(void)
{
	return last_msg;
}

/* db_status: the HTTP status a handler should answer after a failure. */
int db_status(void)
{
	return last_err == DB_GONE || last_err == DB_DEADLOCK ? 503 : 500;
}

/* db_fail: roll back the open transaction and return db_status(). */
int db_fail(void)
{
	int st = db_status();

	db_rollback();
	return st;
}

/* db_classify: what a client or server error number means to a caller. */
enum db_err db_classify(unsigned e)
{
	switch (e) {
	case CR_SERVER_GONE_ERROR:
	case CR_SERVER_LOST:
	case CR_CONNECTION_ERROR:
	case CR_CONN_HOST_ERROR:
	case CR_SERVER_LOST_EXTENDED:
	case CR_COMMANDS_OUT_OF_SYNC:
	case ER_CONNECTION_KILLED:
	case ER_SERVER_SHUTDOWN:
	case 4031: /* ER_CLIENT_INTERACTION_TIMEOUT */
	case ER_LOCK_WAIT_TIMEOUT:
	case ER_QUERY_INTERRUPTED:
	/* a Galera node that is joining (or cut off from the cluster's
	 * primary component) answers every statement with 1047 "WSREP has not
	 * yet prepared node for application use": down for now, not a bug */
	case ER_UNKNOWN_COM_ERROR:
		return DB_GONE;
	case ER_LOCK_DEADLOCK:
		return DB_DEADLOCK;
	case ER_DUP_ENTRY:
		return DB_DUP;
	case 1969:  /* ER_STATEMENT_TIMEOUT: max_statement_time */
	case 188:   /* InnoDB's way of saying the same inside FULLTEXT */
		return DB_SLOW;
	default:
		return DB_OTHER;
	}
}

static void note(const char *where, unsigned e, const char *msg)
{
	last_err = db_classify(e);
	snprintf(last_msg, sizeof(last_msg), "%s: %u %s", where, e, msg);
	if (last_err != DB_DUP)
		log_err("db: %s", last_msg);
}

void db_close(void)
{
	for (size_t i = 0; i < ncache; i++)
		mysql_stmt_close(cache[i].st);
	ncache = 0;
	if (conn)
		mysql_close(conn);
	conn = NULL;
	in_tx = 0;
}

/* db_connect: connect when not connected. 0, or -1 with last_err DB_GONE. */
int db_connect(void)
{
	unsigned ct, rt, wt;

	if (conn)
		return 0;
	conn = mysql_init(NULL);
	if (conn == NULL) {
		last_err = DB_OTHER;
		return -1;
	}
	ct = (unsigned)dbconf->db_connect_timeout;
	rt = (unsigned)dbconf->db_read_timeout;
	wt = (unsigned)dbconf->db_write_timeout;
	mysql_optionsv(conn, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
	mysql_optionsv(conn, MYSQL_OPT_READ_TIMEOUT, &rt);
	mysql_optionsv(conn, MYSQL_OPT_WRITE_TIMEOUT, &wt);
	mysql_optionsv(conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	/* times are UTC; READ COMMITTED keeps claims and counters simple */
	mysql_optionsv(conn, MYSQL_INIT_COMMAND,
	    "SET time_zone = '+00:00', SESSION tx_isolation = 'READ-COMMITTED'");
	/* Galera: a read on any node sees the writes committed before it
	 * (a redirect after POST may land on another node) */
	if (dbconf->db_galera_sync_wait)
		mysql_optionsv(conn, MYSQL_INIT_COMMAND, "SET SESSION wsrep_sync_wait = 1");
	if (!mysql_real_connect(conn, dbconf->db_socket[0] ? NULL : dbconf->db_host,
	        dbconf->db_user, dbconf->db_password, dbconf->db_name,
	        (unsigned)dbconf->db_port, dbconf->db_socket[0] ? dbconf->db_socket : NULL, 0)) {
		note("connect", mysql_errno(conn), mysql_error(conn));
		last_err = DB_GONE;
		mysql_close(conn);
		conn = NULL;
		return -1;
	}
	return 0;
}

int db_ping(void)
{
	if (gone_this_request || db_connect() == -1) {
		gone_this_request = 1;
		return -1;
	}
	double t0 = clock_ms();
	if (mysql_ping(conn) != 0) {
		note("ping", mysql_errno(conn), mysql_error(conn));
		db_close();
		if (clock_ms() - t0 > 1000.0 || db_connect() == -1 || mysql_ping(conn) != 0) {
			last_err = DB_GONE;
			gone_this_request = 1;
			db_close();
			return -1;
		}
	}
	return 0;
}

static MYSQL_STMT *prepare(const char *sql)
{
	MYSQL_STMT *st;
	size_t i;

	for (i = 0; i < ncache; i++)
		if (cache[i].sql == sql)
			return cache[i].st;
	st = mysql_stmt_init(conn);
	if (st == NULL) {
		last_err = DB_OTHER;
		return NULL;
	}
	if (mysql_stmt_prepare(st, sql, strlen(sql)) != 0) {
		note("prepare", mysql_stmt_errno(st), mysql_stmt_error(st));
		mysql_stmt_close(st);
		return NULL;
	}
	if (ncache == STMT_CACHE) {
		/* full: drop the oldest; callers pass static SQL, so this is rare */
		mysql_stmt_close(cache[0].st);
		memmove(cache, cache + 1, sizeof(cache[0]) * (STMT_CACHE - 1));
		ncache--;
	}
	cache[ncache].sql = sql;
	cache[ncache].st = st;
	ncache++;
	return st;
}

struct params {
	MYSQL_BIND b[MAX_PARAMS];
	long long ints[MAX_PARAMS];
	unsigned long lens[MAX_PARAMS];
	size_t n;
};

static int bind_params(struct params *p, const struct db_param *v, size_t n)
{
	memset(p->b, 0, sizeof(p->b));
	if (n > MAX_PARAMS)
		return -1;
	for (p->n = 0; p->n < n; p->n++) {
		size_t i = p->n;
		switch (v[i].type) {
		case DB_T_STR:
		case DB_T_BLOB:
			p->lens[i] = v[i].type == DB_T_BLOB ? v[i].len : strlen(v[i].s);
			p->b[i].buffer_type = MYSQL_TYPE_STRING;
			p->b[i].buffer = (void *)(uintptr_t)v[i].s;
			p->b[i].buffer_length = p->lens[i];
			p->b[i].length = &p->lens[i];
			break;
		case DB_T_INT:
			p->ints[i] = v[i].i;
			p->b[i].buffer_type = MYSQL_TYPE_LONGLONG;
			p->b[i].buffer = &p->ints[i];
			break;
		case DB_T_NULL:
			p->b[i].buffer_type = MYSQL_TYPE_NULL;
			break;
		default:
			return -1;
		}
	}
	return 0;
}

/* Run one statement; on a stale connection outside a transaction, reconnect
 * and try once more (reads and single writes are safe to replay: the first
 * attempt never reached the server).  Returns the statement or NULL. */
static MYSQL_STMT *run(const char *sql, const struct db_param *v, size_t n)
{
	struct params p;
	MYSQL_STMT *st;
	int attempt;

	if (bind_params(&p, v, n) == -1) {
		log_err("db: more than %d parameters for: %.60s", MAX_PARAMS, sql);
		last_err = DB_OTHER;
		return NULL;
	}
	if (gone_this_request) {
		last_err = DB_GONE;
		return NULL;
	}
	for (attempt = 0; attempt < 2; attempt++) {
		double t0 = clock_ms();
		if (db_connect() == -1) {
			gone_this_request = 1;
			return NULL;
		}
		st = prepare(sql);
		if (st && mysql_stmt_param_count(st) != p.n) {
			log_err("db: %zu parameters given, %lu wanted by: %.60s", p.n,
			    mysql_stmt_param_count(st), sql);
			last_err = DB_OTHER;
			return NULL;
		}
		if (st && (p.n == 0 || mysql_stmt_bind_param(st, p.b) == 0) && mysql_stmt_execute(st) == 0)
			return st;
		if (st)
			note("execute", mysql_stmt_errno(st), mysql_stmt_error(st));
		else if (mysql_errno(conn))
			note("prepare", mysql_errno(conn), mysql_error(conn));
		if (last_err != DB_GONE)
			return NULL;
		int was_tx = in_tx;
		db_close();
		/* a stale connection fails at once and deserves one fresh try; a
		 * server that made us wait for a timeout does not */
		if (was_tx || clock_ms() - t0 > 1000.0) {
			gone_this_request = 1;
			return NULL;
		}
	}
	gone_this_request = 1;
	return NULL;
}

long long db_exec(const char *sql, const struct db_param *v, size_t n)
{
	MYSQL_STMT *st;

	last_err = DB_OK;
	st = run(sql, v, n);
	if (st == NULL)
		return -1;
	return (long long)mysql_stmt_affected_rows(st);
}

long long db_insert_id(void)
{
	return conn ? (long long)mysql_insert_id(conn) : 0;
}

/* An integer column: the integer types, and a DECIMAL of scale 0 (what
 * the server makes of IFNULL(bigint_unsigned, 0) and the like). */
static int is_int_type(const MYSQL_FIELD *f)
{
	switch (f->type) {
	case MYSQL_TYPE_DECIMAL:
	case MYSQL_TYPE_NEWDECIMAL:
		return f->decimals == 0;
	case MYSQL_TYPE_TINY:
	case MYSQL_TYPE_SHORT:
	case MYSQL_TYPE_INT24:
	case MYSQL_TYPE_LONG:
	case MYSQL_TYPE_LONGLONG:
	case MYSQL_TYPE_YEAR:
		return 1;
	default:
		return 0;
	}
}

/* A decimal integer as the server sends it, fully read and in range. */
static int parse_int(const char *s, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return end != s && *end == '\0' && errno == 0 ? 0 : -1;
}

/* db_int: the value of an integer column (0 for SQL NULL).  Reading a
 * column that is not of an integer type is a bug: logged, and 0. */
long long db_int(const struct db_rows *r, size_t row, size_t col)
{
	if (row >= r->nrows || col >= r->ncols || !r->is_int[col]) {
		log_err("db: cell %zu,%zu is not an integer column of: %.60s", row, col,
		    r->sql ? r->sql : "?");
		return 0;
	}
	return r->num[row * r->ncols + col];
}

/* db_query: all rows as arena strings, integer columns also as numbers;
 * the result must have exactly ncols columns.  Returns the row count, or -1. */
int db_query(struct arena *a, struct db_rows *out, const char *sql, size_t want_cols,
             const struct db_param *v, size_t n)
{
	MYSQL_STMT *st;
	MYSQL_RES *meta;
	MYSQL_BIND *rb;
	unsigned long *lens;
	my_bool *nulls;
	size_t ncols, cap = 0, i;
	my_bool on = 1;
	int rc;

	memset(out, 0, sizeof(*out));
	out->sql = sql;
	last_err = DB_OK;
	st = run(sql, v, n);
	if (st == NULL)
		return -1;
	mysql_stmt_attr_set(st, STMT_ATTR_UPDATE_MAX_LENGTH, &on);
	if (mysql_stmt_store_result(st) != 0) {
		note("store", mysql_stmt_errno(st), mysql_stmt_error(st));
		if (last_err == DB_GONE)
			db_close();
		return -1;
	}
	meta = mysql_stmt_result_metadata(st);
	if (meta == NULL) {
		mysql_stmt_free_result(st);
		return 0;
	}
	ncols = mysql_num_fields(meta);
	if (ncols != want_cols) {
		log_err("db: %zu columns, %zu named, for: %.60s", ncols, want_cols, sql);
		mysql_free_result(meta);
		mysql_stmt_free_result(st);
		last_err = DB_OTHER;
		return -1;
	}
	MYSQL_FIELD *fields = mysql_fetch_fields(meta);
	out->is_int = arena_alloc(a, ncols);
	rb = arena_alloc(a, ncols * sizeof(*rb));
	lens = arena_alloc(a, ncols * sizeof(*lens));
	nulls = arena_alloc(a, ncols * sizeof(*nulls));
	for (i = 0; i < ncols; i++) {
		/* max_length is exact after store_result: no truncation possible */
		size_t len = fields[i].max_length + 1;
		if (len < 32)
			len = 32;
		rb[i].buffer_type = MYSQL_TYPE_STRING;
		rb[i].buffer = arena_alloc(a, len);
		rb[i].buffer_length = len;
		rb[i].length = &lens[i];
		rb[i].is_null = &nulls[i];
		out->is_int[i] = (unsigned char)is_int_type(&fields[i]);
	}
	mysql_free_result(meta);
	out->ncols = ncols;
	if (mysql_stmt_bind_result(st, rb) != 0) {
		note("bind_result", mysql_stmt_errno(st), mysql_stmt_error(st));
		mysql_stmt_free_result(st);
		return -1;
	}
	while ((rc = mysql_stmt_fetch(st)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
		if (rc == MYSQL_DATA_TRUNCATED) {
			log_err("db: truncated result for: %.60s", sql);
			mysql_stmt_free_result(st);
			last_err = DB_OTHER;
			return -1;
		}
		if (out->nrows == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			char **nc = arena_alloc(a, ncap * ncols * sizeof(*nc));
			long long *nn = arena_alloc(a, ncap * ncols * sizeof(*nn));
			size_t *nl = arena_alloc(a, ncap * ncols * sizeof(*nl));
			if (out->cell) {
				memcpy(nc, out->cell, out->nrows * ncols * sizeof(*nc));
				memcpy(nn, out->num, out->nrows * ncols * sizeof(*nn));
				memcpy(nl, out->len, out->nrows * ncols * sizeof(*nl));
			}
			out->cell = nc;
			out->num = nn;
			out->len = nl;
			cap = ncap;
		}
		for (i = 0; i < ncols; i++) {
			size_t k = out->nrows * ncols + i;
			out->cell[k] = nulls[i] ? NULL : arena_strndup(a, rb[i].buffer, lens[i]);
			out->len[k] = nulls[i] ? 0 : lens[i];
			out->num[k] = 0;
			if (out->cell[k] && out->is_int[i] && parse_int(out->cell[k], &out->num[k]) == -1) {
				/* an UNSIGNED BIGINT past the signed range: refuse, never wrap */
				log_err("db: integer out of range in column %zu of: %.60s", i, sql);
				mysql_stmt_free_result(st);
				last_err = DB_OTHER;
				return -1;
			}
		}
		out->nrows++;
	}
	if (rc != MYSQL_NO_DATA) {
		note("fetch", mysql_stmt_errno(st), mysql_stmt_error(st));
		mysql_stmt_free_result(st);
		return -1;
	}
	mysql_stmt_free_result(st);
	return (int)out->nrows;
}

/* db_stream: a SELECT of two columns, an integer and a binary value of at
 * most cap bytes, read row by row as the server sends it (not stored):
 * each row's bytes land in buf and fn(arg, number, buf, len) is called; a
 * non-zero fn stops the reading (the rest is discarded).  For files, which
 * must never be held whole: no arena copy, one buffer.  Returns the rows
 * passed to fn, or -1 (a value over cap is an error). */
int db_stream(const char *sql, const struct db_param *v, size_t n, void *buf, size_t cap,
              int (*fn)(void *, long long, const void *, size_t), void *arg)
{
	MYSQL_STMT *st;
	MYSQL_BIND rb[2];
	long long num = 0;
	unsigned long lens[2] = { 0, 0 };
	my_bool nulls[2] = { 0, 0 };
	int rc, rows = 0;

	last_err = DB_OK;
	st = run(sql, v, n);
	if (st == NULL)
		return -1;
	if (mysql_stmt_field_count(st) != 2) {
		log_err("db: db_stream wants 2 columns: %.60s", sql);
		mysql_stmt_free_result(st);
		last_err = DB_OTHER;
		return -1;
	}
	memset(rb, 0, sizeof(rb));
	rb[0].buffer_type = MYSQL_TYPE_LONGLONG;
	rb[0].buffer = &num;
	rb[0].is_null = &nulls[0];
	rb[0].length = &lens[0];
	rb[1].buffer_type = MYSQL_TYPE_BLOB;
	rb[1].buffer = buf;
	rb[1].buffer_length = cap;
	rb[1].is_null = &nulls[1];
	rb[1].length = &lens[1];
	if (mysql_stmt_bind_result(st, rb) != 0) {
		note("bind_result", mysql_stmt_errno(st), mysql_stmt_error(st));
		mysql_stmt_free_result(st);
		return -1;
	}
	while ((rc = mysql_stmt_fetch(st)) == 0) {
		rows++;
		if (fn(arg, num, buf, nulls[1] ? 0 : lens[1]) != 0) {
			mysql_stmt_free_result(st);
			return rows;
		}
	}
	if (rc != MYSQL_NO_DATA) {
		if (rc == MYSQL_DATA_TRUNCATED) {
			log_err("db: a value over %zu bytes for: %.60s", cap, sql);
			last_err = DB_OTHER;
		} else
			note("fetch", mysql_stmt_errno(st), mysql_stmt_error(st));
		mysql_stmt_free_result(st);
		if (last_err == DB_GONE)
			db_close();
		return -1;
	}
	mysql_stmt_free_result(st);
	return rows;
}

/* A transaction is START TRANSACTION … COMMIT (or ROLLBACK) with the
 * session left in autocommit: one statement to open it and one to end it,
 * never a SET autocommit before and after.  A db_begin inside an open
 * transaction joins it (START TRANSACTION would commit it). */
static const char Q_START[] = "START TRANSACTION";

static int start(void)
{
	return mysql_real_query(conn, Q_START, sizeof(Q_START) - 1);
}

int db_begin(void)
{
	last_err = DB_OK;
	if (gone_this_request) {
		last_err = DB_GONE;
		return -1;
	}
	if (db_connect() == -1) {
		gone_this_request = 1;
		return -1;
	}
	if (in_tx)
		return 0;
	double t0 = clock_ms();
	if (start() != 0) {
		note("begin", mysql_errno(conn), mysql_error(conn));
		db_close();
		/* a stale connection fails at once and gets one fresh try (nothing
		 * has run yet); a server that made us wait for read_timeout does
		 * not: a frozen server cost a POST read_timeout + connect_timeout
		 * (8 s) where every answer must come within read_timeout + 1 s */
		if (clock_ms() - t0 > 1000.0 || db_connect() == -1 || start() != 0) {
			last_err = DB_GONE;
			gone_this_request = 1;
			db_close();
			return -1;
		}
	}
	in_tx = 1;
	return 0;
}

int db_commit(void)
{
	int rc = 0;

	if (conn == NULL)
		return -1;
	if (mysql_commit(conn) != 0) {
		note("commit", mysql_errno(conn), mysql_error(conn));
		/* a connection that cannot roll back is closed: the server ends
		 * the transaction with it */
		if (mysql_rollback(conn) != 0)
			db_close();
		rc = -1;
	}
	in_tx = 0;
	return rc;
}

void db_rollback(void)
{
	if (conn == NULL)
		return;
	if (mysql_rollback(conn) != 0)
		db_close();
	in_tx = 0;
}

void *db_handle(void)
{
	return conn;
}

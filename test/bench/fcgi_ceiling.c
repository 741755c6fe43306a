/*
 * fcgi_ceiling.c — the two FastCGI ceilings of `make bench` (not part of
 * ccrd).  A minimal pre-forked libfcgi responder, shaped like ccrd's
 * workers (N processes sharing one listening socket, one request at a time,
 * no upstream keep-alive), in one of two modes:
 *
 *   fcgi-ceiling 8k   SOCKET WORKERS
 *       (B) answers every request with 8192 bytes of HTML;
 *   fcgi-ceiling join SOCKET WORKERS DB_SOCKET DB_USER DB_PASSWORD DB_NAME AGENT_ID
 *       (C) runs one prepared, indexed 25-row join (the core of an agent's
 *       ticket list: tickets by agent, newest activity first, with customer
 *       and agent names) and answers the rows as escaped HTML.
 *
 * SIGTERM to the parent stops everything (the workers die with it).
 */
#include <errno.h>
#include <fcgiapp.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char Q_JOIN[] =
    "SELECT STRAIGHT_JOIN t.id, t.subject, t.status, t.priority, UNIX_TIMESTAMP(t.created_at), "
    "UNIX_TIMESTAMP(t.last_activity), CONCAT(c.first_name, ' ', c.last_name), "
    "CONCAT(a.first_name, ' ', a.last_name) "
    "FROM tickets t FORCE INDEX (tickets_agent) JOIN users c ON c.id = t.customer_id "
    "LEFT JOIN users a ON a.id = t.agent_id "
    "WHERE t.agent_id = ? ORDER BY t.last_activity DESC, t.id DESC LIMIT 25";

#define NCOL 8
#define COLSZ 1024

static char page8k[8192];

static void die(const char *what)
{
	fprintf(stderr, "fcgi-ceiling: %s\n", what);
	exit(1);
}

static void html_escape(FCGX_Stream *out, const char *s, unsigned long n)
{
	unsigned long start = 0;

	for (unsigned long i = 0; i < n; i++) {
		const char *rep = NULL;
		switch (s[i]) {
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '&': rep = "&amp;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default: continue;
		}
		FCGX_PutStr(s + start, (int)(i - start), out);
		FCGX_PutS(rep, out);
		start = i + 1;
	}
	FCGX_PutStr(s + start, (int)(n - start), out);
}

struct db {
	MYSQL *conn;
	MYSQL_STMT *st;
	MYSQL_BIND param, res[NCOL];
	long long agent_id;
	char cell[NCOL][COLSZ];
	unsigned long len[NCOL];
	my_bool null[NCOL];
};

static void db_open(struct db *d, char **argv)
{
	unsigned timeout = 5;

	d->conn = mysql_init(NULL);
	mysql_optionsv(d->conn, MYSQL_OPT_READ_TIMEOUT, &timeout);
	mysql_optionsv(d->conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	if (!mysql_real_connect(d->conn, NULL, argv[1], argv[2], argv[3], 0, argv[0], 0))
		die(mysql_error(d->conn));
	d->st = mysql_stmt_init(d->conn);
	if (mysql_stmt_prepare(d->st, Q_JOIN, sizeof(Q_JOIN) - 1) != 0)
		die(mysql_stmt_error(d->st));
	d->agent_id = atoll(argv[4]);
	memset(&d->param, 0, sizeof(d->param));
	d->param.buffer_type = MYSQL_TYPE_LONGLONG;
	d->param.buffer = &d->agent_id;
	if (mysql_stmt_bind_param(d->st, &d->param) != 0)
		die(mysql_stmt_error(d->st));
	memset(d->res, 0, sizeof(d->res));
	for (int i = 0; i < NCOL; i++) {
		d->res[i].buffer_type = MYSQL_TYPE_STRING;
		d->res[i].buffer = d->cell[i];
		d->res[i].buffer_length = COLSZ;
		d->res[i].length = &d->len[i];
		d->res[i].is_null = &d->null[i];
	}
}

/* One request of mode join: execute, fetch, write the rows.  0 / -1. */
static int join_page(struct db *d, FCGX_Stream *out)
{
	int rc, rows = 0;

	if (mysql_stmt_execute(d->st) != 0 || mysql_stmt_bind_result(d->st, d->res) != 0 ||
	    mysql_stmt_store_result(d->st) != 0)
		return -1;
	FCGX_PutS("Content-Type: text/html; charset=utf-8\r\n\r\n"
	    "<!doctype html><title>join</title><table>\n", out);
	while ((rc = mysql_stmt_fetch(d->st)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
		FCGX_PutS("<tr>", out);
		for (int i = 0; i < NCOL; i++) {
			unsigned long n = d->len[i] < COLSZ ? d->len[i] : COLSZ;
			FCGX_PutS("<td>", out);
			if (!d->null[i])
				html_escape(out, d->cell[i], n);
			FCGX_PutS("</td>", out);
		}
		FCGX_PutS("</tr>\n", out);
		rows++;
	}
	mysql_stmt_free_result(d->st);
	FCGX_FPrintF(out, "</table><p>%d rows</p>\n", rows);
	return 0;
}

static int serve(int lfd, int join, char **dbargv)
{
	FCGX_Request req;
	struct db d;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGTERM, SIG_DFL);
	if (join)
		db_open(&d, dbargv);
	if (FCGX_InitRequest(&req, lfd, 0) != 0)
		die("FCGX_InitRequest");
	while (FCGX_Accept_r(&req) >= 0) {
		if (join) {
			if (join_page(&d, req.out) != 0) {
				FCGX_FPrintF(req.out, "Status: 500\r\nContent-Type: text/plain\r\n\r\n%s\n",
				    mysql_stmt_error(d.st));
			}
		} else {
			FCGX_PutS("Content-Type: text/html; charset=utf-8\r\n\r\n", req.out);
			FCGX_PutStr(page8k, sizeof(page8k), req.out);
		}
		FCGX_Finish_r(&req);
	}
	return 0;
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	int join, nworkers, lfd;

	if (argc < 4)
		die("usage: fcgi-ceiling 8k|join SOCKET WORKERS [DB_SOCKET USER PASSWORD NAME AGENT_ID]");
	join = strcmp(argv[1], "join") == 0;
	if (!join && strcmp(argv[1], "8k") != 0)
		die("mode is 8k or join");
	if (join && argc != 9)
		die("join needs DB_SOCKET USER PASSWORD NAME AGENT_ID");
	nworkers = atoi(argv[3]);
	if (nworkers <= 0)
		nworkers = 2 * (int)sysconf(_SC_NPROCESSORS_ONLN);
	/* 8 KiB of plain HTML text, lines of 64 bytes */
	for (size_t i = 0; i < sizeof(page8k); i++)
		page8k[i] = (i % 64 == 63) ? '\n' : (char)('a' + (i % 26));
	if (FCGX_Init() != 0)
		die("FCGX_Init");
	umask(0);
	lfd = FCGX_OpenSocket(argv[2], 128);
	if (lfd < 0)
		die("FCGX_OpenSocket");
	chmod(argv[2], 0666);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (int i = 0; i < nworkers; i++) {
		pid_t p = fork();
		if (p == 0)
			return serve(lfd, join, argv + 4);
		if (p < 0)
			die("fork");
	}
	fprintf(stderr, "fcgi-ceiling: %s on %s with %d workers\n", argv[1], argv[2], nworkers);
	while (!stop) {
		int status;
		pid_t p = wait(&status);
		if (p < 0 && errno == ECHILD)
			break;
		if (p > 0 && !stop) {
			fprintf(stderr, "fcgi-ceiling: worker %d died (status %d)\n", (int)p, status);
			kill(0, SIGTERM);
			return 1;
		}
	}
	signal(SIGTERM, SIG_IGN);
	kill(0, SIGTERM);   /* our process group: the launcher starts us in our own session */
	while (wait(NULL) > 0)
		;
	unlink(argv[2]);
	return 0;
}

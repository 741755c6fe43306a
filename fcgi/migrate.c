/*
 * migrate.c — numbered, forward-only migrations from schema_dir
 * ("NNN-name.sql"), applied in order, each recorded in schema_migrations.
 * Idempotent: applied versions are skipped.  A lock row keeps two
 * concurrent runs (two hosts starting at once) from racing, on one server
 * and across Galera nodes alike (README "Scaling out"): GET_LOCK is local
 * to one Galera node, but two nodes' writes of one row conflict — the
 * second INSERT of the row is a duplicate key, or fails certification
 * (1213) when both ran at once — so exactly one run holds it.  The others
 * wait for its DELETE, then find nothing left to do.  The row carries a
 * lease, renewed before each file, so a run that died with it (kill -9, its
 * node gone) does not block the next for ever; one dead on this host (its
 * pid gone) is taken over at once.
 * Migration files are trusted, parameter-free DDL shipped with the
 * program; the server splits each into its statements (multi-statement
 * mode, on only while a file runs), comments and all.
 */
#include <dirent.h>
#include <errno.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

static const char Q_TABLE[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version VARCHAR(64) NOT NULL PRIMARY KEY,"
    " applied_at DATETIME NOT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
static const char Q_LOCK_TABLE[] =
    "CREATE TABLE IF NOT EXISTS schema_migrate_lock ("
    " name VARCHAR(16) CHARACTER SET ascii NOT NULL PRIMARY KEY,"
    " holder VARCHAR(200) NOT NULL,"
    " lease_until DATETIME NOT NULL,"
    " renewals INT UNSIGNED NOT NULL DEFAULT 0"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
static const char Q_LOCK_NEW[] =
    "INSERT INTO schema_migrate_lock (name, holder, lease_until) "
    "VALUES ('migrate', ?, NOW() + INTERVAL ? SECOND)";
static const char Q_LOCK_GET[] =
    "SELECT holder, lease_until < NOW(), CAST(lease_until AS CHAR) "
    "FROM schema_migrate_lock WHERE name = 'migrate'";
enum { LK_HOLDER, LK_EXPIRED, LK_UNTIL, LK__N };
/* a takeover names the holder it saw: of two at once, one wins; a renewal
 * counts, so it changes the row (affected rows) even within one second */
static const char Q_LOCK_TAKE[] =
    "UPDATE schema_migrate_lock SET holder = ?, lease_until = NOW() + INTERVAL ? SECOND "
    "WHERE name = 'migrate' AND holder = ?";
static const char Q_LOCK_RENEW[] =
    "UPDATE schema_migrate_lock SET lease_until = NOW() + INTERVAL ? SECOND, "
    "renewals = renewals + 1 WHERE name = 'migrate' AND holder = ?";
static const char Q_LOCK_DROP[] =
    "DELETE FROM schema_migrate_lock WHERE name = 'migrate' AND holder = ?";
#define LOCK_LEASE 600          /* seconds; renewed before each file */
#define LOCK_WAIT 120           /* seconds a second run waits for the first */
#define LOCK_POLL_MS 200

static char holder[200];        /* host:pid */
static const char Q_DONE[] = "SELECT 1 FROM schema_migrations WHERE version = ?";
static const char Q_RECORD[] = "INSERT INTO schema_migrations (version, applied_at) VALUES (?, NOW())";

static int is_migration(const struct dirent *d)
{
	const char *n = d->d_name;
	size_t len = strlen(n);

	return len > 8 && n[0] >= '0' && n[0] <= '9' && n[1] >= '0' && n[1] <= '9' &&
	       n[2] >= '0' && n[2] <= '9' && n[3] == '-' && strcmp(n + len - 4, ".sql") == 0 &&
	       len < 64;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > 4 * 1024 * 1024 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = '\0';
	fclose(f);
	return buf;
}

/* run_file: the file's statements as one multi-statement query, every
 * result read in turn (mysql_next_result), so an error in any statement —
 * not only the first — stops the file.  0 / -1 (logged with the file name
 * and the statement's number). */
static int run_file(MYSQL *m, const char *name, const char *sql)
{
	int n = 1, rc = -1;

	if (mysql_set_server_option(m, MYSQL_OPTION_MULTI_STATEMENTS_ON) != 0) {
		fprintf(stderr, "ccr-admin: %s: %s\n", name, mysql_error(m));
		return -1;
	}
	if (mysql_real_query(m, sql, strlen(sql)) != 0)
		goto out;                       /* the first statement failed */
	for (;;) {
		MYSQL_RES *res = mysql_store_result(m);
		if (res)
			mysql_free_result(res);
		else if (mysql_field_count(m) != 0)
			goto out;               /* a result set that could not be read */
		/* 0: the next statement ran, -1: no more, >0: it failed */
		int more = mysql_next_result(m);
		if (more == -1)
			break;
		n++;
		if (more > 0)
			goto out;
	}
	rc = 0;
out:
	if (rc == -1)
		fprintf(stderr, "ccr-admin: %s: statement %d: %s\n", name, n, mysql_error(m));
	if (mysql_set_server_option(m, MYSQL_OPTION_MULTI_STATEMENTS_OFF) != 0 && rc == 0) {
		fprintf(stderr, "ccr-admin: %s: %s\n", name, mysql_error(m));
		rc = -1;
	}
	return rc;
}

/* A holder on this host whose process is gone. */
static int holder_dead(const char *by)
{
	char host[128];
	char *end;

	if (by == NULL || gethostname(host, sizeof(host)) != 0)
		return 0;
	host[sizeof(host) - 1] = '\0';
	size_t hl = strlen(host);
	if (strncmp(by, host, hl) != 0 || by[hl] != ':')
		return 0;
	long pid = strtol(by + hl + 1, &end, 10);
	if (*end != '\0' || pid <= 1)
		return 0;
	return kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* lock_take: hold the migration lock row, waiting up to LOCK_WAIT seconds
 * for another run to finish.  0, or -1 (reason on stderr). */
static int lock_take(struct arena *a)
{
	struct db_rows r;
	int said = 0;
	time_t until = time(NULL) + LOCK_WAIT;

	for (;;) {
		if (db_exec(Q_LOCK_NEW, DB_ARGS(P_STR(holder), P_INT(LOCK_LEASE))) == 1)
			return 0;
		if (db_last_err() != DB_DUP && db_last_err() != DB_DEADLOCK) {
			fprintf(stderr, "ccr-admin: the migration lock: %s\n", db_last_msg());
			return -1;
		}
		/* held (a duplicate), or another run inserted it at the same
		 * moment on another Galera node (1213): see who holds it */
		int n = db_query(a, &r, Q_LOCK_GET, LK__N, DB_NOARGS);
		if (n < 0) {
			fprintf(stderr, "ccr-admin: the migration lock: %s\n", db_last_msg());
			return -1;
		}
		if (n == 1) {
			const char *by = DB_CELL(&r, 0, LK_HOLDER);
			if (db_int(&r, 0, LK_EXPIRED) || holder_dead(by)) {
				long long k = db_exec(Q_LOCK_TAKE, DB_ARGS(P_STR(holder), P_INT(LOCK_LEASE),
				    P_STR(by ? by : "")));
				if (k == 1) {
					fprintf(stderr, "ccr-admin: took over the migration lock of %s "
					    "(gone, or its lease ran out)\n", by ? by : "?");
					return 0;
				}
				if (k < 0 && db_last_err() != DB_DEADLOCK) {
					fprintf(stderr, "ccr-admin: the migration lock: %s\n", db_last_msg());
					return -1;
				}
			} else if (!said) {
				fprintf(stderr, "ccr-admin: waiting for the migration run by %s\n",
				    by ? by : "?");
				said = 1;
			}
		}
		if (time(NULL) >= until) {
			fprintf(stderr, "ccr-admin: another migration holds the lock (%s, lease until %s "
			    "UTC); try again when it is done\n", n == 1 && DB_CELL(&r, 0, LK_HOLDER)
			    ? DB_CELL(&r, 0, LK_HOLDER) : "?", n == 1 && DB_CELL(&r, 0, LK_UNTIL)
			    ? DB_CELL(&r, 0, LK_UNTIL) : "?");
			return -1;
		}
		pause_ms(LOCK_POLL_MS + rand() % LOCK_POLL_MS);
	}
}

/* lock_renew: the lease from now on, before each file; -1 when the row is
 * no longer ours (taken over after the lease ran out). */
static int lock_renew(void)
{
	for (int k = 0; k < 5; k++) {
		long long n = db_exec(Q_LOCK_RENEW, DB_ARGS(P_INT(LOCK_LEASE), P_STR(holder)));
		if (n == 1)
			return 0;
		if (n == 0 || db_last_err() != DB_DEADLOCK)
			break;
		pause_ms(50);
	}
	fprintf(stderr, "ccr-admin: lost the migration lock: %s\n", db_last_msg());
	return -1;
}

static void lock_drop(void)
{
	for (int k = 0; k < 5; k++) {
		if (db_exec(Q_LOCK_DROP, DB_ARGS(P_STR(holder))) >= 0)
			return;
		if (db_last_err() != DB_DEADLOCK)
			break;
		pause_ms(50);
	}
	fprintf(stderr, "ccr-admin: the migration lock stays until its lease ends: %s\n",
	    db_last_msg());
}

/* migrate_run: apply pending migrations.  0, or -1 (reason on stderr). */
int migrate_run(const struct conf *c, int verbose)
{
	struct dirent **list = NULL;
	struct arena *a = arena_new(0);
	struct db_rows rows;
	int n, rc = 0, applied = 0, locked = 0;
	MYSQL *m;

	db_init(c);
	if (db_connect() == -1) {
		fprintf(stderr, "ccr-admin: cannot connect to the database: %s\n", db_last_msg());
		arena_free(a);
		return -1;
	}
	m = db_handle();
	/* both idempotent (and on Galera ordered cluster-wide, as all DDL) */
	if (mysql_real_query(m, Q_LOCK_TABLE, sizeof(Q_LOCK_TABLE) - 1) != 0 ||
	    mysql_real_query(m, Q_TABLE, sizeof(Q_TABLE) - 1) != 0) {
		fprintf(stderr, "ccr-admin: schema_migrations: %s\n", mysql_error(m));
		arena_free(a);
		return -1;
	}
	{
		char host[128];
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(holder, sizeof(holder), "%s:%d", host, (int)getpid());
	}
	n = scandir(c->schema_dir, &list, is_migration, alphasort);
	if (n < 0) {
		fprintf(stderr, "ccr-admin: %s: %s\n", c->schema_dir, strerror(errno));
		arena_free(a);
		return -1;
	}
	/* nothing pending (every start of every host): no lock needed, so a
	 * lock left by a run that died does not hold up a host's start */
	int pending = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		char version[64];
		snprintf(version, sizeof(version), "%.*s", (int)strlen(list[i]->d_name) - 4, list[i]->d_name);
		int done = db_query(a, &rows, Q_DONE, 1, DB_ARGS(P_STR(version)));
		if (done < 0)
			rc = -1;
		else if (done == 0)
			pending++;
	}
	if (rc == -1 || pending == 0)
		goto listed;
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	if (lock_take(a) == -1) {
		rc = -1;
		goto listed;
	}
	locked = 1;
	for (int i = 0; i < n && rc == 0; i++) {
		char version[64], path[PATH_MAX + 300];
		snprintf(version, sizeof(version), "%.*s", (int)strlen(list[i]->d_name) - 4, list[i]->d_name);
		int done = db_query(a, &rows, Q_DONE, 1, DB_ARGS(P_STR(version)));
		if (done < 0) {
			rc = -1;
			break;
		}
		if (done > 0)
			continue;
		if (lock_renew() == -1) {
			rc = -1;
			break;
		}
		snprintf(path, sizeof(path), "%s/%s", c->schema_dir, list[i]->d_name);
		char *sql = slurp(path);
		if (sql == NULL) {
			fprintf(stderr, "ccr-admin: cannot read %s\n", path);
			rc = -1;
			break;
		}
		/* one transaction where MariaDB allows (DDL commits implicitly) */
		if (db_begin() == -1 || run_file(db_handle(), list[i]->d_name, sql) == -1 ||
		    db_exec(Q_RECORD, DB_ARGS(P_STR(version))) < 0 || db_commit() == -1) {
			db_rollback();
			rc = -1;
		} else {
			applied++;
			if (verbose)
				printf("applied %s\n", version);
		}
		free(sql);
	}
	if (locked)
		lock_drop();
listed:
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
	if (rc == 0 && verbose)
		printf("migrations: %d applied, schema up to date\n", applied);
	arena_free(a);
	return rc;
}

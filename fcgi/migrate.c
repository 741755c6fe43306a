/*
 * migrate.c — numbered, forward-only migrations from schema_dir
 * ("NNN-name.sql"), applied in order, each recorded in schema_migrations.
 * Idempotent: applied versions are skipped.  A named lock keeps two
 * concurrent runs (two hosts starting at once) from racing.
 * Migration files are trusted, parameter-free DDL shipped with the
 * program; the server splits each into its statements (multi-statement
 * mode, on only while a file runs), comments and all.
 */
#include <dirent.h>
#include <errno.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

static const char Q_TABLE[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version VARCHAR(64) NOT NULL PRIMARY KEY,"
    " applied_at DATETIME NOT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
static const char Q_LOCK[] = "SELECT GET_LOCK('ccr_migrate', 60)";
static const char Q_UNLOCK[] = "SELECT RELEASE_LOCK('ccr_migrate')";
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

/* migrate_run: apply pending migrations.  0, or -1 (reason on stderr). */
int migrate_run(const struct conf *c, int verbose)
{
	struct dirent **list = NULL;
	struct arena *a = arena_new(0);
	struct db_rows rows;
	int n, rc = 0, applied = 0;
	MYSQL *m;

	db_init(c);
	if (db_connect() == -1) {
		fprintf(stderr, "ccr-admin: cannot connect to the database: %s\n", db_last_msg());
		arena_free(a);
		return -1;
	}
	m = db_handle();
	if (db_query(a, &rows, Q_LOCK, 1, DB_NOARGS) != 1 || db_int(&rows, 0, 0) != 1) {
		fprintf(stderr, "ccr-admin: another migration holds the lock\n");
		arena_free(a);
		return -1;
	}
	if (mysql_real_query(m, Q_TABLE, sizeof(Q_TABLE) - 1) != 0) {
		fprintf(stderr, "ccr-admin: schema_migrations: %s\n", mysql_error(m));
		rc = -1;
		goto out;
	}
	n = scandir(c->schema_dir, &list, is_migration, alphasort);
	if (n < 0) {
		fprintf(stderr, "ccr-admin: %s: %s\n", c->schema_dir, strerror(errno));
		rc = -1;
		goto out;
	}
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
		snprintf(path, sizeof(path), "%s/%s", c->schema_dir, list[i]->d_name);
		char *sql = slurp(path);
		if (sql == NULL) {
			fprintf(stderr, "ccr-admin: cannot read %s\n", path);
			rc = -1;
			break;
		}
		/* one transaction where MariaDB allows (DDL commits implicitly) */
		if (db_begin() == -1 || run_file(m, list[i]->d_name, sql) == -1 ||
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
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
	if (rc == 0 && verbose)
		printf("migrations: %d applied, schema up to date\n", applied);
out:
	db_query(a, &rows, Q_UNLOCK, 1, DB_NOARGS);
	arena_free(a);
	return rc;
}

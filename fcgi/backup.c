/*
 * backup.c — `ccr-admin backup` and `ccr-admin restore FILE`: a consistent
 * dump (mariadb-dump --single-transaction) compressed with gzip, both run
 * with fork/exec and never through a shell (no quoting to get wrong).
 * The password travels in a private --defaults-extra-file, not on a
 * command line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

/* opt_value: write v as a double-quoted option-file value.  Inside the
 * quotes the client library reads \\ and \" as escapes (and # is not a
 * comment), so a password with quotes, backslashes, '#' or spaces comes
 * through unchanged.  A newline cannot be written; refused (-1). */
static int opt_value(FILE *f, const char *key, const char *v)
{
	fprintf(f, "%s=\"", key);
	for (; *v; v++) {
		if (*v == '\n' || *v == '\r')
			return -1;
		if (*v == '"' || *v == '\\')
			fputc('\\', f);
		fputc(*v, f);
	}
	fputs("\"\n", f);
	return 0;
}

/* Write the client credentials to a 0600 temp file; its path in out. 0 / -1. */
static int defaults_file(const struct conf *c, char *out, size_t n)
{
	snprintf(out, n, "/tmp/ccr-admin-XXXXXX");
	int fd = mkstemp(out);
	if (fd == -1)
		return -1;
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		unlink(out);
		return -1;
	}
	int bad;

	fputs("[client]\n", f);
	bad = opt_value(f, "user", c->db_user) | opt_value(f, "password", c->db_password);
	if (c->db_socket[0])
		bad |= opt_value(f, "socket", c->db_socket);
	else {
		bad |= opt_value(f, "host", c->db_host);
		fprintf(f, "port=%d\nprotocol=tcp\n", c->db_port);
	}
	if (fclose(f) != 0 || bad) {
		unlink(out);
		return -1;
	}
	return 0;
}

/* Start argv with the given stdin/stdout (-1 = inherit).  pid or -1. */
static pid_t start(char *const argv[], int in, int out, int close_fd)
{
	pid_t pid = fork();

	if (pid == 0) {
		if (in >= 0 && dup2(in, STDIN_FILENO) == -1)
			_exit(126);
		if (out >= 0 && dup2(out, STDOUT_FILENO) == -1)
			_exit(126);
		if (close_fd >= 0)
			close(close_fd);
		execvp(argv[0], argv);
		fprintf(stderr, "ccr-admin: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

static int wait_ok(pid_t pid, const char *what)
{
	int st;

	if (pid <= 0)
		return -1;
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	fprintf(stderr, "ccr-admin: %s failed (status %d)\n", what,
	    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return -1;
}

/* Two processes joined by a pipe: a | b, b's stdout to out_fd, a's stdin
 * from in_fd.  0 when both exit 0. */
static int pipeline(char *const a[], char *const b[], int in_fd, int out_fd)
{
	int p[2];

	if (pipe(p) == -1)
		return -1;
	pid_t pa = start(a, in_fd, p[1], p[0]);
	pid_t pb = start(b, p[0], out_fd, p[1]);
	close(p[0]);
	close(p[1]);
	int ra = wait_ok(pa, a[0]), rb = wait_ok(pb, b[0]);
	return ra == 0 && rb == 0 ? 0 : -1;
}

static int is_backup(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return strncmp(d->d_name, "ccr-", 4) == 0 && n > 11 && strcmp(d->d_name + n - 7, ".sql.gz") == 0;
}

/* Keep the newest `keep` backups (names sort by time). */
static void prune(const char *dir, int keep)
{
	struct dirent **list;
	int n = scandir(dir, &list, is_backup, alphasort);

	for (int i = 0; i < n; i++) {
		if (i < n - keep) {
			char path[PATH_MAX + 300];
			snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
			if (unlink(path) == 0)
				printf("removed old backup %s\n", path);
		}
		free(list[i]);
	}
	if (n > 0)
		free(list);
}

/* backup_run: dump the database to dir (NULL: [database] backup_dir).
 * 0 / -1 (why on stderr). */
int backup_run(const struct conf *c, const char *dir)
{
	char defs[64], opt[128], tmp[PATH_MAX + 64], final[PATH_MAX + 64], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	int fd, rc;

	if (dir == NULL)
		dir = c->backup_dir;
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		fprintf(stderr, "ccr-admin: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	snprintf(final, sizeof(final), "%s/ccr-%s.sql.gz", dir, stamp);
	snprintf(tmp, sizeof(tmp), "%s/.ccr-%s.sql.gz.part", dir, stamp);
	if (defaults_file(c, defs, sizeof(defs)) == -1) {
		fprintf(stderr, "ccr-admin: cannot write a temporary credentials file\n");
		return -1;
	}
	snprintf(opt, sizeof(opt), "--defaults-extra-file=%s", defs);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1) {
		fprintf(stderr, "ccr-admin: %s: %s\n", tmp, strerror(errno));
		unlink(defs);
		return -1;
	}
	char *dump[] = { "mariadb-dump", opt, "--single-transaction", "--routines", "--triggers",
	                 "--hex-blob", "--default-character-set=utf8mb4", "--skip-dump-date",
	                 (char *)(uintptr_t)c->db_name, NULL };
	char *gz[] = { "gzip", "-c", "-6", NULL };
	rc = pipeline(dump, gz, -1, fd);
	if (fsync(fd) == -1)
		rc = -1;
	close(fd);
	unlink(defs);
	if (rc == 0 && rename(tmp, final) == 0) {
		printf("backup written to %s\n", final);
		prune(dir, c->backup_keep);
		return 0;
	}
	unlink(tmp);
	fprintf(stderr, "ccr-admin: backup failed; nothing written\n");
	return -1;
}

static const char Q_TABLES[] =
    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ?";

/* backup_restore: load a backup into an empty database.  0 / -1. */
int backup_restore(const struct conf *c, const char *file)
{
	struct arena *a = arena_new(0);
	struct db_rows rows;
	char defs[64], opt[128];
	int fd, rc;

	db_init(c);
	if (db_query(a, &rows, Q_TABLES, 1, DB_ARGS(P_STR(c->db_name))) != 1) {
		fprintf(stderr, "ccr-admin: cannot reach the database: %s\n", db_last_msg());
		arena_free(a);
		return -1;
	}
	if (db_int(&rows, 0, 0) != 0) {
		fprintf(stderr, "ccr-admin: database %s is not empty (%s tables); restore needs an empty one\n",
		    c->db_name, DB_CELL(&rows, 0, 0));
		arena_free(a);
		return -1;
	}
	arena_free(a);
	db_close();
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		fprintf(stderr, "ccr-admin: %s: %s\n", file, strerror(errno));
		return -1;
	}
	if (defaults_file(c, defs, sizeof(defs)) == -1) {
		close(fd);
		return -1;
	}
	snprintf(opt, sizeof(opt), "--defaults-extra-file=%s", defs);
	char *gz[] = { "gzip", "-dc", NULL };
	char *cli[] = { "mariadb", opt, "--default-character-set=utf8mb4", "--binary-mode",
	                (char *)(uintptr_t)c->db_name, NULL };
	rc = pipeline(gz, cli, fd, -1);
	close(fd);
	unlink(defs);
	if (rc == 0)
		printf("restored %s into %s\n", file, c->db_name);
	return rc;
}

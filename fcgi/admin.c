/*
 * admin.c — ccr-admin (README "Operations"): migrate, create-admin,
 * create-agent, auto-close, purge, check-config, backup, restore, mail-in.  Runs on
 * the server as the operator.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "extern.h"

static void usage(void)
{
	fprintf(stderr,
	    "usage: ccr-admin [-c config] command\n"
	    "  migrate                         apply pending schema migrations\n"
	    "  create-admin --email E [--first-name F] [--last-name L]\n"
	    "                                  password from stdin (asked twice on a terminal)\n"
	    "  create-agent --email E --first-name F --last-name L\n"
	    "                                  an active agent, mailed a code to set the password\n"
	    "  check-config                    validate the configuration file\n"
	    "  reset-2fa --email E             turn off E's two-factor sign-in (a lost phone)\n"
	    "  purge                           delete expired sessions, codes, throttle rows\n"
	    "  auto-close                      close tickets resolved auto_close_days ago\n"
	    "  sla-check                       mail every admin once per new service-level breach\n"
	    "  reports-rebuild                 recompute report summaries and due times from scratch\n"
	    "  search-rebuild                  empty the search index and index every ticket again\n"
	    "  backup [--dir D]                compressed consistent dump to backup_dir (keeps backup_keep)\n"
	    "  restore FILE                    load a backup into an empty database\n"
	    "  mail-in [--sender ADDR]         one inbound mail on stdin (an MTA's pipe); exit 0\n"
	    "                                  once its outcome is stored, 75 to retry later\n");
}

/* sysexits(3): what an MTA's pipe makes of mail-in's exit */
enum { EX_OK_ = 0, EX_USAGE_ = 64, EX_DATAERR_ = 65, EX_IOERR_ = 74, EX_TEMPFAIL_ = 75 };

/* mail-in: the raw message from stdin, read whole up to twice max_bytes
 * (a larger one is refused, so the MTA bounces it to its sender: never
 * silently lost); then the email channel's rules.  Exit 0 only after the
 * outcome is committed; 75 when the database cannot be reached, so the MTA
 * keeps the message and retries. */
static int cmd_mail_in(const struct conf *c, int argc, char **argv)
{
	const char *sender = NULL;
	struct mailin_result res;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--sender") && i + 1 < argc)
			sender = argv[++i];
		else {
			usage();
			return EX_USAGE_;
		}
	}
	if (c->mailin_address[0] == '\0') {
		fprintf(stderr, "ccr-admin: mail-in: [mail_in] address is not set\n");
		return EX_TEMPFAIL_;
	}
	size_t cap = 2 * (size_t)c->mailin_max_bytes, len = 0, size = 64 * 1024;
	char *raw = malloc(size);
	/* read to the end, or until the message is past cap */
	while (raw && len <= cap) {
		if (len == size) {
			char *more = realloc(raw, size *= 2);
			if (more == NULL)
				free(raw);
			raw = more;
			continue;
		}
		size_t n = fread(raw + len, 1, size - len, stdin);
		if (n == 0)
			break;
		len += n;
	}
	if (raw == NULL) {
		fprintf(stderr, "ccr-admin: mail-in: out of memory\n");
		return EX_TEMPFAIL_;
	}
	if (ferror(stdin)) {
		free(raw);
		fprintf(stderr, "ccr-admin: mail-in: cannot read the message\n");
		return EX_IOERR_;
	}
	if (len > cap) {
		free(raw);
		fprintf(stderr, "ccr-admin: mail-in: message larger than %zu bytes refused\n", cap);
		return EX_DATAERR_;
	}
	struct arena *a = arena_new(0);
	db_init(c);
	int rc = mailin_deliver(c, a, raw, len, sender, &res) == 0 ? EX_OK_ : EX_TEMPFAIL_;
	if (rc == EX_TEMPFAIL_)
		fprintf(stderr, "ccr-admin: mail-in: database unavailable, try again later\n");
	db_close();
	arena_free(a);
	free(raw);
	return rc;
}

/* Read one line from stdin without its newline; echo off on a terminal. */
static int read_secret(const char *prompt, char *buf, size_t n)
{
	struct termios old, quiet;
	int tty = isatty(STDIN_FILENO);

	if (tty) {
		fprintf(stderr, "%s", prompt);
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	char *ok = fgets(buf, (int)n, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (ok == NULL)
		return -1;
	size_t len = strlen(buf);
	if (len && buf[len - 1] == '\n')
		buf[--len] = '\0';
	else if (len == n - 1)
		return -2;    /* longer than the buffer: certainly too long */
	if (len && buf[len - 1] == '\r')
		buf[--len] = '\0';
	return 0;
}

/* create-admin (password from stdin) and create-agent (mailed a code to
 * set one, as POST /admin/agents does).  Exit code. */
static int cmd_create_user(const struct conf *c, int agent, int argc, char **argv)
{
	const char *email_in = NULL, *first = agent ? NULL : "Admin", *last = agent ? NULL : "User";
	char pw[1024], pw2[1024], hash[256], email[300], fbuf[300], lbuf[300];
	struct ctx x = { .a = NULL, .conf = c, .reqid = "ccr-admin", .addr = "local", .actor = 0 };
	const char *msg;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--email") && i + 1 < argc)
			email_in = argv[++i];
		else if (!strcmp(argv[i], "--first-name") && i + 1 < argc)
			first = argv[++i];
		else if (!strcmp(argv[i], "--last-name") && i + 1 < argc)
			last = argv[++i];
		else {
			usage();
			return 2;
		}
	}
	if (email_in == NULL || first == NULL || last == NULL) {
		usage();
		return 2;
	}
	snprintf(email, sizeof(email), "%s", email_in);
	char *e = str_trim(email);
	str_lower_ascii(e);
	snprintf(fbuf, sizeof(fbuf), "%s", first);
	snprintf(lbuf, sizeof(lbuf), "%s", last);
	first = str_trim(str_fold_line(fbuf));
	last = str_trim(str_fold_line(lbuf));
	if ((msg = form_check_email(e)) || (msg = form_check_first_name(first)) || (msg = form_check_last_name(last))) {
		fprintf(stderr, "ccr-admin: %s\n", msg);
		return 1;
	}
	int rc = 0;
	if (agent)
		goto insert;
	rc = read_secret("Password: ", pw, sizeof(pw));
	if (rc == -1) {
		fprintf(stderr, "ccr-admin: no password on stdin\n");
		return 1;
	}
	if ((msg = rc == -2 ? "Password is too long" : NULL) || (msg = form_check_password(pw)) ||
	    (!utf8_valid(pw, strlen(pw)) && (msg = "Invalid characters"))) {
		fprintf(stderr, "ccr-admin: %s\n", msg);
		return 1;
	}
	if (isatty(STDIN_FILENO)) {
		if (read_secret("Again: ", pw2, sizeof(pw2)) != 0 || (msg = form_check_confirm(pw, pw2))) {
			fprintf(stderr, "ccr-admin: Passwords do not match\n");
			return 1;
		}
	}
	if (password_hash(c, pw, hash) == -1) {
		fprintf(stderr, "ccr-admin: cannot hash the password\n");
		return 1;
	}
	memset(pw, 0, sizeof(pw));
insert:
	db_init(c);
	x.a = arena_new(0);
	rc = 1;
	long long uid = -1;
	if (db_begin() == -1)
		fprintf(stderr, "ccr-admin: database: %s\n", db_last_msg());
	else if ((uid = user_insert(e, first, last, agent ? ROLE_AGENT : ROLE_ADMIN, ACCT_ACTIVE,
	             agent ? NULL : hash)) == 0) {
		db_rollback();
		fprintf(stderr, "ccr-admin: An account with this email already exists\n");
	} else if (uid < 0 || audit_add(&x, uid, agent ? "agent_created" : "admin_created", e) == -1 ||
	           (agent && code_issue(&x, uid, arena_printf(x.a, "%s %s", first, last), CODE_INVITE) == -1) ||
	           db_commit() == -1) {
		db_rollback();
		fprintf(stderr, "ccr-admin: database: %s\n", db_last_msg());
	} else {
		printf("%s %s created (id %lld)%s\n", agent ? "agent" : "admin", e, uid,
		    agent ? "; a code to set the password was mailed" : "");
		rc = 0;
	}
	db_close();
	arena_free(x.a);
	return rc;
}

static const char Q_PURGE_SESSIONS[] =
    "DELETE FROM sessions WHERE last_seen < NOW() - INTERVAL ? SECOND "
    "OR created_at < NOW() - INTERVAL ? SECOND";
static const char Q_PURGE_CODES[] =
    "DELETE FROM password_codes WHERE expires_at < NOW() - INTERVAL 1 DAY";
/* the half-signed-in state lasts minutes; a browser unused for 400 days
 * (its device cookie's age) is forgotten, so its next sign-in alerts */
static const char Q_PURGE_PENDING[] = "DELETE FROM login_pending WHERE expires_at < NOW()";
static const char Q_PURGE_DEVICES[] =
    "DELETE FROM devices WHERE last_seen < NOW() - INTERVAL 400 DAY LIMIT 10000";
/* [retention] login_failures_days and audit_days; in batches, so one purge
 * of a year's backlog is many short transactions, not one huge one */
static const char Q_PURGE_FAILS[] =
    "DELETE FROM login_failures WHERE at < NOW() - INTERVAL ? DAY LIMIT 10000";
static const char Q_PURGE_AUDIT[] =
    "DELETE FROM audit_log WHERE at < NOW() - INTERVAL ? DAY LIMIT 10000";
/* [retention] webhook_days: finished webhook deliveries (sent or failed);
 * a pending one stays until it is sent or given up */
static const char Q_PURGE_WEBHOOKS[] =
    "DELETE FROM webhook_deliveries WHERE status <> 'pending' "
    "AND created_at < NOW() - INTERVAL ? DAY LIMIT 10000";

/* purge_batches: run a LIMIT 10000 DELETE until it removes fewer; total or -1. */
static long long purge_batches(const char *sql, long long days)
{
	long long total = 0, n;

	do {
		if ((n = db_exec(sql, DB_ARGS(P_INT(days)))) < 0)
			return -1;
		total += n;
	} while (n == 10000);
	return total;
}

static int cmd_purge(const struct conf *c)
{
	long long s, k, f, a, w;

	db_init(c);
	s = db_exec(Q_PURGE_SESSIONS, DB_ARGS(P_INT(c->session_idle), P_INT(c->session_absolute)));
	k = db_exec(Q_PURGE_CODES, DB_NOARGS);
	if (k >= 0 && db_exec(Q_PURGE_PENDING, DB_NOARGS) < 0)
		k = -1;
	for (long long d = 10000; k >= 0 && d == 10000;)
		if ((d = db_exec(Q_PURGE_DEVICES, DB_NOARGS)) < 0)
			k = -1;
	f = purge_batches(Q_PURGE_FAILS, c->login_failures_days);
	a = purge_batches(Q_PURGE_AUDIT, c->audit_days);
	w = purge_batches(Q_PURGE_WEBHOOKS, c->webhook_days);
	long long m = mailin_purge(c);
	if (s < 0 || k < 0 || f < 0 || a < 0 || w < 0 || m < 0) {
		fprintf(stderr, "ccr-admin: purge: %s\n", db_last_msg());
		return 1;
	}
	printf("purged %lld sessions, %lld codes, %lld login failures, %lld audit rows, "
	    "%lld inbound mail rows, %lld webhook deliveries\n", s, k, f, a, m, w);
	db_close();
	return 0;
}

/* reset-2fa --email E: the account's TOTP secret, recovery codes and
 * half-signed-in records dropped in one transaction, audited; the person
 * enrols again at the next sign-in when their role must.  For the admin
 * who lost their phone and recovery codes, with no other admin to reset it
 * on the web.  Exit 0 done, 1 no such account / nothing to reset / failed. */
static int cmd_reset_2fa(const struct conf *c, int argc, char **argv)
{
	static const char Q_ID[] = "SELECT id FROM users WHERE email = ? FOR UPDATE";
	struct ctx x = { .a = arena_new(4096), .conf = c, .reqid = "ccr-admin reset-2fa",
	    .addr = "local", .actor = 0 };
	struct db_rows rows;
	long long n = -1;
	int rc = 1;

	if (argc != 2 || strcmp(argv[0], "--email") != 0) {
		usage();
		arena_free(x.a);
		return 2;
	}
	char *email = arena_strdup(x.a, argv[1]);
	email = str_trim(email);
	str_lower_ascii(email);
	db_init(c);
	if (db_begin() == -1 || (n = db_query(x.a, &rows, Q_ID, 1, DB_ARGS(P_STR(email)))) < 0) {
		fprintf(stderr, "ccr-admin: reset-2fa: %s\n", db_last_msg());
	} else if (n == 0) {
		db_rollback();
		fprintf(stderr, "ccr-admin: reset-2fa: no account %s\n", email);
	} else {
		long long uid = db_int(&rows, 0, 0);
		long long t = db_exec("DELETE FROM totp WHERE user_id = ?", DB_ARGS(P_INT(uid)));
		if (t == 0) {
			db_rollback();
			fprintf(stderr, "ccr-admin: reset-2fa: %s has no two-factor sign-in\n", email);
		} else if (t < 0 ||
		    db_exec("DELETE FROM recovery_codes WHERE user_id = ?", DB_ARGS(P_INT(uid))) < 0 ||
		    db_exec("DELETE FROM login_pending WHERE user_id = ?", DB_ARGS(P_INT(uid))) < 0 ||
		    audit_add(&x, uid, "2fa_reset", "ccr-admin") == -1 || db_commit() == -1) {
			db_rollback();
			fprintf(stderr, "ccr-admin: reset-2fa: %s\n", db_last_msg());
		} else {
			printf("two-factor sign-in of %s (id %lld) reset\n", email, uid);
			rc = 0;
		}
	}
	db_close();
	arena_free(x.a);
	return rc;
}

int main(int argc, char **argv)
{
	const char *path = "/etc/ccr/ccr.conf";
	static struct conf conf;
	char err[512];
	int ch;

	while ((ch = getopt(argc, argv, "+c:h")) != -1) {
		if (ch == 'c')
			path = optarg;
		else {
			usage();
			return ch == 'h' ? 0 : 2;
		}
	}
	if (optind >= argc) {
		usage();
		return 2;
	}
	log_init("ccr-admin", 0);
	const char *cmd = argv[optind];
	int mail_in = !strcmp(cmd, "mail-in");
	if (conf_load(&conf, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		/* an MTA keeps the mail while the operator fixes the file */
		return mail_in ? EX_TEMPFAIL_ : 1;
	}
	if (mail_in) {
		if (view_root(conf.views_dir) == -1) {
			fprintf(stderr, "ccr-admin: views_dir %s unusable\n", conf.views_dir);
			return EX_TEMPFAIL_;
		}
		return cmd_mail_in(&conf, argc - optind - 1, argv + optind + 1);
	}
	/* [database] read_timeout bounds a page's wait; a migration or a
	 * rebuild over a million tickets runs for minutes in one statement */
	if (!strcmp(cmd, "migrate") || !strcmp(cmd, "reports-rebuild") || !strcmp(cmd, "restore"))
		conf.db_read_timeout = conf.db_write_timeout = 3600;
	if (!strcmp(cmd, "check-config")) {
		printf("%s: ok\n", path);
		return 0;
	}
	if (!strcmp(cmd, "migrate")) {
		int rc = migrate_run(&conf, 1) == 0 ? 0 : 1;
		db_close();
		return rc;
	}
	if (!strcmp(cmd, "create-admin") || !strcmp(cmd, "create-agent")) {
		if (view_root(conf.views_dir) == -1)
			return 1;
		return cmd_create_user(&conf, !strcmp(cmd, "create-agent"), argc - optind - 1,
		    argv + optind + 1);
	}
	if (!strcmp(cmd, "purge"))
		return cmd_purge(&conf);
	if (!strcmp(cmd, "reset-2fa"))
		return cmd_reset_2fa(&conf, argc - optind - 1, argv + optind + 1);
	if (!strcmp(cmd, "backup")) {
		const char *dir = NULL;
		if (argc - optind == 3 && !strcmp(argv[optind + 1], "--dir"))
			dir = argv[optind + 2];
		else if (argc - optind != 1) {
			usage();
			return 2;
		}
		return backup_run(&conf, dir) == 0 ? 0 : 1;
	}
	if (!strcmp(cmd, "restore")) {
		if (argc - optind != 2) {
			usage();
			return 2;
		}
		return backup_restore(&conf, argv[optind + 1]) == 0 ? 0 : 1;
	}
	if (!strcmp(cmd, "auto-close")) {
		if (view_root(conf.views_dir) == -1) {
			fprintf(stderr, "ccr-admin: views_dir %s unusable\n", conf.views_dir);
			return 1;
		}
		db_init(&conf);
		int n = ticket_auto_close(&conf);
		if (n < 0) {
			fprintf(stderr, "ccr-admin: auto-close: %s\n", db_last_msg());
			return 1;
		}
		printf("auto-closed %d tickets resolved more than %d days ago\n", n, conf.auto_close_days);
		db_close();
		return 0;
	}
	if (!strcmp(cmd, "search-rebuild"))
		return search_rebuild(&conf) == 0 ? 0 : 1;
	if (!strcmp(cmd, "sla-check") || !strcmp(cmd, "reports-rebuild")) {
		int check = !strcmp(cmd, "sla-check");
		if (view_root(conf.views_dir) == -1) {
			fprintf(stderr, "ccr-admin: views_dir %s unusable\n", conf.views_dir);
			return 1;
		}
		db_init(&conf);
		int n = check ? sla_check(&conf) : report_rebuild(&conf);
		if (n < 0) {
			fprintf(stderr, "ccr-admin: %s: %s\n", cmd, db_last_msg());
			return 1;
		}
		if (check)
			printf("mailed %d new service-level breaches\n", n);
		else
			printf("rebuilt the report summaries and the due times of every ticket\n");
		db_close();
		return 0;
	}
	usage();
	return 2;
}

/*
 * test_conf.c — the INI configuration (conf.c): defaults, every key of
 * every section, and the refusals with "file:line: why".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "extern.h"

static struct conf c;
static char err[1024];

static int load(const char *text)
{
	memset(&c, 0x5a, sizeof(c));    /* defaults must not depend on the caller */
	snprintf(err, sizeof(err), "untouched");
	return conf_load_string(&c, text, "t.conf", err, sizeof(err));
}

/* The load fails, and the message starts with "t.conf:LINE: " and has want. */
static void refused_at(const char *text, int line, const char *want)
{
	char prefix[64];

	if (load(text) != -1)
		fail_msg("accepted:\n%s", text);
	snprintf(prefix, sizeof(prefix), "t.conf:%d: ", line);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("message \"%s\" does not start with \"%s\" for:\n%s", err, prefix, text);
	if (want && strstr(err, want) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err, want);
}

/* The load fails with a message that names the file and has want. */
static void refused(const char *text, const char *want)
{
	if (load(text) != -1)
		fail_msg("accepted:\n%s", text);
	if (strncmp(err, "t.conf", 6) != 0)
		fail_msg("message \"%s\" does not name the file", err);
	if (want && strstr(err, want) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err, want);
}

static void accepted(const char *text)
{
	if (load(text) != 0)
		fail_msg("refused (%s):\n%s", err, text);
}

static void test_defaults(void **state)
{
	(void)state;
	struct conf d;

	conf_defaults(&d);
	assert_string_equal(d.listen, "/run/ccr/ccrd.sock");
	assert_int_equal(d.socket_mode, 0660);
	assert_int_equal(d.workers, 0);
	assert_int_equal(d.max_body, 64 * 1024);            /* bodies over 64 KiB: 413 */
	assert_true(d.views_dir[0] == '/');
	assert_true(d.schema_dir[0] == '/');
	assert_int_equal(d.log_json, 0);
	assert_string_equal(d.db_name, "ccr");
	assert_int_equal(d.db_port, 3306);
	assert_int_equal(d.smtp_starttls, STARTTLS_REQUIRED);
	assert_int_equal(d.secure_cookies, 1);              /* Secure cookies by default */
	assert_int_equal(d.argon2_memory, 19456);           /* Argon2id minimums */
	assert_int_equal(d.argon2_time, 2);
	assert_int_equal(d.argon2_parallelism, 1);
	assert_true(d.max_concurrent_hashes >= 1);
	assert_int_equal(d.session_idle, 2 * 3600);         /* idle 2 h, absolute 7 days */
	assert_int_equal(d.session_absolute, 7 * 86400);
	assert_int_equal(d.smtp_give_up_after, 3 * 86400);  /* a mail is retried for 3 days */
	assert_int_equal(d.auto_close_days, 7);             /* auto-close after 7 quiet days */
	assert_int_equal(d.page_size, 25);                  /* tickets a page */
	assert_int_equal(d.auto_assign, ASSIGN_OFF);        /* admins assign unless told */
	assert_string_equal(d.base_url, "http://localhost");
	assert_string_equal(d.db_password, "");

	/* an empty text, or only comments, gives exactly the defaults */
	snprintf(d.path, sizeof(d.path), "t.conf");
	accepted("");
	assert_memory_equal(&c, &d, sizeof(d));
	accepted("; a comment\n# another\n\n   \n");
	assert_memory_equal(&c, &d, sizeof(d));
	accepted("[server]\n[database]\n");
	assert_memory_equal(&c, &d, sizeof(d));
}

static void test_every_section(void **state)
{
	(void)state;
	accepted(
	    "; every key, none at its default\n"
	    "[server]\n"
	    "listen = 127.0.0.1:9000\n"
	    "socket_mode = 0600\n"
	    "workers = 7\n"
	    "max_requests = 500\n"
	    "shutdown_timeout = 30\n"
	    "max_body = 131072\n"
	    "views_dir = /srv/ccr/views\n"
	    "schema_dir = /srv/ccr/schema\n"
	    "log_format = json\n"
	    "log_file = /var/log/ccr/ccrd.log\n"
	    "user = ccr\n"
	    "\n"
	    "[database]\n"
	    "host = db.internal\n"
	    "port = 3307\n"
	    "socket = /run/mysqld/mysqld.sock\n"
	    "name = ccr_prod\n"
	    "user = ccr_app\n"
	    "password = s3cr=t!\n"
	    "connect_timeout = 4\n"
	    "read_timeout = 6\n"
	    "write_timeout = 8\n"
	    "[smtp]\n"
	    "host = mail.example.com\n"
	    "port = 587\n"
	    "starttls = optional\n"
	    "user = mailer\n"
	    "password = hunter2\n"
	    "from = Help Desk <help@example.com>\n"
	    "timeout = 15\n"
	    "give_up_after = 86400\n"
	    "[security]\n"
	    "secure_cookies = no\n"
	    "argon2_memory = 65536\n"
	    "argon2_time = 3\n"
	    "argon2_parallelism = 2\n"
	    "max_concurrent_hashes = 4\n"
	    "hash_slot_dir = /run/ccr/slots\n"
	    "session_idle = 600\n"
	    "session_absolute = 86400\n"
	    "[site]\n"
	    "name = Acme Support\n"
	    "base_url = https://help.example.com/\n"
	    "[tickets]\n"
	    "auto_close_days = 14\n"
	    "page_size = 50\n"
	    "auto_assign = least_open\n");
	assert_string_equal(c.path, "t.conf");
	assert_string_equal(c.listen, "127.0.0.1:9000");
	assert_int_equal(c.socket_mode, 0600);
	assert_int_equal(c.workers, 7);
	assert_int_equal(c.max_requests, 500);
	assert_int_equal(c.shutdown_timeout, 30);
	assert_int_equal(c.max_body, 131072);
	assert_string_equal(c.views_dir, "/srv/ccr/views");
	assert_string_equal(c.schema_dir, "/srv/ccr/schema");
	assert_int_equal(c.log_json, 1);
	assert_string_equal(c.log_file, "/var/log/ccr/ccrd.log");
	assert_string_equal(c.user, "ccr");
	assert_string_equal(c.db_host, "db.internal");
	assert_int_equal(c.db_port, 3307);
	assert_string_equal(c.db_socket, "/run/mysqld/mysqld.sock");
	assert_string_equal(c.db_name, "ccr_prod");
	assert_string_equal(c.db_user, "ccr_app");
	assert_string_equal(c.db_password, "s3cr=t!");
	assert_int_equal(c.db_connect_timeout, 4);
	assert_int_equal(c.db_read_timeout, 6);
	assert_int_equal(c.db_write_timeout, 8);
	assert_string_equal(c.smtp_host, "mail.example.com");
	assert_int_equal(c.smtp_port, 587);
	assert_int_equal(c.smtp_starttls, STARTTLS_OPTIONAL);
	assert_string_equal(c.smtp_user, "mailer");
	assert_string_equal(c.smtp_password, "hunter2");
	assert_string_equal(c.smtp_from, "Help Desk <help@example.com>");
	assert_int_equal(c.smtp_timeout, 15);
	assert_int_equal(c.smtp_give_up_after, 86400);
	assert_int_equal(c.secure_cookies, 0);
	assert_int_equal(c.argon2_memory, 65536);
	assert_int_equal(c.argon2_time, 3);
	assert_int_equal(c.argon2_parallelism, 2);
	assert_int_equal(c.max_concurrent_hashes, 4);
	assert_string_equal(c.hash_slot_dir, "/run/ccr/slots");
	assert_int_equal(c.session_idle, 600);
	assert_int_equal(c.session_absolute, 86400);
	assert_string_equal(c.site_name, "Acme Support");
	assert_string_equal(c.base_url, "https://help.example.com");
	assert_int_equal(c.auto_close_days, 14);
	assert_int_equal(c.page_size, 50);
	assert_int_equal(c.auto_assign, ASSIGN_LEAST_OPEN);
}

static void test_keys_are_independent(void **state)
{
	(void)state;
	struct conf d;

	/* one key changes its own field and nothing else */
	conf_defaults(&d);
	snprintf(d.path, sizeof(d.path), "t.conf");
	accepted("[tickets]\npage_size = 5\n");
	d.page_size = 5;
	assert_memory_equal(&c, &d, sizeof(d));

	/* "user" exists in three sections and lands in three fields */
	accepted("[server]\nuser = a\n[database]\nuser = b\n[smtp]\nuser = c\n");
	assert_string_equal(c.user, "a");
	assert_string_equal(c.db_user, "b");
	assert_string_equal(c.smtp_user, "c");

	/* a key given twice: the last one wins; a section may reopen */
	accepted("[server]\nworkers = 3\n[site]\nname = x\n[server]\nworkers = 9\n");
	assert_int_equal(c.workers, 9);

	/* spaces around '=' and at the ends are not part of the value */
	accepted("[site]\n   name   =    Acme  Help   \n");
	assert_string_equal(c.site_name, "Acme  Help");
}

static void test_unknown_section(void **state)
{
	(void)state;
	refused_at("[bogus]\nx = 1\n", 2, "bogus");
	refused_at("; comment\n\n[server]\nworkers = 2\n\n[serverx]\nworkers = 2\n", 7, "serverx");
	refused_at("[Server]\nworkers = 2\n", 2, "Server");    /* names are exact */
	/* a key before any section */
	refused_at("workers = 2\n[server]\n", 1, NULL);
}

static void test_unknown_key(void **state)
{
	(void)state;
	refused_at("[server]\nworkers = 2\nworkerz = 2\n", 3, "workerz");
	refused_at("# c\n; c\n\n[security]\nsecure_cookies = yes\n\nargon2_memroy = 65536\n", 7,
	    "argon2_memroy");
	/* a key of another section is unknown here */
	refused_at("[site]\nworkers = 2\n", 2, "workers");
	refused_at("[server]\nWorkers = 2\n", 2, "Workers");
	/* the first bad line is the one reported */
	refused_at("[server]\nworkers = 2\nnope = 1\nalso_nope = 2\n", 3, "'nope'");
}

static void test_syntax_error(void **state)
{
	(void)state;
	refused_at("[server]\nworkers = 2\nthis line has no equals sign\n", 3, "syntax");
	refused_at("[server\nworkers = 2\n", 1, NULL);
}

/* The line number and the message must describe the same line: a syntax
 * error on line 2 followed by an unknown key on line 3 is reported as
 * "t.conf:2: syntax error ...", not with line 3's message. */
static void test_syntax_error_then_bad_key_reports_first(void **state)
{
	(void)state;
	refused_at("[server]\nno equals here\nbogus = 1\n", 2, "syntax error");
	assert_null(strstr(err, "bogus"));
}

static void test_bad_int(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"abc", "3x", "", "1.5", "0x10", "1e3", "--1", "5 workers",
		"99999999999999999999999",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "[server]\n\nworkers = %s\n", bad[i]);
		refused_at(text, 3, "workers");
	}
	refused_at("[server]\nmax_requests = 99999999999999999999\n", 2, "max_requests");
	accepted("[server]\nworkers = +4\n");
	assert_int_equal(c.workers, 4);
}

static void test_int_ranges(void **state)
{
	(void)state;
	/* Argon2id: at least m = 19456 KiB, t = 2, p = 1 */
	refused_at("[security]\nargon2_memory = 19455\n", 2, "argon2_memory");
	assert_non_null(strstr(err, "19456"));
	accepted("[security]\nargon2_memory = 19456\n");
	assert_int_equal(c.argon2_memory, 19456);
	refused_at("[security]\nargon2_memory = 0\n", 2, "argon2_memory");
	refused_at("[security]\nargon2_memory = -65536\n", 2, "argon2_memory");
	refused_at("[security]\nargon2_time = 1\n", 2, "argon2_time");
	accepted("[security]\nargon2_time = 2\n");
	assert_int_equal(c.argon2_time, 2);
	refused_at("[security]\nargon2_parallelism = 0\n", 2, "argon2_parallelism");
	refused_at("[security]\nmax_concurrent_hashes = 0\n", 2, "max_concurrent_hashes");

	refused_at("[server]\nworkers = -1\n", 2, "workers");
	refused_at("[server]\nworkers = 257\n", 2, "workers");
	accepted("[server]\nworkers = 256\n");
	refused_at("[database]\nport = 0\n", 2, "port");
	refused_at("[database]\nport = 65536\n", 2, "port");
	accepted("[database]\nport = 65535\n");
	assert_int_equal(c.db_port, 65535);
	refused_at("[server]\nmax_body = 1023\n", 2, "max_body");
	refused_at("[tickets]\npage_size = 4\n", 2, "page_size");
	refused_at("[tickets]\npage_size = 201\n", 2, "page_size");
	refused_at("[tickets]\nauto_close_days = 0\n", 2, "auto_close_days");
	refused_at("[tickets]\nauto_assign = random\n", 2, "auto_assign");
	refused_at("[tickets]\nauto_assign = Round_Robin\n", 2, "auto_assign");
	accepted("[tickets]\nauto_assign = round_robin\n");
	assert_int_equal(c.auto_assign, ASSIGN_ROUND_ROBIN);
	/* an int field must not wrap: 2^32 + 4 is not 4 */
	refused_at("[server]\nworkers = 4294967300\n", 2, "workers");
}

static void test_bad_bool(void **state)
{
	(void)state;
	static const struct {
		const char *v;
		int want;
	} good[] = {
		{ "true", 1 }, { "yes", 1 }, { "on", 1 }, { "1", 1 },
		{ "false", 0 }, { "no", 0 }, { "off", 0 }, { "0", 0 },
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char text[96];
		snprintf(text, sizeof(text), "[security]\nsecure_cookies = %s\n", good[i].v);
		accepted(text);
		assert_int_equal(c.secure_cookies, good[i].want);
	}
	refused_at("[security]\nsecure_cookies = maybe\n", 2, "secure_cookies");
	refused_at("[security]\nsecure_cookies = 2\n", 2, "secure_cookies");
	refused_at("[security]\nsecure_cookies =\n", 2, "secure_cookies");
	refused_at("[security]\nsecure_cookies = yess\n", 2, "secure_cookies");
}

static void test_bad_mode(void **state)
{
	(void)state;
	accepted("[server]\nsocket_mode = 0600\n");
	assert_int_equal(c.socket_mode, 0600);
	accepted("[server]\nsocket_mode = 660\n");        /* octal without the 0 */
	assert_int_equal(c.socket_mode, 0660);
	accepted("[server]\nsocket_mode = 07777\n");
	assert_int_equal(c.socket_mode, 07777);
	refused_at("[server]\nsocket_mode = 0999\n", 2, "socket_mode");
	refused_at("[server]\nsocket_mode = 0668\n", 2, "socket_mode");
	refused_at("[server]\nsocket_mode = 010000\n", 2, "socket_mode");
	refused_at("[server]\nsocket_mode = rw-rw----\n", 2, "socket_mode");
	refused_at("[server]\nsocket_mode = -1\n", 2, "socket_mode");
	refused_at("[server]\nsocket_mode =\n", 2, "socket_mode");
	refused_at("[server]\nsocket_mode = 0x1ff\n", 2, "socket_mode");
}

static void test_bad_enum(void **state)
{
	(void)state;
	accepted("[server]\nlog_format = text\n");
	assert_int_equal(c.log_json, 0);
	accepted("[server]\nlog_format = json\n");
	assert_int_equal(c.log_json, 1);
	refused_at("[server]\nlog_format = xml\n", 2, "log_format");
	refused_at("[server]\nlog_format =\n", 2, "log_format");
	refused_at("[server]\nlog_format = 1\n", 2, "log_format");

	accepted("[smtp]\nstarttls = required\n");
	assert_int_equal(c.smtp_starttls, STARTTLS_REQUIRED);
	accepted("[smtp]\nstarttls = optional\n");
	assert_int_equal(c.smtp_starttls, STARTTLS_OPTIONAL);
	accepted("[smtp]\nstarttls = off\n");
	assert_int_equal(c.smtp_starttls, STARTTLS_OFF);
	refused_at("[smtp]\nstarttls = maybe\n", 2, "starttls");
	refused_at("[smtp]\nstarttls = yes\n", 2, "starttls");
	refused_at("[smtp]\nstarttls = 0\n", 2, "starttls");
}

static void test_strings(void **state)
{
	(void)state;
	char text[512], v[300];

	/* user is char[64]: 63 bytes fit, 64 do not */
	memset(v, 'u', 63);
	v[63] = '\0';
	snprintf(text, sizeof(text), "[server]\nuser = %s\n", v);
	accepted(text);
	assert_string_equal(c.user, v);
	memset(v, 'u', 64);
	v[64] = '\0';
	snprintf(text, sizeof(text), "[server]\nuser = %s\n", v);
	refused_at(text, 2, "user");

	/* control characters never reach a field (they could reach a header) */
	refused_at("[smtp]\nfrom = a\x01" "b\n", 2, "from");
	refused_at("[site]\nname = x\x1b[31m\n", 2, "name");
	refused_at("[site]\nname = del\x7f\n", 2, "name");

	/* listen must not be empty */
	refused("[server]\nlisten =\n", "listen");
}

/* A long line must be either accepted whole, or refused with the number of
 * the line that holds it: never cut (libinih reads at most 199 bytes a line
 * and parses the rest as a line of its own), never blamed on a line that is
 * not in the file.  db_password is char[256], views_dir char[PATH_MAX]. */
static void long_value(const char *section, const char *key, const char *v, const char *field)
{
	char text[1024], prefix[64];

	snprintf(text, sizeof(text), "[%s]\n%s = %s\n", section, key, v);
	if (load(text) == 0) {
		if (strcmp(field, v) != 0)
			fail_msg("%zu-byte %s accepted but stored as %zu bytes", strlen(v), key,
			    strlen(field));
		return;
	}
	snprintf(prefix, sizeof(prefix), "t.conf:2: ");
	if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, key) == NULL)
		fail_msg("a %zu-byte %s on line 2 was refused as \"%s\"", strlen(v), key, err);
}

static void test_long_value_within_field_size(void **state)
{
	(void)state;
	char v[300];

	/* the worst case: the part past byte 199 looks like a comment line, so
	 * the load "succeeds" with the secret cut to its first 188 bytes */
	memset(v, 'p', 188);
	snprintf(v + 188, sizeof(v) - 188, "#tail-of-the-secret");
	long_value("database", "password", v, c.db_password);

	memset(v, 'p', 250);
	v[250] = '\0';
	long_value("database", "password", v, c.db_password);

	memset(v, 'd', 240);
	v[0] = '/';
	v[240] = '\0';
	long_value("server", "views_dir", v, c.views_dir);
}

static void test_relative_dirs(void **state)
{
	(void)state;
	refused("[server]\nviews_dir = views\n", "views_dir");
	refused("[server]\nviews_dir = ./views\n", "views_dir");
	refused("[server]\nschema_dir = schema\n", "schema_dir");
	refused("[server]\nviews_dir = ~/views\n", "views_dir");
	accepted("[server]\nviews_dir = /opt/ccr/views\nschema_dir = /opt/ccr/schema\n");
}

static void test_base_url(void **state)
{
	(void)state;
	refused("[site]\nbase_url = ftp://example.com\n", "base_url");
	refused("[site]\nbase_url = example.com\n", "base_url");
	refused("[site]\nbase_url = //example.com\n", "base_url");
	refused("[site]\nbase_url = javascript:alert(1)\n", "base_url");
	refused("[site]\nbase_url = HTTPS:/x\n", "base_url");
	refused("[site]\nbase_url =\n", "base_url");

	accepted("[site]\nbase_url = https://help.example.com/\n");
	assert_string_equal(c.base_url, "https://help.example.com");
	accepted("[site]\nbase_url = http://example.com/desk//\n");
	assert_string_equal(c.base_url, "http://example.com/desk");
	accepted("[site]\nbase_url = http://127.0.0.1:8080\n");
	assert_string_equal(c.base_url, "http://127.0.0.1:8080");
}

static void test_session_limits(void **state)
{
	(void)state;
	refused("[security]\nsession_idle = 7200\nsession_absolute = 3600\n", "session_idle");
	accepted("[security]\nsession_idle = 3600\nsession_absolute = 3600\n");
}

/* the index name is spelled into SphinxQL (no bound parameters there) */
static void test_search_index_name(void **state)
{
	(void)state;
	refused("[search]\nindex = tickets; DROP\n", "[search] index");
	refused("[search]\nindex = a b\n", "[search] index");
	refused("[search]\nindex = t'x\n", "[search] index");
	refused("[search]\nindex =\n", "[search] index");
	accepted("[search]\nindex = ccr_tickets_2\n");
	assert_string_equal(c.search_index, "ccr_tickets_2");
}

static void test_conf_workers(void **state)
{
	(void)state;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	accepted("[server]\nworkers = 0\n");
	assert_int_equal(conf_workers(&c), cores > 0 ? 2 * cores : 2);
	assert_true(conf_workers(&c) >= 2);
	accepted("[server]\nworkers = 5\n");
	assert_int_equal(conf_workers(&c), 5);
	accepted("[server]\nworkers = 1\n");
	assert_int_equal(conf_workers(&c), 1);
}

/* ---- conf_load on real files -------------------------------------------- */

static char dir[64];

static int dir_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ccr-conf-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int dir_teardown(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/ccr.conf", dir);
	unlink(path);
	return rmdir(dir);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void test_conf_load_file(void **state)
{
	(void)state;
	char path[128], want[160];

	snprintf(path, sizeof(path), "%s/ccr.conf", dir);
	write_file(path, "[server]\nworkers = 3\n[site]\nbase_url = https://x.example/\n");
	memset(&c, 0x5a, sizeof(c));
	assert_int_equal(conf_load(&c, path, err, sizeof(err)), 0);
	assert_string_equal(c.path, path);
	assert_int_equal(c.workers, 3);
	assert_string_equal(c.base_url, "https://x.example");
	assert_int_equal(c.argon2_memory, 19456);   /* the rest are defaults */

	write_file(path, "[server]\nworkers = 3\n\n[nope]\nx = 1\n");
	assert_int_equal(conf_load(&c, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:5: ", path);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("message \"%s\" does not start with \"%s\"", err, want);
}

static void test_conf_load_missing(void **state)
{
	(void)state;
	char path[128];

	snprintf(path, sizeof(path), "%s/does-not-exist.conf", dir);
	snprintf(err, sizeof(err), "untouched");
	assert_int_equal(conf_load(&c, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file"));
}

/* `ccrd -c /etc/ccr/` (a directory) opens fine with fopen but every read
 * fails with EISDIR: that must be refused, not run on silent defaults. */
static void test_conf_load_directory_refused(void **state)
{
	(void)state;
	snprintf(err, sizeof(err), "untouched");
	if (conf_load(&c, dir, err, sizeof(err)) != -1)
		fail_msg("conf_load(\"%s\") on a directory returned 0 (defaults)", dir);
	assert_non_null(strstr(err, dir));
}

static void test_err_buffer_bounded(void **state)
{
	(void)state;
	char small[16];

	memset(small, 'Z', sizeof(small));
	assert_int_equal(conf_load_string(&c, "[server]\nworkers = lots\n", "t.conf", small, 8), -1);
	assert_non_null(memchr(small, '\0', 8));
	assert_int_equal(small[8], 'Z');
	assert_memory_equal(small, "t.conf:", 7);
}

/* [security] secret_key: optional, at least 32 characters when given;
 * require_2fa: admins (default), staff or none. */
/* [database] galera_sync_wait: off unless asked for (a lone MariaDB has no
 * wsrep_sync_wait worth paying for); a host on a Galera node turns it on; an
 * empty socket with a host means TCP (each host talks to its own node). */
static void test_database_galera_sync_wait_and_tcp_node(void **state)
{
	(void)state;
	assert_int_equal(load(""), 0);
	assert_int_equal(c.db_galera_sync_wait, 0);
	assert_int_equal(load("[database]\nhost = 10.200.0.1\nport = 19102\nsocket =\n"
	    "galera_sync_wait = true\n"), 0);
	assert_int_equal(c.db_galera_sync_wait, 1);
	assert_string_equal(c.db_host, "10.200.0.1");
	assert_int_equal(c.db_port, 19102);
	assert_string_equal(c.db_socket, "");
	assert_int_equal(load("[database]\ngalera_sync_wait = false\n"), 0);
	assert_int_equal(c.db_galera_sync_wait, 0);
	refused_at("[database]\ngalera_sync_wait = sometimes\n", 2, "galera_sync_wait");
}

static void test_security_secret_key_and_require_2fa(void **state)
{
	(void)state;
	assert_int_equal(load(""), 0);
	assert_string_equal(c.secret_key, "");
	assert_int_equal(c.require_2fa, R2FA_ADMINS);
	assert_int_equal(load("[security]\nsecret_key = 0123456789abcdef0123456789abcdef\n"
	    "require_2fa = staff\n"), 0);
	assert_string_equal(c.secret_key, "0123456789abcdef0123456789abcdef");
	assert_int_equal(c.require_2fa, R2FA_STAFF);
	assert_int_equal(load("[security]\nrequire_2fa = none\n"), 0);
	assert_int_equal(c.require_2fa, R2FA_NONE);
	refused_at("[security]\nrequire_2fa = everyone\n", 2, "unknown value");
	assert_int_equal(load("[security]\nsecret_key = short\n"), -1);
	assert_non_null(strstr(err, "secret_key must be at least 32 characters"));
	assert_null(strstr(err, "short"));   /* never the key itself */
}

/* [sla]: four priorities, whole hours, "off"; everything else refused with
 * the line and the key. */
static void test_sla_targets(void **state)
{
	(void)state;
	accepted("");
	assert_int_equal(c.sla_first_response[PRIO_URGENT], 3600);
	assert_int_equal(c.sla_first_response[PRIO_HIGH], 4 * 3600);
	assert_int_equal(c.sla_first_response[PRIO_NORMAL], 24 * 3600);
	assert_int_equal(c.sla_first_response[PRIO_LOW], 72 * 3600);
	assert_int_equal(c.sla_resolution[PRIO_URGENT], 8 * 3600);
	assert_int_equal(c.sla_resolution[PRIO_LOW], 168 * 3600);
	accepted("[sla]\nfirst_response_hours = low:9  normal:3 urgent:1 high:2\nresolution_hours = off\n");
	assert_int_equal(c.sla_first_response[PRIO_LOW], 9 * 3600);
	assert_int_equal(c.sla_first_response[PRIO_NORMAL], 3 * 3600);
	assert_int_equal(c.sla_first_response[PRIO_HIGH], 2 * 3600);
	for (int p = 0; p < PRIO__MAX; p++)
		assert_int_equal(c.sla_resolution[p], 0);
	refused_at("[sla]\nfirst_response_hours = urgent:1 high:4 normal:24\n", 2, "first_response_hours");
	refused_at("[sla]\nfirst_response_hours = urgent:1 high:4 normal:24 low:72 low:2\n", 2, "twice");
	refused_at("[sla]\nresolution_hours = urgent:0 high:4 normal:24 low:72\n", 2, "1..8760");
	refused_at("[sla]\nresolution_hours = urgent:8760 high:8761 normal:24 low:72\n", 2, "high");
	refused_at("[sla]\nresolution_hours = urgent:1.5 high:4 normal:24 low:72\n", 2, "whole number");
	refused_at("[sla]\nresolution_hours = urgent:-1 high:4 normal:24 low:72\n", 2, "resolution_hours");
	refused_at("[sla]\nresolution_hours = Urgent:1 high:4 normal:24 low:72\n", 2, "PRIORITY:HOURS");
	refused_at("[sla]\nresolution_hours = urgent 1 high:4 normal:24 low:72\n", 2, "PRIORITY:HOURS");
	refused_at("[sla]\nresolution_hours = urgent:1h high:4 normal:24 low:72\n", 2, "whole number");
	refused_at("[sla]\nresolution_hours = \n", 2, "resolution_hours");
	refused_at("[sla]\nresolution_hours = OFF\n", 2, "resolution_hours");
	refused_at("[sla]\nresponse_hours = off\n", 2, "unknown key");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_section),
		cmocka_unit_test(test_keys_are_independent),
		cmocka_unit_test(test_unknown_section),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_syntax_error_then_bad_key_reports_first),
		cmocka_unit_test(test_bad_int),
		cmocka_unit_test(test_int_ranges),
		cmocka_unit_test(test_bad_bool),
		cmocka_unit_test(test_bad_mode),
		cmocka_unit_test(test_bad_enum),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_long_value_within_field_size),
		cmocka_unit_test(test_relative_dirs),
		cmocka_unit_test(test_base_url),
		cmocka_unit_test(test_session_limits),
		cmocka_unit_test(test_search_index_name),
		cmocka_unit_test(test_conf_workers),
		cmocka_unit_test_setup_teardown(test_conf_load_file, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_conf_load_missing, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_conf_load_directory_refused, dir_setup, dir_teardown),
		cmocka_unit_test(test_err_buffer_bounded),
		cmocka_unit_test(test_security_secret_key_and_require_2fa),
		cmocka_unit_test(test_sla_targets),
		cmocka_unit_test(test_database_galera_sync_wait_and_tcp_node),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

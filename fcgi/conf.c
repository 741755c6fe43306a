/*
 * conf.c — the INI configuration (README "Configuration").  Parsing is
 * libinih's; the keys
 * are a table, so every key has one type, one range and one place where it
 * lands in struct conf.  Unknown sections or keys and bad values are refused
 * with "file:line: message".
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extern.h"

enum ktype { K_STR, K_INT, K_BOOL, K_MODE, K_ENUM, K_SLA };

struct key {
	const char *section, *name;
	enum ktype type;
	size_t off, size;       /* size: buffer size for K_STR, sizeof for numbers */
	long min, max;
	const char *const *names; /* K_ENUM: value names, index = value */
};

static const char *const log_formats[] = { "text", "json", NULL };
static const char *const starttls_names[] = { "required", "optional", "off", NULL };
static const char *const unknown_sender_names[] = { "drop", "ticket", NULL };
static const char *const require_2fa_names[] = { "admins", "staff", "none", NULL };
/* [tickets] auto_assign; assign.c names the mode in audit rows with it */
const char *const assign_mode_names[ASSIGN__MAX + 1] = {
	[ASSIGN_OFF] = "off", [ASSIGN_ROUND_ROBIN] = "round_robin",
	[ASSIGN_LEAST_OPEN] = "least_open", [ASSIGN__MAX] = NULL,
};

#define S(sec, k, f) { sec, k, K_STR, offsetof(struct conf, f), sizeof(((struct conf *)0)->f), 0, 0, NULL }
#define I(sec, k, f, lo, hi) { sec, k, K_INT, offsetof(struct conf, f), sizeof(((struct conf *)0)->f), lo, hi, NULL }
#define B(sec, k, f) { sec, k, K_BOOL, offsetof(struct conf, f), sizeof(int), 0, 1, NULL }
#define M(sec, k, f) { sec, k, K_MODE, offsetof(struct conf, f), sizeof(unsigned), 0, 07777, NULL }
#define L(sec, k, f) { sec, k, K_SLA, offsetof(struct conf, f), sizeof(((struct conf *)0)->f), 1, 8760, NULL }
#define E(sec, k, f, n) { sec, k, K_ENUM, offsetof(struct conf, f), sizeof(int), 0, 0, n }

static const struct key keys[] = {
	S("server", "listen", listen),
	M("server", "socket_mode", socket_mode),
	I("server", "workers", workers, 0, 256),
	I("server", "max_requests", max_requests, 0, 1000000000L),
	I("server", "shutdown_timeout", shutdown_timeout, 1, 3600),
	I("server", "max_body", max_body, 1024, 16L * 1024 * 1024),
	S("server", "views_dir", views_dir),
	S("server", "schema_dir", schema_dir),
	E("server", "log_format", log_json, log_formats),
	S("server", "log_file", log_file),
	S("server", "user", user),
	S("database", "host", db_host),
	I("database", "port", db_port, 1, 65535),
	S("database", "socket", db_socket),
	S("database", "name", db_name),
	S("database", "user", db_user),
	S("database", "password", db_password),
	I("database", "connect_timeout", db_connect_timeout, 1, 300),
	I("database", "read_timeout", db_read_timeout, 1, 3600),
	I("database", "write_timeout", db_write_timeout, 1, 3600),
	S("database", "backup_dir", backup_dir),
	I("database", "backup_keep", backup_keep, 1, 1000),
	B("database", "galera_sync_wait", db_galera_sync_wait),
	S("smtp", "host", smtp_host),
	I("smtp", "port", smtp_port, 1, 65535),
	E("smtp", "starttls", smtp_starttls, starttls_names),
	S("smtp", "user", smtp_user),
	S("smtp", "password", smtp_password),
	S("smtp", "from", smtp_from),
	I("smtp", "timeout", smtp_timeout, 1, 3600),
	I("smtp", "give_up_after", smtp_give_up_after, 60, 365L * 86400),
	B("security", "secure_cookies", secure_cookies),
	I("security", "argon2_memory", argon2_memory, 19456, 4L * 1024 * 1024),
	I("security", "argon2_time", argon2_time, 2, 100),
	I("security", "argon2_parallelism", argon2_parallelism, 1, 64),
	I("security", "max_concurrent_hashes", max_concurrent_hashes, 1, 1024),
	S("security", "hash_slot_dir", hash_slot_dir),
	I("security", "session_idle", session_idle, 60, 30L * 86400),
	I("security", "session_absolute", session_absolute, 300, 365L * 86400),
	S("security", "secret_key", secret_key),
	E("security", "require_2fa", require_2fa, require_2fa_names),
	S("site", "name", site_name),
	S("site", "base_url", base_url),
	I("tickets", "auto_close_days", auto_close_days, 1, 3650),
	I("tickets", "page_size", page_size, 5, 200),
	E("tickets", "auto_assign", auto_assign, assign_mode_names),
	L("sla", "first_response_hours", sla_first_response),
	L("sla", "resolution_hours", sla_resolution),
	I("limits", "admin_mails_per_address", admin_mails_per_address, 0, 100000),
	I("limits", "admin_mails_per_account", admin_mails_per_account, 0, 100000),
	I("retention", "audit_days", audit_days, 1, 36500),
	I("retention", "login_failures_days", login_failures_days, 1, 36500),
	I("retention", "webhook_days", webhook_days, 1, 36500),
	S("mail_in", "address", mailin_address),
	I("mail_in", "max_bytes", mailin_max_bytes, 64L * 1024, 1024L * 1024 * 1024),
	E("mail_in", "unknown_senders", mailin_unknown_senders, unknown_sender_names),
	I("mail_in", "tickets_per_hour", mailin_tickets_per_hour, 0, 100000),
	I("mail_in", "keep_rejected_days", mailin_keep_rejected_days, 1, 36500),
	S("mail_in", "imap_url", imap_url),
	S("mail_in", "imap_user", imap_user),
	S("mail_in", "imap_password", imap_password),
	S("mail_in", "imap_folder", imap_folder),
	S("mail_in", "imap_done_folder", imap_done_folder),
	I("mail_in", "imap_poll_interval", imap_poll_interval, 1, 86400),
	E("mail_in", "imap_starttls", imap_starttls, starttls_names),
	I("mail_in", "imap_timeout", imap_timeout, 1, 3600),
	I("attachments", "max_file_bytes", attach_max_file_bytes, 1, ATTACH_MAX_REQUEST_BYTES),
	I("api", "requests_per_minute", api_requests_per_minute, 1, 1000000),
	S("webhooks", "allow", webhooks_allow),
	B("webhooks", "allow_http", webhooks_allow_http),
	I("webhooks", "timeout", webhooks_timeout, 1, 120),
	I("webhooks", "give_up_after", webhooks_give_up_after, 60, 30L * 86400),
	S("search", "host", search_host),
	I("search", "port", search_port, 1, 65535),
	S("search", "index", search_index),
	I("search", "connect_timeout", search_connect_timeout, 1, 60),
	I("search", "timeout", search_timeout, 1, 300),
	I("search", "query_time", search_query_time, 10, 60000),
	I("search", "probe_matches", search_probe_matches, 1, 1000000),
	I("search", "poll_interval", search_poll_interval, 10, 10000),
};

void conf_defaults(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->listen, sizeof(c->listen), "/run/ccr/ccrd.sock");
	c->socket_mode = 0660;
	c->workers = 0;
	c->max_requests = 10000;
	c->shutdown_timeout = 10;
	c->max_body = 64 * 1024;
	snprintf(c->views_dir, sizeof(c->views_dir), "/usr/share/ccr/views");
	snprintf(c->schema_dir, sizeof(c->schema_dir), "/usr/share/ccr/schema");
	snprintf(c->db_host, sizeof(c->db_host), "localhost");
	c->db_port = 3306;
	snprintf(c->db_name, sizeof(c->db_name), "ccr");
	snprintf(c->db_user, sizeof(c->db_user), "ccr");
	c->db_connect_timeout = 3;
	c->db_read_timeout = 5;
	c->db_write_timeout = 5;
	snprintf(c->backup_dir, sizeof(c->backup_dir), "/var/backups/ccr");
	c->backup_keep = 7;
	snprintf(c->smtp_host, sizeof(c->smtp_host), "127.0.0.1");
	c->smtp_port = 25;
	c->smtp_starttls = STARTTLS_REQUIRED;
	snprintf(c->smtp_from, sizeof(c->smtp_from), "Customer Care Registry <noreply@localhost>");
	c->smtp_timeout = 30;
	c->smtp_give_up_after = 3 * 86400;
	c->secure_cookies = 1;
	c->argon2_memory = 19456;
	c->argon2_time = 2;
	c->argon2_parallelism = 1;
	c->max_concurrent_hashes = 2;
	snprintf(c->hash_slot_dir, sizeof(c->hash_slot_dir), "/run/ccr");
	c->session_idle = 2 * 3600;
	c->session_absolute = 7 * 86400;
	c->require_2fa = R2FA_ADMINS;
	snprintf(c->site_name, sizeof(c->site_name), "Customer Care Registry");
	snprintf(c->base_url, sizeof(c->base_url), "http://localhost");
	c->auto_close_days = 7;
	conf_sla_parse(SLA_FIRST_RESPONSE_DEFAULT, c->sla_first_response, NULL, 0);
	conf_sla_parse(SLA_RESOLUTION_DEFAULT, c->sla_resolution, NULL, 0);
	c->page_size = 25;
	c->admin_mails_per_address = 10;
	c->admin_mails_per_account = 10;
	c->audit_days = 365;
	c->login_failures_days = 1;
	c->webhook_days = 30;
	c->mailin_max_bytes = 25L * 1024 * 1024;
	c->mailin_unknown_senders = UNKNOWN_DROP;
	c->mailin_tickets_per_hour = 20;
	c->mailin_keep_rejected_days = 30;
	snprintf(c->imap_folder, sizeof(c->imap_folder), "INBOX");
	snprintf(c->imap_done_folder, sizeof(c->imap_done_folder), "Done");
	c->imap_poll_interval = 60;
	c->attach_max_file_bytes = 10L * 1024 * 1024;
	c->imap_starttls = STARTTLS_REQUIRED;
	c->imap_timeout = 60;
	c->api_requests_per_minute = 600;
	c->webhooks_timeout = 10;
	c->webhooks_give_up_after = 3L * 86400;
	snprintf(c->search_host, sizeof(c->search_host), "127.0.0.1");
	c->search_port = 9306;
	snprintf(c->search_index, sizeof(c->search_index), "ccr_tickets");
	c->search_connect_timeout = 1;
	c->search_timeout = 5;
	c->search_query_time = 1000;
	c->search_probe_matches = 1000;
	c->search_poll_interval = 150;
}

struct parse_state {
	struct conf *c;
	char err[256];          /* first handler error, without the file:line prefix */
	int err_line;           /* the line it belongs to */
	int line;               /* lines handed to inih so far */
	int too_long;           /* the line that exceeded inih's buffer, or 0 */
	char too_long_key[48];  /* its key (never its value: it may be a password) */
	const char *text;       /* conf_load_string: what is left to read */
	FILE *f;                /* conf_load: the file */
};

static int set_err(struct parse_state *ps, const char *fmt, const char *a, const char *b)
{
	if (ps->err[0] == '\0') {
		snprintf(ps->err, sizeof(ps->err), fmt, a, b);
		ps->err_line = ps->line;
	}
	return 0;               /* inih: 0 = error on this line */
}

/* The line reader behind inih: counts lines, so an error message is tied
 * to its line, and stops at a line longer than inih's buffer instead of
 * letting inih split it silently (Debian's libinih reads 199 bytes). */
static void note_too_long(struct parse_state *ps, const char *line)
{
	size_t k = strcspn(line, "=:\n");

	while (k > 0 && (line[k - 1] == ' ' || line[k - 1] == '\t'))
		k--;
	while (k > 0 && (*line == ' ' || *line == '\t'))
		line++, k--;
	snprintf(ps->too_long_key, sizeof(ps->too_long_key), "%.*s", (int)(k < 40 ? k : 40), line);
	ps->too_long = ps->line + 1;
}

static char *next_line(char *str, int num, void *stream)
{
	struct parse_state *ps = stream;
	size_t n = 0;

	if (ps->too_long)
		return NULL;
	if (ps->f) {
		if (fgets(str, num, ps->f) == NULL)
			return NULL;
		n = strlen(str);
		if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(ps->f)) {
			note_too_long(ps, str);
			return NULL;
		}
	} else {
		if (*ps->text == '\0')
			return NULL;
		const char *nl = strchr(ps->text, '\n');
		n = nl ? (size_t)(nl - ps->text) + 1 : strlen(ps->text);
		if (n > (size_t)num - 1) {
			note_too_long(ps, ps->text);
			return NULL;
		}
		memcpy(str, ps->text, n);
		str[n] = '\0';
		ps->text += n;
	}
	ps->line++;
	return str;
}

static int set_number(const struct key *k, void *dst, long v)
{
	if (k->size == sizeof(long))
		*(long *)dst = v;
	else
		*(int *)dst = (int)v;
	return 0;
}

/* The priorities as [sla] spells them, in enum priority's order (conf.c
 * stays free of the ticket module, so the config fuzzer links it alone). */
static const char *const sla_priorities[PRIO__MAX] = {
	[PRIO_LOW] = "low", [PRIO_NORMAL] = "normal", [PRIO_HIGH] = "high", [PRIO_URGENT] = "urgent",
};

/* conf_sla_parse: a service level, "off" or one "PRIORITY:HOURS" for each
 * of urgent, high, normal and low (any order, separated by spaces; hours
 * a whole number 1..8760), into out[4] as seconds in enum priority's
 * order (all 0 for "off").  0, or -1 with a message in why (when given)
 * and out untouched. */
int conf_sla_parse(const char *value, long out[4], char *why, size_t whylen)
{
	long v[4] = { 0, 0, 0, 0 };
	const char *p = value;
	int seen = 0;

	if (!strcmp(value, "off")) {
		memcpy(out, v, sizeof(v));
		return 0;
	}
	while (*p) {
		char name[16];
		size_t n = 0;
		int i;
		if (*p == ' ' || *p == '\t') {
			p++;
			continue;
		}
		while (p[n] && p[n] != ':' && p[n] != ' ' && n < sizeof(name) - 1)
			n++;
		memcpy(name, p, n);
		name[n] = '\0';
		p += n;
		for (i = 0; i < 4 && strcmp(sla_priorities[i], name); i++)
			;
		if (i == 4 || *p != ':') {
			if (why)
				snprintf(why, whylen, "expected off or PRIORITY:HOURS for urgent, high, normal and low");
			return -1;
		}
		if (seen & (1 << i)) {
			if (why)
				snprintf(why, whylen, "%s is given twice", sla_priorities[i]);
			return -1;
		}
		p++;
		char *end;
		errno = 0;
		long h = *p >= '0' && *p <= '9' ? strtol(p, &end, 10) : -1;
		if (h < 1 || h > 8760 || errno || (*end != '\0' && *end != ' ' && *end != '\t')) {
			if (why)
				snprintf(why, whylen, "hours of %s must be a whole number in 1..8760", sla_priorities[i]);
			return -1;
		}
		p = end;
		v[i] = h * 3600;
		seen |= 1 << i;
	}
	if (seen != 0xf) {
		if (why)
			snprintf(why, whylen, "give off, or hours for each of urgent, high, normal and low");
		return -1;
	}
	memcpy(out, v, sizeof(v));
	return 0;
}

/* inih callback: 1 when the line is good, 0 on error (inih records its line). */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *ps = user;
	const struct key *k = NULL;
	int known_section = 0;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcmp(keys[i].section, section) != 0)
			continue;
		known_section = 1;
		if (strcmp(keys[i].name, name) == 0) {
			k = &keys[i];
			break;
		}
	}
	if (!known_section)
		return set_err(ps, "unknown section [%s]%s", section, "");
	if (k == NULL)
		return set_err(ps, "unknown key '%s' in [%s]", name, section);

	void *dst = (char *)ps->c + k->off;
	switch (k->type) {
	case K_STR:
		if (strlen(value) >= k->size)
			return set_err(ps, "value of '%s' is too long%s", name, "");
		if (!header_safe(value))
			return set_err(ps, "value of '%s' has control characters%s", name, "");
		memcpy(dst, value, strlen(value) + 1);
		return 1;
	case K_INT: {
		char *end;
		long v;
		errno = 0;
		v = strtol(value, &end, 10);
		if (errno || end == value || *end != '\0')
			return set_err(ps, "'%s' must be a whole number, not '%s'", name, value);
		if (v < k->min || v > k->max) {
			char range[64];
			snprintf(range, sizeof(range), "%ld..%ld", k->min, k->max);
			return set_err(ps, "'%s' must be in %s", name, range);
		}
		return set_number(k, dst, v) == 0;
	}
	case K_BOOL:
		if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on") || !strcmp(value, "1"))
			*(int *)dst = 1;
		else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "off") || !strcmp(value, "0"))
			*(int *)dst = 0;
		else
			return set_err(ps, "'%s' must be true or false, not '%s'", name, value);
		return 1;
	case K_MODE: {
		char *end;
		unsigned long v;
		errno = 0;
		v = strtoul(value, &end, 8);
		if (errno || end == value || *end != '\0' || v > 07777)
			return set_err(ps, "'%s' must be an octal mode like 0660, not '%s'", name, value);
		*(unsigned *)dst = (unsigned)v;
		return 1;
	}
	case K_SLA: {
		char why[96];
		if (conf_sla_parse(value, (long *)dst, why, sizeof(why)) == -1)
			return set_err(ps, "'%s': %s", name, why);
		return 1;
	}
	case K_ENUM:
		for (i = 0; k->names[i]; i++)
			if (strcmp(k->names[i], value) == 0) {
				*(int *)dst = (int)i;
				return 1;
			}
		return set_err(ps, "'%s' has an unknown value '%s'", name, value);
	}
	return 0;
}

/* Cross-key rules that a single line cannot show. 0 / -1 with err. */
static int conf_check(const struct conf *c, char *err, size_t errlen)
{
	if (c->listen[0] == '\0') {
		snprintf(err, errlen, "%s: [server] listen is empty", c->path);
		return -1;
	}
	if (c->views_dir[0] != '/' || c->schema_dir[0] != '/') {
		snprintf(err, errlen, "%s: [server] views_dir and schema_dir must be absolute paths", c->path);
		return -1;
	}
	if (strncmp(c->base_url, "http://", 7) != 0 && strncmp(c->base_url, "https://", 8) != 0) {
		snprintf(err, errlen, "%s: [site] base_url must start with http:// or https://", c->path);
		return -1;
	}
	if (c->mailin_address[0] && (!email_valid(c->mailin_address) ||
	    strchr(c->mailin_address, '+'))) {
		snprintf(err, errlen, "%s: [mail_in] address must be a plain LOCAL@DOMAIN address "
		    "(no '+': the reply token goes there)", c->path);
		return -1;
	}
	if (c->imap_url[0]) {
		if (strncmp(c->imap_url, "imaps://", 8) != 0 && strncmp(c->imap_url, "imap://", 7) != 0) {
			snprintf(err, errlen, "%s: [mail_in] imap_url must start with imaps:// or imap://",
			    c->path);
			return -1;
		}
		if (c->mailin_address[0] == '\0') {
			snprintf(err, errlen, "%s: [mail_in] imap_url needs address (the support address)",
			    c->path);
			return -1;
		}
		if (c->imap_user[0] == '\0' || c->imap_folder[0] == '\0' || c->imap_done_folder[0] == '\0' ||
		    strcmp(c->imap_folder, c->imap_done_folder) == 0) {
			snprintf(err, errlen, "%s: [mail_in] imap_url needs imap_user, and imap_folder and "
			    "imap_done_folder must differ", c->path);
			return -1;
		}
	}
	if (c->secret_key[0] && strlen(c->secret_key) < SECRET_KEY_MIN) {
		snprintf(err, errlen, "%s: [security] secret_key must be at least %d characters "
		    "(openssl rand -hex 32)", c->path, SECRET_KEY_MIN);
		return -1;
	}
	if (webhook_allow_check(c->webhooks_allow) == -1) {
		snprintf(err, errlen, "%s: [webhooks] allow must list IP addresses or CIDR blocks "
		    "(127.0.0.1, 10.0.0.0/8, ::1), separated by commas or spaces", c->path);
		return -1;
	}
	if (c->search_index[strspn(c->search_index, "abcdefghijklmnopqrstuvwxyz"
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")] != '\0' || c->search_index[0] == '\0') {
		/* it is spelled into SphinxQL, which has no bound parameters */
		snprintf(err, errlen, "%s: [search] index must be a name of letters, digits and _",
		    c->path);
		return -1;
	}
	if (c->session_idle > c->session_absolute) {
		snprintf(err, errlen, "%s: [security] session_idle exceeds session_absolute", c->path);
		return -1;
	}
	return 0;
}

static int finish(struct conf *c, struct parse_state *ps, int rc, char *err, size_t errlen)
{
	if (ps->too_long && (rc == 0 || rc > ps->too_long)) {
		snprintf(err, errlen, "%s:%d: line of '%s' too long (at most 198 bytes)", c->path,
		    ps->too_long, ps->too_long_key);
		return -1;
	}
	if (rc == -1) {
		snprintf(err, errlen, "%s: cannot read", c->path);
		return -1;
	}
	if (rc == -2) {
		snprintf(err, errlen, "%s: out of memory", c->path);
		return -1;
	}
	if (rc > 0) {
		snprintf(err, errlen, "%s:%d: %s", c->path, rc, ps->err[0] && ps->err_line == rc
		    ? ps->err : "syntax error (expected [section] or key = value)");
		return -1;
	}
	/* an imap_url without a scheme is imaps:// (TLS from the first byte) */
	if (c->imap_url[0] && strstr(c->imap_url, "://") == NULL) {
		char u[sizeof(c->imap_url)];
		if ((size_t)snprintf(u, sizeof(u), "imaps://%s", c->imap_url) >= sizeof(u)) {
			snprintf(err, errlen, "%s: [mail_in] imap_url is too long", c->path);
			return -1;
		}
		memcpy(c->imap_url, u, sizeof(u));
	}
	/* strip a trailing slash from base_url so links join cleanly */
	size_t n = strlen(c->base_url);
	while (n > 0 && c->base_url[n - 1] == '/')
		c->base_url[--n] = '\0';
	return conf_check(c, err, errlen);
}

/* conf_load: defaults, then the file.  0, or -1 with "file:line: why" in err. */
int conf_load(struct conf *c, const char *path, char *err, size_t errlen)
{
	struct parse_state ps = { .c = c };
	struct stat sb;
	int rc;

	conf_defaults(c);
	snprintf(c->path, sizeof(c->path), "%s", path);
	ps.f = fopen(path, "r");
	if (ps.f == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(ps.f), &sb) == -1 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		fclose(ps.f);
		return -1;
	}
	rc = ini_parse_stream(next_line, &ps, on_key, &ps);
	if (rc == 0 && ferror(ps.f))
		rc = -1;
	fclose(ps.f);
	return finish(c, &ps, rc, err, errlen);
}

/* conf_load_string: as conf_load, from memory (unit tests). */
int conf_load_string(struct conf *c, const char *text, const char *name, char *err, size_t errlen)
{
	struct parse_state ps = { .c = c, .text = text };
	int rc;

	conf_defaults(c);
	snprintf(c->path, sizeof(c->path), "%s", name);
	rc = ini_parse_stream(next_line, &ps, on_key, &ps);
	return finish(c, &ps, rc, err, errlen);
}

int conf_workers(const struct conf *c)
{
	long n;

	if (c->workers > 0)
		return c->workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)(2 * n) : 2;
}

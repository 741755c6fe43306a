/*
 * fuzz_conf.c — conf_load_string on a NUL-terminated INI text.  On 0 every
 * string field is NUL-terminated and header-safe, every number inside the
 * range of conf.c's key table, and the cross-key rules hold; on -1 the
 * message is a non-empty, NUL-terminated "name:..." line.
 */
#include "extern.h"
#include "fuzz_util.h"

#define STR(f) { #f, offsetof(struct conf, f), sizeof(((struct conf *)0)->f) }
static const struct { const char *name; size_t off, size; } strs[] = {
	STR(path), STR(listen), STR(views_dir), STR(schema_dir), STR(log_file), STR(user),
	STR(db_host), STR(db_socket), STR(db_name), STR(db_user), STR(db_password),
	STR(backup_dir), STR(smtp_host), STR(smtp_user), STR(smtp_password), STR(smtp_from),
	STR(hash_slot_dir), STR(site_name), STR(base_url),
};

#define IN(v, lo, hi) CHECK((long)(v) >= (long)(lo) && (long)(v) <= (long)(hi))

static void check_conf(const struct conf *c)
{
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		const char *s = (const char *)c + strs[i].off;
		if (!nul_within(s, strs[i].size)) {
			fprintf(stderr, "field %s not NUL-terminated\n", strs[i].name);
			abort();
		}
		if (i > 0 && !header_safe(s)) {
			fprintf(stderr, "field %s has control characters\n", strs[i].name);
			abort();
		}
	}
	CHECK(c->socket_mode <= 07777);
	IN(c->workers, 0, 256);
	IN(c->max_requests, 0, 1000000000L);
	IN(c->shutdown_timeout, 1, 3600);
	IN(c->max_body, 1024, 16L * 1024 * 1024);
	IN(c->log_json, 0, 1);
	IN(c->db_port, 1, 65535);
	IN(c->db_connect_timeout, 1, 300);
	IN(c->db_read_timeout, 1, 3600);
	IN(c->db_write_timeout, 1, 3600);
	IN(c->backup_keep, 1, 1000);
	IN(c->db_galera_sync_wait, 0, 1);
	IN(c->smtp_port, 1, 65535);
	IN(c->smtp_starttls, STARTTLS_REQUIRED, STARTTLS_OFF);
	IN(c->smtp_timeout, 1, 3600);
	IN(c->smtp_give_up_after, 60, 365L * 86400);
	IN(c->secure_cookies, 0, 1);
	IN(c->argon2_memory, 19456, 4L * 1024 * 1024);
	IN(c->argon2_time, 2, 100);
	IN(c->argon2_parallelism, 1, 64);
	IN(c->max_concurrent_hashes, 1, 1024);
	IN(c->session_idle, 60, 30L * 86400);
	IN(c->session_absolute, 300, 365L * 86400);
	IN(c->auto_close_days, 1, 3650);
	/* [sla]: each target all off (0) or every priority 1..8760 hours */
	for (int k = 0; k < 2; k++) {
		const long *v = k ? c->sla_resolution : c->sla_first_response;
		int off = v[0] == 0;
		for (int p = 0; p < 4; p++) {
			if (off)
				CHECK(v[p] == 0);
			else
				CHECK(v[p] >= 3600 && v[p] <= 8760L * 3600 && v[p] % 3600 == 0);
		}
	}
	IN(c->page_size, 5, 200);
	/* the cross-key rules */
	CHECK(c->listen[0] != '\0');
	CHECK(c->views_dir[0] == '/' && c->schema_dir[0] == '/');
	CHECK(strncmp(c->base_url, "http://", 7) == 0 || strncmp(c->base_url, "https://", 8) == 0);
	CHECK(c->base_url[strlen(c->base_url) - 1] != '/');
	CHECK(c->session_idle <= c->session_absolute);
	CHECK(conf_workers(c) > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct conf c;   /* ~40 KB: not on the stack */
	char err[512];
	char *text = fz_strndup(data, size);

	memset(err, 'X', sizeof(err));
	int rc = conf_load_string(&c, text, "fuzz.conf", err, sizeof(err));
	CHECK(rc == 0 || rc == -1);
	CHECK(strcmp(c.path, "fuzz.conf") == 0);
	if (rc == 0) {
		check_conf(&c);
	} else {
		CHECK(nul_within(err, sizeof(err)));
		CHECK(strncmp(err, "fuzz.conf:", 10) == 0);
	}
	free(text);
	return 0;
}

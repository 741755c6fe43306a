/*
 * test_password.c — the account form fields' rules and messages (form.c) and
 * Argon2id hashing with its bound on concurrent hashes (password.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "extern.h"

#define MSG_FIRST_REQ  "First name is required"
#define MSG_FIRST_LONG "First name is too long"
#define MSG_LAST_REQ   "Last name is required"
#define MSG_LAST_LONG  "Last name is too long"
#define MSG_EMAIL      "Invalid email"
#define MSG_PW_SHORT   "Password must be at least 8 characters long"
#define MSG_PW_LONG    "Password is too long"
#define MSG_CONFIRM    "Passwords do not match"

#define PREFIX "$argon2id$v=19$m=19456,t=2,p=1$"

/* n copies of the UTF-8 character ch (static buffer, one at a time) */
static const char *rep(const char *ch, size_t n)
{
	static char buf[2048];
	size_t l = strlen(ch);

	assert_true(n * l < sizeof(buf));
	for (size_t i = 0; i < n; i++)
		memcpy(buf + i * l, ch, l);
	buf[n * l] = '\0';
	return buf;
}

static void assert_msg(const char *got, const char *want)
{
	if (want == NULL && got != NULL)
		fail_msg("expected no message, got \"%s\"", got);
	if (want != NULL && (got == NULL || strcmp(got, want) != 0))
		fail_msg("expected \"%s\", got \"%s\"", want, got ? got : "(null)");
}

/* ---- the field rules ---------------------------------------------------- */

static void name_rules(const char *(*check)(const char *), const char *req, const char *lng)
{
	assert_msg(check(NULL), req);
	assert_msg(check(""), req);
	assert_msg(check("A"), NULL);
	assert_msg(check("Ann-Marie O'Neil"), NULL);
	assert_msg(check(rep("a", 63)), NULL);
	assert_msg(check(rep("a", 64)), NULL);
	assert_msg(check(rep("a", 65)), lng);
	assert_msg(check(rep("a", 500)), lng);
	/* characters, not bytes: 64 two-, three- and four-byte characters fit */
	assert_msg(check(rep("\xc3\xa9", 64)), NULL);           /* 128 bytes */
	assert_msg(check(rep("\xc3\xa9", 65)), lng);
	assert_msg(check(rep("\xe6\x97\xa5", 64)), NULL);       /* 192 bytes */
	assert_msg(check(rep("\xe6\x97\xa5", 65)), lng);
	assert_msg(check(rep("\xf0\x9f\x98\x80", 64)), NULL);   /* 256 bytes */
	assert_msg(check(rep("\xf0\x9f\x98\x80", 65)), lng);
	assert_msg(check("\xc3\xa9"), NULL);
}

static void test_check_first_name(void **state)
{
	(void)state;
	name_rules(form_check_first_name, MSG_FIRST_REQ, MSG_FIRST_LONG);
}

static void test_check_last_name(void **state)
{
	(void)state;
	name_rules(form_check_last_name, MSG_LAST_REQ, MSG_LAST_LONG);
}

static void test_check_email(void **state)
{
	(void)state;
	char buf[300];

	assert_msg(form_check_email("ann@example.com"), NULL);
	assert_msg(form_check_email("a@b.c"), NULL);
	assert_msg(form_check_email(NULL), MSG_EMAIL);
	assert_msg(form_check_email(""), MSG_EMAIL);
	assert_msg(form_check_email("ann"), MSG_EMAIL);
	assert_msg(form_check_email("@example.com"), MSG_EMAIL);
	assert_msg(form_check_email("ann@example"), MSG_EMAIL);
	assert_msg(form_check_email("ann@@example.com"), MSG_EMAIL);
	assert_msg(form_check_email("a@b@example.com"), MSG_EMAIL);
	assert_msg(form_check_email("ann smith@example.com"), MSG_EMAIL);
	assert_msg(form_check_email("ann@exa mple.com"), MSG_EMAIL);
	/* 254 bytes pass, 255 do not */
	memset(buf, 'a', 242);
	memcpy(buf + 242, "@example.com", 13);
	assert_int_equal(strlen(buf), 254);
	assert_msg(form_check_email(buf), NULL);
	memset(buf, 'a', 243);
	memcpy(buf + 243, "@example.com", 13);
	assert_int_equal(strlen(buf), 255);
	assert_msg(form_check_email(buf), MSG_EMAIL);
}

static void test_check_password(void **state)
{
	(void)state;
	assert_msg(form_check_password(NULL), MSG_PW_SHORT);
	assert_msg(form_check_password(""), MSG_PW_SHORT);
	assert_msg(form_check_password(rep("x", 7)), MSG_PW_SHORT);
	assert_msg(form_check_password(rep("x", 8)), NULL);
	assert_msg(form_check_password(rep("x", 128)), NULL);
	assert_msg(form_check_password(rep("x", 129)), MSG_PW_LONG);
	assert_msg(form_check_password(rep("x", 1000)), MSG_PW_LONG);
	/* characters, not bytes */
	assert_msg(form_check_password(rep("\xc3\xa9", 7)), MSG_PW_SHORT);          /* 14 bytes */
	assert_msg(form_check_password(rep("\xc3\xa9", 8)), NULL);
	assert_msg(form_check_password(rep("\xe2\x82\xac", 128)), NULL);            /* 384 bytes */
	assert_msg(form_check_password(rep("\xe2\x82\xac", 129)), MSG_PW_LONG);
	assert_msg(form_check_password(rep("\xf0\x9f\x98\x80", 128)), NULL);        /* 512 bytes */
	assert_msg(form_check_password(rep("\xf0\x9f\x98\x80", 129)), MSG_PW_LONG);
	assert_msg(form_check_password(rep("\xf0\x9f\x98\x80", 7)), MSG_PW_SHORT);  /* 28 bytes */
	/* spaces count: a password is not trimmed */
	assert_msg(form_check_password("        "), NULL);
}

static void test_check_confirm(void **state)
{
	(void)state;
	assert_msg(form_check_confirm("correct horse", "correct horse"), NULL);
	assert_msg(form_check_confirm("correct horse", "correct hors"), MSG_CONFIRM);
	assert_msg(form_check_confirm("correct horse", "correct horse "), MSG_CONFIRM);
	assert_msg(form_check_confirm("Secret123", "secret123"), MSG_CONFIRM);
	assert_msg(form_check_confirm("p\xc3\xa9ssword", "pe\xcc\x81ssword"), MSG_CONFIRM);  /* bytes */
	assert_msg(form_check_confirm("password", NULL), MSG_CONFIRM);
	assert_msg(form_check_confirm(NULL, "password"), MSG_CONFIRM);
	assert_msg(form_check_confirm(NULL, NULL), MSG_CONFIRM);
	assert_msg(form_check_confirm("password", ""), MSG_CONFIRM);
}

/* ---- Argon2id ----------------------------------------------------------- */

static struct conf conf;
static char slot_dir[64];

static int group_setup(void **state)
{
	(void)state;
	snprintf(slot_dir, sizeof(slot_dir), "/tmp/ccr-slots-XXXXXX");
	if (mkdtemp(slot_dir) == NULL)
		return -1;
	conf_defaults(&conf);
	snprintf(conf.hash_slot_dir, sizeof(conf.hash_slot_dir), "%s", slot_dir);
	/* one slot for the whole program: password.c opens its slot files once */
	conf.max_concurrent_hashes = 1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	char path[128];
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/hash-slot.%d", slot_dir, i);
		unlink(path);
	}
	return rmdir(slot_dir);
}

static void test_hash_and_verify(void **state)
{
	(void)state;
	char h1[256], h2[256];
	unsigned long n0 = password_hash_count();

	memset(h1, 'Z', sizeof(h1));
	assert_int_equal(password_hash(&conf, "correct horse battery", h1), 0);
	if (strncmp(h1, PREFIX, strlen(PREFIX)) != 0)
		fail_msg("encoded \"%s\" does not start with %s", h1, PREFIX);
	assert_true(strlen(h1) < 256);
	/* salt and hash follow: "$<salt b64>$<hash b64>" */
	const char *salt = h1 + strlen(PREFIX), *dollar = strchr(salt, '$');
	assert_non_null(dollar);
	assert_true(dollar - salt >= 22);               /* 16 bytes of salt */
	assert_true(strlen(dollar + 1) >= 43);          /* 32 bytes of hash */

	assert_int_equal(password_verify(&conf, h1, "correct horse battery"), 1);
	assert_int_equal(password_verify(&conf, h1, "correct horse batterz"), 0);
	assert_int_equal(password_verify(&conf, h1, "correct horse battery "), 0);
	assert_int_equal(password_verify(&conf, h1, "Correct horse battery"), 0);
	assert_int_equal(password_verify(&conf, h1, ""), 0);

	/* the same password hashes differently each time (random salt) */
	assert_int_equal(password_hash(&conf, "correct horse battery", h2), 0);
	assert_string_not_equal(h1, h2);
	assert_int_equal(password_verify(&conf, h2, "correct horse battery"), 1);
	assert_true(password_hash_count() >= n0 + 7);
}

static void test_hash_multibyte_and_longest(void **state)
{
	(void)state;
	char h[256], pw[600];

	assert_int_equal(password_hash(&conf, "p\xc3\xa9ssw\xc3\xb6rd \xe2\x82\xac", h), 0);
	assert_int_equal(password_verify(&conf, h, "p\xc3\xa9ssw\xc3\xb6rd \xe2\x82\xac"), 1);
	assert_int_equal(password_verify(&conf, h, "pe\xcc\x81ssw\xc3\xb6rd \xe2\x82\xac"), 0);

	/* the longest password the rules allow: 128 four-byte characters */
	const char *longest = rep("\xf0\x9f\x98\x80", 128);
	assert_int_equal(strlen(longest), 512);
	memcpy(pw, longest, 513);
	assert_msg(form_check_password(pw), NULL);
	assert_int_equal(password_hash(&conf, pw, h), 0);
	assert_int_equal(password_verify(&conf, h, pw), 1);
	pw[511] = '\x81';
	assert_int_equal(password_verify(&conf, h, pw), 0);

	/* over the bound: refused before any hashing */
	unsigned long n0 = password_hash_count();
	memset(pw, 'x', 513);
	pw[513] = '\0';
	assert_int_equal(password_hash(&conf, pw, h), -1);
	assert_int_equal(password_verify(&conf, h, pw), 0);
	assert_int_equal(password_hash_count(), n0);
}

static void test_verify_garbage(void **state)
{
	(void)state;
	char h[256], cut[256];

	assert_int_equal(password_hash(&conf, "password1", h), 0);
	static const char *const garbage[] = {
		"", "garbage", "$argon2id$", "$argon2id$v=19$", "$argon2id$v=19$m=19456,t=2,p=1$",
		"$argon2id$v=19$m=19456,t=2,p=1$$", "$argon2id$v=19$m=x,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
		"$2y$10$abcdefghijklmnopqrstuuG7e2uEYB8h5B5a5RHOtHqV0Kqhcr5Wq",   /* bcrypt */
		"5f4dcc3b5aa765d61d8327deb882cf99",                               /* md5 */
		"password1",
	};
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
		if (password_verify(&conf, garbage[i], "password1") != 0)
			fail_msg("password_verify accepted \"%s\"", garbage[i]);
	assert_int_equal(password_verify(&conf, NULL, "password1"), 0);

	/* a real hash cut short, or with its hash part changed */
	snprintf(cut, sizeof(cut), "%s", h);
	cut[strlen(cut) - 5] = '\0';
	assert_int_equal(password_verify(&conf, cut, "password1"), 0);
	snprintf(cut, sizeof(cut), "%s", h);
	char *last = cut + strlen(cut) - 2;
	*last = *last == 'A' ? 'B' : 'A';
	assert_int_equal(password_verify(&conf, cut, "password1"), 0);
	/* a lower cost written into the string does not verify */
	snprintf(cut, sizeof(cut), "%s", h);
	char *t = strstr(cut, "t=2");
	assert_non_null(t);
	t[2] = '1';
	assert_int_equal(password_verify(&conf, cut, "password1"), 0);
	assert_int_equal(password_verify(&conf, h, "password1"), 1);
}

static void test_needs_rehash(void **state)
{
	(void)state;
	char h[256];
	struct conf c = conf;

	assert_int_equal(password_hash(&conf, "password1", h), 0);
	assert_int_equal(password_needs_rehash(&conf, h), 0);

	c.argon2_memory = 65536;
	assert_int_equal(password_needs_rehash(&c, h), 1);
	c = conf;
	c.argon2_time = 3;
	assert_int_equal(password_needs_rehash(&c, h), 1);
	c = conf;
	c.argon2_parallelism = 2;
	assert_int_equal(password_needs_rehash(&c, h), 1);

	/* a hash made with a higher cost than configured is kept */
	c = conf;
	c.argon2_time = 3;
	assert_int_equal(password_hash(&c, "password1", h), 0);
	assert_non_null(strstr(h, "$m=19456,t=3,p=1$"));
	assert_int_equal(password_needs_rehash(&conf, h), 0);
	assert_int_equal(password_needs_rehash(&c, h), 0);
	assert_int_equal(password_verify(&conf, h, "password1"), 1);
	assert_int_equal(password_needs_rehash(&conf,
	    "$argon2id$v=19$m=65536,t=4,p=2$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA"), 0);

	/* anything unreadable is rehashed */
	assert_int_equal(password_needs_rehash(&conf, NULL), 1);
	assert_int_equal(password_needs_rehash(&conf, ""), 1);
	assert_int_equal(password_needs_rehash(&conf, "garbage"), 1);
	assert_int_equal(password_needs_rehash(&conf, "$argon2i$v=19$m=65536,t=4,p=2$x$y"), 1);
	assert_int_equal(password_needs_rehash(&conf, "$2y$10$abcdefghijklmnopqrstuu"), 1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_slot_bound(void **state)
{
	(void)state;
	char path[128], h[256], good[256];
	int fd;
	double t0, dt;

	assert_int_equal(password_hash(&conf, "password1", good), 0);
	snprintf(path, sizeof(path), "%s/hash-slot.0", slot_dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	/* the slot is free between hashes */
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);

	/* now we hold the only slot: a hash waits about 2 s and gives up */
	unsigned long n0 = password_hash_count();
	t0 = now_s();
	assert_int_equal(password_hash(&conf, "password1", h), -1);
	dt = now_s() - t0;
	if (dt < 1.9 || dt > 6.0)
		fail_msg("password_hash gave up after %.2f s, expected about 2 s", dt);
	assert_int_equal(password_hash_count(), n0);   /* no hash with weaker settings */

	/* a verification is bounded the same way, and says "busy" (-1) */
	t0 = now_s();
	assert_int_equal(password_verify(&conf, good, "password1"), -1);
	dt = now_s() - t0;
	if (dt < 1.9 || dt > 6.0)
		fail_msg("password_verify gave up after %.2f s, expected about 2 s", dt);

	/* released: hashing works again, and leaves the slot free */
	assert_int_equal(flock(fd, LOCK_UN), 0);
	t0 = now_s();
	assert_int_equal(password_hash(&conf, "password1", h), 0);
	assert_true(strncmp(h, PREFIX, strlen(PREFIX)) == 0);
	assert_int_equal(password_verify(&conf, h, "password1"), 1);
	assert_true(now_s() - t0 < 5.0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	assert_int_equal(flock(fd, LOCK_UN), 0);
	close(fd);
}

/* A lock taken while a hash is running is only granted once it is done:
 * hold the slot, let a child release it after 0.5 s, and the hash waits
 * for it instead of failing. */
static void test_slot_wait_then_succeed(void **state)
{
	(void)state;
	char path[128], h[256];
	int fd;

	snprintf(path, sizeof(path), "%s/hash-slot.0", slot_dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* the child shares the open file description: its unlock frees it */
		struct timespec ts = { 0, 500 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		flock(fd, LOCK_UN);
		_exit(0);
	}
	double t0 = now_s();
	assert_int_equal(password_hash(&conf, "password1", h), 0);
	double dt = now_s() - t0;
	assert_true(dt >= 0.4);
	assert_true(dt < 2.0 + 3.0);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	close(fd);
}

/* A broken stored hash is a plain failure (0, like a wrong password, so
 * login answers "invalid credentials" and never 503/500), and it is logged
 * for the operator -- the code and its comment once disagreed on this. */
static void test_verify_broken_hash_is_logged_mismatch(void **state)
{
	(void)state;
	static const char *const broken[] = {
		"garbage", "$2y$10$abcdefghijklmnopqrstuuG7e2uEYB8h5B5a5RHOtHqV0Kqhcr5Wq",
		"$argon2id$v=19$m=19456,t=2,p=1$$",
	};
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		char path[] = "/tmp/ccr-test-pwlog-XXXXXX", buf[4096];
		int fd = mkstemp(path), saved = dup(STDERR_FILENO);
		assert_true(fd >= 0 && saved >= 0);
		assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
		int rc = password_verify(&conf, broken[i], "password1");
		assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
		close(saved);
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		close(fd);
		unlink(path);
		buf[n > 0 ? n : 0] = '\0';
		if (rc != 0)
			fail_msg("password_verify(\"%s\") = %d, want 0 (a failure, not busy)", broken[i], rc);
		if (strstr(buf, "password_verify") == NULL || strstr(buf, "hash") == NULL)
			fail_msg("broken hash \"%s\" was not logged (log: \"%s\")", broken[i], buf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_first_name),
		cmocka_unit_test(test_check_last_name),
		cmocka_unit_test(test_check_email),
		cmocka_unit_test(test_check_password),
		cmocka_unit_test(test_check_confirm),
		cmocka_unit_test(test_hash_and_verify),
		cmocka_unit_test(test_hash_multibyte_and_longest),
		cmocka_unit_test(test_verify_garbage),
		cmocka_unit_test(test_needs_rehash),
		cmocka_unit_test(test_slot_bound),
		cmocka_unit_test(test_slot_wait_then_succeed),
		cmocka_unit_test(test_verify_broken_hash_is_logged_mismatch),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/*
 * password.c — Argon2id hashing and verification (README "Accounts and
 * security"), the rehash
 * policy, and the bound on concurrent hashes across all workers: one lock
 * file per slot under hash_slot_dir, taken with flock(2), so a killed worker
 * frees its slot with its file descriptors.  Never hashes with weaker
 * settings under load: no slot within 2 s means 503.
 */
#include <argon2.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

#define SALT_LEN 16
#define HASH_LEN 32
#define SLOT_WAIT_MS 2000

static int *slot_fd;
static int nslot;
static unsigned long hash_count;   /* hashes computed by this process (tests) */

unsigned long password_hash_count(void)
{
	return hash_count;
}

static int slots_open(const struct conf *c)
{
	if (slot_fd)
		return 0;
	slot_fd = calloc((size_t)c->max_concurrent_hashes, sizeof(int));
	if (slot_fd == NULL)
		return -1;
	for (int i = 0; i < c->max_concurrent_hashes; i++) {
		char path[PATH_MAX + 32];
		snprintf(path, sizeof(path), "%s/hash-slot.%d", c->hash_slot_dir, i);
		slot_fd[i] = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (slot_fd[i] == -1) {
			log_err("%s: open %s: %s", __func__, path, strerror(errno));
			while (i-- > 0)
				close(slot_fd[i]);
			free(slot_fd);
			slot_fd = NULL;
			return -1;
		}
	}
	nslot = c->max_concurrent_hashes;
	return 0;
}

/* slot_take: lock a free slot, waiting up to 2 s.  The slot index, or -1
 * (busy: answer 503; or broken: logged). */
static int slot_take(const struct conf *c)
{
	if (slots_open(c) == -1)
		return -1;
	for (int waited = 0; waited <= SLOT_WAIT_MS; waited += 10) {
		for (int i = 0; i < nslot; i++)
			if (flock(slot_fd[i], LOCK_EX | LOCK_NB) == 0) {
				if (waited)
					metrics_add(MET_HASH_WAITS, 1);
				return i;
			}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	metrics_add(MET_HASH_BUSY, 1);
	log_warn("%s: no hash slot free within %d ms", __func__, SLOT_WAIT_MS);
	return -1;
}

static void slot_give(int i)
{
	flock(slot_fd[i], LOCK_UN);
}

/* password_hash: Argon2id encoded string into out (256 bytes) with the
 * configured cost.  0, or -1 (no slot within 2 s, or argon2 failed). */
int password_hash(const struct conf *c, const char *pw, char out[256])
{
	unsigned char salt[SALT_LEN];
	int slot, rc;

	if (strlen(pw) > 4 * 128)
		return -1;
	if (getrandom(salt, sizeof(salt), 0) != (ssize_t)sizeof(salt))
		return -1;
	slot = slot_take(c);
	if (slot < 0)
		return -1;
	rc = argon2id_hash_encoded((uint32_t)c->argon2_time, (uint32_t)c->argon2_memory,
	    (uint32_t)c->argon2_parallelism, pw, strlen(pw), salt, sizeof(salt), HASH_LEN,
	    out, 256);
	slot_give(slot);
	hash_count++;
	if (rc != ARGON2_OK) {
		log_err("%s: argon2: %s", __func__, argon2_error_message(rc));
		return -1;
	}
	return 0;
}

/* password_verify: 1 match, 0 mismatch, -1 busy (no hashing slot came
 * free; callers answer 503).  A stored hash that is not a well-formed
 * Argon2id string is a failure like a wrong password (0), never -1: the
 * user sees the normal "invalid credentials" answer and the broken hash
 * is logged for the operator.  The comparison inside argon2 is
 * constant-time. */
int password_verify(const struct conf *c, const char *encoded, const char *pw)
{
	int slot, rc;

	if (encoded == NULL)
		return 0;
	if (strncmp(encoded, "$argon2id$", 10) != 0) {
		log_err("%s: stored hash is not argon2id, treated as a mismatch", __func__);
		return 0;
	}
	if (strlen(pw) > 4 * 128)
		return 0;
	slot = slot_take(c);
	if (slot < 0)
		return -1;
	rc = argon2id_verify(encoded, pw, strlen(pw));
	slot_give(slot);
	hash_count++;
	if (rc == ARGON2_OK)
		return 1;
	if (rc == ARGON2_VERIFY_MISMATCH)
		return 0;
	log_err("%s: broken stored hash (argon2: %s), treated as a mismatch", __func__,
	    argon2_error_message(rc));
	return 0;
}

/* password_needs_rehash: 1 when encoded was made with a lower cost than
 * the configuration asks for now (then login rehashes), else 0. */
int password_needs_rehash(const struct conf *c, const char *encoded)
{
	long m = 0, t = 0, p = 0;

	if (encoded == NULL || sscanf(encoded, "$argon2id$v=19$m=%ld,t=%ld,p=%ld$", &m, &t, &p) != 3)
		return 1;
	return m < c->argon2_memory || t < c->argon2_time || p < c->argon2_parallelism;
}

/* password_dummy_verify: spend one verification on a fixed hash, so an
 * unknown email costs the same time as a known one (no account
 * enumeration by timing).
 * Returns -1 when busy, else 0. */
int password_dummy_verify(const struct conf *c)
{
	static char dummy[256];

	if (dummy[0] == '\0' && password_hash(c, "ccr-dummy-password-never-matches", dummy) == -1)
		return -1;
	return password_verify(c, dummy, "not-the-password") == -1 ? -1 : 0;
}

/*
 * hashbench.c — Argon2id helper of `make bench` (not part of ccrd).
 *
 *   hashbench encode PASSWORD M_KIB T P
 *       print one encoded Argon2id hash (16-byte random salt, 32-byte hash),
 *       the same format ccrd writes; the generator gives it to every user.
 *   hashbench verify ENCODED PASSWORD PROCS SECONDS [fresh|reuse|mmap]
 *       PROCS processes verify PASSWORD against ENCODED in a loop for
 *       SECONDS; prints "hashes N seconds S per_s R cpu_ms_per_hash C".  `fresh` (default)
 *       calls argon2id_verify() as ccrd's password_verify() does: libargon2
 *       malloc()s and free()s the m KiB matrix for every hash (after the
 *       first free, glibc's dynamic mmap threshold keeps it on the heap, so
 *       the pages stay resident and are reused); `reuse` hashes with
 *       argon2_ctx() into one buffer allocated once per process; `mmap`
 *       gives every hash fresh pages (mmap) and returns them (munmap), the
 *       cost of a worker that does not keep the matrix between logins.
 */
#include <argon2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t *buf;
static size_t buflen;

static int alloc_cb(uint8_t **memory, size_t bytes)
{
	if (buf == NULL || bytes > buflen) {
		free(buf);
		buf = malloc(bytes);
		buflen = bytes;
		if (buf == NULL)
			return -1;
		memset(buf, 0, bytes);   /* fault the pages in once */
	}
	*memory = buf;
	return 0;
}

static void free_cb(uint8_t *memory, size_t bytes)
{
	(void)memory;
	(void)bytes;
}

/* mode mmap: fresh pages for every hash, returned to the system after it */
static int mmap_alloc_cb(uint8_t **memory, size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -1;
	*memory = p;
	return 0;
}

static void mmap_free_cb(uint8_t *memory, size_t bytes)
{
	munmap(memory, bytes);
}

enum mode { FRESH, REUSE, MMAP };

static long loop(const char *enc, const char *pw, double seconds, enum mode mode)
{
	uint32_t m = 0, t = 0, p = 0;
	uint8_t salt[16] = "0123456789abcdef", out[32];
	long n = 0;
	double end = now() + seconds;

	if (sscanf(enc, "$argon2id$v=19$m=%u,t=%u,p=%u$", &m, &t, &p) != 3) {
		fprintf(stderr, "hashbench: not an argon2id encoding\n");
		exit(1);
	}
	while (now() < end) {
		int rc;
		if (mode != FRESH) {
			argon2_context ctx = {
				.out = out, .outlen = sizeof(out),
				.pwd = (uint8_t *)(uintptr_t)pw, .pwdlen = (uint32_t)strlen(pw),
				.salt = salt, .saltlen = sizeof(salt),
				.t_cost = t, .m_cost = m, .lanes = p, .threads = p,
				.version = ARGON2_VERSION_13,
				.allocate_cbk = mode == REUSE ? alloc_cb : mmap_alloc_cb,
				.free_cbk = mode == REUSE ? free_cb : mmap_free_cb,
				.flags = ARGON2_DEFAULT_FLAGS,
			};
			rc = argon2_ctx(&ctx, Argon2_id);
		} else {
			rc = argon2id_verify(enc, pw, strlen(pw));
		}
		if (rc != ARGON2_OK) {
			fprintf(stderr, "hashbench: %s\n", argon2_error_message(rc));
			exit(1);
		}
		n++;
	}
	return n;
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "encode")) {
		uint8_t salt[16];
		char enc[256];
		if (getrandom(salt, sizeof(salt), 0) != (ssize_t)sizeof(salt))
			return 1;
		int rc = argon2id_hash_encoded((uint32_t)atoi(argv[4]), (uint32_t)atoi(argv[3]),
		    (uint32_t)atoi(argv[5]), argv[2], strlen(argv[2]), salt, sizeof(salt), 32,
		    enc, sizeof(enc));
		if (rc != ARGON2_OK) {
			fprintf(stderr, "hashbench: %s\n", argon2_error_message(rc));
			return 1;
		}
		puts(enc);
		return 0;
	}
	if ((argc == 6 || argc == 7) && !strcmp(argv[1], "verify")) {
		int procs = atoi(argv[4]);
		enum mode mode = argc < 7 || !strcmp(argv[6], "fresh") ? FRESH
		    : !strcmp(argv[6], "reuse") ? REUSE : !strcmp(argv[6], "mmap") ? MMAP : -1;
		double secs = atof(argv[5]), t0 = now();
		int fds[2];
		long total = 0;

		if (procs < 1 || secs <= 0 || (int)mode == -1 || pipe(fds) != 0)
			return 2;
		for (int i = 0; i < procs; i++) {
			pid_t pid = fork();
			if (pid == 0) {
				long n = loop(argv[2], argv[3], secs, mode);
				if (write(fds[1], &n, sizeof(n)) != (ssize_t)sizeof(n))
					_exit(1);
				_exit(0);
			}
			if (pid < 0)
				return 1;
		}
		close(fds[1]);
		for (int i = 0; i < procs; i++) {
			long n;
			if (read(fds[0], &n, sizeof(n)) == (ssize_t)sizeof(n))
				total += n;
		}
		while (wait(NULL) > 0)
			;
		double el = now() - t0;
		struct rusage ru;
		getrusage(RUSAGE_CHILDREN, &ru);
		double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		printf("hashes %ld seconds %.3f per_s %.2f cpu_ms_per_hash %.2f\n", total, el,
		    (double)total / el, total ? cpu * 1000 / (double)total : 0.0);
		return 0;
	}
	fprintf(stderr, "usage: hashbench encode PASSWORD M_KIB T P\n"
	    "       hashbench verify ENCODED PASSWORD PROCS SECONDS [fresh|reuse|mmap]\n");
	return 2;
}

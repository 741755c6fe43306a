/*
 * fuzz_util.h — shared by the libFuzzer targets in test/fuzz/: a CHECK that
 * turns a broken invariant into a crash libFuzzer records, and reference
 * implementations (written independently of fcgi/text.c) used as oracles.
 */
#ifndef CCR_FUZZ_UTIL_H
#define CCR_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(cond)                                                              \
	do {                                                                         \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
			    #cond);                                                          \
			abort();                                                             \
		}                                                                        \
	} while (0)

/* A NUL-terminated heap copy of the input (ASan sees overreads past it). */
static inline char *fz_strndup(const uint8_t *d, size_t n)
{
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	memcpy(s, d, n);
	s[n] = '\0';
	return s;
}

/* Reference UTF-8 check by decoding code points: 1 valid (RFC 3629, no NUL). */
static inline int ref_utf8_valid(const char *str, size_t n, size_t *chars)
{
	static const uint32_t min_cp[4] = { 0, 0x80, 0x800, 0x10000 };
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, count = 0;

	while (i < n) {
		unsigned c = s[i];
		uint32_t cp;
		size_t k;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			count++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			k = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i - 1 < k)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min_cp[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
		count++;
	}
	if (chars)
		*chars = count;
	return 1;
}

static inline int ref_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Reference percent-decoding into out (n bytes room): length, or -1. */
static inline long ref_pct_decode(const char *s, size_t n, int plus, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (n - i < 3 || ref_hex((unsigned char)s[i + 1]) < 0 ||
			    ref_hex((unsigned char)s[i + 2]) < 0)
				return -1;
			out[o++] = (char)(ref_hex((unsigned char)s[i + 1]) * 16 +
			    ref_hex((unsigned char)s[i + 2]));
			i += 2;
		} else {
			out[o++] = (plus && s[i] == '+') ? ' ' : s[i];
		}
	}
	return (long)o;
}

/* 1 when s is NUL-terminated within max bytes. */
static inline int nul_within(const char *s, size_t max)
{
	return memchr(s, '\0', max) != NULL;
}

#endif

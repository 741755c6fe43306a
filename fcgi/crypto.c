/*
 * crypto.c — the little cryptography ccrd needs, from the libraries that do
 * it well: SHA-256 and a constant-time comparison from libcrypto (OpenSSL),
 * random tokens from getrandom(2).  Session ids and one-time codes are
 * stored only as their SHA-256, so a copy of the database opens no session.
 *
 * The one-shot digest of a short string (a token, a code, a Message-ID)
 * uses GLib's GChecksum instead: OpenSSL 3's first EVP digest builds its
 * provider and name tables, 5.2 million instructions (valgrind), a quarter
 * of a whole `ccr-admin mail-in`, which hashes a Message-ID or two and
 * exits.  GLib is loaded anyway (GMime).  Streams (files, whole messages)
 * stay with libcrypto's faster code.
 */
#include <glib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "extern.h"

/* hex: b[0..n) as 2n lowercase hex digits and a NUL into out. */
static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

#define SHA256_SHORT 4096         /* bytes: up to here GLib, past it libcrypto */

/* crypto_sha256_hex: SHA-256 (FIPS 180-4) of data[0..len) as 64 lowercase
 * hex digits and a NUL.  0 / -1 (libcrypto failed: out of memory). */
int crypto_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	gsize mdlen = sizeof(md);
	GChecksum *c;

	if (len > SHA256_SHORT) {        /* a whole message: the fast code */
		void *st = crypto_sha256_begin();
		if (st == NULL || crypto_sha256_add(st, data, len) == -1) {
			if (st)
				crypto_sha256_end(st, out);
			return -1;
		}
		return crypto_sha256_end(st, out);
	}
	if ((c = g_checksum_new(G_CHECKSUM_SHA256)) == NULL)
		return -1;
	g_checksum_update(c, data, (gssize)len);
	g_checksum_get_digest(c, md, &mdlen);
	g_checksum_free(c);
	if (mdlen != 32)
		return -1;
	hex(md, 32, out);
	return 0;
}

/* crypto_sha256_begin / _add / _end: SHA-256 of data given in pieces (a
 * file read chunk by chunk).  begin: the state, or NULL; end frees it and
 * writes the digest as crypto_sha256_hex does.  0 / -1. */
void *crypto_sha256_begin(void)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c);
		return NULL;
	}
	return c;
}

int crypto_sha256_add(void *c, const void *data, size_t len)
{
	return EVP_DigestUpdate(c, data, len) == 1 ? 0 : -1;
}

int crypto_sha256_end(void *c, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int ok = EVP_DigestFinal_ex(c, md, &mdlen) == 1 && mdlen == 32;

	EVP_MD_CTX_free(c);
	if (!ok)
		return -1;
	hex(md, 32, out);
	return 0;
}

/* crypto_random_bytes: fill b[0..n) from getrandom(2).  0 / -1. */
int crypto_random_bytes(void *buf, size_t n)
{
	unsigned char *b = buf;
	size_t got = 0;

	while (got < n) {
		ssize_t k = getrandom(b + got, n - got, 0);
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

/* crypto_random_hex: nbytes (at most 64) random bytes from getrandom(2) as
 * 2 × nbytes hex digits and a NUL into out.  0 / -1. */
int crypto_random_hex(char *out, size_t nbytes)
{
	unsigned char b[64];

	if (nbytes > sizeof(b) || crypto_random_bytes(b, nbytes) == -1)
		return -1;
	hex(b, nbytes, out);
	return 0;
}

/* crypto_reply_token: INMAIL_TOKEN_LEN symbols of a 32-letter alphabet of
 * lower-case letters and digits (5 random bits each: 120 bits), as a mail
 * address's local part can carry them through any MTA.  0 / -1. */
int crypto_reply_token(char out[INMAIL_TOKEN_LEN + 1])
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
	unsigned char b[INMAIL_TOKEN_LEN];

	if (crypto_random_bytes(b, sizeof(b)) == -1)
		return -1;
	for (size_t i = 0; i < sizeof(b); i++)
		out[i] = alphabet[b[i] & 31];
	out[INMAIL_TOKEN_LEN] = '\0';
	return 0;
}

/* crypto_token: 256 random bits as 64 hex digits (session ids, CSRF
 * tokens, Message-IDs). 0 / -1. */
int crypto_token(char out[65])
{
	return crypto_random_hex(out, 32);
}

/* crypto_equal: compare two NUL-terminated strings whose length is not
 * secret in time independent of where they differ (CRYPTO_memcmp).
 * 1 equal, 0 not. */
int crypto_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

/* crypto_sha256: SHA-256 of data[0..len) as 32 bytes.  0 / -1. */
int crypto_sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int mdlen = 0;

	return EVP_Digest(data, len, out, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32 ? 0 : -1;
}

/* crypto_seal: AES-256-GCM (NIST SP 800-38D) of plain[0..n) under key with
 * a fresh random 96-bit nonce, aad[0..aadlen) authenticated with it.
 * out (cap bytes, at least n + CRYPTO_SEAL_OVERHEAD) gets nonce ||
 * ciphertext || 16-byte tag; *outlen its length.  0 / -1. */
int crypto_seal(const unsigned char key[32], const void *aad, size_t aadlen, const void *plain,
                size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
	EVP_CIPHER_CTX *c;
	int len = 0, ok = 0;

	if (cap < n + CRYPTO_SEAL_OVERHEAD || n > INT_MAX || aadlen > INT_MAX ||
	    crypto_random_bytes(out, 12) == -1 || (c = EVP_CIPHER_CTX_new()) == NULL)
		return -1;
	if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, out) == 1 &&
	    EVP_EncryptUpdate(c, NULL, &len, aad, (int)aadlen) == 1 &&
	    EVP_EncryptUpdate(c, out + 12, &len, plain, (int)n) == 1 && (size_t)len == n &&
	    EVP_EncryptFinal_ex(c, out + 12 + n, &len) == 1 && len == 0 &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + 12 + n) == 1)
		ok = 1;
	EVP_CIPHER_CTX_free(c);
	*outlen = ok ? n + CRYPTO_SEAL_OVERHEAD : 0;
	return ok ? 0 : -1;
}

/* crypto_open: the inverse of crypto_seal: in[0..n) checked and decrypted
 * into out (cap bytes), *outlen its length.  0, or -1 when the tag does
 * not match (another key, another aad, a changed byte) or it failed. */
int crypto_open(const unsigned char key[32], const void *aad, size_t aadlen,
                const unsigned char *in, size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
	EVP_CIPHER_CTX *c;
	int len = 0, ok = 0;

	*outlen = 0;
	if (n < CRYPTO_SEAL_OVERHEAD || n - CRYPTO_SEAL_OVERHEAD > cap || n > INT_MAX ||
	    aadlen > INT_MAX || (c = EVP_CIPHER_CTX_new()) == NULL)
		return -1;
	size_t m = n - CRYPTO_SEAL_OVERHEAD;
	unsigned char tag[16];
	memcpy(tag, in + 12 + m, 16);
	if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, in) == 1 &&
	    EVP_DecryptUpdate(c, NULL, &len, aad, (int)aadlen) == 1 &&
	    EVP_DecryptUpdate(c, out, &len, in + 12, (int)m) == 1 && (size_t)len == m &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1 &&
	    EVP_DecryptFinal_ex(c, out + m, &len) == 1)
		ok = 1;
	EVP_CIPHER_CTX_free(c);
	if (!ok) {
		OPENSSL_cleanse(out, m);
		return -1;
	}
	*outlen = m;
	return 0;
}

#ifndef CCR_SHA256_H
#define CCR_SHA256_H
#include <stddef.h>
#include <stdint.h>
void sha256(const void *data, size_t len, unsigned char out[32]);
void sha256_hex(const char *s, char out[65]);
#endif

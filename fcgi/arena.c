/*
 * arena.c — request memory, freed in one go when the request ends; out of
 * memory is fatal (abort), so no caller checks for NULL.  A bump
 * allocator over a list of chunks; arena_reset() keeps the first chunk and frees the rest, so a
 * worker's steady state makes no malloc calls for ordinary requests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

struct chunk {
	struct chunk *next;
	size_t size, used;
	max_align_t data[];
};

struct arena {
	struct chunk *head;     /* current chunk; the list ends at the first one */
	size_t chunk;
	size_t total;           /* bytes handed out since the last reset */
};

static struct chunk *chunk_new(size_t size)
{
	struct chunk *c = malloc(sizeof(*c) + size);

	if (c == NULL) {
		fprintf(stderr, "arena: out of memory (%zu bytes)\n", size);
		abort();        /* fatal for the worker; the master respawns it */
	}
	c->next = NULL;
	c->size = size;
	c->used = 0;
	return c;
}

/* arena_new: an arena whose chunks are `chunk` bytes (bigger requests get their own). */
struct arena *arena_new(size_t chunk)
{
	struct arena *a = calloc(1, sizeof(*a));

	if (a == NULL)
		abort();
	a->chunk = chunk ? chunk : 64 * 1024;
	a->head = chunk_new(a->chunk);
	return a;
}

void arena_free(struct arena *a)
{
	struct chunk *c, *n;

	if (a == NULL)
		return;
	for (c = a->head; c; c = n) {
		n = c->next;
		free(c);
	}
	free(a);
}

void arena_reset(struct arena *a)
{
	struct chunk *c = a->head, *n;

	while (c->next) {
		n = c->next;
		free(c);
		c = n;
	}
	c->used = 0;
	a->head = c;
	a->total = 0;
}

/* arena_alloc: zeroed, max_align_t-aligned memory that lives until the reset. */
void *arena_alloc(struct arena *a, size_t n)
{
	const size_t al = sizeof(max_align_t);
	size_t need = (n + al - 1) / al * al;
	struct chunk *c = a->head;
	void *p;

	if (need < n || need > SIZE_MAX / 2)
		abort();        /* overflow, or a size no request can need */
	if (c->size - c->used < need) {
		c = chunk_new(need > a->chunk ? need : a->chunk);
		/* keep the first chunk last so reset finds it */
		c->next = a->head;
		a->head = c;
	}
	p = (char *)c->data + c->used;
	c->used += need;
	a->total += need;
	memset(p, 0, n);
	return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	if (fmt == NULL)
		abort();
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	p = arena_alloc(a, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

size_t arena_used(const struct arena *a)
{
	return a->total;
}

/*
 * netpolicy.c — the address policy of outgoing requests (README
 * "Webhooks"): which addresses a webhook endpoint may be at.  Public
 * addresses only, unless [webhooks] allow lists the address or its block;
 * the special-purpose blocks of RFC 6890 (private, loopback, link-local,
 * …) and their IPv4-mapped IPv6 forms are refused.  Pure functions over
 * the configuration, so conf.c can check `allow` when the file is read.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "extern.h"

struct net {
	int fam;                /* AF_INET or AF_INET6 */
	unsigned char a[16];
	int bits;
};

/* net_parse: "10.0.0.0/8", "127.0.0.1", "fd00::/8", "::1".  0 / -1. */
static int net_parse(const char *s, size_t len, struct net *n)
{
	char buf[64];
	const char *slash;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	slash = strchr(buf, '/');
	if (slash)
		buf[slash - buf] = '\0';
	memset(n, 0, sizeof(*n));
	if (inet_pton(AF_INET, buf, n->a) == 1) {
		n->fam = AF_INET;
		n->bits = 32;
	} else if (inet_pton(AF_INET6, buf, n->a) == 1) {
		n->fam = AF_INET6;
		n->bits = 128;
	} else
		return -1;
	if (slash) {
		char *end;
		long b = strtol(slash + 1, &end, 10);
		if (end == slash + 1 || *end || b < 0 || b > n->bits)
			return -1;
		n->bits = (int)b;
	}
	return 0;
}

static int net_has(const struct net *n, int fam, const unsigned char *a)
{
	if (n->fam != fam)
		return 0;
	int full = n->bits / 8, rest = n->bits % 8;
	if (memcmp(n->a, a, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (n->a[full] & mask) == (a[full] & mask);
}

/* allow_each: calls fn on each entry of an allow list.  Count, or -1 at
 * the first entry that does not parse. */
static int allow_each(const char *list, int (*fn)(const struct net *, void *), void *arg)
{
	int count = 0;

	for (const char *p = list; *p;) {
		size_t len;
		struct net n;
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, " ,\t");
		if (net_parse(p, len, &n) == -1)
			return -1;
		count++;
		if (fn && fn(&n, arg))
			return count;
		p += len;
	}
	return count;
}

/* webhook_allow_check: whether [webhooks] allow parses.  0 / -1. */
int webhook_allow_check(const char *list)
{
	return allow_each(list, NULL, NULL) < 0 ? -1 : 0;
}

struct addr_q {
	int fam;
	const unsigned char *a;
	int hit;
};

static int allow_hit(const struct net *n, void *arg)
{
	struct addr_q *q = arg;

	if (net_has(n, q->fam, q->a))
		q->hit = 1;
	return q->hit;
}

/* Addresses no webhook goes to unless listed (RFC 6890 special-purpose
 * blocks: this network, private, shared, loopback, link-local, benchmark,
 * documentation, multicast, reserved; IPv6 loopback, unique local,
 * link-local, multicast, and IPv4-mapped forms of all of those). */
static const char *const special_nets[] = {
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
	"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	"::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "64:ff9b::/96", "2001:db8::/32",
	NULL
};

/* webhook_addr_allowed: whether an endpoint may be at this address
 * (fam AF_INET: 4 bytes, AF_INET6: 16).  1 / 0. */
int webhook_addr_allowed(const struct conf *c, int fam, const void *addr)
{
	unsigned char a4[4];
	const unsigned char *a = addr;
	struct addr_q q = { fam, a, 0 };

	allow_each(c->webhooks_allow, allow_hit, &q);
	if (q.hit)
		return 1;
	/* an IPv4-mapped IPv6 address is judged as the IPv4 address */
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (fam == AF_INET6 && memcmp(a, mapped, 12) == 0) {
		memcpy(a4, a + 12, 4);
		return webhook_addr_allowed(c, AF_INET, a4);
	}
	for (int i = 0; special_nets[i]; i++) {
		struct net n;
		if (net_parse(special_nets[i], strlen(special_nets[i]), &n) == 0 && net_has(&n, fam, a))
			return 0;
	}
	return 1;
}

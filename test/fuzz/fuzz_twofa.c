/*
 * fuzz_twofa.c — what two-factor sign-in reads from outside: a code as
 * typed at /login/2fa or /account/2fa (totp_code_kind, then liboath's
 * check through totp_match), and the User-Agent header kept for the
 * session list and the login alert (device_browser_line).  Invariants: a
 * code normalises to at most what was typed, with no space or dash left,
 * "TOTP" means exactly 6 digits and "recovery" exactly 10 base32 symbols;
 * totp_match answers a step within ±1 of now or -1, and only for a TOTP
 * shape; a browser line is valid UTF-8, at most 200 characters, without
 * control characters or surrounding blanks.
 */
#include <time.h>

#include "extern.h"
#include "fuzz_util.h"

static struct arena *A;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	A = arena_new(64 * 1024);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char seed[] = "12345678901234567890";
	char *s = fz_strndup(data, size);
	size_t typed = strlen(s);

	arena_reset(A);
	/* the browser line */
	char *line = device_browser_line(A, s);
	size_t n = strlen(line), chars = 0;
	CHECK(n == 0 || ref_utf8_valid(line, n, &chars));
	CHECK(utf8_len(line) <= 200);
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)line[i] >= 0x20 && line[i] != 0x7f);
	CHECK(n == 0 || (line[0] != ' ' && line[n - 1] != ' '));

	/* the code */
	enum totp_code k = totp_code_kind(s);
	size_t m = strlen(s);
	CHECK(m <= typed && m <= 33);
	CHECK(!strchr(s, ' ') && !strchr(s, '-') && !strchr(s, '\t'));
	if (k == TC_TOTP) {
		CHECK(m == 6);
		for (size_t i = 0; i < m; i++)
			CHECK(s[i] >= '0' && s[i] <= '9');
	} else if (k == TC_RECOVERY) {
		CHECK(m == 10);
		for (size_t i = 0; i < m; i++)
			CHECK((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '2' && s[i] <= '7'));
	}
	time_t now = 1111111111;
	long long step = totp_match(seed, 20, now, s);
	CHECK(step == -1 || (step >= now / 30 - 1 && step <= now / 30 + 1));
	if (step >= 0)
		CHECK(k == TC_TOTP);
	free(s);
	return 0;
}

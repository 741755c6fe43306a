/*
 * totp.c — two-factor sign-in (README "Two-factor sign-in"): TOTP codes
 * (RFC 6238: 30-second steps, 6 digits, HMAC-SHA-1, what every
 * authenticator app expects) through liboath, the secret sealed with
 * AES-256-GCM under a key derived from [security] secret_key, the
 * enrolment QR code through libqrencode, ten single-use recovery codes
 * kept as SHA-256, the half-signed-in state between password and code,
 * [security] require_2fa, and an admin's reset of another person's 2FA.
 * Handlers return an HTTP status; the dispatcher renders error pages.
 */
#include <liboath/oath.h>
#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extern.h"

#define SECRET_BYTES 20          /* 160 bits: RFC 4226 §4 recommends it for SHA-1 */
#define STEP 30                  /* RFC 6238 §4.1 X */
#define DIGITS 6
#define WINDOW 1                 /* ±1 step of clock skew (RFC 6238 §5.2) */
#define RECOVERY_N 10
#define RECOVERY_LEN 10          /* base32 symbols: 50 bits each */
#define PENDING_SECONDS 300      /* the half-signed-in state lasts 5 minutes */
#define CODE_THROTTLE 5          /* wrong codes per account, and per address, in 15 min */
#define SEALED_MAX (SECRET_BYTES + CRYPTO_SEAL_OVERHEAD)

/* ---- the library: codes, secrets, the QR code ------------------------ */

static int oath_ready(void)
{
	static int done;

	if (!done && oath_init() == OATH_OK)
		done = 1;
	return done ? 0 : -1;
}

/* totp_generate: the code of secret (len bytes) at time t, `digits` long
 * (6 here, 8 for RFC 6238's test vectors), into out (digits + 1).  0 / -1. */
int totp_generate(const void *secret, size_t len, time_t t, unsigned digits, char *out)
{
	if (oath_ready() == -1)
		return -1;
	return oath_totp_generate(secret, len, t, STEP, 0, digits, out) == OATH_OK ? 0 : -1;
}

/* liboath compares each candidate code with this: 0 when equal, in time
 * independent of the digits. */
static int code_cmp(void *handle, const char *candidate)
{
	return crypto_equal(handle, candidate) ? 0 : 1;
}

/* totp_match: the time step (t / 30) whose 6-digit code `code` is, within
 * ±1 step of now; -1 when none, -2 when liboath failed. */
long long totp_match(const void *secret, size_t len, time_t now, const char *code)
{
	int pos = 0;
	uint64_t step = 0;
	char typed[DIGITS + 1];

	if (oath_ready() == -1)
		return -2;
	if (strlen(code) != DIGITS)
		return -1;
	memcpy(typed, code, sizeof(typed));
	int rc = oath_totp_validate3_callback(secret, len, now, STEP, 0, DIGITS, WINDOW, &pos,
	    &step, code_cmp, typed);
	if (rc == OATH_INVALID_OTP)
		return -1;
	if (rc < 0) {
		log_err("%s: liboath: %s", __func__, oath_strerror(rc));
		return -2;
	}
	return (long long)step;
}

/* totp_base32: secret as RFC 4648 base32 (arena memory), NULL on failure. */
char *totp_base32(struct arena *a, const void *secret, size_t len)
{
	char *out = NULL;
	size_t n = 0;

	if (oath_ready() == -1 || oath_base32_encode(secret, len, &out, &n) != OATH_OK)
		return NULL;
	char *s = arena_strndup(a, out, n);
	free(out);
	return s;
}

/* totp_uri: the otpauth:// URI authenticator apps read (Key Uri Format):
 * label "ISSUER:ACCOUNT", the secret, issuer, SHA1, 6 digits, 30 s. */
char *totp_uri(struct arena *a, const char *issuer, const char *account, const char *b32)
{
	return arena_printf(a, "otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=%d"
	    "&period=%d", url_encode(a, issuer), url_encode(a, account), b32, url_encode(a, issuer),
	    DIGITS, STEP);
}

/* totp_qr_path: text as a QR code (byte mode, error correction M): the SVG
 * path data of its dark modules, one "M x y h w v 1 h -w z" run each, in a
 * square of *size modules with a 4-module quiet zone.  Arena memory; NULL
 * on failure. */
char *totp_qr_path(struct arena *a, const char *text, int *size)
{
	QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);

	if (q == NULL)
		return NULL;
	int w = q->width;
	/* at most w/2 + 1 runs a row, each at most 32 bytes */
	size_t cap = (size_t)w * (size_t)(w / 2 + 1) * 32 + 1, used = 0;
	char *out = arena_alloc(a, cap);
	out[0] = '\0';
	for (int y = 0; y < w; y++) {
		for (int x = 0; x < w;) {
			if (!(q->data[y * w + x] & 1)) {
				x++;
				continue;
			}
			int x0 = x;
			while (x < w && (q->data[y * w + x] & 1))
				x++;
			used += (size_t)snprintf(out + used, cap - used, "M%d %dh%dv1h-%dz", x0 + 4, y + 4,
			    x - x0, x - x0);
		}
	}
	*size = w + 8;
	QRcode_free(q);
	return out;
}

/* totp_required: whether a person of this role must enrol first. */
int totp_required(const struct conf *c, enum role role)
{
	switch ((enum require_2fa)c->require_2fa) {
	case R2FA_ADMINS:
		return role == ROLE_ADMIN;
	case R2FA_STAFF:
		return role == ROLE_ADMIN || role == ROLE_AGENT;
	case R2FA_NONE:
		return 0;
	}
	return 1;
}

/* totp_must_enrol: the logged-in person of r must enrol before anything else. */
int totp_must_enrol(const struct request *r)
{
	return r->user && !r->user->twofa && totp_required(r->conf, r->user->role);
}

/* ---- sealed secrets ---------------------------------------------------- */

/* key_of: the sealing key, SHA-256 of a label and [security] secret_key.  0 / -1. */
static int key_of(const struct conf *c, unsigned char key[32])
{
	char buf[sizeof(c->secret_key) + 32];
	int n = snprintf(buf, sizeof(buf), "ccr totp secret v1\n%s", c->secret_key);
	int rc = crypto_sha256(buf, (size_t)n, key);

	memset(buf, 0, sizeof(buf));
	return rc;
}

static const char *aad_of(struct arena *a, long long uid)
{
	return arena_printf(a, "totp:%lld", uid);
}

static const char Q_ROW[] =
    "SELECT secret_enc, state, last_step FROM totp WHERE user_id = ?";
enum { TR_SECRET, TR_STATE, TR_STEP, TR__N };
/* totp.state, as the ENUM column spells it (TOTP_NONE: no row) */
enum totp_state { TOTP_NONE, TOTP_PENDING, TOTP_ON, TOTP__MAX };
static const char *const totp_state_names[TOTP__MAX] = { "", "pending", "on" };

/* state_parse: a row's state; an unknown one counts as pending (not on). */
static enum totp_state state_parse(const char *s)
{
	return str_lookup(totp_state_names, TOTP__MAX, s) == TOTP_ON ? TOTP_ON : TOTP_PENDING;
}
struct totp_row {
	enum totp_state state;
	unsigned char secret[SECRET_BYTES];
	size_t len;
	long long last_step;
};

/* row_load: uid's totp row, the secret opened.  1, 0 none, -1 the
 * database failed, -2 the secret does not open (another secret_key). */
static int row_load(struct request *r, long long uid, struct totp_row *t)
{
	struct db_rows rows;
	unsigned char key[32];
	int n = db_query(r->a, &rows, Q_ROW, TR__N, DB_ARGS(P_INT(uid)));

	t->state = TOTP_NONE;
	if (n <= 0)
		return n;
	if (key_of(r->conf, key) == -1)
		return -1;
	const char *aad = aad_of(r->a, uid);
	int rc = crypto_open(key, aad, strlen(aad), (const unsigned char *)DB_CELL(&rows, 0, TR_SECRET),
	    DB_LEN(&rows, 0, TR_SECRET), t->secret, sizeof(t->secret), &t->len);
	memset(key, 0, sizeof(key));
	if (rc == -1) {
		log_err("%s: req=%s the TOTP secret of user %lld does not open: was [security] "
		    "secret_key changed?", __func__, r->id, uid);
		return -2;
	}
	t->state = state_parse(DB_CELL(&rows, 0, TR_STATE));
	t->last_step = db_int(&rows, 0, TR_STEP);
	return 1;
}

static const char Q_STATE_ONLY[] = "SELECT state FROM totp WHERE user_id = ?";
static const char Q_TOTP_DROP_PENDING[] =
    "DELETE FROM totp WHERE user_id = ? AND state = 'pending'";

/* sealed_state: the state of uid's row without opening it. */
static enum totp_state sealed_state(struct request *r, long long uid)
{
	struct db_rows rows;

	if (db_query(r->a, &rows, Q_STATE_ONLY, 1, DB_ARGS(P_INT(uid))) != 1)
		return TOTP_NONE;
	return state_parse(DB_CELL(&rows, 0, 0));
}

/* unopenable: an enrolled secret sealed under another secret_key. */
static int unopenable(struct request *r)
{
	r->message = "Two-factor sign-in cannot be checked for this account right now (the "
	    "server's key changed). Please ask an admin to reset it.";
	return 503;     /* the server's configuration, not a fault of the request or a bug */
}

static const char Q_PENDING_ADD[] =
    "INSERT IGNORE INTO totp (user_id, secret_enc, state, last_step, created_at) "
    "VALUES (?, ?, 'pending', 0, NOW())";

/* pending_create: a fresh secret for uid, sealed, as a pending row (one
 * already there stays).  0 / -1. */
static int pending_create(struct request *r, long long uid)
{
	unsigned char secret[SECRET_BYTES], key[32], sealed[SEALED_MAX];
	size_t n = 0;
	const char *aad = aad_of(r->a, uid);

	if (crypto_random_bytes(secret, sizeof(secret)) == -1 || key_of(r->conf, key) == -1)
		return -1;
	int rc = crypto_seal(key, aad, strlen(aad), secret, sizeof(secret), sealed, sizeof(sealed), &n);
	memset(key, 0, sizeof(key));
	memset(secret, 0, sizeof(secret));
	if (rc == -1)
		return -1;
	return db_exec(Q_PENDING_ADD, DB_ARGS(P_INT(uid), P_BLOB(sealed, n))) < 0 ? -1 : 0;
}

/* ---- codes as typed ---------------------------------------------------- */

/* totp_code_kind: a code as typed, normalised in place (spaces, tabs and
 * dashes dropped, ASCII letters lower-cased, at most 32 characters kept);
 * what it then looks like: 6 digits, 10 base32 symbols, or neither. */
enum totp_code totp_code_kind(char *s)
{
	size_t j = 0, digits = 0, b32 = 0;

	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		if (c == ' ' || c == '-' || c == '\t')
			continue;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		s[j++] = c;
		if (j > 32)
			break;
	}
	s[j] = '\0';
	for (size_t i = 0; i < j; i++) {
		digits += s[i] >= '0' && s[i] <= '9';
		b32 += (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '2' && s[i] <= '7');
	}
	if (j == DIGITS && digits == j)
		return TC_TOTP;
	if (j == RECOVERY_LEN && b32 == j)
		return TC_RECOVERY;
	return TC_BAD;
}

static const char Q_CLAIM_STEP[] =
    "UPDATE totp SET last_step = ? WHERE user_id = ? AND last_step < ?";
static const char Q_CLAIM_RECOVERY[] =
    "UPDATE recovery_codes SET used_at = NOW() WHERE user_id = ? AND code_hash = ? "
    "AND used_at IS NULL LIMIT 1";

/* twofa_claim: the code typed (normalised in place) against t (uid's
 * row), claimed in the caller's transaction so that it is accepted once:
 * a TOTP code only for a step after the last one accepted (RFC 6238
 * §5.2), a recovery code only while unused.  recovery 0: TOTP codes only
 * (enrolment).  1 accepted (*used_recovery says which), 0 refused, -1 failed. */
static int twofa_claim(long long uid, const struct totp_row *t, char *code,
                      int recovery, int *used_recovery)
{
	enum totp_code k = totp_code_kind(code);

	*used_recovery = 0;
	if (k == TC_TOTP) {
		long long step = totp_match(t->secret, t->len, time(NULL), code);
		if (step == -2)
			return -1;
		if (step < 0 || step <= t->last_step)
			return 0;
		long long n = db_exec(Q_CLAIM_STEP, DB_ARGS(P_INT(step), P_INT(uid), P_INT(step)));
		return n < 0 ? -1 : n == 1;
	}
	if (k == TC_RECOVERY && recovery) {
		char hash[65];
		if (crypto_sha256_hex(code, strlen(code), hash) == -1)
			return -1;
		long long n = db_exec(Q_CLAIM_RECOVERY, DB_ARGS(P_INT(uid), P_STR(hash)));
		*used_recovery = n == 1;
		return n < 0 ? -1 : n == 1;
	}
	return 0;
}

/* ---- the throttle: wrong codes per account and per address ------------ */

static const char Q_CODE_FAILS[] =
    "SELECT (SELECT COUNT(*) FROM login_failures WHERE kind = 'code_user' AND subject = ? "
    "AND at > NOW() - INTERVAL 15 MINUTE), "
    "(SELECT COUNT(*) FROM login_failures WHERE kind = 'code_addr' AND subject = ? "
    "AND at > NOW() - INTERVAL 15 MINUTE)";
static const char Q_CODE_FAIL_ADD[] =
    "INSERT INTO login_failures (kind, subject, at) VALUES ('code_user', ?, NOW()), "
    "('code_addr', ?, NOW())";

/* throttled: 1 when uid or this address had CODE_THROTTLE wrong codes in
 * 15 minutes, 0 not, -1 failed. */
static int throttled(struct request *r, long long uid)
{
	struct db_rows rows;
	const char *subj = arena_printf(r->a, "%lld", uid);

	if (db_query(r->a, &rows, Q_CODE_FAILS, 2, DB_ARGS(P_STR(subj), P_STR(r->remote_addr))) != 1)
		return -1;
	return db_int(&rows, 0, 0) >= CODE_THROTTLE || db_int(&rows, 0, 1) >= CODE_THROTTLE;
}

/* code_failed: count one wrong code for uid and this address, audited,
 * in a transaction of its own.  0 / -1. */
static int code_failed(struct request *r, long long uid, const char *event)
{
	const char *subj = arena_printf(r->a, "%lld", uid);

	if (db_begin() == -1 ||
	    db_exec(Q_CODE_FAIL_ADD, DB_ARGS(P_STR(subj), P_STR(r->remote_addr))) < 0 ||
	    audit_add(request_ctx(r), uid, event, "") == -1 || db_commit() == -1) {
		db_rollback();
		return -1;
	}
	return 0;
}

#define THROTTLE_MSG "Too many wrong codes. Please wait 15 minutes and try again."

/* ---- recovery codes ---------------------------------------------------- */

static const char Q_RECOVERY_DROP[] = "DELETE FROM recovery_codes WHERE user_id = ?";
static const char Q_RECOVERY_ADD[] =
    "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)";
static const char Q_RECOVERY_LEFT[] =
    "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL";

/* recovery_issue: RECOVERY_N fresh codes for uid (the old ones dropped),
 * in the caller's transaction; codes[i] "xxxxx-xxxxx" for showing once.
 * 0 / -1. */
static int recovery_issue(long long uid, char codes[RECOVERY_N][RECOVERY_LEN + 2])
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

	if (db_exec(Q_RECOVERY_DROP, DB_ARGS(P_INT(uid))) < 0)
		return -1;
	for (int i = 0; i < RECOVERY_N; i++) {
		unsigned char b[RECOVERY_LEN];
		char plain[RECOVERY_LEN + 1], hash[65];
		if (crypto_random_bytes(b, sizeof(b)) == -1)
			return -1;
		for (int j = 0; j < RECOVERY_LEN; j++)
			plain[j] = alphabet[b[j] & 31];
		plain[RECOVERY_LEN] = '\0';
		snprintf(codes[i], RECOVERY_LEN + 2, "%.5s-%.5s", plain, plain + 5);
		if (crypto_sha256_hex(plain, RECOVERY_LEN, hash) == -1 ||
		    db_exec(Q_RECOVERY_ADD, DB_ARGS(P_INT(uid), P_STR(hash))) < 0)
			return -1;
	}
	return 0;
}

/* ---- GET/POST /account/2fa ---------------------------------------------- */

static int not_configured(struct request *r)
{
	log_err("%s: req=%s [security] secret_key is not set: two-factor sign-in is unavailable",
	    __func__, r->id);
	r->message = "Two-factor sign-in is not available: the server has no [security] "
	    "secret_key. Please tell its administrator.";
	return 503;
}

/* The enrolment page: the QR code, the URI and the secret as text, the
 * form for the first code. */
static int enrol_page(struct request *r, int status, const struct totp_row *t, const char *error)
{
	struct view *v = page_new(r, "twofa.tpl", "Two-factor sign-in");
	char *b32 = totp_base32(r->a, t->secret, t->len);
	int size = 0;

	if (v == NULL || b32 == NULL)
		return 500;
	char *uri = totp_uri(r->a, r->conf->site_name, r->user->email, b32);
	char *path = totp_qr_path(r->a, uri, &size);
	if (path == NULL)
		return 500;
	struct vdict *d = vdict_section(view_body(v), "ENROL");
	vdict_set(d, "URI", uri);
	/* the secret in groups of four, as apps show it for typing */
	size_t n = strlen(b32);
	char *grouped = arena_alloc(r->a, n + n / 4 + 1), *g = grouped;
	for (size_t i = 0; i < n; i++) {
		if (i && i % 4 == 0)
			*g++ = ' ';
		*g++ = b32[i];
	}
	*g = '\0';
	vdict_set(d, "SECRET", grouped);
	vdict_set(d, "QR_PATH", path);
	vdict_set_int(d, "QR_SIZE", size);
	if (totp_must_enrol(r))
		vdict_show(d, "REQUIRED");
	if (error)
		vdict_set(vdict_section(d, "ERR_CODE"), "MSG", error);
	return page_render(r, v, status);
}

/* The page of an enrolled person: codes left, the form to turn it off. */
static int on_page(struct request *r, int status, const struct form_errors *f)
{
	struct db_rows rows;
	struct view *v;

	if (db_query(r->a, &rows, Q_RECOVERY_LEFT, 1, DB_ARGS(P_INT(r->user->id))) != 1)
		return db_status();
	v = page_new(r, "twofa.tpl", "Two-factor sign-in");
	if (v == NULL)
		return 500;
	struct vdict *d = vdict_section(view_body(v), "ON");
	vdict_set_int(d, "LEFT", db_int(&rows, 0, 0));
	if (totp_required(r->conf, r->user->role))
		vdict_show(d, "REQUIRED");
	else
		vdict_show(d, "CAN_DISABLE");
	if (f)
		form_error_show(v, f);
	return page_render(r, v, status);
}

int totp_page(struct request *r)
{
	struct totp_row t;
	int n;

	if (r->conf->secret_key[0] == '\0')
		return not_configured(r);
	if ((n = row_load(r, r->user->id, &t)) == -1)
		return db_status();
	if (n == -2 && t.state == TOTP_NONE && sealed_state(r, r->user->id) == TOTP_PENDING) {
		/* a pending secret sealed under an old key: start the enrolment again */
		if (db_exec(Q_TOTP_DROP_PENDING, DB_ARGS(P_INT(r->user->id))) < 0)
			return db_status();
		n = 0;
	}
	if (n == -2)
		return unopenable(r);
	if (n == 1 && t.state == TOTP_ON)
		return on_page(r, 200, NULL);
	if (n == 0) {
		if (pending_create(r, r->user->id) == -1 || row_load(r, r->user->id, &t) != 1)
			return db_status();
	}
	return enrol_page(r, 200, &t, NULL);
}

static const char Q_USER_PW[] = "SELECT password_hash FROM users WHERE id = ?";
static const char Q_CONFIRM[] =
    "UPDATE totp SET state = 'on', confirmed_at = NOW() WHERE user_id = ? AND state = 'pending'";
static const char Q_TOTP_DROP[] = "DELETE FROM totp WHERE user_id = ?";
static const char Q_PENDING_DROP_USER[] = "DELETE FROM login_pending WHERE user_id = ?";

/* confirm: the first code turns a pending secret on; ten recovery codes
 * are shown once, on this answer (never stored in clear, so there is no
 * page to redirect to).  The session gets a new id (a privilege change). */
static int confirm(struct request *r, struct totp_row *t, char *code)
{
	long long uid = r->user->id;
	char codes[RECOVERY_N][RECOVERY_LEN + 2];
	int used_rec, ok, th;

	if ((th = throttled(r, uid)) < 0)
		return db_status();
	if (th) {
		resp_header_add(r, "Retry-After", "900");
		return enrol_page(r, 429, t, THROTTLE_MSG);
	}
	if (db_begin() == -1 || (ok = twofa_claim(uid, t, code, 0, &used_rec)) < 0)
		return db_fail();
	if (!ok) {
		db_rollback();
		if (code_failed(r, uid, "2fa_enrol_failed") == -1)
			return db_status();
		return enrol_page(r, 422, t, "Invalid code");
	}
	struct view *m = mail_new(r->conf, "twofa_on");
	if (db_exec(Q_CONFIRM, DB_ARGS(P_INT(uid))) != 1 || recovery_issue(uid, codes) == -1 ||
	    session_create(r, uid) == -1 ||
	    mail_queue(request_ctx(r), m, "twofa_on", r->user->email, uid, 0, 0) == -1 ||
	    audit_add(request_ctx(r), uid, "2fa_enabled", "") == -1 || db_commit() == -1)
		return db_fail();
	r->user->twofa = 1;
	struct view *v = page_new(r, "twofa.tpl", "Two-factor sign-in");
	if (v == NULL)
		return 500;
	struct vdict *d = vdict_section(view_body(v), "CODES");
	for (int i = 0; i < RECOVERY_N; i++)
		vdict_set(vdict_section(d, "CODE"), "CODE", codes[i]);
	memset(codes, 0, sizeof(codes));
	return page_render(r, v, 200);
}

/* disable: password and a code (or a recovery code) turn it off — not for
 * a role that must have it. */
static int disable(struct request *r, struct totp_row *t, const char *pw, char *code)
{
	long long uid = r->user->id;
	struct form_errors f = { .n = 0 };
	struct db_rows rows;
	int used_rec, ok, th;

	if (totp_required(r->conf, r->user->role)) {
		r->message = "Two-factor sign-in is required for your role and cannot be turned off.";
		return 403;
	}
	if ((th = throttled(r, uid)) < 0)
		return db_status();
	if (th) {
		resp_header_add(r, "Retry-After", "900");
		form_error_add(&f, "FORM_ERROR", THROTTLE_MSG);
		return on_page(r, 429, &f);
	}
	if (db_query(r->a, &rows, Q_USER_PW, 1, DB_ARGS(P_INT(uid))) != 1)
		return db_status();
	ok = utf8_len(pw) > 128 ? 0 : password_verify(r->conf, DB_CELL(&rows, 0, 0), pw);
	if (ok == -1)
		return 503;
	if (!ok) {
		if (code_failed(r, uid, "2fa_disable_failed") == -1)
			return db_status();
		form_error_add(&f, "ERR_PASSWORD", "Password is incorrect");
		return on_page(r, 422, &f);
	}
	if (db_begin() == -1 || (ok = twofa_claim(uid, t, code, 1, &used_rec)) < 0)
		return db_fail();
	if (!ok) {
		db_rollback();
		if (code_failed(r, uid, "2fa_disable_failed") == -1)
			return db_status();
		form_error_add(&f, "ERR_CODE", "Invalid code");
		return on_page(r, 422, &f);
	}
	struct view *m = mail_new(r->conf, "twofa_off");
	if (db_exec(Q_TOTP_DROP, DB_ARGS(P_INT(uid))) < 0 ||
	    db_exec(Q_RECOVERY_DROP, DB_ARGS(P_INT(uid))) < 0 ||
	    mail_queue(request_ctx(r), m, "twofa_off", r->user->email, uid, 0, 0) == -1 ||
	    audit_add(request_ctx(r), uid, "2fa_disabled", "") == -1 || db_commit() == -1)
		return db_fail();
	flash_set(r, FLASH_2FA_OFF);
	return resp_redirect(r, "/account/2fa");
}

/* POST /account/2fa: `code` confirms a pending enrolment; with 2FA on,
 * `password` and `code` turn it off. */
int totp_post(struct request *r)
{
	struct form_value in[TFA__N];
	struct form_errors f = { .n = 0 };
	struct totp_row t;
	int n;

	if (r->conf->secret_key[0] == '\0')
		return not_configured(r);
	form_read(r, &form_twofa, in, &f);
	char *code = arena_strdup(r->a, in[TFA_CODE].s);
	if ((n = row_load(r, r->user->id, &t)) == -1)
		return db_status();
	if (n == -2)
		return resp_redirect(r, "/account/2fa");   /* the page deals with it */
	if (n == 0)
		return resp_redirect(r, "/account/2fa");   /* nothing pending: a stale form */
	if (t.state == TOTP_PENDING)
		return confirm(r, &t, code);
	return disable(r, &t, in[TFA_PASSWORD].s, code);
}

/* ---- the half-signed-in state and /login/2fa ------------------------- */

static const char Q_PENDING_NEW[] =
    "INSERT INTO login_pending (id_hash, user_id, next, created_at, expires_at) "
    "VALUES (?, ?, ?, NOW(), NOW() + INTERVAL ? SECOND)";
static const char Q_PENDING_GET[] =
    "SELECT p.user_id, p.next, u.role, u.email FROM login_pending p "
    "JOIN users u ON u.id = p.user_id "
    "WHERE p.id_hash = ? AND p.expires_at > NOW() AND u.state = 'active'";
enum { PG_UID, PG_NEXT, PG_ROLE, PG_EMAIL, PG__N };
static const char Q_PENDING_END[] = "DELETE FROM login_pending WHERE id_hash = ?";

/* totp_login_start: the password of uid (2FA on) was right: a
 * half-signed-in record (no session), its cookie, 303 to /login/2fa; in
 * the caller's open transaction, which this commits.  HTTP status. */
int totp_login_start(struct request *r, long long uid, const char *next)
{
	char tok[65], hash[65];

	if (crypto_token(tok) == -1 || crypto_sha256_hex(tok, strlen(tok), hash) == -1 ||
	    db_exec(Q_PENDING_NEW, DB_ARGS(P_STR(hash), P_INT(uid), P_STR(next ? next : ""),
	    P_INT(PENDING_SECONDS))) < 0 ||
	    audit_add(request_ctx(r), uid, "login_password_ok", "2fa pending") == -1 ||
	    db_commit() == -1)
		return db_fail();
	cookie_set(r, "ccr_login", tok, PENDING_SECONDS);
	return resp_redirect(r, "/login/2fa");
}

/* pending_of: this browser's half-signed-in record.  1 (*rows filled,
 * *hash set), 0 none or expired, -1 failed. */
static int pending_of(struct request *r, struct db_rows *rows, char hash[65])
{
	const char *tok = cookie_get(r, "ccr_login");

	if (!str_is_hex(tok, 64, 64))
		return 0;
	if (crypto_sha256_hex(tok, strlen(tok), hash) == -1)
		return -1;
	return db_query(r->a, rows, Q_PENDING_GET, PG__N, DB_ARGS(P_STR(hash)));
}

static int code_page(struct request *r, int status, const char *error)
{
	struct view *v = page_new(r, "login_2fa.tpl", "Two-factor sign-in");

	if (v == NULL)
		return 500;
	if (error)
		vdict_set(vdict_section(view_body(v), "FORM_ERROR"), "MSG", error);
	return page_render(r, v, status);
}

/* GET /login/2fa: the code form, while the password step is fresh. */
int totp_login_form(struct request *r)
{
	struct db_rows rows;
	char hash[65];
	int n;

	if (r->user)
		return resp_redirect(r, "/tickets");
	if ((n = pending_of(r, &rows, hash)) < 0)
		return db_status();
	if (n == 0) {
		cookie_set(r, "ccr_login", "", 0);
		flash_set(r, FLASH_SESSION_ENDED);
		return resp_redirect(r, "/login");
	}
	return code_page(r, 200, NULL);
}

/* POST /login/2fa: `code` (or a recovery code) completes the login; a
 * wrong one 401 "Invalid code"; five wrong codes per account or address
 * in 15 minutes: 429. */
int totp_login(struct request *r)
{
	struct form_value in[TFA__N];
	struct form_errors f = { .n = 0 };
	struct db_rows rows;
	struct totp_row t;
	char hash[65];
	int n, ok, used_rec, th;

	form_read(r, &form_twofa, in, &f);
	char *code = arena_strdup(r->a, in[TFA_CODE].s);
	if ((n = pending_of(r, &rows, hash)) < 0)
		return db_status();
	if (n == 0) {
		cookie_set(r, "ccr_login", "", 0);
		flash_set(r, FLASH_SESSION_ENDED);
		return resp_redirect(r, "/login");
	}
	long long uid = db_int(&rows, 0, PG_UID);
	enum role role;
	if (role_parse(DB_CELL(&rows, 0, PG_ROLE), &role) == -1)
		return 500;
	const char *email = DB_CELL(&rows, 0, PG_EMAIL);
	const char *next = local_path(DB_CELL(&rows, 0, PG_NEXT));
	if ((th = throttled(r, uid)) < 0)
		return db_status();
	if (th) {
		resp_header_add(r, "Retry-After", "900");
		return code_page(r, 429, THROTTLE_MSG);
	}
	if ((n = row_load(r, uid, &t)) == -1)
		return db_status();
	if (n == -2)
		return unopenable(r);
	if (n == 0 || t.state != TOTP_ON) {
		/* 2FA was reset meanwhile: the password step starts again */
		if (db_exec(Q_PENDING_END, DB_ARGS(P_STR(hash))) < 0)
			return db_status();
		cookie_set(r, "ccr_login", "", 0);
		return resp_redirect(r, "/login");
	}
	if (db_begin() == -1 || (ok = twofa_claim(uid, &t, code, 1, &used_rec)) < 0)
		return db_fail();
	if (!ok) {
		db_rollback();
		if (code_failed(r, uid, "2fa_failed") == -1)
			return db_status();
		return code_page(r, 401, "Invalid code");
	}
	if (db_exec(Q_PENDING_END, DB_ARGS(P_STR(hash))) < 0)
		return db_fail();
	cookie_set(r, "ccr_login", "", 0);
	return account_signed_in(r, uid, role, 1, email, next,
	    used_rec ? "2fa recovery code" : "2fa");
}

/* ---- an admin resets another person's 2FA ------------------------------ */

static const char Q_TARGET[] = "SELECT email FROM users WHERE id = ? FOR UPDATE";

/* POST /admin/users/{id}/2fa/reset: the person's secret and recovery codes
 * dropped (they enrol again at their next login), audited, mailed to them.
 * Not one's own (that is /account/2fa, with a code).  303 to `next` or
 * /admin/agents. */
int totp_admin_reset(struct request *r)
{
	long long uid = r->path_id, n;
	struct db_rows rows;

	if (uid == r->user->id) {
		r->message = "Turn off your own two-factor sign-in on your account page.";
		return 403;
	}
	if (db_begin() == -1 || (n = db_query(r->a, &rows, Q_TARGET, 1, DB_ARGS(P_INT(uid)))) < 0)
		return db_fail();
	if (n == 0) {
		db_rollback();
		return 404;
	}
	const char *email = DB_CELL(&rows, 0, 0);
	if ((n = db_exec(Q_TOTP_DROP, DB_ARGS(P_INT(uid)))) < 0)
		return db_fail();
	if (n == 0) {
		db_rollback();
		r->message = "That person has no two-factor sign-in to reset.";
		return 409;
	}
	struct view *m = mail_new(r->conf, "twofa_reset");
	if (db_exec(Q_RECOVERY_DROP, DB_ARGS(P_INT(uid))) < 0 ||
	    db_exec(Q_PENDING_DROP_USER, DB_ARGS(P_INT(uid))) < 0 ||
	    mail_queue(request_ctx(r), m, "twofa_reset", email, uid, 0, 0) == -1 ||
	    audit_add(request_ctx(r), uid, "2fa_reset", "by admin") == -1 || db_commit() == -1)
		return db_fail();
	flash_set(r, FLASH_2FA_RESET);
	const char *next = local_path(req_form(r, "next"));
	return resp_redirect(r, next ? next : "/admin/agents");
}

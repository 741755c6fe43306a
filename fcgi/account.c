/*
 * account.c — the account routes (README "Accounts and security"): GET /,
 * register, login, logout, forgot/reset/change password, the account page
 * and deletion.
 * Handlers return an HTTP status; the dispatcher renders error pages.
 * Slow work (Argon2) happens before a transaction opens, never inside one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extern.h"

#define THROTTLE_EMAIL 5
#define THROTTLE_ADDR 20
#define RESETS_PER_HOUR 3
#define FORGOT_FLOOR_MS 40.0     /* POST /password/forgot never answers sooner */

/* ---- shared helpers ------------------------------------------------- */

/* A redirect target with one query parameter, percent-encoded. */
static const char *with_param(struct request *r, const char *path, const char *k, const char *v)
{
	return arena_printf(r->a, "%s?%s=%s", path, k, url_encode(r->a, v));
}

static const char Q_USER_BY_EMAIL[] =
    "SELECT id, password_hash, state, role, first_name, last_name, email, "
    "EXISTS (SELECT 1 FROM totp t WHERE t.user_id = users.id AND t.state = 'on') "
    "FROM users WHERE email = ?";
enum { UE_ID, UE_HASH, UE_STATE, UE_ROLE, UE_FIRST, UE_LAST, UE_EMAIL, UE_TOTP, UE__N };
/* row_active: the users.state of a row is 'active'. */
static int row_active(const char *state)
{
	enum account_state st;

	return account_state_parse(state, &st) == 0 && st == ACCT_ACTIVE;
}

static const char Q_USER_HASH[] = "SELECT password_hash FROM users WHERE id = ?";
static const char Q_SET_HASH[] =
    "UPDATE users SET password_hash = ?, updated_at = NOW() WHERE id = ?";

/* GET /: a logged-in user's home is the ticket list; anyone else logs in. */
int account_home(struct request *r)
{
	return resp_redirect(r, r->user ? "/tickets" : "/login");
}

/* ---- login / logout ------------------------------------------------- */

static int login_page(struct request *r, int status, const char *email, const char *next,
                      const char *error)
{
	struct view *v = page_new(r, "login.tpl", "Log in");

	if (v == NULL)
		return 500;
	vdict_set(view_body(v), "EMAIL", email);
	vdict_set(view_body(v), "NEXT", next ? next : "");
	if (error)
		vdict_set(vdict_section(view_body(v), "FORM_ERROR"), "MSG", error);
	return page_render(r, v, status);
}

int account_login_form(struct request *r)
{
	if (r->user)
		return resp_redirect(r, "/tickets");
	return login_page(r, 200, "", local_path(req_query(r, "next")), NULL);
}

static const char Q_FAILS[] =
    "SELECT (SELECT COUNT(*) FROM login_failures WHERE kind = 'email' AND subject = ? "
    "AND at > NOW() - INTERVAL 15 MINUTE), "
    "(SELECT COUNT(*) FROM login_failures WHERE kind = 'addr' AND subject = ? "
    "AND at > NOW() - INTERVAL 15 MINUTE)";
enum { LF_BY_EMAIL, LF_BY_ADDR, LF__N };
static const char Q_THROTTLED_SEEN[] =
    "SELECT COUNT(*) FROM audit_log WHERE event = 'login_throttled' "
    "AND at > NOW() - INTERVAL 15 MINUTE AND (addr = ? OR detail COLLATE utf8mb4_bin = ?)";
static const char Q_FAIL_ADD[] =
    "INSERT INTO login_failures (kind, subject, at) VALUES ('email', ?, NOW()), ('addr', ?, NOW())";

static int login_failed(struct request *r, long long uid, const char *email, const char *next)
{
	if (db_begin() == -1 || db_exec(Q_FAIL_ADD, DB_ARGS(P_STR(email), P_STR(r->remote_addr))) < 0 ||
	    audit_add(request_ctx(r), uid, "login_failed", email) == -1 || db_commit() == -1)
		return db_fail();
	return login_page(r, 401, email, next, "Invalid email or password");
}

/* POST /login: one message for a wrong email or password (401);
 * an unknown email still costs one Argon2 verification; 429 after 5
 * failures per email or 20 per address in 15 minutes, even for the right
 * password. */
int account_login(struct request *r)
{
	char *email = form_email(r, "email");
	const char *pw = req_form(r, "password");
	const char *next = local_path(req_form(r, "next"));
	struct db_rows rows;
	int n, ok;

	if (pw == NULL)
		pw = "";
	if (strlen(email) > 254)
		email[254] = '\0';
	n = db_query(r->a, &rows, Q_FAILS, LF__N, DB_ARGS(P_STR(email), P_STR(r->remote_addr)));
	if (n != 1)
		return db_status();
	if (db_int(&rows, 0, LF_BY_EMAIL) >= THROTTLE_EMAIL || db_int(&rows, 0, LF_BY_ADDR) >= THROTTLE_ADDR) {
		/* one audit row per window for the address or the email, not one
		 * per refused attempt: a flood of throttled logins writes nothing */
		n = db_query(r->a, &rows, Q_THROTTLED_SEEN, 1, DB_ARGS(P_STR(r->remote_addr),
		    P_STR(email)));
		if (n != 1)
			return db_status();
		if (db_int(&rows, 0, 0) == 0 &&
		    audit_add(request_ctx(r), 0, "login_throttled", email) == -1)
			return db_status();
		resp_header_add(r, "Retry-After", "900");
		return login_page(r, 429, email, next,
		    "Too many failed attempts. Please wait 15 minutes and try again.");
	}
	n = db_query(r->a, &rows, Q_USER_BY_EMAIL, UE__N, DB_ARGS(P_STR(email)));
	if (n < 0)
		return db_status();
	if (utf8_len(pw) > 128) {
		/* over 128 characters: refused before any hashing, answered
		 * like any failure */
		return login_failed(r, n ? db_int(&rows, 0, UE_ID) : 0, email, next);
	}
	if (n == 0) {
		if (password_dummy_verify(r->conf) == -1)
			return 503;
		return login_failed(r, 0, email, next);
	}
	long long uid = db_int(&rows, 0, UE_ID);
	const char *hash = DB_CELL(&rows, 0, UE_HASH);
	enum account_state state;
	if (account_state_parse(DB_CELL(&rows, 0, UE_STATE), &state) == -1)
		return 500;
	ok = hash ? password_verify(r->conf, hash, pw) : (password_dummy_verify(r->conf), 0);
	if (ok == -1)
		return 503;
	if (!ok)
		return login_failed(r, uid, email, next);
	if (state == ACCT_PENDING) {
		if (audit_add(request_ctx(r), uid, "login_pending", email) == -1)
			return db_status();
		return login_page(r, 403, email, next, "Your agent account is waiting for approval");
	}
	if (state != ACCT_ACTIVE)
		return login_failed(r, uid, email, next);

	enum role role;
	if (role_parse(DB_CELL(&rows, 0, UE_ROLE), &role) == -1)
		return 500;
	char newhash[256];
	int rehash = password_needs_rehash(r->conf, hash) &&
	    password_hash(r->conf, pw, newhash) == 0;
	if (db_begin() == -1 ||
	    (rehash && db_exec(Q_SET_HASH, DB_ARGS(P_STR(newhash), P_INT(uid))) < 0))
		return db_fail();
	/* two-factor sign-in on: no session yet, the code comes first */
	if (db_int(&rows, 0, UE_TOTP))
		return totp_login_start(r, uid, next);
	return account_signed_in(r, uid, role, 0, DB_CELL(&rows, 0, UE_EMAIL), next,
	    rehash ? "rehashed" : "");
}

/* account_signed_in: the end of every login (password, or password and
 * code), inside the caller's open transaction, which this commits: a new
 * session, this browser remembered (a login alert when it is new to the
 * account), the audit row.  A person who must enrol in two-factor sign-in
 * ([security] require_2fa) goes to /account/2fa, anyone else to next or
 * /tickets.  HTTP status. */
int account_signed_in(struct request *r, long long uid, enum role role, int twofa,
                      const char *email, const char *next, const char *detail)
{
	if (session_create(r, uid) == -1 || device_signin(r, uid, email, 1) == -1 ||
	    audit_add(request_ctx(r), uid, "login_ok", detail) == -1 || db_commit() == -1)
		return db_fail();
	if (!twofa && totp_required(r->conf, role)) {
		flash_set(r, FLASH_2FA_REQUIRED);
		return resp_redirect(r, "/account/2fa");
	}
	return resp_redirect(r, next ? next : "/tickets");
}

int account_logout(struct request *r)
{
	long long uid = r->user->id;

	if (db_begin() == -1 || session_end(r) == -1 ||
	    audit_add(request_ctx(r), uid, "logout", "") == -1 || db_commit() == -1)
		return db_fail();
	flash_set(r, FLASH_LOGGED_OUT);
	return resp_redirect(r, "/login");
}

/* ---- registration --------------------------------------------------- */

static int register_page(struct request *r, int status, const char *first, const char *last,
                         const char *email, int agent, const struct form_errors *f)
{
	struct view *v = page_new(r, "register.tpl", "Register");

	if (v == NULL)
		return 500;
	vdict_set(view_body(v), "FIRST_NAME", first);
	vdict_set(view_body(v), "LAST_NAME", last);
	vdict_set(view_body(v), "EMAIL", email);
	if (agent)
		vdict_show(view_body(v), "ROLE_AGENT");
	if (f)
		form_error_show(v, f);
	return page_render(r, v, status);
}

int account_register_form(struct request *r)
{
	if (r->user)
		return resp_redirect(r, "/tickets");
	return register_page(r, 200, "", "", "", 0, NULL);
}

/* POST /register: customers are logged in at once; role=agent makes a
 * pending request and mails every admin. */
int account_register(struct request *r)
{
	struct form_value in[REG__N];
	struct form_errors f = { .n = 0 };
	const char *rraw = req_form(r, "role");
	enum role role = ROLE_CUSTOMER;
	char hash[256];
	long long uid;

	/* a customer, or an agent awaiting approval; nobody registers as admin */
	if (rraw && *rraw && (role_parse(rraw, &role) == -1 || role == ROLE_ADMIN)) {
		r->message = "Unknown role";
		return 422;
	}
	int agent = role == ROLE_AGENT;
	form_read(r, &form_register, in, &f);
	const char *first = in[REG_FIRST].s, *last = in[REG_LAST].s, *email = in[REG_EMAIL].s;
	const char *pw = in[REG_PASSWORD].s;
	if (f.n == 0) {
		int taken = user_email_taken(r->a, email);
		if (taken < 0)
			return db_status();
		if (taken)
			form_error_add(&f, "ERR_EMAIL", "An account with this email already exists");
	}
	if (f.n)
		return register_page(r, 422, first, last, email, agent, &f);
	if (password_hash(r->conf, pw, hash) == -1)
		return 503;

	if (db_begin() == -1)
		return db_fail();
	uid = user_insert(email, first, last, agent ? ROLE_AGENT : ROLE_CUSTOMER,
	    agent ? ACCT_PENDING : ACCT_ACTIVE, hash);
	if (uid == 0) {
		db_rollback();
		form_error_add(&f, "ERR_EMAIL", "An account with this email already exists");
		return register_page(r, 422, first, last, email, agent, &f);
	}
	if (uid < 0)
		return db_fail();
	char *name = arena_printf(r->a, "%s %s", first, last);
	if (agent) {
		if (audit_add(request_ctx(r), uid, "agent_requested", email) == -1 ||
		    mail_admins(request_ctx(r), uid, "agent_request", name, email, 0, "") == -1 ||
		    db_commit() == -1)
			return db_fail();
		flash_set(r, FLASH_AGENT_REQUESTED);
		return resp_redirect(r, "/login");
	}
	struct view *v = mail_new(r->conf, "welcome");
	if (v)
		vdict_set(view_body(v), "NAME", name);
	if (mail_queue(request_ctx(r), v, "welcome", email, uid, 0, 0) == -1 ||
	    audit_add(request_ctx(r), uid, "registered", "customer") == -1 ||
	    session_create(r, uid) == -1 || device_signin(r, uid, email, 0) == -1 ||
	    db_commit() == -1)
		return db_fail();
	flash_set(r, FLASH_WELCOME);
	return resp_redirect(r, "/tickets");
}

/* ---- forgot / reset --------------------------------------------------- */

/* The forgot and reset pages: one email field and the errors. */
static int email_page(struct request *r, const char *tpl, const char *title, int status,
                      const char *email, const struct form_errors *f)
{
	struct view *v = page_new(r, tpl, title);

	if (v == NULL)
		return 500;
	vdict_set(view_body(v), "EMAIL", email ? email : "");
	if (f)
		form_error_show(v, f);
	return page_render(r, v, status);
}

static int reset_page(struct request *r, int status, const char *email, const struct form_errors *f)
{
	return email_page(r, "password_reset.tpl", "Set a new password", status, email, f);
}

int account_forgot_form(struct request *r)
{
	return email_page(r, "password_forgot.tpl", "Forgot password", 200, req_query(r, "email"), NULL);
}

static const char Q_USER_LOCK[] = "SELECT id FROM users WHERE id = ? FOR UPDATE";

/* POST /password/forgot: the same answer whether or not the account
 * exists (no account enumeration); at most 3 reset mails per account per
 * hour. */
int account_forgot(struct request *r)
{
	struct form_value in[FGT__N];
	struct form_errors f = { .n = 0 };
	struct db_rows rows;
	int n;

	form_read(r, &form_forgot, in, &f);
	const char *email = in[FGT_EMAIL].s;
	if (in[FGT_EMAIL].ok) {
		n = db_query(r->a, &rows, Q_USER_BY_EMAIL, UE__N, DB_ARGS(P_STR(email)));
		if (n < 0)
			return db_status();
		if (n == 1 && row_active(DB_CELL(&rows, 0, UE_STATE))) {
			long long uid = db_int(&rows, 0, UE_ID);
			char *name = arena_printf(r->a, "%s %s", DB_CELL(&rows, 0, UE_FIRST),
			    DB_CELL(&rows, 0, UE_LAST));
			struct db_rows cnt;
			/* the user's row lock serialises parallel requests, so the
			 * count below cannot be raced past RESETS_PER_HOUR */
			int recent;
			if (db_begin() == -1 || db_query(r->a, &cnt, Q_USER_LOCK, 1, DB_ARGS(P_INT(uid))) != 1 ||
			    (recent = code_resets_recent(r->a, uid)) == -1)
				return db_fail();
			if (recent < RESETS_PER_HOUR) {
				if (code_issue(request_ctx(r), uid, name, CODE_RESET) == -1 ||
				    audit_add(request_ctx(r), uid, "reset_requested", "") == -1)
					return db_fail();
			}
			if (db_commit() == -1)
				return db_fail();
		}
	}
	/* the known-account path does more work (a code, a mail, a commit):
	 * answer no sooner than FORGOT_FLOOR_MS so time does not tell them apart */
	double left = FORGOT_FLOOR_MS - (clock_ms() - r->t0);
	if (left > 0) {
		struct timespec ts = { 0, (long)(left * 1e6) };
		nanosleep(&ts, NULL);
	}
	flash_set(r, FLASH_RESET_SENT);
	return resp_redirect(r, with_param(r, "/password/reset", "email", email));
}

int account_reset_form(struct request *r)
{
	return reset_page(r, 200, req_query(r, "email"), NULL);
}

/* POST /password/reset: a valid code (8 digits, unexpired, unused, under
 * 5 tries) sets the password; the claim is one atomic UPDATE so of many
 * parallel submissions exactly one wins.  Bad code: 422 "Invalid or
 * expired code". */
int account_reset(struct request *r)
{
	struct form_value in[RST__N];
	struct form_errors f = { .n = 0 };
	struct db_rows rows;
	char pwhash[256];
	long long uid = 0, cid = 0;
	const char *stored = NULL;   /* the account's own address: the notice goes there */
	int n;

	form_read(r, &form_reset, in, &f);
	const char *email = in[RST_EMAIL].s, *code = in[RST_CODE].s, *pw = in[RST_PASSWORD].s;
	if (f.n)
		return reset_page(r, 422, email, &f);
	n = !in[RST_EMAIL].ok ? 0 : db_query(r->a, &rows, Q_USER_BY_EMAIL, UE__N, DB_ARGS(P_STR(email)));
	if (n < 0)
		return db_status();
	if (n == 1 && row_active(DB_CELL(&rows, 0, UE_STATE))) {
		uid = db_int(&rows, 0, UE_ID);
		stored = DB_CELL(&rows, 0, UE_EMAIL);
		cid = code_check(r->a, uid, code);
		if (cid < 0)
			return db_status();
	}
	if (cid == 0) {
		form_error_add(&f, "ERR_CODE", "Invalid or expired code");
		return reset_page(r, 422, email, &f);
	}
	if (password_hash(r->conf, pw, pwhash) == -1)
		return 503;
	if (db_begin() == -1)
		return db_fail();
	int won = code_claim(cid);
	if (won < 0)
		return db_fail();
	if (won == 0) {
		db_rollback();
		form_error_add(&f, "ERR_CODE", "Invalid or expired code");
		return reset_page(r, 422, email, &f);
	}
	struct view *v = mail_new(r->conf, "password_changed");
	if (db_exec(Q_SET_HASH, DB_ARGS(P_STR(pwhash), P_INT(uid))) < 0 || session_end_all(uid) == -1 ||
	    mail_queue(request_ctx(r), v, "password_changed", stored, uid, 0, 0) == -1 ||
	    audit_add(request_ctx(r), uid, "password_reset", "") == -1 || db_commit() == -1)
		return db_fail();
	cookie_set(r, "ccr_session", "", 0);
	flash_set(r, FLASH_PASSWORD_CHANGED);
	return resp_redirect(r, "/login");
}

/* ---- change password -------------------------------------------------- */

static int change_page(struct request *r, int status, const struct form_errors *f)
{
	struct view *v = page_new(r, "password_change.tpl", "Change password");

	if (v == NULL)
		return 500;
	if (f)
		form_error_show(v, f);
	return page_render(r, v, status);
}

int account_change_form(struct request *r)
{
	return change_page(r, 200, NULL);
}

/* POST /password/change: ends every session of the user. */
int account_change(struct request *r)
{
	struct form_value in[CHG__N];
	struct form_errors f = { .n = 0 };
	struct db_rows rows;
	char pwhash[256];
	long long uid = r->user->id;
	int ok;

	form_read(r, &form_change, in, &f);
	const char *cur = in[CHG_CURRENT].s, *pw = in[CHG_PASSWORD].s;
	if (f.n == 0 && strcmp(cur, pw) == 0)
		form_error_add(&f, "ERR_PASSWORD", "New password must differ from the old one");
	if (f.n)
		return change_page(r, 422, &f);
	if (db_query(r->a, &rows, Q_USER_HASH, 1, DB_ARGS(P_INT(uid))) != 1)
		return db_status();
	ok = utf8_len(cur) > 128 ? 0 : password_verify(r->conf, DB_CELL(&rows, 0, 0), cur);
	if (ok == -1)
		return 503;
	if (!ok) {
		form_error_add(&f, "ERR_CURRENT_PASSWORD", "Current password is incorrect");
		return change_page(r, 422, &f);
	}
	if (password_hash(r->conf, pw, pwhash) == -1)
		return 503;
	struct view *v = mail_new(r->conf, "password_changed");
	if (db_begin() == -1 || db_exec(Q_SET_HASH, DB_ARGS(P_STR(pwhash), P_INT(uid))) < 0 ||
	    session_end_all(uid) == -1 ||
	    mail_queue(request_ctx(r), v, "password_changed", r->user->email, uid, 0, 0) == -1 ||
	    audit_add(request_ctx(r), uid, "password_changed", "") == -1 || db_commit() == -1)
		return db_fail();
	cookie_set(r, "ccr_session", "", 0);
	flash_set(r, FLASH_PASSWORD_CHANGED);
	return resp_redirect(r, "/login");
}

/* ---- the account page and deletion ------------------------------------ */

static const char Q_PROFILE[] = "SELECT created_at FROM users WHERE id = ?";

static int account_page(struct request *r, int status, const struct form_errors *f)
{
	struct db_rows rows;
	struct view *v;

	if (db_query(r->a, &rows, Q_PROFILE, 1, DB_ARGS(P_INT(r->user->id))) != 1)
		return db_status();
	v = page_new(r, "account.tpl", "Account");
	if (v == NULL)
		return 500;
	vdict_set(view_body(v), "FIRST_NAME", r->user->first_name);
	vdict_set(view_body(v), "LAST_NAME", r->user->last_name);
	vdict_set(view_body(v), "EMAIL", r->user->email);
	vdict_set(view_body(v), "ROLE", role_name(r->user->role));
	vdict_set(view_body(v), "CREATED", DB_CELL(&rows, 0, 0));
	vdict_set(view_body(v), "TWOFA_STATE", r->user->twofa ? "on" : "off");
	if (r->user->role == ROLE_CUSTOMER)
		vdict_show(view_body(v), "CAN_DELETE");
	if (f)
		form_error_show(v, f);
	return page_render(r, v, status);
}

int account_show(struct request *r)
{
	return account_page(r, 200, NULL);
}

static const char Q_ANONYMISE[] =
    "UPDATE users SET state = 'deleted', first_name = 'Deleted', last_name = 'customer', "
    "email = CONCAT('deleted-', id, '@invalid'), password_hash = NULL, updated_at = NOW() "
    "WHERE id = ?";
static const char Q_OUTBOX_DROP[] =
    "UPDATE outbox SET status = 'dropped', body = '', reply_to = NULL, last_error = 'account deleted' "
    "WHERE user_id = ? AND status = 'pending'";

/* POST /account/delete (customers, with their password): personal data
 * erased, tickets kept under the anonymised account, sessions ended. */
int account_delete(struct request *r)
{
	struct form_value in[DEL__N];
	struct form_errors f = { .n = 0 };
	struct db_rows rows;
	long long uid = r->user->id;
	int ok;

	form_read(r, &form_delete, in, &f);
	const char *pw = in[DEL_PASSWORD].s;
	if (db_query(r->a, &rows, Q_USER_HASH, 1, DB_ARGS(P_INT(uid))) != 1)
		return db_status();
	ok = utf8_len(pw) > 128 ? 0 : password_verify(r->conf, DB_CELL(&rows, 0, 0), pw);
	if (ok == -1)
		return 503;
	if (!ok) {
		form_error_add(&f, "ERR_PASSWORD", "Password is incorrect");
		return account_page(r, 422, &f);
	}
	if (db_begin() == -1 || db_exec(Q_ANONYMISE, DB_ARGS(P_INT(uid))) < 0 ||
	    code_drop_all(uid) == -1 || db_exec(Q_OUTBOX_DROP, DB_ARGS(P_INT(uid))) < 0 ||
	    mail_tokens_drop(uid, 0) == -1 ||
	    session_end_all(uid) == -1 || audit_add(request_ctx(r), uid, "account_deleted", "") == -1 ||
	    db_commit() == -1)
		return db_fail();
	cookie_set(r, "ccr_session", "", 0);
	r->user = NULL;
	flash_set(r, FLASH_ACCOUNT_DELETED);
	return resp_redirect(r, "/login");
}

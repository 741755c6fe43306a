/*
 * extern.h — the private interfaces of ccrd and ccr-admin: each declaration
 * under the file that defines it, the files in the reading order of README
 * "Source layout".  Return-code convention: 0 ok / -1 failed, or a pointer
 * / NULL; where "not found" differs from "failed" it is documented per
 * function.  Functions carry their file's name as a prefix, with three
 * exceptions: request.c's two halves (req_ reads the request, resp_ writes
 * the response), view.cc's dictionaries (vdict_), and text.c, whose pure
 * string functions are named by what they work on (utf8_, str_, kv_...).
 */
#ifndef CCR_EXTERN_H
#define CCR_EXTERN_H

#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define CCR_VERSION "0.1.0"
#define EX_BADCONF 78 /* sysexits EX_CONFIG: a child with a bad config, not respawned */

struct request;
struct json_object;
struct db_rows;
struct vdict;
struct view;

/* ---- arena.c: request memory, released in one reset ------------------- */
struct arena;
struct arena *arena_new(size_t chunk);
void arena_free(struct arena *);
void arena_reset(struct arena *);
void *arena_alloc(struct arena *, size_t);   /* never NULL: OOM is fatal */
char *arena_strndup(struct arena *, const char *, size_t);
char *arena_strdup(struct arena *, const char *);
char *arena_printf(struct arena *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
size_t arena_used(const struct arena *);

/* ---- log.c: stderr lines for the journal ------------------------------ */
enum log_level { LOG_LV_ERR, LOG_LV_WARN, LOG_LV_INFO, LOG_LV_DEBUG };
void log_init(const char *prog, int json);
int log_reopen(const char *path);            /* "" = keep stderr */
void log_msg(enum log_level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define log_err(...) log_msg(LOG_LV_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LV_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LV_INFO, __VA_ARGS__)
size_t log_escape(char *dst, size_t dstlen, const char *src);
void log_access(const char *reqid, const char *method, const char *path,
                int status, double ms, long long user_id, const char *addr);

/* ---- clock.c: the monotonic clock ---------------------------------------- */
double clock_ms(void);

/* ---- conf.c: the INI configuration ------------------------------------ */
enum starttls_mode { STARTTLS_REQUIRED, STARTTLS_OPTIONAL, STARTTLS_OFF };
struct conf {
	char path[PATH_MAX];
	/* [server] */
	char listen[256];
	unsigned socket_mode;
	int workers;
	long max_requests;
	int shutdown_timeout;
	long max_body;
	char views_dir[PATH_MAX];
	char schema_dir[PATH_MAX];
	int log_json;
	char log_file[PATH_MAX];
	char user[64];
	/* [database] */
	char db_host[256];
	int db_port;
	char db_socket[PATH_MAX];
	char db_name[64];
	char db_user[80];
	char db_password[256];
	int db_connect_timeout, db_read_timeout, db_write_timeout;
	char backup_dir[PATH_MAX];
	int backup_keep;
	int db_galera_sync_wait;
	/* [smtp] */
	char smtp_host[256];
	int smtp_port;
	int smtp_starttls;
	char smtp_user[256];
	char smtp_password[256];
	char smtp_from[256];
	int smtp_timeout;
	long smtp_give_up_after;
	/* [security] */
	int secure_cookies;
	long argon2_memory, argon2_time, argon2_parallelism;
	int max_concurrent_hashes;
	char hash_slot_dir[PATH_MAX];
	long session_idle, session_absolute;
	char secret_key[256];        /* "" = none: two-factor enrolment unavailable */
	int require_2fa;             /* enum require_2fa */
	/* [site] */
	char site_name[128];
	char base_url[256];
	/* [tickets] */
	int auto_close_days;
	int page_size;
	int auto_assign;             /* enum assign_mode */
	/* [sla]: target seconds per priority (index: enum priority's order
	 * low normal high urgent); all 0 = that service level is off */
	long sla_first_response[4], sla_resolution[4];
	/* [limits]: mails to every admin caused by one client address / one account, per hour */
	int admin_mails_per_address, admin_mails_per_account;
	/* [retention]: what ccr-admin purge keeps, in days */
	int audit_days, login_failures_days;
	int webhook_days;            /* finished webhook deliveries */
	/* [mail_in]: the email channel (README "Email channel") */
	char mailin_address[256];    /* LOCAL@DOMAIN; "" = no reply tokens, no channel */
	long mailin_max_bytes;
	int mailin_unknown_senders;  /* enum unknown_senders */
	int mailin_tickets_per_hour;
	int mailin_keep_rejected_days;
	char imap_url[512];          /* "" = no fetcher */
	char imap_user[256];
	char imap_password[256];
	char imap_folder[128];
	char imap_done_folder[128];
	int imap_poll_interval;
	int imap_starttls;           /* enum starttls_mode, for imap:// URLs */
	int imap_timeout;
	/* [attachments] */
	long attach_max_file_bytes;  /* one file; a request carries at most ATTACH_MAX_REQUEST_BYTES */
	/* [api] */
	int api_requests_per_minute; /* per token, across all workers and hosts */
	/* [webhooks] (README "Webhooks") */
	char webhooks_allow[512];    /* addresses / CIDR blocks allowed although private */
	int webhooks_allow_http;     /* http:// endpoints too */
	int webhooks_timeout;        /* seconds for one delivery */
	long webhooks_give_up_after; /* seconds after the event */
	/* [search] (README "Search"): searchd's SphinxQL listener */
	char search_host[256];
	int search_port;
	char search_index[64];       /* the real-time index's name */
	int search_connect_timeout;  /* seconds */
	int search_timeout;          /* seconds for a read or write to searchd */
	int search_query_time;       /* ms: searchd's max_query_time for one search */
	int search_probe_matches;    /* matches the first step may find before the time spans */
	int search_poll_interval;    /* ms between the indexer's looks at an empty queue */
};
#define ATTACH_MAX_FILES 5                          /* files on one message or ticket */
#define ATTACH_MAX_REQUEST_BYTES (25L * 1024 * 1024) /* files of one request, and of one mail */
#define ATTACH_BODY_SLACK (64L * 1024)              /* an upload body's room for its fields */
enum unknown_senders { UNKNOWN_DROP, UNKNOWN_TICKET };
/* [security] require_2fa: who must enrol in two-factor sign-in first */
enum require_2fa { R2FA_ADMINS, R2FA_STAFF, R2FA_NONE };
#define SECRET_KEY_MIN 32         /* characters of [security] secret_key */
void conf_defaults(struct conf *);
int conf_load(struct conf *, const char *path, char *err, size_t errlen);
int conf_load_string(struct conf *, const char *text, const char *name,
                     char *err, size_t errlen);
int conf_workers(const struct conf *);
/* [sla] defaults, and the parser of the values (0 / -1 with why) */
#define SLA_FIRST_RESPONSE_DEFAULT "urgent:1 high:4 normal:24 low:72"
#define SLA_RESOLUTION_DEFAULT "urgent:8 high:24 normal:72 low:168"
int conf_sla_parse(const char *value, long out[4], char *why, size_t whylen);       /* resolves 0 → 2 × cores */

/* ---- text.c: percent-decoding, UTF-8, name/value lists, text rules ---- */
struct kv {
	const char *key;
	const char *val;
};
struct kvlist {
	struct kv *v;
	size_t n;
};
enum parse_result { PARSE_OK = 0, PARSE_BAD = -1, PARSE_UTF8 = -2, PARSE_TOO_MANY = -3 };
long pct_decode(char *s, size_t len, int plus_is_space);   /* in place; -1 bad */
int utf8_valid(const char *s, size_t len);                 /* 1 valid, 0 not */
size_t utf8_len(const char *s);   /* characters in a valid UTF-8 string */
int text_clean(char *s);          /* CRLF→LF in place; 0 ok, -1 control chars */
int kv_add(struct arena *, struct kvlist *, size_t *cap, size_t max_pairs,
           const char *k, const char *v);                  /* enum parse_result */
const char *kv_get(const struct kvlist *, const char *key); /* NULL absent */
int header_safe(const char *s);   /* 1 when no CR, LF or other CTL */
int email_valid(const char *s);   /* the email rule; 1 valid */
int str_is_hex(const char *s, size_t min, size_t max);     /* lowercase hex, min..max long */
void str_lower_ascii(char *s);
char *str_trim(char *s);          /* in place, returns start */
int str_lookup(const char *const *names, int n, const char *s); /* index, -1 absent */
char *url_encode(struct arena *, const char *s);
const char *local_path(const char *n);   /* a safe redirect target, or NULL */
void utf8_truncate(char *s, size_t max_chars);
char *str_fold_line(char *s);
#define FILENAME_MAX_BYTES 255
char *filename_clean(struct arena *, const char *raw, size_t len); /* never empty */
/* time_cells: the three texts of a time cell for unix time t seen at `now`
 * (UTC): iso "2026-12-04T18:30:05Z" (<time datetime>), text "2026-12-04
 * 18:30 UTC" (its title) and ago ("just now" under a minute, also for a
 * time ahead; "N min ago"; "N h ago"; "N day(s) ago" under 30 days; the
 * date after).  Digits written by hand (no strftime/printf); years 1000 to
 * 9999 only: -1 outside them, and nothing written. */
struct time_cells {
	char iso[24], text[24], ago[24];   /* each at most 20 characters and a NUL */
};
int time_cells(long long t, long long now, struct time_cells *out);

/* ---- crypto.c: SHA-256, random tokens, constant-time compare ----------- */
int crypto_sha256_hex(const void *data, size_t len, char out[65]);   /* 0 / -1 */
void *crypto_sha256_begin(void);                            /* NULL: failed */
int crypto_sha256_add(void *, const void *data, size_t len); /* 0 / -1 */
int crypto_sha256_end(void *, char out[65]);                 /* frees; 0 / -1 */
int crypto_random_hex(char *out, size_t nbytes); /* 2 × nbytes random hex digits; 0 / -1 */
int crypto_token(char out[65]);                 /* 64 random hex digits; 0 / -1 */
#define INMAIL_TOKEN_LEN 24          /* a reply token: lower-case letters and digits */
int crypto_reply_token(char out[INMAIL_TOKEN_LEN + 1]);  /* 120 random bits; 0 / -1 */
int crypto_equal(const char *a, const char *b); /* 1 equal; time independent of content */
int crypto_random_bytes(void *buf, size_t n);   /* getrandom(2); 0 / -1 */
int crypto_sha256(const void *data, size_t len, unsigned char out[32]); /* 0 / -1 */
#define CRYPTO_SEAL_OVERHEAD 28      /* nonce 12 + tag 16 */
int crypto_seal(const unsigned char key[32], const void *aad, size_t aadlen, const void *plain,
                size_t n, unsigned char *out, size_t cap, size_t *outlen);   /* 0 / -1 */
int crypto_open(const unsigned char key[32], const void *aad, size_t aadlen,
                const unsigned char *in, size_t n, unsigned char *out, size_t cap,
                size_t *outlen);     /* 0 / -1 forged or failed */

/* ---- db.c: the connection and prepared statements --------------------- */
enum db_err { DB_OK = 0, DB_GONE, DB_DEADLOCK, DB_DUP, DB_SLOW, DB_OTHER };
enum db_err db_classify(unsigned errnum);   /* a client/server error number's meaning */
/* A bound parameter, built only by P_INT / P_STR / P_NULL so that the
 * compiler checks each value against its kind (a pointer given to P_INT,
 * or a number to P_STR, does not build), and passed as an array whose
 * length the compiler counts: db_exec(Q, DB_ARGS(P_INT(id), P_STR(s))).
 * The count is checked against the statement's placeholders at run time. */
enum db_type { DB_T_NULL, DB_T_INT, DB_T_STR, DB_T_BLOB };
struct db_param {
	enum db_type type;
	long long i;
	const char *s;
	size_t len;             /* DB_T_BLOB: bytes at s (NULs and all) */
};
static inline struct db_param db_param_int(long long v)
{
	return (struct db_param){ .type = DB_T_INT, .i = v };
}
static inline struct db_param db_param_str(const char *s) /* NULL binds SQL NULL */
{
	return (struct db_param){ .type = s ? DB_T_STR : DB_T_NULL, .s = s };
}
static inline struct db_param db_param_blob(const void *p, size_t len)
{
	return (struct db_param){ .type = DB_T_BLOB, .s = (const char *)p, .len = len };
}
#define P_INT(v) db_param_int(v)
#define P_BLOB(p, n) db_param_blob(p, n)
#define P_STR(s) db_param_str(s)
#define P_NULL ((struct db_param){ .type = DB_T_NULL })
#define DB_ARGS(...) (const struct db_param[]){ __VA_ARGS__ }, \
	sizeof((const struct db_param[]){ __VA_ARGS__ }) / sizeof(struct db_param)
#define DB_NOARGS NULL, 0
/* Rows come back as arena strings (NULL for SQL NULL); a column of an
 * integer type is also parsed, checked, as it arrives: read it with
 * db_int().  Each SELECT names its columns in an enum beside its SQL,
 * ending in a count that db_query checks against the result. */
struct db_rows {
	size_t nrows, ncols;
	char **cell;            /* nrows*ncols, NULL for SQL NULL; arena-owned */
	long long *num;         /* nrows*ncols: the integer columns' values */
	size_t *len;            /* nrows*ncols: bytes in each cell (binary columns) */
	unsigned char *is_int;  /* ncols: the column has an integer type */
	const char *sql;        /* for the log when a column is misread */
};
#define DB_CELL(r, i, j) ((r)->cell[(i) * (r)->ncols + (j)])
#define DB_LEN(r, i, j) ((r)->len[(i) * (r)->ncols + (j)])
long long db_int(const struct db_rows *, size_t row, size_t col); /* NULL: 0 */
int db_init(const struct conf *);           /* settings only; connects lazily */
void db_request_start(void);
int db_connect(void);                       /* 0 / -1 (db_last_err set) */
void db_close(void);
int db_ping(void);
enum db_err db_last_err(void);
const char *db_last_msg(void);
long long db_exec(const char *sql, const struct db_param *, size_t n);  /* affected, -1 */
int db_query(struct arena *, struct db_rows *, const char *sql, size_t ncols,
             const struct db_param *, size_t n);                    /* rows, -1 */
int db_stream(const char *sql, const struct db_param *, size_t n, void *buf, size_t cap,
              int (*fn)(void *, long long, const void *, size_t), void *arg); /* rows, -1 */
long long db_insert_id(void);
int db_begin(void);
int db_commit(void);
void db_rollback(void);
int db_status(void);   /* HTTP status for the last failure: 503 or 500 */
int db_fail(void);     /* roll back, then db_status() */
void *db_handle(void); /* the MYSQL * (ccr-admin migrations only) */

/* ---- view.cc: the ctemplate shim (the only C++) ------------------------ */
#include "view.h"

/* ---- master.c: the supervisor of workers and the mailer ---------------- */
int master_run(struct conf *, int listen_fd);          /* exit code */

/* ---- child.c: signals of workers and the mailer ------------------------ */
extern volatile int child_stop;          /* set by SIGTERM/SIGINT */
void child_signals(sigset_t *waitmask);  /* the mask to wait with */
void child_reopen_log(const struct conf *);
/* child_idle: wait ms (a SIGTERM ends it at once), then reopen the log if asked */
void child_idle(const struct conf *, long ms, const sigset_t *waitmask);

/* ---- worker.c: accept and serve one request at a time ------------------ */
int worker_main(const struct conf *, int listen_fd);   /* exit code */

/* ---- fcgi.c: the FastCGI record pre-filter ----------------------------- */
int fcgi_suspect(int fd);         /* 1: drop the connection unread */

/* ---- request.c: the request and its response --------------------------- */
/* What audit rows, mail and one-time codes need of their caller: a request
 * (request_ctx) or a ccr-admin command (built on the stack). */
struct ctx {
	struct arena *a;
	const struct conf *conf;
	const char *reqid;          /* the request id, or the command's name */
	const char *addr;           /* the client address, or "local" */
	long long actor;            /* the user acting, 0 = nobody logged in */
};
struct resp_header {
	const char *name;
	const char *value;
};
#define RESP_MAX_HEADERS 16
struct attach_file;
struct request {
	struct arena *a;
	void *fcgx;                 /* FCGX_Request * */
	const struct conf *conf;
	char id[40];                /* request id (nginx $request_id or ours) */
	const char *method;
	const char *path;
	const char *remote_addr;
	struct kvlist query;
	struct kvlist form;
	struct kvlist cookies;
	/* a multipart/form-data body (multipart.c, upload routes only) */
	struct attach_file *files;  /* its files, at most ATTACH_MAX_FILES */
	size_t nfiles;
	size_t files_sent;          /* file parts it carried: more than nfiles = too many */
	void *upload;               /* the parse behind files[], released after the response */
	long long path_id;          /* the {id} of the route, 0 when none */
	const struct route *route;
	/* session (session.c) */
	struct user *user;          /* NULL when anonymous */
	char csrf[72];              /* token the forms must carry */
	const char *session_hash;   /* SHA-256 of the session cookie, or NULL */
	long long session_id;       /* sessions.id of it, 0 when none */
	/* the JSON API (api.c): a path under /api/ — cookies ignored, a
	 * Bearer token instead, JSON in and out */
	int api;
	long long token_id;         /* api_tokens.id of the Bearer token, 0 when none */
	int token_stale;            /* its last_used_at is over a minute old */
	long long created_id;       /* the row a handler created (ticket, message), for the API */
	const char *api_field;      /* the request field an API refusal names, or NULL */
	/* response */
	int status;
	const char *location;       /* 303 target */
	const char *ctype;
	char *body;
	size_t body_len;
	const char *message;        /* a person-readable reason for an error page */
	struct resp_header hdr[RESP_MAX_HEADERS];
	size_t nhdr;
	const char *csp;            /* Content-Security-Policy; NULL: the site's */
	const char *cache;          /* Cache-Control; NULL: no-store */
	int streamed;               /* the handler wrote the response (resp_stream_*) */
	double t0;                  /* clock_ms() at the start */
	struct ctx ctx;             /* request_ctx's */
};
void request_init(struct request *, struct arena *, void *fcgx, const struct conf *);
int request_read(struct request *);          /* head and body: HTTP status, 0 ok */
int request_read_head(struct request *);     /* params, query: HTTP status, 0 ok */
int request_read_body(struct request *);     /* by r->route's flags: 0, 400/413/415/422 */
void request_refuse(struct request *, int status, const char *why);
const struct ctx *request_ctx(struct request *);
const char *req_param(const struct request *, const char *name); /* FastCGI env */
const char *req_query(const struct request *, const char *name);
const char *req_form(const struct request *, const char *name);
int resp_header_add(struct request *, const char *name, const char *value);
int resp_redirect(struct request *, const char *location);  /* returns 303 */
int resp_text(struct request *, int status, const char *text);
void resp_send(struct request *);
/* A response written piece by piece (a file): the status line and headers
 * with Content-Length len, then the body in resp_stream_write calls (none
 * for HEAD; the body bypasses libfcgi's 8 KiB stream: 64 KiB records,
 * one writev, after the headers are flushed).  r->streamed tells
 * route_dispatch it was sent. */
void resp_stream_start(struct request *, int status, const char *ctype, long long len); /* len -1: none */
int resp_stream_write(struct request *, const void *data, size_t n);   /* 0 / -1 */
const char *resp_reason(int status);

/* ---- form.c: the urlencoded parser, fields, rules, field errors -------- */
int form_parse(struct arena *, const char *s, size_t len, struct kvlist *out,
               size_t max_pairs);                          /* enum parse_result */
/* the rules: NULL = good, else the message */
const char *form_check_first_name(const char *);
const char *form_check_last_name(const char *);
const char *form_check_email(const char *);
const char *form_check_password(const char *);
const char *form_check_confirm(const char *pw, const char *confirm);
char *form_text(struct request *, const char *name);
char *form_email(struct request *, const char *name);
char *form_line(struct request *, const char *name);
/* A form's field errors, in the order the page shows them. */
#define FORM_ERRORS_MAX 8
struct form_errors {
	struct {
		const char *key;   /* ERR_<FIELD> */
		const char *msg;
	} e[FORM_ERRORS_MAX];
	int n;
};
void form_error_add(struct form_errors *, const char *key, const char *msg);
void form_error_show(struct view *, const struct form_errors *);
/* Declared fields: each form is a table of these (in form.c), read and
 * checked by form_read before its handler runs; the handler gets typed
 * values, indexed by the form's enum, and the errors in field order. */
enum form_kind {
	FK_LINE,     /* one line: trimmed, newlines and tabs folded to spaces */
	FK_TEXT,     /* multi-line, kept as typed; "blank" judged on its trimmed copy */
	FK_NOTE,     /* multi-line, trimmed */
	FK_EMAIL,    /* trimmed, ASCII lower-cased, the email rule */
	FK_PASSWORD, /* as typed, min..max characters */
	FK_SECRET,   /* as typed, no rule: checked against a stored hash */
	FK_CONFIRM,  /* must equal field same_as */
	FK_INT,      /* decimal, min..max */
	FK_CHOICE,   /* one of choices[]; absent or empty: dflt */
	FK_FILE,     /* files of a multipart body: at most max (too_long past it) */
};
struct form_field {
	const char *name;           /* the form field's name */
	enum form_kind kind;
	const char *err;            /* its ERR_<FIELD> section; NULL: checked, not shown */
	long long min, max;         /* characters (text kinds) or the value (FK_INT); max 0: none */
	const char *missing;        /* below min, empty, or not valid */
	const char *too_long;       /* above max */
	int same_as;                /* FK_CONFIRM */
	const char *const *choices; /* FK_CHOICE, nchoices names */
	int nchoices, dflt;
	int or_file;                /* FK_TEXT: empty is fine when the form carries a file */
};
struct form_value {
	const char *s;              /* the (normalised) text, never NULL */
	long long i;                /* FK_INT: the number; FK_CHOICE: the index */
	int ok;                     /* passed its rule */
};
#define FORM_FIELDS_MAX 8
struct form {
	const struct form_field *f;
	int n;
};
/* Returns the number of errors added to *errs. */
int form_read(struct request *, const struct form *, struct form_value *out,
              struct form_errors *errs);
enum { REG_FIRST, REG_LAST, REG_EMAIL, REG_PASSWORD, REG_CONFIRM, REG__N };
extern const struct form form_register;
enum { AGC_FIRST, AGC_LAST, AGC_EMAIL, AGC__N };
extern const struct form form_agent_create;
enum { RST_EMAIL, RST_CODE, RST_PASSWORD, RST_CONFIRM, RST__N };
extern const struct form form_reset;
enum { FGT_EMAIL, FGT__N };
extern const struct form form_forgot;
enum { CHG_CURRENT, CHG_PASSWORD, CHG_CONFIRM, CHG__N };
extern const struct form form_change;
enum { DEL_PASSWORD, DEL__N };
extern const struct form form_delete;
enum { TFA_CODE, TFA_PASSWORD, TFA__N };
extern const struct form form_twofa;
enum { TKT_SUBJECT, TKT_DESCRIPTION, TKT_PRIORITY, TKT_ATTACHMENT, TKT__N };
extern const struct form form_ticket;
enum { MSG_BODY, MSG_ATTACHMENT, MSG__N };
extern const struct form form_message;
enum { RATE_SCORE, RATE_COMMENT, RATE__N };
extern const struct form form_rating;
enum { ASG_AGENT, ASG__N };
extern const struct form form_assign;
enum { NOTE_BODY, NOTE_ATTACHMENT, NOTE__N };
extern const struct form form_note;
enum { PRI_PRIORITY, PRI__N };
extern const struct form form_priority;
enum { SR_TITLE, SR_BODY, SR_SHARED, SR__N };
extern const struct form form_saved_reply;
enum { AVL_AVAILABLE, AVL__N };
extern const struct form form_availability;
enum { TOK_NAME, TOK__N };
extern const struct form form_token;

/* ---- multipart.c: multipart/form-data bodies (RFC 7578) through GMime -- */
/* A file to store: from an upload (stream: a GMimeStream of its decoded
 * bytes) or from a mail (data, len in memory).  attach_check fills the rest. */
struct attach_file {
	const char *name;           /* filename_clean'd, never empty */
	void *stream;               /* GMimeStream *, or NULL for data */
	const unsigned char *data;
	size_t len;
	size_t off;                 /* read position in data */
	/* attach_check: */
	long long size;
	char sha256[65];
	char ctype[128];            /* libmagic's answer for the bytes */
};
/* multipart_parse: body (len bytes, sent as Content-Type ctype) of a form
 * with field table fm: text parts named in fm (and csrf_token) become pairs
 * in *form, parts named as its FK_FILE field with a filename become
 * files[] (the first ATTACH_MAX_FILES; *sent counts all), any other part
 * is ignored.  The parse lives in *handle until multipart_free.  Returns 0,
 * 413 (text fields over max_text bytes) or 422, with *why. */
int multipart_parse(struct arena *, const char *ctype, const char *body, size_t len,
                    const struct form *fm, size_t max_text, struct kvlist *form,
                    struct attach_file *files, size_t *nfiles, size_t *sent,
                    void **handle, const char **why);
int multipart_read(struct request *, size_t len, const char *ctype); /* the body; HTTP status */
void multipart_free(void *handle);
long multipart_stream_read(void *stream, void *buf, size_t n);      /* bytes, 0 end, -1 */
int multipart_stream_rewind(void *stream);                          /* 0 / -1 */

/* ---- cookie.c: the Cookie header in, Set-Cookie out -------------------- */
int cookie_parse(struct arena *, const char *hdr, struct kvlist *out,
                 size_t max_pairs);                        /* enum parse_result */
const char *cookie_get(const struct request *, const char *name);
void cookie_set(struct request *, const char *name, const char *value, long max_age);

/* ---- route.c: the route table and the dispatcher ----------------------- */
typedef int (*handler_fn)(struct request *);
enum route_flag {
	RF_AUTH = 1 << 0,     /* needs a logged-in user */
	RF_CUSTOMER = 1 << 1, /* role allowed (none of the three = any role) */
	RF_AGENT = 1 << 2,
	RF_ADMIN = 1 << 3,
	RF_CSRF = 1 << 4,     /* state-changing: csrf_token must match */
	RF_NODB = 1 << 5,     /* may run without the database */
	RF_POLL = 1 << 6,     /* background poll: not activity (last_seen stays) */
	RF_UPLOAD = 1 << 7,   /* also multipart/form-data with files, up to
	                       * ATTACH_MAX_REQUEST_BYTES + ATTACH_BODY_SLACK */
	RF_ENROL = 1 << 8,    /* open to a person who must enrol in two-factor
	                       * sign-in first ([security] require_2fa) */
};
struct route {
	const char *method;
	const char *pattern;  /* "/tickets/{id}/messages": {id} = 1..18 digits,
	                       * {name} = one path segment (ignored) */
	handler_fn handler;
	unsigned flags;
	const struct form *form;  /* RF_UPLOAD: the fields a multipart body may carry */
};
/* route_match: the route, or NULL with *status 404 or 405 (allow filled). */
const struct route *route_match(const char *method, const char *path,
                                long long *id, int *status, char *allow,
                                size_t allowlen);
void route_dispatch(struct request *);
const char *route_name(int index);      /* "GET /tickets/{id}", for metrics */

/* ---- user.c: account rows shared by the account, agent and admin code -- */
/* The closed sets of an account, as the users table's ENUM columns hold
 * them; names[] of each is its SQL spelling.  Parsed once where a row or a
 * form is read; past that point code compares enums, never strings. */
enum role { ROLE_CUSTOMER, ROLE_AGENT, ROLE_ADMIN, ROLE__MAX };
enum account_state {
	ACCT_ACTIVE, ACCT_PENDING, ACCT_REJECTED, ACCT_DISABLED, ACCT_DELETED, ACCT__MAX
};
const char *role_name(enum role);
int role_parse(const char *, enum role *);                  /* 0 / -1 unknown */
const char *account_state_name(enum account_state);
int account_state_parse(const char *, enum account_state *); /* 0 / -1 unknown */
long long user_insert(const char *email, const char *first, const char *last,
                      enum role, enum account_state, const char *hash);
int user_email_taken(struct arena *, const char *email);   /* 1 / 0 / -1 */
const char *user_email(struct arena *, long long id);       /* NULL: none or failed */
int user_active_email(struct arena *, long long id, const char **email); /* 1 / 0 / -1 */

/* ---- session.c: sessions and CSRF tokens ------------------------------- */
struct user {                   /* the logged-in user of a request */
	long long id;
	enum role role;
	enum account_state state;
	char email[256];
	char first_name[260];
	char last_name[260];
	int twofa;                  /* two-factor sign-in is on */
	enum user_avail { UA_UNKNOWN, UA_OFF, UA_ON } available;   /* an agent's, from the session read */
};
int session_load(struct request *);
int session_peek(struct request *);
int session_create(struct request *, long long user_id);
int session_end(struct request *);
int session_end_all(long long user_id);
int session_csrf_ok(const struct request *);
int session_list(struct request *);          /* GET /account/sessions */
int session_end_one(struct request *);       /* POST /account/sessions/{id}/end */
int session_end_others(struct request *);    /* POST /account/sessions/end-others */

/* ---- flash.c: the one-time message of the next page -------------------- */
enum flash {
	FLASH_NONE, FLASH_WELCOME, FLASH_AGENT_REQUESTED, FLASH_RESET_SENT,
	FLASH_PASSWORD_CHANGED, FLASH_LOGGED_OUT, FLASH_ACCOUNT_DELETED,
	FLASH_TICKET_CREATED, FLASH_AGENT_ASSIGNED, FLASH_TICKET_CLOSED,
	FLASH_TICKET_RESOLVED, FLASH_TICKET_REOPENED, FLASH_RATED,
	FLASH_AGENT_CREATED, FLASH_AGENT_APPROVED, FLASH_AGENT_REJECTED,
	FLASH_AGENT_DISABLED, FLASH_SESSION_ENDED, FLASH_NOTE_ADDED, FLASH_PRIORITY_CHANGED,
	FLASH_REPLY_SAVED, FLASH_REPLY_DELETED, FLASH_2FA_OFF, FLASH_2FA_RESET,
	FLASH_SESSION_ENDED_ONE, FLASH_SESSIONS_ENDED, FLASH_2FA_REQUIRED, FLASH_AVAILABLE,
	FLASH_UNAVAILABLE, FLASH_TOKEN_REVOKED,
	FLASH_WEBHOOK_DELETED, FLASH__MAX
};
void flash_set(struct request *, enum flash);
void flash_take(struct request *, struct vdict *top);

/* ---- page.c: rendering a page inside the layout ------------------------ */
struct view *page_new(struct request *, const char *tpl, const char *title);
int page_render(struct request *, struct view *, int status);
int page_error(struct request *, int status); /* renders error.tpl */
void page_set_times(struct vdict *, const char *iso_key, const char *text_key,
                    const char *ago_key, const char *unix_ts);
/* page_set_time(r, d, "PREFIX", ts): PREFIX_ISO, PREFIX_TEXT and PREFIX_AGO
 * of d for the UNIX_TIMESTAMP() text ts; PREFIX must be a string literal
 * (the keys are joined at compile time, none is built per row) */
#define page_set_time(r, d, prefix, unix_ts) \
	((void)(r), page_set_times((d), prefix "_ISO", prefix "_TEXT", prefix "_AGO", (unix_ts)))

/* ---- password.c: Argon2id and the bound on concurrent hashes ---------- */
int password_hash(const struct conf *, const char *pw, char out[256]);
int password_verify(const struct conf *, const char *encoded, const char *pw);
int password_needs_rehash(const struct conf *, const char *encoded);
int password_dummy_verify(const struct conf *);
unsigned long password_hash_count(void);

/* ---- code.c: one-time codes (password reset, agent invitation) --------- */
enum code_purpose { CODE_RESET, CODE_INVITE, CODE__MAX };  /* password_codes.purpose */
int code_issue(const struct ctx *, long long uid, const char *name, enum code_purpose);
int code_resets_recent(struct arena *, long long uid);     /* count / -1 */
long long code_check(struct arena *, long long uid, const char *code); /* id / 0 / -1 */
int code_claim(long long id);                               /* 1 won / 0 / -1 */
int code_drop_all(long long uid);

/* ---- audit.c: security events ------------------------------------------ */
int audit_add(const struct ctx *, long long user_id, const char *event, const char *detail);

/* ---- mail.c: notifications into the outbox ----------------------------- */
/* the first line of a ticket mail that can be answered (printf: the ticket) */
#define MAIL_REPLY_MARKER "-- Reply above this line to answer ticket #%lld --"
struct view *mail_new(const struct conf *, const char *name);
int mail_queue(const struct ctx *, struct view *, const char *kind, const char *to,
               long long user_id, long long ticket_id, long expires);
int mail_queue_active(const struct ctx *, struct view *, const char *kind, long long user_id,
                      long long ticket_id);
/* mail_queue_staff: like mail_queue_active, threaded with the ticket's
 * mail but never with a reply token (internal notes: an answer by mail
 * would become a message the customer sees). */
int mail_queue_staff(const struct ctx *, struct view *, const char *kind, long long user_id,
                     long long ticket_id);
int mail_tokens_drop(long long user_id, long long ticket_id);
int mail_admins(const struct ctx *, long long account_id, const char *name, const char *who,
                const char *email, long long ticket_id, const char *subject);

/* ---- totp.c: two-factor sign-in ---------------------------------------- */
int totp_generate(const void *secret, size_t len, time_t t, unsigned digits, char *out); /* 0 / -1 */
long long totp_match(const void *secret, size_t len, time_t now, const char *code); /* step, -1, -2 */
char *totp_base32(struct arena *, const void *secret, size_t len);
char *totp_uri(struct arena *, const char *issuer, const char *account, const char *b32);
char *totp_qr_path(struct arena *, const char *text, int *size);
enum totp_code { TC_BAD, TC_TOTP, TC_RECOVERY };
enum totp_code totp_code_kind(char *s);  /* normalises s in place */
int totp_required(const struct conf *, enum role);
int totp_must_enrol(const struct request *);
int totp_page(struct request *);         /* GET /account/2fa */
int totp_post(struct request *);         /* POST /account/2fa */
int totp_login_start(struct request *, long long uid, const char *next);
int totp_login_form(struct request *);   /* GET /login/2fa */
int totp_login(struct request *);        /* POST /login/2fa */
int totp_admin_reset(struct request *);  /* POST /admin/users/{id}/2fa/reset */

/* ---- device.c: known browsers and the login alert ---------------------- */
char *device_browser_line(struct arena *, const char *ua);
const char *device_browser(struct request *);
int device_signin(struct request *, long long uid, const char *email, int alert); /* 1 / 0 / -1 */

/* ---- token.c: personal API tokens and their rate limit --------------- */
#define TOKEN_MAX_PER_PERSON 10
#define TOKEN_PREFIX "ccr_"          /* then 64 hex digits: 256 random bits */
int token_load(struct request *);    /* r->user from Authorization: Bearer; 0 / -1 */
int token_rate(struct request *);    /* 0, 429 (Retry-After set), or a db status */
void token_rate_idle(void);          /* an idle worker: flush the slots that wait */
int token_end_all(long long user_id);   /* every token of the person; 0 / -1 */
int token_list(struct request *);    /* GET /account/tokens */
int token_create(struct request *);  /* POST /account/tokens */
int token_revoke(struct request *);  /* POST /account/tokens/{id}/revoke */

/* ---- rate.c: the API's per-token counters in shared memory ------------ */
#define RATE_SLOTS 4096              /* tokens counted at once on a host */
#define RATE_PROBE 8                 /* slots a token may use: its hash and the next 7 */
#define RATE_FLUSH_MS 1000.0         /* a slot's hits go to its api_rate row this often */
#define RATE_STALE_MS 5000.0         /* a flush not back by then: its worker died */
enum rate_step { RATE_GO, RATE_FLUSH, RATE_WAIT, RATE_DIRECT };
struct rate_ticket {
	long long token_id, minute;
	long long delta;             /* RATE_FLUSH: the hits to add to the row */
	long long ordinal;           /* RATE_GO: this request's place in the minute */
	long long evicted_token, evicted_minute, evicted_delta; /* an evicted slot's hits */
	int touch;                   /* write the token's last_used_at */
	size_t slot;                 /* the rest: rate.c's */
	unsigned gen;
	long long base;
};
struct rate_table;
struct rate_table *rate_table_new(size_t nslots);  /* shared anonymous memory; NULL */
void rate_table_free(struct rate_table *);
int rate_init(void);                 /* the host's table, before the first fork; 0 / -1 */
struct rate_table *rate_table(void); /* it, or NULL */
enum rate_step rate_count(struct rate_table *, long long token_id, long long minute, double now_ms,
                          int stale, struct rate_ticket *);
long long rate_flushed(struct rate_table *, const struct rate_ticket *, long long total,
                       double now_ms);                 /* total -1: the write failed */
int rate_idle(struct rate_table *, double now_ms, size_t *cursor, struct rate_ticket *);

/* ---- account.c: the account routes ------------------------------------- */
int account_signed_in(struct request *, long long uid, enum role, int twofa, const char *email,
                      const char *next, const char *detail);
int account_home(struct request *);
int account_login_form(struct request *);
int account_login(struct request *);
int account_logout(struct request *);
int account_register_form(struct request *);
int account_register(struct request *);
int account_forgot_form(struct request *);
int account_forgot(struct request *);
int account_reset_form(struct request *);
int account_reset(struct request *);
int account_change_form(struct request *);
int account_change(struct request *);
int account_show(struct request *);
int account_delete(struct request *);

/* ---- search.c: folding, the query, the queue, the indexer, the rebuild -- */
#define SEARCH_MAX_WORDS 16       /* words of a query that count; more are ignored */
#define SEARCH_WORD_MAX 64        /* bytes of one query word */
#define SEARCH_MIN_PREFIX 3       /* characters before a '*' for a prefix */
enum search_parse { SQ_EMPTY, SQ_WORDS, SQ_TICKET };
struct search_query {
	long long ticket_id;      /* SQ_TICKET: "#N" */
	size_t n;
	struct {
		char *w;              /* folded: letters and digits */
		int prefix;           /* it ended in '*' */
		char *shown;          /* as typed, for the "remove a word" links */
	} word[SEARCH_MAX_WORDS];
};
struct search_filter {
	int notes;                /* staff: notes are searched too */
	long long customer_id, agent_id;  /* 0 = any */
	int unassigned;           /* agent_id = 0 only */
	int status;               /* enum ticket_status, -1 any */
	int cursor;               /* after (after_ts, after_id) in list order */
	long long after_ts, after_id;
};
char *search_fold(struct arena *, const char *s, size_t len, size_t max);
enum search_parse search_parse(struct arena *, const char *text, struct search_query *);
char *search_match_string(struct arena *, const struct search_query *, int notes);
int search_matches(struct arena *, const struct search_query *, const char *text,
                   size_t max);                         /* 1: a word of q is in text */
int search_mark(struct arena *, const struct search_query *, const char *text, size_t max,
                struct vdict *, const char *section);   /* 1 a word matched */
#define SEARCH_LEVELS 4           /* time grains of a document's scope words: 1, 8, 64, 512 days */
char *search_scope_text(struct arena *, long long customer_id, long long agent_id,
                        long long activity);              /* a document's scope field */
char *search_scope_match(struct arena *, const struct search_filter *, int level, long long now);
long long search_level_start(int level, long long now);   /* level's span starts here (unix) */
int search_enqueue(long long ticket_id);                 /* caller's transaction: 0 / -1 */
int search_enqueue_agent(long long agent_id);            /* caller's transaction: 0 / -1 */
void search_init(const struct conf *);
const char *search_last_error(void);
int search_ids(struct arena *, const struct search_query *, const struct search_filter *,
               long long *ids, long long *acts, int cap);  /* count, -1 searchd unavailable */
int search_main(const struct conf *);                    /* the indexer process: exit code */
int search_rebuild(const struct conf *);                 /* ccr-admin search-rebuild: 0 / -1 */
/* ---- ticket.c: the ticket routes and the ticket life ------------------- */
/* The tickets table's ENUM columns; names[] as SQL spells them. */
enum ticket_status { TS_OPEN, TS_RESOLVED, TS_CLOSED, TS__MAX };
enum priority { PRIO_LOW, PRIO_NORMAL, PRIO_HIGH, PRIO_URGENT, PRIO__MAX };
const char *ticket_status_name(enum ticket_status);
int ticket_status_parse(const char *, enum ticket_status *); /* 0 / -1 unknown */
extern const char *const priority_names[PRIO__MAX];
const char *priority_name(enum priority);
int priority_parse(const char *, enum priority *);           /* 0 / -1 unknown */
/* The ticket life as a table: what each move makes of each status. */
enum ticket_move { TM_RESOLVE, TM_CLOSE, TM_REOPEN, TM_CUSTOMER_REPLY, TM_AGENT_REPLY, TM__MAX };
int ticket_move(enum ticket_move, enum ticket_status from, enum ticket_status *to); /* 0 / -1 refused */
struct ticket {
	long long id, customer_id, agent_id;     /* agent_id 0 = unassigned */
	enum ticket_status status;
	enum priority priority;
	const char *subject, *description, *created, *activity;
	const char *customer_name, *customer_email, *agent_name, *agent_email;
	const char *customer_first;              /* the customer's first name */
};
int ticket_read(struct arena *, long long id, struct ticket *);   /* 1 / 0 none / -1 */
int ticket_get(struct request *, struct ticket *);
int ticket_visible(const struct request *, const struct ticket *);
int ticket_lock(struct arena *, struct ticket *);   /* status and agent again, locked */
int ticket_page(struct request *, const struct ticket *, int status, const char *err_key,
                const char *error, const char *draft);
/* The list of GET /tickets and GET /api/v1/tickets: the query's filters
 * read and checked, the rows fetched (ticket_list_fetch). */
struct ticket_filter {
	long long limit;             /* rows to fetch (one more than a page shows) */
	const char *status, *assigned, *q, *after;
	enum ticket_status st;
	int all, admin, none, by_agent, customer, cursor;
	int search;                  /* q was a search (searchd's answer): next is the cursor */
	const char *next;            /* search: the next page's cursor, NULL on the last page */
	struct search_query sq;      /* search: the parsed words */
	enum search_parse sq_kind;   /* search: words, "#N", or nothing searchable */
	int overdue;                 /* status=overdue: by due time, cursor "due-id" */
	long long cust_id;
	const char *cust_name;
};
enum { TL_ID, TL_SUBJECT, TL_STATUS, TL_PRIORITY, TL_CREATED, TL_ACTIVITY, TL_CUSTOMER, TL_AGENT,
       TL_CUSTOMER_ID, TL_AGENT_ID, TL_DUE, TL__N };
int ticket_list_fetch(struct request *, struct ticket_filter *, struct db_rows *); /* rows, or -status */
int ticket_list(struct request *);
int ticket_new_form(struct request *);
int ticket_create(struct request *);
long long ticket_open(const struct ctx *, const struct user *customer, const char *subject,
                      const char *desc, enum priority, struct attach_file *, size_t nfiles);
int ticket_show(struct request *);
int ticket_seen(struct request *, long long id);   /* 0 / -1 */
int ticket_assign(struct request *);
int ticket_resolve(struct request *);
int ticket_close(struct request *);
int ticket_reopen(struct request *);
int ticket_rate(struct request *);
int ticket_priority(struct request *);
int ticket_auto_close(const struct conf *);
/* ---- sla.c: service levels -------------------------------------------- */
int sla_refresh(const struct ctx *, long long ticket_id, long long message_author); /* 0 / -1 */
int sla_priority_moved(const struct ctx *, long long ticket_id, enum priority from); /* 0 / -1 */
int sla_rebuild(const struct conf *, struct arena *);                               /* 0 / -1 */
const char *sla_text(char *buf, size_t len, long long due, long long now);
void sla_fill(struct request *, struct vdict *, const char *section, const char *due_unix);
int sla_check(const struct conf *);          /* ccr-admin sla-check: breaches mailed, or -1 */
/* ---- report.c: the admin's reports ------------------------------------ */
int report_created(enum priority);           /* in the caller's transaction: 0 / -1 */
int report_closed(void);
int report_open_add(long long day, enum priority, int delta);    /* day: TO_DAYS */
/* the report's durations: per day histograms of HIST_BUCKETS buckets */
enum report_dur { DUR_FIRST, DUR_RESOLUTION, DUR__MAX };
#define HIST_BUCKETS 896          /* up to 2^32 s: 64 + 32 · 25 + 31 = 895 */
struct report_dur_at { int set; long long day, s; };  /* day: TO_DAYS; s: seconds */
int hist_bucket(long long seconds);
long long hist_value(int bucket);
int hist_parse(const char *, long long *counts);                 /* 0 / -1 */
int report_dur_move(struct arena *, enum report_dur, enum priority, struct report_dur_at from,
                    enum priority, struct report_dur_at to);
int report_rated(long long agent_id, long long score);
int report_rebuild(const struct conf *);     /* ccr-admin reports-rebuild: 0 / -1 */
int report_page(struct request *);
int report_csv(struct request *);   /* ccr-admin auto-close: count or -1 */

/* ---- assign.c: assignment, auto-assignment, agent availability -------- */
enum assign_mode { ASSIGN_OFF, ASSIGN_ROUND_ROBIN, ASSIGN_LEAST_OPEN, ASSIGN__MAX };
extern const char *const assign_mode_names[ASSIGN__MAX + 1];   /* NULL-terminated */
struct assignment {
	long long ticket_id, customer_id, agent_id;
	const char *subject, *customer_name, *agent_name;
	enum assign_mode mode;                   /* ASSIGN_OFF: by an admin */
};
int assign_record(const struct ctx *, const struct assignment *);   /* 0 / -1 */
int assign_auto(const struct ctx *, struct assignment *);           /* 1 / 0 none / -1 */
int assign_available(struct arena *, long long uid);                /* 1 / 0 / -1 */
int assign_set_availability(struct request *);

/* ---- message.c: a ticket's conversation -------------------------------- */
int message_post(struct request *);
long long message_add(const struct ctx *, const struct ticket *, const struct user *author,
                      int customer, enum ticket_status next, const char *body,
                      struct attach_file *, size_t nfiles);

/* ---- attach.c: attachments: limits, storage, lists, the download ------- */
/* attach_check: measure files[0..n) (size, SHA-256, libmagic's type; each
 * read once, then rewound).  0, 413 when one is over max_file_bytes or all
 * over ATTACH_MAX_REQUEST_BYTES (*why says so), or 500. */
int attach_check(const struct conf *, struct attach_file *, size_t n, const char **why);
/* attach_fits: whether file f (measured) may be kept next to `used` bytes. */
int attach_fits(const struct conf *, const struct attach_file *f, long long used);
/* An attachment's place on its ticket: the description (both 0), one
 * message (message_id) or one internal note (note_id), never two. */
struct attach_owner {
	long long message_id, note_id;
};
/* attach_store: checked files on ticket_id, on owner o, by uploader, in
 * the caller's transaction.  0 / -1. */
int attach_store(struct arena *, long long ticket_id, struct attach_owner o, long long uploader,
                 struct attach_file *, size_t n);
int attach_measure_all(struct attach_file *, size_t n);   /* each file's size, SHA, type; 0 / -1 */
/* attach_mail_fill: an ATTACHMENT section (NAME, SIZE, URL from base_url)
 * per file of owner o in a notification.  0 / -1. */
int attach_mail_fill(const struct ctx *, struct vdict *, long long ticket_id, struct attach_owner o);
/* attach_thread_load: the files of ticket_id a page or poll shows: of the
 * description when `description`, of its messages from message id
 * message_from on and, for staff viewers only, of its notes from note id
 * note_from on (0: none of those).  0 / -1. */
int attach_thread_load(struct request *, long long ticket_id, int description,
                       long long message_from, long long note_from, struct db_rows *);
/* attach_fill: the ATTACHMENT sections of owner o among at's rows (a
 * note's only for staff viewers) */
void attach_fill(struct request *, struct vdict *, const struct db_rows *at, struct attach_owner o);
enum { AT_ID, AT_MESSAGE, AT_NOTE, AT_NAME, AT_TYPE, AT_SIZE, AT__N };  /* attach_thread_load's columns */
const char *attach_url(struct arena *, const char *base, long long id, const char *name);
int attach_get(struct request *);       /* GET /attachments/{id}/{name} */

/* ---- timeline.c: a ticket's messages, notes and events in one order ---- */
/* timeline.kind: a closed set, names[] as the ENUM column spells them. */
enum timeline_kind {
	TLK_MESSAGE, TLK_NOTE, TLK_CREATED, TLK_ASSIGNED, TLK_PRIORITY, TLK_RESOLVED, TLK_CLOSED,
	TLK_REOPENED, TLK_AUTO_CLOSED, TLK_RATED, TLK__MAX
};
struct timeline_entry {
	enum timeline_kind kind;
	long long actor;          /* who did it, 0 = nobody (auto-close) */
	long long message_id;     /* TLK_MESSAGE */
	long long note_id;        /* TLK_NOTE */
	long long agent_id;       /* TLK_ASSIGNED: to whom */
	const char *detail;       /* TLK_PRIORITY "OLD NEW", TLK_RATED the score, TLK_AUTO_CLOSED days */
};
const char *timeline_kind_name(enum timeline_kind);
int timeline_add(long long ticket_id, const struct timeline_entry *);
int timeline_load(struct request *, long long ticket_id, long long after, struct db_rows *);
long long timeline_fill(struct request *, struct vdict *, const struct db_rows *,
                        const struct db_rows *attachments, size_t *messages);
int timeline_poll(struct request *);

/* ---- note.c: internal notes -------------------------------------------- */
int note_post(struct request *);

/* ---- reply.c: saved replies -------------------------------------------- */
#define REPLY_MAX_PER_PERSON 200
int reply_list(struct request *);
int reply_create(struct request *);
int reply_delete(struct request *);
int reply_options_load(struct request *, struct db_rows *);
const char *reply_fill(struct arena *, const char *body, const char *customer_first,
                       const char *agent_first, long long ticket_id);
void reply_options_fill(struct request *, struct vdict *, const struct db_rows *,
                        const char *customer_first, long long ticket_id);
int reply_find(struct request *, long long id, const char **body);  /* 1 / 0 not usable / -1 */

/* ---- agent.c: the agent picker and the admin's agent pages ------------- */
int agent_options_load(struct request *, struct db_rows *);
void agent_options_fill(struct vdict *, const struct db_rows *, long long selected);
int agent_list(struct request *);
int agent_create(struct request *);
int agent_approve(struct request *);
int agent_reject(struct request *);
int agent_disable(struct request *);

/* ---- json.c: the JSON shim (json-c): bounded request decoding, responses */
#define JSON_MAX_DEPTH 16
#define JSON_MAX_BODY (64 * 1024)
/* The request fields the API knows, with their JSON type; any other member
 * is ignored.  A known field becomes a form pair (an integer as decimal),
 * so the pages' field rules and messages (form_read) apply unchanged. */
enum json_kind { JK_STRING, JK_INT };
struct json_field {
	const char *name;
	enum json_kind kind;
};
/* json_decode: body (len bytes) as one JSON object into *out.  0, or the
 * HTTP status with *why (and *field when a member is at fault): 400 not
 * JSON (truncated, nested deeper than JSON_MAX_DEPTH, not an object), 422
 * invalid UTF-8 or control characters, a known field of the wrong type,
 * a duplicate member name (refused, whichever field it is). */
int json_decode(struct arena *, const char *body, size_t len, const struct json_field *,
                size_t nfields, struct kvlist *out, const char **why, const char **field);
extern const struct json_field json_api_fields[];
extern const size_t json_api_nfields;
/* json_respond: o (consumed) as r's body, application/json; returns status. */
int json_respond(struct request *, int status, struct json_object *o);
/* json_time: unix time (decimal text) as RFC 3339 UTC; NULL stays NULL. */
struct json_object *json_time(struct arena *, const char *unix_ts);
struct json_object *json_str(const char *s);   /* NULL: JSON null */

/* ---- api.c: the /api/v1 routes ----------------------------------------- */
const char *api_error_code(int status);
int api_error(struct request *, int status, const char *message, const char *field);
int api_refuse(struct request *, int status, const char *err_key, const char *message);
int api_me(struct request *);
int api_tickets(struct request *);
int api_ticket_create(struct request *);
int api_ticket_show(struct request *);
int api_message_post(struct request *);
int api_ticket_assign(struct request *);
int api_ticket_resolve(struct request *);
int api_ticket_close(struct request *);
int api_ticket_reopen(struct request *);
int api_openapi(struct request *);

/* ---- metrics.c: GET /healthz, counters in shared memory, GET /metrics -- */
enum metric {
	MET_MAIL_SENT, MET_MAIL_FAILED, MET_MAIL_RETRIED, MET_WORKER_RESTARTS,
	MET_HASH_WAITS, MET_HASH_BUSY, MET_RELOADS, MET_IMAP_ERRORS, MET_IMAP_FETCHED,
	MET_WEBHOOK_SENT, MET_WEBHOOK_FAILED, MET_WEBHOOK_RETRIED, MET_SEARCH_QUERIES,
	MET_SEARCH_ERRORS, MET_SEARCH_INDEXED, MET__MAX
};
int metrics_init(void);
void metrics_add(enum metric, unsigned long long n);
void metrics_request(int route, int status, double ms);
int metrics_healthz(struct request *);
int metrics_page(struct request *);

/* ---- claim.c: claiming due rows of an outbound queue, the back-off ------ */
int claim_due(struct arena *, const char *due_sql, const char *claim_sql, const char *who,
              long lease, long long *ids, int max);                /* count, -1 */
long retry_backoff(int attempts);              /* seconds: 1 min doubling to 1 h */

/* ---- mailer.c: the mailer process -------------------------------------- */
int mailer_main(const struct conf *);                  /* exit code */

/* ---- inmail.c: one inbound mail parsed and judged, no database -------- */
/* Why a mail is automatic (never answered), in the order they are tested. */
enum inmail_auto {
	IA_NONE, IA_AUTO_SUBMITTED, IA_PRECEDENCE, IA_X_AUTOREPLY, IA_NULL_SENDER, IA_DAEMON,
	IA__MAX
};
const char *inmail_auto_name(enum inmail_auto);            /* "auto_submitted"... */
enum inmail_parse { INMAIL_OK, INMAIL_UNPARSEABLE, INMAIL_TOO_LARGE };
#define INMAIL_TOKENS_MAX 8
#define INMAIL_FILES_MAX 32
struct inmail_file {
	const char *name;       /* UTF-8 file name (RFC 2231 / 2047 decoded) */
	const char *ctype;      /* "image/png" as the mail says it */
	const unsigned char *data;   /* decoded bytes, arena-owned */
	size_t len;
};
struct inmail {
	const char *message_id; /* without <>, or NULL when the mail has none */
	char key[65];           /* SHA-256 hex of the Message-ID, or of the raw bytes without one */
	const char *from;       /* From's address, ASCII lower-cased; "" when none */
	const char *from_name;  /* its display name, UTF-8; "" when none */
	const char *subject;    /* UTF-8, one line, trimmed; "" when none */
	const char *text;       /* the new text, UTF-8, LF line ends: quote and signature
	                         * removed, trimmed; "" when nothing is left */
	enum inmail_auto automatic;
	/* the reply tokens of recipients LOCAL+TOKEN@DOMAIN (To, Cc, Delivered-To),
	 * where LOCAL@DOMAIN is the support address; each INMAIL_TOKEN_LEN long */
	const char *tokens[INMAIL_TOKENS_MAX];
	size_t ntokens;
	int plus_other;         /* a LOCAL+X@DOMAIN recipient whose X is not token-shaped */
	int to_support;         /* a recipient is the support address itself */
	struct inmail_file files[INMAIL_FILES_MAX];
	size_t nfiles;
	size_t files_dropped;   /* parts with a filename past INMAIL_FILES_MAX */
};
/* inmail_parse: parse raw (len bytes) with GMime into *out, arena memory.
 * envelope_sender: the MTA's (--sender), NULL when unknown (then
 * Return-Path decides), "" for the null sender.  support: LOCAL@DOMAIN.
 * Returns enum inmail_parse; on INMAIL_TOO_LARGE (len > max_bytes) nothing
 * is parsed, on INMAIL_UNPARSEABLE out->key is still the raw bytes' hash. */
int inmail_parse(struct arena *, const char *raw, size_t len, const char *envelope_sender,
                 const char *support, size_t max_bytes, struct inmail *out);
/* inmail_strip_quote: the reply part of a plain-text body (in place): cut
 * at the reply-marker line, the first "On … wrote:" line, or the first run
 * of ">" lines; then a trailing "-- " signature; then trimmed. */
char *inmail_strip_quote(char *text);
/* inmail_html_text: HTML to plain text (block elements become line breaks,
 * entities decoded, everything else dropped), arena memory. */
char *inmail_html_text(struct arena *, const char *html, size_t len);

/* ---- mailin.c: the rules of the email channel, with the database ------- */
/* What became of one inbound mail: a closed set, stored in mail_in.outcome. */
enum mailin_outcome {
	MO_DUPLICATE,   /* its Message-ID was received before: nothing new */
	MO_AUTOMATIC,   /* automatic mail: dropped, never answered */
	MO_MESSAGE,     /* appended to a ticket */
	MO_TICKET,      /* raised a new ticket */
	MO_CLOSED,      /* a reply to a closed ticket: the sender told so (once a day) */
	MO_REJECTED,    /* kept in the rejected-mail list */
	MO__MAX
};
/* Why a mail is in the rejected-mail list: rejected_mail.reason. */
enum mailin_reason {
	MR_UNPARSEABLE, MR_TOO_LARGE, MR_TOKEN_SENDER, MR_BAD_TOKEN, MR_UNKNOWN_SENDER,
	MR_NOT_CUSTOMER, MR_RATE_LIMITED, MR_EMPTY, MR_TOO_LONG, MR__MAX
};
const char *mailin_outcome_name(enum mailin_outcome);
const char *mailin_reason_name(enum mailin_reason);
struct mailin_result {
	enum mailin_outcome outcome;
	enum mailin_reason reason;     /* MO_REJECTED */
	long long ticket_id;           /* MO_MESSAGE, MO_TICKET, MO_CLOSED */
	long long rejected_id;         /* MO_REJECTED: rejected_mail.id */
};
/* mailin_deliver: the rules in order over one raw message, in one
 * transaction (retried on deadlock).  0 once the outcome is committed,
 * -1 when it could not be (the database unreachable): the caller keeps the
 * message and tries again later (exit 75, or leave it on the IMAP server). */
int mailin_deliver(const struct conf *, struct arena *, const char *raw, size_t len,
                   const char *envelope_sender, struct mailin_result *out);
int mailin_purge(const struct conf *);     /* rejected mail past keep_rejected_days; count / -1 */
int mailin_admin_list(struct request *);   /* GET /admin/mail */
int mailin_admin_raw(struct request *);    /* GET /admin/mail/{id}/raw */
int mailin_admin_delete(struct request *); /* POST /admin/mail/{id}/delete */

/* ---- fetcher.c: the IMAP fetcher process (libcurl) --------------------- */
int fetcher_main(const struct conf *);                 /* exit code */

/* ---- webhook.c: endpoints, the address policy, the enqueue, the sender -- */
enum webhook_event {
	WH_TICKET_CREATED, WH_TICKET_ASSIGNED, WH_MESSAGE_CREATED, WH_TICKET_RESOLVED,
	WH_TICKET_CLOSED, WH_TICKET_RATED, WH__MAX
};
extern const char *const webhook_event_names[WH__MAX];   /* "ticket.created"... */
int webhook_allow_check(const char *list);               /* [webhooks] allow parses: 0 / -1 */
int webhook_addr_allowed(const struct conf *, int family, const void *addr); /* 1 / 0 */
const char *webhook_url_check(const struct conf *, struct arena *, const char *url); /* NULL ok, or why */
int webhook_enqueue(long long ticket_id, const struct timeline_entry *); /* caller's transaction; 0 / -1 */
int webhook_list(struct request *);      /* GET /admin/webhooks */
int webhook_create(struct request *);    /* POST /admin/webhooks */
int webhook_delete(struct request *);    /* POST /admin/webhooks/{id}/delete */
int webhook_main(const struct conf *);   /* the sender process: exit code */
/* ---- migrate.c: schema migrations (ccr-admin) -------------------------- */
int migrate_run(const struct conf *, int verbose);

/* ---- backup.c: ccr-admin backup and restore ---------------------------- */
int backup_run(const struct conf *, const char *dir);
int backup_restore(const struct conf *, const char *file);

#endif

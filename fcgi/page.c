/*
 * page.c — a page is a view: the layout (header, navigation by role, flash)
 * around a page template.  C never builds HTML: templates do, auto-escaped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "extern.h"

/* page_static_version: a short token that changes when ccr.css changes, for
 * cache-busting URLs (the files are served immutable by nginx). */
static const char *page_static_version(const char *views_dir)
{
	static char ver[24];
	char path[PATH_MAX + 32];
	struct stat sb;

	if (ver[0])
		return ver;
	snprintf(path, sizeof(path), "%s/static/ccr.css", views_dir);
	if (stat(path, &sb) == 0)
		snprintf(ver, sizeof(ver), "%lx%lx", (unsigned long)sb.st_mtime, (unsigned long)sb.st_size);
	else
		snprintf(ver, sizeof(ver), "0");
	return ver;
}

/* page_set_times: the three values of a time cell (time_cells: the ISO
 * time, its text and how long ago) under the keys iso, text and ago, for a
 * unix time given as the decimal text of UNIX_TIMESTAMP() (NULL, not a
 * number, or a year outside 1000..9999: nothing set).  Called through the
 * page_set_time macro, which spells the keys from a literal prefix at
 * compile time. */
void page_set_times(struct vdict *d, const char *iso, const char *text, const char *ago,
                    const char *unix_ts)
{
	struct time_cells c;
	char *end;

	if (unix_ts == NULL)
		return;
	long long t = strtoll(unix_ts, &end, 10);
	if (end == unix_ts || time_cells(t, (long long)time(NULL), &c) == -1)
		return;
	vdict_set(d, iso, c.iso);
	vdict_set(d, text, c.text);
	vdict_set(d, ago, c.ago);
}

/* page_availability: an agent's availability and the button that flips
 * it (POST /account/availability, back to this page) into the header's
 * USER section.  Nothing when it cannot be read: the page itself matters
 * more (an error page may be showing that the database is down). */
static void page_availability(struct request *r, struct vdict *u)
{
	/* read with the session (session.c); otherwise asked now */
	int on = r->user->available == UA_UNKNOWN ? assign_available(r->a, r->user->id)
	    : r->user->available == UA_ON;

	if (on < 0)
		return;
	const char *qs = req_param(r, "QUERY_STRING");
	/* back to this page; from an error page (a ticket hidden or missing:
	 * the same 404 page for both) or a POST, to the list */
	const char *here = strcmp(r->method, "GET") == 0 && r->status < 400
	    ? arena_printf(r->a, "%s%s%s", r->path, qs && *qs ? "?" : "", qs ? qs : "") : "/tickets";
	struct vdict *d = vdict_section(u, "AVAILABILITY");
	vdict_set(d, "AVAIL_NEXT", local_path(here) ? here : "/tickets");
	vdict_show(d, on ? "IS_AVAILABLE" : "IS_UNAVAILABLE");
}

/* page_new: a view of tpl inside the layout, with the layout's keys filled.
 * Owned by the caller until page_render.  NULL on OOM. */
struct view *page_new(struct request *r, const char *tpl, const char *title)
{
	struct view *v = view_new("layout.tpl", tpl);
	struct vdict *top;

	if (v == NULL)
		return NULL;
	top = view_top(v);
	vdict_set(top, "TITLE", title);
	vdict_set(top, "SITE_NAME", r->conf->site_name);
	vdict_set(top, "STATIC_VER", page_static_version(r->conf->views_dir));
	vdict_set(top, "CSRF", r->csrf);
	vdict_set(top, "REQUEST_ID", r->id);
	vdict_set(view_body(v), "CSRF", r->csrf);
	if (r->user) {
		struct vdict *u = vdict_section(top, "USER");
		vdict_set(u, "USER_NAME", arena_printf(r->a, "%s %s", r->user->first_name, r->user->last_name));
		vdict_set(u, "USER_ROLE", role_name(r->user->role));
		vdict_show(top, r->user->role == ROLE_ADMIN ? "NAV_ADMIN"
		    : r->user->role == ROLE_AGENT ? "NAV_AGENT" : "NAV_CUSTOMER");
		if (r->user->role == ROLE_AGENT)
			page_availability(r, u);
	} else {
		vdict_show(top, "NAV_ANON");
	}
	flash_take(r, top);
	return v;
}

/* page_render: render v into r->body and free v.  Returns status, or 500
 * when the template cannot be rendered (logged). */
int page_render(struct request *r, struct view *v, int status)
{
	char *out = NULL;
	size_t len = 0;

	if (view_render(v, &out, &len) == -1) {
		log_err("%s: req=%s cannot render page", __func__, r->id);
		view_free(v);
		return 500;
	}
	view_free(v);
	r->body = arena_strndup(r->a, out, len);
	r->body_len = len;
	free(out);
	return status;
}

static const char *default_message(int status)
{
	switch (status) {
	case 400: return "The request could not be understood.";
	case 403: return "You are not allowed to do that.";
	case 404: return "There is nothing here.";
	case 405: return "That action is not available here.";
	case 413: return "The request is too large.";
	case 429: return "Too many attempts. Please wait and try again later.";
	case 503: return "The service is busy or briefly unavailable. Please try again in a moment.";
	default: return "Something went wrong on our side. Please try again.";
	}
}

/* page_error: the error page for status, from views/error.tpl; falls back
 * to plain text when even that cannot be rendered.  Returns status. */
int page_error(struct request *r, int status)
{
	struct view *v;
	struct vdict *b;
	char *out = NULL;
	size_t len = 0;

	r->status = status;
	v = page_new(r, "error.tpl", resp_reason(status));
	if (v) {
		b = view_body(v);
		vdict_set_int(b, "STATUS", status);
		vdict_set(b, "REASON", resp_reason(status));
		vdict_set(b, "MESSAGE", r->message ? r->message : default_message(status));
		vdict_set(b, "REQUEST_ID", r->id);
		if (view_render(v, &out, &len) == 0) {
			view_free(v);
			r->ctype = "text/html; charset=utf-8";
			r->body = arena_strndup(r->a, out, len);
			r->body_len = len;
			free(out);
			return status;
		}
		view_free(v);
	}
	log_err("%s: req=%s cannot render error.tpl", __func__, r->id);
	resp_text(r, status, arena_printf(r->a, "%d %s\nRequest id: %s\n", status,
	    resp_reason(status), r->id));
	return status;
}

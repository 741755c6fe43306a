/*
 * view.h — the C face of the ctemplate shim (view.cc).  A view is one
 * top-level dictionary (the layout, or a mail template) and, for pages, the
 * BODY include dictionary holding the page template.  Include dictionaries
 * do not inherit values, so layout keys and page keys are set separately.
 * No function here lets a caller bypass auto-escaping.
 */
#ifndef CCR_VIEW_H
#define CCR_VIEW_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif

struct view;
struct vdict;   /* a dictionary inside a view; owned by the view */

int view_root(const char *dir);                 /* 0 / -1 */
/* view_new: layout may be NULL (render tpl alone: mail, fragments).  NULL on OOM. */
struct view *view_new(const char *layout, const char *tpl);
void view_free(struct view *);                  /* accepts NULL */
struct vdict *view_top(struct view *);          /* the layout's dictionary */
struct vdict *view_body(struct view *);         /* the page's (== top without layout) */
void vdict_set(struct vdict *, const char *key, const char *val);   /* NULL → "" */
void vdict_set_int(struct vdict *, const char *key, long long val);
void vdict_show(struct vdict *, const char *section);
struct vdict *vdict_section(struct vdict *, const char *section); /* one more row */
/* vdict_include: a dictionary for {{>name}} rendering `file`; it inherits nothing. */
struct vdict *vdict_include(struct vdict *, const char *name, const char *file);
/* view_render: 0 with a malloc'd NUL-terminated *out the caller frees, -1 on error. */
int view_render(struct view *, char **out, size_t *len);

#ifdef __cplusplus
}
#endif
#endif

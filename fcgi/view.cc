// view.cc — the ctemplate shim, the only C++ in the tree.  C never builds
// HTML: every page and mail is a template, auto-escaped by ctemplate.
// Every C++ exception is caught here; none crosses into C.
#include <ctemplate/template.h>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "view.h"

struct view {
	ctemplate::TemplateDictionary top;
	ctemplate::TemplateDictionary *body;
	std::string tpl;
	explicit view(const char *name) : top(name), body(nullptr) {}
};

// A vdict is a TemplateDictionary; the cast keeps the C side opaque.
static ctemplate::TemplateDictionary *D(struct vdict *d)
{
	return reinterpret_cast<ctemplate::TemplateDictionary *>(d);
}
static struct vdict *V(ctemplate::TemplateDictionary *d)
{
	return reinterpret_cast<struct vdict *>(d);
}

extern "C" int view_root(const char *dir)
{
	try {
		std::string d(dir);
		if (d.empty() || d[d.size() - 1] != '/')
			d += '/';
		return ctemplate::mutable_default_template_cache()->SetTemplateRootDirectory(d) ? 0 : -1;
	} catch (...) {
		return -1;
	}
}

extern "C" struct view *view_new(const char *layout, const char *tpl)
{
	try {
		struct view *v = new view("page");
		if (layout) {
			v->tpl = layout;
			v->body = v->top.AddIncludeDictionary("BODY");
			v->body->SetFilename(tpl);
		} else {
			v->tpl = tpl;
			v->body = &v->top;
		}
		return v;
	} catch (...) {
		return nullptr;
	}
}

extern "C" void view_free(struct view *v)
{
	delete v;
}

extern "C" struct vdict *view_top(struct view *v)
{
	return V(&v->top);
}

extern "C" struct vdict *view_body(struct view *v)
{
	return V(v->body);
}

extern "C" void vdict_set(struct vdict *d, const char *key, const char *val)
{
	try {
		D(d)->SetValue(key, val ? val : "");
	} catch (...) {
		std::abort();   // out of memory is fatal, as in the arena
	}
}

extern "C" void vdict_set_int(struct vdict *d, const char *key, long long val)
{
	try {
		D(d)->SetValue(key, std::to_string(val));
	} catch (...) {
		std::abort();
	}
}

extern "C" void vdict_show(struct vdict *d, const char *section)
{
	try {
		D(d)->ShowSection(section);
	} catch (...) {
		std::abort();
	}
}

extern "C" struct vdict *vdict_section(struct vdict *d, const char *section)
{
	try {
		return V(D(d)->AddSectionDictionary(section));
	} catch (...) {
		std::abort();
	}
}

extern "C" struct vdict *vdict_include(struct vdict *d, const char *name, const char *file)
{
	try {
		ctemplate::TemplateDictionary *inc = D(d)->AddIncludeDictionary(name);
		inc->SetFilename(file);
		return V(inc);
	} catch (...) {
		std::abort();
	}
}

extern "C" int view_render(struct view *v, char **out, size_t *len)
{
	try {
		std::string s;
		// pages drop blank lines; plain text (mail) keeps its layout
		ctemplate::Strip strip = v->body != &v->top ? ctemplate::STRIP_BLANK_LINES
		                                            : ctemplate::DO_NOT_STRIP;
		if (!ctemplate::ExpandTemplate(v->tpl, strip, &v->top, &s))
			return -1;
		char *p = static_cast<char *>(std::malloc(s.size() + 1));
		if (!p)
			return -1;
		std::memcpy(p, s.data(), s.size());
		p[s.size()] = '\0';
		*out = p;
		*len = s.size();
		return 0;
	} catch (...) {
		return -1;
	}
}

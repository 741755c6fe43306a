// view.cc — the ctemplate shim, the only C++ in the tree.  C never builds
// HTML: every page and mail is a template, auto-escaped by ctemplate.
// Every C++ exception is caught here; none crosses into C.
//
// ctemplate parses, caches and expands the templates and applies their
// auto-escaping; the dictionaries they expand are this file's own (a
// TemplateDictionaryInterface), because ctemplate's TemplateDictionary
// costs per value a MurmurHash of the name, an insert into a process-wide
// id→name map and a tree insert, and per section row a formatted
// "parent/NAME#n" name; a page sets thousands of values.  Here a
// dictionary is a few lists in one arena per view: a value is one entry
// (the name and the value copied unless they are literals of the program),
// a lookup compares names (the expansion asks each name once a row).  The
// semantics are TemplateDictionary's, which the templates were written
// for:
//   - a value is looked up in the dictionary, then its parents (a section
//     row's parent is the dictionary it was added to; an include's has
//     none), then the built-ins BI_SPACE and BI_NEWLINE; else "";
//   - setting a name again replaces its value;
//   - a section is shown when it is in the dictionary or a parent; its
//     rows are that dictionary's; ShowSection adds one empty row when the
//     section has none yet, and does nothing when it has;
//   - an include is expanded once a dictionary added for it, with that
//     dictionary's file.
#include <ctemplate/template.h>
#include <ctemplate/template_dictionary_interface.h>
#include <ctemplate/template_emitter.h>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "view.h"

namespace {

// ---- the arena: blocks freed with the view --------------------------------

struct block {
	block *next;
	size_t size, used;
	alignas(std::max_align_t) unsigned char data[];
};

class arena {
	block *head_ = nullptr;
	static constexpr size_t BLOCK = 32768;
public:
	arena() = default;
	arena(const arena &) = delete;
	arena &operator=(const arena &) = delete;
	~arena()
	{
		while (head_) {
			block *b = head_->next;
			std::free(head_);
			head_ = b;
		}
	}
	void *alloc(size_t n)
	{
		n = (n + alignof(std::max_align_t) - 1) & ~(alignof(std::max_align_t) - 1);
		if (head_ == nullptr || head_->size - head_->used < n) {
			size_t size = n > BLOCK ? n : BLOCK;
			block *b = static_cast<block *>(std::malloc(sizeof(block) + size));
			if (b == nullptr)
				throw std::bad_alloc();
			b->next = head_;
			b->size = size;
			b->used = 0;
			head_ = b;
		}
		void *p = head_->data + head_->used;
		head_->used += n;
		return p;
	}
	// a copy of s[0..n) and a NUL, unless s is a literal of the program
	// (ctemplate's test: between the start of .text and of .data), which
	// lives as long as the process
	const char *keep(const char *s, size_t n)
	{
		if (ctemplate::TemplateString(s, n).is_immutable())
			return s;
		char *p = static_cast<char *>(alloc(n + 1));
		std::memcpy(p, s, n);
		p[n] = '\0';
		return p;
	}
};

struct name {
	const char *s;
	size_t n;
	bool is(const ctemplate::TemplateString &t) const
	{
		return n == t.size() && std::memcmp(s, t.data(), n) == 0;
	}
};

class dict;

struct value {           // one name=value of a dictionary
	value *next;         // newest first: a name set again shadows the old
	name key;
	const char *v;
	size_t vn;
};

struct rows {            // a section's or an include's dictionaries
	rows *next;
	name key;
	dict *first, *last;
};

class dict : public ctemplate::TemplateDictionaryInterface {
public:
	dict(arena *a, dict *parent) : a_(a), parent_(parent) {}

	void set(const char *k, const char *v, size_t vn)
	{
		size_t kn = std::strlen(k);
		value *e = static_cast<value *>(a_->alloc(sizeof(value)));
		e->key = name{ a_->keep(k, kn), kn };
		e->v = a_->keep(v, vn);
		e->vn = vn;
		e->next = vars_;
		vars_ = e;
	}
	// one more row of section k (a dictionary whose parent is this one)
	dict *add_row(const char *k)
	{
		rows *r = find_or_add(&secs_, k);
		return append(r, this);
	}
	void show(const char *k)
	{
		rows *r = find_or_add(&secs_, k);
		if (r->first == nullptr)
			append(r, this);
	}
	// a dictionary for include k rendering file (no parent: includes
	// inherit nothing)
	dict *add_include(const char *k, const char *file)
	{
		rows *r = find_or_add(&incs_, k);
		dict *d = append(r, nullptr);
		d->file_ = a_->keep(file, std::strlen(file));
		return d;
	}

protected:
	ctemplate::TemplateString GetValue(const ctemplate::TemplateString &k) const override
	{
		for (const dict *d = this; d; d = d->parent_)
			for (const value *e = d->vars_; e; e = e->next)
				if (e->key.is(k))
					return ctemplate::TemplateString(e->v, e->vn);
		if (k.size() == 8 && std::memcmp(k.data(), "BI_SPACE", 8) == 0)
			return ctemplate::TemplateString(" ", 1);
		if (k.size() == 10 && std::memcmp(k.data(), "BI_NEWLINE", 10) == 0)
			return ctemplate::TemplateString("\n", 1);
		return ctemplate::TemplateString("", 0);
	}
	bool IsHiddenSection(const ctemplate::TemplateString &k) const override
	{
		return lookup(&dict::secs_, k) == nullptr;
	}
	bool IsUnhiddenSection(const ctemplate::TemplateString &k) const override
	{
		return lookup(&dict::secs_, k) != nullptr;
	}
	bool IsHiddenTemplate(const ctemplate::TemplateString &k) const override
	{
		return lookup(&dict::incs_, k) == nullptr;
	}
	const char *GetIncludeTemplateName(const ctemplate::TemplateString &k, int n) const override
	{
		const rows *r = lookup(&dict::incs_, k);
		if (r == nullptr)
			std::abort();   // ctemplate asks only for a shown include
		const dict *d = r->first;
		for (; d && n > 0; n--)
			d = d->sibling_;
		return d && d->file_ ? d->file_ : "";
	}
	Iterator *CreateTemplateIterator(const ctemplate::TemplateString &k) const override
	{
		const rows *r = lookup(&dict::incs_, k);
		if (r == nullptr)
			std::abort();
		return new each(r->first);
	}
	Iterator *CreateSectionIterator(const ctemplate::TemplateString &k) const override
	{
		const rows *r = lookup(&dict::secs_, k);
		if (r == nullptr)
			std::abort();
		return new each(r->first);
	}
	void DumpToString(std::string *out, int level) const override
	{
		std::string pad(static_cast<size_t>(level) * 2, ' ');
		for (const value *e = vars_; e; e = e->next)
			*out += pad + std::string(e->key.s, e->key.n) + ": >" + std::string(e->v, e->vn) + "<\n";
		for (const rows *r = secs_; r; r = r->next)
			for (const dict *d = r->first; d; d = d->sibling_) {
				*out += pad + "section " + std::string(r->key.s, r->key.n) + " -->\n";
				d->DumpToString(out, level + 1);
			}
		for (const rows *r = incs_; r; r = r->next)
			for (const dict *d = r->first; d; d = d->sibling_) {
				*out += pad + "include " + std::string(r->key.s, r->key.n) + " (" +
				    (d->file_ ? d->file_ : "") + ") -->\n";
				d->DumpToString(out, level + 1);
			}
	}

private:
	class each : public Iterator {
		const dict *d_;
	public:
		explicit each(const dict *d) : d_(d) {}
		bool HasNext() const override { return d_ != nullptr; }
		const TemplateDictionaryInterface &Next() override
		{
			const dict *d = d_;
			d_ = d_->sibling_;
			return *d;
		}
	};

	// the rows named k of this dictionary or the nearest parent having them
	const rows *lookup(rows *dict::*list, const ctemplate::TemplateString &k) const
	{
		for (const dict *d = this; d; d = d->parent_)
			for (const rows *r = d->*list; r; r = r->next)
				if (r->key.is(k))
					return r;
		return nullptr;
	}
	rows *find_or_add(rows **list, const char *k)
	{
		size_t kn = std::strlen(k);
		// the section of the previous call first: rows are added in runs
		if (last_ && last_->key.n == kn && std::memcmp(last_->key.s, k, kn) == 0 &&
		    (list == &secs_ ? last_is_sec_ : !last_is_sec_))
			return last_;
		rows *r = *list;
		for (; r; r = r->next)
			if (r->key.n == kn && std::memcmp(r->key.s, k, kn) == 0)
				break;
		if (r == nullptr) {
			r = static_cast<rows *>(a_->alloc(sizeof(rows)));
			r->key = name{ a_->keep(k, kn), kn };
			r->first = r->last = nullptr;
			r->next = *list;
			*list = r;
		}
		last_ = r;
		last_is_sec_ = list == &secs_;
		return r;
	}
	dict *append(rows *r, dict *parent)
	{
		dict *d = new (a_->alloc(sizeof(dict))) dict(a_, parent);
		if (r->last)
			r->last->sibling_ = d;
		else
			r->first = d;
		r->last = d;
		return d;
	}

	arena *a_;
	dict *parent_;
	dict *sibling_ = nullptr;     // the next row of the same section
	value *vars_ = nullptr;
	rows *secs_ = nullptr, *incs_ = nullptr;
	rows *last_ = nullptr;
	bool last_is_sec_ = false;
	const char *file_ = nullptr;  // an include's template
};

// the expansion, written into one malloc'd buffer handed to the caller
class buffer_emitter : public ctemplate::ExpandEmitter {
public:
	char *p = nullptr;
	size_t len = 0, cap = 0;
	~buffer_emitter() override { std::free(p); }
	void Emit(char c) override { Emit(&c, 1); }
	void Emit(const std::string &s) override { Emit(s.data(), s.size()); }
	void Emit(const char *s) override { Emit(s, std::strlen(s)); }
	void Emit(const char *s, size_t n) override
	{
		if (cap - len <= n) {   // room for s and the final NUL
			size_t c = cap ? cap : 16384;
			while (c - len <= n)
				c *= 2;
			char *q = static_cast<char *>(std::realloc(p, c));
			if (q == nullptr)
				throw std::bad_alloc();
			p = q;
			cap = c;
		}
		std::memcpy(p + len, s, n);
		len += n;
	}
};

} // namespace

// The arena is declared first: the dictionaries live in it and must not
// outlive it (they own nothing, so they are never destroyed one by one).
struct view {
	arena a;
	dict top;
	dict *body;
	std::string tpl;
	explicit view() : top(&a, nullptr), body(nullptr) {}
};

// A vdict is a dict; the cast keeps the C side opaque.
static dict *D(struct vdict *d)
{
	return reinterpret_cast<dict *>(d);
}
static struct vdict *V(dict *d)
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
		struct view *v = new view();
		if (layout) {
			v->tpl = layout;
			v->body = v->top.add_include("BODY", tpl);
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
		if (val == nullptr)
			val = "";
		D(d)->set(key, val, std::strlen(val));
	} catch (...) {
		std::abort();   // out of memory is fatal, as in the arena
	}
}

extern "C" void vdict_set_int(struct vdict *d, const char *key, long long val)
{
	try {
		char buf[24], *p = buf + sizeof(buf);
		unsigned long long u = val < 0 ? 0ULL - (unsigned long long)val : (unsigned long long)val;
		do {
			*--p = static_cast<char>('0' + u % 10);
			u /= 10;
		} while (u);
		if (val < 0)
			*--p = '-';
		D(d)->set(key, p, static_cast<size_t>(buf + sizeof(buf) - p));
	} catch (...) {
		std::abort();
	}
}

extern "C" void vdict_show(struct vdict *d, const char *section)
{
	try {
		D(d)->show(section);
	} catch (...) {
		std::abort();
	}
}

extern "C" struct vdict *vdict_section(struct vdict *d, const char *section)
{
	try {
		return V(D(d)->add_row(section));
	} catch (...) {
		std::abort();
	}
}

extern "C" struct vdict *vdict_include(struct vdict *d, const char *name, const char *file)
{
	try {
		return V(D(d)->add_include(name, file));
	} catch (...) {
		std::abort();
	}
}

extern "C" int view_render(struct view *v, char **out, size_t *len)
{
	try {
		buffer_emitter e;
		// pages drop blank lines; plain text (mail) keeps its layout
		ctemplate::Strip strip = v->body != &v->top ? ctemplate::STRIP_BLANK_LINES
		                                            : ctemplate::DO_NOT_STRIP;
		if (!ctemplate::ExpandTemplate(v->tpl, strip, &v->top, &e))
			return -1;
		e.Emit("", 0);          // a buffer even for an empty expansion
		e.p[e.len] = '\0';
		*out = e.p;
		*len = e.len;
		e.p = nullptr;
		return 0;
	} catch (...) {
		return -1;
	}
}

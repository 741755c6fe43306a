# Customer Care Registry — build, run and test.  GNU make.
# `make run` and `make check` install what is missing first (Debian 12, root);
# `make` alone never installs: it names the missing packages and stops.

# HTTP port of `make run` (its SMTP sink listens on PORT+1000)
PORT     ?= 8080
# where `make run` keeps its database, mail and logs
CCR_VAR  ?= $(CURDIR)/var
# `make install` root, and a staging directory for packaging
PREFIX   ?= /usr/local
DESTDIR  ?=
# Debian's python, which has aiosmtpd
PYTHON   := /usr/bin/python3
CC       := gcc
CXX      := g++

# Debian packages: the build; `make run` (build + stack); `make check`, the
# benchmarks and the fuzzers add the test tools (TEST_PKGS, npm ci in test/browser;
# debhelper and dpkg-dev for `make deb`, which `make check` runs).
BUILD_PKGS := build-essential pkg-config libfcgi-dev libmariadb-dev libargon2-dev \
            libesmtp-dev libctemplate-dev libsystemd-dev libinih-dev libssl-dev \
            libgmime-3.0-dev libcurl4-openssl-dev libmagic-dev liboath-dev libqrencode-dev \
            libjson-c-dev
RUN_PKGS := $(BUILD_PKGS) mariadb-server mariadb-client nginx python3-aiosmtpd postfix sphinxsearch
TEST_PKGS := libcmocka-dev chromium systemd openssl curl wrk nodejs lintian sqlmap \
            slowhttptest debhelper dpkg-dev dovecot-imapd oathtool faketime \
            galera-4 rsync iproute2
APT_PKGS := $(RUN_PKGS) $(TEST_PKGS)
PKGS     := fcgi libmariadb libargon2 libesmtp-1.0 libctemplate_nothreads libsystemd inih libcrypto \
            gmime-3.0 libcurl libmagic liboath libqrencode json-c

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wcast-qual -Werror
CFLAGS   ?= -O2 -g
ALL_CFLAGS = -std=c17 -D_GNU_SOURCE $(WARN) $(CPPFLAGS) $(CFLAGS) $(shell pkg-config --cflags $(PKGS)) -MMD -MP
ALL_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror $(CPPFLAGS) $(CFLAGS) -MMD -MP
# --as-needed: each program records only the libraries it calls (ccr-admin,
# run once per inbound mail, does not start libcurl and its TLS stack)
LIBS      = -Wl,--as-needed $(shell pkg-config --libs $(PKGS))
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer

# Sources: the library shared by ccrd, ccr-admin and the unit tests.
# In the reading order of README "Source layout" (main.c and admin.c are the
# two programs' entries, outside the library).
LIB_C    := arena.c log.c clock.c conf.c text.c crypto.c db.c master.c child.c \
            worker.c fcgi.c request.c form.c multipart.c cookie.c route.c session.c flash.c \
            page.c password.c user.c code.c audit.c mail.c inmail.c totp.c device.c rate.c token.c account.c ticket.c sla.c report.c \
            message.c attach.c timeline.c note.c reply.c assign.c agent.c json.c api.c mailin.c metrics.c claim.c mailer.c \
            fetcher.c netpolicy.c webhook.c search.c migrate.c backup.c
LIB_CC   := view.cc
UNITS    := $(patsubst test/unit/%.c,%,$(wildcard test/unit/test_*.c))

B        := build
LIB_O    := $(LIB_C:%.c=$(B)/obj/%.o) $(LIB_CC:%.cc=$(B)/obj/%.o)
ASAN_O   := $(LIB_C:%.c=$(B)/asan/%.o) $(LIB_CC:%.cc=$(B)/asan/%.o)

.PHONY: all deps run-deps build-check run check unit unit-asan templates e2e e2e-asan clean asan faults screenshots scaleout
all: $(B)/ccrd $(B)/ccr-admin

# Install only what dpkg says is missing, so a second run starts in seconds.
# deps: everything (build, stack, test tools); run-deps: what `make run` needs.
# Postfix's installer asks what to configure: preseeded "No configuration"
# (the tests run private instances; installing it removes opensmtpd).
APT_MISSING = missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  case " $$missing " in *" postfix "*) echo "postfix postfix/main_mailer_type select No configuration" \
	    | debconf-set-selections;; esac; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    -o DPkg::Lock::Timeout=300 $$missing; \
	fi
deps:
	@$(call APT_MISSING,$(APT_PKGS))
	@if [ -f test/browser/package.json ] && [ ! -d test/browser/node_modules/playwright-core ]; then \
	  cd test/browser && npm ci --no-audit --no-fund --loglevel=error; fi
	@if [ -f test/api/package.json ] && [ ! -d test/api/node_modules/@apidevtools/swagger-parser ]; then \
	  cd test/api && npm ci --no-audit --no-fund --loglevel=error; fi
run-deps:
	@$(call APT_MISSING,$(RUN_PKGS))

# Which install step the goals on the command line need before compiling:
# none for `make`/`make all`/`make install`/`make deb` (build-check only).
TEST_GOALS := check e2e e2e-asan faults screenshots unit unit-asan templates lintian \
              bench bench-data bench-tools bench-mail bench-attach fuzz fuzz-check fuzz-build
INSTALL_STEP := $(if $(filter $(TEST_GOALS),$(MAKECMDGOALS)),deps,$(if $(filter run,$(MAKECMDGOALS)),run-deps))

# The build never installs: it stops, naming what is missing.
build-check: | $(INSTALL_STEP)
	@if ! command -v pkg-config >/dev/null 2>&1 || ! command -v $(CC) >/dev/null 2>&1 || \
	    ! command -v $(CXX) >/dev/null 2>&1 || ! pkg-config --exists $(PKGS); then \
	  missing=""; for p in $(BUILD_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  mods=""; for m in $(PKGS); do pkg-config --exists $$m 2>/dev/null || mods="$$mods $$m"; done; \
	  echo "make: cannot build: missing Debian packages:$${missing:- (none)}; pkg-config modules not found:$${mods:- (none)}" >&2; \
	  if [ -n "$$missing" ]; then echo "make: as root, make run-deps installs them" >&2; fi; \
	  exit 1; fi

$(B)/obj/%.o: fcgi/%.c | build-check
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@
$(B)/obj/%.o: fcgi/%.cc | build-check
	@mkdir -p $(@D)
	$(CXX) $(ALL_CXXFLAGS) -c $< -o $@
$(B)/asan/%.o: fcgi/%.c | build-check
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(SAN) -c $< -o $@
$(B)/asan/%.o: fcgi/%.cc | build-check
	@mkdir -p $(@D)
	$(CXX) $(ALL_CXXFLAGS) $(SAN) -c $< -o $@

$(B)/libccr.a: $(LIB_O)
	ar rcs $@ $^
$(B)/libccr-asan.a: $(ASAN_O)
	ar rcs $@ $^

$(B)/ccrd: $(B)/obj/main.o $(B)/libccr.a
	$(CXX) $(LDFLAGS) -o $@ $^ $(LIBS)
$(B)/ccr-admin: $(B)/obj/admin.o $(B)/libccr.a
	$(CXX) $(LDFLAGS) -o $@ $^ $(LIBS)

# The same programs under ASan+UBSan, for the integration suite's sanitizer run.
$(B)/asan/ccrd: $(B)/asan/main.o $(B)/libccr-asan.a
	$(CXX) $(SAN) -o $@ $^ $(LIBS)
$(B)/asan/ccr-admin: $(B)/asan/admin.o $(B)/libccr-asan.a
	$(CXX) $(SAN) -o $@ $^ $(LIBS)
asan: $(B)/asan/ccrd $(B)/asan/ccr-admin

# ---- tests -----------------------------------------------------------------
RESULTS := $(B)/results

$(B)/unit/%: test/unit/%.c $(B)/libccr.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -Ifcgi -DCCR_SRC=\"$(CURDIR)\" $< -o $@ $(B)/libccr.a $(LIBS) -lcmocka -lstdc++
$(B)/unit-asan/%: test/unit/%.c $(B)/libccr-asan.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(SAN) -Wno-missing-prototypes -Ifcgi -DCCR_SRC=\"$(CURDIR)\" $< -o $@ $(B)/libccr-asan.a $(LIBS) -lcmocka -lstdc++

# Each unit program prints cmocka's lines; the tally goes to $(RESULTS).
unit: $(UNITS:%=$(B)/unit/%)
	@$(PYTHON) test/tally.py unit $(RESULTS)/unit $^
unit-asan: $(UNITS:%=$(B)/unit-asan/%)
	@ASAN_OPTIONS=detect_leaks=1 $(PYTHON) test/tally.py unit-asan $(RESULTS)/unit-asan $^

# Template syntax: the checker exits 0 on some warnings, so any output fails.
templates: | deps
	@mkdir -p $(RESULTS)
	@out=$$(for t in $$(find views -name '*.tpl'); do ctemplate-make_tpl_varnames_h -n -q $$t 2>&1; done); \
	if [ -n "$$out" ]; then echo "$$out"; echo "0 1" > $(RESULTS)/templates; echo "FAIL templates"; \
	else echo "1 0" > $(RESULTS)/templates; echo "PASS templates"; fi

e2e: all deb
	$(PYTHON) test/e2e/run.py --results $(RESULTS)/e2e --browser
# refresh the README's screenshots (test/browser/screenshots/) from a small run
screenshots: all
	CCR_UPDATE_SCREENSHOTS=1 $(PYTHON) test/e2e/run.py --browser test_ops
# the fault suite with longer loads and outages (about 5 minutes)
faults: all
	FAULTS_LONG=1 $(PYTHON) test/e2e/run.py --results $(RESULTS)/faults test_faults
# the scale-out rig (two ccrd hosts in network namespaces, a 3-node Galera
# cluster, a host and a node killed) with a 60 s load; `make check` runs it
# with a 20 s load inside the e2e stages (about 2½ minutes each)
scaleout: all
	SCALEOUT_LONG=1 $(PYTHON) test/e2e/run.py --results $(RESULTS)/scaleout test_scaleout
# the integration suite against build/asan/ccrd: any sanitizer report fails
e2e-asan: asan
	$(PYTHON) test/e2e/run.py --asan --results $(RESULTS)/e2e-asan

# Every stage runs even when an earlier one fails; the tally decides.
check: all asan
	@rm -rf $(RESULTS)
	-@$(MAKE) --no-print-directory templates
	-@$(MAKE) --no-print-directory unit
	-@$(MAKE) --no-print-directory unit-asan
	-@$(MAKE) --no-print-directory fuzz-check
	-@$(MAKE) -s --no-print-directory deb
	-@$(PYTHON) test/e2e/run.py --results $(RESULTS)/e2e --browser
	-@$(PYTHON) test/e2e/run.py --asan --results $(RESULTS)/e2e-asan
	@$(PYTHON) test/tally.py summary $(RESULTS)

run: all
	CCR_VAR=$(CCR_VAR) PORT=$(PORT) $(PYTHON) test/stack.py run

clean:
	rm -rf $(B) $(DEB_LITTER)

-include $(wildcard $(B)/obj/*.d $(B)/asan/*.d)

# ---- install and package ----------------------------------------------------
# Owned by packaging (everything from here to "end of install and package").
# `make install` / `make uninstall` honour PREFIX and DESTDIR (top of file):
#   $(PREFIX)/sbin/ccrd, $(PREFIX)/bin/ccr-admin,
#   $(PREFIX)/share/ccr/{views,schema}, $(PREFIX)/share/ccr/static -> views/static
#   (a relative symlink: nginx/ccr.conf serves /usr/share/ccr/static, ccrd
#   reads views/; one copy of the assets), $(PREFIX)/share/doc/ccr/{README.md,
#   ccr.conf.example,nginx-ccr.conf}, $(PREFIX)/share/man/man8/*.8.gz and
#   $(PREFIX)/lib/systemd/system/<systemd/*> (their /usr/sbin,
#   /usr/bin and /usr/share/doc paths rewritten to PREFIX by sed; a no-op
#   for PREFIX=/usr).  uninstall removes those files and rmdirs the ccr
#   directories when empty; shared directories (bin, man8...) stay.
#   install = install-files (all but the man pages) + install-man; `make man`
#   writes the versioned pages to $(B)/man/.
# `make deb` runs `dpkg-buildpackage -us -uc -b` on debian/ (debhelper 13:
# debian/rules calls this Makefile with dpkg-buildflags' hardening=+all
# flags) and leaves $(DEB_FILE), the -dbgsym .deb, .buildinfo and .changes
# in $(B) (not in ".."); it reruns when a packaged source or debian/ changed.
# `make lintian` runs lintian --pedantic on them; the tags that remain are
# overridden, each with its reason, in debian/ccr.lintian-overrides.
CCR_VERSION    := $(shell sed -n 's/^\#define CCR_VERSION "\(.*\)"/\1/p' fcgi/extern.h)
sbindir         = $(PREFIX)/sbin
bindir          = $(PREFIX)/bin
ccrdatadir      = $(PREFIX)/share/ccr
docdir          = $(PREFIX)/share/doc/ccr
man8dir         = $(PREFIX)/share/man/man8
systemdunitdir  = $(PREFIX)/lib/systemd/system
INSTALL        := install
# echo, or nothing under `make -s`, for the recipe lines that loop silently
INSTALL_SAY     = $(if $(findstring s,$(firstword -$(MAKEFLAGS))),:,echo)
# every unit in systemd/
UNIT_FILES     := $(sort $(notdir $(wildcard systemd/*.service systemd/*.timer)))
MAN8_PAGES     := ccrd.8 ccr-admin.8
# what dpkg-buildpackage leaves in $(B)
DEB_ARCH       := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB_FILE        = $(B)/ccr_$(CCR_VERSION)_$(DEB_ARCH).deb
DEB_DBGSYM      = $(B)/ccr-dbgsym_$(CCR_VERSION)_$(DEB_ARCH).deb
DEB_CHANGES     = $(B)/ccr_$(CCR_VERSION)_$(DEB_ARCH).changes
DEB_BUILDINFO   = $(B)/ccr_$(CCR_VERSION)_$(DEB_ARCH).buildinfo
# what debhelper writes under debian/ while it builds (`make clean` removes it)
DEB_LITTER     := debian/ccr debian/.debhelper debian/build debian/tmp debian/files \
                  debian/debhelper-build-stamp debian/*.substvars debian/*.debhelper \
                  debian/*.debhelper.log
# what the package is made of: the tracked sources, without that litter
DEB_INPUTS     := Makefile README.md $(shell find fcgi views schema systemd nginx debian \
                  \( -path debian/ccr -o -path debian/.debhelper -o -path debian/build \
                  -o -path debian/tmp \) -prune -o -type f ! -path debian/files \
                  ! -path debian/debhelper-build-stamp ! -name '*.substvars' \
                  ! -name '*.debhelper' ! -name '*.debhelper.log' ! -name '.*' ! -name '*~' \
                  -print 2>/dev/null)

.PHONY: install install-files install-man man uninstall deb lintian

$(B)/man/%.8: fcgi/%.8 fcgi/extern.h
	@mkdir -p $(@D)
	sed -e '/^\.TH /s/"ccr [^"]*"/"ccr $(CCR_VERSION)"/' $< > $@
$(B)/man/%.8.gz: $(B)/man/%.8
	gzip -9n < $< > $@
man: $(MAN8_PAGES:%=$(B)/man/%)

install: install-files install-man

install-files: all
	$(INSTALL) -d -m 0755 $(DESTDIR)$(sbindir) $(DESTDIR)$(bindir) \
	    $(DESTDIR)$(systemdunitdir) $(DESTDIR)$(docdir) $(DESTDIR)$(ccrdatadir)/schema
	$(INSTALL) -m 0755 $(B)/ccrd $(DESTDIR)$(sbindir)/ccrd
	$(INSTALL) -m 0755 $(B)/ccr-admin $(DESTDIR)$(bindir)/ccr-admin
	@$(INSTALL_SAY) "$(INSTALL) -m 0644 views/... $(DESTDIR)$(ccrdatadir)/views/"
	@set -e; for d in $$(find views -type d | LC_ALL=C sort); do \
	  $(INSTALL) -d -m 0755 $(DESTDIR)$(ccrdatadir)/$$d; done; \
	for f in $$(find views -type f ! -name '.*' ! -name '*~' | LC_ALL=C sort); do \
	  $(INSTALL) -m 0644 $$f $(DESTDIR)$(ccrdatadir)/$$f; done
	ln -sfn views/static $(DESTDIR)$(ccrdatadir)/static
	$(INSTALL) -m 0644 schema/*.sql $(DESTDIR)$(ccrdatadir)/schema/
	$(INSTALL) -m 0644 README.md fcgi/ccr.conf.example $(DESTDIR)$(docdir)/
	$(INSTALL) -m 0644 nginx/ccr.conf $(DESTDIR)$(docdir)/nginx-ccr.conf
	$(INSTALL) -m 0644 systemd/ccr-searchd.conf $(DESTDIR)$(ccrdatadir)/searchd.conf
	@$(INSTALL_SAY) "sed (paths under $(PREFIX)) systemd/* | $(INSTALL) -m 0644 ... $(DESTDIR)$(systemdunitdir)/"
	@mkdir -p $(B)/units
	@set -e; for u in $(UNIT_FILES); do \
	  sed -e 's|/usr/sbin/ccrd|$(sbindir)/ccrd|g' -e 's|/usr/bin/ccr-admin|$(bindir)/ccr-admin|g' \
	      -e 's|/usr/share/doc/ccr/|$(docdir)/|g' systemd/$$u > $(B)/units/$$u; \
	  $(INSTALL) -m 0644 $(B)/units/$$u $(DESTDIR)$(systemdunitdir)/$$u; done

install-man: $(MAN8_PAGES:%=$(B)/man/%.gz)
	$(INSTALL) -d -m 0755 $(DESTDIR)$(man8dir)
	$(INSTALL) -m 0644 $(MAN8_PAGES:%=$(B)/man/%.gz) $(DESTDIR)$(man8dir)/

uninstall:
	rm -f $(DESTDIR)$(sbindir)/ccrd $(DESTDIR)$(bindir)/ccr-admin
	rm -f $(MAN8_PAGES:%=$(DESTDIR)$(man8dir)/%.gz) $(UNIT_FILES:%=$(DESTDIR)$(systemdunitdir)/%)
	rm -f $(DESTDIR)$(docdir)/README.md $(DESTDIR)$(docdir)/ccr.conf.example \
	    $(DESTDIR)$(docdir)/nginx-ccr.conf
	rm -f $(DESTDIR)$(ccrdatadir)/static $(DESTDIR)$(ccrdatadir)/searchd.conf
	@set -e; for f in $$(find views -type f ! -name '.*' ! -name '*~') $$(ls schema/*.sql); do \
	  rm -f $(DESTDIR)$(ccrdatadir)/$$f; done; \
	for d in $$(find views -depth -type d) schema "" ; do \
	  if [ -d "$(DESTDIR)$(ccrdatadir)/$$d" ]; then rmdir --ignore-fail-on-non-empty "$(DESTDIR)$(ccrdatadir)/$$d"; fi; done; \
	if [ -d "$(DESTDIR)$(docdir)" ]; then rmdir --ignore-fail-on-non-empty "$(DESTDIR)$(docdir)"; fi; \
	if [ -d "$(DESTDIR)$(ccrdatadir)" ]; then echo "uninstall: left in $(DESTDIR)$(ccrdatadir) (not installed by this tree):"; \
	  find "$(DESTDIR)$(ccrdatadir)" ! -type d; fi

deb: $(DEB_FILE)

# dpkg-buildpackage without this make's MAKEFLAGS (command-line variables
# such as CFLAGS= would reach debian/rules' make and override the hardened
# flags).  The results go straight to $(B): CCR_DEB_DESTDIR for dh_builddeb, -u for the
# tools that checksum them.
$(DEB_FILE) $(DEB_DBGSYM) $(DEB_CHANGES) $(DEB_BUILDINFO) &: $(DEB_INPUTS)
	@command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null || \
	  { echo "make deb: needs dpkg-dev and debhelper (as root, make deps installs them)" >&2; exit 1; }
	@v=$$(dpkg-parsechangelog -SVersion) && [ "$$v" = "$(CCR_VERSION)" ] || \
	  { echo "make deb: debian/changelog is at $$v, fcgi/extern.h CCR_VERSION at $(CCR_VERSION): add a changelog entry (dch -v $(CCR_VERSION))" >&2; exit 1; }
	@mkdir -p $(B)
	rm -f $(DEB_FILE) $(DEB_DBGSYM) $(DEB_CHANGES) $(DEB_BUILDINFO)
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL CCR_DEB_DESTDIR=$(abspath $(B)) \
	  dpkg-buildpackage -us -uc -b \
	    --buildinfo-option=-u$(abspath $(B)) --buildinfo-file=$(abspath $(DEB_BUILDINFO)) \
	    --changes-option=-u$(abspath $(B)) --changes-file=$(abspath $(DEB_CHANGES))

# the .changes names both .debs and the .buildinfo
lintian: deb
	lintian -I -E --pedantic --tag-display-limit 0 $(DEB_CHANGES)
# ---- end of install and package ---------------------------------------------

# ---- benchmarks --------------------------------------------------------------
# `make bench`: generate (once, cached in $(CCR_BENCH_DIR)) the 10k and 1M
# data sets, start a production-like stack per size in a temporary folder and
# measure with wrk; writes $(BENCH_OUT).  `make bench-data` only generates,
# `make bench-clean` deletes the cache.  See test/bench/README.md.
CCR_BENCH_DIR  ?= /var/tmp/ccr-bench
BENCH_SIZES    ?= 10k 1m
BENCH_ROUNDS   ?= 3
BENCH_DURATION ?= 10
BENCH_THREADS  ?= 2
BENCH_CONNS    ?= 16
BENCH_OUT      ?= test/bench/RESULTS.md
BENCH_TOOLS    := $(B)/bench/fcgi-ceiling $(B)/bench/hashbench
BENCH_ARGS      = --cache $(CCR_BENCH_DIR) --sizes "$(BENCH_SIZES)"

.PHONY: bench bench-data bench-tools bench-clean bench-mail bench-attach
bench-tools: $(BENCH_TOOLS)
$(B)/bench/fcgi-ceiling: test/bench/fcgi_ceiling.c | deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(shell pkg-config --libs fcgi libmariadb)
$(B)/bench/hashbench: test/bench/hashbench.c | deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(shell pkg-config --libs libargon2)

bench-data: all $(BENCH_TOOLS)
	$(PYTHON) test/bench/bench.py data $(BENCH_ARGS)

bench: all $(BENCH_TOOLS)
	$(PYTHON) test/bench/bench.py run $(BENCH_ARGS) --rounds $(BENCH_ROUNDS) \
	  --duration $(BENCH_DURATION) --threads $(BENCH_THREADS) --conns $(BENCH_CONNS) \
	  --out $(BENCH_OUT)
	$(PYTHON) test/bench/mailbench.py --md $(BENCH_OUT)
	$(PYTHON) test/bench/attachbench.py --md $(BENCH_OUT)
# only the attachments' rows (10 MiB upload, 1 MiB download next to nginx from disk)
bench-attach: all
	$(PYTHON) test/bench/attachbench.py --md $(BENCH_OUT)
# only the email channel's row (mails/s through ccr-admin mail-in, CPU per mail)
bench-mail: all
	$(PYTHON) test/bench/mailbench.py --md $(BENCH_OUT)
bench-clean:
	rm -rf $(CCR_BENCH_DIR)
# ---- end of benchmarks -------------------------------------------------------

# ---- fuzzing ---------------------------------------------------------------
# libFuzzer targets (test/fuzz/fuzz_*.c) over the fcgi/ sources they need,
# built by clang with ASan + UBSan.  `make fuzz` runs each for FUZZ_SECONDS,
# `make fuzz-check` for FUZZ_CHECK_SECONDS and writes "passed failed" (one
# count per target) to $(RESULTS)/fuzz.  Seeds and regression inputs:
# test/fuzz/corpus/NAME/; new inputs: build/fuzz/corpus/NAME/; crashes:
# build/fuzz/artifacts/NAME/.  One target: `make fuzz FUZZ_NAMES=form`.
# A reproducer: build/fuzz/fuzz_NAME FILE.
FUZZ_SECONDS       ?= 60
FUZZ_CHECK_SECONDS ?= 30
FUZZ_NAMES         ?= form cookie pct email conf route fcgi mail multipart twofa json search
FUZZ_APT_PKGS := clang clang-14 libfuzzer-14-dev libclang-rt-14-dev llvm-14
FUZZ_CC   := clang
FUZZ_CXX  := clang++
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS   = -g -O1 -std=c17 -D_GNU_SOURCE -Wall -Wextra -Ifcgi \
                $(shell pkg-config --cflags libmariadb json-c) -MMD -MP
FUZZ_LIBFLAGS = -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer-no-link $(FUZZ_SAN) \
                $(shell pkg-config --cflags $(PKGS)) -MMD -MP
FB        := $(B)/fuzz
FUZZ_BINS := $(FUZZ_NAMES:%=$(FB)/fuzz_%)
FUZZ_TEXT_O := $(FB)/obj/text.o $(FB)/obj/arena.o $(FB)/obj/log.o
FUZZ_ALL_O  := $(LIB_C:%.c=$(FB)/obj/%.o) $(LIB_CC:%.cc=$(FB)/obj/%.o)

# what each target links beyond its own object: the pure text functions,
# inmail.c with crypto.c (mail: GMime and libcrypto), or the whole library
# (form.c, cookie.c and request.c reach the response
# and the views)
FUZZ_O_pct    := $(FUZZ_TEXT_O)
FUZZ_O_email  := $(FUZZ_TEXT_O)
FUZZ_O_conf   := $(FB)/obj/conf.o $(FB)/obj/netpolicy.o $(FUZZ_TEXT_O)
FUZZ_L_conf   := -linih
FUZZ_O_mail   := $(FB)/obj/inmail.o $(FB)/obj/crypto.o $(FUZZ_TEXT_O)
FUZZ_L_mail   := $(shell pkg-config --libs gmime-3.0) -lcrypto
FUZZ_O_json   := $(FB)/obj/json.o $(FUZZ_TEXT_O)
FUZZ_L_json   := $(shell pkg-config --libs json-c)
FUZZ_WHOLE    := form cookie fcgi route multipart twofa search
$(foreach n,$(FUZZ_WHOLE),$(eval FUZZ_O_$(n) := $$(FUZZ_ALL_O)))
$(foreach n,$(FUZZ_WHOLE),$(eval FUZZ_L_$(n) := $$(LIBS) -lstdc++))
$(foreach n,$(FUZZ_WHOLE),$(eval FUZZ_LD_$(n) := $$(FUZZ_CXX)))

.PHONY: fuzz fuzz-check fuzz-build fuzz-deps

# clang and libFuzzer, installed only when dpkg says they are missing
fuzz-deps: | deps
	@missing=""; for p in $(FUZZ_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    -o DPkg::Lock::Timeout=300 $$missing; \
	fi

$(FB)/obj/%.o: fcgi/%.c | fuzz-deps
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c17 $(FUZZ_LIBFLAGS) -c $< -o $@
$(FB)/obj/%.o: fcgi/%.cc | fuzz-deps
	@mkdir -p $(@D)
	$(FUZZ_CXX) -std=c++17 $(FUZZ_LIBFLAGS) -c $< -o $@
$(FB)/obj/fuzz_%.o: test/fuzz/fuzz_%.c | fuzz-deps
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -c $< -o $@

$(foreach n,$(FUZZ_NAMES),$(eval $(FB)/fuzz_$(n): $(FUZZ_O_$(n))))
$(FB)/fuzz_%: $(FB)/obj/fuzz_%.o | fuzz-deps
	$(or $(FUZZ_LD_$*),$(FUZZ_CC)) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(FUZZ_L_$*)

# keep the harness objects (make would delete them as intermediates)
.SECONDARY: $(FUZZ_NAMES:%=$(FB)/obj/fuzz_%.o)

fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@sh test/fuzz/run.sh $(FUZZ_SECONDS) - $(FUZZ_BINS)

fuzz-check: $(FUZZ_BINS)
	@sh test/fuzz/run.sh $(FUZZ_CHECK_SECONDS) $(RESULTS)/fuzz $(FUZZ_BINS)

-include $(wildcard $(FB)/obj/*.d)
# ---- end of fuzzing --------------------------------------------------------

# Customer Care Registry — build, run and test.  GNU make.
# `make run` and `make check` install what is missing first (Debian 12, root).

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

# Debian packages the build, `make run` and `make check` need.
APT_PKGS := build-essential pkg-config libfcgi-dev libmariadb-dev libargon2-dev \
            libesmtp-dev libctemplate-dev libsystemd-dev libcmocka-dev libinih-dev \
            mariadb-server mariadb-client nginx python3-aiosmtpd chromium systemd \
            openssl curl wrk nodejs
PKGS     := fcgi libmariadb libargon2 libesmtp-1.0 libctemplate_nothreads libsystemd inih

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wcast-qual -Werror
CFLAGS   ?= -O2 -g
ALL_CFLAGS = -std=c17 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(shell pkg-config --cflags $(PKGS)) -MMD -MP
ALL_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror $(CFLAGS) -MMD -MP
LIBS      = $(shell pkg-config --libs $(PKGS))
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer

# Sources: the library shared by ccrd, ccr-admin and the unit tests.
LIB_C    := arena.c log.c conf.c text.c sha256.c request.c route.c page.c session.c \
            form.c password.c account.c audit.c mail.c db.c worker.c master.c \
            mailer.c migrate.c ticket.c message.c agent.c metrics.c backup.c
LIB_CC   := view.cc
UNITS    := $(patsubst test/unit/%.c,%,$(wildcard test/unit/test_*.c))

B        := build
LIB_O    := $(LIB_C:%.c=$(B)/obj/%.o) $(LIB_CC:%.cc=$(B)/obj/%.o)
ASAN_O   := $(LIB_C:%.c=$(B)/asan/%.o) $(LIB_CC:%.cc=$(B)/asan/%.o)

.PHONY: all deps run check unit unit-asan templates e2e e2e-asan clean asan
all: $(B)/ccrd $(B)/ccr-admin

# Install only what dpkg says is missing, so a second run starts in seconds.
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    -o DPkg::Lock::Timeout=300 $$missing; \
	fi
	@if [ -f test/browser/package.json ] && [ ! -d test/browser/node_modules/playwright-core ]; then \
	  cd test/browser && npm ci --no-audit --no-fund --loglevel=error; fi

$(B)/obj/%.o: fcgi/%.c | deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@
$(B)/obj/%.o: fcgi/%.cc | deps
	@mkdir -p $(@D)
	$(CXX) $(ALL_CXXFLAGS) -c $< -o $@
$(B)/asan/%.o: fcgi/%.c | deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(SAN) -c $< -o $@
$(B)/asan/%.o: fcgi/%.cc | deps
	@mkdir -p $(@D)
	$(CXX) $(ALL_CXXFLAGS) $(SAN) -c $< -o $@

$(B)/libccr.a: $(LIB_O)
	ar rcs $@ $^
$(B)/libccr-asan.a: $(ASAN_O)
	ar rcs $@ $^

$(B)/ccrd: $(B)/obj/main.o $(B)/libccr.a
	$(CXX) -o $@ $^ $(LIBS)
$(B)/ccr-admin: $(B)/obj/admin.o $(B)/libccr.a
	$(CXX) -o $@ $^ $(LIBS)

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
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -Ifcgi $< -o $@ $(B)/libccr.a $(LIBS) -lcmocka -lstdc++
$(B)/unit-asan/%: test/unit/%.c $(B)/libccr-asan.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(SAN) -Wno-missing-prototypes -Ifcgi $< -o $@ $(B)/libccr-asan.a $(LIBS) -lcmocka -lstdc++

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

e2e: all
	$(PYTHON) test/e2e/run.py --results $(RESULTS)/e2e --browser
# the integration suite against build/asan/ccrd: any sanitizer report fails
e2e-asan: asan
	$(PYTHON) test/e2e/run.py --asan --results $(RESULTS)/e2e-asan

# Every stage runs even when an earlier one fails; the tally decides.
check: all asan
	@rm -rf $(RESULTS)
	-@$(MAKE) --no-print-directory templates
	-@$(MAKE) --no-print-directory unit
	-@$(MAKE) --no-print-directory unit-asan
	-@$(PYTHON) test/e2e/run.py --results $(RESULTS)/e2e --browser
	-@$(PYTHON) test/e2e/run.py --asan --results $(RESULTS)/e2e-asan
	@$(PYTHON) test/tally.py summary $(RESULTS)

run: all
	CCR_VAR=$(CCR_VAR) PORT=$(PORT) $(PYTHON) test/stack.py run

clean:
	rm -rf $(B)

-include $(wildcard $(B)/obj/*.d $(B)/asan/*.d)

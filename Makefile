# likwid-access: build, test, demo and install.
PREFIX  ?= /usr/local
DESTDIR ?=
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
LIBDIR  ?= $(PREFIX)/lib
CARGO   ?= cargo
REL     := $(or $(CARGO_TARGET_DIR),target)/release
LIB     := $(REL)/liblikwid_access.so
DAEMON_PATH := $(PREFIX)/sbin/likwid-accessD
# Service mode (README "Service mode"): the systemd units and the Slurm prolog/epilog.
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
SLURM_DIR ?= $(PREFIX)/share/likwid-access/slurm
# The library launches the daemon from where `make install` puts it.
export LIKWID_ACCESS_DAEMON_PATH := $(DAEMON_PATH)

.PHONY: all build header lint test bench daemon-layout load load-test soak fuzz rust-test c-test c-test-valgrind install-check demo install uninstall clean deb deb-test

all: build

build:
	$(CARGO) build --release --locked
	ln -sf liblikwid_access.so $(LIB).$(MAJOR)

header:
	$(CARGO) run --release --locked --example gen-header

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --locked --all-targets -- -D warnings

rust-test:
	$(CARGO) test --release --locked

c-test: build
	c-tests/run.sh

c-test-valgrind: build
	VALGRIND=1 c-tests/run.sh

install-check: build
	c-tests/install-check.sh

test: lint rust-test install-check c-test c-test-valgrind
test: likwid-test load-test
test: vm-test

demo: build
	c-tests/demo.sh

bench: build
	bench/bench.sh

# Regenerate src/bin/likwid-accessD.ld (the functions the daemon runs, placed together: its
# private memory) from callgrind runs; as root it also traces the real paths. Then rebuild.
daemon-layout: build
	bench/daemon-layout.sh

# 64 processes x 8 threads through our library plus 16 raw LIKWID clients at once (bench/load.c):
# every value checked, nothing left behind, per-pair latency percentiles.
load: build
	nice -n 10 bench/load.sh 64 8 200 16

# Ten million requests through one daemon; its private memory must stay flat (not in CI).
soak: build
	nice -n 10 bench/soak.sh 10

# The same, small, for `make test`: values and leftovers must be right; the latency bound is loose.
load-test: build
	bench/load.sh 16 4 50 4 1000

install: build
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/sbin \
	  $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0755 $(LIB) $(DESTDIR)$(LIBDIR)/liblikwid_access.so.$(VERSION)
	ln -sf liblikwid_access.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblikwid_access.so.$(MAJOR)
	ln -sf liblikwid_access.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/liblikwid_access.so
	install -m 0644 include/likwid_access.h $(DESTDIR)$(PREFIX)/include/likwid_access.h
	install -m 0644 include/likwid_access.f90 $(DESTDIR)$(PREFIX)/include/likwid_access.f90
	install -m 0644 man/likwid-access.1 $(DESTDIR)$(PREFIX)/share/man/man1/likwid-access.1
	install -m 0644 man/likwid-accessD.8 $(DESTDIR)$(PREFIX)/share/man/man8/likwid-accessD.8
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@VERSION@|$(VERSION)|g' likwid-access.pc.in \
	  > $(DESTDIR)$(LIBDIR)/pkgconfig/likwid-access.pc
	install -m 0755 $(REL)/likwid-accessD $(DESTDIR)$(DAEMON_PATH)
	install -m 0755 $(REL)/likwid-access $(DESTDIR)$(PREFIX)/bin/likwid-access
	install -d $(DESTDIR)$(SYSTEMD_UNIT_DIR) $(DESTDIR)$(SLURM_DIR)
	sed 's|/usr/local/sbin/likwid-accessD|$(DAEMON_PATH)|' contrib/systemd/likwid-accessd.service \
	  > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/likwid-accessd.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/likwid-accessd.service
	install -m 0755 contrib/slurm/prolog $(DESTDIR)$(SLURM_DIR)/prolog
	sed 's|/usr/local/bin/likwid-access|$(PREFIX)/bin/likwid-access|' contrib/slurm/epilog > $(DESTDIR)$(SLURM_DIR)/epilog
	chmod 0755 $(DESTDIR)$(SLURM_DIR)/epilog
	@echo
	@echo "Installed. Service mode (no setuid file; README \"Service mode\"), as root:"
	@echo "  systemctl daemon-reload && systemctl enable --now likwid-accessd.service"
	@echo "Or the daemon needs privileges to open /dev/cpu/*/msr; as root run ONE of:"
	@echo "  chown root:root $(DAEMON_PATH) && chmod u+s $(DAEMON_PATH)      # setuid root"
	@echo "  setcap cap_dac_override,cap_sys_rawio=ep $(DAEMON_PATH)          # file capabilities"

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/liblikwid_access.so.$(VERSION) \
	  $(DESTDIR)$(LIBDIR)/liblikwid_access.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/liblikwid_access.so \
	  $(DESTDIR)$(PREFIX)/include/likwid_access.h $(DESTDIR)$(LIBDIR)/pkgconfig/likwid-access.pc \
	  $(DESTDIR)$(DAEMON_PATH) $(DESTDIR)$(PREFIX)/bin/likwid-access \
	  $(DESTDIR)$(PREFIX)/include/likwid_access.f90 \
	  $(DESTDIR)$(PREFIX)/share/man/man1/likwid-access.1 $(DESTDIR)$(PREFIX)/share/man/man8/likwid-accessD.8 \
	  $(DESTDIR)$(SYSTEMD_UNIT_DIR)/likwid-accessd.service \
	  $(DESTDIR)$(SLURM_DIR)/prolog $(DESTDIR)$(SLURM_DIR)/epilog

clean:
	$(CARGO) clean

# Coverage-guided fuzzing of the wire decoder, the greeting, the text parsers and whole sessions
# (fuzz/run.sh; cargo-fuzz on nightly Rust). Long: not part of `make test`, which replays the
# committed corpus through tests/fuzz_corpus.rs instead.
fuzz:
	fuzz/run.sh

# Unmodified LIKWID 5 tools on our daemon (tests/likwid/harness.sh): Debian's 5.2.2 and LIKWID
# 5.5.1, which the harness builds once per machine into /opt/likwid-5.5.1 from ../shared/peers
# (skipped loudly without that directory). It needs root and likwid; elsewhere it says why and
# exits 77, which counts as skipped here (CI=true fails instead).
.PHONY: likwid-test
likwid-test: build
	tests/likwid/harness.sh || [ $$? -eq 77 ]

# Our binaries and C checks in Debian's own kernel under qemu (TCG), on the kernel's msr driver
# (tests/vm/vm-test.sh): two CPU models in `make test`, every model in vm-test-all. Root and
# qemu needed; elsewhere it says why and exits 77, skipped here (CI=true fails instead).
.PHONY: vm-test vm-test-all
vm-test: build
	tests/vm/vm-test.sh skx zen4 || [ $$? -eq 77 ]

vm-test-all: build
	tests/vm/vm-test.sh all || [ $$? -eq 77 ]

# The Debian package (debian/, debhelper): see README "Install". The tracked tree is copied to
# a fixed staging path under DEB_DIR so that dpkg-buildpackage writes nothing outside target/
# and cargo's cache there is reused; the .deb lands in DEB_OUT.
DEB_DIR ?= target/debian
DEB_OUT ?= $(DEB_DIR)
deb:
	tests/deb/build-deb.sh "$(DEB_DIR)" "$(DEB_OUT)"

# Installs, upgrades and purges the package in a throwaway Debian root next to Debian's likwid
# (tests/deb/deb-test.sh builds it with `make deb` first; root, debootstrap, debhelper and
# lintian needed; the Debian root is cached per machine). In `make test` a missing tool or
# root skips it (exit 77), except under CI=true.
deb-test:
	tests/deb/deb-test.sh

test: package-test

# Service mode's shipped files checked offline (tests/service/units.sh): the unit's
# systemd-analyze security exposure under a threshold, systemd-analyze verify, shellcheck of
# the Slurm scripts. Skipped without systemd-analyze (exit 77), except under CI=true.
test: service-units-test
.PHONY: service-units-test
service-units-test: build
	tests/service/units.sh || [ $$? -eq 77 ]

# Service mode at its edges (tests/service/edge.sh, ~10 s, root): LIKWID 5.2.2 and 5.5.1 through
# the relay from a `make install` tree with no setuid file or capability, a rootless container
# served through a bind-mounted socket, the Slurm prolog/epilog on a simulated job.
test: service-edge-test
.PHONY: service-edge-test
service-edge-test: build
	tests/service/edge.sh || [ $$? -eq 77 ]
.PHONY: package-test
package-test:
	tests/deb/deb-test.sh || [ $$? -eq 77 ]

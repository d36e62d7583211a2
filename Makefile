# The project's entry points. `make run` and `make test` are the README's two
# commands; .ci/run calls `make test` after installing what a machine lacks.
CARGO ?= cargo

.PHONY: run test lint bench build install install-files

PREFIX ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
PROFILE ?= release
BINSRC ?= target/$(PROFILE)
BINDIR = $(DESTDIR)$(PREFIX)/bin
SBINDIR = $(DESTDIR)$(PREFIX)/sbin
DOCDIR = $(DESTDIR)$(PREFIX)/share/doc/xtop
UNITDIR = $(DESTDIR)$(PREFIX)/lib/systemd/system

## Build everything (release), start a local xend if none answers, boot example
## minios domains if there are none, and open xtop over them.
run:
	$(CARGO) build --release --workspace --bins
	./target/release/xtop --launch

## Build every binary the end-to-end tests drive, then run the whole suite.
test:
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

## Formatting and lints, as CI enforces them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd hypervisor/minios && CARGO_ENCODED_RUSTFLAGS=$$'-Crelocation-model=static\x1f-Ctarget-cpu=x86-64' \
		$(CARGO) clippy --release --locked --target x86_64-unknown-linux-gnu -- -D warnings

## Benchmarks (see the README's Benchmarks section for figures).
bench:
	$(CARGO) build --release --workspace --bins
	$(CARGO) bench -p hypervisor --bench vmm
	$(CARGO) bench -p hypervisor --bench devices
	$(CARGO) bench -p hypervisor --bench snapshot
	$(CARGO) bench -p e2e --bench xend_api
	$(CARGO) bench -p e2e --bench xend_save
	$(CARGO) bench -p e2e --bench xend_soak
	$(CARGO) bench -p console-client --bench console
	./target/release/xtop-bench

## Install (release build): xtop, xm, xencons in $(PREFIX)/bin; xend and vmm in
## $(PREFIX)/sbin; /etc/xen/xend-config.sxp (kept if present) and an example
## domain config; the systemd unit; the docs. `make install PREFIX=/usr DESTDIR=/tmp/pkg`.
install:
	$(CARGO) build --release --workspace --bins
	$(MAKE) install-files PROFILE=release

## The copying part of `install`, from $(BINSRC) (no build).
install-files:
	install -d -m 0755 $(BINDIR) $(SBINDIR) $(DOCDIR) $(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/xen
	install -m 0755 $(BINSRC)/xtop $(BINSRC)/xm $(BINSRC)/xencons $(BINDIR)/
	install -m 0755 $(BINSRC)/xend $(BINSRC)/vmm $(SBINDIR)/
	test -e $(DESTDIR)$(SYSCONFDIR)/xen/xend-config.sxp || \
		install -m 0644 dist/xend-config.sxp $(DESTDIR)$(SYSCONFDIR)/xen/xend-config.sxp
	install -m 0644 dist/examples/xmexample-minios $(DESTDIR)$(SYSCONFDIR)/xen/
	sed 's|@SBINDIR@|$(PREFIX)/sbin|' dist/systemd/xend.service > $(UNITDIR)/xend.service
	chmod 0644 $(UNITDIR)/xend.service
	install -m 0644 README.md CHANGELOG.md $(DOCDIR)/
	install -m 0644 xend/README.md $(DOCDIR)/xend-README.md
	install -m 0644 xtop/README.md $(DOCDIR)/xtop-README.md

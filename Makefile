# The project's entry points. `make run` and `make test` are the README's two
# commands; .ci/run calls `make test` after installing what a machine lacks.
CARGO ?= cargo

.PHONY: run test lint bench build

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

# One place for the project's tasks, used by developers and by .ci/run.

.PHONY: test build lint fmt bench ci validate-deploy

# The test command of the README: builds the binaries the end-to-end tests
# spawn, then runs every test of the workspace.
test: build
	cargo nextest run --workspace --no-fail-fast

build:
	cargo build --workspace --bins

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

# Turn-overhead, gateway and memory-search benchmarks (numbers go to
# docs/performance.md).
bench:
	cargo build --release --workspace --bins
	cargo run --release -p openheim-e2e --bin turn-bench
	cargo run --release -p openheim-e2e --bin gateway-bench
	cargo bench -p openheim-memory --bench search

# Static validation of deploy/Dockerfile, docker-compose.yml and the Helm
# chart (no Docker engine or cluster needed; tools cached after the first run).
validate-deploy:
	deploy/validate.sh

ci: lint test

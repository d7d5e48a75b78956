# One place for the project's tasks, used by developers and by .ci/run.

.PHONY: test build lint fmt bench ci validate-deploy compose-e2e web web-deps web-check web-screenshots example-deps

WEB := gateway/web

# The test command of the README: builds the binaries and the example
# programs the end-to-end tests spawn, installs the browser tests' driver
# and the ACP example client's SDK, then runs every test of the workspace.
test: build web-deps example-deps
	cargo nextest run --workspace --no-fail-fast

build:
	cargo build --workspace --bins --examples

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
	cargo run --release -p openheim-e2e --bin long-session-bench
	cargo bench -p openheim-memory --bench search

# Static validation of deploy/Dockerfile, docker-compose.yml and the Helm
# chart (no Docker engine or cluster needed; tools cached after the first run).
validate-deploy:
	deploy/validate.sh

# The container deployment run for real under podman (docs/deployment.md):
# prepares podman and base images when missing (deploy/podman/prepare.sh),
# builds deploy/Dockerfile, brings up docker-compose.yml with a mock LLM
# provider and an OTLP receiver, runs the scenario battery
# (tests/tests/e2e/compose/) and takes the stack down. Needs root.
compose-e2e:
	deploy/podman/compose-e2e.sh

# The web app (docs/web.md). Its build, gateway/web/dist, is committed and
# embedded by gateway/build.rs, so building openheim needs no node; these
# targets need node and npm. `web-deps` installs the lockfile's packages
# (the build tools and playwright-core) when they are missing or stale.
web-deps:
	@if [ ! -f $(WEB)/node_modules/.package-lock.json ] \
	  || [ $(WEB)/package-lock.json -nt $(WEB)/node_modules/.package-lock.json ]; then \
	  npm ci --prefix $(WEB) --no-audit --no-fund; \
	fi

# The ACP example client (examples/acp-client, docs/acp.md), which an
# end-to-end test runs against the real binary: the official TypeScript SDK.
example-deps:
	@if [ ! -f examples/acp-client/node_modules/.package-lock.json ] \
	  || [ examples/acp-client/package-lock.json -nt examples/acp-client/node_modules/.package-lock.json ]; then \
	  npm ci --prefix examples/acp-client --no-audit --no-fund; \
	fi

# Type-checks and rebuilds gateway/web/dist from the sources.
web: web-deps
	npm run --prefix $(WEB) build

# CI: the committed build is exactly what the sources produce.
web-check: web
	@git diff --exit-code --stat -- $(WEB)/dist \
	  && test -z "$$(git status --porcelain --untracked-files=all -- $(WEB)/dist)" \
	  || { echo "gateway/web/dist is not the build of gateway/web: run 'make web' and commit it"; exit 1; }

# Copies the browser tests' screenshots (target/web-e2e) shown in docs/web.md.
web-screenshots:
	mkdir -p docs/web
	cp target/web-e2e/main/chat.png target/web-e2e/main/permission.png \
	   target/web-e2e/main/tool-diff.png target/web-e2e/main/server.png \
	   target/web-e2e/main/theme-light.png target/web-e2e/resilience/phone.png \
	   target/web-e2e/resilience/sign-in-error.png target/web-e2e/resilience/reconnecting.png docs/web/

ci: lint web-check test

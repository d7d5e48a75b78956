//! The container deployment, run for real: `docker-compose.yml` with
//! `deploy/podman/compose.test.yml` under podman, built from
//! `deploy/Dockerfile`, exercised from the host. These tests are ignored
//! by default; `make compose-e2e` (deploy/podman/compose-e2e.sh) prepares
//! podman, builds the image, brings the stack up, runs them one at a time
//! with `--run-ignored only` and takes the stack down again.
//!
//! The script tells them where the stack is through `COMPOSE_E2E_*`
//! variables (gateway URL and token, the fixtures' control ports, the
//! compose project). Every scenario leaves the stack healthy.

mod scenarios;
mod stack;

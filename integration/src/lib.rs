//! kpbt-integration: containerized swarm tests of the kpbt tracker and client images.
//!
//! Each test gets its own Docker network, tracker container and peer containers (one per
//! peer, each with its own address), started with testcontainers from the local
//! `kpbt/tracker:dev` and `kpbt/client:dev` images. [`docker::setup`] checks the engine
//! and builds the images once per run. The tests live in `tests/`; [`origin`]
//! adds an nginx origin (web seed) container.

pub mod docker;
pub mod origin;
pub mod swarm;

//! `cargo xtask test`: every check the project has, in one command.
//!
//! - `runner`: the host steps, the guest tests, the summary;
//! - `plan`: the guest tests as data — images, boots, inputs, judges;
//! - `judge`: what each guest must show to pass;
//! - `forward`: `run-forward`, `cargo xtask run` as a user runs it.
mod forward;
pub(crate) mod judge;
mod plan;
mod runner;

pub use runner::run_all;

//! `cargo xtask test`: every check the project has, in one command.
//!
//! - `runner`: the host steps, the guest tests, the summary;
//! - `plan`: the guest tests as data — images, boots, inputs, judges;
//! - `judge`: what each guest must show to pass.
mod judge;
mod plan;
mod runner;

pub use runner::run_all;

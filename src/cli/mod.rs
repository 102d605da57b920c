//! The commands besides `serve`: `demo`, `explain`, `routes import-openapi`, `check-config` and
//! `check-snapshot`, and the progress display they share. main.rs parses arguments and
//! dispatches here.

pub mod check;
pub mod demo;
pub mod explain;
pub mod openapi;
pub mod progress;

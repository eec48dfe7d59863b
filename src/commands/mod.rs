//! One module per command family: each turns parsed arguments into calls on the library crates
//! and prints the outcome.

pub mod bench;
pub mod config;
pub mod fakes;
pub mod models;
pub mod providers;
pub mod say;
pub mod serve;
pub mod sim;
pub mod storage;

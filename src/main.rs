//! The `hermes` binary: parses the command line and wires the crates together. No logic lives
//! here; every behaviour is in `hermes-core`, `hermes-models`, `hermes-io` or `hermes-bench`.
// Printing results is this binary's job.
#![allow(clippy::print_stdout)]

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use cli::{BenchCommand, Cli, Command, ModelsCommand};
use hermes_core::audio::AllocationProbe;

/// Counts heap allocations inside audio worker loops (there must be none); reported by
/// `bench audio` and, later, as a metric.
#[global_allocator]
static ALLOCATOR: AllocationProbe = AllocationProbe::new();

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Models(ModelsCommand::Fetch(args)) => {
            commands::models::fetch(&cli.models_dir, args)
        }
        Command::Models(ModelsCommand::List) => commands::models::list(&cli.models_dir),
        Command::Bench(BenchCommand::Audio(args)) => {
            commands::bench::audio(&cli.models_dir, args, &ALLOCATOR)
        }
        Command::CheckConfig(args) => commands::config::check(args),
        Command::Init(args) => commands::config::init(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

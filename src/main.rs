//! The `hermes` binary: parses the command line and wires the crates together. No logic lives
//! here; every behaviour is in `hermes-core`, `hermes-models`, `hermes-io` or `hermes-bench`.
// Printing results is this binary's job.
#![allow(clippy::print_stdout)]

mod cli;
mod commands;

use std::process::ExitCode;

use cli::{BenchCommand, CallsCommand, Cli, Command, ModelsCommand};
use hermes_core::audio::AllocationProbe;

/// Counts heap allocations inside audio worker loops (there must be none); reported by
/// `bench audio` and, later, as a metric.
#[global_allocator]
static ALLOCATOR: AllocationProbe = AllocationProbe::new();

fn main() -> ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let mut cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let (Command::Serve(args), Some(("serve", sub))) = (&mut cli.command, matches.subcommand()) {
        args.config_named =
            sub.value_source("config") != Some(clap::parser::ValueSource::DefaultValue);
    }
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
        Command::Serve(args) => commands::serve::serve(&cli.models_dir, args),
        Command::Fakes(args) => commands::fakes::run(args),
        Command::Sim(args) => commands::sim::run(&cli.models_dir, args),
        Command::Migrate(args) => commands::storage::migrate(args),
        Command::Calls(CallsCommand::List(args)) => commands::storage::list(args),
        Command::Calls(CallsCommand::Show(args)) => commands::storage::show(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

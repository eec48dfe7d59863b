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
    // A server logs its calls; the other commands report for themselves (the simulator's
    // report already checks every turn, so its breach warnings would only repeat it).
    init_logging(match cli.command {
        Command::Serve(_) => "warn,hermes_io=info",
        _ => "error",
    });
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
        Command::Demo(args) => commands::sim::demo(&cli.models_dir, args),
        Command::Say(args) => commands::say::say(&cli.models_dir, args),
        Command::Migrate(args) => commands::storage::migrate(args),
        Command::Calls(CallsCommand::List(args)) => commands::storage::list(args),
        Command::Calls(CallsCommand::Show(args)) => commands::storage::show(args),
        Command::Calls(CallsCommand::Purge(args)) => commands::storage::purge(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Structured logs on stderr (`tracing`): per-call and per-turn spans from the call driver,
/// budget breaches as warnings. `HERMES_LOG` overrides the filter, e.g. `HERMES_LOG=debug`.
/// Nothing logged carries a key, and phone numbers are masked.
fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERMES_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

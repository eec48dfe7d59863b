//! `hermes check-config` and `hermes init`.

use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hermes_core::config::{self, Carrier, HermesConfig, Problem};

use crate::cli::{CheckConfigArgs, InitArgs};

const TEMPLATE: &str = include_str!("init_template.toml");

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The embedded defaults (the demo business) with the `HERMES__SECTION__KEY` overrides from
/// the environment applied and checked, for when there is no configuration file.
pub fn defaults() -> Result<HermesConfig, Vec<Problem>> {
    let overrides = config::env_overrides(std::env::vars());
    let (config, problems) = config::parse_with_overrides("", &env_var, &overrides);
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(problems),
    }
}

/// Reads and checks a configuration file, including the seed data it points at.
pub fn load(path: &Path) -> anyhow::Result<Result<HermesConfig, Vec<Problem>>> {
    let text = fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}: create one with `hermes init`, or pass the file's path",
            path.display()
        )
    })?;
    let overrides = config::env_overrides(std::env::vars());
    let (config, mut problems) = config::parse_with_overrides(&text, &env_var, &overrides);
    let Some(config) = config else { return Ok(Err(problems)) };
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    problems.extend(check_seed_data(&config, base, &text));
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    Ok(if problems.is_empty() { Ok(config) } else { Err(problems) })
}

/// The files the business profile names must exist and be JSON. Only for a profile the file
/// defines: the embedded demo business (no `[business]` table) brings its own data.
fn check_seed_data(config: &HermesConfig, base: &Path, text: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    if config::line_of_path(text, "business").is_none() {
        return problems;
    }
    let mut problem = |path: String, message: String| {
        let line = config::line_of_path(text, &path);
        problems.push(Problem { path, message, line, from_env: None });
    };
    let data_dir = base.join(&config.business.data_dir);
    for (i, staff) in config.business.staff.iter().enumerate() {
        if staff.calendar.is_empty() {
            continue;
        }
        let file = data_dir.join(&staff.calendar);
        let path = format!("business.staff[{i}].calendar");
        match fs::read(&file) {
            Err(e) => problem(path, format!("cannot read {}: {e}", file.display())),
            Ok(bytes) => {
                if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    problem(path, format!("{} is not valid JSON: {e}", file.display()));
                }
            }
        }
    }
    problems
}

pub fn check(args: &CheckConfigArgs) -> anyhow::Result<()> {
    let path = &args.file;
    match load(path)? {
        Ok(config) => {
            println!("{} is valid.", path.display());
            for o in config::env_overrides(std::env::vars()) {
                println!("  {} set by {}", o.path, o.var);
            }
            println!("{}", summary(&config));
            Ok(())
        }
        Err(problems) => {
            for p in &problems {
                println!("{p}");
            }
            let n = problems.len();
            bail!("{n} problem{} in {}", if n == 1 { "" } else { "s" }, path.display())
        }
    }
}

/// What this configuration will do, in a few lines.
fn summary(c: &HermesConfig) -> String {
    let b = &c.business;
    let engine = |cloud: bool, name: &str, key: &str| {
        if cloud { format!("{name} ({key} set)") } else { "local engine".to_string() }
    };
    let p = &c.providers;
    format!(
        "  business        {} ({}), {} service(s), {} staff, {} FAQ entries\n\
         \x20 agent           {} — voice {:?}\n\
         \x20 speech-to-text  {}\n\
         \x20 LLM             {}\n\
         \x20 text-to-speech  {}\n\
         \x20 carrier         {}, listening on {}",
        b.name,
        b.timezone,
        b.services.len(),
        b.staff.len(),
        b.faq.len(),
        c.persona.agent_name,
        c.persona.voice,
        engine(p.stt.uses_cloud(&env_var), "Deepgram", &p.stt.api_key_env),
        engine(p.llm.uses_cloud(&env_var), "remote model", &p.llm.api_key_env),
        engine(p.tts.uses_cloud(&env_var), "ElevenLabs", &p.tts.api_key_env),
        match c.telephony.carrier {
            Carrier::None => "none (simulator and demo only)",
            Carrier::Telnyx => "Telnyx",
            Carrier::Twilio => "Twilio",
        },
        c.server.listen,
    )
}

/// The answers `init` fills the template with.
#[derive(Debug, Clone)]
struct Answers {
    name: String,
    phone: String,
    transfer: String,
    timezone: String,
    agent: String,
}

fn quoted(s: &str) -> String {
    // A JSON string is a valid TOML basic string: the escapes JSON emits are a subset of TOML's.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn render(a: &Answers) -> String {
    TEMPLATE
        .replace("{{name}}", &quoted(&a.name))
        .replace("{{phone}}", &quoted(&a.phone))
        .replace("{{transfer}}", &quoted(&a.transfer))
        .replace("{{timezone}}", &quoted(&a.timezone))
        .replace("{{agent}}", &quoted(&a.agent))
}

/// Problems of the rendered file that concern `field` (all of them when `field` is empty).
fn problems_with(a: &Answers, field: &str) -> Vec<Problem> {
    match config::parse(&render(a), &|_| None) {
        Ok(_) => Vec::new(),
        Err(ps) => {
            ps.into_iter().filter(|p| field.is_empty() || p.path.starts_with(field)).collect()
        }
    }
}

pub fn init(args: &InitArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    let config_path = dir.join("hermes.toml");
    if config_path.exists() && !args.force {
        bail!("{} already exists; pass --force to overwrite it", config_path.display());
    }
    let mut answers = Answers {
        name: args.business_name.clone(),
        phone: args.phone.clone(),
        transfer: args.transfer_number.clone().unwrap_or_default(),
        timezone: args.timezone.clone(),
        agent: args.agent_name.clone(),
    };
    if !args.non_interactive {
        ask_all(&mut answers)?;
    }
    let problems = problems_with(&answers, "");
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        bail!(
            "not writing {}: fix the values above (see `hermes init --help`)",
            config_path.display()
        );
    }
    write_files(dir, &config_path, &answers)?;
    println!("Wrote {} and {}.", config_path.display(), dir.join("data").display());
    println!(
        "Next: edit the services, staff and hours, then run `hermes check-config {}`.",
        config_path.display()
    );
    Ok(())
}

fn ask_all(a: &mut Answers) -> anyhow::Result<()> {
    type Field = fn(&mut Answers) -> &mut String;
    let questions: [(&str, &str, Field); 5] = [
        ("Business name", "business.name", |a| &mut a.name),
        ("Phone number callers dial (E.164, e.g. +15555550100)", "business.phone_numbers", |a| {
            &mut a.phone
        }),
        ("Number a human answers on hand-off (empty for none)", "business.transfer_number", |a| {
            &mut a.transfer
        }),
        ("Time zone (IANA, e.g. Europe/London)", "business.timezone", |a| &mut a.timezone),
        ("The agent's name", "persona.agent_name", |a| &mut a.agent),
    ];
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    for (question, path, field) in questions {
        loop {
            eprint!("{question} [{}]: ", field(a));
            std::io::stderr().flush()?;
            let Some(line) = lines.next().transpose()? else {
                bail!(
                    "input ended before all questions were answered; in scripts use \
                     --non-interactive with flags (see `hermes init --help`)"
                )
            };
            let line = line.trim();
            if !line.is_empty() {
                *field(a) = line.to_string();
            }
            let problems = problems_with(a, path);
            if problems.is_empty() {
                break;
            }
            for p in problems {
                eprintln!("  {}", p.message);
            }
        }
    }
    Ok(())
}

fn write_files(dir: &Path, config_path: &Path, a: &Answers) -> anyhow::Result<()> {
    let calendars = dir.join("data/calendars");
    fs::create_dir_all(&calendars).with_context(|| format!("creating {}", calendars.display()))?;
    let write = |path: PathBuf, text: String| {
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write(config_path.to_path_buf(), render(a))?;
    let owner = calendars.join("owner.json");
    if !owner.exists() {
        write(owner, "{\n  \"staff\": \"owner\",\n  \"appointments\": []\n}\n".into())?;
    }
    let orders = dir.join("data/orders.json");
    if !orders.exists() {
        write(orders, "{\n  \"orders\": []\n}\n".into())?;
    }
    Ok(())
}

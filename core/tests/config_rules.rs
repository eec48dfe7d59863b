//! Every configuration rule, pinned to its exact message and line: a user fixes `hermes.toml`
//! from these messages alone, so they are part of the interface.

use std::collections::HashMap;

use hermes_core::config::{HermesConfig, env_overrides, parse, parse_with_overrides};

/// `(rule, file, the one problem it must produce)`. Each file is valid but for one fault.
const CASES: &[(&str, &str, &str)] = &[
    // --- syntax and decoding ---
    ("syntax error", "[business\nname = 1", "(syntax): SYNTAX"),
    (
        "unknown key",
        "[persona]\nagent_nmae = \"Sam\"",
        "persona.agent_nmae: unknown key \"agent_nmae\"; this section takes one of `agent_name`, `voice`, `tone`, `languages`, `greeting_inbound`, `greeting_outbound`, `fillers`, `silence_prompts`, `anything_else`, `didnt_catch`, `callback_offer`, `goodbye`, `escalation_line`, `reconnected`, `anchor_every_turns` (line 2)",
    ),
    (
        "unknown section",
        "[busines]\nname = \"X\"",
        "busines: unknown key \"busines\"; this section takes one of `business`, `persona`, `conversation`, `telephony`, `providers`, `tools`, `budgets`, `storage`, `server`, `audio` (line 1)",
    ),
    (
        "wrong type",
        "[conversation]\nbarge_in_min_ms = \"300\"",
        "conversation.barge_in_min_ms: invalid type: string \"300\", expected a whole number (line 2)",
    ),
    (
        "unknown enum value",
        "[providers.stt]\nengine = \"deepgramm\"",
        "providers.stt.engine: unknown variant `deepgramm`, expected one of `auto`, `deepgram`, `local` (line 2)",
    ),
    // --- business ---
    (
        "business name empty",
        "[business]\ntimezone = \"UTC\"",
        "business.name: is empty; the agent introduces the business by this name (line 1)",
    ),
    (
        "phone not E.164",
        "[business]\nname = \"X\"\nphone_numbers = [\"555-0100\"]",
        "business.phone_numbers[0]: \"555-0100\" is not an E.164 number like \"+15555550100\" (line 3)",
    ),
    (
        "transfer number not E.164",
        "[business]\nname = \"X\"\ntransfer_number = \"+0123\"",
        "business.transfer_number: \"+0123\" is not an E.164 number like \"+15555550100\" (line 3)",
    ),
    (
        "unknown time zone",
        "[business]\nname = \"X\"\ntimezone = \"Mars/Olympus\"",
        "business.timezone: \"Mars/Olympus\" is not an IANA time zone like \"America/New_York\" (line 3)",
    ),
    (
        "hours not a range",
        "[business]\nname = \"X\"\n[business.hours]\nsaturday = \"9-17\"",
        "business.hours.saturday: \"9-17\" is not a time range like \"09:00-17:00\" (several: \"09:00-12:00, 13:00-17:00\"; or \"closed\") (line 4)",
    ),
    (
        "hours backwards",
        "[business]\nname = \"X\"\n[business.hours]\nmonday = \"17:00-09:00\"",
        "business.hours.monday: \"17:00-09:00\": 17:00-09:00 ends before it starts (line 4)",
    ),
    (
        "hours overlap",
        "[business]\nname = \"X\"\n[business.hours]\nfriday = \"09:00-13:00, 12:00-17:00\"",
        "business.hours.friday: \"09:00-13:00, 12:00-17:00\": 09:00-13:00 overlaps 12:00-17:00 (line 4)",
    ),
    (
        "exception date",
        "[business]\nname = \"X\"\n[[business.exceptions]]\ndate = \"2026-02-30\"\nhours = \"closed\"",
        "business.exceptions[0].date: \"2026-02-30\" is not a date like \"2026-12-25\" (line 4)",
    ),
    (
        "exception hours",
        "[business]\nname = \"X\"\n[[business.exceptions]]\ndate = \"2026-12-24\"\nhours = \"morning\"",
        "business.exceptions[0].hours: \"morning\" is not a time range like \"09:00-17:00\" (several: \"09:00-12:00, 13:00-17:00\"; or \"closed\") (line 5)",
    ),
    (
        "exception twice",
        "[business]\nname = \"X\"\n[[business.exceptions]]\ndate = \"2026-12-24\"\nhours = \"closed\"\n[[business.exceptions]]\ndate = \"2026-12-24\"\nhours = \"closed\"",
        "business.exceptions[1].date: \"2026-12-24\" is already used by business.exceptions[0] (line 7)",
    ),
    (
        "service without id",
        "[business]\nname = \"X\"\n[[business.services]]\nname = \"Cut\"\nduration_minutes = 30",
        "business.services[0].id: is empty; staff and tools refer to services by id (line 3)",
    ),
    (
        "service duration",
        "[business]\nname = \"X\"\n[[business.services]]\nid = \"cut\"\nduration_minutes = 0",
        "business.services[0].duration_minutes: 0 is outside 1-720 minutes (line 5)",
    ),
    (
        "negative price",
        "[business]\nname = \"X\"\n[[business.services]]\nid = \"cut\"\nduration_minutes = 30\nprice = -5.0",
        "business.services[0].price: -5 is not a price (a number of at least 0, like 35.00) (line 6)",
    ),
    (
        "price with cents fractions",
        "[business]\nname = \"X\"\n[[business.services]]\nid = \"cut\"\nduration_minutes = 30\nprice = 35.001",
        "business.services[0].price: 35.001 has more than two decimal places (line 6)",
    ),
    (
        "service id twice",
        "[business]\nname = \"X\"\n[[business.services]]\nid = \"cut\"\nduration_minutes = 30\n[[business.services]]\nid = \"cut\"\nduration_minutes = 45",
        "business.services[1].id: \"cut\" is already used by business.services[0] (line 7)",
    ),
    (
        "staff without name",
        "[business]\nname = \"X\"\n[[business.staff]]\nid = \"ana\"",
        "business.staff[0].name: is empty (line 3)",
    ),
    (
        "staff offers unknown service",
        "[business]\nname = \"X\"\n[[business.services]]\nid = \"cut\"\nduration_minutes = 30\n[[business.staff]]\nid = \"ana\"\nname = \"Ana\"\nservices = [\"cut\", \"perm\"]",
        "business.staff[0].services[1]: \"perm\" is not a service id (known: cut) (line 9)",
    ),
    (
        "staff id twice",
        "[business]\nname = \"X\"\n[[business.staff]]\nid = \"ana\"\nname = \"Ana\"\n[[business.staff]]\nid = \"ana\"\nname = \"Anna\"",
        "business.staff[1].id: \"ana\" is already used by business.staff[0] (line 7)",
    ),
    (
        "catalogue price",
        "[business]\nname = \"X\"\n[[business.catalogue]]\nsku = \"A\"\nprice = -1.0",
        "business.catalogue[0].price: -1 is not a price (a number of at least 0, like 35.00) (line 5)",
    ),
    (
        "catalogue sku twice",
        "[business]\nname = \"X\"\n[[business.catalogue]]\nsku = \"A\"\n[[business.catalogue]]\nsku = \"A\"",
        "business.catalogue[1].sku: \"A\" is already used by business.catalogue[0] (line 6)",
    ),
    // --- persona ---
    (
        "empty greeting",
        "[persona]\ngreeting_inbound = \" \"",
        "persona.greeting_inbound: is empty (line 2)",
    ),
    ("no fillers", "[persona]\nfillers = []", "persona.fillers: needs at least one line (line 2)"),
    (
        "no silence prompts",
        "[persona]\nsilence_prompts = []",
        "persona.silence_prompts: needs at least one line (line 2)",
    ),
    (
        "no language",
        "[persona]\nlanguages = []",
        "persona.languages: needs at least one language, like \"en-US\" (line 2)",
    ),
    (
        "bad language tag",
        "[persona]\nlanguages = [\"en_US\"]",
        "persona.languages[0]: \"en_US\" is not a language tag like \"en-US\" (line 2)",
    ),
    (
        "anchor cadence zero",
        "[persona]\nanchor_every_turns = 0",
        "persona.anchor_every_turns: must be at least 1 (line 2)",
    ),
    // --- conversation ---
    (
        "endpointing out of range",
        "[conversation]\nendpointing_max_ms = 20000",
        "conversation.endpointing_max_ms: 20000 ms is outside 100-10000 ms (line 2)",
    ),
    (
        "endpointing min above max",
        "[conversation]\nendpointing_min_ms = 1500\nendpointing_max_ms = 1000",
        "conversation.endpointing_max_ms: 1000 ms is below endpointing_min_ms (1500 ms) (line 3)",
    ),
    (
        "silence ladder out of order",
        "[conversation]\nsilence_callback_after_ms = 2000",
        "conversation.silence_callback_after_ms: 2000 ms must come after silence_filler_after_ms (2500 ms) (line 2)",
    ),
    (
        "too many tool steps",
        "[conversation]\nmax_tool_steps = 40",
        "conversation.max_tool_steps: 40 is outside 1-16 (line 2)",
    ),
    (
        "call duration",
        "[conversation]\nmax_call_duration_ms = 1000",
        "conversation.max_call_duration_ms: 1000 ms is outside 10000-14400000 ms (line 2)",
    ),
    (
        "smart turn threshold",
        "[conversation.smart_turn]\nthreshold = 1.5",
        "conversation.smart_turn.threshold: 1.5 is not a probability between 0 and 1 (line 2)",
    ),
    (
        "smart turn pause",
        "[conversation.smart_turn]\npause_ms = 5",
        "conversation.smart_turn.pause_ms: 5 ms is outside 32-2000 ms (line 2)",
    ),
    (
        "smart turn incomplete sooner than complete",
        "[conversation.smart_turn]\ncomplete_after_ms = 400\nincomplete_after_ms = 300",
        "conversation.smart_turn.incomplete_after_ms: 300 ms is below complete_after_ms (400 ms): an incomplete turn would end sooner (line 3)",
    ),
    (
        "smart turn incomplete past endpointing max",
        "[conversation]\nendpointing_max_ms = 600\n[conversation.smart_turn]\nincomplete_after_ms = 900",
        "conversation.smart_turn.incomplete_after_ms: 900 ms is above conversation.endpointing_max_ms (600 ms), which ends every turn (line 4)",
    ),
    // --- telephony ---
    (
        "telnyx needs a public url",
        "[telephony]\ncarrier = \"telnyx\"\n[telephony.telnyx]\nconnection_id = \"123\"",
        "telephony.public_url: \"\" is not a URL starting with http:// or https:// (line 1)",
    ),
    (
        "telnyx connection id",
        "[telephony]\ncarrier = \"telnyx\"\npublic_url = \"https://x.example\"",
        "telephony.telnyx.connection_id: is empty; copy the Call Control application id from the Telnyx portal (line 1)",
    ),
    (
        "telnyx key missing",
        "[telephony]\ncarrier = \"telnyx\"\npublic_url = \"https://x.example\"\n[telephony.telnyx]\nconnection_id = \"123\"\napi_key_env = \"MY_TELNYX_KEY\"",
        "telephony.telnyx.api_key_env: the environment variable MY_TELNYX_KEY is not set; Call Control needs the API key (line 6)",
    ),
    (
        "telnyx public key missing",
        "[telephony]\ncarrier = \"telnyx\"\npublic_url = \"https://x.example\"\n[telephony.telnyx]\nconnection_id = \"123\"\npublic_key_env = \"MY_TELNYX_PUBKEY\"",
        "telephony.telnyx.public_key_env: the environment variable MY_TELNYX_PUBKEY is not set; webhooks cannot be verified without the account's public key (line 6)",
    ),
    (
        "telnyx tolerance",
        "[telephony]\ncarrier = \"telnyx\"\npublic_url = \"https://x.example\"\n[telephony.telnyx]\nconnection_id = \"123\"\nwebhook_tolerance_s = 5",
        "telephony.telnyx.webhook_tolerance_s: 5 s is outside 30-3600 s (line 6)",
    ),
    (
        "twilio account sid",
        "[telephony]\ncarrier = \"twilio\"\npublic_url = \"https://x.example\"\n[telephony.twilio]\naccount_sid = \"123\"",
        "telephony.twilio.account_sid: \"123\" is not an account SID (\"AC\" and 32 hex digits) (line 5)",
    ),
    (
        "twilio account sid not hex",
        "[telephony]\ncarrier = \"twilio\"\npublic_url = \"https://x.example\"\n[telephony.twilio]\naccount_sid = \"AC0123456789abcdef0123456789abcdeg\"",
        "telephony.twilio.account_sid: \"AC0123456789abcdef0123456789abcdeg\" is not an account SID (\"AC\" and 32 hex digits) (line 5)",
    ),
    (
        "twilio account sid missing",
        "[telephony]\ncarrier = \"twilio\"\npublic_url = \"https://x.example\"",
        "telephony.twilio.account_sid: is empty; transfers and hang-ups go through Twilio's REST API, which needs the account SID (\"AC\" and 32 hex digits, from the Twilio console) (line 1)",
    ),
    (
        "twilio token missing",
        "[telephony]\ncarrier = \"twilio\"\npublic_url = \"https://x.example\"\n[telephony.twilio]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token_env = \"MY_TWILIO_TOKEN\"",
        "telephony.twilio.auth_token_env: the environment variable MY_TWILIO_TOKEN is not set; request signatures cannot be checked, nor transfers and hang-ups made, without the auth token (line 6)",
    ),
    (
        "carrier base url",
        "[telephony.telnyx]\napi_base_url = \"api.telnyx.com\"",
        "telephony.telnyx.api_base_url: \"api.telnyx.com\" is not a URL starting with http:// or https:// (line 2)",
    ),
    // --- providers ---
    (
        "stt websocket url",
        "[providers.stt]\nbase_url = \"https://api.deepgram.com/v1/listen\"",
        "providers.stt.base_url: \"https://api.deepgram.com/v1/listen\" is not a URL starting with ws:// or wss:// (line 2)",
    ),
    (
        "stt endpointing out of range",
        "[providers.stt]\nendpointing_ms = 0",
        "providers.stt.endpointing_ms: 0 ms is outside 10-5000 ms (line 2)",
    ),
    (
        "credentials in a url",
        "[providers.llm]\nbase_url = \"https://user:secret@llm.example\"",
        "providers.llm.base_url: contains credentials; secrets come only from the environment (name the variable in the matching `*_env` field) (line 2)",
    ),
    (
        "env name lowercase",
        "[providers.tts]\napi_key_env = \"elevenlabs key\"",
        "providers.tts.api_key_env: \"elevenlabs key\" is not an environment variable name like \"DEEPGRAM_API_KEY\" (line 2)",
    ),
    (
        "explicit engine without key",
        "[providers.stt]\nengine = \"deepgram\"",
        "providers.stt.api_key_env: the environment variable DEEPGRAM_API_KEY is not set; this engine needs its API key there (or use engine = \"auto\" to fall back to the local engine) (line 1)",
    ),
    (
        "openai-compatible needs a model",
        "[providers.llm]\nengine = \"openai-compatible\"\nmodel = \"\"\nbase_url = \"http://127.0.0.1:8000\"",
        "providers.llm.model: is empty; an OpenAI-compatible server needs a model id (line 3)",
    ),
    (
        "max tokens",
        "[providers.llm]\nmax_tokens = 0",
        "providers.llm.max_tokens: 0 is outside 1-8192 (line 2)",
    ),
    (
        "temperature",
        "[providers.llm]\ntemperature = 3.5",
        "providers.llm.temperature: 3.5 is outside 0-2 (line 2)",
    ),
    (
        "provider timeout",
        "[providers.tts]\nfirst_audio_timeout_ms = 10",
        "providers.tts.first_audio_timeout_ms: 10 ms is outside 100-30000 ms (line 2)",
    ),
    (
        "first token after request timeout",
        "[providers.llm]\nfirst_token_timeout_ms = 30000\nrequest_timeout_ms = 20000",
        "providers.llm.first_token_timeout_ms: 30000 ms exceeds request_timeout_ms (20000 ms) (line 2)",
    ),
    // --- tools ---
    (
        "unknown built-in tool",
        "[tools]\nenabled = [\"book_appointment\", \"teleport\"]",
        "tools.enabled[1]: \"teleport\" is not a built-in tool (known: business_info, check_availability, book_appointment, reschedule_appointment, cancel_appointment, lookup_order, open_ticket, schedule_callback, transfer_to_human, end_call) (line 2)",
    ),
    (
        "tool timeout",
        "[tools]\ndefault_timeout_ms = 99999",
        "tools.default_timeout_ms: 99999 ms is outside 100-60000 ms (line 2)",
    ),
    (
        "webhook tool name",
        "[[tools.webhook]]\nname = \"Loyalty Points\"\ndescription = \"d\"\nurl = \"https://x.example\"\nparameters = { type = \"object\" }",
        "tools.webhook[0].name: \"Loyalty Points\" is not a tool name (lowercase letters, digits and _, at most 64) (line 2)",
    ),
    (
        "webhook shadows built-in",
        "[[tools.webhook]]\nname = \"lookup_order\"\ndescription = \"d\"\nurl = \"https://x.example\"\nparameters = { type = \"object\" }",
        "tools.webhook[0].name: \"lookup_order\" is already a tool's name (line 2)",
    ),
    (
        "webhook description",
        "[[tools.webhook]]\nname = \"points\"\nurl = \"https://x.example\"\nparameters = { type = \"object\" }",
        "tools.webhook[0].description: is empty; the model decides when to call a tool from it (line 1)",
    ),
    (
        "webhook url",
        "[[tools.webhook]]\nname = \"points\"\ndescription = \"d\"\nurl = \"ftp://x.example\"\nparameters = { type = \"object\" }",
        "tools.webhook[0].url: \"ftp://x.example\" is not a URL starting with http:// or https:// (line 4)",
    ),
    (
        "webhook timeout",
        "[[tools.webhook]]\nname = \"points\"\ndescription = \"d\"\nurl = \"https://x.example\"\ntimeout_ms = 5\nparameters = { type = \"object\" }",
        "tools.webhook[0].timeout_ms: 5 ms is outside 100-60000 ms (line 5)",
    ),
    (
        "webhook secret env",
        "[[tools.webhook]]\nname = \"points\"\ndescription = \"d\"\nurl = \"https://x.example\"\nsecret_env = \"s3cr3t!\"\nparameters = { type = \"object\" }",
        "tools.webhook[0].secret_env: \"s3cr3t!\" is not an environment variable name like \"DEEPGRAM_API_KEY\" (line 5)",
    ),
    (
        "webhook secret not set",
        "[[tools.webhook]]\nname = \"points\"\ndescription = \"d\"\nurl = \"https://x.example\"\nsecret_env = \"POINTS_SECRET\"\nparameters = { type = \"object\" }",
        "tools.webhook[0].secret_env: the environment variable POINTS_SECRET is not set; requests to this tool are signed with it (leave secret_env empty to send them unsigned) (line 5)",
    ),
    (
        "webhook method",
        "[[tools.webhook]]\nname = \"points\"\ndescription = \"d\"\nurl = \"https://x.example\"\nmethod = \"FETCH\"\nparameters = { type = \"object\" }",
        "tools.webhook[0].method: \"FETCH\" is not one of POST, GET, PUT, PATCH, DELETE (line 5)",
    ),
    (
        "webhook signature header",
        "[[tools.webhook]]\nname = \"points\"\ndescription = \"d\"\nurl = \"https://x.example\"\nsignature_header = \"x sig\"\nparameters = { type = \"object\" }",
        "tools.webhook[0].signature_header: \"x sig\" is not a header name (letters, digits and -) (line 5)",
    ),
    (
        "schema that does not compile",
        "[[tools.webhook]]\nname = \"points\"\ndescription = \"d\"\nurl = \"https://x.example\"\n[tools.webhook.parameters]\ntype = \"object\"\nproperties.code = { type = \"string\", pattern = \"(\" }",
        "tools.webhook[0].parameters: is not a usable JSON Schema: SYNTAX",
    ),
    (
        "webhook without schema",
        "[[tools.webhook]]\nname = \"points\"\ndescription = \"d\"\nurl = \"https://x.example\"",
        "tools.webhook[0].parameters: is missing; describe the arguments as a JSON Schema table with type = \"object\" (line 1)",
    ),
    (
        "schema not an object",
        "[[tools.webhook]]\nname = \"points\"\ndescription = \"d\"\nurl = \"https://x.example\"\nparameters = { type = \"string\" }",
        "tools.webhook[0].parameters.type: must be \"object\" (tool arguments are a JSON object) (line 5)",
    ),
    (
        "schema property type",
        "[[tools.webhook]]\nname = \"points\"\ndescription = \"d\"\nurl = \"https://x.example\"\n[tools.webhook.parameters]\ntype = \"object\"\nproperties.phone = { type = \"text\" }",
        "tools.webhook[0].parameters.properties.phone.type: must be one of string, number, integer, boolean, object, array, null (line 7)",
    ),
    (
        "schema requires undeclared",
        "[[tools.webhook]]\nname = \"points\"\ndescription = \"d\"\nurl = \"https://x.example\"\n[tools.webhook.parameters]\ntype = \"object\"\nrequired = [\"phone\"]",
        "tools.webhook[0].parameters.required[0]: \"phone\" is not one of the properties (line 7)",
    ),
    (
        "schema required not a list",
        "[[tools.webhook]]\nname = \"points\"\ndescription = \"d\"\nurl = \"https://x.example\"\n[tools.webhook.parameters]\ntype = \"object\"\nrequired = \"phone\"",
        "tools.webhook[0].parameters.required: must be a list of property names (line 7)",
    ),
    // --- budgets ---
    (
        "budget zero",
        "[budgets]\nstt_final = { p95 = 0, p99 = 600 }",
        "budgets.stt_final.p95: must be above 0 ms (line 2)",
    ),
    (
        "p99 below p95",
        "[budgets]\nvoice_to_voice = { p95 = 1200, p99 = 900 }",
        "budgets.voice_to_voice.p99: 900 ms is below p95 (1200 ms); the 99th percentile cannot be faster (line 2)",
    ),
    (
        "budget over a minute",
        "[budgets]\ntool = { p95 = 800, p99 = 90000 }",
        "budgets.tool.p99: 90000 ms is over a minute (line 2)",
    ),
    // --- storage and server ---
    (
        "redis scheme",
        "[storage]\nredis_url = \"http://127.0.0.1:6379\"",
        "storage.redis_url: scheme \"http\" is not redis:// or rediss:// (line 2)",
    ),
    (
        "password in database url",
        "[storage]\npostgres_url = \"postgres://app:hunter2@db:5432/hermes\"",
        "storage.postgres_url: contains a password; put the whole URL in the environment and name the variable in storage.postgres_url_env (line 2)",
    ),
    (
        "storage env name",
        "[storage]\nredis_url_env = \"redis-url\"",
        "storage.redis_url_env: \"redis-url\" is not an environment variable name like \"DEEPGRAM_API_KEY\" (line 2)",
    ),
    (
        "data dir",
        "[storage]\ndata_dir = \"\"",
        "storage.data_dir: is empty; the embedded stores need a folder (line 2)",
    ),
    (
        "listen address",
        "[server]\nlisten = \"localhost\"",
        "server.listen: \"localhost\" is not an address and port like \"0.0.0.0:8080\" (line 2)",
    ),
    (
        "dashboard token env",
        "[server]\ndashboard_token_env = \"\"",
        "server.dashboard_token_env: \"\" is not an environment variable name like \"DEEPGRAM_API_KEY\" (line 2)",
    ),
    (
        "metrics token env",
        "[server]\nmetrics_token_env = \"metrics token\"",
        "server.metrics_token_env: \"metrics token\" is not an environment variable name like \"DEEPGRAM_API_KEY\" (line 2)",
    ),
    (
        "metrics listen address",
        "[server]\nmetrics_listen = \"9090\"",
        "server.metrics_listen: \"9090\" is not an address and port like \"127.0.0.1:9090\" (\"\" serves /metrics on server.listen) (line 2)",
    ),
    (
        "metrics on the public port",
        "[server]\nlisten = \"0.0.0.0:8080\"\nmetrics_listen = \"0.0.0.0:8080\"",
        "server.metrics_listen: 0.0.0.0:8080 is server.listen too; give /metrics its own port (line 3)",
    ),
    (
        "shutdown grace",
        "[server]\nshutdown_grace_s = 7200",
        "server.shutdown_grace_s: 7200 s is over an hour (line 2)",
    ),
    (
        "body limit",
        "[server]\nmax_body_kib = 0",
        "server.max_body_kib: 0 KiB is outside 1-65536 KiB (line 2)",
    ),
    (
        "call capacity",
        "[server]\nmax_concurrent_calls = 200000",
        "server.max_concurrent_calls: 200000 is over 100000 (0 = what the engines carry) (line 2)",
    ),
    // --- audio ---
    (
        "zero workers",
        "[audio]\nworkers = 0",
        "audio.workers: 0 workers cannot carry a call; leave it unset for all cores but one (line 2)",
    ),
    (
        "realtime priority",
        "[audio]\nrealtime_priority = 120",
        "audio.realtime_priority: 120 is outside SCHED_FIFO's 1-99 (line 2)",
    ),
    (
        "playout lead",
        "[audio]\nplayout_lead_ms = 5",
        "audio.playout_lead_ms: 5 ms must be at least one tick (20 ms) and at most 2000 ms (line 2)",
    ),
    (
        "vad hysteresis",
        "[audio.vad]\nstop_threshold = 0.7",
        "audio.vad.stop_threshold: 0.7 is above start_threshold 0.5; hysteresis needs stop <= start (line 2)",
    ),
];

fn no_env(_: &str) -> Option<String> {
    None
}

/// The carriers' default secret variables are set, so each carrier case shows only its fault.
fn carrier_env(name: &str) -> Option<String> {
    ["TELNYX_API_KEY", "TELNYX_PUBLIC_KEY", "TWILIO_AUTH_TOKEN"]
        .contains(&name)
        .then(|| "set".to_string())
}

#[test]
fn each_rule_reports_its_field_path_message_and_line() {
    let mut failures = Vec::new();
    for (rule, text, expected) in CASES {
        let got: Vec<String> = match parse(text, &carrier_env) {
            Ok(_) => vec![],
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        };
        let matches = if let Some(prefix) = expected.strip_suffix("SYNTAX") {
            got.len() == 1 && got[0].starts_with(prefix)
        } else {
            got.len() == 1 && got[0] == *expected
        };
        if !matches {
            failures.push(format!("{rule}:\n  expected {expected}\n  got      {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rules:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn syntax_errors_name_their_line() {
    let problems = parse("[business]\nname = \"X\"\nhours = {\n", &no_env).expect_err("syntax");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "(syntax)");
    assert!(problems[0].line.is_some_and(|l| l >= 3), "{:?}", problems[0]);
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let text = "[business]\nname = \"\"\ntimezone = \"Nowhere\"\nnmae = \"typo\"\n\n\
                [conversation]\nbarge_in_min_ms = \"soon\"\nmax_tool_steps = 0\n";
    let problems = parse(text, &no_env).expect_err("four faults");
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "business.name",
            "business.timezone",
            "business.nmae",
            "conversation.barge_in_min_ms",
            "conversation.max_tool_steps"
        ]
    );
}

#[test]
fn a_key_that_fails_to_decode_is_not_reported_again_by_its_value_check() {
    let problems = parse(
        "[business]\nname = \"X\"\n[[business.services]]\nid = \"cut\"\nduration_minutes = \"45\"",
        &no_env,
    )
    .expect_err("bad type");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "business.services[0].duration_minutes");
}

#[test]
fn an_empty_file_is_the_demo_business_and_valid() {
    let config = parse("", &no_env).expect("defaults are valid");
    assert_eq!(config, HermesConfig::default());
    assert_eq!(config.business.name, "Maple Street Hair");
}

#[test]
fn a_business_section_starts_from_empty_content_not_the_demo() {
    let config = parse("[business]\nname = \"Corner Bakery\"", &no_env).expect("valid");
    assert!(config.business.services.is_empty() && config.business.staff.is_empty());
    assert_eq!(config.business.timezone, "America/New_York", "non-content fields keep defaults");
}

#[test]
fn cloud_engines_are_chosen_by_auto_only_when_their_key_is_set() {
    let config = parse("", &no_env).expect("valid");
    assert!(!config.providers.stt.uses_cloud(&no_env), "no key: local speech-to-text");
    let keys: HashMap<&str, &str> = [("DEEPGRAM_API_KEY", "k"), ("ANTHROPIC_API_KEY", "k")].into();
    let env = |name: &str| keys.get(name).map(|v| v.to_string());
    assert!(config.providers.stt.uses_cloud(&env));
    assert!(config.providers.llm.uses_cloud(&env));
    assert!(!config.providers.tts.uses_cloud(&env), "no ElevenLabs key: local TTS");
    let explicit = parse("[providers.stt]\nengine = \"deepgram\"", &env).expect("key present");
    assert!(explicit.providers.stt.uses_cloud(&env));
    // A self-hosted OpenAI-compatible server is a remote model that needs no key.
    let self_hosted = parse(
        "[providers.llm]\nengine = \"openai-compatible\"\nmodel = \"qwen\"\nbase_url = \"http://127.0.0.1:8000\"",
        &no_env,
    )
    .expect("no key needed");
    assert!(self_hosted.providers.llm.uses_cloud(&no_env), "not the local rule-based agent");
}

#[test]
fn the_vad_reports_short_pauses_only_for_an_end_of_turn_model_that_is_on() {
    let on = parse("[conversation.smart_turn]\nenabled = true", &no_env).expect("valid");
    assert!(
        !parse("", &no_env).expect("defaults").conversation.smart_turn.enabled,
        "off by default"
    );
    assert_eq!(on.vad_pause(true).0, 128, "judged: smart_turn.pause_ms");
    assert_eq!(on.vad_pause(false).0, 320, "no model: audio.vad.min_silence_ms");
    let window = parse("[audio.vad]\nmin_silence_ms = 100", &no_env).expect("valid");
    assert_eq!(window.vad_pause(true).0, 100, "never longer than the VAD's own window");
    let off = parse("[conversation.smart_turn]\nenabled = false", &no_env).expect("valid");
    assert!(!off.conversation.smart_turn.enabled);
}

#[test]
fn the_demo_example_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hair-salon/hermes.toml");
    let text = std::fs::read_to_string(path).expect("examples/hair-salon/hermes.toml");
    let config = parse(&text, &no_env).unwrap_or_else(|problems| {
        panic!("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
    });
    assert_eq!(config.business.staff.len(), 2);
    assert_eq!(config.tools.webhook.len(), 1);
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn environment_overrides_win_over_the_file() {
    let overrides = env_overrides(vars(&[
        ("HERMES__SERVER__LISTEN", "0.0.0.0:9000"),
        ("HERMES__AUDIO__WORKERS", "3"),
        ("HERMES__PERSONA__LANGUAGES", "[\"de-DE\", \"en-US\"]"),
        ("HERMES_MODELS_DIR", "/not/an/override"),
    ]));
    assert_eq!(overrides.len(), 3, "only HERMES__ variables override: {overrides:?}");
    let (config, problems) =
        parse_with_overrides("[server]\nlisten = \"127.0.0.1:8080\"", &no_env, &overrides);
    assert!(problems.is_empty(), "{problems:?}");
    let config = config.expect("valid");
    assert_eq!(config.server.listen, "0.0.0.0:9000");
    assert_eq!(config.audio.workers, Some(3));
    assert_eq!(config.persona.languages, ["de-DE", "en-US"]);
}

#[test]
fn a_bad_override_is_reported_against_its_variable_not_a_line() {
    let overrides = env_overrides(vars(&[("HERMES__CONVERSATION__MAX_TOOL_STEPS", "99")]));
    let (_, problems) =
        parse_with_overrides("[conversation]\nmax_tool_steps = 4", &no_env, &overrides);
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "conversation.max_tool_steps: 99 is outside 1-16 (set by HERMES__CONVERSATION__MAX_TOOL_STEPS)"
        ]
    );
}

#[test]
fn an_all_digit_override_of_a_text_field_is_taken_as_text() {
    let overrides = env_overrides(vars(&[
        ("HERMES__TELEPHONY__TELNYX__CONNECTION_ID", "1234567890"),
        ("HERMES__AUDIO__WORKERS", "3"),
    ]));
    let (config, problems) = parse_with_overrides(
        "[telephony]\ncarrier = \"telnyx\"\npublic_url = \"https://x.example\"",
        &no_env,
        &overrides,
    );
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(!shown.iter().any(|p| p.contains("connection_id")), "{shown:?}");
    let config = config.expect("decodes");
    assert_eq!(config.telephony.telnyx.connection_id, "1234567890");
    assert_eq!(config.audio.workers, Some(3), "a number where a number is wanted");
}

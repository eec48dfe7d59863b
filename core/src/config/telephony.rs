//! `[telephony]`: which carrier delivers calls, and how to reach and verify it.

use serde::{Deserialize, Serialize};

use super::Env;
use super::problems::Problems;
use super::validate::{check_env_name, check_url};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Carrier {
    /// No carrier: calls come from the simulator and the demo only.
    None,
    Telnyx,
    Twilio,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Telephony {
    pub carrier: Carrier,
    /// The public `https://` address the carrier reaches this server at; webhook and media
    /// stream URLs are built from it.
    pub public_url: String,
    pub telnyx: Telnyx,
    pub twilio: Twilio,
}

impl Default for Telephony {
    fn default() -> Self {
        Telephony {
            carrier: Carrier::None,
            public_url: String::new(),
            telnyx: Telnyx::default(),
            twilio: Twilio::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Telnyx {
    /// Call Control application (connection) id.
    pub connection_id: String,
    pub api_base_url: String,
    pub api_key_env: String,
    /// The account's Ed25519 public key (base64) that signs webhooks.
    pub public_key_env: String,
    /// The variable holding the secret every answered call's own media-stream token derives
    /// from (Telnyx and Twilio streams alike; the same on every node of a fleet). Unset: the
    /// carrier's API secret serves (which every node has already).
    pub stream_token_env: String,
    /// Webhooks older or newer than this are refused.
    pub webhook_tolerance_s: u64,
}

impl Default for Telnyx {
    fn default() -> Self {
        Telnyx {
            connection_id: String::new(),
            api_base_url: "https://api.telnyx.com/v2".into(),
            api_key_env: "TELNYX_API_KEY".into(),
            public_key_env: "TELNYX_PUBLIC_KEY".into(),
            stream_token_env: "HERMES_STREAM_TOKEN".into(),
            webhook_tolerance_s: 300,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Twilio {
    /// `AC` and 32 hex digits. With the auth token, it signs Hermes in to Twilio's REST API,
    /// which carries out transfers and hang-ups: required when Twilio is the carrier.
    pub account_sid: String,
    pub api_base_url: String,
    /// The auth token signs `X-Twilio-Signature` and, with the account SID, Hermes's REST
    /// requests.
    pub auth_token_env: String,
}

impl Default for Twilio {
    fn default() -> Self {
        Twilio {
            account_sid: String::new(),
            api_base_url: "https://api.twilio.com".into(),
            auth_token_env: "TWILIO_AUTH_TOKEN".into(),
        }
    }
}

impl Telephony {
    pub(super) fn check(&self, p: &mut Problems, env: Env<'_>) {
        let require_env = |p: &mut Problems, path: &str, name: &str, why: &str| {
            check_env_name(p, path, name);
            if env(name).is_none_or(|v| v.is_empty()) {
                p.push(path, format!("the environment variable {name} is not set; {why}"));
            }
        };
        check_url(p, "telephony.telnyx.api_base_url", &self.telnyx.api_base_url, false);
        check_url(p, "telephony.twilio.api_base_url", &self.twilio.api_base_url, false);
        if self.carrier == Carrier::None {
            return;
        }
        check_url(p, "telephony.public_url", &self.public_url, false);
        match self.carrier {
            Carrier::None => {}
            Carrier::Telnyx => {
                let t = &self.telnyx;
                if t.connection_id.trim().is_empty() {
                    p.push(
                        "telephony.telnyx.connection_id",
                        "is empty; copy the Call Control application id from the Telnyx portal",
                    );
                }
                require_env(
                    p,
                    "telephony.telnyx.api_key_env",
                    &t.api_key_env,
                    "Call Control needs the API key",
                );
                require_env(
                    p,
                    "telephony.telnyx.public_key_env",
                    &t.public_key_env,
                    "webhooks cannot be verified without the account's public key",
                );
                if !(30..=3600).contains(&t.webhook_tolerance_s) {
                    p.push(
                        "telephony.telnyx.webhook_tolerance_s",
                        format!("{} s is outside 30-3600 s", t.webhook_tolerance_s),
                    );
                }
            }
            Carrier::Twilio => {
                let t = &self.twilio;
                if t.account_sid.trim().is_empty() {
                    p.push(
                        "telephony.twilio.account_sid",
                        "is empty; transfers and hang-ups go through Twilio's REST API, which \
                         needs the account SID (\"AC\" and 32 hex digits, from the Twilio console)",
                    );
                } else if !is_account_sid(&t.account_sid) {
                    p.push(
                        "telephony.twilio.account_sid",
                        format!(
                            "{:?} is not an account SID (\"AC\" and 32 hex digits)",
                            t.account_sid
                        ),
                    );
                }
                require_env(
                    p,
                    "telephony.twilio.auth_token_env",
                    &t.auth_token_env,
                    "request signatures cannot be checked, nor transfers and hang-ups made, \
                     without the auth token",
                );
            }
        }
    }
}

/// `AC` and 32 hex digits, as Twilio's account SIDs are.
fn is_account_sid(sid: &str) -> bool {
    sid.len() == 34 && sid.starts_with("AC") && sid.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
}

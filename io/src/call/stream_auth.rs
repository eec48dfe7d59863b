//! Media streams bound to the calls Hermes answered. Each call's stream token is an HMAC of
//! its call id under the node's stream secret, and Hermes hands it to the carrier only when it
//! answers a verified webhook: Telnyx gets it as the answer's `stream_auth_token`, Twilio as a
//! `<Parameter>` of the TwiML. A stream whose opening does not carry the token of the call it
//! names is refused before the call costs anything: without the secret nobody can start a call,
//! claim a caller's number, or attach to a live call by its id — and a reconnect of the same
//! call carries the same token. Nothing is stored: every node of a fleet that shares the secret
//! checks every stream.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The name the token travels under where the carrier passes custom parameters (Twilio's
/// `start.customParameters`).
pub const TOKEN_PARAMETER: &str = "hermes_token";

/// What per-call stream tokens are derived from.
#[derive(Clone)]
pub struct StreamSecret {
    key: Vec<u8>,
}

impl fmt::Debug for StreamSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamSecret(<redacted>)")
    }
}

impl StreamSecret {
    /// A secret from configured text (`telephony.telnyx.stream_token_env`, or the carrier's
    /// own API secret): the label keeps tokens apart from any other use of the same text.
    pub fn derived_from(secret: &str) -> Self {
        StreamSecret { key: mac(secret.as_bytes(), b"hermes media stream secret v1").to_vec() }
    }

    /// A fresh random secret for this process (a single node with nothing configured).
    pub fn random() -> std::io::Result<Self> {
        use std::io::Read;
        let mut key = vec![0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        Ok(StreamSecret { key })
    }

    /// The token the stream of call `call_id` must carry.
    pub fn token_for(&self, call_id: &str) -> String {
        hex::encode(mac(&self.key, call_id.as_bytes()))
    }

    /// Whether `token` is call `call_id`'s, compared in constant time.
    pub fn accepts(&self, call_id: &str, token: &str) -> bool {
        let Ok(given) = hex::decode(token.trim()) else { return false };
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        m.update(call_id.as_bytes());
        m.verify_slice(&given).is_ok()
    }
}

fn mac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    m.update(message);
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_only_its_own_call() {
        let secret = StreamSecret::derived_from("configured");
        let token = secret.token_for("v3:call-1");
        assert!(secret.accepts("v3:call-1", &token));
        assert!(!secret.accepts("v3:call-2", &token), "another call's id");
        assert!(!secret.accepts("v3:call-1", &token[..token.len() - 2]), "cut short");
        assert!(!secret.accepts("v3:call-1", "not hex"));
        assert!(!secret.accepts("v3:call-1", ""));
        let other = StreamSecret::derived_from("another node's");
        assert!(!other.accepts("v3:call-1", &token), "a different secret");
        assert_eq!(StreamSecret::derived_from("configured").token_for("v3:call-1"), token);
        let random = StreamSecret::random().expect("urandom");
        assert!(!random.accepts("v3:call-1", &token));
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let secret = StreamSecret::derived_from("hunter2");
        assert_eq!(format!("{secret:?}"), "StreamSecret(<redacted>)");
    }
}

//! What a simulated caller presents so the Hermes it calls lets its stream in, as a carrier
//! would: the call's own stream token (derived from the stream secret, as `hermes serve`
//! derives it) and, for Twilio, the signature of the upgrade request. The in-process Hermes
//! checks streams the same way, with a secret of its own, so every simulated call goes
//! through the real check.

use std::fmt;
use std::sync::Arc;

use hermes_io::carriers::stream_auth::StreamSecret;
use hermes_io::carriers::twilio::signature;
use hermes_io::fakes::caller::CallerScript;

/// Credentials for streams into one Hermes.
#[derive(Clone)]
pub struct StreamPass {
    secret: Arc<StreamSecret>,
    /// Twilio's auth token and the media URL as Twilio would dial it (signed over).
    twilio: Option<(String, String)>,
}

impl fmt::Debug for StreamPass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamPass")
            .field("twilio_media_url", &self.twilio.as_ref().map(|(_, url)| url))
            .finish_non_exhaustive()
    }
}

impl StreamPass {
    pub fn new(secret: Arc<StreamSecret>) -> Self {
        StreamPass { secret, twilio: None }
    }

    /// Also signs each upgrade as Twilio does: with `auth_token`, over `media_url`
    /// (`wss://public-host/twilio/media`).
    pub fn signing_for_twilio(mut self, auth_token: String, media_url: String) -> Self {
        self.twilio = Some((auth_token, media_url));
        self
    }

    /// Gives `script` its call's token (and signature).
    pub fn fill(&self, script: &mut CallerScript) {
        script.auth_token = Some(self.secret.token_for(&script.call_id));
        script.twilio_signature =
            self.twilio.as_ref().map(|(token, url)| signature::sign(token, url, &[]));
    }
}

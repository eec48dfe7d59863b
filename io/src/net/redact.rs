//! Printing what may hold a credential. Keys, tokens and secrets are never printed at all
//! (their types' `Debug` says `<redacted>`); a URL is printed without what could be one: the
//! password of its user-info (`https://user:…@host`) and the values of its query parameters
//! (`?key=…`), since providers and webhooks put keys in both.

use std::borrow::Cow;

/// How an optional secret shows in `Debug`: whether there is one, never what (nor its length).
pub fn secret<T>(value: &Option<T>) -> &'static str {
    if value.is_some() { "Some(<redacted>)" } else { "None" }
}

/// How an optional phone number shows in `Debug`: masked like [`crate::records::PhoneNumber`].
pub fn number(value: Option<&str>) -> Option<String> {
    value.map(|n| crate::records::PhoneNumber::new(n).masked())
}

/// `url` as it may be printed: any user-info password and every query value replaced.
pub fn url(url: &str) -> Cow<'_, str> {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = match before_query.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, before_query),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let user_info = authority.rsplit_once('@');
    let has_password = user_info.is_some_and(|(info, _)| info.contains(':'));
    if !has_password && query.is_none() {
        return Cow::Borrowed(url);
    }
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    match user_info {
        Some((info, host)) => {
            let user = info.split(':').next().unwrap_or("");
            out.push_str(user);
            if has_password {
                out.push_str(":<redacted>");
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}=<redacted>"),
                None => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;
    use std::time::Duration;

    use super::url;
    use crate::call::MediaSettings;
    use crate::call::stream_auth::StreamSecret;
    use crate::call::transport::{Received, StreamStart};
    use crate::carriers::InboundFrame;
    use crate::carriers::telnyx::control::{CallControl, StreamTarget};
    use crate::carriers::twilio::rest::TwilioRest;
    use crate::net::http::HttpClient;
    use crate::net::retry::RetryPolicy;
    use crate::observe::dashboard::Credentials;
    use crate::providers::llm::{LlmClient, Protocol, RemoteSettings};
    use crate::providers::stt::DeepgramSettings;
    use crate::providers::tts::ElevenLabsSettings;

    /// What each secret is set to; no `Debug` output may contain it, whole or in part.
    const SECRET: &str = "sk-SECRET-7f3a9";
    const NUMBER: &str = "+15555550123";

    fn assert_hidden(what: &str, debug: String) {
        assert!(!debug.contains("SECRET"), "{what} prints a secret: {debug}");
        assert!(!debug.contains("5555550"), "{what} prints a phone number: {debug}");
    }

    #[test]
    fn no_secret_shows_in_any_debug_output() {
        let http = HttpClient::new(Duration::from_secs(1)).expect("client");
        let retry = RetryPolicy {
            attempts: 1,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        };
        let remote = RemoteSettings {
            protocol: Protocol::Anthropic,
            base_url: format!("https://proxy:{SECRET}@llm.example.com?key={SECRET}"),
            api_key: SECRET.into(),
            model: "m".into(),
            fallback_model: String::new(),
            max_tokens: 10,
            temperature: None,
            stall_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            retry,
        };
        assert_hidden("RemoteSettings", format!("{remote:?}"));
        for protocol in [Protocol::Anthropic, Protocol::OpenAi] {
            let client =
                LlmClient::remote(http.clone(), RemoteSettings { protocol, ..remote.clone() });
            assert_hidden("llm::Remote", format!("{client:?}"));
        }
        let deepgram = DeepgramSettings::new("wss://api.deepgram.com/v1/listen", SECRET, "m", "en");
        assert_hidden("DeepgramSettings", format!("{deepgram:?}"));
        let voice = ElevenLabsSettings {
            base_url: "wss://api.elevenlabs.io".into(),
            api_key: SECRET.into(),
            voice_id: "v".into(),
            model_id: "m".into(),
            connect_timeout: Duration::from_secs(1),
            speed: 1.0,
        };
        assert_hidden("ElevenLabsSettings", format!("{voice:?}"));
        let secret = Arc::new(StreamSecret::derived_from(SECRET));
        let token = secret.token_for("call-1");
        let media = MediaSettings {
            stream_secret: Some(secret.clone()),
            auth_token: Some(SECRET.into()),
            ..MediaSettings::default()
        };
        assert_hidden("MediaSettings", format!("{media:?}"));
        let target = StreamTarget {
            url: "wss://hermes.example.com/telnyx/media".into(),
            auth_token: Some(SECRET.into()),
            secret: Some(secret),
        };
        assert_hidden("StreamTarget", format!("{target:?}"));
        let start = || StreamStart {
            stream_id: "s".into(),
            call_control_id: "call-1".into(),
            codec: hermes_core::codec::G711::Mulaw,
            sample_rate: 8000,
            from: Some(NUMBER.into()),
            to: Some(NUMBER.into()),
            client_state: None,
            auth_token: Some(Cow::Borrowed(SECRET)),
        };
        assert_hidden("StreamStart", format!("{:?}", start()));
        let frame = InboundFrame::Connected { version: None, auth_token: Some(SECRET.into()) };
        assert_hidden("InboundFrame::Connected", format!("{frame:?}"));
        assert_hidden("InboundFrame::Start", format!("{:?}", InboundFrame::Start(start())));
        let received = Received::Connected { auth_token: Some(token.as_str().into()) };
        let debug = format!("{received:?}");
        assert!(!debug.contains(&token), "Received::Connected prints the stream token: {debug}");
        let credentials = Credentials {
            authorization: Some("Bearer sk-SECRET-7f3a9"),
            cookies: &["hermes_session=sk-SECRET-7f3a9"],
            query: Some("token=sk-SECRET-7f3a9"),
        };
        assert_hidden("Credentials", format!("{credentials:?}"));
        let control = CallControl::new(http.clone(), "https://api.telnyx.com/v2", SECRET, retry);
        assert_hidden("CallControl", format!("{control:?}"));
        let twilio = TwilioRest::new(http, "https://api.twilio.com", "AC123", SECRET, retry)
            .expect("a valid account SID");
        assert_hidden("TwilioRest", format!("{twilio:?}"));
        let store = crate::store::PgStore::connect(
            &format!("postgres://hermes:{SECRET}@127.0.0.1:1/db"),
            None,
        )
        .expect("connects lazily");
        assert_hidden("PgStore", format!("{store:?}"));
    }

    #[cfg(feature = "fakes")]
    #[test]
    fn the_fakes_callers_print_no_stream_token() {
        let script = crate::fakes::carrier::StreamScript {
            call_control_id: "c".into(),
            stream_id: "s".into(),
            auth_token: Some(SECRET.into()),
            caller_audio: vec![0xFF; 160],
            linger: Duration::ZERO,
        };
        assert_hidden("StreamScript", format!("{script:?}"));
    }

    #[test]
    fn a_url_prints_without_its_password_or_query_values() {
        assert_eq!(url("https://api.anthropic.com"), "https://api.anthropic.com");
        assert_eq!(
            url("postgres://hermes:s3cret@db:5432/hermes?sslmode=require"),
            "postgres://hermes:<redacted>@db:5432/hermes?sslmode=<redacted>"
        );
        assert_eq!(
            url("https://hooks.example.com/x?token=abc&flag"),
            "https://hooks.example.com/x?token=<redacted>&flag"
        );
        assert_eq!(url("redis://:pw@localhost"), "redis://:<redacted>@localhost");
        assert_eq!(url("https://user@host/p"), "https://user@host/p");
    }
}

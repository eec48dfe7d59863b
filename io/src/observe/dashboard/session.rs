//! Who may see the dashboard and use the browser phone: the holder of the token from
//! `server.dashboard_token_env`, presented as `Authorization: Bearer …` (API clients), as the
//! session cookie, or as `?token=…` in the URL.
//!
//! A URL is written down everywhere — browser history, proxy and server logs, the `Referer`
//! of the next request — so the token is taken from one only once: the page's route answers
//! a URL token with a redirect to itself without it, and a cookie the browser keeps out of
//! the page's script and off other sites' requests. The cookie is not the token but an HMAC
//! of a fixed label under it: a leaked cookie does not reveal the token, and a new token
//! voids every cookie made from the old one.

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use hyper::StatusCode;
use sha2::Sha256;

use super::{Dashboard, Reply};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hermes_session";

/// What the session cookie derives from the token under, so it means nothing elsewhere.
const SESSION_LABEL: &[u8] = b"hermes dashboard session v1";

/// The credentials a request carries, as its headers and URL hold them. `Debug` shows which
/// are there, never what they say.
#[derive(Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// Every `Cookie` header (a client may split its cookies over several).
    pub cookies: &'a [&'a str],
    /// The URL's query string.
    pub query: Option<&'a str>,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("authorization", &crate::net::redact::secret(&self.authorization))
            .field("cookies", &self.cookies.len())
            .field(
                "query",
                &self.query.map(|q| crate::net::redact::url(&format!("?{q}")).into_owned()),
            )
            .finish()
    }
}

/// Why a request was not let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No token is configured: the dashboard and the phone are off.
    Off,
    /// The request offered nothing: not a guess, so not counted against the client.
    NoCredentials,
    /// It offered a token or cookie, and none was right: a failed attempt.
    Wrong,
}

impl Refusal {
    /// The answer to give.
    pub fn reply(self) -> Reply {
        let (status, body) = match self {
            Refusal::Off => (
                StatusCode::NOT_FOUND,
                "the dashboard and the browser phone are off: set the variable named by \
                 server.dashboard_token_env\n",
            ),
            Refusal::NoCredentials | Refusal::Wrong => (
                StatusCode::UNAUTHORIZED,
                "a valid dashboard token is needed: open the URL `hermes serve` printed \
                 (?token=…) once, or send Authorization: Bearer\n",
            ),
        };
        (status, "text/plain; charset=utf-8", Bytes::from_static(body.as_bytes()))
    }
}

/// The dashboard, when `credentials` hold its token or session cookie.
pub fn authorize<'d>(
    dashboard: Option<&'d Dashboard>,
    credentials: &Credentials<'_>,
) -> Result<&'d Dashboard, Refusal> {
    let Some(d) = dashboard else { return Err(Refusal::Off) };
    let bearer = credentials
        .authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let in_url = url_token(credentials.query);
    let cookies: Vec<&str> = credentials.cookies.iter().flat_map(|h| session_cookies(h)).collect();
    if bearer.is_none() && in_url.is_none() && cookies.is_empty() {
        return Err(Refusal::NoCredentials);
    }
    if d.token.is_empty() {
        return Err(Refusal::Wrong);
    }
    let token_ok = |t: &str| same_secret(t.as_bytes(), d.token.as_bytes());
    let session = session_value(&d.token);
    // Every credential is checked, so the time taken does not say which one was right.
    let granted = [bearer.is_some_and(token_ok), in_url.as_deref().is_some_and(token_ok)]
        .into_iter()
        .chain(cookies.iter().map(|c| same_secret(c.as_bytes(), session.as_bytes())))
        .fold(false, |any, ok| any | ok);
    if granted { Ok(d) } else { Err(Refusal::Wrong) }
}

/// The `token` in a query string, decoded (an empty one is no token).
fn url_token(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, v)| k == "token" && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

/// Whether a query string carries a `token` parameter, even an empty one.
pub fn has_url_token(query: Option<&str>) -> bool {
    query.is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "token"))
}

/// The query string with every `token` pair removed and the others kept as they were sent;
/// empty when nothing else was there.
pub fn query_without_token(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            !form_urlencoded::parse(key.as_bytes()).any(|(k, _)| k == "token")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The values of the session cookies in one `Cookie` header.
fn session_cookies(header: &str) -> impl Iterator<Item = &str> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == SESSION_COOKIE).then(|| value.trim_matches('"'))
    })
}

/// The session cookie's value for `token`: HMAC-SHA256 of a fixed label under it, in hex.
pub fn session_value(token: &str) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(token.as_bytes())
        .expect("HMAC takes a key of any length");
    m.update(SESSION_LABEL);
    hex::encode(m.finalize().into_bytes())
}

/// The `Set-Cookie` header that signs a browser in with `token`. HttpOnly keeps it from the
/// page's script, SameSite=Strict off requests other sites start, and `secure` (when the
/// browser reached us over https) off plain-text connections.
pub fn set_session_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{secure}", session_value(token))
}

/// Compares without stopping at the first difference, nor at a difference in length, so the
/// time taken tells an attacker neither how much of a guess was right nor how long the
/// secret is (beyond its being longer than the guess).
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hermes_core::config::Budgets;

    use super::*;
    use crate::observe::calls::CallCounters;
    use crate::observe::latency::LatencyBook;
    use crate::observe::recent::RecentCalls;

    fn dashboard(token: &str) -> Dashboard {
        Dashboard {
            token: token.into(),
            latency: Arc::new(LatencyBook::new(Budgets::default())),
            recent: Arc::new(RecentCalls::default()),
            counters: Arc::new(CallCounters::default()),
        }
    }

    fn check(
        d: &Dashboard,
        authorization: Option<&str>,
        cookie: Option<&str>,
        query: Option<&str>,
    ) -> Result<(), Refusal> {
        let cookies: Vec<&str> = cookie.into_iter().collect();
        authorize(Some(d), &Credentials { authorization, cookies: &cookies, query }).map(|_| ())
    }

    #[test]
    fn the_token_opens_in_the_header_the_url_or_as_its_session_cookie() {
        let d = dashboard("s3cret");
        let cookie = format!("theme=dark; {SESSION_COOKIE}={}", session_value("s3cret"));
        assert_eq!(check(&d, Some("Bearer s3cret"), None, None), Ok(()));
        assert_eq!(check(&d, None, None, Some("call=1&token=s3cret")), Ok(()));
        assert_eq!(check(&d, None, Some(&cookie), None), Ok(()));
        // A stale cookie next to the right token: the token lets it in.
        let stale = format!("{SESSION_COOKIE}={}", session_value("old"));
        assert_eq!(check(&d, None, Some(&stale), Some("token=s3cret")), Ok(()));
    }

    #[test]
    fn a_guess_is_a_failure_and_no_credentials_at_all_is_not() {
        let d = dashboard("s3cret");
        assert_eq!(check(&d, None, None, None), Err(Refusal::NoCredentials));
        assert_eq!(
            check(&d, None, Some("theme=dark"), Some("call=1")),
            Err(Refusal::NoCredentials)
        );
        assert_eq!(check(&d, Some("Bearer s3cre"), None, None), Err(Refusal::Wrong));
        assert_eq!(check(&d, None, None, Some("token=wrong")), Err(Refusal::Wrong));
        // The raw token is not a session cookie, nor is a cookie made from another token.
        assert_eq!(check(&d, None, Some("hermes_session=s3cret"), None), Err(Refusal::Wrong));
        let other = format!("{SESSION_COOKIE}={}", session_value("rotated"));
        assert_eq!(check(&d, None, Some(&other), None), Err(Refusal::Wrong));
        assert_eq!(authorize(None, &Credentials::default()).map(|_| ()), Err(Refusal::Off));
    }

    #[test]
    fn the_cookie_does_not_show_the_token_and_keeps_out_of_scripts_and_other_sites() {
        let cookie = set_session_cookie("s3cret", false);
        assert!(!cookie.contains("s3cret"), "{cookie}");
        assert_eq!(
            cookie,
            format!(
                "hermes_session={}; HttpOnly; SameSite=Strict; Path=/",
                session_value("s3cret")
            )
        );
        assert_eq!(session_value("s3cret").len(), 64);
        assert!(set_session_cookie("s3cret", true).ends_with("; Secure"));
    }

    #[test]
    fn the_redirect_keeps_every_parameter_but_the_token() {
        assert_eq!(query_without_token("token=abc&call=web-1&autocall=1"), "call=web-1&autocall=1");
        assert_eq!(query_without_token("call=a%26b&token=abc"), "call=a%26b");
        assert_eq!(query_without_token("token=abc"), "");
        assert_eq!(query_without_token("%74oken=abc&tokens=2&token"), "tokens=2");
        assert!(has_url_token(Some("a=1&token=x")));
        assert!(!has_url_token(Some("tokens=x")) && !has_url_token(None));
    }
}

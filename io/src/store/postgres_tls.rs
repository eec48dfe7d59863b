//! TLS to Postgres as the URL asks, with rustls (ring), the way libpq reads the same URL:
//!
//! | `sslmode`     | TLS                                   | the server's certificate            |
//! |---------------|---------------------------------------|-------------------------------------|
//! | `disable`     | never                                 | —                                   |
//! | `prefer` (default) | when the server offers it         | not checked                         |
//! | `require`     | always                                | not checked; with `sslrootcert`, as `verify-ca` (libpq does the same) |
//! | `verify-ca`   | always                                | chains to `sslrootcert`             |
//! | `verify-full` | always                                | chains to `sslrootcert` and names the host |
//!
//! `sslrootcert` is a PEM file of trusted certificates, or `system` for this machine's roots
//! (the default for the verifying modes when it is not given). tokio-postgres knows neither the
//! verifying modes nor `sslrootcert`, so both are taken out of the URL here and the rest is
//! handed on. `prefer` and `require` without a root encrypt against eavesdroppers but not
//! against someone in the middle: use `verify-full` across any network you do not own.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// How much TLS the URL asks for (its `sslmode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            // libpq's `allow` tries without TLS first; tokio-postgres cannot, and `prefer` is
            // never less safe.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// What tokio-postgres negotiates on the wire.
    fn wire(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

/// Where trusted roots come from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Roots {
    System,
    File(PathBuf),
}

/// The URL's TLS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TlsSettings {
    pub mode: SslMode,
    roots: Option<Roots>,
}

/// `url` without `sslmode` and `sslrootcert`, and what they said. Errors name the option, never
/// the URL (it may hold credentials).
pub(super) fn split_url(url: &str) -> Result<(String, TlsSettings), String> {
    let mut settings = TlsSettings { mode: SslMode::default(), roots: None };
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), settings)) };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value: String = form_urlencoded::parse(format!("v={value}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        match key {
            "sslmode" => {
                settings.mode = SslMode::parse(&value).ok_or_else(|| {
                    format!(
                        "sslmode={value:?} is not one of disable, prefer, require, verify-ca, \
                         verify-full"
                    )
                })?;
            }
            "sslrootcert" => {
                settings.roots = Some(match value.as_str() {
                    "system" => Roots::System,
                    "" => return Err("sslrootcert is empty".into()),
                    path => Roots::File(PathBuf::from(path)),
                });
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((url, settings))
}

impl TlsSettings {
    pub fn wire(&self) -> tokio_postgres::config::SslMode {
        self.mode.wire()
    }

    /// The connector these settings make; `sslrootcert` is read now, so a missing or
    /// unreadable file stops the start with its name.
    pub fn connector(&self) -> Result<RustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mode = match (self.mode, &self.roots) {
            (SslMode::Require, Some(_)) => SslMode::VerifyCa,
            (mode, _) => mode,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => {
                Arc::new(Unchecked(Arc::clone(&provider)))
            }
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = Arc::new(self.roots()?);
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                        .build()
                        .map_err(|e| format!("sslrootcert: {e}"))?;
                Arc::new(Chain { webpki, check_name: mode == SslMode::VerifyFull })
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(RustlsConnect(Arc::new(config)))
    }

    fn roots(&self) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        match self.roots.as_ref().unwrap_or(&Roots::System) {
            Roots::System => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
            Roots::File(path) => {
                let shown = path.display();
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
                for cert in certs {
                    let cert = cert.map_err(|e| format!("sslrootcert {shown}: {e}"))?;
                    roots.add(cert).map_err(|e| format!("sslrootcert {shown}: {e}"))?;
                }
            }
        }
        if roots.is_empty() {
            return Err("sslrootcert: no trusted certificates found".into());
        }
        Ok(roots)
    }
}

/// `prefer` and `require`: any certificate, but the handshake's signatures are still checked
/// (the session is encrypted to whoever holds that certificate's key).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca` and `verify-full`: the chain to a trusted root; the host name only for
/// `verify-full`.
#[derive(Debug)]
struct Chain {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Chain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            // The chain held (names are checked last); verify-ca does not ask for the name.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// tokio-postgres's TLS hook, made from a rustls configuration.
#[derive(Clone, Debug)]
pub(super) struct RustlsConnect(Arc<rustls::ClientConfig>);

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnectOne;
    type Error = io::Error;

    fn make_tls_connect(&mut self, host: &str) -> io::Result<RustlsConnectOne> {
        let name = ServerName::try_from(host)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not a host name"))?
            .to_owned();
        Ok(RustlsConnectOne { config: Arc::clone(&self.0), name })
    }
}

/// One connection's handshake.
#[derive(Debug)]
pub(super) struct RustlsConnectOne {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

type Handshake<S> = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

impl<S> TlsConnect<S> for RustlsConnectOne
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Handshake<S>;

    fn connect(self, stream: S) -> Handshake<S> {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move { connector.connect(self.name, stream).await.map(RustlsStream) })
    }
}

/// A TLS session to the server.
#[derive(Debug)]
pub(super) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// No `tls-server-end-point` binding: SCRAM still authenticates, without the `-PLUS`
    /// variant (tokio-postgres's default `channel_binding=prefer` accepts that).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_read_and_taken_out_of_the_url() {
        let (url, tls) = split_url(
            "postgres://app@db.example.com:5432/hermes?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=hermes",
        )
        .expect("parses");
        assert_eq!(url, "postgres://app@db.example.com:5432/hermes?application_name=hermes");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.roots, Some(Roots::File("/etc/ca.pem".into())));
        let (url, tls) = split_url("postgres://app@db/hermes").expect("parses");
        assert_eq!((url.as_str(), tls.mode), ("postgres://app@db/hermes", SslMode::Prefer));
        let err = split_url("postgres://app:secret@db/hermes?sslmode=sometimes").expect_err("no");
        assert!(err.contains("sslmode=\"sometimes\"") && !err.contains("secret"), "{err}");
    }

    #[test]
    fn a_verifying_mode_without_a_readable_root_file_is_refused_at_start() {
        let (_, tls) =
            split_url("postgres://db/h?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .expect("parses");
        let err = tls.connector().expect_err("no such file");
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}

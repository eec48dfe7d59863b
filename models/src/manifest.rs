//! Every file `hermes models fetch` installs, pinned by checksum.

use hermes_core::artifact::Artifact;

/// Silero VAD v6.2.3, 16 kHz, the one ONNX file of the release that tract loads unchanged
/// (see `reference/MODELS.md`); its outputs are bit-identical to the standard export.
pub const SILERO_VAD: Artifact = Artifact {
    title: "Silero VAD 6.2.3 (voice activity model)",
    file_name: "silero_vad_openvino_16k.onnx",
    package: "silero-vad",
    version: "6.2.3",
    distribution: "silero_vad-6.2.3-py3-none-any.whl",
    distribution_sha256: "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
    member: "silero_vad/data/silero_vad_openvino_16k.onnx",
    sha256: "7776b81ad1b0350c15d7f1555943b9232eb53e9ca5d989c6d0cea9ebc8664d87",
    size: 1_288_203,
};

/// A real recording: 169 s of a man speaking English, 8 kHz mono 16-bit, shipped with Silero's
/// C++ example in the same release's source distribution. The audio benchmark's default input.
pub const SPEECH_SAMPLE_8K: Artifact = Artifact {
    title: "speech recording, 8 kHz (benchmark input)",
    file_name: "aepyx_8k.wav",
    package: "silero-vad",
    version: "6.2.3",
    distribution: "silero_vad-6.2.3.tar.gz",
    distribution_sha256: "d7a23b09202be4953915cb9173089bb307eed0418a9bd4794d9ec5af07fa1996",
    member: "silero_vad-6.2.3/examples/c++/aepyx_8k.wav",
    sha256: "3b36a5347bdad20ff72fb9e2613e4214d25f981c56b51ca17704f087b84fddc6",
    size: 2_706_476,
};

/// Everything `hermes models fetch` installs.
pub const ALL: &[Artifact] = &[SILERO_VAD, SPEECH_SAMPLE_8K];

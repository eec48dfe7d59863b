//! Telnyx media frames: the PROTOCOLS.md examples parse as documented (both spellings where
//! the docs disagree), outbound frames have the documented shape, and every malformed frame in
//! the committed corpus is refused with an error — never a panic.

use std::borrow::Cow;

use hermes_core::codec::G711;
use hermes_io::carriers::telnyx::media::{
    self, CLEAR, FrameError, InboundFrame, MAX_FRAME_BYTES, Track, decode_payload, write_mark,
    write_media,
};

fn parse(text: &str) -> Result<InboundFrame<'static>, FrameError> {
    let buf: &'static mut [u8] = Box::leak(text.as_bytes().to_vec().into_boxed_slice());
    media::parse(buf)
}

#[test]
fn connected_frame_carries_version_and_auth_token() {
    assert_eq!(
        parse(r#"{"event":"connected","version":"1.0.0"}"#),
        Ok(InboundFrame::Connected { version: Some("1.0.0".into()), auth_token: None })
    );
    let with_token =
        parse(r#"{"event":"connected","version":"1.0.0","x-telnyx-streaming-auth-token":"tok"}"#);
    assert!(
        matches!(with_token, Ok(InboundFrame::Connected { auth_token: Some(t), .. }) if t == "tok")
    );
}

#[test]
fn start_frame_from_the_docs_parses_with_stream_id_at_top_level() {
    let frame = parse(
        r#"{"event":"start","sequence_number":"1","stream_id":"32DE0DEA-53CB-4B21-89A4-9E1819C043BC",
 "start":{"user_id":"3E6F995F","call_control_id":"v2:T02llQxIyaRkhf",
  "call_session_id":"ff55a038-6f5d-11ef-9692-02420aeffb1f","from":"+13122010094","to":"+13122123456",
  "tags":["TAG1","TAG2"],"client_state":"aGF2ZSBhIG5pY2UgZGF5ID1d",
  "custom_parameters":{"customer_id":"customer_123"},
  "media_format":{"encoding":"PCMU","sample_rate":8000,"channels":1}}}"#,
    )
    .expect("documented start frame");
    let InboundFrame::Start(start) = frame else { panic!("not a start frame") };
    assert_eq!(start.stream_id, "32DE0DEA-53CB-4B21-89A4-9E1819C043BC");
    assert_eq!(start.call_control_id, "v2:T02llQxIyaRkhf");
    assert_eq!(start.codec, G711::Mulaw);
    assert_eq!(start.client_state.as_deref(), Some("aGF2ZSBhIG5pY2UgZGF5ID1d"));
}

#[test]
fn both_encoding_spellings_are_accepted() {
    for (spelling, codec) in [
        ("PCMU", G711::Mulaw),
        ("audio/x-mulaw", G711::Mulaw),
        ("PCMA", G711::Alaw),
        ("audio/x-alaw", G711::Alaw),
    ] {
        let text = format!(
            r#"{{"event":"start","stream_id":"s","start":{{"call_control_id":"c","media_format":{{"encoding":"{spelling}","sample_rate":8000,"channels":1}}}}}}"#
        );
        match parse(&text) {
            Ok(InboundFrame::Start(s)) => assert_eq!(s.codec, codec, "{spelling}"),
            other => panic!("{spelling}: {other:?}"),
        }
    }
}

#[test]
fn media_frame_payload_decodes_to_g711_bytes() {
    let frame = parse(
        r#"{"event":"media","sequence_number":"4","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"no+JhoaJjpw="},"stream_id":"32DE0DEA"}"#,
    )
    .expect("documented media frame");
    let InboundFrame::Media { track, sequence, payload } = frame else { panic!("not media") };
    assert_eq!((track, sequence), (Track::Inbound, Some(4)));
    let mut audio = [0u8; 160];
    let n = decode_payload(&payload, &mut audio).expect("base64");
    assert_eq!(&audio[..n], &[0x9e, 0x8f, 0x89, 0x86, 0x86, 0x89, 0x8e, 0x9c]);
}

#[test]
fn track_spellings_old_and_new_are_accepted() {
    for (track, expected) in [
        ("inbound", Track::Inbound),
        ("inbound_track", Track::Inbound),
        ("outbound", Track::Outbound),
        ("outbound_track", Track::Outbound),
        ("inbound/outbound", Track::Inbound),
    ] {
        let text = format!(r#"{{"event":"media","media":{{"track":"{track}","payload":""}}}}"#);
        assert!(
            matches!(parse(&text), Ok(InboundFrame::Media { track: t, .. }) if t == expected),
            "{track}"
        );
    }
}

#[test]
fn dtmf_mark_error_and_stop_frames_parse() {
    assert_eq!(
        parse(
            r#"{"event":"dtmf","stream_id":"s","occurred_at":"2025-06-05T08:54:19.698408Z","sequence_number":"5","dtmf":{"digit":"1"}}"#
        ),
        Ok(InboundFrame::Dtmf { digit: '1' })
    );
    assert_eq!(
        parse(r#"{"event":"mark","mark":{"name":"speak-3"}}"#),
        Ok(InboundFrame::Mark { name: Cow::Borrowed("speak-3") })
    );
    assert_eq!(
        parse(
            r#"{"event":"error","payload":{"code":100003,"title":"malformed_frame","detail":"x"}}"#
        ),
        Ok(InboundFrame::Error { code: Some(100003), title: Some("malformed_frame".into()) })
    );
    assert_eq!(
        parse(
            r#"{"event":"stop","sequence_number":"5","stop":{"user_id":"u","call_control_id":"c"},"stream_id":"s"}"#
        ),
        Ok(InboundFrame::Stop)
    );
}

#[test]
fn outbound_frames_have_the_documented_shape() {
    let mut out = String::new();
    write_media(&[0x9e, 0x8f, 0x89, 0x86, 0x86, 0x89, 0x8e, 0x9c], &mut out);
    assert_eq!(out, r#"{"event":"media","media":{"payload":"no+JhoaJjpw="}}"#);
    write_mark("speak-3", &mut out);
    assert_eq!(out, r#"{"event":"mark","mark":{"name":"speak-3"}}"#);
    assert_eq!(CLEAR, r#"{"event":"clear"}"#);
    let round: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(round["mark"]["name"], "speak-3");
}

#[test]
fn oversized_frames_are_refused_unparsed() {
    let big =
        format!(r#"{{"event":"media","media":{{"payload":"{}"}}}}"#, "A".repeat(MAX_FRAME_BYTES));
    assert!(matches!(parse(&big), Err(FrameError::Oversized(_))));
}

#[test]
fn payload_larger_than_the_buffer_or_not_base64_is_refused() {
    let mut small = [0u8; 4];
    assert!(matches!(
        decode_payload("no+JhoaJjpw=", &mut small),
        Err(FrameError::PayloadTooLarge { .. })
    ));
    let mut audio = [0u8; 160];
    assert_eq!(decode_payload("@@@@", &mut audio), Err(FrameError::BadPayload));
}

#[test]
fn every_frame_in_the_malformed_corpus_is_refused_with_an_error() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/telnyx_media");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let path = entry.expect("entry").path();
        let mut bytes = std::fs::read(&path).expect("read");
        let result = media::parse(&mut bytes);
        assert!(result.is_err(), "{} parsed: {result:?}", path.display());
        checked += 1;
    }
    assert!(checked >= 15, "corpus has {checked} frames");
}

//! The TwiML that connects a call to our media WebSocket, bidirectionally.

/// `<Response><Connect><Stream url="…"/></Connect></Response>`, the URL XML-escaped.
pub fn connect_stream(stream_url: &str) -> String {
    let escaped = stream_url
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Connect><Stream url=\"{escaped}\"/></Connect></Response>\n"
    )
}

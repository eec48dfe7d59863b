//! The TwiML that connects a call to our media WebSocket, bidirectionally.

/// `<Response><Connect><Stream url="…">` with `parameters` as `<Parameter>`s (Twilio hands
/// them back in the stream's `start.customParameters`), every value XML-escaped.
pub fn connect_stream(stream_url: &str, parameters: &[(&str, &str)]) -> String {
    let params: String = parameters
        .iter()
        .map(|(name, value)| {
            format!("<Parameter name=\"{}\" value=\"{}\"/>", escape(name), escape(value))
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Connect><Stream url=\"{}\">{params}</Stream></Connect></Response>\n",
        escape(stream_url)
    )
}

/// Refuses the call with a busy signal (the node is at its call capacity): Twilio plays busy
/// to the caller, answers nothing and bills no talk time.
pub fn reject_busy() -> &'static str {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Reject reason=\"busy\"/></Response>\n"
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

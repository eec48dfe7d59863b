//! The TwiML Hermes hands Twilio: connecting a call to our media WebSocket, bidirectionally,
//! handing it to a human, and refusing it as busy.

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

/// `<Response><Dial>to</Dial></Response>`, the number XML-escaped: what a call in progress is
/// updated with to transfer it (the update ends its `<Connect><Stream>`, and with it our media
/// stream, and Twilio dials `to` with the caller on the line).
pub fn dial(to: &str) -> String {
    format!("<Response><Dial>{}</Dial></Response>", escape(to))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dial_escapes_the_number_so_it_cannot_add_verbs() {
        assert_eq!(dial("+15555550199"), "<Response><Dial>+15555550199</Dial></Response>");
        assert_eq!(
            dial("1</Dial><Play>x</Play><Dial>2"),
            "<Response><Dial>1&lt;/Dial&gt;&lt;Play&gt;x&lt;/Play&gt;&lt;Dial&gt;2</Dial></Response>"
        );
    }
}

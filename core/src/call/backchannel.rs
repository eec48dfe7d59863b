//! Backchannels: short acknowledgements ("mm-hmm", "yeah", "okay") a caller makes while
//! listening. They never take the floor from the agent.

/// Whether `transcript` is nothing but backchannel words from `list` (case, punctuation and
/// repetition ignored: "Yeah, yeah." counts). Empty text is not a backchannel: nothing is known.
pub fn is_backchannel(transcript: &str, list: &[String]) -> bool {
    let mut words = transcript
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '!' | '?' | ';'))
        .filter(|w| !w.is_empty())
        .peekable();
    if words.peek().is_none() {
        return false;
    }
    let mut count = 0;
    let all = words.all(|w| {
        count += 1;
        list.iter().any(|b| b.eq_ignore_ascii_case(w))
    });
    all && count <= 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Vec<String> {
        ["mm-hmm", "yeah", "okay", "right", "uh-huh"].map(String::from).to_vec()
    }

    #[test]
    fn acknowledgements_are_backchannels() {
        for t in ["mm-hmm", "Yeah.", "okay, okay", "Right!", "uh-huh yeah"] {
            assert!(is_backchannel(t, &list()), "{t}");
        }
    }

    #[test]
    fn anything_with_content_is_not() {
        for t in ["", "yeah but tuesday", "no", "okay wait what time", "yeah yeah yeah yeah yeah"] {
            assert!(!is_backchannel(t, &list()), "{t}");
        }
    }
}

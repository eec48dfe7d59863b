//! The simulator's error: a sentence for the person running it, with what it was doing first
//! ("scenarios/x.toml: turn[2]: …", "--listen: cannot listen on …"). Built with
//! [`Context::context`] on any displayable error, or [`fail!`](crate::fail).

use std::fmt::Display;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SimError(String);

impl SimError {
    pub fn msg(message: impl Display) -> SimError {
        SimError(message.to_string())
    }
}

pub type SimResult<T> = Result<T, SimError>;

/// I/O failures the simulator meets (a socket, a runtime, a file) say what they are.
impl From<std::io::Error> for SimError {
    fn from(e: std::io::Error) -> SimError {
        SimError(e.to_string())
    }
}

/// Says what was being done when something failed: `what: why`.
pub trait Context<T> {
    fn context(self, what: impl Display) -> SimResult<T>;
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> SimResult<T>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn context(self, what: impl Display) -> SimResult<T> {
        self.map_err(|e| SimError(format!("{what}: {e}")))
    }

    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> SimResult<T> {
        self.map_err(|e| SimError(format!("{}: {e}", what())))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Display) -> SimResult<T> {
        self.ok_or_else(|| SimError(what.to_string()))
    }

    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> SimResult<T> {
        self.ok_or_else(|| SimError(what().to_string()))
    }
}

/// Returns a [`SimError`] built like `format!`.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::sim::SimError::msg(format!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_comes_first_and_the_cause_after_it() {
        let e: Result<(), std::io::Error> = Err(std::io::Error::other("refused"));
        assert_eq!(
            e.context("--listen: cannot listen on x").expect_err("an error").to_string(),
            "--listen: cannot listen on x: refused"
        );
        assert_eq!(
            None::<u8>.context("no such thing").expect_err("an error").to_string(),
            "no such thing"
        );
    }
}

//! Protocol-faithful stand-ins for the outside world, for tests, the simulator and demos
//! (feature `fakes`). A fake is never a default for real calls.

pub mod carrier;
pub mod deepgram;
pub mod elevenlabs;
pub mod llm;
pub mod profile;

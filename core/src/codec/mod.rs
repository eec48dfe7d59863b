//! Telephone codecs.

pub mod g711;

pub use g711::G711;

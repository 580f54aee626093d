//! warden-core: detection and reversible redaction engine (under construction).

pub mod finding;
pub use finding::{Checksum, Evidence, Finding};

//! Architecture support. Only x86_64 exists; the rest of `rt` reaches it
//! through this module so a second architecture would slot in here.
//!
//! May import: nothing of `rt` (the bottom layer).
mod x86_64;
pub use self::x86_64::*;

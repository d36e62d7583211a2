//! Test support shared by `hypervisor/tests` and the end-to-end suite
//! (`tests/`, crate `e2e`); a dev-only crate, never linked into a binary
//! that ships.
//!
//! - [`wait_until`] / [`wait_for`]: poll a condition with a deadline; tests
//!   never sleep for a fixed time.
//! - [`netns::Netns`]: a network namespace a test creates (and enters on its
//!   own thread), so network tests never touch the host's interfaces.
//! - [`expect::Expect`]: a console transcript over any byte stream with a
//!   read timeout: wait for text with a deadline, send, run a command.
//! - [`heavy`]: the lock that tests which must not run side by side (Linux
//!   boots, CPU measurements) hold; the tests of one binary run on parallel
//!   threads of one process.
pub mod expect;
pub mod netns;
mod wait;

pub use wait::{heavy, poll_until, wait_for, wait_until};

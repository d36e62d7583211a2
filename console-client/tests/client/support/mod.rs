//! Test helpers: a pseudo-terminal driving a client (`pty`), a TCP echo
//! server speaking xend's console greeting (`server`).
pub mod pty;
pub mod server;

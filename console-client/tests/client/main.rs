//! console-client's integration tests as one test binary (`cargo test -p
//! console-client --test client [AREA]`), one module per area: `pipe`
//! (pipe mode against a TCP echo server), `interactive` (xencons in a real
//! pty), `domain_console` (xencons and `xm console` against a real xend and
//! minios domain). Helpers in `support`.
mod support;

mod domain_console;
mod interactive;
mod pipe;

//! SXP, the S-expression format Xen's control tools speak on the wire and store
//! in files (`xend-config.sxp`, domain records, `xm create -n` output).
//!
//! The rules follow the project's reference (`xend-protocol.md`, section 1), which
//! were taken from Xen 2.0's `sxp.py` and `PrettyPrint.py`:
//!
//! - [`parse`] / [`parse_all`] / [`parse_spanned`]: the reader. Every value read is
//!   a string or a list; numbers are strings whose meaning comes from the schema.
//!   Errors carry `line:col` (1-based, columns count characters).
//! - [`Value`]'s `Display`: the compact writer (`sxp.show`), one line.
//! - [`pretty`]: the 80-column pretty printer used by `xm list -l` and
//!   `xm create -n`.
//!
//! # Why our own value type and not `lexpr`
//!
//! SXP's reader yields only strings and lists, so a two-variant enum is exactly
//! the data model; `lexpr::Value` has symbols, numbers, conses, vectors and more,
//! each of which would be a second way to say the same SXP thing. And `lexpr`'s
//! reader does not implement SXP's syntax: single-quoted strings, the `\xHH` and
//! octal escapes, unknown escapes kept literally, `#` comments that start inside an
//! atom, and byte 0x04 as end of input. We would have written the reader anyway.
//!
//! # Example
//!
//! ```
//! let v = sxp::parse("(vm (name ttylinux) (root '/dev/sda1 ro'))").unwrap();
//! assert_eq!(v.child_value("name"), Some("ttylinux"));
//! assert_eq!(v.to_string(), "(vm (name ttylinux) (root '/dev/sda1 ro'))");
//! ```

mod pretty;
mod reader;
mod sink;
mod value;
mod writer;

pub use pretty::{WIDTH, pretty};
pub use reader::{
    MAX_DEPTH, ParseError, Spanned, SpannedKind, parse, parse_all, parse_all_spanned, parse_spanned,
};
pub use sink::{Sink, TextSink, ValueSink};
pub use value::Value;
pub use writer::{format_float, is_bare};

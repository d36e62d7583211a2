//! The SXP reader and writer through the public API, as one test binary
//! (`cargo test -p sxp --test sxp [AREA]`): `reader`, `writer`, and
//! `roundtrip` (proptest: pretty-printed values parse back equal).
mod reader;
mod roundtrip;
mod writer;

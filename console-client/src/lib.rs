//! Console client.

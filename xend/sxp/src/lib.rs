//! SXP.

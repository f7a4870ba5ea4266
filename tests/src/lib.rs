//! Privileged end-to-end test support.

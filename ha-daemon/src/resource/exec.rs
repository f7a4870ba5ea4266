//! The `exec` resource agent.

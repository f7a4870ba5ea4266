//! The `mount` resource agent.

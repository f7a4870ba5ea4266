//! The `drbd` resource agent.

//! The `vip` resource agent.

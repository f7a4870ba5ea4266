//! The `lxc` resource agent.

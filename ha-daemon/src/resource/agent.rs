//! The resource agent interface.

use std::error::Error;
use std::fmt;

use futures_util::future::BoxFuture;

pub use crate::core::supervision::Health;

/// Why an agent call failed.
///
/// Each agent keeps its own typed error (e.g. a DRBD refusal) inside [`AgentError::Failed`],
/// so callers that care can `downcast_ref` it and everyone else can print it.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The settings or the machine cannot run this resource; found by `validate`
    /// before anything ran. The text names the setting and the problem.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The operation was tried and failed; nothing claims it succeeded.
    #[error(transparent)]
    Failed(Box<dyn Error + Send + Sync>),
}

impl AgentError {
    /// Wraps an agent's own error type.
    pub fn failed(error: impl Error + Send + Sync + 'static) -> Self {
        AgentError::Failed(Box::new(error))
    }

    /// A failure described by text only (no typed cause worth matching on).
    pub fn message(text: impl Into<String>) -> Self {
        AgentError::Failed(text.into().into())
    }
}

/// One kind of resource (see the module docs of [`crate::resource`] for the contract).
///
/// The futures borrow the agent, so the engine can cancel a call (drop its future) on
/// timeout; agents must leave nothing running when that happens.
pub trait Agent: Send + Sync + fmt::Debug {
    /// The agent kind as written in the configuration, e.g. `"vip"`.
    fn kind(&self) -> &'static str;

    /// Checks settings and machine without changing anything.
    fn validate(&self) -> BoxFuture<'_, Result<(), AgentError>>;

    /// Brings the resource up; succeeds without doing anything if it already is.
    fn start(&self) -> BoxFuture<'_, Result<(), AgentError>>;

    /// Takes the resource down; succeeds without doing anything if it already is.
    fn stop(&self) -> BoxFuture<'_, Result<(), AgentError>>;

    /// Reports the resource's health; changes nothing.
    fn monitor(&self) -> BoxFuture<'_, Result<Health, AgentError>>;
}

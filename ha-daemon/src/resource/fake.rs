//! A fake agent for the engine's tests: logs its calls as "start NAME" / "stop NAME",
//! keeps a shared running flag (a test can flip it to simulate a crash), and fails or
//! hangs its start when told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use crate::resource::{Agent, AgentError, Health};

/// An agent that records its calls and fails or hangs where told.
#[derive(Debug)]
pub(crate) struct Fake {
    pub(crate) name: &'static str,
    pub(crate) log: Arc<Mutex<Vec<String>>>,
    pub(crate) running: Arc<Mutex<bool>>,
    pub(crate) fail_start: bool,
    pub(crate) hang_start: bool,
}

impl Fake {
    /// A fake named `name`, stopped, that always succeeds, logging to `log`.
    pub(crate) fn new(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Self {
        Fake {
            name,
            log: Arc::clone(log),
            running: Arc::new(Mutex::new(false)),
            fail_start: false,
            hang_start: false,
        }
    }

    fn note(&self, call: &str) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{call} {}", self.name));
    }
}

impl Agent for Fake {
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn validate(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        async move {
            if self.fail_start {
                Err(AgentError::Invalid("bad setting".to_owned()))
            } else {
                Ok(())
            }
        }
        .boxed()
    }
    fn start(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        async move {
            self.note("start");
            if self.hang_start {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            if self.fail_start {
                return Err(AgentError::message("refused"));
            }
            *self.running.lock().unwrap() = true;
            Ok(())
        }
        .boxed()
    }
    fn stop(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        async move {
            self.note("stop");
            *self.running.lock().unwrap() = false;
            Ok(())
        }
        .boxed()
    }
    fn monitor(&self) -> BoxFuture<'_, Result<Health, AgentError>> {
        async move {
            Ok(if *self.running.lock().unwrap() {
                Health::Running
            } else {
                Health::Stopped
            })
        }
        .boxed()
    }
}

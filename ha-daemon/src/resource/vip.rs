//! The `vip` resource agent: a floating IPv4 or IPv6 address on an interface.
//!
//! Settings ([`VipSettings`]):
//! - `interface` (required): the interface the address goes on, e.g. `eth0`.
//! - `address` (required): the address, IPv4 or IPv6 (not unspecified, loopback or
//!   multicast).
//! - `prefix_len` (required): its prefix length, at most 32 (IPv4) or 128 (IPv6).
//! - `announce_schedule` (default [`DEFAULT_SCHEDULE`]: 0, 50, 200, 1000 ms): when to
//!   announce the address after start, as offsets from the moment it is in place;
//!   non-empty and ascending.
//!
//! Operations (the address is "present" when the interface carries exactly
//! `address/prefix_len`):
//! - `validate`: the settings as above, and the interface exists. Changes nothing.
//! - `start`: refuses an interface that is missing, down or without carrier. Adds the
//!   address if absent (IPv6 with `IFA_F_NODAD`: a floating address must be usable at
//!   once, not after duplicate address detection), then announces it
//!   ([`crate::io::announce`]): gratuitous ARP in both forms, or an unsolicited NA, on
//!   the schedule. A start that finds the address present changes nothing here but
//!   announces again, as keepalived does: a start retried after a crash or timeout
//!   between the add and the first announcement must still move the neighbours, and an
//!   announcement of an address this node holds only restates the truth.
//! - `stop`: cancels pending announcements, then removes the address if present.
//! - `monitor`: present -> [`Health::Running`], absent -> [`Health::Stopped`]; the
//!   interface missing, down or without carrier, or the address present with another
//!   prefix length, -> [`Health::Failed`] with the reason.
//!
//! The same address with another prefix length is never touched: this agent did not add
//! it, so `start` and `stop` fail and say so.
//!
//! All netlink calls run in the network namespace of the thread that polls the agent's
//! futures (see [`netlink`]).

mod netlink;
mod state;

use std::fmt;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use self::netlink::{Assigned, Link, Netlink};
use self::state::{Presence, check_settings, health, link_problem, presence};
pub use crate::io::announce::DEFAULT_SCHEDULE;
use crate::io::announce::{AnnounceError, announce};
use crate::resource::{Agent, AgentError, Health};

/// The settings of one `vip` resource (see the module docs for defaults and checks).
#[derive(Clone, Debug, PartialEq)]
pub struct VipSettings {
    /// The interface the address goes on, e.g. `eth0`.
    pub interface: String,
    /// The floating address.
    pub address: IpAddr,
    /// Its prefix length: at most 32 for IPv4, 128 for IPv6.
    pub prefix_len: u8,
    /// When to announce after start, as ascending offsets; default [`DEFAULT_SCHEDULE`].
    pub announce_schedule: Vec<Duration>,
}

impl VipSettings {
    /// Settings with the default announcement schedule.
    pub fn new(interface: impl Into<String>, address: IpAddr, prefix_len: u8) -> Self {
        VipSettings {
            interface: interface.into(),
            address,
            prefix_len,
            announce_schedule: DEFAULT_SCHEDULE.to_vec(),
        }
    }
}

impl fmt::Display for VipSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vip {}/{} on {}",
            self.address, self.prefix_len, self.interface
        )
    }
}

/// A `vip` operation failed; names the resource, the operation and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{resource}: {operation}: {cause}")]
pub struct VipError {
    /// The resource, e.g. `vip 192.0.2.10/24 on eth0`.
    pub resource: String,
    /// The operation.
    pub operation: Operation,
    /// What went wrong.
    #[source]
    pub cause: VipCause,
}

/// The agent operation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `validate`.
    Validate,
    /// `start`.
    Start,
    /// `stop`.
    Stop,
    /// `monitor`.
    Monitor,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Validate => "validate",
            Operation::Start => "start",
            Operation::Stop => "stop",
            Operation::Monitor => "monitor",
        })
    }
}

/// Why a `vip` operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VipCause {
    /// The interface does not exist.
    #[error("interface does not exist")]
    NoInterface,
    /// The interface is administratively down.
    #[error("interface is down")]
    InterfaceDown,
    /// The interface has no carrier.
    #[error("interface has no carrier")]
    NoCarrier,
    /// The address is on the interface with another prefix length.
    #[error(
        "the address is present with prefix length {0}; not touching what this resource did not add"
    )]
    OtherPrefix(u8),
    /// A netlink request failed.
    #[error("{step}: {source}")]
    Netlink {
        /// What was being done, e.g. "adding the address".
        step: &'static str,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// The netlink socket could not be opened.
    #[error("opening a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The first announcement could not be sent.
    #[error(transparent)]
    Announce(AnnounceError),
}

/// The `vip` agent.
#[derive(Debug)]
pub struct Vip {
    settings: VipSettings,
    /// The announcements still pending from the last start; aborted by stop and drop.
    pending: Mutex<Option<AbortHandle>>,
}

impl Vip {
    /// An agent for these settings (checked by `validate`, not here).
    pub fn new(settings: VipSettings) -> Self {
        Vip {
            settings,
            pending: Mutex::new(None),
        }
    }

    fn error(&self, operation: Operation, cause: VipCause) -> VipError {
        VipError {
            resource: self.settings.to_string(),
            operation,
            cause,
        }
    }

    async fn validate_now(&self) -> Result<(), AgentError> {
        check_settings(&self.settings)
            .map_err(|problem| AgentError::Invalid(format!("{}: {problem}", self.settings)))?;
        let (_, link) = self
            .observe_link(Operation::Validate)
            .await
            .map_err(AgentError::failed)?;
        if link.is_none() {
            return Err(AgentError::Invalid(format!(
                "{}: interface does not exist",
                self.settings
            )));
        }
        Ok(())
    }

    async fn start_now(&self) -> Result<(), VipError> {
        let operation = Operation::Start;
        let began = Instant::now();
        let (netlink, link) = self.observe_link(operation).await?;
        let link = link.ok_or_else(|| self.error(operation, VipCause::NoInterface))?;
        if let Some(cause) = link_problem(link) {
            return Err(self.error(operation, cause));
        }
        let (_, presence) = self.assigned(&netlink, link, operation).await?;
        match presence {
            Presence::OtherPrefix(prefix_len) => {
                return Err(self.error(operation, VipCause::OtherPrefix(prefix_len)));
            }
            Presence::Present(_) => {}
            Presence::Absent => netlink
                .add(link.index, self.settings.address, self.settings.prefix_len)
                .await
                .map_err(|source| {
                    let step = "adding the address";
                    self.error(operation, VipCause::Netlink { step, source })
                })?,
        }
        let added = began.elapsed();
        let handle = announce(
            &self.settings.interface,
            self.settings.address,
            None,
            &self.settings.announce_schedule,
        )
        .await
        .map_err(|e| self.error(operation, VipCause::Announce(e)))?;
        if let Some(previous) = self.replace_pending(Some(handle)) {
            previous.abort();
        }
        tracing::info!(
            resource = %self.settings,
            ?added,
            first_announcement = ?began.elapsed(),
            "vip started"
        );
        Ok(())
    }

    async fn stop_now(&self) -> Result<(), VipError> {
        let operation = Operation::Stop;
        if let Some(pending) = self.replace_pending(None) {
            pending.abort();
        }
        let (netlink, link) = self.observe_link(operation).await?;
        let Some(link) = link else {
            return Ok(());
        };
        let (mut assigned, presence) = self.assigned(&netlink, link, operation).await?;
        match presence {
            Presence::Absent => Ok(()),
            Presence::OtherPrefix(prefix_len) => {
                Err(self.error(operation, VipCause::OtherPrefix(prefix_len)))
            }
            Presence::Present(index) => {
                netlink
                    .remove(assigned.swap_remove(index))
                    .await
                    .map_err(|source| {
                        let step = "removing the address";
                        self.error(operation, VipCause::Netlink { step, source })
                    })
            }
        }
    }

    async fn monitor_now(&self) -> Result<Health, VipError> {
        let operation = Operation::Monitor;
        let (netlink, link) = self.observe_link(operation).await?;
        let Some(link) = link else {
            return Ok(health(None, Presence::Absent, &self.settings));
        };
        let (_, presence) = self.assigned(&netlink, link, operation).await?;
        Ok(health(Some(link), presence, &self.settings))
    }

    /// Opens netlink in this thread's namespace and looks the interface up.
    async fn observe_link(
        &self,
        operation: Operation,
    ) -> Result<(Netlink, Option<Link>), VipError> {
        let netlink = Netlink::connect().map_err(|e| self.error(operation, VipCause::Socket(e)))?;
        let link = netlink
            .link(&self.settings.interface)
            .await
            .map_err(|source| {
                let step = "looking up the interface";
                self.error(operation, VipCause::Netlink { step, source })
            })?;
        Ok((netlink, link))
    }

    /// The interface's addresses and where the configured one is among them.
    async fn assigned(
        &self,
        netlink: &Netlink,
        link: Link,
        operation: Operation,
    ) -> Result<(Vec<Assigned>, Presence), VipError> {
        let assigned = netlink.addresses(link.index).await.map_err(|source| {
            let step = "listing the interface's addresses";
            self.error(operation, VipCause::Netlink { step, source })
        })?;
        let presence = presence(
            assigned
                .iter()
                .map(|found| (found.address, found.prefix_len)),
            self.settings.address,
            self.settings.prefix_len,
        );
        Ok((assigned, presence))
    }

    fn replace_pending(&self, handle: Option<AbortHandle>) -> Option<AbortHandle> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *pending, handle)
    }
}

impl Drop for Vip {
    fn drop(&mut self) {
        if let Some(pending) = self.replace_pending(None) {
            pending.abort();
        }
    }
}

impl Agent for Vip {
    fn kind(&self) -> &'static str {
        "vip"
    }

    fn validate(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        Box::pin(self.validate_now())
    }

    fn start(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        Box::pin(async move { self.start_now().await.map_err(AgentError::failed) })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        Box::pin(async move { self.stop_now().await.map_err(AgentError::failed) })
    }

    fn monitor(&self) -> BoxFuture<'_, Result<Health, AgentError>> {
        Box::pin(async move { self.monitor_now().await.map_err(AgentError::failed) })
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10));

    fn settings(address: IpAddr, prefix_len: u8) -> VipSettings {
        VipSettings::new("eth0", address, prefix_len)
    }

    #[test]
    fn defaults_and_display() {
        let settings = settings(V4, 24);
        assert_eq!(
            settings.announce_schedule,
            [0, 50, 200, 1000].map(Duration::from_millis).to_vec()
        );
        assert_eq!(settings.to_string(), "vip 192.0.2.10/24 on eth0");
        assert!(check_settings(&settings).is_ok());
        assert!(check_settings(&self::settings(V6, 64)).is_ok());
    }

    #[test]
    fn errors_name_resource_operation_and_cause() {
        let vip = Vip::new(settings(V6, 64));
        let error = vip.error(Operation::Stop, VipCause::OtherPrefix(128));
        assert_eq!(
            error.to_string(),
            "vip 2001:db8::10/64 on eth0: stop: the address is present with prefix length \
             128; not touching what this resource did not add"
        );
    }
}

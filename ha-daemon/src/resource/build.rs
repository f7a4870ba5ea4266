//! From settings to agents: one [`Member`] per configured resource, in start order.

use crate::resource::Agent;
use crate::resource::drbd::{Drbd, DrbdSettings};
use crate::resource::exec::ocf::{Ocf, OcfSettings};
use crate::resource::exec::{Exec, ExecSettings};
use crate::resource::group::{Member, ResourceGroup, Timeouts};
use crate::resource::lxc::{LxcAgent, LxcSettings};
use crate::resource::mount::{MountAgent, MountSettings};
use crate::resource::vip::{Vip, VipSettings};

/// One member of the resource group (`[[resource]]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceSettings {
    /// Unique name, 1 to 32 of `[A-Za-z0-9_-]`.
    pub name: String,
    /// Call timeouts.
    pub timeouts: Timeouts,
    /// The agent and its settings.
    pub agent: AgentSettings,
}

/// An agent with its settings.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentSettings {
    /// `drbd`.
    Drbd(DrbdSettings),
    /// `mount`.
    Mount(MountSettings),
    /// `lxc`.
    Lxc(LxcSettings),
    /// `vip`.
    Vip(VipSettings),
    /// `exec`.
    Exec(ExecSettings),
    /// `ocf:PROVIDER:TYPE`.
    Ocf(OcfSettings),
}

impl AgentSettings {
    /// The agent these settings describe.
    pub fn agent(&self) -> Box<dyn Agent> {
        match self {
            AgentSettings::Drbd(settings) => Box::new(Drbd::new(settings.clone())),
            AgentSettings::Mount(settings) => Box::new(MountAgent::new(settings.clone())),
            AgentSettings::Lxc(settings) => Box::new(LxcAgent::new(settings.clone())),
            AgentSettings::Vip(settings) => Box::new(Vip::new(settings.clone())),
            AgentSettings::Exec(settings) => Box::new(Exec::new(settings.clone())),
            AgentSettings::Ocf(settings) => Box::new(Ocf::new(settings.clone())),
        }
    }
}

/// The resource group of these members, in their order.
pub fn group_from(resources: &[ResourceSettings]) -> ResourceGroup {
    ResourceGroup::new(
        resources
            .iter()
            .map(|resource| Member {
                name: resource.name.clone(),
                agent: resource.agent.agent(),
                timeouts: resource.timeouts,
            })
            .collect(),
    )
}

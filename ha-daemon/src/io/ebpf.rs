//! I/O driver for the kernel side: load the eBPF object embedded at build time, write
//! the link configuration, attach XDP (ingress) and tc (egress) on every link interface,
//! read the per-link counters and stream the edge events.
//!
//! Everything attached belongs to [`KernelEvidence`]: dropping it detaches the programs
//! and frees the maps. With a pin directory ([`crate::io::bpf_pins`]) the maps and
//! attachments are pinned: they outlive a crash of the daemon, a restarted daemon adopts
//! them, and dropping [`KernelEvidence`] (a clean shutdown) unpins and detaches them, except
//! when the node still runs its resources ([`keep_pinned_at_exit`]). Loading fails with a typed [`EbpfError`] the daemon can degrade on
//! (no object built, no privileges, unknown interface, old kernel).

use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr},
    ops::RangeInclusive,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, MapError, PerCpuArray, RingBuf},
    programs::{
        ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        tc::{self, SchedClassifierLink},
        xdp::XdpLink,
    },
};
use ha_common::{
    EdgeEvent, LinkConfig, LinkStats, LinkTable, MAX_LINKS, PEER_IPV4, PEER_IPV6, map_names,
    program_names,
};
use tokio::io::unix::AsyncFd;

use crate::io::bpf_pins::{self, PinDir, PinDirError};
use tracing::{info, warn};

/// The eBPF object built by `build.rs`; empty when the build was skipped.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ha-ebpf"));

/// The embedded eBPF object, or `None` when this binary was built without it.
pub fn object() -> Option<&'static [u8]> {
    (!EBPF_OBJECT.is_empty()).then_some(EBPF_OBJECT)
}

/// What the kernel needs to know about one link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    /// Network interface of this link on this node.
    pub interface: String,
    /// The peer's IPv4 address on this link.
    pub peer_ipv4: Option<Ipv4Addr>,
    /// The peer's IPv6 address on this link.
    pub peer_ipv6: Option<Ipv6Addr>,
    /// UDP port heartbeats are sent to.
    pub heartbeat_port: u16,
    /// UDP port of echo packets (both ends); 0 disables the echo reflector.
    pub echo_port: u16,
    /// This node's id, stamped into reflected echo replies.
    pub node_id: u16,
    /// The peer's node id: only its echo requests are reflected.
    pub peer_node_id: u16,
    /// TCP ports of DRBD replication (either end of a connection).
    pub replication_ports: RangeInclusive<u16>,
    /// Evidence after this much silence produces an [`EdgeEvent`].
    pub silence: Duration,
}

/// Why the kernel side could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// The configuration says not to use eBPF (`ebpf = false`).
    #[error("disabled in the configuration (ebpf = false)")]
    Disabled,
    /// The binary was built without the eBPF object.
    #[error(
        "this binary was built without its eBPF object (bpf-linker or nightly rust-src was \
         missing at build time; run `cargo xtask build-ebpf`)"
    )]
    NotBuilt,
    /// The object did not load (no privileges, verifier rejection, old kernel).
    #[error("loading the eBPF object failed: {0}")]
    Load(#[source] aya::EbpfError),
    /// More links than the maps have room for.
    #[error("{count} links configured, the kernel maps hold at most {MAX_LINKS}")]
    TooManyLinks {
        /// How many were asked for.
        count: usize,
    },
    /// A link without any peer address.
    #[error("link on {interface}: no peer address")]
    NoPeerAddress {
        /// The link's interface.
        interface: String,
    },
    /// An empty port range.
    #[error("link on {interface}: replication port range {first}-{last} is empty")]
    EmptyPortRange {
        /// The link's interface.
        interface: String,
        /// First port.
        first: u16,
        /// Last port.
        last: u16,
    },
    /// Two links on one interface.
    #[error("interface {0} is configured for more than one link")]
    DuplicateInterface(String),
    /// The interface does not exist.
    #[error("interface {interface}: {source}")]
    Interface {
        /// The interface name.
        interface: String,
        /// What `if_nametoindex` said.
        source: io::Error,
    },
    /// The object lacks a program or map this code expects.
    #[error("the eBPF object has no {0}")]
    Missing(&'static str),
    /// Loading or attaching a program failed.
    #[error("{program} on {interface}: {source}")]
    Attach {
        /// Program name.
        program: &'static str,
        /// Interface name, or "-" when loading.
        interface: String,
        /// What aya said.
        source: ProgramError,
    },
    /// The pin directory cannot be used.
    #[error(transparent)]
    Pins(#[from] PinDirError),
    /// Pinning an attachment or adopting a pinned one failed.
    #[error("{program} on {interface}: pinned attachment: {reason}")]
    Pin {
        /// Program name.
        program: &'static str,
        /// Interface name.
        interface: String,
        /// What failed.
        reason: String,
    },
    /// The ring buffer could not be registered with the async runtime.
    #[error("polling the edge-event ring buffer: {0}")]
    Poll(#[source] io::Error),
    /// A map operation failed.
    #[error("map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// What aya said.
        source: MapError,
    },
}

/// One link as attached: its slot in the maps and how XDP runs on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedLink {
    /// Interface name.
    pub interface: String,
    /// Interface index in this network namespace.
    pub ifindex: u32,
    /// Index into the stats maps.
    pub slot: u32,
    /// `Driver` (native) or `Skb` (generic, slower; logged as a warning); `Default`
    /// until attached, and for an adopted attachment (its mode is the old one's).
    pub xdp_mode: XdpMode,
    /// The attachment was adopted from a previous daemon (pinned), not made anew.
    pub adopted: bool,
}

/// The loaded and attached kernel side. Drop detaches everything.
pub struct KernelEvidence {
    stats: PerCpuArray<MapData, LinkStats>,
    links: Vec<AttachedLink>,
    /// Where everything is pinned; removed on drop.
    pins: Option<PinDir>,
    /// Owns the programs and their attachments; declared last so it is dropped last.
    _ebpf: Ebpf,
}

impl KernelEvidence {
    /// Loads the object, configures `specs` (slot = position in `specs`), attaches both
    /// programs to every link interface, and returns the edge-event stream with it.
    /// Must run inside a tokio runtime (the stream registers with its reactor).
    pub fn load(specs: &[LinkSpec], pins: Option<PinDir>) -> Result<(Self, EdgeEvents), EbpfError> {
        Self::load_object(EBPF_OBJECT, specs, pins)
    }

    /// [`Self::load`] with an explicit object; an empty one means "not built".
    fn load_object(
        object: &[u8],
        specs: &[LinkSpec],
        pins: Option<PinDir>,
    ) -> Result<(Self, EdgeEvents), EbpfError> {
        if object.is_empty() {
            return Err(EbpfError::NotBuilt);
        }
        if specs.len() > MAX_LINKS as usize {
            return Err(EbpfError::TooManyLinks { count: specs.len() });
        }
        let mut table = LinkTable::default();
        let mut links = Vec::with_capacity(specs.len());
        for ((spec, entry), slot) in specs.iter().zip(&mut table.links).zip(0..) {
            *entry = link_config(spec, ifindex(&spec.interface)?)?;
            links.push(AttachedLink {
                interface: spec.interface.clone(),
                ifindex: entry.ifindex,
                slot,
                xdp_mode: XdpMode::Default,
                adopted: false,
            });
        }
        if let Some(twice) = links
            .iter()
            .enumerate()
            .find(|(i, link)| links[..*i].iter().any(|l| l.ifindex == link.ifindex))
        {
            return Err(EbpfError::DuplicateInterface(twice.1.interface.clone()));
        }

        let mut loader = EbpfLoader::new();
        if let Some(pins) = &pins {
            let interfaces: Vec<&str> = links.iter().map(|l| l.interface.as_str()).collect();
            pins.remove_stale_links(&interfaces)?;
            for name in MAP_NAMES {
                loader.map_pin_path(name, pins.map(name));
            }
        }
        let mut ebpf = loader.load(object).map_err(EbpfError::Load)?;
        let mut table_map: Array<_, LinkTable> = take_map(&mut ebpf, map_names::LINK_TABLE)?;
        table_map
            .set(0, table, 0)
            .map_err(|source| EbpfError::Map {
                map: map_names::LINK_TABLE,
                source,
            })?;
        let stats = take_map(&mut ebpf, map_names::LINK_STATS)?;
        let ring: RingBuf<MapData> = take_map(&mut ebpf, map_names::EDGE_EVENTS)?;
        let events = EdgeEvents::register(ring)?;

        let xdp = program::<Xdp>(&mut ebpf, program_names::XDP_INGRESS)?;
        xdp.load()
            .map_err(|source| load_error(program_names::XDP_INGRESS, source))?;
        for link in &mut links {
            let pin = pins.as_ref().map(|pins| pins.link("xdp", &link.interface));
            match pin
                .as_deref()
                .and_then(|pin| PinnedLink::from_pin(pin).ok())
            {
                Some(old) => {
                    let old = XdpLink::try_from(FdLink::from(old))
                        .map_err(|source| pin_error(program_names::XDP_INGRESS, link, source))?;
                    xdp.attach_to_link(old)
                        .map_err(|source| attach_error(program_names::XDP_INGRESS, link, source))?;
                    link.adopted = true;
                }
                None => {
                    let (mode, id) = attach_xdp(xdp, &link.interface, link.ifindex)?;
                    link.xdp_mode = mode;
                    if let Some(pin) = pin {
                        let owned = xdp.take_link(id).map_err(|source| {
                            attach_error(program_names::XDP_INGRESS, link, source)
                        })?;
                        let fd_link = FdLink::try_from(owned).map_err(|source| {
                            pin_error(program_names::XDP_INGRESS, link, source)
                        })?;
                        pin_link(fd_link, &pin)?;
                    }
                }
            }
        }
        let tc_egress = program::<SchedClassifier>(&mut ebpf, program_names::TC_EGRESS)?;
        tc_egress
            .load()
            .map_err(|source| load_error(program_names::TC_EGRESS, source))?;
        for link in &links {
            let pin = pins.as_ref().map(|pins| pins.link("tc", &link.interface));
            match pin
                .as_deref()
                .and_then(|pin| PinnedLink::from_pin(pin).ok())
            {
                Some(old) => {
                    let old = SchedClassifierLink::try_from(FdLink::from(old))
                        .map_err(|source| pin_error(program_names::TC_EGRESS, link, source))?;
                    tc_egress
                        .attach_to_link(old)
                        .map_err(|source| attach_error(program_names::TC_EGRESS, link, source))?;
                }
                None => {
                    let id = attach_tc_egress(tc_egress, &link.interface)?;
                    // Only TCX attachments (kernel 6.6+) are links that can be pinned.
                    if let Some(pin) = pin
                        && let Ok(owned) = tc_egress.take_link(id)
                    {
                        match FdLink::try_from(owned) {
                            Ok(fd_link) => pin_link(fd_link, &pin)?,
                            Err(_) => warn!(
                                interface = %link.interface,
                                "tc egress attached through netlink: not pinned, it ends with the daemon"
                            ),
                        }
                    }
                }
            }
        }
        let adopted = links.iter().filter(|link| link.adopted).count();
        info!(
            links = links.len(),
            adopted,
            pinned = pins.is_some(),
            "eBPF evidence counters attached"
        );
        Ok((
            Self {
                stats,
                links,
                pins,
                _ebpf: ebpf,
            },
            events,
        ))
    }

    /// The attached links, in slot order.
    pub fn links(&self) -> &[AttachedLink] {
        &self.links
    }

    /// The counters of the link in `slot`, merged over all CPUs.
    pub fn stats(&self, slot: u32) -> Result<LinkStats, EbpfError> {
        let per_cpu = self.stats.get(&slot, 0).map_err(|source| EbpfError::Map {
            map: map_names::LINK_STATS,
            source,
        })?;
        Ok(per_cpu.iter().fold(LinkStats::default(), |mut total, cpu| {
            total.merge(cpu);
            total
        }))
    }
}

/// Set by [`keep_pinned_at_exit`]: dropping [`KernelEvidence`] leaves the pins.
static KEEP_PINNED: AtomicBool = AtomicBool::new(false);

/// Makes the daemon's exit leave the kernel side pinned (attached, counting, reflecting
/// echoes) instead of removing it: for a node that still runs its resources, whose peer
/// must keep seeing a live kernel. The next daemon adopts it; `ha-daemon cleanup`
/// removes it. Process-wide: it is decided once, when the daemon stops.
pub fn keep_pinned_at_exit() {
    KEEP_PINNED.store(true, Ordering::Relaxed);
}

impl Drop for KernelEvidence {
    /// A clean shutdown: unpinning leaves the program's own descriptors as the last
    /// references, so everything detaches when the fields drop (unless
    /// [`keep_pinned_at_exit`] was called).
    fn drop(&mut self) {
        if KEEP_PINNED.load(Ordering::Relaxed) {
            return;
        }
        if let Some(pins) = &self.pins
            && let Err(error) = bpf_pins::remove(pins.path())
        {
            warn!(dir = %pins.path().display(), %error, "could not remove the pinned eBPF objects");
        }
    }
}

/// The stream of "first evidence after silence" events from the kernel.
pub struct EdgeEvents {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl EdgeEvents {
    #[expect(
        unsafe_code,
        reason = "tokio's AsyncFd::register has an fd-validity contract"
    )]
    fn register(ring: RingBuf<MapData>) -> Result<Self, EbpfError> {
        // SAFETY: the RingBuf owns its map fd and returns that same open fd from as_raw_fd
        // until it is dropped, and the AsyncFd owns the RingBuf, so the fd outlives the
        // registration.
        let ring = unsafe { AsyncFd::register(ring) }.map_err(|e| EbpfError::Poll(e.into()))?;
        Ok(Self { ring })
    }

    /// Waits for the next event. Records of an unexpected size are skipped with a warning.
    pub async fn next(&mut self) -> io::Result<EdgeEvent> {
        loop {
            let mut guard = self.ring.readable_mut().await?;
            let ring = guard.get_inner_mut();
            while let Some(record) = ring.next() {
                if let Some(event) = EdgeEvent::from_bytes(&record) {
                    return Ok(event);
                }
                warn!(
                    len = record.len(),
                    "ignoring edge event record of unexpected size"
                );
            }
            guard.clear_ready();
        }
    }
}

fn link_config(spec: &LinkSpec, ifindex: u32) -> Result<LinkConfig, EbpfError> {
    let mut config = LinkConfig {
        ifindex,
        heartbeat_port: spec.heartbeat_port,
        echo_port: spec.echo_port,
        node_id: spec.node_id,
        peer_node_id: spec.peer_node_id,
        replication_port_first: *spec.replication_ports.start(),
        replication_port_last: *spec.replication_ports.end(),
        silence_ns: u64::try_from(spec.silence.as_nanos()).unwrap_or(u64::MAX),
        ..LinkConfig::default()
    };
    if config.replication_port_first > config.replication_port_last {
        return Err(EbpfError::EmptyPortRange {
            interface: spec.interface.clone(),
            first: config.replication_port_first,
            last: config.replication_port_last,
        });
    }
    if let Some(v4) = spec.peer_ipv4 {
        config.peer_families |= PEER_IPV4;
        config.peer_ipv4 = v4.octets();
    }
    if let Some(v6) = spec.peer_ipv6 {
        config.peer_families |= PEER_IPV6;
        config.peer_ipv6 = v6.octets();
    }
    if config.peer_families == 0 {
        return Err(EbpfError::NoPeerAddress {
            interface: spec.interface.clone(),
        });
    }
    Ok(config)
}

fn ifindex(interface: &str) -> Result<u32, EbpfError> {
    nix::net::if_::if_nametoindex(interface).map_err(|errno| EbpfError::Interface {
        interface: interface.to_owned(),
        source: errno.into(),
    })
}

/// Attaches natively, falling back to generic XDP (with a warning) where the driver
/// has no native support.
fn attach_xdp(
    xdp: &mut Xdp,
    interface: &str,
    ifindex: u32,
) -> Result<(XdpMode, aya::programs::xdp::XdpLinkId), EbpfError> {
    match xdp.attach_to_if_index(ifindex, XdpMode::Driver) {
        Ok(id) => Ok((XdpMode::Driver, id)),
        Err(native) => {
            warn!(%interface, error = %native, "native XDP failed, using generic XDP (slower)");
            xdp.attach_to_if_index(ifindex, XdpMode::Skb)
                .map(|id| (XdpMode::Skb, id))
                .map_err(|source| EbpfError::Attach {
                    program: program_names::XDP_INGRESS,
                    interface: interface.to_owned(),
                    source,
                })
        }
    }
}

/// Attaches through TCX (kernel 6.6+, nothing to clean up); on older kernels the netlink
/// path needs a clsact qdisc, which is added only then (an existing one is fine).
fn attach_tc_egress(
    program: &mut SchedClassifier,
    interface: &str,
) -> Result<tc::SchedClassifierLinkId, EbpfError> {
    let attach = |program: &mut SchedClassifier| program.attach(interface, TcAttachType::Egress);
    attach(program).or_else(|_| {
        let _ = tc::qdisc_add_clsact(interface);
        attach(program).map_err(|source| EbpfError::Attach {
            program: program_names::TC_EGRESS,
            interface: interface.to_owned(),
            source,
        })
    })
}

fn program<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, EbpfError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(EbpfError::Missing(name))?
        .try_into()
        .map_err(|source| load_error(name, source))
}

fn take_map<M>(ebpf: &mut Ebpf, name: &'static str) -> Result<M, EbpfError>
where
    M: TryFrom<aya::maps::Map, Error = MapError>,
{
    ebpf.take_map(name)
        .ok_or(EbpfError::Missing(name))?
        .try_into()
        .map_err(|source| EbpfError::Map { map: name, source })
}

/// Every map of the object: all are pinned when pinning.
const MAP_NAMES: [&str; 4] = [
    map_names::LINK_TABLE,
    map_names::LINK_STATS,
    map_names::LAST_EVIDENCE,
    map_names::EDGE_EVENTS,
];

fn pin_link(fd_link: FdLink, path: &Path) -> Result<(), EbpfError> {
    fd_link.pin(path).map(drop).map_err(|error| EbpfError::Pin {
        program: "-",
        interface: path.display().to_string(),
        reason: error.to_string(),
    })
}

fn pin_error(
    program: &'static str,
    link: &AttachedLink,
    source: impl std::fmt::Display,
) -> EbpfError {
    EbpfError::Pin {
        program,
        interface: link.interface.clone(),
        reason: source.to_string(),
    }
}

fn attach_error(program: &'static str, link: &AttachedLink, source: ProgramError) -> EbpfError {
    EbpfError::Attach {
        program,
        interface: link.interface.clone(),
        source,
    }
}

fn load_error(program: &'static str, source: ProgramError) -> EbpfError {
    EbpfError::Attach {
        program,
        interface: "-".to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(interface: &str) -> LinkSpec {
        LinkSpec {
            interface: interface.to_owned(),
            peer_ipv4: Some(Ipv4Addr::new(192, 0, 2, 2)),
            peer_ipv6: None,
            heartbeat_port: 7400,
            echo_port: 7401,
            node_id: 1,
            peer_node_id: 2,
            replication_ports: 7788..=7799,
            silence: Duration::from_millis(100),
        }
    }

    #[test]
    fn an_empty_object_means_not_built() {
        let error = KernelEvidence::load_object(&[], &[spec("lo")], None).err();
        assert!(matches!(error, Some(EbpfError::NotBuilt)), "{error:?}");
        assert!(
            EbpfError::NotBuilt
                .to_string()
                .contains("cargo xtask build-ebpf")
        );
    }

    #[test]
    fn link_config_carries_peer_addresses_and_ports() {
        let mut both = spec("eth1");
        both.peer_ipv6 = Some("2001:db8::2".parse().unwrap());
        let config = link_config(&both, 7).unwrap();
        assert_eq!(config.ifindex, 7);
        assert_eq!(config.peer_families, PEER_IPV4 | PEER_IPV6);
        assert_eq!(config.peer_ipv4, [192, 0, 2, 2]);
        assert_eq!(config.peer_ipv6[0..2], [0x20, 0x01]);
        assert_eq!(
            (config.replication_port_first, config.replication_port_last),
            (7788, 7799)
        );
        assert_eq!(config.silence_ns, 100_000_000);
    }

    #[test]
    fn link_config_rejects_missing_peer_and_empty_range() {
        let mut none = spec("eth1");
        none.peer_ipv4 = None;
        assert!(matches!(
            link_config(&none, 3),
            Err(EbpfError::NoPeerAddress { interface }) if interface == "eth1"
        ));
        let mut empty = spec("eth1");
        #[expect(clippy::reversed_empty_ranges, reason = "the case under test")]
        {
            empty.replication_ports = 7799..=7788;
        }
        assert!(matches!(
            link_config(&empty, 3),
            Err(EbpfError::EmptyPortRange {
                first: 7799,
                last: 7788,
                ..
            })
        ));
    }
}

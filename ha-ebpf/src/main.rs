//! Kernel side: count the peer's signs of life on every link.
//!
//! - `ha_xdp_ingress` (XDP, every link interface): heartbeats, DRBD replication segments
//!   and echo replies from the peer; the peer's echo requests are turned around (XDP_TX).
//! - `ha_tc_egress` (tc clsact egress, every link interface): the same for what this node
//!   sends to the peer, so a local transmit stall is visible too.
//!
//! Invariant: both programs let every packet through unchanged (`XDP_PASS`,
//! `TC_ACT_PIPE`), whatever it contains, however short or malformed it is; the one
//! exception is a complete echo request from the peer, which is sent back as a reply.
#![no_std]
#![no_main]
#![expect(unsafe_code, reason = "eBPF: packet access, map pointers and helpers")]

mod account;
mod echo;
mod parse;

use aya_ebpf::{
    bindings::{TC_ACT_PIPE, xdp_action},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use parse::{Direction, Packet, Verdict};

#[xdp]
fn ha_xdp_ingress(ctx: XdpContext) -> u32 {
    let Some((slot, cfg)) = account::link_config(ctx.ingress_ifindex() as u32) else {
        return xdp_action::XDP_PASS;
    };
    let packet = Packet::new(ctx.data(), ctx.data_end());
    match parse::classify(packet, cfg, Direction::Ingress) {
        Some(Verdict::Evidence(evidence)) => {
            account::record(slot, cfg, Direction::Ingress, &evidence);
        }
        Some(Verdict::Reflect(request)) => {
            if echo::reflect(packet, &request, cfg.node_id).is_some() {
                account::record_reflection(slot);
                return xdp_action::XDP_TX;
            }
        }
        None => {}
    }
    xdp_action::XDP_PASS
}

#[classifier]
fn ha_tc_egress(ctx: TcContext) -> i32 {
    // SAFETY: `ctx.skb.skb` is the kernel's __sk_buff for this run, valid to read.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    if let Some((slot, cfg)) = account::link_config(ifindex)
        && let Some(Verdict::Evidence(evidence)) = parse::classify(
            Packet::new(ctx.data(), ctx.data_end()),
            cfg,
            Direction::Egress,
        )
    {
        account::record(slot, cfg, Direction::Egress, &evidence);
    }
    TC_ACT_PIPE
}

/// Does nothing but pass: the baseline that `cargo xtask bench` subtracts to get the
/// cost `ha_xdp_ingress` adds per packet. Never attached.
#[xdp]
fn ha_xdp_pass_baseline(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// Reads the precise kernel clock once and passes: the benchmark's measure of what the
/// one `bpf_ktime_get_ns()` per heartbeat costs on this machine. Never attached.
#[xdp]
fn ha_xdp_clock_baseline(_ctx: XdpContext) -> u32 {
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
    if now == 0 {
        xdp_action::XDP_ABORTED
    } else {
        xdp_action::XDP_PASS
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

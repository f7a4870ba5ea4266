//! The lab's client: an ICMP echo to the VIP every millisecond, and who answered.
//!
//! Requests go out through a raw ICMP socket (the kernel resolves the VIP's MAC with
//! ARP as any client does); answers are read from an `AF_PACKET` socket, which shows the
//! Ethernet source of each echo reply, so every answer is attributed to the node whose
//! MAC sent it. [`outage`] turns the answers into the client-observed outage of a
//! failover: the last answer from the old node to the first from the new one.
//!
//! Times are CLOCK_MONOTONIC nanoseconds, the clock of the daemons' event lines, so the
//! probes and the daemons' events share one timeline. The probing thread stops when
//! [`Prober::stop`] is called or after [`Prober::LIMIT`], whichever comes first.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ha_daemon::core::icmp;
use ha_daemon::io::clock::monotonic_ns;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, recv, sendto, socket,
};

use crate::netns::NetNs;

/// One echo reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The request's number (0 = the first request sent).
    pub seq: u64,
    /// When the request was sent.
    pub sent_ns: u64,
    /// When the reply was read.
    pub received_ns: u64,
    /// The Ethernet source of the reply: who holds the VIP.
    pub mac: [u8; 6],
}

/// What a probing run saw.
#[derive(Clone, Debug, Default)]
pub struct Probes {
    /// Requests sent.
    pub sent: u64,
    /// Replies, in the order read.
    pub answers: Vec<Answer>,
}

/// A client probing one address from its namespace, until stopped.
pub struct Prober {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    thread: JoinHandle<Result<u64, String>>,
}

impl Prober {
    /// The longest a prober runs without being stopped.
    pub const LIMIT: Duration = Duration::from_secs(900);

    /// Starts probing `target` from `client` every `every`.
    pub fn start(client: &NetNs, target: Ipv4Addr, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let answers = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&answers);
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let ns = client.name().to_owned();
        let thread = std::thread::spawn(move || {
            let sockets = open_in(&ns);
            let _ = ready_tx.send(());
            let (icmp, packets) = sockets?;
            probe(&icmp, &packets, (target, every), &flag, &record)
        });
        // The sockets exist (or failed) before the caller goes on.
        let _ = ready.recv();
        Self {
            stop,
            answers,
            thread,
        }
    }

    /// The answers so far.
    pub fn answers_so_far(&self) -> Vec<Answer> {
        lock(&self.answers).clone()
    }

    /// Stops probing and returns what was seen.
    pub fn stop(self) -> Result<Probes, String> {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self
            .thread
            .join()
            .map_err(|_| "the probing thread panicked".to_owned())??;
        Ok(Probes {
            sent,
            answers: lock(&self.answers).clone(),
        })
    }
}

/// The raw ICMP socket (send) and the `AF_PACKET` socket (receive), opened inside the
/// namespace `ns` (sockets stay in the namespace of the thread that opened them).
fn open_in(ns: &str) -> Result<(OwnedFd, OwnedFd), String> {
    let target = std::fs::File::open(format!("/run/netns/{ns}"))
        .map_err(|e| format!("open netns {ns}: {e}"))?;
    nix::sched::setns(&target, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("enter netns {ns}: {e}"))?;
    let icmp = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK,
        SockProtocol::Icmp,
    )
    .map_err(|e| format!("raw ICMP socket: {e}"))?;
    let packets = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK,
        SockProtocol::EthAll,
    )
    .map_err(|e| format!("AF_PACKET socket: {e}"))?;
    Ok((icmp, packets))
}

fn lock(answers: &Mutex<Vec<Answer>>) -> std::sync::MutexGuard<'_, Vec<Answer>> {
    answers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends a request every `every` and records each reply in `answers` until `stop` (or
/// [`Prober::LIMIT`]); returns how many requests were sent.
fn probe(
    icmp: &OwnedFd,
    packets: &OwnedFd,
    (target, every): (Ipv4Addr, Duration),
    stop: &AtomicBool,
    answers: &Mutex<Vec<Answer>>,
) -> Result<u64, String> {
    let id = u16::try_from(std::process::id() & 0xffff).unwrap_or(0);
    let to = SockaddrIn::from(SocketAddrV4::new(target, 0));
    let every_ns = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX).max(1);
    let began = monotonic_ns();
    let limit = began + u64::try_from(Prober::LIMIT.as_nanos()).unwrap_or(u64::MAX);
    let mut sent_at: Vec<u64> = Vec::new();
    let mut frame = [0u8; 2048];
    let mut next = began;
    while !stop.load(Ordering::Relaxed) && monotonic_ns() < limit {
        let now = monotonic_ns();
        if now >= next {
            let seq = sent_at.len() as u64;
            let request = icmp::echo_request(target.into(), id, (seq & 0xffff) as u16);
            // An unreachable VIP (no ARP answer yet) is part of an outage, not an error.
            let _ = sendto(icmp.as_raw_fd(), &request, &to, MsgFlags::empty());
            sent_at.push(now);
            next += every_ns;
            // Drain the raw socket's copies of the replies: answers are read from the
            // AF_PACKET socket, which knows who sent them.
            while recv(icmp.as_raw_fd(), &mut frame, MsgFlags::MSG_DONTWAIT).is_ok() {}
        }
        let wait_ms = next.saturating_sub(monotonic_ns()).div_ceil(1_000_000);
        let mut fds = [PollFd::new(packets.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(wait_ms.min(100)).unwrap_or(PollTimeout::ZERO);
        if poll(&mut fds, timeout).map_err(|e| format!("poll: {e}"))? == 0 {
            continue;
        }
        while let Ok(len) = recv(packets.as_raw_fd(), &mut frame, MsgFlags::MSG_DONTWAIT) {
            let received_ns = monotonic_ns();
            if let Some((mac, seq16)) = echo_reply(&frame[..len], target, id) {
                let sent = sent_at.len() as u64;
                // The newest request with these low 16 bits.
                let back = sent.wrapping_sub(1).wrapping_sub(u64::from(seq16)) & 0xffff;
                let Some(seq) = sent.checked_sub(1 + back) else {
                    continue;
                };
                lock(answers).push(Answer {
                    seq,
                    sent_ns: sent_at[usize::try_from(seq).unwrap_or(usize::MAX)],
                    received_ns,
                    mac,
                });
            }
        }
    }
    Ok(sent_at.len() as u64)
}

/// The Ethernet source and ICMP sequence number of `frame` when it is an IPv4 echo reply
/// from `from` to our identifier `id`.
pub fn echo_reply(frame: &[u8], from: Ipv4Addr, id: u16) -> Option<([u8; 6], u16)> {
    const ETH: usize = 14;
    if frame.len() < ETH + 20 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[ETH..];
    let header = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ip[9] != 1 || ip[12..16] != from.octets() || ip.len() < header + 8 {
        return None;
    }
    let message = &ip[header..];
    let (kind, ident) = (message[0], u16::from_be_bytes([message[4], message[5]]));
    if kind != 0 || ident != id {
        return None;
    }
    let mut mac = [0; 6];
    mac.copy_from_slice(&frame[6..12]);
    Some((mac, u16::from_be_bytes([message[6], message[7]])))
}

/// A failover as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    /// The last answer from the old node (received).
    pub last_old: Answer,
    /// The first answer from the new node (received).
    pub first_new: Answer,
    /// Requests sent between those two that got no answer.
    pub unanswered: u64,
}

impl Outage {
    /// From the last answer of the old node to the first of the new one.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(
            self.first_new
                .received_ns
                .saturating_sub(self.last_old.received_ns),
        )
    }
}

/// The outage of a move of the VIP from `old` to `new`: the first answer from `new`
/// and the last answer from `old` before it. An error when `new` never answered, when
/// `old` never answered before it, or when `old` answered after `new` did (the VIP was
/// in two places).
pub fn outage(answers: &[Answer], old: [u8; 6], new: [u8; 6]) -> Result<Outage, String> {
    let first_new = *answers
        .iter()
        .find(|a| a.mac == new)
        .ok_or("the new node never answered")?;
    let last_old = *answers
        .iter()
        .rfind(|a| a.mac == old && a.received_ns <= first_new.received_ns)
        .ok_or("the old node never answered before the new one")?;
    if let Some(late) = answers
        .iter()
        .find(|a| a.mac == old && a.received_ns > first_new.received_ns)
    {
        return Err(format!(
            "the old node answered request {} after the new node answered request {}: \
             the VIP was in two places",
            late.seq, first_new.seq
        ));
    }
    let answered = |seq: u64| answers.iter().any(|a| a.seq == seq);
    let unanswered = (last_old.seq + 1..first_new.seq)
        .filter(|seq| !answered(*seq))
        .count() as u64;
    Ok(Outage {
        last_old,
        first_new,
        unanswered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    fn answer(seq: u64, mac: [u8; 6]) -> Answer {
        Answer {
            seq,
            sent_ns: seq * 1_000_000,
            received_ns: seq * 1_000_000 + 100_000,
            mac,
        }
    }

    #[test]
    fn the_outage_runs_from_the_last_old_answer_to_the_first_new_one() {
        let answers = [answer(0, A), answer(1, A), answer(7, B), answer(8, B)];
        let outage = outage(&answers, A, B).expect("an outage");
        assert_eq!((outage.last_old.seq, outage.first_new.seq), (1, 7));
        assert_eq!(outage.duration(), Duration::from_millis(6));
        assert_eq!(outage.unanswered, 5);
    }

    #[test]
    fn an_old_answer_after_a_new_one_is_two_holders() {
        let answers = [answer(0, A), answer(3, B), answer(4, A)];
        let error = outage(&answers, A, B).expect_err("two holders");
        assert!(error.contains("two places"), "{error}");
    }

    #[test]
    fn no_new_answer_is_no_failover() {
        let error = outage(&[answer(0, A)], A, B).expect_err("no failover");
        assert!(error.contains("never answered"), "{error}");
    }

    fn reply_frame(from: Ipv4Addr, id: u16, seq: u16, kind: u8) -> Vec<u8> {
        let mut frame = vec![0; 14 + 20 + 8];
        frame[6..12].copy_from_slice(&A);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[14 + 9] = 1;
        frame[14 + 12..14 + 16].copy_from_slice(&from.octets());
        frame[34] = kind;
        frame[38..40].copy_from_slice(&id.to_be_bytes());
        frame[40..42].copy_from_slice(&seq.to_be_bytes());
        frame
    }

    #[test]
    fn only_echo_replies_from_the_target_to_us_count() {
        let vip = Ipv4Addr::new(192, 0, 2, 10);
        assert_eq!(
            echo_reply(&reply_frame(vip, 9, 300, 0), vip, 9),
            Some((A, 300))
        );
        assert_eq!(echo_reply(&reply_frame(vip, 8, 300, 0), vip, 9), None);
        assert_eq!(echo_reply(&reply_frame(vip, 9, 300, 8), vip, 9), None);
        let other = Ipv4Addr::new(192, 0, 2, 11);
        assert_eq!(echo_reply(&reply_frame(other, 9, 300, 0), vip, 9), None);
        assert_eq!(echo_reply(&reply_frame(vip, 9, 300, 0)[..30], vip, 9), None);
    }
}

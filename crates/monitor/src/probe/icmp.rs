//! ICMP echo over one shared socket (surge-ping's `Client`).
//!
//! surge-ping runs one receive task per socket and hands each reply to the request waiting
//! under the key (target IP, identifier, sequence); a second request under a key already
//! waiting is refused (`IdenticalRequests`), and a reply nobody waits for is dropped. So the
//! one thing this module must get right is that two echo requests in flight to the same IP
//! never share (identifier, sequence); see [`echo_key`].

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rustix::net::sockopt;
use surge_ping::{
    Client, Config, ICMP, IcmpPacket, Icmpv4Packet, PingIdentifier, PingSequence, SurgeError,
};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::warn;

use super::{ProbeError, ProbeOutcome, micros};

/// The receive buffer asked for. Replies to a burst queue in the socket while the one
/// receive task drains them. At the kernel default (208 KiB) a 1,000-target burst lost most
/// replies.
/// The kernel accounts twice the size asked for, 32 MiB: room for 20,000 loopback echo
/// exchanges that nobody has read yet (see `ECHO_REQUESTS_IN_FLIGHT_MAX`). Memory is charged
/// only while packets wait.
const RECEIVE_BUFFER_BYTES: usize = 16 << 20;
/// Buffer one queued ICMP packet takes (its skb's truesize), measured on this kernel with a
/// 16-byte payload: 832 bytes. A loopback exchange queues two, the reply and a copy of the
/// request, should the socket refuse [`ANSWER_TYPES`]' filter.
const QUEUED_PACKET_BYTES: usize = 832;
/// Echo requests in flight at once through one prober; an attempt waits for room before its
/// timeout starts. Even if the receive task read nothing, the replies to this many requests
/// (and the copies of the requests themselves, on loopback) fit in the receive buffer:
/// 16,384 × 2 × 832 bytes = 26 MiB of the 32 MiB, the rest a margin for other ICMP traffic
/// every raw socket on the host also receives. Without the bound, 50,000 attempts started at
/// once on a 2-worker runtime lost a tenth of their replies.
const ECHO_REQUESTS_IN_FLIGHT_MAX: u32 = 16_384;
const _: () = assert!(
    ECHO_REQUESTS_IN_FLIGHT_MAX as usize * 2 * QUEUED_PACKET_BYTES <= 2 * RECEIVE_BUFFER_BYTES
);
/// Echo payload: surge-ping matches replies by header fields only, and a small packet takes
/// less of the receive buffer. 16 bytes is enough for any host to answer normally.
const ECHO_PAYLOAD: [u8; 16] = [0; 16];
/// How many times one echo request draws a fresh number when surge-ping refuses its key as
/// already waiting. Impossible on a raw socket (see `echo_key`); on an unprivileged ping
/// socket the kernel owns the identifier and only the 16-bit sequence is ours, so after
/// 65,536 requests within one timeout a key can repeat, and one fresh draw resolves it.
const IDENTICAL_KEY_REDRAWS_MAX: u32 = 3;
/// How late an attempt's timer may wake before the monitor counts itself starved of CPU (see
/// `starved_deadline`): a busy runtime's timers wake within milliseconds of their time.
const TIMER_LATENESS_SLACK: Duration = Duration::from_millis(100);
/// How long past its timeout a starved attempt may wait for replies that came in time.
const STARVED_WAIT_MAX: Duration = Duration::from_secs(5);
/// How long an attempt whose time ran out waits, at a time, while packets wait unread in the
/// socket (see [`keep_waiting`]): the receive task drains what waits in well under this when
/// it runs at all.
const UNREAD_WAIT: Duration = Duration::from_millis(10);
/// ICMPv4 types (RFC 792).
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_DESTINATION_UNREACHABLE: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_PARAMETER_PROBLEM: u8 = 12;
/// The ICMP types the receive task is given on a raw socket: the answers to an echo request.
/// The kernel drops every other type before queuing it (`ICMP_FILTER`). Without the filter a
/// raw socket receives every ICMP packet the host receives, and that includes, on loopback, a
/// copy of each echo request it sent: the receive task read, decoded and dropped two packets
/// per loopback probe, and the copies took half the receive buffer.
const ANSWER_TYPES: [u8; 4] = [
    ICMP_ECHO_REPLY,
    ICMP_DESTINATION_UNREACHABLE,
    ICMP_TIME_EXCEEDED,
    ICMP_PARAMETER_PROBLEM,
];
/// `ICMP_FILTER` of `<linux/icmp.h>`, an option of raw ICMPv4 sockets at level `SOL_RAW`: a
/// 32-bit mask of the ICMP types (below 32) that the socket is not given. libc does not name
/// it.
const ICMP_FILTER: libc::c_int = 1;

/// The shared socket and the numbering of the echo requests sent through it.
pub(super) struct EchoSocket {
    client: Client,
    /// Counts echo requests sent through this socket, wrapping at 2^32; request number `n`
    /// to a target goes out under `echo_key(identifier_base(target), n)`.
    next_request: AtomicU32,
    /// Keys the hash that gives each target IP its identifier base; random per prober, so
    /// two probers on one host (every raw ICMP socket receives every ICMP reply) rarely use
    /// the same identifiers for the same IP and do not take each other's replies.
    identifier_key: RandomState,
    receive_buffer_bytes: usize,
    /// The same socket, for asking how much waits unread in it (a duplicate descriptor).
    queue: OwnedFd,
    /// One permit per echo request in flight, `ECHO_REQUESTS_IN_FLIGHT_MAX` in all: an
    /// attempt takes a permit per request before sending and gives them back when it ends
    /// (first reply, all failed, or timeout). Never closed.
    in_flight: Semaphore,
}

impl EchoSocket {
    pub(super) fn open() -> Result<EchoSocket, ProbeError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ProbeError::NoRuntime);
        }
        // RAW first: as root the identifier is ours, and `echo_key` relies on that.
        // surge-ping falls back to an unprivileged DGRAM ping socket if RAW is refused.
        let config = Config::builder()
            .kind(ICMP::V4)
            .sock_type_hint(socket2::Type::RAW)
            .build();
        let client = Client::new(&config).map_err(ProbeError::Socket)?;
        let socket = client.get_socket();
        let queue = duplicate(socket.get_native_sock()).map_err(ProbeError::Socket)?;
        if socket.get_type() == socket2::Type::RAW {
            if let Err(error) = receive_only(queue.as_fd(), &ANSWER_TYPES) {
                warn!(
                    %error,
                    "The raw ICMP socket refused its filter: its receive task also reads every \
                     other ICMP packet the host receives."
                );
            }
        } else {
            // A ping socket is given only the answers to its own requests.
            warn!(
                "No raw ICMP socket (not root?): using an unprivileged ping socket, whose \
                 identifier the kernel picks."
            );
        }
        let receive_buffer_bytes =
            raise_receive_buffer(queue.as_fd()).map_err(ProbeError::ReceiveBuffer)?;
        Ok(EchoSocket {
            client,
            next_request: AtomicU32::new(0),
            identifier_key: RandomState::new(),
            receive_buffer_bytes,
            queue,
            in_flight: Semaphore::new(ECHO_REQUESTS_IN_FLIGHT_MAX as usize),
        })
    }

    pub(super) fn receive_buffer_bytes(&self) -> usize {
        self.receive_buffer_bytes
    }

    pub(super) async fn ping(&self, ip: Ipv4Addr, count: u32, timeout: Duration) -> ProbeOutcome {
        // At least one request, and never more than may be in flight at once (the VNFD
        // allows up to 1,000 per attempt).
        let count = count.clamp(1, ECHO_REQUESTS_IN_FLIGHT_MAX);
        let _permits = self
            .in_flight
            .acquire_many(count)
            .await
            .expect("the in-flight semaphore is never closed");
        let [b0, b1, ..] = self.identifier_key.hash_one(ip).to_le_bytes();
        let base = u16::from_le_bytes([b0, b1]);
        let first = self.next_request.fetch_add(count, Ordering::Relaxed);
        let mut deadline = Instant::now() + timeout;
        let last = deadline + STARVED_WAIT_MAX;
        // Polled for the first time together, so every request is registered and sent
        // before any is awaited: back to back. Each waits until `last`: the attempt decides
        // when it has waited long enough.
        let mut requests: FuturesUnordered<_> = (0..count)
            .map(|i| self.echo(ip, base, first.wrapping_add(i), timeout + STARVED_WAIT_MAX))
            .collect();
        let mut failure = None;
        let rtt = loop {
            match tokio::time::timeout_at(deadline, first_reply(&mut requests, &mut failure)).await
            {
                Ok(answer) => break answer,
                Err(_) => match keep_waiting(deadline, Instant::now(), last, || self.unread()) {
                    Some(later) => deadline = later,
                    None => break None,
                },
            }
        };
        match rtt {
            Some(rtt) => ProbeOutcome::Up {
                rtt_us: micros(rtt),
            },
            // Every request failed early (ICMP errors, send errors), or time ran out; the
            // requests still waiting are dropped, which unregisters them.
            None => ProbeOutcome::Down {
                reason: failure.unwrap_or_else(|| no_reply(count, timeout)),
            },
        }
    }

    /// Whether packets wait unread in the socket (`FIONREAD`: the size of the next one). An
    /// error counts as none, as before this was asked.
    fn unread(&self) -> bool {
        rustix::io::ioctl_fionread(&self.queue).is_ok_and(|bytes| bytes > 0)
    }

    /// One echo request, number `n`: the round trip of its reply, or why there was none.
    async fn echo(
        &self,
        ip: Ipv4Addr,
        base: u16,
        mut n: u32,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let mut redraws = 0;
        loop {
            let (identifier, sequence) = echo_key(base, n);
            let mut pinger = self
                .client
                .pinger(IpAddr::V4(ip), PingIdentifier(identifier))
                .await;
            pinger.timeout(timeout);
            return match pinger.ping(PingSequence(sequence), &ECHO_PAYLOAD).await {
                Ok((IcmpPacket::V4(packet), rtt)) if is_echo_reply(&packet) => Ok(rtt),
                Ok((IcmpPacket::V4(packet), _)) => Err(describe_icmp_error(&packet)),
                Ok((IcmpPacket::V6(_), _)) => Err("an ICMPv6 answer to ICMPv4".to_owned()),
                Err(SurgeError::Timeout { .. }) => Err(no_reply(1, timeout)),
                Err(SurgeError::IdenticalRequests { .. })
                    if redraws < IDENTICAL_KEY_REDRAWS_MAX =>
                {
                    redraws += 1;
                    n = self.next_request.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(SurgeError::IOError(e)) => Err(format!("cannot send the echo request: {e}")),
                Err(e) => Err(format!("echo request failed: {e}")),
            };
        }
    }
}

/// The round trip of the first reply among `requests`, or none once all have failed (the last
/// failure's reason in `failure`). Cancelled, it leaves the requests still waiting in place.
async fn first_reply<F>(
    requests: &mut FuturesUnordered<F>,
    failure: &mut Option<String>,
) -> Option<Duration>
where
    F: Future<Output = Result<Duration, String>>,
{
    while let Some(answer) = requests.next().await {
        match answer {
            Ok(rtt) => return Some(rtt),
            Err(reason) => *failure = Some(reason),
        }
    }
    None
}

/// Whether an attempt whose time ran out at `deadline` was woken so late that the monitor
/// must have been starved of CPU, and until when it then waits for a reply (never past
/// `last`). A starved monitor's replies came in time and wait unread in the socket, behind
/// every other attempt woken by its own timer: a task reads them, and the attempts would
/// otherwise all be called down before it runs (10,000 of 10,000 attempts on loopback, held
/// 600 ms on one thread, in `replies_that_came_while_the_prober_was_starved_count`). It
/// waits as long again as it was late, which is the time the replies had to pile up, and
/// again while it keeps being woken late. A reply that came after the timeout, while the
/// monitor was starved, counts too: its arrival is known only as the moment it was read, so
/// the two cannot be told apart, and a VDU called up wrongly is probed again an interval later,
/// whereas one called down wrongly may be healed.
fn starved_deadline(deadline: Instant, woken: Instant, last: Instant) -> Option<Instant> {
    let late = woken.saturating_duration_since(deadline);
    (late > TIMER_LATENESS_SLACK && deadline < last).then(|| (woken + late).min(last))
}

/// Until when an attempt whose time ran out at `deadline`, woken at `woken`, waits for a reply:
/// as a starved one ([`starved_deadline`]), or [`UNREAD_WAIT`] more while packets wait unread
/// in the socket (`unread`, asked only when the timer was on time), never past `last`; `None`
/// when its time is up.
///
/// Why the second: the timer can wake on time while the one task that reads the socket runs
/// behind, and then replies that came in time wait unread. With 40,000 VDUs on 4 monitors
/// and the machine at load 8 to 10 during their creates, 542 VDUs that answered were called
/// down (`ops/bench-fleet --vdus 40000`, one run); with this wait, none in two runs, at load
/// up to 15. The socket also receives every other ICMP packet on the host, so a packet waiting
/// does not prove a reply to this attempt waits; the receive task, when it runs, drains such
/// packets in well under [`UNREAD_WAIT`], so that costs a down target a few such waits at
/// most.
fn keep_waiting(
    deadline: Instant,
    woken: Instant,
    last: Instant,
    unread: impl FnOnce() -> bool,
) -> Option<Instant> {
    starved_deadline(deadline, woken, last)
        .or_else(|| (woken < last && unread()).then(|| (woken + UNREAD_WAIT).min(last)))
}

/// A descriptor of its own for surge-ping's socket, which shows only its `RawFd`: every
/// socket-option and ioctl API wants a borrowed descriptor, which a `RawFd` becomes only
/// through `unsafe`, kept to this function.
fn duplicate(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: `fd` is the socket of the `Client` that the caller holds, open for the whole of
    // this call; the borrow ends with it, and the duplicate (`F_DUPFD_CLOEXEC`) is a new
    // descriptor of the same socket that this module owns.
    #[expect(unsafe_code, reason = "surge-ping exposes its socket only as a RawFd")]
    let socket = unsafe { BorrowedFd::borrow_raw(fd) };
    socket.try_clone_to_owned()
}

/// Has the kernel give the raw ICMPv4 `socket` only packets of the ICMP `types`
/// (`ICMP_FILTER`); a raw socket is otherwise given every ICMP packet the host receives.
fn receive_only(socket: BorrowedFd<'_>, types: &[u8]) -> std::io::Result<()> {
    let given = types.iter().fold(0u32, |mask, &kind| mask | 1 << kind);
    let filtered_out: u32 = !given;
    let size = libc::socklen_t::try_from(size_of::<u32>()).expect("4 fits");
    // SAFETY: `socket` is open for the whole call (it is borrowed), and the option's value is
    // the `u32` the kernel reads (`struct icmp_filter`), alive for the call and `size` bytes
    // long.
    #[expect(unsafe_code, reason = "neither rustix nor socket2 sets ICMP_FILTER")]
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_RAW,
            ICMP_FILTER,
            (&raw const filtered_out).cast(),
            size,
        )
    };
    if set == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The (identifier, sequence) of echo request number `n` to a target whose identifier base
/// is `base`: the identifier is the base plus the high 16 bits of `n`, the sequence the low
/// 16 bits.
///
/// Why two requests in flight to one IP never share a key: for a fixed target the base is
/// fixed, and `n ↦ (base + n_high, n_low)` is a bijection from the 2^32 request numbers onto
/// the 2^32 (identifier, sequence) pairs (its inverse is `n = (identifier - base) << 16 |
/// sequence`). Numbers come from one counter per prober, so two requests to the same IP
/// share a key only if 2^32 requests were numbered between them, both still in flight. An
/// attempt lasts at most its timeout, which the VNFD caps at one hour: a repeat would need
/// 1.2 million echo requests a second for that whole hour, 16 times fping's rate on this
/// machine. The same argument keeps a late reply of an abandoned request from being taken
/// for a later request's. Targets with different IPs never clash whatever their keys,
/// because the IP is part of surge-ping's key: identifiers need not differ between targets,
/// so there is no limit of 65,535 targets (nor any other) to probe at once.
fn echo_key(base: u16, n: u32) -> (u16, u16) {
    let [low0, low1, high0, high1] = n.to_le_bytes();
    (
        base.wrapping_add(u16::from_le_bytes([high0, high1])),
        u16::from_le_bytes([low0, low1]),
    )
}

fn is_echo_reply(packet: &Icmpv4Packet) -> bool {
    packet.get_icmp_type().0 == ICMP_ECHO_REPLY
}

/// An ICMP error quoting one of our requests, as a reason.
fn describe_icmp_error(packet: &Icmpv4Packet) -> String {
    let what = match packet.get_icmp_type().0 {
        ICMP_DESTINATION_UNREACHABLE => "destination unreachable",
        ICMP_TIME_EXCEEDED => "time exceeded",
        ICMP_PARAMETER_PROBLEM => "parameter problem",
        _ => "unexpected ICMP answer",
    };
    format!(
        "{what} (type {}, code {}) from {}",
        packet.get_icmp_type().0,
        packet.get_icmp_code().0,
        packet.get_source()
    )
}

fn no_reply(count: u32, timeout: Duration) -> String {
    let requests = if count == 1 { "request" } else { "requests" };
    format!(
        "no echo reply within {} ms ({count} {requests})",
        timeout.as_millis()
    )
}

/// Raises the socket's receive buffer to `RECEIVE_BUFFER_BYTES` and answers the size the
/// kernel then accounts. `SO_RCVBUF` is capped at `net.core.rmem_max` (4 MiB here); as root
/// (`CAP_NET_ADMIN`) `SO_RCVBUFFORCE` goes past the cap. Without it the capped size stays,
/// with a warning: replies to large bursts may then be lost.
///
fn raise_receive_buffer(socket: BorrowedFd<'_>) -> std::io::Result<usize> {
    // The kernel stores (and getsockopt reports) twice the size set.
    let wanted = 2 * RECEIVE_BUFFER_BYTES;
    sockopt::set_socket_recv_buffer_size(socket, RECEIVE_BUFFER_BYTES)?;
    let capped = sockopt::socket_recv_buffer_size(socket)?;
    if capped >= wanted {
        return Ok(capped);
    }
    if let Err(errno) = sockopt::set_socket_recv_buffer_size_force(socket, RECEIVE_BUFFER_BYTES) {
        warn!(
            receive_buffer_bytes = capped,
            wanted_bytes = wanted,
            error = %errno,
            "ICMP receive buffer capped by net.core.rmem_max; large probe bursts may lose replies."
        );
        return Ok(capped);
    }
    Ok(sockopt::socket_recv_buffer_size(socket)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ICMPv4 type of an echo request (RFC 792).
    const ICMP_ECHO_REQUEST: u8 = 8;

    /// The inverse named in `echo_key`'s argument.
    fn request_number(base: u16, (identifier, sequence): (u16, u16)) -> u32 {
        (u32::from(identifier.wrapping_sub(base)) << 16) | u32::from(sequence)
    }

    #[test]
    fn echo_key_is_invertible_for_a_fixed_target() {
        for base in [0, 1, 0x7fff, 0xfffe, 0xffff] {
            for n in [
                0,
                1,
                0xffff,
                0x1_0000,
                0x1_0001,
                0xdead_beef,
                u32::MAX - 1,
                u32::MAX,
            ] {
                assert_eq!(request_number(base, echo_key(base, n)), n, "{base} {n}");
            }
        }
    }

    #[test]
    fn numbers_less_than_2_pow_32_apart_never_share_a_key() {
        // A window of numbers that crosses both the sequence wrap and the counter wrap.
        let base = 0xfff0;
        let start = u32::MAX - 70_000;
        let mut keys = std::collections::HashSet::new();
        for i in 0..140_000u32 {
            assert!(keys.insert(echo_key(base, start.wrapping_add(i))), "{i}");
        }
    }

    #[test]
    fn a_timer_woken_late_waits_as_long_again_until_the_last_moment() {
        let deadline = Instant::now();
        let last = deadline + STARVED_WAIT_MAX;
        let ms = Duration::from_millis;
        // On time, or late within the slack: the time is up.
        assert_eq!(starved_deadline(deadline, deadline, last), None);
        assert_eq!(
            starved_deadline(deadline, deadline + TIMER_LATENESS_SLACK, last),
            None
        );
        // Starved for 700 ms: 700 ms more, counted from the wake.
        let woken = deadline + ms(700);
        assert_eq!(
            starved_deadline(deadline, woken, last),
            Some(woken + ms(700))
        );
        // Never past the last moment, and not again once there.
        let woken = deadline + ms(3_000);
        assert_eq!(starved_deadline(deadline, woken, last), Some(last));
        assert_eq!(starved_deadline(last, last + ms(700), last), None);
    }

    #[test]
    fn a_timer_on_time_waits_a_little_more_while_packets_wait_unread() {
        let deadline = Instant::now();
        let last = deadline + STARVED_WAIT_MAX;
        let ms = Duration::from_millis;
        let none_waits = || false;
        let some_wait = || true;
        assert_eq!(keep_waiting(deadline, deadline, last, none_waits), None);
        assert_eq!(
            keep_waiting(deadline, deadline + ms(5), last, some_wait),
            Some(deadline + ms(5) + UNREAD_WAIT)
        );
        // Never past the last moment, and not again once there.
        let woken = last - ms(2);
        assert_eq!(keep_waiting(deadline, woken, last, some_wait), Some(last));
        assert_eq!(keep_waiting(last, last, last, some_wait), None);
        // Starved: as before, without asking the socket.
        let woken = deadline + ms(700);
        let unasked = || -> bool { panic!("the socket is not asked") };
        assert_eq!(
            keep_waiting(deadline, woken, last, unasked),
            Some(woken + ms(700))
        );
    }

    #[test]
    fn a_duplicate_descriptor_sees_what_waits_unread_in_the_socket() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let queue = duplicate(std::os::fd::AsRawFd::as_raw_fd(&receiver)).unwrap();
        let unread = || rustix::io::ioctl_fionread(&queue).unwrap();
        assert_eq!(unread(), 0);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender
            .send_to(&ECHO_PAYLOAD, receiver.local_addr().unwrap())
            .unwrap();
        // Waits for the datagram itself (a peek reads nothing), at most a second.
        receiver
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        receiver.peek(&mut [0; 64]).unwrap();
        assert_eq!(unread(), ECHO_PAYLOAD.len() as u64);
        let mut buffer = [0; 64];
        receiver.recv(&mut buffer).unwrap();
        assert_eq!(unread(), 0, "read: nothing waits");
    }

    /// The ICMP types of the packets carrying `identifier` that a raw socket is given, in
    /// order, after it sends an echo request to 127.0.0.1, until the reply (at most a second
    /// per packet). Every raw ICMP socket on the host is given every ICMP packet, others'
    /// too: the identifier picks out this one's.
    fn types_given_around_an_echo(filter: Option<[u8; 4]>, identifier: u16) -> Vec<u8> {
        use std::io::Read;
        use std::net::SocketAddrV4;
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::ICMPV4),
        )
        .expect("a raw ICMP socket (the tests run as root)");
        if let Some(types) = filter {
            receive_only(socket.as_fd(), &types).unwrap();
        }
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut request = [ICMP_ECHO_REQUEST, 0, 0, 0, 0, 0, 0, 1];
        request[4..6].copy_from_slice(&identifier.to_be_bytes());
        let sum = checksum(&request);
        request[2..4].copy_from_slice(&sum.to_be_bytes());
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
        socket.send_to(&request, &to.into()).unwrap();
        let mut given = Vec::new();
        let mut packet = [0; 2048];
        while !given.contains(&ICMP_ECHO_REPLY) {
            let size = (&socket)
                .read(&mut packet)
                .expect("the echo reply within a second");
            // An IPv4 header (its length in 32-bit words in the low nibble), then the ICMP.
            let icmp = &packet[usize::from(packet[0] & 0x0f) * 4..size];
            if icmp.len() >= 8 && icmp[4..6] == identifier.to_be_bytes() {
                given.push(icmp[0]);
            }
        }
        given
    }

    /// The Internet checksum (RFC 1071) of an even-sized packet whose checksum field is zero.
    fn checksum(packet: &[u8]) -> u16 {
        let sum: u32 = packet
            .chunks(2)
            .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
            .sum();
        let folded = (sum & 0xffff) + (sum >> 16);
        !u16::try_from((folded & 0xffff) + (folded >> 16)).unwrap()
    }

    #[test]
    fn a_filtered_raw_socket_is_given_the_reply_but_not_its_own_request() {
        let identifier = u16::try_from(std::process::id() & 0xffff).unwrap();
        // Unfiltered, loopback gives the socket its own request before the reply.
        assert_eq!(
            types_given_around_an_echo(None, identifier),
            [ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY]
        );
        assert_eq!(
            types_given_around_an_echo(Some(ANSWER_TYPES), identifier.wrapping_add(1)),
            [ICMP_ECHO_REPLY]
        );
    }

    #[test]
    fn the_sequence_wrap_moves_to_the_next_identifier() {
        assert_eq!(echo_key(7, 0xffff), (7, 0xffff));
        assert_eq!(echo_key(7, 0x1_0000), (8, 0));
        assert_eq!(echo_key(0xffff, 0x1_0000), (0, 0));
    }
}

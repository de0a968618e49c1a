//! The prober: the monitor's runtime I/O for one probe attempt of a VDU's management IP,
//! ICMP echo (`ping`) or an HTTP `GET /` (`http_ping`).
//!
//! One [`Prober`] serves a whole monitor process: every echo request goes out on, and every
//! reply comes back through, one shared raw ICMPv4 socket (a socket per target collapsed at
//! a few hundred targets, see DESIGN.md "Limits and figures"). The prober decides nothing:
//! it answers [`ProbeOutcome`] for one attempt; retries, thresholds and actions belong to
//! the monitor's core. It never sends anywhere but the address it is given.

mod http;
mod icmp;

use std::fmt;
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

/// What one probe attempt saw: `Up { rtt_us }` (the round trip of the first answer) or
/// `Down { reason }`. It travels in monitor events, so it lives in the events crate.
pub use events::monitor::ProbeOutcome;

use events::monitor::Target;
use events::spec::MonitorDriver;

/// The port of an `http_ping` policy that names none: HTTP's.
const HTTP_PORT_DEFAULT: u16 = 80;

/// One probe attempt of a target by its policy's driver: what the monitor's engine calls.
/// [`Prober`] is the real one; tests script outcomes and how long they take.
pub trait Probe: Send + Sync + 'static {
    fn probe(&self, target: &Target) -> impl Future<Output = ProbeOutcome> + Send;
}

impl Probe for Prober {
    async fn probe(&self, target: &Target) -> ProbeOutcome {
        let policy = &target.policy;
        let timeout = Duration::from_millis(policy.timeout_ms);
        match policy.driver {
            MonitorDriver::Ping => self.ping(target.mgmt_ip, policy.count, timeout).await,
            MonitorDriver::HttpPing => {
                let port = policy.port.unwrap_or(HTTP_PORT_DEFAULT);
                self.http(target.mgmt_ip, port, timeout).await
            }
        }
    }
}

/// Why a [`Prober`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The ICMP socket's receive task is spawned on the current tokio runtime.
    #[error("the prober must be created inside a tokio runtime")]
    NoRuntime,
    /// Neither a raw nor an unprivileged ICMP socket could be opened (needs root or
    /// CAP_NET_RAW, or `net.ipv4.ping_group_range` covering this group).
    #[error("cannot open the ICMPv4 socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The socket's receive buffer could not be read or set.
    #[error("cannot size the ICMPv4 socket's receive buffer: {0}")]
    ReceiveBuffer(#[source] std::io::Error),
}

/// One shared prober per monitor process. Cloning is cheap and every clone uses the same
/// socket. Use it on the tokio runtime it was created on: the socket's receive task lives
/// there and stops with it.
#[derive(Clone)]
pub struct Prober {
    icmp: Arc<icmp::EchoSocket>,
}

impl Prober {
    /// Opens the one ICMPv4 socket (raw when allowed, as root; an unprivileged ping socket
    /// otherwise) and raises its receive buffer. Must be called inside a tokio runtime.
    pub fn new() -> Result<Prober, ProbeError> {
        Ok(Prober {
            icmp: Arc::new(icmp::EchoSocket::open()?),
        })
    }

    /// The socket's receive buffer as the kernel accounts it (it doubles the size asked
    /// for, to cover its bookkeeping), in bytes.
    pub fn receive_buffer_bytes(&self) -> usize {
        self.icmp.receive_buffer_bytes()
    }

    /// One ping attempt: sends `count` echo requests to `ip` back to back (distinct
    /// sequence numbers; a `count` of 0 sends one) and answers Up with the first reply's
    /// round trip if ANY reply arrives within `timeout`, else Down.
    ///
    /// At most 16,384 echo requests are in flight through one prober, so that their replies
    /// always fit in the receive buffer; an attempt first waits for room, and that wait does
    /// not count against its `timeout` (a target is never Down because others were slow).
    pub async fn ping(&self, ip: Ipv4Addr, count: u32, timeout: Duration) -> ProbeOutcome {
        self.icmp.ping(ip, count, timeout).await
    }

    /// One http_ping attempt: `GET / HTTP/1.1` to `ip:port`; Up if the status is 2xx or 3xx
    /// within `timeout`. A refused connection, a timeout, a malformed answer or an error
    /// status (4xx, 5xx) is Down with the reason.
    pub async fn http(&self, ip: Ipv4Addr, port: u16, timeout: Duration) -> ProbeOutcome {
        http::probe(ip, port, timeout).await
    }
}

impl fmt::Debug for Prober {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prober")
            .field("receive_buffer_bytes", &self.receive_buffer_bytes())
            .finish_non_exhaustive()
    }
}

/// Microseconds of a duration for [`ProbeOutcome::Up`], saturating (an attempt lasts at most
/// its timeout, far below u64::MAX µs).
fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

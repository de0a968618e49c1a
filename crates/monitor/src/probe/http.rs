//! http_ping: `GET /` over a plain TCP connection, judged by the status line alone.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::{ProbeOutcome, micros};

/// The most of the answer read while looking for the end of the status line. A status line
/// is about 20 bytes (`HTTP/1.1 200 OK`); anything longer without a line end is not HTTP.
const STATUS_LINE_BYTES_MAX: usize = 1024;
/// The most of an unexpected answer quoted in a reason: enough to recognise it, short
/// enough for an event.
const QUOTE_BYTES_MAX: usize = 64;

pub(super) async fn probe(ip: Ipv4Addr, port: u16, timeout: Duration) -> ProbeOutcome {
    let started = Instant::now();
    match status(ip, port, started + timeout, timeout).await {
        Ok(code) if (200..400).contains(&code) => ProbeOutcome::Up {
            rtt_us: micros(started.elapsed()),
        },
        Ok(code) => ProbeOutcome::Down {
            reason: format!("HTTP status {code}"),
        },
        Err(reason) => ProbeOutcome::Down { reason },
    }
}

/// The status code of `GET /` on `ip:port`, or why there is none by `deadline`.
async fn status(
    ip: Ipv4Addr,
    port: u16,
    deadline: Instant,
    timeout: Duration,
) -> Result<u16, String> {
    let target = SocketAddr::from((ip, port));
    let mut stream = match timeout_at(deadline, TcpStream::connect(target)).await {
        Err(_elapsed) => {
            return Err(format!(
                "no TCP connection to {target} within {} ms",
                timeout.as_millis()
            ));
        }
        Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {
            return Err(format!("connection to {target} refused"));
        }
        Ok(Err(e)) => return Err(format!("cannot connect to {target}: {e}")),
        Ok(Ok(stream)) => stream,
    };
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {target}\r\nUser-Agent: vnfm-monitor\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n"
    );
    match timeout_at(deadline, exchange(&mut stream, request.as_bytes())).await {
        Ok(answer) => answer,
        Err(_elapsed) => Err(format!(
            "no HTTP status from {target} within {} ms",
            timeout.as_millis()
        )),
    }
}

/// Sends the request and reads up to the end of the status line.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> Result<u16, String> {
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("cannot send the HTTP request: {e}"))?;
    let mut head = Vec::with_capacity(STATUS_LINE_BYTES_MAX);
    let mut chunk = [0u8; STATUS_LINE_BYTES_MAX];
    loop {
        if let Some(end) = head.iter().position(|&b| b == b'\n') {
            return parse_status_line(&head[..end]);
        }
        if head.len() >= STATUS_LINE_BYTES_MAX {
            return Err(format!(
                "no HTTP status line in the first {STATUS_LINE_BYTES_MAX} bytes: {}",
                quote(&head)
            ));
        }
        let room = STATUS_LINE_BYTES_MAX - head.len();
        match stream.read(&mut chunk[..room]).await {
            Ok(0) if head.is_empty() => {
                return Err("connection closed without an HTTP answer".to_owned());
            }
            Ok(0) => return parse_status_line(&head),
            Ok(read) => head.extend_from_slice(&chunk[..read]),
            Err(e) => return Err(format!("cannot read the HTTP answer: {e}")),
        }
    }
}

/// The code of a status line such as `HTTP/1.1 503 Service Unavailable`, without its line
/// feed, read by `httparse`; the headers after it are not read.
fn parse_status_line(line: &[u8]) -> Result<u16, String> {
    let malformed = || format!("malformed HTTP status line: {}", quote(line));
    let mut terminated = line.to_vec();
    terminated.push(b'\n');
    let mut no_headers = [];
    let mut response = httparse::Response::new(&mut no_headers);
    // Partial: the status line is parsed and the headers have not come yet.
    match response.parse(&terminated) {
        Ok(_) => response
            .code
            .filter(|code| (100..600).contains(code))
            .ok_or_else(malformed),
        Err(_) => Err(malformed()),
    }
}

/// A short, printable rendering of bytes from the wire.
fn quote(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(QUOTE_BYTES_MAX)];
    let mut text = format!("{:?}", String::from_utf8_lossy(shown));
    if bytes.len() > QUOTE_BYTES_MAX {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_give_their_code() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r"), Ok(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 302 Found"), Ok(302));
        assert_eq!(
            parse_status_line(b"HTTP/1.1 503 Service Unavailable\r"),
            Ok(503)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 204"), Ok(204));
    }

    #[test]
    fn anything_else_is_malformed_and_quoted() {
        for line in [
            &b""[..],
            b"SSH-2.0-OpenSSH_9.2",
            b"HTTP/1.1 2000 OK",
            b"HTTP/1.1 OK 200",
            b"HTTP/1.1 099 Low",
            b"\xff\xfe",
        ] {
            let reason = parse_status_line(line).unwrap_err();
            assert!(
                reason.starts_with("malformed HTTP status line: "),
                "{reason}"
            );
        }
        assert!(
            parse_status_line(b"SSH-2.0-OpenSSH_9.2")
                .unwrap_err()
                .contains("SSH-2.0")
        );
    }

    #[test]
    fn long_answers_are_quoted_short() {
        let quoted = quote(&[b'a'; 500]);
        assert!(quoted.len() < QUOTE_BYTES_MAX + 8, "{quoted}");
        assert!(quoted.ends_with('…'));
    }
}

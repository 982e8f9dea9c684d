//! A TCP proxy whose downstream direction (upstream → clients) shares one byte-rate cap
//! across all connections: an origin server with a fixed uplink, for benchmarks.
//!
//! nginx's `limit_rate` caps each connection, so N connections draw N times the rate;
//! this caps the sum, like a server behind a 20 MiB/s link. Client → upstream bytes are
//! not limited. Standard library only: two threads per connection, fine for the few
//! dozen connections of a benchmark.
//!
//! Usage: `kpbt-throttle --upstream HOST:PORT --rate BYTES_PER_SECOND [--listen ADDR]`.
//! Prints `listening on ADDR` once it accepts connections (port 0 picks a free port).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes a connection may send per grant: small enough that connections interleave.
const CHUNK: usize = 16 * 1024;
/// Tokens the bucket can bank while idle (the burst a fresh request may get at once).
const BURST: f64 = 64.0 * 1024.0;

/// One token bucket for every connection. Grants may drive it negative (debt), and a
/// sender then sleeps until its debt is paid, so waiting senders are served in order.
struct Bucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn take(&self, bytes: usize) {
        let wait = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let (tokens, last) = *st;
            let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(BURST)
                - bytes as f64;
            *st = (tokens, now);
            if tokens < 0.0 {
                Duration::from_secs_f64(-tokens / self.rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            thread::sleep(wait);
        }
    }
}

fn parse_rate(s: &str) -> Option<f64> {
    let s = s.trim();
    let (digits, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1024.0),
        'm' | 'M' => (&s[..s.len() - 1], 1024.0 * 1024.0),
        'g' | 'G' => (&s[..s.len() - 1], 1024.0 * 1024.0 * 1024.0),
        _ => (s, 1.0),
    };
    let v: f64 = digits.parse().ok()?;
    (v > 0.0).then_some(v * mult)
}

fn copy(mut from: TcpStream, mut to: TcpStream, bucket: Option<Arc<Bucket>>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(b) = &bucket {
            b.take(n);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

fn serve(client: TcpStream, upstream: SocketAddr, bucket: Arc<Bucket>) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = thread::spawn(move || copy(client2, server2, None));
    copy(server, client, Some(bucket));
    let _ = up.join();
}

fn usage() -> ! {
    eprintln!(
        "usage: kpbt-throttle --upstream HOST:PORT --rate BYTES_PER_SECOND[k|m|g] [--listen ADDR]"
    );
    std::process::exit(2);
}

fn main() {
    let mut upstream = None;
    let mut rate = None;
    let mut listen = "127.0.0.1:0".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--upstream" => upstream = v.parse::<SocketAddr>().ok(),
            "--rate" => rate = parse_rate(&v),
            "--listen" => listen = v,
            _ => usage(),
        }
    }
    let (Some(upstream), Some(rate)) = (upstream, rate) else {
        usage()
    };
    let listener = TcpListener::bind(&listen).unwrap_or_else(|e| {
        eprintln!("kpbt-throttle: cannot listen on {listen}: {e}");
        std::process::exit(1);
    });
    let bucket = Arc::new(Bucket {
        rate,
        state: Mutex::new((BURST, Instant::now())),
    });
    println!(
        "listening on {}",
        listener.local_addr().expect("bound socket has an address")
    );
    for conn in listener.incoming().flatten() {
        let bucket = bucket.clone();
        thread::spawn(move || serve(conn, upstream, bucket));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_take_binary_suffixes_and_refuse_junk() {
        assert_eq!(parse_rate("20m"), Some(20.0 * 1048576.0));
        assert_eq!(parse_rate("512K"), Some(512.0 * 1024.0));
        assert_eq!(parse_rate("1000"), Some(1000.0));
        assert_eq!(parse_rate("0"), None);
        assert_eq!(parse_rate("fast"), None);
        assert_eq!(parse_rate(""), None);
    }

    #[test]
    fn the_bucket_holds_the_sum_of_all_senders_to_the_rate() {
        let bucket = Arc::new(Bucket {
            rate: 4.0 * 1024.0 * 1024.0,
            state: Mutex::new((0.0, Instant::now())),
        });
        let t0 = Instant::now();
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let b = bucket.clone();
                thread::spawn(move || (0..32).for_each(|_| b.take(CHUNK)))
            })
            .collect();
        senders.into_iter().for_each(|s| s.join().unwrap());
        // 4 x 32 x 16 KiB = 2 MiB at 4 MiB/s: at least half a second in all.
        assert!(
            t0.elapsed() >= Duration::from_millis(450),
            "{:?}",
            t0.elapsed()
        );
    }
}

//! A small TCP proxy that can turn into a black hole: connections stay open, nothing gets
//! through, nothing is refused. That is what a pulled cable or a dropping firewall looks like
//! to Thrudoc, and only timeouts can detect it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A proxy from a free port of 127.0.0.1 to `target`.
pub struct Proxy {
    port: u16,
    blackhole: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts forwarding to `target` (`host:port`).
    pub fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let blackhole = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let target = target.to_string();
        let (bh, st) = (blackhole.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (bh, st, target) = (bh.clone(), st.clone(), target.clone());
                        std::thread::spawn(move || serve(client, &target, &bh, &st));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => return,
                }
            }
        });
        Proxy {
            port,
            blackhole,
            stop,
        }
    }

    /// `127.0.0.1:<port>`, to put in the directory instead of the real host.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops (true) or resumes (false) all traffic, on open and new connections alike.
    pub fn set_blackhole(&self, on: bool) {
        self.blackhole.store(on, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(client: TcpStream, target: &str, blackhole: &Arc<AtomicBool>, stop: &Arc<AtomicBool>) {
    // A new connection during a black hole is accepted (the kernel did that) but goes nowhere.
    while blackhole.load(Ordering::SeqCst) {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let Ok(upstream) = TcpStream::connect(target) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(client_r), Ok(upstream_r)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let (bh, st) = (blackhole.clone(), stop.clone());
    let back = std::thread::spawn(move || pump(upstream_r, client, &bh, &st));
    pump(client_r, upstream, blackhole, stop);
    let _ = back.join();
}

/// Copies `from` to `to` until either closes, holding bytes back while the black hole is on.
fn pump(mut from: TcpStream, mut to: TcpStream, blackhole: &AtomicBool, stop: &AtomicBool) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = to.set_nodelay(true);
    let mut buf = [0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if blackhole.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Bytes read just as the black hole starts are held until it ends.
                while blackhole.load(Ordering::SeqCst) && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

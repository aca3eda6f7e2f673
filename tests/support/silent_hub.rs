//! A "hub" that accepts connections and never answers: it reads nothing and writes nothing, and
//! holds each connection open until the test process ends. Included with
//! `#[path = "../support/silent_hub.rs"] mod silent_hub;` in a test binary\'s main.rs.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Accepts connections and holds them open without a byte either way.
pub struct SilentHub {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl SilentHub {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (a, h) = (Arc::clone(&accepted), Arc::clone(&held));
        // The thread ends with the test process; the streams are held so nothing is answered.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                h.lock().unwrap().push(stream);
                a.fetch_add(1, Ordering::SeqCst);
            }
        });
        Self {
            addr,
            accepted,
            held,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until a request is pending on the hub (bounded, so a broken run fails, not hangs).
    pub fn wait_for_connection(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.accepted.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "pallaidium never connected");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the request reach its read.
        std::thread::sleep(Duration::from_millis(300));
        assert!(!self.held.lock().unwrap().is_empty());
    }
}

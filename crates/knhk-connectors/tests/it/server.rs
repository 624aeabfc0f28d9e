//! A test HTTP server on 127.0.0.1 port 0 that records every request it receives.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One request as the server saw it.
#[derive(Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A running server; dropping it stops it.
pub struct TestServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(router: Router) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    TestServer { addr, task }
}

/// A channel the handlers report requests on; the report is sent before the answer, so every
/// request of a finished call is in the channel.
#[derive(Clone)]
pub struct Recorder(mpsc::UnboundedSender<Seen>);

impl Recorder {
    pub fn new() -> (Recorder, mpsc::UnboundedReceiver<Seen>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Recorder(tx), rx)
    }

    pub fn record(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) {
        self.0
            .send(Seen {
                method,
                uri,
                headers,
                body,
            })
            .unwrap();
    }
}

/// Takes every request recorded so far.
pub fn drain(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Vec<Seen> {
    let mut seen = Vec::new();
    while let Ok(s) = rx.try_recv() {
        seen.push(s);
    }
    seen
}

//! A small HTTP/1.1 server on a loopback port for the tests' connector tasks: each request is
//! read whole (request line, headers, body) and answered by the test's own function, one
//! connection at a time, until the test process ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

/// A request as the server read it.
pub(crate) struct Request {
    /// How many requests came before this one.
    pub(crate) n: usize,
    /// `POST /charge/A-17 HTTP/1.1`.
    pub(crate) line: String,
    /// Header names in lowercase, with their values.
    headers: Vec<(String, String)>,
}

impl Request {
    /// Returns the value of the header `name` (lowercase), if sent.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: the status line (`200 OK`), the content type and the body.
pub(crate) struct Reply {
    pub(crate) status: &'static str,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
}

impl Reply {
    /// A JSON answer with `status`.
    pub(crate) fn json(status: &'static str, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.into(),
        }
    }
}

/// Starts the server and returns its base URL, `http://127.0.0.1:PORT`.
pub(crate) fn serve(mut answer: impl FnMut(&Request) -> Reply + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = listener.local_addr().expect("an address");
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("a stream"));
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let mut headers = Vec::new();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
                }
            }
            let request = Request {
                n,
                line: line.trim_end().to_owned(),
                headers,
            };
            let length = request
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let reply = answer(&request);
            let _ = write!(
                stream,
                "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{}",
                reply.status,
                reply.content_type,
                reply.body.len(),
                reply.body
            );
        }
    });
    format!("http://{addr}")
}

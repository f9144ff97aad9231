//! A minimal HTTP/1.1 client over one keep-alive connection: enough to prime
//! sessions and check a server before the load generator takes over.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// What the client keeps of a response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// `Set-Cookie` values, each cut to its `name=value` part.
    pub(crate) cookies: Vec<String>,
    pub(crate) body: String,
}

impl Response {
    /// The `name=value` of the cookie called `name`, if the response set it.
    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .map(String::as_str)
            .find(|c| c.split_once('=').is_some_and(|(n, _)| n == name))
    }
}

pub(crate) struct Client {
    reader: BufReader<TcpStream>,
    port: u16,
}

impl Client {
    pub(crate) fn connect(port: u16) -> io::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
            port,
        })
    }

    pub(crate) fn get(&mut self, path: &str, cookie: Option<&str>) -> io::Result<Response> {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", self.port);
        if let Some(cookie) = cookie {
            request.push_str("Cookie: ");
            request.push_str(cookie);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        self.reader.get_mut().write_all(request.as_bytes())?;

        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(&format!("not an HTTP status line: {line:?}")))?;
        let mut length = None;
        let mut cookies = Vec::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(bad("connection closed inside the headers"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("set-cookie") {
                let pair = value.split(';').next().unwrap_or_default().trim();
                cookies.push(pair.to_owned());
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(bad("chunked responses are not expected here"));
            }
        }
        let length = length.ok_or_else(|| bad("a response without Content-Length"))?;
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok(Response {
            status,
            cookies,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

//! HTTP/1.1 framing: find one whole request at the front of a buffer
//! (headers parsed by `httparse`), with the bounds a server needs — header
//! bytes and count, body size — and the answer's head.
use alloc::string::String;
use core::fmt::Write;

/// Most bytes of a request line plus headers (a larger head gets 431).
pub const MAX_HEAD: usize = 8 * 1024;
/// Most headers (more get 431).
pub const MAX_HEADERS: usize = 32;
/// Largest body accepted (a larger `Content-Length` gets 413).
pub const MAX_BODY: usize = 64 * 1024;

/// A request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path (with any query).
    pub path: String,
    /// HTTP/1.1 (else 1.0).
    pub http11: bool,
    /// Whether the client wants the connection kept open after this one.
    pub keep_alive: bool,
    /// Bytes of the request (head and body) at the front of the buffer.
    pub len: usize,
}

/// What [`parse`] found at the front of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// A whole request.
    Request(Request),
    /// Not all of it yet: read more.
    Partial,
    /// An answer to give before closing the connection.
    Refuse(Status),
}

/// The statuses this server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200.
    Ok,
    /// 400: not HTTP.
    BadRequest,
    /// 404.
    NotFound,
    /// 405: not GET or HEAD.
    MethodNotAllowed,
    /// 408: the request did not arrive in time.
    Timeout,
    /// 413: body too large.
    TooLarge,
    /// 431: head too large or too many headers.
    HeadersTooLarge,
    /// 501: a transfer coding we do not read (chunked uploads).
    NotImplemented,
}

impl Status {
    /// Code and reason.
    pub fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::Timeout => "408 Request Timeout",
            Status::TooLarge => "413 Content Too Large",
            Status::HeadersTooLarge => "431 Request Header Fields Too Large",
            Status::NotImplemented => "501 Not Implemented",
        }
    }
}

/// Looks for one request at the front of `buf`.
pub fn parse(buf: &[u8]) -> Framed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Framed::Refuse(Status::HeadersTooLarge);
        }
        Ok(httparse::Status::Partial) => return Framed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Framed::Refuse(Status::HeadersTooLarge),
        Err(_) => return Framed::Refuse(Status::BadRequest),
    };
    if head > MAX_HEAD {
        return Framed::Refuse(Status::HeadersTooLarge);
    }
    let http11 = req.version == Some(1);
    let mut keep_alive = http11;
    let mut body = 0usize;
    for h in req.headers.iter() {
        let v = core::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("connection") {
            for token in v.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match v.parse::<usize>() {
                Ok(n) if n > MAX_BODY => return Framed::Refuse(Status::TooLarge),
                Ok(n) => body = n,
                Err(_) => return Framed::Refuse(Status::BadRequest),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Framed::Refuse(Status::NotImplemented);
        }
    }
    if buf.len() < head + body {
        return Framed::Partial;
    }
    Framed::Request(Request {
        method: req.method.unwrap_or("").into(),
        path: req.path.unwrap_or("").into(),
        http11,
        keep_alive,
        len: head + body,
    })
}

/// The head of an answer with a `len`-byte body.
pub fn head(status: Status, http11: bool, keep_alive: bool, len: usize, kind: &str) -> String {
    let mut h = String::with_capacity(128);
    // Writing into a String cannot fail.
    let _ = write!(
        h,
        "HTTP/1.{} {}\r\nServer: rt-httpd\r\nContent-Type: {kind}\r\nContent-Length: {len}\r\nConnection: {}\r\n\r\n",
        u8::from(http11),
        status.line(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    h
}

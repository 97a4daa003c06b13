//! `bench-echo http-load ADDR CONNS REQUESTS DEPTH`: an HTTP/1.1 keep-alive
//! load generator that checks every answer, run in dom0 by the httpd tests
//! and the bench. Each of CONNS connections (a thread each) sends REQUESTS
//! requests, DEPTH at a time pipelined (written together, then answered in
//! order): `GET /` (expects 200 and the status page) and, every third,
//! `GET /missing-<n>` (expects 404 naming that path). The last request of a
//! connection says `Connection: close`, and the server must then close.
//! Prints `http-load: <n> requests, <ok> ok, <bad> bad, <conns> connections,
//! <secs> s, <rate> req/s` and the first few problems.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one connection saw.
#[derive(Default)]
struct Tally {
    ok: u64,
    bad: u64,
    problems: Vec<String>,
}

impl Tally {
    fn problem(&mut self, p: String) {
        self.bad += 1;
        if self.problems.len() < 5 {
            self.problems.push(p);
        }
    }
}

/// One answer: status code, `Connection` header, body.
fn read_answer(r: &mut BufReader<TcpStream>) -> Result<(u16, String, Vec<u8>), String> {
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(|e| format!("reading the status line: {e}"))?;
    if line.is_empty() {
        return Err("the server closed the connection".into());
    }
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(format!("bad status line {line:?}"))?;
    let (mut len, mut conn) = (None, String::new());
    loop {
        line.clear();
        r.read_line(&mut line)
            .map_err(|e| format!("reading a header: {e}"))?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("connection") {
                conn = v.trim().to_ascii_lowercase();
            }
        }
    }
    let len = len.ok_or("no Content-Length")?;
    let mut body = vec![0; len];
    r.read_exact(&mut body)
        .map_err(|e| format!("reading the body: {e}"))?;
    Ok((code, conn, body))
}

fn connection(addr: &str, requests: usize, depth: usize, id: usize) -> Tally {
    let mut t = Tally::default();
    let s = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => {
            t.problem(format!("connection {id}: connect: {e}"));
            t.bad += requests as u64 - 1;
            return t;
        }
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = s.set_nodelay(true);
    let mut w = match s.try_clone() {
        Ok(w) => w,
        Err(e) => {
            t.problem(format!("connection {id}: {e}"));
            return t;
        }
    };
    let mut r = BufReader::new(s);
    let mut sent = 0;
    while sent < requests {
        let batch = depth.min(requests - sent);
        let mut out = String::new();
        let mut want = Vec::new();
        for k in sent..sent + batch {
            let last = k + 1 == requests;
            let path = if k % 3 == 2 {
                format!("/missing-{id}-{k}")
            } else {
                "/".to_string()
            };
            out.push_str(&format!(
                "GET {path} HTTP/1.1\r\nHost: guest\r\nUser-Agent: bench-echo\r\n{}\r\n",
                if last { "Connection: close\r\n" } else { "" }
            ));
            want.push((path, last));
        }
        if let Err(e) = w.write_all(out.as_bytes()) {
            t.problem(format!("connection {id}: sending requests {sent}..: {e}"));
            t.bad += (requests - sent - 1) as u64;
            return t;
        }
        for (path, last) in want {
            match read_answer(&mut r) {
                Err(e) => {
                    t.problem(format!("connection {id}: {path}: {e}"));
                    t.bad += (requests - sent - 1) as u64;
                    return t;
                }
                Ok((code, conn, body)) => {
                    let body = String::from_utf8_lossy(&body);
                    let good = if path == "/" {
                        code == 200 && body.contains("uptime: ")
                    } else {
                        code == 404 && body.contains(&path)
                    };
                    let conn_ok = if last {
                        conn == "close"
                    } else {
                        conn == "keep-alive"
                    };
                    if good && conn_ok {
                        t.ok += 1;
                    } else {
                        t.problem(format!(
                            "connection {id}: {path}: {code}, Connection {conn:?}, body {:?}",
                            body.chars().take(60).collect::<String>()
                        ));
                    }
                }
            }
            sent += 1;
        }
    }
    // After `Connection: close` the server closes: EOF, not more data.
    let mut rest = Vec::new();
    match r.read_to_end(&mut rest) {
        Ok(_) if rest.is_empty() => {}
        Ok(n) => t.problem(format!(
            "connection {id}: {n} stray bytes after the last answer"
        )),
        Err(e) => t.problem(format!(
            "connection {id}: not closed after Connection: close: {e}"
        )),
    }
    t
}

/// Runs the load; returns the summary line.
pub fn load(args: &[String]) -> Result<(), String> {
    let usage = "usage: bench-echo http-load ADDR:PORT CONNS REQUESTS DEPTH";
    let [addr, conns, requests, depth] = args else {
        return Err(usage.into());
    };
    let num = |s: &String| s.parse::<usize>().ok().filter(|&n| n > 0).ok_or(usage);
    let (conns, requests, depth) = (num(conns)?, num(requests)?, num(depth)?);
    let all = Arc::new(Mutex::new(Tally::default()));
    let t0 = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|id| {
            let (addr, all) = (addr.clone(), all.clone());
            std::thread::spawn(move || {
                let t = connection(&addr, requests, depth, id);
                let mut a = all.lock().unwrap_or_else(|p| p.into_inner());
                a.ok += t.ok;
                a.bad += t.bad;
                for p in t.problems {
                    if a.problems.len() < 10 {
                        a.problems.push(p);
                    }
                }
            })
        })
        .collect();
    for th in threads {
        let _ = th.join();
    }
    let secs = t0.elapsed().as_secs_f64();
    let a = all.lock().unwrap_or_else(|p| p.into_inner());
    println!(
        "http-load: {} requests, {} ok, {} bad, {conns} connections, {secs:.2} s, {:.0} req/s",
        conns * requests,
        a.ok,
        a.bad,
        a.ok as f64 / secs
    );
    for p in &a.problems {
        println!("http-load: problem: {p}");
    }
    Ok(())
}

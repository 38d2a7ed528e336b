//! What the CLI says when the admin API fails mid-apply: a connection that breaks after the
//! batch was sent leaves the outcome unknown (and `gantry diff` tells), and a batch the admin
//! API refuses is reported as refused, never as "cannot reach the admin API".
//!
//! A small admin API stands in on loopback: it answers the reads an apply makes (an empty
//! control plane at revision 0) and does what each test needs with the batch.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::util::{Workspace, minimal};

/// What the stand-in does with `POST /batch`.
#[derive(Clone, Copy)]
enum OnBatch {
    /// Reads the whole batch, then closes the connection without a word.
    ReadThenClose,
    /// Reads the whole batch, then answers 413 with a Kong error body.
    TooLarge,
}

/// Starts the stand-in; returns its address and a flag set once a whole batch was read.
fn stand_in(on_batch: OnBatch) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let got_batch = Arc::new(AtomicBool::new(false));
    let flag = got_batch.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let flag = flag.clone();
            std::thread::spawn(move || serve(stream, on_batch, &flag));
        }
    });
    (addr, got_batch)
}

/// Serves one keep-alive connection.
fn serve(stream: TcpStream, on_batch: OnBatch, got_batch: &AtomicBool) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request_line.split(' ').nth(1).unwrap_or("/");
        let (status, json) = if path.ends_with("/batch") {
            got_batch.store(true, Ordering::SeqCst);
            match on_batch {
                OnBatch::ReadThenClose => return,
                OnBatch::TooLarge => (
                    "413 Payload Too Large",
                    r#"{"message":"request body too large"}"#.to_owned(),
                ),
            }
        } else if path.starts_with("/status") {
            ("200 OK", r#"{"store_revision":0}"#.to_owned())
        } else {
            ("200 OK", r#"{"data":[],"next":null}"#.to_owned())
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
            json.len()
        );
        if out.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn a_connection_lost_after_the_batch_was_sent_says_the_outcome_is_unknown() {
    let (addr, got_batch) = stand_in(OnBatch::ReadThenClose);
    let ws = Workspace::new().env("DECK_KONG_ADDR", &addr);
    ws.write("kong.yaml", &minimal(""));
    for cmd in ["apply", "sync"] {
        let run = ws.run(&[cmd, "kong.yaml"]);
        assert_eq!(run.code, 1, "{}", run.stdout);
        assert!(got_batch.load(Ordering::SeqCst), "the batch was sent");
        assert!(
            run.stderr.contains("broke after the batch was sent")
                && run.stderr.contains("whether it was applied is unknown")
                && run.stderr.contains("run `gantry diff`"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("cannot reach"), "{}", run.stderr);
    }
}

#[test]
fn a_batch_the_admin_api_refuses_is_reported_as_refused() {
    let (addr, got_batch) = stand_in(OnBatch::TooLarge);
    let ws = Workspace::new().env("DECK_KONG_ADDR", &addr);
    ws.write("kong.yaml", &minimal(""));
    let run = ws.run(&["apply", "kong.yaml"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(got_batch.load(Ordering::SeqCst));
    assert!(
        run.stderr.contains(
            "the admin API refused the batch (request body too large), so nothing was applied"
        ),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("cannot reach"), "{}", run.stderr);
}

#[test]
fn an_admin_api_that_is_not_there_still_cannot_be_reached() {
    let port = crate::util::free_port();
    let ws = Workspace::new().env("DECK_KONG_ADDR", &format!("http://127.0.0.1:{port}"));
    ws.write("kong.yaml", &minimal(""));
    let run = ws.run(&["apply", "kong.yaml"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("cannot reach the admin API"),
        "{}",
        run.stderr
    );
}

//! The hardened accept loop: idle connections that send nothing are closed, slow headers
//! time out (slowloris), too many headers are refused, and shutdown drains.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use embedded_gateway::server::{Limits, Protocols, serve};
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(300),
        max_header_bytes: 16 * 1024,
        max_headers: 20,
        first_byte_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(600),
        drain_timeout: Duration::from_secs(5),
    }
}

async fn start() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(
        Protocols::Http1,
        listener,
        limits(),
        |req: Request<Incoming>, _: SocketAddr| async move {
            if req.uri().path() == "/slow" {
                tokio::time::sleep(Duration::from_millis(800)).await;
            }
            Response::new(axum::body::Body::from("ok"))
        },
        async {
            let _ = rx.await;
        },
    ));
    (addr, tx)
}

/// Sends `GET /` on a keep-alive connection and returns the first read of the answer.
async fn get(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Reads until the peer closes; returns what was read and how long it took.
async fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    (
        String::from_utf8_lossy(&buf).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_idle_timeout() {
    let (addr, _stop) = start().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (_, took) = read_until_closed(&mut stream).await;
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
}

#[tokio::test]
async fn slowloris_headers_time_out() {
    let (addr, _stop) = start().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Keep trickling header bytes so the idle watchdog never fires; the header timer must.
    let mut closed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if stream.write_all(b"X-A: b\r\n").await.is_err() {
            closed = true;
            break;
        }
    }
    let (_, _) = read_until_closed(&mut stream).await;
    assert!(closed || started.elapsed() < Duration::from_secs(3));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (addr, _stop) = start().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert!(get(&mut stream).await.starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    let (_, _) = read_until_closed(&mut stream).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
}

#[tokio::test]
async fn a_keep_alive_pause_longer_than_the_header_timeout_is_not_a_slow_head() {
    // The header timer counts from a head's first byte, not from the previous response: a
    // client may pause between requests for up to the idle timeout.
    let (addr, _stop) = start().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        let answer = get(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Past the 300 ms header timeout, within the 600 ms idle timeout.
        tokio::time::sleep(Duration::from_millis(420)).await;
    }
}

#[tokio::test]
async fn too_many_headers_are_refused() {
    let (addr, _stop) = start().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut req = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..30 {
        req += &format!("X-H{i}: v\r\n");
    }
    req += "\r\n";
    stream.write_all(req.as_bytes()).await.unwrap();
    let (text, _) = read_until_closed(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
}

#[tokio::test]
async fn a_slow_request_is_not_cut_by_the_idle_watchdog_and_drains_on_shutdown() {
    let (addr, stop) = start().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop.send(());
    let (text, _) = read_until_closed(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("ok"));
}

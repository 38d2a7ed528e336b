//! `gantry serve`'s request-body limits as a user sets them: `--client-body-timeout` and
//! `--client-body-min-rate` are honoured (a stalled body gets 408), bad values are refused
//! with one line naming the flag, and an early 413 reaches a client still sending its body.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::serve::{gantry, serve};

#[test]
fn a_stalled_body_gets_408_after_the_configured_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // The upstream accepts connections (kernel backlog) and never answers.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let file = dir.path().join("kong.yaml");
    std::fs::write(
        &file,
        format!(
            "_format_version: \"3.0\"\nservices:\n- name: up\n  url: http://{}\n  routes:\n  - name: up\n    paths: [/up]\n",
            upstream.local_addr().unwrap()
        ),
    )
    .unwrap();
    let mut s = serve(
        dir.path(),
        &[
            "--config",
            file.to_str().unwrap(),
            "--client-body-timeout",
            "400ms",
            "--workers",
            "1",
        ],
    );
    let mut c = TcpStream::connect(&s.proxy).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
        .unwrap();
    let started = Instant::now();
    let mut text = String::new();
    let _ = c.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let _ = s.child.kill();
    let _ = s.child.wait();
}

#[test]
fn bad_body_limit_values_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value) in [
        ("--client-body-timeout", "soon"),
        ("--client-body-timeout", "-1s"),
        ("--client-body-timeout", "5m"),
        ("--client-body-min-rate", "fast"),
    ] {
        let out = gantry()
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .arg(format!("{flag}={value}"))
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(0));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
}

#[test]
fn an_early_413_reaches_a_client_that_is_still_sending() {
    // The gateway answers from the declared length without reading the body. Closing with the
    // body unread makes the kernel reset the connection, and an HTTP client still writing
    // (reqwest here, the SDKs' clients alike) sees a broken pipe instead of the 413; the
    // gateway lingers, reading and discarding, so the answer arrives.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kong.yaml");
    std::fs::write(
        &file,
        "_format_version: \"3.0\"\nservices:\n- name: llm\n  url: http://localhost:32000\n  routes:\n  - name: chat\n    paths: [/chat]\n  plugins:\n  - name: ai-proxy-advanced\n    config:\n      max_request_body_size: 1024\n      targets:\n      - route_type: llm/v1/chat\n        auth: {header_name: Authorization, header_value: Bearer sk-x}\n        model: {provider: openai, name: gpt-4o-mini}\n",
    )
    .unwrap();
    let (served, proxy, _) = crate::battery::start_serve(
        &dir.path().join("data"),
        &dir.path().join("serve.log"),
        &["--config", file.to_str().unwrap()],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("http://{proxy}/chat");
    let statuses: Vec<Result<u16, String>> = rt.block_on(async {
        let client = reqwest::Client::new();
        let mut out = Vec::new();
        for _ in 0..10 {
            let res = client
                .post(&url)
                .header("content-type", "application/json")
                .body(vec![b' '; 10 * 1024 * 1024])
                .send()
                .await;
            out.push(res.map(|r| r.status().as_u16()).map_err(|e| e.to_string()));
        }
        out
    });
    drop(served);
    assert!(statuses.iter().all(|r| r == &Ok(413)), "{statuses:?}");
}

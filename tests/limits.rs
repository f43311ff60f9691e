//! Every hard limit, with the reply code the RFCs ask for.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test]
async fn command_line_limit_is_512_octets() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    let mut c = Client::connect(gw.addr).await;
    let long = format!("NOOP {}", "a".repeat(505)); // 510 + CRLF = 512: allowed
    c.expect(&long, 250).await;
    let too_long = format!("NOOP {}", "a".repeat(506));
    let r = c.expect(&too_long, 500).await;
    assert_eq!(r, "500 5.5.2 Line too long");
    c.expect("NOOP", 250).await;
    gw.stop().await;
}

#[tokio::test]
async fn text_line_limit_is_1000_octets() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let ok = format!("Subject: x\r\n\r\n{}\r\n", "y".repeat(998));
    assert!(
        c.send_mail("a@sender.example", &["u@example.org"], ok.as_bytes())
            .await
            .starts_with("250")
    );
    let bad = format!("Subject: x\r\n\r\n{}\r\n", "y".repeat(999));
    let r = c
        .send_mail("a@sender.example", &["u@example.org"], bad.as_bytes())
        .await;
    assert!(r.starts_with("554 5.6.0"), "{r}");
    c.expect("NOOP", 250).await;
    assert_eq!(cap.wait_for(1).await.len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn message_size_limit_by_parameter_and_by_content() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[smtp]\nmax_message_size = \"8K\"\n").await;
    let mut c = Client::connect(gw.addr).await;
    let ehlo = c.expect("EHLO client.test", 250).await;
    assert!(ehlo.contains("SIZE 8192"), "{ehlo}");
    let r = c
        .expect("MAIL FROM:<a@sender.example> SIZE=8193", 552)
        .await;
    assert!(r.starts_with("552 5.3.4"), "{r}");
    let big = format!(
        "Subject: big\r\n\r\n{}",
        "z".repeat(78)
            .repeat(120)
            .chars()
            .collect::<Vec<_>>()
            .chunks(78)
            .map(|c| c.iter().collect::<String>() + "\r\n")
            .collect::<String>()
    );
    let r = c
        .send_mail("a@sender.example", &["u@example.org"], big.as_bytes())
        .await;
    assert!(r.starts_with("552 5.3.4"), "{r}");
    c.expect("NOOP", 250).await;
    assert!(cap.deliveries().is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn recipients_per_message() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[smtp]\nmax_recipients = 3\n").await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    for i in 0..3 {
        c.expect(&format!("RCPT TO:<u{i}@example.org>"), 250).await;
    }
    let r = c.expect("RCPT TO:<u9@example.org>", 452).await;
    assert!(r.starts_with("452 4.5.3"), "{r}");
    gw.stop().await;
}

#[tokio::test]
async fn too_many_errors_end_the_session() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[smtp]\nmax_errors = 3\n").await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("FOO", 500).await;
    c.expect("BAR", 500).await;
    let r = c.cmd("BAZ").await;
    assert_eq!(r, "500 5.5.1 Command unrecognized");
    assert_eq!(
        c.reply().await,
        "421 4.7.0 Too many errors, closing connection"
    );
    assert!(c.closed().await);
    gw.stop().await;
}

async fn connect_from(src: &str, addr: std::net::SocketAddr) -> (Client, String) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    let stream = sock.connect(addr).await.unwrap();
    Client::from_stream(stream).await
}

#[tokio::test]
async fn connection_limits_overall_and_per_ip() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(
        cap.addr,
        "[smtp]\nmax_connections = 3\nmax_connections_per_ip = 2\n",
    )
    .await;
    let (_a, g) = connect_from("127.0.0.1", gw.addr).await;
    assert!(g.starts_with("220"), "{g}");
    let (_b, g) = connect_from("127.0.0.1", gw.addr).await;
    assert!(g.starts_with("220"), "{g}");
    let (_c, g) = connect_from("127.0.0.1", gw.addr).await;
    assert_eq!(g, "421 4.7.0 Too many connections, try again later");
    let (mut d, g) = connect_from("127.0.0.2", gw.addr).await;
    assert!(g.starts_with("220"), "{g}");
    let (_e, g) = connect_from("127.0.0.3", gw.addr).await;
    assert_eq!(g, "421 4.7.0 Too many connections, try again later");
    // A slot frees when its session ends.
    d.expect("QUIT", 221).await;
    assert!(d.closed().await);
    let mut ok = false;
    for _ in 0..1000 {
        let (_f, g) = connect_from("127.0.0.3", gw.addr).await;
        if g.starts_with("220") {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "slot was not freed");
    gw.stop().await;
}

#[tokio::test]
async fn idle_client_times_out() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[smtp]\ncommand_timeout = 1\n").await;
    let mut c = Client::connect(gw.addr).await;
    let started = std::time::Instant::now();
    assert_eq!(c.reply().await, "421 4.4.2 Timeout, closing connection");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(c.closed().await);
    gw.stop().await;
}

#[tokio::test]
async fn stalled_data_times_out() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[smtp]\ndata_timeout = 1\n").await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("RCPT TO:<u@example.org>", 250).await;
    c.expect("DATA", 354).await;
    c.send(b"Subject: stalled\r\n").await;
    assert_eq!(c.reply().await, "421 4.4.2 Timeout, closing connection");
    assert!(cap.deliveries().is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn session_duration_is_capped() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[smtp]\nsession_timeout = 2\n").await;
    let mut c = Client::connect(gw.addr).await;
    let mut last = String::new();
    for _ in 0..20 {
        last = c.cmd("NOOP").await;
        if !last.starts_with("250") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(last, "421 4.4.2 Session too long, closing connection");
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_frees_its_slot() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(
        cap.addr,
        "[smtp]\ncommand_timeout = 1\nmax_connections_per_ip = 1\nmax_errors = 1000000\n",
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    // Pipeline commands and never read a reply: sponts' writes back up and must time out.
    let flood = "NOOP\r\n".repeat(200_000);
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncWriteExt::write_all(&mut s, flood.as_bytes()),
    )
    .await;
    let mut freed = false;
    for _ in 0..100 {
        let (_c, g) = Client::connect_raw(gw.addr).await;
        if g.starts_with("220") {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "the stalled session still holds the only slot");
    drop(s);
    gw.stop().await;
}

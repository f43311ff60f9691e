//! The SMTP callback: does the connecting host answer SMTP itself? Real mail servers do; spam
//! bots on home connections rarely. Only the greeting is read, then QUIT — no mail is sent.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// True when `ip:port` greets with 220 within `timeout`.
pub async fn answers_smtp(ip: IpAddr, port: u16, timeout: Duration) -> bool {
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(SocketAddr::new(ip, port))
            .await
            .ok()?;
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.ok()?;
        let greeted = buf[..n].starts_with(b"220");
        let _ = s.write_all(b"QUIT\r\n").await;
        Some(greeted)
    };
    matches!(tokio::time::timeout(timeout, probe).await, Ok(Some(true)))
}

//! The tarpit: every reply to a suspicious client (the modules mark it, or the session does for
//! early talkers, unknown recipients and protocol errors) is held back for `uce.tarpit_delay`,
//! or stuttered out one byte at a time over that delay, until the session has been slowed by
//! `uce.tarpit_max` in total. A held reply is a timer, not a thread: thousands cost little.

use std::io;
use std::time::Duration;

use super::conn::Conn;
use crate::config::UceConfig;

pub struct Tarpit {
    delay: Duration,
    stutter: bool,
    max: Duration,
    spent: Duration,
}

impl Tarpit {
    pub fn new(config: &UceConfig) -> Tarpit {
        Tarpit {
            delay: config.tarpit_delay.0,
            stutter: config.tarpit_stutter,
            max: config.tarpit_max.0,
            spent: Duration::ZERO,
        }
    }

    /// Sends the queued replies slowly, but all of them before `deadline` (a second ahead).
    pub async fn flush(
        &mut self,
        conn: &mut Conn,
        deadline: tokio::time::Instant,
    ) -> io::Result<()> {
        let out = conn.take_output();
        if out.is_empty() {
            return Ok(());
        }
        let left = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .saturating_sub(Duration::from_secs(1));
        let delay = self
            .delay
            .min(self.max.saturating_sub(self.spent))
            .min(left);
        self.spent += delay;
        if delay.is_zero() {
            conn.queue_bytes(&out);
            return conn.flush().await;
        }
        if !self.stutter || out.len() == 1 {
            tokio::time::sleep(delay).await;
            conn.queue_bytes(&out);
            return conn.flush().await;
        }
        let step = delay / out.len() as u32;
        for byte in out {
            tokio::time::sleep(step).await;
            conn.queue_bytes(&[byte]);
            conn.flush().await?;
        }
        Ok(())
    }

    /// How much this session has been slowed down so far.
    pub fn spent(&self) -> Duration {
        self.spent
    }
}

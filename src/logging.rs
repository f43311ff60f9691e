//! Logging: human-readable lines by default, JSON lines with `log.format = "json"`; both on
//! stderr, which journald picks up as it is.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

pub fn init(c: &LogConfig) {
    let level: LevelFilter = c.level.parse().unwrap_or(LevelFilter::INFO);
    // Our own events at the configured level; dependencies only when they warn.
    let filter = Targets::new().with_default(LevelFilter::WARN.min(level)).with_target("sponts", level);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match c.format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(ansi)).try_init()
        }
        LogFormat::Json => registry.with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr)).try_init(),
    };
    let _ = result;
}

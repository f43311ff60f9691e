//! Logging: human-readable lines by default, JSON lines with `log.format = "json"`; both on
//! stderr. Under systemd with stderr going to the journal (`JOURNAL_STREAM` names it), each line
//! starts with its syslog priority (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug), which
//! journald takes as the entry's priority, and text lines leave the time to journald.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

pub fn init(c: &LogConfig) {
    let level: LevelFilter = c.level.parse().unwrap_or(LevelFilter::INFO);
    // Our own events at the configured level; dependencies only when they warn.
    let filter = Targets::new()
        .with_default(LevelFilter::WARN.min(level))
        .with_target("sponts", level);
    let registry = tracing_subscriber::registry().with(filter);
    let journal = stderr_is_journal();
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let result = match (c.format, journal) {
        (LogFormat::Text, false) => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            registry
                .with(layer.with_target(false).with_ansi(ansi))
                .try_init()
        }
        (LogFormat::Text, true) => {
            let format = tracing_subscriber::fmt::format()
                .with_target(false)
                .with_ansi(false)
                .without_time();
            registry
                .with(layer.with_ansi(false).event_format(Priority(format)))
                .try_init()
        }
        (LogFormat::Json, false) => registry.with(layer.json()).try_init(),
        (LogFormat::Json, true) => registry
            .with(layer.event_format(Priority(tracing_subscriber::fmt::format().json())))
            .try_init(),
    };
    let _ = result;
}

/// Whether stderr is the journal's stream: systemd names it in `JOURNAL_STREAM` as `DEV:INODE`
/// (inherited by children, and set when only stdout goes there, hence the comparison).
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The syslog priority of a level, as journald reads it from a line's start.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Puts `<N>` before each event of the wrapped format.
struct Priority<F>(F);

impl<S, N, F> FormatEvent<S, N> for Priority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

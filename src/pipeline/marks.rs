//! Marks: what modules ask of the session besides a verdict. The session owns them and acts on
//! them — it tarpits a marked client, adds the headers to the delivered message and puts the
//! flag and notes into the transaction's record.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct Marks {
    tarpit: AtomicBool,
    tx: Mutex<TxMarks>,
}

/// Marks that last one transaction.
#[derive(Debug, Default, Clone)]
pub struct TxMarks {
    /// `spam` (and later `virus`): the message is flagged in the journal and backup.
    pub flag: Option<String>,
    pub notes: Vec<String>,
    /// Header lines (without CRLF) put on top of the delivered message.
    pub headers: Vec<String>,
    /// Header fields removed from the delivered message (forged verdicts).
    pub strip: Vec<crate::smtp::strip::Strip>,
}

impl Marks {
    /// Slows every further reply of this session down (the session applies `uce.tarpit_*`).
    pub fn tarpit(&self) {
        self.tarpit.store(true, Ordering::Relaxed);
    }

    pub fn is_tarpitted(&self) -> bool {
        self.tarpit.load(Ordering::Relaxed)
    }

    pub fn flag(&self, flag: &str) {
        self.lock().flag = Some(flag.to_string());
    }

    pub fn note(&self, note: String) {
        self.lock().notes.push(note);
    }

    pub fn header(&self, line: String) {
        self.lock().headers.push(line);
    }

    /// Removes the client's header fields of this name (`X-Spam-*`) — and value start — from
    /// the delivered message.
    pub fn strip(&self, name: &str, value_starts: Option<&str>) {
        self.lock().strip.push(crate::smtp::strip::Strip {
            name: name.to_string(),
            value_starts: value_starts.map(str::to_string),
        });
    }

    /// The current transaction's marks.
    pub fn tx(&self) -> TxMarks {
        self.lock().clone()
    }

    /// Ends the transaction's marks, handing them over.
    pub fn take_tx(&self) -> TxMarks {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TxMarks> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner())
    }
}

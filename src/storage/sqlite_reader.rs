//! Short reads on SQLite without a trip to sqlx's worker thread: each thread that asks keeps a
//! connection of its own to the database file and runs the query right there. Meant for the
//! indexed lookups on the message path (tens of microseconds), where handing the query to another
//! thread and waking up for its answer costs more than the read itself; in WAL mode they run
//! beside the writer without waiting for it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use sqlx::SqlitePool;

use super::sqlite_writer::Value;
use super::sqlite_writer::connection::{Columns, Connection};

/// Runs `sql` with `args` on this thread's connection to the pool's database; `row` makes a
/// value of each result row.
pub fn query<T>(
    pool: &SqlitePool,
    sql: &str,
    args: &[Value],
    row: impl FnMut(&Columns) -> T,
) -> anyhow::Result<Vec<T>> {
    // Kept with the pool they were opened for: a database closed and opened again (a server
    // restarted in the same process, as the tests do) gets a fresh connection.
    thread_local! {
        static READERS: RefCell<HashMap<PathBuf, (SqlitePool, Connection)>> =
            RefCell::new(HashMap::new());
    }
    let file = pool.connect_options().get_filename().to_path_buf();
    READERS.with(|readers| {
        let mut readers = readers.borrow_mut();
        readers.retain(|_, (p, _)| !p.is_closed());
        if !readers.contains_key(&file) {
            let conn = Connection::open(&file).map_err(|e| anyhow::anyhow!(e))?;
            readers.insert(file.clone(), (pool.clone(), conn));
        }
        let (_, conn) = readers.get_mut(&file).expect("inserted above");
        conn.query(sql, args, row).map_err(|e| anyhow::anyhow!(e))
    })
}

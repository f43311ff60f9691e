//! A SQLite connection of one thread's own (the writer's, or a worker thread's reader): statements
//! are prepared once and kept, values are bound in place (no copy of a message body), and a big
//! body is written into its row piece by piece through SQLite's incremental blob I/O.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_int};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libsqlite3_sys as ffi;

/// A value bound to one `?` / `$N` of a statement, in order.
#[derive(Debug)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int(v.into())
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(v.into())
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// Prepared statements kept at most; beyond, the cache starts over (multi-row inserts make one
/// statement per row count).
const CACHED: usize = 256;
/// The piece of a big blob written at a time.
const BLOB_PIECE: usize = 256 * 1024;

/// The columns of the row a query is on (valid during the call it is given to).
pub struct Columns {
    stmt: *mut ffi::sqlite3_stmt,
}

impl Columns {
    pub fn int(&self, i: usize) -> i64 {
        // SAFETY: the statement is on a row while `self` is lent out.
        unsafe { ffi::sqlite3_column_int64(self.stmt, i as c_int) }
    }

    /// The column as text (NULL is empty).
    pub fn text(&self, i: usize) -> String {
        // SAFETY: as above; the pointer and length are read before any other call on the
        // statement, and the bytes are copied.
        unsafe {
            let p = ffi::sqlite3_column_text(self.stmt, i as c_int);
            if p.is_null() {
                return String::new();
            }
            let n = ffi::sqlite3_column_bytes(self.stmt, i as c_int) as usize;
            String::from_utf8_lossy(std::slice::from_raw_parts(p, n)).into_owned()
        }
    }
}

pub struct Connection {
    db: *mut ffi::sqlite3,
    statements: HashMap<String, *mut ffi::sqlite3_stmt>,
}

impl Connection {
    /// Opens an existing database (the schema is brought up to date by the pool first), with the
    /// settings the pool's connections have.
    pub fn open(path: &Path) -> Result<Connection, String> {
        let name = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| format!("{}: a NUL in the path", path.display()))?;
        let mut db = std::ptr::null_mut();
        // SAFETY: `name` outlives the call; the handle is closed on failure (SQLite makes one
        // even then, to carry the error).
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                name.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX,
                std::ptr::null(),
            )
        };
        let mut conn = Connection {
            db,
            statements: HashMap::new(),
        };
        if rc != ffi::SQLITE_OK {
            return Err(format!(
                "cannot open SQLite database {}: {}",
                path.display(),
                conn.error()
            ));
        }
        // SAFETY: a valid handle.
        unsafe { ffi::sqlite3_busy_timeout(db, 10_000) };
        conn.script(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )?;
        Ok(conn)
    }

    /// Runs statements without parameters, one after the other.
    pub fn script(&mut self, sql: &str) -> Result<(), String> {
        let sql = CString::new(sql).map_err(|_| "a NUL in the SQL".to_string())?;
        // SAFETY: a valid handle and a NUL-terminated string that outlives the call.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.db,
                sql.as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        self.check(rc)
    }

    /// Runs one statement with `args` bound in order, to its end.
    pub fn execute(&mut self, sql: &str, args: &[Value]) -> Result<(), String> {
        self.step_all(sql, args, &mut |_| {})
    }

    /// Runs a query with `args` bound in order; `row` makes a value of each result row.
    pub fn query<T>(
        &mut self,
        sql: &str,
        args: &[Value],
        mut row: impl FnMut(&Columns) -> T,
    ) -> Result<Vec<T>, String> {
        let mut rows = Vec::new();
        self.step_all(sql, args, &mut |c| rows.push(row(c)))?;
        Ok(rows)
    }

    fn step_all(
        &mut self,
        sql: &str,
        args: &[Value],
        on_row: &mut dyn FnMut(&Columns),
    ) -> Result<(), String> {
        let stmt = self.prepared(sql)?;
        // SAFETY: `stmt` belongs to this connection; every bound pointer lives in `args`, which
        // outlives the steps, and the bindings are cleared before returning.
        unsafe {
            let mut result = Ok(());
            for (i, value) in args.iter().enumerate() {
                let at = (i + 1) as c_int;
                let rc = match value {
                    Value::Null => ffi::sqlite3_bind_null(stmt, at),
                    Value::Int(v) => ffi::sqlite3_bind_int64(stmt, at, *v),
                    Value::Text(s) => ffi::sqlite3_bind_text64(
                        stmt,
                        at,
                        s.as_ptr().cast(),
                        s.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    Value::Blob(b) => ffi::sqlite3_bind_blob64(
                        stmt,
                        at,
                        b.as_ptr().cast(),
                        b.len() as u64,
                        ffi::SQLITE_STATIC(),
                    ),
                };
                if rc != ffi::SQLITE_OK {
                    result = self.check(rc);
                    break;
                }
            }
            while result.is_ok() {
                match ffi::sqlite3_step(stmt) {
                    ffi::SQLITE_ROW => on_row(&Columns { stmt }),
                    ffi::SQLITE_DONE => break,
                    rc => result = self.check(rc),
                }
            }
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
            result
        }
    }

    /// Rows the statement run last inserted, changed or deleted.
    pub fn changes(&self) -> u64 {
        // SAFETY: a valid handle.
        unsafe { ffi::sqlite3_changes64(self.db) as u64 }
    }

    /// The rowid of the row this connection inserted last.
    pub fn last_rowid(&self) -> i64 {
        // SAFETY: a valid handle.
        unsafe { ffi::sqlite3_last_insert_rowid(self.db) }
    }

    /// Writes `data` into the blob `table.column` of row `row` (inserted as a zeroblob of exactly
    /// that length), piece by piece.
    pub fn fill_blob(
        &mut self,
        table: &CStr,
        column: &CStr,
        row: i64,
        data: &[u8],
    ) -> Result<(), String> {
        let mut blob: *mut ffi::sqlite3_blob = std::ptr::null_mut();
        // SAFETY: a valid handle; the names and `data` outlive the calls; the blob is closed on
        // every path.
        unsafe {
            let rc = ffi::sqlite3_blob_open(
                self.db,
                c"main".as_ptr(),
                table.as_ptr(),
                column.as_ptr(),
                row,
                1,
                &mut blob,
            );
            if rc != ffi::SQLITE_OK {
                let why = self.error();
                if !blob.is_null() {
                    ffi::sqlite3_blob_close(blob);
                }
                return Err(format!("cannot open the blob for writing: {why}"));
            }
            let mut at = 0;
            while at < data.len() {
                let n = BLOB_PIECE.min(data.len() - at);
                let rc = ffi::sqlite3_blob_write(
                    blob,
                    data[at..].as_ptr().cast(),
                    n as c_int,
                    at as c_int,
                );
                if rc != ffi::SQLITE_OK {
                    let why = self.error();
                    ffi::sqlite3_blob_close(blob);
                    return Err(format!("cannot write the blob: {why}"));
                }
                at += n;
            }
            let rc = ffi::sqlite3_blob_close(blob);
            self.check(rc)
        }
    }

    fn prepared(&mut self, sql: &str) -> Result<*mut ffi::sqlite3_stmt, String> {
        if let Some(&stmt) = self.statements.get(sql) {
            return Ok(stmt);
        }
        if self.statements.len() >= CACHED {
            self.forget_statements();
        }
        let mut stmt = std::ptr::null_mut();
        // SAFETY: a valid handle; `sql` outlives the call (its length is given, no NUL needed).
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db,
                sql.as_ptr().cast(),
                sql.len() as c_int,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        self.check(rc)?;
        if stmt.is_null() {
            return Err(format!("no statement in: {sql}"));
        }
        self.statements.insert(sql.to_string(), stmt);
        Ok(stmt)
    }

    fn forget_statements(&mut self) {
        for (_, stmt) in self.statements.drain() {
            // SAFETY: each was prepared on this connection and is finalized once.
            unsafe { ffi::sqlite3_finalize(stmt) };
        }
    }

    fn check(&self, rc: c_int) -> Result<(), String> {
        if rc == ffi::SQLITE_OK || rc == ffi::SQLITE_DONE {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    /// SQLite's last error on this connection.
    fn error(&self) -> String {
        // SAFETY: a valid handle; the message is copied before any other call.
        unsafe {
            CStr::from_ptr(ffi::sqlite3_errmsg(self.db))
                .to_string_lossy()
                .into_owned()
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.forget_statements();
        // SAFETY: every statement is finalized above; the handle is closed once.
        unsafe { ffi::sqlite3_close(self.db) };
    }
}

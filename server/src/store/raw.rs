//! The group-commit writer's direct line to SQLite. Through sqlx, every
//! statement of a commit is a round trip to sqlx's connection thread, and
//! under load each round trip waits for that thread to get a core: a commit
//! of a few rows took milliseconds. Here the writer takes the connection's
//! handle once per commit (`lock_handle`, sqlx's own escape hatch) and runs
//! the whole transaction on its own thread.
//!
//! The unsafe code is confined to this file: prepared statements that live
//! only while the handle is locked, bound with `SQLITE_TRANSIENT` (SQLite
//! copies the bytes), finalized on drop.

use std::ffi::{c_int, CStr, CString};
use std::ptr::NonNull;

use libsqlite3_sys as ffi;

use super::{Error, Result};

/// A locked connection handle, valid while sqlx's lock is held.
pub struct Handle<'a> {
    db: NonNull<ffi::sqlite3>,
    _lock: std::marker::PhantomData<&'a mut ()>,
}

/// One prepared statement of a [`Handle`].
pub struct Statement<'h> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    db: NonNull<ffi::sqlite3>,
    _handle: std::marker::PhantomData<&'h ()>,
}

impl<'a> Handle<'a> {
    /// The handle behind sqlx's lock: while it lives, sqlx's thread makes
    /// no call on this connection.
    pub fn new(locked: &'a mut sqlx::sqlite::LockedSqliteHandle<'_>) -> Self {
        Handle {
            db: locked.as_raw_handle().cast(),
            _lock: std::marker::PhantomData,
        }
    }

    /// Runs statements without parameters (`begin immediate`, `commit`).
    pub fn exec(&self, sql: &str) -> Result<()> {
        let sql = CString::new(sql).map_err(|_| sqlite_error("SQL contains a NUL byte"))?;
        // SAFETY: a valid handle (see `new`) and a NUL-terminated string;
        // no callback, no error string requested.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.db.as_ptr(),
                sql.as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        self.check(rc)
    }

    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        let mut stmt = std::ptr::null_mut();
        // SAFETY: a valid handle; the length is given, so no NUL needed.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                self.db.as_ptr(),
                sql.as_ptr().cast(),
                c_int::try_from(sql.len()).map_err(|_| sqlite_error("SQL too long"))?,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        self.check(rc)?;
        let stmt = NonNull::new(stmt).ok_or_else(|| sqlite_error("empty statement"))?;
        Ok(Statement {
            stmt,
            db: self.db,
            _handle: std::marker::PhantomData,
        })
    }

    /// A passive checkpoint of the main database: copies the WAL frames no
    /// reader still needs into the database file. Returns (frames in the
    /// WAL, frames copied); equal means the next write restarts the WAL.
    pub fn checkpoint_passive(&self) -> Result<(c_int, c_int)> {
        let (mut log, mut copied) = (0, 0);
        // SAFETY: a valid handle; a null name checkpoints every database of the
        // connection (here only "main").
        let rc = unsafe {
            ffi::sqlite3_wal_checkpoint_v2(
                self.db.as_ptr(),
                std::ptr::null(),
                ffi::SQLITE_CHECKPOINT_PASSIVE,
                &mut log,
                &mut copied,
            )
        };
        self.check(rc).map(|()| (log, copied))
    }

    /// `fdatasync`s the main database file (SQLite's `xSync`) through
    /// SQLite's own descriptor; `false` when there is no file (in memory).
    /// A descriptor of ours would, when closed, drop every POSIX lock this
    /// process holds on the file (SQLite's "how to corrupt" list), and the
    /// next process to open the database would think itself its only user
    /// and delete the WAL under us.
    pub fn sync_main_file(&self) -> std::io::Result<bool> {
        let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
        // SAFETY: a valid handle; FILE_POINTER writes a `sqlite3_file *`.
        let rc = unsafe {
            ffi::sqlite3_file_control(
                self.db.as_ptr(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&mut file as *mut *mut ffi::sqlite3_file).cast(),
            )
        };
        let Some(file) = NonNull::new(file).filter(|_| rc == ffi::SQLITE_OK) else {
            return Ok(false);
        };
        // SAFETY: SQLite's file object of this locked connection (no other
        // call on it meanwhile); its methods are null until it is opened.
        let methods = unsafe { file.as_ref().pMethods };
        if methods.is_null() {
            return Ok(false);
        }
        let Some(x_sync) = (unsafe { (*methods).xSync }) else {
            return Ok(false);
        };
        // SAFETY: as above.
        let rc = unsafe { x_sync(file.as_ptr(), ffi::SQLITE_SYNC_NORMAL) };
        if rc == ffi::SQLITE_OK {
            Ok(true)
        } else {
            Err(std::io::Error::other(format!(
                "syncing the database file failed (SQLite code {rc})"
            )))
        }
    }

    pub fn last_insert_rowid(&self) -> i64 {
        // SAFETY: a valid handle.
        unsafe { ffi::sqlite3_last_insert_rowid(self.db.as_ptr()) }
    }

    fn check(&self, rc: c_int) -> Result<()> {
        check(self.db, rc)
    }
}

impl Statement<'_> {
    pub fn bind_text(&mut self, i: c_int, text: &str) -> Result<()> {
        let len = u64::try_from(text.len()).unwrap_or(u64::MAX);
        // SAFETY: a live statement; SQLITE_TRANSIENT makes SQLite copy.
        let rc = unsafe {
            ffi::sqlite3_bind_text64(
                self.stmt.as_ptr(),
                i,
                text.as_ptr().cast(),
                len,
                ffi::SQLITE_TRANSIENT(),
                ffi::SQLITE_UTF8 as u8,
            )
        };
        check(self.db, rc)
    }

    pub fn bind_blob(&mut self, i: c_int, blob: &[u8]) -> Result<()> {
        let len = u64::try_from(blob.len()).unwrap_or(u64::MAX);
        // SAFETY: as in `bind_text`.
        let rc = unsafe {
            ffi::sqlite3_bind_blob64(
                self.stmt.as_ptr(),
                i,
                blob.as_ptr().cast(),
                len,
                ffi::SQLITE_TRANSIENT(),
            )
        };
        check(self.db, rc)
    }

    pub fn bind_i64(&mut self, i: c_int, v: i64) -> Result<()> {
        // SAFETY: a live statement.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.stmt.as_ptr(), i, v) };
        check(self.db, rc)
    }

    pub fn bind_opt_text(&mut self, i: c_int, text: Option<&str>) -> Result<()> {
        match text {
            Some(t) => self.bind_text(i, t),
            // SAFETY: a live statement.
            None => check(self.db, unsafe {
                ffi::sqlite3_bind_null(self.stmt.as_ptr(), i)
            }),
        }
    }

    /// Runs the statement to completion (it returns no rows), then resets
    /// it for the next bindings.
    pub fn run(&mut self) -> Result<()> {
        // SAFETY: a live statement.
        let rc = unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) };
        // SAFETY: a live statement; reset keeps the bindings, which are
        // all replaced before the next run.
        unsafe { ffi::sqlite3_reset(self.stmt.as_ptr()) };
        if rc == ffi::SQLITE_DONE || rc == ffi::SQLITE_ROW {
            Ok(())
        } else {
            check(self.db, rc)
        }
    }
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        // SAFETY: finalized exactly once, while the handle is locked.
        unsafe { ffi::sqlite3_finalize(self.stmt.as_ptr()) };
    }
}

fn check(db: NonNull<ffi::sqlite3>, rc: c_int) -> Result<()> {
    if rc == ffi::SQLITE_OK {
        return Ok(());
    }
    // SAFETY: a valid handle; the message is copied before any other call.
    let msg = unsafe {
        let p = ffi::sqlite3_errmsg(db.as_ptr());
        if p.is_null() {
            String::from("unknown error")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    Err(sqlite_error(&format!("{msg} (code {rc})")))
}

fn sqlite_error(msg: &str) -> Error {
    Error::Db(sqlx::Error::Protocol(format!("sqlite: {msg}")))
}

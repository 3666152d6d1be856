//! The only unsafe code of the server (`lib.rs` denies it elsewhere): two
//! calls no safe crate offers.
//! - [`sync_main_file`]: `fdatasync` of the database file through SQLite's
//!   own file object (rusqlite has no `sqlite3_file_control` wrapper).
//! - [`raise_priority`]: a higher scheduling priority for the writer's
//!   thread.
#![allow(unsafe_code)]

use std::ptr::NonNull;

use rusqlite::ffi;

/// Syncs the main database file of `conn` (SQLite's `xSync`) through
/// SQLite's own descriptor; `false` when there is no file (in memory).
/// A descriptor of ours would, when closed, drop every POSIX lock this
/// process holds on the file (SQLite's "how to corrupt" list), and the next
/// process to open the database would think itself its only user and
/// delete the WAL under us.
pub fn sync_main_file(conn: &rusqlite::Connection) -> std::io::Result<bool> {
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: the connection's handle is valid while `conn` is borrowed,
    // and no other call runs on it meanwhile (rusqlite connections are not
    // `Sync`); FILE_POINTER writes a `sqlite3_file *`.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&mut file as *mut *mut ffi::sqlite3_file).cast(),
        )
    };
    let Some(file) = NonNull::new(file).filter(|_| rc == ffi::SQLITE_OK) else {
        return Ok(false);
    };
    // SAFETY: SQLite's file object of this connection, alive as long as the
    // connection; its methods are null until the file is opened.
    let methods = unsafe { file.as_ref().pMethods };
    if methods.is_null() {
        return Ok(false);
    }
    // SAFETY: `methods` is SQLite's non-null method table of `file`.
    let Some(x_sync) = (unsafe { (*methods).xSync }) else {
        return Ok(false);
    };
    // SAFETY: as above; `xSync` takes the file and a sync flag.
    let rc = unsafe { x_sync(file.as_ptr(), ffi::SQLITE_SYNC_NORMAL) };
    if rc == ffi::SQLITE_OK {
        Ok(true)
    } else {
        Err(std::io::Error::other(format!(
            "syncing the database file failed (SQLite code {rc})"
        )))
    }
}

/// Every acknowledged edit waits for the writer's one thread: when the
/// machine is busy it should not wait for a core behind the socket tasks.
/// Raising a thread's priority needs CAP_SYS_NICE (root); without it,
/// nothing changes.
pub fn raise_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread; errors are ignored.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, -10) != 0 {
            tracing::debug!("document writer keeps the default priority");
        }
    }
}

//! The few libc calls that std and nix do not cover. The only module besides `capi` that may
//! use `unsafe`; each block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::CStr;

/// True when the kernel started this process in secure-exec mode (setuid, setgid or file
/// capabilities): then the environment belongs to an untrusted caller.
pub fn secure_exec() -> bool {
    // SAFETY: getauxval only reads the process's auxiliary vector; AT_SECURE is a valid key.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Sets the filesystem uid (Linux-only; nix has no wrapper) and returns the previous one.
pub fn setfsuid(uid: u32) -> u32 {
    // SAFETY: setfsuid takes a plain integer and cannot fail in a way that corrupts memory.
    unsafe { libc::setfsuid(uid) as u32 }
}

/// Opens the system log with a static ident; `to_stderr` adds LOG_PERROR for debugging.
pub fn openlog(ident: &'static CStr, to_stderr: bool) {
    let options = libc::LOG_PID | libc::LOG_NDELAY | if to_stderr { libc::LOG_PERROR } else { 0 };
    // SAFETY: ident is 'static, as openlog keeps the pointer for later syslog calls.
    unsafe { libc::openlog(ident.as_ptr(), options, libc::LOG_USER) }
}

/// Sends one message to syslog at `priority`.
pub fn syslog(priority: libc::c_int, message: &str) {
    let text: Vec<u8> = message.bytes().filter(|b| *b != 0).chain([0]).collect();
    // SAFETY: the format is a literal "%s" and text is NUL-terminated without inner NULs.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) }
}

/// Registers fork handlers (run by fork(2), not by posix_spawn or vfork).
pub fn atfork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    // SAFETY: the handlers are plain extern "C" functions that live for the whole program.
    let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    debug_assert_eq!(rc, 0);
}

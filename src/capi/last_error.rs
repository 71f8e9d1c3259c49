//! Why the calling thread's last call failed. A library inside someone else's process does not
//! write to their stderr: the negative errno says what kind of failure, `HPMlastError` hands
//! out the sentence that names the fix, and `LIKWID_ACCESS_VERBOSE=1` (ignored under
//! secure-exec, like every setting from the environment) echoes it to stderr as it happens.

use super::guard;
use crate::error::AccessError;
use std::cell::RefCell;
use std::ffi::c_char;
use std::io::Write;

thread_local! {
    static LAST: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The environment switch that echoes every recorded message to stderr.
const VERBOSE_ENV: &str = "LIKWID_ACCESS_VERBOSE";

/// Keeps `message` as this thread's last error, echoing it when the user asked for that.
pub(super) fn record(mut message: String) {
    // C reads the message up to its first NUL; a daemon's refusal text could carry one.
    if let Some(nul) = message.find('\0') {
        message.truncate(nul);
    }
    if !crate::sys::secure_exec() && std::env::var_os(VERBOSE_ENV).is_some_and(|v| v == "1") {
        // A closed or full stderr is the application's business, not a reason to fail.
        let _ = writeln!(std::io::stderr().lock(), "likwid-access: {message}");
    }
    // During thread teardown the slot may be gone; the errno still tells the caller.
    let _ = LAST.try_with(|last| *last.borrow_mut() = message);
}

/// Keeps `e`'s message as this thread's last error.
pub(super) fn remember(e: &AccessError) {
    record(e.to_string());
}

/// Records `e` and returns it as LIKWID's negative errno: the one place the sign flips.
pub(super) fn fail(e: &AccessError) -> i32 {
    remember(e);
    -e.errno()
}

/// Copies the message of the calling thread's last failed call (of any function of this
/// library) into `buf`: at most `len - 1` bytes, cut at a character boundary, then a NUL.
/// Returns the message's full length in bytes without the NUL, so a result of `len` or more
/// means it was cut; 0 when no call on this thread has failed yet. Success does not clear the
/// message (as with errno): call it right after the failing call. With `len` 0 (and `buf`
/// NULL) nothing is written and only the length is returned. With LIKWID_ACCESS_VERBOSE=1 in
/// the environment each message is also printed to stderr as it is kept (not in setuid or
/// setcap programs, which ignore the environment).
///
/// # Safety
/// `buf` must be NULL or point to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn HPMlastError(buf: *mut c_char, len: usize) -> usize {
    guard(0, || {
        LAST.try_with(|last| {
            let last = last.borrow();
            if !buf.is_null() && len > 0 {
                let mut n = last.len().min(len - 1);
                while !last.is_char_boundary(n) {
                    n -= 1;
                }
                // SAFETY: `buf` is non-NULL and the caller promises `len` writable bytes; we
                // write `n + 1 <= len` of them, from a Rust string that does not overlap it.
                unsafe {
                    std::ptr::copy_nonoverlapping(last.as_ptr(), buf.cast::<u8>(), n);
                    buf.add(n).write(0);
                }
            }
            last.len()
        })
        .unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(len: usize) -> (usize, Vec<u8>) {
        let mut buf = vec![0xAAu8; len];
        // SAFETY: `buf` has `len` writable bytes.
        let n = unsafe { HPMlastError(buf.as_mut_ptr().cast(), len) };
        (n, buf)
    }

    #[test]
    fn message_is_cut_at_a_character_boundary_and_nul_terminated() {
        record("ü-x\0hidden".to_string()); // "ü" is two bytes; the NUL ends the message
        assert_eq!(last(0).0, 4);
        assert_eq!(last(64), (4, b"\xc3\xbc-x\0".iter().copied().chain([0xAA; 59]).collect()));
        // Room for one byte of "ü": none of it is copied.
        assert_eq!(last(2), (4, vec![0, 0xAA]));
        assert_eq!(last(3), (4, b"\xc3\xbc\0".to_vec()));
        // SAFETY: NULL with length 0 writes nothing.
        assert_eq!(unsafe { HPMlastError(std::ptr::null_mut(), 0) }, 4);
    }

    #[test]
    fn failure_returns_the_negated_errno_and_keeps_the_message() {
        assert_eq!(fail(&AccessError::OutOfRange), -libc::ERANGE);
        let (n, buf) = last(64);
        assert_eq!(&buf[..n], AccessError::OutOfRange.to_string().as_bytes());
    }
}

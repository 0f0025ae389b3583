//! Per-thread free lists of exchange buffers.
//!
//! A request's serialized bytes and a response's receive buffer live only while one exchange
//! runs. Kept in each user, they would cost every idle user 8 KiB or more (`bench/run_memory.sh`
//! counts a few KiB per user in all); allocated per request, an 8 KiB block goes past glibc's
//! per-thread cache and its malloc and free showed in every profile of a fast loop. So the
//! users of one runtime thread share a short list: an exchange takes a buffer and gives it
//! back when done (also when cancelled: the give-back is a `Drop`). The list is capped in
//! length, and buffers that grew large (a huge head) are freed rather than kept, so memory stays
//! bounded whatever the traffic.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use bytes::BytesMut;

/// Buffers kept per thread and kind: about as many as exchanges in flight on a busy thread.
const KEEP: usize = 64;
/// Buffers whose capacity grew beyond this are freed, not kept.
const MAX_KEPT_CAPACITY: usize = 32 * 1024;

thread_local! {
    static READ: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static WRITE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer that goes back to its thread's list when dropped.
pub(crate) struct Pooled<T: Reuse> {
    buf: Option<T>,
}

/// What a pooled buffer needs: how to empty it and which list it belongs to.
pub(crate) trait Reuse: Sized + 'static {
    /// Empties the buffer for its next user; `false` when it should be freed instead.
    fn reset(&mut self) -> bool;
    fn list() -> &'static std::thread::LocalKey<RefCell<Vec<Self>>>;
}

impl Reuse for BytesMut {
    fn reset(&mut self) -> bool {
        self.clear();
        // Reclaims the consumed front of the block (no allocation: the buffer is never shared).
        self.reserve(super::h1::FIRST_READ);
        self.capacity() <= MAX_KEPT_CAPACITY
    }

    fn list() -> &'static std::thread::LocalKey<RefCell<Vec<Self>>> {
        &READ
    }
}

impl Reuse for Vec<u8> {
    fn reset(&mut self) -> bool {
        self.clear();
        self.capacity() <= MAX_KEPT_CAPACITY
    }

    fn list() -> &'static std::thread::LocalKey<RefCell<Vec<Self>>> {
        &WRITE
    }
}

/// A receive buffer with room for a first read.
pub(crate) fn read_buffer() -> Pooled<BytesMut> {
    take(|| BytesMut::with_capacity(super::h1::FIRST_READ))
}

/// An empty buffer to serialize a request into.
pub(crate) fn write_buffer() -> Pooled<Vec<u8>> {
    take(Vec::new)
}

fn take<T: Reuse>(new: impl FnOnce() -> T) -> Pooled<T> {
    // `try_with`: during thread teardown the list may be gone; a fresh buffer does then.
    let buf = T::list()
        .try_with(|l| l.try_borrow_mut().ok().and_then(|mut l| l.pop()))
        .ok()
        .flatten()
        .unwrap_or_else(new);
    Pooled { buf: Some(buf) }
}

impl<T: Reuse> Drop for Pooled<T> {
    fn drop(&mut self) {
        let Some(mut buf) = self.buf.take() else {
            return;
        };
        if buf.reset() {
            let _ = T::list().try_with(|l| {
                if let Ok(mut l) = l.try_borrow_mut() {
                    if l.len() < KEEP {
                        l.push(buf);
                    }
                }
            });
        }
    }
}

impl<T: Reuse> Deref for Pooled<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // Only `drop` empties it.
        self.buf
            .as_ref()
            .expect("a pooled buffer is present until dropped")
    }
}

impl<T: Reuse> DerefMut for Pooled<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.buf
            .as_mut()
            .expect("a pooled buffer is present until dropped")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_and_the_list_is_bounded() {
        let ptr = {
            let mut b = write_buffer();
            b.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            b.as_ptr()
        };
        let b = write_buffer();
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), ptr, "the same block is reused");
        drop(b);
        {
            let mut r = read_buffer();
            r.extend_from_slice(&[7; 100]);
            let _ = r.split_to(60);
        }
        let r = read_buffer();
        assert!(r.is_empty() && r.capacity() >= super::super::h1::FIRST_READ);
        drop(r);
        let many: Vec<_> = (0..KEEP * 2).map(|_| read_buffer()).collect();
        drop(many);
        assert_eq!(READ.with(|l| l.borrow().len()), KEEP);
        {
            let mut big = write_buffer();
            big.reserve(MAX_KEPT_CAPACITY * 2);
        }
        assert!(WRITE.with(|l| l.borrow().iter().all(|b| b.capacity() <= MAX_KEPT_CAPACITY)));
    }
}

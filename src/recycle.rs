//! Per-thread spares of what the native HTTP/1 path makes and drops on every request: header
//! maps (the client's request head, the upstream's response head) and the buffer an upstream
//! request is written from. Each would otherwise cost an allocation and a free per request,
//! and a header map a second pair when the identity headers make it grow. Requests are served
//! on one worker thread from accept to answer, so what a request gives back is taken again by
//! the next one on the same thread.

use std::cell::RefCell;
use std::thread::LocalKey;

use http::HeaderMap;

/// Spares kept per thread and kind: more than the requests one worker has in flight at once
/// is never needed; past it what is given back is dropped.
const KEEP: usize = 64;
/// Room a new header map is made with: a client's head plus the headers streetgate adds.
const HEADERS: usize = 32;
/// A map or buffer grown past these is dropped rather than kept (one odd request must not pin
/// its memory for the thread's life).
const MAX_HEADERS: usize = 4 * HEADERS;
const BUFFER: usize = 1024;
const MAX_BUFFER: usize = 64 * 1024;

thread_local! {
    static MAPS: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty header map with room for a request's headers.
pub fn header_map() -> HeaderMap {
    MAPS.with(|m| m.borrow_mut().pop())
        .unwrap_or_else(|| HeaderMap::with_capacity(HEADERS))
}

/// Gives a header map back for a later request (its values are dropped now).
pub fn give_map(mut map: HeaderMap) {
    if map.capacity() > MAX_HEADERS {
        return;
    }
    map.clear();
    keep(&MAPS, map);
}

/// An empty write buffer.
pub fn buffer() -> Vec<u8> {
    BUFFERS
        .with(|b| b.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(BUFFER))
}

/// Gives a write buffer back for a later request.
pub fn give_buffer(mut buffer: Vec<u8>) {
    if buffer.capacity() > MAX_BUFFER {
        return;
    }
    buffer.clear();
    keep(&BUFFERS, buffer);
}

/// Keeps a cleared spare unless this thread already holds `KEEP` of its kind.
fn keep<T: 'static>(spares: &'static LocalKey<RefCell<Vec<T>>>, spare: T) {
    spares.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < KEEP {
            s.push(spare);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_given_back_comes_back_empty_and_big_ones_are_dropped() {
        let mut map = header_map();
        map.insert("x-a", "1".parse().unwrap());
        let capacity = map.capacity();
        give_map(map);
        let again = header_map();
        assert!(again.is_empty());
        assert_eq!(
            again.capacity(),
            capacity,
            "the same map, kept with its room"
        );
        let mut big = HeaderMap::with_capacity(MAX_HEADERS * 2);
        big.insert("x-b", "1".parse().unwrap());
        give_map(big);
        assert!(header_map().capacity() <= MAX_HEADERS);

        let mut b = buffer();
        b.extend_from_slice(b"GET / HTTP/1.1\r\n");
        give_buffer(b);
        assert!(buffer().is_empty());
        give_buffer(Vec::with_capacity(MAX_BUFFER * 2));
        assert!(buffer().capacity() <= MAX_BUFFER);
    }
}

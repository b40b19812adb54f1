//! How big one answer of the room server may be, and the broker's default response limit
//! derived from it. Both used to be set apart (pages up to 4 MB, the broker's limit 1 MB),
//! so through a tunnel a page of ordinary long messages was a 502 for everyone. One
//! constant now sets both: the broker carries twice what a page may hold, so a page's
//! envelope, and a single message larger than the bound (a page always carries at least
//! one), still fit.

/// The bytes of stored message lines one page may hold: `/messages`, `/wait`, a
/// `/topics/{id}` thread, the hits of `/search`. A page stops before the message that
/// would pass it (but always carries at least one) and says `has_more`.
pub const PAGE_BYTES: usize = 512 * 1024;

/// The broker's default `--max-response`: twice [`PAGE_BYTES`]. The largest message the
/// default guards admit (a 256 KB body, escapes included) stays well under it, so every
/// answer of a room server with default limits crosses a default broker.
pub const RESPONSE_LIMIT: u64 = 2 * PAGE_BYTES as u64;

const _: () = assert!(SEARCH_TEXT_BYTES < PAGE_BYTES);

/// The bytes of a message's text that search indexes and scans (its start), so the
/// search corpus stays a bounded fraction of the log and a snippet costs at most this.
pub const SEARCH_TEXT_BYTES: usize = 8 * 1024;

/// Whether a page that holds `held` bytes may take one more item of `next` bytes: always
/// the first, then while the total stays within [`PAGE_BYTES`].
pub fn page_takes(held: usize, next: usize) -> bool {
    held == 0 || held.saturating_add(next) <= PAGE_BYTES
}

/// How many bytes `item` takes in a JSON answer: counted as it is written, with no copy
/// kept (the answer writes it once more).
pub fn json_len<T: serde::Serialize>(item: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, item).map_or(0, |()| count.0)
}

/// The items of a page that already holds `held` bytes: those of `items` that fit by
/// their JSON size (see [`page_takes`]), in order, with `held` counted up; and whether any
/// were left out. Lists that are not messages (topics, claims, an export's topics) page
/// with this.
pub fn fill_page<T: serde::Serialize>(
    held: &mut usize,
    items: impl IntoIterator<Item = T>,
) -> (Vec<T>, bool) {
    let mut page = Vec::new();
    for item in items {
        let size = json_len(&item);
        if !page_takes(*held, size) {
            return (page, true);
        }
        *held += size;
        page.push(item);
    }
    (page, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_fills_a_page_and_says_what_it_left_out() {
        let big = "x".repeat(PAGE_BYTES / 3);
        let mut held = 0;
        let (page, more) = fill_page(&mut held, vec![big.clone(); 5]);
        assert_eq!((page.len(), more), (2, true));
        assert!(held <= PAGE_BYTES);
        let mut held = 0;
        let (page, more) = fill_page(&mut held, vec!["a", "b"]);
        assert_eq!((page, more), (vec!["a", "b"], false));
        let mut held = PAGE_BYTES;
        let (page, more) = fill_page(&mut held, vec!["a"]);
        assert!(page.is_empty() && more, "a full page takes nothing more");
    }

    #[test]
    fn a_page_always_takes_one_and_then_stops_at_the_bound() {
        assert!(page_takes(0, PAGE_BYTES * 3));
        assert!(page_takes(10, PAGE_BYTES - 10));
        assert!(!page_takes(10, PAGE_BYTES - 9));
    }
}

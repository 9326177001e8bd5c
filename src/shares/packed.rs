//! Share lists packed for holding hundreds of thousands of them (the
//! contacts' catalog): a few flat arrays per list instead of a struct and a
//! heap-allocated name per share, and each name kept once, lower-cased, as
//! the text a search scans.
//!
//! Not for lists that are built up or changed one share at a time: a packed
//! list is built whole and never modified.

use memchr::memmem::Finder;

use super::types::{InfoHash, Share, ShareName};

/// A list of shares, in order, packed.
///
/// Names are stored lower-cased (as `str::to_lowercase` does it), which is
/// what a case-insensitive search needs. The original spelling comes back
/// from one bit per byte marking the ASCII letters that were upper case;
/// the rare name whose lower-casing changes more than ASCII letters (`Ä`,
/// `Σ`) is also kept as it was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PackedShares {
    hashes: Vec<InfoHash>,
    sizes: Vec<u64>,
    /// Every name lower-cased, each followed by `\n` (which no valid name
    /// contains, so a match never spans two names).
    folded: String,
    /// Where each name's text ends in `folded` (at its `\n`).
    ends: Vec<u32>,
    /// One bit per byte of `folded`: an ASCII letter that is upper case in
    /// the name. Empty when no name has one.
    upper: Vec<u64>,
    /// Names that lower-casing changes beyond ASCII letters, as they are,
    /// by share index (ascending).
    odd: Vec<(u32, Box<str>)>,
    /// Share indices ordered by hash (equal hashes in list order), for
    /// lookups by hash.
    by_hash: Vec<u32>,
}

/// Whether lower-casing `name` changes nothing but ASCII letters (then the
/// lower-cased text and the positions of its upper-case letters give the
/// name back).
fn only_ascii_case(name: &str) -> bool {
    name.chars().all(|c| {
        if c.is_ascii() {
            return true;
        }
        let mut lower = c.to_lowercase();
        lower.next() == Some(c) && lower.next().is_none()
    })
}

fn index(n: usize) -> u32 {
    // A resource holds at most chunks::MAX_SHARES shares beyond its item
    // (itself under a stanza's size), each name at most MAX_NAME_BYTES: far
    // below 4 GiB.
    u32::try_from(n).expect("a packed share list stays under 4 GiB")
}

impl PackedShares {
    /// Packs `shares`, keeping their order.
    pub(crate) fn new(shares: &[Share]) -> PackedShares {
        let text: usize = shares.iter().map(|s| s.name.as_str().len() + 1).sum();
        let mut p = PackedShares {
            hashes: Vec::with_capacity(shares.len()),
            sizes: Vec::with_capacity(shares.len()),
            folded: String::with_capacity(text),
            ends: Vec::with_capacity(shares.len()),
            upper: Vec::new(),
            odd: Vec::new(),
            by_hash: Vec::new(),
        };
        for (i, share) in shares.iter().enumerate() {
            p.hashes.push(share.hash);
            p.sizes.push(share.size);
            let name = share.name.as_str();
            if only_ascii_case(name) {
                let start = p.folded.len();
                for (j, b) in name.bytes().enumerate() {
                    if b.is_ascii_uppercase() {
                        let bit = start + j;
                        if p.upper.len() <= bit / 64 {
                            p.upper.resize(text.max(bit + 1).div_ceil(64), 0);
                        }
                        p.upper[bit / 64] |= 1 << (bit % 64);
                    }
                }
                p.folded
                    .extend(name.chars().map(|c| c.to_ascii_lowercase()));
            } else {
                p.folded.push_str(&name.to_lowercase());
                p.odd.push((index(i), name.into()));
            }
            p.ends.push(index(p.folded.len()));
            p.folded.push('\n');
        }
        if !p.upper.is_empty() {
            // Lower-casing an odd name can change the text's length.
            p.upper.resize(p.folded.len().div_ceil(64), 0);
            p.upper.shrink_to_fit();
        }
        p.by_hash = (0..index(shares.len())).collect();
        p.by_hash.sort_by_key(|&i| p.hashes[i as usize]);
        p.folded.shrink_to_fit();
        p.odd.shrink_to_fit();
        p
    }

    pub(crate) fn len(&self) -> usize {
        self.hashes.len()
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.ends[i - 1] as usize + 1
        }
    }

    /// The name of share `i`, as published.
    fn name(&self, i: usize) -> String {
        if let Ok(k) = self.odd.binary_search_by_key(&index(i), |(j, _)| *j) {
            return self.odd[k].1.to_string();
        }
        let (start, end) = (self.start(i), self.ends[i] as usize);
        let mut name = self.folded[start..end].to_string();
        if !self.upper.is_empty() {
            // Only ASCII letters are marked, so the text stays UTF-8.
            let mut bytes = name.into_bytes();
            for (j, b) in bytes.iter_mut().enumerate() {
                let bit = start + j;
                if self.upper[bit / 64] & (1 << (bit % 64)) != 0 {
                    b.make_ascii_uppercase();
                }
            }
            name = String::from_utf8(bytes).expect("only ASCII letters changed");
        }
        name
    }

    /// Share `i`.
    pub(crate) fn get(&self, i: usize) -> Share {
        Share {
            hash: self.hashes[i],
            name: ShareName::already_valid(self.name(i)),
            size: self.sizes[i],
        }
    }

    /// Shares `range`, in order.
    pub(crate) fn slice(&self, range: std::ops::Range<usize>) -> Vec<Share> {
        range.map(|i| self.get(i)).collect()
    }

    /// Every share, in order.
    pub(crate) fn to_vec(&self) -> Vec<Share> {
        self.slice(0..self.len())
    }

    pub(crate) fn hashes(&self) -> &[InfoHash] {
        &self.hashes
    }

    /// The first share with `hash`.
    pub(crate) fn find(&self, hash: &InfoHash) -> Option<usize> {
        let k = self
            .by_hash
            .partition_point(|&i| self.hashes[i as usize] < *hash);
        let i = *self.by_hash.get(k)? as usize;
        (self.hashes[i] == *hash).then_some(i)
    }

    /// The shares whose lower-cased name contains `finder`'s needle (itself
    /// lower-cased, without `\n`), each once, in order.
    pub(crate) fn matches<'a>(
        &'a self,
        finder: &'a Finder<'_>,
    ) -> impl Iterator<Item = usize> + 'a {
        let mut last = None;
        finder
            .find_iter(self.folded.as_bytes())
            .filter_map(move |pos| {
                let i = self.ends.partition_point(|&e| (e as usize) <= pos);
                if last == Some(i) {
                    return None; // the same name matched twice
                }
                last = Some(i);
                Some(i)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(i: u8, name: &str) -> Share {
        Share {
            hash: InfoHash([i; 20]),
            name: ShareName::new(name).unwrap(),
            size: u64::from(i) * 1000,
        }
    }

    fn hits(p: &PackedShares, needle: &str) -> Vec<usize> {
        let needle = needle.to_lowercase();
        let finder = Finder::new(needle.as_bytes());
        p.matches(&finder).collect()
    }

    #[test]
    fn names_come_back_as_published() {
        let list = vec![
            share(3, "Holiday VIDEO.mkv"),
            share(1, "äpfel"),
            share(2, "ÄPFEL und Birnen"),
            share(9, "ΣΊΣΥΦΟΣ"),
            share(4, "İstanbul"),
            share(5, "plain"),
            share(6, "\u{212a}elvin"),
        ];
        let p = PackedShares::new(&list);
        assert_eq!(p.to_vec(), list);
        assert_eq!(p.len(), 7);
        let lower = PackedShares::new(&[share(1, "all lower case")]);
        assert!(lower.upper.is_empty() && lower.odd.is_empty());
    }

    #[test]
    fn search_is_case_insensitive_like_to_lowercase() {
        let list = vec![
            share(1, "Holiday PHOTOS"),
            share(2, "photos of ÄPFEL"),
            share(3, "music"),
            share(4, "İstanbul"),
        ];
        let p = PackedShares::new(&list);
        assert_eq!(hits(&p, "photos"), [0, 1]);
        assert_eq!(hits(&p, "äpfel"), [1]);
        assert_eq!(hits(&p, "s"), [0, 1, 2, 3]);
        assert_eq!(hits(&p, "photosmusic"), Vec::<usize>::new());
        for needle in ["i̇stanbul", "İSTANBUL", "stan"] {
            assert_eq!(hits(&p, needle), [3], "{needle}");
        }
    }

    #[test]
    fn lookups_by_hash_find_the_first_of_equal_hashes() {
        let p = PackedShares::new(&[share(5, "a"), share(1, "b"), share(5, "c")]);
        assert_eq!(p.find(&InfoHash([5; 20])), Some(0));
        assert_eq!(p.find(&InfoHash([1; 20])), Some(1));
        assert_eq!(p.find(&InfoHash([2; 20])), None);
        assert_eq!(PackedShares::default().find(&InfoHash([2; 20])), None);
    }
}

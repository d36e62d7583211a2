//! Guest RAM in images: which pages to write (resident and non-zero), runs
//! of pages as `RAM ` / `ZERO` records, and loading them back.
use std::io::Write;

use super::format::{FormatError, MAX_RUN_PAGES, PAGE, Record, Writer, le_u64, tag};
use crate::memory::GuestRam;

/// One bit per guest page.
#[derive(Clone, Debug)]
pub struct PageSet {
    bits: Vec<u64>,
    pages: u64,
}

impl PageSet {
    /// An empty set for `pages` pages.
    pub fn new(pages: u64) -> PageSet {
        PageSet {
            bits: vec![0; pages.div_ceil(64) as usize],
            pages,
        }
    }

    /// A set from a KVM dirty bitmap (one bit per page, 64 per word).
    pub fn from_bitmap(bits: Vec<u64>, pages: u64) -> PageSet {
        let mut s = PageSet { bits, pages };
        s.bits.resize(pages.div_ceil(64) as usize, 0);
        s
    }

    /// Add page `p`.
    pub fn insert(&mut self, p: u64) {
        if p < self.pages {
            self.bits[(p / 64) as usize] |= 1 << (p % 64);
        }
    }

    /// Remove page `p`.
    pub fn remove(&mut self, p: u64) {
        if p < self.pages {
            self.bits[(p / 64) as usize] &= !(1 << (p % 64));
        }
    }

    /// Is page `p` in the set?
    pub fn contains(&self, p: u64) -> bool {
        p < self.pages && self.bits[(p / 64) as usize] & (1 << (p % 64)) != 0
    }

    /// Add every page of `other`.
    pub fn union(&mut self, other: &PageSet) {
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            *a |= b;
        }
    }

    /// Add the pages covering `[gpa, gpa+len)`.
    pub fn insert_range(&mut self, gpa: u64, len: u64) {
        if len == 0 {
            return;
        }
        for p in gpa / PAGE..(gpa + len).div_ceil(PAGE) {
            self.insert(p);
        }
    }

    /// Number of pages in the set.
    pub fn count(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// The pages in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.bits.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some(i as u64 * 64 + u64::from(b))
            })
        })
    }
}

/// Pages of `ram` backed by host memory now ([`GuestRam::resident_pages`]):
/// the only ones that can hold anything but zeros.
pub fn resident(ram: &GuestRam) -> PageSet {
    let pages = ram.size() / PAGE;
    let mut set = PageSet::new(pages);
    match ram.resident_pages() {
        Ok(resident) => resident.iter().for_each(|p| set.insert(p)),
        // Cannot tell: treat every page as possibly non-zero.
        Err(_) => (0..pages).for_each(|p| set.insert(p)),
    }
    set
}

fn is_zero(b: &[u8]) -> bool {
    let (pre, words, post) = {
        // SAFETY: u64 has no invalid bit patterns; align_to only splits the
        // slice at alignment boundaries.
        unsafe { b.align_to::<u64>() }
    };
    pre.iter().all(|&x| x == 0) && post.iter().all(|&x| x == 0) && words.iter().all(|&w| w == 0)
}

/// What a RAM pass wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RamStats {
    /// Pages written with their contents.
    pub data_pages: u64,
    /// Pages written as zero (`ZERO` records).
    pub zero_pages: u64,
    /// Pages looked at and skipped because they were zero.
    pub skipped_zero: u64,
}

/// Accumulates consecutive pages into `RAM ` and `ZERO` records.
struct Runs<'w, W: Write> {
    w: &'w mut Writer<W>,
    data_start: u64,
    data: Vec<u8>,
    zero_start: u64,
    zero_count: u64,
    stats: RamStats,
}

impl<W: Write> Runs<'_, W> {
    fn flush_data(&mut self) -> Result<(), FormatError> {
        if !self.data.is_empty() {
            self.w.record(
                tag::RAM,
                &[&(self.data_start * PAGE).to_le_bytes(), &self.data],
            )?;
            self.data.clear();
        }
        Ok(())
    }

    fn flush_zero(&mut self) -> Result<(), FormatError> {
        if self.zero_count > 0 {
            self.w.record(
                tag::ZERO,
                &[
                    &(self.zero_start * PAGE).to_le_bytes(),
                    &self.zero_count.to_le_bytes(),
                ],
            )?;
            self.zero_count = 0;
        }
        Ok(())
    }

    fn data(&mut self, p: u64, page: &[u8]) -> Result<(), FormatError> {
        self.flush_zero()?;
        let run = self.data.len() as u64 / PAGE;
        if run > 0 && (self.data_start + run != p || run == MAX_RUN_PAGES) {
            self.flush_data()?;
        }
        if self.data.is_empty() {
            self.data_start = p;
        }
        self.data.extend_from_slice(page);
        self.stats.data_pages += 1;
        Ok(())
    }

    fn zero(&mut self, p: u64) -> Result<(), FormatError> {
        self.flush_data()?;
        if self.zero_count > 0 && self.zero_start + self.zero_count != p {
            self.flush_zero()?;
        }
        if self.zero_count == 0 {
            self.zero_start = p;
        }
        self.zero_count += 1;
        self.stats.zero_pages += 1;
        Ok(())
    }
}

/// Write `pages` (ascending page numbers) of `ram`. Zero pages are skipped,
/// or sent as `ZERO` when `send_zero` (a migration round, where the
/// destination may hold older contents). `sent` collects the pages sent with
/// data.
pub fn write_pages<W: Write>(
    w: &mut Writer<W>,
    ram: &GuestRam,
    pages: impl Iterator<Item = u64>,
    send_zero: bool,
    mut sent: Option<&mut PageSet>,
) -> Result<RamStats, FormatError> {
    let mut runs = Runs {
        w,
        data_start: 0,
        data: Vec::with_capacity((MAX_RUN_PAGES * PAGE) as usize),
        zero_start: 0,
        zero_count: 0,
        stats: RamStats::default(),
    };
    let mut page = vec![0u8; PAGE as usize];
    for p in pages {
        if ram.read_slice(p * PAGE, &mut page).is_err() {
            continue;
        }
        if is_zero(&page) {
            if send_zero {
                runs.zero(p)?;
            } else {
                runs.flush_data()?;
                runs.stats.skipped_zero += 1;
            }
            if let Some(s) = sent.as_deref_mut() {
                s.remove(p);
            }
        } else {
            runs.data(p, &page)?;
            if let Some(s) = sent.as_deref_mut() {
                s.insert(p);
            }
        }
    }
    runs.flush_data()?;
    runs.flush_zero()?;
    Ok(runs.stats)
}

/// Check a `RAM ` or `ZERO` record against a RAM of `ram_bytes` and return
/// `(gpa, bytes)`; with `ram`, also apply it.
pub fn apply(
    rec: &Record,
    ram_bytes: u64,
    ram: Option<&GuestRam>,
) -> Result<(u64, u64), FormatError> {
    if rec.body.len() < 8 {
        return Err(rec.invalid("shorter than its address"));
    }
    let gpa = le_u64(&rec.body, 0);
    let len = if rec.tag == tag::RAM {
        let n = rec.body.len() as u64 - 8;
        if n == 0 || !n.is_multiple_of(PAGE) {
            return Err(rec.invalid(format!("{n} bytes of data is not a whole number of pages")));
        }
        n
    } else {
        if rec.body.len() != 16 {
            return Err(rec.invalid("a ZERO record is 16 bytes"));
        }
        le_u64(&rec.body, 8)
            .checked_mul(PAGE)
            .ok_or_else(|| rec.invalid("page count overflows"))?
    };
    if !gpa.is_multiple_of(PAGE) {
        return Err(rec.invalid(format!("address {gpa:#x} is not page aligned")));
    }
    if gpa.checked_add(len).is_none_or(|end| end > ram_bytes) {
        return Err(rec.invalid(format!(
            "pages {gpa:#x}+{len:#x} lie outside the domain's {ram_bytes:#x} bytes of RAM"
        )));
    }
    if let Some(ram) = ram {
        let result = if rec.tag == tag::RAM {
            ram.write_slice(gpa, &rec.body[8..])
        } else {
            ram.release(gpa, len)
        };
        result.map_err(|e| rec.invalid(e.to_string()))?;
    }
    Ok((gpa, len))
}

#[cfg(test)]
mod tests {
    use super::super::format::{Header, Reader};
    use super::*;

    #[test]
    fn sparse_pages_round_trip() {
        let ram = GuestRam::new(4 << 20).unwrap();
        for p in [0u64, 1, 2, 5, 300, 301, 1000] {
            ram.write(p * PAGE + 8, p + 1).unwrap();
        }
        // A touched page that is all zeros is skipped.
        ram.write(7 * PAGE, 0u64).unwrap();
        let set = resident(&ram);
        assert!(set.contains(7) && set.contains(1000) && !set.contains(999));
        let mut w = Writer::new(Vec::new(), Header::current(0)).unwrap();
        let stats = write_pages(&mut w, &ram, set.iter(), false, None).unwrap();
        assert_eq!(stats.data_pages, 7);
        assert_eq!(stats.skipped_zero, 1);
        let img = w.finish().unwrap().0;

        let copy = GuestRam::new(4 << 20).unwrap();
        let mut r = Reader::new(&img[..]).unwrap();
        let mut records = 0;
        loop {
            let rec = r.next_record().unwrap();
            if rec.tag == tag::END {
                break;
            }
            apply(&rec, copy.size(), Some(&copy)).unwrap();
            records += 1;
        }
        assert_eq!(records, 4, "runs 0-2, 5, 300-301, 1000");
        for p in [0u64, 1, 2, 5, 300, 301, 1000] {
            assert_eq!(copy.read::<u64>(p * PAGE + 8).unwrap(), p + 1);
        }
        assert_eq!(copy.touched_bytes(), 7 * PAGE);
    }

    #[test]
    fn out_of_range_pages_are_refused() {
        let mut w = Writer::new(Vec::new(), Header::current(0)).unwrap();
        w.record(
            tag::ZERO,
            &[&(4u64 << 20).to_le_bytes(), &1u64.to_le_bytes()],
        )
        .unwrap();
        let img = w.finish().unwrap().0;
        let mut r = Reader::new(&img[..]).unwrap();
        let rec = r.next_record().unwrap();
        let err = apply(&rec, 4 << 20, None).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }

    #[test]
    fn page_set_iterates_in_order() {
        let mut s = PageSet::new(200);
        for p in [199, 3, 64, 63] {
            s.insert(p);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![3, 63, 64, 199]);
        assert_eq!(s.count(), 4);
        s.remove(64);
        assert!(!s.contains(64));
    }
}

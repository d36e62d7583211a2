//! The byte layout of a domain image: a fixed header, then tagged records,
//! then an `END ` record carrying a CRC-32 of every byte before it.
//!
//! The same framing is used for image files and for migration streams, so a
//! reader never needs to know which one it is reading. See
//! `docs/snapshot-format.md` for the full description.
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// First 8 bytes of every image.
pub const MAGIC: [u8; 8] = *b"XENRSNAP";
/// The format version this VMM writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 32;
/// Bytes of one guest page in RAM records.
pub const PAGE: u64 = 4096;
/// Most pages in one `RAM ` record (1 MiB).
pub const MAX_RUN_PAGES: u64 = 256;

/// Header flag: the domain was paused (by the toolstack) when it was saved.
pub const FLAG_PAUSED: u32 = 1;
/// Header flag: a migration stream (RAM records may repeat a page; the last
/// one wins).
pub const FLAG_STREAM: u32 = 2;
/// Every flag this version knows.
pub const KNOWN_FLAGS: u32 = FLAG_PAUSED | FLAG_STREAM;

/// Record tags, in the order a writer emits them.
pub mod tag {
    /// The domain spec (JSON, [`super::SavedSpec`]).
    pub const SPEC: [u8; 4] = *b"SPEC";
    /// Guest RAM: `gpa: u64`, then whole pages.
    pub const RAM: [u8; 4] = *b"RAM ";
    /// Guest RAM that reads as zero: `gpa: u64`, `pages: u64`.
    pub const ZERO: [u8; 4] = *b"ZERO";
    /// One vCPU's state (see `snapshot::vcpu`).
    pub const VCPU: [u8; 4] = *b"VCPU";
    /// The console history (the last 64 KiB of output).
    pub const CONS: [u8; 4] = *b"CONS";
    /// A named device section: `name_len: u16`, name (UTF-8), data.
    pub const DEV: [u8; 4] = *b"DEV ";
    /// The end: CRC-32 (IEEE) of every byte before this record's body.
    pub const END: [u8; 4] = *b"END ";
}

/// Largest body accepted for each tag (checked before allocating).
pub fn max_body(t: [u8; 4]) -> Option<u64> {
    Some(match t {
        tag::SPEC => 64 * 1024,
        tag::RAM => 8 + MAX_RUN_PAGES * PAGE,
        tag::ZERO => 16,
        tag::VCPU => 1 << 20,
        tag::CONS => 1 << 20,
        tag::DEV => 16 << 20,
        tag::END => 4,
        _ => return None,
    })
}

/// A tag for messages: printable ASCII or hex.
pub fn tag_name(t: [u8; 4]) -> String {
    if t.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{:?}", String::from_utf8_lossy(&t).trim_end())
    } else {
        format!(
            "0x{}",
            t.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }
}

/// Errors reading or writing the framing.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The underlying file or socket failed.
    #[error("I/O error on the image")]
    Io(#[from] io::Error),
    /// The data ended before the `END ` record.
    #[error("the image is truncated: it ends at byte {0} before its end record")]
    Truncated(u64),
    /// Not an image at all.
    #[error("not a domain image (the first bytes are not the magic {:?})", String::from_utf8_lossy(&MAGIC))]
    BadMagic,
    /// Written by a newer (or older) format.
    #[error(
        "image format version {found} is not supported (this VMM reads version {FORMAT_VERSION})"
    )]
    Version {
        /// Version in the header.
        found: u32,
    },
    /// Made for another guest ABI.
    #[error(
        "the image is for guest ABI v{found}; this VMM runs guest ABI v{}",
        guest_abi::ABI_VERSION
    )]
    Abi {
        /// ABI version in the header.
        found: u32,
    },
    /// Header flags this version does not know.
    #[error("the image header has unknown flags {0:#x}")]
    Flags(u32),
    /// A record tag this version does not know.
    #[error("unknown record {} at byte {offset}", tag_name(*tag))]
    UnknownRecord {
        /// Its tag.
        tag: [u8; 4],
        /// Where it starts.
        offset: u64,
    },
    /// A record longer than its kind allows.
    #[error("record {} at byte {offset} claims {len} bytes; at most {max} are allowed", tag_name(*tag))]
    TooLarge {
        /// Its tag.
        tag: [u8; 4],
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
        /// Where it starts.
        offset: u64,
    },
    /// The checksum does not match: some byte changed.
    #[error("the image is corrupted: checksum {stored:08x} in the image, {computed:08x} computed")]
    Checksum {
        /// From the end record.
        stored: u32,
        /// Over the bytes read.
        computed: u32,
    },
    /// A record's content is wrong.
    #[error("record {} at byte {offset} is invalid: {why}", tag_name(*tag))]
    Invalid {
        /// Its tag.
        tag: [u8; 4],
        /// Where it starts.
        offset: u64,
        /// What is wrong.
        why: String,
    },
    /// Records in an order that cannot be right.
    #[error("the image is malformed: {0}")]
    Malformed(String),
}

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u32,
    /// Guest ABI version of the saved guest.
    pub abi_version: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
}

impl Header {
    /// A header for this VMM's format and ABI.
    pub fn current(flags: u32) -> Header {
        Header {
            version: FORMAT_VERSION,
            abi_version: guest_abi::ABI_VERSION,
            flags,
        }
    }

    /// The 32 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.abi_version.to_le_bytes());
        b[16..20].copy_from_slice(&self.flags.to_le_bytes());
        b[20..24].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        b
    }

    /// Parse and check the header bytes.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Header, FormatError> {
        if b[0..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let h = Header {
            version: u32_at(8),
            abi_version: u32_at(12),
            flags: u32_at(16),
        };
        if h.version != FORMAT_VERSION || u32_at(20) != HEADER_LEN as u32 {
            return Err(FormatError::Version { found: h.version });
        }
        if h.abi_version != guest_abi::ABI_VERSION {
            return Err(FormatError::Abi {
                found: h.abi_version,
            });
        }
        if h.flags & !KNOWN_FLAGS != 0 {
            return Err(FormatError::Flags(h.flags & !KNOWN_FLAGS));
        }
        Ok(h)
    }
}

/// The domain as saved: the `SPEC` record (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedSpec {
    /// Domain name.
    pub name: String,
    /// Domain id at save time.
    pub domid: u32,
    /// RAM at boot, MiB.
    pub memory_mib: u64,
    /// Maximum RAM, MiB (the size of guest-physical memory).
    pub maxmem_mib: u64,
    /// vCPU count.
    pub vcpus: u32,
    /// `minios` or the kernel path it was booted from.
    pub kernel: String,
    /// Kernel command line.
    pub cmdline: String,
    /// Guest TSC frequency, kHz (restored with `KVM_SET_TSC_KHZ` if the host
    /// differs).
    pub tsc_khz: u64,
    /// Maximum memory set by the toolstack, KiB.
    pub max_kib: u64,
    /// Balloon target, KiB.
    pub target_kib: u64,
    /// What the guest last reported as used, KiB.
    pub guest_used_kib: u64,
    /// Wall-clock time of the save, seconds since the Unix epoch.
    pub saved_at: f64,
}

impl SavedSpec {
    /// Bytes of guest-physical memory (the mapping the builder creates).
    pub fn ram_bytes(&self) -> u64 {
        (self.maxmem_mib << 20).next_multiple_of(2 << 20)
    }
}

/// Writes records, keeping the running checksum.
pub struct Writer<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    written: u64,
}

impl<W: Write> Writer<W> {
    /// Start an image: writes the header.
    pub fn new(out: W, header: Header) -> Result<Writer<W>, FormatError> {
        let mut w = Writer {
            out,
            crc: crc32fast::Hasher::new(),
            written: 0,
        };
        w.raw(&header.encode())?;
        Ok(w)
    }

    fn raw(&mut self, b: &[u8]) -> Result<(), FormatError> {
        self.crc.update(b);
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Write one record whose body is the concatenation of `parts`.
    pub fn record(&mut self, t: [u8; 4], parts: &[&[u8]]) -> Result<(), FormatError> {
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        debug_assert!(max_body(t).is_some_and(|m| len <= m), "record too long");
        self.raw(&t)?;
        self.raw(&len.to_le_bytes())?;
        for p in parts {
            self.raw(p)?;
        }
        Ok(())
    }

    /// Flush buffered bytes to the underlying writer.
    pub fn flush(&mut self) -> Result<(), FormatError> {
        self.out.flush()?;
        Ok(())
    }

    /// Write the end record and hand back the writer.
    pub fn finish(mut self) -> Result<(W, u64), FormatError> {
        self.raw(&tag::END)?;
        self.raw(&4u64.to_le_bytes())?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.flush()?;
        Ok((self.out, self.written + 4))
    }
}

/// One record read back.
#[derive(Debug)]
pub struct Record {
    /// Its tag.
    pub tag: [u8; 4],
    /// Byte offset of its tag.
    pub offset: u64,
    /// Its body (empty for `END `, which the reader checks itself).
    pub body: Vec<u8>,
}

impl Record {
    /// An `Invalid` error about this record.
    pub fn invalid(&self, why: impl Into<String>) -> FormatError {
        FormatError::Invalid {
            tag: self.tag,
            offset: self.offset,
            why: why.into(),
        }
    }
}

/// Reads records, checking lengths, tags and, at the end, the checksum.
pub struct Reader<R: Read> {
    input: R,
    crc: crc32fast::Hasher,
    offset: u64,
    /// The header read at the start.
    pub header: Header,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// Read and check the header.
    pub fn new(input: R) -> Result<Reader<R>, FormatError> {
        let mut r = Reader {
            input,
            crc: crc32fast::Hasher::new(),
            offset: 0,
            header: Header::current(0),
            done: false,
        };
        let mut h = [0u8; HEADER_LEN];
        r.exact(&mut h)?;
        r.header = Header::decode(&h)?;
        Ok(r)
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), FormatError> {
        match self.input.read_exact(buf) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(FormatError::Truncated(self.offset));
            }
            Err(e) => return Err(e.into()),
        }
        self.crc.update(buf);
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// The same reader (checksum and offset kept) over `f(input)`: e.g. a
    /// buffer put around a socket once the header was read without one.
    pub fn map_input<S: Read>(self, f: impl FnOnce(R) -> S) -> Reader<S> {
        Reader {
            input: f(self.input),
            crc: self.crc,
            offset: self.offset,
            header: self.header,
            done: self.done,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record; `END ` is returned (with an empty body) once its
    /// checksum matched. After it, the input must end.
    pub fn next_record(&mut self) -> Result<Record, FormatError> {
        if self.done {
            return Err(FormatError::Malformed("read past the end record".into()));
        }
        let offset = self.offset;
        let mut head = [0u8; 12];
        self.exact(&mut head)?;
        let t = [head[0], head[1], head[2], head[3]];
        let len = u64::from_le_bytes(head[4..12].try_into().expect("8 bytes"));
        let max = max_body(t).ok_or(FormatError::UnknownRecord { tag: t, offset })?;
        if len > max {
            return Err(FormatError::TooLarge {
                tag: t,
                len,
                max,
                offset,
            });
        }
        if t == tag::END {
            if len != 4 {
                return Err(FormatError::Invalid {
                    tag: t,
                    offset,
                    why: format!("{len} bytes instead of 4"),
                });
            }
            let computed = self.crc.clone().finalize();
            let mut stored = [0u8; 4];
            match self.input.read_exact(&mut stored) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(FormatError::Truncated(self.offset));
                }
                Err(e) => return Err(e.into()),
            }
            self.offset += 4;
            let stored = u32::from_le_bytes(stored);
            if stored != computed {
                return Err(FormatError::Checksum { stored, computed });
            }
            self.done = true;
            return Ok(Record {
                tag: t,
                offset,
                body: Vec::new(),
            });
        }
        let mut body = vec![0u8; len as usize];
        self.exact(&mut body)?;
        Ok(Record {
            tag: t,
            offset,
            body,
        })
    }

    /// After `END `: check that nothing follows (files only).
    pub fn expect_eof(&mut self) -> Result<(), FormatError> {
        let mut b = [0u8; 1];
        match self.input.read(&mut b)? {
            0 => Ok(()),
            _ => Err(FormatError::Malformed(format!(
                "bytes follow the end record at byte {}",
                self.offset
            ))),
        }
    }
}

/// Little-endian u64 at `at` of `b` (caller checked the length).
pub fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), Header::current(0)).unwrap();
        w.record(tag::SPEC, &[b"{}"]).unwrap();
        w.record(tag::ZERO, &[&0u64.to_le_bytes(), &1u64.to_le_bytes()])
            .unwrap();
        w.finish().unwrap().0
    }

    #[test]
    fn round_trip() {
        let img = sample();
        let mut r = Reader::new(&img[..]).unwrap();
        assert_eq!(r.next_record().unwrap().body, b"{}");
        assert_eq!(r.next_record().unwrap().tag, tag::ZERO);
        assert_eq!(r.next_record().unwrap().tag, tag::END);
        r.expect_eof().unwrap();
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let img = sample();
        for i in 0..img.len() {
            let mut bad = img.clone();
            bad[i] ^= 0x40;
            let result = Reader::new(&bad[..]).and_then(|mut r| {
                loop {
                    if r.next_record()?.tag == tag::END {
                        break r.expect_eof();
                    }
                }
            });
            assert!(result.is_err(), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let img = sample();
        for n in 0..img.len() {
            let result = Reader::new(&img[..n]).and_then(|mut r| {
                loop {
                    if r.next_record()?.tag == tag::END {
                        break Ok(());
                    }
                }
            });
            assert!(result.is_err(), "truncation to {n} bytes went unnoticed");
        }
    }

    #[test]
    fn oversized_record_is_refused_before_allocating() {
        let mut img = Header::current(0).encode().to_vec();
        img.extend_from_slice(&tag::RAM);
        img.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = Reader::new(&img[..]).unwrap().next_record().unwrap_err();
        assert!(matches!(err, FormatError::TooLarge { .. }), "{err}");
    }
}

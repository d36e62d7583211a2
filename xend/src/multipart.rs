//! `multipart/form-data` bodies, read the way Xen 2.0's xend read them.
//!
//! RFC 2046 puts a CRLF before every boundary line and makes it part of the
//! delimiter. Xen 2.0's client (`encode_multipart`) writes a file part's bytes
//! and then the boundary straight after them, with no CRLF of its own; its
//! xend (Python's `cgi` parser) accepted that, taking everything up to the
//! boundary and dropping one line ending before it. So does this parser: a
//! part ends where `--BOUNDARY` next occurs, and one `\r\n` or `\n` just
//! before it is the delimiter's, not the part's. Browsers' bodies (CRLF before
//! every boundary) read the same as with any other parser.

/// Why a body is not multipart/form-data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MultipartError {
    /// The `Content-Type` has no `boundary=` parameter.
    #[error("the Content-Type names no boundary")]
    NoBoundary,
    /// The boundary is longer than RFC 2046 allows (which also bounds the
    /// cost of searching a body for it).
    #[error("the boundary is longer than {MAX_BOUNDARY} characters")]
    LongBoundary,
    /// The body never contains `--BOUNDARY`.
    #[error("the body has no part (no boundary line)")]
    NoParts,
    /// A part's headers are not followed by an empty line.
    #[error("part {0} has no end to its headers")]
    Headers(usize),
    /// A part's headers have no `Content-Disposition: form-data; name=...`.
    #[error("part {0} has no Content-Disposition name")]
    NoName(usize),
}

/// The longest boundary RFC 2046 allows.
pub const MAX_BOUNDARY: usize = 70;

/// One part: its field name and its bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Part<'a> {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// Its content.
    pub data: &'a [u8],
}

/// The boundary of a `multipart/form-data; boundary=...` content type.
pub fn boundary(content_type: &str) -> Result<&str, MultipartError> {
    content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or(MultipartError::NoBoundary)
        .and_then(|b| {
            if b.len() > MAX_BOUNDARY {
                Err(MultipartError::LongBoundary)
            } else {
                Ok(b)
            }
        })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Strip one line ending from the end of `data`.
fn chomp(data: &[u8]) -> &[u8] {
    data.strip_suffix(b"\r\n")
        .or_else(|| data.strip_suffix(b"\n"))
        .unwrap_or(data)
}

/// The parts of `body`, in order.
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, MultipartError> {
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    let first = find(body, delim).ok_or(MultipartError::NoParts)?;
    let mut rest = &body[first + delim.len()..];
    let mut parts = Vec::new();
    loop {
        // After a boundary: `--` closes the body; else the line ends.
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let Some(eol) = rest.iter().position(|&b| b == b'\n') else {
            // A body cut short after a boundary: what was read counts.
            return Ok(parts);
        };
        rest = &rest[eol + 1..];
        let n = parts.len() + 1;
        let (head_len, sep) = match (find(rest, b"\r\n\r\n"), find(rest, b"\n\n")) {
            (Some(a), Some(b)) if b < a => (b, 2),
            (Some(a), _) => (a, 4),
            (None, Some(b)) => (b, 2),
            (None, None) => return Err(MultipartError::Headers(n)),
        };
        let headers = String::from_utf8_lossy(&rest[..head_len]);
        let name = disposition_name(&headers).ok_or(MultipartError::NoName(n))?;
        rest = &rest[head_len + sep..];
        // A part without a closing boundary runs to the end, as cgi read it.
        let end = find(rest, delim).unwrap_or(rest.len());
        parts.push(Part {
            name,
            data: chomp(&rest[..end]),
        });
        if end == rest.len() {
            return Ok(parts);
        }
        rest = &rest[end + delim.len()..];
    }
}

/// The `name` parameter of a `Content-Disposition: form-data` header.
fn disposition_name(headers: &str) -> Option<String> {
    headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if !key.trim().eq_ignore_ascii_case("content-disposition") {
            return None;
        }
        value.split(';').skip(1).find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("name")
                .then(|| v.trim().trim_matches('"').to_string())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(body: &str, want: &[(&str, &str)]) {
        let parts = parse(body.as_bytes(), "b0b").unwrap();
        let got: Vec<(&str, &str)> = parts
            .iter()
            .map(|p| (p.name.as_str(), std::str::from_utf8(p.data).unwrap()))
            .collect();
        assert_eq!(got, want, "{body:?}");
    }

    #[test]
    fn xen_2_0_bodies_and_rfc_bodies_read_alike() {
        // Xen 2.0's encode_multipart: a form field ends in CRLF, a file's
        // bytes run straight into the next boundary.
        check(
            "--b0b\r\nContent-Disposition: form-data; name=\"op\"\r\n\r\ncreate\r\n\
             --b0b\r\nContent-Disposition: form-data; name=\"config\"; filename=\"/x/web.sxp\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n(vm (name web)\n    (memory 16))\n\
             --b0b--\r\n",
            &[
                ("op", "create"),
                ("config", "(vm (name web)\n    (memory 16))"),
            ],
        );
        // A file with no final newline: the boundary follows on its line.
        check(
            "--b0b\r\nContent-Disposition: form-data; name=\"config\"; filename=\"c\"\r\n\r\n\
             (vm (name web))--b0b\r\nContent-Disposition: form-data; name=\"op\"\r\n\r\ncreate\r\n--b0b--\r\n",
            &[("config", "(vm (name web))"), ("op", "create")],
        );
        // A browser's (RFC 2046) body, with a preamble and an epilogue.
        check(
            "preamble\r\n--b0b\r\ncontent-disposition: form-data; name=op\r\n\r\ncreate\r\n\
             --b0b\r\nContent-Disposition: form-data; name=\"config_file\"; filename=\"a\"\r\n\
             Content-Type: text/plain\r\n\r\nname = 'x'\r\n\r\n--b0b--\r\nepilogue",
            &[("op", "create"), ("config_file", "name = 'x'\r\n")],
        );
        // Bare LF line ends.
        check(
            "--b0b\nContent-Disposition: form-data; name=\"op\"\n\npause\n--b0b--\n",
            &[("op", "pause")],
        );
        // No part at all.
        check("--b0b--\r\n", &[]);
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        assert_eq!(parse(b"nothing", "b0b"), Err(MultipartError::NoParts));
        assert_eq!(
            parse(
                b"--b0b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b0b--",
                "b0b"
            ),
            Err(MultipartError::NoName(1))
        );
        assert_eq!(
            parse(b"--b0b\r\nContent-Disposition: form-data; name=a", "b0b"),
            Err(MultipartError::Headers(1))
        );
    }

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=3f2a9c0d1e4b5a6c"),
            Ok("3f2a9c0d1e4b5a6c")
        );
        assert_eq!(
            boundary("multipart/form-data; charset=utf-8; Boundary=\"a b\""),
            Ok("a b")
        );
        assert_eq!(
            boundary("multipart/form-data"),
            Err(MultipartError::NoBoundary)
        );
        let long = format!("multipart/form-data; boundary={}", "b".repeat(71));
        assert_eq!(boundary(&long), Err(MultipartError::LongBoundary));
    }
}

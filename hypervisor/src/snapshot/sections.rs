//! `DEV ` records: a named device section. No device of this machine model
//! has state outside guest RAM (the rings live there), so saves write none;
//! a restore checks their framing and ignores them.
/// Encode a `DEV ` record body.
pub fn encode(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(2 + name.len() + data.len());
    b.extend_from_slice(&(name.len() as u16).to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(data);
    b
}

/// Decode a `DEV ` record body into `(name, data)`.
pub fn decode(b: &[u8]) -> Result<(String, Vec<u8>), String> {
    if b.len() < 2 {
        return Err("shorter than its name length".into());
    }
    let n = u16::from_le_bytes([b[0], b[1]]) as usize;
    let name = b
        .get(2..2 + n)
        .ok_or_else(|| format!("name of {n} bytes runs past the record"))?;
    let name = std::str::from_utf8(name).map_err(|_| "the name is not UTF-8".to_string())?;
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    Ok((name.to_string(), b[2 + n..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        assert_eq!(
            decode(&encode("vbd/0", b"state")).unwrap(),
            ("vbd/0".to_string(), b"state".to_vec())
        );
    }

    #[test]
    fn bad_device_records_are_errors() {
        assert!(decode(&[5, 0, b'a']).is_err());
        assert!(decode(&[0, 0]).is_err());
        assert!(decode(&[2, 0, 0xff, 0xfe]).is_err());
    }
}

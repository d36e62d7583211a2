//! Telling xend's refusal of a console (a missing or wrong token) from a
//! console that simply closed.
//!
//! A console protected by xend's token reads the token as the first line;
//! without a valid one xend writes [`xend::api::CONSOLE_REFUSAL`] and closes.
//! The client cannot know beforehand whether a console wants a token (an
//! operator may opt out), so it looks at what came back: a connection whose
//! whole output was that one line was refused.

/// The first bytes a console connection received, up to one byte more than
/// the refusal line.
#[derive(Debug, Default, Clone)]
pub struct Head {
    bytes: Vec<u8>,
}

impl Head {
    /// Notes bytes the server sent.
    pub fn note(&mut self, received: &[u8]) {
        let room = (xend::api::CONSOLE_REFUSAL.len() + 1).saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(&received[..received.len().min(room)]);
    }

    /// True when everything received is xend's refusal line (call when the
    /// server has closed the connection).
    pub fn is_refusal(&self) -> bool {
        self.bytes == xend::api::CONSOLE_REFUSAL.as_bytes()
    }
}

/// What to tell the user when xend refused a console: whether a token was
/// sent decides what to check.
pub fn hint(token_sent: bool) -> &'static str {
    if token_sent {
        "xend refused the console: the token was not accepted (from --token, $XEND_TOKEN, \
         or xend's token-file)"
    } else {
        "xend refused the console: no token found (give --token, or set $XEND_TOKEN, \
         $XEND_TOKEN_FILE, or $XEND_CONFIG to xend's config)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(chunks: &[&[u8]]) -> Head {
        let mut h = Head::default();
        for c in chunks {
            h.note(c);
        }
        h
    }

    #[test]
    fn the_refusal_line_alone_is_a_refusal_however_it_arrives() {
        let line = xend::api::CONSOLE_REFUSAL.as_bytes();
        assert!(head(&[line]).is_refusal());
        let (a, b) = line.split_at(5);
        assert!(head(&[a, b]).is_refusal());
    }

    #[test]
    fn anything_else_is_not() {
        let line = xend::api::CONSOLE_REFUSAL.as_bytes();
        assert!(!head(&[]).is_refusal());
        assert!(!head(&[b"Authentication"]).is_refusal());
        assert!(!head(&[line, b"minios# "]).is_refusal());
        assert!(!head(&[b"login: ", line]).is_refusal());
        // Long output keeps only a bounded head.
        let big = vec![b'x'; 1 << 20];
        let h = head(&[&big, &big]);
        assert!(h.bytes.len() <= line.len() + 1);
        assert!(!h.is_refusal());
    }
}

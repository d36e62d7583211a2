//! Telling xend's refusal of a console (a missing or wrong token) from a
//! console that simply closed.
//!
//! A console protected by xend's token reads the token as the first line;
//! without a valid one xend writes [`xend::api::CONSOLE_REFUSAL`] and closes.
//! The client cannot know beforehand whether a console wants a token (an
//! operator may opt out), so it looks at what came back: a connection whose
//! whole output was that one line was refused.

/// Watches a console connection for xend's refusal: whether a token line was
/// sent, and the first bytes received (up to one more than the refusal line).
#[derive(Debug, Default, Clone)]
pub struct Watch {
    token_sent: bool,
    head: Vec<u8>,
}

impl Watch {
    /// A connection that sent a token line or not.
    pub fn new(token_sent: bool) -> Watch {
        Watch {
            token_sent,
            head: Vec::new(),
        }
    }

    /// Notes bytes the server sent.
    pub fn note(&mut self, received: &[u8]) {
        let room = (xend::api::CONSOLE_REFUSAL.len() + 1).saturating_sub(self.head.len());
        self.head
            .extend_from_slice(&received[..received.len().min(room)]);
    }

    /// Whether a token line was sent.
    pub fn token_sent(&self) -> bool {
        self.token_sent
    }

    /// True when everything received is xend's refusal line (call when the
    /// server has closed the connection).
    pub fn is_refusal(&self) -> bool {
        self.head == xend::api::CONSOLE_REFUSAL.as_bytes()
    }

    /// Once the server has closed: what to tell the user when it refused.
    pub fn refusal_hint(&self) -> Option<&'static str> {
        self.is_refusal().then(|| hint(self.token_sent))
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

    fn head(chunks: &[&[u8]]) -> Watch {
        let mut h = Watch::new(false);
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
        assert_eq!(head(&[line]).refusal_hint(), Some(hint(false)));
        assert_eq!(head(&[b"minios# "]).refusal_hint(), None);
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
        assert!(h.head.len() <= line.len() + 1);
        assert!(!h.is_refusal());
    }
}

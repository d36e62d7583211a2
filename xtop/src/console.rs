//! The console pane: a terminal emulator (vt100) fed by the domain's console
//! connection, and the translation of key presses into the bytes a terminal
//! would send.
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::app::Target;

/// Lines of scrollback kept by the emulator.
pub const SCROLLBACK: usize = 5000;

/// An attached console.
pub struct ConsolePane {
    /// The domain.
    pub target: Target,
    /// The emulated screen.
    pub parser: vt100::Parser,
    /// Escape byte (detaches).
    pub escape: u8,
    /// How the escape key is written, for the status line.
    pub escape_label: String,
    /// Lines scrolled back (0 = live).
    pub scroll: usize,
    /// Set when the connection ended, with why.
    pub closed: Option<String>,
    /// Bytes received.
    pub received: u64,
}

impl ConsolePane {
    /// A pane for `target`, 24x80 until the first resize.
    pub fn new(target: Target, escape: u8, escape_label: &str) -> Self {
        let (cols, rows) = crossterm::terminal::size().unwrap_or((80, 26));
        ConsolePane {
            target,
            parser: vt100::Parser::new(rows.saturating_sub(2).max(1), cols.max(1), SCROLLBACK),
            escape,
            escape_label: escape_label.to_owned(),
            scroll: 0,
            closed: None,
            received: 0,
        }
    }

    /// Feeds console output to the emulator.
    pub fn feed(&mut self, data: &[u8]) {
        self.received += data.len() as u64;
        self.parser.process(data);
        if self.scroll > 0 {
            self.parser.screen_mut().set_scrollback(self.scroll);
        }
    }

    /// Scrolls back (positive) or forward (negative).
    pub fn scroll_by(&mut self, lines: isize) {
        let want = (self.scroll as isize + lines).max(0) as usize;
        self.parser.screen_mut().set_scrollback(want);
        self.scroll = self.parser.screen().scrollback();
    }

    /// The pane got a new size.
    pub fn resize(&mut self, rows: u16, cols: u16) {
        self.parser.screen_mut().set_size(rows, cols);
    }

    /// The whole visible screen as text (tests, expect).
    pub fn contents(&self) -> String {
        self.parser.screen().contents()
    }
}

/// The bytes a terminal sends for `key` (`None` for keys without one).
pub fn key_bytes(key: &KeyEvent) -> Option<Vec<u8>> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let mut out = match key.code {
        KeyCode::Char(c) if ctrl => vec![ctrl_byte(c)?],
        KeyCode::Char(c) => c.to_string().into_bytes(),
        KeyCode::Enter => vec![b'\r'],
        KeyCode::Tab => vec![b'\t'],
        KeyCode::BackTab => b"\x1b[Z".to_vec(),
        KeyCode::Backspace => vec![0x7f],
        KeyCode::Esc => vec![0x1b],
        KeyCode::Up => b"\x1b[A".to_vec(),
        KeyCode::Down => b"\x1b[B".to_vec(),
        KeyCode::Right => b"\x1b[C".to_vec(),
        KeyCode::Left => b"\x1b[D".to_vec(),
        KeyCode::Home => b"\x1b[H".to_vec(),
        KeyCode::End => b"\x1b[F".to_vec(),
        KeyCode::PageUp => b"\x1b[5~".to_vec(),
        KeyCode::PageDown => b"\x1b[6~".to_vec(),
        KeyCode::Delete => b"\x1b[3~".to_vec(),
        KeyCode::Insert => b"\x1b[2~".to_vec(),
        _ => return None,
    };
    if alt {
        out.insert(0, 0x1b);
    }
    Some(out)
}

/// The control byte for Ctrl+`c`. Terminals send Ctrl-] etc. as bytes that
/// crossterm reports as Ctrl+4..7, so those map back too.
fn ctrl_byte(c: char) -> Option<u8> {
    Some(match c {
        'a'..='z' => c as u8 - b'a' + 1,
        'A'..='Z' => c as u8 - b'A' + 1,
        '@' | ' ' | '2' => 0,
        '[' | '3' => 0x1b,
        '\\' | '4' => 0x1c,
        ']' | '5' => 0x1d,
        '^' | '6' => 0x1e,
        '_' | '7' | '/' => 0x1f,
        '?' | '8' => 0x7f,
        _ => return None,
    })
}

/// A crossterm key as the built-in editor's input.
pub fn textarea_input(key: &KeyEvent) -> ratatui_textarea::Input {
    use ratatui_textarea::{Input, Key};
    let k = match key.code {
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Enter => Key::Enter,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Tab => Key::Tab,
        KeyCode::Delete => Key::Delete,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Esc => Key::Esc,
        KeyCode::F(n) => Key::F(n),
        _ => Key::Null,
    };
    Input {
        key: k,
        ctrl: key.modifiers.contains(KeyModifiers::CONTROL),
        alt: key.modifiers.contains(KeyModifiers::ALT),
        shift: key.modifiers.contains(KeyModifiers::SHIFT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_terminal_bytes() {
        let k = |c, m| key_bytes(&KeyEvent::new(c, m));
        assert_eq!(
            k(KeyCode::Char('a'), KeyModifiers::NONE),
            Some(b"a".to_vec())
        );
        assert_eq!(k(KeyCode::Char('c'), KeyModifiers::CONTROL), Some(vec![3]));
        assert_eq!(
            k(KeyCode::Char('5'), KeyModifiers::CONTROL),
            Some(vec![0x1d]),
            "Ctrl-] as crossterm reports it"
        );
        assert_eq!(
            k(KeyCode::Char(']'), KeyModifiers::CONTROL),
            Some(vec![0x1d])
        );
        assert_eq!(k(KeyCode::Enter, KeyModifiers::NONE), Some(b"\r".to_vec()));
        assert_eq!(k(KeyCode::Up, KeyModifiers::NONE), Some(b"\x1b[A".to_vec()));
        assert_eq!(
            k(KeyCode::Char('x'), KeyModifiers::ALT),
            Some(b"\x1bx".to_vec())
        );
    }

    #[test]
    fn the_emulator_keeps_colours_and_scrollback() {
        let t = Target {
            host: 0,
            name: "a".into(),
            id: 1,
            state: String::new(),
            console_port: Some(1),
        };
        let mut p = ConsolePane::new(t, 0x1d, "Ctrl-]");
        p.resize(5, 20);
        p.feed(b"\x1b[31mred\x1b[0m\r\n");
        let cell = p.parser.screen().cell(0, 0).unwrap();
        assert_eq!(cell.contents(), "r");
        assert_eq!(cell.fgcolor(), vt100::Color::Idx(1));
        for i in 0..20 {
            p.feed(format!("line {i}\r\n").as_bytes());
        }
        assert!(!p.contents().contains("line 3"));
        p.scroll_by(10);
        assert!(p.scroll > 0);
        assert!(p.contents().contains("line 10"), "{}", p.contents());
    }
}

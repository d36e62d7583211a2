//! The terminal: enter (raw mode, alternate screen), leave, suspend and resume;
//! restored on drop and on panic.
use std::io::{self, Stdout, Write};

use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

/// The terminal while xtop owns it.
pub struct Tui {
    /// The ratatui terminal.
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
    mouse: bool,
    active: bool,
}

/// Puts the terminal back as we found it (safe to call more than once).
pub fn restore() {
    let _ = disable_raw_mode();
    let mut out = io::stdout();
    let _ = execute!(out, DisableMouseCapture, LeaveAlternateScreen, cursor::Show);
    let _ = out.flush();
}

/// Makes a panic restore the terminal before the message is printed.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

impl Tui {
    /// Takes over the terminal.
    pub fn enter(mouse: bool) -> io::Result<Tui> {
        let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        let mut tui = Tui {
            terminal,
            mouse,
            active: false,
        };
        tui.resume()?;
        Ok(tui)
    }

    /// Gives the terminal back for a while (editor, console client, Ctrl-Z).
    pub fn suspend(&mut self) -> io::Result<()> {
        if self.active {
            self.active = false;
            restore();
        }
        Ok(())
    }

    /// Takes the terminal again and repaints everything.
    pub fn resume(&mut self) -> io::Result<()> {
        if !self.active {
            enable_raw_mode()?;
            let mut out = io::stdout();
            execute!(out, EnterAlternateScreen, cursor::Hide)?;
            if self.mouse {
                execute!(out, EnableMouseCapture)?;
            }
            self.active = true;
            self.terminal.clear()?;
        }
        Ok(())
    }

    /// Turns mouse capture on or off.
    pub fn set_mouse(&mut self, on: bool) -> io::Result<()> {
        self.mouse = on;
        if on {
            execute!(io::stdout(), EnableMouseCapture)
        } else {
            execute!(io::stdout(), DisableMouseCapture)
        }
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        if self.active {
            restore();
        }
    }
}

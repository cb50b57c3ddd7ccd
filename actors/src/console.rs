//! Lines for the operator on stdout / stderr. A daemon whose reader went away (a closed pipe, a
//! detached terminal) keeps running: write errors are ignored here instead of panicking as
//! `println!` does.

use std::io::Write as _;

/// Whether a progress bar is drawn on stderr's last line now (see
/// `experiment_runner::ProgressView`): a line printed meanwhile clears it first, so the bar and
/// the line never share a row; the bar is drawn again at its next update.
static BAR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Says whether a bar is now drawn on stderr.
pub fn bar_shown(shown: bool) {
    BAR.store(shown, std::sync::atomic::Ordering::Relaxed);
}

/// Clears a drawn bar's line (it is drawn again at its next update).
fn clear_bar() {
    if BAR.swap(false, std::sync::atomic::Ordering::Relaxed) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(b"\r\x1b[2K");
        let _ = err.flush();
    }
}

/// The log's writer (`tracing_subscriber`'s `MakeWriter`): stderr, clearing a progress bar
/// before each event's line.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogWriter;

/// One event's writer: clears the bar before the event's first bytes only.
pub struct EventWriter {
    started: bool,
}

impl std::io::Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.started {
            self.started = true;
            clear_bar();
        }
        std::io::stderr().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter { started: false }
    }
}

/// Writes `args` and a newline to stdout; errors are ignored.
pub fn say(args: std::fmt::Arguments) {
    clear_bar();
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    let _ = out.flush();
}

/// Writes `args` to stdout without a newline; errors are ignored.
pub fn say_raw(args: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args);
    let _ = out.flush();
}

/// Writes `args` to stderr without a newline; errors are ignored.
pub fn note_raw(args: std::fmt::Arguments) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args);
    let _ = err.flush();
}

/// `println!` that never panics.
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => { $crate::console::say(format_args!($($t)*)) };
}

/// `eprint!` that never panics.
#[macro_export]
macro_rules! note {
    ($($t:tt)*) => { $crate::console::note_raw(format_args!($($t)*)) };
}

/// `text` from a peer made safe for a terminal: escape sequences (CSI, OSC and the other
/// string commands, two-character escapes) are removed whole, other control characters (C0,
/// DEL, C1) and bidirectional overrides dropped, and line breaks and tabs become spaces. A
/// record's description cannot set the window title, clear the screen or hide text this way.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => skip_escape(&mut chars),
            '\n' | '\r' | '\t' | '\u{2028}' | '\u{2029}' => out.push(' '),
            // direction marks and overrides, zero-width characters, the byte-order mark
            '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Skips the rest of an escape sequence whose ESC was just read.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        // CSI: parameters and intermediates, then one final byte
        Some('[') => {
            for c in chars.by_ref() {
                if ('\x40'..='\x7e').contains(&c) {
                    break;
                }
            }
        }
        // OSC, DCS, SOS, PM, APC: a string ended by BEL or ST (ESC \\)
        Some(']' | 'P' | 'X' | '^' | '_') => {
            while let Some(c) = chars.next() {
                if c == '\x07' {
                    break;
                }
                if c == '\x1b' {
                    if chars.peek() == Some(&'\\') {
                        chars.next();
                    }
                    break;
                }
            }
        }
        // a two-character escape (or ESC at the end)
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn escapes_and_controls_never_reach_the_terminal() {
        let cases = [
            ("\x1b]0;pwned\x07\x1b[2Jfaster", "faster"),
            ("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),
            ("red\x1b[31;1mtext\x1b[0m", "redtext"),
            ("c1\u{9b}31m csi", "c131m csi"),
            ("line\r\nbreak\u{2028}sep", "line  break sep"),
            ("rtl\u{202e}txt\u{200b}\u{feff}\u{061c}", "rtltxt"),
            ("unterminated\x1b]0;title", "unterminated"),
            ("tail escape\x1b", "tail escape"),
            ("plain 学习 ✓", "plain 学习 ✓"),
        ];
        for (input, want) in cases {
            let got = clean(input);
            assert_eq!(got, want, "{input:?}");
            assert!(!got.chars().any(char::is_control), "{got:?}");
        }
    }
}

//! Lines for the operator on stdout / stderr. A daemon whose reader went away (a closed pipe, a
//! detached terminal) keeps running: write errors are ignored here instead of panicking as
//! `println!` does.

use std::io::Write as _;

/// Writes `args` and a newline to stdout; errors are ignored.
pub fn say(args: std::fmt::Arguments) {
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

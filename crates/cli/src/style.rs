//! Terminal styling: colour only on a terminal, and never when NO_COLOR is set.

use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy)]
pub struct Style {
    colour: bool,
}

impl Style {
    pub fn for_stdout() -> Self {
        Style { colour: std::io::stdout().is_terminal() && colour_allowed() }
    }

    pub fn for_stderr() -> Self {
        Style { colour: std::io::stderr().is_terminal() && colour_allowed() }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    pub fn red(self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }

    pub fn green(self, text: &str) -> String {
        self.paint("32", text)
    }
}

fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub fn error(out: &mut impl Write, message: &str) {
    let s = Style::for_stderr();
    let _ = writeln!(out, "{} {message}", s.red(&s.bold("error:")));
}

pub fn warning(out: &mut impl Write, message: &str) {
    let s = Style::for_stderr();
    let _ = writeln!(out, "{} {message}", s.yellow(&s.bold("warning:")));
}

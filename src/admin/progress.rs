//! What a long admin command tells its operator as it goes: a line per step, a progress line
//! that rewrites itself on a terminal (and is a line per update in a log or a pipe), and the
//! warnings, each printed when it arises and kept for the command's report.

use std::fmt::Display;
use std::io::Write;

use crate::error::Result;

/// The output of one command.
pub struct Progress<'a> {
    out: &'a mut dyn Write,
    /// Progress lines rewrite themselves (a terminal).
    tty: bool,
    /// A progress line is on the screen and not ended yet.
    open: bool,
    warnings: Vec<String>,
}

impl<'a> Progress<'a> {
    /// Output to `out`; `tty` when it is a terminal.
    pub fn new(out: &'a mut dyn Write, tty: bool) -> Progress<'a> {
        Progress {
            out,
            tty,
            open: false,
            warnings: Vec::new(),
        }
    }

    /// One line, after ending any progress line.
    pub fn say(&mut self, line: impl Display) -> Result<()> {
        self.done()?;
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        Ok(())
    }

    /// A warning: said now as `warning: ...`, and kept for [`Progress::warnings`].
    pub fn warn(&mut self, warning: impl Into<String>) -> Result<()> {
        let warning = warning.into();
        self.say(format_args!("warning: {warning}"))?;
        self.warnings.push(warning);
        Ok(())
    }

    /// Shows `text` as the current progress.
    pub fn tick(&mut self, text: impl Display) -> Result<()> {
        if self.tty {
            write!(self.out, "\r\x1b[2K{text}")?;
            self.open = true;
        } else {
            writeln!(self.out, "{text}")?;
        }
        self.out.flush()?;
        Ok(())
    }

    /// Ends the progress line (on a terminal), so what follows starts on a line of its own.
    pub fn done(&mut self) -> Result<()> {
        if self.open {
            writeln!(self.out)?;
            self.out.flush()?;
            self.open = false;
        }
        Ok(())
    }

    /// The output itself, for tables; any progress line is ended first.
    pub fn out(&mut self) -> Result<&mut dyn Write> {
        self.done()?;
        Ok(&mut *self.out)
    }

    /// The warnings said so far.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The warnings said so far, taken for a report.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_end_before_the_next_line_on_a_terminal() {
        let mut buf = Vec::new();
        let mut p = Progress::new(&mut buf, true);
        p.tick("1 of 2").unwrap();
        p.tick("2 of 2").unwrap();
        p.say("done").unwrap();
        p.warn("look at this").unwrap();
        assert_eq!(p.warnings(), ["look at this"]);
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text,
            "\r\x1b[2K1 of 2\r\x1b[2K2 of 2\ndone\nwarning: look at this\n"
        );
    }

    #[test]
    fn progress_is_a_line_per_update_in_a_log() {
        let mut buf = Vec::new();
        let mut p = Progress::new(&mut buf, false);
        p.tick("1 of 2").unwrap();
        p.say("done").unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), "1 of 2\ndone\n");
    }
}

//! JSON lexing for [`Cursor`]: whitespace, literals, numbers, strings (with unescaping) and
//! validated skipping of values nobody asked for. Split from `parser.rs`, which maps values
//! onto the schema.

use super::error::DecodeError;
use super::parser::{Cursor, Str};

/// Bytes that end the fast scan of a string body: quote, backslash, control characters.
static STRING_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

impl Cursor<'_> {
    #[inline]
    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    pub(super) fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    pub(super) fn syntax(&self, what: &'static str) -> DecodeError {
        DecodeError::InvalidJson { offset: self.pos, what }
    }

    pub(super) fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), DecodeError> {
        if self.peek() != Some(byte) {
            return Err(self.syntax(what));
        }
        self.pos += 1;
        Ok(())
    }

    pub(super) fn literal(&mut self, word: &'static [u8]) -> Result<(), DecodeError> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.syntax("expected `true`, `false` or `null`"))
        }
    }

    /// Validates a JSON number at the cursor and moves past it.
    pub(super) fn number(&mut self) -> Result<(), DecodeError> {
        let b = self.bytes;
        let mut p = self.pos;
        if b.get(p) == Some(&b'-') {
            p += 1;
        }
        match b.get(p) {
            Some(b'0') => p += 1,
            Some(b'1'..=b'9') => {
                while matches!(b.get(p), Some(b'0'..=b'9')) {
                    p += 1;
                }
            }
            _ => return Err(DecodeError::InvalidJson { offset: p, what: "malformed number" }),
        }
        if b.get(p) == Some(&b'.') {
            p += 1;
            if !matches!(b.get(p), Some(b'0'..=b'9')) {
                return Err(DecodeError::InvalidJson { offset: p, what: "malformed number" });
            }
            while matches!(b.get(p), Some(b'0'..=b'9')) {
                p += 1;
            }
        }
        if matches!(b.get(p), Some(b'e' | b'E')) {
            p += 1;
            if matches!(b.get(p), Some(b'+' | b'-')) {
                p += 1;
            }
            if !matches!(b.get(p), Some(b'0'..=b'9')) {
                return Err(DecodeError::InvalidJson { offset: p, what: "malformed number" });
            }
            while matches!(b.get(p), Some(b'0'..=b'9')) {
                p += 1;
            }
        }
        self.pos = p;
        Ok(())
    }

    pub(super) fn str_bytes(&self, s: &Str) -> &[u8] {
        match *s {
            Str::Input(a, b) => &self.bytes[a..b],
            Str::Scratch => self.scratch.as_bytes(),
            Str::Text(start, len) => self.row.str_at(start, len).as_bytes(),
        }
    }

    /// Reads the string at the cursor (on its opening quote). With `to_text` its content is
    /// appended to the row's text buffer; otherwise it stays in the input when it has no
    /// escapes, or is unescaped into the scratch buffer.
    pub(super) fn string(&mut self, to_text: bool) -> Result<Str, DecodeError> {
        let start = self.pos + 1;
        let mut p = start;
        loop {
            match self.bytes.get(p) {
                None => return Err(DecodeError::InvalidJson { offset: p, what: "unterminated string" }),
                Some(&c) if STRING_SPECIAL[c as usize] => break,
                Some(_) => p += 1,
            }
        }
        if self.bytes[p] == b'"' {
            self.pos = p + 1;
            if !to_text {
                return Ok(Str::Input(start, p));
            }
            let at = self.row.text.len();
            self.row.text.push_str(&self.input[start..p]);
            return Ok(Str::Text(at as u32, (p - start) as u32));
        }
        // Slow path: escapes or a control character.
        let out: &mut String = if to_text {
            &mut self.row.text
        } else {
            self.scratch.clear();
            self.scratch
        };
        let at = out.len();
        let mut run = start;
        loop {
            match self.bytes.get(p) {
                None => return Err(DecodeError::InvalidJson { offset: p, what: "unterminated string" }),
                Some(b'"') => {
                    out.push_str(&self.input[run..p]);
                    self.pos = p + 1;
                    break;
                }
                Some(b'\\') => {
                    out.push_str(&self.input[run..p]);
                    p = unescape(self.bytes, p, out)?;
                    run = p;
                }
                Some(&c) if c < 0x20 => {
                    return Err(DecodeError::InvalidJson { offset: p, what: "control character inside a string" })
                }
                Some(_) => p += 1,
            }
        }
        Ok(if to_text { Str::Text(at as u32, (out.len() - at) as u32) } else { Str::Scratch })
    }

    /// Validates and skips any JSON value (unknown keys, mistyped values).
    pub(super) fn skip_value(&mut self, depth: usize) -> Result<(), DecodeError> {
        match self.peek() {
            Some(b'"') => self.string(false).map(|_| ()),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(open @ (b'{' | b'[')) => {
                self.enter(depth)?;
                self.pos += 1;
                let close = if open == b'{' { b'}' } else { b']' };
                self.skip_ws();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        if self.peek() != Some(b'"') {
                            return Err(self.syntax("expected a key string"));
                        }
                        self.string(false)?;
                        self.skip_ws();
                        self.expect(b':', "expected `:` after the key")?;
                        self.skip_ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => {
                            self.pos += 1;
                            self.skip_ws();
                        }
                        Some(c) if c == close => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(self.syntax("expected `,` or a closing bracket")),
                    }
                }
            }
            _ => Err(self.syntax("expected a JSON value")),
        }
    }
}

/// Decodes the escape at `bytes[p]` (a backslash) into `out`; returns the position after it.
fn unescape(bytes: &[u8], p: usize, out: &mut String) -> Result<usize, DecodeError> {
    let bad = |offset, what| DecodeError::InvalidJson { offset, what };
    let c = match bytes.get(p + 1) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => {
            let hi = hex4(bytes, p + 2).ok_or(bad(p, "bad \\u escape"))?;
            let (code, next) = match hi {
                0xD800..=0xDBFF => {
                    if bytes.get(p + 6) != Some(&b'\\') || bytes.get(p + 7) != Some(&b'u') {
                        return Err(bad(p, "unpaired UTF-16 surrogate in \\u escape"));
                    }
                    let lo = hex4(bytes, p + 8).ok_or(bad(p + 6, "bad \\u escape"))?;
                    if !(0xDC00..=0xDFFF).contains(&lo) {
                        return Err(bad(p, "unpaired UTF-16 surrogate in \\u escape"));
                    }
                    (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), p + 12)
                }
                0xDC00..=0xDFFF => return Err(bad(p, "unpaired UTF-16 surrogate in \\u escape")),
                _ => (hi, p + 6),
            };
            out.push(char::from_u32(code).ok_or(bad(p, "bad \\u escape"))?);
            return Ok(next);
        }
        _ => return Err(bad(p, "unknown escape in string")),
    };
    out.push(c);
    Ok(p + 2)
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    let mut v = 0;
    for &d in digits {
        v = v * 16 + (d as char).to_digit(16)?;
    }
    Some(v)
}

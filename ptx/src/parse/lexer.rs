//! Tokenizer for PTX source text.

use crate::error::PtxError;

/// One lexical token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Identifier, including `%`/`$`-prefixed names (`%r1`, `$L__BB0_2`).
    Ident(String),
    /// A `.name` directive or modifier, stored without the dot.
    Dot(String),
    /// Non-negative integer literal.
    Int(u64),
    /// `0fXXXXXXXX` single-precision literal (bits).
    F32(u32),
    /// `0dXXXXXXXXXXXXXXXX` double-precision literal (bits).
    F64(u64),
    /// Decimal floating-point literal.
    Float(f64),
    /// String literal (without quotes).
    Str(String),
    /// Single punctuation character.
    P(char),
}

/// A token with its 1-based source position.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub line: u32,
    pub col: u32,
}

fn is_follow(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$'
}

/// Split `src` into tokens, dropping whitespace and comments.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, PtxError> {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(src.len() / 4);
    let (mut i, mut line, mut line_start) = (0usize, 1u32, 0usize);
    let err = |line: u32, col: usize, msg: String| PtxError::Parse {
        line,
        col: col as u32,
        msg,
    };
    while i < b.len() {
        let c = b[i];
        let col = (i - line_start + 1) as u32;
        let tok = match c {
            b'\n' => {
                line += 1;
                i += 1;
                line_start = i;
                continue;
            }
            b' ' | b'\t' | b'\r' | 0x0c => {
                i += 1;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (sl, sc) = (line, col);
                i = skip_block_comment(b, i + 2, &mut line, &mut line_start)
                    .ok_or_else(|| err(sl, sc as usize, "unterminated block comment".into()))?;
                continue;
            }
            b'"' => {
                let (s, end) = lex_string(b, i)
                    .ok_or_else(|| err(line, col as usize, "unterminated string".into()))?;
                i = end;
                Tok::Str(s)
            }
            b'.' if b.get(i + 1).is_some_and(|&n| is_follow(n)) => {
                let start = i + 1;
                i = dot_name_end(b, start);
                Tok::Dot(std::str::from_utf8(&b[start..i]).unwrap_or("").to_string())
            }
            b'0'..=b'9' => {
                let (tok, n) = lex_number(&b[i..]).map_err(|m| err(line, col as usize, m))?;
                i += n;
                tok
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c == b'%' => {
                let start = i;
                i = follow_end(b, i + 1);
                Tok::Ident(std::str::from_utf8(&b[start..i]).unwrap_or("").to_string())
            }
            c if is_punct(c) => {
                i += 1;
                Tok::P(c as char)
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(err(
                    line,
                    col as usize,
                    format!("unexpected character {ch:?}"),
                ));
            }
        };
        out.push(Token { tok, line, col });
    }
    Ok(out)
}

/// Single-character punctuation tokens.
fn is_punct(c: u8) -> bool {
    b",;:{}[]()<>+-|!@=*~&^/".contains(&c)
}

/// End of the run of identifier bytes ([`is_follow`]) starting at `i`.
fn follow_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_follow(b[i]) {
        i += 1;
    }
    i
}

/// End of a `.name` whose name starts at `i`, `::`-joined parts included (cache-policy
/// modifiers such as `.L2::evict_last`).
fn dot_name_end(b: &[u8], mut i: usize) -> usize {
    loop {
        i = follow_end(b, i);
        if i + 2 < b.len() && b[i] == b':' && b[i + 1] == b':' && is_follow(b[i + 2]) {
            i += 2;
            continue;
        }
        return i;
    }
}

/// Index just past the `*/` closing a block comment whose body starts at `i`, counting
/// the line breaks it spans into `line` and `line_start`; `None` if it is unterminated.
fn skip_block_comment(
    b: &[u8],
    mut i: usize,
    line: &mut u32,
    line_start: &mut usize,
) -> Option<usize> {
    loop {
        if i + 1 >= b.len() {
            return None;
        }
        if b[i] == b'*' && b[i + 1] == b'/' {
            return Some(i + 2);
        }
        if b[i] == b'\n' {
            *line += 1;
            *line_start = i + 1;
        }
        i += 1;
    }
}

/// The text of the string literal whose opening quote is at `b[i]`, and the index just
/// past its closing quote; `None` if it is unterminated or contains a line break.
fn lex_string(b: &[u8], mut i: usize) -> Option<(String, usize)> {
    let start = i + 1;
    i += 1;
    while i < b.len() && b[i] != b'"' {
        if b[i] == b'\\' {
            i += 1;
        }
        if i < b.len() && b[i] == b'\n' {
            return None;
        }
        i += 1;
    }
    if i >= b.len() {
        return None;
    }
    let s = String::from_utf8_lossy(&b[start..i]).into_owned();
    Some((s, i + 1))
}

fn hex_val(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for &c in s {
        v = (v << 4) | (c as char).to_digit(16)? as u64;
    }
    Some(v)
}

/// Lex a numeric literal at the start of `b`; returns the token and its length.
fn lex_number(b: &[u8]) -> Result<(Tok, usize), String> {
    let mut n = 0;
    while n < b.len() && (is_follow(b[n]) || b[n] == b'.') {
        // allow exponent sign: 1.5e-3
        n += 1;
        if n < b.len() && (b[n] == b'-' || b[n] == b'+') && matches!(b[n - 1], b'e' | b'E') {
            let is_hex = b.len() > 1 && matches!(b[1], b'x' | b'X' | b'f' | b'F' | b'd' | b'D');
            if !is_hex {
                n += 1;
            }
        }
    }
    let text = &b[..n];
    let s = std::str::from_utf8(text).unwrap_or("");
    let bad = || format!("malformed number literal `{s}`");
    if text.len() >= 2 && text[0] == b'0' {
        let body = &text[2..];
        match text[1] {
            b'f' | b'F' if body.len() == 8 => {
                return Ok((Tok::F32(hex_val(body).ok_or_else(bad)? as u32), n));
            }
            b'd' | b'D' if body.len() == 16 => {
                return Ok((Tok::F64(hex_val(body).ok_or_else(bad)?), n));
            }
            b'x' | b'X' => {
                let body = body.strip_suffix(b"U").unwrap_or(body);
                return Ok((Tok::Int(hex_val(body).ok_or_else(bad)?), n));
            }
            b'b' | b'B' => {
                let body = body.strip_suffix(b"U").unwrap_or(body);
                let v = u64::from_str_radix(std::str::from_utf8(body).unwrap_or("x"), 2)
                    .map_err(|_| bad())?;
                return Ok((Tok::Int(v), n));
            }
            _ => {}
        }
    }
    if s.contains(['.', 'e', 'E']) {
        let v: f64 = s.parse().map_err(|_| bad())?;
        return Ok((Tok::Float(v), n));
    }
    let digits = s.strip_suffix('U').unwrap_or(s);
    if digits.len() > 1 && digits.starts_with('0') {
        let v = u64::from_str_radix(&digits[1..], 8).map_err(|_| bad())?;
        return Ok((Tok::Int(v), n));
    }
    let v: u64 = digits.parse().map_err(|_| bad())?;
    Ok((Tok::Int(v), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let t = tokenize("0f3F800000 0d3FF0000000000000 0x10 17 1.5e2 010 0xFFU").unwrap();
        let v: Vec<Tok> = t.into_iter().map(|t| t.tok).collect();
        assert_eq!(
            v,
            vec![
                Tok::F32(0x3F80_0000),
                Tok::F64(0x3FF0_0000_0000_0000),
                Tok::Int(16),
                Tok::Int(17),
                Tok::Float(150.0),
                Tok::Int(8),
                Tok::Int(255)
            ]
        );
    }

    #[test]
    fn idents_and_dots() {
        let t =
            tokenize("ld.global.L1::no_allocate.f32 %f1, [%rd1+-4]; // c\n/* x\n */ $L__BB0_2:")
                .unwrap();
        assert_eq!(t[0].tok, Tok::Ident("ld".into()));
        assert_eq!(t[2].tok, Tok::Dot("L1::no_allocate".into()));
        assert_eq!(t[4].tok, Tok::Ident("%f1".into()));
        let last = t.last().unwrap();
        assert_eq!((last.line, last.tok.clone()), (3, Tok::P(':')));
    }
}

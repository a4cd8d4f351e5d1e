//! Device-side `printf` (the `vprintf(format, args)` system call): C-style
//! formatting of the packed argument buffer, one line set per thread in lane
//! order, delivered to [`crate::ExecOptions::printf`] or stdout.

use super::mem::{classify, Gen};
use super::program::{lanes, Cx, Fault, Inst, R};
use super::raw::HostSpan;
use std::fmt::Write as _;

/// Largest field width / precision honoured.
const MAX_FIELD: usize = 4096;

/// Read `len` bytes at generic address `a` as seen by lane `l`.
fn read_bytes(cx: &Cx<'_>, l: usize, a: u64, len: usize) -> Result<Vec<u8>, Fault> {
    let win = |s: &[u8], o: usize| -> Result<Vec<u8>, Fault> {
        s.get(o..o.checked_add(len).ok_or(Fault::Illegal(a))?)
            .map(|v| v.to_vec())
            .ok_or(Fault::Illegal(a))
    };
    match classify(a) {
        Gen::Shared(o) => win(cx.shared, o),
        Gen::Param(o) => win(cx.env.params, o),
        Gen::Local(o) => {
            if o + len > cx.lstride {
                return Err(Fault::Illegal(a));
            }
            win(cx.local, l * cx.lstride + o)
        }
        Gen::Global(g) => {
            let span = HostSpan::new(cx.env.mem, g, len as u64, false)
                .map_err(|e| Fault::Illegal(e.addr))?;
            Ok((0..len).map(|k| span.load(k, 1) as u8).collect())
        }
    }
}

/// NUL-terminated string at generic address `a` (at most 4 KiB).
fn read_cstr(cx: &Cx<'_>, l: usize, a: u64) -> Result<Vec<u8>, Fault> {
    let mut out = Vec::new();
    for k in 0..4096u64 {
        let b = read_bytes(cx, l, a.wrapping_add(k), 1)?[0];
        if b == 0 {
            break;
        }
        out.push(b);
    }
    Ok(out)
}

struct Args<'a, 'c> {
    cx: &'a Cx<'c>,
    lane: usize,
    base: u64,
    off: u64,
    count: u64,
}

impl Args<'_, '_> {
    fn next(&mut self, size: u64) -> Result<u64, Fault> {
        self.off = self.off.next_multiple_of(size);
        let b = read_bytes(
            self.cx,
            self.lane,
            self.base.wrapping_add(self.off),
            size as usize,
        )?;
        self.off += size;
        self.count += 1;
        let mut v = [0u8; 8];
        v[..b.len()].copy_from_slice(&b);
        Ok(u64::from_le_bytes(v))
    }
}

#[derive(Default)]
struct Spec {
    left: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
    width: usize,
    prec: Option<usize>,
    long: bool,
}

fn pad(s: String, sp: &Spec, numeric: bool) -> String {
    let len = s.chars().count();
    if len >= sp.width {
        return s;
    }
    let n = sp.width - len;
    if sp.left {
        s + &" ".repeat(n)
    } else if sp.zero && numeric {
        let sign_len = s.find(|c: char| c.is_ascii_alphanumeric()).unwrap_or(0);
        let (sign, rest) = s.split_at(sign_len);
        let (pfx, rest) = if rest.starts_with("0x") || rest.starts_with("0X") {
            rest.split_at(2)
        } else {
            ("", rest)
        };
        format!("{sign}{pfx}{}{rest}", "0".repeat(n))
    } else {
        " ".repeat(n) + &s
    }
}

/// C `%e` style: mantissa with `prec` digits, exponent with sign and at least 2 digits.
fn fmt_e(v: f64, prec: usize, upper: bool) -> String {
    let s = format!("{:.*e}", prec, v.abs());
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    let r = format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    if upper {
        r.to_uppercase()
    } else {
        r
    }
}

/// The sign a signed conversion prints: `-`, or `+` / space as the flags ask, or nothing.
fn sign_prefix(negative: bool, sp: &Spec) -> &'static str {
    if negative {
        "-"
    } else if sp.plus {
        "+"
    } else if sp.space {
        " "
    } else {
        ""
    }
}

fn fmt_float(v: f64, conv: char, sp: &Spec) -> String {
    let upper = conv.is_ascii_uppercase();
    let sign = sign_prefix(v.is_sign_negative() && !v.is_nan(), sp);
    if !v.is_finite() {
        let t = if v.is_nan() { "nan" } else { "inf" };
        return format!(
            "{sign}{}",
            if upper {
                t.to_uppercase()
            } else {
                t.to_string()
            }
        );
    }
    let prec = sp.prec.unwrap_or(6);
    let body = match conv.to_ascii_lowercase() {
        'f' => format!("{:.*}", prec, v.abs()),
        'e' => fmt_e(v, prec, upper),
        'a' => format!("{:e}", v.abs()),
        _ => {
            let p = prec.max(1);
            let e = fmt_e(v, p - 1, false);
            let x: i32 = e
                .rsplit_once('e')
                .and_then(|(_, x)| x.parse().ok())
                .unwrap_or(0);
            let mut s = if x < -4 || x >= p as i32 {
                e
            } else {
                format!("{:.*}", (p as i32 - 1 - x).max(0) as usize, v.abs())
            };
            if !sp.alt {
                let (m, ex) = match s.find('e') {
                    Some(i) => (s[..i].to_string(), s[i..].to_string()),
                    None => (s.clone(), String::new()),
                };
                let m = if m.contains('.') {
                    m.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    m
                };
                s = m + &ex;
            }
            if upper {
                s.to_uppercase()
            } else {
                s
            }
        }
    };
    format!("{sign}{body}")
}

/// Parse the flags, width, precision and length modifier of a conversion specification
/// starting at `fmt[*i]` (a `*` width or precision is taken from `args`), leaving `*i` at
/// the conversion character.
fn parse_spec(fmt: &[u8], i: &mut usize, args: &mut Args<'_, '_>) -> Result<Spec, Fault> {
    let mut sp = Spec::default();
    while *i < fmt.len() {
        match fmt[*i] {
            b'-' => sp.left = true,
            b'+' => sp.plus = true,
            b' ' => sp.space = true,
            b'#' => sp.alt = true,
            b'0' => sp.zero = true,
            _ => break,
        }
        *i += 1;
    }
    if *i < fmt.len() && fmt[*i] == b'*' {
        let w = args.next(4)? as i32;
        sp.left |= w < 0;
        sp.width = w.unsigned_abs() as usize;
        *i += 1;
    }
    while *i < fmt.len() && fmt[*i].is_ascii_digit() {
        sp.width = sp.width * 10 + (fmt[*i] - b'0') as usize;
        *i += 1;
    }
    if *i < fmt.len() && fmt[*i] == b'.' {
        *i += 1;
        let mut p = 0usize;
        if *i < fmt.len() && fmt[*i] == b'*' {
            p = (args.next(4)? as i32).max(0) as usize;
            *i += 1;
        }
        while *i < fmt.len() && fmt[*i].is_ascii_digit() {
            p = p * 10 + (fmt[*i] - b'0') as usize;
            *i += 1;
        }
        sp.prec = Some(p);
    }
    while *i < fmt.len() && matches!(fmt[*i], b'h' | b'l' | b'L' | b'z' | b'j' | b't' | b'q') {
        if matches!(fmt[*i], b'l' | b'z' | b'j' | b't' | b'q' | b'L') {
            sp.long = true;
        }
        *i += 1;
    }
    // keep pathological field widths from allocating unbounded memory
    sp.width = sp.width.min(MAX_FIELD);
    sp.prec = sp.prec.map(|p| p.min(MAX_FIELD));
    Ok(sp)
}

/// `%d` / `%i` of the raw argument `raw`.
fn fmt_signed(raw: u64, sp: &Spec) -> String {
    let v = if sp.long {
        raw as i64
    } else {
        raw as u32 as i32 as i64
    };
    let digits = v.unsigned_abs().to_string();
    let digits = match sp.prec {
        Some(p) if digits.len() < p => "0".repeat(p - digits.len()) + &digits,
        _ => digits,
    };
    let sign = sign_prefix(v < 0, sp);
    pad(format!("{sign}{digits}"), sp, sp.prec.is_none())
}

/// `%u` / `%x` / `%X` / `%o` (per `conv`) of the raw argument `raw`.
fn fmt_unsigned(raw: u64, conv: u8, sp: &Spec) -> String {
    let v = if sp.long { raw } else { raw as u32 as u64 };
    let mut digits = match conv {
        b'u' => v.to_string(),
        b'x' => format!("{v:x}"),
        b'X' => format!("{v:X}"),
        _ => format!("{v:o}"),
    };
    if let Some(p) = sp.prec {
        if digits.len() < p {
            digits = "0".repeat(p - digits.len()) + &digits;
        }
    }
    if sp.alt && v != 0 {
        digits = match conv {
            b'x' => format!("0x{digits}"),
            b'X' => format!("0X{digits}"),
            b'o' => format!("0{digits}"),
            _ => digits,
        };
    }
    pad(digits, sp, sp.prec.is_none())
}

/// Conversion `conv` with specification `sp`, its argument (if any) taken from `args`;
/// `None` for an unknown conversion character.
fn format_conv(conv: u8, sp: &Spec, args: &mut Args<'_, '_>) -> Result<Option<String>, Fault> {
    let size = if sp.long { 8 } else { 4 };
    Ok(Some(match conv {
        b'%' => "%".to_string(),
        b'd' | b'i' => fmt_signed(args.next(size)?, sp),
        b'u' | b'x' | b'X' | b'o' => fmt_unsigned(args.next(size)?, conv, sp),
        b'c' => pad(((args.next(4)? as u8) as char).to_string(), sp, false),
        b'p' => pad(format!("0x{:x}", args.next(8)?), sp, false),
        b's' => {
            let p = args.next(8)?;
            let mut s = if p == 0 {
                "(null)".to_string()
            } else {
                String::from_utf8_lossy(&read_cstr(args.cx, args.lane, p)?).into_owned()
            };
            if let Some(pr) = sp.prec {
                s = s.chars().take(pr).collect();
            }
            pad(s, sp, false)
        }
        b'f' | b'F' | b'e' | b'E' | b'g' | b'G' | b'a' | b'A' => {
            let v = f64::from_bits(args.next(8)?);
            pad(fmt_float(v, conv as char, sp), sp, v.is_finite())
        }
        _ => return Ok(None),
    }))
}

/// Format one `printf` call.
fn format(fmt: &[u8], args: &mut Args<'_, '_>) -> Result<String, Fault> {
    let mut out = String::new();
    let mut i = 0;
    while i < fmt.len() {
        let c = fmt[i];
        i += 1;
        if c != b'%' {
            out.push(c as char);
            continue;
        }
        let sp = parse_spec(fmt, &mut i, args)?;
        let Some(&conv) = fmt.get(i) else { break };
        i += 1;
        match format_conv(conv, &sp, args)? {
            Some(s) => out.push_str(&s),
            None => {
                let _ = write!(out, "%{}", conv as char);
            }
        }
    }
    Ok(out)
}

/// `vprintf`: `r[1]` = generic address of the format, `r[2]` = generic address of the
/// argument buffer; `r[0]` receives the number of arguments consumed.
pub(crate) fn h_vprintf(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let mut text = String::new();
    let mut counts = Vec::new();
    for l in lanes(m) {
        let fmt = read_cstr(cx, l, cx.regs[i.r[1] as usize][l])?;
        let mut args = Args {
            cx,
            lane: l,
            base: cx.regs[i.r[2] as usize][l],
            off: 0,
            count: 0,
        };
        text.push_str(&format(&fmt, &mut args)?);
        counts.push((l, args.count));
    }
    for (l, c) in counts {
        cx.regs[i.r[0] as usize][l] = c;
    }
    match &cx.env.printf {
        Some(sink) => (sink.0)(&text),
        None => {
            use std::io::Write;
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(text.as_bytes());
            let _ = o.flush();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_formats() {
        let sp = Spec::default();
        assert_eq!(fmt_float(1.5, 'f', &sp), "1.500000");
        assert_eq!(fmt_float(-1234.5, 'e', &sp), "-1.234500e+03");
        assert_eq!(fmt_float(0.0001, 'g', &sp), "0.0001");
        assert_eq!(fmt_float(1e-5, 'g', &sp), "1e-05");
        assert_eq!(fmt_float(123456789.0, 'g', &sp), "1.23457e+08");
        assert_eq!(fmt_float(f64::INFINITY, 'F', &sp), "INF");
        let sp = Spec {
            width: 8,
            zero: true,
            prec: Some(2),
            ..Spec::default()
        };
        assert_eq!(pad(fmt_float(-3.25159, 'f', &sp), &sp, true), "-0003.25");
    }
}

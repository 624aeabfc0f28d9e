//! Numbers in canonical JSON: integers exact, doubles as ECMAScript writes them.
//!
//! Why the digits are right: Rust's `{:e}` gives the shortest digits that read back as the
//! same float, the closest to it of such; ECMAScript asks for the same and, of two as close,
//! the even one, which `Shortest::tie_to_even` looks for. The layout is ECMA-262's, line by
//! line. RFC 8785 Appendix B's vectors are in the tests.

use std::fmt::{self, Write as _};

use super::JcsError;

/// Appends an integer as its exact decimal digits, `-` first when negative.
///
/// RFC 8785 reads every number as an IEEE double, which would round integers past 2^53 (a
/// `seq`, a `u64` in case data). knhk writes integers exactly instead: the one place where it
/// is stricter than JCS. For integers up to 2^53 in magnitude the two agree.
pub fn write_integer(out: &mut Vec<u8>, negative: bool, magnitude: u128) {
    if negative && magnitude != 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 39];
    let mut i = digits.len();
    // Integers that fit in 64 bits (all but the rarest) in 64-bit arithmetic: a division of a
    // u128 is a library call, many times slower, and an event has several integers.
    match u64::try_from(magnitude) {
        Ok(mut m) => loop {
            i -= 1;
            // m % 10 < 10: the cast cannot truncate.
            digits[i] = b'0' + (m % 10) as u8;
            m /= 10;
            if m == 0 {
                break;
            }
        },
        Err(_) => {
            let mut m = magnitude;
            loop {
                i -= 1;
                digits[i] = b'0' + (m % 10) as u8;
                m /= 10;
                if m == 0 {
                    break;
                }
            }
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends a double as ECMAScript's Number-to-String writes it (ECMA-262 §6.1.6.1.20), which
/// is what RFC 8785 §3.2.2.3 requires: NaN and the infinities are refused; both zeros are
/// `0`; otherwise the shortest digits `d1..dk` that read back as the same double (of two
/// such, the closer to it; of two as close, the even one), with decimal exponent `n` (the
/// value is `0.d1..dk × 10^n`), laid out as plain digits when `-6 < n <= 21` and as
/// `d1.d2..dke±(n-1)` otherwise.
///
/// The shortest, closest digits come from Rust's `{:e}` formatting; it breaks an exact tie
/// upwards, so a tie is looked for and broken to even here (`Shortest::tie_to_even`).
pub fn write_f64(out: &mut Vec<u8>, value: f64) -> Result<(), JcsError> {
    let class = Class {
        finite: value.is_finite(),
        zero: value == 0.0,
        negative: value < 0.0,
        // See `Shortest::tie_to_even`: 10^-k < 2^-52 needs k > 15.65.
        tie_digits: if value.is_normal() { 16 } else { 1 },
    };
    write_float(out, value, class)
}

/// Appends an f32 by the rule of [`write_f64`], with the shortest digits that read back as
/// the same f32 (as serde_json writes an f32).
pub(super) fn write_f32(out: &mut Vec<u8>, value: f32) -> Result<(), JcsError> {
    let class = Class {
        finite: value.is_finite(),
        zero: value == 0.0,
        negative: value < 0.0,
        // 10^-k < 2^-23 needs k > 6.92.
        tie_digits: if value.is_normal() { 7 } else { 1 },
    };
    write_float(out, value, class)
}

/// What [`write_float`] needs to know of a float besides its digits.
struct Class {
    finite: bool,
    zero: bool,
    negative: bool,
    /// The fewest digits a tie of two shortest forms can have.
    tie_digits: usize,
}

fn write_float<F>(out: &mut Vec<u8>, value: F, class: Class) -> Result<(), JcsError>
where
    F: fmt::LowerExp + fmt::Display + std::str::FromStr + PartialEq + Copy,
{
    if !class.finite {
        return Err(JcsError(format!("the number {value} has no JSON form")));
    }
    if class.zero {
        out.push(b'0');
        return Ok(());
    }
    let shortest = Shortest::of(value, None)?.tie_to_even(value, class.tie_digits)?;
    shortest.write(out, class.negative);
    Ok(())
}

/// The digits of a finite, non-zero float's magnitude: `0.d1..dk × 10^n`.
struct Shortest {
    digits: [u8; 40],
    k: usize,
    n: i32,
}

/// A stack buffer for the `{:e}` text of one number.
struct StackText {
    bytes: [u8; 48],
    len: usize,
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Splits `d[.ddd]e[-]x` (after an optional `-`) into its digits and exponent.
fn split_scientific(text: &[u8]) -> Option<(impl Iterator<Item = u8> + '_, i32)> {
    let text = text.strip_prefix(b"-").unwrap_or(text);
    let e = text.iter().position(|&b| b == b'e')?;
    let exponent = std::str::from_utf8(&text[e + 1..]).ok()?.parse().ok()?;
    Some((
        text[..e].iter().copied().filter(u8::is_ascii_digit),
        exponent,
    ))
}

impl Shortest {
    /// Returns the digits `{:e}` (no precision: the shortest that read back) or `{:.p$e}`
    /// (`p + 1` digits, correctly rounded) gives.
    fn of<F: fmt::LowerExp + fmt::Display + Copy>(
        value: F,
        precision: Option<usize>,
    ) -> Result<Shortest, JcsError> {
        let mut text = StackText {
            bytes: [0; 48],
            len: 0,
        };
        match precision {
            None => write!(text, "{value:e}"),
            Some(p) => write!(text, "{value:.p$e}"),
        }
        .map_err(|_| JcsError(format!("the number {value} did not format")))?;
        let bad = || JcsError(format!("the number {value} has no JSON form"));
        let (digits, exponent) = split_scientific(&text.bytes[..text.len]).ok_or_else(bad)?;
        let mut s = Shortest {
            digits: [0; 40],
            k: 0,
            n: exponent + 1,
        };
        for d in digits {
            *s.digits.get_mut(s.k).ok_or_else(bad)? = d;
            s.k += 1;
        }
        if s.k == 0 {
            return Err(bad());
        }
        Ok(s)
    }

    fn digits(&self) -> &[u8] {
        &self.digits[..self.k]
    }

    /// Replaces odd digits that are exactly as far from `value` as their even neighbour (the
    /// same digits with the last one moved by one) by that neighbour, if it too reads back as
    /// `value`. Such a tie means `value` is exactly the decimal halfway between them, which
    /// is checked on its exact expansion; that is only worked out when rounding `value` to one
    /// more digit ends in `5`.
    ///
    /// Both neighbours read back as `value`, so they are at most one unit in the last place
    /// (ulp) apart: `10^(n-k) <= ulp < 2^-52 · 10^n` for a normal double, so a tie needs
    /// `k >= 16` digits (`k >= 7` for a normal f32); `tie_digits` skips shorter ones. A
    /// subnormal's ulp is larger than that, so any of its digits may tie.
    fn tie_to_even<F>(mut self, value: F, tie_digits: usize) -> Result<Shortest, JcsError>
    where
        F: fmt::LowerExp + fmt::Display + std::str::FromStr + PartialEq + Copy,
    {
        let k = self.k;
        let last = self.digits[k - 1];
        if k < tie_digits || (last - b'0').is_multiple_of(2) {
            return Ok(self);
        }
        let longer = Shortest::of(value, Some(k))?;
        if longer.digits().last() != Some(&b'5') || longer.n != self.n {
            return Ok(self);
        }
        // An f64's exact decimal expansion has at most 767 significant digits.
        let exact = format!("{value:.800e}");
        let Some((digits, _)) = split_scientific(exact.as_bytes()) else {
            return Ok(self);
        };
        let mut exact: Vec<u8> = digits.collect();
        while exact.last() == Some(&b'0') {
            exact.pop();
        }
        if exact != longer.digits() {
            return Ok(self);
        }
        // `value` is d1..d(k-1) x 5: halfway between x-1 and x, or between x and x+1.
        let prefix = &longer.digits()[..k - 1];
        let candidate = if longer.digits()[k - 1] == last {
            last + 1
        } else if longer.digits()[k - 1] == last - 1 {
            last - 1
        } else {
            return Ok(self);
        };
        if !candidate.is_ascii_digit() || prefix != &self.digits[..k - 1] {
            return Ok(self);
        }
        let mut text = String::with_capacity(k + 8);
        text.extend(prefix.iter().map(|&b| char::from(b)));
        text.push(char::from(candidate));
        text.push_str(&format!("e{}", self.n - i32::try_from(k).unwrap_or(0)));
        if text.parse::<F>().ok() == Some(value) {
            self.digits[k - 1] = candidate;
        }
        Ok(self)
    }

    /// Lays the digits out by ECMAScript's rule.
    fn write(&self, out: &mut Vec<u8>, negative: bool) {
        let digits = self.digits();
        let n = self.n;
        // k <= 40: the cast cannot truncate.
        let k = self.k as i32;
        if negative {
            out.push(b'-');
        }
        if k <= n && n <= 21 {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', (n - k) as usize));
        } else if 0 < n && n <= 21 {
            let (int, frac) = digits.split_at(n as usize);
            out.extend_from_slice(int);
            out.push(b'.');
            out.extend_from_slice(frac);
        } else if -6 < n && n <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-n) as usize));
            out.extend_from_slice(digits);
        } else {
            out.push(digits[0]);
            if digits.len() > 1 {
                out.push(b'.');
                out.extend_from_slice(&digits[1..]);
            }
            out.push(b'e');
            out.push(if n > 0 { b'+' } else { b'-' });
            write_integer(out, false, u128::from((n - 1).unsigned_abs()));
        }
    }
}

/// Appends a number given as JSON text (serde_json's `arbitrary_precision` form): an integer
/// literal in the i64 or u64 range exactly, anything else as the double it reads as.
pub(super) fn write_number_text(out: &mut Vec<u8>, text: &str) -> Result<(), JcsError> {
    if let Ok(u) = text.parse::<u64>() {
        write_integer(out, false, u128::from(u));
    } else if let Ok(i) = text.parse::<i64>() {
        write_integer(out, i < 0, u128::from(i.unsigned_abs()));
    } else {
        let f: f64 = text
            .parse()
            .map_err(|_| JcsError(format!("{text:?} is not a JSON number")))?;
        write_f64(out, f)?;
    }
    Ok(())
}

//! Decimal amounts as Python's `decimal.Decimal` holds and prints them: a coefficient and an
//! exponent, arithmetic exact below 28 digits (the default context's precision), and the same
//! text (`str(Decimal)`), so abandonments are byte-identical whichever side computed them.

/// Coefficients at or above this need rounding in Python's default context: not handled here.
const PRECISION_LIMIT: i128 = 10_000_000_000_000_000_000_000_000_000; // 10^28
/// Amounts have at most 28 decimal places (streams.models.events.MAX_AMOUNT_DIGITS).
const MAX_EXPONENT: i32 = 28;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money {
    pub coef: i128,
    pub exp: i32,
}

impl Money {
    pub const ZERO: Money = Money { coef: 0, exp: 0 };

    /// `digits[.digits]` only (the wire form cartpulse's storefronts send); anything else is
    /// left to the checked parser. At most 27 significant digits and 28 decimal places.
    pub fn parse_plain(text: &str) -> Option<Money> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if text.len() > 40 || !digits(whole) || !digits(fraction) {
            return None;
        }
        let money = Money::parse_decimal_str(text)?;
        (money.coef < PRECISION_LIMIT / 10 && money.exp >= -MAX_EXPONENT).then_some(money)
    }

    /// `str(Decimal)` of a finite, non-negative amount back to a `Money` (plain or scientific).
    pub fn parse_decimal_str(text: &str) -> Option<Money> {
        let (mantissa, exponent) = match text.find(['E', 'e']) {
            Some(at) => (&text[..at], text[at + 1..].parse::<i32>().ok()?),
            None => (text, 0),
        };
        let mut coef: i128 = 0;
        let mut exp = exponent;
        let mut seen_point = false;
        let mut digits = 0usize;
        for b in mantissa.bytes() {
            match b {
                b'0'..=b'9' => {
                    coef = coef.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
                    digits += 1;
                    if seen_point {
                        exp -= 1;
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => return None,
            }
        }
        if digits == 0 || coef >= PRECISION_LIMIT {
            return None;
        }
        Some(Money { coef, exp })
    }

    /// `self * quantity`, exact; None when Python would have to round.
    pub fn times(self, quantity: i128) -> Option<Money> {
        let coef = self.coef.checked_mul(quantity)?;
        (coef < PRECISION_LIMIT).then_some(Money {
            coef,
            exp: self.exp,
        })
    }

    /// `self + other` with Python's exponent (the smaller one); None when it would round.
    pub fn plus(self, other: Money) -> Option<Money> {
        let exp = self.exp.min(other.exp);
        let a = self.coef.checked_mul(pow10(self.exp - exp)?)?;
        let b = other.coef.checked_mul(pow10(other.exp - exp)?)?;
        let coef = a.checked_add(b)?;
        (coef < PRECISION_LIMIT).then_some(Money { coef, exp })
    }

    /// Python's `str(Decimal)` (to-scientific-string) for a non-negative amount.
    pub fn write(self, out: &mut Vec<u8>) {
        let digits = self.coef.to_string();
        let n = digits.len() as i32;
        let adjusted = self.exp + n - 1;
        if self.exp <= 0 && adjusted >= -6 {
            if self.exp == 0 {
                out.extend_from_slice(digits.as_bytes());
            } else {
                let point = n + self.exp; // digits before the point
                if point > 0 {
                    out.extend_from_slice(&digits.as_bytes()[..point as usize]);
                    out.push(b'.');
                    out.extend_from_slice(&digits.as_bytes()[point as usize..]);
                } else {
                    out.extend_from_slice(b"0.");
                    out.extend(std::iter::repeat_n(b'0', (-point) as usize));
                    out.extend_from_slice(digits.as_bytes());
                }
            }
        } else {
            out.push(digits.as_bytes()[0]);
            if n > 1 {
                out.push(b'.');
                out.extend_from_slice(&digits.as_bytes()[1..]);
            }
            out.push(b'E');
            if adjusted > 0 {
                out.push(b'+');
            }
            out.extend_from_slice(adjusted.to_string().as_bytes());
        }
    }

    /// As a JSON string, or `null` for no amount.
    pub fn write_opt(out: &mut Vec<u8>, money: Option<Money>) {
        match money {
            Some(money) => {
                out.push(b'"');
                money.write(out);
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
    }

    pub fn to_text(self) -> String {
        let mut out = Vec::with_capacity(16);
        self.write(&mut out);
        String::from_utf8(out).expect("digits are ASCII")
    }
}

fn pow10(power: i32) -> Option<i128> {
    10i128.checked_pow(u32::try_from(power).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: Option<Money>) -> String {
        m.map(Money::to_text).unwrap_or_else(|| "-".into())
    }

    #[test]
    fn prints_as_python_does() {
        for (input, printed) in [
            ("19.99", "19.99"),
            ("19.990", "19.990"),
            ("007.5", "7.5"),
            ("0.00", "0.00"),
            ("100", "100"),
            ("0.0000001", "1E-7"),
            ("0.000001", "0.000001"),
            ("0.0000000", "0E-7"),
        ] {
            assert_eq!(text(Money::parse_plain(input)), printed, "{input}");
        }
        for (input, printed) in [("1E+2", "1E+2"), ("1.5E+3", "1.5E+3"), ("1E-7", "1E-7")] {
            assert_eq!(text(Money::parse_decimal_str(input)), printed, "{input}");
        }
    }

    #[test]
    fn refuses_what_it_does_not_read() {
        for input in [
            "", ".5", "5.", "+5", "-5", " 5", "1_000", "1e3", "NaN", "1.2.3",
        ] {
            assert_eq!(Money::parse_plain(input), None, "{input}");
        }
    }

    #[test]
    fn arithmetic_keeps_python_exponents() {
        let price = Money::parse_plain("2.50").unwrap();
        assert_eq!(text(price.times(3)), "7.50");
        assert_eq!(
            text(Money::ZERO.plus(Money::parse_decimal_str("1E+2").unwrap())),
            "100"
        );
        assert_eq!(
            text(Money::parse_decimal_str("1E+2").unwrap().times(3)),
            "3E+2"
        );
        assert_eq!(text(price.plus(Money::parse_plain("1.5").unwrap())), "4.00");
        assert_eq!(
            Money::parse_plain("9999999999999999999999999")
                .unwrap()
                .times(10000),
            None
        );
    }
}

//! Decimal amounts as Python's `decimal.Decimal` holds and prints them: a coefficient and an
//! exponent, arithmetic exact below 28 digits (the default context's precision), and the same
//! text (`str(Decimal)`), so abandonments are byte-identical whichever side computed them.

/// Coefficients at or above this need rounding in Python's default context: not handled here.
const PRECISION_LIMIT: i128 = 10_000_000_000_000_000_000_000_000_000; // 10^28
/// Amounts have an exponent within ±28.
const MAX_EXPONENT: i64 = 28;

/// Why an amount is refused (the caller names the field).
pub const NOT_DECIMAL: &str = "is not a decimal (ASCII digits, an optional point and exponent)";
pub const NEGATIVE_OR_NOT_FINITE: &str = "must be a finite amount >= 0";
pub const TOO_PRECISE: &str = "must have at most 28 significant digits and an exponent within ±28";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Money {
    pub coef: i128,
    pub exp: i32,
}

impl Money {
    pub const ZERO: Money = Money { coef: 0, exp: 0 };

    /// The contract's amount: ASCII `[+|-]digits[.digits][(e|E)[+|-]digits]` (digits on at
    /// least one side of the point), as Python's `Decimal` reads it but without its leniencies
    /// (spaces, underscores, non-ASCII digits); `-0` is zero and reads as `0`; NaN, infinities
    /// and negative amounts are refused, and so is anything needing more than 28 significant
    /// digits or an exponent beyond ±28 (Python's default precision, which this computes
    /// exactly). Also reads back what `write` wrote.
    pub fn parse(text: &str) -> Result<Money, &'static str> {
        let bytes = text.as_bytes();
        let (negative, unsigned) = match bytes {
            [b'-', rest @ ..] => (true, rest),
            [b'+', rest @ ..] => (false, rest),
            _ => (false, bytes),
        };
        if unsigned.first().is_some_and(u8::is_ascii_alphabetic) {
            let name = unsigned.to_ascii_lowercase();
            return Err(match name.as_slice() {
                b"nan" | b"snan" | b"inf" | b"infinity" => NEGATIVE_OR_NOT_FINITE,
                _ => NOT_DECIMAL,
            });
        }
        let (mantissa, exponent) = match unsigned.iter().position(|&b| b == b'e' || b == b'E') {
            Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
            None => (unsigned, None),
        };
        let (mut coef, mut digits, mut fraction_digits, mut seen_point) =
            (0i128, 0u32, 0i64, false);
        let mut too_precise = false;
        for &b in mantissa {
            match b {
                b'0'..=b'9' => {
                    digits += 1;
                    if seen_point {
                        fraction_digits += 1;
                    }
                    if !too_precise {
                        coef = coef * 10 + i128::from(b - b'0');
                        too_precise = coef >= PRECISION_LIMIT;
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => return Err(NOT_DECIMAL),
            }
        }
        if digits == 0 {
            return Err(NOT_DECIMAL);
        }
        let exponent = match exponent {
            None => 0,
            Some(text) => {
                let (minus, digits) = match text {
                    [b'-', rest @ ..] => (true, rest),
                    [b'+', rest @ ..] => (false, rest),
                    _ => (false, text),
                };
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(NOT_DECIMAL);
                }
                // Saturated: far past the limit is as refused as just past it.
                let value = digits.iter().fold(0i64, |v, &d| {
                    (v * 10 + i64::from(d - b'0')).min(1_000_000_000)
                });
                if minus {
                    -value
                } else {
                    value
                }
            }
        };
        if negative && coef != 0 {
            return Err(NEGATIVE_OR_NOT_FINITE);
        }
        let exp = exponent - fraction_digits;
        if too_precise || !(-MAX_EXPONENT..=MAX_EXPONENT).contains(&exp) {
            return Err(TOO_PRECISE);
        }
        Ok(Money {
            coef,
            exp: exp as i32,
        })
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

/// Python's `Decimal` arithmetic in its default context (28 significant digits,
/// ROUND_HALF_EVEN): exact in i128 while it fits, else on decimal digits and rounded once, as
/// the decimal specification rounds the exact result.
impl Money {
    /// `self * quantity` as Python computes it (quantity >= 0).
    pub fn times_rounded(self, quantity: i128) -> Money {
        self.times(quantity).unwrap_or_else(|| {
            let product = Digits::of(self.coef).times(&Digits::of(quantity));
            product.rounded(i64::from(self.exp))
        })
    }

    /// `self + other` as Python computes it (both >= 0).
    pub fn plus_rounded(self, other: Money) -> Money {
        self.plus(other).unwrap_or_else(|| {
            let exp = self.exp.min(other.exp);
            let a = Digits::of(self.coef).shifted((self.exp - exp) as usize);
            let b = Digits::of(other.coef).shifted((other.exp - exp) as usize);
            a.plus(&b).rounded(i64::from(exp))
        })
    }
}

/// A non-negative integer as decimal digits, least significant first.
struct Digits(Vec<u8>);

impl Digits {
    fn of(value: i128) -> Digits {
        let mut digits = Vec::with_capacity(40);
        let mut rest = value.unsigned_abs();
        while rest > 0 {
            digits.push((rest % 10) as u8);
            rest /= 10;
        }
        Digits(digits)
    }

    fn shifted(mut self, zeros: usize) -> Digits {
        self.0.splice(0..0, std::iter::repeat_n(0, zeros));
        self
    }

    fn times(&self, other: &Digits) -> Digits {
        let mut out = vec![0u32; self.0.len() + other.0.len()];
        for (i, &a) in self.0.iter().enumerate() {
            for (j, &b) in other.0.iter().enumerate() {
                out[i + j] += u32::from(a) * u32::from(b);
            }
        }
        let mut carry = 0;
        let digits = out
            .into_iter()
            .map(|d| {
                let d = d + carry;
                carry = d / 10;
                (d % 10) as u8
            })
            .collect::<Vec<u8>>();
        debug_assert_eq!(carry, 0);
        Digits(digits)
    }

    fn plus(&self, other: &Digits) -> Digits {
        let len = self.0.len().max(other.0.len());
        let (mut digits, mut carry) = (Vec::with_capacity(len + 1), 0);
        for i in 0..len {
            let d = self.0.get(i).unwrap_or(&0) + other.0.get(i).unwrap_or(&0) + carry;
            digits.push(d % 10);
            carry = d / 10;
        }
        digits.push(carry);
        Digits(digits)
    }

    /// `self * 10**exp` rounded to 28 significant digits, half to even.
    fn rounded(mut self, mut exp: i64) -> Money {
        while self.0.len() > 1 && self.0.last() == Some(&0) {
            self.0.pop();
        }
        let dropped = self.0.len().saturating_sub(28);
        let value = |digits: &[u8]| {
            digits
                .iter()
                .rev()
                .fold(0i128, |v, &d| v * 10 + i128::from(d))
        };
        let mut coef = value(&self.0[dropped..]);
        if dropped > 0 {
            let first = self.0[dropped - 1];
            let rest = self.0[..dropped - 1].iter().any(|&d| d != 0);
            if first > 5 || (first == 5 && (rest || coef % 2 == 1)) {
                coef += 1;
            }
            exp += dropped as i64;
            if coef == PRECISION_LIMIT {
                coef /= 10;
                exp += 1;
            }
        }
        Money {
            coef,
            exp: exp as i32,
        }
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

    /// tests/fixtures/contract_cases.json, which pytest runs through every Python reader too.
    #[test]
    fn reads_the_contract_amounts_as_python_prints_them_and_refuses_the_rest() {
        let cases = crate::contract_cases();
        for case in cases["amounts"]["accepted"].as_array().unwrap() {
            let (input, printed) = (case[0].as_str().unwrap(), case[1].as_str().unwrap());
            let money = Money::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(money.to_text(), printed, "{input:?}");
            assert_eq!(Money::parse(printed), Ok(money), "{printed:?} reads back");
        }
        for case in cases["amounts"]["refused"].as_array().unwrap() {
            let (input, reason) = (case[0].as_str().unwrap(), case[1].as_str().unwrap());
            let refused = Money::parse(input).expect_err(input);
            assert!(refused.starts_with(reason), "{input:?}: {refused}");
        }
    }

    #[test]
    fn arithmetic_keeps_python_exponents() {
        let money = |text| Money::parse(text).unwrap();
        assert_eq!(text(money("2.50").times(3)), "7.50");
        assert_eq!(text(Money::ZERO.plus(money("1E+2"))), "100");
        assert_eq!(text(money("1E+2").times(3)), "3E+2");
        assert_eq!(text(money("2.50").plus(money("1.5"))), "4.00");
        assert_eq!(money("9999999999999999999999999").times(10000), None);
    }

    /// tests/fixtures/contract_cases.json's cart values: Python's sums of `price * quantity`.
    #[test]
    fn rounds_as_python_default_context_rounds() {
        for case in crate::contract_cases()["cart_values"].as_array().unwrap() {
            let mut value: Option<Money> = None;
            for line in case["lines"].as_array().unwrap() {
                let price = Money::parse(line[0].as_str().unwrap()).unwrap();
                let quantity = line[1].as_str().unwrap().parse::<i128>().unwrap();
                let sum = value.filter(|sum| sum.coef != 0).unwrap_or(Money::ZERO);
                value = Some(sum.plus_rounded(price.times_rounded(quantity)));
            }
            assert_eq!(text(value), case["value"].as_str().unwrap(), "{case}");
        }
    }
}

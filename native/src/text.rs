//! Event time and JSON text, written exactly as the Python side writes them.

/// Event time must fall in 2000-01-01 .. 2100-01-01 (epoch milliseconds): anything outside is
/// almost surely seconds given as milliseconds or a corrupt clock, and would move a watermark
/// past every open period at once.
pub const MIN_EVENT_MS: i64 = 946_684_800_000;
pub const MAX_EVENT_MS: i64 = 4_102_444_800_000;
/// Longer time text is refused unread (RFC 3339 with nine fraction digits is 35 characters).
pub const MAX_TIME_CHARS: usize = 40;

/// Why a time is refused (the caller names the field).
pub const TIME_SYNTAX: &str =
    "must be RFC 3339 with a UTC offset (2019-10-01T00:10:00Z, 2019-10-01T02:10:00.5+02:00)";
pub const TIME_RANGE: &str = "is outside 2000..2100 (seconds, not milliseconds?)";

fn in_range(ms: i64) -> bool {
    (MIN_EVENT_MS..MAX_EVENT_MS).contains(&ms)
}

/// Epoch milliseconds as event time, or why not.
pub fn check_ms(ms: i64) -> Result<i64, &'static str> {
    if in_range(ms) {
        Ok(ms)
    } else {
        Err(TIME_RANGE)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn number(bytes: &[u8]) -> Option<i64> {
    let mut value = 0i64;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(b - b'0');
    }
    Some(value)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The contract's event time: `YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|±HH:MM)`, ASCII digits,
/// a real calendar date and time (no leap second), at most 40 characters, within 2000..2100 →
/// epoch milliseconds (a finer fraction is truncated). Every other spelling — a comma fraction,
/// an ISO week or ordinal date, `+0200`, a trailing byte — is refused with the reason.
pub fn parse_time(text: &str) -> Result<i64, &'static str> {
    let b = text.as_bytes();
    if b.len() < 20
        || b.len() > MAX_TIME_CHARS
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(TIME_SYNTAX);
    }
    let field = |range: std::ops::Range<usize>| number(&b[range]).ok_or(TIME_SYNTAX);
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(TIME_SYNTAX);
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(TIME_SYNTAX);
    }
    let mut rest = &b[19..];
    let mut millis = 0;
    if let [b'.', after @ ..] = rest {
        let digits = after.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(TIME_SYNTAX);
        }
        let mut first = [b'0'; 3];
        for (slot, digit) in first.iter_mut().zip(&after[..digits]) {
            *slot = *digit;
        }
        millis = number(&first).ok_or(TIME_SYNTAX)?;
        rest = &after[digits..];
    }
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = number(&[*h1, *h2]).ok_or(TIME_SYNTAX)?;
            let minutes = number(&[*m1, *m2]).ok_or(TIME_SYNTAX)?;
            if hours > 23 || minutes > 59 {
                return Err(TIME_SYNTAX);
            }
            let total = hours * 60 + minutes;
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return Err(TIME_SYNTAX),
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_minutes * 60;
    check_ms(seconds * 1000 + millis)
}

/// Epoch milliseconds → `2019-10-01T00:10:00.000Z`: the one writer of times (Python's
/// `streams.contract.events.format_ms` calls it through `format_time`).
pub fn write_time(out: &mut Vec<u8>, ms: i64) {
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (second, millis) = (in_day / 1000 % 60, in_day % 1000);
    for (value, width, then) in [
        (year, 4, b'-'),
        (month, 2, b'-'),
        (day, 2, b'T'),
        (hour, 2, b':'),
        (minute, 2, b':'),
        (second, 2, b'.'),
        (millis, 3, b'Z'),
    ] {
        put(out, value, width);
        out.push(then);
    }
}

/// `value` as exactly `width` decimal digits (zero-padded; the callers' values fit).
fn put(out: &mut Vec<u8>, value: i64, width: usize) {
    let mut digits = [b'0'; 4];
    let mut rest = value;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

/// A JSON string as msgspec and orjson write it: `"` `\` and control characters escaped
/// (`\b \t \n \f \r`, else `\u00XX`), everything else as UTF-8.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\t' => b"\\t",
            b'\r' => b"\\r",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `format_args!` text appended without an intermediate `String` (numbers, mostly).
pub fn push_fmt(out: &mut Vec<u8>, args: std::fmt::Arguments) {
    std::io::Write::write_fmt(out, args).expect("writing to a Vec cannot fail");
}

/// `items` separated by commas, each written by `write` (the inside of a JSON array or object).
pub fn write_list<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut Vec<u8>, T),
) {
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
}

pub fn write_opt_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => write_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(ms: i64) -> String {
        let mut out = Vec::new();
        write_time(&mut out, ms);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_event_time() {
        assert_eq!(time(1_569_888_600_123), "2019-10-01T00:10:00.123Z");
        assert_eq!(time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(time(MAX_EVENT_MS - 1), "2099-12-31T23:59:59.999Z");
    }

    /// tests/fixtures/contract_cases.json, which pytest runs through every Python reader too.
    #[test]
    fn reads_the_contract_times_and_refuses_the_rest_with_the_reason() {
        let cases = crate::contract_cases();
        for case in cases["times"]["accepted"].as_array().unwrap() {
            let (text, ms) = (case[0].as_str().unwrap(), case[1].as_i64().unwrap());
            assert_eq!(parse_time(text), Ok(ms), "{text:?}");
            let mut out = Vec::new();
            write_time(&mut out, ms);
            assert_eq!(parse_time(std::str::from_utf8(&out).unwrap()), Ok(ms));
        }
        for case in cases["times"]["refused"].as_array().unwrap() {
            let (text, reason) = (case[0].as_str().unwrap(), case[1].as_str().unwrap());
            let refused = parse_time(text).expect_err(text);
            assert!(refused.starts_with(reason), "{text:?}: {refused}");
        }
        for ms in cases["epoch_ms"]["accepted"].as_array().unwrap() {
            assert!(check_ms(ms.as_i64().unwrap()).is_ok(), "{ms}");
        }
        for ms in cases["epoch_ms"]["refused"].as_array().unwrap() {
            assert_eq!(check_ms(ms.as_i64().unwrap()), Err(TIME_RANGE), "{ms}");
        }
    }

    #[test]
    fn escapes_like_msgspec() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"\\\n\u{1f}\u{7f}é/");
        assert_eq!(out, b"\"a\\\"\\\\\\n\\u001f\x7f\xc3\xa9/\"");
    }
}

//! Checksums and validity rules that turn a pattern match into a finding: Luhn and issuer
//! ranges for cards, SSA rules for SSNs, mod-97 for IBANs, the check digits of national IDs,
//! address parsing, and an entropy estimate for generic secrets.

use serde::{Deserialize, Serialize};

/// A validity check on a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Luhn over the digits (payment cards and many account numbers).
    Luhn,
    /// Luhn plus a known card issuer range and length.
    Card,
    /// US SSN: no 000/666/9xx area, no 00 group, no 0000 serial.
    Ssn,
    /// IBAN: ISO 13616 mod-97 == 1 and the country's length.
    Iban,
    /// ISO 7064 mod 97-10 == 1 over the alphanumerics (custom IBAN-like identifiers).
    Mod97,
    /// UK National Insurance number prefixes.
    UkNino,
    /// India Aadhaar: Verhoeff check digit.
    Aadhaar,
    /// Brazil CPF: two check digits.
    Cpf,
    /// China resident identity card: ISO 7064 mod 11-2 check character.
    ChinaId,
    Ipv4,
    Ipv6,
    /// A value random enough to be a secret (Shannon entropy ≥ 3.5 bits per character).
    Entropy,
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

pub(crate) fn luhn(d: &[u32]) -> bool {
    if d.len() < 2 {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Known issuer prefixes and lengths (Visa, Mastercard, Amex, Discover, JCB, Diners,
/// UnionPay, Maestro).
fn card_issuer(d: &[u32]) -> bool {
    let n = d.len();
    let prefix = |k: usize| d.iter().take(k).fold(0u32, |a, &x| a * 10 + x);
    let (p1, p2, p3, p4, p6) = (prefix(1), prefix(2), prefix(3), prefix(4), prefix(6));
    match p1 {
        4 => matches!(n, 13 | 16 | 19),
        5 => {
            (51..=55).contains(&p2) && n == 16
                || (p2 == 50 || (56..=59).contains(&p2)) && (12..=19).contains(&n)
        }
        2 => (2221..=2720).contains(&p4) && n == 16,
        3 => {
            (p2 == 34 || p2 == 37) && n == 15
                || (3528..=3589).contains(&p4) && (16..=19).contains(&n)
                || ((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39)
                    && (14..=19).contains(&n)
        }
        6 => {
            (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || (622126..=622925).contains(&p6))
                && (16..=19).contains(&n)
                || p2 == 62 && (16..=19).contains(&n)
                || (p4 == 6304 || p4 == 6759 || p4 == 6761 || p4 == 6762 || p4 == 6763)
                    && (12..=19).contains(&n)
        }
        _ => false,
    }
}

fn ssn(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 9 {
        return false;
    }
    let area = d[0] * 100 + d[1] * 10 + d[2];
    let group = d[3] * 10 + d[4];
    let serial = d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8];
    // Also refuse the advertised sample number and all-same digits.
    area != 0
        && area != 666
        && area < 900
        && group != 0
        && serial != 0
        && d != [0, 7, 8, 0, 5, 1, 1, 2, 0]
        && !d.iter().all(|&x| x == d[0])
}

/// Remainder mod 97 of the alphanumerics read as digits (letters A=10 … Z=35).
fn mod97(s: &str) -> Option<u32> {
    let mut r: u32 = 0;
    let mut any = false;
    for c in s.chars().filter(|c| !c.is_whitespace()) {
        let v = c.to_digit(36)?;
        any = true;
        r = if v >= 10 {
            (r * 100 + v) % 97
        } else {
            (r * 10 + v) % 97
        };
    }
    any.then_some(r)
}

/// IBAN lengths of the SEPA countries and a few large others.
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "NL" => 18,
        "SI" => 19,
        "AT" | "EE" | "LT" | "LU" => 20,
        "CH" | "HR" | "LV" | "LI" => 21,
        "BG" | "DE" | "GB" | "IE" | "RS" | "ME" => 22,
        "GI" | "IL" | "AE" => 23,
        "CZ" | "ES" | "MD" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "SM" => 27,
        "AL" | "CY" | "HU" | "PL" | "LB" => 28,
        "BR" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" => 30,
        "MT" => 31,
        _ => return None,
    })
}

fn iban(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() < 15 || compact.len() > 34 || !compact.is_ascii() {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    if iban_length(&head[..2]) != Some(compact.len()) {
        return false;
    }
    mod97(&format!("{tail}{head}")) == Some(1)
}

fn uk_nino(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let prefix = compact.get(..2).unwrap_or("");
    !matches!(prefix, "BG" | "GB" | "NK" | "KN" | "TN" | "NT" | "ZZ")
}

fn verhoeff(d: &[u32]) -> bool {
    const M: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let mut c = 0u8;
    for (i, &x) in d.iter().rev().enumerate() {
        c = M[c as usize][P[i % 8][x as usize] as usize];
    }
    c == 0
}

fn cpf(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 11 || d.iter().all(|&x| x == d[0]) {
        return false;
    }
    let check = |n: usize| {
        let sum: u32 = (0..n).map(|i| d[i] * (n as u32 + 1 - i as u32)).sum();
        let r = (sum * 10) % 11;
        if r == 10 { 0 } else { r }
    };
    check(9) == d[9] && check(10) == d[10]
}

fn china_id(s: &str) -> bool {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const C: &[u8; 11] = b"10X98765432";
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    // A plausible birth date: 19xx or 20xx, month 01–12.
    let year = &s[6..8];
    let month: u32 = s[10..12].parse().unwrap_or(0);
    if !(year == "19" || year == "20") || !(1..=12).contains(&month) {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(W)
        .map(|(c, w)| u32::from(c - b'0') * w)
        .sum();
    C[(sum % 11) as usize] == b[17].to_ascii_uppercase()
}

/// Shannon entropy in bits per character.
pub(crate) fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / f64::from(n);
            -p * p.log2()
        })
        .sum()
}

impl Check {
    pub fn holds(self, s: &str) -> bool {
        match self {
            Check::Luhn => luhn(&digits(s)),
            Check::Card => {
                let d = digits(s);
                (12..=19).contains(&d.len()) && luhn(&d) && card_issuer(&d)
            }
            Check::Ssn => ssn(s),
            Check::Iban => iban(s),
            Check::Mod97 => mod97(s) == Some(1),
            Check::UkNino => uk_nino(s),
            Check::Aadhaar => {
                let d = digits(s);
                d.len() == 12 && verhoeff(&d)
            }
            Check::Cpf => cpf(s),
            Check::ChinaId => china_id(s),
            Check::Ipv4 => s.parse::<std::net::Ipv4Addr>().is_ok(),
            Check::Ipv6 => s.parse::<std::net::Ipv6Addr>().is_ok() && s.matches(':').count() >= 2,
            Check::Entropy => s.len() >= 16 && entropy(s) >= 3.5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_accept_real_shapes_and_refuse_near_misses() {
        for card in [
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "378282246310005",
            "6011111111111117",
            "3530111333300000",
        ] {
            assert!(Check::Card.holds(card), "{card}");
        }
        for not in [
            "4111 1111 1111 1112",
            "1234567812345670",
            "9111111111111111",
        ] {
            assert!(!Check::Card.holds(not), "{not}");
        }
        assert!(Check::Ssn.holds("123-45-6789"));
        for not in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "078-05-1120",
            "111-11-1111",
        ] {
            assert!(!Check::Ssn.holds(not), "{not}");
        }
        assert!(Check::Iban.holds("GB82 WEST 1234 5698 7654 32"));
        assert!(Check::Iban.holds("DE89370400440532013000"));
        assert!(!Check::Iban.holds("GB82 WEST 1234 5698 7654 33"));
        assert!(!Check::Iban.holds("DE8937040044053201300"), "wrong length");
        assert!(Check::Aadhaar.holds("2341 2341 2346"));
        assert!(!Check::Aadhaar.holds("2341 2341 2345"));
        assert!(Check::Cpf.holds("529.982.247-25"));
        assert!(!Check::Cpf.holds("529.982.247-26"));
        assert!(!Check::Cpf.holds("111.111.111-11"));
        assert!(Check::ChinaId.holds("11010519491231002X"));
        assert!(!Check::ChinaId.holds("110105194912310021"));
        assert!(Check::UkNino.holds("AB 12 34 56 C"));
        assert!(!Check::UkNino.holds("GB 12 34 56 C"));
        assert!(Check::Ipv4.holds("10.1.2.3") && !Check::Ipv4.holds("10.1.2.300"));
        assert!(Check::Ipv6.holds("fe80::1") && !Check::Ipv6.holds("10:15:30"));
        assert!(Check::Entropy.holds("q8Zr2xLw9PfK3mNv7TgY"));
        assert!(!Check::Entropy.holds("aaaaaaaaaaaaaaaaaaaa"));
        assert!(!Check::Entropy.holds("passwordpassword"));
    }
}

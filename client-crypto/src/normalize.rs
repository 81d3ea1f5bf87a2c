//! Normalization of values before blind indexing, so that the same person typed differently
//! gives the same index. Every function returns the canonical UTF-8 string that is MACed.

use unicode_normalization::UnicodeNormalization;

use crate::{BlindIndexField, CryptoError};

fn invalid(field: &'static str, reason: &'static str) -> CryptoError {
    CryptoError::InvalidInput { field, reason }
}

/// Unicode hyphens and dashes that people type between parts of a double name.
fn is_hyphen(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{2010}'
            | '\u{2011}'
            | '\u{2012}'
            | '\u{2013}'
            | '\u{2014}'
            | '\u{2015}'
            | '\u{2212}'
            | '\u{FE58}'
            | '\u{FE63}'
            | '\u{FF0D}'
    )
}

/// Apostrophes and look-alikes (O'Brien, Д'Артаньян): dropped.
fn is_apostrophe(c: char) -> bool {
    matches!(
        c,
        '\'' | '`'
            | '\u{00B4}'
            | '\u{02B9}'
            | '\u{02BC}'
            | '\u{2018}'
            | '\u{2019}'
            | '\u{201B}'
            | '\u{2032}'
            | '\u{FF07}'
    )
}

/// Stress marks sometimes written over Russian vowels: dropped.
fn is_stress_mark(c: char) -> bool {
    matches!(c, '\u{0300}' | '\u{0301}')
}

/// The vowels a stress mark is written over (lower case: the marks are stripped after case
/// folding). Only over these is a mark dropped even where Unicode has a precomposed letter
/// (`ѐ`, `ѝ`): the acute of Macedonian `ѓ`, `ќ` or of Latin `é` belongs to the letter.
fn is_cyrillic_vowel(c: char) -> bool {
    matches!(
        c,
        'а' | 'е' | 'и' | 'о' | 'у' | 'ы' | 'э' | 'ю' | 'я' | 'і' | 'є'
    )
}

/// Unicode format characters (general category Cf, Unicode 16.0): soft hyphen, zero-width
/// space and joiners, bidirectional marks, a byte-order mark pasted mid-text... Invisible, so
/// a name copied from a web page or a word processor would otherwise index differently from
/// the same name typed. Written out here rather than taken from a crate so that the WASM
/// build and the native one cannot disagree through a dependency's Unicode version.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Drops the stress marks over Cyrillic vowels in the decomposed form, then recomposes (NFC).
/// Needed because NFKC composes `е` + grave into `ѐ` (and `и` + grave into `ѝ`), which the
/// character filter of [`name_round`] would otherwise keep. Other marks, and stress marks over
/// other letters, are left for the usual steps, so a name without a stressed vowel comes out
/// as it went in (NFC of an NFKC string is itself).
fn strip_vowel_stress(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut base = None;
    for c in value.nfd() {
        if unicode_normalization::char::canonical_combining_class(c) == 0 {
            base = Some(c);
        } else if is_stress_mark(c) && base.is_some_and(is_cyrillic_vowel) {
            continue;
        }
        out.push(c);
    }
    out.nfc().collect()
}

/// A name (surname, first name, patronymic): format characters (Unicode category Cf: soft
/// hyphen, zero-width space, joiners, a stray BOM) dropped; NFKC, Unicode default case
/// folding, NFKC again; stress marks over Cyrillic vowels dropped in the decomposed form
/// (so `ѐ` → `е`) and the rest recomposed; `ё` → `е`; every hyphen or dash → `-` with no
/// spaces around it and no repeats; apostrophes and other stress marks dropped; runs of white
/// space → one space; trimmed (of spaces and hyphens). Control characters and an empty result
/// are refused.
///
/// The steps repeat until the name no longer changes, so that normalizing a normalized name
/// changes nothing: dropping a character can bring two combining marks together that NFKC
/// then orders anew (``"\u{1e01b}`\u{1939}"``, found by the property test). Each round that
/// changes anything drops or reorders marks, so names settle at once or in a round or two;
/// one that has not settled after nine rounds is refused.
pub fn name(value: &str) -> Result<String, CryptoError> {
    let mut current = name_round(value)?;
    // A round's result made only of ASCII and lower-case basic Cyrillic letters (U+0430–U+045F:
    // no combining marks, unchanged by NFKC and by case folding) has settled: nearly every name,
    // which so costs one round, not two.
    if current
        .chars()
        .all(|c| c.is_ascii() || ('\u{0430}'..='\u{045F}').contains(&c))
    {
        return Ok(current);
    }
    for _ in 0..8 {
        let next = name_round(&current)?;
        if next == current {
            return Ok(current);
        }
        current = next;
    }
    Err(invalid("name", "does not settle under normalization"))
}

/// One round of [`name`].
fn name_round(value: &str) -> Result<String, CryptoError> {
    // Format characters go first, so that composition sees the letters they separated.
    let visible: String = value.chars().filter(|&c| !is_format(c)).collect();
    let nfkc: String = visible.nfkc().collect();
    let folded: String = caseless::default_case_fold_str(&nfkc).nfkc().collect();
    let folded = strip_vowel_stress(&folded);
    let mut out = String::with_capacity(folded.len());
    let mut pending_space = false;
    for c in folded.chars() {
        match c {
            c if is_hyphen(c) => {
                if !out.ends_with('-') {
                    out.push('-');
                }
                pending_space = false;
            }
            c if is_apostrophe(c) || is_stress_mark(c) || is_format(c) => {}
            c if c.is_whitespace() => pending_space = true,
            c if c.is_control() => return Err(invalid("name", "contains a control character")),
            c => {
                if pending_space && !out.is_empty() && !out.ends_with('-') {
                    out.push(' ');
                }
                pending_space = false;
                out.push(if c == 'ё' { 'е' } else { c });
            }
        }
    }
    let trimmed = out.trim_matches(|c| c == '-' || c == ' ');
    if trimmed.is_empty() {
        return Err(invalid("name", "empty"));
    }
    Ok(trimmed.to_owned())
}

fn is_leap_year(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if is_leap_year(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A calendar date → ISO 8601 `YYYY-MM-DD`. Accepts `YYYY-MM-DD` (year first) and
/// `DD.MM.YYYY` (year last, the Russian order), with `.`, `-`, `/` or spaces between the
/// parts, one- or two-digit day and month, and full-width digits. Two-digit years and
/// impossible dates are refused.
pub fn date(value: &str) -> Result<String, CryptoError> {
    const FIELD: &str = "date";
    let nfkc: String = value.nfkc().collect();
    let parts: Vec<&str> = nfkc
        .trim()
        .split(['.', '-', '/', ' '])
        .filter(|p| !p.is_empty())
        .collect();
    let [a, b, c] = parts[..] else {
        return Err(invalid(FIELD, "expected day, month and year"));
    };
    if !parts.iter().all(|p| p.bytes().all(|d| d.is_ascii_digit())) {
        return Err(invalid(FIELD, "expected digits"));
    }
    let (y, m, d) = match (a.len(), c.len()) {
        (4, 1..=2) => (a, b, c),
        (1..=2, 4) => (c, b, a),
        _ => return Err(invalid(FIELD, "expected a four-digit year first or last")),
    };
    if !(1..=2).contains(&m.len()) {
        return Err(invalid(FIELD, "month must have one or two digits"));
    }
    let parse = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| invalid(FIELD, "expected digits"))
    };
    let (y, m, d) = (parse(y)?, parse(m)?, parse(d)?);
    if y == 0 || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return Err(invalid(FIELD, "no such date"));
    }
    Ok(format!("{y:04}-{m:02}-{d:02}"))
}

/// A year of birth `YYYY`, from a four-digit year or from any date [`date`] accepts.
pub fn birth_year(value: &str) -> Result<String, CryptoError> {
    let nfkc: String = value.nfkc().collect();
    let t = nfkc.trim();
    if t.len() == 4 && t.bytes().all(|d| d.is_ascii_digit()) && t != "0000" {
        return Ok(t.to_owned());
    }
    let iso = date(t)?;
    Ok(iso[..4].to_owned())
}

/// Digits of an identifier typed with optional separators (spaces, hyphens, dots, and for
/// phones `+` and parentheses). Letters and other symbols are refused.
fn digits(
    value: &str,
    field: &'static str,
    extra_separators: &[char],
) -> Result<String, CryptoError> {
    let mut out = String::with_capacity(value.len());
    for c in value.nfkc() {
        if c.is_ascii_digit() {
            out.push(c);
        } else if !(c.is_whitespace() || c == '.' || is_hyphen(c) || extra_separators.contains(&c))
        {
            return Err(invalid(field, "only digits and separators are allowed"));
        }
    }
    Ok(out)
}

/// SNILS → its 11 digits (`112-233-445 95` → `11223344595`). The check digits are not
/// verified (a typo still indexes; it just finds no one).
pub fn snils(value: &str) -> Result<String, CryptoError> {
    let d = digits(value, "snils", &[])?;
    if d.len() != 11 {
        return Err(invalid("snils", "expected 11 digits"));
    }
    Ok(d)
}

/// Medical insurance policy number → its digits (6 to 20 of them).
pub fn policy_number(value: &str) -> Result<String, CryptoError> {
    let d = digits(value, "policy_number", &[])?;
    if !(6..=20).contains(&d.len()) {
        return Err(invalid("policy_number", "expected 6 to 20 digits"));
    }
    Ok(d)
}

/// Phone number → digits in international form: a Russian 11-digit number starting with 8
/// becomes 7…, a 10-digit number gets the prefix 7; 5 to 15 digits.
pub fn phone(value: &str) -> Result<String, CryptoError> {
    let d = digits(value, "phone", &['+', '(', ')'])?;
    let d = match d.len() {
        11 if d.starts_with('8') => format!("7{}", &d[1..]),
        10 => format!("7{d}"),
        _ => d,
    };
    if !(5..=15).contains(&d.len()) {
        return Err(invalid("phone", "expected 5 to 15 digits"));
    }
    Ok(d)
}

/// Normalizes `value` for the single-value `field`. The compound
/// [`BlindIndexField::SurnameBirthYear`] takes two values: use [`name`] and [`birth_year`].
pub fn normalize(field: BlindIndexField, value: &str) -> Result<String, CryptoError> {
    match field {
        BlindIndexField::Surname | BlindIndexField::FirstName | BlindIndexField::Patronymic => {
            name(value)
        }
        BlindIndexField::DateOfBirth => date(value),
        BlindIndexField::Snils => snils(value),
        BlindIndexField::PolicyNumber => policy_number(value),
        BlindIndexField::Phone => phone(value),
        BlindIndexField::SurnameBirthYear => Err(invalid(
            "surname_birth_year",
            "a compound index takes a surname and a date or year of birth",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        let cases = [
            ("  Ёлкина  ", "елкина"),
            ("ЁЛКИНА", "елкина"),
            ("Салтыков - Щедрин", "салтыков-щедрин"),
            ("Салтыков–Щедрин", "салтыков-щедрин"),
            ("Салтыков‐‐Щедрин", "салтыков-щедрин"),
            ("д'Артаньян", "дартаньян"),
            ("Д’Артаньян", "дартаньян"),
            ("Анна   Мария\tЛуиза", "анна мария луиза"),
            ("ＩＶＡＮＯＶ", "ivanov"),
            ("Straße", "strasse"),
            ("Ива\u{301}нов", "иванов"),
            ("Е\u{308}жиков", "ежиков"),
            ("и\u{306}", "й"),
            ("-Петров-", "петров"),
            // Invisible format characters pasted with a name.
            ("Ива\u{00AD}нова", "иванова"),
            ("Ива\u{200B}нова", "иванова"),
            ("Ива\u{200C}но\u{200D}ва", "иванова"),
            ("Ива\u{FEFF}нова", "иванова"),
            ("\u{200E}Иванова\u{2060}", "иванова"),
            // A stress mark that NFKC composes with е or и into ѐ or ѝ.
            ("Сѐмина", "семина"),
            ("Се\u{0300}мина", "семина"),
            ("СЕ\u{0300}МИНА", "семина"),
            ("Ѝванова", "иванова"),
            ("Е\u{308}\u{301}лкина", "елкина"),
            // Marks that are part of a letter stay.
            ("José", "josé"),
            ("Ѓорѓиевска", "ѓорѓиевска"),
        ];
        for (input, want) in cases {
            assert_eq!(name(input).unwrap(), want, "{input:?}");
        }
        assert!(name("   ").is_err());
        assert!(name(" - ' ").is_err());
        assert!(name("Ив\u{0}ан").is_err());
        assert!(
            name("\u{00AD}\u{200B}").is_err(),
            "only invisible characters"
        );
    }

    #[test]
    fn dates() {
        for (input, want) in [
            ("1950-02-01", "1950-02-01"),
            ("01.02.1950", "1950-02-01"),
            ("1.2.1950", "1950-02-01"),
            ("01/02/1950", "1950-02-01"),
            (" 01 02 1950 ", "1950-02-01"),
            ("２９.０２.２０００", "2000-02-29"),
        ] {
            assert_eq!(date(input).unwrap(), want, "{input:?}");
        }
        for bad in [
            "29.02.1900",
            "31.04.1950",
            "01.13.1950",
            "01.02.50",
            "1950-02",
            "1950-02-01x",
            "",
            "01.02.1950.1",
        ] {
            assert!(date(bad).is_err(), "{bad:?}");
        }
        assert_eq!(birth_year("1950").unwrap(), "1950");
        assert_eq!(birth_year("01.02.1950").unwrap(), "1950");
        assert!(birth_year("50").is_err());
    }

    #[test]
    fn identifiers() {
        assert_eq!(snils("112-233-445 95").unwrap(), "11223344595");
        assert!(snils("112-233-445").is_err());
        assert!(snils("112-233-445 9A").is_err());
        assert_eq!(
            policy_number("7777 7777 7777 7777").unwrap(),
            "7777777777777777"
        );
        assert_eq!(phone("8 (912) 345-67-89").unwrap(), "79123456789");
        assert_eq!(phone("+7 912 345 67 89").unwrap(), "79123456789");
        assert_eq!(phone("912 345 67 89").unwrap(), "79123456789");
        assert!(phone("12").is_err());
    }

    proptest! {
        /// The one-round shortcut for ASCII and basic Cyrillic gives what the rounds would.
        #[test]
        fn a_latin_or_cyrillic_name_settles_in_one_round(s in "[A-Za-zА-Яа-яЁёЍѝЀѐ '`’-]{0,30}") {
            if let (Ok(once), Ok(n)) = (name_round(&s), name(&s)) {
                prop_assert_eq!(&n, &once);
                prop_assert_eq!(name_round(&n).unwrap(), n);
            }
        }
    }

    #[test]
    fn a_name_whose_marks_meet_after_a_drop_settles() {
        let once = name("\u{1e01b}`\u{1939}").unwrap();
        assert_eq!(once, "\u{1939}\u{1e01b}", "the marks in canonical order");
        assert_eq!(name(&once).unwrap(), once);
    }

    proptest! {
        #[test]
        fn name_normalization_is_idempotent(s in "\\PC{0,40}") {
            if let Ok(n) = name(&s) {
                prop_assert_eq!(name(&n).unwrap(), n.clone());
                prop_assert_eq!(n.trim(), n.as_str());
                prop_assert!(!n.contains("  "));
                prop_assert!(!n.contains('ё'));
            }
        }

        #[test]
        fn case_and_spacing_do_not_matter(s in "[а-яёА-ЯЁa-zA-Z]{1,12}( [а-яёА-ЯЁa-zA-Z]{1,12}){0,2}") {
            let spaced = format!("  {}  ", s.replace(' ', "   "));
            prop_assert_eq!(name(&s.to_uppercase()).unwrap(), name(&s.to_lowercase()).unwrap());
            prop_assert_eq!(name(&spaced).unwrap(), name(&s).unwrap());
            prop_assert_eq!(name(&s.replace('ё', "е").replace('Ё', "Е")).unwrap(), name(&s).unwrap());
        }

        /// An invisible format character anywhere, or a stress mark over any vowel, changes
        /// nothing; and the result still normalizes to itself.
        #[test]
        fn format_characters_and_stress_marks_do_not_matter(
            s in "[а-яёА-ЯЁ]{1,12}( [а-яёА-ЯЁ]{1,12}){0,2}",
            at in any::<prop::sample::Index>(),
            invisible in prop::sample::select(vec!['\u{00AD}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}']),
            mark in prop::sample::select(vec!['\u{0300}', '\u{0301}']),
        ) {
            let want = name(&s).unwrap();
            let mut chars: Vec<char> = s.chars().collect();
            chars.insert(at.index(chars.len() + 1), invisible);
            let hidden: String = chars.iter().collect();
            prop_assert_eq!(name(&hidden).unwrap(), want.clone());
            let stressed: String = s
                .chars()
                .flat_map(|c| {
                    let over_vowel = is_cyrillic_vowel(c.to_lowercase().next().unwrap_or(c));
                    std::iter::once(c).chain(over_vowel.then_some(mark))
                })
                .collect();
            prop_assert_eq!(name(&stressed).unwrap(), want.clone());
            prop_assert_eq!(name(&want).unwrap(), want);
        }

        #[test]
        fn dates_round_trip_between_notations(y in 1u32..=9999, m in 1u32..=12, d in 1u32..=28) {
            let iso = format!("{y:04}-{m:02}-{d:02}");
            prop_assert_eq!(date(&iso).unwrap(), iso.clone());
            prop_assert_eq!(date(&format!("{d}.{m}.{y:04}")).unwrap(), iso.clone());
            prop_assert_eq!(date(&format!("{d:02}/{m:02}/{y:04}")).unwrap(), iso);
        }

        #[test]
        fn snils_ignores_separators(digits in "[0-9]{11}") {
            let formatted = format!("{}-{}-{} {}", &digits[0..3], &digits[3..6], &digits[6..9], &digits[9..]);
            prop_assert_eq!(snils(&formatted).unwrap(), digits);
        }
    }
}

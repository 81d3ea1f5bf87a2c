//! Text measurement with the embedded font's own advance widths, and line wrapping.
//!
//! The PDF shows each glyph at the advance width of the font's `hmtx` table (printpdf writes no
//! kerning for plain text), so a width measured here is exactly the width on the page.

use std::sync::OnceLock;

use printpdf::ParsedFont;

use crate::ReportError;

/// DejaVu Sans Condensed (see `fonts/LICENSE-DejaVu.txt`).
pub const REGULAR_TTF: &[u8] = include_bytes!("../fonts/DejaVuSansCondensed.ttf");
/// DejaVu Sans Condensed Bold (see `fonts/LICENSE-DejaVu.txt`).
pub const BOLD_TTF: &[u8] = include_bytes!("../fonts/DejaVuSansCondensed-Bold.ttf");

/// The two faces every report uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    Regular,
    Bold,
}

/// A parsed face with a cache of advance widths for the characters reports mostly use.
pub(crate) struct FontFace {
    pub(crate) parsed: ParsedFont,
    units_per_em: f32,
    /// Advance in font units of every code point below `CACHED`, looked up once.
    cached: Vec<u16>,
    fallback: u16,
}

/// Latin, Latin-1, Greek, Cyrillic and the general punctuation block are all below this.
const CACHED: u32 = 0x2100;

impl FontFace {
    fn parse(bytes: &[u8], name: &str) -> Result<Self, ReportError> {
        let mut warnings = Vec::new();
        let parsed = ParsedFont::from_bytes(bytes, 0, &mut warnings)
            .ok_or_else(|| ReportError::Font(format!("cannot parse the embedded {name} font")))?;
        let units_per_em = f32::from(parsed.pdf_font_metrics.units_per_em.max(1));
        let fallback = parsed.get_horizontal_advance(0);
        let cached = (0..CACHED)
            .map(|cp| {
                parsed
                    .lookup_glyph_index(cp)
                    .map_or(fallback, |gid| parsed.get_horizontal_advance(gid))
            })
            .collect();
        Ok(FontFace {
            parsed,
            units_per_em,
            cached,
            fallback,
        })
    }

    fn advance_units(&self, c: char) -> u16 {
        let cp = c as u32;
        match self.cached.get(cp as usize) {
            Some(&units) => units,
            None => self
                .parsed
                .lookup_glyph_index(cp)
                .map_or(self.fallback, |gid| self.parsed.get_horizontal_advance(gid)),
        }
    }

    /// Width of `text` at `size` points, in points.
    pub(crate) fn width(&self, text: &str, size: f32) -> f32 {
        let units: u32 = text.chars().map(|c| u32::from(self.advance_units(c))).sum();
        units as f32 * size / self.units_per_em
    }
}

pub(crate) struct Fonts {
    pub(crate) regular: FontFace,
    pub(crate) bold: FontFace,
}

impl Fonts {
    pub(crate) fn face(&self, face: Face) -> &FontFace {
        match face {
            Face::Regular => &self.regular,
            Face::Bold => &self.bold,
        }
    }
}

/// The embedded fonts, parsed once per process.
pub(crate) fn fonts() -> Result<&'static Fonts, ReportError> {
    static FONTS: OnceLock<Result<Fonts, ReportError>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            Ok(Fonts {
                regular: FontFace::parse(REGULAR_TTF, "regular")?,
                bold: FontFace::parse(BOLD_TTF, "bold")?,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Width in points of `text` set in `face` at `size` points.
pub fn text_width(text: &str, face: Face, size: f32) -> Result<f32, ReportError> {
    Ok(fonts()?.face(face).width(text, size))
}

/// Breaks `text` into lines no wider than `max_width` points when set in `face` at `size`
/// points. Lines break at spaces, after a hyphen or slash, and at explicit newlines; a word
/// wider than the whole line is cut between characters. Runs of spaces collapse to one and
/// control characters are dropped. Never returns an empty vector.
pub fn wrap_text(
    text: &str,
    face: Face,
    size: f32,
    max_width: f32,
) -> Result<Vec<String>, ReportError> {
    Ok(wrap_with(fonts()?.face(face), text, size, max_width))
}

pub(crate) fn wrap_with(font: &FontFace, text: &str, size: f32, max_width: f32) -> Vec<String> {
    let measure = |s: &str| font.width(s, size);
    let space = measure(" ");
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        let mut line_width = 0.0;
        for word in paragraph
            .split(|c: char| c.is_whitespace())
            .filter(|w| !w.is_empty())
        {
            let word: String = word.chars().filter(|c| !c.is_control()).collect();
            for (i, piece) in break_opportunities(&word).into_iter().enumerate() {
                let gap = if i == 0 && !line.is_empty() {
                    space
                } else {
                    0.0
                };
                let piece_width = measure(piece);
                if line_width + gap + piece_width <= max_width {
                    if gap > 0.0 {
                        line.push(' ');
                    }
                    line.push_str(piece);
                    line_width += gap + piece_width;
                    continue;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                // The piece starts a fresh line; cut it if it is wider than a whole line.
                let mut rest = piece;
                while measure(rest) > max_width {
                    let cut = fitting_prefix(rest, max_width, &measure);
                    if cut == rest.len() {
                        break; // one glyph wider than the cell: it stands alone
                    }
                    lines.push(rest[..cut].to_string());
                    rest = &rest[cut..];
                }
                line = rest.to_string();
                line_width = measure(rest);
            }
        }
        lines.push(line);
    }
    lines
}

/// Splits a word after each hyphen or slash (keeping them), so "Иванова-Петрова" may break
/// as "Иванова-" / "Петрова".
fn break_opportunities(word: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (i, c) in word.char_indices() {
        if matches!(c, '-' | '/' | '\u{2010}' | '\u{2013}') && i + c.len_utf8() < word.len() {
            pieces.push(&word[start..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    pieces.push(&word[start..]);
    pieces
}

/// Byte length of the longest prefix of `text` that fits in `max_width`, but at least one
/// character so that wrapping always advances.
fn fitting_prefix(text: &str, max_width: f32, measure: &impl Fn(&str) -> f32) -> usize {
    let mut fit = 0;
    for (i, c) in text.char_indices() {
        let end = i + c.len_utf8();
        if measure(&text[..end]) > max_width {
            break;
        }
        fit = end;
    }
    if fit == 0 {
        text.chars().next().map_or(0, char::len_utf8)
    } else {
        fit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: f32 = 8.0;

    fn wrap(text: &str, width: f32) -> Vec<String> {
        wrap_text(text, Face::Regular, SIZE, width).unwrap()
    }

    fn widest(lines: &[String]) -> f32 {
        lines
            .iter()
            .map(|l| text_width(l, Face::Regular, SIZE).unwrap())
            .fold(0.0, f32::max)
    }

    #[test]
    fn short_text_stays_on_one_line() {
        assert_eq!(wrap("Морфин 10 мг", 200.0), vec!["Морфин 10 мг"]);
    }

    #[test]
    fn long_text_wraps_at_spaces_within_the_width() {
        let text =
            "Морфина гидрохлорид раствор для инъекций 10 мг/мл ампулы 1 мл по 10 штук в упаковке";
        let lines = wrap(text, 80.0);
        assert!(lines.len() > 2, "{lines:?}");
        assert!(widest(&lines) <= 80.0, "{lines:?}");
        assert_eq!(lines.join(" ").replace("/ ", "/"), text);
    }

    #[test]
    fn a_word_wider_than_the_cell_is_cut_between_characters() {
        let word = "Тригидроксиметиламинометанпентаацетат";
        let lines = wrap(word, 40.0);
        assert!(lines.len() > 1);
        assert!(widest(&lines) <= 40.0, "{lines:?}");
        assert_eq!(lines.concat(), word);
    }

    #[test]
    fn hyphenated_names_break_after_the_hyphen() {
        let lines = wrap(
            "Иванова-Петрова",
            text_width("Иванова-Петр", Face::Regular, SIZE).unwrap(),
        );
        assert_eq!(lines, vec!["Иванова-", "Петрова"]);
    }

    #[test]
    fn newlines_are_kept_and_empty_text_is_one_empty_line() {
        assert_eq!(wrap("a\nb", 100.0), vec!["a", "b"]);
        assert_eq!(wrap("", 100.0), vec![String::new()]);
        assert_eq!(wrap("  x \t y  ", 100.0), vec!["x y"]);
    }

    #[test]
    fn a_cell_narrower_than_one_glyph_still_makes_progress() {
        let lines = wrap("Шщ", 1.0);
        assert_eq!(lines, vec!["Ш", "щ"]);
    }

    #[test]
    fn widths_come_from_the_font() {
        let w = text_width("MMMM", Face::Regular, 10.0).unwrap();
        let i = text_width("iiii", Face::Regular, 10.0).unwrap();
        assert!(w > i * 2.0, "M {w} vs i {i}");
        let bold = text_width("MMMM", Face::Bold, 10.0).unwrap();
        assert!(bold > w);
        assert!((text_width("MMMM", Face::Regular, 20.0).unwrap() - 2.0 * w).abs() < 1e-3);
    }
}

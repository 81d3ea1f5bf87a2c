//! The page machinery shared by both reports: A4 pages with the report header on every page,
//! "Page X of Y" footers added once the page count is known, headings, wrapped paragraphs,
//! and tables whose rows wrap inside their cells and break across pages with the header row
//! repeated.

use printpdf::{
    Color, FontId, Greyscale, Line, LinePoint, Mm, Op, PaintMode, PdfDocument, PdfFont,
    PdfFontHandle, PdfPage, PdfSaveOptions, Point, Pt, Rect, TextItem, TextMatrix,
};

use crate::ReportError;
use crate::assemble::Assembler;
use crate::labels::{Labels, format_timestamp, labels};
use crate::layout::{Face, Fonts, fonts, wrap_with};
use crate::model::ReportMeta;

const MM: f32 = 72.0 / 25.4;
const A4_SHORT: f32 = 210.0;
const A4_LONG: f32 = 297.0;
const MARGIN: f32 = 12.0 * MM;
/// Space kept free above the bottom margin for the footer.
const FOOTER_SPACE: f32 = 14.0;

pub(crate) const TABLE_SIZE: f32 = 8.0;
const TITLE_SIZE: f32 = 13.0;
const HEADER_SIZE: f32 = 8.5;
const HEADING_SIZE: f32 = 10.5;
const FOOTER_SIZE: f32 = 7.5;
const LINE_FACTOR: f32 = 1.25;
/// Baseline below the top of a line box, as a fraction of the font size (DejaVu's ascender
/// is 0.93 em; the rest of the extra leading is split above and below).
const BASELINE_FACTOR: f32 = 0.97;
const CELL_PAD_X: f32 = 2.5;
const CELL_PAD_Y: f32 = 2.0;

/// Pages rendered and serialized together; this bounds the working memory (see
/// `assemble`). Each chunk embeds its own font subsets.
const CHUNK_PAGES: usize = 100;

const RULE_GREY: f32 = 0.55;
const HEADER_FILL: f32 = 0.88;
const TOTAL_FILL: f32 = 0.95;

/// Page orientation. The width of the content area follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Orientation {
    Portrait,
    Landscape,
}

impl Orientation {
    fn size_mm(self) -> (f32, f32) {
        match self {
            Orientation::Portrait => (A4_SHORT, A4_LONG),
            Orientation::Landscape => (A4_LONG, A4_SHORT),
        }
    }

    /// Width available to content, in points.
    pub(crate) fn content_width(self) -> f32 {
        self.size_mm().0 * MM - 2.0 * MARGIN
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

pub(crate) struct Column {
    pub header: String,
    pub width: f32,
    pub align: Align,
}

/// How a row is set: plain, bold (a totals row), or bold on a light fill (a grand total).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowStyle {
    Plain,
    Bold,
    Total,
}

pub(crate) struct TableRow {
    pub cells: Vec<String>,
    pub style: RowStyle,
}

impl TableRow {
    pub(crate) fn plain(cells: Vec<String>) -> Self {
        TableRow {
            cells,
            style: RowStyle::Plain,
        }
    }
}

struct HeaderLine {
    text: String,
    face: Face,
    size: f32,
}

/// A row after wrapping: the lines of each cell.
struct LaidOutRow {
    lines: Vec<Vec<String>>,
    style: RowStyle,
}

impl LaidOutRow {
    fn line_count(&self) -> usize {
        self.lines.iter().map(Vec::len).max().unwrap_or(1).max(1)
    }
}

/// Where finished pages go.
enum Sink {
    /// First pass: only count the pages (no drawing operations are made).
    Count,
    /// Second pass: serialize every `CHUNK_PAGES` pages and join them, numbered "X of `total`".
    Pdf {
        total: usize,
        pending: Vec<Vec<Op>>,
        assembler: Box<Assembler>,
    },
    /// Unit tests: keep every page's operations to inspect them.
    #[cfg(test)]
    Keep(Vec<Vec<Op>>),
}

/// Renders a document in two passes: the first counts the pages, so that the second can
/// number them "Page X of Y" while it writes them out a chunk at a time.
pub(crate) fn render(
    meta: &ReportMeta,
    orientation: Orientation,
    draw: impl Fn(&mut Writer),
) -> Result<Vec<u8>, ReportError> {
    let mut counter = Writer::new(meta, orientation, Sink::Count)?;
    draw(&mut counter);
    let total = counter.pages;
    let sink = Sink::Pdf {
        total,
        pending: Vec::new(),
        assembler: Box::new(Assembler::new()),
    };
    let mut writer = Writer::new(meta, orientation, sink)?;
    draw(&mut writer);
    if writer.pages != total {
        return Err(ReportError::Pdf(format!(
            "layout is not deterministic: {total} pages counted, {} drawn",
            writer.pages
        )));
    }
    writer.finish()
}

/// Resource ids of the two faces in the chunk that holds page `page` (0-based). printpdf takes
/// the first six characters of an id as the font's subset tag, which PDF wants to be six
/// upper-case letters, different for each subset in the file.
fn font_ids(page: usize) -> (FontId, FontId) {
    let chunk = page / CHUNK_PAGES;
    let letter = |n: usize| char::from(b'A' + (n % 26) as u8);
    let tag = format!(
        "PL{}{}{}",
        letter(chunk / (26 * 26)),
        letter(chunk / 26),
        letter(chunk)
    );
    (FontId(format!("{tag}R")), FontId(format!("{tag}B")))
}

pub(crate) struct Writer {
    sink: Sink,
    /// Pages started so far.
    pages: usize,
    fonts: &'static Fonts,
    labels: &'static Labels,
    regular: FontId,
    bold: FontId,
    width: f32,
    height: f32,
    orientation: Orientation,
    header: Vec<HeaderLine>,
    footer_left: String,
    ops: Vec<Op>,
    /// Top of the free space on the current page, in points from the bottom edge.
    y: f32,
    in_text: bool,
    font: Option<(Face, u32)>,
    meta_title: String,
    meta_author: String,
    generated_unix: i64,
    /// The first failure while joining chunks, reported by `finish`.
    error: Option<ReportError>,
}

impl Writer {
    fn new(meta: &ReportMeta, orientation: Orientation, sink: Sink) -> Result<Self, ReportError> {
        let fonts = fonts()?;
        let labels = labels(meta.locale);
        let (w_mm, h_mm) = orientation.size_mm();
        let content_width = orientation.content_width();

        let mut header = Vec::new();
        let mut push_wrapped = |text: &str, face: Face, size: f32| {
            for line in wrap_with(fonts.face(face), text, size, content_width) {
                header.push(HeaderLine {
                    text: line,
                    face,
                    size,
                });
            }
        };
        push_wrapped(&meta.title, Face::Bold, TITLE_SIZE);
        push_wrapped(
            &format!("{}: {}", labels.institutions, meta.institutions.join("; ")),
            Face::Regular,
            HEADER_SIZE,
        );
        push_wrapped(
            &format!(
                "{}: {} – {} · {}: {} · {}: {}",
                labels.period,
                crate::labels::format_date(meta.period_from, meta.locale),
                crate::labels::format_date(meta.period_to, meta.locale),
                labels.generated,
                format_timestamp(meta.generated_at, meta.locale),
                labels.author,
                meta.author,
            ),
            Face::Regular,
            HEADER_SIZE,
        );
        let footer_left = wrap_with(
            fonts.face(Face::Regular),
            &format!("palreg · {}", meta.title),
            FOOTER_SIZE,
            content_width * 0.6,
        )
        .into_iter()
        .next()
        .unwrap_or_default();

        let (regular, bold) = font_ids(0);
        let mut writer = Writer {
            sink,
            pages: 0,
            fonts,
            labels,
            regular,
            bold,
            width: w_mm * MM,
            height: h_mm * MM,
            orientation,
            header,
            footer_left,
            ops: Vec::new(),
            y: 0.0,
            in_text: false,
            font: None,
            meta_title: meta.title.clone(),
            meta_author: meta.author.clone(),
            generated_unix: meta.generated_at.and_utc().timestamp(),
            error: None,
        };
        writer.start_page();
        Ok(writer)
    }

    pub(crate) fn labels(&self) -> &'static Labels {
        self.labels
    }

    pub(crate) fn content_width(&self) -> f32 {
        self.orientation.content_width()
    }

    pub(crate) fn measure(&self, text: &str, face: Face, size: f32) -> f32 {
        self.fonts.face(face).width(text, size)
    }

    fn bottom(&self) -> f32 {
        MARGIN + FOOTER_SPACE
    }

    fn drawing(&self) -> bool {
        !matches!(self.sink, Sink::Count)
    }

    fn start_page(&mut self) {
        if self.pages > 0 {
            self.end_page();
        }
        (self.regular, self.bold) = font_ids(self.pages);
        self.pages += 1;
        self.in_text = false;
        self.font = None;
        self.y = self.height - MARGIN;
        let lines: Vec<(String, Face, f32)> = self
            .header
            .iter()
            .map(|l| (l.text.clone(), l.face, l.size))
            .collect();
        for (text, face, size) in lines {
            let line_height = size * LINE_FACTOR;
            self.text(MARGIN, self.y - size * BASELINE_FACTOR, &text, face, size);
            self.y -= line_height;
        }
        self.y -= 3.0;
        self.rule(MARGIN, self.width - MARGIN, self.y, 0.8, 0.0);
        self.y -= 8.0;
    }

    fn begin_text(&mut self) {
        if !self.in_text {
            self.ops.push(Op::StartTextSection);
            self.in_text = true;
        }
    }

    fn end_text(&mut self) {
        if self.in_text {
            self.ops.push(Op::EndTextSection);
            self.in_text = false;
        }
    }

    fn text(&mut self, x: f32, baseline: f32, text: &str, face: Face, size: f32) {
        if text.is_empty() || !self.drawing() {
            return;
        }
        self.begin_text();
        let key = (face, size.to_bits());
        if self.font != Some(key) {
            let id = match face {
                Face::Regular => self.regular.clone(),
                Face::Bold => self.bold.clone(),
            };
            self.ops.push(Op::SetFont {
                font: PdfFontHandle::External(id),
                size: Pt(size),
            });
            self.font = Some(key);
        }
        self.ops.push(Op::SetTextMatrix {
            matrix: TextMatrix::Translate(Pt(x), Pt(baseline)),
        });
        self.ops.push(Op::ShowText {
            items: vec![TextItem::Text(text.to_string())],
        });
    }

    fn rule(&mut self, x0: f32, x1: f32, y: f32, thickness: f32, grey: f32) {
        self.line(&[(x0, y), (x1, y)], thickness, grey);
    }

    fn line(&mut self, points: &[(f32, f32)], thickness: f32, grey: f32) {
        if !self.drawing() {
            return;
        }
        self.end_text();
        self.ops.push(Op::SetOutlineColor {
            col: Color::Greyscale(Greyscale::new(grey, None)),
        });
        self.ops.push(Op::SetOutlineThickness { pt: Pt(thickness) });
        self.ops.push(Op::DrawLine {
            line: Line {
                points: points
                    .iter()
                    .map(|&(x, y)| LinePoint {
                        p: Point { x: Pt(x), y: Pt(y) },
                        bezier: false,
                    })
                    .collect(),
                is_closed: false,
            },
        });
    }

    fn fill(&mut self, x: f32, y: f32, width: f32, height: f32, grey: f32) {
        if !self.drawing() {
            return;
        }
        self.end_text();
        self.ops.push(Op::SetFillColor {
            col: Color::Greyscale(Greyscale::new(grey, None)),
        });
        self.ops.push(Op::DrawRectangle {
            rectangle: Rect {
                x: Pt(x),
                y: Pt(y),
                width: Pt(width),
                height: Pt(height),
                mode: Some(PaintMode::Fill),
                winding_order: None,
            },
        });
        self.ops.push(Op::SetFillColor {
            col: Color::Greyscale(Greyscale::new(0.0, None)),
        });
    }

    /// Starts a new page unless `height` points fit below the cursor.
    fn ensure_space(&mut self, height: f32) {
        if self.y - height < self.bottom() {
            self.start_page();
        }
    }

    /// A bold section heading, kept on the same page as at least `keep_with` points of what
    /// follows it.
    pub(crate) fn heading(&mut self, text: &str, keep_with: f32) {
        let lines = wrap_with(
            self.fonts.face(Face::Bold),
            text,
            HEADING_SIZE,
            self.content_width(),
        );
        let line_height = HEADING_SIZE * LINE_FACTOR;
        self.y -= 4.0;
        self.ensure_space(line_height * lines.len() as f32 + keep_with);
        for line in lines {
            self.text(
                MARGIN,
                self.y - HEADING_SIZE * BASELINE_FACTOR,
                &line,
                Face::Bold,
                HEADING_SIZE,
            );
            self.y -= line_height;
        }
        self.y -= 3.0;
    }

    /// Wrapped text across the content width.
    pub(crate) fn paragraph(&mut self, text: &str, face: Face, size: f32) {
        let line_height = size * LINE_FACTOR;
        for line in wrap_with(self.fonts.face(face), text, size, self.content_width()) {
            self.ensure_space(line_height);
            self.text(MARGIN, self.y - size * BASELINE_FACTOR, &line, face, size);
            self.y -= line_height;
        }
        self.y -= 2.0;
    }

    fn layout_row(&self, columns: &[Column], row: &TableRow) -> LaidOutRow {
        let face = match row.style {
            RowStyle::Plain => Face::Regular,
            RowStyle::Bold | RowStyle::Total => Face::Bold,
        };
        let lines = columns
            .iter()
            .zip(
                row.cells
                    .iter()
                    .map(String::as_str)
                    .chain(std::iter::repeat("")),
            )
            .map(|(column, text)| {
                wrap_with(
                    self.fonts.face(face),
                    text,
                    TABLE_SIZE,
                    column.width - 2.0 * CELL_PAD_X,
                )
            })
            .collect();
        LaidOutRow {
            lines,
            style: row.style,
        }
    }

    /// Height of a table row of `lines` text lines.
    fn row_height(lines: usize) -> f32 {
        lines as f32 * TABLE_SIZE * LINE_FACTOR + 2.0 * CELL_PAD_Y
    }

    /// Draws `count` lines of `row` starting at line `from`, below the cursor.
    fn draw_row(&mut self, columns: &[Column], row: &LaidOutRow, from: usize, count: usize) {
        let height = Self::row_height(count);
        let top = self.y;
        let table_width: f32 = columns.iter().map(|c| c.width).sum();
        match row.style {
            RowStyle::Plain => {}
            RowStyle::Bold => {}
            RowStyle::Total => self.fill(MARGIN, top - height, table_width, height, TOTAL_FILL),
        }
        let face = match row.style {
            RowStyle::Plain => Face::Regular,
            RowStyle::Bold | RowStyle::Total => Face::Bold,
        };
        let line_height = TABLE_SIZE * LINE_FACTOR;
        // Line by line across the row, so that extracted text reads row-wise.
        for i in 0..count {
            let baseline = top - CELL_PAD_Y - i as f32 * line_height - TABLE_SIZE * BASELINE_FACTOR;
            let mut x = MARGIN;
            for (column, lines) in columns.iter().zip(&row.lines) {
                if let Some(line) = lines.get(from + i) {
                    let text_x = match column.align {
                        Align::Left => x + CELL_PAD_X,
                        Align::Right => {
                            x + column.width - CELL_PAD_X - self.measure(line, face, TABLE_SIZE)
                        }
                    };
                    self.text(text_x, baseline, line, face, TABLE_SIZE);
                }
                x += column.width;
            }
        }
        self.y -= height;
        self.rule(MARGIN, MARGIN + table_width, self.y, 0.3, RULE_GREY);
    }

    fn draw_header_row(&mut self, columns: &[Column], header: &LaidOutRow) {
        let height = Self::row_height(header.line_count());
        let table_width: f32 = columns.iter().map(|c| c.width).sum();
        self.fill(MARGIN, self.y - height, table_width, height, HEADER_FILL);
        self.rule(MARGIN, MARGIN + table_width, self.y, 0.6, RULE_GREY);
        self.draw_row(columns, header, 0, header.line_count());
    }

    /// Column separators of the part of a table drawn on this page.
    fn close_fragment(&mut self, columns: &[Column], top: f32) {
        let mut x = MARGIN;
        let bottom = self.y;
        self.line(&[(x, top), (x, bottom)], 0.3, RULE_GREY);
        for column in columns {
            x += column.width;
            self.line(&[(x, top), (x, bottom)], 0.3, RULE_GREY);
        }
    }

    /// Draws a table: the header row, then every row, wrapping each cell's text to its
    /// column; a row that does not fit goes to the next page, under a repeated header row (a
    /// row taller than a whole page is split between pages).
    pub(crate) fn table(&mut self, columns: &[Column], rows: impl IntoIterator<Item = TableRow>) {
        let header = self.layout_row(
            columns,
            &TableRow {
                cells: columns.iter().map(|c| c.header.clone()).collect(),
                style: RowStyle::Bold,
            },
        );
        let header_height = Self::row_height(header.line_count());
        let line_height = TABLE_SIZE * LINE_FACTOR;
        self.ensure_space(header_height + Self::row_height(1));
        let mut fragment_top = self.y;
        self.draw_header_row(columns, &header);

        for row in rows {
            let row = self.layout_row(columns, &row);
            let total_lines = row.line_count();
            let mut from = 0;
            let mut fresh_page = false;
            while from < total_lines {
                let fitting = ((self.y - self.bottom() - 2.0 * CELL_PAD_Y) / line_height)
                    .floor()
                    .max(0.0) as usize;
                let remaining = total_lines - from;
                let fresh_page_lines = ((self.height
                    - self.page_top_reserve()
                    - header_height
                    - self.bottom()
                    - 2.0 * CELL_PAD_Y)
                    / line_height)
                    .floor() as usize;
                let count = if remaining <= fitting {
                    remaining
                } else if fresh_page {
                    // Even an empty page cannot hold it all: fill this one and go on.
                    fitting.max(1)
                } else if (from == 0 && remaining <= fresh_page_lines) || fitting == 0 {
                    0
                } else {
                    fitting
                };
                if count > 0 {
                    self.draw_row(columns, &row, from, count);
                    from += count;
                }
                if from < total_lines {
                    self.close_fragment(columns, fragment_top);
                    self.start_page();
                    fragment_top = self.y;
                    self.draw_header_row(columns, &header);
                    fresh_page = true;
                } else {
                    fresh_page = false;
                }
            }
        }
        self.close_fragment(columns, fragment_top);
        self.y -= 4.0;
    }

    /// Height taken at the top of every page by the report header.
    fn page_top_reserve(&self) -> f32 {
        let header: f32 = self.header.iter().map(|l| l.size * LINE_FACTOR).sum();
        MARGIN + header + 11.0
    }

    /// Hands the current page to the sink; a full chunk of pages is serialized.
    fn end_page(&mut self) {
        self.end_text();
        let ops = std::mem::take(&mut self.ops);
        let full = match &mut self.sink {
            Sink::Count => false,
            Sink::Pdf { pending, .. } => {
                pending.push(ops);
                pending.len() == CHUNK_PAGES
            }
            #[cfg(test)]
            Sink::Keep(pages) => {
                pages.push(ops);
                false
            }
        };
        if full {
            self.flush_chunk();
        }
    }

    /// Adds the footers to the pending pages and serializes them as one chunk.
    fn flush_chunk(&mut self) {
        let Sink::Pdf { total, pending, .. } = &mut self.sink else {
            return;
        };
        if pending.is_empty() {
            return;
        }
        let total = *total;
        let pages_ops = std::mem::take(pending);
        // Called right after a page was handed over, so every started page is done.
        let first = self.pages - pages_ops.len();
        let (regular, bold) = font_ids(first);
        let (w_mm, h_mm) = self.orientation.size_mm();
        let mut pages = Vec::with_capacity(pages_ops.len());
        for (i, ops) in pages_ops.into_iter().enumerate() {
            pages.push(PdfPage::new(
                Mm(w_mm),
                Mm(h_mm),
                self.with_footer(ops, first + i + 1, total, &regular),
            ));
        }

        let mut doc = PdfDocument::new(&self.meta_title);
        doc.metadata.info.author = self.meta_author.clone();
        doc.metadata.info.producer = "palreg-reports".to_string();
        doc.metadata.info.creator = "palreg".to_string();
        if let Ok(at) = printpdf::OffsetDateTime::from_unix_timestamp(self.generated_unix) {
            doc.metadata.info.creation_date = at;
            doc.metadata.info.modification_date = at;
            doc.metadata.info.metadata_date = at;
        }
        doc.resources
            .fonts
            .map
            .insert(regular, PdfFont::new(self.fonts.regular.parsed.clone()));
        doc.resources
            .fonts
            .map
            .insert(bold, PdfFont::new(self.fonts.bold.parsed.clone()));
        doc.pages = pages;
        let options = PdfSaveOptions {
            optimize: true,
            subset_fonts: true,
            secure: true,
            image_optimization: None,
        };
        let chunk = doc.to_lopdf_document(&options, &mut Vec::new());
        drop(doc);
        if let Sink::Pdf { assembler, .. } = &mut self.sink {
            self.error = self.error.take().or(assembler.add(chunk).err());
        }
    }

    /// `ops` followed by the footer: a rule, the report's name and "Page X of Y".
    fn with_footer(&mut self, ops: Vec<Op>, page: usize, total: usize, font: &FontId) -> Vec<Op> {
        let saved = std::mem::replace(&mut self.ops, ops);
        let saved_font = (self.regular.clone(), self.font.take(), self.in_text);
        self.regular = font.clone();
        let page_text = (self.labels.page_of)(page, total);
        let page_width = self.measure(&page_text, Face::Regular, FOOTER_SIZE);
        let baseline = MARGIN;
        self.rule(
            MARGIN,
            self.width - MARGIN,
            baseline + FOOTER_SIZE + 2.0,
            0.3,
            RULE_GREY,
        );
        let left = self.footer_left.clone();
        self.text(MARGIN, baseline, &left, Face::Regular, FOOTER_SIZE);
        self.text(
            self.width - MARGIN - page_width,
            baseline,
            &page_text,
            Face::Regular,
            FOOTER_SIZE,
        );
        self.end_text();
        (self.regular, self.font, self.in_text) = saved_font;
        std::mem::replace(&mut self.ops, saved)
    }

    /// Serializes what is left and joins all chunks into the document.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, ReportError> {
        self.end_page();
        self.flush_chunk();
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        match self.sink {
            Sink::Pdf { assembler, .. } => assembler.finish(),
            _ => Err(ReportError::Pdf(
                "finish called on a counting pass".to_string(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    use crate::model::Locale;
    use chrono::NaiveDate;

    fn meta() -> ReportMeta {
        let day = |d| NaiveDate::from_ymd_opt(2025, 1, d).unwrap();
        ReportMeta {
            title: "Test".to_string(),
            institutions: vec!["Hospital".to_string()],
            period_from: day(1),
            period_to: day(31),
            generated_at: day(31).and_hms_opt(12, 0, 0).unwrap(),
            author: "tester".to_string(),
            locale: Locale::En,
        }
    }

    fn writer(orientation: Orientation) -> Writer {
        Writer::new(&meta(), orientation, Sink::Keep(Vec::new())).unwrap()
    }

    fn kept(writer: &Writer) -> &[Vec<Op>] {
        match &writer.sink {
            Sink::Keep(pages) => pages,
            _ => &[],
        }
    }

    /// Every text run of every page with its position, face and size.
    fn runs(writer: &Writer) -> Vec<(usize, f32, String, Face, f32)> {
        let mut out = Vec::new();
        let pages = kept(writer).iter().chain(std::iter::once(&writer.ops));
        for (page, ops) in pages.enumerate() {
            let (mut face, mut size, mut x) = (Face::Regular, 0.0, 0.0);
            for op in ops {
                match op {
                    Op::SetFont {
                        font: PdfFontHandle::External(id),
                        size: s,
                    } => {
                        face = if *id == writer.bold {
                            Face::Bold
                        } else {
                            Face::Regular
                        };
                        size = s.0;
                    }
                    Op::SetTextMatrix {
                        matrix: TextMatrix::Translate(px, _),
                    } => x = px.0,
                    Op::ShowText { items } => {
                        for item in items {
                            if let TextItem::Text(t) = item {
                                out.push((page, x, t.clone(), face, size));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }

    fn columns() -> Vec<Column> {
        [
            (60.0, Align::Left),
            (45.0, Align::Right),
            (200.0, Align::Left),
        ]
        .iter()
        .enumerate()
        .map(|(i, &(width, align))| Column {
            header: format!("Column number {i} with a long header"),
            width,
            align,
        })
        .collect()
    }

    #[test]
    fn table_text_stays_inside_its_cells() {
        let mut writer = writer(Orientation::Landscape);
        let rows = (0..200).map(|i| {
            TableRow::plain(vec![
                format!("Иванова-Петрова Анна {i}"),
                "1234567890123456789".to_string(),
                "Морфина гидрохлорид раствор для инъекций 10 мг/мл, по 1 мл подкожно каждые 4 часа и при прорывной боли"
                    .repeat(1 + i % 3),
            ])
        });
        writer.table(&columns(), rows);
        let columns = columns();
        let mut checked = 0;
        for (_, x, text, face, size) in runs(&writer) {
            if size != TABLE_SIZE {
                continue;
            }
            let mut left = MARGIN;
            let column = columns
                .iter()
                .find(|c| {
                    let inside = x >= left && x < left + c.width;
                    if !inside {
                        left += c.width;
                    }
                    inside
                })
                .unwrap_or_else(|| panic!("text {text:?} at {x} outside the table"));
            let width = writer.measure(&text, face, size);
            assert!(
                x >= left + CELL_PAD_X - 0.01,
                "{text:?} starts left of its cell"
            );
            assert!(
                x + width <= left + column.width - CELL_PAD_X + 0.01,
                "{text:?} overflows its cell: {} > {}",
                x + width,
                left + column.width - CELL_PAD_X
            );
            checked += 1;
        }
        assert!(checked > 1000, "only {checked} runs checked");
        assert!(kept(&writer).len() > 3, "expected several pages");
    }

    #[test]
    fn a_row_taller_than_a_page_is_split_not_lost() {
        let mut writer = writer(Orientation::Portrait);
        let long: Vec<String> = (0..300).map(|i| format!("line{i}")).collect();
        writer.table(
            &columns(),
            [
                TableRow::plain(vec!["before".into()]),
                TableRow::plain(vec!["tall".into(), "1".into(), long.join("\n")]),
                TableRow::plain(vec!["after".into()]),
            ],
        );
        let texts: Vec<String> = runs(&writer).into_iter().map(|r| r.2).collect();
        for line in &long {
            assert_eq!(texts.iter().filter(|t| *t == line).count(), 1, "{line}");
        }
        assert!(texts.iter().any(|t| t == "after"));
        assert!(kept(&writer).len() >= 2);
        // The header row is repeated on every page the table reaches.
        let header_pages: BTreeSet<usize> = runs(&writer)
            .into_iter()
            .filter(|r| r.2.starts_with("Column"))
            .map(|r| r.0)
            .collect();
        assert_eq!(header_pages.len(), kept(&writer).len() + 1);
    }

    #[test]
    fn each_chunk_of_pages_gets_its_own_subset_tag() {
        let (r0, b0) = font_ids(0);
        let (r1, _) = font_ids(CHUNK_PAGES - 1);
        let (r2, b2) = font_ids(CHUNK_PAGES);
        let (r3, _) = font_ids(CHUNK_PAGES * 27);
        assert_eq!(r0, r1);
        assert_ne!(r0, r2);
        assert_ne!(b0, b2);
        assert_ne!(r3, r0);
        for id in [&r0, &b0, &r2, &r3] {
            let tag = &id.0[..6];
            assert!(tag.chars().all(|c| c.is_ascii_uppercase()), "{tag}");
        }
        assert_ne!(r0.0[..6], r2.0[..6]);
    }
}

//! Small-cell suppression: primary (hide every count 1..k−1) and secondary (hide more cells
//! until no hidden cell can be worked out from the published numbers).
//!
//! The engine works on an abstract *system*: a list of counts and a list of *lines*, each line
//! being one linear equation between cells that a reader can write down (a row with its row
//! total, a column with its column total, the flow identity "start + new = end + discharged +
//! deceased", the same population published in two tables). So:
//!
//! 1. **Primary**: every cell with `1 <= value < k` is hidden, and every cell `forced` by the
//!    caller (such as every cell of an institution too small to show apart). Zero stays
//!    visible otherwise.
//! 2. **Secondary**: while some line holds exactly one hidden cell, hide one more visible cell
//!    of that line: the one with the smallest non-zero value (ties: the cell listed first,
//!    so interior cells before their totals). Only when a line has no non-zero visible cell
//!    left is a zero hidden instead. Repeat over all lines until no line changes.
//! 3. **Exact disclosure**: two lines with two hidden cells each can together still pin one
//!    down (subtract one equation from another). The hidden cells are solved for as a linear
//!    system (exact arithmetic modulo a large prime); for every hidden cell the system
//!    determines, one more cell of one of its lines is hidden as in 2, and 2 and 3 repeat
//!    until no hidden cell is determined.
//!
//! When it stops, no hidden value follows from the published numbers by linear algebra;
//! totals that remain visible are the true totals. (The bounds that non-negativity adds, such
//! as "this hidden cell is at most 2", are not protected beyond the `<k` shown for it.) A cell
//! shared by several tables (the same number published twice) is one cell of the system, so
//! it is hidden everywhere or nowhere.

use serde::{Deserialize, Serialize};

/// Default threshold: counts 1..4 are hidden.
pub const DEFAULT_K: u64 = 5;

/// A published count: its true value, or hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    Shown(u64),
    Suppressed,
}

impl Cell {
    /// How the cell reads on the page: the number, or `<k`.
    pub fn display(self, k: u64) -> String {
        match self {
            Cell::Shown(n) => n.to_string(),
            Cell::Suppressed => format!("<{k}"),
        }
    }

    pub fn is_suppressed(self) -> bool {
        matches!(self, Cell::Suppressed)
    }

    pub fn shown(self) -> Option<u64> {
        match self {
            Cell::Shown(n) => Some(n),
            Cell::Suppressed => None,
        }
    }
}

/// In JSON a shown cell is its number and a suppressed one is `null`.
impl Serialize for Cell {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.shown().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Option::<u64>::deserialize(deserializer)?.map_or(Cell::Suppressed, Cell::Shown))
    }
}

/// One linear equation between cells: `sum of coefficient × cell = 0`.
pub type Line = Vec<(usize, i64)>;

/// Hides cells of `values` by the rule of this module. `lines` lists the linear equations a
/// reader could solve; `forced` the cells to hide whatever their value. Returns, for each
/// cell, whether it is hidden.
///
/// # Panics
/// Never on valid input; a line index out of range of `values` is a programming error in the
/// caller and panics.
pub fn suppress_system(values: &[u64], lines: &[Line], k: u64, forced: &[usize]) -> Vec<bool> {
    let mut hidden: Vec<bool> = values.iter().map(|&v| v >= 1 && v < k).collect();
    for &cell in forced {
        hidden[cell] = true;
    }
    if !hidden.contains(&true) {
        return hidden;
    }
    loop {
        complement_single_hidden(values, lines, &mut hidden);
        let determined = determined_cells(values.len(), lines, &hidden);
        if determined.is_empty() {
            return hidden;
        }
        let mut changed = false;
        for cell in determined {
            let complement = lines
                .iter()
                .filter(|line| line.iter().any(|&(i, _)| i == cell))
                .filter_map(|line| complement_for(line, values, &hidden))
                .min_by_key(|&i| (values[i] == 0, values[i], i));
            if let Some(i) = complement {
                hidden[i] = true;
                changed = true;
            }
        }
        if !changed {
            // Every line of a determined cell is hidden whole: nothing visible is left to
            // hide beside it (cannot happen while the determined cell has a visible partner).
            return hidden;
        }
    }
}

/// Step 2 of the module: a line with one hidden cell gets a second one, until none is left.
fn complement_single_hidden(values: &[u64], lines: &[Line], hidden: &mut [bool]) {
    loop {
        let mut changed = false;
        for line in lines {
            if count_hidden(line, hidden) != 1 {
                continue;
            }
            if let Some(cell) = complement_for(line, values, hidden) {
                hidden[cell] = true;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

fn count_hidden(line: &Line, hidden: &[bool]) -> usize {
    line.iter().filter(|&&(i, _)| hidden[i]).count()
}

/// The visible cell of `line` to hide with the hidden one: smallest non-zero value first,
/// a zero only when nothing else is left.
fn complement_for(line: &Line, values: &[u64], hidden: &[bool]) -> Option<usize> {
    let visible = || line.iter().map(|&(i, _)| i).filter(|&i| !hidden[i]);
    let smallest_nonzero = visible()
        .filter(|&i| values[i] > 0)
        .min_by_key(|&i| values[i]);
    smallest_nonzero.or_else(|| visible().next())
}

/// A prime near 2^61: the hidden cells are solved for modulo it. The equations have small
/// integer coefficients, so a cell is determined over the rationals exactly when it is
/// modulo the prime, but for a prime dividing one of the system's minors (none of these
/// systems has a minor anywhere near it).
const PRIME: u64 = (1 << 61) - 1;

fn mul(a: u64, b: u64) -> u64 {
    ((u128::from(a) * u128::from(b)) % u128::from(PRIME)) as u64
}

fn inverse(a: u64) -> u64 {
    // Fermat: a^(p−2).
    let (mut result, mut base, mut exp) = (1, a, PRIME - 2);
    while exp > 0 {
        if exp & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        exp >>= 1;
    }
    result
}

fn residue(c: i64) -> u64 {
    c.rem_euclid(PRIME as i64) as u64
}

/// The hidden cells whose value the published numbers determine: those whose unit vector lies
/// in the row space of the equations restricted to the hidden cells (the visible cells are
/// known numbers). In reduced row echelon form that is a row with a single non-zero entry.
fn determined_cells(cells: usize, lines: &[Line], hidden: &[bool]) -> Vec<usize> {
    let unknowns: Vec<usize> = (0..cells).filter(|&i| hidden[i]).collect();
    let column_of = |cell: usize| unknowns.binary_search(&cell).ok();
    let mut rows: Vec<Vec<u64>> = lines
        .iter()
        .filter(|line| count_hidden(line, hidden) > 0)
        .map(|line| {
            let mut row = vec![0; unknowns.len()];
            for &(cell, coefficient) in line {
                if let Some(c) = column_of(cell) {
                    row[c] = (row[c] + residue(coefficient)) % PRIME;
                }
            }
            row
        })
        .collect();
    let mut pivots = Vec::new();
    let mut next = 0;
    for column in 0..unknowns.len() {
        let Some(found) = (next..rows.len()).find(|&r| rows[r][column] != 0) else {
            continue;
        };
        rows.swap(next, found);
        let scale = inverse(rows[next][column]);
        for value in rows[next].iter_mut() {
            *value = mul(*value, scale);
        }
        let pivot = rows[next].clone();
        for (r, row) in rows.iter_mut().enumerate() {
            if r == next || row[column] == 0 {
                continue;
            }
            let factor = row[column];
            for (value, &p) in row.iter_mut().zip(&pivot) {
                if p != 0 {
                    *value = (*value + PRIME - mul(factor, p)) % PRIME;
                }
            }
        }
        pivots.push((next, column));
        next += 1;
    }
    pivots
        .into_iter()
        .filter(|&(r, _)| rows[r].iter().filter(|&&v| v != 0).count() == 1)
        .map(|(_, column)| unknowns[column])
        .collect()
}

/// A two-way table after suppression, with row totals, column totals and the grand total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuppressedTable {
    pub cells: Vec<Vec<Cell>>,
    pub row_totals: Vec<Cell>,
    pub column_totals: Vec<Cell>,
    pub grand_total: Cell,
}

/// Suppresses a rectangular table of counts (`rows[r][c]`) published together with its row
/// totals, column totals and grand total. Every row must have the same length.
pub fn suppress_table(rows: &[Vec<u64>], k: u64) -> SuppressedTable {
    let mut system = TableSystem::default();
    let table = system.add_table(rows, rows.first().map_or(0, Vec::len), Margins::Both);
    let hidden = suppress_system(&system.values, &system.lines, k, &[]);
    table.resolve(&system.values, &hidden)
}

/// Which totals of a table are published (and so are equations a reader can solve).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Margins {
    /// Row totals only: the columns do not add up to anything meaningful.
    Rows,
    /// Row totals, column totals and the grand total.
    Both,
}

/// Builds one suppression system out of several tables, so that equations and cells shared
/// between tables are suppressed consistently.
#[derive(Debug, Default)]
pub(crate) struct TableSystem {
    pub(crate) values: Vec<u64>,
    pub(crate) lines: Vec<Line>,
}

/// Where one table's cells live in a [`TableSystem`].
#[derive(Debug, Clone)]
pub(crate) struct TableIndex {
    pub(crate) cells: Vec<Vec<usize>>,
    pub(crate) row_totals: Vec<usize>,
    /// Empty with [`Margins::Rows`].
    pub(crate) column_totals: Vec<usize>,
    pub(crate) grand_total: Option<usize>,
}

impl TableSystem {
    pub(crate) fn add_cell(&mut self, value: u64) -> usize {
        self.values.push(value);
        self.values.len() - 1
    }

    /// Adds the equation "the cells of `line` but the last add up to the last" (a row and its
    /// total; with two cells, "these are equal").
    pub(crate) fn add_line(&mut self, line: Vec<usize>) {
        if let Some((&total, parts)) = line.split_last() {
            self.add_equation(parts.iter().map(|&i| (i, 1)).chain([(total, -1)]).collect());
        }
    }

    /// Adds any linear equation between cells (`sum of coefficient × cell = 0`).
    pub(crate) fn add_equation(&mut self, line: Line) {
        if !line.is_empty() {
            self.lines.push(line);
        }
    }

    /// Adds a table of `width` columns (institutions). The width is given, not read off the
    /// first row: a table may have no rows (no patient had any care form) and still publish its
    /// column totals (zeros), one per column.
    pub(crate) fn add_table(
        &mut self,
        rows: &[Vec<u64>],
        width: usize,
        margins: Margins,
    ) -> TableIndex {
        debug_assert!(rows.iter().all(|row| row.len() == width));
        let cells: Vec<Vec<usize>> = rows
            .iter()
            .map(|row| row.iter().map(|&v| self.add_cell(v)).collect())
            .collect();
        let row_totals: Vec<usize> = rows
            .iter()
            .map(|row| self.add_cell(row.iter().sum()))
            .collect();
        for (row, &total) in cells.iter().zip(&row_totals) {
            self.add_line(row.iter().copied().chain([total]).collect());
        }
        let (column_totals, grand_total) = match margins {
            Margins::Rows => (Vec::new(), None),
            Margins::Both => {
                let column_totals: Vec<usize> = (0..width)
                    .map(|c| self.add_cell(rows.iter().map(|row| row[c]).sum()))
                    .collect();
                let grand = self.add_cell(rows.iter().flatten().sum());
                for (c, &total) in column_totals.iter().enumerate() {
                    self.add_line(cells.iter().map(|row| row[c]).chain([total]).collect());
                }
                self.add_line(column_totals.iter().copied().chain([grand]).collect());
                self.add_line(row_totals.iter().copied().chain([grand]).collect());
                (column_totals, Some(grand))
            }
        };
        TableIndex {
            cells,
            row_totals,
            column_totals,
            grand_total,
        }
    }
}

impl TableIndex {
    pub(crate) fn resolve(&self, values: &[u64], hidden: &[bool]) -> SuppressedTable {
        let cell = |i: usize| {
            if hidden[i] {
                Cell::Suppressed
            } else {
                Cell::Shown(values[i])
            }
        };
        SuppressedTable {
            cells: self
                .cells
                .iter()
                .map(|row| row.iter().map(|&i| cell(i)).collect())
                .collect(),
            row_totals: self.row_totals.iter().map(|&i| cell(i)).collect(),
            column_totals: self.column_totals.iter().map(|&i| cell(i)).collect(),
            grand_total: self.grand_total.map_or(Cell::Shown(0), cell),
        }
    }
}

/// The rule as printed under every summary table and in the README.
pub fn footnote(locale: crate::Locale, k: u64) -> String {
    match locale {
        crate::Locale::En => format!(
            "Small-cell suppression: every count from 1 to {} is shown as \"<{k}\" (0 is shown), \
             and an institution with fewer than {k} patients in the period is hidden whole. To \
             keep hidden counts from being worked out from the others, further cells (the \
             smallest non-zero ones) are also shown as \"<{k}\" until no hidden count follows \
             from the shown numbers. Shown totals are the true totals, including hidden cells. \
             Medicament quantities are hidden where the number of patients they were \
             prescribed to is hidden.",
            k.saturating_sub(1)
        ),
        crate::Locale::Ru => format!(
            "Подавление малых значений: каждое число от 1 до {} показано как «<{k}» (0 \
             показывается), а учреждение, где за период меньше {k} пациентов, скрыто целиком. \
             Чтобы скрытые числа нельзя было вычислить из остальных, дополнительно скрываются \
             наименьшие ненулевые ячейки, пока ни одно скрытое число не следует из \
             показанных. Показанные итоги — истинные, со скрытыми ячейками. Количество \
             препарата скрывается там, где скрыто число пациентов, которым он назначен.",
            k.saturating_sub(1)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_hides_one_to_k_minus_one_and_keeps_zero() {
        let t = suppress_table(&[vec![0, 4, 5]], 5);
        assert_eq!(t.cells[0][0], Cell::Shown(0));
        assert_eq!(t.cells[0][1], Cell::Suppressed);
        assert_eq!(
            t.cells[0][2],
            Cell::Suppressed,
            "complement of the 4 in its row"
        );
    }

    #[test]
    fn single_hidden_cell_in_a_row_gets_a_complement() {
        // Row: 3 (hidden), 10, 20 → 10 joins it; column totals force more.
        let t = suppress_table(&[vec![3, 10, 20], vec![30, 40, 50]], 5);
        assert_eq!(t.cells[0][0], Cell::Suppressed);
        assert_eq!(t.cells[0][1], Cell::Suppressed);
        assert_eq!(t.cells[0][2], Cell::Shown(20));
        // Columns 0 and 1 each had one hidden cell: the 30 and 40 below go too.
        assert_eq!(t.cells[1][0], Cell::Suppressed);
        assert_eq!(t.cells[1][1], Cell::Suppressed);
        assert_eq!(t.row_totals, vec![Cell::Shown(33), Cell::Shown(120)]);
        assert_eq!(t.grand_total, Cell::Shown(153));
    }

    #[test]
    fn a_table_without_small_cells_is_untouched() {
        let t = suppress_table(&[vec![5, 6], vec![0, 9]], 5);
        assert!(t.cells.iter().flatten().all(|c| !c.is_suppressed()));
        assert_eq!(t.column_totals, vec![Cell::Shown(5), Cell::Shown(15)]);
    }

    #[test]
    fn small_total_is_hidden_and_counts_as_the_second_hidden_cell() {
        // One institution, one row: cell 2 and its total 2 are both primary-hidden.
        let t = suppress_table(&[vec![2]], 5);
        assert_eq!(t.cells[0][0], Cell::Suppressed);
        assert_eq!(t.row_totals[0], Cell::Suppressed);
        assert_eq!(t.grand_total, Cell::Suppressed);
    }

    #[test]
    fn k_of_one_hides_nothing() {
        let t = suppress_table(&[vec![1, 2], vec![3, 0]], 1);
        assert!(t.cells.iter().flatten().all(|c| !c.is_suppressed()));
    }

    #[test]
    fn cells_serialize_as_number_or_null() {
        let json = serde_json::to_string(&[Cell::Shown(7), Cell::Suppressed]).unwrap();
        assert_eq!(json, "[7,null]");
        let back: Vec<Cell> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vec![Cell::Shown(7), Cell::Suppressed]);
    }

    #[test]
    fn display_shows_less_than_k() {
        assert_eq!(Cell::Suppressed.display(5), "<5");
        assert_eq!(Cell::Shown(12).display(5), "12");
    }
}

//! One line of the register's CSV: parsing (with a column and a reason for every fault) and
//! writing, in the one format import and export share.

use client_crypto::{Passport, Sex, normalize};

use crate::api::Record;
use crate::refs::Books;

/// The columns, in the order export writes them.
pub const COLUMNS: [&str; 17] = [
    "surname",
    "first_name",
    "patronymic",
    "date_of_birth",
    "sex",
    "snils",
    "policy_number",
    "phone",
    "address",
    "diagnosis",
    "status",
    "registered_on",
    "discharged_on",
    "deceased_on",
    "care_form",
    "district",
    "needs",
];

/// A fault in one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    pub column: String,
    pub reason: String,
}

fn fault(column: &str, reason: impl Into<String>) -> CellError {
    CellError {
        column: column.into(),
        reason: reason.into(),
    }
}

/// A parsed line: the passport to seal and the record to send in clear.
pub struct Row {
    pub passport: Passport,
    pub record: Record,
}

/// Reads cells by column name.
pub trait Cells {
    fn cell(&self, column: &str) -> &str;
}

fn optional(cells: &dyn Cells, column: &str) -> Option<String> {
    let v = cells.cell(column).trim();
    (!v.is_empty()).then(|| v.to_string())
}

fn required(cells: &dyn Cells, column: &str) -> Result<String, CellError> {
    optional(cells, column).ok_or_else(|| fault(column, "required"))
}

fn date(cells: &dyn Cells, column: &str) -> Result<Option<String>, CellError> {
    optional(cells, column)
        .map(|v| {
            normalize::date(&v).map_err(|_| fault(column, "not a date (YYYY-MM-DD or DD.MM.YYYY)"))
        })
        .transpose()
}

/// `M`/`F`, Cyrillic `М`/`Ж`, or the words.
pub fn parse_sex(value: &str) -> Option<Sex> {
    match value.trim().to_lowercase().as_str() {
        "m" | "м" | "male" | "муж" | "мужской" => Some(Sex::Male),
        "f" | "ж" | "female" | "жен" | "женский" => Some(Sex::Female),
        _ => None,
    }
}

/// Parses one line. Every faulty cell is reported, not only the first.
pub fn parse(cells: &dyn Cells, books: &Books, today: &str) -> Result<Row, Vec<CellError>> {
    let mut errors = Vec::new();
    let mut take = |r: Result<String, CellError>| r.map_err(|e| errors.push(e)).unwrap_or_default();
    let surname = take(required(cells, "surname"));
    let first_name = take(required(cells, "first_name"));
    let dob = take(required(cells, "date_of_birth").and_then(|v| {
        normalize::date(&v)
            .map_err(|_| fault("date_of_birth", "not a date (YYYY-MM-DD or DD.MM.YYYY)"))
    }));
    let sex = match parse_sex(cells.cell("sex")) {
        Some(s) => Some(s),
        None => {
            errors.push(fault("sex", "expected M or F (М or Ж)"));
            None
        }
    };
    let code = |errors: &mut Vec<CellError>, column: &str, book: &crate::refs::Book| {
        optional(cells, column).and_then(|c| {
            let id = book.id(&c);
            if id.is_none() {
                errors.push(fault(column, format!("unknown code {c:?}")));
            }
            id
        })
    };
    let diagnosis = code(&mut errors, "diagnosis", &books.diagnoses);
    if cells.cell("diagnosis").trim().is_empty() {
        errors.push(fault("diagnosis", "required (an ICD-10 code)"));
    }
    let care_form_id = code(&mut errors, "care_form", &books.care_forms);
    let district_id = code(&mut errors, "district", &books.districts);
    let status = cells.cell("status").trim().to_lowercase();
    if books.statuses.id(&status).is_none() {
        errors.push(fault(
            "status",
            "expected registered, discharged or deceased",
        ));
    }
    let mut needs = Vec::new();
    for need in cells
        .cell("needs")
        .split([';', '|'])
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        match books.needs.id(need) {
            Some(id) if !needs.contains(&id) => needs.push(id),
            Some(_) => {}
            None => errors.push(fault("needs", format!("unknown need {need:?}"))),
        }
    }
    let registered_on = date(cells, "registered_on")
        .and_then(|d| d.ok_or_else(|| fault("registered_on", "required")))
        .map_err(|e| errors.push(e))
        .ok();
    let discharged_on = date(cells, "discharged_on")
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let deceased_on = date(cells, "deceased_on")
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let birth_year: i32 = dob.get(..4).and_then(|y| y.parse().ok()).unwrap_or(0);
    if !dob.is_empty() && (birth_year < 1900 || dob.as_str() > today) {
        errors.push(fault("date_of_birth", "must lie between 1900 and today"));
    }
    if let Some(reg) = &registered_on {
        if reg.as_str() > today {
            errors.push(fault("registered_on", "in the future"));
        }
        if !dob.is_empty() && reg.as_str() < dob.as_str() {
            errors.push(fault("registered_on", "before the date of birth"));
        }
        for (column, d) in [
            ("discharged_on", &discharged_on),
            ("deceased_on", &deceased_on),
        ] {
            if let Some(d) = d
                && (d < reg || d.as_str() > today)
            {
                errors.push(fault(column, "must lie between registration and today"));
            }
        }
    }
    match (status.as_str(), &discharged_on, &deceased_on) {
        ("registered", None, None) | ("discharged", Some(_), None) | ("deceased", _, Some(_)) => {}
        ("registered", ..) => errors.push(fault(
            "status",
            "a registered patient has no discharge or death date",
        )),
        ("discharged", ..) => errors.push(fault(
            "discharged_on",
            "a discharged patient needs the discharge date",
        )),
        ("deceased", ..) => errors.push(fault(
            "deceased_on",
            "a deceased patient needs the date of death",
        )),
        _ => {}
    }
    let (Some(sex), Some(diagnosis_id), Some(registered_on), true) =
        (sex, diagnosis, registered_on, errors.is_empty())
    else {
        return Err(errors);
    };
    let mut passport = Passport::new(&surname, &first_name, &dob, sex);
    passport.patronymic = optional(cells, "patronymic");
    passport.snils = optional(cells, "snils");
    passport.policy_number = optional(cells, "policy_number");
    passport.phone = optional(cells, "phone");
    passport.address = optional(cells, "address");
    let record = Record {
        sex: if sex == Sex::Male { "M" } else { "F" }.into(),
        birth_year,
        district_id,
        diagnosis_id,
        care_form_id,
        status,
        registered_on,
        discharged_on,
        deceased_on,
        needs,
    };
    Ok(Row { passport, record })
}

/// The passport an edit saves: `opened` with the passport columns named in `given` taken from
/// `parsed`. The fields no column carries (notes, identity document, contact person: typed in
/// the browser) and the columns not given stay exactly as they were, so an edit never loses
/// them, and an edit of the record alone leaves the passport equal (and so not sealed again).
pub fn overlay_passport<'a>(
    opened: &Passport,
    parsed: &Passport,
    given: impl IntoIterator<Item = &'a str>,
) -> Passport {
    let mut out = opened.clone();
    for column in given {
        match column {
            "surname" => out.surname.clone_from(&parsed.surname),
            "first_name" => out.first_name.clone_from(&parsed.first_name),
            "patronymic" => out.patronymic.clone_from(&parsed.patronymic),
            "date_of_birth" => out.date_of_birth.clone_from(&parsed.date_of_birth),
            "sex" => out.sex = parsed.sex,
            "snils" => out.snils.clone_from(&parsed.snils),
            "policy_number" => out.policy_number.clone_from(&parsed.policy_number),
            "phone" => out.phone.clone_from(&parsed.phone),
            "address" => out.address.clone_from(&parsed.address),
            // The record's columns.
            _ => {}
        }
    }
    out
}

/// The cells of a patient in [`COLUMNS`] order (the export's line).
pub fn to_cells(passport: &Passport, record: &Record, books: &Books) -> Vec<String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let code =
        |id: Option<i64>, book: &crate::refs::Book| id.map(|i| book.code(i)).unwrap_or_default();
    vec![
        passport.surname.clone(),
        passport.first_name.clone(),
        opt(&passport.patronymic),
        passport.date_of_birth.clone(),
        if passport.sex == Sex::Male { "M" } else { "F" }.into(),
        opt(&passport.snils),
        opt(&passport.policy_number),
        opt(&passport.phone),
        opt(&passport.address),
        books.diagnoses.code(record.diagnosis_id),
        record.status.clone(),
        record.registered_on.clone(),
        opt(&record.discharged_on),
        opt(&record.deceased_on),
        code(record.care_form_id, &books.care_forms),
        code(record.district_id, &books.districts),
        record
            .needs
            .iter()
            .map(|n| books.needs.code(*n))
            .collect::<Vec<_>>()
            .join("|"),
    ]
}

#[cfg(test)]
mod tests {
    use client_crypto::{ContactPerson, IdentityDocument};

    use super::*;

    fn from_the_browser() -> Passport {
        let mut p = Passport::new("Иванова", "Анна", "1948-03-12", Sex::Female);
        p.phone = Some("+7 900 111-22-33".into());
        p.notes = Some("ключ у соседки".into());
        p.identity_document = Some(IdentityDocument {
            kind: "паспорт РФ".into(),
            series: Some("8600".into()),
            number: "123456".into(),
            issued_by: None,
            issued_on: None,
        });
        p.contact_person = Some(ContactPerson {
            name: "Иванов Пётр".into(),
            relation: Some("сын".into()),
            phone: None,
        });
        p
    }

    #[test]
    fn an_edit_keeps_the_fields_no_column_carries() {
        let opened = from_the_browser();
        let mut parsed = Passport::new("Петрова", "Анна", "1948-03-12", Sex::Female);
        parsed.phone = None;
        let edited = overlay_passport(&opened, &parsed, ["surname", "status"]);
        assert_eq!(edited.surname, "Петрова");
        assert_eq!(edited.phone, opened.phone, "a column not given stays");
        assert_eq!(edited.notes, opened.notes);
        assert!(edited.identity_document == opened.identity_document);
        assert!(edited.contact_person == opened.contact_person);
    }

    #[test]
    fn an_edit_of_the_record_alone_leaves_the_passport_equal() {
        let opened = from_the_browser();
        let parsed = Passport::new("Иванова", "Анна", "1948-03-12", Sex::Female);
        assert!(overlay_passport(&opened, &parsed, ["status", "discharged_on"]) == opened);
    }

    #[test]
    fn a_given_empty_optional_column_clears_it() {
        let opened = from_the_browser();
        let parsed = Passport::new("Иванова", "Анна", "1948-03-12", Sex::Female);
        let edited = overlay_passport(&opened, &parsed, ["phone"]);
        assert_eq!(edited.phone, None);
        assert_eq!(edited.notes, opened.notes);
    }
}

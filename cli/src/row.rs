//! One line of the register's CSV: parsing (with a column and a reason for every fault) and
//! writing, in the one format import and export share.

use client_crypto::{ContactPerson, IdentityDocument, Passport, Sex, normalize};

use crate::api::Record;
use crate::refs::Books;

/// The columns, in the order export writes them: the passport and record columns first, then
/// [`DOCUMENT_COLUMNS`], [`CONTACT_COLUMNS`] and `notes`, added later and all optional, so a
/// file written before they existed still imports.
pub const COLUMNS: [&str; 26] = [
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
    "id_document_kind",
    "id_document_series",
    "id_document_number",
    "id_document_issued_by",
    "id_document_issued_on",
    "contact_name",
    "contact_relation",
    "contact_phone",
    "notes",
];

/// The passport's identity document: kind, series, number, issuing authority, date of issue.
pub const DOCUMENT_COLUMNS: [&str; 5] = [
    "id_document_kind",
    "id_document_series",
    "id_document_number",
    "id_document_issued_by",
    "id_document_issued_on",
];

/// The passport's contact person: name, relation to the patient, phone.
pub const CONTACT_COLUMNS: [&str; 3] = ["contact_name", "contact_relation", "contact_phone"];

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
    let identity_document = document(cells).map_err(|e| errors.extend(e)).ok().flatten();
    let contact_person = contact(cells).map_err(|e| errors.push(e)).ok().flatten();
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
    passport.identity_document = identity_document;
    passport.contact_person = contact_person;
    // Line breaks inside a note are kept: the csv crate quotes them on export and reads them
    // back. Only the ends are trimmed, as the browser trims what is typed.
    passport.notes = optional(cells, "notes");
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

/// The identity document of a line: none when every one of its columns is empty. A document
/// is useless without its kind and number, so any other of its columns filled asks for both;
/// the date of issue is normalized like every date.
fn document(cells: &dyn Cells) -> Result<Option<IdentityDocument>, Vec<CellError>> {
    let mut values = DOCUMENT_COLUMNS.map(|column| optional(cells, column));
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut errors = Vec::new();
    for (i, what) in [(0, "kind"), (2, "number")] {
        if values[i].is_none() {
            errors.push(fault(
                DOCUMENT_COLUMNS[i],
                format!(
                    "required when any id_document_ column is filled (the identity \
                     document's {what})"
                ),
            ));
        }
    }
    match date(cells, "id_document_issued_on") {
        Ok(issued_on) => values[4] = issued_on,
        Err(e) => errors.push(e),
    }
    if errors.is_empty() {
        Ok(document_of(values))
    } else {
        Err(errors)
    }
}

/// The contact person of a line: none when every one of its columns is empty; a relation or a
/// phone without a name to go with them is refused.
fn contact(cells: &dyn Cells) -> Result<Option<ContactPerson>, CellError> {
    let values = CONTACT_COLUMNS.map(|column| optional(cells, column));
    if values.iter().any(Option::is_some) && values[0].is_none() {
        return Err(fault(
            "contact_name",
            "required when contact_relation or contact_phone is filled",
        ));
    }
    Ok(contact_of(values))
}

/// A document from the values of [`DOCUMENT_COLUMNS`], in order; none when all are absent.
fn document_of(values: [Option<String>; 5]) -> Option<IdentityDocument> {
    if values.iter().all(Option::is_none) {
        return None;
    }
    let [kind, series, number, issued_by, issued_on] = values;
    Some(IdentityDocument {
        kind: kind.unwrap_or_default(),
        series,
        number: number.unwrap_or_default(),
        issued_by,
        issued_on,
    })
}

/// The values of [`DOCUMENT_COLUMNS`] of a document, in order (an empty text is absent).
fn document_values(document: Option<&IdentityDocument>) -> [Option<String>; 5] {
    let Some(d) = document else {
        return Default::default();
    };
    [
        Some(d.kind.clone()),
        d.series.clone(),
        Some(d.number.clone()),
        d.issued_by.clone(),
        d.issued_on.clone(),
    ]
    .map(|v| v.filter(|v| !v.is_empty()))
}

/// A contact person from the values of [`CONTACT_COLUMNS`], in order; none when all are absent.
fn contact_of(values: [Option<String>; 3]) -> Option<ContactPerson> {
    if values.iter().all(Option::is_none) {
        return None;
    }
    let [name, relation, phone] = values;
    Some(ContactPerson {
        name: name.unwrap_or_default(),
        relation,
        phone,
    })
}

/// The values of [`CONTACT_COLUMNS`] of a contact person, in order (an empty text is absent).
fn contact_values(contact: Option<&ContactPerson>) -> [Option<String>; 3] {
    let Some(c) = contact else {
        return Default::default();
    };
    [Some(c.name.clone()), c.relation.clone(), c.phone.clone()].map(|v| v.filter(|v| !v.is_empty()))
}

/// `into`'s values with those of the columns named in `given` taken from `from`.
fn overlay_values<const N: usize>(
    columns: [&str; N],
    into: &mut [Option<String>; N],
    from: [Option<String>; N],
    given: &[&str],
) {
    for ((column, value), new) in columns.iter().zip(into.iter_mut()).zip(from) {
        if given.contains(column) {
            *value = new;
        }
    }
}

/// The passport an edit saves: `opened` with the passport columns named in `given` taken from
/// `parsed` (a given empty column clears its field). The columns not given stay exactly as they
/// were, so an edit never loses them, and an edit of the record alone leaves the passport equal
/// (and so not sealed again). The identity document and the contact person change field by
/// field, like the columns that carry them, and only when one of their columns is given.
pub fn overlay_passport<'a>(
    opened: &Passport,
    parsed: &Passport,
    given: impl IntoIterator<Item = &'a str>,
) -> Passport {
    let given: Vec<&str> = given.into_iter().collect();
    let mut out = opened.clone();
    if DOCUMENT_COLUMNS.iter().any(|c| given.contains(c)) {
        let mut values = document_values(opened.identity_document.as_ref());
        let new = document_values(parsed.identity_document.as_ref());
        overlay_values(DOCUMENT_COLUMNS, &mut values, new, &given);
        out.identity_document = document_of(values);
    }
    if CONTACT_COLUMNS.iter().any(|c| given.contains(c)) {
        let mut values = contact_values(opened.contact_person.as_ref());
        let new = contact_values(parsed.contact_person.as_ref());
        overlay_values(CONTACT_COLUMNS, &mut values, new, &given);
        out.contact_person = contact_of(values);
    }
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
            "notes" => out.notes.clone_from(&parsed.notes),
            // The record's columns, and those of the document and the contact person (above).
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
    let mut cells = vec![
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
    ];
    let document = document_values(passport.identity_document.as_ref());
    let contact = contact_values(passport.contact_person.as_ref());
    cells.extend(
        document
            .into_iter()
            .chain(contact)
            .map(Option::unwrap_or_default),
    );
    cells.push(opt(&passport.notes));
    cells
}

#[cfg(test)]
pub(crate) mod tests {
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

    /// Reference books of a few entries, for tests that parse rows.
    pub(crate) fn books() -> Books {
        use crate::api::RefEntry;
        use crate::refs::Book;
        let book = |codes: &[&str]| {
            codes
                .iter()
                .zip(1..)
                .map(|(code, id)| RefEntry {
                    id,
                    code: (*code).into(),
                    name: String::new(),
                    active: true,
                })
                .collect()
        };
        Books {
            diagnoses: Book::icd10_from_entries(book(&["C50", "C34"])),
            statuses: Book::from_entries(book(&["registered", "discharged", "deceased"])),
            care_forms: Book::from_entries(book(&["home_visiting"])),
            districts: Book::from_entries(book(&["petrozavodsk"])),
            needs: Book::from_entries(book(&["functional_bed", "oxygen_concentrator"])),
        }
    }

    /// A line's cells by column, as a file or the flags give them.
    struct Map(std::collections::BTreeMap<String, String>);

    impl Cells for Map {
        fn cell(&self, column: &str) -> &str {
            self.0.get(column).map_or("", String::as_str)
        }
    }

    fn line(cells: &[(&str, &str)]) -> Map {
        let mut all: Vec<(&str, &str)> = vec![
            ("surname", "Иванова"),
            ("first_name", "Анна"),
            ("date_of_birth", "12.03.1948"),
            ("sex", "Ж"),
            ("diagnosis", "C50"),
            ("status", "registered"),
            ("registered_on", "2025-02-01"),
        ];
        all.extend_from_slice(cells);
        Map(all
            .into_iter()
            .map(|(c, v)| (c.to_string(), v.to_string()))
            .collect())
    }

    fn faults(cells: &[(&str, &str)]) -> Vec<CellError> {
        match parse(&line(cells), &books(), "2100-01-01") {
            Ok(_) => panic!("parsed {cells:?}"),
            Err(faults) => faults,
        }
    }

    fn record() -> Record {
        Record {
            sex: "F".into(),
            birth_year: 1948,
            district_id: Some(1),
            diagnosis_id: 1,
            care_form_id: Some(1),
            status: "registered".into(),
            registered_on: "2025-02-01".into(),
            discharged_on: None,
            deceased_on: None,
            needs: vec![1, 2],
        }
    }

    /// Every field of the passport filled, the document and the contact person too, with a
    /// note of several lines.
    fn whole_passport() -> Passport {
        let mut p = from_the_browser();
        p.patronymic = Some("Петровна".into());
        p.snils = Some("112-233-445 95".into());
        p.policy_number = Some("7700000000000011".into());
        p.address = Some("г. Петрозаводск, ул. Ленина, д. 1".into());
        p.notes = Some("ключ у соседки, кв. 5;\nзвонить после 18:00\r\n«не будить»".into());
        p.identity_document = Some(IdentityDocument {
            kind: "паспорт РФ".into(),
            series: Some("86 00".into()),
            number: "123456".into(),
            issued_by: Some("ОВД Октябрьского района г. Петрозаводска".into()),
            issued_on: Some("2003-04-05".into()),
        });
        p.contact_person = Some(ContactPerson {
            name: "Иванов Пётр Сергеевич".into(),
            relation: Some("сын".into()),
            phone: Some("+7 911 222-33-44".into()),
        });
        p
    }

    #[test]
    fn the_new_columns_follow_the_old_ones() {
        assert_eq!(&COLUMNS[17..22], &DOCUMENT_COLUMNS);
        assert_eq!(&COLUMNS[22..25], &CONTACT_COLUMNS);
        assert_eq!(COLUMNS[25], "notes");
        assert_eq!(COLUMNS[..3], ["surname", "first_name", "patronymic"]);
    }

    #[test]
    fn the_whole_passport_round_trips_through_its_cells() {
        let books = books();
        let passport = whole_passport();
        let cells = to_cells(&passport, &record(), &books);
        assert_eq!(cells.len(), COLUMNS.len());
        let parsed = parse(
            &Map(COLUMNS
                .iter()
                .map(|c| c.to_string())
                .zip(cells.clone())
                .collect()),
            &books,
            "2100-01-01",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(parsed.passport == passport, "the passport survives");
        assert_eq!(to_cells(&parsed.passport, &parsed.record, &books), cells);
        assert_eq!(
            parsed.passport.notes.as_deref(),
            Some("ключ у соседки, кв. 5;\nзвонить после 18:00\r\n«не будить»")
        );
    }

    #[test]
    fn the_whole_passport_round_trips_through_a_csv_file() {
        let books = books();
        let passports = [whole_passport(), from_the_browser()];
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(COLUMNS).unwrap();
        for p in &passports {
            writer.write_record(to_cells(p, &record(), &books)).unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        let (lines, bad) = crate::csvfile::read(&bytes, crate::csvfile::Encoding::Utf8).unwrap();
        assert!(bad.is_empty());
        // The note's two line breaks make the second patient start on line 5.
        assert_eq!(lines.iter().map(|l| l.number).collect::<Vec<_>>(), [2, 5]);
        for (line, passport) in lines.iter().zip(&passports) {
            let row = parse(line, &books, "2100-01-01").unwrap_or_else(|e| panic!("{e:?}"));
            assert!(row.passport == *passport);
        }
    }

    #[test]
    fn a_file_without_the_new_columns_gives_a_passport_without_them() {
        let row = parse(&line(&[]), &books(), "2100-01-01").unwrap_or_else(|e| panic!("{e:?}"));
        assert!(row.passport.identity_document.is_none());
        assert!(row.passport.contact_person.is_none() && row.passport.notes.is_none());
        assert_eq!(row.passport.date_of_birth, "1948-03-12");
    }

    #[test]
    fn a_document_is_optional_but_needs_its_kind_and_number() {
        let row = parse(
            &line(&[
                ("id_document_kind", " свидетельство о рождении "),
                ("id_document_number", "I-ГИ 654321"),
                ("id_document_issued_on", "05.04.2003"),
            ]),
            &books(),
            "2100-01-01",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let document = row.passport.identity_document.clone().unwrap();
        assert_eq!(document.kind, "свидетельство о рождении");
        assert_eq!(
            document.issued_on.as_deref(),
            Some("2003-04-05"),
            "normalized"
        );
        assert_eq!((document.series, document.issued_by), (None, None));

        let got = faults(&[
            ("id_document_series", "8600"),
            ("id_document_issued_by", "ОВД Октябрьского района"),
        ]);
        let columns: Vec<&str> = got.iter().map(|f| f.column.as_str()).collect();
        assert_eq!(columns, ["id_document_kind", "id_document_number"]);
        assert!(got[0].reason.contains("kind") && got[1].reason.contains("number"));

        let got = faults(&[
            ("id_document_kind", "паспорт РФ"),
            ("id_document_number", "123456"),
            ("id_document_issued_on", "31.02.2003"),
        ]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].column, "id_document_issued_on");
        assert!(got[0].reason.contains("not a date"));
        for f in &got {
            assert!(!f.reason.contains("31.02") && !f.reason.contains("123456"));
        }
    }

    #[test]
    fn a_contact_person_needs_a_name() {
        let got = faults(&[
            ("contact_relation", "сын"),
            ("contact_phone", "+7 911 222-33-44"),
        ]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].column, "contact_name");
        assert!(!got[0].reason.contains("сын") && !got[0].reason.contains("911"));

        let row = parse(
            &line(&[("contact_name", "Иванов Пётр")]),
            &books(),
            "2100-01-01",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let contact = row.passport.contact_person.clone().unwrap();
        assert_eq!(contact.name, "Иванов Пётр");
        assert_eq!((contact.relation, contact.phone), (None, None));
    }

    #[test]
    fn faults_of_the_new_columns_are_reported_with_the_others_and_echo_nothing() {
        let got = faults(&[
            ("sex", "X"),
            ("id_document_series", "8600"),
            ("contact_phone", "+7 911 222-33-44"),
        ]);
        let columns: Vec<&str> = got.iter().map(|f| f.column.as_str()).collect();
        assert_eq!(
            columns,
            [
                "sex",
                "id_document_kind",
                "id_document_number",
                "contact_name"
            ]
        );
        for f in &got {
            assert!(
                !f.reason.contains("8600") && !f.reason.contains("911"),
                "{f:?}"
            );
        }
    }

    #[test]
    fn an_edit_changes_the_document_and_the_contact_person_column_by_column() {
        let opened = whole_passport();
        let mut parsed = Passport::new("Иванова", "Анна", "1948-03-12", Sex::Female);
        parsed.identity_document = Some(IdentityDocument {
            kind: "паспорт РФ".into(),
            series: Some("86 10".into()),
            number: "654321".into(),
            issued_by: None,
            issued_on: None,
        });
        parsed.notes = Some("новая заметка".into());

        // A given column replaces; the other columns of the document stay.
        let edited = overlay_passport(&opened, &parsed, ["id_document_number"]);
        let document = edited.identity_document.clone().unwrap();
        assert_eq!(document.number, "654321");
        let mut expected = opened.identity_document.clone().unwrap();
        expected.number = "654321".into();
        assert!(document == expected);
        assert!(edited.contact_person == opened.contact_person);
        assert_eq!(edited.notes, opened.notes, "not given: stays");

        // A given empty column clears its field; every one of them given empty, the whole.
        let edited = overlay_passport(&opened, &parsed, ["id_document_issued_by", "notes"]);
        assert_eq!(edited.identity_document.clone().unwrap().issued_by, None);
        assert_eq!(edited.notes.as_deref(), Some("новая заметка"));
        let edited = overlay_passport(&opened, &parsed, CONTACT_COLUMNS);
        assert!(edited.contact_person.is_none());
        let edited = overlay_passport(&opened, &parsed, ["notes", "contact_relation"]);
        assert_eq!(edited.contact_person.clone().unwrap().relation, None);
        let edited = overlay_passport(&opened, &parsed, DOCUMENT_COLUMNS);
        assert!(edited.identity_document == parsed.identity_document);

        // Given with the values it has: the passport stays equal (and is not sealed again).
        let same = overlay_passport(&opened, &opened, COLUMNS);
        assert!(same == opened);

        // A document given to a passport without one.
        let bare = Passport::new("Иванова", "Анна", "1948-03-12", Sex::Female);
        let edited = overlay_passport(&bare, &parsed, DOCUMENT_COLUMNS);
        assert!(edited.identity_document == parsed.identity_document);
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

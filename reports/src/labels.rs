//! Every fixed word printed on a report, in English and Russian.

use chrono::{NaiveDate, NaiveDateTime};

use crate::Locale;

pub(crate) struct Labels {
    pub page_of: fn(usize, usize) -> String,
    pub period: &'static str,
    pub generated: &'static str,
    pub author: &'static str,
    pub institutions: &'static str,
    // Prescription report.
    pub number: &'static str,
    pub date: &'static str,
    pub patient: &'static str,
    pub medicament: &'static str,
    pub dose_route_frequency: &'static str,
    pub quantity: &'static str,
    pub prescriber: &'static str,
    pub status: &'static str,
    pub unit: &'static str,
    pub prescriptions: &'static str,
    pub total_quantity: &'static str,
    pub totals_by_medicament: &'static str,
    pub controlled_substances: &'static str,
    pub controlled_marker_note: &'static str,
    pub prescriptions_in_period: &'static str,
    pub none: &'static str,
    // Summary report.
    pub category: &'static str,
    pub total: &'static str,
    pub register_movement: &'static str,
    pub register_measures: [&'static str; 5],
    pub icd10_blocks: &'static str,
    pub age_sex: &'static str,
    pub all_ages: &'static str,
    pub all_sexes: &'static str,
    pub sexes: [&'static str; 3],
    pub care_forms: &'static str,
    pub needs: &'static str,
    pub needs_note: &'static str,
    pub medicament_needs: &'static str,
    pub patients: &'static str,
    pub hidden: &'static str,
    pub notes: &'static str,
}

const EN: Labels = Labels {
    page_of: |x, y| format!("Page {x} of {y}"),
    period: "Period",
    generated: "Generated",
    author: "Author",
    institutions: "Institutions",
    number: "No.",
    date: "Date",
    patient: "Patient",
    medicament: "Medicament",
    dose_route_frequency: "Dose / route / frequency",
    quantity: "Quantity",
    prescriber: "Prescriber",
    status: "Status",
    unit: "Unit",
    prescriptions: "Prescriptions",
    total_quantity: "Total quantity",
    totals_by_medicament: "Totals by medicament",
    controlled_substances: "Controlled substances",
    controlled_marker_note: "‡ marks a controlled substance; these are totalled in their own section.",
    prescriptions_in_period: "Prescriptions in the period",
    none: "None.",
    category: "Category",
    total: "Total",
    register_movement: "Patients on the register",
    register_measures: [
        "On the register at the start of the period",
        "On the register at the end of the period",
        "Newly registered",
        "Discharged",
        "Deceased",
    ],
    icd10_blocks: "Diagnosis (ICD-10 block)",
    age_sex: "Age band and sex",
    all_ages: "All ages",
    all_sexes: "all",
    sexes: ["male", "female", "unknown"],
    care_forms: "Care form",
    needs: "Patients with each need",
    needs_note: "A patient may have several needs, so these rows have no total.",
    medicament_needs: "Medicament needs (quantity prescribed)",
    patients: "patients",
    hidden: "hidden",
    notes: "Notes",
};

const RU: Labels = Labels {
    page_of: |x, y| format!("Страница {x} из {y}"),
    period: "Период",
    generated: "Сформирован",
    author: "Автор",
    institutions: "Учреждения",
    number: "№",
    date: "Дата",
    patient: "Пациент",
    medicament: "Препарат",
    dose_route_frequency: "Доза / путь / кратность",
    quantity: "Количество",
    prescriber: "Врач",
    status: "Статус",
    unit: "Ед.",
    prescriptions: "Назначений",
    total_quantity: "Всего",
    totals_by_medicament: "Итоги по препаратам",
    controlled_substances: "Контролируемые вещества",
    controlled_marker_note: "‡ — контролируемое вещество; итоги по ним приведены отдельно.",
    prescriptions_in_period: "Назначений за период",
    none: "Нет.",
    category: "Категория",
    total: "Итого",
    register_movement: "Пациенты в регистре",
    register_measures: [
        "В регистре на начало периода",
        "В регистре на конец периода",
        "Взято на учёт",
        "Снято с учёта",
        "Умерло",
    ],
    icd10_blocks: "Диагноз (блок МКБ-10)",
    age_sex: "Возраст и пол",
    all_ages: "Все возрасты",
    all_sexes: "все",
    sexes: ["муж.", "жен.", "не указан"],
    care_forms: "Форма помощи",
    needs: "Пациенты с каждой потребностью",
    needs_note: "У пациента может быть несколько потребностей, поэтому итога нет.",
    medicament_needs: "Потребность в препаратах (назначенное количество)",
    patients: "пациентов",
    hidden: "скрыто",
    notes: "Примечания",
};

pub(crate) fn labels(locale: Locale) -> &'static Labels {
    match locale {
        Locale::En => &EN,
        Locale::Ru => &RU,
    }
}

pub(crate) fn format_date(date: NaiveDate, locale: Locale) -> String {
    match locale {
        Locale::En => date.format("%Y-%m-%d").to_string(),
        Locale::Ru => date.format("%d.%m.%Y").to_string(),
    }
}

pub(crate) fn format_timestamp(at: NaiveDateTime, locale: Locale) -> String {
    match locale {
        Locale::En => at.format("%Y-%m-%d %H:%M UTC").to_string(),
        Locale::Ru => at.format("%d.%m.%Y %H:%M UTC").to_string(),
    }
}

/// A prescription's route of administration (the API's code) in the report's language; an
/// unknown code is shown as it is.
pub(crate) fn route(code: &str, locale: Locale) -> &str {
    if locale == Locale::En {
        return code;
    }
    match code {
        "oral" => "внутрь",
        "sublingual" => "под язык",
        "buccal" => "трансбуккально",
        "transdermal" => "трансдермально",
        "subcutaneous" => "подкожно",
        "intravenous" => "внутривенно",
        "intramuscular" => "внутримышечно",
        "rectal" => "ректально",
        "intranasal" => "интраназально",
        "inhalation" => "ингаляционно",
        "other" => "другой",
        other => other,
    }
}

/// A prescription's status (the API's code) in the report's language.
pub(crate) fn status(code: &str, locale: Locale) -> &str {
    match (locale, code) {
        (Locale::Ru, "active") => "действует",
        (Locale::Ru, "completed") => "завершено",
        (Locale::Ru, "cancelled") => "отменено",
        (_, other) => other,
    }
}

/// A medicament's unit of account in the report's language: the units of the seeded
/// reference book (English words) have Russian abbreviations; a unit an administrator typed
/// is shown as typed.
pub(crate) fn unit(unit: &str, locale: Locale) -> &str {
    if locale == Locale::En {
        return unit;
    }
    match unit {
        "tablet" => "таб.",
        "capsule" => "капс.",
        "ampoule" => "амп.",
        "vial" => "фл.",
        "ml" => "мл",
        "patch" => "пластырь",
        "sachet" => "саше",
        "suppository" => "супп.",
        "tube" => "туба",
        "unit" => "ЕД",
        other => other,
    }
}

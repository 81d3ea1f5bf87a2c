//! Synthetic patients: Russian-looking passports from name pools and pseudonymized records.
//! Deterministic per seed, so two runs seed the same register.

use chrono::{Duration, NaiveDate};
use client_crypto::{Passport, Sex};
use serde_json::{Value, json};

/// xorshift64*: fast, seedable, good enough for test data (not for keys).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Skewed towards the start of the range, as surnames are (a few are very common).
    pub fn skewed(&mut self, n: usize) -> usize {
        self.below(n) * self.below(n) / n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const SURNAME_ROOTS: &[&str] = &[
    "Иван",
    "Смирн",
    "Кузнец",
    "Поп",
    "Василь",
    "Петр",
    "Сокол",
    "Михайл",
    "Новик",
    "Федор",
    "Мороз",
    "Волк",
    "Алексе",
    "Лебед",
    "Семен",
    "Егор",
    "Павл",
    "Козл",
    "Степан",
    "Никола",
    "Орл",
    "Андре",
    "Макар",
    "Никит",
    "Захар",
    "Зайц",
    "Соловь",
    "Борис",
    "Яковл",
    "Григорь",
    "Роман",
    "Воробь",
    "Серге",
    "Кузьм",
    "Фрол",
    "Александр",
    "Дмитри",
    "Корол",
    "Гус",
    "Кисел",
    "Ильин",
    "Максим",
    "Поляк",
    "Сорок",
    "Виноград",
    "Ковал",
    "Бел",
    "Медвед",
    "Антон",
    "Тарас",
    "Жук",
    "Баран",
    "Филипп",
    "Комар",
    "Давыд",
    "Беля",
    "Герасим",
    "Богдан",
    "Осип",
    "Сидор",
    "Матве",
    "Тит",
    "Марк",
    "Мирон",
    "Крыл",
    "Кулик",
    "Карп",
    "Власт",
    "Мельник",
    "Денис",
    "Гаврил",
    "Тихон",
    "Казак",
    "Афанась",
    "Данил",
    "Савель",
    "Тимофе",
    "Фомин",
    "Черн",
    "Абрам",
    "Марты",
    "Ефим",
    "Федот",
    "Щерб",
    "Назар",
    "Калин",
    "Исаак",
    "Чернышё",
    "Быч",
    "Маслен",
    "Родион",
    "Коновал",
    "Лазар",
    "Воронин",
    "Клим",
    "Филат",
    "Пономар",
    "Голуб",
    "Кудрявц",
    "Прохор",
];
const SURNAME_SUFFIXES: &[(&str, &str)] = &[
    ("ов", "ова"),
    ("ев", "ева"),
    ("ин", "ина"),
    ("ский", "ская"),
    ("енко", "енко"),
];
const MALE_NAMES: &[&str] = &[
    "Александр",
    "Сергей",
    "Владимир",
    "Андрей",
    "Алексей",
    "Николай",
    "Михаил",
    "Дмитрий",
    "Иван",
    "Юрий",
    "Виктор",
    "Евгений",
    "Анатолий",
    "Олег",
    "Павел",
    "Василий",
    "Геннадий",
    "Борис",
    "Пётр",
    "Игорь",
    "Валерий",
    "Константин",
    "Григорий",
    "Леонид",
    "Фёдор",
];
const FEMALE_NAMES: &[&str] = &[
    "Елена",
    "Татьяна",
    "Ольга",
    "Наталья",
    "Ирина",
    "Светлана",
    "Галина",
    "Людмила",
    "Мария",
    "Анна",
    "Валентина",
    "Нина",
    "Любовь",
    "Надежда",
    "Вера",
    "Тамара",
    "Лидия",
    "Зинаида",
    "Екатерина",
    "Раиса",
    "Антонина",
    "Евгения",
    "Марина",
    "Алла",
    "Юлия",
];
const PATRONYMIC_ROOTS: &[&str] = &[
    "Александров",
    "Сергеев",
    "Владимиров",
    "Андреев",
    "Алексеев",
    "Николаев",
    "Михайлов",
    "Дмитриев",
    "Иванов",
    "Юрьев",
    "Викторов",
    "Петров",
    "Павлов",
    "Васильев",
    "Борисов",
    "Григорьев",
    "Фёдоров",
    "Степанов",
    "Семёнов",
    "Егоров",
];
const STREETS: &[&str] = &[
    "Ленина",
    "Мира",
    "Советская",
    "Гагарина",
    "Кирова",
    "Пушкина",
    "Садовая",
    "Молодёжная",
    "Школьная",
    "Лесная",
    "Набережная",
    "Октябрьская",
    "Комсомольская",
    "Победы",
    "Заречная",
];
const CITIES: &[&str] = &[
    "Томск",
    "Северск",
    "Асино",
    "Колпашево",
    "Стрежевой",
    "Кедровый",
    "Шегарка",
    "Кожевниково",
];

/// Reference-book ids a record can use (active entries).
#[derive(Clone, Debug)]
pub struct Books {
    pub diagnoses: Vec<i64>,
    pub districts: Vec<i64>,
    pub care_forms: Vec<i64>,
    pub needs: Vec<i64>,
    pub medicaments: Vec<i64>,
}

/// A SNILS with its check number, formatted `XXX-XXX-XXX YY`.
fn snils(rng: &mut Rng) -> String {
    let digits: Vec<u32> = (0..9).map(|_| rng.below(10) as u32).collect();
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| d * (9 - i as u32))
        .sum();
    let check = match sum {
        s if s < 100 => s,
        100 | 101 => 0,
        s => (s % 101) % 100,
    };
    let d: String = digits.iter().map(|d| char::from(b'0' + *d as u8)).collect();
    format!("{}-{}-{} {check:02}", &d[0..3], &d[3..6], &d[6..9])
}

fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect()
}

/// A passport and the record that goes with it.
pub struct Synthetic {
    pub passport: Passport,
    pub record: Value,
}

pub fn patient(rng: &mut Rng, books: &Books, today: NaiveDate) -> Synthetic {
    let male = rng.chance(48);
    let root = SURNAME_ROOTS[rng.skewed(SURNAME_ROOTS.len())];
    let (m, f) = SURNAME_SUFFIXES[rng.skewed(SURNAME_SUFFIXES.len())];
    let surname = format!("{root}{}", if male { m } else { f });
    let first = if male {
        rng.pick(MALE_NAMES)
    } else {
        rng.pick(FEMALE_NAMES)
    };
    let patronymic = format!(
        "{}{}",
        rng.pick(PATRONYMIC_ROOTS),
        if male { "ич" } else { "на" }
    );
    // Palliative patients are mostly old: birth years 1925..2005, skewed to the older end.
    let birth_year = 1925 + rng.skewed(81) as i32;
    let dob = format!(
        "{birth_year:04}-{:02}-{:02}",
        1 + rng.below(12),
        1 + rng.below(28)
    );
    let sex = if male { Sex::Male } else { Sex::Female };
    let mut passport = Passport::new(&surname, first, &dob, sex);
    passport.patronymic = Some(patronymic);
    passport.snils = Some(snils(rng));
    passport.policy_number = Some(digits(rng, 16));
    passport.phone = Some(format!(
        "+7 9{} {}-{}",
        digits(rng, 2),
        digits(rng, 3),
        digits(rng, 4)
    ));
    passport.address = Some(format!(
        "г. {}, ул. {}, д. {}, кв. {}",
        rng.pick(CITIES),
        rng.pick(STREETS),
        1 + rng.below(120),
        1 + rng.below(200)
    ));

    let registered_on = today - Duration::days(30 + rng.below(2900) as i64);
    let (status, discharged_on, deceased_on) = match rng.below(100) {
        0..70 => ("registered", None, None),
        70..85 => {
            let d = registered_on + Duration::days(rng.below(25) as i64);
            ("discharged", Some(d), None)
        }
        _ => {
            let d = registered_on + Duration::days(rng.below(25) as i64);
            ("deceased", None, Some(d))
        }
    };
    let mut needs = Vec::new();
    for _ in 0..rng.below(3) {
        let n = *rng.pick(&books.needs);
        if !needs.contains(&n) {
            needs.push(n);
        }
    }
    let record = json!({
        "sex": if male { "M" } else { "F" },
        "birth_year": birth_year,
        "district_id": (!books.districts.is_empty()).then(|| *rng.pick(&books.districts)),
        "diagnosis_id": books.diagnoses[rng.skewed(books.diagnoses.len())],
        "care_form_id": (!books.care_forms.is_empty()).then(|| *rng.pick(&books.care_forms)),
        "status": status,
        "registered_on": registered_on,
        "discharged_on": discharged_on,
        "deceased_on": deceased_on,
        "needs": needs,
    });
    Synthetic { passport, record }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snils_normalizes_to_eleven_digits() {
        let mut rng = Rng::new(7);
        for _ in 0..100 {
            let s = snils(&mut rng);
            assert_eq!(s.chars().filter(char::is_ascii_digit).count(), 11, "{s}");
        }
    }
}

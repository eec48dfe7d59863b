//! `[business]`: who the agent works for — hours, services, staff, FAQ, catalogue.

use serde::{Deserialize, Serialize};

use super::hours::DayHours;
use super::problems::Problems;
use super::validate::{check_date, check_phone, check_timezone, check_unique};

/// The business the agent answers for. With no `[business]` section at all, the demo hair
/// salon; once the section exists, its content fields (name, numbers, services, staff…) start
/// empty, so nothing of the demo leaks into a real business's profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Business {
    #[serde(default)]
    pub name: String,
    /// The numbers callers dial, E.164 (`+15555550100`).
    #[serde(default)]
    pub phone_numbers: Vec<String>,
    /// Where a human answers when the agent hands a call off, E.164. Empty: no transfers.
    #[serde(default)]
    pub transfer_number: String,
    /// IANA time zone the hours are in (`America/New_York`).
    pub timezone: String,
    #[serde(default)]
    pub address: String,
    /// Folder with the seed data (calendars, orders), relative to the config file.
    pub data_dir: String,
    pub hours: WeeklyHours,
    /// Days that differ from the weekly hours: holidays, late openings.
    #[serde(default)]
    pub exceptions: Vec<HoursException>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub staff: Vec<Staff>,
    #[serde(default)]
    pub faq: Vec<Faq>,
    /// Products the business sells (and orders can contain).
    #[serde(default)]
    pub catalogue: Vec<CatalogueItem>,
}

/// Opening hours per weekday: `"09:00-17:00"`, `"09:00-12:00, 13:00-17:00"` or `"closed"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeeklyHours {
    pub monday: String,
    pub tuesday: String,
    pub wednesday: String,
    pub thursday: String,
    pub friday: String,
    pub saturday: String,
    pub sunday: String,
}

impl Default for WeeklyHours {
    fn default() -> Self {
        let open = || "09:00-17:00".to_string();
        WeeklyHours {
            monday: "closed".into(),
            tuesday: open(),
            wednesday: open(),
            thursday: "09:00-12:00, 13:00-19:00".into(),
            friday: "09:00-19:00".into(),
            saturday: "09:00-15:00".into(),
            sunday: "closed".into(),
        }
    }
}

impl WeeklyHours {
    /// `(name, text)` for Monday to Sunday.
    pub fn days(&self) -> [(&'static str, &str); 7] {
        [
            ("monday", &self.monday),
            ("tuesday", &self.tuesday),
            ("wednesday", &self.wednesday),
            ("thursday", &self.thursday),
            ("friday", &self.friday),
            ("saturday", &self.saturday),
            ("sunday", &self.sunday),
        ]
    }

    /// Hours for a weekday, 0 = Monday. Closed if the text does not parse (check-config
    /// reports that before a call ever asks).
    pub fn for_weekday(&self, monday_based: usize) -> DayHours {
        DayHours::parse(self.days()[monday_based % 7].1).unwrap_or_default()
    }
}

/// A date whose hours differ from the week's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HoursException {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Same format as the weekly hours.
    pub hours: String,
    /// What the agent may say about it ("Christmas Day").
    pub note: String,
}

/// Something the business books: a haircut, a consultation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Service {
    /// Short id used by staff lists and tools (`cut`).
    pub id: String,
    pub name: String,
    pub duration_minutes: u32,
    /// Price in the business's currency, e.g. `35.00`.
    pub price: f64,
    pub description: String,
}

/// A person whose calendar takes bookings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Staff {
    pub id: String,
    pub name: String,
    /// Ids of the services this person performs.
    pub services: Vec<String>,
    /// Their calendar file in `data_dir` (`calendars/ana.json`).
    pub calendar: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faq {
    pub question: String,
    pub answer: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogueItem {
    pub sku: String,
    pub name: String,
    pub price: f64,
}

impl Default for Business {
    fn default() -> Self {
        let service = |id: &str, name: &str, minutes, price, description: &str| Service {
            id: id.into(),
            name: name.into(),
            duration_minutes: minutes,
            price,
            description: description.into(),
        };
        let staff = |id: &str, name: &str, services: &[&str]| Staff {
            id: id.into(),
            name: name.into(),
            services: services.iter().map(|s| s.to_string()).collect(),
            calendar: format!("calendars/{id}.json"),
        };
        Business {
            name: "Maple Street Hair".into(),
            phone_numbers: vec!["+15555550100".into()],
            transfer_number: "+15555550199".into(),
            timezone: "America/New_York".into(),
            address: "12 Maple Street, Springfield".into(),
            data_dir: "data".into(),
            hours: WeeklyHours::default(),
            exceptions: vec![HoursException {
                date: "2026-12-25".into(),
                hours: "closed".into(),
                note: "Christmas Day".into(),
            }],
            services: vec![
                service("cut", "Haircut", 45, 35.0, "Wash, cut and style."),
                service("color", "Colour", 90, 85.0, "Full colour, includes a cut."),
                service("beard", "Beard trim", 20, 15.0, "Shape and trim."),
            ],
            staff: vec![
                staff("ana", "Ana", &["cut", "color"]),
                staff("ben", "Ben", &["cut", "beard"]),
            ],
            faq: vec![Faq {
                question: "Do you take walk-ins?".into(),
                answer: "Yes, when a stylist is free, but booking ahead is the surest way in."
                    .into(),
            }],
            catalogue: vec![CatalogueItem {
                sku: "SHAMPOO-250".into(),
                name: "Argan shampoo, 250 ml".into(),
                price: 18.5,
            }],
        }
    }
}

impl Business {
    /// The hours on `date`: its exception if it has one (and that exception), else its
    /// weekday's.
    pub fn hours_on(&self, date: jiff::civil::Date) -> (DayHours, Option<&HoursException>) {
        let iso = date.to_string();
        match self.exceptions.iter().find(|e| e.date == iso) {
            Some(ex) => (DayHours::parse(&ex.hours).unwrap_or_default(), Some(ex)),
            None => (self.hours.for_weekday(date.weekday().to_monday_zero_offset() as usize), None),
        }
    }

    pub(super) fn check(&self, p: &mut Problems) {
        if self.name.trim().is_empty() {
            p.push("business.name", "is empty; the agent introduces the business by this name");
        }
        for (i, number) in self.phone_numbers.iter().enumerate() {
            check_phone(p, &format!("business.phone_numbers[{i}]"), number);
        }
        if !self.transfer_number.is_empty() {
            check_phone(p, "business.transfer_number", &self.transfer_number);
        }
        check_timezone(p, "business.timezone", &self.timezone);
        for (day, text) in self.hours.days() {
            if let Err(e) = DayHours::parse(text) {
                p.push(format!("business.hours.{day}"), e);
            }
        }
        for (i, ex) in self.exceptions.iter().enumerate() {
            let path = format!("business.exceptions[{i}]");
            check_date(p, &format!("{path}.date"), &ex.date);
            if let Err(e) = DayHours::parse(&ex.hours) {
                p.push(format!("{path}.hours"), e);
            }
        }
        check_unique(
            p,
            "business.exceptions",
            "date",
            self.exceptions.iter().map(|e| e.date.as_str()),
        );
        self.check_services(p);
    }

    fn check_services(&self, p: &mut Problems) {
        for (i, s) in self.services.iter().enumerate() {
            let path = format!("business.services[{i}]");
            if s.id.trim().is_empty() {
                p.push(format!("{path}.id"), "is empty; staff and tools refer to services by id");
            }
            if s.duration_minutes == 0 || s.duration_minutes > 12 * 60 {
                p.push(
                    format!("{path}.duration_minutes"),
                    format!("{} is outside 1-720 minutes", s.duration_minutes),
                );
            }
            check_price(p, &format!("{path}.price"), s.price);
        }
        check_unique(p, "business.services", "id", self.services.iter().map(|s| s.id.as_str()));
        for (i, person) in self.staff.iter().enumerate() {
            let path = format!("business.staff[{i}]");
            if person.name.trim().is_empty() {
                p.push(format!("{path}.name"), "is empty");
            }
            for (j, id) in person.services.iter().enumerate() {
                if !self.services.iter().any(|s| &s.id == id) {
                    let known: Vec<&str> = self.services.iter().map(|s| s.id.as_str()).collect();
                    p.push(
                        format!("{path}.services[{j}]"),
                        format!("{id:?} is not a service id (known: {})", known.join(", ")),
                    );
                }
            }
        }
        check_unique(p, "business.staff", "id", self.staff.iter().map(|s| s.id.as_str()));
        for (i, item) in self.catalogue.iter().enumerate() {
            check_price(p, &format!("business.catalogue[{i}].price"), item.price);
        }
        check_unique(p, "business.catalogue", "sku", self.catalogue.iter().map(|c| c.sku.as_str()));
    }
}

fn check_price(p: &mut Problems, path: &str, price: f64) {
    if !price.is_finite() || price < 0.0 {
        p.push(path, format!("{price} is not a price (a number of at least 0, like 35.00)"));
    } else if ((price * 100.0).round() - price * 100.0).abs() > 1e-6 {
        p.push(path, format!("{price} has more than two decimal places"));
    }
}

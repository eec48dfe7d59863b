//! The business's seed files, read once and shared by both stores: staff calendars
//! (`data_dir/calendars/*.json`, named by each person's `calendar`) and `data_dir/orders.json`.
//! A file that is missing or not JSON is skipped: seeding is a convenience, never a reason
//! not to start.

use std::path::Path;

use hermes_core::config::Business;

pub(super) struct SeedAppointment {
    /// Stable, so seeding again changes nothing.
    pub id: String,
    pub staff: String,
    pub service: String,
    /// `YYYY-MM-DDTHH:MM`
    pub start: String,
    pub minutes: i32,
    pub customer: String,
    pub phone: String,
}

pub(super) struct SeedOrder {
    pub id: String,
    pub phone: String,
    pub status: String,
    pub placed: Option<String>,
    pub eta: Option<String>,
    pub items: serde_json::Value,
}

pub(super) struct SeedData {
    pub appointments: Vec<SeedAppointment>,
    pub orders: Vec<SeedOrder>,
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

impl SeedData {
    pub fn read(business: &Business, data_dir: &Path) -> SeedData {
        let mut appointments = Vec::new();
        for person in &business.staff {
            let Some(json) = read_json(&data_dir.join(&person.calendar)) else { continue };
            for a in json["appointments"].as_array().into_iter().flatten() {
                let (Some(start), Some(service)) = (a["start"].as_str(), a["service"].as_str())
                else {
                    continue;
                };
                let minutes = business
                    .services
                    .iter()
                    .find(|s| s.id == service)
                    .map_or(30, |s| s.duration_minutes as i32);
                appointments.push(SeedAppointment {
                    id: format!("seed-{}-{start}", person.id),
                    staff: person.id.clone(),
                    service: service.to_string(),
                    start: start.to_string(),
                    minutes,
                    customer: a["customer"].as_str().unwrap_or("").to_string(),
                    phone: a["phone"].as_str().unwrap_or("").to_string(),
                });
            }
        }
        let mut orders = Vec::new();
        if let Some(json) = read_json(&data_dir.join("orders.json")) {
            for o in json["orders"].as_array().into_iter().flatten() {
                let Some(id) = o["id"].as_str() else { continue };
                orders.push(SeedOrder {
                    id: id.to_string(),
                    phone: o["phone"].as_str().unwrap_or("").to_string(),
                    status: o["status"].as_str().unwrap_or("received").to_string(),
                    placed: o["placed"].as_str().map(String::from),
                    eta: o["eta"].as_str().map(String::from),
                    items: match &o["items"] {
                        serde_json::Value::Null => serde_json::json!([]),
                        items => items.clone(),
                    },
                });
            }
        }
        SeedData { appointments, orders }
    }
}

//! For each file given, one line per reading, tab-separated: the path, the
//! reading (`VALUE`: a `serde_json::Value` written back, or its error; `ORDER`:
//! the inventory's `Order` struct; `NOTED`: a struct with an `Option` field),
//! and the outcome.
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Order {
    order_id: String,
    items: Vec<OrderItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct OrderItem {
    product_id: String,
    quantity: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Noted {
    order_id: String,
    items: Vec<OrderItem>,
    note: Option<String>,
}

fn outcome<T>(result: serde_json::Result<T>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => format!("ERR {e}"),
    }
}

fn main() {
    for path in std::env::args().skip(1) {
        let data = std::fs::read(&path).expect("readable file");
        let value = match serde_json::from_slice::<serde_json::Value>(&data) {
            Ok(v) => String::from_utf8(serde_json::to_vec(&v).expect("encodable")).expect("UTF-8"),
            Err(e) => format!("ERR {e}"),
        };
        println!("{path}\tVALUE\t{value}");
        println!("{path}\tORDER\t{}", outcome(serde_json::from_slice::<Order>(&data)));
        println!("{path}\tNOTED\t{}", outcome(serde_json::from_slice::<Noted>(&data)));
    }
}

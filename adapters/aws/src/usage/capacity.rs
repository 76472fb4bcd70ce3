//! DynamoDB's capacity, estimated from a request and read from its answer.

use super::*;

/// The units of a `ConsumedCapacity` (one object, or a list for batches and transactions).
pub(super) fn reported_capacity(consumed: Option<&Value>) -> f64 {
    let units = |c: &Value| {
        c.get("CapacityUnits")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    match consumed {
        Some(Value::Array(list)) => list.iter().map(units).sum(),
        Some(c) => units(c),
        None => 0.0,
    }
}

/// Read units per 4 KB for a request.
pub(super) fn dynamo_read_factor(operation: &str, fields: &serde_json::Map<String, Value>) -> f64 {
    let consistent = |f: &serde_json::Map<String, Value>| {
        f.get("ConsistentRead").and_then(Value::as_bool) == Some(true)
    };
    match operation {
        "TransactGetItems" => 2.0,
        "BatchGetItem" => {
            let any_consistent = fields
                .get("RequestItems")
                .and_then(Value::as_object)
                .is_some_and(|tables| tables.values().filter_map(Value::as_object).any(consistent));
            if any_consistent { 1.0 } else { 0.5 }
        }
        _ if consistent(fields) => 1.0,
        _ => 0.5,
    }
}

/// Base-table write units a request costs, from the items it carries.
pub(super) fn dynamo_write_units(operation: &str, fields: &serde_json::Map<String, Value>) -> f64 {
    let kb = |item: Option<&Value>| item.map_or(1, |i| item_size(i).div_ceil(1024).max(1)) as f64;
    match operation {
        "PutItem" => kb(fields.get("Item")),
        "UpdateItem" | "DeleteItem" => 1.0,
        "BatchWriteItem" => fields
            .get("RequestItems")
            .and_then(Value::as_object)
            .map_or(0.0, |tables| {
                tables
                    .values()
                    .filter_map(Value::as_array)
                    .flatten()
                    .map(|w| kb(w.pointer("/PutRequest/Item")))
                    .sum()
            }),
        "TransactWriteItems" => fields
            .get("TransactItems")
            .and_then(Value::as_array)
            .map_or(0.0, |items| {
                items.iter().map(|w| 2.0 * kb(w.pointer("/Put/Item"))).sum()
            }),
        _ => 0.0,
    }
}

/// Read units per strongly consistent read of the items a response carries, before the
/// request's factor: `GetItem` and each `BatchGetItem` item round up per item to 4 KB; a
/// `Query` or `Scan` rounds up its total.
pub(super) fn dynamo_read_units(fields: &serde_json::Map<String, Value>) -> f64 {
    let units = |bytes: usize| bytes.div_ceil(4096).max(1) as f64;
    if let Some(item) = fields.get("Item") {
        return units(item_size(item));
    }
    if let Some(Value::Array(items)) = fields.get("Items") {
        return units(items.iter().map(item_size).sum());
    }
    if let Some(Value::Object(tables)) = fields.get("Responses") {
        return tables
            .values()
            .filter_map(Value::as_array)
            .flatten()
            .map(|item| units(item_size(item)))
            .sum();
    }
    if let Some(Value::Array(items)) = fields.get("Responses") {
        // TransactGetItems: a list of `{"Item": ...}`.
        return items
            .iter()
            .filter_map(|r| r.get("Item"))
            .map(|item| units(item_size(item)))
            .sum();
    }
    0.0
}

/// The items a read's response carries (`GetItem`'s, and `BatchGetItem`'s).
pub(super) fn items_read(fields: &serde_json::Map<String, Value>) -> Vec<&Value> {
    let mut items: Vec<&Value> = fields.get("Item").into_iter().collect();
    if let Some(Value::Object(tables)) = fields.get("Responses") {
        items.extend(tables.values().filter_map(Value::as_array).flatten());
    }
    items
}

/// An item's size as DynamoDB counts it, from its wire form (`{"name": {"S": "..."}}`):
/// attribute names plus values, with the per-type overheads of the documented rules.
pub fn item_size(item: &Value) -> usize {
    item.as_object().map_or(0, |attributes| {
        attributes
            .iter()
            .map(|(name, value)| name.len() + value_size(value))
            .sum()
    })
}

pub(super) fn value_size(value: &Value) -> usize {
    let Some((kind, v)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    let number = |n: &Value| {
        let digits = n.as_str().map_or(0, |s| {
            s.trim_start_matches(['-', '0'])
                .chars()
                .filter(char::is_ascii_digit)
                .count()
        });
        digits.div_ceil(2) + 1
    };
    let binary = |b: &Value| b.as_str().map_or(0, |s| s.len() / 4 * 3);
    let text = |s: &Value| s.as_str().map_or(0, str::len);
    let each = |v: &Value, f: &dyn Fn(&Value) -> usize| {
        v.as_array().map_or(0, |items| items.iter().map(f).sum())
    };
    match kind.as_str() {
        "S" => text(v),
        "N" => number(v),
        "B" => binary(v),
        "BOOL" | "NULL" => 1,
        "SS" => each(v, &text),
        "NS" => each(v, &number),
        "BS" => each(v, &binary),
        "L" => 3 + each(v, &|e| 1 + value_size(e)),
        "M" => {
            3 + v.as_object().map_or(0, |m| {
                m.iter().map(|(k, e)| 1 + k.len() + value_size(e)).sum()
            })
        }
        _ => 0,
    }
}

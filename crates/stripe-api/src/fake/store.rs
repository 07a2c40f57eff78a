//! The fake's data: collections kept in Stripe's list order, and expansion.

use serde_json::Value;

use super::params::{Created, FakeError, Paging};

/// One stored object and its insertion number (ties in `created` list newest-inserted first).
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub(super) seq: u64,
    pub(super) created: i64,
    pub(super) value: Value,
}

impl Item {
    fn id(&self) -> &str {
        self.value.get("id").and_then(Value::as_str).unwrap_or_default()
    }

    /// Stripe's list order is newest first: a larger key comes first.
    fn key(&self) -> (i64, u64) {
        (self.created, self.seq)
    }
}

/// The objects of one kind.
#[derive(Debug, Default)]
pub(super) struct Collection {
    items: Vec<Item>,
}

impl Collection {
    /// Inserts, or replaces by id; `keep_position` keeps a replaced object's insertion number.
    pub(super) fn put(&mut self, value: Value, seq: u64, keep_position: bool) {
        let id = object_id(&value);
        let created = value.get("created").and_then(Value::as_i64).unwrap_or(0);
        match self.items.iter().position(|item| item.id() == id) {
            Some(i) if keep_position => {
                self.items[i].value = value;
                self.items[i].created = created;
            }
            Some(i) => {
                self.items.remove(i);
                self.items.push(Item { seq, created, value });
            }
            None => self.items.push(Item { seq, created, value }),
        }
    }

    pub(super) fn remove(&mut self, id: &str) -> bool {
        let before = self.items.len();
        self.items.retain(|item| item.id() != id);
        self.items.len() != before
    }

    pub(super) fn get(&self, id: &str) -> Option<&Value> {
        self.items.iter().find(|item| item.id() == id).map(|item| &item.value)
    }

    /// Every object, newest first (`created` desc, then insertion desc).
    pub(super) fn sorted(&self) -> Vec<&Item> {
        let mut items: Vec<&Item> = self.items.iter().collect();
        items.sort_by_key(|item| std::cmp::Reverse(item.key()));
        items
    }

    /// One page of the objects that pass `keep`, Stripe's way: newest first, `limit` of
    /// them after `starting_after` (or just before `ending_before`), and whether more
    /// follow in that direction. A cursor is placed by its position in the whole list,
    /// so a cursor that the filter excludes still works, as on Stripe.
    pub(super) fn page(
        &self,
        noun: &str,
        paging: &Paging,
        created: &Created,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<(Vec<Value>, bool), FakeError> {
        let sorted = self.sorted();
        let cursor_key = |id: &str, param: &str| {
            sorted.iter().find(|item| item.id() == id).map(|item| item.key()).ok_or_else(|| {
                FakeError::invalid(format!("No such {noun}: '{id}'")).code("resource_missing").param(param)
            })
        };
        let matching = sorted.iter().filter(|item| created.accepts(item.created) && keep(&item.value));
        let limit = paging.limit;
        if let Some(id) = &paging.ending_before {
            let cursor = cursor_key(id, "ending_before")?;
            let before: Vec<&&Item> = matching.filter(|item| item.key() > cursor).collect();
            let start = before.len().saturating_sub(limit);
            let page = before[start..].iter().map(|item| item.value.clone()).collect();
            return Ok((page, start > 0));
        }
        let after: Vec<&&Item> = match &paging.starting_after {
            Some(id) => {
                let cursor = cursor_key(id, "starting_after")?;
                matching.filter(|item| item.key() < cursor).collect()
            }
            None => matching.collect(),
        };
        let page = after.iter().take(limit).map(|item| item.value.clone()).collect();
        Ok((page, after.len() > limit))
    }
}

/// The `id` of an object handed to the fake; a test that forgets it gets told at once.
pub(super) fn object_id(value: &Value) -> String {
    match value.get("id").and_then(Value::as_str) {
        Some(id) => id.to_owned(),
        None => panic!("fake Stripe: every object needs a string \"id\", got {value}"),
    }
}

/// Replaces the id at `path` (dot-separated, through objects, arrays and lists' `data`)
/// by the object `lookup` finds, as Stripe's `expand[]` does.
pub(super) fn expand(value: &mut Value, path: &str, lookup: &dyn Fn(&str) -> Option<Value>) -> Result<(), FakeError> {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) || segments.len() > 4 {
        return Err(cannot_expand(path));
    }
    expand_at(value, &segments, path, lookup)
}

fn expand_at(
    value: &mut Value,
    segments: &[&str],
    path: &str,
    lookup: &dyn Fn(&str) -> Option<Value>,
) -> Result<(), FakeError> {
    let Some((head, rest)) = segments.split_first() else {
        return Ok(());
    };
    match value {
        Value::Array(items) => items.iter_mut().try_for_each(|item| expand_at(item, segments, path, lookup)),
        Value::Object(map) => {
            let field = map.get_mut(*head).ok_or_else(|| cannot_expand(path))?;
            if !rest.is_empty() {
                return expand_at(field, rest, path, lookup);
            }
            match field {
                Value::String(id) => {
                    let found = lookup(id).ok_or_else(|| {
                        FakeError::invalid(format!("fake Stripe holds no object {id:?} to expand {path}"))
                    })?;
                    *field = found;
                    Ok(())
                }
                // Already an object, or null (nothing to expand): as Stripe, left as is.
                Value::Object(_) | Value::Null => Ok(()),
                _ => Err(cannot_expand(path)),
            }
        }
        Value::Null => Ok(()),
        _ => Err(cannot_expand(path)),
    }
}

fn cannot_expand(path: &str) -> FakeError {
    FakeError::invalid(format!("This property cannot be expanded ({path})."))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ids(values: &[Value]) -> Vec<&str> {
        values.iter().map(|v| v["id"].as_str().unwrap_or_default()).collect()
    }

    fn collection() -> Collection {
        let mut c = Collection::default();
        for (seq, (id, created)) in [("a", 10), ("b", 20), ("c", 20), ("d", 30), ("e", 5)].into_iter().enumerate() {
            c.put(json!({"id": id, "created": created}), seq as u64, true);
        }
        c
    }

    fn paging(limit: usize, after: Option<&str>, before: Option<&str>) -> Paging {
        Paging { limit, starting_after: after.map(Into::into), ending_before: before.map(Into::into) }
    }

    #[test]
    fn newest_first_ties_by_insertion() {
        let c = collection();
        let (page, more) = c.page("event", &paging(10, None, None), &Created::default(), |_| true).expect("page");
        assert_eq!(ids(&page), ["d", "c", "b", "a", "e"]);
        assert!(!more);
    }

    #[test]
    fn cursors_both_ways() {
        let c = collection();
        let all = Created::default();
        let (page, more) = c.page("event", &paging(2, Some("c"), None), &all, |_| true).expect("page");
        assert_eq!((ids(&page), more), (vec!["b", "a"], true));
        let (page, more) = c.page("event", &paging(2, None, Some("a")), &all, |_| true).expect("page");
        assert_eq!((ids(&page), more), (vec!["c", "b"], true));
        let (page, more) = c.page("event", &paging(5, None, Some("a")), &all, |_| true).expect("page");
        assert_eq!((ids(&page), more), (vec!["d", "c", "b"], false));
        let err = c.page("event", &paging(2, Some("zz"), None), &all, |_| true).expect_err("unknown cursor");
        assert_eq!(err.status, 400);
        // A cursor the filter excludes still places the page.
        let (page, _) = c.page("event", &paging(5, Some("c"), None), &all, |v| v["id"] != "b").expect("page");
        assert_eq!(ids(&page), ["a", "e"]);
    }

    #[test]
    fn replacing_keeps_or_moves_the_position() {
        let mut c = collection();
        c.put(json!({"id": "b", "created": 20, "v": 2}), 100, true);
        let (page, _) = c.page("x", &paging(10, None, None), &Created::default(), |_| true).expect("page");
        assert_eq!(ids(&page), ["d", "c", "b", "a", "e"]);
        c.put(json!({"id": "b", "created": 20, "v": 3}), 101, false);
        let (page, _) = c.page("x", &paging(10, None, None), &Created::default(), |_| true).expect("page");
        assert_eq!(ids(&page), ["d", "b", "c", "a", "e"]);
        assert_eq!(c.get("b").map(|v| v["v"].clone()), Some(json!(3)));
        assert!(c.remove("b"));
        assert!(!c.remove("b"));
    }

    #[test]
    fn expands_through_objects_arrays_and_lists() {
        let lookup = |id: &str| (id == "cus_1" || id == "prod_1").then(|| json!({"id": id, "object": "x"}));
        let mut sub =
            json!({"customer": "cus_1", "items": {"object": "list", "data": [{"price": {"product": "prod_1"}}]}});
        expand(&mut sub, "customer", &lookup).expect("customer");
        expand(&mut sub, "items.data.price.product", &lookup).expect("product");
        assert_eq!(sub["customer"]["object"], "x");
        assert_eq!(sub["items"]["data"][0]["price"]["product"]["id"], "prod_1");
        expand(&mut sub, "customer", &lookup).expect("expanding twice is harmless");
        assert!(expand(&mut sub, "nope", &lookup).is_err());
        let mut other = json!({"customer": "cus_unknown"});
        assert!(expand(&mut other, "customer", &lookup).is_err());
    }
}

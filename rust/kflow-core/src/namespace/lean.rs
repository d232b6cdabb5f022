//! Listings decoded leanly: only the fields a row shows are read into memory (serde skips the
//! rest of each object without building it), so a page of 500 training jobs with their pod
//! templates and run-record annotations costs little more than the bytes on the wire. An
//! object whose fields have unexpected types still gives a row: the page is read again as
//! plain JSON and each odd item keeps what can be read of it.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// A kind of object a lean listing reads.
pub(super) trait LeanObject: DeserializeOwned {
    /// What can be read of an item whose fields do not have the expected types.
    fn from_odd(item: &Value) -> Self;
}

/// One page of a list response.
pub(super) struct LeanPage<T> {
    pub items: Vec<T>,
    /// The API server's `continue` token; `None` on the last page.
    pub next: Option<String>,
    /// How many items come after this page, when the API server says (`remainingItemCount`).
    pub remaining: Option<u64>,
}

impl<T> LeanPage<T> {
    /// How many items the collection has, from its first page; `None` when the API server
    /// does not say.
    pub fn total_from_first(&self) -> Option<u64> {
        let here = self.items.len() as u64;
        match (&self.next, self.remaining) {
            (None, _) => Some(here),
            (Some(_), Some(more)) => Some(here + more),
            (Some(_), None) => None,
        }
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Deserialize, Default)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    continue_token: Option<String>,
    #[serde(rename = "remainingItemCount", default)]
    remaining_item_count: Option<u64>,
}

/// Decodes a list response body; never fails on odd items (only on a body that is no list).
pub(super) fn decode_page<T: LeanObject>(body: &str) -> serde_json::Result<LeanPage<T>> {
    let (items, meta) = match serde_json::from_str::<Envelope<T>>(body) {
        Ok(page) => (page.items, page.metadata),
        Err(_) => {
            let page: Envelope<Value> = serde_json::from_str(body)?;
            let items = page
                .items
                .iter()
                .map(|item| T::deserialize(item).unwrap_or_else(|_| T::from_odd(item)))
                .collect();
            (items, page.metadata)
        }
    };
    Ok(LeanPage {
        items,
        next: meta.continue_token.filter(|t| !t.is_empty()),
        remaining: meta.remaining_item_count,
    })
}

/// The metadata every row shows.
#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct LeanMeta {
    pub name: String,
    pub creation_timestamp: Option<String>,
    pub deletion_timestamp: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub owner_references: Vec<LeanOwner>,
}

impl LeanMeta {
    /// Name and times of an odd object, read from plain JSON.
    pub fn from_value(item: &Value) -> LeanMeta {
        LeanMeta::deserialize(&item["metadata"]).unwrap_or_else(|_| LeanMeta {
            name: item["metadata"]["name"].as_str().unwrap_or_default().into(),
            ..Default::default()
        })
    }
}

/// An owner reference: which object a ConfigMap or pod belongs to.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct LeanOwner {
    pub kind: String,
    pub name: String,
}

/// The length of a string value, read without copying it (a ConfigMap's data can be a
/// megabyte per key; a listing only shows the size).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ByteLen(pub u64);

impl<'de> Deserialize<'de> for ByteLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteLen, D::Error> {
        struct Len;
        impl Visitor<'_> for Len {
            type Value = ByteLen;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, v: &str) -> Result<ByteLen, E> {
                Ok(ByteLen(v.len() as u64))
            }
        }
        d.deserialize_str(Len)
    }
}

/// The size of base64 `text` once decoded, from its encoded length.
pub(super) fn decoded_len(encoded: u64, padding: u64) -> u64 {
    (encoded / 4 * 3).saturating_sub(padding)
}

/// A `binaryData` value: its decoded size, without decoding it. Padding is not known from the
/// length alone; at most two bytes off, which a size column can bear.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Base64Len(pub u64);

impl<'de> Deserialize<'de> for Base64Len {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Base64Len, D::Error> {
        struct Len;
        impl Visitor<'_> for Len {
            type Value = Base64Len;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E>(self, v: &str) -> Result<Base64Len, E> {
                let padding = v.bytes().rev().take_while(|b| *b == b'=').count() as u64;
                Ok(Base64Len(decoded_len(v.len() as u64, padding)))
            }
        }
        d.deserialize_str(Len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Row {
        metadata: LeanMeta,
        #[serde(default)]
        size: Option<u64>,
    }

    impl LeanObject for Row {
        fn from_odd(item: &Value) -> Row {
            Row {
                metadata: LeanMeta::from_value(item),
                size: None,
            }
        }
    }

    #[test]
    fn odd_items_keep_their_rows() {
        let body = r#"{"metadata":{"continue":"abc"},"items":[
            {"metadata":{"name":"a"},"size":3},
            {"metadata":{"name":"b"},"size":"three"},
            {"metadata":{"name":"c","labels":{"x":"y"}},"extra":{"deep":[1,2]}}]}"#;
        let page = decode_page::<Row>(body).unwrap();
        let names: Vec<_> = page
            .items
            .iter()
            .map(|r| r.metadata.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(page.items[0].size, Some(3));
        assert_eq!(page.items[1].size, None);
        assert_eq!(page.next.as_deref(), Some("abc"));
        let last = decode_page::<Row>(r#"{"metadata":{"continue":""},"items":[]}"#).unwrap();
        assert!(last.next.is_none() && last.items.is_empty());
    }

    #[test]
    fn sizes_without_copies() {
        #[derive(Deserialize)]
        struct Sizes {
            text: ByteLen,
            bin: Base64Len,
        }
        let s: Sizes = serde_json::from_str(r#"{"text":"héllo","bin":"aGVsbG8="}"#).unwrap();
        assert_eq!((s.text.0, s.bin.0), (6, 5));
    }
}

//! PATCH semantics: a field left out keeps its value, `null` clears it, a value replaces it.

use serde::{Deserialize, Deserializer};

/// Deserializes a present field (even `null`) as `Some(..)`; with `#[serde(default)]` an absent
/// field stays `None`. So `Option<Option<T>>` tells "absent" from "null".
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

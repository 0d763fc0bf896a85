//! The page envelope of AvePoint's paged lists, and the other shapes a
//! list arrives in (a bare array, `"data": null`, no `metadata`).

use serde::Deserialize;

/// A page of a paged endpoint: `{"data": [...], "metadata": {...}}`.
///
/// Also read: a bare array (the coverage overview answered so before
/// December 2025, and deployments that lag may still), which is the whole
/// list on one page; `"data": null`, an empty page; and a missing
/// `metadata`, which means this page is all there is.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// Items of this page.
    pub data: Vec<T>,
    /// Paging information.
    pub metadata: PageMetadata,
    /// Whether the answer was the whole list (a bare list, or no
    /// `metadata`): the page size asked for does not apply to it.
    pub whole: bool,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Page<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A visitor rather than an untagged enum: an item that fails keeps
        // its own error message (which field, what was expected).
        struct PageVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for PageVisitor<T> {
            type Value = Page<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a page {\"data\": [...], \"metadata\": {...}} or a list")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut items: A,
            ) -> Result<Page<T>, A::Error> {
                let mut data = Vec::new();
                while let Some(item) = items.next_element()? {
                    data.push(item);
                }
                Ok(Page::whole(data))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Page<T>, A::Error> {
                let (mut data, mut metadata) = (None, None);
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "data" => data = map.next_value::<Option<Vec<T>>>()?,
                        "metadata" => metadata = map.next_value::<Option<PageMetadata>>()?,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                let page = Page::whole(data.unwrap_or_default());
                Ok(match metadata {
                    Some(metadata) => Page {
                        metadata,
                        whole: false,
                        ..page
                    },
                    None => page,
                })
            }
        }
        deserializer.deserialize_any(PageVisitor(std::marker::PhantomData))
    }
}

impl<T> Page<T> {
    /// A page that holds the whole list.
    fn whole(data: Vec<T>) -> Self {
        let count = data.len();
        Page {
            metadata: PageMetadata {
                page_index: 1,
                page_size: u32::try_from(count).unwrap_or(u32::MAX),
                total_count: count as u64,
            },
            data,
            whole: true,
        }
    }
}

/// Paging information of a page.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageMetadata {
    /// 1-based page index.
    #[serde(default)]
    pub page_index: u32,
    /// Items per page.
    #[serde(default)]
    pub page_size: u32,
    /// Items over all pages.
    pub total_count: u64,
}

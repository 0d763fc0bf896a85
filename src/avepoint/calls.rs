//! The typed calls: one for every paged list, one for every single
//! object, each driven by its endpoint's data (`endpoint.rs`): path,
//! method, description. Retries, back-off, pacing and bounds are the
//! client's (`client.rs`); fields that could not be read are counted here,
//! once per page, for every list alike.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::client::ApiClient;
use super::destination::Destination;
use super::endpoint::{ApiEndpoint, Get, Method, Paged, fill};
use super::error::ApiError;
use super::lenient::UnreadableFields;
use super::page::Page;

impl ApiClient {
    /// One page of `list` for `ids` (its path's placeholders, in order),
    /// retried once like [`ApiClient::scan_profile`] within the request
    /// timeout; a POST list is sent `{}` (every item).
    pub async fn page<T, const IDS: usize>(
        &self,
        list: Paged<T, IDS>,
        ids: [&str; IDS],
        page_index: u32,
        page_size: u32,
    ) -> Result<Page<T>, ApiError>
    where
        T: DeserializeOwned + UnreadableFields + Send + 'static,
    {
        let body = serde_json::json!({});
        self.filtered_page(list, ids, &body, page_index, page_size)
            .await
    }

    /// [`ApiClient::page`] with a filter as the POST body (the backup job
    /// list's `{"jobType": n}`).
    pub async fn filtered_page<T, const IDS: usize>(
        &self,
        list: Paged<T, IDS>,
        ids: [&str; IDS],
        filter: &serde_json::Value,
        page_index: u32,
        page_size: u32,
    ) -> Result<Page<T>, ApiError>
    where
        T: DeserializeOwned + UnreadableFields + Send + 'static,
    {
        let mut url = self.endpoint_url(list.endpoint, &ids);
        url.query_pairs_mut()
            .append_pair("pageIndex", &page_index.to_string())
            .append_pair("pageSize", &page_size.to_string());
        let body = (list.endpoint.method() == Method::Post).then_some(filter);
        let deadline = Instant::now() + self.request_timeout;
        let page: Page<T> = self
            .call_with_retry(
                list.endpoint,
                &Arc::new(Destination::new(url)),
                body,
                deadline,
            )
            .await?;
        for item in &page.data {
            for field in item.unreadable_fields() {
                self.metrics.observe_unreadable_field(list.endpoint, field);
            }
        }
        Ok(page)
    }

    /// The one object `one` answers with for `ids`, retried, paced and
    /// bounded like [`ApiClient::scan_profile`], within one request
    /// timeout.
    pub async fn get<T, const IDS: usize>(
        &self,
        one: Get<T, IDS>,
        ids: [&str; IDS],
    ) -> Result<T, ApiError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let url = self.endpoint_url(one.endpoint, &ids);
        let deadline = Instant::now() + self.request_timeout;
        self.call_with_retry(
            one.endpoint,
            &Arc::new(Destination::new(url)),
            None,
            deadline,
        )
        .await
    }

    fn endpoint_url(&self, endpoint: ApiEndpoint, ids: &[&str]) -> Url {
        self.url(&fill(endpoint.path_template().unwrap_or_default(), ids))
    }
}

//! AvePoint's Graph API: authentication, the HTTP client and the wire types.

pub mod auth;
pub mod client;
pub mod model;

pub use auth::{AccessToken, AuthError, TokenSource};
pub use client::{ApiClient, ApiError};
pub use model::{ScanProfileReport, ScanStatus};

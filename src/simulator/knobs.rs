//! The knobs of a running simulator: faults injected per profile, per
//! customer or for a whole endpoint, as the tests need them at run time
//! (the start-up settings are [`SimulatorConfig`](super::SimulatorConfig)).

use std::sync::atomic::Ordering;

use super::{Fault, RunningSimulator};
use crate::sync::lock;

/// Where an injected [`Fault`] applies: one endpoint, for one profile or
/// one customer.
#[derive(Debug, Clone, Copy)]
pub enum FaultAt<'a> {
    /// A profile's report, on either path.
    Report(&'a str),
    /// A profile's details: [`Fault::MissingField`] drops
    /// `enableDailyScan`, [`Fault::WrongTypes`] makes it `"sometimes"`, and
    /// [`Fault::Report`] changes nothing.
    Details(&'a str),
    /// A customer's backup jobs: [`Fault::Status`] an HTTP error,
    /// [`Fault::WrongTypes`] a `totalCount` of `"12x"`,
    /// [`Fault::MissingField`] an item without `status`; other faults are
    /// ignored.
    BackupJobs(&'a str),
    /// A customer's protection coverage, as for backup jobs, with
    /// [`Fault::WrongTypes`] a size of `"1,5 GB"` and
    /// [`Fault::MissingField`] no `serviceModule`.
    Coverage(&'a str),
}

/// A behaviour of the whole simulated API, changed at run time with
/// [`RunningSimulator::set`] (a fault of one profile or customer is a
/// [`FaultAt`] instead).
#[derive(Debug, Clone, Copy)]
pub enum Knob<'a> {
    /// Make both discovery endpoints answer 500 (or recover).
    DiscoveryFailing(bool),
    /// Make the discovery endpoints claim 1000 more items than they have and
    /// repeat their last page forever, like a buggy server.
    PagingLies(bool),
    /// Make the token endpoint refuse every request with an
    /// `error_description` quoting the request form-encoded, credentials
    /// included (the client secret as `Sec%7Eret...`), as a misbehaving
    /// proxy or identity server might.
    TokenEcho(bool),
    /// Make the customer list answer `per_page` customers never sent
    /// before on every page, however many were asked for, with a total
    /// that always promises more (`None`: the real list again).
    CustomerFlood(Option<u64>),
    /// Add a customer whose id is not a UUID (`../../etc`) to the customer
    /// list, as a buggy or hostile server might.
    BogusCustomer(bool),
    /// List the first customer, and every profile, again under other
    /// spellings of the same UUID (upper case with braces, no hyphens).
    RespelledIds(bool),
    /// Answer every token request with a 307 to `location` (which would
    /// make a client that follows redirects re-send its credentials there);
    /// `None` answers normally again.
    TokenRedirect(Option<&'a str>),
    /// Change the permissions the app registration holds (space
    /// separated), as when an admin grants one in Elements: token requests
    /// from now on see them; tokens already issued keep their scopes.
    Permissions(&'a str),
    /// Answer every API request 401, whatever its token, as an API that
    /// does not accept the app's tokens (while the token endpoint still
    /// issues them).
    RejectingAllTokens(bool),
    /// Answer 404 on the `scan-profiles-v2` path (the `changes` path keeps
    /// answering), as an AvePoint that serves only its published path would.
    V2PathAbsent(bool),
    /// Answer this status on the `scan-profiles-v2` path (`None`: serve
    /// it), e.g. 405 as a gateway may answer a route it does not know.
    V2PathStatus(Option<u16>),
    /// Answer this status on the `changes` path (`None`: serve it), as an
    /// AvePoint that withdrew its published path again would.
    ChangesPathStatus(Option<u16>),
    /// (profile id, objects): serve that profile's `changes` body with
    /// `objects` items in each of its
    /// three lists, whatever its counts say (which makes them disagree,
    /// unless a [`Fault::Report`] pins the counts to match); `None` sizes
    /// the lists by the counts again. The lists are built once per length
    /// and streamed in pieces from that shared buffer: 200,000 objects are
    /// a body of about 50 MB. Built here, so no request pays for it.
    ChangeListSize(&'a str, Option<usize>),
    /// Leave the `request-id` header out of every API answer (error bodies
    /// still carry `requestId` and `traceId`), as a gateway might.
    RequestIdHeaderOmitted(bool),
}

impl RunningSimulator {
    /// Inject `fault` where `at` says (replacing any earlier one there).
    pub fn set_fault(&self, at: FaultAt<'_>, fault: Fault) {
        let (faults, id) = match at {
            FaultAt::Report(profile_id) => (&self.state.faults, profile_id),
            FaultAt::Details(profile_id) => (&self.state.details_faults, profile_id),
            FaultAt::BackupJobs(customer_id) => (&self.state.backup_faults, customer_id),
            FaultAt::Coverage(customer_id) => (&self.state.coverage_faults, customer_id),
        };
        lock(faults).insert(id.to_owned(), fault);
    }

    /// Hide customers from discovery (and answer 404 for their profile
    /// lists), as when a customer leaves; `&[]` shows every customer again.
    pub fn hide_customers(&self, customer_ids: &[&str]) {
        let mut hidden = lock(&self.state.hidden_customers);
        hidden.clear();
        hidden.extend(customer_ids.iter().map(|id| (*id).to_owned()));
    }

    /// Turn one knob of the simulated API (replacing its earlier setting).
    pub fn set(&self, knob: Knob<'_>) {
        match knob {
            Knob::DiscoveryFailing(failing) => {
                self.state
                    .discovery_failing
                    .store(failing, Ordering::Relaxed);
            }
            Knob::PagingLies(lying) => {
                self.state.paging_lies.store(lying, Ordering::Relaxed);
            }
            Knob::TokenEcho(on) => {
                self.state.token_echo.store(on, Ordering::Relaxed);
            }
            Knob::CustomerFlood(per_page) => {
                let per_page = per_page.unwrap_or(0);
                self.state.customer_flood.store(per_page, Ordering::Relaxed);
            }
            Knob::BogusCustomer(on) => {
                self.state.bogus_customer.store(on, Ordering::Relaxed);
            }
            Knob::RespelledIds(on) => {
                self.state.respelled_ids.store(on, Ordering::Relaxed);
            }
            Knob::TokenRedirect(location) => {
                *lock(&self.state.token_redirect) = location.map(str::to_owned);
            }
            Knob::Permissions(permissions) => {
                *lock(&self.state.permissions) = permissions.to_owned();
            }
            Knob::RejectingAllTokens(on) => {
                self.state.reject_all_tokens.store(on, Ordering::Relaxed);
            }
            Knob::V2PathAbsent(absent) => {
                self.set(Knob::V2PathStatus(absent.then_some(404)));
            }
            Knob::V2PathStatus(status) => {
                self.state
                    .v2_path_status
                    .store(status.unwrap_or(0), Ordering::Relaxed);
            }
            Knob::ChangesPathStatus(status) => {
                self.state
                    .changes_path_status
                    .store(status.unwrap_or(0), Ordering::Relaxed);
            }
            Knob::ChangeListSize(profile_id, objects) => {
                if let Some(objects) = objects {
                    self.state.lists_tail(objects);
                }
                let mut sizes = lock(&self.state.change_list_sizes);
                match objects {
                    Some(objects) => sizes.insert(profile_id.to_owned(), objects),
                    None => sizes.remove(profile_id),
                };
            }
            Knob::RequestIdHeaderOmitted(omitted) => {
                self.state
                    .omit_request_id_header
                    .store(omitted, Ordering::Relaxed);
            }
        }
    }

    /// Remove all injected faults (of reports and of details).
    pub fn clear_faults(&self) {
        lock(&self.state.faults).clear();
        lock(&self.state.details_faults).clear();
        lock(&self.state.backup_faults).clear();
        lock(&self.state.coverage_faults).clear();
    }

    /// Forget every issued token: the next API call with one answers 401,
    /// as when a token expires or is revoked mid-run.
    pub fn revoke_tokens(&self) {
        lock(&self.state.tokens).clear();
    }
}

//! Encoding a scrape or a probe: a fresh registry per request, then the
//! per-profile families streamed from the snapshot.

use std::sync::{Arc, Weak};

use prometheus_client::registry::Registry;

use super::customers::{CustomerCollector, DiscoveryCollector};
use super::details::{DetailFamilies, DetailsCollector};
use super::exporter::{
    BackgroundPanics, BuildInfo, ExporterCollector, ProbeCollector, ReloadMetrics,
};
use super::format::Format;
use super::process::ProcessCollector;
use super::profiles::ProfileFamilies;
use super::schedule::ScheduleCollector;
use super::{backup, collector_health};
use crate::avepoint::instrumentation::ApiMetrics;
use crate::avepoint::model::Customer;
use crate::backup::BackupSnapshot;
use crate::collect::Snapshot;
use crate::config::LastStatusState;
use crate::discovery::DiscoveryState;
use crate::profile_details::ProfileDetailsState;

/// An encoded scrape, handed out in chunks: the small families encoded by
/// prometheus-client, then the per-profile families written straight from
/// the snapshot (see [`profiles`]) and their details, then OpenMetrics'
/// `# EOF`.
///
/// The head is the request's own (process metrics, API counters, reload
/// state: they change from one request to the next); the rest, the
/// [`ExpositionBody`], is the same for every caller of one round, so
/// callers can share its encoding ([`SharedBodies`](super::SharedBodies)).
#[derive(Debug)]
pub struct Exposition {
    head: Option<String>,
    body: ExpositionBody,
}

/// The part of an exposition that only the round decides: the per-profile
/// families, their details and OpenMetrics' `# EOF`.
#[derive(Debug)]
pub struct ExpositionBody {
    key: BodyKey,
    profiles: ProfileFamilies,
    details: DetailFamilies,
    eof: Option<&'static str>,
}

/// What decides an [`ExpositionBody`]'s bytes: the round's snapshot, the
/// profile details read, the format and `metrics.last_status_state`. Two
/// bodies with equal keys encode to the same bytes. The snapshot and the
/// details are held weakly: a key keeps no round alive.
#[derive(Debug, Clone)]
pub struct BodyKey {
    snapshot: Weak<Snapshot>,
    details: Option<Weak<ProfileDetailsState>>,
    format: Format,
    states: LastStatusState,
}

impl PartialEq for BodyKey {
    fn eq(&self, other: &Self) -> bool {
        let same_details = match (&self.details, &other.details) {
            (Some(mine), Some(theirs)) => Weak::ptr_eq(mine, theirs),
            (None, None) => true,
            _ => false,
        };
        Weak::ptr_eq(&self.snapshot, &other.snapshot)
            && same_details
            && self.format == other.format
            && self.states == other.states
    }
}

impl BodyKey {
    /// The format the body is encoded in.
    pub fn format(&self) -> Format {
        self.format
    }
}

impl Exposition {
    fn new(
        registry: &Registry,
        snapshot: Arc<Snapshot>,
        details: Option<Arc<ProfileDetailsState>>,
        format: Format,
        states: LastStatusState,
    ) -> Result<Self, std::fmt::Error> {
        let mut head = String::with_capacity(16 * 1024);
        match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode_registry(&mut head, registry)?
            }
            Format::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(&mut head, registry)?
            }
        }
        let key = BodyKey {
            snapshot: Arc::downgrade(&snapshot),
            details: details.as_ref().map(Arc::downgrade),
            format,
            states,
        };
        Ok(Self {
            head: Some(head),
            body: ExpositionBody {
                key,
                details: DetailFamilies::new(&snapshot, details.as_deref(), format),
                profiles: ProfileFamilies::new(snapshot, format).with_last_status_state(states),
                eof: (format == Format::OpenMetrics).then_some("# EOF\n"),
            },
        })
    }

    /// The whole exposition as one string (tests, benchmarks, small outputs).
    pub fn into_string(self) -> String {
        self.collect()
    }

    /// The request's own head and the round's body, to encode the body
    /// once for every caller of the round.
    pub fn into_parts(self) -> (String, ExpositionBody) {
        (self.head.unwrap_or_default(), self.body)
    }
}

impl Iterator for Exposition {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        self.head.take().or_else(|| self.body.next())
    }
}

impl ExpositionBody {
    /// What decides this body's bytes.
    pub fn key(&self) -> &BodyKey {
        &self.key
    }
}

impl Iterator for ExpositionBody {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        self.profiles
            .next()
            .or_else(|| self.details.next())
            .or_else(|| self.eof.take().map(str::to_owned))
    }
}

/// What a scrape encodes besides the snapshot: plain data from each stage.
#[derive(Debug, Clone, Default)]
pub struct ScrapeSources {
    /// Targets collected.
    pub targets: usize,
    /// Discovery's state, when discovery runs.
    pub discovery: Option<Arc<DiscoveryState>>,
    /// Profile details, when they are read.
    pub details: Option<Arc<ProfileDetailsState>>,
    /// The backup collectors' states.
    pub backup: BackupSnapshot,
    /// Whether the per-customer backup series are part of this scrape
    /// (`metrics.include_profiles`; else `/probe` serves them).
    pub backup_per_customer: bool,
    /// `metrics.last_status_state`, for the backup job state set.
    pub last_status_state: LastStatusState,
    /// Panics per background reader, for `avepoint_background_panics_total`.
    pub background_panics: Vec<(&'static str, u64)>,
}

/// Encode a scrape: the snapshot's profiles and their details, discovery
/// and customer metrics, the backup collectors, the exporter's own metrics
/// and the process metrics.
pub fn encode_scrape(
    snapshot: Arc<Snapshot>,
    sources: ScrapeSources,
    api: &ApiMetrics,
    reload: &ReloadMetrics,
    build: &BuildInfo,
    format: Format,
) -> Result<Exposition, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ExporterCollector {
        collect_duration: snapshot.collect_duration,
        targets: sources.targets,
        build: build.clone(),
    }));
    if let Some(discovery) = sources.discovery {
        registry.register_collector(Box::new(DiscoveryCollector(discovery)));
    }
    if let Some(details) = &sources.details {
        registry.register_collector(Box::new(DetailsCollector(Arc::clone(details))));
    }
    collector_health::register(&mut registry, &sources.backup);
    if sources.backup_per_customer {
        backup::register(
            &mut registry,
            sources.backup,
            sources.last_status_state,
            None,
        );
    }
    registry.register_collector(Box::new(BackgroundPanics(sources.background_panics)));
    if let Some(figures) = &snapshot.schedule {
        registry.register_collector(Box::new(ScheduleCollector(figures.clone())));
    }
    api.register(&mut registry);
    reload.register(&mut registry);
    registry.register_collector(Box::new(ProcessCollector));
    let states = sources.last_status_state;
    Exposition::new(&registry, snapshot, sources.details, format, states)
}

/// What a probe encodes besides the snapshot: the probed customer's
/// plain data from each stage.
#[derive(Debug, Clone, Default)]
pub struct ProbeSources {
    /// The probed customer, canonical (lower case).
    pub customer_id: String,
    /// What discovery knows of the customer, when it runs.
    pub customer: Option<Customer>,
    /// Profile details, when they are read.
    pub details: Option<Arc<ProfileDetailsState>>,
    /// The per-customer collectors' states (only this customer's are
    /// encoded).
    pub backup: BackupSnapshot,
    /// `metrics.last_status_state`.
    pub last_status_state: LastStatusState,
}

/// Encode one `/probe`: in a fresh registry, only the probed customer's
/// profiles and their details (and its customer metrics, when discovery
/// knows it), plus `avepoint_probe_success` and
/// `avepoint_probe_duration_seconds`.
pub fn encode_probe(
    snapshot: Arc<Snapshot>,
    sources: ProbeSources,
    format: Format,
) -> Result<Exposition, std::fmt::Error> {
    let ProbeSources {
        customer_id,
        customer,
        details,
        backup,
        last_status_state: states,
    } = sources;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ProbeCollector {
        success: snapshot.failures() == 0,
        duration: snapshot.collect_duration,
    }));
    if let Some(customer) = customer {
        registry.register_collector(Box::new(CustomerCollector(vec![customer].into())));
    }
    backup::register(&mut registry, backup, states, Some(customer_id));
    Exposition::new(&registry, snapshot, details, format, states)
}

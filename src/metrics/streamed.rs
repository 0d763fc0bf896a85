//! The one streamed family encoder: families × profiles, written family by
//! family into text chunks of about [`CHUNK_BYTES`], so a big scrape never
//! sits in memory whole.
//!
//! The per-profile families (`profiles.rs`) and the profile details
//! (`details.rs`) only declare their families as a [`StreamedFamily`];
//! this file walks them. Generic rather than boxed: each family's
//! `write_rows` is called once per profile, on the hot path of every
//! scrape (240,000 series at 10,000 profiles), and static dispatch keeps
//! it a plain `match`.

use super::Format;
use super::lines::{push_header, push_profile_labels};
use crate::config::ProfileTarget;

/// Output is handed out in pieces of about this size.
pub(super) const CHUNK_BYTES: usize = 64 * 1024;

/// One family of gauges with rows per profile: its name, help and unit,
/// and how one profile's rows are written.
pub(super) trait StreamedFamily: Copy + 'static {
    /// What the rows are read from (held for as long as the stream).
    type Source: std::fmt::Debug;
    /// One profile's data.
    type Row;
    /// Settings that change the families' rows or help, the same for
    /// every row of a stream.
    type Context: Copy + std::fmt::Debug;

    /// Every family, in exposition order.
    const ALL: &'static [Self];

    /// The profiles' rows of `source`, in exposition order.
    fn rows(source: &Self::Source) -> &[Self::Row];
    /// The profile a row is of.
    fn target(row: &Self::Row) -> &ProfileTarget;
    /// The family's name.
    fn name(self) -> &'static str;
    /// The family's help text.
    fn help(self, context: Self::Context) -> &'static str;
    /// The family's unit (`# UNIT`, OpenMetrics only).
    fn unit(self) -> Option<&'static str>;
    /// Whether `row` has series in this family: a family without any is
    /// left out, header and all.
    fn has_rows(self, row: &Self::Row, context: Self::Context) -> bool;
    /// Append `row`'s series of this family; `labels` are its profile's,
    /// escaped ([`push_profile_labels`](super::lines::push_profile_labels)).
    fn write_rows(self, out: &mut String, labels: &str, row: &Self::Row, context: Self::Context);
}

/// The families of `F` over the rows of a source, as an iterator of text
/// chunks.
#[derive(Debug)]
pub(super) struct Streamed<F: StreamedFamily> {
    source: F::Source,
    format: Format,
    context: F::Context,
    family: usize,
    next_row: usize,
    /// Every row's profile labels, escaped: each row's are written by
    /// every family (a dozen or more times a scrape). One small string
    /// each: one buffer of them all cost 4 MiB of peak RSS at 1,000
    /// profiles (mimalloc's large-object pages), 1,000 strings nothing
    /// measurable.
    labels: Vec<Box<str>>,
}

impl<F: StreamedFamily> Streamed<F> {
    /// Chunks of `F`'s families over `source` in `format`.
    pub(super) fn start(source: F::Source, format: Format, context: F::Context) -> Self {
        let mut row_labels = String::with_capacity(128);
        let labels = F::rows(&source)
            .iter()
            .map(|row| {
                row_labels.clear();
                push_profile_labels(&mut row_labels, F::target(row));
                Box::from(row_labels.as_str())
            })
            .collect();
        Self {
            source,
            format,
            context,
            family: 0,
            next_row: 0,
            labels,
        }
    }

    /// Row `index`'s profile labels, escaped.
    fn labels(&self, index: usize) -> &str {
        self.labels.get(index).map_or("", |labels| labels)
    }

    /// The same stream with another context (before it started).
    pub(super) fn with_context(mut self, context: F::Context) -> Self {
        self.context = context;
        self
    }
}

impl<F: StreamedFamily> Iterator for Streamed<F> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let rows = F::rows(&self.source);
        let context = self.context;
        let mut out = String::with_capacity(CHUNK_BYTES + 4096);
        while let Some(&family) = F::ALL.get(self.family) {
            if self.next_row == 0 {
                if !rows.iter().any(|row| family.has_rows(row, context)) {
                    self.family += 1;
                    continue;
                }
                let (name, help) = (family.name(), family.help(context));
                push_header(&mut out, self.format, name, help, family.unit());
            }
            while let Some(row) = rows.get(self.next_row) {
                family.write_rows(&mut out, self.labels(self.next_row), row, context);
                self.next_row += 1;
                if out.len() >= CHUNK_BYTES {
                    return Some(out);
                }
            }
            self.family += 1;
            self.next_row = 0;
        }
        (!out.is_empty()).then_some(out)
    }
}

//! What the tests of this crate share: a `tracing` subscriber that keeps
//! what it is told.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Level, span};

/// A span (its name) or an event (`"event"`), with its level and its
/// fields as text.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) level: Level,
    pub(crate) fields: BTreeMap<String, String>,
}

/// A `tracing` subscriber that keeps every span and event, for the thread
/// it is set as the default of (`set_default`), so that tests running in
/// parallel do not see each other's.
#[derive(Clone, Default)]
pub(crate) struct Recorded(Arc<Mutex<Vec<Entry>>>);

impl Recorded {
    /// Everything so far.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        self.0.lock().unwrap().clone()
    }

    /// The fields of each WARN event so far.
    #[allow(dead_code)] // not every test binary looks at warnings
    pub(crate) fn warnings(&self) -> Vec<BTreeMap<String, String>> {
        self.entries()
            .into_iter()
            .filter(|e| e.name == "event" && e.level == Level::WARN)
            .map(|e| e.fields)
            .collect()
    }
}

impl tracing::Subscriber for Recorded {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
        let mut fields = FieldText::default();
        span.record(&mut fields);
        let mut entries = self.0.lock().unwrap();
        entries.push(Entry {
            name: span.metadata().name().to_owned(),
            level: *span.metadata().level(),
            fields: fields.0,
        });
        span::Id::from_u64(entries.len() as u64)
    }

    fn record(&self, id: &span::Id, values: &span::Record<'_>) {
        let mut fields = FieldText::default();
        values.record(&mut fields);
        let mut entries = self.0.lock().unwrap();
        if let Some(entry) = entries.get_mut(id.into_u64() as usize - 1) {
            entry.fields.extend(fields.0);
        }
    }

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = FieldText::default();
        event.record(&mut fields);
        self.0.lock().unwrap().push(Entry {
            name: "event".to_owned(),
            level: *event.metadata().level(),
            fields: fields.0,
        });
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

#[derive(Default)]
struct FieldText(BTreeMap<String, String>);

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

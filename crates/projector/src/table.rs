//! The rows of the VNF, VNFD and VIM tables, and the pure fold that keeps them.
//!
//! A row is what the table holds of an aggregate (its state, or for a VNFD a listing of it:
//! [`Projection`]) plus when it was created and last changed and the stream sequence of the
//! last message applied. The same fold serves the live projector, a rebuild
//! from the log, and the gateway's read of a VNF the projector has not reached yet.

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use events::envelope::Envelope;
use events::store::{History, Logged};
use events::vim::Vim;
use events::vnf::Vnf;
use events::vnfd::{Vnfd, VnfdListing};

/// What a table's row holds of an aggregate, folded from the aggregate's own events: its state
/// (VNFs, VIMs), or a listing of it (VNFDs, whose users are counted, not named).
pub trait Projection: Default + Clone {
    /// The aggregate whose subject and events the row folds.
    type Source: Logged;
    fn apply(&mut self, event: EventOf<Self>);
}

/// The events a row of `P` folds.
pub type EventOf<P> = <<P as Projection>::Source as Aggregate>::Event;

impl Projection for Vnf {
    type Source = Vnf;
    fn apply(&mut self, event: EventOf<Self>) {
        Aggregate::apply(self, event);
    }
}

impl Projection for Vim {
    type Source = Vim;
    fn apply(&mut self, event: EventOf<Self>) {
        Aggregate::apply(self, event);
    }
}

impl Projection for VnfdListing {
    type Source = Vnfd;
    fn apply(&mut self, event: EventOf<Self>) {
        VnfdListing::apply(self, event);
    }
}

/// One row of a table: what it holds of an aggregate and its place in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row<A> {
    pub state: A,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Stream sequence of the last lifecycle message applied to this row.
    pub last_sequence: u64,
}

pub type VnfRow = Row<Vnf>;
pub type VnfdRow = Row<VnfdListing>;
pub type VimRow = Row<Vim>;

/// What to do with a message, given the row as it stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<A> {
    /// The message is applied: store this row.
    Apply(Row<A>),
    /// The row already reflects the message (a redelivery).
    AlreadyApplied,
    /// An earlier message on the subject is not in the row yet (another projector holds it).
    Gap { row_sequence: u64, previous: u64 },
}

/// Folds one lifecycle message into its row.
///
/// `previous` is the subject's sequence the writer expected (`Nats-Expected-Last-Subject-Sequence`),
/// when the message carries it; a message is applied only on top of its predecessor.
pub fn step<A: Projection>(
    row: Option<&Row<A>>,
    sequence: u64,
    previous: Option<u64>,
    envelope: Envelope<EventOf<A>>,
) -> Step<A> {
    advance(
        row,
        sequence,
        previous,
        envelope.recorded_at,
        Some(envelope.events),
    )
}

/// Moves a row past a message on its subject that does not decode: the state stays as it is,
/// and the row's sequence becomes the message's, so that the subject's next message (which
/// names the skipped one as its predecessor) applies. A subject without a row yet gets one in
/// the aggregate's empty state, stored at `stored_at` (the server's time of the message).
pub fn skip<A: Projection>(
    row: Option<&Row<A>>,
    sequence: u64,
    previous: Option<u64>,
    stored_at: OffsetDateTime,
) -> Step<A> {
    advance(row, sequence, previous, stored_at, None)
}

/// One subject's row folded from its whole history ([`EventLog::history`]), oldest first, as
/// the rebuild folds it: each message that decodes applied with [`step`], each that does not
/// moved past with [`skip`]; `None` for an empty subject.
///
/// [`EventLog::history`]: events::store::EventLog::history
pub fn fold_history<A: Projection>(history: History<EventOf<A>>) -> Option<Row<A>> {
    let mut row: Option<Row<A>> = None;
    for message in history.messages {
        let next = match message {
            Ok(recorded) => step(row.as_ref(), recorded.sequence, None, recorded.envelope),
            Err(skipped) => skip(row.as_ref(), skipped.sequence, None, skipped.stored_at),
        };
        if let Step::Apply(next) = next {
            row = Some(next);
        }
    }
    row
}

/// The shared rule of [`step`] and [`skip`]: `events`, when there are some, are applied and
/// date the row's change at `at`.
fn advance<A: Projection>(
    row: Option<&Row<A>>,
    sequence: u64,
    previous: Option<u64>,
    at: OffsetDateTime,
    events: Option<Vec<EventOf<A>>>,
) -> Step<A> {
    let row_sequence = row.map_or(0, |r| r.last_sequence);
    if row_sequence >= sequence {
        return Step::AlreadyApplied;
    }
    if let Some(previous) = previous
        && previous != row_sequence
    {
        return Step::Gap {
            row_sequence,
            previous,
        };
    }
    let mut next = row.cloned().unwrap_or_else(|| Row {
        state: A::default(),
        created_at: at,
        updated_at: at,
        last_sequence: 0,
    });
    if let Some(events) = events {
        for event in events {
            next.state.apply(event);
        }
        next.updated_at = at;
    }
    next.last_sequence = sequence;
    Step::Apply(next)
}

#[cfg(test)]
mod tests {
    use events::envelope::SCHEMA_VERSION;
    use events::names::AggregateKind;
    use events::vnfd::VnfdEvent;
    use time::macros::datetime;

    use super::*;

    fn envelope(events: Vec<VnfdEvent>) -> Envelope<VnfdEvent> {
        Envelope {
            schema_version: SCHEMA_VERSION,
            aggregate: AggregateKind::Vnfd,
            aggregate_id: "d1".into(),
            cause: events::fixtures::user(),
            recorded_at: datetime!(2026-11-25 10:00 UTC),
            events,
        }
    }

    fn used(vnf: &str) -> VnfdEvent {
        VnfdEvent::UsedBy { vnf_id: vnf.into() }
    }

    #[test]
    fn applies_in_order_and_ignores_redelivery() {
        let Step::Apply(first) = step::<VnfdListing>(None, 3, Some(0), envelope(vec![used("a")]))
        else {
            panic!("first message not applied")
        };
        assert_eq!(first.last_sequence, 3);
        let Step::Apply(second) = step(Some(&first), 7, Some(3), envelope(vec![used("b")])) else {
            panic!("second message not applied")
        };
        assert_eq!(second.state.users, 2);
        assert_eq!(
            step(Some(&second), 3, Some(0), envelope(vec![used("a")])),
            Step::AlreadyApplied
        );
    }

    #[test]
    fn a_skipped_message_moves_the_row_on_without_changing_it() {
        let Step::Apply(first) = step::<VnfdListing>(None, 3, Some(0), envelope(vec![used("a")]))
        else {
            panic!("first message not applied")
        };
        let later = datetime!(2026-11-26 10:00 UTC);
        let Step::Apply(skipped) = skip(Some(&first), 5, None, later) else {
            panic!("skip not applied")
        };
        assert_eq!(skipped.state, first.state);
        assert_eq!(skipped.updated_at, first.updated_at);
        assert_eq!(skipped.last_sequence, 5);
        // The next message names the skipped one as its predecessor.
        assert!(matches!(
            step(Some(&skipped), 7, Some(5), envelope(vec![used("b")])),
            Step::Apply(_)
        ));
        let Step::Apply(fresh) = skip::<VnfdListing>(None, 2, None, later) else {
            panic!("skip without a row not applied")
        };
        assert_eq!(fresh.state, VnfdListing::default());
        assert_eq!((fresh.created_at, fresh.last_sequence), (later, 2));
    }

    #[test]
    fn waits_for_a_missing_predecessor() {
        assert_eq!(
            step::<VnfdListing>(None, 7, Some(3), envelope(vec![used("b")])),
            Step::Gap {
                row_sequence: 0,
                previous: 3
            }
        );
    }
}

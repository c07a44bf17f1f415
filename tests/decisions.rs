//! Offers to decisions on the real broker: the matcher and the timekeeper run on the runtime, the
//! test plays providers and subscribers, and every verdict is checked against the broker's own
//! receipt stamps. Scenarios: the source document's worked example (deadline), a window, a
//! `Within` duration, capacity 1 with three timely responders, an uninvited responder, a duplicate
//! response, and a withdrawn offer.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`): `compose/kafka up`.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tessera::demo::Processors;
use tessera::kafka::KafkaArgs;
use tessera_contract::sealing::PublicKey;
use tessera_contract::signing::SigningKey;
use tessera_contract::topics::{self as catalogue, Topic};
use tessera_contract::*;
use tessera_producers::client::Writer;
use tessera_producers::keys;
use tessera_producers::provider::{self, Sealing};
use tessera_producers::subscriber::{self, Responder};

use support::now_ms;

const PARTITIONS: i32 = 3;

/// The matcher and the timekeeper on their own topics, and a producer for the parties.
struct Stack {
    kafka: KafkaArgs,
    writer: Writer,
    processors: Processors,
    _state: tempfile::TempDir,
    /// The timekeeper's public key, which offers are sealed to and responses proven for.
    timekeeper: PublicKey,
    /// Each registered subscriber with its key pair, to sign its responses.
    responders: Mutex<HashMap<String, Responder>>,
    /// Provider A's signing key.
    provider: SigningKey,
}

impl Stack {
    async fn start() -> Stack {
        let kafka = support::installation(PARTITIONS).await;
        let state = tempfile::tempdir().unwrap();
        let timekeeper_key = keys::new_private_key();
        let timekeeper = timekeeper_key.public_key();
        let processors = Processors::start(&kafka, state.path(), timekeeper_key).unwrap();
        let writer = Writer::new(&kafka.client_config().unwrap()).unwrap();
        let stack = Stack {
            kafka,
            writer,
            processors,
            _state: state,
            timekeeper,
            responders: Mutex::new(HashMap::new()),
            provider: SigningKey::derive(&keys::new_private_key()),
        };
        stack.warm_up().await;
        stack
    }

    /// One offer through both processors, so the scenarios' clocks start with the consumer
    /// groups formed and the tasks open.
    async fn warm_up(&self) {
        let (x, offer, subscriber) = (unique("warm-up"), unique("offer"), unique("S"));
        self.register(&subscriber, &x).await;
        let rule = TimeRule::Within(Within {
            duration_ms: 600_000,
        });
        self.publish(&offer, &x, rule, None).await;
        self.invited(&offer, 1).await;
        self.respond(&offer, &subscriber).await;
        self.verdicts(&offer, 1).await;
    }

    async fn stop(self) {
        self.processors.stop().await.unwrap();
    }

    /// Writes an event to its topic under `key`, signed by `signer`; returns the broker's
    /// receipt stamp.
    async fn send(&self, signer: &SigningKey, topic: Topic, key: &str, event: Event) -> i64 {
        let prefix = &self.kafka.topic_prefix;
        let written = self
            .writer
            .write_as(signer, prefix, topic, key, &event)
            .await
            .unwrap();
        written.stamp.expect("the broker stamps every input topic")
    }

    /// The first `n` events keyed `key` on `topic` (committed ones, ticks skipped), once there
    /// are that many; the scenarios count on exactly `n`, even if more are committed by then.
    async fn read(&self, topic: Topic, key: &str, n: usize) -> Vec<Event> {
        let config = self.kafka.client_config().unwrap();
        let mut events = support::wait_for(&config, &self.kafka.topic_prefix, topic, key, n).await;
        events.truncate(n);
        events
    }

    async fn register(&self, subscriber: &str, identifier: &str) {
        let responder = Responder::new(subscriber, keys::new_private_key());
        let public_key = responder.key.public_key().to_bytes();
        let signer = SigningKey::derive(&responder.key);
        let event = SubscriberRegistered {
            event_id: uuid::Uuid::new_v4().to_string(),
            subscriber_id: subscriber.into(),
            contact: format!("{subscriber}@example.org"),
            public_key,
            signing_key: signer.verifying_key().to_bytes(),
            interests: vec![Interest {
                identifier: Some(identifier.into()),
                terms: vec![],
                features: BTreeMap::new(),
                ranges: vec![],
            }],
            webhook: None,
            endorsement: None,
            sealed_contact: None,
        };
        self.send(&signer, catalogue::SUBSCRIBERS, subscriber, event.into())
            .await;
        self.responders
            .lock()
            .unwrap()
            .insert(subscriber.into(), responder);
    }

    async fn publish(
        &self,
        offer_id: &str,
        identifier: &str,
        rule: TimeRule,
        capacity: Option<i32>,
    ) -> i64 {
        let event = tessera_contract::identity::with_package_signed(
            OfferPublished {
                event_id: uuid::Uuid::new_v4().to_string(),
                offer_id: offer_id.into(),
                provider_id: "A".into(),
                signing_key: self.provider.verifying_key().to_bytes(),
                package_signature: Vec::new(),
                provider_endorsement: None,
                provider_contact: "a@example.org".into(),
                recommendation: Recommendation {
                    identifier: identifier.into(),
                    name: format!("Document {identifier}"),
                    features: BTreeMap::new(),
                    parameters: BTreeMap::new(),
                },
                time_rule: rule,
                capacity,
                reward: None,
                decide_within: None,
                credential: provider::seal(
                    offer_id,
                    Sealing {
                        target_data: b"document",
                        custody: Custody::Escrow,
                        timekeeper: &self.timekeeper,
                    },
                )
                .unwrap()
                .credential,
                invite_late: false,
            },
            &self.provider,
        );
        self.send(&self.provider, catalogue::OFFERS, offer_id, event.into())
            .await
    }

    async fn respond(&self, offer_id: &str, subscriber: &str) -> i64 {
        let (event, signer) = {
            let responders = self.responders.lock().unwrap();
            let responder = responders
                .get(subscriber)
                .expect("only registered subscribers respond");
            let signer = SigningKey::derive(&responder.key);
            (subscriber::response(offer_id, responder), signer)
        };
        self.send(&signer, catalogue::RESPONSES, offer_id, event.into())
            .await
    }

    /// The subscribers invited to `offer_id`, once `n` invitations are committed.
    async fn invited(&self, offer_id: &str, n: usize) -> Vec<String> {
        let mut invited: Vec<String> = self
            .read(catalogue::REQUESTS, offer_id, n)
            .await
            .into_iter()
            .map(|e| match e {
                Event::InteractionRequested(r) => r.subscriber_id,
                other => panic!("not an invitation: {other:?}"),
            })
            .collect();
        invited.sort();
        invited
    }

    /// Verdicts on `offer_id` per subscriber, with the response stamp each cites, once `n`
    /// decisions (verdicts, closings) are committed.
    async fn verdicts(
        &self,
        offer_id: &str,
        n: usize,
    ) -> (Vec<(String, Verdict, i64)>, Vec<OfferClosed>) {
        let mut verdicts = Vec::new();
        let mut closed = Vec::new();
        for event in self.read(catalogue::DECISIONS, offer_id, n).await {
            match event {
                Event::CredentialReleased(r) => {
                    verdicts.push((r.subscriber_id, Verdict::Released, r.response.stamp))
                }
                Event::ResponseRejected(r) => verdicts.push((
                    r.subscriber_id,
                    Verdict::Rejected(r.reason),
                    r.response.stamp,
                )),
                Event::OfferClosed(c) => closed.push(c),
                other => panic!("unexpected decision {other:?}"),
            }
        }
        (verdicts, closed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Released,
    Rejected(RejectReason),
}

async fn sleep_until(at_ms: i64) {
    let wait = at_ms - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

fn unique(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

/// The source document's example: A offers document X with a deadline; B1 and B2 need such
/// documents, B3 needs another. B1 answers in time and is released, B2 after the deadline and is
/// refused TooLate, B3 is never asked.
async fn deadline(stack: &Stack) {
    let (x, offer) = (unique("doc-X"), unique("offer"));
    let (b1, b2, b3) = (unique("B1"), unique("B2"), unique("B3"));
    stack.register(&b1, &x).await;
    stack.register(&b2, &x).await;
    stack.register(&b3, &unique("doc-Y")).await;
    let at = now_ms() + 4_000;
    stack
        .publish(&offer, &x, TimeRule::Deadline(Deadline { at }), None)
        .await;
    let mut expected = vec![b1.clone(), b2.clone()];
    expected.sort();
    assert_eq!(
        stack.invited(&offer, 2).await,
        expected,
        "B3 must not be invited"
    );

    let b1_stamp = stack.respond(&offer, &b1).await;
    sleep_until(at + 300).await;
    let b2_stamp = stack.respond(&offer, &b2).await;
    assert!(
        b1_stamp <= at && b2_stamp > at,
        "the test's own timing failed"
    );

    let (verdicts, closed) = stack.verdicts(&offer, 3).await;
    assert_eq!(
        verdicts,
        vec![
            (b1, Verdict::Released, b1_stamp),
            (b2, Verdict::Rejected(RejectReason::TooLate), b2_stamp)
        ]
    );
    let closed = &closed[0];
    assert!(closed.closed_at > at);
    assert_eq!(
        (
            closed.requested,
            closed.responded,
            closed.released,
            closed.rejected,
            closed.withdrawn
        ),
        (2, 1, 1, 0, false),
        "B2 answered after the close: {closed:?}"
    );
}

/// A window: too early before it opens, released inside it, too late after it.
async fn window(stack: &Stack) {
    let (x, offer) = (unique("doc-W"), unique("offer"));
    let (early, late) = (unique("W1"), unique("W2"));
    stack.register(&early, &x).await;
    stack.register(&late, &x).await;
    let from = now_ms() + 3_000;
    let to = from + 2_000;
    stack
        .publish(&offer, &x, TimeRule::Window(Window { from, to }), None)
        .await;
    stack.invited(&offer, 2).await;
    let first = stack.respond(&offer, &early).await;
    sleep_until(from + 300).await;
    let second = stack.respond(&offer, &early).await;
    sleep_until(to + 300).await;
    let third = stack.respond(&offer, &late).await;
    let (verdicts, _) = stack.verdicts(&offer, 4).await;
    assert_eq!(
        verdicts,
        vec![
            (
                early.clone(),
                Verdict::Rejected(RejectReason::TooEarly),
                first
            ),
            (early, Verdict::Released, second),
            (late, Verdict::Rejected(RejectReason::TooLate), third),
        ]
    );
}

/// A duration counted from the offer's own receipt stamp.
async fn within(stack: &Stack) {
    let (x, offer) = (unique("doc-V"), unique("offer"));
    let (prompt, slow) = (unique("V1"), unique("V2"));
    stack.register(&prompt, &x).await;
    stack.register(&slow, &x).await;
    let published = stack
        .publish(
            &offer,
            &x,
            TimeRule::Within(Within { duration_ms: 3_000 }),
            None,
        )
        .await;
    stack.invited(&offer, 2).await;
    let first = stack.respond(&offer, &prompt).await;
    sleep_until(published + 3_300).await;
    let second = stack.respond(&offer, &slow).await;
    assert!(first - published <= 3_000 && second - published > 3_000);
    let (verdicts, _) = stack.verdicts(&offer, 3).await;
    assert_eq!(
        verdicts,
        vec![
            (prompt, Verdict::Released, first),
            (slow, Verdict::Rejected(RejectReason::TooLate), second),
        ]
    );
}

/// Capacity 1, three timely responders, one of whom answers twice, and one party that was never
/// invited: the first response by receipt order is the only release.
async fn capacity_duplicates_and_strangers(stack: &Stack) {
    let (x, offer) = (unique("doc-C"), unique("offer"));
    let subscribers: Vec<String> = (1..=3).map(|i| unique(&format!("C{i}"))).collect();
    for s in &subscribers {
        stack.register(s, &x).await;
    }
    let stranger = unique("U1");
    stack.register(&stranger, &unique("doc-other")).await;
    let at = now_ms() + 6_000;
    stack
        .publish(&offer, &x, TimeRule::Deadline(Deadline { at }), Some(1))
        .await;
    stack.invited(&offer, 3).await;
    let mut stamps = Vec::new();
    for s in &subscribers {
        stamps.push(stack.respond(&offer, s).await);
    }
    let again = stack.respond(&offer, &subscribers[0]).await;
    let strange = stack.respond(&offer, &stranger).await;
    let (verdicts, _) = stack.verdicts(&offer, 5).await;
    assert_eq!(
        verdicts,
        vec![
            (subscribers[0].clone(), Verdict::Released, stamps[0]),
            (
                subscribers[1].clone(),
                Verdict::Rejected(RejectReason::CapacityReached),
                stamps[1]
            ),
            (
                subscribers[2].clone(),
                Verdict::Rejected(RejectReason::CapacityReached),
                stamps[2]
            ),
            (
                subscribers[0].clone(),
                Verdict::Rejected(RejectReason::Duplicate),
                again
            ),
            (
                stranger,
                Verdict::Rejected(RejectReason::NotInvited),
                strange
            ),
        ]
    );
}

/// A withdrawn offer closes at once and refuses later responses.
async fn withdrawn(stack: &Stack) {
    let (x, offer) = (unique("doc-D"), unique("offer"));
    let subscriber = unique("D1");
    stack.register(&subscriber, &x).await;
    let at = now_ms() + 60_000;
    stack
        .publish(&offer, &x, TimeRule::Deadline(Deadline { at }), None)
        .await;
    stack.invited(&offer, 1).await;
    let withdrawal = OfferWithdrawn {
        event_id: uuid::Uuid::new_v4().to_string(),
        offer_id: offer.clone(),
        provider_id: "A".into(),
        reason: Some("sold out".into()),
    };
    stack
        .send(
            &stack.provider,
            catalogue::OFFERS,
            &offer,
            withdrawal.into(),
        )
        .await;
    let stamp = stack.respond(&offer, &subscriber).await;
    let (verdicts, closed) = stack.verdicts(&offer, 2).await;
    assert_eq!(
        verdicts,
        vec![(
            subscriber,
            Verdict::Rejected(RejectReason::Withdrawn),
            stamp
        )]
    );
    assert!(closed[0].withdrawn && closed[0].closed_at < at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offers_to_decisions_on_the_broker() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let stack = Stack::start().await;
    tokio::join!(
        deadline(&stack),
        window(&stack),
        within(&stack),
        capacity_duplicates_and_strangers(&stack),
        withdrawn(&stack),
    );
    stack.stop().await;
}

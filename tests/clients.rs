//! The client commands on a real broker: `tessera keys generate/public`, `tessera subscriber
//! register/remove/respond/listen/open`, `tessera provider publish/withdraw/agent` and `tessera
//! offer status`, run as a user runs them, with what they wrote read back from the topics.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`): `compose/kafka up`.
//! Each test uses its own topic prefix, created with `tessera topics create`, so tests run in
//! parallel and leave other topics alone. Events the processors would write (verdicts,
//! deliveries, notices) are written by the tests directly.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tessera_contract::identity;
use tessera_contract::rules::request_id;
use tessera_contract::sealing::contacts::open_contact;
use tessera_contract::sealing::notices::{Noticed, seal_notice};
use tessera_contract::sealing::{self, Half, PrivateKey, Release};
use tessera_contract::signing::SigningKey;
use tessera_contract::topics::{self, DEFAULT_PARTITIONS, Topic};
use tessera_contract::{
    CredentialDelivered, CredentialReleased, Custody, Deadline, Event, EventKind, LogPosition,
    Notice, OfferPublished, OfferWithdrawn, ProviderShareReleased, RejectReason,
    SubscriberRegistered, Tick, TimeRule, Within, examples,
};
use tessera_producers::client::{Record, Writer, partition_for, read_to_end};
use tessera_producers::{interest, keys, provider};

/// The payload every offer of these tests carries, in `payload.txt` of the run directory.
const PAYLOAD: &[u8] = b"Quarterly report X\nRevenue rose in every region.\n";

/// One test's own topics, a directory to run the command in (key files land there), and the
/// timekeeper's and delivery worker's keys, published on the installation's `tessera.keys` as
/// `tessera run timekeeper|delivery` publish them.
struct Installation {
    prefix: String,
    config: ClientConfig,
    dir: tempfile::TempDir,
    timekeeper: PrivateKey,
    delivery: PrivateKey,
}

impl Installation {
    async fn new() -> Self {
        let kafka = support::isolated();
        let installation = Installation {
            config: kafka.client_config().unwrap(),
            prefix: kafka.topic_prefix,
            dir: tempfile::tempdir().unwrap(),
            timekeeper: keys::new_private_key(),
            delivery: keys::new_private_key(),
        };
        let created = installation.tessera(&["topics", "create"]);
        assert!(created.status.success(), "{created:?}");
        std::fs::write(installation.dir.path().join("payload.txt"), PAYLOAD).unwrap();
        let writer = Writer::new(&installation.config).unwrap();
        keys::publish(
            &writer,
            &installation.prefix,
            keys::Role::Timekeeper,
            &installation.timekeeper,
        )
        .await
        .unwrap();
        keys::publish(
            &writer,
            &installation.prefix,
            keys::Role::Delivery,
            &installation.delivery,
        )
        .await
        .unwrap();
        installation
    }

    /// Gives subscriber `id` a key pair at its default key file; returns its private key.
    fn subscriber_key(&self, id: &str) -> PrivateKey {
        let path = format!(".tessera/keys/{id}.key");
        self.ok(&["keys", "generate", "--out", &path]);
        keys::load(&self.dir.path().join(path)).unwrap()
    }

    fn tessera(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .current_dir(self.dir.path())
            .env("TESSERA_BROKERS", support::brokers())
            .env("TESSERA_TOPIC_PREFIX", &self.prefix)
            // The operator gives clients the timekeeper's fingerprint: no first-use warning.
            .env(
                "TESSERA_TIMEKEEPER_FINGERPRINT",
                SigningKey::derive(&self.timekeeper)
                    .verifying_key()
                    .fingerprint(),
            )
            .env(
                "TESSERA_DELIVERY_FINGERPRINT",
                SigningKey::derive(&self.delivery)
                    .verifying_key()
                    .fingerprint(),
            )
            .output()
            .unwrap()
    }

    /// `tessera provider publish` by provider A of `payload.txt` with the given flags.
    fn publish(&self, flags: &[&str]) -> Output {
        self.publish_payload("payload.txt", flags)
    }

    /// `tessera provider publish` by provider A of `payload` with the given flags.
    fn publish_payload(&self, payload: &str, flags: &[&str]) -> Output {
        let mut args = support::provider_publish(&["--payload", payload]);
        args.extend(flags);
        self.tessera(&args)
    }

    /// `publish` that must succeed; returns its standard output.
    fn published(&self, flags: &[&str]) -> String {
        let output = self.publish(flags);
        assert!(output.status.success(), "{flags:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs a command that must succeed; returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.tessera(args);
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    }

    fn topic(&self, topic: Topic) -> String {
        topic.full_name(&self.prefix)
    }

    async fn read(&self, topic: Topic) -> Vec<Record> {
        read_to_end(&self.config, &self.topic(topic), None)
            .await
            .unwrap()
    }

    async fn write(&self, topic: Topic, key: &str, event: impl Into<Event>) {
        let writer = Writer::new(&self.config).unwrap();
        writer
            .write(&self.topic(topic), key, &event.into())
            .await
            .unwrap();
    }

    /// Writes `event` signed by the installation's timekeeper, as it writes its verdicts.
    async fn write_as_timekeeper(&self, topic: Topic, key: &str, event: impl Into<Event>) {
        self.write_signed(&SigningKey::derive(&self.timekeeper), topic, key, event)
            .await;
    }

    /// A notice telling `subscriber` of `event`, sealed to `key` by the installation's delivery
    /// worker, as if `event` sat on `topic`.
    fn notice(&self, subscriber: &str, key: &PrivateKey, topic: Topic, event: Event) -> Notice {
        let event_id = uuid::Uuid::new_v4().to_string();
        let at = LogPosition {
            topic: topic.name.into(),
            partition: 0,
            offset: 7,
            stamp: 1_764_061_200_000,
        };
        let noticed = Noticed { at, event };
        let sealed = seal_notice(
            &noticed,
            subscriber,
            &event_id,
            &key.public_key(),
            &self.delivery,
        )
        .unwrap();
        Notice {
            event_id,
            subscriber_id: subscriber.into(),
            sealed,
        }
    }

    /// Tells `subscriber` of `event` in its inbox, as the delivery worker does.
    async fn notify(&self, subscriber: &str, key: &PrivateKey, topic: Topic, event: Event) {
        let notice = self.notice(subscriber, key, topic, event);
        let signer = SigningKey::derive(&self.delivery);
        self.write_signed(&signer, topics::DELIVERIES, subscriber, notice)
            .await;
    }

    /// Tells `subscriber` of its outcome of `credential` on `tessera.outcomes`, as the delivery
    /// worker tells a recipient of its decision.
    async fn tell_outcome(&self, subscriber: &str, key: &PrivateKey, credential: &str) {
        let outcomes = self.read(topics::OUTCOMES).await;
        let outcome = outcomes
            .iter()
            .map(event)
            .find(|e| match e {
                Event::CredentialAccepted(e) => e.credential_id == credential,
                Event::CredentialDeclined(e) => e.credential_id == credential,
                _ => false,
            })
            .expect("the outcome was written");
        self.notify(subscriber, key, topics::OUTCOMES, outcome.clone())
            .await;
    }

    /// Writes a delivery to `subscriber`'s inbox, signed by the installation's delivery worker.
    async fn deliver(&self, subscriber: &str, delivered: CredentialDelivered) {
        let signer = SigningKey::derive(&self.delivery);
        self.write_signed(&signer, topics::DELIVERIES, subscriber, delivered)
            .await;
    }

    async fn write_signed(
        &self,
        signer: &SigningKey,
        topic: Topic,
        key: &str,
        event: impl Into<Event>,
    ) {
        let writer = Writer::new(&self.config).unwrap();
        writer
            .write_as(signer, &self.prefix, topic, key, &event.into())
            .await
            .unwrap();
    }

    /// Where the first record keyed `key` on `topic` sits, with its receipt stamp.
    async fn position_of(&self, topic: Topic, key: &str) -> LogPosition {
        let record = self
            .read(topic)
            .await
            .into_iter()
            .find(|r| r.key.as_deref() == Some(key))
            .unwrap_or_else(|| panic!("nothing keyed {key} on {}", topic.name));
        LogPosition {
            topic: topic.name.into(),
            partition: record.partition,
            offset: record.offset,
            stamp: record.stamp.unwrap(),
        }
    }
}

fn event(record: &Record) -> &Event {
    record
        .event
        .as_ref()
        .expect("not a tombstone")
        .as_ref()
        .expect("decodes")
}

fn example<T>(pick: impl Fn(Event) -> Option<T>) -> T {
    examples::all().into_iter().find_map(pick).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The error a command exited with, after any warnings it logged.
fn error_line(output: &Output) -> String {
    stderr(output)
        .lines()
        .rev()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn register_replaces_and_remove_leaves_a_tombstone() {
    let it = Installation::new().await;
    let first = it.ok(&[
        "subscriber",
        "register",
        "--id",
        "B1",
        "--contact",
        "b1@example.org",
        "--interest",
        "terms=quarterly report; format=pdf; price<=10000",
        "--interest",
        "id=doc-X",
    ]);
    assert!(first.starts_with("subscriber B1 registered ["), "{first}");
    assert!(
        first.contains(", received 20"),
        "the broker stamp is quoted: {first}"
    );
    let key_file = it.dir.path().join(".tessera/keys/B1.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let private: String = std::fs::read(&key_file)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        !first.contains(&private),
        "the private key must never be printed"
    );

    let second = it.ok(&[
        "subscriber",
        "register",
        "--id",
        "B1",
        "--contact",
        "b1@example.net",
        "--interest",
        "id=doc-Y",
        "--contact-in-clear",
    ]);
    assert!(second.contains("(existing, never sent)"), "{second}");
    assert!(
        first.contains("contact and webhook: sealed to the delivery worker")
            && second.contains("contact and webhook: in the clear"),
        "{first}{second}"
    );

    let bad = it.tessera(&[
        "subscriber",
        "register",
        "--id",
        "B1",
        "--contact",
        "x",
        "--interest",
        "price<=cheap",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("in `price<=cheap`: `cheap` is not an integer"),
        "{bad:?}"
    );

    let removed = it.ok(&["subscriber", "remove", "--id", "B1"]);
    assert!(removed.contains("tombstone ["), "{removed}");

    let records = it.read(topics::SUBSCRIBERS).await;
    assert_eq!(
        records.len(),
        4,
        "two registrations, a removal and a tombstone: {records:?}"
    );
    let partition = partition_for("B1", DEFAULT_PARTITIONS);
    assert!(
        records
            .iter()
            .all(|r| r.key.as_deref() == Some("B1") && r.partition == partition)
    );
    let (key, created) = keys::load_or_create(Path::new(&key_file)).unwrap();
    assert!(!created);
    let public_key = key.public_key().to_bytes();
    let registered: Vec<&SubscriberRegistered> = records[..2]
        .iter()
        .map(|r| match event(r) {
            Event::SubscriberRegistered(e) => e,
            other => panic!("{other:?}"),
        })
        .collect();
    // Sealed to the delivery worker: no provider reading the table sees the contact.
    assert_eq!(registered[0].contact, "");
    let sealed = registered[0]
        .sealed_contact
        .as_ref()
        .expect("a sealed contact");
    let opened = open_contact(sealed, "B1", &it.delivery).unwrap();
    assert_eq!(opened.contact, "b1@example.org");
    assert!(open_contact(sealed, "B1", &it.timekeeper).is_err());
    assert_eq!(
        registered[0].interests,
        vec![
            interest::parse("terms=quarterly report; format=pdf; price<=10000").unwrap(),
            interest::parse("id=doc-X").unwrap(),
        ]
    );
    assert_eq!(registered[1].contact, "b1@example.net");
    assert_eq!(
        registered[0].public_key, public_key,
        "the key file's public half is registered"
    );
    assert_eq!(
        registered[1].public_key, public_key,
        "re-registering keeps the key"
    );
    assert_eq!(event(&records[2]).kind(), EventKind::SubscriberRemoved);
    assert!(
        records[3].event.is_none(),
        "the last record is a tombstone: {:?}",
        records[3]
    );
}

#[tokio::test]
async fn a_published_offer_round_trips_and_can_be_withdrawn() {
    let it = Installation::new().await;
    let now = chrono::Utc::now();
    let from = now + chrono::Duration::hours(1);
    let to = now + chrono::Duration::hours(2);
    let window = format!("{}..{}", from.to_rfc3339(), to.to_rfc3339());
    let out = it.published(&[
        "--identifier",
        "doc-X",
        "--name",
        "Quarterly report X",
        "--feature",
        "format=pdf",
        "--param",
        "price=9900",
        "--param",
        "pages=42",
        "--window",
        &window,
        "--capacity",
        "2",
        "--reward",
        "250:EUR",
        "--offer-id",
        "offer-1",
    ]);
    assert!(out.starts_with("offer offer-1 published ["), "{out}");
    assert!(out.contains("  rule: window "), "{out}");

    let withdrawn = it.ok(&[
        "provider",
        "withdraw",
        "offer-1",
        "--provider",
        "A",
        "--reason",
        "sold out",
    ]);
    assert!(
        withdrawn.starts_with("offer offer-1 withdrawn ["),
        "{withdrawn}"
    );

    let records = it.read(topics::OFFERS).await;
    assert_eq!(records.len(), 2, "{records:?}");
    let partition = partition_for("offer-1", DEFAULT_PARTITIONS);
    assert!(
        records
            .iter()
            .all(|r| r.key.as_deref() == Some("offer-1") && r.partition == partition)
    );
    let Event::OfferPublished(offer) = event(&records[0]) else {
        panic!("{records:?}")
    };
    let OfferPublished {
        recommendation,
        time_rule,
        capacity,
        reward,
        credential,
        invite_late,
        ..
    } = offer;
    assert!(invite_late, "an offer invites late unless told not to");
    assert_eq!(
        (offer.provider_id.as_str(), offer.provider_contact.as_str()),
        ("A", "a@example.org")
    );
    assert_eq!(recommendation.identifier, "doc-X");
    assert_eq!(recommendation.name, "Quarterly report X");
    assert_eq!(recommendation.features["format"], "pdf");
    assert_eq!(
        (
            recommendation.parameters["price"],
            recommendation.parameters["pages"]
        ),
        (9_900, 42)
    );
    let TimeRule::Window(w) = time_rule else {
        panic!("{time_rule:?}")
    };
    // to_rfc3339 keeps sub-second digits, so the rule holds the exact instants.
    assert_eq!(
        (w.from, w.to),
        (from.timestamp_millis(), to.timestamp_millis())
    );
    assert_eq!(*capacity, Some(2));
    assert_eq!(
        reward.as_ref().map(|r| (r.amount, r.currency.as_str())),
        Some((250, "EUR"))
    );
    assert!(
        out.contains("  custody: co-sign; the provider half is kept in .tessera/keys/A"),
        "{out}"
    );
    assert_eq!(credential.custody, Custody::CoSign);
    assert_eq!(credential.escrow_half, None);
    let half_file = it.dir.path().join(".tessera/keys/A/offer-1.half");
    let mode = std::fs::metadata(&half_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let kept = keys::Halves::new(it.dir.path().join(".tessera/keys/A"))
        .get("offer-1")
        .unwrap()
        .unwrap();
    let platform = sealing::open_from_provider(
        &credential.platform_half,
        Half::Platform,
        "offer-1",
        &it.timekeeper,
    )
    .unwrap();
    let opened = sealing::open_package(&credential.package, "offer-1", &platform, &kept).unwrap();
    assert_eq!(opened.as_slice(), PAYLOAD);
    let Event::OfferWithdrawn(OfferWithdrawn {
        provider_id,
        reason,
        ..
    }) = event(&records[1])
    else {
        panic!("{records:?}")
    };
    assert_eq!(
        (provider_id.as_str(), reason.as_deref()),
        ("A", Some("sold out"))
    );

    let flags = ["--identifier", "doc-X", "--name", "Quarterly report X"];
    it.published(&[&flags[..], &["--within", "1h", "--offer-id", "offer-2"]].concat());
    it.published(
        &[
            &flags[..],
            &[
                "--within",
                "1h",
                "--offer-id",
                "offer-3",
                "--no-late-invitations",
            ],
        ]
        .concat(),
    );
    let mut late: Vec<(String, bool)> = it
        .read(topics::OFFERS)
        .await
        .iter()
        .filter_map(|r| match event(r) {
            Event::OfferPublished(offer) => Some((offer.offer_id.clone(), offer.invite_late)),
            _ => None,
        })
        .collect();
    late.sort();
    assert_eq!(
        late,
        [
            ("offer-1".to_string(), true),
            ("offer-2".to_string(), true),
            ("offer-3".to_string(), false)
        ]
    );
}

#[tokio::test]
async fn keys_land_on_the_partition_java_clients_would_choose() {
    let it = Installation::new().await;
    let writer = Writer::new(&it.config).unwrap();
    let tick: Event = Tick {
        event_id: uuid::Uuid::new_v4().to_string(),
        ticker: "t".into(),
        seq: 0,
    }
    .into();
    for n in 0..30 {
        let key = format!("offer-{n}");
        let written = writer
            .write(&it.topic(topics::OFFERS), &key, &tick)
            .await
            .unwrap();
        assert_eq!(
            written.partition,
            partition_for(&key, DEFAULT_PARTITIONS),
            "{key}"
        );
        assert!(
            written.stamp.is_some(),
            "the delivery report carries the broker stamp"
        );
    }
}

#[tokio::test]
async fn invalid_offers_are_refused_and_nothing_is_written() {
    let it = Installation::new().await;
    let refused = [
        (
            vec![
                "--identifier",
                "doc-X",
                "--window",
                "2030-01-01T10:00:00Z..2030-01-01T09:00:00Z",
            ],
            "error: invalid offer: the window ends at 2030-01-01T09:00:00.000Z before it starts at 2030-01-01T10:00:00.000Z",
        ),
        (
            vec!["--identifier", "doc-X", "--within", "0s"],
            "error: invalid offer: the duration 0 ms is not positive",
        ),
        (
            vec!["--identifier", "doc-X", "--within", "-5m"],
            "error: invalid offer: the duration -300000 ms is not positive",
        ),
        (
            vec![
                "--identifier",
                "doc-X",
                "--deadline",
                "2020-01-01T00:00:00Z",
            ],
            "error: invalid offer: the deadline 2020-01-01T00:00:00.000Z had ended when the offer was received at ",
        ),
        (
            vec!["--identifier", "", "--within", "1h"],
            "error: invalid offer: the recommendation's identifier is empty",
        ),
        (
            vec!["--identifier", "doc-X", "--within", "1h", "--capacity", "0"],
            "error: invalid offer: the capacity 0 is not positive",
        ),
    ];
    for (extra, message) in refused {
        let args: Vec<&str> = ["--name", "Quarterly report X"]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        let output = it.publish(&args);
        assert_eq!(output.status.code(), Some(1), "{extra:?}: {output:?}");
        let stderr = stderr(&output);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with(message), "{extra:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{output:?}");
    }
    let unreadable = [
        (
            vec!["--identifier", "doc-X", "--within", "5x"],
            "`5x` is not a duration",
        ),
        (
            vec!["--identifier", "doc-X", "--deadline", "9"],
            "`9` is not a time",
        ),
        (
            vec![
                "--identifier",
                "doc-X",
                "--deadline",
                "09:00",
                "--within",
                "1h",
            ],
            "cannot be used with",
        ),
        (
            vec!["--identifier", "doc-X"],
            "the following required arguments were not provided",
        ),
    ];
    for (extra, message) in unreadable {
        let args: Vec<&str> = ["--name", "Quarterly report X"]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        let output = it.publish(&args);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {output:?}");
        assert!(stderr(&output).contains(message), "{extra:?}: {output:?}");
    }
    assert_eq!(
        it.read(topics::OFFERS).await.len(),
        0,
        "a refused offer writes nothing"
    );
}

#[tokio::test]
async fn respond_answers_the_invitation_the_matcher_names() {
    let it = Installation::new().await;
    let refused = it.tessera(&["subscriber", "respond", "offer-1", "--id", "B1"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).starts_with(
            "error: subscriber B1 signs its responses with its private key: cannot read key file"
        ),
        "{refused:?}"
    );
    let b1 = it.subscriber_key("B1");
    let out = it.ok(&["subscriber", "respond", "offer-1", "--id", "B1"]);
    assert!(out.starts_with("B1 responded to offer offer-1 ["), "{out}");
    assert!(
        out.contains(&format!("{}/", it.topic(topics::RESPONSES))),
        "{out}"
    );
    let records = it.read(topics::RESPONSES).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key.as_deref(), Some("offer-1"));
    assert_eq!(
        records[0].partition,
        partition_for("offer-1", DEFAULT_PARTITIONS)
    );
    let Event::ResponseSubmitted(response) = event(&records[0]) else {
        panic!("{records:?}")
    };
    assert_eq!(response.request_id, request_id("offer-1", "B1"));
    assert_eq!(
        (response.subscriber_id.as_str(), response.offer_id.as_str()),
        ("B1", "offer-1")
    );
    assert_eq!(
        SigningKey::derive(&b1).verifying_key().verify_record(
            topics::RESPONSES.name,
            &records[0].signed,
            "B1"
        ),
        Ok(()),
        "the response is signed with B1's key"
    );
}

/// An invitation of `subscriber` to `offer` whose price is `price`, as the matcher writes it.
fn invitation(offer: &str, subscriber: &str, price: i64) -> Event {
    let mut request = example(|e| match e {
        Event::InteractionRequested(r) => Some(r),
        _ => None,
    });
    request.event_id = uuid::Uuid::new_v4().to_string();
    request.offer_id = offer.into();
    request.subscriber_id = subscriber.into();
    request.request_id = request_id(offer, subscriber);
    request
        .recommendation
        .parameters
        .insert("price".into(), price);
    request.offer.time_rule = TimeRule::Deadline(Deadline {
        at: 4_102_444_800_000,
    });
    request.into()
}

fn rejection(offer: &str, subscriber: &str, reason: RejectReason) -> Event {
    let mut rejected = example(|e| match e {
        Event::ResponseRejected(r) => Some(r),
        _ => None,
    });
    rejected.event_id = uuid::Uuid::new_v4().to_string();
    rejected.offer_id = offer.into();
    rejected.subscriber_id = subscriber.into();
    rejected.request_id = request_id(offer, subscriber);
    rejected.reason = reason;
    rejected.into()
}

fn release(offer: &str, subscriber: &str) -> Event {
    let mut released = example(|e| match e {
        Event::CredentialReleased(r) => Some(r),
        _ => None,
    });
    released.event_id = uuid::Uuid::new_v4().to_string();
    released.offer_id = offer.into();
    released.subscriber_id = subscriber.into();
    released.request_id = request_id(offer, subscriber);
    released.into()
}

#[tokio::test]
async fn listen_shows_a_subscribers_notices_and_answers_by_policy() {
    let it = Installation::new().await;
    let (b1, b2) = (it.subscriber_key("B1"), it.subscriber_key("B2"));
    it.notify(
        "B1",
        &b1,
        topics::REQUESTS,
        invitation("cheap", "B1", 9_000),
    )
    .await;
    it.notify(
        "B1",
        &b1,
        topics::REQUESTS,
        invitation("dear", "B1", 20_000),
    )
    .await;
    it.notify(
        "B2",
        &b2,
        topics::REQUESTS,
        invitation("cheap", "B2", 9_000),
    )
    .await;
    it.notify("B2", &b2, topics::DECISIONS, release("cheap", "B2"))
        .await;
    it.notify(
        "B1",
        &b1,
        topics::DECISIONS,
        rejection("old", "B1", RejectReason::TooLate),
    )
    .await;
    // In B1's inbox: a notice sealed to B1 that the delivery worker did not sign, one the
    // delivery worker signed but sealed to B2, and a record that is no event at all.
    let forger = SigningKey::derive(&keys::new_private_key());
    let forged = it.notice("B1", &b1, topics::REQUESTS, invitation("forged", "B1", 1));
    it.write_signed(&forger, topics::DELIVERIES, "B1", forged)
        .await;
    let misaddressed = it.notice("B1", &b2, topics::REQUESTS, invitation("moved", "B1", 1));
    let delivery = SigningKey::derive(&it.delivery);
    it.write_signed(&delivery, topics::DELIVERIES, "B1", misaddressed)
        .await;
    let raw: FutureProducer = it.config.create().unwrap();
    raw.send(
        FutureRecord::to(&it.topic(topics::DELIVERIES))
            .key("B1")
            .partition(partition_for("B1", DEFAULT_PARTITIONS))
            .payload("this is not avro at all"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();

    let listen = |policy: &str| {
        it.tessera(&[
            "subscriber",
            "listen",
            "--id",
            "B1",
            "--respond",
            policy,
            "--from-beginning",
            "--until-idle",
            "3s",
        ])
    };
    let first = listen("price<=10000");
    assert!(first.status.success(), "{first:?}");
    let out = String::from_utf8(first.stdout.clone()).unwrap();
    assert!(out.contains("to B1 for offer cheap: doc-X"), "{out}");
    assert!(
        out.contains("deadline 2100-01-01T00:00:00.000Z"),
        "the rule is described: {out}"
    );
    assert!(out.contains("provider a@example.org"), "{out}");
    assert!(
        out.contains(&format!("{}/", it.topic(topics::REQUESTS))),
        "shown where the invitation sits, not where its notice does: {out}"
    );
    assert!(out.contains("to B1 for offer dear: "), "{out}");
    assert!(out.contains("responded to offer cheap ["), "{out}");
    assert!(
        out.contains("not answering offer dear: it does not meet the --respond condition"),
        "{out}"
    );
    assert!(
        out.contains("rejected B1 for offer old: TooLate: received 09:05:00.000Z"),
        "{out}"
    );
    assert!(
        !out.contains("B2") && !out.contains("forged") && !out.contains("moved"),
        "another subscriber's notices, and notices that fail a check, are not shown: {out}"
    );
    let inbox = it.topic(topics::DELIVERIES);
    let partition = partition_for("B1", DEFAULT_PARTITIONS);
    assert!(
        out.contains(&format!(" of {inbox}/{partition}, ")),
        "it reads B1's partition of the inbox, and only it: {out}"
    );
    let warnings = stderr(&first);
    for warning in [
        "warning: refusing the notice at ",
        "Unauthenticated: the notice is not the pinned delivery worker's",
        "the notice does not open",
        "warning: refusing the record at ",
        "not a tessera event: ",
        "not Avro single-object encoded",
    ] {
        assert!(warnings.contains(warning), "{warning}: {warnings}");
    }

    let answered = |records: Vec<Record>| -> Vec<(String, String)> {
        records
            .iter()
            .map(|r| match event(r) {
                Event::ResponseSubmitted(s) => (s.offer_id.clone(), s.subscriber_id.clone()),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(
        answered(it.read(topics::RESPONSES).await),
        vec![("cheap".into(), "B1".into())]
    );

    // The verdict on B1's answer reaches its inbox, as the timekeeper and the delivery worker
    // would send it: a listener started later does not answer that offer again.
    it.notify("B1", &b1, topics::DECISIONS, release("cheap", "B1"))
        .await;
    let second = listen("always");
    assert!(second.status.success(), "{second:?}");
    let out = String::from_utf8(second.stdout).unwrap();
    assert!(
        out.contains("not answering offer cheap: already answered"),
        "{out}"
    );
    assert!(out.contains("responded to offer dear ["), "{out}");
    let mut responses = answered(it.read(topics::RESPONSES).await);
    responses.sort();
    assert_eq!(
        responses,
        vec![("cheap".into(), "B1".into()), ("dear".into(), "B1".into())],
        "each invitation answered once"
    );
}

#[tokio::test]
async fn status_prints_an_offers_history_in_receipt_order() {
    let it = Installation::new().await;
    it.published(&[
        "--identifier",
        "doc-X",
        "--name",
        "Quarterly report X",
        "--within",
        "1h",
        "--offer-id",
        "offer-1",
    ]);
    it.published(&[
        "--identifier",
        "doc-Y",
        "--name",
        "Another",
        "--within",
        "1h",
        "--offer-id",
        "offer-2",
    ]);
    it.write(
        topics::REQUESTS,
        "offer-1",
        invitation("offer-1", "B1", 9_000),
    )
    .await;
    it.subscriber_key("B1");
    it.ok(&["subscriber", "respond", "offer-1", "--id", "B1"]);
    it.ok(&["subscriber", "respond", "offer-2", "--id", "B1"]);
    it.write(topics::DECISIONS, "offer-1", release("offer-1", "B1"))
        .await;
    it.write(
        topics::DECISIONS,
        "offer-1",
        rejection("offer-1", "B2", RejectReason::NotInvited),
    )
    .await;
    let mut closed = example(|e| match e {
        Event::OfferClosed(c) => Some(c),
        _ => None,
    });
    closed.offer_id = "offer-1".into();
    it.write(topics::DECISIONS, "offer-1", closed).await;

    let out = it.ok(&["offer", "status", "offer-1"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "offer offer-1 by A (a@example.org)", "{out}");
    assert_eq!(lines[1], "  doc-X \"Quarterly report X\"", "{out}");
    assert_eq!(lines[2], "  rule: within 3600000 ms of the offer", "{out}");
    let expected = [
        "offer offer-1 published by A",
        "request ",
        "response from B1 to offer offer-1",
        "released credential cred-1 to B1 for offer offer-1",
        "rejected B2 for offer offer-1: NotInvited: ",
        "offer offer-1 closed at ",
    ];
    assert_eq!(
        lines.len(),
        3 + expected.len(),
        "only offer-1's records: {out}"
    );
    for (line, start) in lines[3..].iter().zip(expected) {
        let what = line.splitn(3, "  ").nth(2).unwrap_or_default();
        assert!(what.starts_with(start), "expected `{start}`: {out}");
        assert!(
            line.starts_with("20"),
            "each line starts with its broker stamp: {line}"
        );
    }
    assert!(!out.contains("offer-2"), "{out}");

    let json: serde_json::Value =
        serde_json::from_str(&it.ok(&["offer", "status", "offer-1", "--json"])).unwrap();
    let kinds: Vec<&str> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "OfferPublished",
            "InteractionRequested",
            "ResponseSubmitted",
            "CredentialReleased",
            "ResponseRejected",
            "OfferClosed"
        ]
    );
    let stamps: Vec<i64> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stamp"].as_i64().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");

    let missing = it.tessera(&["offer", "status", "no-such-offer"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr(&missing).trim(),
        "error: nothing on the log for offer no-such-offer"
    );
}

#[tokio::test]
async fn keys_are_generated_private_shown_as_text_and_refused_when_loose() {
    let it = Installation::new().await;
    let out = it.ok(&["keys", "generate", "--out", "keys/tk.key"]);
    assert!(
        out.starts_with("private key: keys/tk.key (mode 0600, never printed)\n"),
        "{out}"
    );
    let public = out
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("public key: ")
        .unwrap();
    let path = it.dir.path().join("keys/tk.key");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let private = std::fs::read(&path).unwrap();
    let private_hex: String = private.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        !out.contains(&private_hex),
        "the private key is never printed"
    );
    assert_eq!(it.ok(&["keys", "public", "keys/tk.key"]).trim(), public);
    assert_eq!(
        public.parse::<sealing::PublicKey>().unwrap(),
        keys::load(&path).unwrap().public_key(),
        "the printed text reads back as the key"
    );

    let again = it.tessera(&["keys", "generate", "--out", "keys/tk.key"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("exists already; refusing to overwrite a key"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = it.tessera(&["keys", "public", "keys/tk.key"]);
    assert_eq!(loose.status.code(), Some(1));
    assert_eq!(
        stderr(&loose).trim(),
        "error: key file keys/tk.key is open to others (mode 644); make it private with `chmod 600 keys/tk.key`"
    );
    std::fs::write(it.dir.path().join("short.key"), [1u8; 31]).unwrap();
    std::fs::set_permissions(
        it.dir.path().join("short.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let short = it.tessera(&["keys", "public", "short.key"]);
    assert_eq!(
        stderr(&short).trim(),
        "error: key file short.key holds 31 bytes, not the 32 raw bytes of an X25519 key"
    );
    let bad_text = it.publish(&[
        "--identifier",
        "doc-X",
        "--name",
        "X",
        "--within",
        "1h",
        "--timekeeper-key",
        "abc",
    ]);
    assert_eq!(bad_text.status.code(), Some(2));
    assert!(
        stderr(&bad_text).contains("a public key is written as 64 hexadecimal digits"),
        "{bad_text:?}"
    );
}

#[tokio::test]
async fn payloads_are_sealed_in_the_custody_asked_inline_or_in_chunks() {
    let it = Installation::new().await;
    let offer = |id: &str, payload: &str, extra: &[&str]| {
        let mut args = vec![
            "--identifier",
            "doc-X",
            "--name",
            "X",
            "--within",
            "1h",
            "--offer-id",
        ];
        args.push(id);
        args.extend(extra);
        it.publish_payload(payload, &args)
    };
    let escrow = offer("escrowed", "payload.txt", &["--custody", "escrow"]);
    assert!(escrow.status.success(), "{escrow:?}");
    let out = String::from_utf8(escrow.stdout).unwrap();
    assert!(
        out.contains("  custody: escrow; the timekeeper holds both halves"),
        "{out}"
    );
    assert!(!it.dir.path().join(".tessera/keys/A/escrowed.half").exists());

    // Given explicitly, the timekeeper key need not be on the log; here it is another key, so
    // the platform half is sealed to it and not to the installation's timekeeper.
    let other = keys::new_private_key();
    let other_text = other.public_key().to_string();
    let explicit = offer(
        "explicit",
        "payload.txt",
        &["--timekeeper-key", &other_text, "--key-dir", "halves"],
    );
    assert!(explicit.status.success(), "{explicit:?}");
    assert!(it.dir.path().join("halves/explicit.half").exists());

    // 1 MiB of random bytes is more than travels inline: it goes in two chunks, and the offer's
    // package is their manifest.
    let mut noise = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open("/dev/urandom").unwrap(), 1 << 20),
        &mut noise,
    )
    .unwrap();
    std::fs::write(it.dir.path().join("big.bin"), noise).unwrap();
    let big = offer("big", "big.bin", &["--custody", "escrow"]);
    assert!(big.status.success(), "{big:?}");
    let out = String::from_utf8(big.stdout).unwrap();
    assert!(
        out.contains("  payload: 1048576 bytes, sealed in 2 chunks on "),
        "{out}"
    );
    assert_eq!(it.read(topics::PACKAGES).await.len(), 2);

    let records = it.read(topics::OFFERS).await;
    let mut offers: Vec<&OfferPublished> = records
        .iter()
        .map(|r| match event(r) {
            Event::OfferPublished(o) => o,
            other => panic!("{other:?}"),
        })
        .collect();
    offers.sort_by_key(|o| o.offer_id.clone());
    let custodies: Vec<(&str, Custody)> = offers
        .iter()
        .map(|o| (o.offer_id.as_str(), o.credential.custody))
        .collect();
    assert_eq!(
        custodies,
        [
            ("big", Custody::Escrow),
            ("escrowed", Custody::Escrow),
            ("explicit", Custody::CoSign)
        ]
    );
    let manifest = sealing::chunks::Manifest::of_package(&offers[0].credential.package);
    assert!(matches!(manifest, Some(Ok(m)) if m.chunks == 2 && m.bytes == 1 << 20));
    let explicit = offers[2];
    let platform = &explicit.credential.platform_half;
    assert!(
        sealing::open_from_provider(platform, Half::Platform, "explicit", &other).is_ok()
            && sealing::open_from_provider(platform, Half::Platform, "explicit", &it.timekeeper)
                .is_err()
    );
}

/// A release of `offer` to `subscriber` as the timekeeper writes it, its evidence saying the
/// response came `after_ms` into a one-hour `Within` rule.
fn release_in(
    offer: &str,
    subscriber: &str,
    credential: &str,
    after_ms: i64,
) -> CredentialReleased {
    let Event::CredentialReleased(mut released) = release(offer, subscriber) else {
        unreachable!()
    };
    released.credential_id = credential.into();
    released.provider_half = None;
    released.offer.time_rule = TimeRule::Within(Within {
        duration_ms: 3_600_000,
    });
    released.response.stamp = released.offer.position.stamp + after_ms;
    released
}

#[tokio::test]
async fn the_agent_cosigns_releases_of_its_own_offers_once_with_the_registered_key() {
    let it = Installation::new().await;
    for id in ["B1", "B3"] {
        it.ok(&[
            "subscriber",
            "register",
            "--id",
            id,
            "--contact",
            "b@example.org",
            "--interest",
            "id=doc-X",
        ]);
    }
    for offer in ["offer-1", "offer-2"] {
        it.published(&[
            "--identifier",
            "doc-X",
            "--name",
            "X",
            "--within",
            "1h",
            "--offer-id",
            offer,
        ]);
    }
    // Provider Z's offer, whose half A does not keep.
    let mut foreign = example(|e| match e {
        Event::OfferPublished(o) => Some(o),
        _ => None,
    });
    foreign.offer_id = "foreign".into();
    foreign.provider_id = "Z".into();
    it.write(topics::OFFERS, "foreign", foreign).await;

    // B1 answers offer-1; the release of cred-1 cites that response where it sits.
    it.ok(&["subscriber", "respond", "offer-1", "--id", "B1"]);
    let mut cred_1 = release_in("offer-1", "B1", "cred-1", 1_000);
    cred_1.offer.position = it.position_of(topics::OFFERS, "offer-1").await;
    cred_1.response = it.position_of(topics::RESPONSES, "offer-1").await;
    let mut escrowed = release_in("offer-1", "B3", "cred-escrow", 1_000);
    escrowed.provider_half = Some(escrowed.platform_half.clone());
    let releases = [
        cred_1,
        release_in("offer-1", "B2", "cred-2", 1_000),
        release_in("offer-2", "B3", "cred-3", 3_600_001),
        release_in("foreign", "B1", "cred-4", 1_000),
        escrowed,
    ];
    for released in releases {
        let offer = released.offer_id.clone();
        it.write_as_timekeeper(topics::DECISIONS, &offer, released)
            .await;
    }
    // Anyone may write tessera.decisions as far as the signature layer knows: a release the
    // timekeeper did not sign, and one citing a response that is not where it says.
    it.write(
        topics::DECISIONS,
        "offer-1",
        release_in("offer-1", "B3", "cred-forged", 1_000),
    )
    .await;
    let mut misquoted = release_in("offer-1", "B3", "cred-misquoted", 1_000);
    misquoted.offer.position = it.position_of(topics::OFFERS, "offer-1").await;
    misquoted.response = it.position_of(topics::RESPONSES, "offer-1").await;
    it.write_as_timekeeper(topics::DECISIONS, "offer-1", misquoted)
        .await;

    let agent = |provider: &str| {
        it.tessera(&[
            "provider",
            "agent",
            "--provider",
            provider,
            "--key-dir",
            ".tessera/keys/A",
            "--until-idle",
            "3s",
        ])
    };
    let first = agent("A");
    assert!(first.status.success(), "{first:?}");
    let out = String::from_utf8(first.stdout.clone()).unwrap();
    assert!(
        out.contains("co-signed credential cred-1 of offer offer-1 to B1 ["),
        "{out}"
    );
    let warnings = stderr(&first);
    assert!(
        warnings.contains(&format!(
            "warning: refused to co-sign credential cred-2 of offer offer-1 to B2: subscriber B2 \
             has no registration on {}",
            it.topic(topics::SUBSCRIBERS)
        )),
        "{warnings}"
    );
    assert!(
        warnings.contains(
            "refused to co-sign credential cred-3 of offer offer-2 to B3: its evidence does not \
             meet the offer's rule"
        ),
        "{warnings}"
    );
    assert!(
        warnings.contains(
            "refused to co-sign credential cred-forged of offer offer-1 to B3: Unauthenticated: \
             the release is not the pinned timekeeper's"
        ),
        "{warnings}"
    );
    assert!(
        warnings.contains(
            "refused to co-sign credential cred-misquoted of offer offer-1 to B3: the response it \
             cites is B1's to offer-1"
        ),
        "{warnings}"
    );
    assert!(
        !out.contains("cred-4") && !warnings.contains("cred-4"),
        "another provider's offer"
    );
    assert!(
        !out.contains("cred-escrow") && !warnings.contains("cred-escrow"),
        "escrow"
    );

    let shares: Vec<ProviderShareReleased> = it
        .read(topics::COSIGNS)
        .await
        .iter()
        .map(|r| match event(r) {
            Event::ProviderShareReleased(share) => share.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(shares.len(), 1, "{shares:?}");
    let share = &shares[0];
    assert_eq!(
        (
            share.offer_id.as_str(),
            share.credential_id.as_str(),
            share.subscriber_id.as_str()
        ),
        ("offer-1", "cred-1", "B1")
    );
    // B1 opens the half with the key it registered, bound to this release, and with the
    // platform half the target data.
    let b1 = keys::load(&it.dir.path().join(".tessera/keys/B1.key")).unwrap();
    let release = Release {
        offer_id: "offer-1",
        subscriber_id: "B1",
        credential_id: "cred-1",
    };
    let provider_half =
        sealing::open_from_release(&share.provider_half, Half::Provider, &release, &b1).unwrap();
    let offers = it.read(topics::OFFERS).await;
    let Event::OfferPublished(offer) = event(&offers[0]) else {
        panic!("{offers:?}")
    };
    let platform_half = sealing::open_from_provider(
        &offer.credential.platform_half,
        Half::Platform,
        "offer-1",
        &it.timekeeper,
    )
    .unwrap();
    let opened = sealing::open_package(
        &offer.credential.package,
        "offer-1",
        &platform_half,
        &provider_half,
    )
    .unwrap();
    assert_eq!(opened.as_slice(), PAYLOAD);

    let second = agent("A");
    let out = String::from_utf8(second.stdout).unwrap();
    assert!(
        out.contains("co-signed credential cred-1 of offer offer-1 to B1 before"),
        "{out}"
    );
    assert_eq!(
        it.read(topics::COSIGNS).await.len(),
        1,
        "once per credential"
    );

    // The agent of another provider, given A's halves but with a key of its own, co-signs none
    // of A's offers.
    it.write_as_timekeeper(
        topics::DECISIONS,
        "offer-1",
        release_in("offer-1", "B3", "cred-5", 1_000),
    )
    .await;
    let z = it.dir.path().join(".tessera/keys/Z");
    std::fs::create_dir_all(&z).unwrap();
    for half in ["offer-1.half", "offer-2.half"] {
        let from = it.dir.path().join(".tessera/keys/A").join(half);
        std::fs::copy(from, z.join(half)).unwrap();
    }
    keys::generate(&z.join("provider.key")).unwrap();
    let impostor = it.tessera(&[
        "provider",
        "agent",
        "--provider",
        "Z",
        "--key-dir",
        ".tessera/keys/Z",
        "--until-idle",
        "3s",
    ]);
    assert!(
        stderr(&impostor).contains(
            "refused to co-sign credential cred-5 of offer offer-1 to B3: NotOwner: offer offer-1 \
             was not published and signed by provider Z"
        ),
        "{impostor:?}"
    );
    assert_eq!(it.read(topics::COSIGNS).await.len(), 1);
}

/// Seals `PAYLOAD` for `offer` in escrow to the installation's timekeeper and delivers it to
/// `subscriber` (whose key is `key`) as the delivery worker would.
fn delivery(
    it: &Installation,
    offer: &str,
    credential: &str,
    subscriber: &str,
    key: &PrivateKey,
) -> CredentialDelivered {
    let sealed = provider::seal(
        offer,
        provider::Sealing {
            target_data: PAYLOAD,
            custody: Custody::Escrow,
            timekeeper: &it.timekeeper.public_key(),
        },
    )
    .unwrap()
    .credential;
    let release = Release {
        offer_id: offer,
        subscriber_id: subscriber,
        credential_id: credential,
    };
    let reseal = |sealed, half| {
        let opened = sealing::open_from_provider(sealed, half, offer, &it.timekeeper).unwrap();
        sealing::seal_to_responder(&opened, half, &release, &key.public_key()).unwrap()
    };
    let provider = provider_a();
    CredentialDelivered {
        event_id: uuid::Uuid::new_v4().to_string(),
        credential_id: credential.into(),
        offer_id: offer.into(),
        subscriber_id: subscriber.into(),
        package: sealed.package.clone(),
        platform_half: reseal(&sealed.platform_half, Half::Platform),
        provider_half: reseal(sealed.escrow_half.as_ref().unwrap(), Half::Provider),
        attempts: 1,
        provider_id: "A".into(),
        provider_signing_key: provider.verifying_key().to_bytes(),
        package_signature: identity::sign_package(&provider, offer, &sealed.package).to_vec(),
    }
}

/// Provider A's signing key in the deliveries these tests write.
fn provider_a() -> SigningKey {
    SigningKey::derive(&PrivateKey::from_bytes(&[0xa; 32]).unwrap())
}

#[tokio::test]
async fn open_only_opens_and_a_credential_is_accepted_or_declined_once_opened_or_not() {
    let it = Installation::new().await;
    let b1 = it.subscriber_key("B1");
    let first = delivery(&it, "offer-1", "cred-1", "B1", &b1);
    // A copy of cred-1 that is not the delivery worker's, first: skipped.
    it.write(topics::DELIVERIES, "B1", first.clone()).await;
    // Delivery is at least once: the same credential twice.
    it.deliver("B1", first.clone()).await;
    it.deliver("B1", first).await;
    it.deliver("B1", delivery(&it, "offer-2", "cred-2", "B1", &b1))
        .await;
    // A package A signed, altered afterwards by its own provider: the checks pass, opening fails.
    let mut tampered = delivery(&it, "offer-3", "cred-3", "B1", &b1);
    tampered.package[20] ^= 0x04;
    tampered.package_signature =
        identity::sign_package(&provider_a(), "offer-3", &tampered.package).to_vec();
    it.deliver("B1", tampered).await;
    // A package someone other than A signed, under A's name: skipped.
    let mut repackaged = delivery(&it, "offer-4", "cred-4", "B1", &b1);
    let stranger = SigningKey::derive(&PrivateKey::from_bytes(&[0x5; 32]).unwrap());
    repackaged.package_signature =
        identity::sign_package(&stranger, "offer-4", &repackaged.package).to_vec();
    it.deliver("B1", repackaged).await;

    let which = it.tessera(&["subscriber", "open", "--id", "B1", "--out", "x.txt"]);
    assert_eq!(which.status.code(), Some(1));
    let refusals: Vec<String> = stderr(&which)
        .lines()
        .filter(|l| l.contains("refusing the delivery"))
        .map(str::to_string)
        .collect();
    assert_eq!(refusals.len(), 2, "{which:?}");
    assert!(
        refusals[0].contains(
            "Unauthenticated: the delivery of credential cred-1 is not the pinned delivery worker's"
        ),
        "{refusals:?}"
    );
    assert!(
        refusals[1].contains(
            "Unauthenticated: the package of credential cred-4 is not signed by provider A's key"
        ),
        "{refusals:?}"
    );
    assert!(
        error_line(&which).starts_with(
            "error: 3 credentials were delivered to B1: cred-1 (offer offer-1), cred-2 (offer \
             offer-2), cred-3 (offer offer-3); choose one with --credential or --offer"
        ),
        "{which:?}"
    );

    let on = |command: &str, args: &[&str]| {
        let mut all = vec!["subscriber", command, "--id", "B1"];
        all.extend_from_slice(args);
        it.tessera(&all)
    };
    let open = || on("open", &["--credential", "cred-1", "--out", "x.txt"]);
    let opened = open();
    assert!(opened.status.success(), "{opened:?}");
    let out = String::from_utf8(opened.stdout).unwrap();
    assert!(
        out.starts_with("credential cred-1 of offer offer-1 delivered ["),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "opened: {} bytes written to x.txt\nfirst line: Quarterly report X\nno outcome yet: \
             accept or decline it with `tessera subscriber accept` or `tessera subscriber decline`",
            PAYLOAD.len()
        )),
        "{out}"
    );
    let written = it.dir.path().join("x.txt");
    assert_eq!(std::fs::read(&written).unwrap(), PAYLOAD);
    let mode = std::fs::metadata(&written).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        it.read(topics::OUTCOMES).await.is_empty(),
        "opening writes no outcome"
    );

    let accepted = on("accept", &["--credential", "cred-1"]);
    assert!(accepted.status.success(), "{accepted:?}");
    let out = String::from_utf8(accepted.stdout).unwrap();
    assert!(out.contains("\naccepted ["), "{out}");
    it.tell_outcome("B1", &b1, "cred-1").await;
    // One outcome per credential: a second decision is refused, naming the first.
    for (command, args) in [
        ("accept", &["--credential", "cred-1"][..]),
        (
            "decline",
            &["--offer", "offer-1", "--reason", "changed my mind"],
        ),
    ] {
        let again = on(command, args);
        assert_eq!(again.status.code(), Some(1), "{again:?}");
        assert!(
            String::from_utf8_lossy(&again.stdout)
                .contains("credential cred-1 of offer offer-1 was accepted ["),
            "{again:?}"
        );
        assert_eq!(
            error_line(&again),
            "error: credential cred-1 of offer offer-1 has its outcome already; a credential is \
             accepted or declined once"
        );
        // Warnings about the refused copies in the inbox aside, the error is one line.
        let said = stderr(&again);
        assert_eq!(
            said.lines().filter(|l| !l.contains("WARN")).count(),
            1,
            "{again:?}"
        );
    }
    let again = String::from_utf8(open().stdout).unwrap();
    assert!(
        again.contains("credential cred-1 of offer offer-1 was accepted ["),
        "{again}"
    );

    let broken = on("open", &["--offer", "offer-3", "--out", "y.txt"]);
    assert_eq!(broken.status.code(), Some(1));
    assert_eq!(
        error_line(&broken),
        "error: cannot open credential cred-3 of offer offer-3: the package does not decrypt \
         with the two halves: the package or a half was altered, or they belong to different \
         offers"
    );
    assert!(!it.dir.path().join("y.txt").exists());

    // Declining needs no opening.
    let declined = on("decline", &["--offer", "offer-2", "--reason", "not needed"]);
    assert!(declined.status.success(), "{declined:?}");
    let declined = String::from_utf8(declined.stdout).unwrap();
    assert!(declined.contains("\ndeclined ["), "{declined}");
    assert!(!declined.contains("first line"), "declining opens nothing");
    it.tell_outcome("B1", &b1, "cred-2").await;
    let late = on("accept", &["--offer", "offer-2"]);
    assert_eq!(late.status.code(), Some(1), "{late:?}");
    assert!(
        String::from_utf8_lossy(&late.stdout)
            .contains("credential cred-2 of offer offer-2 was declined ["),
        "{late:?}"
    );
    let missing = on("decline", &["--credential", "nope"]);
    assert_eq!(
        error_line(&missing),
        "error: no credential nope was delivered to B1"
    );
    // Deciding checks the delivery as opening does.
    for (command, out) in [("open", &["--out", "z.txt"][..]), ("accept", &[])] {
        let mut args = vec!["--credential", "cred-4"];
        args.extend_from_slice(out);
        let refused = on(command, &args);
        assert_eq!(
            error_line(&refused),
            "error: no credential cred-4 was delivered to B1",
            "a package A did not sign is not A's credential"
        );
    }
    assert!(!it.dir.path().join("z.txt").exists());

    let outcomes: Vec<Event> = it
        .read(topics::OUTCOMES)
        .await
        .iter()
        .map(|r| event(r).clone())
        .collect();
    assert_eq!(
        outcomes.len(),
        2,
        "one outcome per credential: {outcomes:?}"
    );
    assert!(outcomes.iter().any(|e| matches!(
        e,
        Event::CredentialAccepted(a) if a.credential_id == "cred-1" && a.offer_id == "offer-1"
    )));
    assert!(outcomes.iter().any(|e| matches!(
        e,
        Event::CredentialDeclined(d)
            if d.credential_id == "cred-2" && d.reason.as_deref() == Some("not needed")
    )));
}

//! Following a live installation: `tessera subscriber listen` reads its subscriber's inbox and
//! nothing else (two subscribers listening see only their own mail, and other subscribers' mail
//! costs a listener only where it shares its partition), shows the closes of the offers its
//! subscriber was invited to and answers a window when it opens by the broker's clock, and
//! `tessera provider watch` prints a provider's offers from publication to close, and nothing of
//! another provider's or of a forgery in its name. The processors run in-process; the commands
//! run as a user runs them.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`): `compose/kafka up`.

mod support;

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tessera::demo::Processors;
use tessera_contract::rules::format_stamp;
use tessera_contract::sealing::notices::open_notice;
use tessera_contract::signing::SigningKey;
use tessera_contract::topics::{DECISIONS, DELIVERIES, OFFERS, REQUESTS, RESPONSES};
use tessera_contract::{Custody, Event, examples, identity};
use tessera_producers::client::{partition_for, read_to_end};
use tessera_producers::keys;
use tokio::process::{Child, Command};

use support::{World, now_ms};

/// An installation with its processors running, warmed up, and a payload file to offer.
struct Live {
    world: World,
    processors: Processors,
    /// The timekeeper's signing key fingerprint, which the commands pin.
    timekeeper: String,
}

impl Live {
    async fn start() -> Live {
        let (world, timekeeper) = World::new(3).await;
        let fingerprint = SigningKey::derive(&timekeeper)
            .verifying_key()
            .fingerprint();
        std::fs::write(
            world.dir.path().join("payload.txt"),
            b"Quarterly report X\n",
        )
        .unwrap();
        let state = world.dir.path().join("state");
        let processors = Processors::start(&world.kafka, &state, timekeeper).unwrap();
        let live = Live {
            world,
            processors,
            timekeeper: fingerprint,
        };
        live.warm_up().await;
        live
    }

    /// One offer through the matcher and the timekeeper, so that the scenarios' clocks start
    /// with the consumer groups formed. Its subscriber, `warm`, needs document X too, so it is
    /// invited to every offer of it after this one.
    async fn warm_up(&self) {
        let key = self.register("warm").await;
        // Without late invitations: a subscriber a scenario registers later is not invited to
        // it, so its listener hears only the scenario's offers.
        let rule = ["--within", "10m", "--no-late-invitations"];
        self.publish("W", "warm-up", "doc-X", &rule).await;
        self.world.wait_for(REQUESTS, "warm-up", 1).await;
        support::respond(
            &self.world.writer,
            self.world.prefix(),
            "warm-up",
            "warm",
            &key,
        )
        .await;
        self.world.wait_for(DECISIONS, "warm-up", 1).await;
    }

    async fn stop(self) {
        self.processors.stop().await.unwrap();
    }

    /// Registers subscriber `id`, needing document X, with its key in `<id>.key`.
    async fn register(&self, id: &str) -> tessera_contract::sealing::PrivateKey {
        let key_file = self.world.dir.path().join(format!("{id}.key"));
        support::register(&self.world.writer, self.world.prefix(), id, &key_file).await
    }

    /// `tessera` with `args`, in the installation's directory, pinning its platform keys.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        command
            .args(args)
            .current_dir(self.world.dir.path())
            .env("TESSERA_BROKERS", support::brokers())
            .env("TESSERA_TOPIC_PREFIX", self.world.prefix())
            .env("TESSERA_TIMEKEEPER_FINGERPRINT", &self.timekeeper)
            .env(
                "TESSERA_DELIVERY_FINGERPRINT",
                self.processors.delivery.fingerprint(),
            )
            .env(
                "TESSERA_LEDGER_FINGERPRINT",
                self.processors.ledger.fingerprint(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Starts a command that runs while the test goes on.
    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).spawn().unwrap()
    }

    /// Runs a command that must succeed; returns its standard output.
    async fn ok(&self, args: &[&str]) -> String {
        let output = self.command(args).output().await.unwrap();
        succeeded(args, output).0
    }

    /// Publishes offer `offer_id` of document `identifier` by `provider` (its key in
    /// `.tessera/keys/<provider>`), in escrow custody, with the rule `rule`.
    async fn publish(&self, provider: &str, offer_id: &str, identifier: &str, rule: &[&str]) {
        let mut args = vec![
            "provider",
            "publish",
            "--provider",
            provider,
            "--contact",
            "p@example.org",
            "--identifier",
            identifier,
            "--name",
            "Quarterly report X",
            "--payload",
            "payload.txt",
            "--offer-id",
            offer_id,
            "--custody",
            "escrow",
        ];
        args.extend(rule);
        self.ok(&args).await;
    }
}

/// The standard output and error of a command that must have succeeded.
fn succeeded(args: &[&str], output: Output) -> (String, String) {
    assert!(output.status.success(), "{args:?}: {output:?}");
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// What a command started with [`Live::spawn`] printed, once it ended by itself.
async fn finished(child: Child, what: &str) -> (String, String) {
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not stop"))
        .unwrap();
    succeeded(&[what], output)
}

/// `tessera subscriber listen` for `id` until 8 s pass with nothing for it.
fn listen_args(id: &str) -> Vec<String> {
    let key_file = format!("{id}.key");
    ["subscriber", "listen", "--id", id, "--key-file", &key_file]
        .into_iter()
        .chain(["--until-idle", "8s"])
        .map(str::to_string)
        .collect()
}

/// Arguments as a command takes them.
fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The partition `listen`'s last line says it read, and how many records.
fn read_of(out: &str) -> (i32, u64) {
    let line = out
        .lines()
        .rfind(|l| l.starts_with("read "))
        .unwrap_or_else(|| panic!("listen says what it read: {out}"));
    let records = line["read ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let partition = line
        .split(", ")
        .next()
        .and_then(|l| l.rsplit('/').next())
        .unwrap()
        .parse()
        .unwrap();
    (partition, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_subscribers_listening_each_see_their_own_mail_and_nothing_of_the_other() {
    let live = Live::start().await;
    live.register("B1").await;
    let b2 = live.world.dir.path().join("B2.key");
    live.ok(&[
        "subscriber",
        "register",
        "--id",
        "B2",
        "--contact",
        "b2@example.org",
        "--interest",
        "id=doc-Y",
        "--key-file",
        b2.to_str().unwrap(),
    ])
    .await;
    let (b1_args, b2_args) = (listen_args("B1"), listen_args("B2"));
    let b1_listen = live.spawn(&strs(&b1_args));
    let b2_listen = live.spawn(&strs(&b2_args));
    tokio::time::sleep(Duration::from_secs(3)).await;
    live.publish("A", "for-b1", "doc-X", &["--within", "10m"])
        .await;
    live.publish("A", "for-b2", "doc-Y", &["--within", "10m"])
        .await;

    let (b1_out, _) = finished(b1_listen, "B1's listen").await;
    let (b2_out, _) = finished(b2_listen, "B2's listen").await;
    assert!(b1_out.contains("to B1 for offer for-b1: doc-X"), "{b1_out}");
    assert!(b2_out.contains("to B2 for offer for-b2: doc-Y"), "{b2_out}");
    for (out, other, offer) in [(&b1_out, "B2", "for-b2"), (&b2_out, "B1", "for-b1")] {
        assert!(
            !out.contains(other) && !out.contains(offer) && !out.contains("warm"),
            "a listener sees nothing of anyone else's mail: {out}"
        );
    }
    let partitions = 3;
    for (out, id) in [(&b1_out, "B1"), (&b2_out, "B2")] {
        let (partition, _) = read_of(out);
        assert_eq!(partition, partition_for(id, partitions), "{out}");
    }

    // Reading the whole inbox topic (any subscriber may), B2 finds B1's notices and opens none;
    // B1's own key opens each.
    let inbox = DELIVERIES.full_name(live.world.prefix());
    let key = |id: &str| keys::load(&live.world.dir.path().join(format!("{id}.key"))).unwrap();
    let (b1_key, b2_key) = (key("B1"), key("B2"));
    let (mut b1_notices, mut opened_by_b1, mut opened_by_b2) = (0, 0, 0);
    for record in read_to_end(&live.world.config, &inbox, None).await.unwrap() {
        let Some(Ok(Event::Notice(notice))) = record.event else {
            continue;
        };
        if notice.subscriber_id == "B1" {
            b1_notices += 1;
            let opens = |to: &str, key| open_notice(&notice.sealed, to, &notice.event_id, key);
            opened_by_b1 += usize::from(opens("B1", &b1_key).is_ok());
            let tries = [opens("B1", &b2_key), opens("B2", &b2_key)];
            opened_by_b2 += tries.iter().filter(|t| t.is_ok()).count();
        }
    }
    assert!(b1_notices > 0, "B1's invitation is on the inbox topic");
    assert_eq!(opened_by_b1, b1_notices, "B1 opens each of its notices");
    assert_eq!(opened_by_b2, 0, "B2 opens none of B1's notices");
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_subscribers_mail_costs_a_listener_only_on_its_own_partition() {
    let live = Live::start().await;
    live.register("B1").await;
    // Mail for 300 other subscribers, ten records each, spread over the inbox's partitions as
    // their ids hash: what an installation's traffic puts beside B1's.
    let inbox = DELIVERIES.full_name(live.world.prefix());
    let noise = SigningKey::derive(&keys::new_private_key());
    let notice = examples::all()
        .into_iter()
        .find(|e| matches!(e, Event::Notice(_)))
        .unwrap();
    let mut pending = Vec::new();
    for n in 0..300 {
        let id = format!("other-{n}");
        for _ in 0..10 {
            let writer = &live.world.writer;
            pending.push(
                writer
                    .enqueue_as(&noise, live.world.prefix(), DELIVERIES, &id, &notice)
                    .unwrap(),
            );
        }
    }
    let written = pending.len() as u64;
    for record in pending {
        record.written().await.unwrap();
    }
    live.publish("A", "for-b1", "doc-X", &["--within", "10m"])
        .await;
    live.world.wait_for(REQUESTS, "for-b1", 2).await;
    let b1 = listen_args("B1");
    let from_beginning = [&strs(&b1)[..], &["--from-beginning"]].concat();
    let (out, _) = finished(live.spawn(&from_beginning), "listen").await;
    assert!(out.contains("to B1 for offer for-b1: doc-X"), "{out}");
    let (partition, records) = read_of(&out);
    let on_its_partition = read_to_end(&live.world.config, &inbox, Some(&[partition]))
        .await
        .unwrap()
        .len() as u64;
    let on_the_topic = read_to_end(&live.world.config, &inbox, None)
        .await
        .unwrap()
        .len() as u64;
    assert_eq!(records, on_its_partition, "{out}");
    assert!(on_the_topic >= written);
    assert!(
        records < on_the_topic / 2,
        "listen read {records} of the {on_the_topic} inbox records: {out}"
    );
    let said = out
        .lines()
        .rfind(|l| l.starts_with("read "))
        .unwrap_or_default();
    eprintln!(
        "listen: {said}; the inbox topic holds {on_the_topic} records, {written} of them for 300 \
         other subscribers"
    );
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listen_shows_once_the_close_of_each_offer_it_was_invited_to_and_no_other() {
    let live = Live::start().await;
    live.register("B1").await;
    live.publish("A", "withdrawn", "doc-X", &["--within", "10m"])
        .await;
    live.publish("A", "ending", "doc-X", &["--within", "8s"])
        .await;
    live.publish("A", "not-mine", "doc-Y", &["--within", "10m"])
        .await;
    live.world.wait_for(REQUESTS, "withdrawn", 2).await;
    live.world.wait_for(REQUESTS, "ending", 2).await;

    // Started after the invitations: it learns them from the log.
    let listen = live.spawn(&[
        "subscriber",
        "listen",
        "--id",
        "B1",
        "--key-file",
        "B1.key",
        "--until-idle",
        "8s",
    ]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for offer in ["withdrawn", "not-mine"] {
        live.ok(&["provider", "withdraw", offer, "--provider", "A"])
            .await;
    }
    let (out, _) = finished(listen, "subscriber listen").await;
    assert_eq!(
        out.matches("offer withdrawn closed at ").count(),
        1,
        "{out}"
    );
    assert!(
        out.contains("requested 2, responded 0, released 0, rejected 0, withdrawn ["),
        "{out}"
    );
    let ending = out
        .lines()
        .find(|l| l.starts_with("offer ending closed at "))
        .unwrap_or_else(|| panic!("the close of an ended offer is shown: {out}"));
    assert!(!ending.contains("withdrawn"), "{ending}");
    assert!(ending.contains(&live.world.kafka.topic_prefix), "{ending}");
    assert!(!out.contains("not-mine"), "{out}");
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listen_answers_a_window_when_it_opens_by_the_brokers_clock() {
    let live = Live::start().await;
    live.register("B1").await;
    let listen = live.spawn(&[
        "subscriber",
        "listen",
        "--id",
        "B1",
        "--respond",
        "always",
        "--key-file",
        "B1.key",
        "--until-idle",
        "10s",
        "--margin",
        "300ms",
    ]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Far enough ahead that the invitation reaches listen before the window opens, even on a
    // loaded machine: one that came after would be answered at once, and nothing scheduled.
    let opens = now_ms() + 10_000;
    let window = format!("{}..{}", format_stamp(opens), format_stamp(opens + 60_000));
    live.publish("A", "later", "doc-X", &["--window", &window])
        .await;

    let decisions = live.world.wait_for(DECISIONS, "later", 1).await;
    let released = support::released(&decisions, "B1");
    assert!(
        released.response.stamp >= opens,
        "answered at {}, before the window opened at {}",
        format_stamp(released.response.stamp),
        format_stamp(opens)
    );
    let (out, _) = finished(listen, "subscriber listen").await;
    let scheduled = format!(
        "answering offer later at {} (window opens {}, margin 300ms;",
        format_stamp(opens + 300),
        format_stamp(opens)
    );
    assert!(out.contains(&scheduled), "{scheduled}\n{out}");
    let order: Vec<usize> = [
        "answering offer later",
        "responded to offer later",
        "for offer later (response received",
    ]
    .iter()
    .map(|line| out.find(line).unwrap_or_else(|| panic!("{line}: {out}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    let responses = live.world.wait_for(RESPONSES, "later", 1).await;
    assert_eq!(responses.len(), 1, "answered once: {responses:?}");
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_prints_a_providers_offer_from_publication_to_close_and_nothing_forged_or_foreign() {
    let live = Live::start().await;
    let b1 = live.register("B1").await;
    live.publish("A", "mine", "doc-X", &["--within", "10m"])
        .await;
    live.publish("C", "theirs", "doc-X", &["--within", "10m"])
        .await;
    // An offer in A's name, signed with a key of its own, after A's first offer pinned A's key.
    let forger = SigningKey::derive(&keys::new_private_key());
    let mut forged = examples::offer("forged", "A", Custody::Escrow);
    forged.signing_key = forger.verifying_key().to_bytes();
    let forged: Event = identity::with_package_signed(forged, &forger).into();
    let (writer, prefix) = (&live.world.writer, live.world.prefix());
    writer
        .write_as(&forger, prefix, OFFERS, "forged", &forged)
        .await
        .unwrap();

    live.world.wait_for(REQUESTS, "mine", 2).await;
    support::respond(writer, prefix, "mine", "B1", &b1).await;
    live.world.wait_for(DECISIONS, "mine", 1).await;
    live.world.credentials("B1", 1).await;
    live.ok(&["provider", "withdraw", "mine", "--provider", "A"])
        .await;
    live.world.wait_for(DECISIONS, "mine", 2).await;

    let watch = |json: bool| {
        let mut args = vec![
            "provider",
            "watch",
            "--provider",
            "A",
            "--from-beginning",
            "--until-idle",
            "4s",
        ];
        args.extend(json.then_some("--json"));
        let output = live.command(&args).output();
        async move { succeeded(&args, output.await.unwrap()) }
    };
    let (out, warnings) = watch(true).await;
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let signed_by = |kind: &str| -> Vec<Value> {
        lines
            .iter()
            .filter(|l| l["type"] == kind)
            .map(|l| l["signed_by"].clone())
            .collect()
    };
    assert_eq!(signed_by("OfferPublished"), ["provider"], "{out}");
    assert_eq!(
        signed_by("InteractionRequested"),
        [Value::Null, Value::Null],
        "{out}"
    );
    assert_eq!(signed_by("ResponseSubmitted"), [Value::Null], "{out}");
    assert_eq!(signed_by("CredentialReleased"), ["timekeeper"], "{out}");
    assert_eq!(signed_by("CredentialDelivered"), ["delivery"], "{out}");
    assert_eq!(signed_by("OfferWithdrawn"), ["provider"], "{out}");
    assert_eq!(signed_by("OfferClosed"), ["timekeeper"], "{out}");
    assert!(lines.iter().all(|l| l["offer_id"] == "mine"), "{out}");
    let closed = lines.iter().find(|l| l["type"] == "OfferClosed").unwrap();
    assert_eq!(closed["event"]["withdrawn"], true);
    assert_eq!(closed["event"]["released"], 1);
    for secret in [
        "\"package\"",
        "\"platform_half\"",
        "\"provider_half\"",
        "\"credential\"",
    ] {
        assert!(!out.contains(secret), "{secret}: {out}");
    }
    assert!(
        warnings.contains("ignoring the record at")
            && warnings.contains("NotOwner: offer forged names provider A"),
        "{warnings}"
    );

    // The same as text.
    let (text, _) = watch(false).await;
    assert!(text.contains("offer mine published by A"), "{text}");
    assert!(text.contains("(unverified)"), "{text}");
    assert!(text.contains("offer mine closed at "), "{text}");
    assert!(
        !text.contains("theirs") && !text.contains("forged"),
        "{text}"
    );
    live.stop().await;
}

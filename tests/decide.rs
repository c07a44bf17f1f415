//! Deciding after looking, on the real broker with every processor running: provider A publishes
//! two offers of document X with `tessera provider publish`, one with a decision deadline of two
//! seconds; subscribers open what is delivered to them with `tessera subscriber open`, which writes
//! no outcome, and then accept or decline it with `subscriber accept` and `subscriber decline`,
//! once per credential. The ledger credits the acceptance in time, nothing for the decline, and
//! nothing for the acceptance received after the deadline, which it dead-letters as `Late`,
//! judged on the broker's receipt stamps.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`): `compose/kafka up`.

use std::process::{Command, Output};
use std::time::Duration;

use tessera::demo::Processors;
use tessera_contract::signing::{SigningKey, VerifyingKey};
use tessera_contract::topics::{DEAD_LETTERS, DECISIONS, LEDGER, OUTCOMES, REQUESTS};
use tessera_contract::{Event, RewardCredited};
use tessera_producers::client::read_partition_of;
use tessera_producers::inbox::{self, Inbox};
use tessera_producers::keys;

mod support;
use support::World;

const DOCUMENT_X: &[u8] = b"Quarterly report X\nRevenue rose in every region; costs fell.\n";

/// The world's installation as its parties' command lines see it.
struct Cli<'a> {
    world: &'a World,
    timekeeper: VerifyingKey,
    delivery: VerifyingKey,
}

impl Cli<'_> {
    /// Runs `tessera args` in the world's directory, the platform's keys pinned by fingerprint.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .current_dir(self.world.dir.path())
            .env("TESSERA_BROKERS", support::brokers())
            .env("TESSERA_TOPIC_PREFIX", self.world.prefix())
            .env(
                "TESSERA_TIMEKEEPER_FINGERPRINT",
                self.timekeeper.fingerprint(),
            )
            .env("TESSERA_DELIVERY_FINGERPRINT", self.delivery.fingerprint())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    }

    /// `tessera subscriber COMMAND` for `subscriber` on its credential of `offer`, then `more`.
    fn subscriber(&self, command: &str, subscriber: &str, offer: &str, more: &[&str]) -> Output {
        let key_file = format!("{subscriber}.key");
        let mut args = vec![
            "subscriber",
            command,
            "--id",
            subscriber,
            "--offer",
            offer,
            "--key-file",
            &key_file,
        ];
        args.extend_from_slice(more);
        self.run(&args)
    }

    /// Provider A publishes offer `offer_id` of document X in escrow custody, open for ten
    /// minutes, rewarding 250 EUR per accepted credential, then `more`.
    fn publish(&self, offer_id: &str, more: &[&str]) {
        let flags = [
            "--offer-id",
            offer_id,
            "--custody",
            "escrow",
            "--payload",
            "x.txt",
        ];
        self.ok(&support::publish_doc_x_args(&[&flags[..], more].concat()));
    }
}

/// The one line a refused command prints on standard error, warnings aside.
fn refusal(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("WARN")).collect();
    assert_eq!(lines.len(), 1, "{output:?}");
    lines[0].to_string()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits until `subscriber`'s inbox holds a notice of its decision on a credential.
async fn told_of_decision(world: &World, delivery: &VerifyingKey, subscriber: &str) {
    let key = keys::load(&world.dir.path().join(format!("{subscriber}.key"))).unwrap();
    let inbox = Inbox {
        subscriber_id: subscriber,
        key: Some(&key),
        delivery,
    };
    for _ in 0..120 {
        let mail = inbox.read(&world.config, world.prefix()).await.unwrap();
        let decided = |e: &Event| {
            matches!(
                e,
                Event::CredentialAccepted(_) | Event::CredentialDeclined(_)
            )
        };
        if inbox::noticed(&mail).any(|n| decided(&n.event)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{subscriber}'s inbox does not tell of its decision");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_only_opens_and_only_an_acceptance_in_time_earns() {
    let (world, timekeeper_key) = World::new(3).await;
    std::fs::write(world.dir.path().join("x.txt"), DOCUMENT_X).unwrap();
    let state = world.dir.path().join("state");
    let timekeeper = SigningKey::derive(&timekeeper_key).verifying_key();
    let processors = Processors::start(&world.kafka, &state, timekeeper_key).unwrap();
    let cli = Cli {
        world: &world,
        timekeeper,
        delivery: processors.delivery,
    };
    for subscriber in ["B1", "B2", "B3"] {
        let key_file = world.dir.path().join(format!("{subscriber}.key"));
        support::register(&world.writer, world.prefix(), subscriber, &key_file).await;
    }
    cli.publish("relaxed", &[]);
    cli.publish("hurried", &["--decide-within", "2s"]);
    for (offer, subscribers) in [("relaxed", &["B1", "B2"][..]), ("hurried", &["B3"])] {
        world.wait_for(REQUESTS, offer, 3).await;
        for subscriber in subscribers {
            let respond = ["subscriber", "respond", offer, "--id", subscriber];
            let key_file = format!("{subscriber}.key");
            cli.ok(&[&respond[..], &["--key-file", &key_file]].concat());
        }
    }
    for subscriber in ["B1", "B2", "B3"] {
        world.credentials(subscriber, 1).await;
    }
    let relaxed = world.wait_for(DECISIONS, "relaxed", 2).await;
    let hurried = world.wait_for(DECISIONS, "hurried", 1).await;
    let credential_of = |subscriber: &str| match subscriber {
        "B3" => support::released(&hurried, subscriber).credential_id,
        _ => support::released(&relaxed, subscriber).credential_id,
    };
    let status = cli.ok(&["offer", "status", "hurried"]);
    assert!(
        status.contains("; reward 250 EUR (minor units); decide within 2s of the release\n"),
        "{status}"
    );

    // Opening writes the document and no outcome.
    for (subscriber, offer) in [("B1", "relaxed"), ("B2", "relaxed"), ("B3", "hurried")] {
        let out = format!("{subscriber}.txt");
        let opened = stdout(&cli.subscriber("open", subscriber, offer, &["--out", &out]));
        assert!(opened.contains("\nno outcome yet: "), "{opened}");
        assert_eq!(
            std::fs::read(world.dir.path().join(&out)).unwrap(),
            DOCUMENT_X
        );
        if offer == "hurried" {
            assert!(opened.contains("\ndecide by "), "{opened}");
            assert!(opened.contains(" (2s after the release at "), "{opened}");
        } else {
            assert!(!opened.contains("decide by"), "{opened}");
        }
    }
    for offer in ["relaxed", "hurried"] {
        let outcomes = read_partition_of(&world.config, &OUTCOMES.full_name(world.prefix()), offer)
            .await
            .unwrap();
        assert!(
            outcomes.is_empty(),
            "opening writes no outcome: {outcomes:?}"
        );
    }

    // B1 accepts, B2 declines; each only once.
    let accepted = stdout(&cli.subscriber("accept", "B1", "relaxed", &[]));
    assert!(accepted.contains("\naccepted ["), "{accepted}");
    let declined = cli.subscriber("decline", "B2", "relaxed", &["--reason", "not needed"]);
    assert!(stdout(&declined).contains("\ndeclined ["), "{declined:?}");
    // Each inbox tells its subscriber of its decision once the delivery worker has read it: what
    // accept and decline check before writing another.
    for subscriber in ["B1", "B2"] {
        told_of_decision(&world, &processors.delivery, subscriber).await;
    }
    for (command, subscriber, verb) in [
        ("accept", "B1", "accepted"),
        ("decline", "B1", "accepted"),
        ("accept", "B2", "declined"),
    ] {
        let again = cli.subscriber(command, subscriber, "relaxed", &[]);
        let credential = format!("credential {}", credential_of(subscriber));
        assert!(
            stdout(&again).contains(&format!("{credential} of offer relaxed was {verb} [")),
            "{again:?}"
        );
        assert_eq!(
            refusal(&again),
            format!(
                "error: {credential} of offer relaxed has its outcome already; a credential is \
                 accepted or declined once"
            )
        );
    }

    // B3 accepts after its two seconds: delivered after its release, so by the broker's clock
    // (this host's) more than two seconds after the release stamp.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late = stdout(&cli.subscriber("accept", "B3", "hurried", &[]));
    assert!(late.contains("\naccepted ["), "{late}");

    let letters = world
        .wait_for(DEAD_LETTERS, OUTCOMES.name, 1)
        .await
        .into_iter()
        .filter_map(|e| match e {
            Event::DeadLetter(letter) => Some(letter.reason),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let late_credential = credential_of("B3");
    assert!(
        letters[0].starts_with(&format!(
            "Late: credential {late_credential} of offer hurried was accepted at 20"
        )) && letters[0].contains(", after its decision deadline 20")
            && letters[0].ends_with("); it earns nothing"),
        "{letters:?}"
    );
    let credits = |events: Vec<Event>| -> Vec<RewardCredited> {
        events
            .into_iter()
            .filter_map(|e| match e {
                Event::RewardCredited(credit) => Some(credit),
                _ => None,
            })
            .collect()
    };
    credits(world.wait_for(LEDGER, "A", 1).await);
    // Whatever else would be credited would be by now: the processors commit every 100 ms.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let credited = credits(world.wait_for(LEDGER, "A", 1).await);
    let credited: Vec<(String, i64)> = credited
        .into_iter()
        .map(|c| (c.credential_id, c.balance))
        .collect();
    assert_eq!(
        credited,
        [(credential_of("B1"), 250)],
        "B1's acceptance earns; B2's decline and B3's late acceptance do not"
    );
    processors.stop().await.unwrap();
}

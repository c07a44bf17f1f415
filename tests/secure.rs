//! The broker's own layer of trust, really running: a broker of its own with SASL_SSL
//! (SCRAM-SHA-512, a local CA) and ACLs on (`compose/kafka up --secure`), the ACL table applied
//! with `tessera acl apply` as admin, and the whole flow run with one principal per role: the
//! four processors as `tessera run` subprocesses, the provider's and the subscriber's commands
//! as users run them. The release must happen; then the subscriber principal is refused writing
//! what only the platform writes, and the provider refused writing what only subscribers write,
//! each by the broker's named error.
//!
//! Starts its own broker on ports 19192-19193 under `<target>/tmp/tessera-secure-broker`; needs
//! Java 17+ and Maven, like `compose/kafka` (no other broker needed).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

mod support;

const PORT: u16 = 19192;
const CONTROLLER_PORT: u16 = 19193;
const PAYLOAD: &[u8] = b"Quarterly report X\nRevenue rose in every region.\n";

fn home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tessera-secure-broker")
}

fn compose(args: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compose/kafka");
    let status = Command::new(script)
        .args(args)
        .env("TESSERA_HOME", home())
        .env("TESSERA_KAFKA_PORT", PORT.to_string())
        .env("TESSERA_KAFKA_CONTROLLER_PORT", CONTROLLER_PORT.to_string())
        .env("KAFKA_HEAP_OPTS", "-Xmx512M -Xms512M")
        .env_remove("TESSERA_KAFKA_SECURE")
        .env_remove("TESSERA_KAFKA_PROPERTIES")
        .status()
        .expect("run compose/kafka");
    assert!(
        status.success(),
        "compose/kafka {args:?} failed for the secure broker"
    );
}

/// A fresh secured broker, stopped when dropped.
struct SecureBroker;

impl SecureBroker {
    fn up() -> Self {
        // A fresh cluster every run: no ACLs or users left from an earlier one.
        compose(&["down"]);
        compose(&["wipe"]);
        compose(&["up", "--secure"]);
        SecureBroker
    }

    /// The librdkafka properties file of `user` (a role, or admin).
    fn properties(&self, user: &str) -> PathBuf {
        home()
            .join("kafka/secure")
            .join(format!("{user}.properties"))
    }

    /// A client configuration logged in as `user`.
    fn client(&self, user: &str) -> ClientConfig {
        let text = std::fs::read_to_string(self.properties(user)).unwrap();
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", format!("127.0.0.1:{PORT}"));
        for (key, value) in tessera::kafka::parse_properties(&text).unwrap() {
            config.set(key, value);
        }
        config
    }
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        compose(&["down"]);
    }
}

/// `tessera` with `user`'s properties, run in `dir`.
fn tessera(broker: &SecureBroker, dir: &Path, user: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .current_dir(dir)
        .env("TESSERA_BROKERS", format!("127.0.0.1:{PORT}"))
        .env("TESSERA_KAFKA_CONFIG", broker.properties(user))
        .env_remove("TESSERA_TOPIC_PREFIX")
        .env("RUST_LOG", "warn");
    command
}

fn run(broker: &SecureBroker, dir: &Path, user: &str, args: &[&str]) -> Output {
    tessera(broker, dir, user).args(args).output().unwrap()
}

/// Whether a command's standard error reports a refusal by the broker's authorizer (librdkafka
/// logs one even when the command works around it, e.g. a group it may not use).
fn refused(stderr: &[u8]) -> bool {
    String::from_utf8_lossy(stderr)
        .to_lowercase()
        .contains("authoriz")
}

/// Runs a command that must succeed without any refusal; returns its standard output.
fn ok(broker: &SecureBroker, dir: &Path, user: &str, args: &[&str]) -> String {
    let output = run(broker, dir, user, args);
    assert!(output.status.success(), "{user}: {args:?}: {output:?}");
    assert!(!refused(&output.stderr), "{user}: {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `args` as `user` until it succeeds (its inputs may not be on the log yet), for at most
/// `within`; returns its standard output.
fn eventually(
    broker: &SecureBroker,
    dir: &Path,
    user: &str,
    args: &[&str],
    within: Duration,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let output = run(broker, dir, user, args);
        assert!(!refused(&output.stderr), "{user}: {args:?}: {output:?}");
        if output.status.success() {
            return String::from_utf8(output.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{user}: {args:?} did not succeed within {within:?}: {output:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Long-running commands (the processors, the provider's agent), each writing its standard
/// error to a file; stopped with SIGTERM (a processor commits and leaves its group) when
/// dropped.
struct Running {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Running {
    fn spawn(&mut self, name: &str, mut command: Command) {
        let log = std::fs::File::create(self.log(name)).unwrap();
        command.stdout(Stdio::null()).stderr(log);
        self.children
            .push((name.to_string(), command.spawn().unwrap()));
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.stderr", name.replace(' ', "-")))
    }

    fn stderr(&self, name: &str) -> String {
        std::fs::read_to_string(self.log(name)).unwrap_or_default()
    }

    /// Fails the test if a command exited or was refused anything, quoting its standard error.
    fn check(&mut self) {
        for (name, child) in &mut self.children {
            let exited = child.try_wait().unwrap();
            let stderr = std::fs::read_to_string(
                self.dir.join(format!("{}.stderr", name.replace(' ', "-"))),
            )
            .unwrap_or_default();
            assert!(exited.is_none(), "{name} exited ({exited:?}): {stderr}");
            assert!(!refused(stderr.as_bytes()), "{name} was refused: {stderr}");
        }
    }

    /// Stops every command, then fails the test if one was refused anything on its way out.
    fn stop(mut self) {
        let names: Vec<String> = self.children.iter().map(|(name, _)| name.clone()).collect();
        self.terminate();
        for name in names {
            let stderr = self.stderr(&name);
            assert!(!refused(stderr.as_bytes()), "{name} was refused: {stderr}");
        }
    }

    /// Signals and reaps every child once; a reaped child's pid is never signalled again (it
    /// may belong to another process by then).
    fn terminate(&mut self) {
        let mut children: Vec<(String, Child)> = self.children.drain(..).collect();
        for (_, child) in &mut children {
            if let Ok(None) = child.try_wait() {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
            }
        }
        for (_, child) in &mut children {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Writes one record to `topic` as the producer `config` logs in; the delivery result.
async fn write(config: &ClientConfig, topic: &str) -> Result<(), KafkaError> {
    let producer: FutureProducer = config
        .clone()
        .set("message.timeout.ms", "15000")
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(topic).key("intruder").payload("forged"),
            Duration::from_secs(15),
        )
        .await
        .map(|_| ())
        .map_err(|(error, _)| error)
}

/// Whether `config`'s principal may see `topic` (DESCRIBE, which any ACL on it implies).
fn visible(config: &ClientConfig, topic: &str) -> Result<(), RDKafkaErrorCode> {
    let consumer: BaseConsumer = config.create().unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail))?;
    match metadata.topics().first().and_then(|t| t.error()) {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// Reads `topic`'s first partition from the beginning as `config` logs in, in a throwaway
/// client group as tessera's readers do; the broker's first error, or `Ok` once a record
/// arrives or nothing did in 10 s. A principal without even DESCRIBE on the topic is refused
/// its metadata; one that may write but not read it is refused the fetch.
async fn read(config: &ClientConfig, topic: &str) -> Result<(), RDKafkaErrorCode> {
    let consumer: StreamConsumer = config
        .clone()
        .set(
            "group.id",
            format!("tessera-client-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    visible(config, topic)?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    match tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await {
        Ok(Err(error)) => Err(error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
        Ok(Ok(_)) | Err(_) => Ok(()),
    }
}

fn authorization_failed(result: &Result<(), RDKafkaErrorCode>) -> bool {
    *result == Err(RDKafkaErrorCode::TopicAuthorizationFailed)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_role_runs_as_its_own_principal_and_no_role_writes_what_it_does_not_own() {
    let started = Instant::now();
    let broker = SecureBroker::up();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("payload.txt"), PAYLOAD).unwrap();

    // The admin creates the topics and the ACLs; nobody else may.
    ok(
        &broker,
        dir,
        "admin",
        &["topics", "create", "--partitions", "1"],
    );
    let applied = ok(&broker, dir, "admin", &["acl", "apply"]);
    assert!(applied.starts_with("applied "), "{applied}");
    // `apply` returns once the controller committed the ACLs; the broker's authorizer applies
    // them from the metadata log a moment later (seconds on a loaded machine).
    let applied_at = Instant::now();
    for (user, topic) in [
        ("subscriber", "tessera.subscribers"),
        ("auditor", "tessera.keys"),
    ] {
        let config = broker.client(user);
        let deadline = Instant::now() + Duration::from_secs(30);
        while visible(&config, topic).is_err() {
            assert!(
                Instant::now() < deadline,
                "{user}'s ACLs not in effect after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    eprintln!(
        "ACLs in effect {:?} after apply returned",
        applied_at.elapsed()
    );
    // A role cannot grant itself more.
    let grab = run(&broker, dir, "subscriber", &["acl", "apply"]);
    assert!(!grab.status.success(), "{grab:?}");
    assert!(
        String::from_utf8_lossy(&grab.stderr).contains("CLUSTER_AUTHORIZATION_FAILED")
            || String::from_utf8_lossy(&grab.stderr).contains("Cluster authorization failed"),
        "{grab:?}"
    );

    // The processors, each as its role.
    // Each platform role's key file; the timekeeper and the ledger are told whom to believe.
    for role in ["matcher", "timekeeper", "delivery", "ledger"] {
        let file = format!("{role}.key");
        ok(&broker, dir, role, &["keys", "generate", "--out", &file]);
    }
    let verifying = |role: &str| {
        let file = format!("{role}.key");
        ok(&broker, dir, role, &["keys", "public", "--signing", &file])
            .trim()
            .to_string()
    };
    let (matcher_key, timekeeper_key, delivery_key, ledger_key) = (
        verifying("matcher"),
        verifying("timekeeper"),
        verifying("delivery"),
        verifying("ledger"),
    );
    let state = dir.join("state");
    let mut processors = Running {
        dir: dir.to_path_buf(),
        children: Vec::new(),
    };
    for (role, args) in [
        ("matcher", vec!["matcher", "--key-file", "matcher.key"]),
        (
            "timekeeper",
            vec![
                "timekeeper",
                "--key-file",
                "timekeeper.key",
                "--matcher-key",
                &matcher_key,
            ],
        ),
        (
            "delivery",
            vec![
                "delivery",
                "--key-file",
                "delivery.key",
                "--timekeeper-key",
                &timekeeper_key,
                "--matcher-key",
                &matcher_key,
            ],
        ),
        (
            "ledger",
            vec![
                "ledger",
                "--key-file",
                "ledger.key",
                "--timekeeper-key",
                &timekeeper_key,
            ],
        ),
    ] {
        let mut command = tessera(&broker, dir, role);
        command
            .args(["run", "--metrics-addr", "off"])
            .arg("--state-dir")
            .arg(&state)
            .args(&args);
        processors.spawn(role, command);
    }

    // The subscriber registers a need for document X.
    ok(
        &broker,
        dir,
        "subscriber",
        &["keys", "generate", "--out", ".tessera/keys/B1.key"],
    );
    // Its contact is sealed to the delivery worker's key, once the delivery worker has
    // published it.
    let registered = eventually(
        &broker,
        dir,
        "subscriber",
        &[
            "subscriber",
            "register",
            "--id",
            "B1",
            "--contact",
            "b1@example.org",
            "--interest",
            "id=doc-X",
        ],
        Duration::from_secs(30),
    );
    assert!(
        registered.starts_with("subscriber B1 registered [")
            && registered.contains("contact and webhook: sealed to the delivery worker"),
        "{registered}"
    );

    // The provider offers it, sealed to the timekeeper's key (published once the timekeeper
    // runs) in co-sign custody, and runs its agent.
    let published = eventually(
        &broker,
        dir,
        "provider",
        &support::publish_doc_x_args(&["--offer-id", "offer-1", "--payload", "payload.txt"]),
        Duration::from_secs(30),
    );
    assert!(published.contains("offer-1"), "{published}");
    let mut agent = tessera(&broker, dir, "provider");
    agent.args([
        "provider",
        "agent",
        "--provider",
        "A",
        "--until-idle",
        "60s",
    ]);
    processors.spawn("provider agent", agent);
    processors.check();

    // The subscriber answers its invitation as the matcher sends it (a response written before
    // the invitation is NotInvited), and opens the credential once the timekeeper has released
    // it, the agent co-signed and the delivery worker delivered it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let heard = ok(
            &broker,
            dir,
            "subscriber",
            &[
                "subscriber",
                "listen",
                "--id",
                "B1",
                "--respond",
                "always",
                "--from-beginning",
                "--until-idle",
                "3s",
            ],
        );
        if heard.contains("responded to offer offer-1") {
            break;
        }
        assert!(Instant::now() < deadline, "B1 was not invited: {heard}");
    }
    processors.check();
    let opened = eventually(
        &broker,
        dir,
        "subscriber",
        &[
            "subscriber",
            "open",
            "--id",
            "B1",
            "--offer",
            "offer-1",
            "--out",
            "x.txt",
        ],
        Duration::from_secs(45),
    );
    assert!(opened.contains("no outcome yet"), "{opened}");
    assert_eq!(std::fs::read(dir.join("x.txt")).unwrap(), PAYLOAD);
    let accepted = ok(
        &broker,
        dir,
        "subscriber",
        &["subscriber", "accept", "--id", "B1", "--offer", "offer-1"],
    );
    assert!(accepted.contains("accepted ["), "{accepted}");
    // The ledger credits the provider, which reads its own balance.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let balance = ok(
            &broker,
            dir,
            "provider",
            &["ledger", "balance", "A", "--json"],
        );
        if balance.contains("\"EUR\":250") {
            break;
        }
        assert!(Instant::now() < deadline, "no credit for A: {balance}");
        std::thread::sleep(Duration::from_millis(500));
    }
    processors.check();
    processors.stop();

    // The auditor, which writes nothing and holds no platform key, reads enough to audit every
    // processor, show the offer's history and check the subscriber's receipt.
    let audit = ok(
        &broker,
        dir,
        "auditor",
        &[
            "audit",
            "--timekeeper-verifying-key",
            &timekeeper_key,
            "--matcher-key",
            &matcher_key,
            "--delivery-verifying-key",
            &delivery_key,
            "--ledger-key",
            &ledger_key,
        ],
    );
    assert!(!audit.is_empty(), "{audit}");
    let status = ok(&broker, dir, "auditor", &["offer", "status", "offer-1"]);
    assert!(status.contains("B1"), "{status}");
    ok(&broker, dir, "auditor", &["receipt", "offer-1", "B1"]);

    // The subscriber principal may not write what the platform writes.
    let subscriber = broker.client("subscriber");
    for topic in [
        "tessera.decisions",
        "tessera.requests",
        "tessera.ledger",
        "tessera.ledger-credits",
        "tessera.keys",
    ] {
        let refused = write(&subscriber, topic).await;
        assert!(
            matches!(
                refused,
                Err(KafkaError::MessageProduction(
                    RDKafkaErrorCode::TopicAuthorizationFailed
                ))
            ),
            "subscriber writing {topic}: {refused:?}"
        );
    }
    // Nor the provider what subscribers write.
    let provider = broker.client("provider");
    for topic in ["tessera.subscribers", "tessera.responses"] {
        let refused = write(&provider, topic).await;
        assert!(
            matches!(
                refused,
                Err(KafkaError::MessageProduction(
                    RDKafkaErrorCode::TopicAuthorizationFailed
                ))
            ),
            "provider writing {topic}: {refused:?}"
        );
    }
    // And through tessera's own command, the provider registering as a subscriber is refused
    // by the broker, whatever key it signs with.
    ok(
        &broker,
        dir,
        "provider",
        &["keys", "generate", "--out", ".tessera/keys/Z.key"],
    );
    let impostor = run(
        &broker,
        dir,
        "provider",
        &[
            "subscriber",
            "register",
            "--id",
            "Z",
            "--contact",
            "z@example.org",
            "--interest",
            "id=doc-X",
        ],
    );
    assert!(!impostor.status.success(), "{impostor:?}");
    assert!(
        String::from_utf8_lossy(&impostor.stderr).contains("authorization failed"),
        "{impostor:?}"
    );
    // Reading is restricted too: a subscriber reads nothing but its inbox, the keys and the
    // packages, so not the other subscribers' registrations (contacts, webhooks), their
    // invitations, verdicts, answers or decisions, the offers, the ledger or the changelogs;
    // a provider may not read who was invited or who answered, nor the inboxes.
    for topic in [
        "tessera.subscribers",
        "tessera.requests",
        "tessera.decisions",
        "tessera.responses",
        "tessera.outcomes",
        "tessera.offers",
        "tessera.ledger",
        "tessera.timekeeper.changelog",
    ] {
        let refused = read(&subscriber, topic).await;
        assert!(
            authorization_failed(&refused),
            "subscriber reading {topic}: {refused:?}"
        );
    }
    for topic in ["tessera.requests", "tessera.deliveries"] {
        let refused = read(&provider, topic).await;
        assert!(
            authorization_failed(&refused),
            "provider reading {topic}: {refused:?}"
        );
    }
    // Controls: each still reads what it needs, so the refusals above are the ACLs' doing.
    for (config, topic) in [
        (&subscriber, "tessera.deliveries"),
        (&provider, "tessera.decisions"),
    ] {
        let read = read(config, topic).await;
        assert!(read.is_ok(), "{topic}: {read:?}");
    }
    // A control: the same client still writes a topic the subscriber owns.
    let written = write(&subscriber, "tessera.outcomes").await;
    assert!(
        written.is_ok(),
        "the subscriber still writes its own topics: {written:?}"
    );
    eprintln!("secure flow and refusals in {:?}", started.elapsed());
}

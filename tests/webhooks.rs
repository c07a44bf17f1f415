//! Webhook delivery on the real broker: credentials written to `tessera.deliveries` are posted to
//! the webhooks the subscribers registered on `tessera.subscribers`, served here by local HTTP
//! and HTTPS receivers that check every post's signature with `verify_post`, as a real receiver
//! would, and answer 401 to one that does not verify.
//!
//! - A webhook that fails twice gets the credential on the third post; one that always fails gets
//!   DeliveryFailed after the budget; subscribers without a webhook (never registered one, or
//!   left) get no post; a CredentialDelivered the delivery core did not sign gets no post.
//! - An https receiver with a certificate from a private CA gets the credential over TLS once the
//!   worker is given the CA (`--webhook-ca`), and a DeliveryFailed naming the certificate before.
//! - Without `--webhook-allow-private`, loopback webhooks are refused with a named reason and no
//!   post is made.
//! - A re-registration or removal of a subscriber signed with another key moves nothing.
//! - A webhook sealed to the delivery's key (`subscriber register` seals contact and webhook) is
//!   posted to; one sealed to another key names no webhook.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`): `compose/kafka up`.

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tessera_contract::sealing::PrivateKey;
use tessera_contract::sealing::contacts::{Contact, seal_contact};
use tessera_contract::signing::{SigningKey, VerifyingKey};
use tessera_contract::topics::{DELIVERIES, SUBSCRIBERS};
use tessera_contract::{
    CredentialDelivered, DeliveryFailed, Event, SealedBox, SubscriberRegistered, SubscriberRemoved,
};
use tessera_producers::client::{Writer, read_to_end};
use tessera_webhooks::signature::{self, PostError, VerifiedPost};
use tessera_webhooks::{self as webhooks, Retries, Settings, WebhookError};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

const PARTITIONS: i32 = 3;
const BUDGET: u32 = 4;

/// A post a receiver got.
#[derive(Debug, Clone)]
struct Post {
    path: String,
    idempotency_key: Option<String>,
    content_type: Option<String>,
    body: serde_json::Value,
    /// What `verify_post` made of it, with the delivery's verifying key.
    verified: Result<VerifiedPost, PostError>,
    answered: StatusCode,
}

type Posts = Arc<Mutex<Vec<Post>>>;

/// Answers a post that does not verify with 401; else `/flaky` with 503 twice and then 200,
/// `/down` always with 500, anything else 200.
async fn answer(posts: Posts, delivery: VerifyingKey, request: Request<Incoming>) -> StatusCode {
    let path = request.uri().path().to_string();
    let headers: HeaderMap = request.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let now = chrono::Utc::now().timestamp_millis();
    let verified = signature::verify_post(&delivery, &headers, &bytes, now, signature::TOLERANCE);
    let mut posts = posts.lock().unwrap();
    let earlier = posts.iter().filter(|p| p.path == path).count();
    let answered = match path.as_str() {
        _ if verified.is_err() => StatusCode::UNAUTHORIZED,
        "/flaky" if earlier < 2 => StatusCode::SERVICE_UNAVAILABLE,
        "/down" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::OK,
    };
    posts.push(Post {
        path,
        idempotency_key: header("Idempotency-Key"),
        content_type: header("Content-Type"),
        body: serde_json::from_slice(&bytes).unwrap_or_default(),
        verified,
        answered,
    });
    answered
}

/// A receiver on 127.0.0.1, over TLS if `tls` is given; returns its port. A TLS handshake the
/// worker breaks off records nothing.
async fn serve(posts: Posts, delivery: VerifyingKey, tls: Option<TlsAcceptor>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let posts = posts.clone();
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let posts = posts.clone();
                async move {
                    let mut response = Response::new(Full::new(Bytes::new()));
                    *response.status_mut() = answer(posts, delivery, request).await;
                    Ok::<_, Infallible>(response)
                }
            });
            let http = hyper::server::conn::http1::Builder::new();
            match tls.clone() {
                None => {
                    tokio::spawn(http.serve_connection(TokioIo::new(stream), service));
                }
                Some(acceptor) => {
                    tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    });
                }
            }
        }
    });
    port
}

/// A private CA (its certificate as PEM) and a TLS acceptor with a certificate it issued for
/// `localhost` and 127.0.0.1.
fn private_ca() -> (String, TlsAcceptor) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "tessera test CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let certificate = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &*ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone(), ca.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    (ca.pem(), TlsAcceptor::from(Arc::new(config)))
}

fn sealed(tag: u8) -> SealedBox {
    SealedBox {
        enc: vec![tag; 32],
        ciphertext: vec![tag; 48],
    }
}

fn delivered(subscriber_id: &str, credential_id: &str) -> CredentialDelivered {
    CredentialDelivered {
        event_id: uuid::Uuid::new_v4().to_string(),
        credential_id: credential_id.into(),
        offer_id: "offer-X".into(),
        subscriber_id: subscriber_id.into(),
        package: b"sealed package".to_vec(),
        platform_half: sealed(1),
        provider_half: sealed(2),
        attempts: 1,
        provider_id: String::new(),
        provider_signing_key: Vec::new(),
        package_signature: Vec::new(),
    }
}

/// The keys of party `name`: derived from the name, so a party signs with the same key every
/// time.
fn keys_of(name: &str) -> (PrivateKey, SigningKey) {
    let seed = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes());
    let sealing = PrivateKey::from_bytes(&[seed.as_bytes().as_slice(); 2].concat()).unwrap();
    let signing = SigningKey::derive(&sealing);
    (sealing, signing)
}

/// A fresh installation on the broker (its own topic prefix, so its own worker group) and the
/// delivery's key.
struct Installation {
    prefix: String,
    config: ClientConfig,
    writer: Writer,
    delivery: Arc<SigningKey>,
}

/// A worker running in the background.
struct Worker {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<(), WebhookError>>,
}

impl Worker {
    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap().unwrap();
    }
}

impl Installation {
    async fn new() -> Installation {
        let kafka = support::installation(PARTITIONS).await;
        let config = kafka.client_config().unwrap();
        Installation {
            writer: Writer::new(&config).unwrap(),
            config,
            prefix: kafka.topic_prefix,
            delivery: Arc::new(keys_of("delivery").1),
        }
    }

    /// A receiver (see [`serve`]) of what this installation's delivery worker posts: what it
    /// records, and its port.
    async fn receiver(&self, tls: Option<TlsAcceptor>) -> (Posts, u16) {
        let posts = Posts::default();
        let port = serve(posts.clone(), self.delivery.verifying_key(), tls).await;
        (posts, port)
    }

    fn deliveries(&self) -> String {
        DELIVERIES.full_name(&self.prefix)
    }

    /// Writes `event` about subscriber `id`, signed by `signer`.
    async fn write_subscriber(&self, signer: &SigningKey, id: &str, event: Event) {
        self.writer
            .write_as(signer, &self.prefix, SUBSCRIBERS, id, &event)
            .await
            .unwrap();
    }

    /// Registers `id` with `holder`'s keys and `webhook`, signed by `signer`.
    async fn register_as(&self, signer: &str, id: &str, holder: &str, webhook: Option<String>) {
        let (sealing, signing) = keys_of(holder);
        let registered = SubscriberRegistered {
            event_id: uuid::Uuid::new_v4().to_string(),
            subscriber_id: id.into(),
            contact: format!("{holder}@example.org"),
            public_key: sealing.public_key().to_bytes(),
            signing_key: signing.verifying_key().to_bytes(),
            interests: vec![],
            webhook,
            endorsement: None,
            sealed_contact: None,
        };
        self.write_subscriber(&keys_of(signer).1, id, registered.into())
            .await;
    }

    /// Registers `id` with its own keys, its contact and `webhook` sealed to `platform`'s key,
    /// as `subscriber register` seals them to the delivery worker's.
    async fn register_sealed(&self, id: &str, webhook: Option<String>, platform: &str) {
        let (sealing, signing) = keys_of(id);
        let contact = Contact {
            contact: format!("{id}@example.org"),
            webhook,
        };
        let to = keys_of(platform).0.public_key();
        let mut rng = <chacha20::ChaCha20Rng as hpke::rand_core::SeedableRng>::from_seed([7; 32]);
        let registered = SubscriberRegistered {
            event_id: uuid::Uuid::new_v4().to_string(),
            subscriber_id: id.into(),
            contact: String::new(),
            public_key: sealing.public_key().to_bytes(),
            signing_key: signing.verifying_key().to_bytes(),
            interests: vec![],
            webhook: None,
            endorsement: None,
            sealed_contact: Some(seal_contact(&contact, id, &to, &mut rng).unwrap()),
        };
        self.write_subscriber(&signing, id, registered.into()).await;
    }

    /// Registers `id` with its own keys and `webhook`, as `subscriber register` does.
    async fn register(&self, id: &str, webhook: Option<String>) {
        self.register_as(id, id, id, webhook).await;
    }

    /// Writes `id`'s removal, signed by `signer`.
    async fn remove_as(&self, signer: &str, id: &str) {
        let removed = SubscriberRemoved {
            event_id: uuid::Uuid::new_v4().to_string(),
            subscriber_id: id.into(),
        };
        self.write_subscriber(&keys_of(signer).1, id, removed.into())
            .await;
    }

    /// Writes a CredentialDelivered, signed by `signer` (or not signed at all).
    async fn deliver_as(&self, signer: Option<&SigningKey>, subscriber: &str, credential: &str) {
        let event = delivered(subscriber, credential).into();
        let deliveries = self.deliveries();
        let written = match signer {
            Some(signer) => {
                self.writer
                    .write_as(signer, &self.prefix, DELIVERIES, subscriber, &event)
                    .await
            }
            None => self.writer.write(&deliveries, subscriber, &event).await,
        };
        written.unwrap();
    }

    /// Writes a CredentialDelivered as the delivery core does: signed with the delivery's key.
    async fn deliver(&self, subscriber: &str, credential: &str) {
        self.deliver_as(Some(self.delivery.as_ref()), subscriber, credential)
            .await;
    }

    fn start(&self, settings: Settings) -> Worker {
        let stop = Arc::new(AtomicBool::new(false));
        let (config, prefix) = (self.config.clone(), self.prefix.clone());
        let (delivery, flag) = (self.delivery.clone(), stop.clone());
        let task = tokio::spawn(async move {
            webhooks::run(&config, &prefix, settings, delivery, &flag).await
        });
        Worker { stop, task }
    }

    /// The DeliveryFailed records on the inbox, by subscriber, once there are `n` and the
    /// worker's group has committed everything on the inbox.
    async fn settled(&self, n: usize) -> BTreeMap<String, DeliveryFailed> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let failed = failures(&self.config, &self.deliveries()).await;
            if failed.len() == n && all_committed(&self.config, &self.prefix, &self.deliveries()) {
                return failed;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker did not settle: {failed:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

fn retries(attempts: u32) -> Retries {
    Retries {
        attempts,
        first_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
    }
}

/// The test receivers are on loopback, which only an operator's allowance opens.
fn allowing_loopback() -> Settings {
    Settings {
        retries: retries(BUDGET),
        allow_private: true,
        ..Settings::default()
    }
}

/// Whether the worker's group has committed every partition of `topic` up to its end.
fn all_committed(config: &ClientConfig, prefix: &str, topic: &str) -> bool {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", format!("{prefix}tessera.webhooks"))
        .create()
        .unwrap();
    let mut partitions = rdkafka::TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions.add_partition(topic, partition);
    }
    let Ok(committed) = consumer.committed_offsets(partitions, Duration::from_secs(10)) else {
        return false;
    };
    (0..PARTITIONS).all(|partition| {
        let (_, end) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .unwrap();
        let at = committed
            .find_partition(topic, partition)
            .and_then(|p| p.offset().to_raw());
        end == 0 || at == Some(end)
    })
}

async fn failures(config: &ClientConfig, topic: &str) -> BTreeMap<String, DeliveryFailed> {
    read_to_end(config, topic, None)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|record| match record.event {
            Some(Ok(Event::DeliveryFailed(failed))) => {
                assert_eq!(record.key.as_deref(), Some(failed.subscriber_id.as_str()));
                Some((failed.subscriber_id.clone(), failed))
            }
            _ => None,
        })
        .collect()
}

/// Every post verified with the delivery's key, for the credential it carried.
fn all_verified(posts: &[Post]) {
    for post in posts {
        let verified = post.verified.as_ref().unwrap_or_else(|e| {
            panic!("a post to {} did not verify: {e}", post.path);
        });
        assert_eq!(
            Some(verified.credential_id.as_str()),
            post.idempotency_key.as_deref()
        );
        assert_eq!(post.body["credential_id"], verified.credential_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_posted_to_webhooks_with_retries_and_fail_after_the_budget() {
    let it = Installation::new().await;
    let (posts, port) = it.receiver(None).await;
    let url = |path: &str| Some(format!("http://127.0.0.1:{port}{path}"));
    it.register("flaky", url("/flaky")).await;
    // The query may hold the receiver's token: it must not reach a reason or a log line.
    it.register("down", url("/down?token=s3cret")).await;
    it.register("quiet", None).await;
    // Registered with a webhook, then gone: the latest state of the table counts.
    it.register("gone", url("/gone")).await;
    it.remove_as("gone", "gone").await;
    it.writer
        .tombstone(&SUBSCRIBERS.full_name(&it.prefix), "gone")
        .await
        .unwrap();
    // Registered without a webhook, then re-registered with one: the latest wins.
    it.register("moved", None).await;
    it.register("moved", url("/moved")).await;
    // Written to the inbox by someone other than the delivery core: not posted, not failed.
    it.deliver_as(None, "flaky", "cred-unsigned").await;
    let forger = keys_of("forger").1;
    it.deliver_as(Some(&forger), "flaky", "cred-forged").await;
    for subscriber in ["flaky", "down", "quiet", "gone", "moved"] {
        it.deliver(subscriber, &format!("cred-{subscriber}")).await;
    }

    let worker = it.start(allowing_loopback());
    let failed = it.settled(1).await;
    worker.stop().await;

    let posts = posts.lock().unwrap().clone();
    all_verified(&posts);
    let to = |path: &str| posts.iter().filter(|p| p.path == path).collect::<Vec<_>>();
    let flaky = to("/flaky");
    assert_eq!(flaky.len(), 3, "{flaky:?}");
    assert_eq!(
        flaky
            .iter()
            .map(|p| p.answered.as_u16())
            .collect::<Vec<_>>(),
        [503, 503, 200]
    );
    let accepted = flaky[2];
    assert_eq!(accepted.idempotency_key.as_deref(), Some("cred-flaky"));
    assert_eq!(accepted.content_type.as_deref(), Some("application/json"));
    let expected = delivered("flaky", "cred-flaky");
    assert_eq!(accepted.body["credential_id"], "cred-flaky");
    assert_eq!(accepted.body["offer_id"], "offer-X");
    assert_eq!(accepted.body["subscriber_id"], "flaky");
    assert_eq!(accepted.body["package"], STANDARD.encode(&expected.package));
    for (half, sealed) in [("platform_half", sealed(1)), ("provider_half", sealed(2))] {
        assert_eq!(accepted.body[half]["enc"], STANDARD.encode(&sealed.enc));
        assert_eq!(
            accepted.body[half]["ciphertext"],
            STANDARD.encode(&sealed.ciphertext)
        );
    }
    assert!(
        flaky
            .iter()
            .all(|p| p.idempotency_key.as_deref() == Some("cred-flaky"))
    );

    assert_eq!(to("/down").len(), BUDGET as usize);
    assert_eq!(to("/moved").len(), 1);
    assert!(
        to("/gone").is_empty(),
        "a removed subscriber's webhook was posted to"
    );
    assert_eq!(posts.len(), 3 + BUDGET as usize + 1, "{posts:?}");

    let down = &failed["down"];
    assert_eq!(down.attempts, BUDGET as i32);
    assert_eq!(down.credential_id, "cred-down");
    assert!(down.reason.contains("500"), "{}", down.reason);
    assert!(!down.reason.contains("s3cret"), "{}", down.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_webhook_gets_the_credential_over_tls_once_the_worker_trusts_its_ca() {
    let it = Installation::new().await;
    let (ca_pem, acceptor) = private_ca();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("webhook-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let (posts, port) = it.receiver(Some(acceptor)).await;
    it.register("tls", Some(format!("https://localhost:{port}/tls")))
        .await;

    // Mozilla's roots alone do not vouch for the private CA: no post, a named failure.
    it.deliver("tls", "cred-untrusted").await;
    let untrusting = it.start(Settings {
        retries: retries(1),
        ..allowing_loopback()
    });
    let failed = it.settled(1).await;
    untrusting.stop().await;
    assert!(posts.lock().unwrap().is_empty());
    let untrusted = &failed["tls"];
    assert_eq!(untrusted.credential_id, "cred-untrusted");
    assert!(
        untrusted.reason.contains("invalid peer certificate"),
        "{}",
        untrusted.reason
    );

    it.deliver("tls", "cred-trusted").await;
    let trusting = it.start(Settings {
        ca_file: Some(ca_file),
        ..allowing_loopback()
    });
    it.settled(1).await;
    trusting.stop().await;
    let posts = posts.lock().unwrap().clone();
    all_verified(&posts);
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].path, "/tls");
    assert_eq!(posts[0].idempotency_key.as_deref(), Some("cred-trusted"));
    assert_eq!(posts[0].answered, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_allowance_loopback_webhooks_are_refused_without_a_post() {
    let it = Installation::new().await;
    let (posts, port) = it.receiver(None).await;
    it.register("literal", Some(format!("http://127.0.0.1:{port}/literal")))
        .await;
    it.register("named", Some(format!("http://localhost:{port}/named")))
        .await;
    it.register(
        "mapped",
        Some(format!("http://[::ffff:127.0.0.1]:{port}/m")),
    )
    .await;
    for subscriber in ["literal", "named", "mapped"] {
        it.deliver(subscriber, &format!("cred-{subscriber}")).await;
    }

    let worker = it.start(Settings {
        retries: retries(BUDGET),
        ..Settings::default()
    });
    let failed = it.settled(3).await;
    worker.stop().await;
    assert!(
        posts.lock().unwrap().is_empty(),
        "a refused webhook was posted to"
    );
    let allow = "(allow with --webhook-allow-private)";
    assert_eq!(
        failed["literal"].reason,
        format!("Refused: webhook host 127.0.0.1 is a loopback address {allow}")
    );
    let named = &failed["named"].reason;
    assert!(
        named.starts_with("Refused: webhook host localhost resolves to ")
            && named.ends_with(&format!(", a loopback address {allow}")),
        "{named}"
    );
    assert_eq!(
        failed["mapped"].reason,
        format!("Refused: webhook host ::ffff:127.0.0.1 is a loopback address {allow}")
    );
    // Refused at once: no post made, none retried.
    assert!(failed.values().all(|f| f.attempts == 0), "{failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_or_removal_signed_with_another_key_moves_no_webhook() {
    let it = Installation::new().await;
    let (posts, port) = it.receiver(None).await;
    let url = |path: &str| Some(format!("http://127.0.0.1:{port}{path}"));
    it.register("B1", url("/b1")).await;
    it.register("B2", url("/b2")).await;
    // The impostor re-registers B1 to its own webhook: with its own keys, and with B1's keys.
    it.register_as("impostor", "B1", "impostor", url("/forged"))
        .await;
    it.register_as("impostor", "B1", "B1", url("/forged")).await;
    // And removes B2, so that B2 would get nothing.
    it.remove_as("impostor", "B2").await;
    it.deliver("B1", "cred-B1").await;
    it.deliver("B2", "cred-B2").await;

    let worker = it.start(allowing_loopback());
    it.settled(0).await;
    worker.stop().await;
    let posts = posts.lock().unwrap().clone();
    all_verified(&posts);
    let paths = posts.iter().map(|p| p.path.as_str()).collect::<Vec<_>>();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(sorted, ["/b1", "/b2"], "{posts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_sealed_to_the_delivery_is_posted_to_and_one_sealed_to_another_key_is_not() {
    let it = Installation::new().await;
    let (posts, port) = it.receiver(None).await;
    let url = |path: &str| Some(format!("http://127.0.0.1:{port}{path}"));
    it.register_sealed("sealed", url("/sealed"), "delivery")
        .await;
    it.register_sealed("elsewhere", url("/elsewhere"), "another platform")
        .await;
    for subscriber in ["sealed", "elsewhere"] {
        it.deliver(subscriber, &format!("cred-{subscriber}")).await;
    }

    let worker = it.start(Settings {
        contact_key: Some(Arc::new(keys_of("delivery").0)),
        ..allowing_loopback()
    });
    it.settled(0).await;
    worker.stop().await;

    let posts = posts.lock().unwrap().clone();
    all_verified(&posts);
    let paths: Vec<&str> = posts.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["/sealed"], "{posts:?}");
    assert_eq!(posts[0].idempotency_key.as_deref(), Some("cred-sealed"));
}

//! Webhook delivery on the real broker: credentials written to `tessera.deliveries` are posted to
//! the webhooks the subscribers registered on `tessera.subscribers`, served here by a local
//! HTTP server. A webhook that fails twice gets the credential on the third post; one that always
//! fails gets DeliveryFailed after the budget; subscribers without a webhook (never registered
//! one, or left) get no post.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`): `compose/kafka up`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tessera::kafka::KafkaArgs;
use tessera::topics;
use tessera_producers::client::{Writer, read_to_end};
use tessera_producers::webhooks::{self, Retries, Settings};
use tessera_schemas::sealing::PrivateKey;
use tessera_schemas::signing::SigningKey;
use tessera_schemas::topics::{DELIVERIES, SUBSCRIBERS};
use tessera_schemas::{
    CredentialDelivered, DeliveryFailed, Event, SealedBox, SubscriberRegistered, SubscriberRemoved,
};

const PARTITIONS: i32 = 3;
const BUDGET: u32 = 4;

/// A post the server received.
#[derive(Debug, Clone)]
struct Post {
    path: String,
    idempotency_key: Option<String>,
    content_type: Option<String>,
    body: serde_json::Value,
    answered: StatusCode,
}

/// Answers `/flaky` with 503 twice and then 200, `/down` always with 500, anything else 200.
async fn serve(posts: Arc<Mutex<Vec<Post>>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let posts = posts.clone();
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let posts = posts.clone();
                async move {
                    let path = request.uri().path().to_string();
                    let header = |name: &str| {
                        request
                            .headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    let (idempotency_key, content_type) =
                        (header("Idempotency-Key"), header("Content-Type"));
                    let bytes = request.into_body().collect().await.unwrap().to_bytes();
                    let mut posts = posts.lock().unwrap();
                    let earlier = posts.iter().filter(|p| p.path == path).count();
                    let answered = match path.as_str() {
                        "/flaky" if earlier < 2 => StatusCode::SERVICE_UNAVAILABLE,
                        "/down" => StatusCode::INTERNAL_SERVER_ERROR,
                        _ => StatusCode::OK,
                    };
                    posts.push(Post {
                        path,
                        idempotency_key,
                        content_type,
                        body: serde_json::from_slice(&bytes).unwrap_or_default(),
                        answered,
                    });
                    let mut response = Response::new(Full::new(Bytes::new()));
                    *response.status_mut() = answered;
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    port
}

fn sealed(tag: u8) -> SealedBox {
    SealedBox {
        enc: vec![tag; 32],
        ciphertext: vec![tag; 48],
    }
}

fn delivered(subscriber_id: &str) -> CredentialDelivered {
    CredentialDelivered {
        event_id: uuid::Uuid::new_v4().to_string(),
        credential_id: format!("cred-{subscriber_id}"),
        offer_id: "offer-X".into(),
        subscriber_id: subscriber_id.into(),
        package: b"sealed package".to_vec(),
        platform_half: sealed(1),
        provider_half: sealed(2),
        attempts: 1,
    }
}

/// The keys of subscriber `id`: derived from its name, so a re-registration signs with the key
/// its first one pinned.
fn keys_of(id: &str) -> (PrivateKey, SigningKey) {
    let seed = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, id.as_bytes());
    let sealing = PrivateKey::from_bytes(&[seed.as_bytes().as_slice(); 2].concat()).unwrap();
    let signing = SigningKey::derive(&sealing);
    (sealing, signing)
}

/// Registers `subscriber_id` with its own keys and `webhook`, signed by its own key.
async fn register(writer: &Writer, prefix: &str, subscriber_id: &str, webhook: Option<String>) {
    let (sealing, signing) = keys_of(subscriber_id);
    let registered = SubscriberRegistered {
        event_id: uuid::Uuid::new_v4().to_string(),
        subscriber_id: subscriber_id.into(),
        contact: format!("{subscriber_id}@example.org"),
        public_key: sealing.public_key().to_bytes(),
        signing_key: signing.verifying_key().to_bytes(),
        interests: vec![],
        webhook,
        endorsement: None,
    };
    writer
        .write_as(
            &signing,
            prefix,
            SUBSCRIBERS,
            subscriber_id,
            &registered.into(),
        )
        .await
        .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_posted_to_webhooks_with_retries_and_fail_after_the_budget() {
    let prefix = format!("it-{}.", uuid::Uuid::new_v4().simple());
    let kafka = KafkaArgs {
        topic_prefix: prefix.clone(),
        ..KafkaArgs::new(std::env::var("TESSERA_BROKERS").unwrap_or("127.0.0.1:9092".into()))
    };
    topics::create(&kafka, PARTITIONS, 1).await.unwrap();
    let config = kafka.client_config().unwrap();
    let (subscribers, deliveries) = (
        SUBSCRIBERS.full_name(&prefix),
        DELIVERIES.full_name(&prefix),
    );

    let posts = Arc::new(Mutex::new(Vec::new()));
    let port = serve(posts.clone()).await;
    let url = |path: &str| Some(format!("http://127.0.0.1:{port}{path}"));
    let writer = Writer::new(&config).unwrap();
    register(&writer, &prefix, "flaky", url("/flaky")).await;
    // The query may hold the receiver's token: it must not reach a reason or a log line.
    register(&writer, &prefix, "down", url("/down?token=s3cret")).await;
    register(&writer, &prefix, "quiet", None).await;
    // Registered with a webhook, then gone: the latest state of the table counts.
    register(&writer, &prefix, "gone", url("/gone")).await;
    let removed = SubscriberRemoved {
        event_id: uuid::Uuid::new_v4().to_string(),
        subscriber_id: "gone".into(),
    };
    writer
        .write_as(
            &keys_of("gone").1,
            &prefix,
            SUBSCRIBERS,
            "gone",
            &removed.into(),
        )
        .await
        .unwrap();
    writer.tombstone(&subscribers, "gone").await.unwrap();
    // Registered without a webhook, then re-registered with one: the latest wins.
    register(&writer, &prefix, "moved", None).await;
    register(&writer, &prefix, "moved", url("/moved")).await;
    // The delivery core signs what it writes to the inbox with the key the worker is given.
    let delivery = Arc::new(SigningKey::derive(
        &PrivateKey::from_bytes(&[9; 32]).unwrap(),
    ));
    for subscriber in ["flaky", "down", "quiet", "gone", "moved"] {
        let event = delivered(subscriber).into();
        writer
            .write_as(&delivery, &prefix, DELIVERIES, subscriber, &event)
            .await
            .unwrap();
    }

    let retries = Retries {
        attempts: BUDGET,
        first_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let worker = tokio::spawn({
        let (config, prefix, stop) = (config.clone(), prefix.clone(), stop.clone());
        let delivery = delivery.clone();
        // The receiver is on loopback, which only an operator's allowance opens.
        let settings = Settings {
            retries,
            allow_private: true,
            ..Settings::default()
        };
        async move { webhooks::run(&config, &prefix, settings, delivery, &stop).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let failed = loop {
        let failed = failures(&config, &deliveries).await;
        if failed.len() == 1 && all_committed(&config, &prefix, &deliveries) {
            break failed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker did not settle: {failed:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    worker.await.unwrap().unwrap();

    let posts = posts.lock().unwrap().clone();
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
    let expected = delivered("flaky");
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

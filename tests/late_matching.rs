//! Late matching on the real broker: a subscriber that registers while an offer is open is
//! invited to it, answers and is released, as one registered before it would be; an offer
//! published without late invitations (`tessera provider publish --no-late-invitations`) invites
//! only the subscribers registered when it arrived.
//!
//! The processors run on the runtime (as `tessera demo` runs them). B0 is registered before two
//! offers of document X: `closed-door`, without late invitations, then `open-door`. Once B0's
//! invitations to both are on the log, B1 registers: the matcher invites it to `open-door` and
//! not to `closed-door`. Both answers to B1's registration come from one input of the matcher, in
//! one transaction, so once its invitation to `open-door` is read, its absence from `closed-door`
//! is final: the test cannot pass by being slow.
//!
//! Needs a running Kafka at `TESSERA_BROKERS` (default `127.0.0.1:9092`): `compose/kafka up`.

use tessera::demo::Processors;
use tessera_contract::rules::request_id;
use tessera_contract::topics::{DECISIONS, REQUESTS};
use tessera_contract::{Custody, Event, InteractionRequested};
use tessera_producers::keys::Halves;

mod support;
use support::{DocX, World};

const DOCUMENT_X: &[u8] = b"Quarterly report X\nfor whoever asks in time\n";
const OPEN_DOOR: &str = "open-door";
const CLOSED_DOOR: &str = "closed-door";

impl World {
    async fn register(&self, id: &str) -> tessera_contract::sealing::PrivateKey {
        let key_file = self.dir.path().join(format!("{id}.key"));
        support::register(&self.writer, self.prefix(), id, &key_file).await
    }

    fn doc(&self) -> DocX<'_> {
        DocX {
            document: DOCUMENT_X,
            custody: Custody::Escrow,
            timekeeper: &self.timekeeper,
            reward: None,
            decide_within: None,
            invite_late: true,
        }
    }

    /// The subscribers invited to `offer_id`, once there are `n`, in log order.
    async fn invited(&self, offer_id: &str, n: usize) -> Vec<InteractionRequested> {
        self.wait_for(REQUESTS, offer_id, n)
            .await
            .into_iter()
            .map(|e| match e {
                Event::InteractionRequested(request) => request,
                other => panic!("{other:?}"),
            })
            .collect()
    }
}

fn subscribers(requests: &[InteractionRequested]) -> Vec<&str> {
    requests.iter().map(|r| r.subscriber_id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_subscriber_is_invited_and_released_unless_the_offer_invites_no_one_late() {
    let (world, timekeeper_key) = World::new(3).await;
    let state = world.dir.path().join("state");
    let processors = Processors::start(&world.kafka, &state, timekeeper_key).unwrap();
    let halves: Halves = world.halves();

    world.register("B0").await;
    let (writer, prefix) = (&world.writer, world.prefix());
    let closed_door = DocX {
        invite_late: false,
        ..world.doc()
    };
    support::publish_doc_x(writer, prefix, CLOSED_DOOR, &halves, closed_door).await;
    support::publish_doc_x(writer, prefix, OPEN_DOOR, &halves, world.doc()).await;
    // B0 was registered when both arrived: the matcher has applied both offers once it has
    // invited B0 to each, so B1's registration is stamped after them.
    assert_eq!(subscribers(&world.invited(CLOSED_DOOR, 1).await), ["B0"]);
    assert_eq!(subscribers(&world.invited(OPEN_DOOR, 1).await), ["B0"]);

    let b1 = world.register("B1").await;
    let invited = world.invited(OPEN_DOOR, 2).await;
    assert_eq!(subscribers(&invited), ["B0", "B1"]);
    let late = &invited[1];
    assert_eq!(late.request_id, request_id(OPEN_DOOR, "B1"));
    assert_eq!(
        late.offer, invited[0].offer,
        "the late invitation cites the offer as the first did"
    );
    assert_eq!(
        subscribers(&world.invited(CLOSED_DOOR, 0).await),
        ["B0"],
        "an offer without late invitations invites no one late"
    );

    support::respond(writer, prefix, OPEN_DOOR, "B1", &b1).await;
    let decisions = world.wait_for(DECISIONS, OPEN_DOOR, 1).await;
    let released = support::released(&decisions, "B1");
    assert_eq!(released.request_id, late.request_id);

    processors.stop().await.unwrap();
}

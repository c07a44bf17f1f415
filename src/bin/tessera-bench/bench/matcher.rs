//! `tessera-bench matcher`: the time to match one offer against a million stored interests
//! through the matcher's index, against a linear scan of the same interests in the same RocksDB
//! store in the same run, and what the interests cost in state. Then the reverse, which late
//! invitations need: the time to match one new subscriber against a hundred thousand open offers
//! through the open offers' index, against a linear scan of them.
//!
//! It needs no broker: the interests and the open offers go into a real [`TaskStore`] through
//! the matcher core itself, committed in batches as the runtime would, and each offer and each
//! registration is timed through the core's `apply` (index lookups, verification, and encoding
//! the requests).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use indicatif::ProgressBar;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tessera_contract::sealing::PrivateKey;
use tessera_contract::signing::{Signed, SigningKey};
use tessera_contract::topics::{OFFERS, SUBSCRIBERS, Topic};
use tessera_contract::{
    Custody, Deadline, Event, Interest, OfferPublished, ParameterRange, Recommendation, SealedBox,
    SealedCredential, SubscriberRegistered, TimeRule,
};
use tessera_cores::matcher::predicate::OfferFacts;
use tessera_cores::matcher::{Matcher, MatcherRecord, index, open};
use tessera_cores::{Core, Input, Position};
use tessera_task_store::{Checkpoint, StoreError, TaskStore};

use super::{bar, rss_mib};

/// Identifiers come from a space four times the number of identifier interests at a million.
const IDENTIFIERS: u32 = 2_000_000;
const BRANDS: u32 = 100_000;
/// Distinct words of names and terms.
const WORDS: usize = 200_000;
const COLOURS: &[&str] = &[
    "black", "white", "red", "green", "blue", "yellow", "grey", "brown", "pink", "purple",
    "orange", "beige", "navy", "olive", "teal", "silver",
];
const PARAMETERS: &[&str] = &[
    "price", "weight", "width", "height", "year", "rating", "stock", "warranty", "power", "volume",
];
/// Subscribers registered between two commits of the store.
const COMMIT_EVERY: usize = 1_000;
/// Offers matched before timing starts, so the timed ones meet warm caches.
const WARM_UP: usize = 20_000;
/// Registrations matched against the open offers before timing starts.
const WARM_UP_REGISTRATIONS: usize = 2_000;
/// Lower ends of the bands of request counts that times are also reported by.
const REQUEST_BANDS: &[usize] = &[0, 1, 3, 6, 10, 20];
/// Stamps of the generated records: offers are open until a day after.
const START: i64 = 1_764_061_200_000;

/// Deterministic synthetic subscribers and offers.
struct Synthetic {
    rng: SmallRng,
    /// Signs every synthetic record: the matcher checks each signature, as it does in production.
    signer: SigningKey,
}

/// Word `n` of the vocabulary: two to five syllables, distinct for distinct `n`.
fn word(n: usize) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ba", "de", "fi", "go", "hu", "ja", "pe",
        "zo",
    ];
    let mut n = n + SYLLABLES.len();
    let mut word = String::new();
    while n > 0 {
        word.push_str(SYLLABLES[n % SYLLABLES.len()]);
        n /= SYLLABLES.len();
    }
    word
}

impl Synthetic {
    fn new() -> Self {
        Synthetic {
            rng: SmallRng::seed_from_u64(0x7e55e4a),
            signer: SigningKey::derive(&PrivateKey::from_bytes(&[7; 32]).expect("32 bytes")),
        }
    }

    /// What the matcher reads of `event` on `topic` under `key`, signed.
    fn signed(&self, topic: Topic, key: &str, event: Event) -> Signed {
        let value = tessera_contract::encode(&event).expect("a synthetic event encodes");
        self.signer.signed(topic.name, key.as_bytes(), &value)
    }

    /// The matcher's input of `registered`, signed, at `offset` of the subscribers.
    fn registration(
        &self,
        offset: usize,
        registered: SubscriberRegistered,
    ) -> Input<MatcherRecord> {
        let key = registered.subscriber_id.clone();
        let signed = self.signed(SUBSCRIBERS, &key, registered.clone().into());
        Input::Record {
            at: at(0, offset),
            key: Some(key),
            value: MatcherRecord::Registered(registered),
            signed,
        }
    }

    /// The matcher's input of `offer`, signed, at `offset` of the offers.
    fn publication(&self, offset: usize, offer: OfferPublished) -> Input<MatcherRecord> {
        let signed = self.signed(OFFERS, &offer.offer_id, offer.clone().into());
        Input::Record {
            at: at(1, offset),
            key: Some(offer.offer_id.clone()),
            value: MatcherRecord::Published(offer),
            signed,
        }
    }

    /// A new subscriber with one to four interests.
    fn newcomer(&mut self, n: usize) -> SubscriberRegistered {
        let count = self.rng.random_range(1..=4);
        let wanted = (0..count).map(|_| self.interest()).collect();
        self.subscriber(n, wanted)
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    fn word(&mut self) -> String {
        word(self.rng.random_range(0..WORDS))
    }

    fn identifier(&mut self) -> String {
        format!("sku-{}", self.rng.random_range(0..IDENTIFIERS))
    }

    fn brand(&mut self) -> String {
        format!("brand-{}", self.rng.random_range(0..BRANDS))
    }

    fn cheaper_than(&mut self) -> Option<ParameterRange> {
        self.rng.random_bool(0.3).then(|| ParameterRange {
            name: "price".into(),
            min: None,
            max: Some(self.rng.random_range(1_000..100_000)),
        })
    }

    /// Half name an identifier, a quarter a brand (and maybe a colour), a quarter name words,
    /// and one in a hundred thousand only bounds a parameter; many add a price limit.
    fn interest(&mut self) -> Interest {
        let mut interest = Interest {
            identifier: None,
            terms: vec![],
            features: BTreeMap::new(),
            ranges: vec![],
        };
        match self.rng.random_range(0..100_000) {
            0..50_000 => {
                interest.identifier = Some(self.identifier());
                interest.ranges.extend(self.cheaper_than());
            }
            50_000..75_000 => {
                interest.features.insert("brand".into(), self.brand());
                if self.rng.random_bool(0.5) {
                    interest
                        .features
                        .insert("colour".into(), self.pick(COLOURS).into());
                }
                interest.ranges.extend(self.cheaper_than());
            }
            75_000..99_999 => {
                let words = self.rng.random_range(1..=3);
                interest.terms = (0..words).map(|_| self.word()).collect();
            }
            _ => {
                let low = self.rng.random_range(0..1_000);
                interest.ranges.push(ParameterRange {
                    name: self.pick(PARAMETERS).into(),
                    min: Some(low),
                    max: Some(low + self.rng.random_range(0..1_000)),
                });
            }
        }
        interest
    }

    fn subscriber(&mut self, n: usize, interests: Vec<Interest>) -> SubscriberRegistered {
        SubscriberRegistered {
            event_id: uuid::Uuid::new_v4().to_string(),
            subscriber_id: format!("subscriber-{n}"),
            contact: format!("subscriber-{n}@example.org"),
            public_key: self.rng.random::<[u8; 32]>().to_vec(),
            signing_key: self.signer.verifying_key().to_bytes(),
            interests,
            webhook: None,
            endorsement: None,
            sealed_contact: None,
        }
    }

    /// An offer with a random identifier, a four-word name, a brand and a colour, and two
    /// parameters: selective, as most offers are.
    fn offer(&mut self, n: usize, invite_late: bool) -> OfferPublished {
        let name: Vec<String> = (0..4).map(|_| self.word()).collect();
        // Shaped like a real sealed half, so the offer passes `check_offer`'s credential check.
        let sealed = SealedBox {
            enc: vec![1; tessera_contract::sealing::KEY_LEN],
            ciphertext: vec![2; tessera_contract::sealing::SEALED_HALF_LEN],
        };
        tessera_contract::identity::with_package_signed(
            OfferPublished {
                event_id: uuid::Uuid::new_v4().to_string(),
                offer_id: format!("offer-{n}"),
                provider_id: "provider".into(),
                signing_key: self.signer.verifying_key().to_bytes(),
                package_signature: Vec::new(),
                provider_endorsement: None,
                provider_contact: "provider@example.org".into(),
                recommendation: Recommendation {
                    identifier: self.identifier(),
                    name: name.join(" "),
                    features: BTreeMap::from([
                        ("brand".into(), self.brand()),
                        ("colour".into(), self.pick(COLOURS).into()),
                    ]),
                    parameters: BTreeMap::from([
                        ("price".into(), self.rng.random_range(100..100_000)),
                        (
                            self.pick(&PARAMETERS[1..]).into(),
                            self.rng.random_range(0..2_000),
                        ),
                    ]),
                },
                time_rule: TimeRule::Deadline(Deadline {
                    at: START + 86_400_000,
                }),
                capacity: None,
                reward: None,
                decide_within: None,
                credential: SealedCredential {
                    custody: Custody::CoSign,
                    package: vec![3; 256],
                    platform_half: sealed,
                    escrow_half: None,
                },
                invite_late,
            },
            &self.signer,
        )
    }
}

fn at(topic: usize, offset: usize) -> Position {
    Position {
        topic,
        partition: 0,
        task: 0,
        offset: offset as i64,
        stamp: START,
        effective: START,
    }
}

fn commit(store: &mut TaskStore) -> Result<(), StoreError> {
    if let Some(failure) = store.take_failure() {
        return Err(failure);
    }
    store.commit(&Checkpoint::default())
}

/// Every file of the store with its size.
fn files(dir: &Path) -> anyhow::Result<BTreeMap<OsString, u64>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        if metadata.is_file() {
            files.insert(entry.file_name(), metadata.len());
        }
    }
    Ok(files)
}

fn disk_bytes(dir: &Path) -> anyhow::Result<u64> {
    Ok(files(dir)?.values().sum())
}

/// Waits (a minute at most) until the store's files have not changed for three seconds: the
/// bulk load leaves level-0 files that RocksDB compacts in the background, a backlog that a
/// long-running task, whose interests arrive over days, does not carry. Matching against it would
/// time the backlog rather than the index.
fn settle(dir: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = files(dir)?;
    let mut unchanged_since = Instant::now();
    while unchanged_since.elapsed() < Duration::from_secs(3) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let now = files(dir)?;
        if now != last {
            last = now;
            unchanged_since = Instant::now();
        }
    }
    Ok(())
}

/// Ends a timed pass: its progress bar, and the store's first failure in it, if any.
fn finish(progress: ProgressBar, store: &mut TaskStore) -> Result<(), StoreError> {
    progress.finish();
    store.take_failure().map_or(Ok(()), Err)
}

/// The `q`-quantile of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[index]
}

/// How much the bench loads and times.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sizes {
    /// Interests held in state.
    pub(super) interests: usize,
    /// Offers timed through the interests' index.
    pub(super) offers: usize,
    /// Offers, and registrations, also timed through a linear scan.
    pub(super) scans: usize,
    /// Offers kept open for the registrations.
    pub(super) open_offers: usize,
    /// New subscribers timed against the open offers.
    pub(super) registrations: usize,
}

/// Loads `interests` interests, then times `offers` offers through the index and `scans` of them
/// through a linear scan, and prints the result; then keeps `open_offers` offers open and does
/// the same for `registrations` new subscribers.
pub(super) fn run(sizes: Sizes) -> anyhow::Result<()> {
    let Sizes {
        interests,
        offers,
        scans,
        open_offers,
        registrations,
    } = sizes;
    if [interests, offers, scans, open_offers, registrations].contains(&0)
        || scans > offers.min(registrations)
    {
        bail!(
            "--interests, --offers, --scans, --open-offers and --registrations must be positive, \
             and --scans at most --offers and --registrations"
        );
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("matcher");
    let (_, rss_before) = rss_mib(std::process::id())?;
    let mut store = TaskStore::open(&path)?;
    let mut core = Matcher::default();
    let mut synthetic = Synthetic::new();

    let progress = bar(interests as u64, "registering interests");
    let loading = Instant::now();
    let (mut loaded, mut subscribers) = (0, 0);
    while loaded < interests {
        let count = synthetic.rng.random_range(1..=4).min(interests - loaded);
        let wanted = (0..count).map(|_| synthetic.interest()).collect();
        let registered = synthetic.subscriber(subscribers, wanted);
        let input = synthetic.registration(subscribers, registered);
        ensure!(
            core.apply(&mut store, input).is_empty(),
            "a registration produced output"
        );
        loaded += count;
        subscribers += 1;
        if subscribers % COMMIT_EVERY == 0 {
            commit(&mut store)?;
            progress.set_position(loaded as u64);
        }
    }
    commit(&mut store)?;
    progress.finish();
    let load_time = loading.elapsed();
    // Reopening replays the write-ahead log into table files, so the size below is what the
    // interests occupy at rest, and the timed offers read from table files as in production.
    drop(store);
    let mut store = TaskStore::open(&path)?;
    settle(&path)?;
    let on_disk = disk_bytes(&path)?;

    let progress = bar((WARM_UP + offers) as u64, "matching through the index");
    let mut index_times = Vec::with_capacity(offers);
    let mut sampled = Vec::with_capacity(scans);
    // Each request is an Avro record to encode, so the time grows with the requests an offer
    // makes: the times are also reported per band of request counts.
    let mut by_requests: BTreeMap<usize, Vec<Duration>> = BTreeMap::new();
    let mut requests = 0;
    for n in 0..WARM_UP + offers {
        let offer = synthetic.offer(n, false);
        if n >= WARM_UP && sampled.len() < scans {
            sampled.push(offer.clone());
        }
        let input = synthetic.publication(n, offer);
        let started = Instant::now();
        let outputs = core.apply(&mut store, input);
        let elapsed = started.elapsed();
        if n >= WARM_UP {
            index_times.push(elapsed);
            requests += outputs.len();
            let band = REQUEST_BANDS
                .iter()
                .rposition(|&low| outputs.len() >= low)
                .unwrap_or(0);
            by_requests.entry(band).or_default().push(elapsed);
        }
        if n % 100 == 0 {
            progress.set_position(n as u64);
        }
    }
    finish(progress, &mut store)?;
    // An offer the matcher refuses costs one read: timing those would measure nothing.
    ensure!(
        requests > 0,
        "no benchmark offer invited anyone; are the offers valid?"
    );
    let (rss_peak, _) = rss_mib(std::process::id())?;

    let progress = bar(scans as u64, "matching by linear scan");
    let mut scan_times = Vec::with_capacity(scans);
    for offer in &sampled {
        let facts = OfferFacts::new(&offer.recommendation);
        let started = Instant::now();
        let scanned = index::scan_matching(&store, &facts);
        scan_times.push(started.elapsed());
        let indexed: BTreeSet<String> = index::matching(&store, &facts);
        ensure!(
            scanned == indexed,
            "{}: the index and the scan disagree",
            offer.offer_id
        );
        progress.inc(1);
    }
    progress.finish();

    index_times.sort();
    scan_times.sort();
    let index_median = quantile(&index_times, 0.5);
    let scan_median = quantile(&scan_times, 0.5);
    let per_interest = |bytes: f64| bytes / interests as f64;
    let rss_delta = (rss_peak - rss_before) * 1024.0 * 1024.0;
    println!(
        "interests          {interests} ({subscribers} subscribers), registered in {load_time:.2?}"
    );
    println!(
        "state on disk      {:.1} MiB, {:.0} bytes per interest",
        on_disk as f64 / 1024.0 / 1024.0,
        per_interest(on_disk as f64)
    );
    println!(
        "peak RSS delta     {:.0} MiB, {:.0} bytes per interest",
        rss_delta / 1024.0 / 1024.0,
        per_interest(rss_delta)
    );
    println!(
        "index (apply)      median {index_median:.1?}, p99 {:.1?} over {offers} offers, {:.2} requests per offer",
        quantile(&index_times, 0.99),
        requests as f64 / offers as f64
    );
    for (band, mut times) in by_requests {
        times.sort();
        let low = REQUEST_BANDS[band];
        let high = REQUEST_BANDS
            .get(band + 1)
            .map_or(String::new(), |next| (next - 1).to_string());
        println!(
            "  {low:>3}-{high:<3} requests  median {:.1?}, p99 {:.1?} over {} offers",
            quantile(&times, 0.5),
            quantile(&times, 0.99),
            times.len()
        );
    }
    println!(
        "linear scan        median {scan_median:.1?}, p99 {:.1?} over {scans} offers",
        quantile(&scan_times, 0.99)
    );
    println!(
        "scan / index       {:.0}x (median)",
        scan_median.as_secs_f64() / index_median.as_secs_f64()
    );
    let late = Late {
        offset: WARM_UP + offers,
        subscribers,
    };
    late.run(store, &path, &mut core, &mut synthetic, sizes)
}

/// Where the reverse direction starts: the offsets after the forward one's offers and
/// subscribers, so that no id repeats.
struct Late {
    offset: usize,
    subscribers: usize,
}

impl Late {
    /// Keeps `open_offers` offers open, then times `registrations` new subscribers through the
    /// open offers' index and `scans` of them through a linear scan, and prints the result.
    fn run(
        self,
        mut store: TaskStore,
        path: &Path,
        core: &mut Matcher,
        synthetic: &mut Synthetic,
        sizes: Sizes,
    ) -> anyhow::Result<()> {
        let progress = bar(sizes.open_offers as u64, "keeping offers open");
        let mut keep_times = Vec::with_capacity(sizes.open_offers);
        for n in 0..sizes.open_offers {
            let offset = self.offset + n;
            let offer = synthetic.offer(offset, true);
            let input = synthetic.publication(offset, offer);
            let started = Instant::now();
            core.apply(&mut store, input);
            keep_times.push(started.elapsed());
            if (n + 1) % COMMIT_EVERY == 0 {
                commit(&mut store)?;
                progress.set_position(n as u64 + 1);
            }
        }
        commit(&mut store)?;
        progress.finish();
        drop(store);
        let mut store = TaskStore::open(path)?;
        settle(path)?;

        let timed = WARM_UP_REGISTRATIONS + sizes.registrations;
        let progress = bar(timed as u64, "matching registrations");
        let mut index_times = Vec::with_capacity(sizes.registrations);
        let mut sampled = Vec::with_capacity(sizes.scans);
        let mut requests = 0;
        for n in 0..timed {
            let registered = synthetic.newcomer(self.subscribers + n);
            if n >= WARM_UP_REGISTRATIONS && sampled.len() < sizes.scans {
                sampled.push(registered.interests.clone());
            }
            let input = synthetic.registration(self.subscribers + n, registered);
            let started = Instant::now();
            let outputs = core.apply(&mut store, input);
            let elapsed = started.elapsed();
            if n >= WARM_UP_REGISTRATIONS {
                index_times.push(elapsed);
                requests += outputs.len();
            }
            if n % 100 == 0 {
                progress.set_position(n as u64);
            }
        }
        finish(progress, &mut store)?;
        ensure!(
            requests > 0,
            "no benchmark registration was invited late; are the offers open?"
        );

        let progress = bar(sizes.scans as u64, "matching by linear scan");
        let mut scan_times = Vec::with_capacity(sizes.scans);
        for interests in &sampled {
            let started = Instant::now();
            let scanned = open::scan_matching(&store, interests);
            scan_times.push(started.elapsed());
            ensure!(
                scanned == open::matching(&store, interests),
                "the open offers' index and the scan disagree"
            );
            progress.inc(1);
        }
        progress.finish();

        keep_times.sort();
        index_times.sort();
        scan_times.sort();
        let index_median = quantile(&index_times, 0.5);
        let scan_median = quantile(&scan_times, 0.5);
        println!(
            "kept open (apply)  median {:.1?}, p99 {:.1?} over {} offers inviting late",
            quantile(&keep_times, 0.5),
            quantile(&keep_times, 0.99),
            sizes.open_offers
        );
        println!(
            "late (apply)       median {index_median:.1?}, p99 {:.1?} over {} registrations against {} open offers, {:.2} requests per registration",
            quantile(&index_times, 0.99),
            sizes.registrations,
            sizes.open_offers,
            requests as f64 / sizes.registrations as f64
        );
        println!(
            "late linear scan   median {scan_median:.1?}, p99 {:.1?} over {} registrations",
            quantile(&scan_times, 0.99),
            sizes.scans
        );
        println!(
            "late scan / index  {:.0}x (median)",
            scan_median.as_secs_f64() / index_median.as_secs_f64()
        );
        Ok(())
    }
}

//! `tessera acl`: the broker's layer of trust. One Kafka principal per role, and ACLs that let each
//! role do exactly what tessera needs of it: parties write only the input topics they own, each
//! processor writes only its outputs, its changelog, its transactional ids and its group, and
//! reading is restricted to what each role's commands read.
//!
//! The table is derived, not written by hand: the processors' topics come from their cores
//! (`inputs()`/`outputs()`) and the runtime's naming ([`Topics`]), the parties' from the topic
//! catalogue. So a processor that gains an input gains its ACL with it.
//!
//! rust-rdkafka 0.39 has no ACL admin API, so `apply` calls librdkafka's `rd_kafka_CreateAcls`
//! through its C bindings ([`create_acls`]); it needs only the tessera binary and an admin
//! principal, on any cluster.
//!
//! What ACLs can't do: they are per topic, not per record key. A subscriber allowed to write
//! `tessera.subscribers` can write any key there; only the signatures inside the events stop it
//! writing as another subscriber.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char};
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::bindings as rd;
use rdkafka::producer::{BaseProducer, Producer};
use tessera_contract::topics::{
    self, COSIGNS, DECISIONS, DELIVERIES, KEYS, LEDGER, OFFERS, OUTCOMES, PACKAGES, RESPONSES,
    SUBSCRIBERS, Topic,
};
use tessera_cores::layout::Topics;
use tessera_cores::registry::{self, Shape};

use crate::kafka::KafkaArgs;

/// What `tessera acl` does.
#[derive(Debug, clap::Subcommand)]
pub enum Acl {
    /// Print the ACL table (principal, resource, pattern, name, operation, reason) for the
    /// installation named by `--topic-prefix`; talks to no broker.
    Plan {
        /// Only this role's grants (provider, subscriber, matcher, timekeeper, delivery, ledger,
        /// auditor).
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
    },
    /// Create the table's ACLs on the cluster. Run it as a principal allowed to alter ACLs (the
    /// admin, e.g. `--kafka-config $TESSERA_HOME/kafka/secure/admin.properties`). ACLs that
    /// exist already are left as they are, and none are deleted.
    Apply {
        /// How long to wait for the broker's answer.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

/// A tessera role: each runs as its own Kafka principal `User:<role>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Publishes offers, co-signs releases (`tessera provider ...`).
    Provider,
    /// Registers needs, answers, accepts (`tessera subscriber ...`).
    Subscriber,
    /// `tessera run matcher`.
    Matcher,
    /// `tessera run timekeeper`.
    Timekeeper,
    /// `tessera run delivery`.
    Delivery,
    /// `tessera run ledger`.
    Ledger,
    /// Reads everything, writes nothing (`tessera audit`, `receipt`, `offer status`).
    Auditor,
}

impl Role {
    /// Every role, in the table's order.
    pub const ALL: [Role; 7] = [
        Role::Provider,
        Role::Subscriber,
        Role::Matcher,
        Role::Timekeeper,
        Role::Delivery,
        Role::Ledger,
        Role::Auditor,
    ];

    /// The role's name, which is also its SCRAM user name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Provider => "provider",
            Role::Subscriber => "subscriber",
            Role::Matcher => "matcher",
            Role::Timekeeper => "timekeeper",
            Role::Delivery => "delivery",
            Role::Ledger => "ledger",
            Role::Auditor => "auditor",
        }
    }

    /// The role a registered processor runs as. Every processor in the registry has one: a new
    /// processor needs its principal decided here, and the test below fails until it is.
    pub fn of_processor(name: &str) -> Role {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == name)
            .unwrap_or_else(|| panic!("processor {name} has no ACL role in src/acl.rs"))
    }

    /// The Kafka principal the role authenticates as.
    pub fn principal(self) -> String {
        format!("User:{}", self.name())
    }
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::ALL
        .into_iter()
        .find(|r| r.name() == text)
        .ok_or_else(|| {
            let names: Vec<_> = Role::ALL.iter().map(|r| r.name()).collect();
            format!("unknown role `{text}`; one of {}", names.join(", "))
        })
}

/// The kind of resource an ACL is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// A transactional id.
    TransactionalId,
}

/// How an ACL's name matches resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pattern {
    /// Exactly the name.
    Literal,
    /// Every name starting with it.
    Prefixed,
}

/// What an ACL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Consume a topic; join, commit to or read the offsets of a group.
    Read,
    /// Produce to a topic; use a transactional id.
    Write,
    /// Create a topic.
    Create,
    /// Describe a group (its committed offsets) or a topic.
    Describe,
    /// Read a topic's configuration.
    DescribeConfigs,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Topic => "topic",
            Resource::Group => "group",
            Resource::TransactionalId => "transactional-id",
        })
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pattern::Literal => "literal",
            Pattern::Prefixed => "prefixed",
        })
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Read => "READ",
            Operation::Write => "WRITE",
            Operation::Create => "CREATE",
            Operation::Describe => "DESCRIBE",
            Operation::DescribeConfigs => "DESCRIBE_CONFIGS",
        })
    }
}

/// One ACL: `role` is allowed `operation` on the resources `pattern` `name` matches, from any
/// host, for `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Who.
    pub role: Role,
    /// On what kind of resource.
    pub resource: Resource,
    /// Literal name or prefix.
    pub pattern: Pattern,
    /// The resource's name (or prefix), with the installation's topic prefix.
    pub name: String,
    /// What.
    pub operation: Operation,
    /// Why the role needs it; several reasons are joined with `; `.
    pub reason: String,
}

/// Consumer groups of the client commands' readers: each read takes a fresh
/// `tessera-client-<uuid>` group that never commits (see `tessera_producers::client::reader`).
/// These names carry no topic prefix, as the clients make them.
const CLIENT_GROUPS: &str = "tessera-client-";
/// The audit's and the receipt check's fresh groups.
const AUDIT_GROUPS: &str = "tessera-audit-";
const RECEIPT_GROUPS: &str = "tessera-receipt-";

/// Collects grants, merging the reasons of duplicates.
#[derive(Default)]
struct Table {
    grants: BTreeMap<(Role, Resource, Pattern, String, Operation), Vec<String>>,
}

impl Table {
    fn add(
        &mut self,
        role: Role,
        resource: Resource,
        pattern: Pattern,
        name: &str,
        operation: Operation,
        reason: impl Into<String>,
    ) {
        let reasons = self
            .grants
            .entry((role, resource, pattern, name.to_string(), operation))
            .or_default();
        let reason = reason.into();
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }

    fn topic(&mut self, role: Role, name: &str, operation: Operation, reason: impl Into<String>) {
        self.add(
            role,
            Resource::Topic,
            Pattern::Literal,
            name,
            operation,
            reason,
        );
    }

    /// Read access to catalogue topics, for a client command or processor.
    fn reads(&mut self, role: Role, prefix: &str, topics: &[(Topic, &str)]) {
        for (topic, reason) in topics {
            self.topic(role, &topic.full_name(prefix), Operation::Read, *reason);
        }
    }

    /// What a processor core needs on the exactly-once runtime, derived from its topics and
    /// the runtime's naming.
    fn processor(&mut self, role: Role, core: &Shape, prefix: &str) {
        let topics = Topics::declared(core, prefix);
        let group = Topics::group_named(core.name, prefix);
        let name = core.name;
        for input in &topics.inputs {
            self.topic(role, input, Operation::Read, format!("{name} input"));
            self.topic(
                role,
                input,
                Operation::DescribeConfigs,
                format!("{name} checks its inputs are stamped LogAppendTime"),
            );
            // The runtime's ticker writes Tick records to every input partition it owns, so
            // stream time moves on idle partitions (processors/runtime/src/ticker.rs).
            self.topic(
                role,
                input,
                Operation::Write,
                format!("{name} ticks its inputs"),
            );
        }
        for output in &topics.outputs {
            self.topic(role, output, Operation::Write, format!("{name} output"));
        }
        self.topic(
            role,
            &topics.dead_letters,
            Operation::Write,
            format!("{name} dead letters (and the start-up sweep)"),
        );
        let changelog = &topics.changelog;
        self.topic(
            role,
            changelog,
            Operation::Write,
            format!("{name} state changelog"),
        );
        self.topic(
            role,
            changelog,
            Operation::Read,
            format!("{name} restores its state"),
        );
        self.topic(
            role,
            changelog,
            Operation::Create,
            format!("{name} creates its changelog when missing"),
        );
        self.add(
            role,
            Resource::Group,
            Pattern::Literal,
            &group,
            Operation::Read,
            format!("{name} consumer group and transactional offset commits"),
        );
        // The restore and broadcast readers take groups named after the changelog
        // (`<group>.changelog-restore`, `<group>.changelog-broadcast-<n>`).
        self.add(
            role,
            Resource::Group,
            Pattern::Prefixed,
            &format!("{group}."),
            Operation::Read,
            format!("{name} changelog restore and broadcast readers"),
        );
        // Transactional ids are `<group>.<instance>`: one per instance, fencing its old
        // incarnations.
        self.add(
            role,
            Resource::TransactionalId,
            Pattern::Prefixed,
            &format!("{group}."),
            Operation::Write,
            format!("{name} transactions, one id per instance"),
        );
    }

    fn into_grants(self) -> Vec<Grant> {
        self.grants
            .into_iter()
            .map(
                |((role, resource, pattern, name, operation), reasons)| Grant {
                    role,
                    resource,
                    pattern,
                    name,
                    operation,
                    reason: reasons.join("; "),
                },
            )
            .collect()
    }
}

/// The ACL table of the installation whose topics carry `prefix`.
pub fn plan(prefix: &str) -> Vec<Grant> {
    let mut table = Table::default();

    // Parties. Each writes only the topics whose events it signs (DESIGN.md, "Identity and
    // trust"), and reads what its commands read today.
    let p = Role::Provider;
    table.topic(
        p,
        &OFFERS.full_name(prefix),
        Operation::Write,
        "publishes and withdraws offers",
    );
    table.topic(
        p,
        &COSIGNS.full_name(prefix),
        Operation::Write,
        "agent co-signs releases",
    );
    table.topic(
        p,
        &PACKAGES.full_name(prefix),
        Operation::Write,
        "publishes payloads larger than an offer carries, in chunks",
    );
    table.reads(
        p,
        prefix,
        &[
            (
                KEYS,
                "seals the offer's half to the timekeeper's published key; ledger balance pins the ledger's",
            ),
            (OFFERS, "agent reads its own offers"),
            (DECISIONS, "agent follows releases"),
            (
                RESPONSES,
                "agent checks the response a release cites is the responder's, signed",
            ),
            (COSIGNS, "agent skips what it co-signed already"),
            (SUBSCRIBERS, "agent seals to the responder's registered key"),
            (LEDGER, "ledger balance"),
        ],
    );
    let s = Role::Subscriber;
    for (topic, reason) in [
        (SUBSCRIBERS, "registers, rotates keys, leaves"),
        (RESPONSES, "answers invitations"),
        (OUTCOMES, "accepts or declines credentials"),
    ] {
        table.topic(s, &topic.full_name(prefix), Operation::Write, reason);
    }
    table.reads(
        s,
        prefix,
        &[
            (
                KEYS,
                "the timekeeper's and delivery worker's published keys",
            ),
            (
                DELIVERIES,
                "its inbox: credentials, and notices sealed to it of its invitations, verdicts, \
                 offers' ends and decisions",
            ),
            (PACKAGES, "open: payloads in chunks"),
        ],
    );
    // The readers only assign partitions and never commit, so DESCRIBE (which finding the
    // group's coordinator needs) is enough; READ would also let them commit offsets.
    for role in [p, s] {
        table.add(
            role,
            Resource::Group,
            Pattern::Prefixed,
            CLIENT_GROUPS,
            Operation::Describe,
            "client readers' throwaway groups",
        );
    }

    // Processors: derived from the registry's declarations and the runtime.
    for processor in registry::ALL {
        let role = Role::of_processor(processor.name);
        for core in processor.cores {
            table.processor(role, core, prefix);
        }
        if processor.publishes_key {
            table.topic(
                role,
                &KEYS.full_name(prefix),
                Operation::Write,
                "publishes its public key at start",
            );
        }
    }
    // The webhook worker inside `tessera run delivery` (processors/webhooks/).
    let d = Role::Delivery;
    table.topic(
        d,
        &DELIVERIES.full_name(prefix),
        Operation::Read,
        "webhook worker follows the inbox",
    );
    table.topic(
        d,
        &DELIVERIES.full_name(prefix),
        Operation::Write,
        "webhook worker's DeliveryFailed",
    );
    table.topic(
        d,
        &SUBSCRIBERS.full_name(prefix),
        Operation::Read,
        "webhook worker's addresses",
    );
    table.add(
        d,
        Resource::Group,
        Pattern::Literal,
        &format!("{prefix}tessera.webhooks"),
        Operation::Read,
        "webhook worker's consumer group",
    );
    table.add(
        d,
        Resource::Group,
        Pattern::Prefixed,
        CLIENT_GROUPS,
        Operation::Describe,
        "webhook worker's registration reader",
    );
    // The auditor reads every catalogue topic and the processors' committed offsets, and
    // writes nothing.
    let a = Role::Auditor;
    for topic in topics::ALL {
        table.topic(
            a,
            &topic.full_name(prefix),
            Operation::Read,
            "replays the log",
        );
    }
    let cores = registry::ALL.iter().flat_map(|p| p.cores.iter());
    for group in cores.map(|core| Topics::group_named(core.name, prefix)) {
        table.add(
            a,
            Resource::Group,
            Pattern::Literal,
            &group,
            Operation::Describe,
            "audit compares outputs with the group's committed offsets",
        );
    }
    for (groups, reason) in [
        (CLIENT_GROUPS, "client readers' throwaway groups"),
        (AUDIT_GROUPS, "audit readers' throwaway groups"),
        (RECEIPT_GROUPS, "receipt readers' throwaway groups"),
    ] {
        table.add(
            a,
            Resource::Group,
            Pattern::Prefixed,
            groups,
            Operation::Describe,
            reason,
        );
    }
    table.into_grants()
}

/// Prints the table, one grant a line, aligned.
fn print(out: &mut impl std::io::Write, grants: &[Grant]) -> std::io::Result<()> {
    let rows: Vec<[String; 6]> = grants
        .iter()
        .map(|g| {
            [
                g.role.principal(),
                g.resource.to_string(),
                g.pattern.to_string(),
                g.name.clone(),
                g.operation.to_string(),
                g.reason.clone(),
            ]
        })
        .collect();
    let header = [
        "PRINCIPAL",
        "RESOURCE",
        "PATTERN",
        "NAME",
        "OPERATION",
        "WHY",
    ]
    .map(String::from);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (width, cell) in widths.iter().zip(row) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        line.push_str(&row[5]);
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Runs `tessera acl`.
pub async fn run(kafka: &KafkaArgs, command: Acl) -> anyhow::Result<()> {
    match command {
        Acl::Plan { role } => {
            let grants: Vec<Grant> = plan(&kafka.topic_prefix)
                .into_iter()
                .filter(|g| role.is_none_or(|r| g.role == r))
                .collect();
            match print(&mut std::io::stdout().lock(), &grants) {
                // `tessera acl plan | head` is not an error.
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
                result => result.context("cannot write the table")?,
            }
        }
        Acl::Apply { timeout } => {
            let grants = plan(&kafka.topic_prefix);
            let config = kafka.client_config()?;
            let count = grants.len();
            // librdkafka's admin calls block on a queue; keep them off the async runtime.
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let producer: BaseProducer =
                    config.create().context("cannot create a Kafka client")?;
                Ok(create_acls(&producer, &grants, timeout)?)
            })
            .await
            .context("the ACL request thread failed")??;
            println!("applied {count} ACL bindings (existing ones are left as they are)");
        }
    }
    Ok(())
}

/// Why creating ACLs failed.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// librdkafka refused to build a binding (bad name or enum).
    #[error("cannot build the ACL binding {binding}: {reason}")]
    Binding {
        /// The grant, as `principal resource pattern name operation`.
        binding: String,
        /// librdkafka's message.
        reason: String,
    },
    /// A name holds a NUL byte.
    #[error("ACL name {0:?} contains a NUL byte")]
    Nul(String),
    /// A librdkafka call failed before the request was sent.
    #[error("{0}")]
    Client(String),
    /// No answer within the timeout.
    #[error("no answer to CreateAcls within {0:?}")]
    Timeout(Duration),
    /// The request as a whole failed.
    #[error("CreateAcls failed: {0}")]
    Request(String),
    /// The broker refused every binding for one reason: usually the principal may not alter
    /// ACLs.
    #[error(
        "the broker refused all {count} ACL bindings: {code} (run `acl apply` as a principal \
         allowed to alter ACLs, such as admin): {message}"
    )]
    AllRefused {
        /// How many bindings were sent.
        count: usize,
        /// The broker's error code name, e.g. CLUSTER_AUTHORIZATION_FAILED.
        code: String,
        /// The broker's message for the first binding.
        message: String,
    },
    /// The broker refused some bindings.
    #[error("the broker refused {} of the ACL bindings: {}", .0.len(), .0.join("; "))]
    Refused(Vec<String>),
}

/// Frees every binding it holds when dropped, whatever path the caller leaves by.
struct Bindings(Vec<*mut rd::rd_kafka_AclBinding_t>);

impl Drop for Bindings {
    fn drop(&mut self) {
        for binding in self.0.drain(..) {
            // SAFETY: each pointer came from rd_kafka_AclBinding_new and is freed once, here;
            // rd_kafka_CreateAcls copies the bindings, so they are ours to free after the call.
            unsafe { rd::rd_kafka_AclBinding_destroy(binding) };
        }
    }
}

/// Frees the admin options when dropped.
struct Options(*mut rd::rd_kafka_AdminOptions_t);

impl Drop for Options {
    fn drop(&mut self) {
        // SAFETY: from rd_kafka_AdminOptions_new, freed once.
        unsafe { rd::rd_kafka_AdminOptions_destroy(self.0) };
    }
}

/// Frees the reply queue when dropped.
struct Queue(*mut rd::rd_kafka_queue_t);

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: from rd_kafka_queue_new, freed once, after the last poll.
        unsafe { rd::rd_kafka_queue_destroy(self.0) };
    }
}

/// Frees the result event (and with it every result object it owns) when dropped.
struct Event(*mut rd::rd_kafka_event_t);

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: from rd_kafka_queue_poll, freed once.
        unsafe { rd::rd_kafka_event_destroy(self.0) };
    }
}

/// A C string librdkafka wrote into `buffer`.
fn errstr(buffer: &[c_char]) -> String {
    // SAFETY: librdkafka NUL-terminates what it writes within the size it was given; the
    // buffer starts zeroed so it is terminated even when nothing was written.
    unsafe { CStr::from_ptr(buffer.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn c_string(text: &str) -> Result<CString, AclError> {
    CString::new(text).map_err(|_| AclError::Nul(text.to_string()))
}

/// Creates `grants` as ALLOW ACLs from any host, with librdkafka's CreateAcls, on the cluster
/// `producer` is connected to. Every librdkafka object made here is freed on every path.
pub fn create_acls(
    producer: &BaseProducer,
    grants: &[Grant],
    timeout: Duration,
) -> Result<(), AclError> {
    let rk = producer.client().native_ptr();
    let host = c_string("*")?;
    let mut bindings = Bindings(Vec::with_capacity(grants.len()));
    for grant in grants {
        let name = c_string(&grant.name)?;
        let principal = c_string(&grant.role.principal())?;
        let mut buffer: [c_char; 512] = [0; 512];
        // SAFETY: every pointer is valid for the call; librdkafka copies the strings.
        let binding = unsafe {
            rd::rd_kafka_AclBinding_new(
                resource_type(grant.resource),
                name.as_ptr(),
                pattern_type(grant.pattern),
                principal.as_ptr(),
                host.as_ptr(),
                operation(grant.operation),
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                buffer.as_mut_ptr(),
                buffer.len(),
            )
        };
        if binding.is_null() {
            return Err(AclError::Binding {
                binding: describe(grant),
                reason: errstr(&buffer),
            });
        }
        bindings.0.push(binding);
    }
    if bindings.0.is_empty() {
        return Ok(());
    }

    // SAFETY: rk is the live client handle of `producer`, which outlives this call.
    let options = unsafe {
        rd::rd_kafka_AdminOptions_new(rk, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS)
    };
    if options.is_null() {
        return Err(AclError::Client("cannot create the admin options".into()));
    }
    let options = Options(options);
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let mut buffer: [c_char; 512] = [0; 512];
    // SAFETY: valid options and buffer.
    let err = unsafe {
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options.0,
            timeout_ms,
            buffer.as_mut_ptr(),
            buffer.len(),
        )
    };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Err(AclError::Client(format!(
            "cannot set the request timeout: {}",
            errstr(&buffer)
        )));
    }
    // SAFETY: rk is live.
    let queue = unsafe { rd::rd_kafka_queue_new(rk) };
    if queue.is_null() {
        return Err(AclError::Client("cannot create a reply queue".into()));
    }
    let queue = Queue(queue);
    // SAFETY: the bindings array, options and queue are valid; librdkafka copies the bindings
    // and does not keep the array.
    unsafe {
        rd::rd_kafka_CreateAcls(
            rk,
            bindings.0.as_mut_ptr(),
            bindings.0.len(),
            options.0,
            queue.0,
        )
    };

    // The request timeout ends the request with an error event; the extra second is for that
    // event to arrive.
    let deadline = Instant::now() + timeout + Duration::from_secs(1);
    let event = loop {
        // SAFETY: queue is valid.
        let event = unsafe { rd::rd_kafka_queue_poll(queue.0, 100) };
        if !event.is_null() {
            break Event(event);
        }
        if Instant::now() >= deadline {
            return Err(AclError::Timeout(timeout));
        }
    };
    // SAFETY: event is valid until dropped; the strings it returns live as long as it.
    unsafe {
        if rd::rd_kafka_event_error(event.0) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            let message = rd::rd_kafka_event_error_string(event.0);
            let message = if message.is_null() {
                "unknown error".to_string()
            } else {
                CStr::from_ptr(message).to_string_lossy().into_owned()
            };
            return Err(AclError::Request(message));
        }
        let result = rd::rd_kafka_event_CreateAcls_result(event.0);
        if result.is_null() {
            return Err(AclError::Request(
                "the reply is not a CreateAcls result".into(),
            ));
        }
        let mut count = 0usize;
        let results = rd::rd_kafka_CreateAcls_result_acls(result, &mut count);
        if count != grants.len() || (count > 0 && results.is_null()) {
            return Err(AclError::Request(format!(
                "{count} results for {} bindings",
                grants.len()
            )));
        }
        // (grant, error code name, message) of each refused binding; results come in the
        // order of the request's bindings. The error objects belong to the event.
        let mut refused = Vec::new();
        for (i, grant) in grants.iter().enumerate() {
            let error = rd::rd_kafka_acl_result_error(*results.add(i));
            if error.is_null() {
                continue;
            }
            let code = rd::rd_kafka_err2name(rd::rd_kafka_error_code(error));
            let code = if code.is_null() {
                "UNKNOWN".to_string()
            } else {
                CStr::from_ptr(code).to_string_lossy().into_owned()
            };
            let message = rd::rd_kafka_error_string(error);
            let message = if message.is_null() {
                "no message".to_string()
            } else {
                CStr::from_ptr(message).to_string_lossy().into_owned()
            };
            refused.push((grant, code, message));
        }
        if refused.len() == grants.len() && refused.iter().all(|(_, code, _)| *code == refused[0].1)
        {
            let (_, code, message) = refused.swap_remove(0);
            return Err(AclError::AllRefused {
                count: grants.len(),
                code,
                message: shorten(&message),
            });
        }
        if !refused.is_empty() {
            return Err(AclError::Refused(
                refused
                    .iter()
                    .map(|(grant, code, message)| {
                        format!("{}: {code}: {}", describe(grant), shorten(message))
                    })
                    .collect(),
            ));
        }
    }
    Ok(())
}

/// The broker's messages can quote its whole request; the first 160 characters say what matters.
fn shorten(message: &str) -> String {
    match message.char_indices().nth(160) {
        Some((end, _)) => format!("{}…", &message[..end]),
        None => message.to_string(),
    }
}

fn describe(grant: &Grant) -> String {
    format!(
        "{} {} {} {} {}",
        grant.role.principal(),
        grant.resource,
        grant.pattern,
        grant.name,
        grant.operation
    )
}

fn resource_type(resource: Resource) -> rd::rd_kafka_ResourceType_t {
    use rd::rd_kafka_ResourceType_t::*;
    match resource {
        Resource::Topic => RD_KAFKA_RESOURCE_TOPIC,
        Resource::Group => RD_KAFKA_RESOURCE_GROUP,
        Resource::TransactionalId => RD_KAFKA_RESOURCE_TRANSACTIONAL_ID,
    }
}

fn pattern_type(pattern: Pattern) -> rd::rd_kafka_ResourcePatternType_t {
    use rd::rd_kafka_ResourcePatternType_t::*;
    match pattern {
        Pattern::Literal => RD_KAFKA_RESOURCE_PATTERN_LITERAL,
        Pattern::Prefixed => RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
    }
}

fn operation(operation: Operation) -> rd::rd_kafka_AclOperation_t {
    use rd::rd_kafka_AclOperation_t::*;
    match operation {
        Operation::Read => RD_KAFKA_ACL_OPERATION_READ,
        Operation::Write => RD_KAFKA_ACL_OPERATION_WRITE,
        Operation::Create => RD_KAFKA_ACL_OPERATION_CREATE,
        Operation::Describe => RD_KAFKA_ACL_OPERATION_DESCRIBE,
        Operation::DescribeConfigs => RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_processor_has_a_role() {
        for processor in registry::ALL {
            assert_eq!(Role::of_processor(processor.name).name(), processor.name);
        }
    }

    fn writes(grants: &[Grant], role: Role) -> Vec<String> {
        grants
            .iter()
            .filter(|g| g.role == role && g.resource == Resource::Topic)
            .filter(|g| g.operation == Operation::Write)
            .map(|g| g.name.clone())
            .collect()
    }

    #[test]
    fn parties_write_only_the_topics_they_sign() {
        let grants = plan("");
        assert_eq!(
            writes(&grants, Role::Provider),
            ["tessera.cosigns", "tessera.offers", "tessera.packages"]
        );
        assert_eq!(
            writes(&grants, Role::Subscriber),
            [
                "tessera.outcomes",
                "tessera.responses",
                "tessera.subscribers"
            ]
        );
        assert!(writes(&grants, Role::Auditor).is_empty());
    }

    #[test]
    fn subscribers_read_their_inbox_and_nothing_that_names_other_parties() {
        let grants = plan("");
        let mut reads: Vec<&str> = grants
            .iter()
            .filter(|g| g.role == Role::Subscriber && g.operation == Operation::Read)
            .filter(|g| g.resource == Resource::Topic)
            .map(|g| g.name.as_str())
            .collect();
        reads.sort_unstable();
        assert_eq!(
            reads,
            ["tessera.deliveries", "tessera.keys", "tessera.packages"]
        );
    }

    #[test]
    fn only_the_roles_clients_pin_write_keys_and_the_timekeeper_its_changelog() {
        let grants = plan("");
        for role in Role::ALL {
            let w = writes(&grants, role);
            let is_timekeeper = role == Role::Timekeeper;
            assert_eq!(
                w.contains(&"tessera.keys".to_string()),
                matches!(role, Role::Timekeeper | Role::Delivery | Role::Ledger),
                "{role:?}"
            );
            assert_eq!(
                w.contains(&"tessera.timekeeper.changelog".to_string()),
                is_timekeeper,
                "{role:?}"
            );
        }
    }

    #[test]
    fn the_ledger_alone_writes_the_ledger_topics() {
        let grants = plan("");
        for role in Role::ALL {
            let w = writes(&grants, role);
            let is_ledger = role == Role::Ledger;
            assert_eq!(
                w.contains(&"tessera.ledger".to_string()),
                is_ledger,
                "{role:?}"
            );
            assert_eq!(
                w.contains(&"tessera.ledger-credits".to_string()),
                is_ledger,
                "{role:?}"
            );
        }
    }

    #[test]
    fn the_prefix_names_every_topic_group_and_transactional_id() {
        let grants = plan("t1.");
        for grant in &grants {
            let client_group =
                [CLIENT_GROUPS, AUDIT_GROUPS, RECEIPT_GROUPS].contains(&&*grant.name);
            assert!(
                grant.name.starts_with("t1.tessera.") || client_group,
                "{grant:?}"
            );
        }
        assert!(grants.iter().any(|g| g.role == Role::Matcher
            && g.resource == Resource::TransactionalId
            && g.pattern == Pattern::Prefixed
            && g.name == "t1.tessera.matcher."));
    }
}

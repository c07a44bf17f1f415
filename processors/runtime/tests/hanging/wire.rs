//! Just enough of the Kafka protocol to write what no client library will: transactional records
//! of a producer on partitions its transaction coordinator was never told about.
//!
//! A broker restarting mid-transaction left exactly that behind (records of an instance's old
//! epoch on `__consumer_offsets` and changelog partitions, with the coordinator's state `Empty`).
//! Clients always register a partition with the coordinator before writing to it, so the only way
//! to build that state on demand is to skip the registration: these requests, sent by hand.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The client id brokers let write to internal topics (`__consumer_offsets`).
const ADMIN_CLIENT_ID: &str = "__admin_client";

const PRODUCE: i16 = 0;
const INIT_PRODUCER_ID: i16 = 22;

/// Coordinator errors that go away by themselves: loading, moving, a transaction still ending.
const RETRIABLE: [i16; 4] = [14, 15, 16, 51];

/// One connection to one broker.
pub(crate) struct Wire {
    stream: TcpStream,
    correlation: i32,
}

impl Wire {
    pub(crate) fn connect(address: &str) -> Self {
        let stream = TcpStream::connect(address).expect("connect to the broker");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Wire {
            stream,
            correlation: 0,
        }
    }

    /// Sends a request (header v1) and returns the response body after its correlation id.
    fn call(&mut self, api_key: i16, version: i16, body: &[u8]) -> Vec<u8> {
        self.correlation += 1;
        let mut request = Vec::new();
        put_i16(&mut request, api_key);
        put_i16(&mut request, version);
        put_i32(&mut request, self.correlation);
        put_str(&mut request, ADMIN_CLIENT_ID);
        request.extend_from_slice(body);
        let mut framed = Vec::new();
        put_i32(&mut framed, request.len() as i32);
        framed.extend_from_slice(&request);
        self.stream.write_all(&framed).expect("send a request");
        let mut size = [0; 4];
        self.stream
            .read_exact(&mut size)
            .expect("read a response size");
        let mut response = vec![0; i32::from_be_bytes(size) as usize];
        self.stream
            .read_exact(&mut response)
            .expect("read a response");
        assert_eq!(
            i32::from_be_bytes(response[..4].try_into().unwrap()),
            self.correlation
        );
        response.split_off(4)
    }

    /// Takes the producer id of `transactional_id` at a new epoch, as `init_transactions` does.
    pub(crate) fn init_producer_id(&mut self, transactional_id: &str) -> (i64, i16) {
        for _ in 0..100 {
            let mut body = Vec::new();
            put_str(&mut body, transactional_id);
            put_i32(&mut body, 60_000);
            let response = self.call(INIT_PRODUCER_ID, 1, &body);
            let error = i16::from_be_bytes(response[4..6].try_into().unwrap());
            if RETRIABLE.contains(&error) {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            assert_eq!(error, 0, "InitProducerId failed");
            let id = i64::from_be_bytes(response[6..14].try_into().unwrap());
            let epoch = i16::from_be_bytes(response[14..16].try_into().unwrap());
            return (id, epoch);
        }
        panic!("the transaction coordinator of {transactional_id} never became available");
    }

    /// Appends `records` (key, value) to `topic`/`partition` as a transactional batch of
    /// `producer` (id, epoch) starting at sequence 0, without telling the coordinator.
    pub(crate) fn produce_transactional(
        &mut self,
        transactional_id: &str,
        producer: (i64, i16),
        topic: &str,
        partition: i32,
        records: &[(Vec<u8>, Vec<u8>)],
    ) {
        let batch = record_batch(producer, records);
        let mut body = Vec::new();
        put_str(&mut body, transactional_id);
        put_i16(&mut body, -1);
        put_i32(&mut body, 30_000);
        put_i32(&mut body, 1);
        put_str(&mut body, topic);
        put_i32(&mut body, 1);
        put_i32(&mut body, partition);
        put_i32(&mut body, batch.len() as i32);
        body.extend_from_slice(&batch);
        let response = self.call(PRODUCE, 3, &body);
        // [topic: name, [partition: index, error, base offset, append time]], throttle
        let name_len = i16::from_be_bytes(response[4..6].try_into().unwrap()) as usize;
        let at = 6 + name_len + 4 + 4;
        let error = i16::from_be_bytes(response[at..at + 2].try_into().unwrap());
        assert_eq!(
            error, 0,
            "writing the hanging batch to {topic}/{partition} failed"
        );
    }
}

/// A magic-2 record batch with the transactional attribute.
fn record_batch(producer: (i64, i16), records: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut after_crc = Vec::new();
    put_i16(&mut after_crc, 0x10);
    put_i32(&mut after_crc, records.len() as i32 - 1);
    put_i64(&mut after_crc, now);
    put_i64(&mut after_crc, now);
    put_i64(&mut after_crc, producer.0);
    put_i16(&mut after_crc, producer.1);
    put_i32(&mut after_crc, 0);
    put_i32(&mut after_crc, records.len() as i32);
    for (delta, (key, value)) in records.iter().enumerate() {
        let mut record = vec![0];
        put_varint(&mut record, 0);
        put_varint(&mut record, delta as i64);
        put_varint(&mut record, key.len() as i64);
        record.extend_from_slice(key);
        put_varint(&mut record, value.len() as i64);
        record.extend_from_slice(value);
        put_varint(&mut record, 0);
        put_varint(&mut after_crc, record.len() as i64);
        after_crc.extend_from_slice(&record);
    }
    let mut batch = Vec::new();
    put_i64(&mut batch, 0);
    put_i32(&mut batch, (4 + 1 + 4 + after_crc.len()) as i32);
    put_i32(&mut batch, -1);
    batch.push(2);
    batch.extend_from_slice(&crc32c(&after_crc).to_be_bytes());
    batch.extend_from_slice(&after_crc);
    batch
}

/// A committed offset as the group coordinator stores it: (key v1, value v3).
pub(crate) fn offset_commit(
    group: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> (Vec<u8>, Vec<u8>) {
    let mut key = Vec::new();
    put_i16(&mut key, 1);
    put_str(&mut key, group);
    put_str(&mut key, topic);
    put_i32(&mut key, partition);
    let mut value = Vec::new();
    put_i16(&mut value, 3);
    put_i64(&mut value, offset);
    put_i32(&mut value, -1);
    put_str(&mut value, "");
    put_i64(
        &mut value,
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    (key, value)
}

/// The `__consumer_offsets` partition of `group` among `partitions`: Java's `String.hashCode`.
pub(crate) fn offsets_partition(group: &str, partitions: i32) -> i32 {
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32));
    if hash == i32::MIN {
        0
    } else {
        hash.abs() % partitions
    }
}

fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_i16(out, s.len() as i16);
    out.extend_from_slice(s.as_bytes());
}

/// Zig-zag varint, as record fields are written.
fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// CRC-32C (Castagnoli), the record batch checksum.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn crc32c_matches_the_standard_check_value() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn offsets_partition_is_javas_string_hash() {
    // "tessera".hashCode() == -1_422_479_581 in Java.
    assert_eq!(offsets_partition("tessera", 10), 1);
}

//! The Thrift codec: decoding the calls a client sends (framed `get`, `put` of 1 KiB, a
//! 100-element `putList`; binary and compact) and encoding the replies (a 1 KiB `get` reply, a
//! 100-element `getList` reply). The messages are written once, before the timed loop, by the
//! generated client of the reference `thrift` crate, so they are the very bytes a client sends.

use std::hint::black_box;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol, TCompactOutputProtocol,
    TInputProtocol, TOutputProtocol,
};
use thrift::transport::TFramedWriteTransport;
use thrudoc::codec::{
    decode_message, encode_reply, Element, Incoming, ListResult, Method, Protocol, Reply,
    ReplyBody, Transport, WireException,
};
use thrudoc::gen::thrudoc::{self as gen, TThrudocSyncClient, ThrudocSyncClient};

const LIMIT: usize = 16 << 20;
const VALUE: usize = 1024;
const LIST: usize = 100;
const PROTOCOLS: [Protocol; 2] = [Protocol::Binary, Protocol::Compact];

/// A writer whose bytes can be taken after the client that owns it is done.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("capture").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type Gen = ThrudocSyncClient<Box<dyn TInputProtocol>, Box<dyn TOutputProtocol>>;

/// The framed message `call` makes the generated client send (its reply read fails on the
/// empty input, which does not matter here).
fn framed_call(protocol: Protocol, call: impl FnOnce(&mut Gen)) -> Bytes {
    let capture = Capture::default();
    let out = TFramedWriteTransport::new(capture.clone());
    let (input, output): (Box<dyn TInputProtocol>, Box<dyn TOutputProtocol>) = match protocol {
        Protocol::Binary => (
            Box::new(TBinaryInputProtocol::new(io::empty(), true)),
            Box::new(TBinaryOutputProtocol::new(out, true)),
        ),
        Protocol::Compact => (
            Box::new(TCompactInputProtocol::new(io::empty())),
            Box::new(TCompactOutputProtocol::new(out)),
        ),
    };
    let mut client = ThrudocSyncClient::new(input, output);
    call(&mut client);
    let bytes = capture.0.lock().expect("capture").clone();
    Bytes::from(bytes)
}

fn value() -> Vec<u8> {
    (0..VALUE).map(|i| (i * 7) as u8).collect()
}

fn calls(protocol: Protocol) -> Vec<(&'static str, Bytes)> {
    let get = framed_call(protocol, |c| {
        let _ = c.get("data".into(), "bench-12345".into());
    });
    let put = framed_call(protocol, |c| {
        let _ = c.put("data".into(), "bench-12345".into(), value());
    });
    let put_list = framed_call(protocol, |c| {
        let elements = (0..LIST)
            .map(|i| gen::Element::new("data".to_string(), format!("bench-{i}"), value()))
            .collect();
        let _ = c.put_list(elements);
    });
    vec![
        ("get", get),
        ("put_1KiB", put),
        ("putList_100x1KiB", put_list),
    ]
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for protocol in PROTOCOLS {
        for (name, bytes) in calls(protocol) {
            // The messages must be what the server accepts, or the numbers mean nothing.
            match decode_message(&bytes, Transport::Framed, protocol, LIMIT) {
                Ok((Incoming::Call { .. }, n)) if n == bytes.len() => {}
                other => panic!("{protocol} {name}: {other:?}"),
            }
            group.throughput(Throughput::Bytes(bytes.len() as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("framed_{protocol}"), name),
                &bytes,
                |b, bytes| {
                    b.iter(|| decode_message(black_box(bytes), Transport::Framed, protocol, LIMIT))
                },
            );
        }
    }
    group.finish();
}

fn replies() -> Vec<(&'static str, Reply)> {
    let value = Bytes::from(value());
    let get = Reply {
        method: Method::Get,
        seqid: 1,
        body: ReplyBody::Binary(value.clone()),
    };
    let get_list = Reply {
        method: Method::GetList,
        seqid: 1,
        body: ReplyBody::ListResults(
            (0..LIST)
                .map(|i| ListResult {
                    element: Element {
                        bucket: Bytes::from_static(b"data"),
                        key: Bytes::from(format!("bench-{i}")),
                        value: value.clone(),
                    },
                    ex: WireException::success(),
                })
                .collect(),
        ),
    };
    vec![("get_1KiB", get), ("getList_100x1KiB", get_list)]
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for protocol in PROTOCOLS {
        for (name, reply) in replies() {
            let mut out = Vec::with_capacity(256 << 10);
            encode_reply(&mut out, Transport::Framed, protocol, &reply);
            group.throughput(Throughput::Bytes(out.len() as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("framed_{protocol}"), name),
                &reply,
                |b, reply| {
                    // The buffer is reused, as a connection's write buffer is.
                    b.iter(|| {
                        out.clear();
                        encode_reply(&mut out, Transport::Framed, protocol, black_box(reply));
                        black_box(out.len())
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the whole of `cargo bench` stays within a couple of minutes on 2 cores.
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = decode, encode
}
criterion_main!(benches);

//! Placement lookup: key to point (xxHash64, the original FNV) to partition, over 12 and 1024
//! partitions, and `Bucket::locate` on a directory built from synthetic rows. The keys and the
//! directory are made before the timed loop; each iteration places 1024 keys.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use thrudoc::store::mysql::directory::{datatable_name, Directory, Host, PartitionRow};
use thrudoc::store::mysql::placement::{partition_index, HashKind};

const KEYS: usize = 1024;

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("bench-{i}").into_bytes())
        .collect()
}

fn ends(partitions: usize) -> Vec<f64> {
    (1..=partitions)
        .map(|i| i as f64 / partitions as f64)
        .collect()
}

/// A directory of one bucket with `partitions` equal ranges over 4 hosts.
fn directory(partitions: usize, hash: HashKind) -> Directory {
    let hosts = (1..=4)
        .map(|id| Host {
            id,
            hostname: "127.0.0.1".into(),
            port: 3300 + id as u16,
            slave_id: None,
        })
        .collect();
    let rows = (0..partitions)
        .map(|i| PartitionRow {
            frozen: None,
            id: i as u64 + 1,
            bucket: "bench".into(),
            start: i as f64 / partitions as f64,
            end: (i + 1) as f64 / partitions as f64,
            host_id: (i % 4) as u32 + 1,
            db: "thrudoc".into(),
            datatable: datatable_name(i as u64 + 1),
        })
        .collect();
    let hashes = HashMap::from([("bench".to_string(), hash)]);
    Directory::build(1, hosts, rows, &hashes)
}

fn placement(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("placement");
    group.throughput(Throughput::Elements(KEYS as u64));
    for hash in [HashKind::XxHash64, HashKind::Fnv32] {
        for partitions in [12, 1024] {
            let ends = ends(partitions);
            group.bench_with_input(
                BenchmarkId::new(format!("{hash}/point+partition_index"), partitions),
                &ends,
                |b, ends| {
                    b.iter(|| {
                        for k in &keys {
                            black_box(partition_index(ends, hash.point(black_box(k))));
                        }
                    })
                },
            );
        }
    }
    for partitions in [12, 1024] {
        let dir = directory(partitions, HashKind::XxHash64);
        assert!(dir.invalid.is_empty(), "{:?}", dir.invalid);
        group.bench_with_input(
            BenchmarkId::new("directory.bucket+locate", partitions),
            &dir,
            |b, dir| {
                b.iter(|| {
                    for k in &keys {
                        let bucket = dir.bucket(black_box("bench")).expect("bucket");
                        black_box(&bucket.partitions[bucket.locate(black_box(k))]);
                    }
                })
            },
        );
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
    targets = placement
}
criterion_main!(benches);

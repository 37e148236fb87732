//! The floor under Thrudoc's CPU per request: Thrudoc's own front end (listener, Thrift codec,
//! service) over a store that does no work, a map in memory.
//!
//! Whatever this server spends per request, on the same box under the same clients, Thrudoc
//! spends too before its store does anything: the client's request read, its reply sent, the
//! wake-ups in between. It takes the same `-f thrudoc.conf` as `thrudoc` (only the server's
//! keys matter; the backend is ignored), so `scripts/ab-bench` runs it beside the real server:
//!
//! ```text
//! cargo build --release --bins --example floor_server
//! scripts/ab-bench --a target/release/thrudoc --b target/release/examples/floor_server \
//!     --conf /tmp/perfc/thrudoc.conf --type read
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use thrudoc::config::Config;
use thrudoc::error::{Error, Result};
use thrudoc::rules::no_such_key;
use thrudoc::service::Service;
use thrudoc::store::{Entry, KeyRef, ScanPage, Store};

/// Every bucket's keys in one map; a bucket exists once it is named.
#[derive(Default)]
struct MemoryStore {
    docs: Mutex<HashMap<(String, Bytes), Bytes>>,
}

impl MemoryStore {
    fn docs(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Bytes), Bytes>> {
        self.docs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn buckets(&self) -> Result<Vec<String>> {
        Ok(vec!["data".into()])
    }

    async fn put(&self, bucket: &str, key: Bytes, value: Bytes) -> Result<()> {
        self.docs().insert((bucket.to_owned(), key), value);
        Ok(())
    }

    async fn get(&self, bucket: &str, key: Bytes) -> Result<Bytes> {
        let found = self.docs().get(&(bucket.to_owned(), key.clone())).cloned();
        found.ok_or_else(|| no_such_key(bucket, &key))
    }

    async fn remove(&self, bucket: &str, key: Bytes) -> Result<()> {
        self.docs().remove(&(bucket.to_owned(), key));
        Ok(())
    }

    async fn append(&self, bucket: &str, key: Bytes, value: Bytes) -> Result<()> {
        let mut docs = self.docs();
        let doc = docs.entry((bucket.to_owned(), key)).or_default();
        *doc = [&doc[..], &value[..]].concat().into();
        Ok(())
    }

    async fn scan(&self, _bucket: &str, _seed: Bytes, _count: usize) -> Result<ScanPage> {
        Err(Error::invalid("the floor server does not scan"))
    }

    async fn put_many(&self, entries: Vec<Entry>) -> Vec<Result<()>> {
        let mut docs = self.docs();
        entries
            .into_iter()
            .map(|e| {
                docs.insert((e.bucket, e.key), e.value);
                Ok(())
            })
            .collect()
    }

    async fn get_many(&self, keys: Vec<KeyRef>) -> Vec<Result<Bytes>> {
        let docs = self.docs();
        keys.into_iter()
            .map(|k| {
                let (bucket, key) = (k.bucket, k.key);
                match docs.get(&(bucket.clone(), key.clone())) {
                    Some(v) => Ok(v.clone()),
                    None => Err(no_such_key(&bucket, &key)),
                }
            })
            .collect()
    }

    async fn remove_many(&self, keys: Vec<KeyRef>) -> Vec<Result<()>> {
        let mut docs = self.docs();
        keys.into_iter()
            .map(|k| {
                docs.remove(&(k.bucket, k.key));
                Ok(())
            })
            .collect()
    }

    async fn admin(&self, _op: &str, _data: &str) -> Result<Option<String>> {
        Ok(None)
    }

    fn max_value_size(&self) -> usize {
        16 << 20
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let file = match &args[..] {
        [_, flag, file] if flag == "-f" => file,
        _ => {
            eprintln!("usage: floor_server -f thrudoc.conf");
            std::process::exit(2);
        }
    };
    if let Err(e) = serve(PathBuf::from(file)) {
        eprintln!("floor_server: {e}");
        std::process::exit(1);
    }
}

fn serve(file: PathBuf) -> Result<()> {
    let config = Config::load(&file)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let service = Arc::new(Service::new(
            Arc::new(MemoryStore::default()),
            config.limits.clone(),
        ));
        let listener =
            tokio::net::TcpListener::bind((config.server.bind, config.server.port)).await?;
        // The line `scripts/ab-bench` waits for, as `thrudoc` prints it.
        println!("thrudoc listening on {}", listener.local_addr()?);
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        thrudoc::server::run(listener, service, config.server, None, stop).await
    })
}

//! How sled 0.34.7's heap grows with the number of records it holds, with
//! no Switchboard code around it: the soak's question "is the residual RSS
//! growth ours or the store's?" asked of sled alone.
//!
//!     cargo run --release -- [msg|all] [MESSAGES] [CACHE_MIB] [VALUE_BYTES] [FLUSH_EVERY]
//!
//! `msg` writes one record per message (key conversation ++ seq, 180-byte
//! value by default), the way Switchboard stores messages; `all` also writes what the
//! hub writes beside each message: a client-id index entry and the
//! conversation record (overwritten). 200 conversations take turns, and the
//! log is flushed every 16 messages (or `FLUSH_EVERY`), as group commit does. It prints
//! RSS every 250,000 messages and, at the end, the growth per message over
//! the second half (after the page cache has filled).

use std::time::Instant;

const CONVERSATIONS: u64 = 200;
const REPORT_EVERY: u64 = 250_000;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn folder_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn key(conversation: u64, tail: &[u8]) -> Vec<u8> {
    let mut k = conversation.to_be_bytes().to_vec();
    k.extend_from_slice(tail);
    k
}

fn main() -> sled::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("all", String::as_str).to_string();
    let total: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let cache_mib: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(16);
    let value_bytes: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(180);
    // Messages per flush: 16 is group commit under heavy load; at the soak's
    // 800 messages/s the committer flushes about every message.
    let flush_every: u64 = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(16).max(1);
    let dir = std::env::temp_dir().join(format!("sled-growth-{}-{mode}", std::process::id()));
    let db = sled::Config::new()
        .path(&dir)
        .cache_capacity(cache_mib << 20)
        .flush_every_ms(None)
        .open()?;
    let messages = db.open_tree("conversationid_seq_message")?;
    let index = db.open_tree("conversationid_clientid_seq")?;
    let records = db.open_tree("conversationid_conversation")?;
    let value = vec![7u8; value_bytes];
    let record = [3u8; 90];
    let mut seq = vec![0u64; CONVERSATIONS as usize];
    let started = Instant::now();
    let mut half = None;
    println!("mode {mode}, cache {cache_mib} MiB, {total} messages of {value_bytes} bytes, a flush every {flush_every}");
    println!("{:>10} {:>9} {:>12} {:>8}", "messages", "RSS MiB", "folder MiB", "seconds");
    for n in 1..=total {
        let conv = n % CONVERSATIONS;
        let slot = &mut seq[usize::try_from(conv).unwrap_or(0)];
        *slot += 1;
        messages.insert(key(conv, &slot.to_be_bytes()), &value[..])?;
        if mode == "all" {
            index.insert(key(conv, format!("v{conv}-{n}").as_bytes()), &slot.to_be_bytes())?;
            records.insert(conv.to_be_bytes(), &record[..])?;
        }
        if n % flush_every == 0 {
            db.flush()?;
        }
        if n == total / 2 {
            half = Some(rss_bytes());
        }
        if n % REPORT_EVERY == 0 || n == total {
            println!(
                "{n:>10} {:>9} {:>12} {:>8.1}",
                rss_bytes() >> 20,
                folder_bytes(&dir) >> 20,
                started.elapsed().as_secs_f64()
            );
        }
    }
    if let Some(h) = half {
        let grown = rss_bytes().saturating_sub(h);
        println!(
            "second half: +{} KiB RSS over {} messages = {:.1} bytes per message",
            grown >> 10,
            total - total / 2,
            grown as f64 / (total - total / 2) as f64
        );
    }
    drop((messages, index, records, db));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

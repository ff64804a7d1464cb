//! The Kafka ceiling: reads a topic from the beginning to the end offsets it had at start with a
//! bare rdkafka `BaseConsumer` (Landfall's fetch settings) and discards every message.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

#[derive(Parser, Debug)]
#[command(about = "Drain a Kafka topic from the beginning to its end offsets, discarding messages")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long)]
    topic: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let t0 = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", format!("bench-raw-drain-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .context("creating Kafka consumer")?;
    let timeout = Duration::from_secs(30);
    let meta = consumer
        .fetch_metadata(Some(&args.topic), timeout)
        .with_context(|| format!("metadata of {}; is Kafka up at {}?", args.topic, args.brokers))?;
    let parts: Vec<i32> = meta.topics()[0].partitions().iter().map(|p| p.id()).collect();
    if parts.is_empty() {
        bail!("topic {} has no partitions (does it exist?)", args.topic);
    }
    // End offset each partition had at start: the drain stops there.
    let mut end = vec![0i64; parts.iter().copied().max().unwrap_or(0) as usize + 1];
    let mut tpl = TopicPartitionList::new();
    let mut open = 0;
    for &p in &parts {
        let (low, high) = consumer.fetch_watermarks(&args.topic, p, timeout)?;
        end[p as usize] = high;
        if high > low {
            open += 1;
            tpl.add_partition_offset(&args.topic, p, Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    let (mut count, mut bytes) = (0u64, 0u64);
    while open > 0 {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                count += 1;
                bytes += m.payload_len() as u64;
                if m.offset() + 1 == end[m.partition() as usize] {
                    open -= 1;
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => bail!("consuming {}: {e}", args.topic),
            None => bail!("no message for 10 s with {open} partitions short of their end"),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    println!("raw-drain: {count} messages, {bytes} bytes in {secs:.2}s");
    println!("RESULT {}", serde_json::json!({ "count": count, "bytes": bytes, "secs": secs }));
    Ok(())
}

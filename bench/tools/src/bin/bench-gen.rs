//! Generates the benchmark's events into a Kafka topic and/or RabbitMQ quorum queues.
//!
//! Prints progress for people and, last, one `RESULT {json}` line for `bench/run.py`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use landfall_bench_tools::EventGen;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

#[derive(Parser, Debug)]
#[command(about = "Generate deterministic ~250-byte JSON events into Kafka and/or RabbitMQ")]
struct Args {
    /// Number of events.
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// RNG seed; the same seed and count give byte-identical events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Replace `region` with an int `shard` in 0..200 (the many-partitions variant).
    #[arg(long)]
    shard: bool,
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Kafka topic to create (if absent) and fill.
    #[arg(long)]
    topic: Option<String>,
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_uri: String,
    /// RabbitMQ quorum queue to declare and fill; repeat for identical copies (filled in parallel).
    #[arg(long = "queue")]
    queues: Vec<String>,
    /// Unconfirmed publishes allowed in flight per queue.
    #[arg(long, default_value_t = 5000)]
    confirm_window: usize,
    /// Delete the given topic and queues instead of filling them (clean-up after a run).
    #[arg(long)]
    delete: bool,
}

struct Counting {
    failed: AtomicU64,
}
impl ClientContext for Counting {}
impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().context("creating Kafka admin client")?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in admin.create_topics([&new], &opts).await? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => bail!("creating topic {t}: {e}; is Kafka up at {brokers}?"),
        }
    }
    Ok(())
}

/// Returns (bytes, seconds).
fn produce_kafka(args: &Args, topic: &str) -> Result<(u64, f64)> {
    let ctx = Counting { failed: AtomicU64::new(0) };
    let producer: ThreadedProducer<Counting> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("enable.idempotence", "true")
        .set("compression.type", "none")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .create_with_context(ctx)
        .context("creating Kafka producer")?;
    let t0 = Instant::now();
    let mut gen = EventGen::new(args.seed, args.events, args.shard);
    let mut bytes = 0u64;
    // Round-robin over the partitions: the producer's sticky default puts a whole 1 MB batch
    // in one partition, so a short run left partitions empty or nearly (20,000 events all in
    // partition 0 of 4), which measured one partition's commit pipeline, not the topic's.
    let mut n: i64 = 0;
    while let Some((_, json)) = gen.next_event() {
        bytes += json.len() as u64;
        let partition = (n % i64::from(args.partitions)) as i32;
        n += 1;
        let mut record: BaseRecord<'_, (), str> = BaseRecord::to(topic).payload(json).partition(partition);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => bail!("producing to {topic}: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(300)).context("flushing Kafka producer")?;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} events were not delivered to {topic}");
    }
    Ok((bytes, t0.elapsed().as_secs_f64()))
}

async fn publish_queue(args: &Args, conn: &Connection, queue: &str) -> Result<u64> {
    let ch = conn.create_channel().await?;
    let mut qargs = FieldTable::default();
    qargs.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    ch.queue_declare(queue.into(), QueueDeclareOptions::durable(), qargs)
        .await
        .with_context(|| format!("declaring quorum queue {queue}"))?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut gen = EventGen::new(args.seed, args.events, args.shard);
    let mut inflight = VecDeque::with_capacity(args.confirm_window + 1);
    let mut bytes = 0u64;
    while let Some((id, json)) = gen.next_event() {
        bytes += json.len() as u64;
        let props = BasicProperties::default().with_delivery_mode(2).with_message_id(json[id].into());
        let confirm = ch
            .basic_publish("".into(), queue.into(), BasicPublishOptions::default(), json.as_bytes(), props)
            .await
            .with_context(|| format!("publishing to {queue}"))?;
        inflight.push_back(confirm);
        if inflight.len() >= args.confirm_window {
            let c = inflight.pop_front().unwrap().await?;
            if !c.is_ack() {
                bail!("RabbitMQ refused (nack) a publish to {queue}");
            }
        }
    }
    for c in inflight {
        if !c.await?.is_ack() {
            bail!("RabbitMQ refused (nack) a publish to {queue}");
        }
    }
    ch.close(200, "done".into()).await?;
    Ok(bytes)
}

/// Removes what a run created; absent topics or queues are not an error.
async fn delete(args: &Args) -> Result<()> {
    if let Some(topic) = &args.topic {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &args.brokers)
            .create()
            .context("creating Kafka admin client")?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for r in admin.delete_topics(&[topic.as_str()], &opts).await? {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((t, e)) => bail!("deleting topic {t}: {e}"),
            }
        }
        println!("deleted topic {topic}");
    }
    if !args.queues.is_empty() {
        let conn = Connection::connect(&args.amqp_uri, ConnectionProperties::default())
            .await
            .with_context(|| format!("connecting to RabbitMQ at {}", args.amqp_uri))?;
        for q in &args.queues {
            let ch = conn.create_channel().await?;
            let n = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await
                .with_context(|| format!("deleting queue {q}"))?;
            println!("deleted queue {q} ({n} messages left)");
            ch.close(200, "done".into()).await?;
        }
        // Every publish is confirmed already; a failing close loses nothing.
        let _ = conn.close(200, "done".into()).await;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Arc::new(Args::parse());
    if args.topic.is_none() && args.queues.is_empty() {
        bail!("nothing to do: give --topic and/or --queue");
    }
    if args.delete {
        return delete(&args).await;
    }
    let mut result = serde_json::json!({ "events": args.events });
    if let Some(topic) = &args.topic {
        create_topic(&args.brokers, topic, args.partitions).await?;
        let (a, t) = (args.clone(), topic.clone());
        let (bytes, secs) = tokio::task::spawn_blocking(move || produce_kafka(&a, &t)).await??;
        println!("kafka: {} events ({bytes} bytes) to {topic} in {secs:.1}s", args.events);
        result["bytes"] = bytes.into();
        result["kafka_secs"] = secs.into();
    }
    if !args.queues.is_empty() {
        let conn = Connection::connect(&args.amqp_uri, ConnectionProperties::default())
            .await
            .with_context(|| format!("connecting to RabbitMQ at {}", args.amqp_uri))?;
        let t0 = Instant::now();
        let jobs = args.queues.iter().map(|q| publish_queue(&args, &conn, q));
        let bytes = futures::future::try_join_all(jobs).await?;
        let secs = t0.elapsed().as_secs_f64();
        println!("rabbitmq: {} events into each of {:?} in {secs:.1}s", args.events, args.queues);
        result["bytes"] = bytes[0].into();
        result["amqp_secs"] = secs.into();
        // Every publish is confirmed already; a failing close loses nothing.
        let _ = conn.close(200, "done".into()).await;
    }
    println!("RESULT {result}");
    Ok(())
}

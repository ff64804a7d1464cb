//! The RabbitMQ ceiling: a bare lapin consumer (prefetch 1000, one `multiple` ack per 500
//! deliveries) that discards messages and stops at the expected count or after an idle period.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

#[derive(Parser, Debug)]
#[command(about = "Consume a RabbitMQ queue with multiple acks, discarding messages")]
struct Args {
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    uri: String,
    #[arg(long)]
    queue: String,
    /// Stop after this many deliveries (0: only the idle timeout stops).
    #[arg(long, default_value_t = 0)]
    expect: u64,
    #[arg(long, default_value_t = 1000)]
    prefetch: u16,
    /// Acknowledge (multiple=true) every this many deliveries.
    #[arg(long, default_value_t = 500)]
    ack_every: u64,
    /// Stop when no delivery arrives for this many milliseconds.
    #[arg(long, default_value_t = 2000)]
    idle_ms: u64,
    /// Do not acknowledge: closing the channel returns every message to the queue.
    #[arg(long)]
    no_ack: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let t0 = Instant::now();
    let conn = Connection::connect(&args.uri, ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to RabbitMQ at {}", args.uri))?;
    let ch = conn.create_channel().await?;
    ch.basic_qos(args.prefetch, BasicQosOptions::default()).await?;
    let mut consumer = ch
        .basic_consume(
            args.queue.as_str().into(),
            "bench-bare".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("consuming {}; does the queue exist?", args.queue))?;
    let idle = Duration::from_millis(args.idle_ms);
    let (mut count, mut bytes, mut unacked, mut last_tag) = (0u64, 0u64, 0u64, 0u64);
    let mut last_at = t0;
    loop {
        match tokio::time::timeout(idle, consumer.next()).await {
            Err(_) => break,
            Ok(None) => bail!("the broker cancelled the consumer on {}", args.queue),
            Ok(Some(Err(e))) => bail!("consuming {}: {e}", args.queue),
            Ok(Some(Ok(d))) => {
                count += 1;
                bytes += d.data.len() as u64;
                last_tag = d.delivery_tag;
                last_at = Instant::now();
                unacked += 1;
                if !args.no_ack && unacked >= args.ack_every {
                    ch.basic_ack(last_tag, BasicAckOptions { multiple: true }).await?;
                    unacked = 0;
                }
                if args.expect > 0 && count >= args.expect {
                    break;
                }
            }
        }
    }
    if !args.no_ack && unacked > 0 {
        ch.basic_ack(last_tag, BasicAckOptions { multiple: true }).await?;
    }
    ch.close(200, "done".into()).await?;
    // Acks were sent on the channel, which closed cleanly; the connection close is a formality.
    let _ = conn.close(200, "done".into()).await;
    let secs = last_at.duration_since(t0).as_secs_f64();
    println!("bare-amqp: {count} messages, {bytes} bytes in {secs:.2}s (to the last delivery)");
    println!("RESULT {}", serde_json::json!({ "count": count, "bytes": bytes, "secs": secs }));
    Ok(())
}

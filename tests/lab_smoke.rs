//! Proves the lab's four services are real: Kafka, RabbitMQ, HDFS and Spark, each reached over
//! a real connection with the same client crates Landfall uses. Fails (never skips) naming the
//! service when one is down.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use futures::StreamExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};

use common::*;

#[tokio::test]
async fn kafka_topic_produce_and_consume() {
    let _kafka = require_kafka();
    let topic = unique("smoke");
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", KAFKA).create().unwrap();
    let created = admin
        .create_topics(&[NewTopic::new(&topic, 2, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("Kafka admin request");
    assert!(created[0].is_ok(), "create topic: {:?}", created[0]);

    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", KAFKA).create().unwrap();
    for i in 0..100 {
        let payload = format!("message-{i}");
        producer
            .send(FutureRecord::<(), _>::to(&topic).payload(&payload), Duration::from_secs(10))
            .await
            .expect("Kafka accepts the message");
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", KAFKA)
        .set("group.id", unique("smoke-group"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 100 {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("Kafka delivers within 30 s")
            .expect("consume");
        seen.insert(String::from_utf8(msg.payload().unwrap().to_vec()).unwrap());
    }
    assert_eq!(seen.len(), 100);
    assert!(seen.contains("message-0") && seen.contains("message-99"));
}

#[tokio::test]
async fn rabbitmq_publish_and_consume() {
    use lapin::options::*;
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    let _rabbitmq = require_rabbitmq();
    let conn = Connection::connect(AMQP_URI, ConnectionProperties::default()).await.expect("connect to RabbitMQ");
    let channel = conn.create_channel().await.unwrap();
    channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let queue = unique("smoke");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions { auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    for i in 0..50 {
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack(), "broker confirms message {i}");
    }
    let mut consumer = channel
        .basic_consume(queue.as_str().into(), "smoke".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 50 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("RabbitMQ delivers within 10 s")
            .expect("stream open")
            .expect("delivery");
        got.push(String::from_utf8(delivery.data.clone()).unwrap());
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    assert_eq!(got.first().map(String::as_str), Some("m0"));
    assert_eq!(got.last().map(String::as_str), Some("m49"));
}

fn hdfs_client() -> hdfs_native::Client {
    hdfs_native::ClientBuilder::new().with_url(HDFS_URL).build().expect("HDFS client")
}

#[tokio::test]
async fn hdfs_create_write_rename_list_delete() {
    let _hdfs = require_hdfs();
    let client = hdfs_client();
    let dir = format!("/landfall-test/{}", unique("smoke"));
    client.mkdirs(&dir, 0o755, true).await.expect("mkdirs on HDFS");
    let staged = format!("{dir}/_staged.txt");
    let mut w = client.create(&staged, hdfs_native::WriteOptions::default()).await.unwrap();
    w.write_bytes(Bytes::from_static(b"hello hdfs")).await.unwrap();
    w.close().await.unwrap();
    let published = format!("{dir}/part-0.txt");
    client.rename(&staged, &published, false).await.unwrap();
    let listing = client.list_status(&dir, false).await.unwrap();
    let names: Vec<_> = listing.iter().map(|s| s.path.rsplit('/').next().unwrap().to_string()).collect();
    assert_eq!(names, vec!["part-0.txt".to_string()]);
    assert_eq!(listing[0].length, 10);
    let r = client.read(&published).await.unwrap();
    assert_eq!(&r.read_range(0, 10).await.unwrap()[..], b"hello hdfs");
    assert!(client.delete(&dir, true).await.unwrap());
    assert!(client.get_file_info(&dir).await.is_err(), "deleted dir is gone");
}

#[tokio::test]
async fn spark_reads_parquet_from_hdfs() {
    let _hdfs = require_hdfs();
    let schema =
        Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false), Field::new("n", DataType::Int64, false)]));
    let rows = 1234;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("id-{i}")))),
            Arc::new(Int64Array::from_iter_values(0..rows)),
        ],
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buf, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let client = hdfs_client();
    let dir = format!("/landfall-test/{}", unique("spark"));
    let path = format!("{dir}/part-0.parquet");
    let mut w =
        client.create(&path, hdfs_native::WriteOptions { create_parent: true, ..Default::default() }).await.unwrap();
    w.write_bytes(Bytes::from(buf)).await.unwrap();
    w.close().await.unwrap();

    let out = run_spark("parquet_count.py", &[&format!("{HDFS_URL}{dir}")]);
    assert!(out.contains(&format!("count={rows}")), "Spark output: {out}");
    assert!(out.contains("schema=struct<id:string,n:bigint>"), "Spark output: {out}");
    client.delete(&dir, true).await.unwrap();
}

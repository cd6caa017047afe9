//! The native baseline and the load generator for Kiln's NATS benchmark (bench/nats.sh): a plain
//! async-nats program on a tokio current-thread runtime (one thread).
//!
//! ```text
//! native-nats serve     --url U --subject S [--queue Q]
//!     Core subscriber: answers every message that has a reply subject with an empty message
//!     (what the bench guest `msg_bench` does in Kiln). Runs until killed; prints `ready`.
//! native-nats serve-js  --url U --stream ST --durable D
//!     JetStream: a durable pull consumer on stream ST, acking every message after "handling" it
//!     (as Kiln's trigger acks after the handler returns). Runs until killed; prints `ready`.
//! native-nats stream    --url U --stream ST --subject S
//!     Creates (or finds) file-backed stream ST over S, purges it; prints `ready`.
//! native-nats request   --url U --subject S --count N [--size B] [--window W] [--timeout SECS]
//!     Publishes N messages of B bytes to S, each with its own reply subject, keeping at most W
//!     unanswered; counts the answers. Prints
//!     `NATSBENCH sent=N answered=M elapsed_us=T` (T: first publish → last answer).
//! native-nats js-publish --url U --subject S --count N [--size B] [--window W]
//!     Publishes N messages into JetStream, waiting for the stream's acks (W in flight). Prints
//!     `NATSBENCH published=N elapsed_us=T`.
//! native-nats js-wait   --url U --stream ST --durable D --count N [--timeout SECS]
//!     Waits until consumer D has acked N messages (ack floor). Prints
//!     `NATSBENCH acked=M elapsed_us=T redelivered=R found=0|1` (T: from the start of this command;
//!     found=0: the consumer does not exist). `--count 0` just waits for the consumer to exist.
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Args {
    mode: String,
    opts: HashMap<String, String>,
}

impl Args {
    fn parse() -> Args {
        let mut args = std::env::args().skip(1);
        let mode = args.next().unwrap_or_else(|| usage("missing mode"));
        let mut opts = HashMap::new();
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else { usage(&format!("unexpected argument {arg:?}")) };
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => (name.to_string(), args.next().unwrap_or_else(|| usage(&format!("--{name} needs a value")))),
            };
            opts.insert(name, value);
        }
        Args { mode, opts }
    }

    fn get(&self, name: &str) -> String {
        self.opts.get(name).cloned().unwrap_or_else(|| usage(&format!("--{name} is required")))
    }

    fn num(&self, name: &str, default: u64) -> u64 {
        match self.opts.get(name) {
            Some(v) => v.parse().unwrap_or_else(|_| usage(&format!("--{name} must be a number"))),
            None => default,
        }
    }
}

fn usage(problem: &str) -> ! {
    eprintln!("native-nats: {problem}\nusage: native-nats serve|serve-js|stream|request|js-publish|js-wait --url U ... (see src/main.rs)");
    std::process::exit(2)
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("native-nats: {e}");
        std::process::exit(1);
    }
}

async fn connect(args: &Args) -> Result<async_nats::Client> {
    let url = args.get("url");
    // A generous client-side buffer, so a fast publisher is not the bottleneck.
    Ok(async_nats::ConnectOptions::new().subscription_capacity(65_536).client_capacity(65_536).connect(url).await?)
}

async fn run(args: Args) -> Result<()> {
    let client = connect(&args).await?;
    match args.mode.as_str() {
        "serve" => serve(&args, client).await,
        "serve-js" => serve_js(&args, client).await,
        "stream" => stream(&args, client).await,
        "request" => request(&args, client).await,
        "js-publish" => js_publish(&args, client).await,
        "js-wait" => js_wait(&args, client).await,
        other => usage(&format!("unknown mode {other:?}")),
    }
}

async fn serve(args: &Args, client: async_nats::Client) -> Result<()> {
    let subject = args.get("subject");
    let mut sub = match args.opts.get("queue") {
        Some(q) => client.queue_subscribe(subject, q.clone()).await?,
        None => client.subscribe(subject).await?,
    };
    client.flush().await?;
    println!("ready");
    while let Some(message) = sub.next().await {
        if let Some(reply) = message.reply {
            client.publish(reply, Bytes::new()).await?;
        }
    }
    Ok(())
}

async fn serve_js(args: &Args, client: async_nats::Client) -> Result<()> {
    let js = jetstream::new(client);
    let stream = js.get_stream(args.get("stream")).await?;
    let durable = args.get("durable");
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            &durable,
            jetstream::consumer::pull::Config {
                durable_name: Some(durable.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    println!("ready");
    while let Some(message) = messages.next().await {
        let message = message?;
        message.ack().await?;
    }
    Ok(())
}

async fn stream(args: &Args, client: async_nats::Client) -> Result<()> {
    let js = jetstream::new(client);
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: args.get("stream"),
            subjects: vec![args.get("subject")],
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    stream.purge().await?;
    println!("ready");
    Ok(())
}

fn payload(args: &Args) -> Bytes {
    Bytes::from(vec![b'x'; args.num("size", 128) as usize])
}

async fn request(args: &Args, client: async_nats::Client) -> Result<()> {
    let subject = args.get("subject");
    let count = args.num("count", 100_000);
    let window = args.num("window", 1000).max(1);
    let timeout = Duration::from_secs(args.num("timeout", 120));
    let payload = payload(args);
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(format!("{inbox}.*")).await?;
    client.flush().await?;
    let started = Instant::now();
    // A reply with a status (503 "no responders") means nobody was subscribed: it is not an answer.
    // Counting it would let the benchmark (and its readiness check) pass with no subscriber at all.
    let (mut sent, mut answered, mut no_responders) = (0u64, 0u64, 0u64);
    let tally = |message: async_nats::Message, answered: &mut u64, no_responders: &mut u64| match message.status {
        Some(_) => *no_responders += 1,
        None => *answered += 1,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    while answered + no_responders < count {
        while sent < count && sent - (answered + no_responders) < window {
            client.publish_with_reply(subject.clone(), format!("{inbox}.{sent}"), payload.clone()).await?;
            sent += 1;
        }
        client.flush().await?;
        match tokio::time::timeout_at(deadline, answers.next()).await {
            Ok(Some(message)) => tally(message, &mut answered, &mut no_responders),
            Ok(None) | Err(_) => break,
        }
        // Take whatever else is already there without waiting.
        while answered + no_responders < count {
            match futures::FutureExt::now_or_never(answers.next()) {
                Some(Some(message)) => tally(message, &mut answered, &mut no_responders),
                _ => break,
            }
        }
    }
    println!("NATSBENCH sent={sent} answered={answered} no_responders={no_responders} elapsed_us={}", started.elapsed().as_micros());
    Ok(())
}

async fn js_publish(args: &Args, client: async_nats::Client) -> Result<()> {
    let js = jetstream::new(client);
    let subject = args.get("subject");
    let count = args.num("count", 100_000);
    let window = args.num("window", 256).max(1) as usize;
    let payload = payload(args);
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::with_capacity(window);
    for _ in 0..count {
        if pending.len() >= window {
            let ack: jetstream::context::PublishAckFuture = pending.pop_front().expect("non-empty");
            ack.await?;
        }
        pending.push_back(js.publish(subject.clone(), payload.clone()).await?);
    }
    for ack in pending {
        ack.await?;
    }
    println!("NATSBENCH published={count} elapsed_us={}", started.elapsed().as_micros());
    Ok(())
}

async fn js_wait(args: &Args, client: async_nats::Client) -> Result<()> {
    let js = jetstream::new(client);
    let stream = js.get_stream(args.get("stream")).await?;
    let durable = args.get("durable");
    let count = args.num("count", 100_000);
    let timeout = Duration::from_secs(args.num("timeout", 120));
    let started = Instant::now();
    let mut acked = 0;
    let mut redelivered = 0;
    let mut found = false;
    while started.elapsed() < timeout {
        // An error is a consumer not created yet.
        if let Ok(info) = stream.consumer_info(&durable).await {
            found = true;
            acked = info.ack_floor.consumer_sequence;
            redelivered = info.num_redelivered;
            if acked >= count {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "NATSBENCH acked={acked} elapsed_us={} redelivered={redelivered} found={}",
        started.elapsed().as_micros(),
        u8::from(found)
    );
    Ok(())
}

//! The server's side of the NLP pipeline (`switchboard-nlp`): a bounded pool
//! that runs analysis off the async workers, the current model and knowledge
//! base (both swappable while connections stay up), and the bot's own lines.
//!
//! Analysis takes tens of microseconds; it still runs off the async workers,
//! on `workers` threads of its own (`sb-nlp-N`) fed by one bounded queue.
//! A sender first takes one of [`QUEUE_PER_WORKER`] × `workers` permits, so a
//! burst of messages waits for a permit (backpressure on the senders) instead
//! of stalling other connections. Dedicated threads, rather than tokio's
//! blocking pool, because a busy worker takes the next job without being
//! woken, and nothing is allocated per job but the job itself.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use switchboard_nlp::{Decision, DecisionContext, KnowledgeBase, Pipeline};
use switchboard_protocol::model::{Analysis, Author, AuthorKind};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Messages queued or being analysed, per worker, before senders wait.
const QUEUE_PER_WORKER: usize = 64;

/// The bot as an author.
pub fn bot_author() -> Author {
    Author {
        kind: AuthorKind::Bot,
        id: 0,
        name: "Switchboard bot".into(),
    }
}

/// What the bot says when it hands a conversation to a person.
pub fn handoff_line(language: &str) -> &'static str {
    match language {
        "zh" => "正在为您转接人工客服，请稍候。",
        _ => "I'm connecting you with a member of our team. They'll be with you shortly.",
    }
}

/// One message to analyse, and where the answer goes.
struct Job {
    text: String,
    pipeline: Arc<Pipeline>,
    reply: oneshot::Sender<Analysis>,
    /// Held until the analysis is done: the queue's backpressure.
    _permit: OwnedSemaphorePermit,
}

pub struct Nlp {
    pipeline: RwLock<Arc<Pipeline>>,
    knowledge: RwLock<Arc<KnowledgeBase>>,
    permits: Arc<Semaphore>,
    jobs: SyncSender<Job>,
    /// Bot answers in a row before a person takes over.
    pub max_bot_answers: u32,
}

/// The default pipeline, trained once per process (training is deterministic).
pub fn default_pipeline() -> Result<Arc<Pipeline>, switchboard_nlp::Error> {
    static DEFAULT: OnceLock<Arc<Pipeline>> = OnceLock::new();
    if let Some(p) = DEFAULT.get() {
        return Ok(p.clone());
    }
    let p = Arc::new(Pipeline::with_default_model()?);
    Ok(DEFAULT.get_or_init(|| p).clone())
}

/// An NLP worker thread: analyses jobs until every sender is gone. The
/// queue's lock is held only while waiting for the next job.
fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(job) = next else {
            return;
        };
        let analysis = job.pipeline.analyze(&job.text);
        // The sender may have gone (connection closed): nothing to do then.
        let _ = job.reply.send(analysis);
    }
}

impl Nlp {
    pub fn new(
        pipeline: Arc<Pipeline>,
        knowledge: KnowledgeBase,
        workers: usize,
        max_bot_answers: u32,
    ) -> Nlp {
        let workers = workers.max(1);
        let room = workers.saturating_mul(QUEUE_PER_WORKER);
        // The permits bound what is queued, so sending never finds the channel full.
        let (jobs, queue) = sync_channel(room);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..workers {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("sb-nlp-{i}"))
                .spawn(move || work(&queue))
                .expect("spawning an NLP worker thread");
        }
        Nlp {
            pipeline: RwLock::new(pipeline),
            knowledge: RwLock::new(Arc::new(knowledge)),
            permits: Arc::new(Semaphore::new(room)),
            jobs,
            max_bot_answers,
        }
    }

    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.pipeline
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn knowledge(&self) -> Arc<KnowledgeBase> {
        self.knowledge
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Installs a new model; messages already being analysed finish on the old one.
    pub fn swap_pipeline(&self, p: Pipeline) {
        *self.pipeline.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(p);
    }

    pub fn swap_knowledge(&self, kb: KnowledgeBase) {
        *self.knowledge.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(kb);
    }

    /// Analyses `text` on the worker threads. `None` only if they are gone.
    pub async fn analyze(&self, text: &str) -> Option<Analysis> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            text: text.to_string(),
            pipeline: self.pipeline(),
            reply,
            _permit: permit,
        };
        self.jobs.try_send(job).ok()?;
        answer.await.ok()
    }

    /// The bot's decision for a conversation it is handling; `topic_team` is
    /// the conversation's team so far.
    pub fn decide(
        &self,
        analysis: &Analysis,
        bot_answers_in_a_row: u32,
        topic_team: Option<String>,
    ) -> Decision {
        let ctx = DecisionContext {
            bot_answers_in_a_row,
            max_bot_answers: self.max_bot_answers,
            topic_team,
            ..DecisionContext::default()
        };
        switchboard_nlp::decision::decide(&self.knowledge(), analysis, &ctx)
    }

    /// The priority a message's sentiment asks for (0, 1 negative, 2 strongly negative).
    pub fn priority_for(analysis: &Analysis) -> i32 {
        let strong = DecisionContext::default().strong_negative;
        if analysis.sentiment <= strong {
            2
        } else if analysis.sentiment_label == switchboard_protocol::model::SentimentLabel::Negative
        {
            1
        } else {
            0
        }
    }
}

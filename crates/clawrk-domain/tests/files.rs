//! The file use cases on the in-memory store and file storage: uploads hashed, counted and
//! limited; attachments checked to be the caller's; who may read a file; what the verifier is
//! given of a submission's files; the sweeper's removal of unreferenced uploads; and an upload
//! that breaks off leaving nothing.

mod common;

use bytes::Bytes;
use clawrk_domain::error::DomainError;
use clawrk_domain::files::{ByteRange, FileId, FileMeta, VERIFY_FILE_BYTES};
use clawrk_domain::memory::{MemoryFiles, MemoryStore};
use clawrk_domain::ports::*;
use clawrk_domain::service::{
    AgentSelector, Config, Fetched, Marketplace, Ports, RunOutcome, RunRequest,
};
use clawrk_domain::{Cents, Job, JobStatus, Output, Reason, UserId};
use common::*;
use futures::executor::block_on;
use futures::stream;
use std::sync::{Arc, Mutex};

/// Keeps the tasks it was given; passes everything.
#[derive(Default)]
struct Recording(Mutex<Vec<VerifyTask>>);

#[async_trait::async_trait]
impl Verifier for Recording {
    fn name(&self) -> String {
        "test".into()
    }
    async fn verify(
        &self,
        task: &VerifyTask,
        _log: Arc<dyn LogSink>,
    ) -> Result<Assessment, LlmError> {
        self.0.lock().unwrap().push(task.clone());
        Ok(Assessment {
            passed: true,
            reasoning: "ok".into(),
            criteria: task
                .criteria()
                .into_iter()
                .map(|c| clawrk_domain::job::CriterionResult {
                    criterion: c,
                    passed: true,
                    note: String::new(),
                })
                .collect(),
            verifier: "test".into(),
        })
    }
}

struct World {
    m: Marketplace,
    store: MemoryStore,
    files: MemoryFiles,
    clock: Arc<TestClock>,
    verifier: Arc<Recording>,
    structured_with: Arc<Mutex<Vec<Vec<FileMeta>>>>,
}

fn world(config: Config) -> World {
    let clock = TestClock::at(T0);
    let store = MemoryStore::new();
    let files = MemoryFiles::new();
    let verifier = Arc::new(Recording::default());
    let structured_with = Arc::new(Mutex::new(Vec::new()));
    let seen = structured_with.clone();
    let mut structurer = MockStructurer::new();
    structurer.expect_structure().returning(move |_, files| {
        seen.lock().unwrap().push(files.to_vec());
        Ok(structured(500))
    });
    let mut payouts = MockPayoutGateway::new();
    payouts.expect_available().returning(|| Ok(()));
    payouts.expect_send().returning(|_, _| Ok(()));
    let m = Marketplace::new(
        Ports {
            store: Arc::new(store.clone()),
            structurer: Arc::new(structurer),
            verifier: verifier.clone(),
            clock: clock.clone(),
            payments: Arc::new(MockPaymentGateway::new()),
            payouts: Arc::new(payouts),
            webhooks: Arc::new(MockWebhookSender::new()),
            files: Arc::new(files.clone()),
        },
        config,
    );
    World {
        m,
        store,
        files,
        clock,
        verifier,
        structured_with,
    }
}

fn chunks(parts: &[&[u8]]) -> impl futures::Stream<Item = clawrk_domain::Result<Bytes>> + Unpin {
    stream::iter(
        parts
            .iter()
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect::<Vec<_>>(),
    )
}

fn info(name: &str, ctype: &str) -> clawrk_domain::service::UploadInfo {
    clawrk_domain::service::UploadInfo {
        filename: name.into(),
        content_type: Some(ctype.into()),
        declared_len: None,
    }
}

async fn user(m: &Marketplace, name: &str, cents: i64) -> UserId {
    let u = m.create_user(name).await.unwrap();
    if cents > 0 {
        m.adjust_balance(u.id, Cents(cents), Reason::Adjustment)
            .await
            .unwrap();
    }
    u.id
}

async fn read_all(m: &Marketplace, user: UserId, id: FileId) -> clawrk_domain::Result<Vec<u8>> {
    use futures::StreamExt;
    let Fetched::Bytes(mut dl) = m.download(user, id, None).await? else {
        panic!("the whole file is a range that exists");
    };
    let mut out = Vec::new();
    while let Some(c) = dl.bytes.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}

const ME: AgentSelector = AgentSelector {
    id: None,
    name: None,
};

/// A job of `sender` with `files`, pulled and accepted by `worker`'s default agent.
async fn accepted_job(w: &World, sender: UserId, worker: UserId, files: Vec<FileId>) -> Job {
    let run = RunRequest {
        prompt: "Clean this CSV".into(),
        attachments: files,
        confirmed: true,
        ..RunRequest::default()
    };
    let RunOutcome::Queued(job) = w.m.run(sender, run).await.unwrap() else {
        panic!("not queued");
    };
    let held = w.m.pull(worker, &ME).await.unwrap().expect("a job");
    assert_eq!(held.id, job.id);
    w.m.accept(worker, job.id, &ME).await.unwrap()
}

#[test]
fn an_upload_is_hashed_counted_and_reads_back() {
    block_on(async {
        let w = world(Config::default());
        let u = user(&w.m, "ann", 0).await;
        let f =
            w.m.upload(u, info(" data.csv ", "Text/CSV"), chunks(&[b"a", b"bc"]))
                .await
                .unwrap();
        assert_eq!(f.filename, "data.csv");
        assert_eq!(f.content_type, "text/csv");
        assert_eq!(f.size_bytes, 3);
        // sha256("abc")
        assert_eq!(
            f.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(read_all(&w.m, u, f.id).await.unwrap(), b"abc");
        assert_eq!(w.m.file(u, f.id).await.unwrap(), f);
        // A range.
        let part = w.m.download(u, f.id, Some(ByteRange::From(1, None))).await;
        let Ok(Fetched::Bytes(dl)) = part else {
            panic!("a range inside the file")
        };
        assert_eq!(dl.range, Some((1, 3)));
        let past = w.m.download(u, f.id, Some(ByteRange::From(3, None))).await;
        assert!(matches!(past, Ok(Fetched::Unsatisfiable { size: 3 })));
    })
}

#[test]
fn limits_refuse_and_keep_nothing() {
    block_on(async {
        let w = world(Config {
            max_file_bytes: 10,
            max_user_storage_bytes: 15,
            ..Config::default()
        });
        let u = user(&w.m, "ann", 0).await;
        let e =
            w.m.upload(u, info("big", "text/plain"), chunks(&[b"012345", b"67890"]))
                .await
                .unwrap_err();
        assert!(matches!(e, DomainError::TooLarge(_)), "{e:?}");
        let declared = clawrk_domain::service::UploadInfo {
            declared_len: Some(11),
            ..info("big", "text/plain")
        };
        let e =
            w.m.upload(
                u,
                declared,
                stream::pending::<clawrk_domain::Result<Bytes>>(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, DomainError::TooLarge(_)),
            "refused before reading"
        );
        w.m.upload(u, info("ten", "text/plain"), chunks(&[b"0123456789"]))
            .await
            .unwrap();
        let e =
            w.m.upload(u, info("six", "text/plain"), chunks(&[b"012345"]))
                .await
                .unwrap_err();
        assert!(e.to_string().contains("5 of 15 bytes left"), "{e}");
        assert_eq!(
            w.files.keys().len(),
            1,
            "only the accepted upload is stored"
        );
        assert_eq!(w.store.snapshot().files.len(), 1);
        // Another user has their own allowance.
        let v = user(&w.m, "bob", 0).await;
        w.m.upload(v, info("six", "text/plain"), chunks(&[b"012345"]))
            .await
            .unwrap();
    })
}

#[test]
fn bad_names_and_types_are_refused() {
    block_on(async {
        let w = world(Config::default());
        let u = user(&w.m, "ann", 0).await;
        for (name, ctype) in [
            ("", "text/plain"),
            ("a/b", "text/plain"),
            ("ok", "nonsense"),
        ] {
            let e = w.m.upload(u, info(name, ctype), chunks(&[b"x"])).await;
            assert!(matches!(e, Err(DomainError::Invalid(_))), "{name} {ctype}");
        }
        assert!(w.files.keys().is_empty());
    })
}

#[test]
fn an_upload_that_breaks_off_leaves_nothing() {
    block_on(async {
        let w = world(Config::default());
        let u = user(&w.m, "ann", 0).await;
        let body = stream::iter(vec![
            Ok(Bytes::from_static(b"first part")),
            Err(DomainError::invalid("the upload was interrupted")),
        ]);
        assert!(
            w.m.upload(u, info("a.txt", "text/plain"), body)
                .await
                .is_err()
        );
        assert!(w.files.keys().is_empty(), "no object");
        assert!(w.store.snapshot().files.is_empty(), "no metadata");
    })
}

#[test]
fn attachments_must_be_the_callers_and_nothing_is_created_otherwise() {
    block_on(async {
        let w = world(Config::default());
        let ann = user(&w.m, "ann", 10_000).await;
        let bob = user(&w.m, "bob", 0).await;
        let mine =
            w.m.upload(ann, info("a.csv", "text/csv"), chunks(&[b"x,y"]))
                .await
                .unwrap();
        let theirs =
            w.m.upload(bob, info("b.csv", "text/csv"), chunks(&[b"x,y"]))
                .await
                .unwrap();
        let run = RunRequest {
            prompt: "Clean this CSV".into(),
            attachments: vec![mine.id, theirs.id],
            confirmed: true,
            ..RunRequest::default()
        };
        let e = w.m.run(ann, run).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("attachments[1]: no file {}", theirs.id)),
            "{e}"
        );
        assert!(w.store.snapshot().jobs.is_empty());
        assert!(w.structured_with.lock().unwrap().is_empty(), "no LLM call");
        // The structurer sees the sender's files; the job shows their metadata.
        let run = RunRequest {
            prompt: "Clean this CSV".into(),
            attachments: vec![mine.id],
            confirmed: true,
            ..RunRequest::default()
        };
        let RunOutcome::Queued(job) = w.m.run(ann, run).await.unwrap() else {
            panic!("not queued")
        };
        assert_eq!(
            w.structured_with.lock().unwrap().last().unwrap(),
            &vec![mine.clone()]
        );
        assert!(job.attachments.0.contains(&mine.id.to_string()));
        assert!(job.attachments.0.contains("\"filename\":\"a.csv\""));
    })
}

#[test]
fn who_may_read_a_file() {
    block_on(async {
        let w = world(Config::default());
        let sender = user(&w.m, "sender", 10_000).await;
        let worker = user(&w.m, "worker", 0).await;
        let stranger = user(&w.m, "stranger", 0).await;
        let input =
            w.m.upload(sender, info("in.txt", "text/plain"), chunks(&[b"input"]))
                .await
                .unwrap();
        // Before any job references it, only its owner reads it.
        assert!(matches!(
            w.m.file(worker, input.id).await,
            Err(DomainError::NotFound("file"))
        ));
        let job = accepted_job(&w, sender, worker, vec![input.id]).await;
        assert_eq!(read_all(&w.m, worker, input.id).await.unwrap(), b"input");
        assert!(matches!(
            read_all(&w.m, stranger, input.id).await,
            Err(DomainError::NotFound("file"))
        ));
        let output =
            w.m.upload(worker, info("out.txt", "text/plain"), chunks(&[b"output"]))
                .await
                .unwrap();
        // Not attached yet: the sender may not read the worker's file.
        assert!(w.m.file(sender, output.id).await.is_err());
        let out = Output::new(None, Some(vec![output.id])).unwrap();
        let submitted = w.m.submit(worker, job.id, out).await.unwrap();
        assert_eq!(submitted.status, JobStatus::Submitted);
        assert!(
            submitted
                .output_attachments
                .as_ref()
                .unwrap()
                .0
                .contains(&output.id.to_string())
        );
        assert_eq!(read_all(&w.m, sender, output.id).await.unwrap(), b"output");
        assert!(w.m.file(stranger, output.id).await.is_err());
        // The sender's other files stay theirs.
        let private =
            w.m.upload(sender, info("p.txt", "text/plain"), chunks(&[b"p"]))
                .await
                .unwrap();
        assert!(w.m.file(worker, private.id).await.is_err());
    })
}

#[test]
fn a_submission_with_someone_elses_file_is_refused() {
    block_on(async {
        let w = world(Config::default());
        let sender = user(&w.m, "sender", 10_000).await;
        let worker = user(&w.m, "worker", 0).await;
        let job = accepted_job(&w, sender, worker, vec![]).await;
        let senders =
            w.m.upload(sender, info("s.txt", "text/plain"), chunks(&[b"s"]))
                .await
                .unwrap();
        let out = Output::new(Some("done".into()), Some(vec![senders.id])).unwrap();
        let e = w.m.submit(worker, job.id, out).await.unwrap_err();
        assert!(e.to_string().starts_with("attachments[0]"), "{e}");
        assert_eq!(
            w.m.job(sender, job.id).await.unwrap().status,
            JobStatus::Accepted
        );
    })
}

#[test]
fn the_verifier_reads_text_files_within_their_budget() {
    block_on(async {
        let w = world(Config::default());
        let sender = user(&w.m, "sender", 10_000).await;
        let worker = user(&w.m, "worker", 0).await;
        let job = accepted_job(&w, sender, worker, vec![]).await;
        let long = vec![b'a'; VERIFY_FILE_BYTES as usize + 100];
        let text =
            w.m.upload(worker, info("notes.md", "text/markdown"), chunks(&[&long]))
                .await
                .unwrap();
        let image =
            w.m.upload(
                worker,
                info("chart.png", "image/png"),
                chunks(&[b"\x89PNG"]),
            )
            .await
            .unwrap();
        let out = Output::new(Some("see files".into()), Some(vec![text.id, image.id])).unwrap();
        w.m.submit(worker, job.id, out).await.unwrap();
        let after = w.m.verify_next().await.unwrap().expect("verified");
        assert_eq!(after.status, JobStatus::Verified);
        let tasks = w.verifier.0.lock().unwrap();
        let files = &tasks[0].files;
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].filename, "notes.md");
        assert_eq!(
            files[0].text.as_deref().map(str::len),
            Some(VERIFY_FILE_BYTES as usize)
        );
        assert!(files[0].truncated);
        assert_eq!(files[1].filename, "chart.png");
        assert_eq!(files[1].text, None);
        assert_eq!(files[1].size_bytes, 4);
    })
}

#[test]
fn the_sweeper_removes_unreferenced_uploads_after_a_day() {
    block_on(async {
        let w = world(Config::default());
        let sender = user(&w.m, "sender", 10_000).await;
        let worker = user(&w.m, "worker", 0).await;
        let kept =
            w.m.upload(sender, info("k.txt", "text/plain"), chunks(&[b"k"]))
                .await
                .unwrap();
        let dropped =
            w.m.upload(sender, info("d.txt", "text/plain"), chunks(&[b"d"]))
                .await
                .unwrap();
        accepted_job(&w, sender, worker, vec![kept.id]).await;
        w.clock.advance_secs(23 * 3600);
        let recent =
            w.m.upload(sender, info("r.txt", "text/plain"), chunks(&[b"r"]))
                .await
                .unwrap();
        assert_eq!(w.m.sweep().await.unwrap().removed_files, 0, "not a day yet");
        w.clock.advance_secs(3600 + 1);
        let report = w.m.sweep().await.unwrap();
        assert_eq!(report.removed_files, 1);
        assert_eq!(report.orphaned_files, 0);
        let left: Vec<FileId> = w.store.snapshot().files.keys().copied().collect();
        assert!(left.contains(&kept.id) && left.contains(&recent.id));
        assert!(!left.contains(&dropped.id));
        assert!(!w.files.keys().contains(&dropped.id.to_string()));
        assert!(w.m.file(sender, dropped.id).await.is_err());
    })
}

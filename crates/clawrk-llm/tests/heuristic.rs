//! The heuristic structurer and verifier on fixed examples.

use async_trait::async_trait;
use clawrk_domain::LogLevel;
use clawrk_domain::ports::{LogSink, Structurer, Verifier, VerifyTask};
use clawrk_llm::Heuristic;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

#[async_trait]
impl LogSink for Lines {
    async fn log(&self, _level: LogLevel, message: String) {
        self.0.lock().unwrap().push(message);
    }
}

#[tokio::test]
async fn titles_read_as_titles() {
    let cases = [
        (
            "Research the history of the Unix operating system",
            "Research the History of the Unix Operating System",
        ),
        (
            "Please write a Python script that parses CSV files, then upload it.",
            "Write a Python Script That Parses CSV Files",
        ),
        (
            "can you summarise this PDF for me? It is long.",
            "Summarise This PDF for Me",
        ),
        (
            "Translate the attached README into French so that our users in Lyon can read it",
            "Translate the Attached README into French",
        ),
    ];
    for (prompt, want) in cases {
        let s = Heuristic.structure(prompt, &[]).await.unwrap();
        assert_eq!(s.title, want, "title of {prompt:?}");
        assert_eq!(s.structured_by, "heuristic");
    }
}

#[tokio::test]
async fn requirements_and_criteria_come_from_the_sentences() {
    let s = Heuristic
        .structure(
            "Write a haiku about Rust. Mention the borrow checker! Keep it cheerful.",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        s.acceptance_criteria,
        vec![
            "Addresses: Write a haiku about Rust",
            "Addresses: Mention the borrow checker",
            "Addresses: Keep it cheerful",
        ]
    );
    assert_eq!(
        s.requirements,
        "- Write a haiku about Rust\n- Mention the borrow checker\n- Keep it cheerful"
    );
}

#[tokio::test]
async fn estimates_grow_with_the_task_and_stay_in_range() {
    let small = Heuristic.structure("Fix a typo", &[]).await.unwrap();
    let big = Heuristic
        .structure(
            &"Design and implement a distributed cache with tests. ".repeat(20),
            &[],
        )
        .await
        .unwrap();
    let huge = Heuristic
        .structure(&"word ".repeat(50_000), &[])
        .await
        .unwrap();
    assert_eq!(small.estimated_price.cents().get(), 350);
    assert_eq!(small.estimated_time_limit.seconds(), 720);
    assert!(big.estimated_price > small.estimated_price);
    assert!(big.estimated_time_limit > small.estimated_time_limit);
    assert_eq!(huge.estimated_price.cents().get(), 100_000, "clamped");
    assert_eq!(huge.estimated_time_limit.seconds(), 86_400, "clamped");
}

fn task(output: &str) -> VerifyTask {
    VerifyTask {
        title: "Haiku".into(),
        description: String::new(),
        requirements: "A haiku".into(),
        acceptance_criteria: vec![
            "Addresses: Write a haiku about Rust".into(),
            "Addresses: Mention the borrow checker".into(),
        ],
        output: output.into(),
        files: Vec::new(),
    }
}

#[tokio::test]
async fn verifier_checks_form_and_judges_each_criterion() {
    let lines = Arc::new(Lines::default());
    let good = "Ownership moves on\nthe borrow checker frowns, then nods\nmy code compiles now";
    let a = Heuristic.verify(&task(good), lines.clone()).await.unwrap();
    assert!(a.passed, "{a:?}");
    assert_eq!(
        (a.verifier.as_str(), Heuristic.name()),
        ("heuristic", "heuristic".into())
    );
    assert_eq!(a.criteria.len(), 2);
    assert!(a.criteria.iter().all(|c| c.passed));
    assert!(a.reasoning.contains("not meaning"), "{}", a.reasoning);
    // The job's log lines (started, one per criterion, the verdict) are the domain's to write.
    assert!(lines.0.lock().unwrap().is_empty());

    let off_topic = Heuristic
        .verify(
            &task("Whiskers in the sun\na cat dreams of tuna cans\nthe dog barks, she sleeps"),
            Arc::new(Lines::default()),
        )
        .await
        .unwrap();
    assert!(!off_topic.passed);
    assert!(off_topic.criteria[0].passed, "a haiku all the same");
    assert!(
        off_topic.criteria[1]
            .note
            .contains("missing: borrow, checker"),
        "{:?}",
        off_topic.criteria[1]
    );

    let prose = Heuristic
        .verify(
            &task("The borrow checker keeps references honest, and it frowns a lot."),
            Arc::new(Lines::default()),
        )
        .await
        .unwrap();
    assert!(!prose.passed);
    assert_eq!(
        prose.criteria[0].note,
        "a haiku has 3 lines; the output has 1"
    );

    let empty = Heuristic
        .verify(&task("   "), Arc::new(Lines::default()))
        .await
        .unwrap();
    assert!(!empty.passed);
    assert!(
        empty
            .criteria
            .iter()
            .all(|c| c.note == "the output is empty")
    );
}

/// The README's example: a plain haiku passes the job the heuristic made of the prompt, and an
/// output that merely restates the prompt's words does not.
#[tokio::test]
async fn a_plain_haiku_passes_and_a_restatement_does_not() {
    let job = Heuristic
        .structure("Write a haiku about the sea", &[])
        .await
        .unwrap();
    let task = |output: &str| VerifyTask {
        title: job.title.clone(),
        description: job.description.clone(),
        requirements: job.requirements.clone(),
        acceptance_criteria: job.acceptance_criteria.clone(),
        output: output.into(),
        files: Vec::new(),
    };
    let haiku =
        "Grey waves fold and break\nwhite foam breathes upon the sand\nthe tide pulls back home";
    let a = Heuristic
        .verify(&task(haiku), Arc::new(Lines::default()))
        .await
        .unwrap();
    assert!(a.passed, "{a:?}");
    for restated in [
        "write haiku sea",
        "Write a haiku about the sea.",
        "sea haiku\nsea\nwrite",
    ] {
        let a = Heuristic
            .verify(&task(restated), Arc::new(Lines::default()))
            .await
            .unwrap();
        assert!(!a.passed, "{restated:?}");
        assert!(a.criteria[0].note.contains("restates the task"), "{a:?}");
    }
}

/// Forms the criteria name: code, JSON, a word count, a list.
#[tokio::test]
async fn forms_named_by_the_criteria_are_checked() {
    let cases = [
        (
            "Write a Python function is_prime(n)",
            "Bananas are an excellent source of potassium.",
            false,
        ),
        (
            "Write a Python function is_prime(n)",
            "def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, n))",
            true,
        ),
        (
            "Return the totals as JSON",
            "{\"vendor\": \"ACME\", \"total\": 1234.56}",
            true,
        ),
        (
            "Return the totals as JSON",
            "vendor ACME, total 1234.56",
            false,
        ),
        (
            "Summarise it in about 20 words",
            &"lorem ipsum dolor ".repeat(7),
            true,
        ),
        ("Summarise it in about 20 words", "lorem ipsum dolor", false),
        (
            "List three colours",
            "- cerulean\n- vermilion\n- ochre",
            true,
        ),
        ("List three colours", "cerulean vermilion ochre", false),
    ];
    for (prompt, output, want) in cases {
        let job = Heuristic.structure(prompt, &[]).await.unwrap();
        let a = Heuristic
            .verify(
                &VerifyTask {
                    title: job.title,
                    description: job.description,
                    requirements: job.requirements,
                    acceptance_criteria: job.acceptance_criteria,
                    output: output.to_string(),
                    files: Vec::new(),
                },
                Arc::new(Lines::default()),
            )
            .await
            .unwrap();
        assert_eq!(a.passed, want, "{prompt:?} / {output:?}: {a:?}");
    }
}

/// Any text, however its letters change length when lowercased (`İ`, the Kelvin sign, …), is
/// structured and judged without a panic: a panic here took HTTP workers down (found by the fuzzer).
#[test]
fn no_text_makes_the_heuristic_panic() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let tricky = [
        "İstanbul, please: write a haiku",
        "\u{212A}elvin, could you: summarise",
        "Please İİİİİİİİ, then İ",
        "ǅ, ß, ﬁ; Ω, ς: ẞ",
        "",
        "   ",
    ];
    let check = |text: &str| {
        rt.block_on(async {
            let _ = Heuristic.structure(text, &[]).await;
            let task = VerifyTask {
                title: text.into(),
                description: text.into(),
                requirements: text.into(),
                acceptance_criteria: vec![text.into()],
                output: text.into(),
                files: Vec::new(),
            };
            let _ = Heuristic.verify(&task, Arc::new(Lines::default())).await;
        })
    };
    for t in tricky {
        check(t);
    }
    proptest!(ProptestConfig::with_cases(500), |(text in "\\PC{0,60}")| {
        check(&text);
    });
}

/// Text files count as the output when it has no text; a file beside a text is material, not the
/// deliverable whose form is checked.
#[tokio::test]
async fn files_are_read_as_the_output_when_there_is_no_text() {
    use clawrk_domain::files::VerifyFile;
    let file = |text: &str| VerifyFile {
        filename: "poem.txt".into(),
        content_type: "text/plain".into(),
        size_bytes: text.len() as u64,
        text: Some(text.into()),
        truncated: false,
    };
    let good = "Ownership moves on\nthe borrow checker frowns, then nods\nmy code compiles now";
    let judge = |output: &str, files: Vec<VerifyFile>| {
        let t = VerifyTask {
            files,
            ..task(output)
        };
        async move {
            Heuristic
                .verify(&t, Arc::new(Lines::default()))
                .await
                .unwrap()
        }
    };
    let only_file = judge("", vec![file(good)]).await;
    assert!(only_file.passed, "the file is the output: {only_file:?}");
    let beside = judge(good, vec![file("notes\nmore notes\nand more\nand more")]).await;
    assert!(
        beside.passed,
        "the text's form is checked, not the file's: {beside:?}"
    );
    let restated = judge("", vec![file("Write a haiku about Rust")]).await;
    assert!(!restated.passed, "{restated:?}");
}
